//! The kernel vocabulary: how an op family describes the kernels that
//! compute it, as plain data that knows nothing of wgpu (principle 9).
//!
//! A family's `lower` returns a [`Lowering`]: scratch buffers it needs and a
//! list of [`KernelCall`]s, each a WGSL source, its entry point, its
//! parameter words (bound at binding 0) and the buffers bound at bindings
//! 1, 2, ... named by role ([`Buf`]). The executor allocates the output and
//! the scratch buffers, compiles (and caches) the pipelines, binds the
//! buffers and records the dispatches, in order.

use std::borrow::Cow;

use crate::device::MatmulKernel;
use crate::shape::MAX_RANK;

/// Where a bound buffer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Buf {
    /// The value of the node's input `i`.
    Input(usize),
    /// The node's own value (allocated by the executor, `numel` of its shape).
    Output,
    /// Scratch buffer `i` of [`Lowering::temps`], live for this lowering only.
    Temp(usize),
}

/// One dispatch of one compute kernel.
#[derive(Clone, Debug)]
pub(crate) struct KernelCall {
    /// WGSL source: a template from `shaders/`, possibly specialized.
    pub source: Cow<'static, str>,
    /// Entry point, named like the Rust op (`conv2d`, `matmul_vec4`).
    pub entry: &'static str,
    /// Parameter words (binding 0, `var<storage, read> p: array<u32>`).
    pub params: Vec<u32>,
    /// Buffers at bindings 1, 2, ... in order.
    pub bindings: Vec<Buf>,
    /// Workgroups per dimension; each at most [`MAX_GROUPS_PER_DIM`].
    pub groups: [u32; 3],
}

/// The kernels computing one node, with the scratch buffers they share.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lowering {
    /// Element counts of scratch buffers ([`Buf::Temp`]).
    pub temps: Vec<usize>,
    pub kernels: Vec<KernelCall>,
}

/// What a lowering may depend on besides the shapes: the adapter's kernel
/// family (register-blocked on CPU rasterizers, tiled on real GPUs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub family: MatmulKernel,
}

/// Invocations per workgroup of the 1-D kernels (elementwise, copy, reduce, fill).
pub(crate) const WORKGROUP: u32 = 256;
/// WebGPU's baseline limit on workgroups per dispatch dimension.
pub(crate) const MAX_GROUPS_PER_DIM: u32 = 65_535;

pub(crate) const COPY: &str = include_str!("../shaders/copy.wgsl");
pub(crate) const FILL: &str = include_str!("../shaders/fill.wgsl");
pub(crate) const SUM_PARTS: &str = include_str!("../shaders/sum_parts.wgsl");

/// Workgroup grid covering `threads` invocations of a 1-D kernel of
/// `WORKGROUP` invocations per group: large tensors spill into the y
/// dimension (the shaders rebuild the linear index from `num_workgroups`).
pub(crate) fn grid_1d(threads: u64) -> [u32; 3] {
    grid_1d_of(threads, WORKGROUP)
}

/// [`grid_1d`] for a kernel of `per_group` invocations per workgroup.
pub(crate) fn grid_1d_of(threads: u64, per_group: u32) -> [u32; 3] {
    let groups = threads.div_ceil(per_group as u64).max(1);
    let x = groups.min(MAX_GROUPS_PER_DIM as u64);
    let y = groups.div_ceil(x);
    assert!(
        y <= MAX_GROUPS_PER_DIM as u64,
        "webgrad: {threads} invocations exceed one dispatch"
    );
    [x as u32, y as u32, 1]
}

/// A strided window: element `coord` (row-major over `dims`) is read at
/// `src_offset + Σ coord·src_strides` and written at `dst_offset + Σ coord·dst_strides`.
pub(crate) struct Window<'a> {
    pub dims: &'a [usize],
    pub src_offset: usize,
    pub src_strides: &'a [usize],
    pub dst_offset: usize,
    pub dst_strides: &'a [usize],
}

/// The one strided-copy kernel (`shaders/copy.wgsl`), behind permute,
/// broadcast_to, slice, pad, concat and operand gathers.
pub(crate) fn strided_copy(src: Buf, dst: Buf, w: &Window) -> KernelCall {
    let count: usize = w.dims.iter().product();
    let mut p = vec![0u32; 4 + 3 * MAX_RANK];
    p[0] = count as u32;
    p[1] = w.dims.len() as u32;
    p[2] = w.src_offset as u32;
    p[3] = w.dst_offset as u32;
    for d in 0..w.dims.len() {
        p[4 + d] = w.dims[d] as u32;
        p[4 + MAX_RANK + d] = w.src_strides[d] as u32;
        p[4 + 2 * MAX_RANK + d] = w.dst_strides[d] as u32;
    }
    KernelCall {
        source: Cow::Borrowed(COPY),
        entry: "copy_strided",
        params: p,
        bindings: vec![src, dst],
        groups: grid_1d(count as u64),
    }
}

/// `n` elements of `dst` set to `value` (`shaders/fill.wgsl`).
pub(crate) fn fill(dst: Buf, n: usize, value: f32) -> KernelCall {
    KernelCall {
        source: Cow::Borrowed(FILL),
        entry: "fill",
        params: vec![n as u32, value.to_bits()],
        bindings: vec![dst],
        groups: grid_1d(n as u64),
    }
}

/// `dst[i] = Σ_k src[k·n + i]` for `parts` partial results of `n` elements
/// (`shaders/sum_parts.wgsl`), summed in a fixed order.
pub(crate) fn sum_parts(src: Buf, dst: Buf, n: usize, parts: usize) -> KernelCall {
    KernelCall {
        source: Cow::Borrowed(SUM_PARTS),
        entry: "sum_parts",
        params: vec![word(n), word(parts)],
        bindings: vec![src, dst],
        groups: grid_1d(n as u64),
    }
}

/// Converts a size to a kernel parameter word.
///
/// Kernels index with u32 (principle 5); the executor refuses buffers past
/// the binding limit (at most 2³² bytes) before any lowering runs, so every
/// element count and offset of a bound buffer fits.
pub(crate) fn word(n: usize) -> u32 {
    u32::try_from(n).expect("webgrad: a kernel parameter exceeds u32 (a size check was missed)")
}
