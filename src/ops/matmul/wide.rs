//! Products too wide for one dispatch: a kernel's workgroups along x cover
//! C's columns, at most 65,535 of them, 8 or more columns each; a
//! `[1, 1] @ [1, 4194304]` needs more. Such a product is computed as its
//! transpose, `Cᵀ = op(B)ᵀ·op(A)ᵀ`, which is tall (tall products are
//! split into batches of row blocks), into scratch, then copied into place.
//! Each output is the same fmas in the same order, so the bits are those of
//! the product computed directly.

use crate::kernel::{Buf, Lowering, MAX_GROUPS_PER_DIM, Window, strided_copy};
use crate::shape::Shape;

/// The narrowest any matmul kernel's workgroup is: `matmul_strided`'s 8
/// columns.
const FEWEST_COLUMNS_PER_GROUP: usize = 8;

/// Whether a product with `n` columns may need more workgroups along x
/// than one dispatch has.
pub(super) fn too_wide(n: usize) -> bool {
    n.div_ceil(FEWEST_COLUMNS_PER_GROUP) > MAX_GROUPS_PER_DIM as usize
}

/// `op(A)·op(B)` of shape `out` ([batch..., m, n]) through its transpose:
/// `lower_transposed(out_t, flags)` lowers `op(B)ᵀ·op(A)ᵀ` with A and B
/// swapped (its inputs 0 and 1 are B and A); its kernels are rebound here.
pub(super) fn through_transpose(
    out: &Shape,
    lower_transposed: impl FnOnce(&Shape) -> Lowering,
) -> Lowering {
    let r = out.rank();
    let (m, n) = (out.dims()[r - 2], out.dims()[r - 1]);
    let batch: usize = out.dims()[..r - 2].iter().product();
    let mut dims = out.dims()[..r - 2].to_vec();
    dims.extend([n, m]);
    let inner = lower_transposed(&Shape::new(&dims));
    // Its output becomes scratch 0, its scratch buffers follow.
    let rebind = |b: Buf| match b {
        Buf::Input(0) => Buf::Input(1),
        Buf::Input(1) => Buf::Input(0),
        Buf::Input(i) => Buf::Input(i),
        Buf::Output => Buf::Temp(0),
        Buf::Temp(t) => Buf::Temp(t + 1),
        Buf::Status => Buf::Status,
    };
    let mut low = Lowering {
        temps: std::iter::once(batch * m * n).chain(inner.temps).collect(),
        kernels: Vec::new(),
    };
    for mut call in inner.kernels {
        call.bindings = call.bindings.into_iter().map(rebind).collect();
        low.kernels.push(call);
    }
    // [batch, n, m] → [batch, m, n].
    low.kernels.push(strided_copy(
        Buf::Temp(0),
        Buf::Output,
        &Window {
            dims: &[batch, m, n],
            src_offset: 0,
            src_strides: &[m * n, 1, m],
            dst_offset: 0,
            dst_strides: &[m * n, n, 1],
        },
    ));
    low
}
