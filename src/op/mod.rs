//! Your own ops: kernels written in WGSL, with their derivatives written
//! with tensor ops.
//!
//! An op is a type that implements [`Family`], the trait every built-in op
//! family (matmul, the convolutions, pooling, the index ops, ...) also
//! implements and the only way the runtime reaches one. A family says:
//!
//! - its output's shape ([`Family::output_shape`]), with a message where
//!   the inputs do not fit;
//! - its kernels ([`Family::lower`]): a [`Lowering`], which is plain data
//!   — WGSL sources, entry points, parameter words, the buffers bound by
//!   role ([`Buf`]) and the workgroup grid of each [`KernelCall`];
//!   optionally several correct variants ([`Family::lower_variants`]),
//!   which the autotuner times once per shape on the adapter;
//! - its vjp ([`Family::vjp`]) and optionally its jvp, as tensor ops (so
//!   they can be differentiated again); an op linear in some inputs just
//!   names them ([`Family::linear_in`]), otherwise the jvp is derived by
//!   transposing the vjp;
//! - optionally its f64 reference ([`Family::reference`]), which
//!   [`crate::reference::eval`] and [`crate::check_gradients`] use.
//!
//! [`Tensor::apply_op`] records one on its inputs. From then on the op is a
//! node like any other: it is a fusion boundary, its buffers are planned
//! and counted in [`crate::predict_memory`], its dispatches are replayed
//! with the plan, anomaly detection and the profiler name it, and 16-bit
//! inputs reach its kernels packed (its input bindings are rewritten to
//! read them, see below).
//!
//! # The contract a kernel keeps
//!
//! These are checked the first time the process records the op (by name)
//! on inputs of given shapes and dtypes on a device; later recordings
//! check only the shapes ([`Tensor::try_apply_op`] returns an
//! [`crate::Error::InvalidOp`] naming the op and the problem;
//! [`Tensor::apply_op`] panics with it):
//!
//! - the WGSL parses and validates (naga, WebGPU's default capabilities)
//!   and has the `@compute` entry point named in the call;
//! - it declares, in group 0, binding 0 as the parameter words
//!   (`var<storage, read> p: array<u32>`) and bindings 1, 2, ... for
//!   [`KernelCall::bindings`], each a storage buffer the entry point
//!   uses; an output, scratch or status binding is `read_write`;
//! - it binds at most the device's `max_storage_buffers_per_shader_stage`
//!   (8 under WebGPU's default limits, binding 0 included);
//! - each grid dimension is at most [`MAX_GROUPS_PER_DIM`] workgroups
//!   ([`grid_1d`] spreads a large 1-D grid over x and y);
//! - [`KernelCall::loop_trips`] states the most loop iterations one
//!   invocation runs, at most [`MAX_LOOP_TRIPS`] (lavapipe stops longer
//!   loops silently; split the work instead);
//! - a float input binding is `array<f32>` or `array<vec4<f32>>`, so that
//!   16-bit inputs can be read through it.
//!
//! And, natively, at the same first sight: that its kernels write every element of the output (its buffer
//! starts with undefined contents) and nothing past it (WebGPU clamps
//! out-of-range accesses, so such a write is lost, not a crash), by
//! [`check_writes`] on zeros of the inputs' shapes — one small GPU run
//! per op and shapes, before anything the caller recorded runs. In the
//! browser, where nothing may block, call [`check_writes`] in the op's
//! tests. `check_gradients` tests the values against the reference.
//!
//! # Stability
//!
//! This module is the public surface for ops: [`Family`], the kernel
//! vocabulary re-exported here and [`Tensor::apply_op`]. The executor, the
//! scheduler's fusion and the built-in families' kernels stay internal and
//! may change; so may the WGSL of built-in kernels.
//!
//! `examples/custom_op/` is a complete op (a rotary position embedding
//! in one kernel), and `docs/custom-ops.md` walks through it.

mod check;

use std::sync::Arc;

pub use crate::graph::family::Family;
pub use crate::kernel::{
    Buf, KernelCall, Lowering, MAX_GROUPS_PER_DIM, MAX_LOOP_TRIPS, Target, WORKGROUP, grid_1d,
    grid_1d_of, word,
};
pub use check::check_writes;
#[cfg(not(target_arch = "wasm32"))]
pub use check::check_writes_blocking;

use crate::error::{Error, Result};
use crate::graph::Op;
use crate::shape::Shape;
use crate::tensor::Tensor;

impl Tensor {
    /// Records `op` on `inputs` (see [`crate::op`]): its shape from
    /// [`Family::output_shape`], its kernels checked against the contract
    /// for these shapes on the inputs' device. Panics with the op's name
    /// and the problem where [`Tensor::try_apply_op`] returns an error.
    #[track_caller]
    pub fn apply_op(op: impl Family + 'static, inputs: &[&Tensor]) -> Tensor {
        Tensor::try_apply_op(op, inputs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::apply_op`], returning an [`Error::InvalidOp`] where the
    /// shapes do not fit the op's rule or its kernels break the contract.
    /// The kernels are checked the first time the op (by name) is
    /// recorded on inputs of these shapes and dtypes on this device, and
    /// natively its writes too, which runs its kernels once on zeros (see
    /// [`check_writes`]; an error of that run, a lost device, is returned as
    /// it is); later recordings check only the shapes.
    pub fn try_apply_op(op: impl Family + 'static, inputs: &[&Tensor]) -> Result<Tensor> {
        let invalid = |message: String| Error::InvalidOp {
            op: op.name(),
            message,
        };
        let Some(first) = inputs.first() else {
            return Err(invalid("an op needs at least one input".into()));
        };
        let device = first.device();
        if let Some(other) = inputs.iter().find(|t| !t.device().same(device)) {
            return Err(invalid(format!(
                "inputs live on different devices ({device:?} and {:?})",
                other.device()
            )));
        }
        let shapes: Vec<&Shape> = inputs.iter().map(|t| t.shape()).collect();
        let out = op.output_shape(&shapes).map_err(invalid)?;
        let op: Arc<dyn Family> = Arc::new(op);
        check::on_first_sight(&op, &out, inputs)?;
        Ok(Tensor::record(Op::Family(op), inputs, out))
    }
}
