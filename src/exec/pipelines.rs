//! Compiled compute pipelines, cached by their WGSL source (which encodes the
//! template and its specialization).

use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct PipelineCache {
    pipelines: HashMap<String, wgpu::ComputePipeline>,
}

impl PipelineCache {
    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    /// Returns the pipeline for `source`'s entry point `entry`, compiling it
    /// on first use. The bind group layout is derived from the shader.
    pub fn get(
        &mut self,
        device: &wgpu::Device,
        source: &str,
        entry: &str,
    ) -> wgpu::ComputePipeline {
        if let Some(p) = self.pipelines.get(source) {
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
        self.pipelines.insert(source.to_string(), pipeline.clone());
        pipeline
    }
}
