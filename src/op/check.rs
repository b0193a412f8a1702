//! The contract of [`crate::op`], checked where an op is recorded, and
//! [`check_writes`], which runs it.

use std::collections::HashSet;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::family::Family;
use crate::kernel::{Buf, KernelCall, Lowering, MAX_GROUPS_PER_DIM, MAX_LOOP_TRIPS, Target};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Every variant's kernels for these shapes against the contract (see
/// the module docs of [`crate::op`]); the message says what is wrong.
pub(super) fn lowerings(
    op: &dyn Family,
    out: &Shape,
    shapes: &[&Shape],
    inputs: &[&Tensor],
    device: &Device,
) -> std::result::Result<(), String> {
    // A reference-only device runs no kernel.
    let (Some(limits), Some(target)) = (device.limits(), device.target()) else {
        return Ok(());
    };
    let variants = op.lower_variants(out, shapes, target);
    if variants.is_empty() {
        return Err("lower_variants returned no lowering".into());
    }
    for (v, lowering) in variants.iter().enumerate() {
        let which = |k: usize, entry: &str| {
            let variant = if variants.len() > 1 {
                format!("variant {v}, ")
            } else {
                String::new()
            };
            format!(
                "kernel {k} (`{entry}`, {variant}of {})",
                lowering.kernels.len()
            )
        };
        if !lowering
            .kernels
            .iter()
            .any(|c| c.bindings.contains(&Buf::Output))
        {
            return Err("no kernel binds the output (Buf::Output)".into());
        }
        for (k, call) in lowering.kernels.iter().enumerate() {
            call_fits(call, lowering, inputs, limits, target)
                .map_err(|m| format!("{}: {m}", which(k, call.entry)))?;
        }
    }
    Ok(())
}

fn call_fits(
    call: &KernelCall,
    lowering: &Lowering,
    inputs: &[&Tensor],
    limits: &wgpu::Limits,
    target: Target,
) -> std::result::Result<(), String> {
    for b in &call.bindings {
        match *b {
            Buf::Input(i) if i >= inputs.len() => {
                return Err(format!("binds input {i}, but the op has {}", inputs.len()));
            }
            Buf::Temp(t) if t >= lowering.temps.len() => {
                return Err(format!(
                    "binds scratch buffer {t}, but the lowering has {}",
                    lowering.temps.len()
                ));
            }
            _ => {}
        }
    }
    let bound = call.bindings.len() as u64 + 1;
    let most = u64::from(limits.max_storage_buffers_per_shader_stage);
    if bound > most {
        return Err(format!(
            "binds {bound} storage buffers (the parameters and {} more), more than the device's \
             limit of {most} per shader stage",
            call.bindings.len()
        ));
    }
    let most_groups = MAX_GROUPS_PER_DIM.min(limits.max_compute_workgroups_per_dimension);
    if let Some(d) = (0..3).find(|&d| call.groups[d] > most_groups) {
        return Err(format!(
            "dispatches {:?} workgroups: dimension {d} exceeds {most_groups} (spread the grid \
             over more dimensions, op::grid_1d does for 1-D work, or split the dispatch)",
            call.groups
        ));
    }
    if call.loop_trips > MAX_LOOP_TRIPS {
        return Err(format!(
            "runs {} loop iterations per invocation, more than {MAX_LOOP_TRIPS} (lavapipe stops \
             longer loops silently: split the work over more invocations or dispatches)",
            call.loop_trips
        ));
    }
    let sixteen: Vec<usize> = call
        .bindings
        .iter()
        .enumerate()
        .filter_map(|(k, b)| match *b {
            Buf::Input(i) if inputs[i].dtype() != DType::F32 => Some(k + 1),
            _ => None,
        })
        .collect();
    shader_fits(call, limits, target)?;
    for b in sixteen {
        if crate::exec::packed::read_16_bit(&call.source, &[(b, DType::F16)], false).is_none() {
            return Err(format!(
                "binding {b} reads a 16-bit input but is not declared array<f32> or \
                 array<vec4<f32>>, so it cannot be read packed"
            ));
        }
    }
    Ok(())
}

/// In the browser, the browser validates WGSL when it compiles it (naga is
/// not in the WASM module); the rest of the contract is checked as natively.
#[cfg(target_arch = "wasm32")]
fn shader_fits(_: &KernelCall, _: &wgpu::Limits, _: Target) -> std::result::Result<(), String> {
    Ok(())
}

/// naga's parse and validation, the entry point, its workgroup and the
/// bindings it declares.
#[cfg(not(target_arch = "wasm32"))]
fn shader_fits(
    call: &KernelCall,
    limits: &wgpu::Limits,
    target: Target,
) -> std::result::Result<(), String> {
    let source = call.source.as_ref();
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("the WGSL does not parse:\n{}", e.emit_to_string(source)))?;
    let mut capabilities = naga::valid::Capabilities::default();
    if target.subgroup.is_some() {
        capabilities |=
            naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::SUBGROUP_BARRIER;
    }
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .validate(&module)
        .map_err(|e| format!("the WGSL is invalid:\n{}", e.emit_to_string(source)))?;
    let Some((index, entry)) = module
        .entry_points
        .iter()
        .enumerate()
        .find(|(_, e)| e.name == call.entry && e.stage == naga::ShaderStage::Compute)
    else {
        let names: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        return Err(format!(
            "the WGSL has no @compute entry point `{}` (it has {names:?})",
            call.entry
        ));
    };
    let size = entry.workgroup_size;
    let most = [
        limits.max_compute_workgroup_size_x,
        limits.max_compute_workgroup_size_y,
        limits.max_compute_workgroup_size_z,
    ];
    let invocations: u64 = size.iter().map(|&s| u64::from(s)).product();
    if (0..3).any(|d| size[d] > most[d])
        || invocations > u64::from(limits.max_compute_invocations_per_workgroup)
    {
        return Err(format!(
            "@workgroup_size{size:?} exceeds the device's limits ({most:?}, {} invocations)",
            limits.max_compute_invocations_per_workgroup
        ));
    }
    let uses = info.get_entry_point(index);
    let mut shared = 0u64;
    let mut declared = vec![None; call.bindings.len() + 1];
    for (handle, var) in module.global_variables.iter() {
        if uses[handle].is_empty() {
            continue;
        }
        if var.space == naga::AddressSpace::WorkGroup {
            shared += u64::from(module.types[var.ty].inner.size(module.to_ctx()));
        }
        let Some(binding) = &var.binding else {
            continue;
        };
        let b = binding.binding as usize;
        if binding.group != 0 || b >= declared.len() {
            return Err(format!(
                "uses @group({}) @binding({b}), but the call binds group 0, bindings 0 to {}",
                binding.group,
                declared.len() - 1
            ));
        }
        declared[b] = Some(var.space);
    }
    if shared > u64::from(limits.max_compute_workgroup_storage_size) {
        return Err(format!(
            "uses {shared} bytes of workgroup memory, more than the device's {}",
            limits.max_compute_workgroup_storage_size
        ));
    }
    for (b, space) in declared.iter().enumerate() {
        let role = match b {
            0 => "the parameter words".to_string(),
            _ => format!("{:?}", call.bindings[b - 1]),
        };
        let Some(naga::AddressSpace::Storage { access }) = space else {
            return Err(format!(
                "binding {b} ({role}) is not a storage buffer the entry point uses (every bound \
                 buffer must be declared var<storage> and used: the pipeline's layout is taken \
                 from the shader)"
            ));
        };
        let writes = b > 0 && !matches!(call.bindings[b - 1], Buf::Input(_));
        if writes && !access.contains(naga::StorageAccess::STORE) {
            return Err(format!("binding {b} ({role}) must be declared read_write"));
        }
    }
    Ok(())
}

/// Runs `op`'s kernels on `inputs` (every variant it offers) into an
/// output filled beforehand with a marker value and followed by guard
/// words, and reports an element of the output no kernel wrote, or a write
/// past its end: what the checks made when an op is recorded cannot see.
/// 16-bit inputs are widened first (which elements a kernel writes does
/// not depend on its inputs' dtype). A write of the marker's exact bits (a
/// NaN with a payload no arithmetic makes) would go unnoticed.
pub async fn check_writes(op: impl Family + 'static, inputs: &[&Tensor]) -> Result<()> {
    writes(std::sync::Arc::new(op), inputs).await
}

/// [`check_writes`] on a shared op: its recording checks, then the probes.
async fn writes(op: std::sync::Arc<dyn Family>, inputs: &[&Tensor]) -> Result<()> {
    let invalid = |message: String| Error::InvalidOp {
        op: op.name(),
        message,
    };
    let Some(device) = inputs.first().map(|t| t.device().clone()) else {
        return Err(invalid("an op needs at least one input".into()));
    };
    let shapes: Vec<&Shape> = inputs.iter().map(|t| t.shape()).collect();
    let out = op.output_shape(&shapes).map_err(&invalid)?;
    lowerings(op.as_ref(), &out, &shapes, inputs, &device).map_err(&invalid)?;
    probe(&op, &out, inputs).await
}

/// Runs every variant of `op` (its output of shape `out`) on `inputs`
/// (16-bit ones widened first: which elements a kernel writes does not
/// depend on its inputs' dtype) into a marker-filled, guarded output.
async fn probe(op: &std::sync::Arc<dyn Family>, out: &Shape, inputs: &[&Tensor]) -> Result<()> {
    let invalid = |message: String| Error::InvalidOp {
        op: op.name(),
        message,
    };
    let wide: Vec<Tensor> = inputs
        .iter()
        .map(|t| match t.dtype() {
            DType::F16 | DType::BF16 => t.to_dtype(DType::F32),
            _ => (*t).clone(),
        })
        .collect();
    let inputs: Vec<&Tensor> = wide.iter().collect();
    let Some(target) = inputs[0].device().target() else {
        return Ok(());
    };
    let shapes: Vec<&Shape> = inputs.iter().map(|t| t.shape()).collect();
    let variants = op.lower_variants(out, &shapes, target).len();
    let count = out.numel();
    for variant in 0..variants {
        let probe = Probe {
            op: op.clone(),
            out: out.clone(),
            variant,
        };
        // Recorded outside any autocast scope: a 16-bit store would round
        // the marker away.
        let guarded = Shape::new(&[count + Probe::GUARD]);
        let y = crate::dtype::autocast(DType::F32, || {
            Tensor::record_family(probe, &inputs, guarded)
        });
        let words: Vec<u32> = y.to_vec().await?.iter().map(|v| v.to_bits()).collect();
        let which = if variants > 1 {
            format!(" (variant {variant})")
        } else {
            String::new()
        };
        let (inside, after) = words.split_at(count);
        if let Some(i) = inside.iter().position(|&w| w == Probe::MARK) {
            let missed = inside.iter().filter(|&&w| w == Probe::MARK).count();
            return Err(invalid(format!(
                "the kernels{which} leave {missed} of the {count} output elements (shape {:?}) \
                 unwritten, the first at index {i}: the shape rule and the kernels disagree",
                out.dims()
            )));
        }
        if let Some(j) = after.iter().position(|&w| w != Probe::MARK) {
            return Err(invalid(format!(
                "the kernels{which} write past the output's {count} elements (shape {:?}), at \
                 index {}: the shape rule and the kernels disagree",
                out.dims(),
                count + j
            )));
        }
    }
    Ok(())
}

/// [`check_writes`]' op: variant `variant` of the user's op for output
/// shape `out`, its output bound to a buffer of `out.numel() + GUARD`
/// words that a first kernel fills with [`Probe::MARK`].
#[derive(Debug)]
struct Probe {
    op: std::sync::Arc<dyn Family>,
    out: Shape,
    variant: usize,
}

impl Probe {
    /// Words after the output: a kernel writing past its end within a few
    /// workgroups lands here.
    const GUARD: usize = 4096;
    /// A quiet NaN with a payload: no arithmetic makes it.
    const MARK: u32 = 0x7fd5_a5a5;
}

impl Family for Probe {
    fn name(&self) -> String {
        self.op.name()
    }

    fn lower(&self, guarded: &Shape, inputs: &[&Shape], target: Target) -> Lowering {
        let mut lowering = self
            .op
            .lower_variants(&self.out, inputs, target)
            .swap_remove(self.variant);
        let mark = f32::from_bits(Self::MARK);
        let fill = crate::kernel::fill(Buf::Output, guarded.numel(), mark);
        lowering.kernels.insert(0, fill);
        lowering
    }

    fn vjp(&self, x: &[Tensor], _: &Tensor, _: &Tensor) -> Vec<Option<Tensor>> {
        vec![None; x.len()]
    }
}

/// Ops (by device, name, and the inputs' shapes and dtypes) that passed
/// every check, in the whole process: recording them again, on any thread,
/// checks nothing.
static SEEN: std::sync::LazyLock<std::sync::Mutex<HashSet<u64>>> =
    std::sync::LazyLock::new(Default::default);

fn seen() -> std::sync::MutexGuard<'static, HashSet<u64>> {
    SEEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every check of the contract, the first time this process records `op`
/// (by name) on these inputs' shapes and dtypes on this device: its
/// kernels ([`lowerings`]) and, natively, its writes ([`probe`], on zeros
/// of the inputs' shapes, so that nothing the caller recorded is realized,
/// and with anomaly detection off, since the marker is a NaN). In the
/// browser, where nothing may block, the op's tests call [`check_writes`].
pub(super) fn on_first_sight(
    op: &std::sync::Arc<dyn Family>,
    out: &Shape,
    inputs: &[&Tensor],
) -> Result<()> {
    let device = inputs[0].device();
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        (device.number(), op.name()).hash(&mut h);
        for t in inputs {
            (t.dims(), t.dtype()).hash(&mut h);
        }
        h.finish()
    };
    if seen().contains(&key) {
        return Ok(());
    }
    let shapes: Vec<&Shape> = inputs.iter().map(|t| t.shape()).collect();
    lowerings(op.as_ref(), out, &shapes, inputs, device).map_err(|message| Error::InvalidOp {
        op: op.name(),
        message,
    })?;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let zeros: Vec<Tensor> = inputs
            .iter()
            .map(|t| Tensor::zeros(device, t.shape().clone()))
            .collect();
        let anomaly = device.detects_anomalies();
        device.set_detect_anomaly(false);
        let checked = pollster::block_on(probe(op, out, &zeros.iter().collect::<Vec<_>>()));
        device.set_detect_anomaly(anomaly);
        checked?;
    }
    seen().insert(key);
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
/// Blocking [`check_writes`] for native code.
pub fn check_writes_blocking(op: impl Family + 'static, inputs: &[&Tensor]) -> Result<()> {
    pollster::block_on(check_writes(op, inputs))
}
