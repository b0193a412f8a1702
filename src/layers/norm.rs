//! Normalization layers over channels: [`BatchNorm2d`] and [`GroupNorm`].

use crate::graph::sync::{SyncCell, SyncFlag};

use super::Module;
use crate::device::Device;
use crate::error::Result;
use crate::ops::norm::BatchNormMode;
use crate::tensor::Tensor;

/// Batch normalization of `[batch, channels, h, w]` per channel, with a
/// learned scale and shift and running averages of the statistics
/// (PyTorch's `BatchNorm2d`: momentum 0.1, ε 1e-5). In training (the
/// default) each forward pass normalizes by its batch's statistics and
/// records updates of the running averages, which
/// [`Module::take_buffer_updates`] hands over to be realized with the
/// step (the latest pass's: one not taken before the next pass is
/// dropped); in evaluation ([`Module::set_training`]`(false)`) the running
/// averages normalize and nothing is recorded.
pub struct BatchNorm2d {
    /// The learned weight (a GPU variable).
    pub weight: Tensor,
    /// The learned bias (a GPU variable).
    pub bias: Tensor,
    /// The running average of the batch means (a buffer).
    pub running_mean: Tensor,
    /// The running average of the batch variances, unbiased (a buffer).
    pub running_var: Tensor,
    /// How far each batch moves the running averages.
    pub momentum: f32,
    /// ε, added to the variance before the square root.
    pub eps: f32,
    training: SyncFlag,
    updates: SyncCell<Vec<Tensor>>,
}

impl BatchNorm2d {
    /// Scale 1, shift 0, running mean 0 and variance 1, for `channels` channels.
    #[track_caller]
    pub fn new(device: &Device, channels: usize) -> Result<BatchNorm2d> {
        assert!(channels >= 1, "BatchNorm2d::new: needs at least 1 channel");
        Ok(BatchNorm2d {
            weight: Tensor::ones(device, [channels]).to_variable()?,
            bias: Tensor::zeros(device, [channels]).to_variable()?,
            running_mean: Tensor::zeros(device, [channels]).to_variable()?,
            running_var: Tensor::ones(device, [channels]).to_variable()?,
            momentum: 0.1,
            eps: 1e-5,
            training: SyncFlag::new(true),
            updates: SyncCell::new(Vec::new()),
        })
    }

    /// `x: [batch, channels, ...]` normalized, scaled and shifted.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        assert!(
            x.rank() == 4,
            "BatchNorm2d: input must be [batch, channels, height, width], got {:?}",
            x.shape()
        );
        let mode = if self.training.get() {
            BatchNormMode::Train {
                momentum: self.momentum,
            }
        } else {
            BatchNormMode::Eval
        };
        let (y, updates) = x.batch_norm(
            &self.running_mean,
            &self.running_var,
            Some(&self.weight),
            Some(&self.bias),
            mode,
            self.eps,
        );
        // The latest pass's updates only: a loop that never takes them
        // (`minimize` alone) must not keep every step's graph alive.
        *self.updates.borrow_mut() = updates;
        y
    }
}

impl Module for BatchNorm2d {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }
    fn named_buffers(&self) -> Vec<(String, &Tensor)> {
        vec![
            ("running_mean".into(), &self.running_mean),
            ("running_var".into(), &self.running_var),
        ]
    }
    fn set_training(&self, training: bool) {
        self.training.set(training);
    }
    fn take_buffer_updates(&self) -> Vec<Tensor> {
        std::mem::take(&mut *self.updates.borrow_mut())
    }
}

/// Group normalization (Wu & He): the channels of `[batch, channels, ...]`
/// split into `groups` groups, each group of each example normalized by
/// its own mean and biased variance, then a learned per-channel scale and
/// shift (PyTorch's `GroupNorm`, ε 1e-5). Independent of the batch, so the
/// same in training and evaluation.
pub struct GroupNorm {
    /// Channels split into this many independent groups.
    pub groups: usize,
    /// The learned weight (a GPU variable).
    pub weight: Tensor,
    /// The learned bias (a GPU variable).
    pub bias: Tensor,
    /// ε, added to the variance before the square root.
    pub eps: f32,
}

impl GroupNorm {
    /// Scale 1 and shift 0 for `channels` channels in `groups` groups.
    #[track_caller]
    pub fn new(device: &Device, groups: usize, channels: usize) -> Result<GroupNorm> {
        assert!(
            groups >= 1 && channels >= 1 && channels.is_multiple_of(groups),
            "GroupNorm::new: {channels} channels do not divide into {groups} groups"
        );
        Ok(GroupNorm {
            groups,
            weight: Tensor::ones(device, [channels]).to_variable()?,
            bias: Tensor::zeros(device, [channels]).to_variable()?,
            eps: 1e-5,
        })
    }

    /// `x: [batch, channels, ...]` normalized, scaled and shifted.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.group_norm(self.groups, Some(&self.weight), Some(&self.bias), self.eps)
    }
}

impl Module for GroupNorm {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }
}
