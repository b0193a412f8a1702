//! The convolutions' f64 reference: each family straight from its defining
//! sum, by index arithmetic. Shares nothing with the kernels.

use super::Geometry;

/// The flat index of x[n, ch, ih, iw] if (ih, iw) lies inside the image.
fn x_at(g: &Geometry, n: usize, ch: usize, ih: isize, iw: isize) -> Option<usize> {
    let inside = ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w;
    inside.then(|| ((n * g.c + ch) * g.h + ih as usize) * g.w + iw as usize)
}

/// Calls `f(y index, x index, w index)` for every product term of
/// y[n, o, p, q] = Σ w[o, c, r, s] · x[n, ch, p·sh − ph + r·dh, q·sw − pw + s·dw].
fn for_each_term(g: &Geometry, mut f: impl FnMut(usize, usize, usize)) {
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
                                if let Some(xi) = x_at(g, n, ch, ih, iw) {
                                    f(yi, xi, ((o * cg + c) * g.r + r) * g.s + s);
                                }
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
    for_each_term(g, |yi, xi, wi| y[yi] += w[wi] * x[xi]);
    y
}

pub(super) fn conv_transpose2d(g: &Geometry, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; g.x_shape().numel()];
    for_each_term(g, |yi, xi, wi| dx[xi] += w[wi] * dy[yi]);
    dx
}

pub(super) fn conv2d_weight_grad(g: &Geometry, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; g.w_shape().numel()];
    for_each_term(g, |yi, xi, wi| dw[wi] += dy[yi] * x[xi]);
    dw
}
