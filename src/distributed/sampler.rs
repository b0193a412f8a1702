//! Sharding a data set over ranks so that N ranks with batch b see, step
//! by step, the same examples as one rank with batch N·b.

/// This rank's share of every epoch of a data set of `len` examples.
///
/// Each epoch the whole data set is shuffled by one seed (the same on
/// every rank: `seed` mixed with the epoch's number), cut into global
/// batches of `ranks × batch`, and rank r takes the r-th run of `batch`
/// indices of each. So global batch i is the concatenation of the ranks'
/// batches i, in rank order: exactly the batch i that one rank with batch
/// `ranks × batch` takes. An incomplete last global batch is dropped, so
/// that every rank takes the same number of full batches (a rank with a
/// smaller one would weigh its examples more in the averaged gradient).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardedSampler {
    len: usize,
    rank: usize,
    ranks: usize,
    seed: u64,
}

impl ShardedSampler {
    /// The sampler of rank `rank` of `ranks`. Panics unless `rank < ranks`.
    #[track_caller]
    pub fn new(len: usize, rank: usize, ranks: usize, seed: u64) -> ShardedSampler {
        assert!(
            rank < ranks,
            "ShardedSampler::new: rank {rank} of {ranks} ranks (ranks count from 0)"
        );
        ShardedSampler {
            len,
            rank,
            ranks,
            seed,
        }
    }

    /// The seed of `epoch`'s shuffle (SplitMix64's finalizer over the seed
    /// and the epoch: epochs shuffle independently).
    fn epoch_seed(&self, epoch: u64) -> u64 {
        let mut z = self
            .seed
            .wrapping_add(epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// This rank's batches of `batch` indices for `epoch`. Panics if
    /// `batch` is 0 or `ranks × batch` overflows.
    #[track_caller]
    pub fn batches(&self, epoch: u64, batch: usize) -> Vec<Vec<usize>> {
        assert!(
            batch >= 1,
            "ShardedSampler::batches: the batch size must be at least 1"
        );
        let global = batch.checked_mul(self.ranks).unwrap_or_else(|| {
            panic!(
                "ShardedSampler::batches: {} ranks × batch {batch} overflows",
                self.ranks
            )
        });
        let order = crate::data::shuffled(self.len, self.epoch_seed(epoch));
        order
            .chunks_exact(global)
            .map(|g| g[self.rank * batch..(self.rank + 1) * batch].to_vec())
            .collect()
    }

    /// How many batches [`ShardedSampler::batches`] gives per epoch.
    pub fn batches_per_epoch(&self, batch: usize) -> usize {
        self.len / batch.saturating_mul(self.ranks).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_ranks_see_what_one_rank_with_n_times_the_batch_sees() {
        let one = ShardedSampler::new(103, 0, 1, 7);
        let shards: Vec<ShardedSampler> =
            (0..3).map(|r| ShardedSampler::new(103, r, 3, 7)).collect();
        for epoch in 0..3 {
            let whole = one.batches(epoch, 12);
            let parts: Vec<Vec<Vec<usize>>> = shards.iter().map(|s| s.batches(epoch, 4)).collect();
            assert_eq!(whole.len(), 103 / 12);
            for (i, w) in whole.iter().enumerate() {
                let joined: Vec<usize> = parts.iter().flat_map(|p| p[i].clone()).collect();
                assert_eq!(&joined, w, "epoch {epoch}, batch {i}");
            }
        }
        // Epochs differ; no index repeats within one.
        assert_ne!(one.batches(0, 12), one.batches(1, 12));
        let mut seen: Vec<usize> = one.batches(0, 12).concat();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 96);
    }
}
