//! Gradient accumulation over micro-batches.

use crate::error::Result;
use crate::tensor::Tensor;

/// Sums gradients over micro-batches in GPU variables, so a batch too
/// large for memory is taken in parts: k micro-batches of b examples with a
/// mean loss each, then [`GradAccumulator::mean`], give the gradient of
/// the mean loss over the k·b examples (up to the order of the sums).
///
/// ```no_run
/// # use webgrad::*; use webgrad::optim::{Adam, GradAccumulator, Optimizer};
/// # fn f(params: &[&Tensor], micro: &[(Tensor, Vec<usize>)], model: impl Fn(&Tensor) -> Tensor) -> Result<()> {
/// let mut acc = GradAccumulator::new(params)?;
/// let mut opt = Adam::new(1e-3);
/// for (x, labels) in micro {
///     let loss = model(x).cross_entropy(labels);
///     realize_all_blocking(&acc.add(&grad(&loss, params)).iter().collect::<Vec<_>>())?;
/// }
/// let (grads, resets) = acc.mean();
/// let updates = opt.step(params, &grads)?;
/// realize_all_blocking(&updates.iter().chain(&resets).collect::<Vec<_>>())?;
/// # Ok(()) }
/// ```
pub struct GradAccumulator {
    sums: Vec<Tensor>,
    count: usize,
}

impl GradAccumulator {
    /// Zeroed sums shaped like `params`.
    pub fn new(params: &[&Tensor]) -> Result<GradAccumulator> {
        let sums = params
            .iter()
            .map(|p| p.zeros_like().to_variable())
            .collect::<Result<Vec<_>>>()?;
        Ok(GradAccumulator { sums, count: 0 })
    }

    /// Records sum ← sum + g for each gradient; returns the updates to realize.
    #[track_caller]
    pub fn add(&mut self, grads: &[Tensor]) -> Vec<Tensor> {
        assert_eq!(
            grads.len(),
            self.sums.len(),
            "GradAccumulator::add: {} gradients for {} parameters",
            grads.len(),
            self.sums.len()
        );
        self.count += 1;
        self.sums
            .iter()
            .zip(grads)
            .map(|(s, g)| {
                assert!(
                    s.shape() == g.shape(),
                    "GradAccumulator::add: a gradient of shape {:?} for a parameter of shape {:?}",
                    g.shape(),
                    s.shape()
                );
                s.assign(&(s + g))
            })
            .collect()
    }

    /// Micro-batches added since the last [`GradAccumulator::mean`].
    pub fn count(&self) -> usize {
        self.count
    }

    /// The mean of the gradients added (sum / count), and the updates that
    /// zero the sums for the next batch. Realize the resets with (or after)
    /// whatever reads the mean: program order keeps the reads first.
    #[track_caller]
    pub fn mean(&mut self) -> (Vec<Tensor>, Vec<Tensor>) {
        assert!(
            self.count > 0,
            "GradAccumulator::mean: no gradients were added"
        );
        let n = self.count as f32;
        self.count = 0;
        let means: Vec<Tensor> = self.sums.iter().map(|s| s / n).collect();
        let resets = self
            .sums
            .iter()
            .map(|s| s.assign(&s.zeros_like()))
            .collect();
        (means, resets)
    }
}
