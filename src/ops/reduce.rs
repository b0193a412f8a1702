//! Reductions over any set of axes: sum, mean, max, min.
//!
//! The graph node always keeps the reduced axes (size 1); `keepdim = false`
//! is a reshape on top. Mean is sum times 1/count, so it needs no rule of its own.

use crate::graph::Op;
pub use crate::graph::ReduceOp;
use crate::shape::{Shape, reduced_shape};
use crate::tensor::Tensor;

impl Tensor {
    #[track_caller]
    fn reduce(&self, op: ReduceOp, axes: &[usize], keepdim: bool) -> Tensor {
        self.reduce_named(op, axes, keepdim, op.name())
    }

    /// [`Tensor::reduce`] with the public op's name for messages (mean is a sum).
    #[track_caller]
    fn reduce_named(&self, op: ReduceOp, axes: &[usize], keepdim: bool, name: &str) -> Tensor {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        if let Some(w) = axes.windows(2).find(|w| w[0] == w[1]) {
            // numpy's rule: a repeated axis is a mistake, not a no-op.
            panic!(
                "{name}: axis {} appears more than once in {axes:?} (shape {:?})",
                w[0],
                self.shape()
            );
        }
        let kept = reduced_shape(name, self.shape(), &axes);
        // numpy's rule: the max or min of nothing is an error (a sum of
        // nothing is 0, a mean NaN).
        if op != ReduceOp::Sum
            && let Some(&a) = axes.iter().find(|&&a| self.dims()[a] == 0)
        {
            panic!(
                "{name}: cannot reduce over the empty axis {a} of shape {:?}",
                self.shape()
            );
        }
        let reduced = if axes.is_empty() {
            self.clone()
        } else {
            Tensor::record(
                Op::Reduce {
                    op,
                    axes: axes.clone(),
                },
                &[self],
                kept,
            )
        };
        if keepdim {
            reduced
        } else {
            let dims: Vec<usize> = self
                .dims()
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect();
            reduced.reshape(dims)
        }
    }

    fn all_axes(&self) -> Vec<usize> {
        (0..self.rank()).collect()
    }

    /// Sum of all elements, as a 0-d tensor.
    pub fn sum(&self) -> Tensor {
        self.reduce(ReduceOp::Sum, &self.all_axes(), false)
    }
    /// Sum over `axes`, which are removed from the shape.
    #[track_caller]
    pub fn sum_axes(&self, axes: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Sum, axes, false)
    }
    /// Sum over `axes`, which stay in the shape with size 1.
    #[track_caller]
    pub fn sum_axes_keepdim(&self, axes: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Sum, axes, true)
    }
    /// Mean of all elements.
    pub fn mean(&self) -> Tensor {
        self.mean_over(&self.all_axes(), false)
    }
    /// Mean over `axes`, which are removed from the shape.
    #[track_caller]
    pub fn mean_axes(&self, axes: &[usize]) -> Tensor {
        self.mean_over(axes, false)
    }
    /// Mean over `axes`, which stay in the shape with size 1.
    #[track_caller]
    pub fn mean_axes_keepdim(&self, axes: &[usize]) -> Tensor {
        self.mean_over(axes, true)
    }
    #[track_caller]
    fn mean_over(&self, axes: &[usize], keepdim: bool) -> Tensor {
        let sum = self.reduce_named(ReduceOp::Sum, axes, keepdim, "mean");
        // The sum checked the axes (in range, none repeated). Divided by
        // the count, not multiplied by its rounded reciprocal, so that the
        // mean of equal values is that value (in f64 too: the reference
        // must not see a difference f32 rounds away). The mean of nothing
        // is 0 / 0 = NaN, as in numpy.
        let count: usize = axes.iter().map(|&a| self.dims()[a]).product();
        sum / count as f32
    }
    /// Largest element.
    pub fn max(&self) -> Tensor {
        self.reduce(ReduceOp::Max, &self.all_axes(), false)
    }
    /// Largest element over `axes`, which are removed from the shape.
    #[track_caller]
    pub fn max_axes(&self, axes: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Max, axes, false)
    }
    /// Largest element over `axes`, which stay in the shape with size 1.
    #[track_caller]
    pub fn max_axes_keepdim(&self, axes: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Max, axes, true)
    }
    /// Smallest element.
    pub fn min(&self) -> Tensor {
        self.reduce(ReduceOp::Min, &self.all_axes(), false)
    }
    /// Smallest element over `axes`, which are removed from the shape.
    #[track_caller]
    pub fn min_axes(&self, axes: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Min, axes, false)
    }
    /// Smallest element over `axes`, which stay in the shape with size 1.
    #[track_caller]
    pub fn min_axes_keepdim(&self, axes: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Min, axes, true)
    }

    /// Sums a broadcast tensor back down to `shape` (the un-broadcast that
    /// reverse mode applies to the adjoint of every broadcast input).
    #[track_caller]
    pub fn sum_to(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = &shape.into();
        if self.shape() == shape {
            return self.clone();
        }
        assert!(
            crate::shape::can_broadcast_to(shape, self.shape()),
            "sum_to: {shape:?} does not broadcast to {:?}",
            self.shape()
        );
        let axes = crate::shape::broadcast_axes(shape, self.shape());
        self.sum_axes_keepdim(&axes).reshape(shape.clone())
    }
}
