//! Elementwise ops: one table row each.
//!
//! A row gives the op's name, its WGSL expression snippet (spliced by the
//! scheduler into a fused kernel; `{x}` is the input, `{a}`/`{b}` the two
//! operands, `{c}` the scalar constant), its f64 reference semantics and its
//! vjp rule written with ordinary tensor ops (so gradients are differentiable
//! again). The rules receive the input(s) `x`, the output `y` and the output's
//! adjoint `g`, and return the partial adjoint of each input in the output's
//! shape; the graph un-broadcasts it centrally.

use crate::graph::Op;
pub use crate::graph::{Binary, Unary};
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

type UnaryVjp = fn(x: &Tensor, y: &Tensor, g: &Tensor, c: f32) -> Option<Tensor>;

pub(crate) struct UnaryRule {
    pub name: &'static str,
    pub wgsl: &'static str,
    pub reference: fn(x: f64, c: f64) -> f64,
    /// `None` means the derivative is zero everywhere it exists.
    pub vjp: UnaryVjp,
}

impl Unary {
    #[rustfmt::skip]
    pub(crate) fn rule(self) -> UnaryRule {
        use Unary::*;
        let r = |name, wgsl, reference, vjp| UnaryRule { name, wgsl, reference, vjp };
        match self {
            //          name        WGSL                       f64 reference                      vjp: ∂L/∂x = g · ∂y/∂x
            Neg       => r("neg",     "-{x}",                    |x, _| -x,                         |_, _, g, _| Some(-g)),
            Exp       => r("exp",     "exp({x})",                |x, _| x.exp(),                    |_, y, g, _| Some(g * y)),
            Log       => r("log",     "wg_log({x})",             |x, _| x.ln(),                     |x, _, g, _| Some(g / x)),
            Sin       => r("sin",     "sin({x})",                |x, _| x.sin(),                    |x, _, g, _| Some(g * &x.cos())),
            Cos       => r("cos",     "cos({x})",                |x, _| x.cos(),                    |x, _, g, _| Some(-(g * &x.sin()))),
            // tanh' = 1 − y²; the clamp keeps drivers that evaluate tanh through exp from returning NaN.
            // tan' = 1 + y²
            Tan       => r("tan",     "tan({x})",                |x, _| x.tan(),                    |_, y, g, _| Some(g * &(1.0 + &y.square()))),
            Tanh      => r("tanh",    "select(tanh(clamp({x}, -15.0, 15.0)), {x}, wg_isnan({x}))", |x, _| x.tanh(), |_, y, g, _| Some(g * &(1.0 - &y.square()))),
            // σ' = y(1 − y)
            Sigmoid   => r("sigmoid", "1.0 / (1.0 + exp(-{x}))", |x, _| 1.0 / (1.0 + (-x).exp()),   |_, y, g, _| Some(g * &(y * &(1.0 - y)))),
            Relu      => r("relu",    "select(max({x}, 0.0), {x}, wg_isnan({x}))", |x, _| if x.is_nan() { x } else { x.max(0.0) }, |x, _, g, _| Some(g * &x.unary(Step))),
            // (√x)' = 1 / (2√x)
            Sqrt      => r("sqrt",    "wg_sqrt({x})",               |x, _| x.sqrt(),                   |_, y, g, _| Some(g / &(y * 2.0))),
            Square    => r("square",  "{x} * {x}",               |x, _| x * x,                      |x, _, g, _| Some(g * &(x * 2.0))),
            Abs       => r("abs",     "abs({x})",                |x, _| x.abs(),                    |x, _, g, _| Some(g * &x.unary(Sign))),
            // (x^c)' = c·x^(c−1)
            // (x^c)' = c·x^(c−1); x⁰ is constant, so 0 (not 0·∞ at x = 0, PyTorch's convention)
            PowScalar(_) => r("powf", "wg_pow({x}, {c})",        pow_f64,                           |x, _, g, c| if c == 0.0 { None } else { Some(g * &(x.powf(c - 1.0) * c)) }),
            Scale(_)  => r("scale",   "{x} * {c}",               |x, c| x * c,                      |_, _, g, c| Some(g * c)),
            AddScalar(_) => r("add_scalar", "{x} + {c}",         |x, c| x + c,                      |_, _, g, _| Some(g.clone())),
            // step and sign of NaN are NaN (numpy), tested on the bits.
            Step      => r("step",    "select(select(0.0, 1.0, {x} > 0.0), {x}, wg_isnan({x}))", |x, _| if x.is_nan() { x } else if x > 0.0 { 1.0 } else { 0.0 }, |_, _, _, _| None),
            Sign      => r("sign",    "select(sign({x}), {x}, wg_isnan({x}))", |x, _| if x.is_nan() { x } else if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { 0.0 }, |_, _, _, _| None),
            // (log(1 + x))' = 1 / (1 + x)
            Log1p     => r("log1p",   "wg_log1p({x})",           |x, _| x.ln_1p(),                  |x, _, g, _| Some(g / &x.add_scalar(1.0))),
            // (eˣ − 1)' = eˣ, not y + 1, which rounds to 0 below x ≈ −17
            Expm1     => r("expm1",   "wg_expm1({x})",           |x, _| x.exp_m1(),                 |x, _, g, _| Some(g * &x.exp())),
            // softplus' = σ(x)
            Softplus  => r("softplus", "max({x}, 0.0) + wg_log1p(exp(-abs({x})))", softplus_f64,    |x, _, g, _| Some(g * &x.sigmoid())),
            // (x·σ)' = σ·(1 + x·(1 − σ))
            Silu      => r("silu",    "{x} / (1.0 + exp(-{x}))", |x, _| x / (1.0 + (-x).exp()),     |x, _, g, _| { let s = x.sigmoid(); Some(g * &(&s * &(1.0 + &(x * &(1.0 - &s))))) }),
            // erf' = 2/√π · e^(−x²)
            Erf       => r("erf",     "wg_erf({x})",             |x, _| libm::erf(x),               |x, _, g, _| Some(g * &((-x.square()).exp() * std::f32::consts::FRAC_2_SQRT_PI))),
            // (x·Φ)' = Φ + x·φ,  Φ = (1 + erf(x/√2))/2,  φ = e^(−x²/2)/√(2π)
            Gelu      => r("gelu",    "0.5 * {x} * (1.0 + wg_erf({x} * 0.70710678118654752))", |x, _| 0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2)), |x, _, g, _| Some(g * &gelu_slope(x))),
            // (½x(1 + tanh u))' = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)
            GeluTanh  => r("gelu_tanh", "0.5 * {x} * (1.0 + tanh(clamp(0.79788456080286536 * ({x} + 0.044715 * {x} * {x} * {x}), -15.0, 15.0)))", gelu_tanh_f64, |x, _, g, _| Some(g * &gelu_tanh_slope(x))),
        }
    }

    /// The scalar constant, for the ops that carry one.
    pub(crate) fn constant(self) -> Option<f32> {
        match self {
            Unary::PowScalar(c) | Unary::Scale(c) | Unary::AddScalar(c) => Some(c),
            _ => None,
        }
    }

    /// The op's name, with its constant if it has one ("exp", "scale(2)").
    pub fn name(self) -> String {
        match self.constant() {
            Some(c) => format!("{}({c})", self.rule().name),
            None => self.rule().name.to_string(),
        }
    }
}

/// max and min that propagate NaN, like numpy's `maximum`/`minimum` (Rust's
/// `f64::max` drops a NaN operand).
pub(crate) fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}
pub(crate) fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// ∂(a^b)/∂a = b·a^(b−1) and ∂(a^b)/∂b = a^b·ln a, with PyTorch's
/// conventions where those are 0·∞: the first is 0 where b = 0, the second
/// 0 where a = 0.
fn pow_vjp(a: &Tensor, b: &Tensor, y: &Tensor, g: &Tensor) -> (Option<Tensor>, Option<Tensor>) {
    let zero = Tensor::zeros(a.device(), crate::shape::Shape::scalar());
    let da = b.eq(&zero).where_cond(&zero, &(b * &a.pow(&(b - 1.0))));
    let db = a.eq(&zero).where_cond(&zero, &(y * &a.log()));
    (Some(g * &da), Some(g * &db))
}

/// log(1 + eˣ) in f64 without overflow.
fn softplus_f64(x: f64, _: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044715;

fn gelu_tanh_f64(x: f64, _: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + GELU_CUBIC as f64 * x * x * x);
    0.5 * x * (1.0 + u.tanh())
}

/// d/dx x·Φ(x) = Φ(x) + x·φ(x).
fn gelu_slope(x: &Tensor) -> Tensor {
    let cdf = (x * std::f32::consts::FRAC_1_SQRT_2)
        .unary(Unary::Erf)
        .add_scalar(1.0)
        * 0.5;
    let pdf = (x.square() * -0.5).exp()
        * (0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2);
    &cdf + &(x * &pdf)
}

/// d/dx of GELU's tanh form.
fn gelu_tanh_slope(x: &Tensor) -> Tensor {
    // Beyond |x| = 10 the slope is 0 or 1 to f32 precision; clamping keeps
    // x³ from overflowing into ∞·0 = NaN (NaN itself passes the clamp).
    let x = &x.clamp(-10.0, 10.0);
    let u = (x + &(x.powf(3.0) * GELU_CUBIC)) * SQRT_2_OVER_PI;
    let t = u.tanh();
    let du = (x.square() * (3.0 * GELU_CUBIC)).add_scalar(1.0) * SQRT_2_OVER_PI;
    &(t.add_scalar(1.0) * 0.5) + &(&(x * 0.5) * &(&(1.0 - &t.square()) * &du))
}

/// x^c in f64 by IEEE 754 (see `wg_pow`).
pub(crate) fn pow_f64(x: f64, c: f64) -> f64 {
    // IEEE 754 pow, which Rust's powf follows; the kernels' wg_pow matches it.
    x.powf(c)
}

type BinaryVjp =
    fn(a: &Tensor, b: &Tensor, y: &Tensor, g: &Tensor) -> (Option<Tensor>, Option<Tensor>);

pub(crate) struct BinaryRule {
    pub name: &'static str,
    pub wgsl: &'static str,
    pub reference: fn(a: f64, b: f64) -> f64,
    pub vjp: BinaryVjp,
}

impl Binary {
    #[rustfmt::skip]
    pub(crate) fn info(self) -> BinaryRule {
        use Binary::*;
        let r = |name, wgsl, reference, vjp| BinaryRule { name, wgsl, reference, vjp };
        match self {
            //        name       WGSL                        f64 reference               vjp: (∂L/∂a, ∂L/∂b)
            Add     => r("add",     "{a} + {b}",               |a, b| a + b,               |_, _, _, g| (Some(g.clone()), Some(g.clone()))),
            Sub     => r("sub",     "{a} - {b}",               |a, b| a - b,               |_, _, _, g| (Some(g.clone()), Some(-g))),
            Mul     => r("mul",     "{a} * {b}",               |a, b| a * b,               |a, b, _, g| (Some(g * b), Some(g * a))),
            // ∂(a/b)/∂b = −a/b² = −y/b
            Div     => r("div",     "wg_div({a}, {b})",              |a, b| a / b,               |_, b, y, g| (Some(g / b), Some(-(g * y) / b))),
            // ∂(a^b)/∂a = b·a^(b−1);  ∂(a^b)/∂b = a^b·ln a
            Pow     => r("pow",     "wg_pow({a}, {b})",        pow_f64,                    pow_vjp),
            Maximum => r("maximum", "select(max({a}, {b}), {a} + {b}, wg_isnan({a}) || wg_isnan({b}))", nan_max, |a, b, _, g| (Some(g * &a.ge(b)), Some(g * &a.lt(b)))),
            Minimum => r("minimum", "select(min({a}, {b}), {a} + {b}, wg_isnan({a}) || wg_isnan({b}))", nan_min, |a, b, _, g| (Some(g * &b.ge(a)), Some(g * &b.lt(a)))),
            // Comparisons with NaN are false (ne true), tested on the bits:
            // compilers may assume floats are never NaN.
            Ge      => r("ge",      "select(0.0, 1.0, {a} >= {b} && !wg_isnan({a}) && !wg_isnan({b}))", |a, b| (a >= b) as u8 as f64, |_, _, _, _| (None, None)),
            Lt      => r("lt",      "select(0.0, 1.0, {a} < {b} && !wg_isnan({a}) && !wg_isnan({b}))",  |a, b| (a < b) as u8 as f64,  |_, _, _, _| (None, None)),
            Eq      => r("eq",      "select(0.0, 1.0, {a} == {b} && !wg_isnan({a}))", |a, b| (a == b) as u8 as f64, |_, _, _, _| (None, None)),
            Ne      => r("ne",      "select(0.0, 1.0, {a} != {b} || wg_isnan({a}) || wg_isnan({b}))", |a, b| (a != b) as u8 as f64, |_, _, _, _| (None, None)),
        }
    }
}

impl Tensor {
    /// Applies a unary op from the table.
    pub fn unary(&self, op: Unary) -> Tensor {
        Tensor::record(Op::Unary(op), &[self], self.shape().clone())
    }

    /// Applies a binary op with numpy broadcasting.
    #[track_caller]
    pub fn binary(&self, op: Binary, other: &Tensor) -> Tensor {
        let shape = broadcast_shapes(op.info().name, self.shape(), other.shape());
        Tensor::record(Op::Binary(op), &[self, other], shape)
    }

    /// eˣ, elementwise.
    pub fn exp(&self) -> Tensor {
        self.unary(Unary::Exp)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Tensor {
        self.unary(Unary::Log)
    }
    /// sin x, elementwise.
    pub fn sin(&self) -> Tensor {
        self.unary(Unary::Sin)
    }
    /// cos x, elementwise.
    pub fn cos(&self) -> Tensor {
        self.unary(Unary::Cos)
    }
    /// tan x, elementwise.
    pub fn tan(&self) -> Tensor {
        self.unary(Unary::Tan)
    }
    /// tanh x, elementwise.
    pub fn tanh(&self) -> Tensor {
        self.unary(Unary::Tanh)
    }
    /// σ(x) = 1 / (1 + e⁻ˣ), elementwise.
    pub fn sigmoid(&self) -> Tensor {
        self.unary(Unary::Sigmoid)
    }
    /// max(x, 0), elementwise (NaN stays NaN).
    pub fn relu(&self) -> Tensor {
        self.unary(Unary::Relu)
    }
    /// √x, elementwise (NaN below 0).
    pub fn sqrt(&self) -> Tensor {
        self.unary(Unary::Sqrt)
    }
    /// x², elementwise.
    pub fn square(&self) -> Tensor {
        self.unary(Unary::Square)
    }
    /// |x|, elementwise.
    pub fn abs(&self) -> Tensor {
        self.unary(Unary::Abs)
    }
    /// −1, 0 or 1 by the sign of x, elementwise (NaN stays NaN); its
    /// derivative is 0 (see `custom_vjp` for a straight-through one).
    pub fn sign(&self) -> Tensor {
        self.unary(Unary::Sign)
    }
    /// x^c for a constant exponent.
    pub fn powf(&self, c: f32) -> Tensor {
        self.unary(Unary::PowScalar(c))
    }
    /// x·c
    pub fn scale(&self, c: f32) -> Tensor {
        self.unary(Unary::Scale(c))
    }
    /// x + c
    pub fn add_scalar(&self, c: f32) -> Tensor {
        self.unary(Unary::AddScalar(c))
    }

    /// a + b, broadcasting (also `&a + &b`).
    #[track_caller]
    pub fn add(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Add, o)
    }
    /// a − b, broadcasting (also `&a - &b`).
    #[track_caller]
    pub fn sub(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Sub, o)
    }
    /// a · b, broadcasting (also `&a * &b`).
    #[track_caller]
    pub fn mul(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Mul, o)
    }
    /// a / b, broadcasting (also `&a / &b`).
    #[track_caller]
    pub fn div(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Div, o)
    }
    /// Elementwise a^b.
    #[track_caller]
    pub fn pow(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Pow, o)
    }
    /// max(a, b), broadcasting; NaN propagates.
    #[track_caller]
    pub fn maximum(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Maximum, o)
    }
    /// min(a, b), broadcasting; NaN propagates.
    #[track_caller]
    pub fn minimum(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Minimum, o)
    }
    /// 1.0 where self ≥ other, else 0.0.
    #[track_caller]
    pub fn ge(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Ge, o)
    }
    /// 1.0 where self < other, else 0.0.
    #[track_caller]
    pub fn lt(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Lt, o)
    }
    /// Elementwise choice, like `torch.where`: `on_true` where this mask is
    /// nonzero, `on_false` elsewhere (NaN counts as nonzero); the three
    /// broadcast together. The value and the gradient flow through the
    /// chosen branch only. As in PyTorch, a branch whose own derivative is
    /// NaN where it is not taken (√x at x < 0) still passes 0·NaN = NaN on
    /// to its input: feed such a branch a safe value with a second `where_cond`.
    #[track_caller]
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        let shape = broadcast_shapes("select", self.shape(), on_true.shape());
        let shape = broadcast_shapes("select", &shape, on_false.shape());
        Tensor::record(Op::Where, &[self, on_true, on_false], shape)
    }

    /// 1.0 where self = other, else 0.0.
    #[track_caller]
    pub fn eq(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Eq, o)
    }
    /// 1.0 where self ≠ other (or either is NaN), else 0.0.
    #[track_caller]
    pub fn ne(&self, o: &Tensor) -> Tensor {
        self.binary(Binary::Ne, o)
    }
    /// 1.0 where self ≤ other, else 0.0.
    #[track_caller]
    pub fn le(&self, o: &Tensor) -> Tensor {
        o.binary(Binary::Ge, self)
    }
    /// 1.0 where self > other, else 0.0.
    #[track_caller]
    pub fn gt(&self, o: &Tensor) -> Tensor {
        o.binary(Binary::Lt, self)
    }
    /// Each element limited to [lo, hi]: max(lo, min(x, hi)). The gradient
    /// passes where lo ≤ x ≤ hi.
    #[track_caller]
    pub fn clamp(&self, lo: f32, hi: f32) -> Tensor {
        assert!(lo <= hi, "clamp: lo {lo} is above hi {hi}");
        let bound = |v| Tensor::full(self.device(), crate::shape::Shape::scalar(), v);
        self.minimum(&bound(hi)).maximum(&bound(lo))
    }
    /// log(1 + x), elementwise, accurate near 0.
    pub fn log1p(&self) -> Tensor {
        self.unary(Unary::Log1p)
    }
    /// eˣ − 1, elementwise, accurate near 0.
    pub fn expm1(&self) -> Tensor {
        self.unary(Unary::Expm1)
    }
    /// log(1 + eˣ), elementwise, without overflow.
    pub fn softplus(&self) -> Tensor {
        self.unary(Unary::Softplus)
    }
    /// x·σ(x) (swish), elementwise.
    pub fn silu(&self) -> Tensor {
        self.unary(Unary::Silu)
    }
    /// The error function, elementwise.
    pub fn erf(&self) -> Tensor {
        self.unary(Unary::Erf)
    }
    /// The exact GELU, x·Φ(x).
    pub fn gelu(&self) -> Tensor {
        self.unary(Unary::Gelu)
    }
    /// GELU's tanh approximation (as in GPT-2).
    pub fn gelu_tanh(&self) -> Tensor {
        self.unary(Unary::GeluTanh)
    }
}

// Operator overloads: `&a + &b`, `a * 2.0`, `1.0 - &a`, `-&a`, for owned and borrowed tensors.
macro_rules! binary_operator {
    ($trait:ident, $method:ident, $op:expr, $scalar_rhs:expr, $scalar_lhs:expr) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary($op, &rhs)
            }
        }
        impl std::ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary($op, &rhs)
            }
        }
        impl std::ops::$trait<f32> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f32) -> Tensor {
                ($scalar_rhs)(self, rhs)
            }
        }
        impl std::ops::$trait<f32> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f32) -> Tensor {
                ($scalar_rhs)(&self, rhs)
            }
        }
        impl std::ops::$trait<&Tensor> for f32 {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                ($scalar_lhs)(self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for f32 {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                ($scalar_lhs)(self, &rhs)
            }
        }
    };
}

fn scalar_like(t: &Tensor, v: f32) -> Tensor {
    Tensor::full(t.device(), crate::shape::Shape::scalar(), v)
}

binary_operator!(
    Add,
    add,
    Binary::Add,
    |t: &Tensor, c| t.add_scalar(c),
    |c, t: &Tensor| t.add_scalar(c)
);
binary_operator!(
    Sub,
    sub,
    Binary::Sub,
    |t: &Tensor, c: f32| t.add_scalar(-c),
    |c, t: &Tensor| (-t).add_scalar(c)
);
binary_operator!(
    Mul,
    mul,
    Binary::Mul,
    |t: &Tensor, c| t.scale(c),
    |c, t: &Tensor| t.scale(c)
);
binary_operator!(
    Div,
    div,
    Binary::Div,
    |t: &Tensor, c| t.binary(Binary::Div, &scalar_like(t, c)),
    |c, t: &Tensor| scalar_like(t, c).binary(Binary::Div, t)
);

impl std::ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.unary(Unary::Neg)
    }
}
impl std::ops::Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.unary(Unary::Neg)
    }
}
