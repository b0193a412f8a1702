//! Custom derivatives of compositions (JAX's `custom_vjp` and
//! `custom_jvp`): a function written with tensor ops whose derivative the
//! user supplies instead of the one its ops would give.
//!
//! The classic uses: a numerically careful gradient (a norm at 0, where
//! `x/|x|` is 0/0), a straight-through estimator (round forward, identity
//! backward), clipping a gradient inside the graph. The function's value
//! is recorded as usual; behind it sits one node of [`Op::Custom`] whose
//! value is that of the function (an alias, no kernel) and whose
//! derivative rule is the user's. Reverse mode asks that node, not the
//! function's ops, so the function's intermediate values are read by no
//! backward pass and freed after the forward one.
//!
//! The rules return tensors built with ordinary ops, so they are graph
//! nodes like every adjoint: differentiating a gradient again
//! differentiates the user's rule (grad-of-grad through a `custom_vjp` is
//! the derivative of its vjp, as in JAX). Where this differs from JAX:
//!
//! - forward mode through a [`custom_vjp`] function (a `jvp`, or the outer
//!   pass of `hvp`) follows the function's own ops, where JAX refuses.
//!   Give the rule with [`custom_jvp`] when forward mode must follow it.
//! - reverse mode through a [`custom_jvp`] function transposes the user's
//!   jvp, which must therefore be linear in the tangents (JAX requires the
//!   same): the transpose of Δx ↦ jvp(x, Δx) at a cotangent g is the
//!   gradient of ⟨jvp(x, Δx), g⟩ with respect to Δx, which reverse mode
//!   computes from the rule's ops at Δx = 0 (for a linear map it does not
//!   depend on Δx).

use std::sync::Arc;

use crate::graph::family::per_direction;
use crate::graph::{Node, NodeId, Op, next_id};
use crate::tensor::Tensor;

/// A user's vjp: the arguments, the function's value and the cotangent to
/// one partial adjoint per argument (`None` where zero).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type VjpRule = dyn Fn(&[Tensor], &Tensor, &Tensor) -> Vec<Option<Tensor>> + Send + Sync;
#[cfg(target_arch = "wasm32")]
pub(crate) type VjpRule = dyn Fn(&[Tensor], &Tensor, &Tensor) -> Vec<Option<Tensor>>;

/// A user's jvp: the arguments, the function's value and one tangent per
/// argument (`None` where zero) to the value's tangent (`None` where zero).
/// It must be linear in the tangents.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type JvpRule =
    dyn Fn(&[Tensor], &Tensor, &[Option<Tensor>]) -> Option<Tensor> + Send + Sync;
#[cfg(target_arch = "wasm32")]
pub(crate) type JvpRule = dyn Fn(&[Tensor], &Tensor, &[Option<Tensor>]) -> Option<Tensor>;

/// The derivative rule of an [`Op::Custom`] node, with the name its
/// messages and graph dumps use.
#[derive(Clone)]
pub(crate) struct CustomRule {
    pub name: Arc<str>,
    pub rule: Rule,
}

#[derive(Clone)]
pub(crate) enum Rule {
    Vjp(Arc<VjpRule>),
    Jvp(Arc<JvpRule>),
}

impl std::fmt::Debug for CustomRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomRule({})", self.name)
    }
}

/// `f(inputs)`, differentiated in reverse mode by `vjp` instead of by
/// `f`'s ops: `vjp(args, y, g)` returns ∂L/∂args\[k\] given g = ∂L/∂y, one
/// entry per argument (`None` where zero), each of its argument's shape.
///
/// `f` runs once, now. It may read only its arguments (and constants it
/// makes itself): a tensor it captures from outside would have no rule for
/// its gradient, so that is refused with a message. `name` appears in
/// messages and graph dumps. See the module docs for higher derivatives
/// and forward mode.
///
/// ```no_run
/// # use webgrad::{Device, Tensor, custom_vjp, grad};
/// # let device = Device::new_blocking().unwrap();
/// let x = Tensor::from_vec(&device, vec![0.4, 1.6], [2]);
/// // Straight-through: sign forward, identity backward.
/// let y = custom_vjp("sign_ste", &[&x], |a| a[0].sign(), |_, _, g| vec![Some(g.clone())]);
/// let dx = grad(&y.sum(), &[&x]);
/// ```
#[track_caller]
pub fn custom_vjp(
    name: &str,
    inputs: &[&Tensor],
    f: impl FnOnce(&[Tensor]) -> Tensor,
    vjp: impl Fn(&[Tensor], &Tensor, &Tensor) -> Vec<Option<Tensor>> + crate::SendSync + 'static,
) -> Tensor {
    record(name, inputs, f, Rule::Vjp(Arc::new(vjp)))
}

/// `f(inputs)`, differentiated in forward mode by `jvp` instead of by
/// `f`'s ops: `jvp(args, y, dargs)` returns Δy given one tangent per
/// argument (`None` where zero), or `None` if Δy is zero. Reverse mode
/// transposes it (see the module docs), so `jvp` must be linear in the
/// tangents; grad, grad-of-grad, hvp and Hessians all follow the rule.
///
/// `f` runs once, now, and may read only its arguments, as for
/// [`custom_vjp`].
#[track_caller]
pub fn custom_jvp(
    name: &str,
    inputs: &[&Tensor],
    f: impl FnOnce(&[Tensor]) -> Tensor,
    jvp: impl Fn(&[Tensor], &Tensor, &[Option<Tensor>]) -> Option<Tensor> + crate::SendSync + 'static,
) -> Tensor {
    record(name, inputs, f, Rule::Jvp(Arc::new(jvp)))
}

#[track_caller]
fn record(
    name: &str,
    inputs: &[&Tensor],
    f: impl FnOnce(&[Tensor]) -> Tensor,
    rule: Rule,
) -> Tensor {
    assert!(
        !inputs.is_empty(),
        "custom rule `{name}`: the function needs at least one argument"
    );
    let args: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let first = next_id();
    let y = f(&args);
    if let Some(outside) = captured(&y, first, &args) {
        panic!(
            "custom rule `{name}`: the function reads a tensor of shape {:?} ({}) that is not one of its arguments; pass it as an argument (its rule may give it no gradient), or the gradient through it would be lost",
            outside.shape,
            outside.op.name()
        );
    }
    let mut all: Vec<&Tensor> = vec![&y];
    all.extend(inputs.iter().copied());
    Tensor::record(
        Op::Custom(CustomRule {
            name: name.into(),
            rule,
        }),
        &all,
        y.shape().clone(),
    )
}

/// A node older than `first` that the function's nodes (those recorded
/// since `first`, up to `y`) read, other than its arguments and constants.
fn captured(y: &Tensor, first: NodeId, args: &[Tensor]) -> Option<Arc<Node>> {
    let arg_ids: std::collections::HashSet<NodeId> = args.iter().map(Tensor::id).collect();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<Arc<Node>> = vec![y.node.clone()];
    while let Some(n) = stack.pop() {
        if arg_ids.contains(&n.id) || !seen.insert(n.id) {
            continue;
        }
        if n.id < first {
            if !matches!(n.op, Op::Fill(_) | Op::Indices(_)) {
                return Some(n);
            }
            continue;
        }
        stack.extend(n.inputs().iter().cloned());
    }
    None
}

fn rule_of(node: &Node) -> &CustomRule {
    let Op::Custom(rule) = &node.op else {
        unreachable!("a custom rule asked of a {}", node.op.name())
    };
    rule
}

/// Partial adjoints of a custom node's inputs given its adjoint `g`:
/// none for input 0 (the function's own value, so its ops are not
/// differentiated), the rule's for the arguments.
pub(crate) fn vjp(node: &Arc<Node>, g: &Tensor) -> Vec<Option<Tensor>> {
    let custom = rule_of(node);
    let args: Vec<Tensor> = node.inputs()[1..]
        .iter()
        .map(|n| Tensor::from_node(n.clone()))
        .collect();
    let y = Tensor::from_node(node.clone());
    let partials = match &custom.rule {
        Rule::Vjp(rule) => {
            let partials = rule(&args, &y, g);
            assert_eq!(
                partials.len(),
                args.len(),
                "custom_vjp `{}`: the vjp returned {} gradients for {} arguments",
                custom.name,
                partials.len(),
                args.len()
            );
            partials
        }
        Rule::Jvp(rule) => transpose(&custom.name, rule.as_ref(), &args, &y, g),
    };
    for (k, (p, a)) in partials.iter().zip(&args).enumerate() {
        if let Some(p) = p {
            assert!(
                p.shape() == a.shape(),
                "custom rule `{}`: the gradient for argument {k} has shape {:?}, the argument {:?}",
                custom.name,
                p.shape(),
                a.shape()
            );
        }
    }
    let mut out = vec![None];
    out.extend(partials);
    out
}

/// Aᵀg for the linear map A: Δx ↦ jvp(x, Δx), one argument at a time: the
/// gradient of ⟨jvp(x, Δx_k), g⟩ with respect to Δx_k, taken at Δx_k = 0.
fn transpose(
    name: &str,
    rule: &JvpRule,
    args: &[Tensor],
    y: &Tensor,
    g: &Tensor,
) -> Vec<Option<Tensor>> {
    (0..args.len())
        .map(|k| {
            let probe = args[k].zeros_like();
            let mut dx = vec![None; args.len()];
            dx[k] = Some(probe.clone());
            let dy = checked_tangent(name, rule(args, y, &dx), y)?;
            let found =
                crate::autodiff::reverse::adjoints(&dy, g, std::slice::from_ref(&probe.node));
            found.get(&probe.id()).cloned()
        })
        .collect()
}

#[track_caller]
fn checked_tangent(name: &str, dy: Option<Tensor>, y: &Tensor) -> Option<Tensor> {
    let dy = dy?;
    assert!(
        dy.shape() == y.shape(),
        "custom_jvp `{name}`: the jvp returned a tangent of shape {:?} for a value of shape {:?}",
        dy.shape(),
        y.shape()
    );
    Some(dy)
}

/// The tangent of a custom node: the user's jvp rule, or (for a
/// custom_vjp) the function's own tangent, which forward mode has pushed
/// through its ops into input 0 already. Tangents with leading batch axes
/// `lead` go through the rule one direction at a time.
pub(crate) fn jvp(node: &Arc<Node>, dx: &[Option<Tensor>], lead: &[usize]) -> Option<Tensor> {
    let custom = rule_of(node);
    let Rule::Jvp(rule) = &custom.rule else {
        return dx[0].clone();
    };
    let args: Vec<Tensor> = node.inputs()[1..]
        .iter()
        .map(|n| Tensor::from_node(n.clone()))
        .collect();
    let y = Tensor::from_node(node.clone());
    let one_direction =
        |d: &[Option<Tensor>]| checked_tangent(&custom.name, rule(&args, &y, d), &y);
    per_direction(&args, &y, &dx[1..], lead, &one_direction)
}
