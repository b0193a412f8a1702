//! Shapes, numpy broadcasting and row-major strides.
//!
//! Everything here is pure and panics (with `#[track_caller]`) on caller
//! mistakes, naming the op and the shapes involved.

use std::fmt;

/// The most axes a tensor may have: kernels carry shapes in fixed-size arrays.
pub const MAX_RANK: usize = 8;

/// The dimensions of a tensor, outermost first. A scalar has no dimensions.
/// Made only through [`Shape::new`] (or `From`), which checks the rank and
/// the element count, so every shape in a graph is one whose sizes fit.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub(crate) Vec<usize>);

impl Shape {
    /// A shape of these sizes (at most `MAX_RANK` axes).
    #[track_caller]
    pub fn new(dims: &[usize]) -> Shape {
        assert!(
            dims.len() <= MAX_RANK,
            "webgrad supports tensors of at most {MAX_RANK} axes, got shape {dims:?}"
        );
        // Every later product of dimensions is then safe from wrapping.
        assert!(
            dims.iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .is_some(),
            "shape {dims:?} has more elements than a usize can count"
        );
        Shape(dims.to_vec())
    }
    /// The shape of a 0-d tensor.
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }
    /// The sizes of the axes.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// How many axes there are.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Number of elements, or `None` if the product overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }
    /// Row-major (C order) strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }
    /// `(outer, size, inner)` around `axis`: the products of the axes
    /// before it, its size, the product of the axes after it (the view of
    /// the tensor as `[outer, size, inner]` that axis-wise ops take).
    pub(crate) fn around(&self, axis: usize) -> (usize, usize, usize) {
        let d = self.dims();
        (
            d[..axis].iter().product(),
            d[axis],
            d[axis + 1..].iter().product(),
        )
    }

    /// Checks an axis index, naming the op on failure.
    #[track_caller]
    pub fn check_axis(&self, op: &str, axis: usize) {
        assert!(
            axis < self.rank(),
            "{op}: axis {axis} is out of range for a tensor of shape {self:?}"
        );
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Shape {
        s.clone()
    }
}

impl From<&[usize]> for Shape {
    #[track_caller]
    fn from(d: &[usize]) -> Shape {
        Shape::new(d)
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    #[track_caller]
    fn from(d: [usize; N]) -> Shape {
        Shape::new(&d)
    }
}
impl<const N: usize> From<&[usize; N]> for Shape {
    #[track_caller]
    fn from(d: &[usize; N]) -> Shape {
        Shape::new(d)
    }
}
impl From<Vec<usize>> for Shape {
    #[track_caller]
    fn from(d: Vec<usize>) -> Shape {
        Shape::new(&d)
    }
}

/// The numpy broadcast of two shapes: align trailing axes; each pair must be
/// equal or contain a 1.
#[track_caller]
pub fn broadcast_shapes(op: &str, a: &Shape, b: &Shape) -> Shape {
    let rank = a.rank().max(b.rank());
    let dim = |s: &Shape, i: usize| {
        if i < rank - s.rank() {
            1
        } else {
            s.0[i - (rank - s.rank())]
        }
    };
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let (da, db) = (dim(a, i), dim(b, i));
        // A plain loop, not a closure, so the panic reports the caller's location.
        out.push(if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            panic!("{op}: shapes {a:?} and {b:?} do not broadcast (axis {i}: {da} vs {db})")
        });
    }
    Shape::new(&out)
}

/// Strides (in elements) for reading a tensor of shape `from` as if it had
/// the broadcast shape `to`: broadcast axes get stride 0.
pub fn broadcast_strides(from: &Shape, to: &Shape) -> Vec<usize> {
    let offset = to.rank() - from.rank();
    let src = from.strides();
    (0..to.rank())
        .map(|i| {
            if i < offset || from.0[i - offset] == 1 {
                0
            } else {
                src[i - offset]
            }
        })
        .collect()
}

/// True if `from` can be broadcast to `to` (numpy rules, `to` fixed).
pub fn can_broadcast_to(from: &Shape, to: &Shape) -> bool {
    from.rank() <= to.rank()
        && from
            .0
            .iter()
            .rev()
            .zip(to.0.iter().rev())
            .all(|(&f, &t)| f == t || f == 1)
}

/// The axes of `to` that a gradient must be summed over to get back to `from`
/// after a broadcast (leading axes, and axes where `from` has size 1).
pub fn broadcast_axes(from: &Shape, to: &Shape) -> Vec<usize> {
    let offset = to.rank() - from.rank();
    (0..to.rank())
        .filter(|&i| i < offset || (from.0[i - offset] == 1 && to.0[i] != 1))
        .collect()
}

/// Validates a permutation of `0..rank`.
#[track_caller]
pub fn check_permutation(op: &str, shape: &Shape, perm: &[usize]) {
    let mut seen = vec![false; shape.rank()];
    assert!(
        perm.len() == shape.rank()
            && perm
                .iter()
                .all(|&p| p < shape.rank() && !std::mem::replace(&mut seen[p], true)),
        "{op}: {perm:?} is not a permutation of the axes of a tensor of shape {shape:?}"
    );
}

/// The shape after reducing `axes` with keepdims (reduced axes become 1).
#[track_caller]
pub fn reduced_shape(op: &str, shape: &Shape, axes: &[usize]) -> Shape {
    let mut dims = shape.0.clone();
    for &a in axes {
        shape.check_axis(op, a);
        dims[a] = 1;
    }
    Shape::new(&dims)
}

/// Unravels a row-major linear index into a multi-index.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let s = |d: &[usize]| Shape::new(d);
        assert_eq!(broadcast_shapes("add", &s(&[3, 1]), &s(&[4])), s(&[3, 4]));
        assert_eq!(broadcast_shapes("add", &s(&[]), &s(&[2, 5])), s(&[2, 5]));
        assert_eq!(
            broadcast_shapes("add", &s(&[2, 1, 5]), &s(&[7, 1])),
            s(&[2, 7, 5])
        );
        assert_eq!(
            broadcast_strides(&s(&[3, 1]), &s(&[2, 3, 4])),
            vec![0, 1, 0]
        );
        assert_eq!(broadcast_axes(&s(&[3, 1]), &s(&[2, 3, 4])), vec![0, 2]);
        assert!(can_broadcast_to(&s(&[1, 4]), &s(&[3, 4])));
        assert!(!can_broadcast_to(&s(&[2, 4]), &s(&[3, 4])));
    }

    #[test]
    #[should_panic(expected = "add: shapes [3, 2] and [4] do not broadcast")]
    fn incompatible_shapes_name_the_op() {
        broadcast_shapes("add", &Shape::new(&[3, 2]), &Shape::new(&[4]));
    }

    #[test]
    fn strides_and_unravel() {
        let s = Shape::new(&[2, 3, 4]);
        assert_eq!(s.strides(), vec![12, 4, 1]);
        assert_eq!(s.numel(), 24);
        assert_eq!(unravel(17, s.dims()), vec![1, 1, 1]);
        assert_eq!(Shape::scalar().numel(), 1);
        assert_eq!(reduced_shape("sum", &s, &[0, 2]), Shape::new(&[1, 3, 1]));
    }

    #[test]
    #[should_panic(expected = "is not a permutation")]
    fn bad_permutation_panics() {
        check_permutation("permute", &Shape::new(&[2, 3]), &[0, 0]);
    }
}
