//! MPI ranks (cargo feature `mpi`): one process per GPU, launched by
//! `mpirun` or a cluster's scheduler, on any number of machines.

use mpi::Count;
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::transport::{Transport, chunk, sum_in_rank_order};
use crate::error::{Error, Result};

/// This process's rank in `MPI_COMM_WORLD`.
///
/// The all-reduce is a reduce-scatter then an all-gather, both written
/// with MPI's exchanges (`MPI_Alltoallv`, `MPI_Allgatherv`) rather than
/// `MPI_Allreduce`, whose summation order is the library's to choose: rank
/// c receives chunk c of every rank's values, placed by source rank, and
/// adds them in rank order; then every rank gathers the summed chunks. The
/// bytes moved per rank are 2(N−1)/N of the values, as for a ring
/// all-reduce.
///
/// Faults: MPI cannot let the other ranks return from a collective that a
/// rank will never join, so a rank that fails ends the job: a panic (the
/// hook [`Mpi::init`] installs) or [`Transport::fail`] prints
/// `webgrad: rank R failed: …` and calls `MPI_Abort`, and `mpirun` stops
/// every rank, naming the one that aborted; a killed process is reported
/// by `mpirun` the same way. No rank waits forever.
pub struct Mpi {
    // Finalizes MPI when dropped, after the communicator.
    world: SimpleCommunicator,
    _universe: Universe,
    rank: usize,
    size: usize,
}

// SAFETY: MPI is initialized with `MPI_THREAD_SERIALIZED` (checked in
// `init`): any thread may call it, one at a time. `Transport` methods take
// `&mut self`, so a moved `Mpi` is used by one thread at a time.
unsafe impl Send for Mpi {}

impl Mpi {
    /// Initializes MPI (once per process) and joins `MPI_COMM_WORLD`; from
    /// then on a panic anywhere in this process aborts the job naming this
    /// rank (see the type's documentation).
    pub fn init() -> Result<Mpi> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| {
                Error::Transport("MPI was initialized already (Mpi::init once per process)".into())
            })?;
        if threading < mpi::Threading::Serialized {
            return Err(Error::Transport(format!(
                "the MPI library offers thread level {threading:?}; webgrad needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // After `MPI_Finalize` (the `Mpi` dropped) there is no job to
            // abort: the panic unwinds as usual.
            if mpi::environment::is_finalized() {
                return;
            }
            eprintln!("webgrad: rank {rank} failed: {info}");
            // SAFETY: MPI is initialized and not finalized; abort never returns.
            unsafe {
                mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 1);
            }
        }));
        Ok(Mpi {
            world,
            _universe: universe,
            rank,
            size,
        })
    }

    /// Counts and displacements of the chunks of `len` values, one per rank.
    fn chunks(&self, len: usize) -> Result<(Vec<Count>, Vec<Count>)> {
        let count = |n: usize| {
            Count::try_from(n).map_err(|_| {
                Error::Transport(format!(
                    "a bucket of {len} values is too large for MPI's counts"
                ))
            })
        };
        let mut counts = Vec::with_capacity(self.size);
        let mut displs = Vec::with_capacity(self.size);
        for r in 0..self.size {
            let c = chunk(len, r, self.size);
            counts.push(count(c.len())?);
            displs.push(count(c.start)?);
        }
        Ok((counts, displs))
    }
}

impl Transport for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let (counts, displs) = self.chunks(data.len())?;
        let own = chunk(data.len(), self.rank, self.size);
        // Reduce-scatter: every rank's chunk `rank`, by source rank.
        let mut received = vec![0.0f32; own.len() * self.size];
        {
            let own_count = counts[self.rank];
            let from: Vec<Count> = vec![own_count; self.size];
            let at: Vec<Count> = (0..self.size as Count).map(|r| r * own_count).collect();
            let send = Partition::new(&data[..], &counts[..], &displs[..]);
            let mut recv = PartitionMut::new(&mut received[..], &from[..], &at[..]);
            self.world.all_to_all_varcount_into(&send, &mut recv);
        }
        let parts: Vec<&[f32]> = received.chunks(own.len().max(1)).take(self.size).collect();
        let mut summed = vec![0.0f32; own.len()];
        if !own.is_empty() {
            sum_in_rank_order(&parts, &mut summed);
        }
        // All-gather of the summed chunks.
        let mut recv = PartitionMut::new(&mut data[..], &counts[..], &displs[..]);
        self.world.all_gather_varcount_into(&summed[..], &mut recv);
        Ok(())
    }

    #[track_caller]
    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()> {
        assert!(
            root < self.size,
            "broadcast: root {root} of {} ranks",
            self.size
        );
        self.world.process_at_rank(root as i32).broadcast_into(data);
        Ok(())
    }

    fn fail(&mut self, message: &str) {
        eprintln!("webgrad: rank {} failed: {message}", self.rank);
        self.world.abort(1);
    }
}
