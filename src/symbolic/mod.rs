//! Symbolic differentiation: a small expression language, derivatives by
//! the sum, product, quotient and chain rules with simplification, and
//! common-subexpression elimination by hash-consing expressions into a DAG.
//! Expressions compile to the tensor graph, so the same expression can be
//! differentiated by all four methods (numerical, symbolic, forward, reverse).
//!
//! ```
//! use webgrad::symbolic::ExprGraph;
//! let mut g = ExprGraph::new();
//! let y = g.parse("ln(x1) + x1*x2 - sin(x2)").unwrap();
//! let dy_dx1 = g.diff(y, "x1");
//! assert_eq!(g.print(dy_dx1), "1/x1 + x2");
//! assert_eq!(g.eval(dy_dx1, &[("x1", 2.0), ("x2", 5.0)]).unwrap(), 5.5);
//! ```

mod compile;
mod diff;
mod expr;
mod parse;

pub use expr::{BinOp, ExprGraph, ExprId, Func, Node};
