//! Optimizers as GPU kernels. A step records in-place updates of the
//! parameters (and of the optimizer's state, also GPU variables) from their
//! gradients. The one-call form differentiates, updates and reads the loss
//! back, in one submit:
//!
//! ```no_run
//! # use webgrad::*; use webgrad::optim::{Optimizer, Adam}; use webgrad::layers::Module;
//! # fn f(model: &layers::Mlp, x: &Tensor, labels: &[usize]) -> Result<()> {
//! let mut opt = Adam::new(1e-3);
//! let loss = model.forward(x).cross_entropy(labels);
//! let value = opt.minimize_blocking(&loss, &model.parameters())?; // `minimize(..).await` in a browser
//! # Ok(()) }
//! ```
//!
//! The explicit form leaves the readback to you, so that a loop can skip it
//! (the GPU then never waits for the CPU): realize the returned updates,
//! with the loss if you want its value:
//!
//! ```no_run
//! # use webgrad::*; use webgrad::optim::{Optimizer, Adam}; use webgrad::layers::Module;
//! # fn f(model: &layers::Mlp, x: &Tensor, labels: &[usize]) -> Result<()> {
//! let mut opt = Adam::new(1e-3);
//! let params = model.parameters();
//! let loss = model.forward(x).cross_entropy(labels);
//! let grads = grad(&loss, &params);
//! let updates = opt.step(&params, &grads)?;
//! realize_all(&updates.iter().chain([&loss]).collect::<Vec<_>>())?; // one submit, no readback
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::ops::Bound;

use crate::error::Result;
use crate::graph::NodeId;
use crate::tensor::Tensor;

/// An optimizer.
pub trait Optimizer {
    /// Records one update of each parameter (a variable) from its gradient
    /// and returns the update handles to realize. Nothing runs yet.
    fn step(&mut self, params: &[&Tensor], grads: &[Tensor]) -> Result<Vec<Tensor>>;

    /// One training step in one call: the gradients of the scalar `loss`
    /// with respect to `params`, this optimizer's update of each, all run
    /// in one submit; returns the loss's value (read back once the step ran).
    #[track_caller]
    fn minimize(
        &mut self,
        loss: &Tensor,
        params: &[&Tensor],
    ) -> impl std::future::Future<Output = Result<f32>>
    where
        Self: Sized,
    {
        let updates = self.step(params, &crate::grad(loss, params));
        async move {
            let updates = updates?;
            let handles: Vec<&Tensor> = updates.iter().collect();
            let values = crate::tensor::read_and_realize(&[loss], &handles).await?;
            Ok(values[0][0])
        }
    }

    /// Blocking [`Optimizer::minimize`] for native code.
    #[cfg(not(target_arch = "wasm32"))]
    #[track_caller]
    fn minimize_blocking(&mut self, loss: &Tensor, params: &[&Tensor]) -> Result<f32>
    where
        Self: Sized,
    {
        pollster::block_on(self.minimize(loss, params))
    }
}

/// One gradient per parameter, each of exactly its parameter's shape (a
/// gradient that only broadcasts to it is a mistake, not a sum).
#[track_caller]
fn check_step(op: &str, params: &[&Tensor], grads: &[Tensor]) {
    assert_eq!(
        params.len(),
        grads.len(),
        "{op}: {} parameters, {} gradients",
        params.len(),
        grads.len()
    );
    for (k, (p, g)) in params.iter().zip(grads).enumerate() {
        assert!(
            p.shape() == g.shape(),
            "{op}: the gradient of parameter {k} has shape {:?}, the parameter {:?}",
            g.shape(),
            p.shape()
        );
    }
}

/// Panics unless `value` lies in `range` (and is not NaN), naming the
/// optimizer, the setting and the range.
#[track_caller]
fn check_setting(
    op: &str,
    name: &str,
    value: f32,
    range: impl std::ops::RangeBounds<f32>,
    says: &str,
) {
    assert!(
        range.contains(&value),
        "{op}: {name} must be {says}, got {value}"
    );
}

/// [`check_setting`] for a setting that must be finite and at least 0.
#[track_caller]
fn check_non_negative(op: &str, name: &str, value: f32) {
    check_setting(op, name, value, 0.0..f32::INFINITY, "finite and at least 0");
}

/// Zeros like `p`, as a variable: optimizer state, created on first use.
fn state<'a>(slots: &'a mut HashMap<NodeId, Tensor>, p: &Tensor) -> Result<&'a Tensor> {
    let slot = match slots.entry(p.id()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(p.zeros_like().to_variable()?),
    };
    Ok(slot)
}

/// Stochastic gradient descent with momentum and weight decay (PyTorch's
/// convention): g ← g + λ·w; v ← μ·v + g; w ← w − η·v (w ← w − η·g without momentum).
#[derive(Clone, Debug)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    velocity: HashMap<NodeId, Tensor>,
}

impl Sgd {
    /// SGD with learning rate `lr` (finite, ≥ 0), no momentum, no decay.
    #[track_caller]
    pub fn new(lr: f32) -> Sgd {
        let sgd = Sgd {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            velocity: HashMap::new(),
        };
        sgd.check("Sgd::new");
        sgd
    }
    /// With momentum μ (finite, ≥ 0).
    #[track_caller]
    pub fn with_momentum(mut self, momentum: f32) -> Sgd {
        self.momentum = momentum;
        self.check("Sgd::with_momentum");
        self
    }
    /// With weight decay λ (finite, ≥ 0).
    #[track_caller]
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Sgd {
        self.weight_decay = weight_decay;
        self.check("Sgd::with_weight_decay");
        self
    }
    /// The settings are public fields: checked where given and at each step.
    #[track_caller]
    fn check(&self, op: &str) {
        check_non_negative(op, "the learning rate", self.lr);
        check_non_negative(op, "the momentum", self.momentum);
        check_non_negative(op, "the weight decay", self.weight_decay);
    }
}

impl Optimizer for Sgd {
    #[track_caller]
    fn step(&mut self, params: &[&Tensor], grads: &[Tensor]) -> Result<Vec<Tensor>> {
        check_step("Sgd::step", params, grads);
        self.check("Sgd::step");
        let mut updates = Vec::with_capacity(params.len());
        for (&p, g) in params.iter().zip(grads) {
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
            updates.push(p.assign(&(p - &(&direction * self.lr))));
        }
        Ok(updates)
    }
}

/// Adam (Kingma & Ba), bias-corrected; with `decoupled` weight decay it is
/// AdamW (Loshchilov & Hutter):
/// m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  m̂ = m/(1−β1ᵗ);  v̂ = v/(1−β2ᵗ);
/// w ← w − η·(m̂ / (√v̂ + ε) + λ·w)   (AdamW; plain Adam adds λ·w to g instead).
#[derive(Clone, Debug)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    t: i32,
    m: HashMap<NodeId, Tensor>,
    v: HashMap<NodeId, Tensor>,
}

impl Adam {
    /// Adam with β1 = 0.9, β2 = 0.999, ε = 1e-8; `lr` finite, ≥ 0.
    #[track_caller]
    pub fn new(lr: f32) -> Adam {
        let adam = Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            t: 0,
            m: HashMap::new(),
            v: HashMap::new(),
        };
        adam.check("Adam::new");
        adam
    }
    /// AdamW: Adam with decoupled weight decay (finite, ≥ 0).
    #[track_caller]
    pub fn adamw(lr: f32, weight_decay: f32) -> Adam {
        let adam = Adam {
            weight_decay,
            decoupled: true,
            ..Adam::new(lr)
        };
        adam.check("Adam::adamw");
        adam
    }
    /// The settings are public fields: checked where given and at each
    /// step. β1 = 1 or β2 = 1 would divide by 1 − βᵗ = 0, and ε = 0 makes a
    /// zero gradient 0/0.
    #[track_caller]
    fn check(&self, op: &str) {
        check_non_negative(op, "the learning rate", self.lr);
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
    /// Steps taken so far.
    pub fn steps(&self) -> i32 {
        self.t
    }
}

impl Optimizer for Adam {
    #[track_caller]
    fn step(&mut self, params: &[&Tensor], grads: &[Tensor]) -> Result<Vec<Tensor>> {
        check_step("Adam::step", params, grads);
        self.check("Adam::step");
        self.t += 1;
        // Bias corrections are host-side scalars: kernel parameters, not new shaders.
        let c1 = 1.0 / (1.0 - self.beta1.powi(self.t));
        let c2 = 1.0 / (1.0 - self.beta2.powi(self.t));
        let mut updates = Vec::with_capacity(params.len());
        for (&p, g) in params.iter().zip(grads) {
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
            updates.push(p.assign(&(p - &(&step * self.lr))));
        }
        Ok(updates)
    }
}
