//! Status words: how a kernel reports a fault it cannot compute past (an
//! index computed on the GPU that is out of range), since a shader cannot
//! raise an error. The scheduler zeroes two u32 words before the kernels
//! that bind them ([`Buf::Status`](crate::kernel::Buf)); the submit copies
//! them into mappable buffers with the rest of its work, and the realize,
//! once the device is done, fails with the first nonzero word's meaning.
//! A plan without such kernels reads nothing and waits for nothing more.

use std::sync::Arc;

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::graph::{Node, Op};

use super::schedule::Plan;

/// A plan's status words on their way back.
#[derive(Default)]
pub(super) struct Staged {
    /// (words, staging copy, meaning).
    words: Vec<(wgpu::Buffer, wgpu::Buffer, String)>,
    /// The nodes the plan gave values, should a check fail.
    kept: Vec<Arc<Node>>,
}

/// Staging buffers for the plan's status words.
pub(super) fn stage(gpu: &Gpu, plan: &Plan) -> Staged {
    if plan.checks.is_empty() {
        return Staged::default();
    }
    let words = plan
        .checks
        .iter()
        .map(|(words, meaning)| {
            (
                words.buffer().clone(),
                super::take_staging(gpu, 8),
                meaning.clone(),
            )
        })
        .collect();
    Staged {
        words,
        kept: plan.kept.clone(),
    }
}

/// The copies of the status words into their staging buffers.
pub(super) fn copies(staged: &Staged) -> Vec<(&wgpu::Buffer, &wgpu::Buffer, u64)> {
    staged
        .words
        .iter()
        .map(|(src, dst, _)| (src, dst, 8))
        .collect()
}

/// Reads the status words back (after the submit that set them): the
/// first nonzero one is the realize's error. Then every value the plan
/// computed is marked failed, so that no later read returns it: the
/// kernels ran to the end (with such an index clamped), and a variable
/// updated in the same realize holds a value made from it, so it is
/// marked too (re-create or reload it).
pub(super) async fn verdict(gpu: &Gpu, staged: Staged) -> Result<()> {
    let mut found = None;
    for (_, buffer, meaning) in &staged.words {
        super::map_read(gpu, buffer).await?;
        let words: [u32; 2] = {
            let view = buffer
                .get_mapped_range(..8)
                .map_err(|e| Error::Readback(e.to_string()))?;
            let words = bytemuck::cast_slice::<u8, u32>(&view);
            [words[0], words[1]]
        };
        buffer.unmap();
        if words[0] != 0 && found.is_none() {
            found = Some(meaning.replace("{value}", &words[1].to_string()));
        }
    }
    let mut pool = gpu.staging.lock().unwrap_or_else(|e| e.into_inner());
    for (_, buffer, _) in staged.words {
        pool.entry(buffer.size()).or_default().push(buffer);
    }
    drop(pool);
    let Some(message) = found else {
        return Ok(());
    };
    let error = Error::IndexOutOfRange(message);
    for node in &staged.kept {
        *node.failed.borrow_mut() = Some(error.clone());
        if matches!(node.op, Op::Assign) {
            *node.inputs()[0].failed.borrow_mut() = Some(error.clone());
        }
    }
    Err(error)
}
