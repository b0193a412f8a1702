//! [`Layer`]: a module with one input and one output, and [`Sequential`].

use super::{
    Activation, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, GroupNorm, LayerNorm, Linear,
    MaxPool2d, Mlp, Module, MultiHeadAttention, Upsample,
};
use crate::tensor::Tensor;

/// A module that maps one tensor to one tensor, so layers chain
/// ([`Sequential`]). Layers whose forward pass takes more (a dropout
/// seed, integer ids) are not `Layer`s. Natively a layer is `Send + Sync`
/// ([`crate::SendSync`]), so that a [`Sequential`] can cross threads.
pub trait Layer: Module + crate::SendSync {
    /// The layer applied to `x`.
    fn forward(&self, x: &Tensor) -> Tensor;
}

macro_rules! layer {
    ($($ty:ty),+) => {
        $(impl Layer for $ty {
            #[track_caller]
            fn forward(&self, x: &Tensor) -> Tensor {
                <$ty>::forward(self, x)
            }
        })+
    };
}
layer!(
    Linear,
    Mlp,
    Conv2d,
    ConvTranspose2d,
    MaxPool2d,
    AvgPool2d,
    Upsample,
    BatchNorm2d,
    GroupNorm,
    LayerNorm,
    MultiHeadAttention
);

/// An activation as a layer of its own, for [`Sequential`].
impl Layer for Activation {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.apply(x)
    }
}

impl Module for Activation {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        Vec::new()
    }
}

/// Layers applied one after another; parameters named by position
/// (`0.weight`, `2.bias`, as in PyTorch).
///
/// ```no_run
/// # use webgrad::*; use webgrad::layers::*;
/// # fn f(dev: &Device) -> Result<()> {
/// let net = Sequential::new()
///     .push(Conv2d::new(dev, 1, 8, [3, 3], Conv2dOptions::default().padding(1), Init::KaimingUniform, 0)?)
///     .push(Activation::Relu)
///     .push(MaxPool2d::new(2));
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// No layers yet.
    pub fn new() -> Sequential {
        Sequential::default()
    }
    /// Appends a layer (named by its position).
    pub fn push(mut self, layer: impl Layer + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }
    /// How many layers there are.
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }
}

impl Layer for Sequential {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.layers.iter().fold(x.clone(), |h, l| l.forward(&h))
    }
}

impl Module for Sequential {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        let mut all = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            all.extend(super::prefixed(&i.to_string(), l.as_ref()));
        }
        all
    }
    fn named_buffers(&self) -> Vec<(String, &Tensor)> {
        let mut all = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            all.extend(
                l.named_buffers()
                    .into_iter()
                    .map(|(n, t)| (format!("{i}.{n}"), t)),
            );
        }
        all
    }
    fn set_training(&self, training: bool) {
        for l in &self.layers {
            l.set_training(training);
        }
    }
    fn take_buffer_updates(&self) -> Vec<Tensor> {
        self.layers
            .iter()
            .flat_map(|l| l.take_buffer_updates())
            .collect()
    }
}

/// A module whose parameters are not trained: they become buffers, so
/// [`Module::parameters`] (what an optimizer takes) leaves them out while
/// [`crate::io::save_module`] still saves them (a pretrained encoder, say).
/// Its forward pass is the module's.
pub struct Frozen<M>(pub M);

impl<M: Module> Module for Frozen<M> {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        Vec::new()
    }
    fn named_buffers(&self) -> Vec<(String, &Tensor)> {
        self.0.named_state()
    }
    fn set_training(&self, training: bool) {
        self.0.set_training(training);
    }
    fn take_buffer_updates(&self) -> Vec<Tensor> {
        self.0.take_buffer_updates()
    }
}

impl<M: Layer> Layer for Frozen<M> {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.0.forward(x)
    }
}
