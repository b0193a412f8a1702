//! Bind groups reused across realizes. A training step binds the same
//! buffers to the same pipelines every time (the pool hands buffers back in
//! the same order), and creating a bind group per dispatch was a large part
//! of encoding. A cached bind group keeps its buffers alive, so the cache is
//! emptied whenever the pool frees buffers to the driver, and bounded.

use std::collections::HashMap;

/// Most bind groups kept; beyond it the cache starts over.
const MAX_ENTRIES: usize = 4096;

/// (pipeline, params buffer, params offset and size, bound buffers and sizes).
type Key = (
    wgpu::ComputePipeline,
    wgpu::Buffer,
    u64,
    u64,
    Vec<(wgpu::Buffer, u64)>,
);

#[derive(Default)]
pub(crate) struct BindGroupCache {
    /// By the key's hash, then compared in full: a lookup hashes the
    /// borrowed key instead of building one (a clone of the buffer list
    /// per dispatch).
    groups: HashMap<u64, Vec<(Key, wgpu::BindGroup)>>,
    entries: usize,
    /// The pool's eviction count when the cache was last checked.
    evictions: u64,
    pub hits: u64,
    pub misses: u64,
}

impl BindGroupCache {
    /// Forgets every bind group if the pool has freed buffers since the last
    /// call (their bind groups would keep them alive) or the cache is full.
    pub fn check(&mut self, pool_evictions: u64) {
        if pool_evictions != self.evictions || self.entries >= MAX_ENTRIES {
            self.groups.clear();
            self.entries = 0;
            self.evictions = pool_evictions;
        }
    }

    /// The bind group for `pipeline` with `params[offset..offset + size]` at
    /// binding 0 and `buffers` (each bound from 0 to its size) after it.
    pub fn get(
        &mut self,
        device: &wgpu::Device,
        pipeline: &wgpu::ComputePipeline,
        params: &wgpu::Buffer,
        (offset, size): (u64, u64),
        buffers: &[(wgpu::Buffer, u64)],
    ) -> wgpu::BindGroup {
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = rustc_hash::FxHasher::default();
            (pipeline, params, offset, size, buffers).hash(&mut h);
            h.finish()
        };
        let same = |k: &Key| {
            k.0 == *pipeline && k.1 == *params && k.2 == offset && k.3 == size && k.4 == buffers
        };
        if let Some((_, group)) = self
            .groups
            .get(&hash)
            .and_then(|list| list.iter().find(|(k, _)| same(k)))
        {
            self.hits += 1;
            return group.clone();
        }
        self.misses += 1;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: params,
                offset,
                size: std::num::NonZeroU64::new(size),
            }),
        }];
        for (i, (buffer, size)) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: 0,
                    size: std::num::NonZeroU64::new((*size).min(buffer.size())),
                }),
            });
        }
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let key: Key = (
            pipeline.clone(),
            params.clone(),
            offset,
            size,
            buffers.to_vec(),
        );
        self.groups
            .entry(hash)
            .or_default()
            .push((key, group.clone()));
        self.entries += 1;
        group
    }
}
