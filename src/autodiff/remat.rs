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

use std::sync::Arc;

use crate::graph::{CheckpointFn, Node, NodeId, Op, next_id};
use crate::tensor::Tensor;

/// `f(inputs)`, with the region's intermediate values recomputed by the
/// backward pass instead of kept (see the module docs). `f` runs again,
/// later, and must compute the same thing then: tensors it captures
/// (weights in a closure) are found and differentiated like its arguments.
#[track_caller]
pub fn checkpoint(
    f: impl Fn(&[Tensor]) -> Tensor + crate::SendSync + 'static,
    inputs: &[&Tensor],
) -> Tensor {
    assert!(
        !inputs.is_empty(),
        "checkpoint: a region needs at least one input"
    );
    let args: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let first = next_id();
    let y = f(&args);
    // Values recorded before the region that it reads, other than its
    // arguments: what the closure captured. They become inputs of the
    // checkpoint node too, so that gradients reach them.
    let captured = captured_by(&y, first, &args);
    let mut all: Vec<&Tensor> = vec![&y];
    all.extend(inputs.iter().copied());
    all.extend(captured.iter());
    Tensor::record(
        Op::Checkpoint(CheckpointFn(Arc::new(f), args.len())),
        &all,
        y.shape().clone(),
    )
}

/// The nodes older than `first` that the region recorded since `first`
/// (up to `y`) reads, excluding `args` and constants, in a fixed order.
fn captured_by(y: &Tensor, first: NodeId, args: &[Tensor]) -> Vec<Tensor> {
    let arg_ids: std::collections::HashSet<NodeId> = args.iter().map(Tensor::id).collect();
    let mut seen = std::collections::HashSet::new();
    let mut captured = Vec::new();
    let mut stack: Vec<Arc<Node>> = vec![y.node.clone()];
    while let Some(n) = stack.pop() {
        if !seen.insert(n.id) {
            continue;
        }
        if n.id < first {
            if !arg_ids.contains(&n.id) && !matches!(n.op, Op::Fill(_)) {
                captured.push(Tensor::from_node(n));
            }
            continue;
        }
        stack.extend(n.inputs().iter().cloned());
    }
    captured.sort_by_key(Tensor::id);
    captured
}

/// Marks the nodes recorded since `first` that `y` depends on as
/// recomputed values (walking back until older nodes), without recursion.
pub(crate) fn mark_recomputed(y: &Tensor, first: NodeId) {
    let mut stack: Vec<Arc<Node>> = vec![y.node.clone()];
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
pub(crate) fn vjp_partials(node: &Arc<Node>, g: &Tensor) -> Vec<Vec<Tensor>> {
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
    let inputs: Vec<Tensor> = node.inputs()[1..]
        .iter()
        .map(|n| Tensor::from_node(n.clone()))
        .collect();
    let first = next_id();
    let y = (f.0)(&inputs[..f.1]);
    mark_recomputed(&y, first);
    // Arguments and captured values alike receive their partials.
    let targets: Vec<Arc<Node>> = inputs.iter().map(|t| t.node.clone()).collect();
    let mut raw = crate::autodiff::reverse::partial_adjoints(&y, g, &targets);
    let mut out = vec![Vec::new()];
    // An input given twice gets its partials once.
    out.extend(
        inputs
            .iter()
            .map(|t| raw.remove(&t.id()).unwrap_or_default()),
    );
    out
}

/// A layer of a chain, for [`checkpoint_sequential`]: its weights captured.
#[cfg(not(target_arch = "wasm32"))]
pub type LayerFn = Arc<dyn Fn(&Tensor) -> Tensor + Send + Sync>;
/// One layer as a function (see the native documentation).
#[cfg(target_arch = "wasm32")]
pub type LayerFn = Arc<dyn Fn(&Tensor) -> Tensor>;

/// `layers` applied in order to `x`, every `segment` consecutive layers one
/// checkpointed region (`segment` 0: no checkpointing), like PyTorch's
/// `checkpoint_sequential`. Segments of √n of n layers are the classic
/// schedule: about 2√n activations kept instead of n, each layer run twice.
pub fn checkpoint_sequential(layers: &[LayerFn], x: &Tensor, segment: usize) -> Tensor {
    if segment == 0 {
        return layers.iter().fold(x.clone(), |h, layer| layer(&h));
    }
    let mut h = x.clone();
    for chunk in layers.chunks(segment) {
        let chunk: Vec<LayerFn> = chunk.to_vec();
        h = checkpoint(
            move |v: &[Tensor]| chunk.iter().fold(v[0].clone(), |h, layer| layer(&h)),
            &[&h],
        );
    }
    h
}

/// The segment length for [`checkpoint_sequential`] (0: no checkpointing)
/// under which a training step on the chain `layers` fits `budget` bytes
/// of peak GPU memory (every live buffer of the device counted, as
/// [`crate::predict_peak_bytes`] does). `probe` turns the chain's output
/// into the tensors a step realizes together (the loss and the updates,
/// say); it is called once per candidate and nothing runs, so it must not
/// change host state (use an optimizer without host-side state for it, or
/// one cloned for the purpose). Tries no checkpointing first (nothing
/// recomputed), then segments of 2√n, √n and √n/2 layers (every layer
/// recomputed once; the memory is least near √n) and returns the first
/// that fits, or [`crate::Error::OutOfBudget`] with the smallest peak found.
pub fn choose_segments(
    layers: &[LayerFn],
    x: &Tensor,
    budget: u64,
    mut probe: impl FnMut(&Tensor) -> Vec<Tensor>,
) -> crate::Result<usize> {
    let n = layers.len();
    let root = ((n as f64).sqrt().round() as usize).max(1);
    let mut candidates = vec![0];
    for segment in [2 * root, root, root / 2] {
        if segment >= 1 && segment < n && !candidates.contains(&segment) {
            candidates.push(segment);
        }
    }
    let mut smallest = u64::MAX;
    for segment in candidates {
        let tensors = probe(&checkpoint_sequential(layers, x, segment));
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let needed = crate::predict_peak_bytes(&refs)?;
        if needed <= budget {
            return Ok(segment);
        }
        smallest = smallest.min(needed);
    }
    Err(crate::Error::OutOfBudget {
        needed: smallest,
        budget,
    })
}
