//! Stochastic gradient descent.

use std::collections::HashMap;

use super::{Clip, LrSchedule, Optimizer, check_non_negative, check_step, state};
use crate::error::Result;
use crate::graph::NodeId;
use crate::tensor::Tensor;

/// Stochastic gradient descent with momentum and weight decay (PyTorch's
/// convention): g ← g + λ·w; v ← μ·v + g; w ← w − η·v (w ← w − η·g without
/// momentum), η taken from the learning-rate schedule at each step.
///
/// ```
/// # use webgrad::optim::{LrSchedule, Sgd};
/// let sgd = Sgd::new(LrSchedule::step(0.1, 30, 0.1)).momentum(0.9).weight_decay(1e-4);
/// ```
#[derive(Clone, Debug)]
pub struct Sgd {
    /// The learning rate at each step.
    pub lr: LrSchedule,
    /// How far each batch moves the running averages.
    pub momentum: f32,
    /// The weight decay λ.
    pub weight_decay: f32,
    /// Applied to the gradients before the update (see [`Clip`]).
    pub clip: Option<Clip>,
    t: usize,
    velocity: HashMap<NodeId, Tensor>,
}

impl Sgd {
    /// SGD with the learning rate `lr` (a number or an [`LrSchedule`]).
    #[track_caller]
    pub fn new(lr: impl Into<LrSchedule>) -> Sgd {
        let sgd = Sgd {
            lr: lr.into(),
            momentum: 0.0,
            weight_decay: 0.0,
            clip: None,
            t: 0,
            velocity: HashMap::new(),
        };
        sgd.check("Sgd::new");
        sgd
    }
    /// Momentum μ (finite, ≥ 0).
    #[track_caller]
    pub fn momentum(mut self, momentum: f32) -> Sgd {
        self.momentum = momentum;
        self.check("Sgd::momentum");
        self
    }
    /// Weight decay λ (finite, ≥ 0).
    #[track_caller]
    pub fn weight_decay(mut self, weight_decay: f32) -> Sgd {
        self.weight_decay = weight_decay;
        self.check("Sgd::weight_decay");
        self
    }
    /// Clips the gradients before each update.
    #[track_caller]
    pub fn clip(mut self, clip: Clip) -> Sgd {
        clip.check("Sgd::clip");
        self.clip = Some(clip);
        self
    }
    /// The settings are public fields: checked where given and at each step.
    #[track_caller]
    fn check(&self, op: &str) {
        self.lr.check(op);
        check_non_negative(op, "the momentum", self.momentum);
        check_non_negative(op, "the weight decay", self.weight_decay);
    }
}

impl Optimizer for Sgd {
    /// The velocity of each parameter (`"optimizer.{k}.velocity"`), where
    /// there is momentum.
    fn named_state(&mut self, params: &[&Tensor]) -> Result<Vec<(String, Tensor)>> {
        if self.momentum == 0.0 {
            return Ok(Vec::new());
        }
        super::named_slots(&mut [("velocity", &mut self.velocity)], params)
    }

    fn steps(&self) -> usize {
        self.t
    }

    fn set_steps(&mut self, steps: usize) {
        self.t = steps;
    }

    #[track_caller]
    fn step(&mut self, params: &[&Tensor], grads: &[Tensor]) -> Result<Vec<Tensor>> {
        check_step("Sgd::step", params, grads);
        self.check("Sgd::step");
        let lr = self.lr.at(self.t);
        check_non_negative("Sgd::step", "the learning rate", lr);
        self.t += 1;
        let grads = match self.clip {
            Some(clip) => clip.apply(grads),
            None => grads.to_vec(),
        };
        let mut updates = Vec::with_capacity(params.len());
        for (&p, g) in params.iter().zip(&grads) {
            let g = if self.weight_decay != 0.0 {
                g + &(p * self.weight_decay)
            } else {
                g.clone()
            };
            let direction = if self.momentum != 0.0 {
                let v = state(&mut self.velocity, p)?;
                v.assign(&(&(v * self.momentum) + &g))
            } else {
                g
            };
            updates.push(p.assign(&(p - &(&direction * lr))));
        }
        Ok(updates)
    }
}
