//! Adam and AdamW.

use std::collections::HashMap;
use std::ops::Bound;

use super::{Clip, LrSchedule, Optimizer, check_non_negative, check_setting, check_step, state};
use crate::error::Result;
use crate::graph::NodeId;
use crate::tensor::Tensor;

/// Adam (Kingma & Ba), bias-corrected; with decoupled weight decay it is
/// AdamW (Loshchilov & Hutter):
/// m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  m̂ = m/(1−β1ᵗ);  v̂ = v/(1−β2ᵗ);
/// w ← w − η·(m̂ / (√v̂ + ε) + λ·w)   (AdamW; plain Adam adds λ·w to g instead),
/// η taken from the learning-rate schedule at each step.
///
/// ```
/// # use webgrad::optim::{Adam, LrSchedule};
/// let adamw = Adam::new(LrSchedule::warmup_cosine(3e-4, 100, 10_000)).decoupled_weight_decay(0.01);
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    /// The learning rate at each step.
    pub lr: LrSchedule,
    /// The first moment's decay β1.
    pub beta1: f32,
    /// The second moment's decay β2.
    pub beta2: f32,
    /// ε, added to the variance before the square root.
    pub eps: f32,
    /// The weight decay λ.
    pub weight_decay: f32,
    /// AdamW's decay (w ← w − η·λ·w) rather than Adam's (g ← g + λ·w).
    pub decoupled: bool,
    /// Applied to the gradients before the update (see [`Clip`]).
    pub clip: Option<Clip>,
    t: i32,
    m: HashMap<NodeId, Tensor>,
    v: HashMap<NodeId, Tensor>,
}

impl Adam {
    /// Adam with β1 = 0.9, β2 = 0.999, ε = 1e-8 and the learning rate `lr`
    /// (a number or an [`LrSchedule`]).
    #[track_caller]
    pub fn new(lr: impl Into<LrSchedule>) -> Adam {
        let adam = Adam {
            lr: lr.into(),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            clip: None,
            t: 0,
            m: HashMap::new(),
            v: HashMap::new(),
        };
        adam.check("Adam::new");
        adam
    }
    /// β1 and β2, each in [0, 1).
    #[track_caller]
    pub fn betas(mut self, beta1: f32, beta2: f32) -> Adam {
        (self.beta1, self.beta2) = (beta1, beta2);
        self.check("Adam::betas");
        self
    }
    /// ε, positive and finite.
    #[track_caller]
    pub fn eps(mut self, eps: f32) -> Adam {
        self.eps = eps;
        self.check("Adam::eps");
        self
    }
    /// Adam's weight decay λ (added to the gradient; finite, ≥ 0).
    #[track_caller]
    pub fn weight_decay(mut self, weight_decay: f32) -> Adam {
        (self.weight_decay, self.decoupled) = (weight_decay, false);
        self.check("Adam::weight_decay");
        self
    }
    /// AdamW: decoupled weight decay λ (finite, ≥ 0).
    #[track_caller]
    pub fn decoupled_weight_decay(mut self, weight_decay: f32) -> Adam {
        (self.weight_decay, self.decoupled) = (weight_decay, true);
        self.check("Adam::decoupled_weight_decay");
        self
    }
    /// Clips the gradients before each update.
    #[track_caller]
    pub fn clip(mut self, clip: Clip) -> Adam {
        clip.check("Adam::clip");
        self.clip = Some(clip);
        self
    }
    /// The settings are public fields: checked where given and at each
    /// step. β1 = 1 or β2 = 1 would divide by 1 − βᵗ = 0, and ε = 0 makes a
    /// zero gradient 0/0.
    #[track_caller]
    fn check(&self, op: &str) {
        self.lr.check(op);
        check_setting(op, "beta1", self.beta1, 0.0..1.0, "in [0, 1)");
        check_setting(op, "beta2", self.beta2, 0.0..1.0, "in [0, 1)");
        check_setting(
            op,
            "eps",
            self.eps,
            (Bound::Excluded(0.0), Bound::Excluded(f32::INFINITY)),
            "positive and finite",
        );
        check_non_negative(op, "the weight decay", self.weight_decay);
    }
}

impl Optimizer for Adam {
    /// The first and second moments of each parameter
    /// (`"optimizer.{k}.m"`, `"optimizer.{k}.v"`).
    fn named_state(&mut self, params: &[&Tensor]) -> Result<Vec<(String, Tensor)>> {
        super::named_slots(&mut [("m", &mut self.m), ("v", &mut self.v)], params)
    }

    fn steps(&self) -> usize {
        self.t as usize
    }

    /// Panics past `i32::MAX` steps (Adam's bias correction counts in i32).
    #[track_caller]
    fn set_steps(&mut self, steps: usize) {
        self.t = i32::try_from(steps)
            .unwrap_or_else(|_| panic!("Adam::set_steps: {steps} steps exceed i32::MAX"));
    }

    #[track_caller]
    fn step(&mut self, params: &[&Tensor], grads: &[Tensor]) -> Result<Vec<Tensor>> {
        check_step("Adam::step", params, grads);
        self.check("Adam::step");
        let lr = self.lr.at(self.t as usize);
        check_non_negative("Adam::step", "the learning rate", lr);
        self.t += 1;
        // Bias corrections are host-side scalars: kernel parameters, not new shaders.
        let c1 = 1.0 / (1.0 - self.beta1.powi(self.t));
        let c2 = 1.0 / (1.0 - self.beta2.powi(self.t));
        let grads = match self.clip {
            Some(clip) => clip.apply(grads),
            None => grads.to_vec(),
        };
        let mut updates = Vec::with_capacity(params.len());
        for (&p, g) in params.iter().zip(&grads) {
            let g = if self.weight_decay != 0.0 && !self.decoupled {
                g + &(p * self.weight_decay)
            } else {
                g.clone()
            };
            let m = state(&mut self.m, p)?;
            let m_new = m.assign(&(&(m * self.beta1) + &(&g * (1.0 - self.beta1))));
            let v = state(&mut self.v, p)?;
            let v_new = v.assign(&(&(v * self.beta2) + &(&g.square() * (1.0 - self.beta2))));
            let mut step = &(&m_new * c1) / &(&v_new * c2).sqrt().add_scalar(self.eps);
            if self.weight_decay != 0.0 && self.decoupled {
                step = &step + &(p * self.weight_decay);
            }
            updates.push(p.assign(&(p - &(&step * lr))));
        }
        Ok(updates)
    }
}
