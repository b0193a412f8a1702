//! Matrix product, 2-D and batched with numpy broadcasting of the batch dims.
//!
//! The family: shape rule and rules here, kernels in `kernels.rs`
//! (`shaders/matmul_*.wgsl`), the f64 reference in `reference.rs`.

mod kernels;
mod reference;
mod wide;

use crate::graph::family::Family;
use crate::kernel::{KernelFamily, Lowering, Target};
use crate::shape::{Shape, broadcast_shapes};
use crate::tensor::Tensor;

#[cfg(test)]
mod shader_tests;

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
    /// Matrix product `self @ other`; leading (batch) axes broadcast. An
    /// operand that is a transpose of the last two axes (`x.t()`) is read
    /// in place, never copied.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (a, ta) = untransposed(self);
        let (b, tb) = untransposed(other);
        matmul_t(&a, &b, ta, tb)
    }
}

/// `x` as a transpose of the last two axes of another tensor, if it is one
/// whose input can still be read (pending, or realized with its input).
fn untransposed(x: &Tensor) -> (Tensor, bool) {
    if let Some(input) = x.swapped_last_axes_of() {
        return (input, true);
    }
    (x.clone(), false)
}

/// `op(a) @ op(b)`, op transposing the last two axes where `ta`/`tb` say so.
#[track_caller]
pub(crate) fn matmul_t(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Tensor {
    let shape = matmul_shape(&op_shape(a.shape(), ta), &op_shape(b.shape(), tb));
    Tensor::record_family(Matmul { ta, tb }, &[a, b], shape)
}

/// The shape of `x`, transposed in its last two axes if `t`.
fn op_shape(x: &Shape, t: bool) -> Shape {
    let mut dims = x.dims().to_vec();
    let r = dims.len();
    if t && r >= 2 {
        dims.swap(r - 2, r - 1);
    }
    Shape::new(&dims)
}

/// `op(A) @ op(B)` for `A: [..., m, k]`, `B: [..., k, n]` as op makes them,
/// op a transpose of the last two axes where `ta`/`tb` say so: the backward
/// pass's G·Bᵀ and Aᵀ·G read their operands in place.
#[derive(Debug)]
pub(crate) struct Matmul {
    pub ta: bool,
    pub tb: bool,
}

impl Family for Matmul {
    fn name(&self) -> String {
        match (self.ta, self.tb) {
            (false, false) => "matmul".into(),
            (true, false) => "matmul(Aᵀ)".into(),
            (false, true) => "matmul(Bᵀ)".into(),
            (true, true) => "matmul(Aᵀ, Bᵀ)".into(),
        }
    }

    fn lower(&self, out: &Shape, inputs: &[&Shape], target: Target) -> Lowering {
        kernels::lower(out, inputs[0], inputs[1], (self.ta, self.tb), target, false)
    }

    /// A transposed operand read in place, or copied to scratch first so
    /// that `matmul_vec4` runs: which is faster depends on the shapes and
    /// the adapter (on lavapipe: the copy at n = 256, in place at 1024).
    /// Where the adapter has fixed-size subgroups, the subgroup kernels
    /// too, transposed operands read in place (`matmul_sg`, or
    /// `matmul_strided_sg` where the vec4 kernels cannot go); first of
    /// all `matmul_strided_sg` for every product, the choice until
    /// autotune has timed the rest (a shape's second sight): one pipeline
    /// for all of a gradient's products, so a cold start compiles one.
    fn lower_variants(&self, out: &Shape, inputs: &[&Shape], target: Target) -> Vec<Lowering> {
        use kernels::Subgroups;
        let plain = self.lower(out, inputs, target);
        if target.family == KernelFamily::Tiled {
            return vec![plain];
        }
        let (a, b) = (inputs[0], inputs[1]);
        let flags = (self.ta, self.tb);
        let lower = |copy, sg| kernels::lower_with(out, a, b, flags, target, copy, sg);
        if target.subgroup.is_none() {
            if flags == (false, false) {
                return vec![plain];
            }
            return vec![plain, lower(true, Subgroups::Off)];
        }
        let mut variants = vec![
            lower(false, Subgroups::StridedOnly),
            lower(false, Subgroups::On),
            plain,
        ];
        if flags != (false, false) {
            variants.push(lower(true, Subgroups::On));
        }
        variants
    }

    /// With subgroups, the second: `matmul_sg` where it can go (the
    /// fastest at most of the MLP's and the bench's shapes on lavapipe),
    /// `matmul_strided_sg` with 8 rows per lane elsewhere; without, the
    /// plain lowering. (The first, the cold start's small kernel, is the
    /// slowest once compiled.)
    fn untimed_variant(&self, _out: &Shape, _inputs: &[&Shape], target: Target) -> usize {
        match (target.family, target.subgroup) {
            (KernelFamily::Tiled, _) | (_, None) => 0,
            _ => 1,
        }
    }

    /// A multiply and an add per output element and inner index.
    fn flops(&self, out: &Shape, inputs: &[&Shape]) -> u64 {
        let k = op_shape(inputs[0], self.ta)
            .dims()
            .last()
            .copied()
            .unwrap_or(1);
        2 * out.numel() as u64 * k as u64
    }

    // C = op(A)·op(B):  ∂L/∂op(A) = G·op(B)ᵀ,  ∂L/∂op(B) = op(A)ᵀ·G, and
    // through a transpose the adjoint is transposed back: ∂L/∂A = op(B)·Gᵀ
    // where op(A) = Aᵀ, ∂L/∂B = Gᵀ·op(A) where op(B) = Bᵀ. Each is one
    // product reading its operands in place (batch dims un-broadcast centrally).
    // A 2-D B shared by a batched A (a linear layer on [batch, T, k]) gets
    // Σ_batch Aᵀ·G as a product over the stacked rows, [k, batch·m] @ [batch·m, n],
    // instead of one product per batch entry summed afterwards.
    fn vjp(&self, x: &[Tensor], _y: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let (a, b) = (&x[0], &x[1]);
        let (ta, tb) = (self.ta, self.tb);
        let ga = if ta {
            matmul_t(b, g, tb, true)
        } else {
            matmul_t(g, b, false, !tb)
        };
        let gb = if tb {
            matmul_t(g, a, true, ta)
        } else if !ta && b.rank() == 2 && a.rank() > 2 && g.shape() != b.shape() {
            let k = a.dims()[a.rank() - 1];
            let n = g.dims()[g.rank() - 1];
            let rows = g.numel() / n.max(1);
            if a.numel() == rows * k {
                // Long sums over few outputs are split into a batch of
                // partial products, added in a fixed order: more parallel work.
                let parts = [16, 8, 4, 2]
                    .into_iter()
                    .find(|&p| rows.is_multiple_of(p) && rows / p >= 128)
                    .unwrap_or(1);
                let r = rows / parts;
                matmul_t(
                    &a.reshape([parts, r, k]),
                    &g.reshape([parts, r, n]),
                    true,
                    false,
                )
                .sum_axes(&[0])
            } else {
                matmul_t(a, g, true, false)
            }
        } else {
            matmul_t(a, g, !ta, false)
        };
        vec![Some(ga), Some(gb)]
    }

    // Δ(op(A)op(B)) = op(ΔA)·op(B) + op(A)·op(ΔB); the tangents' batch axes
    // are matmul batch axes (op acts on the last two).
    fn jvp(
        &self,
        x: &[Tensor],
        y: &Tensor,
        dx: &[Option<Tensor>],
        lead: &[usize],
    ) -> Option<Tensor> {
        let rank = y.rank();
        let da = dx[0].as_ref().map(|d| {
            matmul_t(
                &crate::graph::family::lift(d, lead, rank),
                &x[1],
                self.ta,
                self.tb,
            )
        });
        let db = dx[1].as_ref().map(|d| {
            matmul_t(
                &x[0],
                &crate::graph::family::lift(d, lead, rank),
                self.ta,
                self.tb,
            )
        });
        match (da, db) {
            (Some(a), Some(b)) => Some(&a + &b),
            (a, b) => a.or(b),
        }
    }

    fn reference(&self, out: &Shape, x: &[&[f64]], shapes: &[&Shape]) -> Vec<f64> {
        let (a, sa) = reference::transposed(x[0], shapes[0], self.ta);
        let (b, sb) = reference::transposed(x[1], shapes[1], self.tb);
        reference::matmul(out, &a, &sa, &b, &sb)
    }
}
