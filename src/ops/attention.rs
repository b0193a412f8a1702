//! Scaled dot-product attention and the multi-head layout, as compositions
//! of matmul, softmax and select: every rule comes from those ops.

use crate::shape::Shape;
use crate::tensor::Tensor;

/// Which keys each query of [`Tensor::scaled_dot_product_attention`] sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttentionMask {
    /// Every key.
    #[default]
    None,
    /// Query i sees keys j ≤ i + S − T: the keys up to its own position
    /// (a decoder's mask; S ≥ T).
    Causal,
}

impl Tensor {
    /// softmax(q·kᵀ / √d) · v for queries `self` `[..., T, d]`, keys
    /// `[..., S, d]` and values `[..., S, e]` (leading axes broadcast, as in
    /// matmul), giving `[..., T, e]`, with the keys each query sees chosen by
    /// `mask` ([`AttentionMask::Causal`]: keys j ≤ i + S − T).
    #[track_caller]
    pub fn scaled_dot_product_attention(
        &self,
        keys: &Tensor,
        values: &Tensor,
        mask: AttentionMask,
    ) -> Tensor {
        let (q, k, v) = (self, keys, values);
        assert!(
            q.rank() >= 2 && k.rank() >= 2 && v.rank() >= 2,
            "scaled_dot_product_attention: queries {:?}, keys {:?} and values {:?} need at least 2 axes",
            q.shape(),
            k.shape(),
            v.shape()
        );
        let (t, d) = (q.dims()[q.rank() - 2], q.dims()[q.rank() - 1]);
        let s = k.dims()[k.rank() - 2];
        assert!(
            k.dims()[k.rank() - 1] == d && v.dims()[v.rank() - 2] == s,
            "scaled_dot_product_attention: queries {:?}, keys {:?} and values {:?} do not fit ([.., T, d], [.., S, d], [.., S, e])",
            q.shape(),
            k.shape(),
            v.shape()
        );
        // The softmax over no keys, and the scale 1/√0, mean nothing.
        assert!(
            s > 0 && d > 0,
            "scaled_dot_product_attention: needs at least one key and a key width of at least 1, got queries {:?} and keys {:?}",
            q.shape(),
            k.shape()
        );
        let scores = q.matmul(&k.t()) * (1.0 / (d as f32).sqrt());
        let scores = if mask == AttentionMask::Causal {
            assert!(
                s >= t,
                "scaled_dot_product_attention: a causal mask needs at least as many keys ({s}) as queries ({t})"
            );
            let allowed: Vec<f32> = (0..t * s)
                .map(|i| if i % s <= i / s + (s - t) { 1.0 } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(q.device(), allowed, Shape::new(&[t, s]));
            let blocked = Tensor::full(q.device(), Shape::scalar(), f32::NEG_INFINITY);
            mask.where_cond(&scores, &blocked)
        } else {
            scores
        };
        scores.softmax(scores.rank() - 1).matmul(v)
    }

    /// `[batch, T, heads·d]` → `[batch, heads, T, d]`.
    #[track_caller]
    pub fn split_heads(&self, heads: usize) -> Tensor {
        assert!(
            self.rank() == 3 && heads >= 1 && self.dims()[2].is_multiple_of(heads),
            "split_heads: need [batch, T, heads·d] with width divisible by {heads} heads, got {:?}",
            self.shape()
        );
        let (b, t, w) = (self.dims()[0], self.dims()[1], self.dims()[2]);
        self.reshape([b, t, heads, w / heads])
            .permute(&[0, 2, 1, 3])
    }

    /// `[batch, heads, T, d]` → `[batch, T, heads·d]` (inverse of [`Tensor::split_heads`]).
    #[track_caller]
    pub fn merge_heads(&self) -> Tensor {
        assert!(
            self.rank() == 4,
            "merge_heads: need [batch, heads, T, d], got {:?}",
            self.shape()
        );
        let (b, h, t, d) = (
            self.dims()[0],
            self.dims()[1],
            self.dims()[2],
            self.dims()[3],
        );
        self.permute(&[0, 2, 1, 3]).reshape([b, t, h * d])
    }
}
