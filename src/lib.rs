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

//! What is public, and where: the core (devices, tensors, shapes, errors,
//! the ops' option types and the differentiation functions) at the root;
//! everything else in one module per area: [`layers`], [`optim`],
//! [`data`], [`io`] (saving and loading), [`models`], [`text`],
//! [`symbolic`], [`reference`](mod@reference), [`profile`], and [`op`]
//! for your own ops' kernels. Each item has one path.

#![warn(missing_docs)]

mod autodiff;
pub mod data;
mod device;
mod display;
#[cfg(not(target_arch = "wasm32"))]
pub mod distributed;
mod dtype;
mod error;
mod exec;
mod graph;
pub mod io;
mod kernel;
pub mod layers;
pub mod models;
pub mod op;
mod ops;
pub mod optim;
pub mod profile;
mod random;
pub mod reference;
mod send_sync;
#[cfg(test)]
mod shader_check;
mod shape;
pub mod symbolic;
mod tensor;
pub mod text;
#[cfg(not(target_arch = "wasm32"))]
mod threads;
mod transfer;

pub use autodiff::numerical::SweepRow;
pub use autodiff::{
    Difference, GradientReport, Gradients, LayerFn, Tolerance, TraceStep, backward_trace,
    check_gradients, checkpoint, checkpoint_sequential, choose_segments, custom_jvp, custom_vjp,
    grad, grad_with_seed, hessian, hessian_reverse, hvp, jacfwd, jacrev, jvp, jvp_batched,
    numerical_grad, numerical_grad_reference, tangent, tangent_batched, vjp,
};
#[cfg(not(target_arch = "wasm32"))]
pub use autodiff::{check_gradients_blocking, numerical_grad_blocking, step_sweep};
#[cfg(not(target_arch = "wasm32"))]
pub use device::adapters_blocking;
pub use device::{
    AdapterSummary, Counters, Device, DeviceOptions, F16Reads, MemoryStats, PipelineCacheDir,
    adapters,
};
pub use dtype::{DType, autocast};
pub use error::{Error, Result};
pub use graph::{ALL_BINARY, ALL_UNARY, Binary, ReduceOp, Unary};
pub use kernel::KernelFamily;
pub use ops::attention::AttentionMask;
pub use ops::conv::{Conv1dOptions, Conv2dOptions};
pub use ops::dropout::dropout_mask;
pub use ops::index::IndexTensor;
pub use ops::nn::one_hot;
pub use ops::norm::BatchNormMode;
pub use ops::pool::Pool2dOptions;
pub use send_sync::SendSync;
pub use shape::{MAX_RANK, Shape};
pub use tensor::{
    MemoryPrediction, Tensor, graph_size, predict_memory, predict_peak_bytes, read_all,
    read_and_realize, realize_all, submit,
};
#[cfg(not(target_arch = "wasm32"))]
pub use tensor::{read_all_blocking, read_and_realize_blocking, realize_all_blocking};

/// The README's examples, compiled (the first also run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The custom-ops guide's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/custom-ops.md")]
pub struct CustomOpsGuideDoctests;

/// The several-GPUs guide's examples, compiled as doctests.
#[cfg(all(doctest, not(target_arch = "wasm32")))]
#[doc = include_str!("../docs/distributed.md")]
pub struct DistributedGuideDoctests;
