//! Layers for sequence models: [`Embedding`], [`LayerNorm`], [`Dropout`],
//! causal [`MultiHeadAttention`] and a pre-norm [`TransformerBlock`].

use super::{Init, Linear, Module, prefixed};
use crate::device::Device;
use crate::error::Result;
use crate::ops::attention::AttentionMask;
use crate::ops::index::IndexTensor;
use crate::tensor::Tensor;

/// A `[vocabulary, width]` table of learned vectors, looked up by index.
pub struct Embedding {
    /// The embedding table `[vocabulary, width]` (a GPU variable).
    pub table: Tensor,
}

impl Embedding {
    /// Entries drawn from N(0, 0.02²) (GPT-2's initialisation).
    pub fn new(device: &Device, vocabulary: usize, width: usize, seed: u64) -> Result<Embedding> {
        Ok(Embedding {
            table: Tensor::rand_normal(device, [vocabulary, width], 0.0, 0.02, seed)
                .to_variable()?,
        })
    }
    /// `ids` of any shape → `ids.shape ++ [width]`.
    #[track_caller]
    pub fn forward(&self, ids: &IndexTensor) -> Tensor {
        self.table.embedding(ids)
    }
}

impl Module for Embedding {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        vec![("table".into(), &self.table)]
    }
}

/// Layer normalization over the last axis, with a learned scale and shift.
pub struct LayerNorm {
    /// The learned weight (a GPU variable).
    pub weight: Tensor,
    /// The learned bias (a GPU variable).
    pub bias: Tensor,
    /// ε, added to the variance before the square root.
    pub eps: f32,
}

impl LayerNorm {
    /// Scale 1, shift 0, ε = 1e-5.
    pub fn new(device: &Device, width: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: Tensor::ones(device, [width]).to_variable()?,
            bias: Tensor::zeros(device, [width]).to_variable()?,
            eps: 1e-5,
        })
    }
    /// `x: [..., width]` normalized over its last axis, scaled and shifted.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(1, Some(&self.weight), Some(&self.bias), self.eps)
    }
}

impl Module for LayerNorm {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }
}

/// Dropout with probability `p`; `seed` picks the mask (use a new one each
/// step), `None` turns it off (evaluation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The probability of dropping an element.
    pub p: f32,
}

impl Dropout {
    /// Dropout with probability `p`, in [0, 1).
    #[track_caller]
    pub fn new(p: f32) -> Dropout {
        crate::ops::dropout::check_probability("Dropout::new", p);
        Dropout { p }
    }

    /// `x` with elements dropped (and the rest scaled by 1/(1 − p)) given a seed; unchanged without one (evaluation).
    #[track_caller]
    pub fn forward(&self, x: &Tensor, seed: Option<u64>) -> Tensor {
        // `p` is a public field: checked here too, with or without a seed.
        crate::ops::dropout::check_probability("Dropout::forward", self.p);
        match seed {
            Some(seed) if self.p > 0.0 => x.dropout(self.p, seed),
            _ => x.clone(),
        }
    }
}

/// Causal multi-head self-attention: one projection to queries, keys and
/// values, `heads` attention heads, an output projection.
pub struct MultiHeadAttention {
    /// The projection to queries, keys and values.
    pub qkv: Linear,
    /// The output projection.
    pub out: Linear,
    /// The number of attention heads.
    pub heads: usize,
    /// Whether attention runs fused (the default: no T×T scores stored,
    /// see [`Tensor::scaled_dot_product_attention`]) or as the composition
    /// ([`Tensor::scaled_dot_product_attention_composed`]), for comparison.
    pub fused: bool,
}

impl MultiHeadAttention {
    /// Attention of `heads` heads over a model of `width` (a multiple of
    /// `heads`), its projections drawn from `seed`.
    #[track_caller]
    pub fn new(
        device: &Device,
        width: usize,
        heads: usize,
        seed: u64,
    ) -> Result<MultiHeadAttention> {
        assert!(
            heads >= 1 && width.is_multiple_of(heads),
            "MultiHeadAttention::new: width {width} does not split into {heads} heads"
        );
        Ok(MultiHeadAttention {
            qkv: Linear::new(device, width, 3 * width, Init::XavierUniform, seed)?,
            out: Linear::new(device, width, width, Init::XavierUniform, seed + 1)?,
            heads,
            fused: true,
        })
    }

    /// `x: [batch, T, width]` → `[batch, T, width]`, each position attending
    /// to itself and the positions before it.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let width = x.dims()[2];
        let qkv = self.qkv.forward(x);
        let part = |i: usize| {
            qkv.narrow(2, i * width..(i * width) + width)
                .split_heads(self.heads)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let y = if self.fused {
            q.scaled_dot_product_attention(&k, &v, AttentionMask::Causal)
        } else {
            q.scaled_dot_product_attention_composed(&k, &v, AttentionMask::Causal)
        };
        self.out.forward(&y.merge_heads())
    }
}

impl Module for MultiHeadAttention {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        [prefixed("qkv", &self.qkv), prefixed("out", &self.out)].concat()
    }
}

/// A pre-norm transformer block: x + attention(norm(x)), then
/// x + MLP(norm(x)) with a GELU MLP four times as wide; dropout after the
/// attention and the MLP.
pub struct TransformerBlock {
    /// The norm before attention.
    pub norm1: LayerNorm,
    /// Causal self-attention.
    pub attention: MultiHeadAttention,
    /// The norm before the MLP.
    pub norm2: LayerNorm,
    /// The MLP's first layer.
    pub fc1: Linear,
    /// The MLP's second layer.
    pub fc2: Linear,
    /// Dropout after attention and the MLP.
    pub dropout: Dropout,
}

impl TransformerBlock {
    /// A pre-norm block: x + attention(norm(x)), then + MLP(norm(·)) with a
    /// hidden layer of 4·width, weights drawn from `seed`.
    pub fn new(
        device: &Device,
        width: usize,
        heads: usize,
        dropout: f32,
        seed: u64,
    ) -> Result<TransformerBlock> {
        Ok(TransformerBlock {
            norm1: LayerNorm::new(device, width)?,
            attention: MultiHeadAttention::new(device, width, heads, seed)?,
            norm2: LayerNorm::new(device, width)?,
            fc1: Linear::new(device, width, 4 * width, Init::XavierUniform, seed + 2)?,
            fc2: Linear::new(device, 4 * width, width, Init::XavierUniform, seed + 3)?,
            dropout: Dropout { p: dropout },
        })
    }

    /// `x: [batch, T, width]`; `seed` drives dropout (`None`: off).
    #[track_caller]
    pub fn forward(&self, x: &Tensor, seed: Option<u64>) -> Tensor {
        let a = self.attention.forward(&self.norm1.forward(x));
        let x = x + &self.dropout.forward(&a, seed);
        let m = self
            .fc2
            .forward(&self.fc1.forward(&self.norm2.forward(&x)).gelu());
        &x + &self.dropout.forward(&m, seed.map(|s| s ^ 0x5eed))
    }
}

impl Module for TransformerBlock {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        [
            prefixed("norm1", &self.norm1),
            prefixed("attention", &self.attention),
            prefixed("norm2", &self.norm2),
            prefixed("fc1", &self.fc1),
            prefixed("fc2", &self.fc2),
        ]
        .concat()
    }
}
