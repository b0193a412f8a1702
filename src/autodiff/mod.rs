//! Automatic differentiation: adjoints are ordinary graph nodes.

pub mod reverse;
mod vjp;

pub use reverse::{grad, grad_with_seed, Gradients};
