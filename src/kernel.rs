//! The kernel vocabulary: how an op family describes the kernels that
//! compute it, as plain data that knows nothing of wgpu (principle 9).
//! Public through [`crate::op`], for users' own ops.
//!
//! A family's `lower` returns a [`Lowering`]: scratch buffers it needs and a
//! list of [`KernelCall`]s, each a WGSL source, its entry point, its
//! parameter words (bound at binding 0) and the buffers bound at bindings
//! 1, 2, ... named by role ([`Buf`]). The executor allocates the output and
//! the scratch buffers, compiles (and caches) the pipelines, binds the
//! buffers and records the dispatches, in order.

use std::borrow::Cow;

/// Where a bound buffer comes from. Every binding is a storage buffer of
/// 32-bit words (`array<f32>`, `array<vec4<f32>>` or `array<u32>` in the
/// WGSL); inputs are bound read-only, the rest read-write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Buf {
    /// The value of the node's input `i`.
    Input(usize),
    /// The node's own value (allocated by the executor, `numel` of its shape).
    Output,
    /// Scratch buffer `i` of [`Lowering::temps`], live for this lowering only.
    Temp(usize),
    /// Two u32 status words, zeroed before the lowering's kernels and
    /// read back by the realize: a kernel that meets a fault it cannot
    /// compute past (an index computed on the GPU that is out of range)
    /// sets word 0 to nonzero and raises word 1 to the value at fault,
    /// both with `atomicMax`. The realize then fails with the family's
    /// [`status_meaning`](crate::graph::family::Family::status_meaning).
    Status,
}

/// One dispatch of one compute kernel.
#[derive(Clone, Debug)]
pub struct KernelCall {
    /// WGSL source (the built-in families': a template from `shaders/`,
    /// possibly specialized). It declares binding 0 as
    /// `var<storage, read> p: array<u32>` and bindings 1, 2, ... for
    /// [`bindings`](KernelCall::bindings), all in group 0.
    pub source: Cow<'static, str>,
    /// Entry point (`@compute` function), named like the Rust op
    /// (`conv2d`, `matmul_vec4`).
    pub entry: &'static str,
    /// Parameter words (binding 0, `var<storage, read> p: array<u32>`).
    pub params: Vec<u32>,
    /// Buffers at bindings 1, 2, ... in order.
    pub bindings: Vec<Buf>,
    /// Workgroups per dimension; each at most [`MAX_GROUPS_PER_DIM`].
    pub groups: [u32; 3],
    /// The most loop iterations one invocation runs, all its loops
    /// together (a loop unrolled at compile time counts none): at most
    /// [`MAX_LOOP_TRIPS`], which the executor checks before dispatching.
    pub loop_trips: u64,
}

/// The most loop iterations one invocation of any kernel may run, all its
/// loops together. lavapipe (llvmpipe's gallivm) keeps one counter per
/// shader invocation, decremented at the end of every iteration of every
/// loop, and leaves the loop when it reaches 65,535 — silently, so a
/// longer loop gives wrong values with no error. Kernels whose trip count
/// grows with a size (a reduction's row, matmul's K, a scan, a pooling
/// window, convolution taps, a scatter-add's segment) split the work over
/// more invocations, passes or dispatches so that no invocation runs more
/// than this; half the driver's limit leaves room for the loops a kernel
/// runs besides its main one.
pub const MAX_LOOP_TRIPS: u64 = 32_768;

/// The kernels computing one node, with the scratch buffers they share.
#[derive(Clone, Debug, Default)]
pub struct Lowering {
    /// Element counts (32-bit words) of scratch buffers ([`Buf::Temp`]),
    /// allocated for this node's kernels and returned to the pool after.
    pub temps: Vec<usize>,
    /// The kernels, dispatched in order (each sees the writes of those
    /// before it).
    pub kernels: Vec<KernelCall>,
}

/// What a lowering may depend on besides the shapes: the adapter's kernel
/// family (register-blocked on CPU rasterizers, tiled on real GPUs).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Target {
    /// The kernel family of the adapter (never `Auto`): register-blocked
    /// on CPU rasterizers, tiled on real GPUs.
    pub family: KernelFamily,
    /// The adapter's subgroup size where every subgroup has that size and
    /// the device has subgroup operations (natively; `None` otherwise):
    /// the register-blocked matmul then offers `matmul_sg`.
    pub subgroup: Option<u32>,
}

/// Invocations per workgroup of the 1-D kernels (elementwise, copy, reduce, fill).
pub const WORKGROUP: u32 = 256;
/// WebGPU's baseline limit on workgroups per dispatch dimension.
pub const MAX_GROUPS_PER_DIM: u32 = 65_535;

pub(crate) const FILL: &str = include_str!("../shaders/fill.wgsl");
pub(crate) const SUM_PARTS: &str = include_str!("../shaders/sum_parts.wgsl");

/// Workgroup grid covering `threads` invocations of a 1-D kernel of
/// `WORKGROUP` invocations per group: large tensors spill into the y
/// dimension (the shaders rebuild the linear index from `num_workgroups`).
pub fn grid_1d(threads: u64) -> [u32; 3] {
    grid_1d_of(threads, WORKGROUP)
}

/// [`grid_1d`] for a kernel of `per_group` invocations per workgroup.
pub fn grid_1d_of(threads: u64, per_group: u32) -> [u32; 3] {
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
/// broadcast_to, slice, pad, concat and operand gathers, specialized to the
/// window: its sizes and strides become constants of the shader, nonzero
/// offsets parameters (so that the parts of a concat, or the slices of
/// its gradient, of one shape share one pipeline however many there are;
/// a window at offset 0 reads none).
pub(crate) fn strided_copy(src: Buf, dst: Buf, w: &Window) -> KernelCall {
    let count: usize = w.dims.iter().product();
    KernelCall {
        source: Cow::Owned(render(&CopyKernel::new(w))),
        entry: "copy_strided",
        params: vec![word(count), word(w.src_offset), word(w.dst_offset)],
        bindings: vec![src, dst],
        groups: grid_1d(count as u64),
        loop_trips: 0,
    }
}

/// The strided copy kernel for one window (`shaders/copy.wgsl`).
#[derive(askama::Template)]
#[template(path = "copy.wgsl", escape = "none")]
pub(crate) struct CopyKernel {
    /// Whether the offsets are read from p[1] and p[2] (both 0 otherwise).
    offsets: bool,
    /// The axes the index is split along, innermost first.
    axes: Vec<CopyAxis>,
}

/// One axis of a copy: its size and the strides it moves by in the
/// source and the destination.
struct CopyAxis {
    size: u32,
    src: u32,
    dst: u32,
}

impl CopyKernel {
    /// The kernel for `w`: axes of size 1 dropped, neighbours that are
    /// contiguous in both source and destination merged, then one `%` and
    /// `/` by a constant per remaining axis.
    pub(crate) fn new(w: &Window) -> CopyKernel {
        if w.dims.contains(&0) {
            // Nothing to copy (and no size to divide by: `% 0u` is invalid WGSL).
            return CopyKernel {
                offsets: false,
                axes: Vec::new(),
            };
        }
        let mut axes: Vec<(usize, usize, usize)> = Vec::new(); // (size, src stride, dst stride), outermost first
        for d in 0..w.dims.len() {
            let axis = (w.dims[d], w.src_strides[d], w.dst_strides[d]);
            if axis.0 == 1 {
                continue;
            }
            match axes.last_mut() {
                Some(last) if last.1 == axis.1 * axis.0 && last.2 == axis.2 * axis.0 => {
                    *last = (last.0 * axis.0, axis.1, axis.2);
                }
                _ => axes.push(axis),
            }
        }
        CopyKernel {
            offsets: w.src_offset != 0 || w.dst_offset != 0,
            axes: axes
                .iter()
                .rev()
                .map(|&(size, src, dst)| CopyAxis {
                    size: word(size),
                    src: word(src),
                    dst: word(dst),
                })
                .collect(),
        }
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
        loop_trips: 0,
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
        loop_trips: parts as u64,
    }
}

/// Converts a size to a kernel parameter word.
///
/// Kernels index with u32 (principle 5); the executor refuses buffers past
/// the binding limit (at most 2³² bytes) before any lowering runs, so every
/// element count and offset of a bound buffer fits.
pub fn word(n: usize) -> u32 {
    u32::try_from(n).expect("webgrad: a kernel parameter exceeds u32 (a size check was missed)")
}

/// The kernel families that matmul and the convolutions choose between,
/// per adapter (`DeviceOptions::kernel_family` forces one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelFamily {
    /// Register-blocked on CPU adapters (lavapipe, SwiftShader), tiled elsewhere.
    #[default]
    Auto,
    /// Each invocation computes a block of C from vec4 loads straight from
    /// the storage buffers: fastest where workgroup memory and barriers are
    /// slow (CPU rasterizers).
    RegisterBlocked,
    /// Workgroups stage tiles of A and B in workgroup memory: what real GPUs want.
    Tiled,
}

/// A kernel template rendered (an askama template under `shaders/`: see
/// `shaders/README.md`). Rendering only formats values, so it cannot fail
/// for a template that compiled.
pub(crate) fn render(template: &impl askama::Template) -> String {
    template
        .render()
        .expect("webgrad: a kernel template failed to render")
}

/// The vector component `i % 4` names (`x`, `y`, `z`, `w`), for templates.
pub(crate) fn lane(i: &usize) -> &'static str {
    ["x", "y", "z", "w"][*i % 4]
}
