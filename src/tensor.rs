//! The user-facing tensor handle.
//!
//! A `Tensor` is a cheap handle on a graph node. Creating one from data or
//! applying an op records a node and checks shapes; nothing runs on the GPU
//! until a value is read ([`Tensor::to_vec`], [`Tensor::item`]) or
//! [`Tensor::realize`] is called.

use std::sync::Arc;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Node, NodeId, Op};
use crate::shape::Shape;

/// A tensor of any rank, living on a [`Device`]: f32, or a 16-bit float
/// format ([`DType`]).
pub struct Tensor {
    pub(crate) node: Arc<Node>,
}

impl Clone for Tensor {
    fn clone(&self) -> Tensor {
        Tensor::from_node(self.node.clone())
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        self.node.handles.decrement();
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(#{} {} {:?})",
            self.node.id,
            self.node.op.name(),
            self.node.shape
        )
    }
}

impl Tensor {
    pub(crate) fn from_node(node: Arc<Node>) -> Tensor {
        node.handles.increment();
        Tensor { node }
    }

    /// Records a node. `inputs` must all live on one device.
    #[track_caller]
    pub(crate) fn record(op: Op, inputs: &[&Tensor], shape: Shape) -> Tensor {
        let device = inputs[0].node.device.clone();
        for t in &inputs[1..] {
            assert!(
                t.node.device.same(&device),
                "{}: inputs live on different devices ({:?} and {:?})",
                op.name(),
                device,
                t.node.device
            );
        }
        // A reshape or broadcast of a widened 16-bit value is the widening
        // of the 16-bit value's reshape or broadcast (exact either way): the
        // kernels that read it then load the 16-bit buffer themselves.
        if matches!(op, Op::Reshape | Op::Expand)
            && matches!(inputs[0].node.op, Op::Convert(DType::F32))
            && !inputs[0].node.is_realized()
        {
            let source = Tensor::from_node(inputs[0].node.inputs()[0].clone());
            let view = Tensor::record(op, &[&source], shape);
            let wide = view.to_dtype(DType::F32);
            wide.node.recompute.set(inputs[0].node.recompute.get());
            return wide;
        }
        if let Some(dtype) = Tensor::narrow_dtype(&op, inputs) {
            // Ops compute in f32: 16-bit inputs are converted, the result
            // rounded back to the inputs' dtype (promotion: see `dtype.rs`).
            let mut wide: Vec<Tensor> = Vec::with_capacity(inputs.len());
            // An op family's kernels read 16-bit inputs themselves
            // (`exec/packed.rs`): only the other ops see f32 copies.
            let family = matches!(op, Op::Family(_));
            for (k, t) in inputs.iter().enumerate() {
                let same = inputs[..k]
                    .iter()
                    .position(|u| Arc::ptr_eq(&u.node, &t.node));
                wide.push(match same {
                    // An input given twice is widened once.
                    Some(j) => wide[j].clone(),
                    None if family || t.node.holds_indices() || t.dtype() == DType::F32 => {
                        (*t).clone()
                    }
                    None => {
                        // Widened just before the op that reads it (a
                        // kernel of its own where that op is not fused
                        // with it): the f32 copy lives only while read.
                        let w = t.to_dtype(DType::F32);
                        w.node.recompute.set(true);
                        w
                    }
                });
            }
            // The op itself, computing in f32 (recorded as it is: an
            // enclosing autocast scope is for the ops the caller records).
            let nodes = wide.iter().map(|t| current_version(&t.node)).collect();
            let y = Tensor::from_node(Node::new(op, nodes, shape, device));
            if y.node.holds_indices() || dtype == DType::F32 {
                return y;
            }
            let stored = y.to_dtype(dtype);
            *y.node.stored_16.borrow_mut() = Some(Arc::downgrade(&stored.node));
            return stored;
        }
        let nodes = inputs.iter().map(|t| current_version(&t.node)).collect();
        Tensor::from_node(Node::new(op, nodes, shape, device))
    }

    /// The dtype an op on 16-bit inputs rounds its result to (or, under
    /// [`crate::autocast`], the scope's); `None` when every float input is
    /// f32 outside a scope, the op converts dtypes itself, or it is a view
    /// that keeps its input's dtype natively (reshape, detach and
    /// broadcast: the kernels around them read 16-bit values themselves).
    fn narrow_dtype(op: &Op, inputs: &[&Tensor]) -> Option<DType> {
        // A checkpoint or custom rule carries its region's output as it is
        // (its other inputs are arguments to re-run or differentiate, not
        // values it reads).
        if matches!(
            op,
            Op::Convert(_)
                | Op::Reshape
                | Op::Detach
                | Op::Expand
                | Op::Checkpoint(_)
                | Op::Custom(_)
        ) {
            return None;
        }
        let narrow_input = inputs.iter().any(|t| t.dtype() != DType::F32);
        // Under autocast, ops that compute store their results in the
        // scope's dtype, reductions in f32; other moves of values keep
        // their input's dtype (the promotion rule below).
        if let Some(dtype) = crate::dtype::autocast_dtype() {
            if matches!(op, Op::Reduce { .. }) {
                return narrow_input.then_some(DType::F32);
            }
            let moves = matches!(op, Op::Permute(_) | Op::Slice { .. } | Op::Pad { .. });
            if !moves {
                return Some(dtype);
            }
        }
        // The common case first, without allocating: all f32 (index
        // tensors count as f32 here; they never take part in promotion).
        if !narrow_input {
            return None;
        }
        // where_cond's mask is a condition, not a value: like PyTorch's
        // boolean masks, it takes no part in promotion.
        let floats: Vec<(DType, usize)> = inputs
            .iter()
            .enumerate()
            .filter(|&(i, t)| {
                let condition = i == 0 && matches!(op, Op::Where);
                !(t.node.holds_indices() || condition)
            })
            .map(|(_, t)| (t.dtype(), t.rank()))
            .collect();
        Some(DType::promote(&floats))
    }

    fn leaf(device: &Device, op: Op, shape: Shape) -> Tensor {
        Tensor::from_node(Node::new(op, Vec::new(), shape, device.clone()))
    }

    /// A tensor holding `data` (row-major) with the given shape.
    #[track_caller]
    pub fn from_vec(device: &Device, data: impl Into<Vec<f32>>, shape: impl Into<Shape>) -> Tensor {
        let data = data.into();
        let shape = shape.into();
        assert_eq!(
            data.len(),
            shape.numel(),
            "from_vec: {} values do not fill a tensor of shape {shape:?} ({} elements)",
            data.len(),
            shape.numel()
        );
        Tensor::leaf(device, Op::Input(data.into()), shape)
    }

    /// A 0-d tensor.
    pub fn scalar(device: &Device, value: f32) -> Tensor {
        Tensor::from_vec(device, vec![value], Shape::scalar())
    }

    /// Every element equal to `value`. Costs no upload: the constant is
    /// generated (usually fused) on the GPU.
    #[track_caller]
    pub fn full(device: &Device, shape: impl Into<Shape>, value: f32) -> Tensor {
        Tensor::leaf(device, Op::Fill(value), shape.into())
    }
    /// Zeros, generated on the GPU (no upload).
    #[track_caller]
    pub fn zeros(device: &Device, shape: impl Into<Shape>) -> Tensor {
        Tensor::full(device, shape, 0.0)
    }
    /// Ones, generated on the GPU (no upload).
    #[track_caller]
    pub fn ones(device: &Device, shape: impl Into<Shape>) -> Tensor {
        Tensor::full(device, shape, 1.0)
    }
    /// Zeros of this tensor's shape and dtype, on its device.
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.device(), self.shape().clone()).to_dtype(self.dtype())
    }
    /// Ones of this tensor's shape and dtype, on its device.
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.device(), self.shape().clone()).to_dtype(self.dtype())
    }

    /// Uniform samples in [lo, hi), reproducible from `seed` on any device.
    #[track_caller]
    pub fn rand_uniform(
        device: &Device,
        shape: impl Into<Shape>,
        lo: f32,
        hi: f32,
        seed: u64,
    ) -> Tensor {
        let shape = shape.into();
        assert!(
            lo < hi && lo.is_finite() && hi.is_finite(),
            "rand_uniform: the interval [{lo}, {hi}) is empty or not finite"
        );
        if let Some(t) = Tensor::too_large_for(device, &shape) {
            return t;
        }
        Tensor::from_vec(
            device,
            crate::random::uniform(shape.numel(), lo, hi, seed),
            shape,
        )
    }

    /// Normal samples N(mean, std²), reproducible from `seed` on any device.
    #[track_caller]
    pub fn rand_normal(
        device: &Device,
        shape: impl Into<Shape>,
        mean: f32,
        std: f32,
        seed: u64,
    ) -> Tensor {
        let shape = shape.into();
        assert!(
            mean.is_finite() && std.is_finite() && std >= 0.0,
            "rand_normal: the mean must be finite and the standard deviation finite and at least 0, got mean {mean} and std {std}"
        );
        if let Some(t) = Tensor::too_large_for(device, &shape) {
            return t;
        }
        Tensor::from_vec(
            device,
            crate::random::normal(shape.numel(), mean, std, seed),
            shape,
        )
    }

    /// For a tensor that no buffer of `device` can hold: a placeholder that
    /// costs nothing on the host, whose realize fails with
    /// [`crate::Error::TooLarge`] before anything runs, as realizing the
    /// samples would. Size checks come before any allocation: 2³¹ samples
    /// would otherwise be 8 GiB generated on the host first.
    fn too_large_for(device: &Device, shape: &Shape) -> Option<Tensor> {
        let limit = device.limits()?.max_storage_buffer_binding_size;
        let bytes = (shape.numel() as u64).saturating_mul(4);
        (bytes > limit).then(|| Tensor::full(device, shape.clone(), f32::NAN))
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.node.shape
    }
    /// The sizes of the axes.
    pub fn dims(&self) -> &[usize] {
        self.node.shape.dims()
    }
    /// How many axes there are.
    pub fn rank(&self) -> usize {
        self.node.shape.rank()
    }
    /// How many elements there are.
    pub fn numel(&self) -> usize {
        self.node.shape.numel()
    }
    /// The device the tensor lives on.
    pub fn device(&self) -> &Device {
        &self.node.device
    }
    /// The node's id, unique in the process (handy in graph dumps).
    pub fn id(&self) -> NodeId {
        self.node.id
    }
    /// A short name of the op that produced this tensor ("exp", "matmul", ...).
    pub fn op_name(&self) -> String {
        self.node.op.name()
    }
    /// The tensors this one was computed from (empty for leaves).
    pub fn inputs(&self) -> Vec<Tensor> {
        self.node
            .inputs()
            .iter()
            .map(|n| Tensor::from_node(n.clone()))
            .collect()
    }
    /// True if both handles point at the same graph node.
    pub fn same_node(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }

    /// The same value, cut off from differentiation (its gradient is zero).
    /// Once realized it forgets the graph that produced it, which is how a
    /// training loop keeps its parameters from growing an ever longer chain.
    pub fn detach(&self) -> Tensor {
        Tensor::record(Op::Detach, &[self], self.shape().clone())
    }

    /// A variable: a copy of this tensor's value in a GPU buffer of its own,
    /// with no graph behind it, which [`Tensor::assign`] updates in place.
    /// Trainable parameters and optimizer state are variables. A variable
    /// is f32 (an optimizer's master weights): a 16-bit tensor's values
    /// are converted, exactly.
    pub fn to_variable(&self) -> Result<Tensor> {
        // A fresh buffer, never an alias of x's. Host data (an input, or a
        // constant of at most `UPLOAD_FILLS_UP_TO` elements) is uploaded
        // into it: no kernel, so initializing a model compiles nothing (on
        // lavapipe a kernel's first dispatch compiles it, ~30 ms each).
        // Anything else is copied by a kernel, x + 0.
        const UPLOAD_FILLS_UP_TO: usize = 1 << 18;
        let upload =
            |data: Arc<[f32]>| Tensor::leaf(self.device(), Op::Input(data), self.shape().clone());
        // Variables are f32 (an optimizer's master weights): a 16-bit
        // tensor's values are converted, exactly.
        let wide = self.to_dtype(DType::F32);
        let copy = match &wide.node.op {
            Op::Input(data) => upload(data.clone()),
            Op::Fill(v) if self.numel() <= UPLOAD_FILLS_UP_TO => {
                upload(vec![*v; self.numel()].into())
            }
            _ => wide.add_scalar(0.0),
        };
        crate::exec::realize(&[&copy])?;
        let storage = copy.node.storage.borrow().clone();
        let node = Node::new(
            Op::Variable(Arc::default()),
            Vec::new(),
            self.shape().clone(),
            self.device().clone(),
        );
        *node.storage.borrow_mut() = storage;
        Ok(Tensor::from_node(node))
    }

    /// True for tensors made by [`Tensor::to_variable`].
    pub fn is_variable(&self) -> bool {
        matches!(self.node.op, Op::Variable(_))
    }

    /// Records an in-place update of this variable to `value` (same shape).
    /// Nothing runs until the returned tensor (or something depending on
    /// it) is realized; then the variable's buffer holds the new value, with
    /// no new allocation. An optimizer step is a few of these, realized with
    /// the forward and backward pass in one submit.
    ///
    /// Reads follow program order, as if every op ran when recorded: an op
    /// recorded before the update sees the old value, one recorded after it
    /// (through the variable or the returned tensor) sees the new one, and
    /// of two updates of one variable the one recorded last is the value
    /// left in the variable, while the first returned tensor keeps the
    /// first value. So reading the variable after an update makes that
    /// update part of the read's graph: realizing the read performs it.
    /// Realizing an op recorded before an update that has since been
    /// written returns [`crate::Error::StaleRead`] (its input no longer
    /// exists), as PyTorch's version counter does.
    ///
    /// Updates are not differentiated: like an optimizer step under
    /// `torch.no_grad()`, a value read after an update differentiates with
    /// respect to the variable, not through the update's expression.
    #[track_caller]
    pub fn assign(&self, value: &Tensor) -> Tensor {
        assert!(
            self.is_variable(),
            "assign: the target must be a variable (Tensor::to_variable), not {}",
            self.op_name()
        );
        assert_eq!(
            value.shape(),
            self.shape(),
            "assign: a value of shape {:?} for a variable of shape {:?}",
            value.shape(),
            self.shape()
        );
        assert!(
            value.device().same(self.device()),
            "assign: the value lives on {:?}, the variable on {:?}",
            value.device(),
            self.device()
        );
        let Op::Variable(state) = &self.node.op else {
            unreachable!()
        };
        // The target is the variable itself, not its latest version; a
        // 16-bit value is converted to the variable's f32.
        let value = value.to_dtype(DType::F32);
        // Inside a conditional step (`LossScaler::step`): the old value
        // where the GPU decided to skip.
        let value = match crate::optim::update_condition() {
            Some(ok) => ok.where_cond(&value, self),
            None => value,
        };
        let value = current_version(&value.node);
        let node = Node::new(
            Op::Assign,
            vec![self.node.clone(), value],
            self.shape().clone(),
            self.device().clone(),
        );
        *state.latest.borrow_mut() = Arc::downgrade(&node);
        Tensor::from_node(node)
    }

    /// Runs every pending kernel this tensor needs, in one submit, and
    /// waits for the device's verdict (see [`realize_all`]).
    pub async fn realize(&self) -> Result<()> {
        crate::exec::realize_async(&[self]).await
    }

    /// [`Tensor::realize`], run to completion (native code).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn realize_blocking(&self) -> Result<()> {
        crate::exec::realize(&[self])
    }

    /// Reads the value back (row-major). Async because browsers cannot block.
    pub async fn to_vec(&self) -> Result<Vec<f32>> {
        Ok(crate::exec::read(&[self], &[]).await?.pop().unwrap())
    }

    /// Reads a one-element tensor back as a number.
    #[track_caller]
    pub fn item(&self) -> impl std::future::Future<Output = Result<f32>> + '_ {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {:?} is not a single value",
            self.shape()
        );
        async move { Ok(self.to_vec().await?[0]) }
    }

    /// Blocking [`Tensor::to_vec`] for native code.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec_blocking(&self) -> Result<Vec<f32>> {
        pollster::block_on(self.to_vec())
    }

    /// Blocking [`Tensor::item`] for native code.
    #[cfg(not(target_arch = "wasm32"))]
    #[track_caller]
    pub fn item_blocking(&self) -> Result<f32> {
        let fut = self.item();
        pollster::block_on(fut)
    }
}

/// The node a read of `node` recorded now should use: for a variable with a
/// pending update, that update (program order, see [`Tensor::assign`]).
fn current_version(node: &Arc<Node>) -> Arc<Node> {
    if let Op::Variable(state) = &node.op
        && let Some(update) = state.latest.borrow().upgrade()
        && !update.is_realized()
    {
        return update;
    }
    node.clone()
}

/// Number of graph nodes the tensors depend on (leaves included): the size
/// of the computation that realizing them from scratch would run.
pub fn graph_size(tensors: &[&Tensor]) -> usize {
    let roots: Vec<Arc<Node>> = tensors.iter().map(|t| t.node.clone()).collect();
    crate::graph::topo_order(&roots, |_| false).len()
}

/// Realizes several tensors in one submit and reads them all back.
pub async fn read_all(tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
    crate::exec::read(tensors, &[]).await
}

/// Realizes `read` and `realize` in one submit and reads back only `read`:
/// e.g. a training step reads its loss while the updated parameters stay on
/// the GPU.
pub async fn read_and_realize(read: &[&Tensor], realize: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
    crate::exec::read(read, realize).await
}

/// Blocking [`read_and_realize`] for native code.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_and_realize_blocking(read: &[&Tensor], realize: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
    pollster::block_on(read_and_realize(read, realize))
}

/// Blocking [`read_all`] for native code.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_all_blocking(tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
    pollster::block_on(read_all(tensors))
}

/// The most GPU bytes that realizing `tensors` together (with
/// [`realize_all`] or a read) will have in use at once — every live buffer
/// of the device, those already in use included — predicted without
/// running anything: the realize is planned exactly as it will be (order,
/// fusion, kernels, buffer reuse) in a pool that only counts. It equals
/// [`crate::MemoryStats::peak_live_bytes`] measured over that realize after
/// [`crate::Device::reset_peak_memory`] (tested), except for the scratch
/// buffers autotune times a new matmul shape with, once per process.
pub fn predict_peak_bytes(tensors: &[&Tensor]) -> Result<u64> {
    Ok(predict_memory(tensors)?.peak_bytes)
}

/// What realizing some tensors together will cost in memory, predicted
/// without running anything (see [`predict_memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryPrediction {
    /// The most bytes live at once (see [`predict_peak_bytes`]).
    pub peak_bytes: u64,
    /// Kernels that recompute checkpointed values (`webgrad::checkpoint`, or
    /// automatic rematerialization under a budget), the bytes those values
    /// take and the floating-point operations they cost: the price of the
    /// memory recomputation saves.
    pub recomputed_kernels: usize,
    /// Bytes of the recomputed values.
    pub recomputed_bytes: u64,
    /// Floating-point operations of the recomputation.
    pub recomputed_flops: u64,
}

/// [`predict_peak_bytes`] with what recomputation costs in the same plan.
/// Under a device memory budget ([`crate::Device::set_memory_budget`]) it
/// is the plan the realize will run: rematerialized if the plain one does
/// not fit (the rewrite of the graph is kept, as the realize would make
/// it), or the plain plan if nothing fits (the realize would then fail).
pub fn predict_memory(tensors: &[&Tensor]) -> Result<MemoryPrediction> {
    crate::exec::predict_memory(tensors)
}

/// Runs every pending kernel the tensors need in one submit, without
/// reading them back, and waits for the device's verdict on that submit:
/// a validation or out-of-memory error, or an index computed on the GPU
/// out of range, is returned by this call on every platform.
pub async fn realize_all(tensors: &[&Tensor]) -> Result<()> {
    crate::exec::realize_async(tensors).await
}

/// [`realize_all`], run to completion (native code).
#[cfg(not(target_arch = "wasm32"))]
pub fn realize_all_blocking(tensors: &[&Tensor]) -> Result<()> {
    crate::exec::realize(tensors)
}

/// Submits the kernels the tensors need and returns without waiting for
/// the GPU: for a browser's loop that must not await every step. An error
/// the GPU reports later is returned by the next call on the device, and a
/// GPU-computed index out of range is not seen (use [`realize_all`] or a
/// read for that). Natively it is [`realize_all_blocking`], which waits.
pub fn submit(tensors: &[&Tensor]) -> Result<()> {
    crate::exec::realize(tensors)
}
