//! Matmul's kernels: a family of variants chosen per adapter.
//!
//! - `matmul_vec4`: register-blocked, 8×16 outputs per invocation from vec4
//!   loads, for K and N multiples of 4 (CPU rasterizers: no barriers).
//! - `matmul_scalar`: the same blocking with scalar loads, for other sizes.
//! - `matmul_tiled`: workgroups stage tiles in workgroup memory (real GPUs).

use std::borrow::Cow;

use crate::device::MatmulKernel;
use crate::kernel::{
    Buf, KernelCall, Lowering, MAX_GROUPS_PER_DIM, Target, Window, fill, strided_copy, word,
};
use crate::shape::{Shape, broadcast_strides};

pub(crate) const MATMUL_VEC4: &str = include_str!("../../../shaders/matmul_vec4.wgsl");
pub(crate) const MATMUL_SCALAR: &str = include_str!("../../../shaders/matmul_scalar.wgsl");
pub(crate) const MATMUL_TILED: &str = include_str!("../../../shaders/matmul_tiled.wgsl");

/// Variant and grid (z = batch) for an `m×k @ k×n` product.
fn variant(
    family: MatmulKernel,
    m: usize,
    n: usize,
    k: usize,
) -> (&'static str, &'static str, [u32; 2]) {
    if family == MatmulKernel::Tiled {
        (
            MATMUL_TILED,
            "matmul_tiled",
            [n.div_ceil(64) as u32, m.div_ceil(64) as u32],
        )
    } else if k % 4 == 0 && n % 4 == 0 && k > 0 {
        let cols = (n / 4).div_ceil(4) as u32;
        let rows = m.div_ceil(8) as u32;
        (
            MATMUL_VEC4,
            "matmul_vec4",
            [cols.div_ceil(8), rows.div_ceil(8)],
        )
    } else {
        let cols = n.div_ceil(4) as u32;
        let rows = m.div_ceil(4) as u32;
        (
            MATMUL_SCALAR,
            "matmul_scalar",
            [cols.div_ceil(8), rows.div_ceil(8)],
        )
    }
}

/// Batched matmul. An operand whose batch dims only partly broadcast is
/// expanded to the full batch first (into a scratch buffer); one that does
/// not broadcast at all, or is shared by every batch entry, is read in place.
pub(super) fn lower(out: &Shape, a: &Shape, b: &Shape, target: Target) -> Lowering {
    let r = out.rank();
    let (m, n) = (out.dims()[r - 2], out.dims()[r - 1]);
    let k = a.dims()[a.rank() - 1];
    let batch_dims = &out.dims()[..r - 2];
    let batch: usize = batch_dims.iter().product();
    let mut low = Lowering::default();
    if k == 0 {
        low.kernels.push(fill(Buf::Output, out.numel(), 0.0));
        return low;
    }
    let mut operand = |x: &Shape, input: usize, rows: usize, cols: usize| -> (Buf, usize) {
        let xb: usize = x.dims()[..x.rank() - 2].iter().product();
        if xb == batch {
            (Buf::Input(input), rows * cols)
        } else if xb == 1 {
            (Buf::Input(input), 0)
        } else {
            let mut full = batch_dims.to_vec();
            full.extend([rows, cols]);
            let full = Shape::new(&full);
            let src = broadcast_strides(x, &full);
            let temp = low.temps.len();
            low.temps.push(full.numel());
            low.kernels.push(strided_copy(
                Buf::Input(input),
                Buf::Temp(temp),
                &Window {
                    dims: full.dims(),
                    src_offset: 0,
                    src_strides: &src,
                    dst_offset: 0,
                    dst_strides: &full.strides(),
                },
            ));
            (Buf::Temp(temp), rows * cols)
        }
    };
    let (sa, stride_a) = operand(a, 0, m, k);
    let (sb, stride_b) = operand(b, 1, k, n);
    // A B shared by every batch entry of a contiguous A: the batch is just
    // more rows, [batch·m, k] @ [k, n], one product with more parallelism.
    let (m, batch, stride_a) = if stride_b == 0 && stride_a == m * k && batch > 1 {
        (batch * m, 1, 0)
    } else {
        (m, batch, stride_a)
    };
    // Rows beyond one dispatch's 65,535 row groups (a [4194304, 1] @ [1, 1]
    // has 131,072 of them): whole chunks of rows become batch entries of one
    // product, the rows left over a product of their own in scratch buffers.
    let (_, entry, _) = variant(target.family, m, n, k);
    let max_rows = rows_per_group(entry) * MAX_GROUPS_PER_DIM as usize;
    if batch == 1 && m > max_rows {
        let chunks = m / max_rows;
        let done = chunks * max_rows;
        // One B serves every chunk: its batch stride is 0.
        push_products(
            &mut low,
            target,
            (max_rows, n, k),
            chunks,
            (max_rows * k, 0),
            [sa, sb, Buf::Output],
        );
        let rest = m - done;
        if rest > 0 {
            let (ta, tc) = (low.temps.len(), low.temps.len() + 1);
            low.temps.extend([rest * k, rest * n]);
            low.kernels.push(strided_copy(
                sa,
                Buf::Temp(ta),
                &Window {
                    dims: &[rest * k],
                    src_offset: done * k,
                    src_strides: &[1],
                    dst_offset: 0,
                    dst_strides: &[1],
                },
            ));
            push_products(
                &mut low,
                target,
                (rest, n, k),
                1,
                (0, 0),
                [Buf::Temp(ta), sb, Buf::Temp(tc)],
            );
            low.kernels.push(strided_copy(
                Buf::Temp(tc),
                Buf::Output,
                &Window {
                    dims: &[rest * n],
                    src_offset: 0,
                    src_strides: &[1],
                    dst_offset: done * n,
                    dst_strides: &[1],
                },
            ));
        }
        return low;
    }
    push_products(
        &mut low,
        target,
        (m, n, k),
        batch,
        (stride_a, stride_b),
        [sa, sb, Buf::Output],
    );
    low
}

/// Rows of C one workgroup of a variant covers.
fn rows_per_group(entry: &str) -> usize {
    match entry {
        "matmul_tiled" | "matmul_vec4" => 64,
        _ => 32,
    }
}

/// `batch` products `[m, k] @ [k, n]` (operands at batch strides `strides`),
/// in as many dispatches as the 65,535-group limit on z needs.
fn push_products(
    low: &mut Lowering,
    target: Target,
    (m, n, k): (usize, usize, usize),
    batch: usize,
    (stride_a, stride_b): (usize, usize),
    bindings: [Buf; 3],
) {
    let (source, entry, groups) = variant(target.family, m, n, k);
    let per_dispatch = MAX_GROUPS_PER_DIM as usize;
    for first in (0..batch).step_by(per_dispatch) {
        let z = (batch - first).min(per_dispatch) as u32;
        low.kernels.push(KernelCall {
            source: Cow::Borrowed(source),
            entry,
            params: [m, n, k, batch, stride_a, stride_b, first]
                .map(word)
                .to_vec(),
            bindings: bindings.to_vec(),
            groups: [groups[0], groups[1], z],
        });
    }
}
