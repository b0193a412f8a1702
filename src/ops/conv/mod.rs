//! Convolutions (NCHW): conv2d, conv_transpose2d and conv1d, with stride,
//! padding, dilation and groups (depthwise included).
//!
//! One family, [`Conv`], in three roles, each linear in each input, closes
//! the set under differentiation (so second derivatives work):
//!
//! - forward: y = conv2d(x, w).
//! - transpose: the transposed convolution, which is conv2d's adjoint with
//!   respect to its input: ⟨conv2d(x, w), g⟩ = ⟨x, convᵀ(g, w)⟩.
//! - weight gradient: the correlation of the input with the output's
//!   adjoint, conv2d's adjoint with respect to the weight:
//!   ⟨conv2d(x, w), g⟩ = ⟨w, corr(x, g)⟩.
//!
//! Each role's vjp follows from those two identities; the kernels are in
//! `kernels.rs` (`shaders/conv2d.wgsl`), the f64 reference in `reference.rs`.

mod kernels;
mod reference;

use crate::graph::family::Family;
use crate::kernel::{Lowering, Target};
use crate::shape::Shape;
use crate::tensor::Tensor;

#[cfg(test)]
mod shader_tests;

/// Settings of a 2-D convolution, `[height, width]` pairs. The default is
/// stride 1, no padding, dilation 1, one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dOptions {
    /// How far the window moves.
    pub stride: [usize; 2],
    /// Zeros added on each side of the input.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Input and output channels split into this many independent groups
    /// (groups = channels is a depthwise convolution).
    pub groups: usize,
    /// Transposed convolution only: extra rows and columns at the bottom and
    /// right of the output (below max(stride, dilation)), to pick among the
    /// input sizes a strided convolution maps to one output size.
    pub output_padding: [usize; 2],
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            output_padding: [0, 0],
        }
    }
}

impl Conv2dOptions {
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
    /// The same dilation along every axis.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    /// Channels split into `g` independent groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// The same output padding along both axes (transposed convolution only).
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = [p, p];
        self
    }
}

/// Settings of a 1-D convolution along the length. The default is stride
/// 1, no padding, dilation 1, one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv1dOptions {
    /// How far the window moves.
    pub stride: usize,
    /// Zeros added at each end of the input.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Input and output channels split into this many independent groups.
    pub groups: usize,
}

impl Default for Conv1dOptions {
    fn default() -> Self {
        Conv1dOptions {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl Conv1dOptions {
    /// The stride along the length.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    /// Zeros added at each end.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p;
        self
    }
    /// The same dilation along every axis.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }
    /// Channels split into `g` independent groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// The forward convolution's sizes, which all three families share:
/// x `[n, c, h, w]`, weight `[o, c / groups, r, s]`, y `[n, o, p, q]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    /// The probability of dropping an element.
    pub p: usize,
    pub q: usize,
    pub r: usize,
    pub s: usize,
    /// How far the window moves.
    pub stride: [usize; 2],
    /// Zeros added on each side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Channels split into this many independent groups.
    pub groups: usize,
}

impl Geometry {
    /// A multiply and an add per output element and tap of the forward
    /// convolution; its two adjoints do the same work.
    pub fn flops(&self) -> u64 {
        [
            self.n,
            self.o,
            self.p,
            self.q,
            self.c / self.groups.max(1),
            self.r,
            self.s,
        ]
        .iter()
        .fold(2u64, |f, &d| f.saturating_mul(d as u64))
    }

    pub fn x_shape(&self) -> Shape {
        Shape::new(&[self.n, self.c, self.h, self.w])
    }
    pub fn w_shape(&self) -> Shape {
        Shape::new(&[self.o, self.c / self.groups, self.r, self.s])
    }
    pub fn y_shape(&self) -> Shape {
        Shape::new(&[self.n, self.o, self.p, self.q])
    }
}

/// `a + b`, `a · b` and friends on sizes, panicking with the op and shapes
/// on overflow instead of wrapping.
#[track_caller]
fn sized(v: Option<usize>, op: &str, x: &Shape, w: &Shape) -> usize {
    match v {
        Some(v) => v,
        None => panic!("{op}: sizes overflow for input {x:?} and weight {w:?}"),
    }
}

/// Panics, naming the op and its operands, if the output shape `dims`
/// has more elements than a usize counts (large padding can do that).
#[track_caller]
fn output_fits(op: &str, dims: [usize; 4], x: &Shape, w: &Shape) {
    assert!(
        dims.iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_some(),
        "{op}: the output {dims:?} for input {x:?} and weight {w:?} has more elements than a usize can count"
    );
}

/// Checks the settings and the channel counts common to both directions.
#[track_caller]
fn check_common(op: &str, x: &Shape, w: &Shape, o: &Conv2dOptions) {
    assert!(
        x.rank() == 4 && w.rank() == 4,
        "{op}: input must be [batch, channels, height, width] and weight 4-D, got {x:?} and {w:?}"
    );
    assert!(
        o.stride.iter().all(|&s| s >= 1) && o.dilation.iter().all(|&d| d >= 1) && o.groups >= 1,
        "{op}: stride, dilation and groups must be at least 1, got {o:?}"
    );
    // The kernels index the image with i32 (a position may lie in the
    // padding, left of 0): every setting and the padded extents below fit.
    let settings = [o.stride, o.padding, o.dilation, o.output_padding];
    assert!(
        settings.iter().flatten().all(|&v| v <= MAX_SETTING),
        "{op}: stride, padding, dilation and output_padding must be at most {MAX_SETTING} (2^30), got {o:?}"
    );
    // One input channel's (forward) or output channel's (input gradient)
    // taps must fit one invocation's loop budget (see `kernels::LOOP_BUDGET`).
    let (r, s) = (w.dims()[2], w.dims()[3]);
    assert!(
        r.saturating_mul(s.saturating_mul(2).saturating_add(1)) <= kernels::LOOP_BUDGET,
        "{op}: a {r}×{s} kernel has too many taps for one GPU invocation (kh·(2·kw + 1) must be at most {}): split it into smaller kernels",
        kernels::LOOP_BUDGET
    );
}

/// The largest stride, padding, dilation or output padding: 2^30, so that
/// image positions computed from them fit the kernels' i32 arithmetic.
const MAX_SETTING: usize = 1 << 30;

/// Geometry of `conv2d(x, w)`.
#[track_caller]
pub(crate) fn forward_geometry(x: &Shape, w: &Shape, o: &Conv2dOptions) -> Geometry {
    let op = "conv2d";
    check_common(op, x, w, o);
    let [n, c, h, wd] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let [oc, cg, r, s] = [w.dims()[0], w.dims()[1], w.dims()[2], w.dims()[3]];
    let g = o.groups;
    assert!(
        c % g == 0 && oc % g == 0 && cg * g == c,
        "{op}: input {x:?} and weight {w:?} do not match {g} group(s): the weight must be [out, in / groups, kh, kw] with in and out divisible by groups"
    );
    assert!(
        o.output_padding == [0, 0],
        "{op}: output_padding is for conv_transpose2d only, got {:?}",
        o.output_padding
    );
    // A loop, not a closure, so that #[track_caller] reaches the caller.
    let mut out = [0usize; 2];
    for (axis, (size, k)) in [(h, r), (wd, s)].into_iter().enumerate() {
        let padded = o.padding[axis]
            .checked_mul(2)
            .and_then(|p| size.checked_add(p));
        let padded = sized(padded, op, x, w);
        assert!(
            padded <= MAX_SETTING,
            "{op}: the padded input ({padded}) exceeds {MAX_SETTING} (2^30) along an axis for input {x:?} and weight {w:?}"
        );
        assert!(
            k >= 1,
            "{op}: the kernel must have at least one tap along each axis, got weight {w:?}"
        );
        let span = sized(
            k.checked_sub(1)
                .and_then(|k| k.checked_mul(o.dilation[axis]))
                .map(|v| v + 1),
            op,
            x,
            w,
        );
        assert!(
            k >= 1 && span <= padded,
            "{op}: kernel {k} (dilated to {span}) is larger than the padded input ({padded}) for input {x:?} and weight {w:?}"
        );
        out[axis] = (padded - span) / o.stride[axis] + 1;
    }
    output_fits(op, [n, oc, out[0], out[1]], x, w);
    Geometry {
        n,
        c,
        h,
        w: wd,
        o: oc,
        p: out[0],
        q: out[1],
        r,
        s,
        stride: o.stride,
        padding: o.padding,
        dilation: o.dilation,
        groups: g,
    }
}

/// Geometry of `conv_transpose2d(x, w)`: the forward convolution whose
/// input adjoint it is (its output is that convolution's input).
#[track_caller]
pub(crate) fn transpose_geometry(x: &Shape, w: &Shape, o: &Conv2dOptions) -> Geometry {
    let op = "conv_transpose2d";
    check_common(op, x, w, o);
    let [n, c, h, wd] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let [wc, og, r, s] = [w.dims()[0], w.dims()[1], w.dims()[2], w.dims()[3]];
    let g = o.groups;
    assert!(
        wc == c && c % g == 0,
        "{op}: input {x:?} and weight {w:?} do not match: the weight must be [in, out / groups, kh, kw] with in divisible by {g} group(s)"
    );
    for axis in 0..2 {
        assert!(
            o.output_padding[axis] < o.stride[axis].max(o.dilation[axis]),
            "{op}: output_padding {:?} must be smaller than the stride or the dilation ({o:?})",
            o.output_padding
        );
    }
    // out = (in − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1
    let mut size = [0usize; 2];
    for (axis, (input, k)) in [(h, r), (wd, s)].into_iter().enumerate() {
        let grown = input
            .checked_sub(1)
            .and_then(|v| v.checked_mul(o.stride[axis]))
            .and_then(|v| v.checked_add(k.checked_sub(1)?.checked_mul(o.dilation[axis])?))
            .and_then(|v| v.checked_add(o.output_padding[axis] + 1));
        let grown = sized(grown, op, x, w);
        assert!(
            grown <= MAX_SETTING,
            "{op}: the output before padding ({grown}) exceeds {MAX_SETTING} (2^30) along an axis for input {x:?} and weight {w:?}"
        );
        assert!(
            input >= 1 && k >= 1 && grown / 2 >= o.padding[axis] && grown > 2 * o.padding[axis],
            "{op}: padding {:?} leaves no output for input {x:?} and weight {w:?}",
            o.padding
        );
        size[axis] = grown - 2 * o.padding[axis];
    }
    let out_channels = sized(og.checked_mul(g), op, x, w);
    output_fits(op, [n, out_channels, size[0], size[1]], x, w);
    Geometry {
        n,
        c: out_channels,
        h: size[0],
        w: size[1],
        o: c,
        p: h,
        q: wd,
        r,
        s,
        stride: o.stride,
        padding: o.padding,
        dilation: o.dilation,
        groups: g,
    }
}

#[track_caller]
fn add_bias(y: Tensor, bias: Option<&Tensor>, op: &str) -> Tensor {
    match bias {
        None => y,
        Some(b) => {
            let channels = y.dims()[1];
            assert!(
                b.shape().dims() == [channels],
                "{op}: bias must be [{channels}] for an output of shape {:?}, got {:?}",
                y.shape(),
                b.shape()
            );
            &y + &b.reshape([1, channels, 1, 1])
        }
    }
}

impl Tensor {
    /// 2-D convolution (cross-correlation, as in PyTorch) of an input
    /// `[batch, in, height, width]` with a weight `[out, in / groups, kh, kw]`,
    /// plus an optional bias `[out]`. The output is `[batch, out, oh, ow]`
    /// with `oh = (height + 2·padding − dilation·(kh − 1) − 1) / stride + 1`.
    #[track_caller]
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, options: Conv2dOptions) -> Tensor {
        let geom = forward_geometry(self.shape(), weight.shape(), &options);
        add_bias(conv2d(self, weight, geom), bias, "conv2d")
    }

    /// Transposed 2-D convolution (the adjoint of [`Tensor::conv2d`] with
    /// respect to its input; "deconvolution") of an input `[batch, in, h, w]`
    /// with a weight `[in, out / groups, kh, kw]`, plus an optional bias
    /// `[out]`. The output is `[batch, out, oh, ow]` with
    /// `oh = (h − 1)·stride − 2·padding + dilation·(kh − 1) + output_padding + 1`.
    #[track_caller]
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        options: Conv2dOptions,
    ) -> Tensor {
        let geom = transpose_geometry(self.shape(), weight.shape(), &options);
        add_bias(
            conv_transpose2d(self, weight, geom),
            bias,
            "conv_transpose2d",
        )
    }

    /// 1-D convolution of `[batch, in, length]` with a weight
    /// `[out, in / groups, k]` (and bias `[out]`), a view of conv2d with a
    /// height of 1.
    #[track_caller]
    pub fn conv1d(&self, weight: &Tensor, bias: Option<&Tensor>, options: Conv1dOptions) -> Tensor {
        assert!(
            self.rank() == 3 && weight.rank() == 3,
            "conv1d: input must be [batch, channels, length] and weight [out, in / groups, k], got {:?} and {:?}",
            self.shape(),
            weight.shape()
        );
        check_conv1d(self.shape(), weight.shape(), &options);
        let (x, w) = (self.dims(), weight.dims());
        let o = Conv2dOptions {
            stride: [1, options.stride],
            padding: [0, options.padding],
            dilation: [1, options.dilation],
            groups: options.groups,
            output_padding: [0, 0],
        };
        let y = self.reshape([x[0], x[1], 1, x[2]]).conv2d(
            &weight.reshape([w[0], w[1], 1, w[2]]),
            bias,
            o,
        );
        let d = y.dims().to_vec();
        y.reshape([d[0], d[1], d[3]])
    }
}

/// Everything conv2d would check of conv1d's view, said in conv1d's
/// terms (its shapes and settings), so that no message names the 2-D view
/// the caller never made.
#[track_caller]
fn check_conv1d(x: &Shape, w: &Shape, o: &Conv1dOptions) {
    let op = "conv1d";
    let (stride, padding, dilation) = (o.stride, o.padding, o.dilation);
    assert!(
        stride >= 1 && dilation >= 1 && o.groups >= 1,
        "{op}: stride, dilation and groups must be at least 1, got stride {stride}, dilation {dilation}, groups {}",
        o.groups
    );
    assert!(
        stride.max(padding).max(dilation) <= MAX_SETTING,
        "{op}: stride, padding and dilation must be at most {MAX_SETTING} (2^30), got stride {stride}, padding {padding}, dilation {dilation}"
    );
    let (c, length) = (x.dims()[1], x.dims()[2]);
    let (oc, cg, k) = (w.dims()[0], w.dims()[1], w.dims()[2]);
    let g = o.groups;
    assert!(
        c % g == 0 && oc % g == 0 && cg.checked_mul(g) == Some(c),
        "{op}: input {x:?} and weight {w:?} do not match {g} group(s): the weight must be [out, in / groups, k] with in and out divisible by groups"
    );
    assert!(
        k.saturating_mul(2).saturating_add(1) <= kernels::LOOP_BUDGET,
        "{op}: a kernel of {k} taps is too long for one GPU invocation (2·k + 1 must be at most {})",
        kernels::LOOP_BUDGET
    );
    let padded = padding.checked_mul(2).and_then(|p| length.checked_add(p));
    let padded = sized(padded, op, x, w);
    assert!(
        padded <= MAX_SETTING,
        "{op}: the padded input ({padded}) exceeds {MAX_SETTING} (2^30) for input {x:?} and weight {w:?}"
    );
    assert!(
        k >= 1,
        "{op}: the kernel must have at least one tap, got weight {w:?}"
    );
    let span = (k - 1).checked_mul(dilation).map(|v| v + 1);
    let span = sized(span, op, x, w);
    assert!(
        k >= 1 && span <= padded,
        "{op}: kernel {k} (dilated to {span}) is longer than the padded input ({padded}) for input {x:?} and weight {w:?}"
    );
}

fn conv2d(x: &Tensor, w: &Tensor, geom: Geometry) -> Tensor {
    let f = Conv {
        role: Role::Forward,
        geom,
    };
    Tensor::record_family(f, &[x, w], geom.y_shape())
}

fn conv_transpose2d(g: &Tensor, w: &Tensor, geom: Geometry) -> Tensor {
    let f = Conv {
        role: Role::Transpose,
        geom,
    };
    Tensor::record_family(f, &[g, w], geom.x_shape())
}

fn conv2d_weight_grad(x: &Tensor, g: &Tensor, geom: Geometry) -> Tensor {
    let f = Conv {
        role: Role::WeightGrad,
        geom,
    };
    Tensor::record_family(f, &[x, g], geom.w_shape())
}

/// Which of the three products of one convolution's geometry a node is.
/// Each one's adjoints are the other two, so every derivative of every
/// order is again a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// y = conv2d(x, w); inputs (x, w).
    Forward,
    /// The transposed convolution convᵀ(g, w), x-shaped; inputs (g, w).
    Transpose,
    /// corr(x, g), weight-shaped; inputs (x, g).
    WeightGrad,
}

/// One of the convolution families (see [`Role`]): they share the
/// geometry, the FLOP count, the linearity in both inputs, and their
/// adjoints point at each other.
#[derive(Debug)]
pub(crate) struct Conv {
    role: Role,
    geom: Geometry,
}

impl Family for Conv {
    fn name(&self) -> String {
        let op = match self.role {
            Role::Forward => "conv2d",
            Role::Transpose => "conv_transpose2d",
            Role::WeightGrad => "conv2d_weight_grad",
        };
        let g = &self.geom;
        format!(
            "{op}(k={}×{}, stride={:?}, padding={:?}, dilation={:?}, groups={})",
            g.r, g.s, g.stride, g.padding, g.dilation, g.groups
        )
    }
    fn flops(&self, _out: &Shape, _inputs: &[&Shape]) -> u64 {
        self.geom.flops()
    }
    fn lower(&self, _: &Shape, _: &[&Shape], target: Target) -> Lowering {
        match self.role {
            Role::Forward => kernels::conv2d(&self.geom, target),
            Role::Transpose => kernels::conv_transpose2d(&self.geom, target),
            Role::WeightGrad => kernels::conv2d_weight_grad(&self.geom, target),
        }
    }
    fn vjp(&self, x: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let geom = self.geom;
        let (a, b) = match self.role {
            // ∂L/∂x = convᵀ(g, w),  ∂L/∂w = corr(x, g)
            Role::Forward => (
                conv_transpose2d(g, &x[1], geom),
                conv2d_weight_grad(&x[0], g, geom),
            ),
            // From ⟨convᵀ(g, w), G⟩ = ⟨g, conv2d(G, w)⟩:
            // ∂/∂g = conv2d(G, w),  ∂/∂w = corr(G, g)
            Role::Transpose => (conv2d(g, &x[1], geom), conv2d_weight_grad(g, &x[0], geom)),
            // From ⟨corr(x, g), G⟩ = ⟨conv2d(x, G), g⟩ = ⟨x, convᵀ(g, G)⟩:
            // ∂/∂x = convᵀ(g, G),  ∂/∂g = conv2d(x, G)
            Role::WeightGrad => (conv_transpose2d(&x[1], g, geom), conv2d(&x[0], g, geom)),
        };
        vec![Some(a), Some(b)]
    }
    // Bilinear: Δy = f(Δa, b) + f(a, Δb) for each role.
    fn linear_in(&self) -> &[usize] {
        &[0, 1]
    }
    fn reference(&self, _: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        let g = &self.geom;
        match self.role {
            Role::Forward => reference::conv2d(g, x[0], x[1]),
            Role::Transpose => reference::conv_transpose2d(g, x[0], x[1]),
            Role::WeightGrad => reference::conv2d_weight_grad(g, x[0], x[1]),
        }
    }
}
