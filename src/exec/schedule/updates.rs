//! Variable updates: which write their variable's buffer in place, which
//! values they overwrite, reads of values overwritten since (an error),
//! and the graphs realized updates forget.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::{Node, NodeId, Op, VariableState};

/// Realized detached values and updates forget the graph that produced
/// them (an update keeps its variable, to which its gradient goes).
pub(super) fn forget_graphs(pending: &[&Arc<Node>], in_place: &HashSet<NodeId>) {
    for node in pending {
        if !node.is_realized() {
            continue;
        }
        match node.op {
            Op::Detach => node.inputs.borrow_mut().clear(),
            Op::Assign => {
                if in_place.contains(&node.id) {
                    variable_state(&node.inputs()[0]).written.set(node.id);
                }
                node.inputs.borrow_mut().truncate(1);
            }
            _ => {}
        }
    }
}

pub(super) fn variable_state(node: &Node) -> &VariableState {
    match &node.op {
        Op::Variable(state) => state,
        _ => unreachable!("an update's target is a variable"),
    }
}

/// The updates that write their variable's buffer: per variable, the one
/// recorded last among the pending ones, unless a later one was written
/// already. The others (superseded in program order) are copies of their
/// values into buffers of their own.
pub(super) fn in_place_updates(pending: &[&Arc<Node>]) -> HashSet<NodeId> {
    let mut last: HashMap<NodeId, (NodeId, NodeId)> = HashMap::default();
    for node in pending.iter().filter(|n| matches!(n.op, Op::Assign)) {
        let var = &node.inputs()[0];
        let written = variable_state(var).written.get();
        let entry = last.entry(var.id).or_insert((node.id, written));
        entry.0 = entry.0.max(node.id);
    }
    last.into_values()
        .filter(|&(update, written)| update > written)
        .map(|(update, _)| update)
        .collect()
}

/// For each node in `order` whose value is (a view of) the buffer of a
/// variable that an in-place update of this realize overwrites: that
/// update. Kernels reading such a value run before the update.
pub(super) fn overwritten_buffers(
    order: &[Arc<Node>],
    in_place: &HashSet<NodeId>,
) -> HashMap<NodeId, NodeId> {
    let mut by_buffer: HashMap<*const crate::exec::pool::PooledBuffer, NodeId> = HashMap::default();
    for node in order.iter().filter(|n| in_place.contains(&n.id)) {
        if let Some(buffer) = node.inputs()[0].storage.borrow().as_ref() {
            by_buffer.insert(Arc::as_ptr(buffer), node.id);
        }
    }
    let mut overwritten = HashMap::default();
    if by_buffer.is_empty() {
        return overwritten;
    }
    for node in order {
        let update = if let Some(storage) = node.storage.borrow().as_ref() {
            by_buffer.get(&Arc::as_ptr(storage)).copied()
        } else if matches!(
            node.op,
            Op::Reshape | Op::Detach | Op::Checkpoint(_) | Op::Custom(_)
        ) {
            overwritten.get(&node.inputs()[0].id).copied()
        } else {
            None
        };
        if let Some(update) = update {
            overwritten.insert(node.id, update);
        }
    }
    overwritten
}

/// Program order cannot be kept for a value read from a variable whose
/// buffer has since been overwritten: that is an error, not a silent read
/// of the newer value.
pub(super) fn check_stale(order: &[Arc<Node>]) -> Result<()> {
    for node in order {
        let inputs = node.inputs();
        if node.is_realized() {
            // A realized in-place update shares its variable's buffer.
            if matches!(node.op, Op::Assign) {
                let var = &inputs[0];
                let written = variable_state(var).written.get();
                let shares = match (&*node.storage.borrow(), &*var.storage.borrow()) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                };
                if shares && written != node.id {
                    return Err(Error::StaleRead(format!(
                        "update #{} of a variable of shape {:?} was overwritten by update #{written}; \
                         read an update's value before the next one of its variable is realized",
                        node.id, node.shape
                    )));
                }
            }
            continue;
        }
        for (k, input) in inputs.iter().enumerate() {
            if matches!(node.op, Op::Assign) && k == 0 {
                continue;
            }
            if let Op::Variable(state) = &input.op {
                let written = state.written.get();
                if node.id < written {
                    return Err(Error::StaleRead(format!(
                        "{} (node #{}) reads a variable of shape {:?} as it was before update \
                         #{written}, which has been realized since; realize an op together with \
                         (or before) the updates recorded after it",
                        node.op.name(),
                        node.id,
                        input.shape
                    )));
                }
            }
        }
    }
    Ok(())
}
