//! Adapter and device acquisition, limits and adapter information.
//!
//! A [`Device`] is a cheap, cloneable handle. Every tensor belongs to one.
//! By default webgrad requests the WebGPU baseline limits
//! (`wgpu::Limits::default()`), so that what runs natively also runs in a
//! browser; [`DeviceOptions::adapter_limits`] opts into the adapter's own.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::exec::pipelines::PipelineCache;
use crate::exec::pool::BufferPool;
use crate::kernel::KernelFamily;

mod open;
mod options;
pub(crate) mod teardown;

pub use open::adapters;
#[cfg(not(target_arch = "wasm32"))]
pub use open::adapters_blocking;

pub use options::{
    AdapterSummary, Counters, DeviceOptions, F16Reads, MemoryStats, PipelineCacheDir,
};

/// Run-time switches of a device, set by its methods.
#[derive(Default)]
pub(crate) struct Switches {
    /// Anomaly detection on (see `Device::set_detect_anomaly`).
    pub anomaly: std::sync::atomic::AtomicBool,
    /// Variant every multi-variant family uses (see `Device::force_variant`;
    /// `None`: autotune chooses).
    pub forced_variant: Mutex<Option<usize>>,
    /// The next submit records an invalid command (see `Device::inject_validation_error`).
    pub inject_error: std::sync::atomic::AtomicBool,
    /// Plans are replayed (see `Device::set_plan_replay`).
    pub plan_replay: std::sync::atomic::AtomicBool,
    /// Realizes over the budget are rematerialized (see `Device::set_auto_remat`).
    pub auto_remat: std::sync::atomic::AtomicBool,
    /// Most bytes a realize may have live at its peak (`None`: no budget).
    pub budget: Mutex<Option<u64>>,
}

/// Work a device has done, counted as it happens (see [`Counters`]).
#[derive(Default)]
pub(crate) struct Counts {
    /// Kernels dispatched (autotune's timing runs not counted).
    pub kernels: std::sync::atomic::AtomicU64,
    /// Realizes planned from scratch (not replayed).
    pub plans: std::sync::atomic::AtomicU64,
    /// Command buffers submitted.
    pub submits: std::sync::atomic::AtomicU64,
    /// Realizes that were rematerialized to fit the budget.
    pub rematerialized: std::sync::atomic::AtomicU64,
}

/// The GPU half of a device: wgpu handles plus webgrad's caches.
pub(crate) struct Gpu {
    /// Numbers the devices of this process, so that two on one adapter print apart.
    pub id: u64,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub summary: AdapterSummary,
    pub limits: wgpu::Limits,
    /// The matmul family in use (never `Auto`).
    pub kernel_family: KernelFamily,
    /// No timing-based kernel choice, no tuning file (see
    /// [`DeviceOptions::deterministic`]).
    pub deterministic: bool,
    /// Lanes of every subgroup, where kernels may use subgroup operations
    /// (`None`: they may not; see `subgroup_size`).
    pub subgroup: Option<u32>,
    /// Kernels read f16 values as WGSL's `f16` (the device has
    /// `shader-f16`, see `exec::packed`).
    pub native_f16: bool,
    pub pipelines: Mutex<PipelineCache>,
    /// GPU buffers by size class, reused across realizes.
    pub pool: Arc<Mutex<BufferPool>>,
    /// Held from planning to submit. Planning hands buffers back to the pool
    /// as soon as the kernels encoded so far are done with them, which is safe
    /// only because nothing else reaches the queue before this submit.
    pub submit_lock: Mutex<()>,
    /// Kernel parameters of a realize (see exec::params_buffer).
    pub params: Mutex<Option<wgpu::Buffer>>,
    /// Mappable buffers for readback, by size class, free for reuse.
    pub staging: Mutex<std::collections::HashMap<u64, Vec<wgpu::Buffer>>>,
    /// What the device's methods switch at run time.
    pub switches: Switches,
    /// Work counted since the device was made (read by `Device::counters`).
    pub counts: Counts,
    /// Autotune's choices among a family's lowerings (see `exec/tune.rs`).
    pub tuning: Mutex<crate::exec::tune::Tuning>,
    /// Bind groups of recent dispatches, reused while their buffers live.
    pub bind_groups: Mutex<crate::exec::bind_groups::BindGroupCache>,
    /// Recorded plans by graph structure (see `exec/replay.rs`).
    pub replay: Mutex<crate::exec::replay::ReplayCache>,
    /// The adapter's timestamp queries are enabled (for profiling).
    pub timestamps: bool,
    /// The profile being recorded (see `Device::profile`).
    pub profile: Mutex<Option<crate::exec::profile::ProfileLog>>,
    /// Set by wgpu's callbacks; checked after each submit.
    pub lost: Arc<Mutex<Option<String>>>,
    pub uncaptured: Arc<Mutex<Option<String>>>,
    /// Last, so that it is dropped after every wgpu handle (see `teardown`).
    pub _teardown: teardown::TeardownDone,
}

impl Drop for Gpu {
    fn drop(&mut self) {
        teardown::begin();
    }
}

/// A handle to a GPU (or to no GPU at all, see [`Device::reference_only`]).
#[derive(Clone)]
pub struct Device {
    pub(crate) gpu: Option<Arc<Gpu>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.gpu {
            Some(g) => write!(
                f,
                "Device#{}({} on {})",
                g.id, g.summary.name, g.summary.backend
            ),
            None => write!(f, "Device(reference-only)"),
        }
    }
}

impl Device {
    /// Acquires the default adapter with the WebGPU baseline limits.
    pub async fn new() -> Result<Device> {
        Device::with_options(DeviceOptions::default()).await
    }

    /// Blocking form of [`Device::new`] for native code.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Device> {
        pollster::block_on(Device::new())
    }

    /// Blocking form of [`Device::with_options`] for native code.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options_blocking(options: DeviceOptions) -> Result<Device> {
        pollster::block_on(Device::with_options(options))
    }

    /// Acquires an adapter and device with the given options (the
    /// adapter [`DeviceOptions::adapter`] names, else the one wgpu
    /// prefers).
    pub async fn with_options(options: DeviceOptions) -> Result<Device> {
        open::open(options).await
    }

    /// A device with no GPU: graphs can be built on it and evaluated with the
    /// f64 reference interpreter ([`crate::reference::eval`]), but not realized.
    pub fn reference_only() -> Device {
        Device { gpu: None }
    }

    /// What the adapter says about itself (`None` for a reference-only device).
    pub fn adapter(&self) -> Option<&AdapterSummary> {
        self.gpu.as_ref().map(|g| &g.summary)
    }

    /// The limits the device was created with.
    pub fn limits(&self) -> Option<&wgpu::Limits> {
        self.gpu.as_ref().map(|g| &g.limits)
    }

    /// Whether op families read f16 values as WGSL's `f16` (the adapter's
    /// `shader-f16` feature): where the adapter has it, as
    /// [`DeviceOptions::f16_reads`] says. The
    /// values are the same bit for bit either way. `false` for a
    /// reference-only device.
    pub fn native_f16(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| g.native_f16)
    }

    /// What a lowering may depend on besides the shapes (`None` for a
    /// reference-only device).
    pub(crate) fn target(&self) -> Option<crate::kernel::Target> {
        self.gpu.as_ref().map(|g| crate::kernel::Target {
            family: g.kernel_family,
            subgroup: g.subgroup,
        })
    }

    /// The kernel family (matmul and convolutions) this device uses.
    pub fn kernel_family(&self) -> Option<KernelFamily> {
        self.gpu.as_ref().map(|g| g.kernel_family)
    }

    /// Whether this device runs in deterministic mode
    /// ([`DeviceOptions::deterministic`]); false for a reference-only one.
    pub fn is_deterministic(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| g.deterministic)
    }

    /// How many GPU buffers webgrad holds, live and pooled.
    pub fn memory_stats(&self) -> MemoryStats {
        match &self.gpu {
            Some(g) => g.pool.lock().unwrap_or_else(|e| e.into_inner()).stats(),
            None => MemoryStats::default(),
        }
    }

    /// Starts a new peak-memory measurement from the bytes live now.
    pub fn reset_peak_memory(&self) {
        if let Some(g) = &self.gpu {
            g.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reset_peak();
        }
    }

    /// Kernels dispatched and submits made so far on this device.
    pub fn counters(&self) -> Counters {
        use std::sync::atomic::Ordering::Relaxed;
        match &self.gpu {
            Some(g) => Counters {
                kernels: g.counts.kernels.load(Relaxed),
                submits: g.counts.submits.load(Relaxed),
                bind_groups: g
                    .bind_groups
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .misses,
                plans: g.counts.plans.load(Relaxed),
                plans_replayed: g.replay.lock().unwrap_or_else(|e| e.into_inner()).replayed,
                rematerialized: g.counts.rematerialized.load(Relaxed),
            },
            None => Counters::default(),
        }
    }

    /// Waits until the GPU has finished everything submitted so far (like
    /// `torch.cuda.synchronize`): for timing the CPU and GPU sides of a
    /// step apart. A realize returns once its kernels are submitted; reads
    /// wait by themselves. Native only: a browser cannot block.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn synchronize(&self) -> Result<()> {
        if let Some(g) = &self.gpu {
            let _in_use = teardown::in_use();
            g.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| crate::Error::Validation(e.to_string()))?;
        }
        Ok(())
    }

    /// Plan replay (on by default). Each realize is keyed by the exact
    /// structure of the graph it runs — ops and their settings, shapes,
    /// how nodes connect, which values handles keep; not scalar constants,
    /// which kernels read as parameters — and a structure met
    /// for the third time replays the plan recorded the second time:
    /// same kernels, same buffer reuse, the new inputs uploaded and the
    /// new graph's variables bound; nothing is fused, generated or looked
    /// up again. A training step, whose graph has the same structure every
    /// step, then costs uploading its batch and encoding its dispatches
    /// ([`Counters::plans_replayed`] counts replays). Any change of
    /// structure plans afresh, so turning it off only serves measuring
    /// what replay saves. Off also forgets the recorded plans.
    pub fn set_plan_replay(&self, on: bool) {
        if let Some(g) = &self.gpu {
            g.switches
                .plan_replay
                .store(on, std::sync::atomic::Ordering::Relaxed);
            if !on {
                g.replay.lock().unwrap_or_else(|e| e.into_inner()).clear();
            }
        }
    }

    /// Anomaly detection, like PyTorch's `detect_anomaly`: while on, every
    /// read (and, natively, every realize) first computes the pending ops
    /// one at a time, forward and backward alike, and fails with
    /// [`crate::Error::Anomaly`] naming the first that makes a NaN from
    /// inputs holding none, or an infinity from finite inputs, its shape,
    /// and the ops that made its inputs. A NaN or infinity carried on from
    /// an input, or written as a constant (a causal mask's −∞ fill), is
    /// intended and not reported, so every built-in layer runs under it.
    /// Slow (a submit and a readback per op and input, every value kept):
    /// for debugging.
    pub fn set_detect_anomaly(&self, on: bool) {
        if let Some(g) = &self.gpu {
            g.switches
                .anomaly
                .store(on, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether anomaly detection is on ([`Device::set_detect_anomaly`]).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn detects_anomalies(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| {
            g.switches
                .anomaly
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Runs `f` and profiles every realize and read it does on this
    /// device: each kernel's name (op or family, fused ops, output shape),
    /// dispatch size, bytes read and written, FLOPs and, where the adapter
    /// has timestamp queries (lavapipe and most Vulkan, Metal and DX12
    /// drivers do), its GPU time; and the CPU time spent recording the
    /// graph, planning and encoding. While profiling each kernel gets a
    /// compute pass of its own (timestamps go around passes), which adds a
    /// little time per kernel. See [`crate::profile::Profile`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile<R>(&self, f: impl FnOnce() -> R) -> (R, crate::profile::Profile) {
        let Some(g) = &self.gpu else {
            return (f(), crate::profile::Profile::default());
        };
        let start = std::time::Instant::now();
        *g.profile.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(crate::exec::profile::ProfileLog::new());
        let out = f();
        let wall_ns = start.elapsed().as_nanos() as u64;
        let log = g
            .profile
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("profiles do not nest");
        (out, crate::exec::profile::finish(g, log, wall_ns))
    }

    /// A memory budget: from now on a realize or read whose predicted peak
    /// of live bytes ([`crate::predict_peak_bytes`], which counts every
    /// buffer the device holds) exceeds `bytes` is first rematerialized:
    /// webgrad recomputes some of the values the backward pass would keep
    /// (cheap elementwise ones first, then any, in segments as in the √n
    /// schedule) until the predicted peak fits; if nothing fits it returns
    /// [`crate::Error::OutOfBudget`] naming the smallest peak it reached,
    /// before running anything. Gradients are the same values (the same
    /// ops on the same inputs, rounded alike where the kernels fuse alike);
    /// the cost is the recomputation ([`crate::predict_memory`] reports
    /// it). [`Device::set_auto_remat`]`(false)` refuses instead of
    /// recomputing. `None` lifts the budget; `Some(0)` panics (no graph
    /// fits in no memory). While set, each realize plans
    /// at least twice (the prediction, then the run), a rematerialized one
    /// a few times more, and autotune times no new shape (a timed variant
    /// could need scratch memory the prediction did not count).
    #[track_caller]
    pub fn set_memory_budget(&self, bytes: Option<u64>) {
        // As a budget, 0 could never be met.
        assert!(
            bytes != Some(0),
            "set_memory_budget: the budget must be at least 1 byte, got Some(0) (None lifts the budget)"
        );
        if let Some(g) = &self.gpu {
            *g.switches.budget.lock().unwrap_or_else(|e| e.into_inner()) = bytes;
        }
    }

    /// Whether a realize over the memory budget is rematerialized (the
    /// default) or refused with [`crate::Error::OutOfBudget`]. See
    /// [`Device::set_memory_budget`].
    pub fn set_auto_remat(&self, on: bool) {
        if let Some(g) = &self.gpu {
            g.switches
                .auto_remat
                .store(on, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Writes the pipeline cache to disk now (it is also written when the
    /// device's last handle is dropped); nothing when there is none or
    /// nothing new. See [`DeviceOptions::pipeline_cache`].
    pub fn save_pipeline_cache(&self) -> std::io::Result<()> {
        match &self.gpu {
            Some(g) => match &mut g.pipelines.lock().unwrap_or_else(|e| e.into_inner()).disk {
                Some(disk) => disk.save(),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Where the pipeline cache lives, if this device has one.
    pub fn pipeline_cache_path(&self) -> Option<std::path::PathBuf> {
        let g = self.gpu.as_ref()?;
        let pipelines = g.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        pipelines.disk.as_ref().map(|d| d.path.clone())
    }

    /// For testing error reporting: the next realize or read records one
    /// invalid wgpu command (a buffer both mappable for reading and for
    /// writing) and so fails with [`crate::Error::Validation`]. Its kernels
    /// run as usual.
    #[doc(hidden)]
    pub fn inject_validation_error(&self) {
        if let Some(g) = &self.gpu {
            g.switches
                .inject_error
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// For testing every lowering of a family: `Some(i)` makes the scheduler
    /// use variant i (or the last, if fewer) wherever a family offers
    /// several (`Family::lower_variants`) instead of autotune's choice,
    /// for graphs planned from now on; `None` returns to autotune. Forgets
    /// recorded plans, which hold the earlier choices.
    #[doc(hidden)]
    pub fn force_variant(&self, variant: Option<usize>) {
        if let Some(g) = &self.gpu {
            *g.switches
                .forced_variant
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = variant;
            g.replay.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Releases the pooled (free) GPU buffers back to the driver. Live
    /// tensors are untouched.
    pub fn trim_pool(&self) {
        if let Some(g) = &self.gpu {
            g.pool.lock().unwrap_or_else(|e| e.into_inner()).trim();
        }
    }

    /// Number of compute pipelines compiled so far (one per kernel specialization).
    pub fn pipelines_compiled(&self) -> usize {
        self.gpu.as_ref().map_or(0, |g| {
            g.pipelines.lock().unwrap_or_else(|e| e.into_inner()).len()
        })
    }

    /// A number no other device of this process has (`None` for a
    /// reference-only device).
    pub(crate) fn number(&self) -> Option<u64> {
        self.gpu.as_ref().map(|g| g.id)
    }

    pub(crate) fn same(&self, other: &Device) -> bool {
        match (&self.gpu, &other.gpu) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// Two handles are equal when they are the same device (clones of one
/// [`Device::new`]); two devices opened on one adapter are not equal, and
/// their tensors do not mix.
impl PartialEq for Device {
    fn eq(&self, other: &Device) -> bool {
        self.same(other)
    }
}

impl Eq for Device {}

impl Device {
    pub(crate) fn gpu(&self) -> Result<&Arc<Gpu>> {
        self.gpu.as_ref().ok_or(Error::NoGpu)
    }
}
