//! The convolutions' kernels (`shaders/conv2d.wgsl`): implicit GEMM, one
//! entry point per family, sharing the forward geometry's parameter words.
//!
//! On every adapter the same kernels run today; they are register-blocked
//! (8 × 4 or 4 × 4 outputs per invocation, no workgroup memory), which is
//! what CPU rasterizers want. `Target` is passed through so that a tiled variant for
//! real GPUs can be chosen here, as matmul's is.

use std::borrow::Cow;

use super::Geometry;
use crate::kernel::{Buf, KernelCall, Lowering, Target, grid_1d_of, sum_parts, word};

pub(crate) const CONV2D: &str = include_str!("../../../shaders/conv2d.wgsl");

/// Invocations per workgroup of the convolution kernels.
const GROUP: u32 = 64;

fn params(g: &Geometry, parts: usize) -> Vec<u32> {
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
    ]
    .map(word)
    .to_vec()
}

fn call(
    entry: &'static str,
    g: &Geometry,
    parts: usize,
    threads: usize,
    bindings: Vec<Buf>,
) -> KernelCall {
    KernelCall {
        source: Cow::Borrowed(CONV2D),
        entry,
        params: params(g, parts),
        bindings,
        groups: grid_1d_of(threads as u64, GROUP),
    }
}

pub(super) fn conv2d(g: &Geometry, _: Target) -> Lowering {
    let og = g.o / g.groups;
    let threads = g.n * g.groups * og.div_ceil(8) * g.p * g.q.div_ceil(4);
    Lowering {
        temps: Vec::new(),
        kernels: vec![call(
            "conv2d",
            g,
            1,
            threads,
            vec![Buf::Input(0), Buf::Input(1), Buf::Output],
        )],
    }
}

pub(super) fn conv_transpose2d(g: &Geometry, _: Target) -> Lowering {
    let cg = g.c / g.groups;
    let threads = g.n * g.groups * cg.div_ceil(4) * g.h * g.w.div_ceil(4);
    Lowering {
        temps: Vec::new(),
        kernels: vec![call(
            "conv2d_input_grad",
            g,
            1,
            threads,
            vec![Buf::Input(0), Buf::Input(1), Buf::Output],
        )],
    }
}

/// How many ranges the weight gradient's sum over the `rows` (n, p) is
/// split into: enough invocations to keep the device busy when the weight
/// has few output blocks, each range still at least 2 rows long.
fn weight_grad_parts(blocks: usize, rows: usize) -> usize {
    const TARGET_INVOCATIONS: usize = 1024;
    (TARGET_INVOCATIONS / blocks.max(1)).clamp(1, (rows / 2).max(1))
}

pub(super) fn conv2d_weight_grad(g: &Geometry, _: Target) -> Lowering {
    let weights = g.w_shape().numel();
    let (og, taps) = (g.o / g.groups, g.c / g.groups * g.r * g.s);
    let blocks = g.groups * og.div_ceil(8) * taps.div_ceil(4);
    let parts = weight_grad_parts(blocks, g.n * g.p);
    let inputs = vec![Buf::Input(0), Buf::Input(1)];
    if parts == 1 {
        let bindings = [inputs, vec![Buf::Output]].concat();
        return Lowering {
            temps: Vec::new(),
            kernels: vec![call("conv2d_weight_grad", g, 1, blocks, bindings)],
        };
    }
    let bindings = [inputs, vec![Buf::Temp(0)]].concat();
    Lowering {
        temps: vec![weights * parts],
        kernels: vec![
            call("conv2d_weight_grad", g, parts, blocks * parts, bindings),
            sum_parts(Buf::Temp(0), Buf::Output, weights, parts),
        ],
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
