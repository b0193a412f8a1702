//! Fully connected layers: [`Linear`] and the multilayer perceptron [`Mlp`].

use super::{Activation, Init, Module, prefixed};
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// y = x·W + b, with W `[inputs, outputs]` and b `[outputs]`.
pub struct Linear {
    /// The learned weight (a GPU variable).
    pub weight: Tensor,
    /// The learned bias (a GPU variable).
    pub bias: Tensor,
}

impl Linear {
    /// A layer with `init` weights and zero bias.
    #[track_caller]
    pub fn new(
        device: &Device,
        inputs: usize,
        outputs: usize,
        init: Init,
        seed: u64,
    ) -> Result<Linear> {
        Ok(Linear {
            weight: init.weight(device, inputs, outputs, seed)?,
            bias: Tensor::zeros(device, [outputs]).to_variable()?,
        })
    }
    /// `x: [batch, inputs]` → `[batch, outputs]`.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        &x.matmul(&self.weight) + &self.bias
    }
}

impl Module for Linear {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }
}

/// A multilayer perceptron: Linear layers with an activation between them
/// (none after the last, which gives logits).
pub struct Mlp {
    /// The layers, in order.
    pub layers: Vec<Linear>,
    /// The nonlinearity between layers.
    pub activation: Activation,
}

impl Mlp {
    /// `sizes = [inputs, hidden..., outputs]`; layer k is seeded with `seed + k`.
    #[track_caller]
    pub fn new(
        device: &Device,
        sizes: &[usize],
        activation: Activation,
        init: Init,
        seed: u64,
    ) -> Result<Mlp> {
        assert!(
            sizes.len() >= 2,
            "Mlp::new: need at least input and output sizes, got {sizes:?}"
        );
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(k, w)| Linear::new(device, w[0], w[1], init, seed + k as u64))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers, activation })
    }

    /// Logits for `x: [batch, inputs]`.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        for (k, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h);
            if k + 1 < self.layers.len() {
                h = self.activation.apply(&h);
            }
        }
        h
    }
}

impl Module for Mlp {
    /// "layers.0.weight", "layers.0.bias", "layers.1.weight", ...
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(k, l)| prefixed(&format!("layers.{k}"), l))
            .collect()
    }
}
