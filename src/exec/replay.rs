//! Plan replay. A training step records a graph of the same structure
//! every step, and planning it (order, fusion, lowering, code generation,
//! pipeline lookup, buffer assignment) costs far more CPU time than
//! encoding its kernels. So the scheduler keys each realize by the
//! structure of its pending graph — a signature — and the second time it
//! meets a signature it records what planning did as a [`Program`]: the
//! pool's allocations and releases in order, each dispatch with its
//! compiled pipeline, parameters and which buffers it binds, the uploads
//! and the values kept on nodes. From the third time on the program is
//! replayed: allocate and release in the same order (so the pool hands out
//! the same buffers and bind groups are reused), bind the new graph's
//! realized values where the recording bound the old one's, upload the new
//! inputs. Nothing is analysed or generated again.
//!
//! The signature is exact, not a hash: two graphs share one only if
//! planning them would decide the same. It spells out, per node in the
//! planning order, its op with every setting (axes, permutations, a
//! family's settings), its shape, its inputs' positions, whether a handle
//! or the caller keeps its value, whether a checkpoint recomputes it and
//! which variable update overwrites its buffer; for each realized value
//! also its buffer's size and which other realized values share that
//! buffer. A new shape, op, setting, connection or kept handle is a new
//! signature and a new plan. Scalar constants (fills, `x·c`, `x + c`,
//! `xᶜ`) are not structure: every kernel reads them from its parameter
//! words, never from its code, so a program records which word holds
//! which node's constant and a replay writes the new graph's values there
//! (an optimizer's bias correction or a decaying learning rate changes
//! every step). Autotune's choice for a shape is made once per device and
//! never changes, so a recorded choice stays the one planning would make.

use std::sync::{Arc, Mutex};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::pool::{BufferPool, Storage, allocate};
use super::profile::KernelInfo;
use super::schedule::{Dispatch, Plan};
use crate::device::Gpu;
use crate::graph::Unary;
use crate::graph::{Node, NodeId, Op};

/// Most programs a device keeps; the one used longest ago goes first.
const MAX_PROGRAMS: usize = 64;
/// Most signatures remembered as seen once (cleared beyond it).
const MAX_SEEN: usize = 4096;

/// Where a recorded kernel's buffer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The value of the realized node at this position of the order.
    Leaf(u32),
    /// The k-th buffer the plan took from the pool.
    Temp(u32),
}

/// One step of a recorded plan, in the order planning took it.
enum Event {
    /// Take a buffer of this many bytes from the pool (the next `Temp`).
    Alloc(u64),
    /// Return `Temp(k)` to the pool: its last kernel has been encoded.
    Free(u32),
    /// Upload the input at this position of the order into `slot`.
    Upload { node: u32, slot: Slot },
    /// The k-th recorded dispatch.
    Dispatch(u32),
    /// The node at this position keeps `slot` as its value.
    Keep { node: u32, slot: Slot },
}

struct RecordedDispatch {
    pipeline: wgpu::ComputePipeline,
    params: Vec<u32>,
    /// (word of `params`, position in the order of the node whose
    /// constant goes there): constants are not structure, so a step whose
    /// learning rate or bias correction changes replays too.
    constants: Vec<(u32, u32)>,
    bindings: Vec<(Slot, u64)>,
    groups: [u32; 3],
    info: Option<KernelInfo>,
}

/// What planning one graph structure did, to be done again without planning.
pub(crate) struct Program {
    events: Vec<Event>,
    dispatches: Vec<RecordedDispatch>,
    targets: Vec<Slot>,
    /// Status words the kernels may set, with their meaning.
    checks: Vec<(Slot, String)>,
    temps: usize,
}

/// What the cache says to do with a signature.
pub(crate) enum Lookup {
    Replay(Arc<Program>),
    /// Seen before: plan it and record the plan.
    Record,
    /// First sight: plan it (a graph planned once is not worth recording).
    Plan,
}

/// The programs of a device, by signature.
#[derive(Default)]
pub(crate) struct ReplayCache {
    programs: HashMap<Vec<u64>, (Arc<Program>, u64)>,
    /// Hashes of signatures planned once (a collision only records early).
    seen: HashSet<u64>,
    /// Family settings (their `Debug` text) numbered for signatures.
    pub families: HashMap<String, u64>,
    clock: u64,
    pub replayed: u64,
    pub recorded: u64,
}

impl ReplayCache {
    pub fn lookup(&mut self, signature: &[u64]) -> Lookup {
        self.clock += 1;
        if let Some((program, used)) = self.programs.get_mut(signature) {
            *used = self.clock;
            self.replayed += 1;
            return Lookup::Replay(program.clone());
        }
        let hash = hash_of(signature);
        if self.seen.contains(&hash) {
            return Lookup::Record;
        }
        if self.seen.len() >= MAX_SEEN {
            self.seen.clear();
        }
        self.seen.insert(hash);
        Lookup::Plan
    }

    pub fn store(&mut self, signature: Vec<u64>, program: Program) {
        if self.programs.len() >= MAX_PROGRAMS && !self.programs.contains_key(&signature) {
            let oldest = self
                .programs
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.programs.remove(&k);
            }
        }
        self.seen.remove(&hash_of(&signature));
        self.recorded += 1;
        self.programs
            .insert(signature, (Arc::new(program), self.clock));
    }

    /// Forgets every program (their buffers' bind groups stay valid: a
    /// program holds pipelines, not buffers).
    pub fn clear(&mut self) {
        self.programs.clear();
        self.seen.clear();
    }
}

fn hash_of(words: &[u64]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    words.hash(&mut h);
    h.finish()
}

/// Words of a signature (see the module's docs) and each node's position
/// in `order`.
pub(crate) struct Signature {
    pub words: Vec<u64>,
    pub position: HashMap<NodeId, u32>,
}

/// The signature of planning `order` (the planner's order) for `targets`.
/// `keep` says whether a pending node's value is kept on it; `overwritten`
/// maps a node to the in-place update overwriting its buffer.
pub(crate) fn signature(
    order: &[Arc<Node>],
    targets: &[Arc<Node>],
    keep: &dyn Fn(&Node) -> bool,
    in_place: &HashSet<NodeId>,
    overwritten: &HashMap<NodeId, NodeId>,
    families: &mut HashMap<String, u64>,
) -> Signature {
    let mut position: HashMap<NodeId, u32> = HashMap::default();
    position.reserve(order.len());
    for (i, n) in order.iter().enumerate() {
        position.insert(n.id, i as u32);
    }
    let mut w: Vec<u64> = Vec::with_capacity(order.len() * 8 + targets.len() + 2);
    w.push(order.len() as u64);
    w.push(targets.len() as u64);
    w.extend(targets.iter().map(|t| position[&t.id] as u64));
    // The first realized node holding each buffer: sharing is structure.
    let mut first_holder: HashMap<*const super::pool::PooledBuffer, u32> = HashMap::default();
    let mut text = String::new();
    for (i, node) in order.iter().enumerate() {
        let over = overwritten
            .get(&node.id)
            .map_or(0, |u| position[u] as u64 + 1);
        let storage = node.storage.borrow();
        if let Some(s) = storage.as_ref() {
            let holder = *first_holder.entry(Arc::as_ptr(s)).or_insert(i as u32);
            w.extend([1, holder as u64, s.size(), over]);
            push_shape(&mut w, node);
            continue;
        }
        drop(storage);
        let flags = u64::from(keep(node))
            | u64::from(node.recompute.get()) << 1
            | u64::from(in_place.contains(&node.id)) << 2;
        w.extend([2, flags, over]);
        push_op(&mut w, &node.op, families, &mut text);
        push_shape(&mut w, node);
        let inputs = node.inputs();
        w.push(inputs.len() as u64);
        w.extend(inputs.iter().map(|x| position[&x.id] as u64));
    }
    Signature { words: w, position }
}

fn push_shape(w: &mut Vec<u64>, node: &Node) {
    let dims = node.shape.dims();
    w.push(dims.len() as u64);
    w.extend(dims.iter().map(|&d| d as u64));
}

fn push_list(w: &mut Vec<u64>, list: &[usize]) {
    w.push(list.len() as u64);
    w.extend(list.iter().map(|&d| d as u64));
}

fn push_op(w: &mut Vec<u64>, op: &Op, families: &mut HashMap<String, u64>, text: &mut String) {
    match op {
        Op::Input(_) => w.push(10),
        Op::Indices(_) => w.push(11),
        // Constants are kernel parameters, not structure (see `Program`).
        Op::Fill(_) => w.push(12),
        Op::Unary(u) => w.extend([13, unary_code(*u)]),
        Op::Binary(b) => w.extend([14, *b as u64]),
        Op::Where => w.push(15),
        Op::Convert(d) => w.extend([27, *d as u64]),
        Op::Reduce { op, axes } => {
            w.extend([16, *op as u64]);
            push_list(w, axes);
        }
        Op::Reshape => w.push(17),
        Op::Permute(perm) => {
            w.push(18);
            push_list(w, perm);
        }
        Op::Expand => w.push(19),
        Op::Slice { starts } => {
            w.push(20);
            push_list(w, starts);
        }
        Op::Pad { starts } => {
            w.push(21);
            push_list(w, starts);
        }
        Op::Family(f) => {
            // A family's settings are plain fields, all in its Debug text.
            use std::fmt::Write;
            text.clear();
            let _ = write!(text, "{f:?}");
            let next = families.len() as u64;
            let id = match families.get(text.as_str()) {
                Some(&id) => id,
                None => {
                    families.insert(text.clone(), next);
                    next
                }
            };
            w.extend([22, id]);
        }
        Op::Detach => w.push(23),
        Op::Variable(_) => w.push(24),
        // The recomputation rule matters to reverse mode only: planned, a
        // checkpoint is its value's alias.
        Op::Checkpoint(_) => w.push(25),
        // Likewise a custom rule's node.
        Op::Custom(_) => w.push(27),
        Op::Assign => w.push(26),
    }
}

/// The constant a fused kernel reads from its parameters for this op.
fn constant_of(op: &Op) -> f32 {
    match op {
        Op::Fill(v) => *v,
        Op::Unary(u) => u.constant().expect("a unary op with a constant"),
        _ => unreachable!("only fills and unary ops have constants"),
    }
}

/// A number per unary op, its constant left out (not structure): the
/// hash of the variant's discriminant, which follows the enum by itself.
/// (FxHash of one word is that word times an odd constant: distinct
/// variants never share a code. Signatures live within one process, where
/// discriminants are fixed.)
fn unary_code(u: Unary) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    std::mem::discriminant(&u).hash(&mut h);
    h.finish()
}

/// Watches a plan being made and writes it down as a [`Program`]. Buffers
/// are recognised by address: realized values are registered up front,
/// pool buffers when taken; the pool's journal says when one goes back.
pub(crate) struct Recorder {
    position: HashMap<NodeId, u32>,
    slot_of: HashMap<usize, Slot>,
    events: Vec<Event>,
    bindings: Vec<Vec<(Slot, u64)>>,
    constants: Vec<Vec<(u32, u32)>>,
    checks: Vec<(Slot, String)>,
    temps: u32,
    /// A buffer no slot explains was bound: the plan is not recorded.
    broken: bool,
}

fn address(s: &Storage) -> usize {
    Arc::as_ptr(s) as usize
}

impl Recorder {
    /// Starts recording: the pool journals the buffers returned to it
    /// until the recorder is finished or dropped.
    pub fn new(
        position: HashMap<NodeId, u32>,
        order: &[Arc<Node>],
        pool: &Mutex<BufferPool>,
    ) -> Recorder {
        let mut slot_of = HashMap::default();
        for (i, node) in order.iter().enumerate() {
            if let Some(s) = node.storage.borrow().as_ref() {
                slot_of.entry(address(s)).or_insert(Slot::Leaf(i as u32));
            }
        }
        pool.lock().unwrap_or_else(|e| e.into_inner()).journal = Some(Vec::new());
        Recorder {
            position,
            slot_of,
            events: Vec::new(),
            bindings: Vec::new(),
            constants: Vec::new(),
            checks: Vec::new(),
            temps: 0,
            broken: false,
        }
    }

    /// Turns the pool's returns since the last call into `Free` events.
    fn drain(&mut self, pool: &Mutex<BufferPool>) {
        let returned = match pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .journal
            .as_mut()
        {
            Some(j) => std::mem::take(j),
            None => return,
        };
        for a in returned {
            // Buffers of autotune's scratch runs are not the plan's.
            if let Some(&Slot::Temp(k)) = self.slot_of.get(&a) {
                self.slot_of.remove(&a);
                self.events.push(Event::Free(k));
            }
        }
    }

    fn slot(&mut self, s: &Storage) -> Slot {
        match self.slot_of.get(&address(s)) {
            Some(&slot) => slot,
            None => {
                self.broken = true;
                Slot::Temp(u32::MAX)
            }
        }
    }

    pub fn alloc(&mut self, pool: &Mutex<BufferPool>, s: &Storage, bytes: u64) {
        self.drain(pool);
        let slot = Slot::Temp(self.temps);
        self.temps += 1;
        self.slot_of.insert(address(s), slot);
        self.events.push(Event::Alloc(bytes));
    }

    /// A dispatch binding `buffers`; `constants` are its parameter words
    /// holding nodes' constants. A constant of a node outside the graph
    /// (the planner's own zeros) stays a literal word.
    pub fn dispatch(
        &mut self,
        pool: &Mutex<BufferPool>,
        buffers: &[(&Storage, u64)],
        constants: &[(usize, NodeId)],
    ) {
        self.drain(pool);
        let bound = buffers.iter().map(|(s, b)| (self.slot(s), *b)).collect();
        self.constants.push(
            constants
                .iter()
                .filter_map(|(word, id)| Some((*word as u32, *self.position.get(id)?)))
                .collect(),
        );
        self.events
            .push(Event::Dispatch(self.bindings.len() as u32));
        self.bindings.push(bound);
    }

    /// Status words the plan reads back after its submit.
    pub fn check(&mut self, s: &Storage, meaning: &str) {
        let slot = self.slot(s);
        self.checks.push((slot, meaning.to_string()));
    }

    pub fn upload(&mut self, node: NodeId, s: &Storage) {
        let slot = self.slot(s);
        let node = self.position[&node];
        self.events.push(Event::Upload { node, slot });
    }

    pub fn keep(&mut self, pool: &Mutex<BufferPool>, node: NodeId, s: &Storage) {
        self.drain(pool);
        let slot = self.slot(s);
        let node = self.position[&node];
        self.events.push(Event::Keep { node, slot });
    }

    /// The program of the finished `plan`, unless a buffer was not explained.
    pub fn finish(mut self, pool: &Mutex<BufferPool>, plan: &Plan) -> Option<Program> {
        self.drain(pool);
        let targets: Vec<Slot> = plan.targets.iter().map(|t| self.slot(t)).collect();
        if self.broken || self.bindings.len() != plan.dispatches.len() {
            return None;
        }
        let dispatches = plan
            .dispatches
            .iter()
            .zip(std::mem::take(&mut self.bindings))
            .zip(std::mem::take(&mut self.constants))
            .map(|((d, bindings), constants)| {
                Some(RecordedDispatch {
                    pipeline: d.pipeline.clone()?,
                    params: d.params.clone(),
                    constants,
                    bindings,
                    groups: d.groups,
                    info: d.info.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Program {
            events: std::mem::take(&mut self.events),
            dispatches,
            targets,
            checks: std::mem::take(&mut self.checks),
            temps: self.temps as usize,
        })
    }

    /// Stops the pool's journal.
    pub fn stop(pool: &Mutex<BufferPool>) {
        pool.lock().unwrap_or_else(|e| e.into_inner()).journal = None;
    }
}

/// Does what `program` recorded for a graph of the same signature whose
/// planning order is `order`: the same allocations and releases in the
/// pool, the same kernels bound to this graph's buffers, its inputs
/// uploaded and its kept values stored on its nodes. Each kernel's
/// description (recorded with the program) comes along when `profiling`.
pub(crate) fn replay(gpu: &Gpu, program: &Program, order: &[Arc<Node>], profiling: bool) -> Plan {
    let mut temps: Vec<Option<Storage>> = Vec::with_capacity(program.temps);
    let mut plan = Plan {
        recomputed: Default::default(),
        timing: false,
        dispatches: Vec::with_capacity(program.dispatches.len()),
        uploads: Vec::new(),
        targets: Vec::new(),
        checks: Vec::new(),
        kept: Vec::new(),
    };
    let leaf = |i: u32| -> Storage {
        order[i as usize]
            .storage
            .borrow()
            .clone()
            .expect("a leaf of a replayed plan is realized (the signature says so)")
    };
    let resolve = |temps: &[Option<Storage>], slot: Slot| -> Storage {
        match slot {
            Slot::Leaf(i) => leaf(i),
            Slot::Temp(k) => temps[k as usize]
                .clone()
                .expect("a replayed plan binds only buffers it holds"),
        }
    };
    for event in &program.events {
        match *event {
            Event::Alloc(bytes) => temps.push(Some(allocate(&gpu.device, &gpu.pool, bytes))),
            Event::Free(k) => temps[k as usize] = None,
            Event::Upload { node, slot } => {
                let buffer = resolve(&temps, slot).buffer().clone();
                let data: Arc<[f32]> = match &order[node as usize].op {
                    Op::Input(data) => data.clone(),
                    Op::Indices(data) => data.iter().map(|&i| f32::from_bits(i)).collect(),
                    _ => unreachable!("only inputs are uploaded"),
                };
                plan.uploads.push((buffer, data));
            }
            Event::Dispatch(k) => {
                let d = &program.dispatches[k as usize];
                let buffers = d
                    .bindings
                    .iter()
                    .map(|&(slot, bytes)| (resolve(&temps, slot).buffer().clone(), bytes))
                    .collect();
                let mut params = d.params.clone();
                for &(word, node) in &d.constants {
                    params[word as usize] = constant_of(&order[node as usize].op).to_bits();
                }
                plan.dispatches.push(Dispatch::compiled(
                    d.pipeline.clone(),
                    params,
                    buffers,
                    d.groups,
                    if profiling { d.info.clone() } else { None },
                ));
            }
            Event::Keep { node, slot } => {
                *order[node as usize].storage.borrow_mut() = Some(resolve(&temps, slot));
                if !program.checks.is_empty() {
                    plan.kept.push(order[node as usize].clone());
                }
            }
        }
    }
    plan.targets = program
        .targets
        .iter()
        .map(|&slot| resolve(&temps, slot))
        .collect();
    plan.checks = program
        .checks
        .iter()
        .map(|(slot, meaning)| (resolve(&temps, *slot), meaning.clone()))
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::unary_code;
    use crate::graph::{ALL_UNARY, Unary};

    /// Every unary op has a code of its own, and a constant is not part of it.
    #[test]
    fn unary_codes_are_distinct_and_ignore_constants() {
        let mut codes: Vec<u64> = ALL_UNARY.iter().map(|&u| unary_code(u)).collect();
        codes.sort_unstable();
        codes.dedup();
        // ALL_UNARY may list a variant twice, with two constants.
        let variants: Vec<_> = ALL_UNARY.iter().map(std::mem::discriminant).collect();
        let distinct = variants
            .iter()
            .enumerate()
            .filter(|(i, v)| !variants[..*i].contains(v))
            .count();
        assert_eq!(codes.len(), distinct);
        assert_eq!(
            unary_code(Unary::Scale(2.0)),
            unary_code(Unary::Scale(-0.5))
        );
        assert_ne!(
            unary_code(Unary::Scale(2.0)),
            unary_code(Unary::AddScalar(2.0))
        );
    }
}
