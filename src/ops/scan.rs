//! cumsum along an axis: a family in one file (shape rule, kernel
//! `shaders/cumsum.wgsl`, rules, f64 reference).

use std::borrow::Cow;

use crate::graph::family::Family;
use crate::kernel::{Buf, KernelCall, Lowering, MAX_LOOP_TRIPS, Target, grid_1d, word};
use crate::shape::Shape;
use crate::tensor::Tensor;

const CUMSUM: &str = include_str!("../../shaders/cumsum.wgsl");

impl Tensor {
    /// Running sums along `axis`: out[…, i, …] = Σ_{j ≤ i} x[…, j, …].
    #[track_caller]
    pub fn cumsum(&self, axis: usize) -> Tensor {
        self.shape().check_axis("cumsum", axis);
        cumsum(self, axis, false)
    }
}

fn cumsum(x: &Tensor, axis: usize, reverse: bool) -> Tensor {
    Tensor::record_family(CumSum { axis, reverse }, &[x], x.shape().clone())
}

/// Running sums along `axis`, from the end when `reverse`.
#[derive(Debug)]
pub(crate) struct CumSum {
    axis: usize,
    reverse: bool,
}

impl Family for CumSum {
    fn name(&self) -> String {
        let op = if self.reverse {
            "reverse_cumsum"
        } else {
            "cumsum"
        };
        format!("{op}[{}]", self.axis)
    }
    fn lower(&self, out: &Shape, _: &[&Shape], _: Target) -> Lowering {
        let (outer, size, inner) = out.around(self.axis);
        // One dispatch per MAX_LOOP_TRIPS steps along the axis, each
        // carrying on from the sums the last one stored.
        let chunk = MAX_LOOP_TRIPS as usize;
        let kernels = (0..size.max(1))
            .step_by(chunk)
            .map(|first| {
                let end = (first + chunk).min(size);
                KernelCall {
                    source: Cow::Borrowed(CUMSUM),
                    entry: "cumsum",
                    params: [outer, size, inner, self.reverse as usize, first, end]
                        .map(word)
                        .to_vec(),
                    bindings: vec![Buf::Input(0), Buf::Output],
                    groups: grid_1d((outer * inner) as u64),
                    loop_trips: (end - first) as u64,
                }
            })
            .collect();
        Lowering {
            temps: Vec::new(),
            kernels,
        }
    }
    // y_i = Σ_{j ≤ i} x_j, so ∂L/∂x_j = Σ_{i ≥ j} g_i: the reversed cumsum.
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(cumsum(g, self.axis, !self.reverse))]
    }
    // Linear: Δy = cumsum(Δx); the tangent's batch axes come first, so the
    // scanned axis moves by their count.
    fn jvp(
        &self,
        _: &[Tensor],
        _: &Tensor,
        dx: &[Option<Tensor>],
        lead: &[usize],
    ) -> Option<Tensor> {
        Some(cumsum(
            dx[0].as_ref()?,
            self.axis + lead.len(),
            self.reverse,
        ))
    }
    fn reference(&self, out: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        let (outer, size, inner) = out.around(self.axis);
        let mut y = vec![0.0; out.numel()];
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = 0.0;
                for j in 0..size {
                    let k = if self.reverse { size - 1 - j } else { j };
                    let at = (o * size + k) * inner + i;
                    acc += x[0][at];
                    y[at] = acc;
                }
            }
        }
        y
    }
}

#[cfg(test)]
#[test]
fn cumsum_shader_validates() {
    crate::shader_check::validate("cumsum", CUMSUM);
}
