//! Layers with trainable parameters (GPU variables, updated in place by the
//! optimizers) and their initialisers.

use crate::device::Device;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Weight initialisers, reproducible from a seed. For a weight of fan-in
/// `i` and fan-out `o`: Xavier/Glorot keeps the variance of activations and
/// gradients equal across tanh/sigmoid layers, Var = 2 / (i + o); Kaiming/He
/// compensates for ReLU halving the variance, Var = 2 / i.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// U(−a, a), a = √(6 / (i + o))
    XavierUniform,
    /// N(0, 2 / (i + o))
    XavierNormal,
    /// U(−a, a), a = √(6 / i)
    KaimingUniform,
    /// N(0, 2 / i)
    KaimingNormal,
}

impl Init {
    /// A `[fan_in, fan_out]` weight as a variable.
    pub fn weight(
        self,
        device: &Device,
        fan_in: usize,
        fan_out: usize,
        seed: u64,
    ) -> Result<Tensor> {
        let shape = Shape::new(&[fan_in, fan_out]);
        let (i, o) = (fan_in as f32, fan_out as f32);
        let t = match self {
            Init::XavierUniform => {
                let a = (6.0 / (i + o)).sqrt();
                Tensor::rand_uniform(device, shape, -a, a, seed)
            }
            Init::XavierNormal => {
                Tensor::rand_normal(device, shape, 0.0, (2.0 / (i + o)).sqrt(), seed)
            }
            Init::KaimingUniform => {
                let a = (6.0 / i).sqrt();
                Tensor::rand_uniform(device, shape, -a, a, seed)
            }
            Init::KaimingNormal => Tensor::rand_normal(device, shape, 0.0, (2.0 / i).sqrt(), seed),
        };
        t.to_variable()
    }
}

/// y = x·W + b, with W `[inputs, outputs]` and b `[outputs]`.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    /// A layer with `init` weights and zero bias.
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
    pub fn parameters(&self) -> Vec<&Tensor> {
        vec![&self.weight, &self.bias]
    }
}

/// The nonlinearity between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
        }
    }
}

/// A multilayer perceptron: Linear layers with an activation between them
/// (none after the last, which gives logits).
pub struct Mlp {
    pub layers: Vec<Linear>,
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

    pub fn parameters(&self) -> Vec<&Tensor> {
        self.layers.iter().flat_map(Linear::parameters).collect()
    }

    /// Parameters with stable names ("layers.0.weight", ...), for checkpoints.
    pub fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(k, l)| {
                [
                    (format!("layers.{k}.weight"), &l.weight),
                    (format!("layers.{k}.bias"), &l.bias),
                ]
            })
            .collect()
    }
}
