//! Neural-network building blocks, all compositions of primitive ops (so
//! their gradients, and gradients of gradients, come for free).

use crate::shape::Shape;
use crate::tensor::Tensor;

impl Tensor {
    /// softmax along `axis`, computed as exp(x − max) / Σ exp(x − max) so
    /// that large logits do not overflow. The max is detached: the result does
    /// not depend on the shift, so no gradient needs to flow through it.
    #[track_caller]
    pub fn softmax(&self, axis: usize) -> Tensor {
        self.shape().check_axis("softmax", axis);
        let shifted = self - &self.max_axes_keepdim(&[axis]).detach();
        let e = shifted.exp();
        &e / &e.sum_axes_keepdim(&[axis])
    }

    /// log(softmax(x)) along `axis`, as (x − max) − log Σ exp(x − max):
    /// finite and accurate for logits of any size.
    #[track_caller]
    pub fn log_softmax(&self, axis: usize) -> Tensor {
        self.shape().check_axis("log_softmax", axis);
        let shifted = self - &self.max_axes_keepdim(&[axis]).detach();
        &shifted - &shifted.exp().sum_axes_keepdim(&[axis]).log()
    }

    /// Mean cross-entropy of `[batch, classes]` logits against one-hot (or
    /// soft) target probabilities of the same shape.
    #[track_caller]
    pub fn cross_entropy_with_probs(&self, targets: &Tensor) -> Tensor {
        assert!(
            self.rank() == 2 && targets.shape() == self.shape(),
            "cross_entropy: logits {:?} and targets {:?} must both be [batch, classes]",
            self.shape(),
            targets.shape()
        );
        let batch = self.dims()[0];
        -(&(targets * &self.log_softmax(1)).sum() * (1.0 / batch as f32))
    }

    /// Mean cross-entropy of `[batch, classes]` logits against integer class labels.
    #[track_caller]
    pub fn cross_entropy(&self, labels: &[usize]) -> Tensor {
        assert!(
            self.rank() == 2,
            "cross_entropy: logits must be [batch, classes], got {:?}",
            self.shape()
        );
        let (batch, classes) = (self.dims()[0], self.dims()[1]);
        assert_eq!(
            labels.len(),
            batch,
            "cross_entropy: {} labels for a batch of {batch}",
            labels.len()
        );
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
            panic!(
                "cross_entropy: label {l} (at {i}) is not below the class count {classes} of logits {:?}",
                self.shape()
            );
        }
        self.cross_entropy_with_probs(&one_hot(self.device(), labels, classes))
    }

    /// Mean squared error between two tensors of the same shape.
    #[track_caller]
    pub fn mse(&self, target: &Tensor) -> Tensor {
        assert_eq!(self.shape(), target.shape(), "mse: shapes differ");
        (self - target).square().mean()
    }
}

/// `[labels.len(), classes]` one-hot rows.
#[track_caller]
pub fn one_hot(device: &crate::Device, labels: &[usize], classes: usize) -> Tensor {
    let mut data = vec![0.0; labels.len() * classes];
    for (row, &l) in labels.iter().enumerate() {
        assert!(
            l < classes,
            "one_hot: label {l} is not below the class count {classes}"
        );
        data[row * classes + l] = 1.0;
    }
    Tensor::from_vec(device, data, Shape::new(&[labels.len(), classes]))
}
