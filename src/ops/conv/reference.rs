//! The convolutions' f64 reference: each family straight from its defining
//! sum, by index arithmetic. Shares nothing with the kernels.

use super::Geometry;

/// The flat index of x[n, ch, ih, iw] if (ih, iw) lies inside the image.
fn x_at(g: &Geometry, n: usize, ch: usize, ih: isize, iw: isize) -> Option<usize> {
    let inside = ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w;
    inside.then(|| ((n * g.c + ch) * g.h + ih as usize) * g.w + iw as usize)
}

/// Calls `f(y index, x index, w index)` for every product term of
/// y[n, o, p, q] = Σ w[o, c, r, s] · x[n, ch, p·sh − ph + r·dh, q·sw − pw + s·dw],
/// the x index `None` where the tap lands on zero padding. Zero padding
/// is made of zeros that are multiplied like any value (as in PyTorch): an
/// infinite weight there gives ∞·0 = NaN in the output and a non-finite
/// output adjoint gives NaN in the weight's gradient.
fn for_each_term(g: &Geometry, mut f: impl FnMut(usize, Option<usize>, usize)) {
    let (og, cg) = (g.o / g.groups, g.c / g.groups);
    for n in 0..g.n {
        for o in 0..g.o {
            let group = o / og;
            for p in 0..g.p {
                for q in 0..g.q {
                    let yi = ((n * g.o + o) * g.p + p) * g.q + q;
                    for c in 0..cg {
                        let ch = group * cg + c;
                        for r in 0..g.r {
                            for s in 0..g.s {
                                let ih = (p * g.stride[0] + r * g.dilation[0]) as isize
                                    - g.padding[0] as isize;
                                let iw = (q * g.stride[1] + s * g.dilation[1]) as isize
                                    - g.padding[1] as isize;
                                let xi = x_at(g, n, ch, ih, iw);
                                f(yi, xi, ((o * cg + c) * g.r + r) * g.s + s);
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn conv2d(g: &Geometry, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; g.y_shape().numel()];
    for_each_term(g, |yi, xi, wi| y[yi] += w[wi] * xi.map_or(0.0, |i| x[i]));
    y
}

/// dx[n, ch, ih, iw] = Σ_{o, r, s} w[o, c, r, s] · dy[n, o, p, q] over the
/// taps with ih = p·sh − ph + r·dh and iw = q·sw − pw + s·dw; a tap whose
/// (p, q) is no output (off the edge, or between strides) multiplies a
/// zero, as zero padding does in the forward pass: an infinite weight
/// gives NaN at every position where its tap meets no output, on every
/// kernel (a GEMM over zero-filled operands does the same).
pub(super) fn conv_transpose2d(g: &Geometry, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; g.x_shape().numel()];
    let (og, cg) = (g.o / g.groups, g.c / g.groups);
    // The output index along one axis that a tap at `pos` reads, if any.
    let output = |pos: usize, k: usize, axis: usize, size: usize| -> Option<usize> {
        let at = (pos + g.padding[axis]).checked_sub(k * g.dilation[axis])?;
        (at % g.stride[axis] == 0 && at / g.stride[axis] < size).then(|| at / g.stride[axis])
    };
    for n in 0..g.n {
        for ch in 0..g.c {
            let (group, c) = (ch / cg, ch % cg);
            for ih in 0..g.h {
                for iw in 0..g.w {
                    let mut sum = 0.0;
                    for o in group * og..(group + 1) * og {
                        for r in 0..g.r {
                            for s in 0..g.s {
                                let wv = w[((o * cg + c) * g.r + r) * g.s + s];
                                let term = match (output(ih, r, 0, g.p), output(iw, s, 1, g.q)) {
                                    (Some(p), Some(q)) => dy[((n * g.o + o) * g.p + p) * g.q + q],
                                    _ => 0.0,
                                };
                                sum += wv * term;
                            }
                        }
                    }
                    dx[((n * g.c + ch) * g.h + ih) * g.w + iw] = sum;
                }
            }
        }
    }
    dx
}

pub(super) fn conv2d_weight_grad(g: &Geometry, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; g.w_shape().numel()];
    for_each_term(g, |yi, xi, wi| dw[wi] += dy[yi] * xi.map_or(0.0, |i| x[i]));
    dw
}
