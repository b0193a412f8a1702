//! Emission order: inputs before users; every kernel reading a buffer that
//! an update overwrites before that update (anti-dependences); otherwise
//! the pending order, so an update runs as soon as its value is ready and
//! the gradient it consumed is freed early.

use rustc_hash::FxHashMap as HashMap;
use std::cmp::Reverse;
use std::sync::Arc;

use super::Pending;
use super::fusion::Fusion;
use crate::error::{Error, Result};
use crate::graph::{Node, NodeId};

/// The order in which `kernels` (the materialized pending nodes, in
/// pending order) are encoded.
pub(super) fn emission_order<'a>(
    kernels: &[&'a Arc<Node>],
    fusion: &Fusion,
    pending: &Pending,
) -> Result<Vec<&'a Arc<Node>>> {
    let position: HashMap<NodeId, usize> =
        kernels.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); kernels.len()];
    let mut waiting_on = vec![0usize; kernels.len()];
    for (i, node) in kernels.iter().enumerate() {
        for id in fusion.kernel_inputs(node) {
            if let Some(&j) = position.get(&id) {
                users[j].push(i);
                waiting_on[i] += 1;
            }
            if let Some(&update) = pending.overwritten_by.get(&id)
                && update != node.id
            {
                let j = position[&update];
                users[i].push(j);
                waiting_on[j] += 1;
            }
        }
    }
    // Priorities follow the pending order, except that values a checkpoint
    // recomputes run just before their first consumer (as late as
    // possible): run as early as their inputs allow, they would be held
    // through the whole backward pass, which is what checkpointing avoids.
    let mut priority: Vec<usize> = (0..kernels.len()).map(|i| 2 * i + 1).collect();
    for i in (0..kernels.len()).rev() {
        if kernels[i].recompute.get()
            && let Some(first_use) = users[i].iter().map(|&u| priority[u]).min()
        {
            priority[i] = first_use.saturating_sub(1);
        }
    }
    let mut ready: std::collections::BinaryHeap<Reverse<(usize, usize)>> = (0..kernels.len())
        .filter(|&i| waiting_on[i] == 0)
        .map(|i| Reverse((priority[i], i)))
        .collect();
    let mut order: Vec<&Arc<Node>> = Vec::with_capacity(kernels.len());
    while let Some(Reverse((_, i))) = ready.pop() {
        order.push(kernels[i]);
        for &u in &users[i] {
            waiting_on[u] -= 1;
            if waiting_on[u] == 0 {
                ready.push(Reverse((priority[u], u)));
            }
        }
    }
    if order.len() < kernels.len() {
        return Err(Error::Validation(
            "the variable updates of this realize read each other's old values in a cycle \
             that webgrad cannot order (a bug: please report it)"
                .into(),
        ));
    }
    Ok(order)
}
