//! vjp rules of the graph's own ops: reductions, views, select. The
//! elementwise ones sit in their table rows in `ops/elementwise.rs`; every
//! other op family carries its rule itself (see `ops/family.rs`). Each
//! returns, for every input, the partial adjoint Δv_{k→i} = Δv_i · ∂v_i/∂v_k,
//! or `None` where it is zero.
//! Partial adjoints may come back in a broadcast shape: reverse mode sums
//! them to the input's shape centrally.

use crate::dtype::DType;
use crate::graph::{Node, Op};
use crate::ops::reduce::ReduceOp;
use crate::tensor::Tensor;
use std::sync::Arc;

/// Partial adjoints of `node`'s inputs given its adjoint `g`.
pub(crate) fn vjp(node: &Arc<Node>, g: &Tensor) -> Vec<Option<Tensor>> {
    let inputs: Vec<Tensor> = node.inputs().iter().map(saved).collect();
    let y = || saved(node);
    match &node.op {
        Op::Input(_) | Op::Indices(_) | Op::Fill(_) | Op::Detach | Op::Variable(_) => {
            vec![None; inputs.len()]
        }
        // The region's vjp from a recomputation: f re-recorded on the same
        // inputs (fresh nodes, marked to run just in time), differentiated
        // with the cotangent; nothing flows into the forward's output (input 0),
        // so the forward's intermediates are not read by the backward pass.
        Op::Checkpoint(_) => crate::autodiff::remat::vjp_partials(node, g)
            .into_iter()
            .map(|partials| partials.into_iter().reduce(|a, b| &a + &b))
            .collect(),
        // An update is not differentiated (an optimizer step under no_grad):
        // its value is the variable's, so the adjoint goes to the variable.
        Op::Assign => {
            let mut out = vec![None; inputs.len()];
            out[0] = Some(g.clone());
            out
        }
        Op::Unary(u) => vec![(u.rule().vjp)(
            &inputs[0],
            &y(),
            g,
            u.constant().unwrap_or(0.0),
        )],
        // y = round(x): a conversion's derivative is taken as 1 (as in every
        // framework's casts), so ∂L/∂x = g, in x's dtype.
        Op::Convert(_) => vec![Some(g.to_dtype(node.inputs()[0].dtype))],
        // The adjoint flows to the branch that was chosen; the mask has none.
        Op::Where => {
            let zero = Tensor::zeros(g.device(), crate::Shape::scalar());
            vec![
                None,
                Some(inputs[0].where_cond(g, &zero)),
                Some(inputs[0].where_cond(&zero, g)),
            ]
        }
        Op::Binary(b) => {
            let (ga, gb) = (b.info().vjp)(&inputs[0], &inputs[1], &y(), g);
            vec![ga, gb]
        }
        // ∂(Σ x)/∂x = 1: the adjoint is copied back over the reduced axes.
        Op::Reduce {
            op: ReduceOp::Sum, ..
        } => vec![Some(g.broadcast_to(inputs[0].shape().clone()))],
        // Max/min pass the adjoint to the elements that attain the extreme,
        // split evenly between ties (a valid subgradient, deterministic).
        Op::Reduce { op, axes } => {
            let x = &inputs[0];
            let y = y();
            let mask = if *op == ReduceOp::Max {
                x.ge(&y)
            } else {
                y.ge(x)
            };
            let count = mask.sum_axes_keepdim(axes);
            vec![Some(&mask * &(g / &count))]
        }
        Op::Family(f) => f.vjp(&inputs, &y(), g),
        Op::Custom(_) => crate::autodiff::custom::vjp(node, g),
        Op::Reshape => vec![Some(g.reshape(inputs[0].shape().clone()))],
        Op::Permute(perm) => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            vec![Some(g.permute(&inverse))]
        }
        // The copies made by broadcasting are summed back by reverse mode's un-broadcast.
        Op::Expand => vec![Some(g.clone())],
        Op::Slice { starts } => vec![Some(g.pad_into(inputs[0].shape().clone(), starts))],
        Op::Pad { starts } => {
            let ranges: Vec<std::ops::Range<usize>> = starts
                .iter()
                .zip(inputs[0].dims())
                .map(|(&s, &d)| s..s + d)
                .collect();
            vec![Some(g.slice(&ranges))]
        }
    }
}

/// The value of `n` a vjp reads. An op on 16-bit tensors runs in f32
/// between conversions (`Tensor::record`); its backward pass reads the
/// 16-bit values instead, converted to f32 again just before use, so the
/// f32 copies of the forward pass are freed when the forward pass is done
/// with them and the values kept for the backward pass take 16 bits each
/// (PyTorch's autocast likewise saves the 16-bit tensors). An input that
/// is a conversion of a 16-bit value reads the same values; an output
/// stored in 16 bits reads them rounded, as they were stored.
fn saved(n: &Arc<Node>) -> Tensor {
    let widened_from = match &n.op {
        Op::Convert(DType::F32) => Some(n.inputs()[0].clone()).filter(|x| x.dtype != DType::F32),
        _ => None,
    };
    let stored = n
        .stored_16
        .borrow()
        .as_ref()
        .and_then(std::sync::Weak::upgrade);
    match widened_from.or(stored) {
        Some(narrow) => {
            let wide = Tensor::from_node(narrow).to_dtype(DType::F32);
            wide.node.recompute.set(true);
            wide
        }
        None => Tensor::from_node(n.clone()),
    }
}
