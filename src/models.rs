//! Small reference models built from [`crate::layers`], shared by the
//! examples, the benchmark and the browser page.

use crate::device::Device;
use crate::error::Result;
use crate::layers::{
    Conv2d, Embedding, Init, LayerNorm, Linear, MaxPool2d, Module, TransformerBlock, prefixed,
};
use crate::ops::conv::Conv2dOptions;
use crate::ops::index::IndexTensor;
use crate::tensor::Tensor;

/// A small CNN for the 8×8 digits: two blocks of 3×3 convolution (padding
/// 1), ReLU and 2×2 max pooling, 1 → 16 → 32 channels (8×8 → 4×4 → 2×2),
/// then a linear layer from the 32·2·2 features to 10 logits.
pub struct DigitsCnn {
    /// The first convolution.
    pub conv1: Conv2d,
    /// The second convolution.
    pub conv2: Conv2d,
    /// The pooling after each convolution.
    pub pool: MaxPool2d,
    /// The output layer to the logits.
    pub head: Linear,
}

impl DigitsCnn {
    /// Kaiming-initialised weights from `seed`.
    pub fn new(device: &Device, seed: u64) -> Result<DigitsCnn> {
        let same = Conv2dOptions::default().padding(1);
        let init = Init::KaimingUniform;
        Ok(DigitsCnn {
            conv1: Conv2d::new(device, 1, 16, [3, 3], same, init, seed)?,
            conv2: Conv2d::new(device, 16, 32, [3, 3], same, init, seed + 1)?,
            pool: MaxPool2d::new(2),
            head: Linear::new(device, 32 * 2 * 2, 10, Init::XavierUniform, seed + 2)?,
        })
    }

    /// Logits `[batch, 10]` for pixels `[batch, 64]` (or `[batch, 1, 8, 8]`).
    #[track_caller]
    pub fn forward(&self, pixels: &Tensor) -> Tensor {
        let batch = pixels.dims()[0];
        let x = pixels.reshape([batch, 1, 8, 8]);
        let h = self.pool.forward(&self.conv1.forward(&x).relu());
        let h = self.pool.forward(&self.conv2.forward(&h).relu());
        self.head.forward(&h.reshape([batch, 32 * 2 * 2]))
    }
}

impl Module for DigitsCnn {
    /// "conv1.weight", "conv1.bias", "conv2.…", "head.…"
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        [
            prefixed("conv1", &self.conv1),
            prefixed("conv2", &self.conv2),
            prefixed("head", &self.head),
        ]
        .concat()
    }
}

/// Sizes of a [`CharTransformer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerConfig {
    /// Distinct tokens (characters).
    pub vocabulary: usize,
    /// Longest context, in tokens.
    pub context: usize,
    /// The model width.
    pub width: usize,
    /// The number of attention heads.
    pub heads: usize,
    /// How many transformer blocks.
    pub layers: usize,
    /// The dropout probability after attention and the MLP.
    pub dropout: f32,
}

/// A small GPT: token and position embeddings, pre-norm transformer
/// blocks with causal attention, a final layer norm and a linear head
/// giving next-token logits.
pub struct CharTransformer {
    /// The settings it was built with.
    pub config: TransformerConfig,
    /// The token embeddings.
    pub tokens: Embedding,
    /// The position embeddings.
    pub positions: Embedding,
    /// The transformer blocks.
    pub blocks: Vec<TransformerBlock>,
    /// The final norm.
    pub norm: LayerNorm,
    /// The output layer to the logits.
    pub head: Linear,
}

impl CharTransformer {
    /// A transformer of `config` with weights drawn from `seed`.
    pub fn new(device: &Device, config: TransformerConfig, seed: u64) -> Result<CharTransformer> {
        let c = config;
        Ok(CharTransformer {
            config,
            tokens: Embedding::new(device, c.vocabulary, c.width, seed)?,
            positions: Embedding::new(device, c.context, c.width, seed + 1)?,
            blocks: (0..c.layers)
                .map(|l| {
                    TransformerBlock::new(
                        device,
                        c.width,
                        c.heads,
                        c.dropout,
                        seed + 10 * (l as u64 + 1),
                    )
                })
                .collect::<Result<_>>()?,
            norm: LayerNorm::new(device, c.width)?,
            head: Linear::new(device, c.width, c.vocabulary, Init::XavierUniform, seed + 2)?,
        })
    }

    /// Runs every block's attention fused (the default) or composed
    /// ([`crate::layers::MultiHeadAttention::fused`]).
    pub fn set_fused_attention(&mut self, fused: bool) {
        for block in &mut self.blocks {
            block.attention.fused = fused;
        }
    }

    /// Next-token logits `[batch, T, vocabulary]` for `ids: [batch, T]`
    /// (T ≤ context). `dropout_seed`: `Some` in training (a new seed per
    /// step), `None` in evaluation.
    #[track_caller]
    pub fn forward(&self, ids: &IndexTensor, dropout_seed: Option<u64>) -> Tensor {
        assert!(
            ids.dims().len() == 2 && (1..=self.config.context).contains(&ids.dims()[1]),
            "CharTransformer::forward: ids must be [batch, T] with 1 ≤ T ≤ {}, got {:?}",
            self.config.context,
            ids.dims()
        );
        let t = ids.dims()[1];
        let positions = IndexTensor::from_usize(ids.device(), &(0..t).collect::<Vec<_>>(), [t]);
        let mut x = &self.tokens.forward(ids) + &self.positions.forward(&positions);
        for (l, block) in self.blocks.iter().enumerate() {
            x = block.forward(
                &x,
                dropout_seed.map(|s| s.wrapping_mul(31).wrapping_add(l as u64)),
            );
        }
        self.head.forward(&self.norm.forward(&x))
    }

    /// Mean cross-entropy (nats per token) of predicting `targets` `[batch, T]`.
    #[track_caller]
    pub fn loss(&self, ids: &IndexTensor, targets: &[usize], dropout_seed: Option<u64>) -> Tensor {
        let logits = self.forward(ids, dropout_seed);
        let (b, t, v) = (logits.dims()[0], logits.dims()[1], logits.dims()[2]);
        logits.reshape([b * t, v]).cross_entropy(targets)
    }
}

impl Module for CharTransformer {
    /// "tokens.table", "positions.table", "blocks.0.attention.qkv.weight", ..., "head.bias"
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        let mut named = [
            prefixed("tokens", &self.tokens),
            prefixed("positions", &self.positions),
        ]
        .concat();
        for (l, block) in self.blocks.iter().enumerate() {
            named.extend(prefixed(&format!("blocks.{l}"), block));
        }
        named.extend(prefixed("norm", &self.norm));
        named.extend(prefixed("head", &self.head));
        named
    }
}
