//! jvp rules: how each op pushes tangents forward, Δv_i = Σ_k ∂v_i/∂v_k · Δv_k,
//! written with ordinary graph ops so that tangents can be differentiated too.
//!
//! Tangents may carry leading batch axes (`lead`, e.g. `[K]` to push K
//! directions through in one pass): a tangent of a node of shape S has shape
//! `lead ++ S`. Rules may return a tangent in a shape that broadcasts to
//! that; forward mode broadcasts it up centrally (the dual of reverse mode's
//! un-broadcast).

use crate::graph::family::{lift, with_lead};
use crate::graph::{Node, Op};
use crate::ops::reduce::ReduceOp;
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::sync::Arc;

/// Axes of the primal shifted past the batch axes.
fn shifted(axes: &[usize], lead: &[usize]) -> Vec<usize> {
    axes.iter().map(|a| a + lead.len()).collect()
}

/// The tangent of `node` given its inputs' tangents (`None` = zero).
pub(crate) fn jvp(node: &Arc<Node>, dx: &[Option<Tensor>], lead: &[usize]) -> Option<Tensor> {
    let inputs: Vec<Tensor> = node
        .inputs()
        .iter()
        .map(|n| Tensor::from_node(n.clone()))
        .collect();
    let y = Tensor::from_node(node.clone());
    let out = node.shape.dims();
    let l = lead.len();
    match &node.op {
        Op::Input(_) | Op::Indices(_) | Op::Fill(_) | Op::Detach | Op::Variable(_) => None,
        // An update carries the variable's tangent (see the vjp rule).
        Op::Assign => dx[0].clone(),
        // A checkpoint is its region's output, whose tangent forward mode
        // has propagated through the region already.
        Op::Checkpoint(_) => dx[0].clone(),
        Op::Custom(_) => crate::autodiff::custom::jvp(node, dx, lead),
        // Elementwise Jacobians are diagonal, hence self-adjoint: the tangent
        // rule is the vjp rule applied to the tangent, Δy = f'(x)·Δx.
        Op::Unary(u) => {
            let d = lift(dx[0].as_ref()?, lead, out.len());
            (u.rule().vjp)(&inputs[0], &y, &d, u.constant().unwrap_or(0.0))
        }
        // Δy = Δx, rounded to y's dtype (the vjp rule's derivative of 1).
        Op::Convert(d) => Some(dx[0].as_ref()?.to_dtype(*d)),
        // Δy = ∂y/∂a·Δa + ∂y/∂b·Δb
        // Δ where(m, a, b) = where(m, Δa, Δb)
        Op::Where => {
            if dx[1].is_none() && dx[2].is_none() {
                return None;
            }
            let zero = Tensor::zeros(y.device(), Shape::scalar());
            let branch = |d: &Option<Tensor>| {
                d.as_ref()
                    .map_or(zero.clone(), |d| lift(d, lead, out.len()))
            };
            Some(inputs[0].where_cond(&branch(&dx[1]), &branch(&dx[2])))
        }
        Op::Binary(b) => {
            let rule = b.info().vjp;
            let da = dx[0]
                .as_ref()
                .and_then(|d| rule(&inputs[0], &inputs[1], &y, &lift(d, lead, out.len())).0);
            let db = dx[1]
                .as_ref()
                .and_then(|d| rule(&inputs[0], &inputs[1], &y, &lift(d, lead, out.len())).1);
            match (da, db) {
                (Some(a), Some(b)) => Some(&a + &b),
                (a, b) => a.or(b),
            }
        }
        // Δ(Σx) = ΣΔx
        Op::Reduce {
            op: ReduceOp::Sum,
            axes,
        } => Some(dx[0].as_ref()?.sum_axes_keepdim(&shifted(axes, lead))),
        // The extreme moves with the elements attaining it (ties share evenly).
        Op::Reduce { op, axes } => {
            let x = &inputs[0];
            let mask = if *op == ReduceOp::Max {
                x.ge(&y)
            } else {
                y.ge(x)
            };
            let count = mask.sum_axes_keepdim(axes);
            Some(&(dx[0].as_ref()? * &mask).sum_axes_keepdim(&shifted(axes, lead)) / &count)
        }
        Op::Family(f) => f.jvp(&inputs, &y, dx, lead),
        Op::Reshape => Some(dx[0].as_ref()?.reshape(with_lead(lead, out))),
        Op::Permute(perm) => {
            let full: Vec<usize> = (0..l).chain(perm.iter().map(|p| p + l)).collect();
            Some(dx[0].as_ref()?.permute(&full))
        }
        Op::Expand => {
            Some(lift(dx[0].as_ref()?, lead, out.len()).broadcast_to(with_lead(lead, out)))
        }
        Op::Slice { starts } => {
            let ranges: Vec<std::ops::Range<usize>> = lead
                .iter()
                .map(|&k| 0..k)
                .chain(starts.iter().zip(out).map(|(&s, &d)| s..s + d))
                .collect();
            Some(dx[0].as_ref()?.slice(&ranges))
        }
        Op::Pad { starts } => {
            let at: Vec<usize> = vec![0; l]
                .into_iter()
                .chain(starts.iter().copied())
                .collect();
            Some(dx[0].as_ref()?.pad_into(with_lead(lead, out), &at))
        }
    }
}
