//! Gradient checkpointing (`jax.checkpoint`): a region whose intermediate
//! values the backward pass recomputes instead of keeping.
//!
//! Reverse mode's cost is memory: every intermediate the adjoints need
//! stays alive from the forward pass to the backward pass. `checkpoint(f,
//! inputs)` records `f(inputs)` as usual for the forward pass, behind a
//! node whose vjp re-records `f` on the same inputs and differentiates that
//! copy. The forward's intermediates are then read by nothing after the
//! forward pass and are freed there; the copy's are computed just before
//! the adjoints that need them (the scheduler runs recomputed values as
//! late as possible) and freed right after. The price is running `f` twice.
//! The values are the same ops on the same inputs, so gradients are
//! bit-identical; grad-of-grad and forward-over-reverse go through the copy
//! like through any graph.

use std::rc::Rc;

use crate::graph::{CheckpointFn, Node, NodeId, Op, next_id};
use crate::tensor::Tensor;

/// `f(inputs)`, with the region's intermediate values recomputed by the
/// backward pass instead of kept (see the module docs). `f` must depend on
/// nothing but its arguments (and constants): it runs again, later.
#[track_caller]
pub fn checkpoint(f: impl Fn(&[Tensor]) -> Tensor + 'static, inputs: &[&Tensor]) -> Tensor {
    assert!(
        !inputs.is_empty(),
        "checkpoint: a region needs at least one input"
    );
    let args: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let y = f(&args);
    let mut all: Vec<&Tensor> = vec![&y];
    all.extend(inputs.iter().copied());
    Tensor::record(
        Op::Checkpoint(CheckpointFn(Rc::new(f))),
        &all,
        y.shape().clone(),
    )
}

/// Marks the nodes recorded since `first` that `y` depends on as
/// recomputed values (walking back until older nodes), without recursion.
pub(crate) fn mark_recomputed(y: &Tensor, first: NodeId) {
    let mut stack: Vec<Rc<Node>> = vec![y.node.clone()];
    while let Some(n) = stack.pop() {
        if n.id < first || n.recompute.get() {
            continue;
        }
        n.recompute.set(true);
        stack.extend(n.inputs().iter().cloned());
    }
}

/// The checkpoint node's partial adjoints per input, given its adjoint `g`:
/// its region re-recorded on the same inputs (fresh nodes, marked to run
/// just in time) and differentiated; nothing for input 0 (the forward's
/// output), so the backward pass reads none of the forward's intermediates.
/// Each input's partials come unsummed (see `reverse::partial_adjoints`).
pub(crate) fn vjp_partials(node: &Rc<Node>, g: &Tensor) -> Vec<Vec<Tensor>> {
    let Op::Checkpoint(f) = &node.op else {
        unreachable!("vjp_partials of a {}", node.op.name())
    };
    // The region runs again now: a variable among its inputs must still
    // hold the value it had when the region was recorded.
    for input in &node.inputs()[1..] {
        if let Op::Variable(state) = &input.op {
            let pending = state
                .latest
                .borrow()
                .upgrade()
                .is_some_and(|update| update.id > node.id);
            assert!(
                !pending && state.written.get() < node.id,
                "checkpoint: a variable of shape {:?} that the checkpointed region reads was updated after the region was recorded; take gradients before recording updates",
                input.shape
            );
        }
    }
    let region: Vec<Tensor> = node.inputs()[1..]
        .iter()
        .map(|n| Tensor::from_node(n.clone()))
        .collect();
    let first = next_id();
    let y = (f.0)(&region);
    mark_recomputed(&y, first);
    let targets: Vec<Rc<Node>> = region.iter().map(|t| t.node.clone()).collect();
    let mut raw = crate::autodiff::reverse::partial_adjoints(&y, g, &targets);
    let mut out = vec![Vec::new()];
    // An input given twice gets its partials once.
    out.extend(
        region
            .iter()
            .map(|t| raw.remove(&t.id()).unwrap_or_default()),
    );
    out
}
