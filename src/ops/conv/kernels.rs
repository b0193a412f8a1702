//! The convolutions' kernels: implicit GEMM, one entry point per op,
//! sharing the forward geometry's parameter words. Register-blocked
//! (`shaders/conv2d.wgsl`: 8 × 4 or 4 × 4 outputs per invocation, no
//! workgroup memory) for CPU rasterizers, tiled in workgroup memory
//! (`shaders/conv2d_tiled.wgsl`) for real GPUs, chosen per adapter by the
//! target's kernel family, as matmul's are.

use std::borrow::Cow;
use std::sync::OnceLock;

use askama::Template;

use super::Geometry;
use crate::kernel::KernelFamily;
use crate::kernel::{
    Buf, KernelCall, Lowering, MAX_GROUPS_PER_DIM, MAX_LOOP_TRIPS, Target, grid_1d_of, render,
    sum_parts, word,
};

/// The register-blocked kernels (`shaders/conv2d.wgsl`), one entry point per op.
#[derive(Template)]
#[template(path = "conv2d.wgsl", escape = "none")]
struct Conv2d;

/// The register-blocked kernels' source.
pub(crate) fn conv2d_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| render(&Conv2d))
}

/// Which product the tiled kernel computes: its operand loaders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loaders {
    /// y = w · unfold(x).
    Forward,
    /// ∂L/∂x = wᵀ · ∂L/∂y, folded back (the transposed convolution).
    InputGrad,
    /// ∂L/∂w = ∂L/∂y · unfold(x)ᵀ.
    WeightGrad,
}

/// The tiled kernel (`shaders/conv2d_tiled.wgsl`) for one product.
#[derive(Template)]
#[template(path = "conv2d_tiled.wgsl", escape = "none")]
struct Conv2dTiled {
    loaders: Loaders,
}

/// The tiled kernel's source for `loaders`, rendered once each.
pub(crate) fn conv2d_tiled_source(loaders: Loaders) -> &'static str {
    static SOURCES: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    SOURCES[loaders as usize].get_or_init(|| render(&Conv2dTiled { loaders }))
}

/// The tiled kernel for `loaders`, or `None` when its grid would not fit
/// one dispatch (64 × 64 tiles of an `m × n` product, per group and part)
/// or its sum over `k` (per part) would loop past `MAX_LOOP_TRIPS`.
fn tiled(
    loaders: Loaders,
    g: &Geometry,
    (m, n, k): (usize, usize, usize),
    parts: usize,
    bindings: Vec<Buf>,
) -> Option<KernelCall> {
    let groups = [n.div_ceil(64), m.div_ceil(64), g.groups * parts];
    if groups.iter().any(|&x| x > MAX_GROUPS_PER_DIM as usize) {
        return None;
    }
    // Per tile of 16 along the part's share of k: its loads (4) and its
    // multiply-adds (16).
    let loop_trips = (k.div_ceil(parts).div_ceil(16) * 21) as u64;
    if loop_trips > MAX_LOOP_TRIPS {
        // A sum too long for one invocation: the register-blocked kernels
        // split theirs over dispatches.
        return None;
    }
    Some(KernelCall {
        source: Cow::Borrowed(conv2d_tiled_source(loaders)),
        entry: "conv2d_tiled",
        params: params(g, parts, (0, 0, false)),
        bindings,
        groups: groups.map(|x| x as u32),
        loop_trips,
    })
}

/// Invocations per workgroup of the convolution kernels.
const GROUP: u32 = 64;

/// The loop iterations one invocation may spend on its main loop: the
/// limit less its other loops (the stores' 8 × 4, the taps' rows).
pub(crate) const LOOP_BUDGET: usize = MAX_LOOP_TRIPS as usize - 64;

fn params(g: &Geometry, parts: usize, (first, end, carry): (usize, usize, bool)) -> Vec<u32> {
    [
        g.n,
        g.c,
        g.h,
        g.w,
        g.o,
        g.p,
        g.q,
        g.r,
        g.s,
        g.stride[0],
        g.stride[1],
        g.padding[0],
        g.padding[1],
        g.dilation[0],
        g.dilation[1],
        g.groups,
        parts,
        first,
        end,
        usize::from(carry),
    ]
    .map(word)
    .to_vec()
}

/// The dispatches of a register-blocked entry point: its longest loop (the
/// forward's over input channels, the input gradient's over output
/// channels, the weight gradient's over columns q) split into ranges short
/// enough for `LOOP_BUDGET`, each dispatch carrying on the sums of the last.
fn calls(
    entry: &'static str,
    g: &Geometry,
    parts: usize,
    threads: usize,
    bindings: Vec<Buf>,
) -> Vec<KernelCall> {
    let (og, cg) = (g.o / g.groups, g.c / g.groups);
    let rows_per_part = (g.n * g.p).div_ceil(parts);
    // (length of the split loop, iterations of all loops for a range of `len`)
    let (total, trips): (usize, &dyn Fn(usize) -> usize) = match entry {
        "conv2d" => (cg, &|len| len * (g.r * (g.s + 1) + 1)),
        "conv2d_input_grad" => (og, &|len| g.r * (g.s * (len + 1) + 1)),
        _ => (g.q, &|len| rows_per_part * (len + 1)),
    };
    // The longest range within the budget (at least 1: the geometry's
    // checks keep one step within it).
    let mut chunk = total.max(1);
    while chunk > 1 && trips(chunk) > LOOP_BUDGET {
        chunk = chunk.div_ceil(2);
    }
    (0..total.max(1))
        .step_by(chunk)
        .map(|first| {
            let end = (first + chunk).min(total);
            KernelCall {
                source: Cow::Borrowed(conv2d_source()),
                entry,
                params: params(g, parts, (first, end, first > 0)),
                bindings: bindings.clone(),
                groups: grid_1d_of(threads as u64, GROUP),
                loop_trips: (trips(end - first) + 40) as u64,
            }
        })
        .collect()
}

pub(super) fn conv2d(g: &Geometry, target: Target) -> Lowering {
    let og = g.o / g.groups;
    let bindings = vec![Buf::Input(0), Buf::Input(1), Buf::Output];
    if target.family == KernelFamily::Tiled
        && let Some(call) = tiled(
            Loaders::Forward,
            g,
            (og, g.n * g.p * g.q, g.c / g.groups * g.r * g.s),
            1,
            bindings.clone(),
        )
    {
        return Lowering {
            temps: Vec::new(),
            kernels: vec![call],
        };
    }
    let threads = g.n * g.groups * og.div_ceil(8) * g.p * g.q.div_ceil(4);
    Lowering {
        temps: Vec::new(),
        kernels: calls("conv2d", g, 1, threads, bindings),
    }
}

pub(super) fn conv_transpose2d(g: &Geometry, target: Target) -> Lowering {
    let cg = g.c / g.groups;
    let bindings = vec![Buf::Input(0), Buf::Input(1), Buf::Output];
    if target.family == KernelFamily::Tiled
        && let Some(call) = tiled(
            Loaders::InputGrad,
            g,
            (cg, g.n * g.h * g.w, g.o / g.groups * g.r * g.s),
            1,
            bindings.clone(),
        )
    {
        return Lowering {
            temps: Vec::new(),
            kernels: vec![call],
        };
    }
    let threads = g.n * g.groups * cg.div_ceil(4) * g.h * g.w.div_ceil(4);
    Lowering {
        temps: Vec::new(),
        kernels: calls("conv2d_input_grad", g, 1, threads, bindings),
    }
}

/// How many ranges the weight gradient's sum over the `rows` (n, p) is
/// split into: enough invocations to keep the device busy when the weight
/// has few output blocks, each range still at least 2 rows long.
fn weight_grad_parts(blocks: usize, rows: usize) -> usize {
    const TARGET_INVOCATIONS: usize = 1024;
    (TARGET_INVOCATIONS / blocks.max(1)).clamp(1, (rows / 2).max(1))
}

pub(super) fn conv2d_weight_grad(g: &Geometry, target: Target) -> Lowering {
    let weights = g.w_shape().numel();
    let (og, taps) = (g.o / g.groups, g.c / g.groups * g.r * g.s);
    if target.family == KernelFamily::Tiled {
        // Few 64 × 64 tiles over a long sum: split the sum for more workgroups.
        let tiles = g.groups * og.div_ceil(64) * taps.div_ceil(64);
        let terms = g.n * g.p * g.q;
        let parts = (512 / tiles.max(1))
            .clamp(1, (terms / 256).max(1))
            .max(terms.div_ceil(LOOP_BUDGET * 16 / 21));
        let out = if parts == 1 {
            Buf::Output
        } else {
            Buf::Temp(0)
        };
        let bindings = vec![Buf::Input(0), Buf::Input(1), out];
        if let Some(call) = tiled(Loaders::WeightGrad, g, (og, taps, terms), parts, bindings) {
            let mut low = Lowering {
                temps: Vec::new(),
                kernels: vec![call],
            };
            if parts > 1 {
                low.temps.push(weights * parts);
                low.kernels
                    .push(sum_parts(Buf::Temp(0), Buf::Output, weights, parts));
            }
            return low;
        }
    }
    let blocks = g.groups * og.div_ceil(8) * taps.div_ceil(4);
    // Each part's rows, two columns at a time at least, within the budget.
    let rows = g.n * g.p;
    let parts = weight_grad_parts(blocks, rows).max(rows.div_ceil(LOOP_BUDGET / 3));
    let inputs = vec![Buf::Input(0), Buf::Input(1)];
    if parts == 1 {
        let bindings = [inputs, vec![Buf::Output]].concat();
        return Lowering {
            temps: Vec::new(),
            kernels: calls("conv2d_weight_grad", g, 1, blocks, bindings),
        };
    }
    let bindings = [inputs, vec![Buf::Temp(0)]].concat();
    let mut kernels = calls("conv2d_weight_grad", g, parts, blocks * parts, bindings);
    kernels.push(sum_parts(Buf::Temp(0), Buf::Output, weights, parts));
    Lowering {
        temps: vec![weights * parts],
        kernels,
    }
}

#[cfg(test)]
mod tests {
    use super::weight_grad_parts;

    #[test]
    fn small_weights_split_their_sum() {
        assert_eq!(weight_grad_parts(10_000, 1 << 20), 1);
        assert_eq!(weight_grad_parts(72, 1), 1);
        assert_eq!(weight_grad_parts(72, 4), 2);
        let p = weight_grad_parts(6, 8192);
        assert!(p > 1 && p * 6 >= 1000 && 8192 / p >= 2);
    }
}
