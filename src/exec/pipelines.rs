//! Compiled compute pipelines, cached by their WGSL source (which encodes the
//! template and its specialization) and entry point (one source may hold
//! several, like a family's forward kernel and its adjoints).

use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct PipelineCache {
    pipelines: HashMap<String, HashMap<String, wgpu::ComputePipeline>>,
}

impl PipelineCache {
    pub fn len(&self) -> usize {
        self.pipelines.values().map(HashMap::len).sum()
    }

    /// Returns the pipeline for `source`'s entry point `entry`, compiling it
    /// on first use. The bind group layout is derived from the shader.
    pub fn get(
        &mut self,
        device: &wgpu::Device,
        source: &str,
        entry: &str,
    ) -> wgpu::ComputePipeline {
        if let Some(p) = self.pipelines.get(source).and_then(|e| e.get(entry)) {
            return p.clone();
        }
        log::debug!("webgrad: compiling pipeline {entry}:\n{source}");
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
            cache: None,
        });
        self.pipelines
            .entry(source.to_string())
            .or_default()
            .insert(entry.to_string(), pipeline.clone());
        pipeline
    }
}
