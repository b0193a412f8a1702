//! Automatic differentiation: adjoints (reverse mode) and tangents (forward
//! mode) are ordinary graph nodes, so every derivative can be differentiated
//! again.

pub mod check;
pub(crate) mod custom;
pub mod forward;
pub(crate) mod jvp;
pub mod numerical;
pub mod remat;
pub mod reverse;
mod vjp;

#[cfg(not(target_arch = "wasm32"))]
pub use check::check_gradients_blocking;
pub use check::{GradientReport, Tolerance, check_gradients};
pub use custom::{custom_jvp, custom_vjp};
pub use forward::{
    hessian, hessian_reverse, hvp, jacfwd, jacrev, jvp, jvp_batched, tangent, tangent_batched, vjp,
};
pub use numerical::{Difference, numerical_grad, numerical_grad_reference};
#[cfg(not(target_arch = "wasm32"))]
pub use numerical::{numerical_grad_blocking, step_sweep};
pub use remat::{LayerFn, checkpoint, checkpoint_sequential, choose_segments};
pub use reverse::{Gradients, TraceStep, backward_trace, grad, grad_with_seed};
