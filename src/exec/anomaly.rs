//! Anomaly detection: find the first op, in execution order, whose output
//! holds a NaN or an infinity (see `Device::set_detect_anomaly`).

use std::collections::HashSet;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::graph::{Node, NodeId, Op, topo_order};
use crate::tensor::Tensor;

/// Computes the pending ops that `targets` need one at a time, each read
/// back and checked. Updates of variables (and what depends on them) are
/// left to the realize that follows, which orders them after every read of
/// the old values.
pub(crate) async fn check(targets: &[Rc<Node>]) -> Result<()> {
    let order = topo_order(targets, |n| n.is_realized());
    let mut after_update: HashSet<NodeId> = HashSet::new();
    // Nodes whose buffers hold u32 indices, not floats.
    let mut integer: HashSet<NodeId> = HashSet::new();
    for node in order.iter().filter(|n| !n.is_realized()) {
        let inputs = node.inputs().clone();
        if matches!(node.op, Op::Assign) || inputs.iter().any(|i| after_update.contains(&i.id)) {
            after_update.insert(node.id);
            continue;
        }
        let is_integer = match &node.op {
            Op::Indices(_) => true,
            Op::Family(f) => f.integer_output(),
            Op::Reshape => integer.contains(&inputs[0].id),
            _ => false,
        };
        if is_integer {
            integer.insert(node.id);
            continue;
        }
        if matches!(node.op, Op::Input(_) | Op::Variable(_)) {
            continue;
        }
        // A handle keeps the value on the node, so later ops read it.
        let t = Tensor::from_node(node.clone());
        let values = super::read_unchecked(&[&t], &[]).await?.remove(0);
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let what = if values[i].is_nan() {
                "NaN"
            } else {
                "an infinity"
            };
            let made_of: Vec<String> = inputs
                .iter()
                .map(|x| format!("{} {:?}", x.op.name(), x.shape))
                .collect();
            return Err(Error::Anomaly(format!(
                "{} (node #{}) of shape {:?} holds {what} at element {i}; its inputs: {}",
                node.op.name(),
                node.id,
                node.shape,
                if made_of.is_empty() {
                    "none".to_string()
                } else {
                    made_of.join(", ")
                }
            )));
        }
    }
    Ok(())
}
