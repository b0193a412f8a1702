//! Max pooling's f64 reference, from the definition: the first maximum of
//! each window in row-major order, a NaN beating every number.

use super::Geometry;

/// Flat index in x of the argmax of window (p, q) of plane `plane`.
fn argmax(g: &Geometry, x: &[f64], plane: usize, p: usize, q: usize) -> usize {
    let mut best: Option<(usize, f64)> = None;
    for r in 0..g.kernel[0] {
        for s in 0..g.kernel[1] {
            let ih = (p * g.stride[0] + r) as isize - g.padding[0] as isize;
            let iw = (q * g.stride[1] + s) as isize - g.padding[1] as isize;
            if ih < 0 || iw < 0 || ih as usize >= g.h || iw as usize >= g.w {
                continue;
            }
            let at = (plane * g.h + ih as usize) * g.w + iw as usize;
            let v = x[at];
            let better = match best {
                None => true,
                Some((_, b)) => !b.is_nan() && (v.is_nan() || v > b),
            };
            if better {
                best = Some((at, v));
            }
        }
    }
    best.expect("every pooling window holds an input element").0
}

pub(super) fn gather(g: &Geometry, x: &[f64], v: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(g.y_shape().numel());
    for plane in 0..g.n * g.c {
        for p in 0..g.p {
            for q in 0..g.q {
                out.push(v[argmax(g, x, plane, p, q)]);
            }
        }
    }
    out
}

pub(super) fn scatter(g: &Geometry, x: &[f64], grad: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; g.x_shape().numel()];
    for plane in 0..g.n * g.c {
        for p in 0..g.p {
            for q in 0..g.q {
                out[argmax(g, x, plane, p, q)] += grad[(plane * g.p + p) * g.q + q];
            }
        }
    }
    out
}
