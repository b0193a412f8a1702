//! Movement ops: reshape, permute/transpose, broadcast_to, slice, pad.
//! The scheduler fuses broadcasts into loads, so these stay graph variants.

use crate::graph::Op;
use crate::shape::{Shape, can_broadcast_to, check_permutation};
use crate::tensor::Tensor;

impl Tensor {
    /// Same elements (row-major), new shape.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        assert_eq!(
            shape.numel(),
            self.numel(),
            "reshape: cannot view a tensor of shape {:?} as {shape:?}",
            self.shape()
        );
        if &shape == self.shape() {
            return self.clone();
        }
        Tensor::record(Op::Reshape, &[self], shape)
    }

    /// Reorders the axes: output axis `i` is input axis `perm[i]`.
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        check_permutation("permute", self.shape(), perm);
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.clone();
        }
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims()[p]).collect();
        Tensor::record(Op::Permute(perm.to_vec()), &[self], Shape::new(&dims))
    }

    /// Swaps two axes.
    #[track_caller]
    pub fn transpose(&self, a: usize, b: usize) -> Tensor {
        self.shape().check_axis("transpose", a);
        self.shape().check_axis("transpose", b);
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The tensor this one transposes in its last two axes, if it is such a
    /// transpose (of any rank ≥ 2) whose input can still be read without
    /// recomputation: for ops (matmul) that read a transposed operand in place.
    pub(crate) fn swapped_last_axes_of(&self) -> Option<Tensor> {
        let Op::Permute(perm) = &self.node.op else {
            return None;
        };
        let r = perm.len();
        let swapped = r >= 2
            && perm[r - 2] == r - 1
            && perm[r - 1] == r - 2
            && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p);
        let input = self.node.inputs().first()?.clone();
        // A realized transpose of a value that is gone would recompute it.
        let readable = !self.node.is_realized() || input.is_realized();
        (swapped && readable).then(|| Tensor::from_node(input))
    }

    /// Swaps the last two axes (the matrix transpose).
    #[track_caller]
    pub fn t(&self) -> Tensor {
        assert!(
            self.rank() >= 2,
            "t: need at least 2 axes, got {:?}",
            self.shape()
        );
        self.transpose(self.rank() - 2, self.rank() - 1)
    }

    /// Repeats the tensor along broadcast axes (numpy rules).
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        assert!(
            can_broadcast_to(self.shape(), &shape),
            "broadcast_to: {:?} does not broadcast to {shape:?}",
            self.shape()
        );
        if &shape == self.shape() {
            return self.clone();
        }
        Tensor::record(Op::Expand, &[self], shape)
    }

    /// The window `ranges[i]` (`start..end`) along each axis:
    /// `x.slice(&[0..2, 1..3])`.
    #[track_caller]
    pub fn slice(&self, ranges: &[std::ops::Range<usize>]) -> Tensor {
        assert_eq!(
            ranges.len(),
            self.rank(),
            "slice: {} ranges given for a tensor of shape {:?}",
            ranges.len(),
            self.shape()
        );
        for (i, r) in ranges.iter().enumerate() {
            let (s, e) = (r.start, r.end);
            assert!(
                s <= e && e <= self.dims()[i],
                "slice: range {s}..{e} is out of bounds for axis {i} of shape {:?}",
                self.shape()
            );
        }
        let dims: Vec<usize> = ranges.iter().map(|r| r.end - r.start).collect();
        if dims == self.dims() {
            return self.clone();
        }
        let starts = ranges.iter().map(|r| r.start).collect();
        Tensor::record(Op::Slice { starts }, &[self], Shape::new(&dims))
    }

    /// The entries `range` (`start..end`) of `axis`, every other axis whole.
    #[track_caller]
    pub fn narrow(&self, axis: usize, range: std::ops::Range<usize>) -> Tensor {
        self.shape().check_axis("narrow", axis);
        let size = self.dims()[axis];
        assert!(
            range.start <= range.end && range.end <= size,
            "narrow: range {}..{} does not fit axis {axis} of shape {:?}",
            range.start,
            range.end,
            self.shape()
        );
        let ranges: Vec<std::ops::Range<usize>> = self
            .dims()
            .iter()
            .enumerate()
            .map(|(i, &d)| if i == axis { range.clone() } else { 0..d })
            .collect();
        self.slice(&ranges)
    }

    /// Zeros added around the tensor: `(before, after)` entries along each
    /// axis, numpy's `pad_width` (`x.pad(&[(0, 0), (1, 2)])`).
    #[track_caller]
    pub fn pad(&self, widths: &[(usize, usize)]) -> Tensor {
        assert_eq!(
            widths.len(),
            self.rank(),
            "pad: {} (before, after) pairs given for a tensor of shape {:?}",
            widths.len(),
            self.shape()
        );
        let dims: Option<Vec<usize>> = self
            .dims()
            .iter()
            .zip(widths)
            .map(|(&d, &(b, a))| d.checked_add(b)?.checked_add(a))
            .collect();
        let dims = dims.unwrap_or_else(|| {
            panic!(
                "pad: padding {widths:?} of shape {:?} overflows a usize",
                self.shape()
            )
        });
        let starts: Vec<usize> = widths.iter().map(|w| w.0).collect();
        self.pad_into(dims, &starts)
    }

    /// Zeros of `shape` with this tensor written at `starts` (slice's adjoint).
    #[track_caller]
    pub(crate) fn pad_into(&self, shape: impl Into<Shape>, starts: &[usize]) -> Tensor {
        let shape = shape.into();
        assert!(
            starts.len() == self.rank()
                && shape.rank() == self.rank()
                && (0..self.rank()).all(|i| starts[i]
                    .checked_add(self.dims()[i])
                    .is_some_and(|end| end <= shape.dims()[i])),
            "pad_into: a tensor of shape {:?} at {starts:?} does not fit in {shape:?}",
            self.shape()
        );
        if &shape == self.shape() {
            return self.clone();
        }
        Tensor::record(
            Op::Pad {
                starts: starts.to_vec(),
            },
            &[self],
            shape,
        )
    }
}
