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
//! realize_all_blocking(&updates.iter().chain([&loss]).collect::<Vec<_>>())?; // one submit
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use crate::error::Result;
use crate::graph::NodeId;
use crate::tensor::Tensor;

mod accumulate;
mod adam;
mod clip;
mod ema;
mod scale;
mod schedule;
mod sgd;

pub use accumulate::GradAccumulator;
pub use adam::Adam;
pub use clip::{Clip, clip_grad_norm, clip_grad_value};
pub use ema::Ema;
pub use scale::LossScaler;
pub(crate) use scale::update_condition;
pub use schedule::LrSchedule;
pub use sgd::Sgd;

/// An optimizer.
pub trait Optimizer {
    /// Records one update of each parameter (a variable) from its gradient
    /// and returns the update handles to realize. Nothing runs yet.
    fn step(&mut self, params: &[&Tensor], grads: &[Tensor]) -> Result<Vec<Tensor>>;

    /// The state this optimizer carries from step to step for `params`
    /// (SGD's velocity, Adam's moments), each a variable named
    /// `"optimizer.{k}.{slot}"` by the parameter's index `k` — created as
    /// zeros where no step has run yet, so that a checkpoint can be loaded
    /// into a fresh optimizer ([`crate::io::load`] writes into them). With
    /// [`Optimizer::steps`] it is all a resumed run needs to continue
    /// exactly where the saved one was. A stateless optimizer has none.
    fn named_state(&mut self, params: &[&Tensor]) -> Result<Vec<(String, Tensor)>> {
        let _ = params;
        Ok(Vec::new())
    }

    /// Steps taken so far (learning-rate schedules and Adam's bias
    /// correction read it).
    fn steps(&self) -> usize {
        0
    }

    /// Sets the step count, for a run resumed from a checkpoint.
    fn set_steps(&mut self, steps: usize) {
        let _ = steps;
    }

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
        run_step(loss, updates)
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

/// Realizes a step's `updates` with `loss` in one submit and reads the
/// loss back (the one-call form of every optimizer and of `LossScaler`).
pub(crate) async fn run_step(loss: &Tensor, updates: Result<Vec<Tensor>>) -> Result<f32> {
    let updates = updates?;
    let handles: Vec<&Tensor> = updates.iter().collect();
    let values = crate::tensor::read_and_realize(&[loss], &handles).await?;
    Ok(values[0][0])
}

/// One gradient per parameter, each of exactly its parameter's shape (a
/// gradient that only broadcasts to it is a mistake, not a sum).
#[track_caller]
pub(crate) fn check_step(op: &str, params: &[&Tensor], grads: &[Tensor]) {
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
pub(crate) fn check_setting(
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
pub(crate) fn check_non_negative(op: &str, name: &str, value: f32) {
    check_setting(op, name, value, 0.0..f32::INFINITY, "finite and at least 0");
}

/// The state slots of `params` by name (see `Optimizer::named_state`),
/// created where missing.
pub(crate) fn named_slots(
    slots: &mut [(&str, &mut HashMap<NodeId, Tensor>)],
    params: &[&Tensor],
) -> Result<Vec<(String, Tensor)>> {
    let mut named = Vec::with_capacity(params.len() * slots.len());
    for (k, p) in params.iter().enumerate() {
        for (slot, map) in slots.iter_mut() {
            named.push((format!("optimizer.{k}.{slot}"), state(map, p)?.clone()));
        }
    }
    Ok(named)
}

/// Zeros like `p`, as a variable: optimizer state, created on first use.
pub(crate) fn state<'a>(slots: &'a mut HashMap<NodeId, Tensor>, p: &Tensor) -> Result<&'a Tensor> {
    let slot = match slots.entry(p.id()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(p.zeros_like().to_variable()?),
    };
    Ok(slot)
}
