//! Reverse mode, as the classic algorithm (node_to_grad).
//!
//! Walk the nodes in reverse topological order from the output. Each node
//! keeps the list of partial adjoints that flowed into it; its adjoint is
//! their sum (gradients from branches add up). For each input k the node's
//! vjp rule gives the partial adjoint Δv_{k→i} = Δv_i · ∂v_i/∂v_k, which is
//! summed back to k's shape if k was broadcast and appended to k's list.
//! Every adjoint is an ordinary graph node, so gradients can be
//! differentiated again.

// FxHash: node ids are trusted keys, and SipHash was a large part of planning.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use crate::graph::{Node, NodeId, Op, topo_order};
use crate::tensor::Tensor;

/// Gradients of one output with respect to the leaves of its graph.
pub struct Gradients {
    by_node: HashMap<NodeId, Tensor>,
}

impl Gradients {
    /// The gradient for `x`, or `None` if `x` is not a leaf that influences the output.
    pub fn get(&self, x: &Tensor) -> Option<&Tensor> {
        self.by_node.get(&x.id())
    }
    /// The gradient for `x`; zeros of `x`'s shape if `x` does not influence the output.
    pub fn wrt(&self, x: &Tensor) -> Tensor {
        self.get(x).cloned().unwrap_or_else(|| x.zeros_like())
    }
    /// Number of leaves that received a gradient.
    pub fn len(&self) -> usize {
        self.by_node.len()
    }
    /// Whether no leaf received a gradient.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}

impl Tensor {
    /// Gradients of this scalar with respect to every leaf (a tensor made
    /// from data) it depends on. Look them up with [`Gradients::wrt`].
    #[track_caller]
    pub fn backward(&self) -> Gradients {
        let leaves: Vec<Arc<Node>> = topo_order(std::slice::from_ref(&self.node), stops_gradient)
            .into_iter()
            .filter(|n| matches!(n.op, Op::Input(_) | Op::Variable(_)))
            .collect();
        let seed = scalar_seed(self, "backward");
        let by_node = adjoints(self, &seed, &leaves);
        Gradients { by_node }
    }
}

/// ∂y/∂x for each x in `xs`, where `y` has one element. An x that does not
/// influence y gets zeros (so a list of parameters can be differentiated as
/// a whole); [`Tensor::backward`] and [`Gradients::get`] say `None` for it,
/// to detect it.
#[track_caller]
pub fn grad(y: &Tensor, xs: &[&Tensor]) -> Vec<Tensor> {
    grad_with_seed(y, xs, &scalar_seed(y, "grad"))
}

/// Vector–Jacobian products: the gradient of ⟨seed, y⟩ for each x. `seed`
/// (the cotangent) must have y's shape; use this when y is not a scalar.
#[track_caller]
pub fn grad_with_seed(y: &Tensor, xs: &[&Tensor], seed: &Tensor) -> Vec<Tensor> {
    assert!(
        seed.device().same(y.device()),
        "grad: the seed lives on {:?}, the output on {:?}",
        seed.device(),
        y.device()
    );
    assert_eq!(
        seed.shape(),
        y.shape(),
        "grad: the seed's shape {:?} differs from the output's {:?}",
        seed.shape(),
        y.shape()
    );
    let targets: Vec<Arc<Node>> = xs.iter().map(|x| x.node.clone()).collect();
    let found = adjoints(y, seed, &targets);
    xs.iter()
        .map(|x| {
            found
                .get(&x.id())
                .cloned()
                .unwrap_or_else(|| x.zeros_like())
        })
        .collect()
}

#[track_caller]
fn scalar_seed(y: &Tensor, api: &str) -> Tensor {
    assert_eq!(
        y.numel(),
        1,
        "{api}: the output has shape {:?}, not a single value; pass an explicit cotangent with grad_with_seed",
        y.shape()
    );
    y.ones_like()
}

/// Detached nodes pass no gradient, so the walk does not go above them.
/// (Updates pass theirs to the variable: see the vjp rule of `Op::Assign`.)
fn stops_gradient(n: &Node) -> bool {
    matches!(n.op, Op::Detach)
}

/// One node's visit in the reverse pass, for showing the algorithm at work.
pub struct TraceStep {
    /// The node visited.
    pub node: Tensor,
    /// The partial adjoints Δv_{i→j} that flowed into it, each with the node
    /// j that sent it (`None` for the output's own seed).
    pub partials: Vec<(Option<Tensor>, Tensor)>,
    /// Their sum, the node's adjoint Δv_i.
    pub adjoint: Tensor,
}

/// Runs reverse mode from the scalar `y` and records, in visiting order
/// (reverse topological), every node's list of partial adjoints and its sum:
/// the node_to_grad table of the classic algorithm. Values are lazy tensors;
/// read them together with [`crate::read_all`].
#[track_caller]
pub fn backward_trace(y: &Tensor) -> Vec<TraceStep> {
    let leaves: Vec<Arc<Node>> = topo_order(std::slice::from_ref(&y.node), stops_gradient)
        .into_iter()
        .filter(|n| matches!(n.op, Op::Input(_) | Op::Variable(_)))
        .collect();
    let mut steps = Vec::new();
    let _ = run(
        y,
        &scalar_seed(y, "backward_trace"),
        &leaves,
        false,
        Some(&mut steps),
    );
    steps
}

/// A partial adjoint Δv_{i→j} and the node j that sent it (`None` for the seed).
type Partial = (Option<Arc<Node>>, Tensor);

/// The node_to_grad algorithm. Returns the adjoint of each target reached.
pub(crate) fn adjoints(
    y: &Tensor,
    seed: &Tensor,
    targets: &[Arc<Node>],
) -> HashMap<NodeId, Tensor> {
    run(y, seed, targets, false, None).0
}

/// The partial adjoints of each target reached, in the order the reverse
/// pass made them, not yet summed (a checkpoint's vjp hands them on, so
/// that a sum over partials from inside and outside the region is taken in
/// the same order as without the checkpoint: the same bits). The walk
/// stops at the targets (a region's inputs): what lies beyond them is the
/// enclosing reverse pass's to differentiate.
pub(crate) fn partial_adjoints(
    y: &Tensor,
    seed: &Tensor,
    targets: &[Arc<Node>],
) -> HashMap<NodeId, Vec<Tensor>> {
    run(y, seed, targets, true, None).1
}

type Adjoints = (HashMap<NodeId, Tensor>, HashMap<NodeId, Vec<Tensor>>);

fn run(
    y: &Tensor,
    seed: &Tensor,
    targets: &[Arc<Node>],
    stop_at_targets: bool,
    mut trace: Option<&mut Vec<TraceStep>>,
) -> Adjoints {
    let _adjoints = crate::graph::RecordingAdjoints::start();
    let target_ids: HashSet<NodeId> = targets.iter().map(|t| t.id).collect();
    let stops = |n: &Node| stops_gradient(n) || stop_at_targets && target_ids.contains(&n.id);
    let order = topo_order(std::slice::from_ref(&y.node), stops);

    // Only nodes on a path from a target to y need adjoints.
    let mut relevant: HashSet<NodeId> = HashSet::default();
    for node in &order {
        let reaches = target_ids.contains(&node.id)
            || (!stops(node) && node.inputs().iter().any(|i| relevant.contains(&i.id)));
        if reaches {
            relevant.insert(node.id);
        }
    }

    // node → [(the node j that sent it, Δv_{i→j})]
    let mut node_to_grad: HashMap<NodeId, Vec<Partial>> = HashMap::default();
    node_to_grad.insert(y.id(), vec![(None, seed.clone())]);
    let mut result = HashMap::default();
    let mut raw = HashMap::default();
    for node in order.iter().rev() {
        if !relevant.contains(&node.id) {
            continue;
        }
        let Some(partials) = node_to_grad.remove(&node.id) else {
            continue;
        };
        let adjoint = sum_partials(partials.iter().map(|p| p.1.clone()).collect());
        if target_ids.contains(&node.id) {
            raw.insert(node.id, partials.iter().map(|p| p.1.clone()).collect());
            result.insert(node.id, adjoint.clone());
        }
        if let Some(steps) = trace.as_deref_mut() {
            steps.push(TraceStep {
                node: Tensor::from_node(node.clone()),
                partials: partials
                    .into_iter()
                    .map(|(from, p)| (from.map(Tensor::from_node), p))
                    .collect(),
                adjoint: adjoint.clone(),
            });
        }
        let inputs: Vec<Arc<Node>> = node.inputs().clone();
        if stops(node) || !inputs.iter().any(|i| relevant.contains(&i.id)) {
            continue;
        }
        // A checkpoint hands on its region's partials one by one (see
        // `partial_adjoints`); every other node gives one per input.
        let per_input: Vec<Vec<Tensor>> = match &node.op {
            Op::Checkpoint(_) => super::remat::vjp_partials(node, &adjoint),
            _ => super::vjp::vjp(node, &adjoint)
                .into_iter()
                .map(|p| p.into_iter().collect())
                .collect(),
        };
        for (input, partials) in inputs.iter().zip(per_input) {
            if !relevant.contains(&input.id) {
                continue;
            }
            for partial in partials {
                // Un-broadcast: a broadcast input's adjoint is summed back to its shape.
                // And an adjoint is in its value's dtype (an op family
                // reads 16-bit inputs as they are, and its rules may
                // compute their partials in f32).
                let partial = partial.sum_to(&input.shape).to_dtype(input.dtype);
                node_to_grad
                    .entry(input.id)
                    .or_default()
                    .push((Some(node.clone()), partial));
            }
        }
    }
    (result, raw)
}

/// Δv_i = Σ_j Δv_{i→j}, summed in a fixed order.
fn sum_partials(partials: Vec<Tensor>) -> Tensor {
    let mut it = partials.into_iter();
    let first = it
        .next()
        .expect("a node with an adjoint list has at least one partial");
    it.fold(first, |acc, p| &acc + &p)
}
