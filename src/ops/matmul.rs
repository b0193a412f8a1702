//! Matrix product, 2-D and batched with numpy broadcasting of the batch dims.

use crate::graph::Op;
use crate::shape::{Shape, broadcast_shapes};
use crate::tensor::Tensor;

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
    let batch = broadcast_shapes(
        "matmul (batch dims)",
        &Shape::new(&a.dims()[..a.rank() - 2]),
        &Shape::new(&b.dims()[..b.rank() - 2]),
    );
    let mut dims = batch.0;
    dims.extend([m, n]);
    Shape::new(&dims)
}

impl Tensor {
    /// Matrix product `self @ other`; leading (batch) axes broadcast.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let shape = matmul_shape(self.shape(), other.shape());
        Tensor::record(Op::Matmul, &[self, other], shape)
    }
}
