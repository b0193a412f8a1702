//! Data-parallel training: several replicas of a model, each on its own
//! device and its own shard of every batch, kept identical by averaging
//! their gradients before every update.
//!
//! One API, two transports ([`Transport`]): local replicas, a thread per
//! device of one process ([`run_local`], [`LocalGroup`]), and MPI ranks, a
//! process per GPU on any number of machines (`Mpi`, behind the cargo
//! feature `mpi`). A step ([`DataParallel::step`]) computes this rank's
//! gradients in one submit, reads them back, all-reduces them in buckets
//! of [`DataParallel::bucket_bytes`] through host memory (WebGPU has no
//! GPU-to-GPU path, and no NCCL), and applies the optimizer's update to the
//! averaged gradients on every rank.
//!
//! **Replicas stay bit-identical.** Every transport sums in rank order,
//! ((g₀ + g₁) + g₂) + …, whatever the MPI library's algorithm (it is not
//! asked to add anything: ranks exchange chunks and each adds its chunk in
//! that order), then divides by the number of ranks. So every rank applies
//! the same bits to the same parameters with the same kernels, and the
//! parameters stay equal bit for bit, step after step, on identical
//! adapters (webgrad computes each value in one fixed order on an adapter;
//! across different GPU models, results may differ in the last bits:
//! [`DataParallel::check_in_sync`] tells, and
//! [`DataParallel::broadcast_parameters`] re-synchronizes).
//!
//! **N ranks = one rank with N times the batch.** [`ShardedSampler`] gives
//! rank r the r-th slice of every global batch, so N ranks with batch b
//! average gradients over the same N·b examples as one rank with batch
//! N·b; the two differ only in the order of the summation (each rank's
//! mean over b, then the mean over ranks, against one mean over N·b).
//!
//! **Overlap.** webgrad runs a step's whole backward pass in one submit,
//! so every gradient is ready at the same moment: there is no rest of the
//! backward pass for communication to overlap with. Buckets bound the
//! size of each message and of the host buffers.
//!
//! **Faults.** No rank waits for one that failed. Local replicas: a panic
//! or an error inside [`run_local`] (or [`Transport::fail`]) makes the
//! others' collectives return [`crate::Error::RankFailed`] naming it. MPI
//! cannot let ranks return from a collective another will never join, so
//! there a failing rank ends the job (`MPI_Abort`, after printing which
//! rank failed and why), and `mpirun` names it; so does a killed process.

mod checkpoint;
mod local;
#[cfg(feature = "mpi")]
mod mpi;
mod sampler;
mod transport;

pub use local::{LocalGroup, LocalTransport, run_local};
#[cfg(feature = "mpi")]
pub use mpi::Mpi;
pub use sampler::ShardedSampler;
pub use transport::Transport;

use std::time::Instant;

use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::tensor::{Tensor, read_all_blocking, realize_all_blocking};

/// Where a rank's steps went since it was made (for measurements: the
/// fraction of a step spent communicating is readback + reduce over the
/// step's time).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommStats {
    /// All-reduces of gradients (one per step).
    pub reductions: u64,
    /// Collectives the gradients took (buckets).
    pub buckets: u64,
    /// Bytes of values this rank gave to the all-reduces.
    pub bytes: u64,
    /// Seconds computing the gradients (the forward and backward pass's
    /// submit, until the GPU finished it): the step's own work, not
    /// communication. Without [`DataParallel::time_phases`], the read-back
    /// is counted here too (one submit does both).
    pub backward_seconds: f64,
    /// Seconds reading the computed gradients back to the host (with
    /// [`DataParallel::time_phases`] only; else 0).
    pub readback_seconds: f64,
    /// Seconds inside the transport's all-reduces (including waiting for
    /// the slowest rank).
    pub reduce_seconds: f64,
}

/// Data-parallel training over a [`Transport`]: every rank makes one, with
/// the same settings, and calls the same methods in the same order.
pub struct DataParallel<T: Transport> {
    transport: T,
    bucket_bytes: usize,
    stats: CommStats,
    time_phases: bool,
}

impl<T: Transport> DataParallel<T> {
    /// Data parallelism over `transport`, in buckets of 4 MiB.
    pub fn new(transport: T) -> DataParallel<T> {
        DataParallel {
            transport,
            bucket_bytes: 4 << 20,
            stats: CommStats::default(),
            time_phases: false,
        }
    }

    /// Times the gradients' compute and their read-back apart in
    /// [`CommStats`], for measurements: each step then realizes and waits,
    /// then reads back in a second submit, where it otherwise computes
    /// and reads in one.
    pub fn time_phases(mut self, on: bool) -> DataParallel<T> {
        self.time_phases = on;
        self
    }

    /// Gradients are all-reduced in collectives of at most `bytes` bytes
    /// each (rounded down to whole f32 values). Panics below 4 bytes.
    #[track_caller]
    pub fn bucket_bytes(mut self, bytes: usize) -> DataParallel<T> {
        assert!(
            bytes >= 4,
            "DataParallel::bucket_bytes: a bucket must hold at least one f32 (4 bytes), got {bytes}"
        );
        self.bucket_bytes = bytes;
        self
    }

    /// This rank's number.
    pub fn rank(&self) -> usize {
        self.transport.rank()
    }

    /// How many ranks train together.
    pub fn size(&self) -> usize {
        self.transport.size()
    }

    /// The transport, for collectives of the caller's own.
    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Communication so far.
    pub fn stats(&self) -> CommStats {
        self.stats
    }

    /// Overwrites `values` on every rank with rank 0's: the parameters at
    /// the start (so that replicas initialized differently start equal),
    /// or any variables. Every rank passes the same shapes in the same
    /// order; each must be a variable.
    #[track_caller]
    pub fn broadcast_parameters(&mut self, values: &[&Tensor]) -> Result<()> {
        for v in values {
            assert!(
                v.is_variable(),
                "DataParallel::broadcast_parameters: every value must be a variable (a parameter, a buffer)"
            );
        }
        let mut flat = self.told(read_all_blocking(values))?;
        let lengths: Vec<usize> = flat.iter().map(Vec::len).collect();
        let mut all: Vec<f32> = flat.drain(..).flatten().collect();
        for bucket in all.chunks_mut(self.bucket_values()) {
            self.transport.broadcast(bucket, 0)?;
        }
        if self.rank() != 0 {
            let updates = upload(values, &all, &lengths);
            let assigned: Vec<Tensor> = values
                .iter()
                .zip(&updates)
                .map(|(v, u)| v.assign(u))
                .collect();
            self.told(realize_all_blocking(&assigned.iter().collect::<Vec<_>>()))?;
        }
        Ok(())
    }

    /// `result`, and if it is this rank's own error (not another rank's
    /// failure), the other ranks are told first, so that none waits for
    /// this one in a collective it will not join.
    fn told<R>(&mut self, result: Result<R>) -> Result<R> {
        if let Err(e) = &result
            && !matches!(e, Error::RankFailed { .. })
        {
            self.transport.fail(&e.to_string());
        }
        result
    }

    /// Computes `tensors` and reads them back: in one submit, or with
    /// [`DataParallel::time_phases`] realized and waited for first, so
    /// that the read is timed alone.
    fn compute_and_read(&mut self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        let start = Instant::now();
        if !self.time_phases {
            let values = self.told(read_all_blocking(tensors))?;
            self.stats.backward_seconds += start.elapsed().as_secs_f64();
            return Ok(values);
        }
        self.told(realize_all_blocking(tensors))?;
        // A realize returns once submitted: wait for the GPU, so that the
        // read below times the transfer alone.
        for device in distinct_devices(tensors) {
            self.told(device.synchronize())?;
        }
        let computed = Instant::now();
        let values = self.told(read_all_blocking(tensors))?;
        self.stats.backward_seconds += (computed - start).as_secs_f64();
        self.stats.readback_seconds += computed.elapsed().as_secs_f64();
        Ok(values)
    }

    fn bucket_values(&self) -> usize {
        (self.bucket_bytes / 4).max(1)
    }

    /// Sums `all` over ranks in buckets and divides by the number of ranks.
    fn reduce_mean(&mut self, all: &mut [f32]) -> Result<()> {
        let start = Instant::now();
        let per_bucket = self.bucket_values();
        for bucket in all.chunks_mut(per_bucket) {
            self.transport.all_reduce_sum(bucket)?;
            self.stats.buckets += 1;
        }
        let ranks = self.size() as f32;
        for x in all.iter_mut() {
            *x /= ranks;
        }
        self.stats.bytes += 4 * all.len() as u64;
        self.stats.reduce_seconds += start.elapsed().as_secs_f64();
        self.stats.reductions += 1;
        Ok(())
    }

    /// The mean over ranks of every rank's `grads` (each rank's own
    /// gradients, or its gradients accumulated over micro-batches), as
    /// new tensors of the same shapes and dtypes on this rank's devices:
    /// realized and read back in one submit, all-reduced in buckets.
    pub fn all_reduce_mean(&mut self, grads: &[Tensor]) -> Result<Vec<Tensor>> {
        let refs: Vec<&Tensor> = grads.iter().collect();
        let values = self.compute_and_read(&refs)?;
        let lengths: Vec<usize> = values.iter().map(Vec::len).collect();
        let mut all: Vec<f32> = values.into_iter().flatten().collect();
        self.reduce_mean(&mut all)?;
        Ok(upload(&refs, &all, &lengths))
    }

    /// One data-parallel step: this rank's gradients of `loss` with respect
    /// to `params` and the loss, read back in one submit, averaged over the
    /// ranks (the loss in the same collective), and `optimizer`'s update
    /// of the averaged gradients, realized. Returns the loss averaged over
    /// the ranks: the loss of the global batch when each rank's loss is a
    /// mean over its shard.
    #[track_caller]
    pub fn step(
        &mut self,
        optimizer: &mut impl Optimizer,
        loss: &Tensor,
        params: &[&Tensor],
    ) -> Result<f32> {
        assert!(
            loss.numel() == 1,
            "DataParallel::step: the loss must be a scalar, got shape {:?}",
            loss.shape()
        );
        let grads = crate::grad(loss, params);
        let mut read: Vec<&Tensor> = grads.iter().collect();
        read.push(loss);
        let values = self.compute_and_read(&read)?;
        let lengths: Vec<usize> = values.iter().map(Vec::len).collect();
        let mut all: Vec<f32> = values.into_iter().flatten().collect();
        self.reduce_mean(&mut all)?;
        let mean_loss = all[all.len() - 1];
        let grad_refs: Vec<&Tensor> = grads.iter().collect();
        let averaged = upload(&grad_refs, &all, &lengths[..grads.len()]);
        let updates = self.told(optimizer.step(params, &averaged))?;
        self.told(realize_all_blocking(&updates.iter().collect::<Vec<_>>()))?;
        Ok(mean_loss)
    }

    /// Checks that every rank holds the same bits in `values` (the
    /// parameters): a hash of them is compared with rank 0's. An error
    /// names the ranks that differ.
    pub fn check_in_sync(&mut self, values: &[&Tensor]) -> Result<()> {
        let bits: Vec<Vec<f32>> = self.told(read_all_blocking(values))?;
        let hash = bits
            .iter()
            .flatten()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
                (h ^ u64::from(x.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
            });
        // Four 16-bit pieces, each exact in f32.
        let own: Vec<f32> = (0..4)
            .map(|i| ((hash >> (16 * i)) & 0xffff) as f32)
            .collect();
        let mut zero = own.clone();
        self.transport.broadcast(&mut zero, 0)?;
        // Which ranks differ: a one-hot vector summed over ranks.
        let mut differs = vec![0.0f32; self.size()];
        differs[self.rank()] = if own == zero { 0.0 } else { 1.0 };
        self.transport.all_reduce_sum(&mut differs)?;
        let ranks: Vec<usize> = (0..self.size()).filter(|&r| differs[r] != 0.0).collect();
        if ranks.is_empty() {
            Ok(())
        } else {
            Err(Error::Transport(format!(
                "the replicas have diverged: the values of rank(s) {ranks:?} differ from rank 0's"
            )))
        }
    }
}

/// The devices `tensors` live on, each once.
fn distinct_devices(tensors: &[&Tensor]) -> Vec<crate::Device> {
    let mut devices: Vec<crate::Device> = Vec::new();
    for t in tensors {
        if !devices.contains(t.device()) {
            devices.push(t.device().clone());
        }
    }
    devices
}

/// `values`' new contents from the flat `all`, cut at `lengths`: tensors
/// of their shapes and dtypes on their devices.
fn upload(like: &[&Tensor], all: &[f32], lengths: &[usize]) -> Vec<Tensor> {
    let mut offset = 0;
    like.iter()
        .zip(lengths)
        .map(|(t, &n)| {
            let part = all[offset..offset + n].to_vec();
            offset += n;
            let value = Tensor::from_vec(t.device(), part, t.shape().clone());
            match t.dtype() {
                crate::DType::F32 => value,
                dtype => value.to_dtype(dtype),
            }
        })
        .collect()
}
