//! Dropout with a seeded mask generated on the GPU from a counter-based
//! hash (`shaders/dropout_mask.wgsl`): integer arithmetic only, so a seed
//! gives the same mask on every adapter and in the browser, and the f64
//! reference reproduces it exactly.

use std::borrow::Cow;

use crate::device::Device;
use crate::graph::family::Family;
use crate::kernel::{Buf, KernelCall, Lowering, Target, grid_1d, word};
use crate::shape::Shape;
use crate::tensor::Tensor;

const DROPOUT_MASK: &str = include_str!("../../shaders/dropout_mask.wgsl");

impl Tensor {
    /// Zeroes each element with probability `p` and scales the rest by
    /// 1/(1 − p) (inverted dropout), with a mask fixed by `seed`: use a new
    /// seed each step. The gradient passes through the same mask.
    #[track_caller]
    pub fn dropout(&self, p: f32, seed: u64) -> Tensor {
        check_probability("dropout", p);
        if p == 0.0 {
            return self.clone();
        }
        // The mask is f32 (1/(1 − p) exactly); the result is stored in
        // the input's dtype, not promoted by this internal constant.
        (self * &dropout_mask(self.device(), self.shape().clone(), p, seed)).to_dtype(self.dtype())
    }
}

/// Panics unless `p` is a dropout probability: in [0, 1) (NaN is not).
#[track_caller]
pub(crate) fn check_probability(op: &str, p: f32) {
    assert!(
        (0.0..1.0).contains(&p),
        "{op}: the probability p must be in [0, 1), got {p}"
    );
}

/// The mask alone: 1/(1 − p) where kept, 0 where dropped.
#[track_caller]
pub fn dropout_mask(device: &Device, shape: impl Into<Shape>, p: f32, seed: u64) -> Tensor {
    check_probability("dropout_mask", p);
    Tensor::record_source(DropoutMask { p, seed }, device, shape.into())
}

#[derive(Debug)]
pub(crate) struct DropoutMask {
    p: f32,
    seed: u64,
}

impl DropoutMask {
    fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }
}

/// PCG-RXS-M-XS, as in the shader.
fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

impl Family for DropoutMask {
    fn name(&self) -> String {
        format!("dropout_mask(p={}, seed={})", self.p, self.seed)
    }
    fn lower(&self, out: &Shape, _: &[&Shape], _: Target) -> Lowering {
        let n = out.numel();
        Lowering {
            temps: Vec::new(),
            kernels: vec![KernelCall {
                source: Cow::Borrowed(DROPOUT_MASK),
                entry: "dropout_mask",
                params: vec![
                    word(n),
                    self.seed as u32,
                    (self.seed >> 32) as u32,
                    self.p.to_bits(),
                    self.scale().to_bits(),
                ],
                bindings: vec![Buf::Output],
                groups: grid_1d(n as u64),
                loop_trips: 0,
            }],
        }
    }
    // A constant: no inputs, no derivatives.
    fn vjp(&self, _: &[Tensor], _: &Tensor, _: &Tensor) -> Vec<Option<Tensor>> {
        Vec::new()
    }
    fn jvp(&self, _: &[Tensor], _: &Tensor, _: &[Option<Tensor>], _: &[usize]) -> Option<Tensor> {
        None
    }
    fn reference(&self, out: &Shape, _: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        let (lo, hi) = (self.seed as u32, (self.seed >> 32) as u32);
        (0..out.numel())
            .map(|i| {
                let u = (pcg(pcg(i as u32 ^ lo) ^ hi) >> 8) as f32 * (1.0 / 16_777_216.0);
                if u >= self.p {
                    self.scale() as f64
                } else {
                    0.0
                }
            })
            .collect()
    }
}

#[cfg(test)]
#[test]
fn dropout_mask_shader_validates() {
    crate::shader_check::validate("dropout_mask", DROPOUT_MASK);
}
