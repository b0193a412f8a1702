//! Gradient clipping, as graph ops: it runs on the GPU inside the step's
//! one submit, and nothing is read back.

use crate::tensor::Tensor;

/// How gradients are clipped before an update (`Sgd::clip`, `Adam::clip`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clip {
    /// All gradients scaled together so that their global L2 norm is at
    /// most the bound ([`clip_grad_norm`]).
    Norm(f32),
    /// Every element clamped to [−bound, bound] ([`clip_grad_value`]).
    Value(f32),
}

impl Clip {
    #[track_caller]
    pub(crate) fn check(&self, op: &str) {
        let (Clip::Norm(b) | Clip::Value(b)) = *self;
        assert!(
            b.is_finite() && b > 0.0,
            "{op}: the clipping bound must be positive and finite, got {b}"
        );
    }

    pub(crate) fn apply(&self, grads: &[Tensor]) -> Vec<Tensor> {
        match *self {
            Clip::Norm(max) => clip_grad_norm(grads, max).0,
            Clip::Value(bound) => clip_grad_value(grads, bound),
        }
    }
}

/// PyTorch's `clip_grad_norm_`: with n = √(Σ‖g‖²) over every gradient,
/// each is multiplied by min(1, max_norm / (n + 10⁻⁶)). Returns the clipped
/// gradients and n (a 0-d tensor). A NaN or infinite norm makes every
/// gradient NaN, so a step on them is visibly wrong, as in PyTorch.
#[track_caller]
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f32) -> (Vec<Tensor>, Tensor) {
    Clip::Norm(max_norm).check("clip_grad_norm");
    assert!(!grads.is_empty(), "clip_grad_norm: no gradients");
    let mut total = grads[0].square().sum();
    for g in &grads[1..] {
        total = &total + &g.square().sum();
    }
    let norm = total.sqrt();
    // The bound 1 is generated on the GPU (a fill fused into the kernel),
    // not uploaded every step.
    let one = Tensor::full(norm.device(), crate::shape::Shape::scalar(), 1.0);
    let factor = (max_norm / &norm.add_scalar(1e-6)).minimum(&one);
    (grads.iter().map(|g| g * &factor).collect(), norm)
}

/// PyTorch's `clip_grad_value_`: every element clamped to [−bound, bound].
#[track_caller]
pub fn clip_grad_value(grads: &[Tensor], bound: f32) -> Vec<Tensor> {
    Clip::Value(bound).check("clip_grad_value");
    grads.iter().map(|g| g.clamp(-bound, bound)).collect()
}
