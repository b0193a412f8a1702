//! The scheduler: turns the pending part of the graph into a list of
//! dispatches for one command encoder.
//!
//! 1. Order: every node the targets need that has no value yet, inputs first.
//! 2. Fusion: an elementwise node whose only consumer is an elementwise node
//!    of the same shape is inlined into it (up to six input buffers and 64
//!    nodes per kernel); constants are inlined into every elementwise user.
//! 3. Buffer planning: each materialized value lives until its last consumer
//!    has been encoded, then goes back to the pool for the kernels after it
//!    (in-order execution within a submit makes this safe). Values that a
//!    tensor handle can still see are kept on their node.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::graph::{topo_order, Node, NodeId, Op};
use crate::shape::{broadcast_strides, Shape};

use super::codegen::{fused_kernel, MAX_FUSED_INPUTS, MAX_FUSED_NODES};
use super::kernels::{self, copy_params, grid_1d, matmul_kernel, reduce_parts, reduce_source, COPY};
use super::pool::{allocate, Storage};

/// One kernel launch: bindings are `params` at 0, then `buffers` in order.
pub(crate) struct Dispatch {
    pub pipeline: wgpu::ComputePipeline,
    pub params: Vec<u32>,
    pub buffers: Vec<(wgpu::Buffer, u64)>,
    pub groups: [u32; 3],
}

pub(crate) struct Plan {
    pub dispatches: Vec<Dispatch>,
    /// Host data to upload before the kernels run.
    pub uploads: Vec<(wgpu::Buffer, Rc<[f32]>)>,
    /// The targets' values, in the order asked.
    pub targets: Vec<Storage>,
}

struct Scheduler<'g> {
    gpu: &'g Gpu,
    plan: Plan,
    values: HashMap<NodeId, Storage>,
}

fn bytes_of(numel: usize) -> u64 {
    (numel.max(1) * 4) as u64
}

impl Scheduler<'_> {
    fn alloc(&self, shape: &Shape) -> Result<Storage> {
        let bytes = bytes_of(shape.numel());
        let limit = self.gpu.limits.max_storage_buffer_binding_size as u64;
        if bytes > limit {
            return Err(Error::TooLarge { bytes, limit });
        }
        Ok(allocate(&self.gpu.device, &self.gpu.pool, bytes))
    }

    fn dispatch(&mut self, source: &str, entry: &str, params: Vec<u32>, buffers: Vec<(&Storage, usize)>, groups: [u32; 3]) {
        if groups.contains(&0) {
            return;
        }
        let pipeline = self.gpu.pipelines.lock().unwrap().get(&self.gpu.device, source, entry);
        let buffers = buffers.into_iter().map(|(s, numel)| (s.buffer.clone(), bytes_of(numel))).collect();
        self.plan.dispatches.push(Dispatch { pipeline, params, buffers, groups });
    }

    fn value(&self, node: &Node) -> Storage {
        self.values[&node.id].clone()
    }

    /// Encodes the kernel(s) computing `node` and returns its value.
    fn emit(&mut self, node: &Rc<Node>, inlined: &dyn Fn(&Node) -> bool) -> Result<Storage> {
        let inputs: Vec<Rc<Node>> = node.inputs().clone();
        let shape = &node.shape;
        let n = shape.numel();
        match &node.op {
            Op::Input(data) => {
                let out = self.alloc(shape)?;
                self.plan.uploads.push((out.buffer.clone(), data.clone()));
                Ok(out)
            }
            Op::Reshape | Op::Detach => Ok(self.value(&inputs[0])),
            Op::Fill(_) | Op::Unary(_) | Op::Binary(_) => {
                let kernel = fused_kernel(node, inlined);
                let out = self.alloc(shape)?;
                let srcs: Vec<Storage> = kernel.inputs.iter().map(|i| self.value(i)).collect();
                let mut buffers = vec![(&out, n)];
                buffers.extend(srcs.iter().zip(&kernel.inputs).map(|(s, i)| (s, i.shape.numel())));
                self.dispatch(&kernel.source, "elementwise", kernel.params, buffers, grid_1d(n as u64));
                Ok(out)
            }
            Op::Permute(perm) => {
                let in_strides = inputs[0].shape.strides();
                let src: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
                self.copy(&inputs[0], shape, shape.dims(), 0, &src, 0)
            }
            Op::Expand => {
                let src = broadcast_strides(&inputs[0].shape, shape);
                self.copy(&inputs[0], shape, shape.dims(), 0, &src, 0)
            }
            Op::Slice { starts } => {
                let in_strides = inputs[0].shape.strides();
                let offset = starts.iter().zip(&in_strides).map(|(s, t)| s * t).sum();
                self.copy(&inputs[0], shape, shape.dims(), offset, &in_strides, 0)
            }
            Op::Pad { starts } => {
                let out = self.zeros(shape)?;
                let out_strides = shape.strides();
                let offset = starts.iter().zip(&out_strides).map(|(s, t)| s * t).sum();
                let src = self.value(&inputs[0]);
                let dims = inputs[0].shape.dims().to_vec();
                let params = copy_params(&dims, 0, &inputs[0].shape.strides(), offset, &out_strides);
                let count = inputs[0].shape.numel();
                self.dispatch(COPY, "copy_strided", params, vec![(&src, count), (&out, n)], grid_1d(count as u64));
                Ok(out)
            }
            Op::Concat { axis } => {
                let out = self.alloc(shape)?;
                let out_strides = shape.strides();
                let mut offset = 0;
                for input in &inputs {
                    let src = self.value(input);
                    let count = input.shape.numel();
                    let params =
                        copy_params(input.shape.dims(), 0, &input.shape.strides(), offset * out_strides[*axis], &out_strides);
                    self.dispatch(COPY, "copy_strided", params, vec![(&src, count), (&out, n)], grid_1d(count as u64));
                    offset += input.shape.dims()[*axis];
                }
                Ok(out)
            }
            Op::Reduce { op, axes } => self.reduce(*op, &inputs[0], axes, shape),
            Op::Matmul => self.matmul(&inputs[0], &inputs[1], shape),
        }
    }

    /// A strided copy of `input` into a fresh contiguous tensor of `shape`.
    fn copy(&mut self, input: &Node, shape: &Shape, dims: &[usize], src_offset: usize, src_strides: &[usize], dst_offset: usize) -> Result<Storage> {
        let out = self.alloc(shape)?;
        let src = self.value(input);
        let n = shape.numel();
        let params = copy_params(dims, src_offset, src_strides, dst_offset, &shape.strides());
        self.dispatch(COPY, "copy_strided", params, vec![(&src, input.shape.numel()), (&out, n)], grid_1d(n as u64));
        Ok(out)
    }

    fn zeros(&mut self, shape: &Shape) -> Result<Storage> {
        let fill = Node::new(Op::Fill(0.0), Vec::new(), shape.clone(), crate::Device::reference_only());
        let kernel = fused_kernel(&fill, &|_| false);
        let out = self.alloc(shape)?;
        let n = shape.numel();
        self.dispatch(&kernel.source, "elementwise", kernel.params, vec![(&out, n)], grid_1d(n as u64));
        Ok(out)
    }

    /// Reduction over `axes`: view the input as rows (kept axes) × reduced
    /// elements with one stride each, copying to that layout first if the
    /// axes do not collapse; then fold in passes of the fixed tree.
    fn reduce(&mut self, op: crate::ops::reduce::ReduceOp, input: &Rc<Node>, axes: &[usize], shape: &Shape) -> Result<Storage> {
        let dims = input.shape.dims();
        let strides = input.shape.strides();
        let kept: Vec<(usize, usize)> =
            (0..dims.len()).filter(|d| !axes.contains(d) && dims[*d] != 1).map(|d| (dims[d], strides[d])).collect();
        let reduced: Vec<(usize, usize)> =
            (0..dims.len()).filter(|d| axes.contains(d) && dims[*d] != 1).map(|d| (dims[d], strides[d])).collect();
        let rows: usize = kept.iter().map(|k| k.0).product();
        let k: usize = reduced.iter().map(|k| k.0).product();
        let (mut src, mut so, mut sr) = match (collapse(&kept), collapse(&reduced)) {
            (Some(so), Some(sr)) => (self.value(input), so, sr),
            _ => {
                // Gather to [kept..., reduced...] contiguous.
                let order: Vec<(usize, usize)> = kept.iter().chain(&reduced).copied().collect();
                let gdims: Vec<usize> = order.iter().map(|o| o.0).collect();
                let gshape = Shape::new(&gdims);
                let gstrides: Vec<usize> = order.iter().map(|o| o.1).collect();
                (self.copy(input, &gshape, &gdims, 0, &gstrides, 0)?, k, 1)
            }
        };
        let source = reduce_source(op);
        let mut k_left = k;
        loop {
            let parts = reduce_parts(rows, k_left);
            let out = self.alloc(&Shape::new(&[rows * parts]))?;
            let params = vec![rows as u32, k_left as u32, so as u32, sr as u32, parts as u32];
            let src_len = src.buffer.size() as usize / 4;
            self.dispatch(&source, "reduce", params, vec![(&src, src_len.min(u32::MAX as usize)), (&out, rows * parts)], grid_1d((rows * parts) as u64));
            if parts == 1 {
                debug_assert_eq!(rows, shape.numel());
                return Ok(out);
            }
            src = out;
            k_left = parts;
            so = parts;
            sr = 1;
        }
    }

    /// Batched matmul; operands whose batch dims only partly broadcast are
    /// expanded to the full batch first.
    fn matmul(&mut self, a: &Rc<Node>, b: &Rc<Node>, shape: &Shape) -> Result<Storage> {
        let r = shape.rank();
        let (m, n) = (shape.dims()[r - 2], shape.dims()[r - 1]);
        let k = a.shape.dims()[a.shape.rank() - 1];
        let batch_dims = &shape.dims()[..r - 2];
        let batch: usize = batch_dims.iter().product();
        let mut operand = |x: &Rc<Node>, rows: usize, cols: usize| -> Result<(Storage, usize)> {
            let xb: usize = x.shape.dims()[..x.shape.rank() - 2].iter().product();
            if xb == batch {
                Ok((self.value(x), rows * cols))
            } else if xb == 1 {
                Ok((self.value(x), 0))
            } else {
                let mut full = batch_dims.to_vec();
                full.extend([rows, cols]);
                let full = Shape::new(&full);
                let src = broadcast_strides(&x.shape, &full);
                Ok((self.copy(x, &full, full.dims(), 0, &src, 0)?, rows * cols))
            }
        };
        let (sa, stride_a) = operand(a, m, k)?;
        let (sb, stride_b) = operand(b, k, n)?;
        if k == 0 {
            return self.zeros(shape);
        }
        let out = self.alloc(shape)?;
        let (source, entry, groups) = matmul_kernel(m, n, k, batch);
        assert!(groups[2] <= kernels::MAX_GROUPS_PER_DIM, "matmul: batch of {batch} exceeds one dispatch");
        let params = vec![m as u32, n as u32, k as u32, batch as u32, stride_a as u32, stride_b as u32];
        let (la, lb) = (sa.buffer.size() as usize / 4, sb.buffer.size() as usize / 4);
        self.dispatch(source, entry, params, vec![(&sa, la), (&sb, lb), (&out, shape.numel())], groups);
        Ok(out)
    }
}

/// Merges (size, stride) axes into one if they are laid out as one
/// contiguous run; `None` if they cannot be.
fn collapse(axes: &[(usize, usize)]) -> Option<usize> {
    match axes.last() {
        None => Some(1),
        Some(&(_, last)) => {
            let ok = axes.windows(2).all(|w| w[0].1 == w[1].1 * w[1].0);
            ok.then_some(last)
        }
    }
}

/// Plans every kernel needed to give `targets` values.
pub(crate) fn plan(gpu: &Gpu, targets: &[Rc<Node>]) -> Result<Plan> {
    let order = topo_order(targets, |n| n.is_realized());
    let target_ids: HashSet<NodeId> = targets.iter().map(|t| t.id).collect();
    let pending: Vec<&Rc<Node>> = order.iter().filter(|n| !n.is_realized()).collect();
    let keep = |n: &Node| target_ids.contains(&n.id) || n.handles.get() > 0 || matches!(n.op, Op::Input(_));

    // Consumers of each node among the pending ones.
    let mut consumers: HashMap<NodeId, Vec<&Rc<Node>>> = HashMap::new();
    for node in &pending {
        for input in node.inputs().iter() {
            consumers.entry(input.id).or_default().push(node);
        }
    }

    // Fusion decisions, inputs first: each node knows the buffer inputs and
    // size its kernel would have if it were a root.
    let mut inline: HashSet<NodeId> = HashSet::new();
    let mut leaves: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    let mut sizes: HashMap<NodeId, usize> = HashMap::new();
    for node in &pending {
        if !node.op.is_elementwise() {
            continue;
        }
        let inputs: Vec<Rc<Node>> = node.inputs().clone();
        let is_candidate = |input: &Rc<Node>| {
            let users = consumers.get(&input.id).map_or(&[][..], |v| v.as_slice());
            !input.is_realized()
                && input.op.is_elementwise()
                && !keep(input)
                && match input.op {
                    // Constants are free to inline into every elementwise user.
                    Op::Fill(_) => users.iter().all(|u| u.op.is_elementwise()),
                    _ => users.len() == 1 && input.shape == node.shape,
                }
        };
        // Buffer inputs that cannot be inlined come first: they are bound
        // whatever else is decided.
        let mut my_leaves: Vec<NodeId> = Vec::new();
        for input in inputs.iter().filter(|i| !is_candidate(i)) {
            if !my_leaves.contains(&input.id) {
                my_leaves.push(input.id);
            }
        }
        let mut size = 1;
        let candidates: Vec<&Rc<Node>> = inputs.iter().filter(|i| is_candidate(i)).collect();
        for (j, input) in candidates.iter().enumerate() {
            if matches!(input.op, Op::Fill(_)) {
                inline.insert(input.id);
                continue;
            }
            let mut merged = my_leaves.clone();
            for l in &leaves[&input.id] {
                if !merged.contains(l) {
                    merged.push(*l);
                }
            }
            // Leave a binding free for each later candidate, in case it is rejected.
            let later = candidates.len() - j - 1;
            if merged.len() + later <= MAX_FUSED_INPUTS && size + sizes[&input.id] <= MAX_FUSED_NODES {
                inline.insert(input.id);
                my_leaves = merged;
                size += sizes[&input.id];
            } else if !my_leaves.contains(&input.id) {
                my_leaves.push(input.id);
            }
        }
        leaves.insert(node.id, my_leaves);
        sizes.insert(node.id, size);
    }

    // Remaining uses of each value by the kernels still to be encoded.
    let kernel_inputs = |node: &Rc<Node>| -> Vec<NodeId> {
        match leaves.get(&node.id) {
            Some(l) => l.clone(),
            None => {
                let mut ids: Vec<NodeId> = node.inputs().iter().map(|i| i.id).collect();
                ids.dedup();
                ids
            }
        }
    };
    let mut remaining: HashMap<NodeId, usize> = HashMap::new();
    for node in pending.iter().filter(|n| !inline.contains(&n.id)) {
        for id in kernel_inputs(node) {
            *remaining.entry(id).or_default() += 1;
        }
    }

    let mut s = Scheduler {
        gpu,
        plan: Plan { dispatches: Vec::new(), uploads: Vec::new(), targets: Vec::new() },
        values: HashMap::new(),
    };
    for node in order.iter().filter(|n| n.is_realized()) {
        s.values.insert(node.id, node.storage.borrow().clone().unwrap());
    }
    // Uploads happen (queue.write_buffer) before any kernel of the submit
    // runs, so their buffers must be taken from the pool before any kernel
    // releases one: otherwise an upload could land in a buffer that an
    // earlier kernel of this submit still uses.
    let mut uploaded: HashMap<NodeId, Storage> = HashMap::new();
    for node in pending.iter().filter(|n| matches!(n.op, Op::Input(_))) {
        uploaded.insert(node.id, s.emit(node, &|_| false)?);
    }
    let is_inlined = |n: &Node| inline.contains(&n.id);
    for node in pending.iter().filter(|n| !inline.contains(&n.id)) {
        let value = match uploaded.remove(&node.id) {
            Some(v) => v,
            None => s.emit(node, &is_inlined)?,
        };
        s.values.insert(node.id, value);
        for id in kernel_inputs(node) {
            let left = remaining.get_mut(&id).unwrap();
            *left -= 1;
            if *left == 0 && !target_ids.contains(&id) {
                s.values.remove(&id);
            }
        }
        if keep(node) {
            *node.storage.borrow_mut() = Some(s.values[&node.id].clone());
        }
    }
    s.plan.targets = targets.iter().map(|t| s.values[&t.id].clone()).collect();
    // Realized detached values forget the graph that produced them.
    for node in &pending {
        if matches!(node.op, Op::Detach) && node.is_realized() {
            node.inputs.borrow_mut().clear();
        }
    }
    Ok(s.plan)
}
