//! Opening a device: choosing the adapter, requesting the device with the
//! features webgrad uses, and listing every adapter ([`Device::all`]).

use std::sync::{Arc, Mutex};

use super::{AdapterSummary, Device, DeviceOptions, F16Reads, Gpu, Switches};
use crate::error::{Error, Result};
use crate::exec::pipelines::PipelineCache;
use crate::exec::pool::BufferPool;
use crate::kernel::KernelFamily;

/// The optional features webgrad uses where the adapter has them.
fn wanted_features(options: &DeviceOptions) -> wgpu::Features {
    let f = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::PIPELINE_CACHE;
    let f = match options.f16_reads {
        F16Reads::Portable => f,
        _ => f | wgpu::Features::SHADER_F16,
    };
    // In a browser WGSL needs `enable subgroups;`, which naga does not
    // parse yet: the subgroup kernels are native only.
    #[cfg(not(target_arch = "wasm32"))]
    let f = f | wgpu::Features::SUBGROUP;
    f
}

/// The subgroup size kernels may rely on: the device has subgroup
/// operations and every subgroup has the same size, a power of two from 8
/// to 64 (lavapipe: 8 on 256-bit vectors).
fn subgroup_size(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<u32> {
    let (lo, hi) = (info.subgroup_min_size, info.subgroup_max_size);
    let usable = device.features().contains(wgpu::Features::SUBGROUP)
        && lo == hi
        && lo.is_power_of_two()
        && (8..=64).contains(&lo);
    usable.then_some(lo)
}

const NO_ADAPTER_HELP: &str = "webgrad needs a GPU driver for Vulkan, Metal, DX12 or WebGPU. \
On Linux without a GPU, install Mesa's software Vulkan driver (lavapipe): \
`apt-get install mesa-vulkan-drivers` on Debian/Ubuntu (`dnf install mesa-vulkan-drivers` on Fedora); \
`cargo xtask test` installs it for you when run as root on Debian/Ubuntu. \
In a browser, use one with WebGPU enabled (Chrome/Edge 113+, or --enable-unsafe-webgpu). \
If a driver is installed, check that WGPU_BACKEND (if set) names it";

/// The instance every device of this process is opened through.
fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    // PRIMARY = Vulkan, Metal, DX12, browser WebGPU; GL is skipped unless
    // WGPU_BACKEND asks for it (its probe is slow and noisy on headless Linux).
    desc.backends = wgpu::Backends::PRIMARY.with_env();
    wgpu::Instance::new(desc)
}

/// Every adapter of the primary backends (and those `WGPU_BACKEND`
/// names), in wgpu's order: the indices of [`DeviceOptions::adapter`].
async fn every_adapter(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    instance
        .enumerate_adapters(wgpu::Backends::PRIMARY.with_env())
        .await
}

/// The adapter `options` ask for: the one at [`DeviceOptions::adapter`],
/// else the one wgpu prefers for the power preference.
async fn choose_adapter(
    instance: &wgpu::Instance,
    options: &DeviceOptions,
) -> Result<wgpu::Adapter> {
    if let Some(index) = options.adapter {
        let mut all = every_adapter(instance).await;
        let count = all.len();
        if index >= count {
            return Err(Error::NoAdapter(format!(
                "DeviceOptions::adapter is {index}, but this process sees {count} adapter(s) \
                 (webgrad::adapters() lists them). {NO_ADAPTER_HELP}"
            )));
        }
        return Ok(all.swap_remove(index));
    }
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: if options.low_power {
                wgpu::PowerPreference::LowPower
            } else {
                wgpu::PowerPreference::HighPerformance
            },
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoAdapter(format!("{e}. {NO_ADAPTER_HELP}")))
}

/// What an adapter says about itself.
fn summary(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        shader_f16: adapter.features().contains(wgpu::Features::SHADER_F16),
    }
}

/// Every adapter this process can open, in the order of
/// [`DeviceOptions::adapter`]'s indices.
pub async fn adapters() -> Vec<AdapterSummary> {
    every_adapter(&instance())
        .await
        .iter()
        .map(summary)
        .collect()
}

/// [`adapters`], natively.
#[cfg(not(target_arch = "wasm32"))]
pub fn adapters_blocking() -> Vec<AdapterSummary> {
    pollster::block_on(adapters())
}

impl Device {
    /// One device on every adapter ([`adapters`]), each opened with
    /// `options` (whose `adapter` is ignored): the devices of a
    /// data-parallel run on one machine. A machine whose only adapter is a
    /// CPU rasterizer gives one device; open several on one adapter with
    /// [`Device::with_options`] to run replicas there.
    pub async fn all(options: DeviceOptions) -> Result<Vec<Device>> {
        let count = every_adapter(&instance()).await.len();
        if count == 0 {
            return Err(Error::NoAdapter(NO_ADAPTER_HELP.into()));
        }
        let mut devices = Vec::with_capacity(count);
        for index in 0..count {
            let options = DeviceOptions {
                adapter: Some(index),
                ..options.clone()
            };
            devices.push(open(options).await?);
        }
        Ok(devices)
    }

    /// [`Device::all`], natively.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn all_blocking(options: DeviceOptions) -> Result<Vec<Device>> {
        pollster::block_on(Device::all(options))
    }
}

/// A device on the adapter `options` choose.
// wgpu's handles are not Send on wasm32, where there is one thread.
#[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
pub(super) async fn open(options: DeviceOptions) -> Result<Device> {
    let adapter = choose_adapter(&instance(), &options).await?;
    let info = adapter.get_info();
    let limits = if options.adapter_limits {
        adapter.limits()
    } else {
        wgpu::Limits::default()
    };
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("webgrad"),
            // Timestamp queries where the adapter has them, for
            // profiling; subgroups natively (see `subgroup_size`);
            // f16 types (see `exec::packed::with_native_f16`).
            required_features: adapter.features() & wanted_features(&options),
            required_limits: limits.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| Error::RequestDevice(e.to_string()))?;
    let timestamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
    let subgroup = subgroup_size(&device, &info);
    let mut pipelines = PipelineCache::default();
    let native_f16 = device.features().contains(wgpu::Features::SHADER_F16)
        && match options.f16_reads {
            F16Reads::Auto => info.device_type != wgpu::DeviceType::Cpu,
            F16Reads::Native => true,
            F16Reads::Portable => false,
        };
    // A deterministic device neither reads nor writes a tuning file.
    let tuning_file = match options.deterministic {
        true => None,
        false => options
            .pipeline_cache
            .resolve()
            .map(|dir| dir.join(crate::exec::tune::file_name(&info.name, &info.driver_info))),
    };
    let tuning = crate::exec::tune::Tuning::load(tuning_file);
    if device.features().contains(wgpu::Features::PIPELINE_CACHE) {
        let file = wgpu::util::pipeline_cache_key(&info);
        if let (Some(dir), Some(file)) = (options.pipeline_cache.resolve(), file) {
            let path = dir.join(format!("{file}.bin"));
            let data = std::fs::read(&path).ok();
            // SAFETY: the data is only ever a cache this code wrote with
            // `get_data` for the same key, and `fallback` makes wgpu
            // discard data the driver does not accept.
            let cache = unsafe {
                device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                    label: Some("webgrad pipelines"),
                    data: data.as_deref(),
                    fallback: true,
                })
            };
            pipelines.disk = Some(crate::exec::pipelines::DiskCache {
                cache,
                path,
                dirty: false,
            });
        }
    }
    let lost = Arc::new(Mutex::new(None));
    let uncaptured = Arc::new(Mutex::new(None));
    {
        let lost = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{reason:?}: {msg}"));
        });
        let uncaptured = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("webgrad: uncaptured wgpu error: {e}");
            *uncaptured.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }));
    }
    let summary = summary(&adapter);
    let kernel_family = match options.kernel_family {
        KernelFamily::Auto if info.device_type == wgpu::DeviceType::Cpu => {
            KernelFamily::RegisterBlocked
        }
        KernelFamily::Auto => KernelFamily::Tiled,
        chosen => chosen,
    };
    log::info!(
        "webgrad: using {} ({}, {})",
        summary.name,
        summary.backend,
        summary.device_type
    );
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    Ok(Device {
        gpu: Some(Arc::new(Gpu {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            device,
            queue,
            summary,
            limits,
            kernel_family,
            deterministic: options.deterministic,
            subgroup,
            native_f16,
            pipelines: Mutex::new(pipelines),
            pool: Arc::new(Mutex::new(BufferPool::default())),
            submit_lock: Mutex::new(()),
            params: Mutex::new(None),
            staging: Default::default(),
            switches: Switches {
                plan_replay: std::sync::atomic::AtomicBool::new(true),
                auto_remat: std::sync::atomic::AtomicBool::new(true),
                ..Default::default()
            },
            counts: Default::default(),
            bind_groups: Default::default(),
            replay: Default::default(),
            tuning: Mutex::new(tuning),
            timestamps,
            profile: Mutex::new(None),
            lost,
            uncaptured,
            _teardown: Default::default(),
        })),
    })
}
