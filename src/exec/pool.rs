//! GPU buffers recycled by size class.
//!
//! A [`Storage`] is a reference-counted buffer; when the last reference goes
//! (its tensor is dropped, or the executor is done with an intermediate) the
//! buffer returns to the free list of its size class. Classes are 2^k and
//! 1.5·2^k bytes, so at most a third of a buffer is slack.
//!
//! The pool is bounded: it never holds more free bytes than the most bytes
//! ever live at once (the working set), evicting the buffers returned
//! longest ago first. A run whose shapes vary (batches of different sizes)
//! therefore holds at most twice its peak, however many size classes it
//! passes through; a run whose shapes repeat evicts nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::device::MemoryStats;

/// Usage every tensor buffer gets: read/written by kernels, uploaded to,
/// copied from for readback.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

#[derive(Default)]
pub(crate) struct BufferPool {
    /// Free buffers by size class, each with the time it was returned
    /// (`None` in a simulated pool).
    free: HashMap<u64, Vec<(u64, Option<wgpu::Buffer>)>>,
    /// Counts bytes without creating buffers: planning a realize in it
    /// predicts the realize's peak memory (see `schedule::predict_peak`).
    pub simulated: bool,
    /// Counts returns, to find the one longest ago.
    clock: u64,
    live_buffers: usize,
    live_bytes: u64,
    pooled_buffers: usize,
    pooled_bytes: u64,
    peak_live_bytes: u64,
    /// Buffers freed back to the driver so far: bind groups that name them
    /// must go too (see `exec::bind_groups`).
    pub evictions: u64,
    /// While a plan is recorded for replay: the addresses of buffers
    /// returned, in order (see `exec::replay`).
    pub journal: Option<Vec<usize>>,
}

impl BufferPool {
    /// A pool that counts bytes without creating buffers.
    pub fn simulated() -> BufferPool {
        BufferPool {
            simulated: true,
            ..Default::default()
        }
    }

    pub fn reset_peak(&mut self) {
        self.peak_live_bytes = self.live_bytes;
    }

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            live_buffers: self.live_buffers,
            live_bytes: self.live_bytes,
            pooled_buffers: self.pooled_buffers,
            pooled_bytes: self.pooled_bytes,
            peak_live_bytes: self.peak_live_bytes,
        }
    }

    /// Frees the buffers returned longest ago until the pool holds no more
    /// than the peak of live bytes.
    fn evict_beyond_peak(&mut self) {
        while self.pooled_bytes > self.peak_live_bytes {
            let oldest = self
                .free
                .iter()
                .filter_map(|(&class, list)| list.first().map(|(t, _)| (*t, class)))
                .min();
            let Some((_, class)) = oldest else { break };
            let list = self.free.get_mut(&class).unwrap();
            list.remove(0);
            if list.is_empty() {
                self.free.remove(&class);
            }
            self.pooled_buffers -= 1;
            self.pooled_bytes -= class;
            self.evictions += 1;
        }
    }

    /// Frees every pooled buffer (live ones are untouched).
    pub fn trim(&mut self) {
        self.evictions += self.pooled_buffers as u64;
        self.free.clear();
        self.pooled_buffers = 0;
        self.pooled_bytes = 0;
    }
}

/// The size class a request of `bytes` is served from.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let pow = bytes.next_power_of_two();
    let three_quarters = pow / 4 * 3;
    if bytes <= three_quarters {
        three_quarters
    } else {
        pow
    }
}

/// A pooled GPU buffer; returns to the pool when dropped.
pub(crate) struct PooledBuffer {
    /// `None` only in a simulated pool, whose plans are never submitted.
    buffer: Option<wgpu::Buffer>,
    class: u64,
    pool: Arc<Mutex<BufferPool>>,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("a simulated buffer is never bound or read")
    }

    /// Its size in bytes (the size class).
    pub fn size(&self) -> u64 {
        self.class
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(journal) = pool.journal.as_mut() {
            journal.push(self as *const PooledBuffer as usize);
        }
        pool.live_buffers -= 1;
        pool.live_bytes -= self.class;
        pool.pooled_buffers += 1;
        pool.pooled_bytes += self.class;
        pool.clock += 1;
        let stamp = pool.clock;
        pool.free
            .entry(self.class)
            .or_default()
            .push((stamp, self.buffer.take()));
        pool.evict_beyond_peak();
    }
}

/// A tensor's value on the GPU (shared by aliases such as reshape).
pub(crate) type Storage = Arc<PooledBuffer>;

/// Takes a buffer of at least `bytes` from the pool, or creates one.
pub(crate) fn allocate(
    device: &wgpu::Device,
    pool: &Arc<Mutex<BufferPool>>,
    bytes: u64,
) -> Storage {
    let class = size_class(bytes);
    let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
    // The most recently returned buffer of the class: its stamp is the newest.
    let buffer = match p.free.get_mut(&class).and_then(Vec::pop) {
        Some((_, b)) => {
            p.pooled_buffers -= 1;
            p.pooled_bytes -= class;
            b
        }
        None if p.simulated => None,
        None => Some(device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("webgrad tensor"),
            size: class,
            usage: TENSOR_USAGE,
            mapped_at_creation: false,
        })),
    };
    p.live_buffers += 1;
    p.live_bytes += class;
    p.peak_live_bytes = p.peak_live_bytes.max(p.live_bytes);
    Arc::new(PooledBuffer {
        buffer,
        class,
        pool: pool.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_waste_at_most_a_third() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 384);
        assert_eq!(size_class(385), 512);
        for bytes in [1000u64, 4096, 80_000_000, 123_456_789] {
            let c = size_class(bytes);
            assert!(
                c >= bytes && (c as f64) < bytes as f64 * 1.5 + 256.0,
                "{bytes} -> {c}"
            );
        }
    }
}
