//! The one graph IR: nodes, recording, topological order.
//!
//! A node is an op applied to input nodes. Nodes are reference counted; a
//! graph lives exactly as long as some tensor handle can reach it, so a
//! training loop that drops its tensors frees its graphs. All walks are
//! iterative (principle 4): a chain of a million nodes neither overflows the
//! stack when sorted nor when dropped.

use rustc_hash::FxHashSet as HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::device::Device;
use crate::exec::pool::Storage;
pub(crate) mod family;
mod primitives;
pub(crate) mod sync;

use sync::{SyncCell, SyncCount, SyncFlag, SyncId};

use crate::shape::Shape;
pub(crate) use family::Family;
pub use primitives::{ALL_BINARY, ALL_UNARY, Binary, ReduceOp, Unary};

/// Identifies a node for the lifetime of the process.
pub type NodeId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a node computes. The variants other than [`Op::Family`] are the
/// ones the scheduler fuses (elementwise, reductions, views) or treats
/// specially (leaves, variables); their shape rules live in `ops/`, their
/// derivative rules in `autodiff/`, their f64 semantics in `reference.rs`.
/// Every other op is a [`Family`] that carries all of that itself.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// A value uploaded from the host.
    Input(Arc<[f32]>),
    /// Integer indices uploaded from the host (an [`crate::IndexTensor`]),
    /// stored as u32 in the buffer.
    Indices(Arc<[u32]>),
    /// Every element equal to the constant.
    Fill(f32),
    Unary(Unary),
    Binary(Binary),
    /// Elementwise choice (torch.where): input 1 where input 0 ≠ 0, else
    /// input 2, all three broadcast to the node's shape.
    Where,
    /// The input rounded to a dtype (the node's), or widened from a 16-bit
    /// one to f32 (exact): `to_dtype`. Elementwise, so fused like the
    /// others: a fused kernel loads and stores 16-bit values itself and
    /// rounds a 16-bit intermediate in registers exactly where it would
    /// have been stored (see `exec/codegen.rs`).
    Convert(crate::dtype::DType),
    /// Reduction over `axes`; the node's shape keeps them with size 1.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
    },
    /// Same elements, new shape.
    Reshape,
    /// Output axis `i` is input axis `perm[i]`.
    Permute(Vec<usize>),
    /// numpy broadcast to the node's shape.
    Expand,
    /// The window `starts .. starts + shape` of the input.
    Slice {
        starts: Vec<usize>,
    },
    /// Zeros of the node's shape with the input written at `starts` (slice's adjoint).
    Pad {
        starts: Vec<usize>,
    },
    /// An op family with its own kernels, rules and reference (matmul,
    /// concat, convolutions, pooling, ...): see `ops/family.rs`.
    Family(Arc<dyn Family>),
    /// The input's value, cut off from differentiation. Once realized, a
    /// detached node forgets its input, so chains of updates do not grow.
    Detach,
    /// A value that lives only on the GPU and can be updated in place
    /// (trainable parameters, optimizer state). Always realized.
    Variable(Arc<VariableState>),
    /// Input 0's value (the output of a checkpointed region, see
    /// `autodiff::checkpoint`); inputs 1.. are the region's inputs. Its
    /// vjp recomputes the region from them instead of reading the values
    /// its forward pass made, which are then not kept for the backward pass.
    Checkpoint(CheckpointFn),
    /// Input 0's value (the output of a function with a user's derivative
    /// rule, see `autodiff::custom`); inputs 1.. are the function's
    /// arguments, which receive the rule's partial adjoints.
    Custom(crate::autodiff::custom::CustomRule),
    /// Writes input 1 into the buffer of input 0 (a variable), in place;
    /// the node's value is the variable's new value. Once realized it
    /// forgets its value's graph (input 1) and keeps the variable.
    Assign,
}

impl Op {
    /// Short human name, used in messages and graph dumps.
    pub fn name(&self) -> String {
        match self {
            Op::Input(_) => "input".into(),
            Op::Indices(_) => "indices".into(),
            Op::Fill(v) => format!("fill({v})"),
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.info().name.into(),
            Op::Where => "where".into(),
            Op::Convert(d) => format!("to_{d}"),
            Op::Reduce { op, axes } => format!("{}{axes:?}", op.name()),
            Op::Reshape => "reshape".into(),
            Op::Permute(p) => format!("permute{p:?}"),
            Op::Expand => "broadcast_to".into(),
            Op::Slice { starts } => format!("slice@{starts:?}"),
            Op::Pad { starts } => format!("pad@{starts:?}"),
            Op::Family(f) => f.name(),
            Op::Detach => "detach".into(),
            Op::Checkpoint(_) => "checkpoint".into(),
            Op::Custom(c) => format!("custom({})", c.name),
            Op::Variable(_) => "variable".into(),
            Op::Assign => "assign".into(),
        }
    }

    /// True for ops that map each output element from the same-index
    /// elements of (broadcast) inputs: these are fused by the scheduler.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Fill(_) | Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Convert(_)
        )
    }
}

/// A region's function: its inputs to its output.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type RegionFn = dyn Fn(&[crate::Tensor]) -> crate::Tensor + Send + Sync;
#[cfg(target_arch = "wasm32")]
pub(crate) type RegionFn = dyn Fn(&[crate::Tensor]) -> crate::Tensor;

/// The function of a checkpointed region, re-run by its vjp, and how many
/// of the checkpoint node's inputs after the first are its arguments (the
/// rest are values it captured).
#[derive(Clone)]
pub(crate) struct CheckpointFn(pub Arc<RegionFn>, pub usize);

impl std::fmt::Debug for CheckpointFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointFn")
    }
}

/// The id the next node will get: nodes recorded from now on have ids at
/// least this large.
pub(crate) fn next_id() -> NodeId {
    NEXT_ID.load(Ordering::Relaxed)
}

/// What a variable knows about its updates, so that reads and updates
/// follow program order (see `Tensor::assign`).
#[derive(Default)]
pub(crate) struct VariableState {
    /// The update recorded last. Reads recorded after it read it instead of
    /// the variable (while it is pending).
    pub latest: SyncCell<std::sync::Weak<Node>>,
    /// Id of the update last written into the variable's buffer (0: none).
    /// A read recorded before it would see a value that no longer exists.
    pub written: SyncId,
}

impl std::fmt::Debug for VariableState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VariableState {{ written: {} }}", self.written.get())
    }
}

pub(crate) struct Node {
    pub id: NodeId,
    pub op: Op,
    pub shape: Shape,
    /// The element type its buffer holds (see `dtype.rs`).
    pub dtype: crate::dtype::DType,
    pub device: Device,
    /// Emptied when a detached node is realized (see [`Op::Detach`]).
    pub inputs: SyncCell<Vec<Arc<Node>>>,
    /// The value on the GPU, once realized and worth keeping.
    pub storage: SyncCell<Option<Storage>>,
    /// How many user-visible [`crate::Tensor`] handles point here. Nodes that
    /// only the graph references are intermediates: the executor frees their
    /// buffers as soon as the kernels of a realize are done with them.
    pub handles: SyncCount,
    /// Recorded by a checkpoint's vjp to recompute a value of the forward
    /// pass: the scheduler runs it just before its first consumer (not as
    /// early as its inputs allow), so it is not held meanwhile.
    pub recompute: SyncFlag,
    /// The 16-bit copy `Tensor::record` stored of this f32 value when it
    /// computed a 16-bit op's result in f32: reverse mode reads that copy
    /// instead (converted just in time), so the backward pass does not
    /// keep the f32 value (see `autodiff/vjp.rs`).
    pub stored_16: SyncCell<Option<std::sync::Weak<Node>>>,
    /// Recorded by reverse mode (an adjoint, or part of one): the values of
    /// other nodes it reads are what the backward pass keeps alive, which
    /// automatic rematerialization may recompute instead (`exec/budget.rs`).
    pub adjoint: bool,
    /// The error of the realize that computed this value, if one of its
    /// checks failed (an index computed on the GPU out of range): every
    /// later realize that reads the value fails with it.
    pub failed: SyncCell<Option<crate::error::Error>>,
}

thread_local! {
    /// Reverse passes under way on this thread (see [`RecordingAdjoints`]).
    static RECORDING_ADJOINTS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// While alive, nodes recorded on this thread are marked as adjoints.
pub(crate) struct RecordingAdjoints;

impl RecordingAdjoints {
    pub fn start() -> RecordingAdjoints {
        RECORDING_ADJOINTS.with(|d| d.set(d.get() + 1));
        RecordingAdjoints
    }
}

impl Drop for RecordingAdjoints {
    fn drop(&mut self) {
        RECORDING_ADJOINTS.with(|d| d.set(d.get() - 1));
    }
}

impl Node {
    pub fn new(op: Op, inputs: Vec<Arc<Node>>, shape: Shape, device: Device) -> Arc<Node> {
        // Conversions make 16-bit values; the views that alias or index a
        // buffer (reshape, detach, broadcast, and the nodes that carry a
        // region's output with its derivative rule) keep their input's
        // dtype. Every other op computes in f32 (`Tensor::record`).
        let dtype = match &op {
            Op::Convert(d) => *d,
            Op::Reshape | Op::Detach | Op::Expand | Op::Checkpoint(_) | Op::Custom(_) => {
                inputs[0].dtype
            }
            _ => crate::dtype::DType::F32,
        };
        Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            op,
            dtype,
            shape,
            device,
            inputs: SyncCell::new(inputs),
            storage: SyncCell::new(None),
            handles: SyncCount::new(0),
            recompute: SyncFlag::new(false),
            stored_16: SyncCell::new(None),
            adjoint: RECORDING_ADJOINTS.with(|d| d.get() > 0),
            failed: SyncCell::new(None),
        })
    }

    pub fn inputs(&self) -> parking_lot::RwLockReadGuard<'_, Vec<Arc<Node>>> {
        self.inputs.borrow()
    }

    /// True if the buffer holds u32 indices, not floats (an
    /// [`crate::IndexTensor`], argmax's output, a view of one).
    pub fn holds_indices(&self) -> bool {
        match &self.op {
            Op::Indices(_) => true,
            Op::Family(f) => f.integer_output(),
            Op::Reshape => self.inputs()[0].holds_indices(),
            _ => false,
        }
    }

    pub fn is_realized(&self) -> bool {
        self.storage.borrow().is_some()
    }
}

impl Drop for Node {
    /// Drops the graph above this node without recursion: inputs that this
    /// node held the last reference to are unlinked onto an explicit stack.
    fn drop(&mut self) {
        let mut stack: Vec<Arc<Node>> = std::mem::take(self.inputs.get_mut());
        while let Some(node) = stack.pop() {
            if let Ok(node) = Arc::try_unwrap(node) {
                stack.extend(node.inputs.take());
            }
        }
    }
}

/// Post-order (inputs before users) of every node reachable from `roots`,
/// not descending past nodes for which `stop` is true (those are included).
pub(crate) fn topo_order(roots: &[Arc<Node>], stop: impl Fn(&Node) -> bool) -> Vec<Arc<Node>> {
    let mut order = Vec::new();
    let mut seen = HashSet::default();
    // (node, inputs pushed?) — the explicit stack replaces recursion.
    let mut stack: Vec<(Arc<Node>, bool)> = Vec::new();
    for r in roots.iter().rev() {
        stack.push((r.clone(), false));
    }
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !seen.insert(node.id) {
            continue;
        }
        let stop_here = stop(&node);
        stack.push((node.clone(), true));
        if !stop_here {
            for input in node.inputs().iter().rev() {
                if !seen.contains(&input.id) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}
