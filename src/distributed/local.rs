//! Local replicas: several devices of one process, a thread each,
//! exchanging values through shared memory.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::transport::{Transport, sum_in_rank_order};
use crate::error::{Error, Result};

/// What the replicas of one group share.
struct Hub {
    size: usize,
    state: Mutex<Round>,
    changed: Condvar,
}

/// The collective under way: each replica's contribution, then the result
/// the last one to arrive computes for all.
#[derive(Default)]
struct Round {
    number: u64,
    inputs: Vec<Option<Vec<f32>>>,
    /// The result of round `.0`, read by every replica.
    result: Option<(u64, Arc<Vec<f32>>)>,
    failed: Option<(usize, String)>,
    /// Replicas whose transport was dropped: a collective waiting for one
    /// of them would wait forever.
    departed: Vec<bool>,
}

/// A group of `size` local replicas; [`LocalGroup::transports`] gives each
/// replica its end, to be moved into the replica's thread (or use
/// [`run_local`], which does it and reports a replica's panic).
pub struct LocalGroup {
    hub: Arc<Hub>,
}

impl LocalGroup {
    /// A group of `size` replicas. Panics if `size` is 0.
    #[track_caller]
    pub fn new(size: usize) -> LocalGroup {
        assert!(
            size >= 1,
            "LocalGroup::new: a group needs at least 1 replica"
        );
        let state = Round {
            inputs: vec![None; size],
            departed: vec![false; size],
            ..Default::default()
        };
        LocalGroup {
            hub: Arc::new(Hub {
                size,
                state: Mutex::new(state),
                changed: Condvar::new(),
            }),
        }
    }

    /// One transport per replica, rank 0 first.
    pub fn transports(&self) -> Vec<LocalTransport> {
        (0..self.hub.size)
            .map(|rank| LocalTransport {
                hub: self.hub.clone(),
                rank,
                round: 0,
            })
            .collect()
    }
}

/// One replica's end of a [`LocalGroup`].
pub struct LocalTransport {
    hub: Arc<Hub>,
    rank: usize,
    /// The next collective this replica takes part in.
    round: u64,
}

impl LocalTransport {
    fn lock(&self) -> MutexGuard<'_, Round> {
        self.hub.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives `data` to the collective and waits for its result, which the
    /// last replica to arrive computes with `combine` from every input.
    fn exchange(
        &mut self,
        data: &[f32],
        combine: impl FnOnce(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Arc<Vec<f32>>> {
        let round = self.round;
        self.round += 1;
        let mut state = self.lock();
        if let Some((rank, message)) = &state.failed {
            return Err(failed(*rank, message));
        }
        debug_assert_eq!(state.number, round, "replicas out of step");
        state.inputs[self.rank] = Some(data.to_vec());
        if state.inputs.iter().all(Option::is_some) {
            let inputs: Vec<Vec<f32>> =
                state.inputs.iter_mut().map(|i| i.take().unwrap()).collect();
            if inputs.iter().any(|i| i.len() != data.len()) {
                let lengths: Vec<usize> = inputs.iter().map(Vec::len).collect();
                let message =
                    format!("replicas gave different lengths to one collective: {lengths:?}");
                state.failed = Some((self.rank, message.clone()));
                self.hub.changed.notify_all();
                return Err(Error::Transport(message));
            }
            state.result = Some((round, Arc::new(combine(&inputs))));
            state.number = round + 1;
            self.hub.changed.notify_all();
        }
        loop {
            if let Some((r, result)) = &state.result
                && *r == round
            {
                return Ok(result.clone());
            }
            if let Some((rank, message)) = &state.failed {
                return Err(failed(*rank, message));
            }
            if let Some(gone) =
                (0..self.hub.size).find(|&r| state.departed[r] && state.inputs[r].is_none())
            {
                return Err(Error::Transport(format!(
                    "replica {gone} left the group before collective {round}, which replica {} is waiting in \
                     (every replica must call the same collectives)",
                    self.rank
                )));
            }
            state = self
                .hub
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn failed(rank: usize, message: &str) -> Error {
    Error::RankFailed {
        rank,
        message: message.to_string(),
    }
}

impl Transport for LocalTransport {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.hub.size
    }

    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()> {
        let sum = self.exchange(data, |inputs| {
            let parts: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            let mut out = vec![0.0; parts[0].len()];
            sum_in_rank_order(&parts, &mut out);
            out
        })?;
        data.copy_from_slice(&sum);
        Ok(())
    }

    #[track_caller]
    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()> {
        assert!(
            root < self.hub.size,
            "broadcast: root {root} of a group of {}",
            self.hub.size
        );
        let value = self.exchange(data, |inputs| inputs[root].clone())?;
        data.copy_from_slice(&value);
        Ok(())
    }

    fn fail(&mut self, message: &str) {
        let mut state = self.lock();
        if state.failed.is_none() {
            state.failed = Some((self.rank, message.to_string()));
        }
        self.hub.changed.notify_all();
    }
}

impl Drop for LocalTransport {
    /// A replica whose thread unwinds past its transport has failed, and
    /// one that drops its transport takes part in no more
    /// collectives: the others' pending ones fail instead of waiting.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.fail("its thread panicked");
        }
        let mut state = self.lock();
        state.departed[self.rank] = true;
        self.hub.changed.notify_all();
    }
}

/// Runs `replica(rank, transport)` for every rank of a new group of
/// `size`, a thread each, and returns their results in rank order. A
/// replica that panics or returns an error fails the group: the others'
/// collectives return [`Error::RankFailed`] naming it, and so does this
/// call (the first failure, with its message), after every thread ended.
pub fn run_local<R: Send>(
    size: usize,
    replica: impl Fn(usize, LocalTransport) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let group = LocalGroup::new(size);
    let hub = group.hub.clone();
    let outcomes: Vec<Result<R>> = std::thread::scope(|s| {
        let handles: Vec<_> = group
            .transports()
            .into_iter()
            .map(|t| {
                let replica = &replica;
                let hub = hub.clone();
                s.spawn(move || {
                    let rank = t.rank;
                    let outcome =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replica(rank, t)));
                    let outcome = match outcome {
                        Ok(result) => result,
                        Err(panic) => Err(Error::RankFailed {
                            rank,
                            message: panic_message(panic.as_ref()),
                        }),
                    };
                    if let Err(e) = &outcome {
                        let mut state = hub.state.lock().unwrap_or_else(|e| e.into_inner());
                        // The first failure stands; this replica's own
                        // message replaces the one its transport left
                        // while unwinding ("its thread panicked").
                        match &state.failed {
                            Some((first, _)) if *first != rank => {}
                            _ => state.failed = Some((rank, own_message(e))),
                        }
                        hub.changed.notify_all();
                    }
                    outcome
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a replica's thread ended without a result"))
            .collect()
    });
    let first = hub
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .failed
        .clone();
    match first {
        Some((rank, message)) => Err(failed(rank, &message)),
        None => outcomes.into_iter().collect(),
    }
}

/// What an error says, without the "rank … failed" wrapping a replica's
/// own error would otherwise get twice.
fn own_message(e: &Error) -> String {
    match e {
        Error::RankFailed { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// A panic's message (`panic!` with a literal or a formatted string).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}
