//! Matrix product, 2-D and batched with numpy broadcasting of the batch dims.
//!
//! The family: shape rule and rules here, kernels in `kernels.rs`
//! (`shaders/matmul_*.wgsl`), the f64 reference in `reference.rs`.

mod kernels;
mod reference;

use crate::kernel::{Lowering, Target};
use crate::ops::family::Family;
use crate::shape::{Shape, broadcast_shapes};
use crate::tensor::Tensor;

#[cfg(test)]
pub(crate) use kernels::{MATMUL_SCALAR, MATMUL_TILED, MATMUL_VEC4};

/// Output shape of `a @ b` for `a: [..., m, k]`, `b: [..., k, n]`.
#[track_caller]
pub(crate) fn matmul_shape(a: &Shape, b: &Shape) -> Shape {
    assert!(
        a.rank() >= 2 && b.rank() >= 2,
        "matmul: both operands need at least 2 axes, got {a:?} and {b:?} (reshape vectors to [1, n] or [n, 1])"
    );
    let (m, k) = (a.dims()[a.rank() - 2], a.dims()[a.rank() - 1]);
    let (k2, n) = (b.dims()[b.rank() - 2], b.dims()[b.rank() - 1]);
    assert_eq!(k, k2, "matmul: inner dimensions differ: {a:?} @ {b:?}");
    let (ba, bb) = (&a.dims()[..a.rank() - 2], &b.dims()[..b.rank() - 2]);
    let fits = (1..=ba.len().min(bb.len())).all(|i| {
        ba[ba.len() - i] == bb[bb.len() - i] || ba[ba.len() - i] == 1 || bb[bb.len() - i] == 1
    });
    assert!(
        fits,
        "matmul: the batch dims {ba:?} of {a:?} and {bb:?} of {b:?} do not broadcast"
    );
    let batch = broadcast_shapes("matmul (batch dims)", &Shape::new(ba), &Shape::new(bb));
    let mut dims = batch.0;
    dims.extend([m, n]);
    Shape::new(&dims)
}

impl Tensor {
    /// Matrix product `self @ other`; leading (batch) axes broadcast.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let shape = matmul_shape(self.shape(), other.shape());
        Tensor::record_family(Matmul, &[self, other], shape)
    }
}

/// `[..., m, k] @ [..., k, n]`.
#[derive(Debug)]
pub(crate) struct Matmul;

impl Family for Matmul {
    fn name(&self) -> String {
        "matmul".into()
    }

    fn lower(&self, out: &Shape, inputs: &[&Shape], target: Target) -> Lowering {
        kernels::lower(out, inputs[0], inputs[1], target)
    }

    /// A multiply and an add per output element and inner index.
    fn flops(&self, out: &Shape, inputs: &[&Shape]) -> u64 {
        let k = inputs[0].dims().last().copied().unwrap_or(1);
        2 * out.numel() as u64 * k as u64
    }

    // C = A·B:  ∂L/∂A = G·Bᵀ,  ∂L/∂B = Aᵀ·G  (batch dims un-broadcast centrally).
    // A 2-D B shared by a batched A (a linear layer on [batch, T, k]) gets
    // Σ_batch Aᵀ·G as a product over the stacked rows, [k, batch·m] @ [batch·m, n],
    // instead of one product per batch entry summed afterwards.
    fn vjp(&self, x: &[Tensor], _y: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let (a, b) = (&x[0], &x[1]);
        let gb = if b.rank() == 2 && a.rank() > 2 && g.shape() != b.shape() {
            let k = a.dims()[a.rank() - 1];
            let n = g.dims()[g.rank() - 1];
            let rows = g.numel() / n.max(1);
            if a.numel() == rows * k {
                // Long sums over few outputs are split into a batch of
                // partial products, added in a fixed order: more parallel work.
                let parts = [16, 8, 4, 2]
                    .into_iter()
                    .find(|&p| rows % p == 0 && rows / p >= 128)
                    .unwrap_or(1);
                let r = rows / parts;
                a.reshape([parts, r, k])
                    .t()
                    .matmul(&g.reshape([parts, r, n]))
                    .sum_axes(&[0], false)
            } else {
                a.t().matmul(g)
            }
        } else {
            a.t().matmul(g)
        };
        vec![Some(g.matmul(&b.t())), Some(gb)]
    }

    // Δ(AB) = ΔA·B + A·ΔB; the tangents' batch axes are matmul batch axes.
    fn jvp(
        &self,
        x: &[Tensor],
        y: &Tensor,
        dx: &[Option<Tensor>],
        lead: &[usize],
    ) -> Option<Tensor> {
        let rank = y.rank();
        let da = dx[0]
            .as_ref()
            .map(|d| crate::autodiff::jvp::lift(d, lead, rank).matmul(&x[1]));
        let db = dx[1]
            .as_ref()
            .map(|d| x[0].matmul(&crate::autodiff::jvp::lift(d, lead, rank)));
        match (da, db) {
            (Some(a), Some(b)) => Some(&a + &b),
            (a, b) => a.or(b),
        }
    }

    fn reference(&self, out: &Shape, x: &[&[f64]], shapes: &[&Shape]) -> Vec<f64> {
        reference::matmul(out, x[0], shapes[0], x[1], shapes[1])
    }
}
