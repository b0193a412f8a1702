//! Normalization: layer_norm, rms_norm and batch_norm, compositions of
//! reductions and elementwise ops, so their gradients (and gradients of
//! gradients, and tangents) come from those ops' rules.

use crate::shape::Shape;
use crate::tensor::Tensor;

/// The last `count` axes of a rank-`rank` tensor.
#[track_caller]
fn trailing_axes(op: &str, shape: &Shape, count: usize) -> Vec<usize> {
    assert!(
        count >= 1 && count <= shape.rank(),
        "{op}: cannot normalize over the last {count} axes of shape {shape:?}"
    );
    (shape.rank() - count..shape.rank()).collect()
}

/// Checks an affine parameter's shape against the normalized axes.
#[track_caller]
fn check_affine(op: &str, what: &str, p: Option<&Tensor>, want: &[usize], x: &Shape) {
    if let Some(p) = p {
        assert!(
            p.dims() == want,
            "{op}: {what} must be {want:?} for input {x:?}, got {:?}",
            p.shape()
        );
    }
}

fn affine(y: Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Tensor {
    let y = match weight {
        Some(w) => &y * w,
        None => y,
    };
    match bias {
        Some(b) => &y + b,
        None => y,
    }
}

impl Tensor {
    /// Layer normalization over the last `trailing` axes (PyTorch's
    /// `normalized_shape`): (x − mean) / √(var + ε),
    /// with the biased variance, then · weight + bias (each of the normalized
    /// axes' shape, optional).
    #[track_caller]
    pub fn layer_norm(
        &self,
        trailing: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Tensor {
        let over = trailing_axes("layer_norm", self.shape(), trailing);
        let want = &self.dims()[self.rank() - trailing..];
        check_affine("layer_norm", "weight", weight, want, self.shape());
        check_affine("layer_norm", "bias", bias, want, self.shape());
        let centered = self - &self.mean_axes_keepdim(&over);
        let var = centered.square().mean_axes_keepdim(&over);
        affine(&centered * &var.add_scalar(eps).powf(-0.5), weight, bias)
    }

    /// RMS normalization over the last `trailing` axes: x / √(mean(x²) + ε) · weight.
    #[track_caller]
    pub fn rms_norm(&self, trailing: usize, weight: Option<&Tensor>, eps: f32) -> Tensor {
        let over = trailing_axes("rms_norm", self.shape(), trailing);
        let want = &self.dims()[self.rank() - trailing..];
        check_affine("rms_norm", "weight", weight, want, self.shape());
        let ms = self.square().mean_axes_keepdim(&over);
        affine(self * &ms.add_scalar(eps).powf(-0.5), weight, None)
    }

    /// Group normalization of `[batch, channels, ...]`: the channels split
    /// into `groups` groups, each group of each example normalized by its
    /// own mean and biased variance, (x − mean) / √(var + ε), then
    /// · weight + bias per channel (each `[channels]`, optional). A
    /// composition of reshapes and [`Tensor::layer_norm`]: its rules are theirs.
    #[track_caller]
    pub fn group_norm(
        &self,
        groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Tensor {
        assert!(
            self.rank() >= 2,
            "group_norm: input must be [batch, channels, ...], got {:?}",
            self.shape()
        );
        let (n, c) = (self.dims()[0], self.dims()[1]);
        assert!(
            groups >= 1 && c % groups == 0,
            "group_norm: {c} channels of {:?} do not divide into {groups} groups",
            self.shape()
        );
        check_affine("group_norm", "weight", weight, &[c], self.shape());
        check_affine("group_norm", "bias", bias, &[c], self.shape());
        let per_group = self.numel() / n.max(1) / groups;
        let y = self
            .reshape([n, groups, per_group])
            .layer_norm(1, None, None, eps)
            .reshape(self.shape().clone());
        let mut per_channel = vec![c];
        per_channel.extend(vec![1; self.rank() - 2]);
        let y = match weight {
            Some(w) => &y * &w.reshape(per_channel.clone()),
            None => y,
        };
        match bias {
            Some(b) => &y + &b.reshape(per_channel),
            None => y,
        }
    }

    /// Batch normalization of `[batch, channels, ...]` per channel (axis 1).
    ///
    /// In training ([`BatchNormMode::Train`]) the batch's own mean and biased variance normalize
    /// it, and the returned updates move the running averages (variables of
    /// shape `[channels]`): r ← (1 − momentum)·r + momentum·batch statistic,
    /// with the unbiased variance, as PyTorch does. Realize those updates
    /// with the training step. In evaluation the running averages normalize
    /// and nothing is updated.
    #[track_caller]
    pub fn batch_norm(
        &self,
        running_mean: &Tensor,
        running_var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        mode: BatchNormMode,
        eps: f32,
    ) -> (Tensor, Vec<Tensor>) {
        assert!(
            self.rank() >= 2,
            "batch_norm: input must be [batch, channels, ...], got {:?}",
            self.shape()
        );
        let c = self.dims()[1];
        for (what, t) in [
            ("running_mean", Some(running_mean)),
            ("running_var", Some(running_var)),
            ("weight", weight),
            ("bias", bias),
        ] {
            check_affine("batch_norm", what, t, &[c], self.shape());
        }
        // Parameters of shape [C] broadcast as [C, 1, ...] against [N, C, ...].
        let mut per_channel = vec![c];
        per_channel.extend(vec![1; self.rank() - 2]);
        let channel = |t: &Tensor| t.reshape(per_channel.clone());
        let over: Vec<usize> = (0..self.rank()).filter(|&a| a != 1).collect();
        let (y, updates) = match mode {
            BatchNormMode::Train { momentum } => {
                let count = over.iter().map(|&a| self.dims()[a]).product::<usize>();
                assert!(
                    count > 1,
                    "batch_norm: training needs more than one value per channel, got shape {:?}",
                    self.shape()
                );
                let mean = self.mean_axes_keepdim(&over);
                let centered = self - &mean;
                let var = centered.square().mean_axes_keepdim(&over);
                let y = &centered * &var.add_scalar(eps).powf(-0.5);
                let unbiased = var.reshape([c]).detach() * (count as f32 / (count - 1) as f32);
                let update = |r: &Tensor, batch: &Tensor| {
                    r.assign(&(&(r * (1.0 - momentum)) + &(batch * momentum)))
                };
                let updates = vec![
                    update(running_mean, &mean.reshape([c]).detach()),
                    update(running_var, &unbiased),
                ];
                (y, updates)
            }
            BatchNormMode::Eval => {
                let y = &(self - &channel(running_mean))
                    * &channel(running_var).add_scalar(eps).powf(-0.5);
                (y, Vec::new())
            }
        };
        let weight = weight.map(channel);
        let bias = bias.map(channel);
        (affine(y, weight.as_ref(), bias.as_ref()), updates)
    }
}

/// Whether [`Tensor::batch_norm`] uses the batch's statistics (and updates
/// the running averages by `momentum`) or the running averages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchNormMode {
    /// Normalize by the batch's statistics and move the running averages by `momentum`.
    Train {
        /// How far each batch moves the running averages (PyTorch: 0.1).
        momentum: f32,
    },
    /// Normalize by the running averages.
    Eval,
}
