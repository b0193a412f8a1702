//! Automatic differentiation: adjoints are ordinary graph nodes.

pub mod reverse;
mod vjp;

pub use reverse::{Gradients, TraceStep, backward_trace, grad, grad_with_seed};
