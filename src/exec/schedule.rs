//! The scheduler: turns the pending part of the graph into a list of
//! dispatches for one command encoder.
//!
//! 1. Order: every node the targets need that has no value yet, inputs
//!    first (a post-order from the targets recorded last). Kernels are then
//!    emitted in that order except where variable updates impose
//!    anti-dependences (every read of a buffer before the update that
//!    overwrites it: program order, see `Tensor::assign`) and where a
//!    checkpoint's recomputed values run just before their first consumer.
//! 2. Fusion: an elementwise node whose only consumer is an elementwise node
//!    of the same shape is inlined into it (up to six input buffers and 64
//!    nodes per kernel); constants are inlined into every elementwise user.
//! 3. Lowering: op families describe their kernels (`kernel.rs`); where a
//!    family offers variants, autotune times them once (`tune.rs`).
//! 4. Buffer planning: each materialized value lives until its last consumer
//!    has been encoded, then goes back to the pool for the kernels after it
//!    (in-order execution within a submit makes this safe). Values that a
//!    tensor handle can still see are kept on their node. The same plan in a
//!    pool that only counts predicts a realize's peak memory.
//! 5. New pipelines are compiled together once planning ends.

// FxHash: node ids are trusted keys, and SipHash was a large part of planning.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::rc::Rc;

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::graph::{Node, NodeId, Op, VariableState, topo_order};
use crate::shape::{Shape, broadcast_strides};

use super::codegen::{
    FusedEdge, MAX_FUSED_INPUTS, MAX_FUSED_NODES, VEC4_MIN_ELEMENTS, ValueFn, load_fn,
    load_fn_vec4, value_fn, value_fn_in_place, value_fn_vec4,
};
use super::kernels::{
    ELEMENTWISE_HEAD, REDUCE_HEAD, elementwise_source, reduce_parts, reduce_source,
};
use super::pool::{BufferPool, Storage, allocate};
use super::replay::{Lookup, Recorder};
use crate::kernel::{Buf, KernelCall, Target, Window, grid_1d, strided_copy};

/// One kernel launch: bindings are `params` at 0, then `buffers` in order.
pub(crate) struct Dispatch {
    /// Set once planning is done (new pipelines are compiled together then).
    pub pipeline: Option<wgpu::ComputePipeline>,
    /// Index into the plan's pipelines to compile, until then.
    pending: Option<usize>,
    pub params: Vec<u32>,
    pub buffers: Vec<(wgpu::Buffer, u64)>,
    pub groups: [u32; 3],
    /// What it computes, recorded only while profiling.
    pub info: Option<super::profile::KernelInfo>,
}

impl Dispatch {
    /// A dispatch whose pipeline is compiled already (a replayed plan's).
    pub fn compiled(
        pipeline: wgpu::ComputePipeline,
        params: Vec<u32>,
        buffers: Vec<(wgpu::Buffer, u64)>,
        groups: [u32; 3],
        info: Option<super::profile::KernelInfo>,
    ) -> Dispatch {
        Dispatch {
            pipeline: Some(pipeline),
            pending: None,
            params,
            buffers,
            groups,
            info,
        }
    }
}

pub(crate) struct Plan {
    /// What recomputing checkpointed values costs (kernels, bytes, FLOPs).
    pub recomputed: Recomputed,
    /// Autotune's timing run of a variant on scratch buffers: not counted
    /// in the device's kernels and submits (`Counters` count the work asked for).
    pub timing: bool,
    pub dispatches: Vec<Dispatch>,
    /// Host data to upload before the kernels run.
    pub uploads: Vec<(wgpu::Buffer, Rc<[f32]>)>,
    /// The targets' values, in the order asked.
    pub targets: Vec<Storage>,
    /// Status words ([`Buf::Status`]) the kernels may set, each with what
    /// a nonzero one means: read back after the submit.
    pub checks: Vec<(Storage, String)>,
    /// The nodes this plan gives a value, listed only where it has
    /// `checks` (they are marked failed if one fails).
    pub kept: Vec<Rc<Node>>,
}

struct Scheduler<'g> {
    gpu: &'g Gpu,
    plan: Plan,
    values: HashMap<NodeId, Storage>,
    /// The updates that write their variable's buffer (see `in_place_updates`).
    in_place: HashSet<NodeId>,
    /// While profiling: the name and FLOPs of the node being emitted; the
    /// FLOPs go to its first dispatch.
    label: Option<(String, u64)>,
    /// Pipelines not compiled yet, compiled together when planning ends.
    compile: Vec<(String, &'static str)>,
    compile_index: HashMap<(String, &'static str), usize>,
    /// Where buffers come from: the device's pool, or a simulated one when
    /// planning only to predict memory (`dry`: no kernels, no side effects).
    pool: std::sync::Arc<std::sync::Mutex<BufferPool>>,
    dry: bool,
    /// Dispatches recorded so far (also counted in a dry run).
    dispatched: usize,
    /// What recomputing checkpointed values costs in this plan.
    recomputed: Recomputed,
    /// The parameter words of the next dispatch that are constants of
    /// nodes: (word, node). Recorded for replay.
    constants: Vec<(usize, NodeId)>,
    /// Writes the plan down for replay (see `replay.rs`), when asked.
    recorder: std::cell::RefCell<Option<Recorder>>,
    /// Autotune keys met for the first time in this plan: all their nodes
    /// get the first variant (timing comes at the next realize).
    first_sights: HashSet<String>,
}

/// The cost of a plan's recomputed values (see `autodiff::checkpoint`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Recomputed {
    pub kernels: usize,
    pub bytes: u64,
    pub flops: u64,
}

/// Bytes of `numel` f32 values; a count too large for u64 saturates, so the
/// size check reports it as too large instead of wrapping to a small size.
fn bytes_of(numel: usize) -> u64 {
    (numel.max(1) as u64).saturating_mul(4)
}

impl Scheduler<'_> {
    fn alloc(&self, shape: &Shape) -> Result<Storage> {
        let bytes = bytes_of(shape.numel());
        let limit = self.gpu.limits.max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(Error::TooLarge { bytes, limit });
        }
        let storage = allocate(&self.gpu.device, &self.pool, bytes);
        if let Some(r) = self.recorder.borrow_mut().as_mut() {
            r.alloc(&self.pool, &storage, bytes);
        }
        Ok(storage)
    }

    /// Records a dispatch; bit i of `written` marks buffer i as written.
    fn dispatch(
        &mut self,
        source: &str,
        entry: &'static str,
        params: Vec<u32>,
        buffers: Vec<(&Storage, usize)>,
        groups: [u32; 3],
        written: u64,
    ) {
        // This dispatch's constants, taken even if it turns out empty.
        let constants = std::mem::take(&mut self.constants);
        if groups.contains(&0) {
            return;
        }
        self.dispatched += 1;
        if self.dry {
            return;
        }
        let info = self.label.as_mut().map(|(name, flops)| {
            let (mut read, mut wrote) = (0, 0);
            for (i, (_, numel)) in buffers.iter().enumerate() {
                if written >> i & 1 == 1 {
                    wrote += 4 * *numel as u64;
                } else {
                    read += 4 * *numel as u64;
                }
            }
            super::profile::KernelInfo {
                name: name.clone(),
                flops: std::mem::take(flops),
                read,
                written: wrote,
            }
        });
        let pipeline = self
            .gpu
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(source, entry);
        let pending = match pipeline {
            Some(_) => None,
            None => {
                let key = (source.to_string(), entry);
                let next = self.compile.len();
                Some(*self.compile_index.entry(key.clone()).or_insert_with(|| {
                    self.compile.push(key);
                    next
                }))
            }
        };
        let buffers: Vec<(&Storage, u64)> = buffers
            .into_iter()
            .map(|(s, numel)| (s, bytes_of(numel)))
            .collect();
        if let Some(r) = self.recorder.get_mut().as_mut() {
            r.dispatch(&self.pool, &buffers, &constants);
        }
        let buffers = buffers
            .into_iter()
            .map(|(s, bytes)| (s.buffer().clone(), bytes))
            .collect();
        self.plan.dispatches.push(Dispatch {
            pipeline,
            pending,
            params,
            buffers,
            groups,
            info,
        });
    }

    fn value(&self, node: &Node) -> Storage {
        self.values[&node.id].clone()
    }

    /// Encodes the kernel(s) computing `node` and returns its value.
    fn emit(&mut self, node: &Rc<Node>, fused: FusedEdge) -> Result<Storage> {
        let inputs: Vec<Rc<Node>> = node.inputs().clone();
        let shape = &node.shape;
        match &node.op {
            Op::Input(data) => {
                let out = self.alloc(shape)?;
                if !self.dry {
                    self.plan.uploads.push((out.buffer().clone(), data.clone()));
                }
                Ok(out)
            }
            Op::Indices(data) => {
                // The same bytes: uploads are byte copies.
                let out = self.alloc(shape)?;
                if !self.dry {
                    let bits: Rc<[f32]> = data.iter().map(|&i| f32::from_bits(i)).collect();
                    self.plan.uploads.push((out.buffer().clone(), bits));
                }
                Ok(out)
            }
            // A broadcast or reshaped constant whose consumers compute it
            // (`constant_chain`), needed as a buffer too: a fill kernel.
            Op::Expand | Op::Reshape if fused(node, &inputs[0]) => {
                self.elementwise(shape, elementwise_value(node, fused, None))
            }
            Op::Reshape | Op::Detach | Op::Checkpoint(_) => Ok(self.value(&inputs[0])),
            Op::Variable(_) => unreachable!("variables are always realized"),
            Op::Assign => {
                let (target, value) = (&inputs[0], &inputs[1]);
                // An update superseded within this realize (or recorded
                // before one already written) keeps its value in a buffer
                // of its own: program order (see `Tensor::assign`).
                let dst = if self.in_place.contains(&node.id) {
                    self.value(target)
                } else {
                    self.alloc(shape)?
                };
                if fused(node, value) {
                    // The update expression computed in place: dst[i] = value(i).
                    let v = elementwise_value(value, fused, Some(target.id));
                    self.elementwise_into(&dst, shape, v);
                } else {
                    let src = self.value(value);
                    let strides = shape.strides();
                    let window = Window {
                        dims: shape.dims(),
                        src_offset: 0,
                        src_strides: &strides,
                        dst_offset: 0,
                        dst_strides: &strides,
                    };
                    self.copy_window(&src, &dst, window);
                }
                Ok(dst)
            }
            Op::Fill(_) | Op::Unary(_) | Op::Binary(_) | Op::Where => {
                self.elementwise(shape, elementwise_value(node, fused, None))
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
                let in_strides = inputs[0].shape.strides();
                let window = Window {
                    dims: inputs[0].shape.dims(),
                    src_offset: 0,
                    src_strides: &in_strides,
                    dst_offset: offset,
                    dst_strides: &out_strides,
                };
                self.copy_window(&src, &out, window);
                Ok(out)
            }
            Op::Reduce { op, axes } => {
                let prologue = fused(node, &inputs[0]).then_some(fused);
                self.reduce(*op, &inputs[0], axes, shape, prologue)
            }
            Op::Family(f) => {
                let shapes: Vec<&Shape> = inputs.iter().map(|i| &i.shape).collect();
                let target = Target {
                    family: self.gpu.matmul,
                    subgroup: self.gpu.subgroup,
                };
                let mut variants = f.lower_variants(shape, &shapes, target);
                let lowering = if variants.len() == 1 {
                    variants.remove(0)
                } else {
                    let key = format!("{} {shape:?} <- {shapes:?}", f.name());
                    let known = self
                        .gpu
                        .tuning
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&key);
                    let forced = self
                        .gpu
                        .forced_variant
                        .load(std::sync::atomic::Ordering::Relaxed);
                    let choice = match known {
                        _ if forced != usize::MAX => forced.min(variants.len() - 1),
                        // Deterministic mode: the family's untimed choice
                        // (its tuning holds no file's choices either).
                        _ if self.gpu.deterministic => f
                            .untimed_variant(shape, &shapes, target)
                            .min(variants.len() - 1),
                        Some(i) if i < variants.len() => i,
                        // A prediction assumes the first variant until one
                        // is timed; under a memory budget nothing is timed,
                        // so the realize runs what was predicted.
                        _ if self.dry
                            || self.gpu.budget.load(std::sync::atomic::Ordering::Relaxed) != 0 =>
                        {
                            0
                        }
                        // The family's first guess the first time: a
                        // process that computes one gradient compiles that
                        // variant only, not all of them (cold start).
                        // (Every product of those shapes in this realize.)
                        _ if self.first_sights.contains(&key) => 0,
                        _ if self
                            .gpu
                            .tuning
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .first_sight(&key) =>
                        {
                            self.first_sights.insert(key);
                            0
                        }
                        _ => {
                            let i = fastest(self.gpu, &variants, shape, &shapes)?;
                            let mut tuning =
                                self.gpu.tuning.lock().unwrap_or_else(|e| e.into_inner());
                            tuning.set(key, i);
                            i
                        }
                    };
                    variants.swap_remove(choice)
                };
                let out = self.alloc(shape)?;
                let temps = lowering
                    .temps
                    .iter()
                    .map(|&n| self.alloc(&Shape::new(&[n])))
                    .collect::<Result<Vec<Storage>>>()?;
                let srcs: Vec<Storage> = inputs.iter().map(|i| self.value(i)).collect();
                let status = self.status_words(&lowering, || f.status_meaning(shape, &shapes))?;
                for call in lowering.kernels {
                    self.run(call, &|b| match b {
                        Buf::Input(i) => (&srcs[i], inputs[i].shape.numel()),
                        Buf::Output => (&out, shape.numel()),
                        Buf::Temp(t) => (&temps[t], lowering.temps[t]),
                        Buf::Status => (status.as_ref().expect("allocated when bound"), 2),
                    });
                }
                // The scratch buffers go back to the pool: kernels after
                // this one in the submit run after it (in-order execution).
                Ok(out)
            }
        }
    }

    /// Zeroed status words for `lowering` if a kernel of it binds them,
    /// kept by the plan (with their meaning) until the realize reads them.
    fn status_words(
        &mut self,
        lowering: &crate::kernel::Lowering,
        meaning: impl FnOnce() -> String,
    ) -> Result<Option<Storage>> {
        if !lowering
            .kernels
            .iter()
            .any(|k| k.bindings.contains(&Buf::Status))
        {
            return Ok(None);
        }
        // A fill of f32 zeros is u32 zeros.
        let status = self.zeros(&Shape::new(&[2]))?;
        let meaning = meaning();
        if let Some(r) = self.recorder.borrow_mut().as_mut() {
            r.check(&status, &meaning);
        }
        self.plan.checks.push((status.clone(), meaning));
        Ok(Some(status))
    }

    /// A strided copy of `input` into a fresh contiguous tensor of `shape`.
    fn copy(
        &mut self,
        input: &Node,
        shape: &Shape,
        dims: &[usize],
        src_offset: usize,
        src_strides: &[usize],
        dst_offset: usize,
    ) -> Result<Storage> {
        let out = self.alloc(shape)?;
        let src = self.value(input);
        let window = Window {
            dims,
            src_offset,
            src_strides,
            dst_offset,
            dst_strides: &shape.strides(),
        };
        self.copy_window(&src, &out, window);
        Ok(out)
    }

    /// Copies the window `w` of `src` into `dst`: the one kernel behind every copy.
    fn copy_window(&mut self, src: &Storage, dst: &Storage, w: Window) {
        let call = strided_copy(Buf::Input(0), Buf::Output, &w);
        let (ls, ld) = (src.size() as usize / 4, dst.size() as usize / 4);
        self.run(call, &|b| match b {
            Buf::Output => (dst, ld),
            _ => (src, ls),
        });
    }

    /// Records one kernel of the vocabulary, its buffers resolved by `buffer`
    /// (storage and element count of each role).
    fn run<'s>(&mut self, call: KernelCall, buffer: &dyn Fn(Buf) -> (&'s Storage, usize)) {
        // A longer loop would stop early on lavapipe, silently: a family
        // that lowered one is wrong, not the caller.
        assert!(
            call.loop_trips <= crate::kernel::MAX_LOOP_TRIPS,
            "webgrad: kernel {} would run {} loop iterations per invocation (at most {}): its family must split the work",
            call.entry,
            call.loop_trips,
            crate::kernel::MAX_LOOP_TRIPS
        );
        let buffers = call.bindings.iter().map(|&b| buffer(b)).collect();
        let written = call
            .bindings
            .iter()
            .enumerate()
            .filter(|(_, b)| !matches!(b, Buf::Input(_)))
            .fold(0u64, |m, (i, _)| m | 1 << i);
        self.dispatch(
            &call.source,
            call.entry,
            call.params,
            buffers,
            call.groups,
            written,
        );
    }

    fn zeros(&mut self, shape: &Shape) -> Result<Storage> {
        let fill = Node::new(
            Op::Fill(0.0),
            Vec::new(),
            shape.clone(),
            crate::Device::reference_only(),
        );
        self.elementwise(shape, elementwise_value(&fill, &|_, _| false, None))
    }

    /// An elementwise kernel storing `value(i)` for every element of `shape`.
    fn elementwise(&mut self, shape: &Shape, value: ValueFn) -> Result<Storage> {
        let out = self.alloc(shape)?;
        self.elementwise_into(&out, shape, value);
        Ok(out)
    }

    fn elementwise_into(&mut self, out: &Storage, shape: &Shape, value: ValueFn) {
        let n = shape.numel();
        let srcs: Vec<Storage> = value.inputs.iter().map(|i| self.value(i)).collect();
        let mut buffers = vec![(out, n)];
        buffers.extend(
            srcs.iter()
                .zip(&value.inputs)
                .map(|(s, i)| (s, i.shape.numel())),
        );
        // One invocation per element, or per four (`value4`).
        let invocations = if value.vec4 { n / 4 } else { n };
        let mut params = vec![invocations as u32];
        params.extend(&value.params);
        self.constants = constant_words(&value, ELEMENTWISE_HEAD);
        self.dispatch(
            &elementwise_source(&value),
            "elementwise",
            params,
            buffers,
            grid_1d(invocations as u64),
            1,
        );
    }

    /// Reduction over `axes`: view the input as rows (kept axes) × reduced
    /// elements with one stride each (copying to that layout first if the
    /// axes do not collapse), then fold in passes of a fixed tree. The first
    /// pass may compute its input on the fly (`prologue`: the input's
    /// fused chain). A pass whose rows are contiguous runs of a multiple of
    /// 4 reads four elements at a time where its value function allows
    /// (`value_fn_vec4`).
    fn reduce(
        &mut self,
        op: crate::ops::reduce::ReduceOp,
        input: &Rc<Node>,
        axes: &[usize],
        shape: &Shape,
        prologue: Option<FusedEdge>,
    ) -> Result<Storage> {
        let layout = reduce_layout(&input.shape, axes);
        let rows = layout.rows;
        // What a pass folds: the input's fused chain or a buffer's elements.
        let (mut source, mut k_left, mut so, mut sr) = match (layout.so, layout.sr, prologue) {
            (Some(so), Some(sr), Some(fused)) => ((input.clone(), Some(fused)), layout.k, so, sr),
            (Some(so), Some(sr), None) => ((input.clone(), None), layout.k, so, sr),
            _ => {
                // Gather to [kept..., reduced...] contiguous.
                let order: Vec<(usize, usize)> =
                    layout.kept.iter().chain(&layout.reduced).copied().collect();
                let gdims: Vec<usize> = order.iter().map(|o| o.0).collect();
                let gshape = Shape::new(&gdims);
                let gstrides: Vec<usize> = order.iter().map(|o| o.1).collect();
                let gathered = self.copy(input, &gshape, &gdims, 0, &gstrides, 0)?;
                let scratch = Node::new(
                    Op::Fill(0.0),
                    Vec::new(),
                    gshape,
                    crate::Device::reference_only(),
                );
                self.values.insert(scratch.id, gathered);
                ((scratch, None), layout.k, layout.k, 1)
            }
        };
        loop {
            let contiguous = sr == 1
                && rows.saturating_mul(k_left) >= VEC4_MIN_ELEMENTS
                && k_left % 4 == 0
                && (rows == 1 || so % 4 == 0);
            let value = match (&source, contiguous) {
                ((root, Some(fused)), true) => value_fn_vec4(root, *fused, REDUCE_HEAD, None)
                    .unwrap_or_else(|| value_fn(root, *fused, REDUCE_HEAD)),
                ((root, Some(fused)), false) => value_fn(root, *fused, REDUCE_HEAD),
                ((node, None), true) => load_fn_vec4(node),
                ((node, None), false) => load_fn(node),
            };
            // In units of what one `value` call returns.
            let (k, stride) = if value.vec4 {
                (k_left / 4, so / 4)
            } else {
                (k_left, so)
            };
            let parts = reduce_parts(rows, k);
            let out = self.alloc(&Shape::new(&[rows * parts]))?;
            let srcs: Vec<Storage> = value.inputs.iter().map(|i| self.value(i)).collect();
            let mut buffers = vec![(&out, rows * parts)];
            buffers.extend(srcs.iter().map(|s| (s, s.size() as usize / 4)));
            let mut params = vec![
                rows as u32,
                k as u32,
                stride as u32,
                sr as u32,
                parts as u32,
            ];
            params.extend(&value.params);
            self.constants = constant_words(&value, REDUCE_HEAD);
            let kernel = reduce_source(op, &value);
            self.dispatch(
                &kernel,
                "reduce",
                params,
                buffers,
                grid_1d((rows * parts) as u64),
                1,
            );
            // Scratch values (a gathered copy, partial sums) are done with.
            if value.inputs.len() == 1 && value.inputs[0].device.gpu.is_none() {
                self.values.remove(&value.inputs[0].id);
            }
            if parts == 1 {
                debug_assert_eq!(rows, shape.numel());
                return Ok(out);
            }
            // The partial results become the next pass's input.
            let partials = Node::new(
                Op::Fill(0.0),
                Vec::new(),
                Shape::new(&[rows * parts]),
                crate::Device::reference_only(),
            );
            self.values.insert(partials.id, out);
            source = (partials, None);
            k_left = parts;
            so = parts;
            sr = 1;
        }
    }
}

/// Which parameter words of a kernel whose value function's words start
/// at `base` are constants of nodes.
fn constant_words(value: &ValueFn, base: usize) -> Vec<(usize, NodeId)> {
    value
        .constants
        .iter()
        .enumerate()
        .map(|(j, &id)| (base + j, id))
        .collect()
}

/// How a reduction reads its input: rows of kept axes × reduced elements.
pub(crate) struct ReduceLayout {
    pub rows: usize,
    pub k: usize,
    /// (size, stride) of the kept and reduced axes of size > 1.
    pub kept: Vec<(usize, usize)>,
    pub reduced: Vec<(usize, usize)>,
    /// Row stride and element stride, if each group collapses to one axis.
    pub so: Option<usize>,
    pub sr: Option<usize>,
}

pub(crate) fn reduce_layout(shape: &Shape, axes: &[usize]) -> ReduceLayout {
    let dims = shape.dims();
    let strides = shape.strides();
    let group = |reduced: bool| -> Vec<(usize, usize)> {
        (0..dims.len())
            .filter(|d| axes.contains(d) == reduced && dims[*d] != 1)
            .map(|d| (dims[d], strides[d]))
            .collect()
    };
    let (kept, reduced) = (group(false), group(true));
    ReduceLayout {
        rows: kept.iter().map(|k| k.0).product(),
        k: reduced.iter().map(|k| k.0).product(),
        so: collapse(&kept),
        sr: collapse(&reduced),
        kept,
        reduced,
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

/// Largest tree a node with several consumers may have to be recomputed in
/// each of them instead of being written to memory once.
const RECOMPUTE_LIMIT: usize = 8;

/// Plans every kernel needed to give `targets` values.
pub(crate) fn plan(gpu: &Gpu, targets: &[Rc<Node>]) -> Result<Plan> {
    plan_in(gpu, targets, None)
}

/// The peak of live bytes (every buffer in use, of the whole device) that
/// realizing `targets` will reach: the realize planned for real — same
/// order, fusion, lowering and buffer reuse — in a simulated pool that
/// counts bytes without creating buffers, nothing submitted and no node
/// touched. Equals the pool's measured peak of that realize
/// (`MemoryStats::peak_live_bytes` after `Device::reset_peak_memory`),
/// except the one-time scratch buffers of autotune's timing runs.
// The pool type is shared with real devices, whose handles are not Send on wasm32.
#[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
pub(crate) fn predict_peak(gpu: &Gpu, targets: &[Rc<Node>]) -> Result<u64> {
    Ok(predict(gpu, targets)?.0)
}

/// The peak (see `predict_peak`) and what recomputation costs in the plan.
#[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
pub(crate) fn predict(gpu: &Gpu, targets: &[Rc<Node>]) -> Result<(u64, Recomputed)> {
    let simulated = std::sync::Arc::new(std::sync::Mutex::new(BufferPool::simulated()));
    let recomputed = plan_in(gpu, targets, Some(simulated.clone()))?.recomputed;
    let live = gpu
        .pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .stats()
        .live_bytes;
    let extra = simulated
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .stats()
        .peak_live_bytes;
    Ok((live + extra, recomputed))
}

fn plan_in(
    gpu: &Gpu,
    targets: &[Rc<Node>],
    simulated: Option<std::sync::Arc<std::sync::Mutex<BufferPool>>>,
) -> Result<Plan> {
    // The pending order (a post-order from the targets) is the emission
    // order's default. The reverse pass records the last layer's adjoints
    // first, so the targets go in the order of the adjoints they are made
    // of (`adjoint_key`): in a training step the last layer's update comes
    // right after its gradient, then the layer before's, and each gradient
    // is freed as soon as its update ran; in a realize of gradients alone
    // each is computed as soon as its layer's adjoint is, and the values it
    // reads are freed then, instead of all being held until the end.
    let mut roots: Vec<Rc<Node>> = targets.to_vec();
    roots.sort_by_key(|n| (adjoint_key(n), std::cmp::Reverse(n.id)));
    let order = topo_order(&roots, |n| n.is_realized());
    let target_ids: HashSet<NodeId> = targets.iter().map(|t| t.id).collect();
    let pending: Vec<&Rc<Node>> = order.iter().filter(|n| !n.is_realized()).collect();
    let keep = |n: &Node| {
        target_ids.contains(&n.id)
            || n.handles.get() > 0
            || matches!(n.op, Op::Input(_) | Op::Indices(_) | Op::Assign)
    };
    // A broadcast (or reshape) of a constant that nobody else reads as a
    // buffer, such as a reverse pass's seed: its edges down to the
    // constant. They are fused: a kernel fusing the broadcast computes the
    // constant, and a broadcast read as a buffer (by a matmul: the seed of
    // a product's adjoints) is one fill kernel of its shape, not a fill and
    // a broadcasting copy; the constant gets no kernel of its own.
    let constant_chain = |n: &Node| -> Option<Vec<(NodeId, NodeId)>> {
        if !matches!(n.op, Op::Expand | Op::Reshape) || n.is_realized() {
            return None;
        }
        let mut edges = Vec::new();
        let (mut id, mut c) = (n.id, n.inputs()[0].clone());
        loop {
            edges.push((id, c.id));
            if matches!(c.op, Op::Fill(_)) {
                return (!c.is_realized() && !keep(&c)).then_some(edges);
            }
            if !matches!(c.op, Op::Expand | Op::Reshape) || c.is_realized() || keep(&c) {
                return None;
            }
            let next = c.inputs()[0].clone();
            (id, c) = (c.id, next);
        }
    };
    let constant_chains: HashMap<NodeId, Vec<(NodeId, NodeId)>> = pending
        .iter()
        .filter(|n| matches!(n.op, Op::Expand))
        .filter_map(|n| Some((n.id, constant_chain(n)?)))
        .collect();
    let constant_broadcast = |n: &Node| constant_chains.contains_key(&n.id);
    check_stale(&order)?;
    // A value computed by a realize whose check failed is not a value.
    if let Some(e) = order.iter().find_map(|n| n.failed.borrow().clone()) {
        return Err(e);
    }
    let in_place = in_place_updates(&pending);
    let overwritten_by = overwritten_buffers(&order, &in_place);
    let profiling = gpu
        .profile
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some();

    // A structure planned twice before is replayed; one planned once is
    // recorded this time (see `replay.rs`). Predictions always plan.
    let mut recording: Option<Vec<u64>> = None;
    let mut recorder = None;
    if simulated.is_none() && gpu.plan_replay.load(std::sync::atomic::Ordering::Relaxed) {
        let mut cache = gpu.replay.lock().unwrap_or_else(|e| e.into_inner());
        let signature = super::replay::signature(
            &order,
            targets,
            &keep,
            &in_place,
            &overwritten_by,
            &mut cache.families,
        );
        match cache.lookup(&signature.words) {
            Lookup::Replay(program) => {
                drop(cache);
                let plan = super::replay::replay(gpu, &program, &order, profiling);
                forget_graphs(&pending, &in_place);
                return Ok(plan);
            }
            Lookup::Record => {
                recorder = Some(Recorder::new(signature.position, &order, &gpu.pool));
                recording = Some(signature.words);
            }
            Lookup::Plan => {}
        }
    }
    // Stops the pool's journal however planning ends.
    struct StopJournal<'p>(Option<&'p std::sync::Mutex<BufferPool>>);
    impl Drop for StopJournal<'_> {
        fn drop(&mut self) {
            if let Some(pool) = self.0 {
                Recorder::stop(pool);
            }
        }
    }
    let _journal = StopJournal(recorder.as_ref().map(|_| &*gpu.pool));

    // Consumers of each node among the pending ones.
    let mut consumers: HashMap<NodeId, Vec<&Rc<Node>>> = HashMap::default();
    for node in &pending {
        for input in node.inputs().iter() {
            consumers.entry(input.id).or_default().push(node);
        }
    }
    let fusing_consumer = |c: &Node| {
        c.op.is_elementwise()
            || matches!(c.op, Op::Reduce { .. }) && {
                let input = &c.inputs()[0];
                let layout = reduce_layout(
                    &input.shape,
                    match &c.op {
                        Op::Reduce { axes, .. } => axes,
                        _ => unreachable!(),
                    },
                );
                layout.so.is_some() && layout.sr.is_some()
            }
    };

    // Whether every consumer of a node could compute it itself, decided once
    // per node (asking it per consumer would make planning quadratic in
    // fan-out).
    let all_fusing: HashMap<NodeId, bool> = consumers
        .iter()
        .map(|(&id, users)| (id, users.iter().all(|u| fusing_consumer(u))))
        .collect();

    // Fusion decisions, inputs first. For each node that could root a fused
    // tree we track the buffers its kernel would bind and the tree's size;
    // an edge (consumer → input) is fused when the input can be computed
    // inside the consumer's kernel within the budget.
    let mut fused_edges: HashSet<(NodeId, NodeId)> = HashSet::default();
    let mut leaves: HashMap<NodeId, Vec<NodeId>> = HashMap::default();
    let mut sizes: HashMap<NodeId, usize> = HashMap::default();
    for node in &pending {
        let is_reduce = matches!(node.op, Op::Reduce { .. });
        let is_assign = matches!(node.op, Op::Assign);
        if !(node.op.is_elementwise() || is_assign || is_reduce && fusing_consumer(node)) {
            continue;
        }
        if is_assign && !in_place.contains(&node.id) {
            // A copy of the value into a buffer of its own.
            leaves.insert(node.id, vec![node.inputs()[1].id]);
            sizes.insert(node.id, 0);
            continue;
        }
        let inputs: Vec<Rc<Node>> = node.inputs().clone();
        let users_of = |i: &Rc<Node>| consumers.get(&i.id).map_or(&[][..], |v| v.as_slice());
        let is_candidate = |input: &Rc<Node>| {
            if input.is_realized() || keep(input) {
                return false;
            }
            // A checkpoint's recomputed value is read from memory by the
            // adjoints, as the forward value it replaces would be: computed
            // inside an adjoint's kernel instead, the compiler may round it
            // differently (fused multiply-adds) and the gradient would not
            // be bit-identical to the one without checkpoints.
            if input.recompute.get() && !node.recompute.get() {
                return false;
            }
            if is_assign {
                // The update expression, computed in the variable's own
                // buffer. It may read its own variable (each element before
                // it is written) but no buffer another update overwrites.
                return matches!(
                    input.op,
                    Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Fill(_)
                ) && users_of(input).len() == 1
                    && input.shape == node.shape
                    && leaves.get(&input.id).is_none_or(|l| {
                        l.iter()
                            .all(|id| overwritten_by.get(id).is_none_or(|a| *a == node.id))
                    });
            }
            match input.op {
                // Constants cost nothing to compute anywhere.
                Op::Fill(_) => true,
                _ if constant_broadcast(input) => true,
                // A broadcast is a load with stride-0 axes.
                Op::Expand => !is_reduce,
                Op::Unary(_) | Op::Binary(_) | Op::Where => {
                    (is_reduce || input.shape == node.shape)
                        && (users_of(input).len() == 1
                            || (sizes[&input.id] <= RECOMPUTE_LIMIT && all_fusing[&input.id]))
                }
                _ => false,
            }
        };
        let candidate_leaves = |input: &Rc<Node>| -> Vec<NodeId> {
            match input.op {
                Op::Fill(_) => Vec::new(),
                _ if constant_broadcast(input) => Vec::new(),
                Op::Expand => vec![input.inputs()[0].id],
                _ => leaves[&input.id].clone(),
            }
        };
        let candidate_size = |input: &Rc<Node>| {
            if input.op.is_elementwise() {
                sizes[&input.id]
            } else {
                0
            }
        };
        // Buffer inputs that cannot be fused are bound whatever else is decided.
        let mut my_leaves: Vec<NodeId> = Vec::new();
        for input in inputs.iter().filter(|i| !is_candidate(i)) {
            if !my_leaves.contains(&input.id) {
                my_leaves.push(input.id);
            }
        }
        let mut size = usize::from(!(is_reduce || is_assign));
        let candidates: Vec<&Rc<Node>> = inputs.iter().filter(|i| is_candidate(i)).collect();
        for (j, input) in candidates.iter().enumerate() {
            let mut merged = my_leaves.clone();
            for l in candidate_leaves(input) {
                if !merged.contains(&l) {
                    merged.push(l);
                }
            }
            // Leave a binding free for each later candidate, in case it is rejected.
            let later = candidates.len() - j - 1;
            if merged.len() + later <= MAX_FUSED_INPUTS
                && size + candidate_size(input) <= MAX_FUSED_NODES
            {
                fused_edges.insert((node.id, input.id));
                my_leaves = merged;
                size += candidate_size(input);
            } else if !my_leaves.contains(&input.id) {
                my_leaves.push(input.id);
            }
        }
        leaves.insert(node.id, my_leaves);
        sizes.insert(node.id, size);
    }
    fused_edges.extend(constant_chains.values().flatten().copied());
    let fused = |c: &Node, i: &Node| fused_edges.contains(&(c.id, i.id));

    // A node gets a kernel (and a buffer) unless every consumer computes it itself.
    let materialized = |n: &Node| {
        keep(n)
            || consumers
                .get(&n.id)
                .is_none_or(|users| users.iter().any(|u| !fused(u, n)))
    };

    // The buffers each kernel reads, for counting the uses left of each value.
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
    let mut remaining: HashMap<NodeId, usize> = HashMap::default();
    for node in pending.iter().filter(|n| materialized(n)) {
        for id in kernel_inputs(node) {
            *remaining.entry(id).or_default() += 1;
        }
    }

    if simulated.is_none() {
        gpu.plans.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut s = Scheduler::new(gpu);
    s.in_place = in_place;
    *s.recorder.get_mut() = recorder;
    if let Some(pool) = simulated {
        s.pool = pool;
        s.dry = true;
    }
    // A dry run keeps what a real one would store on nodes alive here.
    let mut kept: Vec<Storage> = Vec::new();
    for node in order.iter().filter(|n| n.is_realized()) {
        s.values
            .insert(node.id, node.storage.borrow().clone().unwrap());
    }
    // Uploads happen (queue.write_buffer) before any kernel of the submit
    // runs, so their buffers must be taken from the pool before any kernel
    // releases one: otherwise an upload could land in a buffer that an
    // earlier kernel of this submit still uses.
    let mut uploaded: HashMap<NodeId, Storage> = HashMap::default();
    for node in pending
        .iter()
        .filter(|n| matches!(n.op, Op::Input(_) | Op::Indices(_)))
    {
        let value = s.emit(node, &|_, _| false)?;
        if let Some(r) = s.recorder.get_mut().as_mut() {
            r.upload(node.id, &value);
        }
        uploaded.insert(node.id, value);
    }
    // Emission order: inputs before users; every kernel reading a buffer
    // that an update overwrites before that update (anti-dependences);
    // otherwise the pending order, so an update runs as soon as its value is
    // ready and the gradient it consumed is freed early.
    let kernels: Vec<&Rc<Node>> = pending
        .iter()
        .copied()
        .filter(|n| materialized(n))
        .collect();
    let position: HashMap<NodeId, usize> =
        kernels.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); kernels.len()];
    let mut waiting_on = vec![0usize; kernels.len()];
    for (i, node) in kernels.iter().enumerate() {
        for id in kernel_inputs(node) {
            if let Some(&j) = position.get(&id) {
                users[j].push(i);
                waiting_on[i] += 1;
            }
            if let Some(&update) = overwritten_by.get(&id) {
                if update != node.id {
                    let j = position[&update];
                    users[i].push(j);
                    waiting_on[j] += 1;
                }
            }
        }
    }
    // Priorities follow the pending order, except that values a checkpoint
    // recomputes run just before their first consumer (as late as
    // possible): run as early as their inputs allow, they would be held
    // through the whole backward pass, which is what checkpointing avoids.
    let mut priority: Vec<usize> = (0..kernels.len()).map(|i| 2 * i + 1).collect();
    for i in (0..kernels.len()).rev() {
        if kernels[i].recompute.get() {
            if let Some(first_use) = users[i].iter().map(|&u| priority[u]).min() {
                priority[i] = first_use.saturating_sub(1);
            }
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<(usize, usize)>> = (0..kernels
        .len())
        .filter(|&i| waiting_on[i] == 0)
        .map(|i| std::cmp::Reverse((priority[i], i)))
        .collect();
    let mut emission_order: Vec<&Rc<Node>> = Vec::with_capacity(kernels.len());
    while let Some(std::cmp::Reverse((_, i))) = ready.pop() {
        emission_order.push(kernels[i]);
        for &u in &users[i] {
            waiting_on[u] -= 1;
            if waiting_on[u] == 0 {
                ready.push(std::cmp::Reverse((priority[u], u)));
            }
        }
    }
    if emission_order.len() < kernels.len() {
        return Err(Error::Validation(
            "the variable updates of this realize read each other's old values in a cycle \
             that webgrad cannot order (a bug: please report it)"
                .into(),
        ));
    }
    // A recorded plan describes its kernels, for profiles of its replays.
    let describing = profiling || recording.is_some();
    for node in emission_order {
        if describing {
            s.label = Some(describe(node, &fused));
        }
        let before = s.dispatched;
        let value = match uploaded.remove(&node.id) {
            Some(v) => v,
            None => s.emit(node, &fused)?,
        };
        // Only a prediction reports recomputation: a real step skips the walk.
        if s.dry && node.recompute.get() {
            s.recomputed.kernels += s.dispatched - before;
            s.recomputed.bytes += bytes_of(node.shape.numel());
            s.recomputed.flops += describe(node, &fused).1;
        }
        s.values.insert(node.id, value);
        for id in kernel_inputs(node) {
            let left = remaining.get_mut(&id).unwrap();
            *left -= 1;
            if *left == 0 && !target_ids.contains(&id) {
                s.values.remove(&id);
            }
        }
        if keep(node) {
            if s.dry {
                kept.push(s.values[&node.id].clone());
            } else {
                let value = s.values[&node.id].clone();
                if let Some(r) = s.recorder.get_mut().as_mut() {
                    r.keep(&s.pool, node.id, &value);
                }
                *node.storage.borrow_mut() = Some(value);
            }
        }
    }
    // Only a plan with status words needs to know (no list per step else).
    if !s.dry && !s.plan.checks.is_empty() {
        s.plan.kept = pending
            .iter()
            .filter(|n| n.is_realized())
            .map(|n| (*n).clone())
            .collect();
    }
    s.plan.recomputed = s.recomputed;
    if s.dry {
        drop(kept);
        return Ok(s.plan);
    }
    s.plan.targets = targets.iter().map(|t| s.values[&t.id].clone()).collect();
    s.compile_pipelines();
    if let (Some(signature), Some(r)) = (recording, s.recorder.get_mut().take()) {
        if let Some(program) = r.finish(&s.pool, &s.plan) {
            let mut cache = gpu.replay.lock().unwrap_or_else(|e| e.into_inner());
            cache.store(signature, program);
        }
    }
    forget_graphs(&pending, &s.in_place);
    Ok(s.plan)
}

/// Realized detached values and updates forget the graph that produced
/// them (an update keeps its variable, to which its gradient goes).
/// Where a target's computation sits in the reverse pass: the newest
/// adjoint node it is made of, found above the adjoints (an optimizer's
/// update arithmetic) within a few nodes; the target's own id if it is an
/// adjoint or none is found that near (a forward value).
fn adjoint_key(target: &Rc<Node>) -> NodeId {
    const LOOK: usize = 64;
    if target.adjoint {
        return target.id;
    }
    let mut newest = None;
    let mut stack = vec![target.clone()];
    let mut visited = 0;
    while let Some(n) = stack.pop() {
        visited += 1;
        if visited > LOOK {
            break;
        }
        for i in n.inputs().iter() {
            if i.adjoint {
                newest = newest.max(Some(i.id));
            } else if !i.is_realized() {
                stack.push(i.clone());
            }
        }
    }
    newest.unwrap_or(target.id)
}

fn forget_graphs(pending: &[&Rc<Node>], in_place: &HashSet<NodeId>) {
    for node in pending {
        if !node.is_realized() {
            continue;
        }
        match node.op {
            Op::Detach => node.inputs.borrow_mut().clear(),
            Op::Assign => {
                if in_place.contains(&node.id) {
                    variable_state(&node.inputs()[0]).written.set(node.id);
                }
                node.inputs.borrow_mut().truncate(1);
            }
            _ => {}
        }
    }
}

/// A kernel's name for the profiler — its op with the ops fused into it
/// and the output's shape, `add(mul·exp) [128, 256]` — and its FLOPs
/// (one per element and elementwise op; a family counts its own).
fn describe(node: &Rc<Node>, fused: FusedEdge) -> (String, u64) {
    let mut names: Vec<String> = Vec::new();
    let mut flops = 0u64;
    let mut stack = vec![node.clone()];
    while let Some(n) = stack.pop() {
        match &n.op {
            Op::Family(f) => {
                let shapes: Vec<Shape> = n.inputs().iter().map(|i| i.shape.clone()).collect();
                let refs: Vec<&Shape> = shapes.iter().collect();
                flops += f.flops(&n.shape, &refs);
            }
            Op::Reduce { .. } => flops += n.inputs()[0].shape.numel() as u64,
            op if op.is_elementwise() && !matches!(op, Op::Fill(_)) => {
                flops += n.shape.numel() as u64
            }
            _ => {}
        }
        if !names.is_empty() && matches!(n.op, Op::Fill(_) | Op::Expand) {
            // Constants and broadcasts are loads, not work.
        } else {
            names.push(n.op.name());
        }
        for input in n.inputs().iter() {
            if fused(&n, input) {
                stack.push(input.clone());
            }
        }
    }
    let head = names.remove(0);
    const SHOWN: usize = 6;
    let mut name = head;
    if !names.is_empty() {
        let mut inner: Vec<String> = names.iter().take(SHOWN).cloned().collect();
        if names.len() > SHOWN {
            inner.push(format!("+{}", names.len() - SHOWN));
        }
        name = format!("{name}({})", inner.join("·"));
    }
    (format!("{name} {:?}", node.shape), flops)
}

impl Scheduler<'_> {
    fn new(gpu: &Gpu) -> Scheduler<'_> {
        Scheduler {
            gpu,
            plan: Plan {
                recomputed: Recomputed::default(),
                timing: false,
                dispatches: Vec::new(),
                uploads: Vec::new(),
                targets: Vec::new(),
                checks: Vec::new(),
                kept: Vec::new(),
            },
            values: HashMap::default(),
            in_place: HashSet::default(),
            label: None,
            compile: Vec::new(),
            compile_index: HashMap::default(),
            pool: gpu.pool.clone(),
            dry: false,
            dispatched: 0,
            recomputed: Recomputed::default(),
            constants: Vec::new(),
            recorder: Default::default(),
            first_sights: HashSet::default(),
        }
    }

    /// Compiles the pipelines the plan's dispatches still lack, together.
    fn compile_pipelines(&mut self) {
        if self.compile.is_empty() {
            return;
        }
        let compiled = self
            .gpu
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .compile_all(&self.gpu.device, &self.compile);
        for d in &mut self.plan.dispatches {
            if let Some(i) = d.pending.take() {
                d.pipeline = Some(compiled[i].clone());
            }
        }
        self.compile.clear();
        self.compile_index.clear();
    }
}

/// The fastest of `variants` (lowerings of one node: output `out`, inputs
/// `inputs`), each run on scratch buffers in submits of its own and timed
/// by the wall clock: a warm-up each, then four rounds that run every
/// variant once, the best time of each kept (rounds interleave the
/// variants, so a machine whose speed drifts slows them alike). Scratch
/// buffers hold no value anything reads, and the plan being built has not
/// been submitted, so these submits disturb nothing. Natively only: a
/// browser cannot wait for the GPU here, so there the first variant is used.
fn fastest(
    gpu: &Gpu,
    variants: &[crate::kernel::Lowering],
    out: &Shape,
    inputs: &[&Shape],
) -> Result<usize> {
    #[cfg(target_arch = "wasm32")]
    {
        let _ = (gpu, variants, out, inputs);
        Ok(0)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        // One scheduler (scratch buffers and dispatches) per variant. The
        // scratch buffers come from a pool of their own: not the device's
        // memory (its statistics and peak), and freed when timing ends.
        let scratch = std::sync::Arc::new(std::sync::Mutex::new(BufferPool::default()));
        let mut runs = Vec::with_capacity(variants.len());
        for lowering in variants {
            let mut s = Scheduler::new(gpu);
            s.pool = scratch.clone();
            let srcs: Vec<Storage> = inputs.iter().map(|x| s.alloc(x)).collect::<Result<_>>()?;
            let output = s.alloc(out)?;
            let temps: Vec<Storage> = lowering
                .temps
                .iter()
                .map(|&n| s.alloc(&Shape::new(&[n])))
                .collect::<Result<_>>()?;
            // Scratch status words: timing reads no verdict.
            let status = s.alloc(&Shape::new(&[2]))?;
            for call in lowering.kernels.clone() {
                s.run(call, &|b| match b {
                    Buf::Input(i) => (&srcs[i], inputs[i].numel()),
                    Buf::Output => (&output, out.numel()),
                    Buf::Temp(t) => (&temps[t], lowering.temps[t]),
                    Buf::Status => (&status, 2),
                });
            }
            s.compile_pipelines();
            s.plan.timing = true;
            runs.push((s, srcs, output, temps));
        }
        let time = |s: &Scheduler| -> Result<f64> {
            let start = std::time::Instant::now();
            super::submit(gpu, &s.plan, &[], None);
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Validation(e.to_string()))?;
            Ok(start.elapsed().as_secs_f64())
        };
        for run in &runs {
            time(&run.0)?;
        }
        let mut best = vec![f64::INFINITY; runs.len()];
        for _ in 0..4 {
            for (b, run) in best.iter_mut().zip(&runs) {
                *b = b.min(time(&run.0)?);
            }
        }
        for (i, t) in best.iter().enumerate() {
            log::info!(
                "webgrad: autotune variant {i} of {out:?} <- {inputs:?}: {:.3} ms",
                t * 1e3
            );
        }
        let fastest = (0..best.len())
            .min_by(|&a, &b| best[a].total_cmp(&best[b]))
            .unwrap_or(0);
        Ok(fastest)
    }
}

fn variable_state(node: &Node) -> &VariableState {
    match &node.op {
        Op::Variable(state) => state,
        _ => unreachable!("an update's target is a variable"),
    }
}

/// The updates that write their variable's buffer: per variable, the one
/// recorded last among the pending ones, unless a later one was written
/// already. The others (superseded in program order) are copies of their
/// values into buffers of their own.
fn in_place_updates(pending: &[&Rc<Node>]) -> HashSet<NodeId> {
    let mut last: HashMap<NodeId, (NodeId, NodeId)> = HashMap::default();
    for node in pending.iter().filter(|n| matches!(n.op, Op::Assign)) {
        let var = &node.inputs()[0];
        let written = variable_state(var).written.get();
        let entry = last.entry(var.id).or_insert((node.id, written));
        entry.0 = entry.0.max(node.id);
    }
    last.into_values()
        .filter(|&(update, written)| update > written)
        .map(|(update, _)| update)
        .collect()
}

/// For each node in `order` whose value is (a view of) the buffer of a
/// variable that an in-place update of this realize overwrites: that
/// update. Kernels reading such a value run before the update.
fn overwritten_buffers(order: &[Rc<Node>], in_place: &HashSet<NodeId>) -> HashMap<NodeId, NodeId> {
    let mut by_buffer: HashMap<*const super::pool::PooledBuffer, NodeId> = HashMap::default();
    for node in order.iter().filter(|n| in_place.contains(&n.id)) {
        if let Some(buffer) = node.inputs()[0].storage.borrow().as_ref() {
            by_buffer.insert(Rc::as_ptr(buffer), node.id);
        }
    }
    let mut overwritten = HashMap::default();
    if by_buffer.is_empty() {
        return overwritten;
    }
    for node in order {
        let update = if let Some(storage) = node.storage.borrow().as_ref() {
            by_buffer.get(&Rc::as_ptr(storage)).copied()
        } else if matches!(node.op, Op::Reshape | Op::Detach | Op::Checkpoint(_)) {
            overwritten.get(&node.inputs()[0].id).copied()
        } else {
            None
        };
        if let Some(update) = update {
            overwritten.insert(node.id, update);
        }
    }
    overwritten
}

/// Program order cannot be kept for a value read from a variable whose
/// buffer has since been overwritten: that is an error, not a silent read
/// of the newer value.
fn check_stale(order: &[Rc<Node>]) -> Result<()> {
    for node in order {
        let inputs = node.inputs();
        if node.is_realized() {
            // A realized in-place update shares its variable's buffer.
            if matches!(node.op, Op::Assign) {
                let var = &inputs[0];
                let written = variable_state(var).written.get();
                let shares = match (&*node.storage.borrow(), &*var.storage.borrow()) {
                    (Some(a), Some(b)) => Rc::ptr_eq(a, b),
                    _ => false,
                };
                if shares && written != node.id {
                    return Err(Error::StaleRead(format!(
                        "update #{} of a variable of shape {:?} was overwritten by update #{written}; \
                         read an update's value before the next one of its variable is realized",
                        node.id, node.shape
                    )));
                }
            }
            continue;
        }
        for (k, input) in inputs.iter().enumerate() {
            if matches!(node.op, Op::Assign) && k == 0 {
                continue;
            }
            if let Op::Variable(state) = &input.op {
                let written = state.written.get();
                if node.id < written {
                    return Err(Error::StaleRead(format!(
                        "{} (node #{}) reads a variable of shape {:?} as it was before update \
                         #{written}, which has been realized since; realize an op together with \
                         (or before) the updates recorded after it",
                        node.op.name(),
                        node.id,
                        input.shape
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The elementwise kernel's value function for the tree rooted at `root`:
/// four elements per invocation where every load allows it.
fn elementwise_value(root: &Rc<Node>, fused: FusedEdge, in_place: Option<NodeId>) -> ValueFn {
    value_fn_vec4(root, fused, ELEMENTWISE_HEAD, in_place)
        .unwrap_or_else(|| value_fn_in_place(root, fused, ELEMENTWISE_HEAD, in_place))
}
