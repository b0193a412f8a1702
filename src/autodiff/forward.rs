//! Forward mode: tangents pushed through the graph alongside the values,
//! one pass per tangent direction (or K directions at once with a leading
//! batch axis), plus the derived transforms: Jacobians, Hessian-vector
//! products and Hessians.

use std::collections::HashMap;

use crate::graph::{NodeId, Op, topo_order};
use crate::shape::Shape;
use crate::tensor::Tensor;

use super::jvp::jvp as jvp_rule;
use super::reverse::{grad, grad_with_seed};
use crate::graph::family::with_lead;

/// Forward mode on an existing graph: the tangent of `y` when the tensors
/// `xs` move in the directions `dxs` (each of its x's shape), Δy = J·Δx.
/// Nothing runs until the tangent is read; it is an ordinary graph node.
#[track_caller]
pub fn tangent(y: &Tensor, xs: &[&Tensor], dxs: &[&Tensor]) -> Tensor {
    propagate(y, xs, dxs, &[])
}

/// [`tangent`] for K directions at once: each `dxs[i]` has shape
/// `[K, ..x_i's shape]` and the result `[K, ..y's shape]`.
#[track_caller]
pub fn tangent_batched(y: &Tensor, xs: &[&Tensor], dxs: &[&Tensor]) -> Tensor {
    assert_eq!(
        xs.len(),
        dxs.len(),
        "tangent_batched: {} inputs but {} tangents",
        xs.len(),
        dxs.len()
    );
    assert!(
        !dxs.is_empty() && dxs[0].rank() > 0,
        "tangent_batched: tangents need a leading batch axis, got shape {:?}",
        dxs.first().map(|d| d.shape().clone())
    );
    let k = dxs[0].dims()[0];
    propagate(y, xs, dxs, &[k])
}

#[track_caller]
fn propagate(y: &Tensor, xs: &[&Tensor], dxs: &[&Tensor], lead: &[usize]) -> Tensor {
    assert_eq!(
        xs.len(),
        dxs.len(),
        "jvp: {} inputs but {} tangents",
        xs.len(),
        dxs.len()
    );
    let mut tangents: HashMap<NodeId, Tensor> = HashMap::new();
    for (x, dx) in xs.iter().zip(dxs) {
        let want = with_lead(lead, x.dims());
        assert_eq!(
            dx.shape(),
            &want,
            "jvp: a tangent of shape {:?} for an input of shape {:?}",
            dx.shape(),
            x.shape()
        );
        tangents.insert(x.id(), (*dx).clone());
    }
    let order = topo_order(std::slice::from_ref(&y.node), |n| {
        matches!(n.op, Op::Detach) || tangents.contains_key(&n.id)
    });
    for node in &order {
        if tangents.contains_key(&node.id) {
            continue;
        }
        let dx: Vec<Option<Tensor>> = node
            .inputs()
            .iter()
            .map(|i| tangents.get(&i.id).cloned())
            .collect();
        if dx.iter().all(Option::is_none) {
            continue;
        }
        if let Some(t) = jvp_rule(node, &dx, lead) {
            let want = with_lead(lead, node.shape.dims());
            // Broadcast up: a rule may return a tangent that only broadcasts to the output.
            let t = if t.shape() == &want {
                t
            } else {
                let own = t.rank() - lead.len();
                let t = if own < node.shape.rank() {
                    let dims = [
                        lead,
                        &vec![1; node.shape.rank() - own],
                        &t.dims()[lead.len()..],
                    ]
                    .concat();
                    t.reshape(dims)
                } else {
                    t
                };
                t.broadcast_to(want)
            };
            tangents.insert(node.id, t);
        }
    }
    tangents
        .remove(&y.id())
        .unwrap_or_else(|| Tensor::zeros(y.device(), with_lead(lead, y.dims())))
}

/// `f` evaluated on the primals themselves, so its graph reaches them.
fn apply(f: impl Fn(&[Tensor]) -> Tensor, primals: &[&Tensor]) -> Tensor {
    let xs: Vec<Tensor> = primals.iter().map(|&p| p.clone()).collect();
    f(&xs)
}

/// Forward mode: evaluates `f` at `primals` and returns `(f(x), J·v)` for
/// the tangents `v` (one per primal, same shapes).
#[track_caller]
pub fn jvp(
    f: impl Fn(&[Tensor]) -> Tensor,
    primals: &[&Tensor],
    tangents: &[&Tensor],
) -> (Tensor, Tensor) {
    let y = apply(f, primals);
    let t = tangent(&y, primals, tangents);
    (y, t)
}

/// [`jvp`] for K tangent directions in one pass (tangents `[K, ..x]`, result `[K, ..y]`).
#[track_caller]
pub fn jvp_batched(
    f: impl Fn(&[Tensor]) -> Tensor,
    primals: &[&Tensor],
    tangents: &[&Tensor],
) -> (Tensor, Tensor) {
    for x in primals {
        check_batchable("jvp_batched", x);
    }
    let y = apply(f, primals);
    let t = tangent_batched(&y, primals, tangents);
    (y, t)
}

/// Reverse mode as a transform: `(f(x), Jᵀ·u)` for the cotangent `u` (y's shape).
#[track_caller]
pub fn vjp(
    f: impl Fn(&[Tensor]) -> Tensor,
    primals: &[&Tensor],
    cotangent: &Tensor,
) -> (Tensor, Vec<Tensor>) {
    let y = apply(f, primals);
    let g = grad_with_seed(&y, primals, cotangent);
    (y, g)
}

/// The identity as K = n tangent directions: `[n, ..shape]`, row i = e_i.
fn basis(x: &Tensor) -> Tensor {
    let n = x.numel();
    let mut eye = vec![0.0; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
    }
    Tensor::from_vec(x.device(), eye, with_lead(&[n], x.dims()))
}

/// Moves the batch axis of `[n, ..y]` to the end and splits it into x's shape: `[..y, ..x]`.
fn batch_last(t: &Tensor, y: &Shape, x: &Shape) -> Tensor {
    let r = t.rank();
    let perm: Vec<usize> = (1..r).chain([0]).collect();
    t.permute(&perm).reshape([y.dims(), x.dims()].concat())
}

/// The Jacobian ∂f/∂x by forward mode: all n = x.numel() directions in one
/// batched pass. Shape `[..y, ..x]`.
#[track_caller]
pub fn jacfwd(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    check_batchable("jacfwd", x);
    let y = f(x);
    let t = tangent_batched(&y, &[x], &[&basis(x)]);
    batch_last(&t, y.shape(), x.shape())
}

/// The Jacobian ∂f/∂x by reverse mode: one vjp per output element (all
/// recorded lazily and run in one submit when read). Shape `[..y, ..x]`.
#[track_caller]
pub fn jacrev(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let y = f(x);
    assert!(
        y.rank() + x.rank() <= crate::shape::MAX_RANK,
        "jacrev: the Jacobian of an output {:?} with respect to an input {:?} would have {} axes (at most {}); reshape them to fewer axes",
        y.shape(),
        x.shape(),
        y.rank() + x.rank(),
        crate::shape::MAX_RANK
    );
    let m = y.numel();
    if m == 0 || x.numel() == 0 {
        // No rows (or empty rows): the Jacobian is empty.
        return Tensor::zeros(x.device(), [y.dims(), x.dims()].concat());
    }
    let rows: Vec<Tensor> = (0..m)
        .map(|i| {
            let mut e = vec![0.0; m];
            e[i] = 1.0;
            let seed = Tensor::from_vec(x.device(), e, y.shape().clone());
            // Flat rows: an 8-axis input must not need a ninth axis here.
            grad_with_seed(&y, &[x], &seed)[0].reshape([1, x.numel()])
        })
        .collect();
    let stacked = Tensor::concat(&rows.iter().collect::<Vec<_>>(), 0);
    stacked.reshape([y.dims(), x.dims()].concat())
}

/// Hessian-vector product H·v of a scalar function, by forward-over-reverse:
/// the tangent of the gradient in the direction v. Costs about two gradients,
/// never forms H.
#[track_caller]
pub fn hvp(f: impl Fn(&Tensor) -> Tensor, x: &Tensor, v: &Tensor) -> Tensor {
    let y = f(x);
    check_scalar("hvp", &y);
    let g = &grad(&y, &[x])[0];
    tangent(g, &[x], &[v])
}

/// The Hessian of a scalar function, forward-over-reverse: the gradient's
/// tangents in all n directions in one batched pass. Shape `[..x, ..x]`.
/// Meant for small inputs (n² entries).
#[track_caller]
pub fn hessian(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let y = f(x);
    check_scalar("hessian", &y);
    let g = &grad(&y, &[x])[0];
    let t = tangent_batched(g, &[x], &[&basis(x)]);
    batch_last(&t, x.shape(), x.shape())
}

/// The Hessian by reverse-over-reverse: one gradient of each gradient
/// component. Agrees with [`hessian`]; kept to check one against the other.
#[track_caller]
pub fn hessian_reverse(f: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let y = f(x);
    check_scalar("hessian_reverse", &y);
    let g = grad(&y, &[x]).remove(0);
    jacrev(|_| g.clone(), x)
}

/// Hessians and HVPs are of scalar functions: say so, naming the call.
#[track_caller]
fn check_scalar(api: &str, y: &Tensor) {
    assert!(
        y.numel() == 1,
        "{api}: the function's output has shape {:?}, not a single value",
        y.shape()
    );
}

/// Batched tangents carry one more axis than their input: an input of the
/// most axes a tensor may have cannot be pushed forward in a batch.
#[track_caller]
fn check_batchable(api: &str, x: &Tensor) {
    assert!(
        x.rank() < crate::shape::MAX_RANK,
        "{api}: the input {:?} has {} axes and batched tangents need one more (at most {}); reshape it to fewer axes",
        x.shape(),
        x.rank(),
        crate::shape::MAX_RANK
    );
}
