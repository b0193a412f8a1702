//! The executor: lowers pending graph nodes to kernels, encodes them all into
//! one command encoder, submits once, and reads values back asynchronously.
//! Only this module and `device.rs` use wgpu.

mod anomaly;
pub(crate) mod bind_groups;
mod budget;
pub(crate) mod codegen;
pub(crate) mod kernels;
pub(crate) mod packed;
pub(crate) mod pipelines;
pub(crate) mod pool;
pub(crate) mod profile;
pub(crate) mod replay;
mod schedule;
mod status;
pub(crate) mod tune;

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::graph::Node;
use crate::tensor::Tensor;

use schedule::Plan;

fn gpu_of<'t>(tensors: &'t [&Tensor]) -> Result<&'t Arc<Gpu>> {
    let device = tensors[0].device();
    for t in tensors {
        assert!(
            t.device().same(device),
            "realize: tensors live on different devices"
        );
    }
    device.gpu()
}

/// The device's parameter buffer, grown (to a power of two) when a realize
/// needs more. One buffer serves every realize: `write_buffer` is ordered on
/// the queue after the submits before it, so rewriting it never disturbs
/// kernels already submitted. Called with the submit lock held.
fn params_buffer(gpu: &Gpu, bytes: u64) -> wgpu::Buffer {
    let mut slot = gpu.params.lock().unwrap_or_else(|e| e.into_inner());
    match &*slot {
        Some(b) if b.size() >= bytes => b.clone(),
        _ => {
            let b = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("webgrad params"),
                size: bytes.next_power_of_two().max(4096),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            *slot = Some(b.clone());
            b
        }
    }
}

/// Encodes the plan (uploads, one compute pass, then `copies`) and submits
/// it. `plan_ns` is the planning time when profiling (see `profile.rs`):
/// then each dispatch gets a pass of its own with timestamps around it.
fn submit(
    gpu: &Gpu,
    plan: &Plan,
    copies: &[(&wgpu::Buffer, &wgpu::Buffer, u64)],
    plan_ns: Option<u64>,
) {
    let encode_start = plan_ns.and_then(|_| profile::now(gpu));
    if gpu
        .switches
        .inject_error
        .swap(false, std::sync::atomic::Ordering::Relaxed)
    {
        // MAP_READ | MAP_WRITE is invalid on every backend.
        let _invalid = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("webgrad injected error"),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE,
            mapped_at_creation: false,
        });
    }
    for (buffer, data) in &plan.uploads {
        if !data.is_empty() {
            gpu.queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(data));
        }
    }
    // All kernels' parameters go into one buffer, each at a 256-byte aligned offset.
    let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let mut words: Vec<u32> = Vec::new();
    let mut offsets = Vec::with_capacity(plan.dispatches.len());
    for d in &plan.dispatches {
        offsets.push(words.len());
        words.extend(&d.params);
        words.resize(words.len().next_multiple_of(align), 0);
    }
    let params = params_buffer(gpu, (words.len().max(1) * 4) as u64);
    if !words.is_empty() {
        gpu.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(&words));
    }
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("webgrad realize"),
        });
    let queries = plan_ns.and_then(|_| profile::query_set(gpu, plan.dispatches.len()));
    let evictions = gpu.pool.lock().unwrap_or_else(|e| e.into_inner()).evictions;
    let mut bind_groups = gpu.bind_groups.lock().unwrap_or_else(|e| e.into_inner());
    bind_groups.check(evictions);
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("webgrad kernels"),
            timestamp_writes: None,
        });
        for (i, (d, &offset)) in plan.dispatches.iter().zip(&offsets).enumerate() {
            if let Some(writes) = profile::writes(&queries, i) {
                drop(pass);
                pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("webgrad profiled kernel"),
                    timestamp_writes: Some(writes),
                });
            }
            let pipeline = d.pipeline.as_ref().expect("compiled when planning ended");
            let bind_group = bind_groups.get(
                &gpu.device,
                pipeline,
                &params,
                ((offset * 4) as u64, (d.params.len().max(1) * 4) as u64),
                &d.buffers,
            );
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
        }
    }
    let timestamps = profile::resolve(gpu, &mut encoder, queries);
    for (src, dst, bytes) in copies {
        encoder.copy_buffer_to_buffer(src, 0, dst, 0, *bytes);
    }
    {
        let _in_use = crate::device::teardown::in_use();
        gpu.queue.submit([encoder.finish()]);
    }
    if let (Some(plan_ns), Some(encode_start)) = (plan_ns, encode_start) {
        let mut log = gpu.profile.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = log.as_mut() {
            let now = log.now_ns();
            log.submits.push(profile::PendingSubmit {
                record: crate::profile::SubmitRecord {
                    plan_ns,
                    encode_ns: now.saturating_sub(encode_start),
                    kernels: plan.dispatches.len(),
                    ..Default::default()
                },
                kernels: plan
                    .dispatches
                    .iter()
                    .map(|d| {
                        let info = d.info.clone().unwrap_or(profile::KernelInfo {
                            name: "(planned before profiling began)".into(),
                            flops: 0,
                            read: 0,
                            written: 0,
                        });
                        (info, d.groups)
                    })
                    .collect(),
                timestamps,
                submitted_ns: now,
            });
        }
    }
    use std::sync::atomic::Ordering::Relaxed;
    if !plan.timing {
        gpu.counts
            .kernels
            .fetch_add(plan.dispatches.len() as u64, Relaxed);
        gpu.counts.submits.fetch_add(1, Relaxed);
    }
}

/// Errors that wgpu reported outside an error scope, or a lost device.
fn pending_error(gpu: &Gpu) -> Result<()> {
    if let Some(msg) = gpu.lost.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(Error::DeviceLost(msg));
    }
    if let Some(msg) = gpu
        .uncaptured
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(Error::Validation(msg));
    }
    Ok(())
}

/// See `schedule::predict`.
pub(crate) fn predict_memory(tensors: &[&Tensor]) -> Result<crate::tensor::MemoryPrediction> {
    if tensors.is_empty() {
        return Ok(Default::default());
    }
    let gpu = gpu_of(tensors)?;
    let nodes: Vec<Arc<Node>> = tensors.iter().map(|t| t.node.clone()).collect();
    // Planning hands simulated buffers around only; the lock keeps a
    // concurrent realize from changing the pool's live bytes meanwhile.
    let _submitting = gpu.submit_lock.lock().unwrap_or_else(|e| e.into_inner());
    // Under a budget, the plan the realize would run: rematerialized
    // where needed (the rewrite stays: the realize would make it too). If
    // nothing fits, the plain plan's prediction.
    match budget::fit(gpu, &nodes) {
        Ok(()) | Err(Error::OutOfBudget { .. }) => {}
        Err(e) => return Err(e),
    }
    let (peak_bytes, r) = schedule::predict(gpu, &nodes)?;
    Ok(crate::tensor::MemoryPrediction {
        peak_bytes,
        recomputed_kernels: r.kernels,
        recomputed_bytes: r.bytes,
        recomputed_flops: r.flops,
    })
}

/// Runs every pending kernel the tensors need, in one submit. Natively,
/// wgpu reports errors at once, so this is [`realize_async`] run to
/// completion. A browser reports errors only to a promise, which a
/// synchronous call cannot wait for: on wasm32 this submits without error
/// scopes, so an error reaches the device's uncaptured-error handler and is
/// returned by a later call; `realize_async` reports it itself. For the
/// same reason a browser's synchronous realize cannot read the kernels'
/// status words back (an index computed on the GPU out of range): there
/// only `realize_async` and reads report those.
pub(crate) fn realize(tensors: &[&Tensor]) -> Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(realize_async(tensors))
    }
    #[cfg(target_arch = "wasm32")]
    {
        if tensors.is_empty() {
            return Ok(());
        }
        let gpu = gpu_of(tensors)?;
        let nodes: Vec<Arc<Node>> = tensors.iter().map(|t| t.node.clone()).collect();
        budget::fit(gpu, &nodes)?;
        let (planned, _, _) = plan_and_submit(gpu, &nodes, |_| Readback::default(), true);
        planned?;
        pending_error(gpu)
    }
}

/// Runs every pending kernel the tensors need, in one submit, and waits
/// for the device's verdict on that submit: a validation or out-of-memory
/// error is returned by the realize that caused it, on every platform.
pub(crate) async fn realize_async(tensors: &[&Tensor]) -> Result<()> {
    if tensors.is_empty() {
        return Ok(());
    }
    let gpu = gpu_of(tensors)?.clone();
    let nodes: Vec<Arc<Node>> = tensors.iter().map(|t| t.node.clone()).collect();
    if gpu
        .switches
        .anomaly
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        anomaly::check(&nodes).await?;
    }
    // Errors from earlier calls are theirs, not this one's.
    pending_error(&gpu)?;
    let prepare = |plan: &Plan| Readback {
        staging: Vec::new(),
        checks: status::stage(&gpu, plan),
    };
    submit_checked(&gpu, &nodes, prepare, true).await?;
    Ok(())
}

/// Realizes `tensors` and `also` in one submit and reads `tensors` back
/// (after the anomaly check, when it is on).
pub(crate) async fn read(tensors: &[&Tensor], also: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
    let all: Vec<&Tensor> = tensors.iter().chain(also).copied().collect();
    if all.is_empty() {
        return Ok(Vec::new());
    }
    if gpu_of(&all)?
        .switches
        .anomaly
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let nodes: Vec<Arc<Node>> = all.iter().map(|t| t.node.clone()).collect();
        anomaly::check(&nodes).await?;
    }
    read_unchecked(tensors, also).await
}

/// [`read`] without the anomaly check.
async fn read_unchecked(tensors: &[&Tensor], also: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
    let all: Vec<&Tensor> = tensors.iter().chain(also).copied().collect();
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let gpu = gpu_of(&all)?.clone();
    let nodes: Vec<Arc<Node>> = all.iter().map(|t| t.node.clone()).collect();
    let prepare = |plan: &Plan| Readback {
        staging: tensors
            .iter()
            .zip(&plan.targets)
            .map(|(t, storage)| {
                // Realized above, so it fit in a binding: no overflow here.
                let bytes = t.dtype().words(t.numel()) as u64 * 4;
                (storage.buffer().clone(), take_staging(&gpu, bytes), bytes)
            })
            .collect(),
        checks: status::stage(&gpu, plan),
    };
    let (staging, call_start) = submit_checked(&gpu, &nodes, prepare, false).await?;
    let mut out = Vec::with_capacity(staging.len());
    for ((_, buffer, bytes), t) in staging.iter().zip(tensors) {
        if *bytes == 0 {
            out.push(Vec::new());
            continue;
        }
        map_read(&gpu, buffer).await?;
        let view = buffer
            .get_mapped_range(..*bytes)
            .map_err(|e| Error::Readback(e.to_string()))?;
        out.push(t.dtype().decode(&view, t.numel()));
        drop(view);
        buffer.unmap();
    }
    // Unmapped again: the staging buffers can serve the next read.
    let mut pool = gpu.staging.lock().unwrap_or_else(|e| e.into_inner());
    for (_, buffer, _) in staging {
        pool.entry(buffer.size()).or_default().push(buffer);
    }
    drop(pool);
    profile::finish_call(&gpu, call_start);
    Ok(out)
}

/// What a submit copies out after its kernels: values into mappable
/// staging buffers (source, staging, bytes) and the plan's status words.
#[derive(Default)]
struct Readback {
    staging: Vec<(wgpu::Buffer, wgpu::Buffer, u64)>,
    checks: status::Staged,
}

/// The one sequence behind every realize and read: under the submit lock,
/// plan `nodes`, let `prepare` stage what the caller reads back, and
/// submit the kernels with those copies. Returns the plan (whose buffers
/// the caller keeps until the device has answered), the staged copies and
/// when the call began (for the profiler; its duration is set here with
/// `finish_at_submit`, else by the caller once it has read back).
fn plan_and_submit(
    gpu: &Gpu,
    nodes: &[Arc<Node>],
    prepare: impl FnOnce(&Plan) -> Readback,
    finish_at_submit: bool,
) -> (Result<Plan>, Readback, Option<u64>) {
    let submitting = gpu.submit_lock.lock().unwrap_or_else(|e| e.into_inner());
    let call_start = profile::now(gpu);
    let planned = schedule::plan(gpu, nodes);
    let plan_ns = call_start.and_then(|s| Some(profile::now(gpu)? - s));
    let mut staged = Readback::default();
    if let Ok(plan) = &planned {
        staged = prepare(plan);
        let mut copies: Vec<(&wgpu::Buffer, &wgpu::Buffer, u64)> = staged
            .staging
            .iter()
            .filter(|s| s.2 > 0)
            .map(|(s, d, b)| (s, d, *b))
            .collect();
        copies.extend(status::copies(&staged.checks));
        submit(gpu, plan, &copies, plan_ns);
    }
    if finish_at_submit {
        profile::finish_call(gpu, call_start);
    }
    drop(submitting);
    (planned, staged, call_start)
}

/// [`plan_and_submit`] within error scopes, after fitting the memory
/// budget, waiting for the device's verdict on that submit: a validation
/// or out-of-memory error, or a status word a kernel set, is this call's
/// error. Returns the staging buffers to read and when the call began.
#[allow(clippy::type_complexity)]
async fn submit_checked(
    gpu: &Gpu,
    nodes: &[Arc<Node>],
    prepare: impl FnOnce(&Plan) -> Readback,
    finish_at_submit: bool,
) -> Result<(Vec<(wgpu::Buffer, wgpu::Buffer, u64)>, Option<u64>)> {
    budget::fit(gpu, nodes)?;
    let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let (planned, staged, call_start) = plan_and_submit(gpu, nodes, prepare, finish_at_submit);
    let (validation, oom) = (validation.pop(), oom.pop());
    if let Some(e) = validation.await {
        return Err(Error::from_wgpu(e));
    }
    if let Some(e) = oom.await {
        return Err(Error::from_wgpu(e));
    }
    drop(planned?);
    pending_error(gpu)?;
    status::verdict(gpu, staged.checks).await?;
    Ok((staged.staging, call_start))
}

/// A mappable buffer of at least `bytes` for reading a value back, reused
/// across reads (a training loop that reads its loss allocates none).
fn take_staging(gpu: &Gpu, bytes: u64) -> wgpu::Buffer {
    let class = pool::size_class(bytes);
    let reused = gpu
        .staging
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&class)
        .and_then(Vec::pop);
    reused.unwrap_or_else(|| {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("webgrad readback"),
            size: class,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    })
}

/// Maps a buffer for reading. Native code drives the device until the map
/// completes; in a browser the future resolves from the event loop.
async fn map_read(gpu: &Gpu, buffer: &wgpu::Buffer) -> Result<()> {
    type Slot = Arc<
        Mutex<(
            Option<std::result::Result<(), wgpu::BufferAsyncError>>,
            Option<Waker>,
        )>,
    >;
    let slot: Slot = Arc::new(Mutex::new((None, None)));
    let callback_slot = slot.clone();
    buffer.map_async(wgpu::MapMode::Read, .., move |r| {
        let mut s = callback_slot.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = Some(r);
        if let Some(w) = s.1.take() {
            w.wake();
        }
    });
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _in_use = crate::device::teardown::in_use();
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Readback(e.to_string()))?;
    }
    #[cfg(target_arch = "wasm32")]
    let _ = gpu;
    std::future::poll_fn(|cx| {
        let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.0.take() {
            Some(r) => Poll::Ready(r.map_err(|e| Error::Readback(e.to_string()))),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod shader_tests;
