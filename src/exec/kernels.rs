//! The kernel families: WGSL templates (from `shaders/`), their
//! specializations, parameters and dispatch grids. Only this module and
//! `exec/` know the shaders' binding layouts.

use crate::device::MatmulKernel;
use crate::ops::reduce::ReduceOp;
use crate::shape::MAX_RANK;

pub(crate) const ELEMENTWISE_TEMPLATE: &str = include_str!("../../shaders/elementwise.wgsl");
pub(crate) const COPY: &str = include_str!("../../shaders/copy.wgsl");
pub(crate) const REDUCE_TEMPLATE: &str = include_str!("../../shaders/reduce.wgsl");
pub(crate) const MATMUL_VEC4: &str = include_str!("../../shaders/matmul_vec4.wgsl");
pub(crate) const MATMUL_SCALAR: &str = include_str!("../../shaders/matmul_scalar.wgsl");
pub(crate) const MATMUL_TILED: &str = include_str!("../../shaders/matmul_tiled.wgsl");

/// Parameter words before those of the `value` function: elementwise [n], reduce [M, K, so, sr, P].
pub(crate) const ELEMENTWISE_HEAD: usize = 1;
pub(crate) const REDUCE_HEAD: usize = 5;

/// Invocations per workgroup of the 1-D kernels (elementwise, copy, reduce).
pub(crate) const WORKGROUP: u32 = 256;
/// WebGPU's baseline limit on workgroups per dispatch dimension.
pub(crate) const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// Workgroup grid covering `threads` invocations of a 1-D kernel: large
/// tensors spill into the y dimension (the shaders rebuild the linear index
/// from `num_workgroups`).
pub(crate) fn grid_1d(threads: u64) -> [u32; 3] {
    let groups = threads.div_ceil(WORKGROUP as u64).max(1);
    let x = groups.min(MAX_GROUPS_PER_DIM as u64);
    let y = groups.div_ceil(x);
    assert!(
        y <= MAX_GROUPS_PER_DIM as u64,
        "webgrad: {threads} invocations exceed one dispatch"
    );
    [x as u32, y as u32, 1]
}

/// The elementwise kernel around a generated `value` function.
pub(crate) fn elementwise_source(value: &str) -> String {
    ELEMENTWISE_TEMPLATE.replace("//VALUE", value)
}

/// The reduce kernel for one op around a generated `value` function.
pub(crate) fn reduce_source(op: ReduceOp, value: &str) -> String {
    // ±inf are built at run time: shader compilers reject infinite constants.
    let (identity, combine) = match op {
        ReduceOp::Sum => ("0.0", "acc + v"),
        ReduceOp::Max => ("bitcast<f32>(0xff800000u | (p[0] & 0u))", "max(acc, v)"),
        ReduceOp::Min => ("bitcast<f32>(0x7f800000u | (p[0] & 0u))", "min(acc, v)"),
    };
    REDUCE_TEMPLATE
        .replace("IDENTITY;", &format!("{identity};"))
        .replace("COMBINE;", &format!("{combine};"))
        .replace("//VALUE", value)
}

/// Parameters of one strided copy (see `shaders/copy.wgsl`).
pub(crate) fn copy_params(
    shape: &[usize],
    src_offset: usize,
    src_strides: &[usize],
    dst_offset: usize,
    dst_strides: &[usize],
) -> Vec<u32> {
    let mut p = vec![0u32; 4 + 3 * MAX_RANK];
    p[0] = shape.iter().product::<usize>() as u32;
    p[1] = shape.len() as u32;
    p[2] = src_offset as u32;
    p[3] = dst_offset as u32;
    for d in 0..shape.len() {
        p[4 + d] = shape[d] as u32;
        p[4 + MAX_RANK + d] = src_strides[d] as u32;
        p[4 + 2 * MAX_RANK + d] = dst_strides[d] as u32;
    }
    p
}

/// How many parts each row of a reduction is split into for the next pass:
/// enough invocations to keep the device busy, each folding ≥ 32 elements.
pub(crate) fn reduce_parts(rows: usize, k: usize) -> usize {
    const TARGET_INVOCATIONS: usize = 16_384;
    if k <= 64 || rows >= TARGET_INVOCATIONS / 4 {
        return 1;
    }
    (k / 32).min((TARGET_INVOCATIONS / rows).max(1)).max(1)
}

/// Matmul variant and grid: the tiled kernel where the device wants it;
/// otherwise register-blocked, with vec4 loads when K and N allow them.
pub(crate) fn matmul_kernel(
    family: MatmulKernel,
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
) -> (&'static str, &'static str, [u32; 3]) {
    let batch = batch as u32;
    if family == MatmulKernel::Tiled {
        (
            MATMUL_TILED,
            "matmul_tiled",
            [n.div_ceil(64) as u32, m.div_ceil(64) as u32, batch],
        )
    } else if k % 4 == 0 && n % 4 == 0 && k > 0 {
        let cols = (n / 4).div_ceil(4) as u32;
        let rows = m.div_ceil(8) as u32;
        (
            MATMUL_VEC4,
            "matmul_vec4",
            [cols.div_ceil(8), rows.div_ceil(8), batch],
        )
    } else {
        let cols = n.div_ceil(4) as u32;
        let rows = m.div_ceil(4) as u32;
        (
            MATMUL_SCALAR,
            "matmul_scalar",
            [cols.div_ceil(8), rows.div_ceil(8), batch],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_tensors_use_a_2d_grid() {
        assert_eq!(grid_1d(1), [1, 1, 1]);
        assert_eq!(grid_1d(256 * 65_535), [65_535, 1, 1]);
        let g = grid_1d(20_000_000);
        assert!(g[1] > 1 && (g[0] as u64 * g[1] as u64 * 256) >= 20_000_000);
    }

    #[test]
    fn reductions_split_long_rows_only() {
        assert_eq!(reduce_parts(1000, 10), 1);
        assert_eq!(reduce_parts(10_000, 1000), 1);
        let p = reduce_parts(1, 1 << 20);
        assert!(p > 1 && (1 << 20) / p >= 32);
    }
}
