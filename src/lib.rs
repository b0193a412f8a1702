//! # webgrad
//!
//! Automatic differentiation on the GPU, everywhere WebGPU runs. Every op is
//! a WGSL compute shader run through `wgpu` (Vulkan, Metal, DX12, or WebGPU
//! in a browser).
//!
//! A short tour:
//!
//! - [`Device`] picks a GPU ([`Device::new_blocking`] on native).
//! - [`Tensor`]s are handles on nodes of one lazily executed graph: ops record
//!   nodes and check shapes; kernels run when a value is read
//!   ([`Tensor::to_vec`], [`Tensor::item`]) or [`Tensor::realize`] is called,
//!   all pending kernels in one submit, with elementwise chains fused.
//! - [`Tensor::backward`] and [`grad`] run reverse mode: adjoints are new
//!   graph nodes, so gradients can be differentiated again.
//! - [`reference::eval`] is an f64 CPU interpreter of the same graph, the
//!   oracle for tests.
//!
//! ```no_run
//! use webgrad::{Device, Tensor, grad};
//! let dev = Device::new_blocking()?;
//! let x1 = Tensor::scalar(&dev, 2.0);
//! let x2 = Tensor::scalar(&dev, 5.0);
//! let y = &(&x1.log() + &(&x1 * &x2)) - &x2.sin();
//! let g = grad(&y, &[&x1, &x2]);
//! assert!((g[0].item_blocking()? - 5.5).abs() < 1e-5);
//! # Ok::<(), webgrad::Error>(())
//! ```

pub mod autodiff;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod error;
mod exec;
mod graph;
mod kernel;
pub mod layers;
pub mod models;
pub mod ops;
pub mod optim;
pub mod profile;
mod random;
pub mod reference;
pub mod shape;
pub mod symbolic;
pub mod tensor;
pub mod text;

/// Gradient checkpointing (rematerialization): [`autodiff::checkpoint`]
/// under the name that does not collide with the [`checkpoint`] module
/// (saving and loading parameters).
pub use autodiff::remat::checkpoint as remat;
pub use autodiff::{
    Difference, GradientReport, Gradients, Tolerance, TraceStep, backward_trace, check_gradients,
    grad, grad_with_seed, hessian, hessian_reverse, hvp, jacfwd, jacrev, jvp, jvp_batched,
    numerical_grad, numerical_grad_reference, tangent, tangent_batched, vjp,
};
#[cfg(not(target_arch = "wasm32"))]
pub use autodiff::{check_gradients_blocking, numerical_grad_blocking, step_sweep};
pub use device::{
    AdapterSummary, Counters, Device, DeviceOptions, MatmulKernel, MemoryStats, PipelineCacheDir,
};
pub use error::{Error, Result};
pub use ops::conv::Conv2dOptions;
pub use ops::elementwise::{Binary, Unary};
pub use ops::index::IndexTensor;
pub use ops::nn::one_hot;
pub use ops::norm::BatchNormMode;
pub use ops::reduce::ReduceOp;
pub use shape::Shape;
pub use tensor::{
    MemoryPrediction, Tensor, graph_size, predict_memory, predict_peak_bytes, read_all,
    read_and_realize, realize_all, realize_all_async,
};
#[cfg(not(target_arch = "wasm32"))]
pub use tensor::{read_all_blocking, read_and_realize_blocking};
