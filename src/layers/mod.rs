//! Layers with trainable parameters (GPU variables, updated in place by the
//! optimizers), their initialisers, and [`Module`]: parameters with stable
//! names, so that checkpoints save and load whole models by name.

mod conv;
mod linear;
mod norm;
mod sequential;
mod transformer;

pub use conv::{AvgPool2d, Conv2d, ConvTranspose2d, MaxPool2d, Upsample};
pub use linear::{Linear, Mlp};
pub use norm::{BatchNorm2d, GroupNorm};
pub use sequential::{Frozen, Layer, Sequential};
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
    /// max(x, 0)
    Relu,
    /// tanh x
    Tanh,
    /// 1 / (1 + e⁻ˣ)
    Sigmoid,
}

impl Activation {
    /// The activation applied to `x`, elementwise.
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
///
/// A struct of layers gets its `Module` from [`crate::impl_module!`].
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

    /// The parameters whose names `keep` accepts, in the order of
    /// [`Module::named_parameters`]: freezing some parameters of a module
    /// is giving the optimizer the others (a whole module is frozen with
    /// [`Frozen`]).
    ///
    /// ```
    /// # use webgrad::layers::{Init, Linear, Module};
    /// # let device = webgrad::Device::new_blocking()?;
    /// let layer = Linear::new(&device, 4, 3, Init::XavierUniform, 1)?;
    /// // Train the weight only: the bias keeps its value.
    /// let trained = layer.parameters_where(&|name| name != "bias");
    /// assert_eq!(trained.len(), 1);
    /// # Ok::<(), webgrad::Error>(())
    /// ```
    fn parameters_where(&self, keep: &dyn Fn(&str) -> bool) -> Vec<&Tensor> {
        self.named_parameters()
            .into_iter()
            .filter(|(name, _)| keep(name))
            .map(|(_, t)| t)
            .collect()
    }

    /// How many numbers the parameters hold.
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|t| t.numel()).sum()
    }

    /// State that is saved with the parameters but not trained (a batch
    /// norm's running averages: PyTorch's buffers).
    fn named_buffers(&self) -> Vec<(String, &Tensor)> {
        Vec::new()
    }

    /// Parameters, then buffers: what [`crate::io::save_module`] saves.
    fn named_state(&self) -> Vec<(String, &Tensor)> {
        let mut all = self.named_parameters();
        all.extend(self.named_buffers());
        all
    }

    /// Training (the default) or evaluation: batch norm uses its batch's
    /// statistics or its running averages. Layers without a mode ignore it.
    fn set_training(&self, _training: bool) {}

    /// Updates of buffers recorded by the latest forward pass (a batch
    /// norm's running averages in training), handed over once: realize
    /// them with the training step.
    fn take_buffer_updates(&self) -> Vec<Tensor> {
        Vec::new()
    }
}

/// Writes [`Module`] for a struct whose fields are modules: parameters
/// named `field.name`, buffers likewise, the training mode and buffer
/// updates passed to every field.
///
/// ```
/// use webgrad::layers::{Conv2d, ConvTranspose2d, Module};
/// struct Autoencoder {
///     encoder: Conv2d,
///     decoder: ConvTranspose2d,
/// }
/// webgrad::impl_module!(Autoencoder { encoder, decoder });
/// ```
#[macro_export]
macro_rules! impl_module {
    ($ty:ty { $($field:ident),+ $(,)? }) => {
        impl $crate::layers::Module for $ty {
            fn named_parameters(&self) -> Vec<(String, &$crate::Tensor)> {
                let mut all = Vec::new();
                $(all.extend($crate::layers::prefixed(stringify!($field), &self.$field));)+
                all
            }
            fn named_buffers(&self) -> Vec<(String, &$crate::Tensor)> {
                let mut all = Vec::new();
                $(all.extend(
                    $crate::layers::Module::named_buffers(&self.$field)
                        .into_iter()
                        .map(|(n, t)| (format!("{}.{n}", stringify!($field)), t)),
                );)+
                all
            }
            fn set_training(&self, training: bool) {
                $($crate::layers::Module::set_training(&self.$field, training);)+
            }
            fn take_buffer_updates(&self) -> Vec<$crate::Tensor> {
                let mut all = Vec::new();
                $(all.extend($crate::layers::Module::take_buffer_updates(&self.$field));)+
                all
            }
        }
    };
}

/// `module`'s named parameters with `prefix.` before each name.
pub fn prefixed<'a>(prefix: &str, module: &'a dyn Module) -> Vec<(String, &'a Tensor)> {
    module
        .named_parameters()
        .into_iter()
        .map(|(name, t)| (format!("{prefix}.{name}"), t))
        .collect()
}
