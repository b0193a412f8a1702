//! Scaled dot-product attention and the multi-head layout. Attention runs
//! fused ([`fused`]: no T×S score matrix stored, forward or backward)
//! where its operands fit the kernels, and as the composition of matmul,
//! softmax and select otherwise; the composition is also public, as the
//! reference path.

mod fused;

use crate::kernel::MAX_LOOP_TRIPS;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The widest key or value row the fused kernels hold in registers.
const FUSED_ATTENTION_MAX_WIDTH: usize = 128;

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
    ///
    /// Where q, k and v have the same leading axes, d and e are at most
    /// 128 and T and S at most 32,768, this runs fused kernels that never
    /// store the T×S scores (forward or backward: memory linear in T);
    /// otherwise it runs
    /// [`scaled_dot_product_attention_composed`](Tensor::scaled_dot_product_attention_composed).
    /// Both give the same values up to f32 rounding, and every derivative.
    #[track_caller]
    pub fn scaled_dot_product_attention(
        &self,
        keys: &Tensor,
        values: &Tensor,
        mask: AttentionMask,
    ) -> Tensor {
        let (q, k, v) = (self, keys, values);
        check_operands("scaled_dot_product_attention", q, k, v, mask);
        match fused_geometry(q, k, v, mask) {
            Some(geom) => fused_attention(q, k, v, geom),
            None => attention_composed(q, k, v, mask),
        }
    }

    /// [`Tensor::scaled_dot_product_attention`] as the composition of
    /// matmul, softmax and select, storing the T×S scores: the reference
    /// path the fused kernels are tested and measured against, and what
    /// the fused call runs where its operands do not fit the kernels.
    #[track_caller]
    pub fn scaled_dot_product_attention_composed(
        &self,
        keys: &Tensor,
        values: &Tensor,
        mask: AttentionMask,
    ) -> Tensor {
        let (q, k, v) = (self, keys, values);
        check_operands("scaled_dot_product_attention_composed", q, k, v, mask);
        attention_composed(q, k, v, mask)
    }
}

/// Panics, naming `op` and the shapes, unless q `[.., T, d]`, k `[.., S,
/// d]` and v `[.., S, e]` fit, with S and d at least 1 (the softmax over
/// no keys, and the scale 1/√0, mean nothing) and S ≥ T under a causal mask.
#[track_caller]
fn check_operands(op: &str, q: &Tensor, k: &Tensor, v: &Tensor, mask: AttentionMask) {
    assert!(
        q.rank() >= 2 && k.rank() >= 2 && v.rank() >= 2,
        "{op}: queries {:?}, keys {:?} and values {:?} need at least 2 axes",
        q.shape(),
        k.shape(),
        v.shape()
    );
    let (t, d) = (q.dims()[q.rank() - 2], q.dims()[q.rank() - 1]);
    let s = k.dims()[k.rank() - 2];
    assert!(
        k.dims()[k.rank() - 1] == d && v.dims()[v.rank() - 2] == s,
        "{op}: queries {:?}, keys {:?} and values {:?} do not fit ([.., T, d], [.., S, d], [.., S, e])",
        q.shape(),
        k.shape(),
        v.shape()
    );
    assert!(
        s > 0 && d > 0,
        "{op}: needs at least one key and a key width of at least 1, got queries {:?} and keys {:?}",
        q.shape(),
        k.shape()
    );
    assert!(
        mask != AttentionMask::Causal || s >= t,
        "{op}: a causal mask needs at least as many keys ({s}) as queries ({t})"
    );
}

/// The fused kernels' geometry, where they apply: q, k and v with the same
/// leading axes (no broadcasting), widths the kernels hold in registers,
/// and T and S within the loop budget of one invocation.
fn fused_geometry(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: AttentionMask,
) -> Option<fused::Geometry> {
    let lead = &q.dims()[..q.rank() - 2];
    let same_lead = k.rank() == q.rank()
        && v.rank() == q.rank()
        && &k.dims()[..k.rank() - 2] == lead
        && &v.dims()[..v.rank() - 2] == lead;
    let geom = fused::Geometry {
        t: q.dims()[q.rank() - 2],
        s: k.dims()[k.rank() - 2],
        d: q.dims()[q.rank() - 1],
        e: v.dims()[v.rank() - 1],
        causal: mask == AttentionMask::Causal,
    };
    let fits = geom.d <= FUSED_ATTENTION_MAX_WIDTH
        && geom.e <= FUSED_ATTENTION_MAX_WIDTH
        && geom.t >= 1
        && (geom.t.max(geom.s) as u64) <= MAX_LOOP_TRIPS;
    (same_lead && fits).then_some(geom)
}

/// The fused forward on operands flattened to `[heads, T, d]`, its values
/// taken from beside the LSE and given the leading axes back.
fn fused_attention(q: &Tensor, k: &Tensor, v: &Tensor, geom: fused::Geometry) -> Tensor {
    let lead = q.dims()[..q.rank() - 2].to_vec();
    let heads: usize = lead.iter().product();
    let flat = |x: &Tensor, rows: usize, width: usize| x.reshape([heads, rows, width]);
    let (q3, k3, v3) = (
        flat(q, geom.t, geom.d),
        flat(k, geom.s, geom.d),
        flat(v, geom.s, geom.e),
    );
    let both = Tensor::record_family(
        fused::Forward(geom),
        &[&q3, &k3, &v3],
        Shape::new(&[heads, geom.t, geom.e + 1]),
    );
    let values = both.narrow(2, 0..geom.e);
    values.reshape([lead.as_slice(), &[geom.t, geom.e]].concat())
}

/// softmax(q·kᵀ/√d)·v with the blocked scores −∞ (so their weights are 0).
fn attention_composed(q: &Tensor, k: &Tensor, v: &Tensor, mask: AttentionMask) -> Tensor {
    let (t, d) = (q.dims()[q.rank() - 2], q.dims()[q.rank() - 1]);
    let s = k.dims()[k.rank() - 2];
    let scores = q.matmul(&k.t()) * (1.0 / (d as f32).sqrt());
    let scores = if mask == AttentionMask::Causal {
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

impl Tensor {
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
