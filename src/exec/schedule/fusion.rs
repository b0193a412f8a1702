//! Fusion decisions: which edges (consumer → input) are computed inside
//! the consumer's kernel instead of through a buffer, and so which nodes
//! get a kernel of their own and which buffers each kernel binds.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use super::Pending;
use super::reduce::reduce_layout;
use crate::dtype::DType;
use crate::exec::codegen::{MAX_FUSED_INPUTS, MAX_FUSED_NODES};
use crate::graph::{Node, NodeId, Op};

/// Largest tree a node with several consumers may have to be recomputed in
/// each of them instead of being written to memory once.
const RECOMPUTE_LIMIT: usize = 8;

/// The fused edges and, for each node that roots a fused tree, the buffers
/// its kernel binds (its leaves).
pub(super) struct Fusion {
    edges: HashSet<(NodeId, NodeId)>,
    leaves: HashMap<NodeId, Vec<NodeId>>,
}

impl Fusion {
    /// Whether consumer `c` computes its input `i` itself.
    pub fn fused(&self, c: &Node, i: &Node) -> bool {
        self.edges.contains(&(c.id, i.id))
    }

    /// A node gets a kernel (and a buffer) unless every consumer computes it itself.
    pub fn materialized(&self, pending: &Pending, n: &Node) -> bool {
        pending.keep(n)
            || pending
                .consumers
                .get(&n.id)
                .is_none_or(|users| users.iter().any(|u| !self.fused(u, n)))
    }

    /// The buffers the kernel of `node` reads, for counting the uses left
    /// of each value.
    pub fn kernel_inputs(&self, node: &Node) -> Vec<NodeId> {
        match self.leaves.get(&node.id) {
            Some(l) => l.clone(),
            None => {
                let mut ids: Vec<NodeId> = node.inputs().iter().map(|i| i.id).collect();
                ids.dedup();
                ids
            }
        }
    }
}

/// A broadcast (or reshape) of a constant that nobody else reads as a
/// buffer, such as a reverse pass's seed: its edges down to the constant.
/// They are fused: a kernel fusing the broadcast computes the constant,
/// and a broadcast read as a buffer (by a matmul: the seed of a product's
/// adjoints) is one fill kernel of its shape, not a fill and a
/// broadcasting copy; the constant gets no kernel of its own.
fn constant_chain(pending: &Pending, n: &Node) -> Option<Vec<(NodeId, NodeId)>> {
    if !matches!(n.op, Op::Expand | Op::Reshape) || n.is_realized() {
        return None;
    }
    let mut edges = Vec::new();
    let (mut id, mut c) = (n.id, n.inputs()[0].clone());
    loop {
        edges.push((id, c.id));
        if matches!(c.op, Op::Fill(_)) {
            return (!c.is_realized() && !pending.keep(&c)).then_some(edges);
        }
        if !matches!(c.op, Op::Expand | Op::Reshape) || c.is_realized() || pending.keep(&c) {
            return None;
        }
        let next = c.inputs()[0].clone();
        (id, c) = (c.id, next);
    }
}

/// Whether `c` can compute an input inside its own kernel: elementwise
/// ops, and reductions whose kept and reduced axes each collapse to one.
fn fusing_consumer(c: &Node) -> bool {
    match &c.op {
        op if op.is_elementwise() => true,
        Op::Reduce { axes, .. } => {
            let layout = reduce_layout(&c.inputs()[0].shape, axes);
            layout.so.is_some() && layout.sr.is_some()
        }
        _ => false,
    }
}

/// Fusion decisions, inputs first. For each node that could root a fused
/// tree we track the buffers its kernel would bind and the tree's size; an
/// edge (consumer → input) is fused when the input can be computed inside
/// the consumer's kernel within the budget (`MAX_FUSED_INPUTS` bindings,
/// `MAX_FUSED_NODES` nodes).
pub(super) fn decide(pending: &Pending) -> Fusion {
    let constant_chains: HashMap<NodeId, Vec<(NodeId, NodeId)>> = pending
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Expand))
        .filter_map(|n| Some((n.id, constant_chain(pending, n)?)))
        .collect();
    // Whether every consumer of a node could compute it itself, decided once
    // per node (asking it per consumer would make planning quadratic in
    // fan-out).
    let all_fusing: HashMap<NodeId, bool> = pending
        .consumers
        .iter()
        .map(|(&id, users)| (id, users.iter().all(|u| fusing_consumer(u))))
        .collect();
    let mut fusion = Fusion {
        edges: HashSet::default(),
        leaves: HashMap::default(),
    };
    let mut sizes: HashMap<NodeId, usize> = HashMap::default();
    let mut stores: HashSet<NodeId> = HashSet::default();
    for node in &pending.nodes {
        let is_reduce = matches!(node.op, Op::Reduce { .. });
        let is_assign = matches!(node.op, Op::Assign);
        if matches!(node.op, Op::Family(_)) {
            family_loads(pending, node, &mut fusion);
            continue;
        }
        if family_store(pending, node) {
            let family = node.inputs()[0].id;
            fusion.edges.insert((node.id, family));
            let leaves = fusion.leaves[&family].clone();
            fusion.leaves.insert(node.id, leaves);
            sizes.insert(node.id, 0);
            stores.insert(node.id);
            continue;
        }
        if !(node.op.is_elementwise() || is_assign || is_reduce && fusing_consumer(node)) {
            continue;
        }
        if is_assign && !pending.in_place.contains(&node.id) {
            // A copy of the value into a buffer of its own.
            fusion.leaves.insert(node.id, vec![node.inputs()[1].id]);
            sizes.insert(node.id, 0);
            continue;
        }
        let tree = Tree {
            pending,
            node,
            constant_chains: &constant_chains,
            all_fusing: &all_fusing,
            leaves: &fusion.leaves,
            sizes: &sizes,
            stores: &stores,
        };
        let (edges, my_leaves, size) = tree.grow();
        fusion.edges.extend(edges);
        fusion.leaves.insert(node.id, my_leaves);
        sizes.insert(node.id, size);
    }
    fusion
        .edges
        .extend(constant_chains.values().flatten().copied());
    fusion
}

/// An op family reads a widening of a 16-bit buffer as that buffer, its
/// kernels converting in registers (`exec/packed.rs`): the edge is fused,
/// so the widened f32 copy is never stored.
fn family_loads(pending: &Pending, node: &Arc<Node>, fusion: &mut Fusion) {
    let mut leaves: Vec<NodeId> = Vec::new();
    for input in node.inputs().iter() {
        let source = &input.inputs().first().cloned();
        let load = matches!(input.op, Op::Convert(DType::F32))
            && !input.is_realized()
            && !pending.keep(input)
            && source
                .as_ref()
                .is_some_and(|s| fusion.leaves.get(&input.id).is_some_and(|l| *l == [s.id]));
        let id = match source {
            Some(s) if load => {
                fusion.edges.insert((node.id, input.id));
                s.id
            }
            _ => input.id,
        };
        if !leaves.contains(&id) {
            leaves.push(id);
        }
    }
    fusion.leaves.insert(node.id, leaves);
}

/// Whether `node` rounds an op family's result to 16 bits and is the only
/// reader of it: the family's kernels then store the result rounded
/// (`exec/packed.rs`), and its f32 value is never stored. The rounded
/// value is a buffer, never recomputed inside its readers' kernels (the
/// family cannot be).
fn family_store(pending: &Pending, node: &Arc<Node>) -> bool {
    if !matches!(node.op, Op::Convert(d) if d != DType::F32) || node.is_realized() {
        return false;
    }
    let family = &node.inputs()[0];
    matches!(&family.op, Op::Family(f) if !f.integer_output())
        && !family.is_realized()
        && !pending.keep(family)
        && pending
            .consumers
            .get(&family.id)
            .is_some_and(|users| users.len() == 1)
}

/// Whether `c` is an op family (whose kernels may read a widening as a
/// load, see [`family_loads`]).
fn is_family(c: &Node) -> bool {
    matches!(c.op, Op::Family(_))
}

/// One node's fused tree, grown from its inputs' decided trees.
struct Tree<'p, 'a> {
    pending: &'p Pending<'a>,
    node: &'p Arc<Node>,
    constant_chains: &'p HashMap<NodeId, Vec<(NodeId, NodeId)>>,
    all_fusing: &'p HashMap<NodeId, bool>,
    leaves: &'p HashMap<NodeId, Vec<NodeId>>,
    sizes: &'p HashMap<NodeId, usize>,
    /// Roundings a family stores (`family_store`).
    stores: &'p HashSet<NodeId>,
}

impl Tree<'_, '_> {
    fn is_reduce(&self) -> bool {
        matches!(self.node.op, Op::Reduce { .. })
    }

    fn is_assign(&self) -> bool {
        matches!(self.node.op, Op::Assign)
    }

    fn users_of(&self, i: &Node) -> usize {
        self.pending.consumers.get(&i.id).map_or(0, Vec::len)
    }

    /// Whether `input` could be computed inside this node's kernel.
    fn is_candidate(&self, input: &Arc<Node>) -> bool {
        let node = self.node;
        if input.is_realized() || self.pending.keep(input) || self.stores.contains(&input.id) {
            return false;
        }
        // A widening read by several kernels, or by an op family, is a
        // load that converts in each: what it widens is stored once, in 16
        // bits (fused into the widening, a tree computed before it would
        // be too large to recompute in each reader, or one a family cannot
        // compute, and the widened value would be stored in f32 instead).
        if matches!(node.op, Op::Convert(DType::F32))
            && (self.users_of(node) > 1
                || self
                    .pending
                    .consumers
                    .get(&node.id)
                    .is_some_and(|u| u.iter().any(|c| is_family(c))))
        {
            return false;
        }
        // A checkpoint's recomputed value is read from memory by the
        // adjoints, as the forward value it replaces would be: computed
        // inside an adjoint's kernel instead, the compiler may round it
        // differently (fused multiply-adds) and the gradient would not be
        // bit-identical to the one without checkpoints.
        // A conversion to f32 is exact, so it is fused all the same: a
        // 16-bit value the backward pass reads, widened just in time
        // (`autodiff/vjp.rs`), costs no kernel of its own.
        if input.recompute.get() && !node.recompute.get() && !matches!(input.op, Op::Convert(_)) {
            return false;
        }
        if self.is_assign() {
            // The update expression, computed in the variable's own buffer.
            // It may read its own variable (each element before it is
            // written) but no buffer another update overwrites.
            let overwritten_by = &self.pending.overwritten_by;
            return matches!(
                input.op,
                Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Fill(_) | Op::Convert(_)
            ) && self.users_of(input) == 1
                && input.shape == node.shape
                && self.leaves.get(&input.id).is_none_or(|l| {
                    l.iter()
                        .all(|id| overwritten_by.get(id).is_none_or(|a| *a == node.id))
                });
        }
        match input.op {
            // Constants cost nothing to compute anywhere.
            Op::Fill(_) => true,
            _ if self.constant_chains.contains_key(&input.id) => true,
            // A broadcast is a load with stride-0 axes.
            Op::Expand => !self.is_reduce(),
            // So is a widening of a 16-bit buffer read broadcast (a bias).
            _ if self.widening_load(input) => true,
            // A value rounded to 16 bits that several kernels read is
            // stored once, not recomputed in each: recomputing it would keep
            // its f32 source alive as long as its last reader (a backward
            // pass reads it long after the forward pass).
            Op::Convert(d) if d != DType::F32 && self.users_of(input) > 1 => false,
            Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Convert(_) => {
                (self.is_reduce() || input.shape == node.shape)
                    && (self.users_of(input) == 1
                        || (self.sizes[&input.id] <= RECOMPUTE_LIMIT && self.all_fusing[&input.id]))
            }
            _ => false,
        }
    }

    /// Whether `input` is a conversion to f32 of a 16-bit buffer, read by
    /// this elementwise node broadcast: a load that converts (see
    /// `codegen::widening_load`).
    fn widening_load(&self, input: &Arc<Node>) -> bool {
        !self.is_reduce()
            && input.shape != self.node.shape
            && matches!(input.op, Op::Convert(DType::F32))
            && self
                .leaves
                .get(&input.id)
                .is_some_and(|l| *l == [input.inputs()[0].id])
    }

    /// The buffers `input`'s tree binds if it is fused.
    fn candidate_leaves(&self, input: &Arc<Node>) -> Vec<NodeId> {
        match input.op {
            Op::Fill(_) => Vec::new(),
            _ if self.constant_chains.contains_key(&input.id) => Vec::new(),
            _ if self.widening_load(input) => vec![input.inputs()[0].id],
            Op::Expand => vec![input.inputs()[0].id],
            _ => self.leaves[&input.id].clone(),
        }
    }

    fn candidate_size(&self, input: &Arc<Node>) -> usize {
        if input.op.is_elementwise() {
            self.sizes[&input.id]
        } else {
            0
        }
    }

    /// The edges fused into this node, the buffers its kernel binds and
    /// the tree's size.
    fn grow(&self) -> (Vec<(NodeId, NodeId)>, Vec<NodeId>, usize) {
        let node = self.node;
        let inputs: Vec<Arc<Node>> = node.inputs().clone();
        // Buffer inputs that cannot be fused are bound whatever else is decided.
        let mut my_leaves: Vec<NodeId> = Vec::new();
        for input in inputs.iter().filter(|i| !self.is_candidate(i)) {
            if !my_leaves.contains(&input.id) {
                my_leaves.push(input.id);
            }
        }
        let mut edges = Vec::new();
        let mut size = usize::from(!(self.is_reduce() || self.is_assign()));
        let candidates: Vec<&Arc<Node>> = inputs.iter().filter(|i| self.is_candidate(i)).collect();
        for (j, input) in candidates.iter().enumerate() {
            let mut merged = my_leaves.clone();
            for l in self.candidate_leaves(input) {
                if !merged.contains(&l) {
                    merged.push(l);
                }
            }
            // Leave a binding free for each later candidate, in case it is rejected.
            let later = candidates.len() - j - 1;
            if merged.len() + later <= MAX_FUSED_INPUTS
                && size + self.candidate_size(input) <= MAX_FUSED_NODES
            {
                edges.push((node.id, input.id));
                my_leaves = merged;
                size += self.candidate_size(input);
            } else if !my_leaves.contains(&input.id) {
                my_leaves.push(input.id);
            }
        }
        (edges, my_leaves, size)
    }
}
