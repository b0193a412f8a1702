//! Compiled compute pipelines, cached by their WGSL source (which encodes the
//! template and its specialization) and entry point (one source may hold
//! several, like a family's forward kernel and its adjoints).

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Default)]
pub(crate) struct PipelineCache {
    pipelines: HashMap<String, HashMap<String, wgpu::ComputePipeline>>,
    /// The driver's compiled pipelines, persisted across runs where wgpu
    /// allows it (Vulkan): see `DeviceOptions::pipeline_cache`.
    pub disk: Option<DiskCache>,
}

/// A `wgpu::PipelineCache` loaded from and saved to one file.
pub(crate) struct DiskCache {
    pub cache: wgpu::PipelineCache,
    pub path: PathBuf,
    /// Pipelines were compiled since it was loaded or saved.
    pub dirty: bool,
}

impl DiskCache {
    /// Writes the cache's data (to a temporary file renamed into place, so
    /// that a crash never leaves half a file). Nothing new: nothing written.
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(data) = self.cache.get_data() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let temp = self
                .path
                .with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&temp, &data)?;
            std::fs::rename(&temp, &self.path)?;
        }
        self.dirty = false;
        Ok(())
    }
}

impl Drop for DiskCache {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            log::warn!(
                "webgrad: could not save the pipeline cache {:?}: {e}",
                self.path
            );
        }
    }
}

impl PipelineCache {
    pub fn len(&self) -> usize {
        self.pipelines.values().map(HashMap::len).sum()
    }

    /// The pipeline for `source`'s entry point `entry`, if compiled already.
    pub fn lookup(&self, source: &str, entry: &str) -> Option<wgpu::ComputePipeline> {
        self.pipelines.get(source)?.get(entry).cloned()
    }

    /// Compiles the pipelines `wanted` (none cached yet, no duplicates),
    /// several at once natively: a software driver compiles each on the
    /// calling thread, so a realize needing new kernels (a cold start) waits
    /// for the slowest instead of their sum.
    pub fn compile_all(
        &mut self,
        device: &wgpu::Device,
        wanted: &[(String, &'static str)],
    ) -> Vec<wgpu::ComputePipeline> {
        let cache = self.disk.as_ref().map(|d| &d.cache);
        #[cfg(not(target_arch = "wasm32"))]
        let compiled: Vec<wgpu::ComputePipeline> = {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            if threads > 1 && wanted.len() > 1 {
                let next = std::sync::atomic::AtomicUsize::new(0);
                let slots: Vec<std::sync::Mutex<Option<wgpu::ComputePipeline>>> =
                    wanted.iter().map(|_| std::sync::Mutex::new(None)).collect();
                std::thread::scope(|scope| {
                    for _ in 0..threads.min(wanted.len()) {
                        scope.spawn(|| {
                            loop {
                                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let Some((source, entry)) = wanted.get(i) else {
                                    break;
                                };
                                let p = compile(device, source, entry, cache);
                                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                            }
                        });
                    }
                });
                slots
                    .into_iter()
                    .map(|s| {
                        s.into_inner()
                            .unwrap_or_else(|e| e.into_inner())
                            .expect("every wanted pipeline was compiled")
                    })
                    .collect()
            } else {
                wanted
                    .iter()
                    .map(|(s, e)| compile(device, s, e, cache))
                    .collect()
            }
        };
        #[cfg(target_arch = "wasm32")]
        let compiled: Vec<wgpu::ComputePipeline> = wanted
            .iter()
            .map(|(s, e)| compile(device, s, e, cache))
            .collect();
        if let Some(disk) = &mut self.disk {
            disk.dirty |= !wanted.is_empty();
        }
        for ((source, entry), p) in wanted.iter().zip(&compiled) {
            self.pipelines
                .entry(source.clone())
                .or_default()
                .insert(entry.to_string(), p.clone());
        }
        compiled
    }
}

/// Compiles one pipeline; the bind group layout is derived from the shader.
fn compile(
    device: &wgpu::Device,
    source: &str,
    entry: &str,
    cache: Option<&wgpu::PipelineCache>,
) -> wgpu::ComputePipeline {
    log::debug!("webgrad: compiling pipeline {entry}:\n{source}");
    #[cfg(not(target_arch = "wasm32"))]
    let start = std::time::Instant::now();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(entry),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache,
    });
    #[cfg(not(target_arch = "wasm32"))]
    log::info!(
        "webgrad: compiled {entry} ({} bytes of WGSL) in {:.1} ms",
        source.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    pipeline
}
