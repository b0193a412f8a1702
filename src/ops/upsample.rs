//! Upsampling of images `[batch, channels, h, w]`, as compositions: nearest
//! neighbour is a broadcast (its adjoint sums each block), bilinear is a
//! product with an interpolation matrix on each side, y = Mh · x · Mwᵀ (its
//! adjoint is the two transposed products). Both differentiate again and
//! run on the f64 reference like any composition.

use crate::tensor::Tensor;

impl Tensor {
    /// Each pixel of `[batch, channels, h, w]` repeated `scale`×`scale`
    /// times: `[batch, channels, h·scale, w·scale]`.
    #[track_caller]
    pub fn upsample_nearest2d(&self, scale: usize) -> Tensor {
        let d = self.dims();
        assert!(
            self.rank() == 4 && scale >= 1,
            "upsample_nearest2d: needs [batch, channels, height, width] and a scale of at least 1, got {:?} and {scale}",
            self.shape()
        );
        let (h, w) = (
            scale_size("upsample_nearest2d", d[2], scale),
            scale_size("upsample_nearest2d", d[3], scale),
        );
        self.reshape([d[0], d[1], d[2], 1, d[3], 1])
            .broadcast_to([d[0], d[1], d[2], scale, d[3], scale])
            .reshape([d[0], d[1], h, w])
    }

    /// Bilinear interpolation of `[batch, channels, h, w]` to `size`
    /// `[oh, ow]`, PyTorch's `align_corners=False`: output pixel i samples
    /// the input at (i + ½)·h/oh − ½, clamped at 0, between its two
    /// neighbours (the last one repeated at the edge).
    #[track_caller]
    pub fn upsample_bilinear2d(&self, size: [usize; 2]) -> Tensor {
        let d = self.dims();
        assert!(
            self.rank() == 4 && size[0] >= 1 && size[1] >= 1 && d[2] >= 1 && d[3] >= 1,
            "upsample_bilinear2d: needs a non-empty [batch, channels, height, width] and a size of at least 1×1, got {:?} and {size:?}",
            self.shape()
        );
        let mh = Tensor::from_vec(self.device(), interpolation(size[0], d[2]), [size[0], d[2]]);
        let mw = Tensor::from_vec(self.device(), interpolation(size[1], d[3]), [size[1], d[3]]);
        // [oh, h] · [n, c, h, w] · [w, ow] (batch axes broadcast); the f32
        // weights do not promote the result, stored in the input's dtype.
        mh.matmul(self).matmul(&mw.t()).to_dtype(self.dtype())
    }
}

/// `n · scale`, checked.
#[track_caller]
fn scale_size(op: &str, n: usize, scale: usize) -> usize {
    n.checked_mul(scale)
        .unwrap_or_else(|| panic!("{op}: a size of {n} × {scale} overflows a usize"))
}

/// The `[out, inp]` matrix of linear interpolation weights (row i: the
/// weights output i gives each input), `align_corners=False`.
fn interpolation(out: usize, inp: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; out * inp];
    let ratio = inp as f64 / out as f64;
    for i in 0..out {
        let src = ((i as f64 + 0.5) * ratio - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(inp - 1);
        let i1 = (i0 + 1).min(inp - 1);
        let l = (src - i0 as f64) as f32;
        m[i * inp + i0] += 1.0 - l;
        m[i * inp + i1] += l;
    }
    m
}
