//! The one interface through which the graph reaches an op family.
//!
//! A family (matmul, concat, conv2d, pooling, ...) lives in one file or
//! folder under `ops/`: its public methods and shape rule, its kernels
//! ([`Family::lower`], in the vocabulary of `kernel.rs`), its vjp and jvp
//! rules written as graph ops (so they can be differentiated again), and its
//! f64 reference semantics, which share no code with the kernels. The
//! scheduler, reverse mode, forward mode and the reference interpreter call
//! these methods and know nothing else of the family.
//!
//! Elementwise ops, reductions and the view-like movement ops (reshape,
//! permute, broadcast_to, slice, pad) stay variants of [`crate::graph::Op`]:
//! the scheduler fuses them into other kernels, which needs their structure.

use std::fmt::Debug;
use std::sync::Arc;

use crate::device::Device;
use crate::graph::Op;
use crate::kernel::{Lowering, Target};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// An op family: what the graph, the executor, both modes of
/// differentiation and the reference interpreter know of an op. Every
/// built-in op that is not elementwise, a reduction or a view implements
/// it; a user's op does too (see [`crate::op`], and
/// [`Tensor::apply_op`] to record one).
///
/// Required: [`name`](Family::name), [`lower`](Family::lower) and
/// [`vjp`](Family::vjp). The rest have defaults: the forward-mode rule is
/// derived (from [`linear_in`](Family::linear_in), or by transposing the
/// vjp), one kernel variant, no f64 reference (then [`crate::check_gradients`]
/// cannot check the op: use [`crate::numerical_grad`]).
pub trait Family: Debug + crate::SendSync {
    /// Short name with the op's settings, for messages, graph dumps and the
    /// profiler's table. Ops whose kernels differ need different names:
    /// [`Tensor::apply_op`] checks an op's kernels once per name and
    /// inputs' shapes.
    fn name(&self) -> String;

    /// The output's shape given the inputs' shapes, or a message saying
    /// what is wrong with them ([`Tensor::apply_op`] names the op in front
    /// of it). Built-in ops check shapes in their own methods and record
    /// the shape they computed, so the default refuses.
    fn output_shape(&self, inputs: &[&Shape]) -> std::result::Result<Shape, String> {
        let _ = inputs;
        Err("the op has no output_shape rule".into())
    }

    /// The kernels computing the output (of shape `out`) from inputs of
    /// shapes `inputs`. The output buffer starts with undefined contents.
    fn lower(&self, out: &Shape, inputs: &[&Shape], target: Target) -> Lowering;

    /// Other correct lowerings worth timing against [`Family::lower`]'s
    /// (the first of the list) for these shapes; the scheduler times each
    /// once per shape on the adapter and keeps the fastest (autotune, see
    /// `exec/tune.rs`). Most families have one.
    fn lower_variants(&self, out: &Shape, inputs: &[&Shape], target: Target) -> Vec<Lowering> {
        vec![self.lower(out, inputs, target)]
    }

    /// Which of [`Family::lower_variants`] deterministic mode runs, where
    /// nothing is timed: the one the family expects to be fastest at these
    /// shapes without measuring (the first by default).
    fn untimed_variant(&self, _out: &Shape, _inputs: &[&Shape], _target: Target) -> usize {
        0
    }

    /// Partial adjoints of the inputs given the output's adjoint `g`
    /// (`None` where zero). They may come back in a shape that broadcasts
    /// to the input's: reverse mode sums them down centrally.
    fn vjp(&self, x: &[Tensor], y: &Tensor, g: &Tensor) -> Vec<Option<Tensor>>;

    /// The inputs the op is linear in, each separately (a convolution's two
    /// operands, a gather's values). Declaring them is the whole
    /// forward-mode rule: Δy = Σ_k f(x₁, …, Δx_k, …, xₙ), which
    /// [`Family::jvp`]'s default builds from the op itself. Empty (the
    /// default) for a family that writes its own `jvp`.
    fn linear_in(&self) -> &[usize] {
        &[]
    }

    /// The output's tangent given the inputs' tangents `dx` (`None` = zero),
    /// each with leading batch axes `lead` (`lead ++ input shape`: forward
    /// mode may push several directions at once; the result then has shape
    /// `lead ++ output shape`). By default the rule of an op linear in
    /// [`Family::linear_in`], or else the transpose of
    /// [`vjp`](Family::vjp): the vjp is linear in its cotangent u,
    /// u ↦ Jᵀu, and J·Δx is the gradient of ⟨Jᵀu, Δx⟩ with respect to u,
    /// which reverse mode takes through the vjp's ops (one direction at a
    /// time). A family whose tangent is cheaper written out writes it.
    #[track_caller]
    fn jvp(
        &self,
        x: &[Tensor],
        y: &Tensor,
        dx: &[Option<Tensor>],
        lead: &[usize],
    ) -> Option<Tensor> {
        let linear = self.linear_in();
        let rule = |d: &[Option<Tensor>]| {
            if linear.is_empty() {
                transposed_vjp(x, y, d, &|u| self.vjp(x, y, u))
            } else {
                multilinear_jvp(x, d, linear, &|args| reapply(y, args))
            }
        };
        per_direction(x, y, dx, lead, &rule)
    }

    /// The f64 reference: the output's values (row-major) from the inputs'
    /// (integer inputs as their values). It must share no code with the
    /// kernels, so that it stays an independent oracle. By default the op
    /// has none, and the reference interpreter refuses it.
    fn reference(&self, out: &Shape, x: &[&[f64]], shapes: &[&Shape]) -> Vec<f64> {
        let _ = (out, x, shapes);
        panic!(
            "{}: the op has no f64 reference (Family::reference), so the reference interpreter \
             and check_gradients cannot evaluate it; check it with numerical_grad instead",
            self.name()
        )
    }

    /// Floating-point operations of the kernels for these shapes, for the
    /// profiler (0 where not counted: data movement, indexing).
    fn flops(&self, _out: &Shape, _inputs: &[&Shape]) -> u64 {
        0
    }

    /// True if the output holds u32 indices, not floats (argmax).
    fn integer_output(&self) -> bool {
        false
    }

    /// For a family with [`integer_output`](Family::integer_output): a
    /// bound every index it computes stays below, if one is known from
    /// the shapes (argmax over an axis of n entries: n). An index op whose
    /// indices are known to fit needs no check on the GPU.
    fn index_bound(&self, _inputs: &[&Shape]) -> Option<usize> {
        None
    }

    /// What a nonzero status word ([`Buf::Status`](crate::kernel::Buf))
    /// of this family's kernels means; `{value}` stands for status word 1.
    fn status_meaning(&self, _out: &Shape, _inputs: &[&Shape]) -> String {
        format!(
            "{}: a kernel reported a fault (value {{value}})",
            self.name()
        )
    }
}

/// J·Δx from a vjp `vjp(u) = Jᵀu` (one direction, no batch axes): the
/// gradient with respect to u of Σ_k ⟨J_kᵀu, Δx_k⟩, taken at u = 0 (for a
/// linear map the point does not matter). A partial adjoint may come in a
/// shape that broadcasts with its input's; the inner product with
/// broadcasting is the same either way.
pub(crate) fn transposed_vjp(
    x: &[Tensor],
    y: &Tensor,
    dx: &[Option<Tensor>],
    vjp: &dyn Fn(&Tensor) -> Vec<Option<Tensor>>,
) -> Option<Tensor> {
    if dx.iter().all(Option::is_none) {
        return None;
    }
    let probe = y.zeros_like();
    let partials = vjp(&probe);
    let mut inner: Option<Tensor> = None;
    for (p, d) in partials.iter().zip(dx).take(x.len()) {
        let (Some(p), Some(d)) = (p, d) else { continue };
        let term = (p * d).sum();
        inner = Some(match inner {
            Some(s) => &s + &term,
            None => term,
        });
    }
    let inner = inner?;
    let one = inner.ones_like();
    let found = crate::autodiff::reverse::adjoints(&inner, &one, std::slice::from_ref(&probe.node));
    found.get(&probe.id()).cloned()
}

/// A forward-mode `rule` written for tangents without batch axes, applied
/// to tangents with leading batch axes `lead` one direction at a time, the
/// results stacked (`lead ++ y's shape`). Zero tangents (`None`) stay zero.
pub(crate) fn per_direction(
    x: &[Tensor],
    y: &Tensor,
    dx: &[Option<Tensor>],
    lead: &[usize],
    rule: &dyn Fn(&[Option<Tensor>]) -> Option<Tensor>,
) -> Option<Tensor> {
    if lead.is_empty() {
        return rule(dx);
    }
    if dx.iter().all(Option::is_none) {
        return None;
    }
    let count: usize = lead.iter().product();
    let flat: Vec<Option<Tensor>> = dx
        .iter()
        .zip(x)
        .map(|(d, a)| d.as_ref().map(|d| d.reshape(with_lead(&[count], a.dims()))))
        .collect();
    let parts: Vec<Tensor> = (0..count)
        .map(|l| {
            let one: Vec<Option<Tensor>> = flat
                .iter()
                .zip(x)
                .map(|(d, a)| {
                    d.as_ref()
                        .map(|d| d.narrow(0, l..l + 1).reshape(a.shape().clone()))
                })
                .collect();
            let dy = rule(&one).unwrap_or_else(|| y.zeros_like());
            dy.reshape(with_lead(&[1], y.dims()))
        })
        .collect();
    let stacked = Tensor::concat(&parts.iter().collect::<Vec<_>>(), 0);
    Some(stacked.reshape(with_lead(lead, y.dims())))
}

impl Tensor {
    /// Records a node of family `f`.
    #[track_caller]
    pub(crate) fn record_family(
        f: impl Family + 'static,
        inputs: &[&Tensor],
        shape: Shape,
    ) -> Tensor {
        Tensor::record(Op::Family(Arc::new(f)), inputs, shape)
    }

    /// Records a family op with no inputs (a generated mask) on `device`.
    pub(crate) fn record_source(f: impl Family + 'static, device: &Device, shape: Shape) -> Tensor {
        let node =
            crate::graph::Node::new(Op::Family(Arc::new(f)), Vec::new(), shape, device.clone());
        Tensor::from_node(node)
    }
}

/// `lead ++ dims`: the shape of a tangent with leading batch axes `lead`
/// (forward mode pushes several directions through at once).
pub(crate) fn with_lead(lead: &[usize], dims: &[usize]) -> Shape {
    Shape::new(&[lead, dims].concat())
}

/// Inserts size-1 axes after the batch axes so that a tangent of a rank-r
/// input lines up with a rank-`rank` output under broadcasting.
pub(crate) fn lift(t: &Tensor, lead: &[usize], rank: usize) -> Tensor {
    let own = t.rank() - lead.len();
    if own >= rank {
        return t.clone();
    }
    let dims = [lead, &vec![1; rank - own], &t.dims()[lead.len()..]].concat();
    t.reshape(dims)
}

/// The family op that made `y`, recorded anew on `args` (of the primal
/// inputs' shapes, so the output's shape is `y`'s).
fn reapply(y: &Tensor, args: &[Tensor]) -> Tensor {
    let Op::Family(f) = &y.node.op else {
        unreachable!("a family's jvp gets its own output")
    };
    let refs: Vec<&Tensor> = args.iter().collect();
    Tensor::record(Op::Family(f.clone()), &refs, y.shape().clone())
}

/// Forward-mode rule of an op that is linear in each input separately
/// (matmul, convolutions, pooling gathers), for one direction: Δy = Σ_k
/// f(x₁, …, Δx_k, …, xₙ), over the inputs in `linear` (the others must have
/// no tangent, or their tangent does not move the output, like a pooling's
/// index source). `apply` rebuilds the op on primal-shaped inputs.
/// Families whose layout can fold a batch of directions into their own
/// (matmul's batch dims) write their own rule instead.
pub(crate) fn multilinear_jvp(
    x: &[Tensor],
    dx: &[Option<Tensor>],
    linear: &[usize],
    apply: &dyn Fn(&[Tensor]) -> Tensor,
) -> Option<Tensor> {
    linear
        .iter()
        .filter_map(|&k| {
            let d = dx[k].as_ref()?;
            let mut args = x.to_vec();
            args[k] = d.clone();
            Some(apply(&args))
        })
        .reduce(|total, term| &total + &term)
}
