//! Meeting a memory budget (`Device::set_memory_budget`): automatic
//! rematerialization.
//!
//! Reverse mode keeps every forward value an adjoint reads (its *saved*
//! values) from the forward pass to the backward pass. When a realize's
//! predicted peak exceeds the budget, this module rewrites the pending
//! graph so that some saved values are recomputed instead: each adjoint
//! that read a dropped value reads a copy, recorded from the kept values
//! (or from realized ones) and marked `recompute`, which the scheduler runs
//! just before its first consumer and frees right after (as for
//! `autodiff::checkpoint`). The original is then read only by the forward
//! pass and freed there. A copy's inputs are copies too where they were
//! not kept — values no adjoint reads are never kept — so a dropped value
//! is recomputed from the nearest kept ones.
//!
//! The policy is greedy, in levels of growing cost, each checked by the
//! scheduler's own dry plan (`schedule::predict_peak`), the first that
//! fits taken:
//!
//! 1. *Cheap values only*: saved values computed by elementwise and
//!    movement ops from kept or realized values through elementwise and
//!    movement ops alone (no matmul, convolution or reduction to redo).
//! 2. *Every saved value*.
//!
//! Within a level the candidates, in the order they were recorded (a
//! topological order), are cut into segments of L: every L-th is kept, the
//! rest dropped, so each segment is recomputed once, from its kept start,
//! when the backward pass reaches it. That is the classic √n schedule of a
//! chain (kept: n/L values; recomputed at a time: L), applied to any graph
//! through its recording order. Each dropped value is recomputed about once
//! whatever L, but smaller L drops fewer, so L is searched from 2 up to √n
//! (bisection; the peak falls as L grows to √n) for the smallest that fits.
//!
//! Why not min-cut: an exact minimum of recomputation under a peak needs
//! the peak of each candidate plan, which only the scheduler's order and
//! buffer reuse give (a cut in the graph says what is kept, not when it is
//! freed); the levels above need a handful of dry plans and reproduce the
//! known-good schedule on chains. If no level fits, the realize fails with
//! `Error::OutOfBudget` naming the smallest peak any level reached.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::graph::{Node, NodeId, Op, RecordingAdjoints, topo_order};

/// Makes realizing `targets` fit the device's memory budget, rewriting the
/// graph if that is needed and allowed; `Error::OutOfBudget` if nothing
/// fits. Nothing to do without a budget.
pub(crate) fn fit(gpu: &Gpu, targets: &[Arc<Node>]) -> Result<()> {
    let Some(budget) = *gpu
        .switches
        .budget
        .lock()
        .unwrap_or_else(|e| e.into_inner())
    else {
        return Ok(());
    };
    let needed = super::schedule::predict_peak(gpu, targets)?;
    if needed <= budget {
        return Ok(());
    }
    if !gpu.switches.auto_remat.load(Relaxed) {
        return Err(Error::OutOfBudget { needed, budget });
    }
    let graph = Saved::find(targets);
    let mut smallest = needed;
    for cheap_only in [true, false] {
        let candidates: Vec<Arc<Node>> = graph
            .saved
            .iter()
            .filter(|n| !cheap_only || graph.cheap.contains(&n.id))
            .cloned()
            .collect();
        if candidates.len() < 2 {
            continue;
        }
        let longest = ((candidates.len() as f64).sqrt().ceil() as usize).max(2);
        // The longest segments give the lowest peak: if they do not fit,
        // nothing in this level does.
        let (peak, rewrite) = graph.try_segments(gpu, targets, &candidates, longest)?;
        smallest = smallest.min(peak);
        if peak > budget {
            rewrite.undo();
            continue;
        }
        // The shortest segments that fit drop the fewest values.
        rewrite.undo();
        let (mut lo, mut hi) = (2, longest);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (peak, rewrite) = graph.try_segments(gpu, targets, &candidates, mid)?;
            rewrite.undo();
            smallest = smallest.min(peak);
            if peak <= budget {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let (_, best) = graph.try_segments(gpu, targets, &candidates, hi)?;
        log::info!(
            "webgrad: over the memory budget; recomputing {} of {} saved values (segments of {lo}{})",
            best.dropped,
            graph.saved.len(),
            if cheap_only {
                ", cheap values only"
            } else {
                ""
            }
        );
        gpu.counts.rematerialized.fetch_add(1, Relaxed);
        return Ok(());
    }
    Err(Error::OutOfBudget {
        needed: smallest,
        budget,
    })
}

/// The saved values of a pending graph: forward values that pending
/// adjoints read.
struct Saved {
    /// In recording order.
    saved: Vec<Arc<Node>>,
    /// Those recomputable by elementwise and movement ops alone.
    cheap: HashSet<NodeId>,
    /// Pending adjoints that read a saved value.
    readers: Vec<Arc<Node>>,
    /// Values used as they are when recomputing (realized, kept by a
    /// handle or the caller, inputs, updates, variables).
    fixed: HashSet<NodeId>,
}

fn is_cheap_op(op: &Op) -> bool {
    op.is_elementwise()
        || matches!(
            op,
            Op::Reshape | Op::Permute(_) | Op::Expand | Op::Slice { .. } | Op::Pad { .. }
        )
}

impl Saved {
    fn find(targets: &[Arc<Node>]) -> Saved {
        let order = topo_order(targets, |n| n.is_realized());
        let target_ids: HashSet<NodeId> = targets.iter().map(|t| t.id).collect();
        let mut fixed = HashSet::default();
        for n in &order {
            let kept = n.is_realized()
                || target_ids.contains(&n.id)
                || n.handles.get() > 0
                || matches!(
                    n.op,
                    Op::Input(_) | Op::Indices(_) | Op::Assign | Op::Variable(_)
                );
            if kept {
                fixed.insert(n.id);
            }
        }
        // A value can be recomputed if its op is pure and it is not fixed.
        let recomputable = |n: &Node| {
            !fixed.contains(&n.id)
                && !n.adjoint
                && !matches!(
                    n.op,
                    Op::Fill(_) | Op::Detach | Op::Checkpoint(_) | Op::Custom(_)
                )
        };
        let mut saved_ids: HashSet<NodeId> = HashSet::default();
        let mut readers = Vec::new();
        for n in order.iter().filter(|n| n.adjoint && !n.is_realized()) {
            let mut reads = false;
            for input in n.inputs().iter() {
                if recomputable(input) {
                    saved_ids.insert(input.id);
                    reads = true;
                }
            }
            if reads {
                readers.push(n.clone());
            }
        }
        // Cheap: an elementwise or movement op whose inputs are fixed,
        // saved (kept, or recomputed on their own account), or cheap
        // values no adjoint reads (recomputed along). Inputs come first
        // in `order`, so one pass decides.
        let mut cheap: HashSet<NodeId> = HashSet::default();
        for n in &order {
            if !recomputable(n) || !is_cheap_op(&n.op) {
                continue;
            }
            let inputs_ok = n.inputs().iter().all(|i| {
                fixed.contains(&i.id)
                    || saved_ids.contains(&i.id)
                    || cheap.contains(&i.id)
                    || matches!(i.op, Op::Fill(_))
            });
            if inputs_ok {
                cheap.insert(n.id);
            }
        }
        let saved = order
            .iter()
            .filter(|n| saved_ids.contains(&n.id))
            .cloned()
            .collect();
        Saved {
            saved,
            cheap,
            readers,
            fixed,
        }
    }

    /// Drops every candidate but each `length`-th (see the module docs)
    /// and predicts the peak. The rewrite stays applied; undo it if unwanted.
    fn try_segments(
        &self,
        gpu: &Gpu,
        targets: &[Arc<Node>],
        candidates: &[Arc<Node>],
        length: usize,
    ) -> Result<(u64, Rewrite)> {
        let dropped: HashSet<NodeId> = candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| i % length != length - 1)
            .map(|(_, n)| n.id)
            .collect();
        let kept: HashSet<NodeId> = self
            .saved
            .iter()
            .filter(|n| !dropped.contains(&n.id))
            .map(|n| n.id)
            .collect();
        let rewrite = self.rewrite(&dropped, &kept);
        match super::schedule::predict_peak(gpu, targets) {
            Ok(peak) => Ok((peak, rewrite)),
            Err(e) => {
                rewrite.undo();
                Err(e)
            }
        }
    }

    /// Points every adjoint that reads a dropped value at a recomputed copy.
    fn rewrite(&self, dropped: &HashSet<NodeId>, kept: &HashSet<NodeId>) -> Rewrite {
        let _copies_are_adjoints = RecordingAdjoints::start();
        let mut copies: HashMap<NodeId, Arc<Node>> = HashMap::default();
        let mut edits = Vec::new();
        for reader in &self.readers {
            let inputs: Vec<Arc<Node>> = reader.inputs().clone();
            for (i, input) in inputs.into_iter().enumerate() {
                if dropped.contains(&input.id) {
                    let copy = self.copy(&input, kept, &mut copies);
                    reader.inputs.borrow_mut()[i] = copy;
                    edits.push((reader.clone(), i, input));
                }
            }
        }
        Rewrite {
            dropped: dropped.len(),
            edits,
        }
    }

    /// A recomputed copy of `value`: the same op on kept and fixed values
    /// as they are, and on copies of the others (iterative, memoized).
    fn copy(
        &self,
        value: &Arc<Node>,
        kept: &HashSet<NodeId>,
        copies: &mut HashMap<NodeId, Arc<Node>>,
    ) -> Arc<Node> {
        let as_is = |n: &Node| {
            self.fixed.contains(&n.id)
                || kept.contains(&n.id)
                || n.adjoint
                || matches!(n.op, Op::Fill(_))
        };
        let mut stack: Vec<(Arc<Node>, bool)> = vec![(value.clone(), false)];
        while let Some((n, expanded)) = stack.pop() {
            if copies.contains_key(&n.id) {
                continue;
            }
            let inputs: Vec<Arc<Node>> = n.inputs().clone();
            if !expanded {
                stack.push((n.clone(), true));
                for i in inputs
                    .iter()
                    .filter(|i| !as_is(i) && !copies.contains_key(&i.id))
                {
                    stack.push((i.clone(), false));
                }
                continue;
            }
            let mapped = inputs
                .iter()
                .map(|i| {
                    if as_is(i) {
                        i.clone()
                    } else {
                        copies[&i.id].clone()
                    }
                })
                .collect();
            let copy = Node::new(n.op.clone(), mapped, n.shape.clone(), n.device.clone());
            copy.recompute.set(true);
            copies.insert(n.id, copy);
        }
        copies[&value.id].clone()
    }
}

/// Edits made to adjoints' inputs: (adjoint, input index, original value).
struct Rewrite {
    dropped: usize,
    edits: Vec<(Arc<Node>, usize, Arc<Node>)>,
}

impl Rewrite {
    fn undo(self) {
        for (reader, i, original) in self.edits.into_iter().rev() {
            reader.inputs.borrow_mut()[i] = original;
        }
    }
}
