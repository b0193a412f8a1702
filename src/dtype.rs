//! Element types: f32, and the two 16-bit float formats tensors can be
//! stored in.
//!
//! A 16-bit tensor holds two values per 32-bit word (element `2i` in the
//! low half, `2i + 1` in the high half), so it works on every adapter,
//! including browsers and drivers without WebGPU's `shader-f16` feature.
//! Ops compute in f32 and round their result to the storage format, to
//! nearest with ties to even, as IEEE 754 says: a value past the format's
//! largest finite one becomes ±∞ (f16's largest is 65504), NaN stays NaN.
//! The f64 reference rounds at the same places, so it stays the oracle.
//!
//! Mixing dtypes in one op follows PyTorch's promotion among floats: the
//! result has the widest dtype of the inputs (f16 with bf16 gives f32,
//! since neither holds the other), and a 0-dimensional tensor does not
//! promote a tensor with dimensions (`x_f16 * scalar_f32` stays f16);
//! `where_cond`'s mask and index tensors take no part. Ops built from
//! others with constants of their own (average pooling's weights, the
//! dropout mask, bilinear upsampling's matrices) store their result in
//! their input's dtype.

/// The element type of a [`crate::Tensor`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary32: 8 exponent bits, 23 fraction bits.
    #[default]
    F32,
    /// IEEE 754 binary16: 5 exponent bits, 10 fraction bits; finite up to
    /// 65504, subnormals down to 2⁻²⁴.
    F16,
    /// bfloat16: the top half of an f32 (8 exponent bits, 7 fraction
    /// bits): f32's range at a quarter of the precision of f16.
    BF16,
}

impl DType {
    /// Every dtype, for tests and documentation.
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    /// Lower-case name ("f32", "f16", "bf16").
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }

    /// Bits per element.
    pub fn bits(self) -> u32 {
        match self {
            DType::F32 => 32,
            DType::F16 | DType::BF16 => 16,
        }
    }

    /// The distance from 1 to the next larger value: 2⁻²³, 2⁻¹⁰, 2⁻⁷. A
    /// value rounded to the dtype is within `epsilon / 2` of it, relatively
    /// (in the normal range).
    pub fn epsilon(self) -> f64 {
        match self {
            DType::F32 => f32::EPSILON as f64,
            DType::F16 => half::f16::EPSILON.to_f64(),
            DType::BF16 => half::bf16::EPSILON.to_f64(),
        }
    }

    /// The largest finite value.
    pub fn max_finite(self) -> f64 {
        match self {
            DType::F32 => f32::MAX as f64,
            DType::F16 => half::f16::MAX.to_f64(),
            DType::BF16 => half::bf16::MAX.to_f64(),
        }
    }

    /// `x` rounded to this dtype (to nearest, ties to even; ±∞ past the
    /// largest finite value), as the GPU stores it, back in f32.
    pub fn round(self, x: f32) -> f32 {
        match self {
            DType::F32 => x,
            DType::F16 => half::f16::from_f32(x).to_f32(),
            DType::BF16 => half::bf16::from_f32(x).to_f32(),
        }
    }

    /// The 32-bit words `numel` values occupy in a buffer (16-bit values
    /// two per word).
    pub(crate) fn words(self, numel: usize) -> usize {
        match self.bits() {
            32 => numel,
            _ => numel.div_ceil(2),
        }
    }

    /// `numel` values stored little-endian in this dtype (a buffer read
    /// back, a checkpoint's data), widened to f32 exactly.
    pub(crate) fn decode(self, bytes: &[u8], numel: usize) -> Vec<f32> {
        let halves = || {
            bytes
                .chunks_exact(2)
                .take(numel)
                .map(|h| u16::from_le_bytes([h[0], h[1]]))
        };
        match self {
            DType::F32 => {
                let bytes = &bytes[..numel * 4];
                // A copy where the bytes are aligned (a mapped buffer);
                // value by value where not (a file's data).
                match bytemuck::try_cast_slice::<u8, f32>(bytes) {
                    Ok(values) => values.to_vec(),
                    Err(_) => bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                }
            }
            DType::F16 => halves().map(|h| half::f16::from_bits(h).to_f32()).collect(),
            DType::BF16 => halves()
                .map(|h| half::bf16::from_bits(h).to_f32())
                .collect(),
        }
    }

    /// `values` (already values of this dtype) as little-endian bytes.
    pub(crate) fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            DType::F32 => bytemuck::cast_slice::<f32, u8>(values).to_vec(),
            DType::F16 => values
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
            DType::BF16 => values
                .iter()
                .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                .collect(),
        }
    }

    /// The dtype of an op's result from its inputs' dtypes and ranks (see
    /// the module's rule): the widest among the inputs with dimensions, or
    /// among all when every input is 0-dimensional.
    pub(crate) fn promote(inputs: &[(DType, usize)]) -> DType {
        let any_dims = inputs.iter().any(|&(_, rank)| rank > 0);
        inputs
            .iter()
            .filter(|&&(_, rank)| rank > 0 || !any_dims)
            .map(|&(d, _)| d)
            .reduce(DType::wider)
            .unwrap_or(DType::F32)
    }

    /// The narrowest dtype that holds both.
    fn wider(self, other: DType) -> DType {
        if self == other { self } else { DType::F32 }
    }
}

/// Parses a dtype's name ("f32", "f16", "bf16"), as a command-line flag
/// gives it.
impl std::str::FromStr for DType {
    type Err = String;
    fn from_str(name: &str) -> Result<DType, String> {
        DType::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| format!("unknown dtype {name:?} (f32, f16 or bf16)"))
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `x` (an f64 value of the reference) rounded as the GPU stores it in
/// `dtype`: the GPU computes in f32 and rounds that, so the reference
/// rounds to f32 first (f32 itself is not rounded: the reference keeps f64
/// for f32 tensors).
pub(crate) fn round_f64(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F32 => x,
        _ => dtype.round(x as f32) as f64,
    }
}

thread_local! {
    /// The dtype of the innermost [`autocast`] scope on this thread.
    static AUTOCAST: std::cell::Cell<Option<DType>> = const { std::cell::Cell::new(None) };
}

/// Restores the enclosing scope's dtype when an [`autocast`] scope ends
/// (also by a panic).
struct AutocastScope(Option<DType>);

impl Drop for AutocastScope {
    fn drop(&mut self) {
        AUTOCAST.with(|a| a.set(self.0));
    }
}

/// Runs `f` with mixed precision: every op recorded inside that computes
/// stores its result in `dtype` (f16 or bf16; f32 turns it off), except
/// reductions, whose results stay f32 (a sum of many 16-bit values
/// overflows f16 long before f32); views and other moves of values
/// (reshape, permute, broadcast, slice, pad, detach) keep their input's
/// dtype. Inputs are read as they are: f32 parameters at full precision,
/// 16-bit values widened; every op computes in f32.
///
/// A scope rather than a converted copy of the model, as PyTorch's
/// autocast and JAX's precision policies do it: the model's code stays the
/// same, its parameters stay the f32 variables an optimizer updates (their
/// gradients come back in f32: master weights need no copy), and what the
/// backward pass keeps is the ops' 16-bit results. Compute the loss outside
/// the scope, from the logits converted to f32, so that it and the start of
/// the backward pass are f32 too:
///
/// ```
/// # use webgrad::{DType, Device, Tensor, autocast};
/// let device = Device::reference_only();
/// let x = Tensor::from_vec(&device, vec![0.5, -1.0, 2.0, 0.25], [2, 2]);
/// let w = Tensor::from_vec(&device, vec![0.1, 0.2, 0.3, 0.4], [2, 2]);
/// let logits = autocast(DType::BF16, || x.matmul(&w).tanh());
/// assert_eq!(logits.dtype(), DType::BF16);
/// let loss = logits.to_dtype(DType::F32).square().mean();
/// assert_eq!(loss.dtype(), DType::F32);
/// let g = webgrad::grad(&loss, &[&w]);
/// assert_eq!(g[0].dtype(), DType::F32);
/// ```
pub fn autocast<R>(dtype: DType, f: impl FnOnce() -> R) -> R {
    let _scope = AutocastScope(AUTOCAST.with(|a| a.replace(Some(dtype))));
    f()
}

/// The dtype ops recorded now store their results in under [`autocast`]
/// (`None` outside a 16-bit scope).
pub(crate) fn autocast_dtype() -> Option<DType> {
    AUTOCAST.with(|a| a.get()).filter(|&d| d != DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_follows_pytorch_among_floats() {
        use DType::*;
        assert_eq!(DType::promote(&[(F16, 2), (F16, 1)]), F16);
        assert_eq!(DType::promote(&[(F16, 2), (F32, 2)]), F32);
        assert_eq!(DType::promote(&[(F16, 2), (BF16, 2)]), F32);
        // A 0-dimensional tensor does not promote one with dimensions.
        assert_eq!(DType::promote(&[(F16, 2), (F32, 0)]), F16);
        assert_eq!(DType::promote(&[(F32, 0), (BF16, 0)]), F32);
        assert_eq!(DType::promote(&[(BF16, 0)]), BF16);
    }

    #[test]
    fn rounding_is_ieee_to_nearest_even_with_overflow_to_infinity() {
        // f16: 65504 is the largest finite value; 65520 is halfway to the
        // next (65536), and ties go to the even neighbour, which overflows.
        assert_eq!(DType::F16.round(65519.0), 65504.0);
        assert_eq!(DType::F16.round(65520.0), f32::INFINITY);
        assert_eq!(DType::F16.round(-1e6), f32::NEG_INFINITY);
        // 1 + 2⁻¹¹ is halfway between 1 and 1 + 2⁻¹⁰: to the even one, 1.
        assert_eq!(DType::F16.round(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(DType::F16.round(2f32.powi(-25) * 1.5), 2f32.powi(-24));
        // bf16 keeps f32's range: 1e38 is finite, 1 + 2⁻⁸ ties to 1.
        assert!(DType::BF16.round(1e38).is_finite());
        assert_eq!(DType::BF16.round(1.0 + 2f32.powi(-8)), 1.0);
        assert!(DType::BF16.round(f32::NAN).is_nan());
        assert_eq!(DType::F16.epsilon(), 2f64.powi(-10));
        assert_eq!(DType::BF16.epsilon(), 2f64.powi(-7));
    }

    #[test]
    fn names_parse_and_values_round_trip_through_bytes() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>(), Ok(d));
            let values = [1.5, -0.0, d.round(0.1), f32::INFINITY];
            assert_eq!(d.encode(&values).len(), 4 * d.bits() as usize / 8);
            assert_eq!(d.decode(&d.encode(&values), 4), values);
        }
        assert!("f64".parse::<DType>().is_err());
        assert_eq!(DType::F16.words(5), 3);
        assert_eq!(DType::F32.words(5), 5);
    }
}
