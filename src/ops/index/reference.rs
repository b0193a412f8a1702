//! The index ops' f64 reference, from their definitions. Indices arrive as
//! f64 (exact for u32).

use crate::shape::Shape;

pub(super) fn index_select(
    x_shape: &Shape,
    axis: usize,
    x: &[f64],
    idx: &[f64],
    out: &Shape,
) -> Vec<f64> {
    let (outer, size, inner) = x_shape.around(axis);
    let mut result = Vec::with_capacity(out.numel());
    for o in 0..outer {
        for &k in idx {
            let d = k as usize;
            assert!(d < size, "index_select: index {d} out of range {size}");
            result.extend_from_slice(&x[(o * size + d) * inner..(o * size + d + 1) * inner]);
        }
    }
    result
}

pub(super) fn index_add(
    g_shape: &Shape,
    axis: usize,
    g: &[f64],
    idx: &[f64],
    out: &Shape,
) -> Vec<f64> {
    let (outer, k_count, inner) = g_shape.around(axis);
    let size = out.dims()[axis];
    let mut result = vec![0.0; out.numel()];
    for o in 0..outer {
        for (k, &d) in idx.iter().enumerate().take(k_count) {
            let d = d as usize;
            assert!(d < size, "index_add: index {d} out of range {size}");
            for i in 0..inner {
                result[(o * size + d) * inner + i] += g[(o * k_count + k) * inner + i];
            }
        }
    }
    result
}

pub(super) fn arg_reduce(x_shape: &Shape, axis: usize, x: &[f64], smallest: bool) -> Vec<f64> {
    let (outer, size, inner) = x_shape.around(axis);
    let mut result = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| x[(o * size + k) * inner + i];
            let mut best = 0;
            for k in 1..size {
                if at(best).is_nan() {
                    break;
                }
                let v = at(k);
                if v.is_nan() || (if smallest { v < at(best) } else { v > at(best) }) {
                    best = k;
                }
            }
            result.push(best as f64);
        }
    }
    result
}
