//! An exponential moving average of parameters.

use crate::error::Result;
use crate::tensor::Tensor;

/// Shadow copies of parameters that follow them as an exponential moving
/// average: after each step, s ← d·s + (1 − d)·w (PyTorch's
/// `AveragedModel` with `get_ema_multi_avg_fn(d)`). The shadows start as
/// copies of the parameters; evaluate a model with them by loading them
/// (`io::load_into`-style, or by using [`Ema::averages`] directly).
pub struct Ema {
    decay: f32,
    shadows: Vec<Tensor>,
}

impl Ema {
    /// Shadows of `params` (copies, as GPU variables) with decay `decay` in [0, 1].
    #[track_caller]
    pub fn new(params: &[&Tensor], decay: f32) -> Result<Ema> {
        assert!(
            (0.0..=1.0).contains(&decay),
            "Ema::new: the decay must be in [0, 1], got {decay}"
        );
        let shadows = params
            .iter()
            .map(|p| p.detach().to_variable())
            .collect::<Result<Vec<_>>>()?;
        Ok(Ema { decay, shadows })
    }

    /// Records s ← d·s + (1 − d)·w for every parameter and returns the
    /// updates to realize (with the optimizer's, in the same submit: the
    /// shadows then follow the parameters as updated by that step if they
    /// are recorded after it).
    #[track_caller]
    pub fn update(&self, params: &[&Tensor]) -> Vec<Tensor> {
        assert_eq!(
            params.len(),
            self.shadows.len(),
            "Ema::update: {} parameters, {} shadows",
            params.len(),
            self.shadows.len()
        );
        self.shadows
            .iter()
            .zip(params)
            .map(|(s, &p)| {
                assert!(
                    s.shape() == p.shape(),
                    "Ema::update: a parameter of shape {:?} for a shadow of shape {:?}",
                    p.shape(),
                    s.shape()
                );
                s.assign(&(&(s * self.decay) + &(p * (1.0 - self.decay))))
            })
            .collect()
    }

    /// The averaged parameters, in the order given to [`Ema::new`].
    pub fn averages(&self) -> &[Tensor] {
        &self.shadows
    }
}
