//! Learning-rate schedules: the rate as a function of the step, evaluated
//! on the host at each optimizer step (it reaches the update kernel as a
//! parameter word, so a changing rate compiles nothing new and a replayed
//! plan stays replayed).

use super::check_non_negative;

/// A learning rate as a function of the optimizer's step t = 0, 1, 2, …
/// Optimizers take one wherever they take a rate (`Adam::new(3e-4)` is
/// `LrSchedule::Constant(3e-4)`). The formulas are PyTorch's
/// (`StepLR`, `CosineAnnealingLR`, `OneCycleLR` with cosine annealing) and
/// Hugging Face's (`get_cosine_schedule_with_warmup`), tested against them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// η at every step.
    Constant(f32),
    /// η·γ^⌊t / every⌋.
    Step {
        /// The initial rate η.
        lr: f32,
        /// Steps between decays.
        every: usize,
        /// The factor γ of each decay.
        gamma: f32,
    },
    /// η_min + (η − η_min)·(1 + cos(π·t / steps)) / 2 for t ≤ steps, then η_min.
    Cosine {
        /// The initial rate η.
        lr: f32,
        /// The length of the decay.
        steps: usize,
        /// The final rate η_min.
        min_lr: f32,
    },
    /// η·t / warmup for t < warmup, then η (Hugging Face's
    /// `get_constant_schedule_with_warmup`).
    Warmup {
        /// The rate after the warm-up.
        lr: f32,
        /// The warm-up's length in steps.
        warmup: usize,
    },
    /// η·t / warmup for t < warmup, then η·max(0, (1 + cos(π·p)) / 2) with
    /// p = (t − warmup) / (steps − warmup).
    WarmupCosine {
        /// The peak rate, reached at the end of the warm-up.
        lr: f32,
        /// The warm-up's length in steps.
        warmup: usize,
        /// The whole schedule's length in steps.
        steps: usize,
    },
    /// One cycle over `steps`: from max_lr / div to max_lr by cosine
    /// annealing over the first `pct_start` of the steps, then down to
    /// max_lr / (div · final_div) by the rest (PyTorch's defaults: div 25,
    /// final_div 10⁴, pct_start 0.3).
    OneCycle {
        /// The peak rate.
        max_lr: f32,
        /// The cycle's length in steps.
        steps: usize,
        /// The fraction of the steps spent rising.
        pct_start: f32,
        /// The initial rate is max_lr / div.
        div: f32,
        /// The final rate is the initial rate / final_div.
        final_div: f32,
    },
}

impl From<f32> for LrSchedule {
    fn from(lr: f32) -> LrSchedule {
        LrSchedule::Constant(lr)
    }
}

impl LrSchedule {
    /// [`LrSchedule::Step`].
    pub fn step(lr: f32, every: usize, gamma: f32) -> LrSchedule {
        LrSchedule::Step { lr, every, gamma }
    }
    /// [`LrSchedule::Cosine`] down to 0.
    pub fn cosine(lr: f32, steps: usize) -> LrSchedule {
        LrSchedule::Cosine {
            lr,
            steps,
            min_lr: 0.0,
        }
    }
    /// [`LrSchedule::Warmup`].
    pub fn warmup(lr: f32, warmup: usize) -> LrSchedule {
        LrSchedule::Warmup { lr, warmup }
    }
    /// [`LrSchedule::WarmupCosine`].
    pub fn warmup_cosine(lr: f32, warmup: usize, steps: usize) -> LrSchedule {
        LrSchedule::WarmupCosine { lr, warmup, steps }
    }
    /// [`LrSchedule::OneCycle`] with PyTorch's defaults.
    pub fn one_cycle(max_lr: f32, steps: usize) -> LrSchedule {
        LrSchedule::OneCycle {
            max_lr,
            steps,
            pct_start: 0.3,
            div: 25.0,
            final_div: 1e4,
        }
    }

    /// The rate at step `t`.
    pub fn at(&self, t: usize) -> f32 {
        use std::f64::consts::PI;
        let t = t as f64;
        // In f64, rounded once: the closed forms above, to the last bit of f32.
        let rate = match *self {
            LrSchedule::Constant(lr) => lr as f64,
            LrSchedule::Step { lr, every, gamma } => {
                lr as f64 * (gamma as f64).powi((t / every as f64).floor() as i32)
            }
            LrSchedule::Cosine { lr, steps, min_lr } => {
                let (lr, min) = (lr as f64, min_lr as f64);
                let t = t.min(steps as f64);
                min + (lr - min) * (1.0 + (PI * t / steps as f64).cos()) / 2.0
            }
            LrSchedule::Warmup { lr, warmup } => lr as f64 * (t / warmup as f64).min(1.0),
            LrSchedule::WarmupCosine { lr, warmup, steps } => {
                let lr = lr as f64;
                if t < warmup as f64 {
                    lr * t / warmup as f64
                } else {
                    let p = (t - warmup as f64) / (steps - warmup).max(1) as f64;
                    lr * (0.5 * (1.0 + (PI * p).cos())).max(0.0)
                }
            }
            LrSchedule::OneCycle {
                max_lr,
                steps,
                pct_start,
                div,
                final_div,
            } => {
                let max = max_lr as f64;
                let initial = max / div as f64;
                let min = initial / final_div as f64;
                // PyTorch's phase ends: step pct_start·steps − 1, then steps − 1.
                let peak = pct_start as f64 * steps as f64 - 1.0;
                let anneal = |from: f64, to: f64, pct: f64| {
                    to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0)
                };
                if t <= peak {
                    anneal(initial, max, t / peak)
                } else {
                    let end = steps as f64 - 1.0;
                    anneal(max, min, ((t - peak) / (end - peak)).min(1.0))
                }
            }
        };
        rate as f32
    }

    /// Panics unless every setting makes sense, naming `op`.
    #[track_caller]
    pub(crate) fn check(&self, op: &str) {
        let rate = "the learning rate";
        match *self {
            LrSchedule::Constant(lr) => check_non_negative(op, rate, lr),
            LrSchedule::Step { lr, every, gamma } => {
                check_non_negative(op, rate, lr);
                check_non_negative(op, "the step schedule's gamma", gamma);
                assert!(
                    every >= 1,
                    "{op}: a step schedule's period must be at least 1 step"
                );
            }
            LrSchedule::Cosine { lr, steps, min_lr } => {
                check_non_negative(op, rate, lr);
                check_non_negative(op, "the cosine schedule's minimum rate", min_lr);
                assert!(steps >= 1, "{op}: a cosine schedule needs at least 1 step");
            }
            LrSchedule::Warmup { lr, warmup } => {
                check_non_negative(op, rate, lr);
                assert!(warmup >= 1, "{op}: a warm-up must last at least 1 step");
            }
            LrSchedule::WarmupCosine { lr, warmup, steps } => {
                check_non_negative(op, rate, lr);
                assert!(
                    warmup < steps,
                    "{op}: the warm-up ({warmup} steps) must be shorter than the schedule ({steps} steps)"
                );
            }
            LrSchedule::OneCycle {
                max_lr,
                steps,
                pct_start,
                div,
                final_div,
            } => {
                check_non_negative(op, rate, max_lr);
                assert!(
                    pct_start > 0.0 && pct_start < 1.0,
                    "{op}: a one-cycle schedule's pct_start must be in (0, 1), got {pct_start}"
                );
                // Both phases at least one step long (PyTorch divides by their lengths).
                let peak = pct_start as f64 * steps as f64 - 1.0;
                assert!(
                    peak > 0.0 && peak < steps as f64 - 1.0,
                    "{op}: a one-cycle schedule of {steps} steps with pct_start {pct_start} leaves a phase empty"
                );
                assert!(
                    div.is_finite() && div > 0.0 && final_div.is_finite() && final_div > 0.0,
                    "{op}: a one-cycle schedule's div and final_div must be positive and finite, got {div} and {final_div}"
                );
            }
        }
    }
}
