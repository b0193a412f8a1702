//! Pooling (NCHW): max_pool2d, avg_pool2d and global average pooling.
//!
//! Max pooling is built from two families that are each other's adjoints:
//! [`MaxPoolGather`] reads, for every window, the value at the window's
//! argmax (of an index source x), and [`MaxPoolScatter`] adds window values
//! back at their argmax. max_pool2d(x) = gather(x, x); its vjp is
//! scatter(x, g), its jvp gather(x, Δx), and so on to any order: the argmax
//! positions are piecewise constant in x, so x as index source has a zero
//! derivative. Average pooling is a depthwise convolution with constant
//! weights, so it needs no family of its own.

mod kernels;
mod reference;

use crate::graph::family::Family;
use crate::kernel::{Lowering, Target};
use crate::ops::conv::Conv2dOptions;
use crate::shape::Shape;
use crate::tensor::Tensor;

#[cfg(test)]
mod shader_tests;

/// Sizes of a pooling: input `[n, c, h, w]`, windows `[r, s]`, output `[n, c, p, q]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// The probability of dropping an element.
    pub p: usize,
    pub q: usize,
    /// The window's size.
    pub kernel: [usize; 2],
    /// How far the window moves.
    pub stride: [usize; 2],
    /// Zeros added on each side.
    pub padding: [usize; 2],
}

impl Geometry {
    pub fn x_shape(&self) -> Shape {
        Shape::new(&[self.n, self.c, self.h, self.w])
    }
    pub fn y_shape(&self) -> Shape {
        Shape::new(&[self.n, self.c, self.p, self.q])
    }
}

#[track_caller]
fn geometry(
    op: &str,
    x: &Shape,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Geometry {
    assert!(
        x.rank() == 4,
        "{op}: input must be [batch, channels, height, width], got {x:?}"
    );
    assert!(
        kernel.iter().chain(&stride).all(|&k| k >= 1),
        "{op}: kernel {kernel:?} and stride {stride:?} must be at least 1 (input {x:?})"
    );
    assert!(
        padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2,
        "{op}: padding {padding:?} must be at most half the kernel {kernel:?} (input {x:?})"
    );
    let d = x.dims();
    // A loop, not a closure, so that #[track_caller] reaches the caller.
    let mut out = [0usize; 2];
    for (axis, size) in [d[2], d[3]].into_iter().enumerate() {
        // padding ≤ kernel / 2, so 2·padding cannot overflow.
        let Some(padded) = size.checked_add(2 * padding[axis]) else {
            panic!("{op}: sizes overflow for input {x:?} and padding {padding:?}")
        };
        assert!(
            kernel[axis] <= padded,
            "{op}: kernel {kernel:?} is larger than the padded input (input {x:?}, padding {padding:?})"
        );
        out[axis] = (padded - kernel[axis]) / stride[axis] + 1;
    }
    Geometry {
        n: d[0],
        c: d[1],
        h: d[2],
        w: d[3],
        p: out[0],
        q: out[1],
        kernel,
        stride,
        padding,
    }
}

/// Settings of 2-D pooling, `[height, width]` pairs: the window, how far
/// it moves (by default its own size, as in PyTorch) and the padding added
/// on each side (at most half the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dOptions {
    /// The window's size.
    pub kernel: [usize; 2],
    /// How far the window moves.
    pub stride: [usize; 2],
    /// Zeros added on each side.
    pub padding: [usize; 2],
}

impl Pool2dOptions {
    /// A `k`×`k` window moved by `k`, no padding.
    pub fn new(k: usize) -> Self {
        Pool2dOptions {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
        }
    }
    /// A `kh`×`kw` window moved by its size, no padding.
    pub fn rect(kh: usize, kw: usize) -> Self {
        Pool2dOptions {
            kernel: [kh, kw],
            stride: [kh, kw],
            padding: [0, 0],
        }
    }
    /// The same stride along both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    /// The same padding on all four sides.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p, p];
        self
    }
}

impl Tensor {
    /// Max pooling of `[batch, channels, h, w]` over the windows of
    /// `options`, with implicit −∞ padding. The gradient goes to the first
    /// maximum of each window; NaN propagates.
    #[track_caller]
    pub fn max_pool2d(&self, options: Pool2dOptions) -> Tensor {
        let Pool2dOptions {
            kernel,
            stride,
            padding,
        } = options;
        let geom = geometry("max_pool2d", self.shape(), kernel, stride, padding);
        // With padding at most half the kernel every window of a non-empty
        // image covers a pixel; of an empty one, only padding (no maximum).
        assert!(
            geom.h >= 1 && geom.w >= 1,
            "max_pool2d: the image is empty ({}×{}), so every window would cover only padding {padding:?}, which has no maximum",
            geom.h,
            geom.w
        );
        gather(self, self, geom)
    }

    /// Average pooling of `[batch, channels, h, w]`; zero padding counts in
    /// the average (PyTorch's default, `count_include_pad`). A depthwise
    /// convolution with weights 1 / (kh·kw).
    #[track_caller]
    pub fn avg_pool2d(&self, options: Pool2dOptions) -> Tensor {
        let Pool2dOptions {
            kernel,
            stride,
            padding,
        } = options;
        let geom = geometry("avg_pool2d", self.shape(), kernel, stride, padding);
        let weight = Tensor::full(
            self.device(),
            [geom.c, 1, kernel[0], kernel[1]],
            1.0 / (kernel[0] * kernel[1]) as f32,
        );
        let options = Conv2dOptions {
            stride,
            padding,
            groups: geom.c,
            ..Default::default()
        };
        // The weight is f32 (1/k² rounded once); the result is stored in
        // the input's dtype, not promoted by this internal constant.
        self.conv2d(&weight, None, options).to_dtype(self.dtype())
    }

    /// Mean over the spatial axes: `[batch, channels, h, w]` → `[batch, channels]`.
    #[track_caller]
    pub fn global_avg_pool2d(&self) -> Tensor {
        assert!(
            self.rank() == 4,
            "global_avg_pool2d: input must be [batch, channels, height, width], got {:?}",
            self.shape()
        );
        self.mean_axes(&[2, 3])
    }
}

fn gather(x: &Tensor, v: &Tensor, geom: Geometry) -> Tensor {
    Tensor::record_family(MaxPoolGather { geom }, &[x, v], geom.y_shape())
}

fn scatter(x: &Tensor, g: &Tensor, geom: Geometry) -> Tensor {
    Tensor::record_family(MaxPoolScatter { geom }, &[x, g], geom.x_shape())
}

fn describe(op: &str, g: &Geometry) -> String {
    format!(
        "{op}(k={:?}, stride={:?}, padding={:?})",
        g.kernel, g.stride, g.padding
    )
}

/// `out[window] = v[argmax of x over the window]`; inputs (x, v).
#[derive(Debug)]
pub(crate) struct MaxPoolGather {
    geom: Geometry,
}

impl Family for MaxPoolGather {
    fn name(&self) -> String {
        describe("max_pool2d", &self.geom)
    }
    fn lower(&self, _: &Shape, _: &[&Shape], _: Target) -> Lowering {
        kernels::lower(kernels::Direction::Gather, &self.geom)
    }
    // Linear in v, piecewise constant in x: ∂/∂v = scatter(x, g), ∂/∂x = 0.
    fn vjp(&self, x: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        vec![None, Some(scatter(&x[0], g, self.geom))]
    }
    fn linear_in(&self) -> &[usize] {
        &[1]
    }
    fn reference(&self, _: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        reference::gather(&self.geom, x[0], x[1])
    }
}

/// `out[i] = Σ of g over the windows whose argmax of x is i`; inputs (x, g).
#[derive(Debug)]
pub(crate) struct MaxPoolScatter {
    geom: Geometry,
}

impl Family for MaxPoolScatter {
    fn name(&self) -> String {
        describe("max_pool2d_scatter", &self.geom)
    }
    fn lower(&self, _: &Shape, _: &[&Shape], _: Target) -> Lowering {
        kernels::lower(kernels::Direction::Scatter, &self.geom)
    }
    // The gather's adjoint, so its own adjoint is the gather: ∂/∂g = gather(x, G).
    fn vjp(&self, x: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        vec![None, Some(gather(&x[0], g, self.geom))]
    }
    fn linear_in(&self) -> &[usize] {
        &[1]
    }
    fn reference(&self, _: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        reference::scatter(&self.geom, x[0], x[1])
    }
}
