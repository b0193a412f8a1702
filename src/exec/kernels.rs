//! The executor's own kernel templates: the fused elementwise and reduce
//! kernels (askama templates under `shaders/` with a hole for the
//! generated `value` function), their specializations and parameters. Op
//! families describe their kernels themselves (see `kernel.rs`).

use askama::Template;

use super::codegen::ValueFn;
use crate::graph::ReduceOp;
use crate::kernel::render;

/// The elementwise kernel around a generated `value` function
/// (`shaders/elementwise.wgsl`).
#[derive(Template)]
#[template(path = "elementwise.wgsl", escape = "none")]
struct Elementwise<'a> {
    value: &'a str,
    /// The 16-bit format a packed output is stored in ("f16", "bf16").
    packed: Option<&'a str>,
}

/// [`Elementwise`] four elements at a time, around `value4`
/// (`shaders/elementwise_vec4.wgsl`).
#[derive(Template)]
#[template(path = "elementwise_vec4.wgsl", escape = "none")]
struct ElementwiseVec4<'a> {
    value: &'a str,
}

/// A reduction around a generated `value` function, specialized by its
/// `identity` and `combine` expressions (`shaders/reduce.wgsl`).
#[derive(Template)]
#[template(path = "reduce.wgsl", escape = "none")]
struct Reduce<'a> {
    value: &'a str,
    identity: &'a str,
    combine: &'a str,
}

/// [`Reduce`] four elements at a time (`shaders/reduce_vec4.wgsl`).
#[derive(Template)]
#[template(path = "reduce_vec4.wgsl", escape = "none")]
struct ReduceVec4<'a> {
    value: &'a str,
    identity: &'a str,
    combine: &'a str,
}

/// Parameter words before those of the `value` function: elementwise [n], reduce [M, K, so, sr, P].
pub(crate) const ELEMENTWISE_HEAD: usize = 1;
pub(crate) const REDUCE_HEAD: usize = 5;

/// The elementwise kernel around a generated `value` (or `value4`) function.
pub(crate) fn elementwise_source(value: &ValueFn) -> String {
    let value_code = value.code.as_str();
    if value.vec4 {
        render(&ElementwiseVec4 { value: value_code })
    } else {
        let packed = (value.out_dtype != crate::dtype::DType::F32).then(|| value.out_dtype.name());
        render(&Elementwise {
            value: value_code,
            packed,
        })
    }
}

/// The reduce kernel for one op around a generated `value` (or `value4`)
/// function.
pub(crate) fn reduce_source(op: ReduceOp, value: &ValueFn) -> String {
    // ±inf are built at run time: shader compilers reject infinite constants.
    let (identity, combine) = match op {
        ReduceOp::Sum => ("0.0", "acc + v"),
        // NaN propagates (numpy's rule): a NaN accumulator or value wins.
        ReduceOp::Max => (
            "bitcast<f32>(0xff800000u | (p[0] & 0u))",
            "select(max(acc, v), acc + v, wg_isnan(acc) || wg_isnan(v))",
        ),
        ReduceOp::Min => (
            "bitcast<f32>(0x7f800000u | (p[0] & 0u))",
            "select(min(acc, v), acc + v, wg_isnan(acc) || wg_isnan(v))",
        ),
    };
    let value_code = value.code.as_str();
    let mut source = if value.vec4 {
        render(&ReduceVec4 {
            value: value_code,
            identity,
            combine,
        })
    } else {
        render(&Reduce {
            value: value_code,
            identity,
            combine,
        })
    };
    if op != ReduceOp::Sum && !value.code.contains("fn wg_isnan") {
        source += super::codegen::WG_ISNAN;
    }
    source
}

/// How many parts each row of a reduction is split into for the next pass:
/// enough invocations to keep the device busy, each folding ≥ 32 elements.
/// A small reduction is one pass: a second dispatch costs more than the
/// parallelism it buys (a bias gradient, [128, 256] summed over rows,
/// is 32,768 additions) — unless its rows are long: one invocation folds
/// a row serially, which a GPU does at one load's latency per element (a
/// 65,536-element sum in one invocation took 1.9 ms on an H200, where the
/// matmul that produced it took 0.05 ms).
/// Always enough parts that no invocation folds more than
/// `MAX_LOOP_TRIPS` elements (lavapipe stops longer loops, silently).
/// The split depends on the sizes alone, never on the adapter, so every
/// adapter sums in the same order.
pub(crate) fn reduce_parts(rows: usize, k: usize) -> usize {
    const TARGET_INVOCATIONS: usize = 16_384;
    const ONE_PASS: usize = 32_768;
    const LONGEST_ONE_PASS_ROW: usize = 1024;
    let fewest = k.div_ceil(crate::kernel::MAX_LOOP_TRIPS as usize).max(1);
    let small = rows.saturating_mul(k) <= ONE_PASS && k <= LONGEST_ONE_PASS_ROW;
    if k <= 64 || rows >= TARGET_INVOCATIONS / 4 || small {
        return fewest;
    }
    (k / 32).min((TARGET_INVOCATIONS / rows).max(1)).max(fewest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::grid_1d;

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
        // Small reductions are one pass (a bias gradient).
        assert_eq!(reduce_parts(256, 128), 1);
        assert_eq!(reduce_parts(1, 1024), 1);
        // A long row is split even when the reduction is small: one
        // invocation would fold it serially.
        assert_eq!(reduce_parts(1, 16_384), 512);
        assert!(reduce_parts(1, 1 << 16) > 1);
        let p = reduce_parts(1, 1 << 20);
        assert!(p > 1 && (1 << 20) / p >= 32);
        // However many rows, no invocation folds more than the loop limit.
        for (rows, k) in [
            (4096, 100_000),
            (1 << 20, 65_536),
            (8, 1 << 30),
            (1, 32_769),
        ] {
            let p = reduce_parts(rows, k);
            assert!(
                k.div_ceil(p) as u64 <= crate::kernel::MAX_LOOP_TRIPS,
                "{rows} {k}: {p}"
            );
        }
    }
}
