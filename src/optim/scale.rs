//! Dynamic loss scaling for f16 training, decided on the GPU.

use std::cell::RefCell;

use crate::device::Device;
use crate::error::Result;
use crate::optim::{Optimizer, check_setting};
use crate::tensor::Tensor;

thread_local! {
    /// The condition of the innermost [`only_if`] scope on this thread.
    static CONDITION: RefCell<Option<Tensor>> = const { RefCell::new(None) };
}

/// Restores the enclosing condition when an [`only_if`] scope ends.
struct ConditionScope(Option<Tensor>);

impl Drop for ConditionScope {
    fn drop(&mut self) {
        CONDITION.with(|c| *c.borrow_mut() = self.0.take());
    }
}

/// Runs `f` with every variable update it records ([`Tensor::assign`])
/// made conditional on `ok`, a one-element tensor computed on the GPU: an
/// update writes its value where `ok` ≠ 0 and the variable's old value
/// where `ok` = 0 (NaN counts as nonzero, `where_cond`'s rule). So an
/// optimizer's whole step, its state included, can be skipped by a value
/// the host never reads.
pub(crate) fn only_if<R>(ok: &Tensor, f: impl FnOnce() -> R) -> R {
    let _scope = ConditionScope(CONDITION.with(|c| c.borrow_mut().replace(ok.clone())));
    f()
}

/// The condition updates recorded now are subject to (see [`only_if`]).
pub(crate) fn update_condition() -> Option<Tensor> {
    CONDITION.with(|c| c.borrow().clone())
}

/// Dynamic loss scaling for f16 training (PyTorch's `GradScaler`): the loss
/// is multiplied by a scale before the backward pass, so that small
/// gradients of 16-bit activations do not flush to 0 (f16's smallest
/// normal is 6.1·10⁻⁵); the gradients are divided by it before the
/// optimizer sees them. A step whose gradients hold an infinity or a NaN
/// (the scale was too large: a 16-bit gradient overflowed) is skipped, its
/// parameters and optimizer state left as they were, and the scale halved;
/// after `growth_interval` good steps in a row it doubles.
///
/// All of it is decided on the GPU, inside the one submit of the step: the
/// scale and the count of good steps are GPU variables, the test for
/// non-finite values is a reduction, and the skip is a select in each
/// update. Nothing is read back unless you ask (the variables
/// [`LossScaler::scale_tensor`] and [`LossScaler::skipped`]). One difference from an optimizer's own step
/// count on the host (Adam's bias correction, a learning-rate schedule):
/// it advances on a skipped step too, as the host does not know.
///
/// bf16 has f32's range and needs no scaling.
///
/// ```no_run
/// # use webgrad::*; use webgrad::optim::{Adam, LossScaler, Optimizer}; use webgrad::layers::Module;
/// # fn f(model: &layers::Mlp, x: &Tensor, labels: &[usize], device: &Device) -> Result<()> {
/// let mut opt = Adam::new(1e-3);
/// let mut scaler = LossScaler::new(device)?;
/// let params = model.parameters();
/// let loss = autocast(DType::F16, || model.forward(x))
///     .to_dtype(DType::F32)
///     .cross_entropy(labels);
/// let grads = grad(&scaler.scale(&loss), &params);
/// let updates = scaler.step(&mut opt, &params, &grads)?;
/// realize_all_blocking(&updates.iter().chain([&loss]).collect::<Vec<_>>())?; // one submit
/// # Ok(()) }
/// ```
pub struct LossScaler {
    /// The current scale (a one-element f32 variable).
    scale: Tensor,
    /// Good steps since the scale last changed (a one-element variable).
    good_steps: Tensor,
    growth_interval: usize,
    /// 1 if the last step was skipped, else 0 (a one-element variable).
    skipped: Tensor,
}

impl LossScaler {
    /// A scaler starting at 2¹⁶ that doubles after 2,000 good steps in a
    /// row (PyTorch's defaults).
    pub fn new(device: &Device) -> Result<LossScaler> {
        LossScaler::with_scale(device, 65536.0)
    }

    /// A scaler starting at `scale` (a power of 2 keeps the scaling exact).
    #[track_caller]
    pub fn with_scale(device: &Device, scale: f32) -> Result<LossScaler> {
        check_setting(
            "LossScaler",
            "the scale",
            scale,
            f32::MIN_POSITIVE..f32::INFINITY,
            "positive, normal and finite",
        );
        Ok(LossScaler {
            scale: Tensor::scalar(device, scale).to_variable()?,
            good_steps: Tensor::scalar(device, 0.0).to_variable()?,
            growth_interval: 2000,
            skipped: Tensor::scalar(device, 0.0).to_variable()?,
        })
    }

    /// Good steps in a row after which the scale doubles (at least 1).
    #[track_caller]
    pub fn growth_interval(mut self, steps: usize) -> LossScaler {
        assert!(
            steps >= 1,
            "LossScaler::growth_interval: at least 1 step, got 0"
        );
        self.growth_interval = steps;
        self
    }

    /// `loss` times the current scale: differentiate this.
    #[track_caller]
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        assert!(
            loss.device().same(self.scale.device()),
            "LossScaler::scale: the loss lives on {:?}, the scaler on {:?}",
            loss.device(),
            self.scale.device()
        );
        // In the loss's dtype (a 0-d f32 loss would otherwise promote).
        loss * &self.scale.to_dtype(loss.dtype())
    }

    /// `opt`'s step from the gradients of a [`LossScaler::scale`]d loss:
    /// the gradients are unscaled, the step is skipped if any of them holds
    /// an infinity or a NaN, and the scale is updated. Returns the updates
    /// to realize (the optimizer's and the scaler's own).
    #[track_caller]
    pub fn step(
        &mut self,
        opt: &mut impl Optimizer,
        params: &[&Tensor],
        grads: &[Tensor],
    ) -> Result<Vec<Tensor>> {
        crate::optim::check_step("LossScaler::step", params, grads);
        let device = self.scale.device().clone();
        // Constants are generated on the GPU (`full`): nothing is uploaded
        // per step.
        let constant = |v: f32| Tensor::full(&device, crate::Shape::scalar(), v);
        let zero = constant(0.0);
        let one = constant(1.0);
        // Exact for a power-of-2 scale, as every scale the scaler reaches
        // from a power of 2 is.
        let inverse = &one / &self.scale;
        let unscaled: Vec<Tensor> = grads
            .iter()
            .map(|g| g.to_dtype(crate::DType::F32) * &inverse)
            .collect();
        // 0·g is 0 for every finite g and NaN for ±∞ and NaN: the sum of
        // them all is NaN exactly when some gradient is not finite.
        let mut probe = zero.clone();
        for g in &unscaled {
            probe = &probe + &(g * 0.0).sum();
        }
        // where_cond counts NaN as nonzero: ok = 0 on NaN.
        let ok = probe.where_cond(&zero, &one);
        // Gradients the optimizer may read whatever the outcome (a NaN
        // must not reach its state through a select's other branch).
        let safe: Vec<Tensor> = unscaled.iter().map(|g| ok.where_cond(g, &zero)).collect();
        let mut updates = only_if(&ok, || opt.step(params, &safe))?;
        // good ← ok·(good + 1); past the interval: scale × 2, good ← 0.
        // A skipped step: scale × ½, good ← 0.
        let good = &ok * &self.good_steps.add_scalar(1.0);
        let grow = good.ge(&constant(self.growth_interval as f32));
        let grown = grow.where_cond(&(&self.scale * 2.0), &self.scale);
        let new_scale = ok.where_cond(&grown, &(&self.scale * 0.5));
        let new_good = grow.where_cond(&zero, &good);
        updates.push(self.scale.assign(&new_scale));
        updates.push(self.good_steps.assign(&new_good));
        updates.push(self.skipped.assign(&(&one - &ok)));
        Ok(updates)
    }

    /// One scaled training step in one call, like
    /// [`Optimizer::minimize`]: the gradients of the scaled `loss`, the
    /// step (skipped on the GPU if they are not finite), the scale's
    /// update, all in one submit; returns the loss's (unscaled) value.
    #[track_caller]
    pub fn minimize(
        &mut self,
        opt: &mut impl Optimizer,
        loss: &Tensor,
        params: &[&Tensor],
    ) -> impl std::future::Future<Output = Result<f32>> {
        let grads = crate::grad(&self.scale(loss), params);
        let updates = self.step(opt, params, &grads);
        crate::optim::run_step(loss, updates)
    }

    /// Blocking [`LossScaler::minimize`] for native code.
    #[cfg(not(target_arch = "wasm32"))]
    #[track_caller]
    pub fn minimize_blocking(
        &mut self,
        opt: &mut impl Optimizer,
        loss: &Tensor,
        params: &[&Tensor],
    ) -> Result<f32> {
        pollster::block_on(self.minimize(opt, loss, params))
    }

    /// The current scale (a one-element f32 variable, on the GPU).
    pub fn scale_tensor(&self) -> &Tensor {
        &self.scale
    }

    /// The current scale, read back (waits for the GPU).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn scale_value(&self) -> Result<f32> {
        Ok(self.scale.to_vec_blocking()?[0])
    }

    /// 1 if the last step realized was skipped (its gradients were not
    /// finite), else 0: a one-element variable on the GPU, to read when you
    /// want to know (its read waits for the step).
    pub fn skipped(&self) -> &Tensor {
        &self.skipped
    }
}
