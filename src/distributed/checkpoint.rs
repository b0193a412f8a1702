//! Checkpoints of a data-parallel run: rank 0 writes one file, and every
//! rank resumes from it (rank 0 reads it and the values are broadcast, so
//! the other ranks need not see the file).

use std::path::Path;

use super::{DataParallel, Transport};
use crate::error::Result;
use crate::optim::Optimizer;
use crate::tensor::Tensor;

/// The step count as two f32 values, each exact (24 bits each).
fn steps_tensor(like: &Tensor, steps: usize) -> Result<Tensor> {
    let (hi, lo) = (steps >> 24, steps & 0xff_ffff);
    assert!(
        hi < 1 << 24,
        "a checkpoint stores at most 2⁴⁸ optimizer steps, got {steps}"
    );
    Tensor::from_vec(like.device(), vec![hi as f32, lo as f32], [2]).to_variable()
}

/// `named` (parameters and buffers, by name), the optimizer's state for
/// `params` and its step count, as one list of named variables.
fn everything<S: AsRef<str>>(
    named: &[(S, &Tensor)],
    optimizer: &mut impl Optimizer,
    params: &[&Tensor],
    steps: &Tensor,
) -> Result<Vec<(String, Tensor)>> {
    let mut all: Vec<(String, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.as_ref().to_string(), (*t).clone()))
        .collect();
    all.extend(optimizer.named_state(params)?);
    all.push(("optimizer.steps".to_string(), steps.clone()));
    Ok(all)
}

impl<T: Transport> DataParallel<T> {
    /// Rank 0 writes `named` (the model's `named_state()`), `optimizer`'s
    /// state for `params` and its step count to the .safetensors file
    /// `path`; the other ranks write nothing. Every rank calls it; if rank
    /// 0 cannot write, every rank returns an error (rank 0 its own, the
    /// others [`crate::Error::RankFailed`] naming rank 0).
    pub fn save_checkpoint<S: AsRef<str>>(
        &mut self,
        path: impl AsRef<Path>,
        named: &[(S, &Tensor)],
        optimizer: &mut impl Optimizer,
        params: &[&Tensor],
    ) -> Result<()> {
        let mut ok = [1.0f32];
        if self.rank() == 0 {
            let steps = steps_tensor(params[0], optimizer.steps())?;
            let all = everything(named, optimizer, params, &steps)?;
            let refs: Vec<(&str, &Tensor)> = all.iter().map(|(n, t)| (n.as_str(), t)).collect();
            if let Err(e) = crate::io::save_blocking(path, &refs) {
                self.transport
                    .fail(&format!("could not write the checkpoint: {e}"));
                return Err(e);
            }
        }
        // No rank goes on before the file exists.
        self.transport.broadcast(&mut ok, 0)
    }

    /// Every rank takes up the checkpoint rank 0 reads from `path` (written
    /// by [`DataParallel::save_checkpoint`] with the same names and
    /// parameters): `named`'s values, `optimizer`'s state for `params` and
    /// its step count, so that training goes on exactly as the saved run
    /// would have. If rank 0 cannot read it, every rank returns an error.
    pub fn load_checkpoint<S: AsRef<str>>(
        &mut self,
        path: impl AsRef<Path>,
        named: &[(S, &Tensor)],
        optimizer: &mut impl Optimizer,
        params: &[&Tensor],
    ) -> Result<()> {
        let steps = steps_tensor(params[0], 0)?;
        let all = everything(named, optimizer, params, &steps)?;
        let refs: Vec<(&str, &Tensor)> = all.iter().map(|(n, t)| (n.as_str(), t)).collect();
        if self.rank() == 0
            && let Err(e) = crate::io::load(path, &refs)
        {
            self.transport
                .fail(&format!("could not read the checkpoint: {e}"));
            return Err(e);
        }
        let values: Vec<&Tensor> = refs.iter().map(|(_, t)| *t).collect();
        self.broadcast_parameters(&values)?;
        let count = steps.to_vec_blocking()?;
        optimizer.set_steps(((count[0] as usize) << 24) | count[1] as usize);
        Ok(())
    }
}
