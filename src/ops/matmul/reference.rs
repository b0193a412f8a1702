//! Matmul's f64 reference: the defining triple loop, by index arithmetic.

use crate::shape::{Shape, broadcast_strides, unravel};

pub(super) fn matmul(out: &Shape, x: &[f64], a: &Shape, y: &[f64], b: &Shape) -> Vec<f64> {
    let dims = out.dims();
    let (m, k, nn) = (
        a.dims()[a.rank() - 2],
        a.dims()[a.rank() - 1],
        b.dims()[b.rank() - 1],
    );
    let batch = Shape::new(&dims[..dims.len() - 2]);
    let a_batch = broadcast_strides(&Shape::new(&a.dims()[..a.rank() - 2]), &batch);
    let b_batch = broadcast_strides(&Shape::new(&b.dims()[..b.rank() - 2]), &batch);
    let at = |idx: &[usize], s: &[usize]| idx.iter().zip(s).map(|(i, s)| i * s).sum::<usize>();
    let mut result = vec![0.0; out.numel()];
    for bi in 0..batch.numel() {
        let idx = unravel(bi, batch.dims());
        let (ao, bo) = (at(&idx, &a_batch) * m * k, at(&idx, &b_batch) * k * nn);
        for r in 0..m {
            for c in 0..nn {
                result[bi * m * nn + r * nn + c] =
                    (0..k).map(|j| x[ao + r * k + j] * y[bo + j * nn + c]).sum();
            }
        }
    }
    result
}

/// `x` (of shape `s`) with its last two axes swapped if `t`, and its shape.
pub(super) fn transposed(x: &[f64], s: &Shape, t: bool) -> (Vec<f64>, Shape) {
    if !t {
        return (x.to_vec(), s.clone());
    }
    let r = s.rank();
    let (rows, cols) = (s.dims()[r - 2], s.dims()[r - 1]);
    let mut dims = s.dims().to_vec();
    dims.swap(r - 2, r - 1);
    let mut out = vec![0.0; x.len()];
    if x.is_empty() {
        // No matrices, or empty ones (`chunks` needs a nonzero size).
        return (out, Shape::new(&dims));
    }
    for (b, chunk) in x.chunks(rows * cols).enumerate() {
        for i in 0..rows {
            for j in 0..cols {
                out[b * rows * cols + j * rows + i] = chunk[i * cols + j];
            }
        }
    }
    (out, Shape::new(&dims))
}
