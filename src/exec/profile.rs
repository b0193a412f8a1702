//! Recording for [`crate::Device::profile`]: what each dispatch computes,
//! CPU times per call, and GPU timestamps written around every dispatch
//! (one compute pass each while profiling, so that the adapter's
//! `TIMESTAMP_QUERY` feature alone is enough), resolved when the profile ends.
//! Profiles are started and read natively; on wasm32 this only compiles.
#![cfg_attr(target_arch = "wasm32", allow(dead_code))]

use crate::device::Gpu;
use crate::profile::SubmitRecord;

/// What one dispatch computes, recorded only while profiling.
#[derive(Clone, Debug)]
pub(crate) struct KernelInfo {
    pub name: String,
    pub flops: u64,
    pub read: u64,
    pub written: u64,
}

/// At most this many dispatches of one submit are timed (a query set
/// holds 4,096 timestamps); later ones are recorded untimed.
const MAX_TIMED: usize = 2048;

/// One realize or read while profiling.
pub(crate) struct PendingSubmit {
    pub record: SubmitRecord,
    pub kernels: Vec<(KernelInfo, [u32; 3])>,
    /// Mappable copy of the resolved timestamps and how many dispatches they cover.
    pub timestamps: Option<(wgpu::Buffer, usize)>,
    /// CPU time of the submit, to place the GPU clock on the CPU's.
    pub submitted_ns: u64,
}

/// The log of a profile in progress (`Gpu::profile` is `Some` meanwhile).
pub(crate) struct ProfileLog {
    #[cfg(not(target_arch = "wasm32"))]
    start: std::time::Instant,
    pub submits: Vec<PendingSubmit>,
}

impl ProfileLog {
    pub fn new() -> ProfileLog {
        ProfileLog {
            #[cfg(not(target_arch = "wasm32"))]
            start: std::time::Instant::now(),
            submits: Vec::new(),
        }
    }

    /// Nanoseconds since the profile began (0 on wasm, which has no clock here).
    pub fn now_ns(&self) -> u64 {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.start.elapsed().as_nanos() as u64
        }
        #[cfg(target_arch = "wasm32")]
        {
            0
        }
    }
}

/// Nanoseconds into the current profile, or `None` when not profiling.
pub(crate) fn now(gpu: &Gpu) -> Option<u64> {
    gpu.profile
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(ProfileLog::now_ns)
}

/// Timestamp queries for `n` dispatches, if profiling on an adapter that has them.
pub(crate) fn query_set(gpu: &Gpu, n: usize) -> Option<(wgpu::QuerySet, wgpu::Buffer, usize)> {
    if !gpu.timestamps || n == 0 {
        return None;
    }
    let timed = n.min(MAX_TIMED);
    let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("webgrad profile"),
        ty: wgpu::QueryType::Timestamp,
        count: (2 * timed) as u32,
    });
    let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("webgrad profile resolve"),
        size: (16 * timed) as u64,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    Some((set, resolve, timed))
}

/// The timestamp writes around dispatch `i`, if it is timed.
pub(crate) fn writes(
    set: &Option<(wgpu::QuerySet, wgpu::Buffer, usize)>,
    i: usize,
) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
    let (set, _, timed) = set.as_ref()?;
    (i < *timed).then(|| wgpu::ComputePassTimestampWrites {
        query_set: set,
        beginning_of_pass_write_index: Some((2 * i) as u32),
        end_of_pass_write_index: Some((2 * i + 1) as u32),
    })
}

/// Resolves the queries into a mappable buffer (encoded after the passes).
pub(crate) fn resolve(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    set: Option<(wgpu::QuerySet, wgpu::Buffer, usize)>,
) -> Option<(wgpu::Buffer, usize)> {
    let (set, resolve, timed) = set?;
    encoder.resolve_query_set(&set, 0..(2 * timed) as u32, &resolve, 0);
    let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("webgrad profile readback"),
        size: resolve.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, resolve.size());
    Some((readback, timed))
}

/// Sets the whole duration of the call that began at `start` (its last submit).
pub(crate) fn finish_call(gpu: &Gpu, start: Option<u64>) {
    let Some(start) = start else { return };
    let mut log = gpu.profile.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(log) = log.as_mut() {
        let end = log.now_ns();
        if let Some(last) = log.submits.last_mut() {
            last.record.start_ns = start;
            last.record.total_ns = end.saturating_sub(start);
        }
    }
}

/// Turns a finished log into a [`Profile`], reading the timestamps back
/// (waiting for the GPU to finish what was submitted).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn finish(gpu: &Gpu, log: ProfileLog, wall_ns: u64) -> crate::profile::Profile {
    use crate::profile::{KernelRecord, Profile};
    let period = gpu.queue.get_timestamp_period() as f64;
    let mut profile = Profile {
        wall_ns,
        timestamps: gpu.timestamps,
        adapter: gpu.summary.name.clone(),
        ..Default::default()
    };
    for (index, submit) in log.submits.into_iter().enumerate() {
        let ticks: Vec<u64> = match &submit.timestamps {
            Some((buffer, _)) => {
                let slice = buffer.slice(..);
                slice.map_async(wgpu::MapMode::Read, |_| {});
                let in_use = crate::device::teardown::in_use();
                let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
                drop(in_use);
                let t = match slice.get_mapped_range() {
                    Ok(view) => bytemuck::cast_slice::<u8, u64>(&view).to_vec(),
                    Err(_) => Vec::new(),
                };
                buffer.unmap();
                t
            }
            None => Vec::new(),
        };
        let first = ticks.first().copied().unwrap_or(0);
        for (i, (info, groups)) in submit.kernels.into_iter().enumerate() {
            let (start_ns, gpu_ns) = match (ticks.get(2 * i), ticks.get(2 * i + 1)) {
                (Some(&b), Some(&e)) => (
                    Some(submit.submitted_ns + (b.saturating_sub(first) as f64 * period) as u64),
                    Some((e.saturating_sub(b) as f64 * period) as u64),
                ),
                _ => (None, None),
            };
            profile.kernels.push(KernelRecord {
                name: info.name,
                groups,
                bytes_read: info.read,
                bytes_written: info.written,
                flops: info.flops,
                gpu_ns,
                submit: index,
                start_ns,
            });
        }
        profile.submits.push(submit.record);
    }
    profile
}
