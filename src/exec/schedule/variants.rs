//! Autotune's choice among a family's variants (see `exec/tune.rs`).

use super::Scheduler;
use crate::device::Gpu;
use crate::error::Result;
use crate::graph::family::Family;
use crate::kernel::{Lowering, Target};
use crate::shape::Shape;
// Timing runs natively only (see `fastest`).
#[cfg(not(target_arch = "wasm32"))]
use crate::{
    error::Error,
    exec::pool::{BufferPool, Storage},
    kernel::Buf,
};

/// The fastest of `variants` (lowerings of one node: output `out`, inputs
/// `inputs`), each run on scratch buffers in submits of its own and timed
/// by the wall clock: a warm-up each, then four rounds that run every
/// variant once, the best time of each kept (rounds interleave the
/// variants, so a machine whose speed drifts slows them alike). Scratch
/// buffers hold no value anything reads, and the plan being built has not
/// been submitted, so these submits disturb nothing. Natively only: a
/// browser cannot wait for the GPU here, so there the first variant is used.
pub(super) fn fastest(
    gpu: &Gpu,
    variants: &[crate::kernel::Lowering],
    out: &Shape,
    inputs: &[&Shape],
) -> Result<usize> {
    #[cfg(target_arch = "wasm32")]
    {
        let _ = (gpu, variants, out, inputs);
        Ok(0)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        // One scheduler (scratch buffers and dispatches) per variant. The
        // scratch buffers come from a pool of their own: not the device's
        // memory (its statistics and peak), and freed when timing ends.
        let scratch = std::sync::Arc::new(std::sync::Mutex::new(BufferPool::default()));
        let mut runs = Vec::with_capacity(variants.len());
        for lowering in variants {
            let mut s = Scheduler::new(gpu);
            s.pool = scratch.clone();
            let srcs: Vec<Storage> = inputs.iter().map(|x| s.alloc(x)).collect::<Result<_>>()?;
            let output = s.alloc(out)?;
            let temps: Vec<Storage> = lowering
                .temps
                .iter()
                .map(|&n| s.alloc(&Shape::new(&[n])))
                .collect::<Result<_>>()?;
            // Scratch status words: timing reads no verdict.
            let status = s.alloc(&Shape::new(&[2]))?;
            for call in lowering.kernels.clone() {
                s.run(call, &|b| match b {
                    Buf::Input(i) => (&srcs[i], inputs[i].numel()),
                    Buf::Output => (&output, out.numel()),
                    Buf::Temp(t) => (&temps[t], lowering.temps[t]),
                    Buf::Status => (&status, 2),
                });
            }
            s.compile_pipelines();
            s.plan.timing = true;
            runs.push((s, srcs, output, temps));
        }
        let time = |s: &Scheduler| -> Result<f64> {
            let start = std::time::Instant::now();
            crate::exec::submit(gpu, &s.plan, &[], None);
            let _in_use = crate::device::teardown::in_use();
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Validation(e.to_string()))?;
            Ok(start.elapsed().as_secs_f64())
        };
        for run in &runs {
            time(&run.0)?;
        }
        let mut best = vec![f64::INFINITY; runs.len()];
        for _ in 0..4 {
            for (b, run) in best.iter_mut().zip(&runs) {
                *b = b.min(time(&run.0)?);
            }
        }
        for (i, t) in best.iter().enumerate() {
            log::info!(
                "webgrad: autotune variant {i} of {out:?} <- {inputs:?}: {:.3} ms",
                t * 1e3
            );
        }
        let fastest = (0..best.len())
            .min_by(|&a, &b| best[a].total_cmp(&best[b]))
            .unwrap_or(0);
        Ok(fastest)
    }
}

impl Scheduler<'_> {
    /// Which of a family node's `variants` runs: forced by the user, the
    /// family's untimed choice in deterministic mode, the tuned choice, or
    /// (the first time, in predictions and under a memory budget) the
    /// first; otherwise they are timed now (`fastest`) and the choice kept.
    pub(super) fn choose_variant(
        &mut self,
        f: &dyn Family,
        variants: &[Lowering],
        shape: &Shape,
        shapes: &[&Shape],
        dtypes: &[crate::dtype::DType],
        target: Target,
    ) -> Result<usize> {
        if variants.len() == 1 {
            return Ok(0);
        }
        // Kernels reading 16-bit inputs are timed apart (f32 keys as
        // before), and f16 read natively apart from f16 decoded: their
        // kernels differ, and so may the fastest variant.
        let mut key = format!("{} {shape:?} <- {shapes:?}", f.name());
        if dtypes.iter().any(|&d| d != crate::dtype::DType::F32) {
            key += &format!(" {dtypes:?}");
        }
        if self.gpu.native_f16 && dtypes.contains(&crate::dtype::DType::F16) {
            key += " native";
        }
        let tuning = || self.gpu.tuning.lock().unwrap_or_else(|e| e.into_inner());
        let known = tuning().get(&key);
        let forced = *self
            .gpu
            .switches
            .forced_variant
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(forced) = forced {
            return Ok(forced.min(variants.len() - 1));
        }
        Ok(match known {
            // Deterministic mode: the family's untimed choice (its tuning
            // holds no file's choices either).
            _ if self.gpu.deterministic => f
                .untimed_variant(shape, shapes, target)
                .min(variants.len() - 1),
            Some(i) if i < variants.len() => i,
            // A prediction assumes the first variant until one is timed;
            // under a memory budget nothing is timed, so the realize runs
            // what was predicted.
            _ if self.dry
                || self
                    .gpu
                    .switches
                    .budget
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some() =>
            {
                0
            }
            // The family's first guess the first time: a process that
            // computes one gradient compiles that variant only, not all of
            // them (cold start). (Every product of those shapes in this
            // realize.)
            _ if self.first_sights.contains(&key) => 0,
            _ if tuning().first_sight(&key) => {
                self.first_sights.insert(key);
                0
            }
            _ => {
                let i = fastest(self.gpu, variants, shape, shapes)?;
                tuning().set(key, i);
                i
            }
        })
    }
}
