//! What data-parallel training needs from a transport, and the one
//! summation order every transport follows.

use crate::error::Result;

/// How ranks exchange values: local replicas in one process
/// ([`super::LocalGroup`]) or MPI ranks (`super::Mpi`, feature `mpi`).
///
/// Every collective is called by every rank, in the same order, with the
/// same lengths. A rank that cannot go on calls [`Transport::fail`] (or
/// panics inside [`super::run_local`]); the others' pending and later
/// collectives then return [`crate::Error::RankFailed`] naming it.
pub trait Transport: Send {
    /// This rank's number, 0 to `size() − 1`.
    fn rank(&self) -> usize;

    /// How many ranks take part.
    fn size(&self) -> usize;

    /// Replaces `data`, on every rank, by the elementwise sum over the
    /// ranks' `data` taken in rank order — ((x₀ + x₁) + x₂) + … — so that
    /// every rank gets the same bits, whatever the transport does inside
    /// (every transport adds in this one order).
    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()>;

    /// Replaces `data`, on every rank, by rank `root`'s.
    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()>;

    /// Tells the other ranks that this one failed with `message`: their
    /// collectives stop with an error naming this rank instead of waiting.
    fn fail(&mut self, message: &str);
}

/// A transport lent to a [`super::DataParallel`] for a while (several in
/// turn can share one MPI rank).
impl<T: Transport + ?Sized> Transport for &mut T {
    fn rank(&self) -> usize {
        (**self).rank()
    }

    fn size(&self) -> usize {
        (**self).size()
    }

    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()> {
        (**self).all_reduce_sum(data)
    }

    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()> {
        (**self).broadcast(data, root)
    }

    fn fail(&mut self, message: &str) {
        (**self).fail(message)
    }
}

/// `out[i] = ((parts[0][i] + parts[1][i]) + parts[2][i]) + …`: the one
/// order in which every transport sums, so that the result does not
/// depend on which rank computes it or on the MPI library's algorithm.
pub(crate) fn sum_in_rank_order(parts: &[&[f32]], out: &mut [f32]) {
    out.copy_from_slice(parts[0]);
    for part in &parts[1..] {
        for (o, x) in out.iter_mut().zip(part.iter()) {
            *o += x;
        }
    }
}

/// The range of `len` elements that rank `rank` of `size` reduces
/// (contiguous chunks, the first `len % size` one element longer).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn chunk(len: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let (base, extra) = (len / size, len % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_everything_once() {
        for (len, size) in [(10, 3), (2, 4), (0, 2), (7, 1)] {
            let mut next = 0;
            for r in 0..size {
                let c = chunk(len, r, size);
                assert_eq!(c.start, next);
                next = c.end;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn the_sum_is_taken_in_rank_order() {
        // 1e8 + 1 − 1e8 is 0 in f32 taken left to right, 1 otherwise.
        let parts: [&[f32]; 3] = [&[1e8], &[1.0], &[-1e8]];
        let mut out = [0.0];
        sum_in_rank_order(&parts, &mut out);
        assert_eq!(out, [0.0]);
    }
}
