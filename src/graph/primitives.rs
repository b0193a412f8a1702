//! The graph's primitive ops: the elementwise and reduction kinds that the
//! executor fuses and the reference interprets. What each computes (its
//! WGSL snippet, f64 semantics and derivative rules) is defined with the
//! ops, in `ops/elementwise.rs` and `ops/reduce.rs`; the IR only names them.

/// Unary elementwise ops. The ones with an `f32` carry a scalar constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// −x
    Neg,
    /// eˣ
    Exp,
    /// ln x
    Log,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// tan x
    Tan,
    /// tanh x
    Tanh,
    /// σ(x) = 1 / (1 + e⁻ˣ)
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// √x
    Sqrt,
    /// x²
    Square,
    /// |x|
    Abs,
    /// x^c for a constant c (negative x allowed for integer c).
    PowScalar(f32),
    /// x·c
    Scale(f32),
    /// x + c
    AddScalar(f32),
    /// 1 where x > 0, else 0 (relu's derivative; its own derivative is 0).
    Step,
    /// −1, 0 or 1 (abs's derivative; its own derivative is 0).
    Sign,
    /// log(1 + x), accurate near 0.
    Log1p,
    /// eˣ − 1, accurate near 0.
    Expm1,
    /// log(1 + eˣ), computed without overflow.
    Softplus,
    /// x·σ(x) (also called swish).
    Silu,
    /// The error function.
    Erf,
    /// x·Φ(x) with Φ the standard normal CDF (the exact GELU).
    Gelu,
    /// GELU's tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    GeluTanh,
}

/// Binary elementwise ops with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// a + b
    Add,
    /// a − b
    Sub,
    /// a · b
    Mul,
    /// a / b
    Div,
    /// aᵇ
    Pow,
    /// max(a, b), NaN propagating
    Maximum,
    /// min(a, b), NaN propagating
    Minimum,
    /// 1 where a ≥ b, else 0 (a mask: its derivative is 0).
    Ge,
    /// 1 where a < b, else 0 (a mask: its derivative is 0).
    Lt,
    /// 1 where a = b, else 0 (a mask).
    Eq,
    /// 1 where a ≠ b, else 0 (a mask).
    Ne,
}

/// The reductions the executor folds (mean is a sum times 1/count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A reduction the executor folds.
pub enum ReduceOp {
    /// Σ
    Sum,
    /// the largest element (NaN propagating)
    Max,
    /// the smallest element (NaN propagating)
    Min,
}

impl ReduceOp {
    /// The reduction's name ("sum", "max", "min").
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

/// Every unary op, for tests and documentation (constants filled with typical values).
pub const ALL_UNARY: &[Unary] = &[
    Unary::Neg,
    Unary::Exp,
    Unary::Log,
    Unary::Sin,
    Unary::Cos,
    Unary::Tan,
    Unary::Tanh,
    Unary::Sigmoid,
    Unary::Relu,
    Unary::Sqrt,
    Unary::Square,
    Unary::Abs,
    Unary::PowScalar(3.0),
    Unary::PowScalar(0.5),
    Unary::Scale(-2.5),
    Unary::AddScalar(1.5),
    Unary::Step,
    Unary::Sign,
    Unary::Log1p,
    Unary::Expm1,
    Unary::Softplus,
    Unary::Silu,
    Unary::Erf,
    Unary::Gelu,
    Unary::GeluTanh,
];

/// Every binary op, for tests and documentation.
pub const ALL_BINARY: &[Binary] = &[
    Binary::Add,
    Binary::Sub,
    Binary::Mul,
    Binary::Div,
    Binary::Pow,
    Binary::Maximum,
    Binary::Minimum,
    Binary::Ge,
    Binary::Lt,
    Binary::Eq,
    Binary::Ne,
];
