//! What a device is asked for and what it reports: its options, the
//! adapter's description, memory and work counters.

use crate::kernel::KernelFamily;

/// How to pick and configure the GPU.
#[derive(Clone, Debug, Default)]
pub struct DeviceOptions {
    /// The adapter to open, as an index into [`crate::adapters`] (`None`:
    /// the one wgpu prefers, see `low_power`). [`Device::all`](super::Device::all)
    /// opens every one.
    pub adapter: Option<usize>,
    /// Request the adapter's own limits instead of the WebGPU defaults.
    /// Larger tensors then fit, but code may no longer run in a browser.
    pub adapter_limits: bool,
    /// Prefer a low-power adapter (integrated GPU) over a discrete one.
    pub low_power: bool,
    /// Which kernel family matmul and the convolutions use (chosen per
    /// adapter by default).
    pub kernel_family: KernelFamily,
    /// Where compiled pipelines persist across runs (Vulkan only: the one
    /// backend with application-managed caches in wgpu; elsewhere the
    /// driver or browser keeps its own).
    pub pipeline_cache: PipelineCacheDir,
    /// Results that depend only on the graph, the seeds and the adapter,
    /// like PyTorch's `torch.use_deterministic_algorithms(True)` with
    /// `cudnn.benchmark = False`: no kernel is chosen by timing (a family
    /// offering several lowerings always uses the one it expects to be
    /// fastest for the shapes), and no tuning file is read or written. Off by default, because webgrad's own
    /// families do not need it: every matmul variant sums each output in
    /// the same order, so autotune's choice (timed, or read from the
    /// tuning file) never changes a bit. It is the guarantee for families
    /// that cannot promise that, and for runs that must not consult any
    /// file an earlier run wrote. The pipeline cache stays as configured:
    /// it holds compiled code, which cannot change a value. The cost is
    /// speed where the untimed choice is not the fastest: see the README.
    pub deterministic: bool,
    /// How op families read f16 values: as WGSL's `f16` where the adapter
    /// has `shader-f16`, or decoded from 32-bit words with integer
    /// arithmetic (chosen per adapter by default). The values are the
    /// same bit for bit either way.
    pub f16_reads: F16Reads,
}

/// How op families read f16 values ([`DeviceOptions::f16_reads`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum F16Reads {
    /// Native on GPUs that have `shader-f16`; portable on CPU adapters
    /// (lavapipe, SwiftShader), where a native f16 load costs more than
    /// the integer decode (a 16-bit matmul took 1.7× as long on lavapipe).
    #[default]
    Auto,
    /// Native wherever the adapter has `shader-f16`.
    Native,
    /// Never native, as on an adapter without `shader-f16`.
    Portable,
}

/// Where [`DeviceOptions::pipeline_cache`] keeps the driver's compiled
/// pipelines: one file per adapter and driver (wgpu's key), loaded when a
/// device is created and saved when its last handle is dropped or on
/// [`Device::save_pipeline_cache`](super::Device::save_pipeline_cache). A cache from another driver version is
/// discarded by the driver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PipelineCacheDir {
    /// `$WEBGRAD_CACHE_DIR` if set (`off` turns the cache off), else
    /// `$XDG_CACHE_HOME/webgrad`, else `$HOME/.cache/webgrad`.
    #[default]
    Default,
    /// This directory.
    Dir(std::path::PathBuf),
    /// No cache on disk.
    Off,
}

impl PipelineCacheDir {
    pub(crate) fn resolve(&self) -> Option<std::path::PathBuf> {
        match self {
            PipelineCacheDir::Off => None,
            PipelineCacheDir::Dir(d) => Some(d.clone()),
            PipelineCacheDir::Default => {
                if let Some(dir) = std::env::var_os("WEBGRAD_CACHE_DIR") {
                    return (dir != "off").then(|| dir.into());
                }
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .map(std::path::PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache"))
                    })?;
                Some(base.join("webgrad"))
            }
        }
    }
}

/// What the adapter says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Graphics API in use: Vulkan, Metal, Dx12, BrowserWebGpu, ...
    pub backend: String,
    /// Discrete, integrated, virtual GPU or CPU (software).
    pub device_type: String,
    /// Driver name and version, where the platform reports them.
    pub driver: String,
    /// The adapter offers WebGPU's `shader-f16` feature (native `f16`
    /// types). webgrad's 16-bit tensors do not need it (they are stored
    /// two per 32-bit word and converted in registers on every adapter);
    /// where it is there, op families may read f16 values natively (see
    /// [`Device::native_f16`](super::Device::native_f16)).
    pub shader_f16: bool,
}

/// Counts of GPU buffers held by webgrad, for checking that memory does not grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Buffers currently holding a tensor's value (or in use by a pending kernel).
    pub live_buffers: usize,
    /// Their total size in bytes (rounded up to the pool's size classes).
    pub live_bytes: u64,
    /// Buffers sitting in the pool, free for reuse.
    pub pooled_buffers: usize,
    /// Their total size in bytes.
    pub pooled_bytes: u64,
    /// The most bytes live at once since the device was created or
    /// [`Device::reset_peak_memory`](super::Device::reset_peak_memory) was called.
    pub peak_live_bytes: u64,
}

/// Work counters, for measuring what a computation cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Compute kernels dispatched (autotune's timing runs not counted).
    pub kernels: u64,
    /// Command buffers submitted (one per realize or read; autotune's
    /// timing runs not counted).
    pub submits: u64,
    /// Bind groups created; a dispatch whose pipeline and buffers match an
    /// earlier one's reuses its bind group (a steady training loop creates
    /// none after its first steps).
    pub bind_groups: u64,
    /// Realizes planned from scratch: ordered, fused, lowered, their
    /// kernels generated and their buffers assigned.
    pub plans: u64,
    /// Realizes that replayed the recorded plan of an earlier one with
    /// the same graph structure instead (see [`Device::set_plan_replay`](super::Device::set_plan_replay)).
    pub plans_replayed: u64,
    /// Realizes that recomputed saved values of the backward pass to fit
    /// the memory budget (see [`Device::set_memory_budget`](super::Device::set_memory_budget)).
    pub rematerialized: u64,
}
