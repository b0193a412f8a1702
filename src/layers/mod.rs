//! Layers with trainable parameters (GPU variables, updated in place by the
//! optimizers), their initialisers, and [`Module`]: parameters with stable
//! names, so that checkpoints save and load whole models by name.

mod conv;
mod linear;
mod transformer;

pub use conv::{Conv2d, MaxPool2d};
pub use linear::{Linear, Mlp};
pub use transformer::{Dropout, Embedding, LayerNorm, MultiHeadAttention, TransformerBlock};

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
    #[track_caller]
    pub fn weight(
        self,
        device: &Device,
        fan_in: usize,
        fan_out: usize,
        seed: u64,
    ) -> Result<Tensor> {
        self.tensor(device, [fan_in, fan_out], fan_in, fan_out, seed)
    }

    /// A weight of any shape with the given fans, as a variable (a
    /// convolution's `[out, in, kh, kw]` has fan-in in·kh·kw, fan-out out·kh·kw).
    #[track_caller]
    pub fn tensor(
        self,
        device: &Device,
        shape: impl Into<Shape>,
        fan_in: usize,
        fan_out: usize,
        seed: u64,
    ) -> Result<Tensor> {
        let shape = shape.into();
        // A fan of 0 makes the range infinite (a layer with no inputs).
        let fan_needed = match self {
            Init::XavierUniform | Init::XavierNormal => fan_in.saturating_add(fan_out),
            Init::KaimingUniform | Init::KaimingNormal => fan_in,
        };
        assert!(
            fan_needed >= 1,
            "{self:?}: fan_in must be at least 1 (fan_in + fan_out for Xavier), got fan_in {fan_in}, fan_out {fan_out} for a weight of shape {shape:?}"
        );
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

/// Something with trainable parameters: a layer or a whole model.
///
/// A model made of layers names its parameters by field, with
/// [`prefixed`]: `conv1.weight`, `blocks.0.attention.query.weight`, ...
/// [`crate::io::save_module`] and [`crate::io::load_module`]
/// save and load every parameter of a module by these names.
pub trait Module {
    /// Every parameter with a stable, unique name.
    fn named_parameters(&self) -> Vec<(String, &Tensor)>;

    /// Every parameter, in the order of [`Module::named_parameters`]
    /// (what an optimizer's `step` or `minimize` takes).
    fn parameters(&self) -> Vec<&Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }
}

/// `module`'s named parameters with `prefix.` before each name.
pub fn prefixed<'a>(prefix: &str, module: &'a dyn Module) -> Vec<(String, &'a Tensor)> {
    module
        .named_parameters()
        .into_iter()
        .map(|(name, t)| (format!("{prefix}.{name}"), t))
        .collect()
}
