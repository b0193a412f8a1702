//! The encoder: buffers from the pool, dispatches recorded into the
//! plan, new pipelines compiled together at the end.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use super::{Dispatch, Plan, Recomputed, Scheduler};
use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::exec::codegen::{FusedEdge, ValueFn, value_fn_in_place, value_fn_vec4};
use crate::exec::kernels::{ELEMENTWISE_HEAD, elementwise_source};
use crate::exec::pool::{Storage, allocate};
use crate::graph::{Node, NodeId, Op};
use crate::kernel::{Buf, KernelCall, Window, grid_1d, strided_copy};
use crate::shape::Shape;

/// Bytes of `numel` f32 values; a count too large for u64 saturates, so the
/// size check reports it as too large instead of wrapping to a small size.
pub(super) fn bytes_of(numel: usize) -> u64 {
    (numel.max(1) as u64).saturating_mul(4)
}

impl Scheduler<'_> {
    pub(super) fn alloc(&self, shape: &Shape) -> Result<Storage> {
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
    pub(super) fn dispatch(
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
            crate::exec::profile::KernelInfo {
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

    pub(super) fn value(&self, node: &Node) -> Storage {
        self.values[&node.id].clone()
    }

    /// Zeroed status words for `lowering` if a kernel of it binds them,
    /// kept by the plan (with their meaning) until the realize reads them.
    pub(super) fn status_words(
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
    pub(super) fn copy(
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
    pub(super) fn copy_window(&mut self, src: &Storage, dst: &Storage, w: Window) {
        let call = strided_copy(Buf::Input(0), Buf::Output, &w);
        let (ls, ld) = (src.size() as usize / 4, dst.size() as usize / 4);
        self.run(call, &|b| match b {
            Buf::Output => (dst, ld),
            _ => (src, ls),
        });
    }

    /// Records one kernel of the vocabulary, its buffers resolved by `buffer`
    /// (storage and element count of each role).
    pub(super) fn run<'s>(
        &mut self,
        call: KernelCall,
        buffer: &dyn Fn(Buf) -> (&'s Storage, usize),
    ) {
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

    pub(super) fn zeros(&mut self, shape: &Shape) -> Result<Storage> {
        let fill = Node::new(
            Op::Fill(0.0),
            Vec::new(),
            shape.clone(),
            crate::Device::reference_only(),
        );
        self.elementwise(shape, elementwise_value(&fill, &|_, _| false, None))
    }

    /// An elementwise kernel storing `value(i)` for every element of `shape`.
    pub(super) fn elementwise(&mut self, shape: &Shape, value: ValueFn) -> Result<Storage> {
        // A 16-bit output holds two values per word.
        let out = self.alloc(&Shape::new(&[value.out_dtype.words(shape.numel())]))?;
        self.elementwise_into(&out, shape, value);
        Ok(out)
    }

    pub(super) fn elementwise_into(&mut self, out: &Storage, shape: &Shape, value: ValueFn) {
        let n = shape.numel();
        let srcs: Vec<Storage> = value.inputs.iter().map(|i| self.value(i)).collect();
        // Sizes in 32-bit words: a 16-bit buffer holds two values per word.
        let mut buffers = vec![(out, value.out_dtype.words(n))];
        buffers.extend(
            srcs.iter()
                .zip(&value.inputs)
                .map(|(s, i)| (s, i.dtype.words(i.shape.numel()))),
        );
        // One invocation per element, per four (`value4`) or per word of
        // two 16-bit values; the parameter is the element count for those,
        // the vec4 count for `value4`.
        let (invocations, count) = if value.vec4 {
            (n / 4, n / 4)
        } else {
            (value.out_dtype.words(n), n)
        };
        let mut params = vec![count as u32];
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
}

/// Which parameter words of a kernel whose value function's words start
/// at `base` are constants of nodes.
pub(super) fn constant_words(value: &ValueFn, base: usize) -> Vec<(usize, NodeId)> {
    value
        .constants
        .iter()
        .enumerate()
        .map(|(j, &id)| (base + j, id))
        .collect()
}

impl Scheduler<'_> {
    pub(super) fn new(gpu: &Gpu) -> Scheduler<'_> {
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
    pub(super) fn compile_pipelines(&mut self) {
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

/// The elementwise kernel's value function for the tree rooted at `root`:
/// four elements per invocation where every load allows it.
pub(super) fn elementwise_value(
    root: &Arc<Node>,
    fused: FusedEdge,
    in_place: Option<NodeId>,
) -> ValueFn {
    value_fn_vec4(root, fused, ELEMENTWISE_HEAD, in_place)
        .unwrap_or_else(|| value_fn_in_place(root, fused, ELEMENTWISE_HEAD, in_place))
}
