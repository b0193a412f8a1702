//! Anomaly detection: find the first op, in execution order, that makes a
//! NaN from inputs holding none, or an infinity from finite inputs (see
//! `Device::set_detect_anomaly`). An infinity or NaN that is carried on
//! from an input (a causal mask's −∞ through `select`) or that the program
//! wrote as a constant (the mask's fill) is intended, not an anomaly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::{Node, NodeId, Op, topo_order};
use crate::tensor::Tensor;

/// What a value holds: a NaN, an infinity or NaN.
#[derive(Clone, Copy, Default)]
struct Holds {
    nan: bool,
    non_finite: bool,
}

impl Holds {
    fn of(values: &[f32]) -> Holds {
        Holds {
            nan: values.iter().any(|v| v.is_nan()),
            non_finite: values.iter().any(|v| !v.is_finite()),
        }
    }
}

/// Computes the pending ops that `targets` need one at a time, each read
/// back and checked. Updates of variables (and what depends on them) are
/// left to the realize that follows, which orders them after every read of
/// the old values.
pub(crate) async fn check(targets: &[Arc<Node>]) -> Result<()> {
    let order = topo_order(targets, |n| n.is_realized());
    let mut after_update: HashSet<NodeId> = HashSet::new();
    // Nodes whose buffers hold u32 indices, not floats.
    let mut integer: HashSet<NodeId> = HashSet::new();
    let mut holds: HashMap<NodeId, Holds> = HashMap::new();
    for node in order.iter() {
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
        // Inputs, variables and values computed earlier are data, and a
        // constant is what the program wrote: none is an anomaly. (Asked
        // before the read, which realizes the node.)
        let data =
            node.is_realized() || matches!(node.op, Op::Input(_) | Op::Variable(_) | Op::Fill(_));
        // A handle keeps the value on the node, so later ops read it.
        let t = Tensor::from_node(node.clone());
        let values = super::read_unchecked(&[&t], &[]).await?.remove(0);
        let here = Holds::of(&values);
        holds.insert(node.id, here);
        if data {
            continue;
        }
        let from = inputs.iter().fold(Holds::default(), |acc, i| {
            let h = holds.get(&i.id).copied().unwrap_or_default();
            Holds {
                nan: acc.nan || h.nan,
                non_finite: acc.non_finite || h.non_finite,
            }
        });
        let made_nan = here.nan && !from.nan;
        let made_infinity = here.non_finite && !from.non_finite;
        if made_nan || made_infinity {
            let i = values
                .iter()
                .position(|v| if made_nan { v.is_nan() } else { !v.is_finite() })
                .unwrap_or(0);
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
