//! flip: one axis reversed. A family in its own folder: the shape rule and
//! method, the kernel (`flip.wgsl`, validated below), the rules, the f64
//! reference; registered by one line in `ops/mod.rs`.

use std::borrow::Cow;

use crate::graph::family::Family;
use crate::kernel::{Buf, KernelCall, Lowering, Target, grid_1d, word};
use crate::shape::Shape;
use crate::tensor::Tensor;

const FLIP: &str = include_str!("flip.wgsl");

impl Tensor {
    /// The entries of `axis` in reverse order: out[…, i, …] = x[…, n − 1 − i, …]
    /// (`torch.flip` along one axis; a horizontal flip of NCHW images is
    /// `flip(3)`).
    #[track_caller]
    pub fn flip(&self, axis: usize) -> Tensor {
        self.shape().check_axis("flip", axis);
        flip(self, axis)
    }
}

fn flip(x: &Tensor, axis: usize) -> Tensor {
    Tensor::record_family(Flip { axis }, &[x], x.shape().clone())
}

/// `axis` reversed.
#[derive(Debug)]
struct Flip {
    axis: usize,
}

impl Family for Flip {
    fn name(&self) -> String {
        format!("flip[{}]", self.axis)
    }
    fn lower(&self, out: &Shape, _: &[&Shape], _: Target) -> Lowering {
        let (outer, size, inner) = out.around(self.axis);
        Lowering {
            temps: Vec::new(),
            kernels: vec![KernelCall {
                source: Cow::Borrowed(FLIP),
                entry: "flip",
                params: [outer, size, inner].map(word).to_vec(),
                bindings: vec![Buf::Input(0), Buf::Output],
                groups: grid_1d(out.numel() as u64),
                loop_trips: 0,
            }],
        }
    }
    // A permutation of the entries, its own inverse: ∂L/∂x = flip(g).
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(flip(g, self.axis))]
    }
    // Linear: Δy = flip(Δx), the axis moved past the tangent's batch axes.
    fn jvp(
        &self,
        _: &[Tensor],
        _: &Tensor,
        dx: &[Option<Tensor>],
        lead: &[usize],
    ) -> Option<Tensor> {
        Some(flip(dx[0].as_ref()?, self.axis + lead.len()))
    }
    fn reference(&self, out: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        let (outer, size, inner) = out.around(self.axis);
        let mut y = Vec::with_capacity(out.numel());
        for o in 0..outer {
            for k in (0..size).rev() {
                let row = (o * size + k) * inner;
                y.extend_from_slice(&x[0][row..row + inner]);
            }
        }
        y
    }
}

#[cfg(test)]
#[test]
fn flip_shader_validates() {
    crate::shader_check::validate("flip", FLIP);
}
