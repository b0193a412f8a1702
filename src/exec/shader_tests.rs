//! The executor's own kernels (copies, fills, sums of parts, reductions,
//! fused elementwise chains) in every generated specialization parse and
//! validate with naga under WebGPU's default capabilities (no GPU needed).
//! Each op family validates its own shaders in its folder.

use crate::device::Device;
use crate::graph::ReduceOp;
use crate::graph::{ALL_BINARY, ALL_UNARY};
use crate::tensor::Tensor;

use crate::exec::codegen::{load_fn, load_fn_vec4, value_fn, value_fn_in_place, value_fn_vec4};
use crate::exec::kernels::{ELEMENTWISE_HEAD, REDUCE_HEAD, elementwise_source, reduce_source};
use crate::kernel::{FILL, SUM_PARTS};
use crate::shader_check::validate;

/// The elementwise kernel for `t`, fusing the edges `fuse` accepts.
fn kernel(t: &Tensor, fuse: &dyn Fn(&crate::graph::Node, &crate::graph::Node) -> bool) -> String {
    elementwise_source(&value_fn(&t.node, fuse, ELEMENTWISE_HEAD))
}

/// The four-at-a-time elementwise kernel for `t` (every load allows it).
fn kernel_vec4(
    t: &Tensor,
    fuse: &dyn Fn(&crate::graph::Node, &crate::graph::Node) -> bool,
) -> String {
    let value = value_fn_vec4(&t.node, fuse, ELEMENTWISE_HEAD, None)
        .expect("no broadcast loads, a multiple of 4 elements");
    assert!(value.vec4 && value.code.contains("fn value4("));
    elementwise_source(&value)
}

fn fused(t: &Tensor, _inlined: bool) -> String {
    kernel(t, &|_, _| false)
}

#[test]
fn fixed_kernels_validate() {
    // Specializations: a permute, a broadcast, a slice at an offset, a scalar.
    type Case<'a> = (&'a [usize], &'a [usize], &'a [usize], usize);
    let windows: [Case; 5] = [
        // Nothing to copy: no axis code at all.
        (&[0, 3], &[3, 1], &[3, 1], 0),
        (&[2, 3, 4], &[1, 8, 2], &[12, 4, 1], 0),
        (&[5, 7], &[0, 1], &[7, 1], 0),
        (&[3, 2, 1, 5], &[60, 10, 5, 1], &[10, 5, 5, 1], 17),
        (&[], &[], &[], 3),
    ];
    for (dims, src, dst, offset) in windows {
        let w = crate::kernel::Window {
            dims,
            src_offset: offset,
            src_strides: src,
            dst_offset: 0,
            dst_strides: dst,
        };
        let call = crate::kernel::strided_copy(
            crate::kernel::Buf::Input(0),
            crate::kernel::Buf::Output,
            &w,
        );
        validate(&format!("copy {dims:?}"), &call.source);
    }
    validate("fill", FILL);
    validate("sum_parts", SUM_PARTS);
    let d = Device::reference_only();
    let x = Tensor::ones(&d, [4, 5]);
    let chain = &x.exp() * &x.sin();
    // Four elements per invocation needs VEC4_MIN_ELEMENTS or more.
    let x4 = Tensor::ones(&d, [4, 1024]);
    let chain4 = &x4.exp() * &x4.sin();
    for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
        validate(op.name(), &reduce_source(op, &load_fn(&x.node)));
        validate(
            &format!("{} vec4", op.name()),
            &reduce_source(op, &load_fn_vec4(&x.node)),
        );
        // With a fused elementwise prologue.
        let value = value_fn(
            &chain.node,
            &|_, i| !matches!(i.op, crate::graph::Op::Input(_)),
            REDUCE_HEAD,
        );
        validate(&format!("{} fused", op.name()), &reduce_source(op, &value));
        let value = value_fn_vec4(
            &chain4.node,
            &|_, i| !matches!(i.op, crate::graph::Op::Input(_)),
            REDUCE_HEAD,
            None,
        )
        .unwrap();
        validate(
            &format!("{} fused vec4", op.name()),
            &reduce_source(op, &value),
        );
    }
}

#[test]
fn every_elementwise_specialization_validates() {
    let d = Device::reference_only();
    let x = Tensor::ones(&d, [2, 3]);
    let x4 = Tensor::ones(&d, [2, 2048]);
    for &u in ALL_UNARY {
        validate(&u.name(), &fused(&x.unary(u), false));
        validate(
            &format!("{} vec4", u.name()),
            &kernel_vec4(&x4.unary(u), &|_, _| false),
        );
    }
    let row = Tensor::ones(&d, [3]);
    let col = Tensor::ones(&d, [2, 1]);
    let scalar = Tensor::ones(&d, []);
    for &b in ALL_BINARY {
        // Same shape, broadcast row, broadcast column, scalar operand.
        validate(&format!("{b:?} same"), &fused(&x.binary(b, &x), false));
        validate(&format!("{b:?} row"), &fused(&x.binary(b, &row), false));
        validate(&format!("{b:?} col"), &fused(&col.binary(b, &row), false));
        validate(
            &format!("{b:?} scalar"),
            &fused(&scalar.binary(b, &x), false),
        );
        validate(
            &format!("{b:?} same vec4"),
            &kernel_vec4(&x4.binary(b, &x4), &|_, _| false),
        );
        validate(
            &format!("{b:?} scalar vec4"),
            &kernel_vec4(&scalar.binary(b, &x4), &|_, _| false),
        );
    }
}

#[test]
fn fused_chains_validate() {
    let d = Device::reference_only();
    let x = Tensor::from_vec(&d, vec![0.5; 6], [2, 3]);
    let b = Tensor::from_vec(&d, vec![0.5; 3], [3]);
    let y = &(&(&x.sin() * &x.exp()) + &(&x * &x)) - &x.tanh();
    let z = &(&y.powf(2.0) * 3.0) / &b.add_scalar(1.0);
    // Everything but the leaves inlined into one kernel.
    let src = kernel(&z, &|_, n| !matches!(n.op, crate::graph::Op::Input(_)));
    validate("chain", &src);
    assert!(src.contains("sin(") && src.contains("exp(") && src.contains("wg_pow("));
    // A constant operand is inlined as a parameter, not a buffer.
    let c = &x + &Tensor::full(&d, [2, 3], 4.0);
    let src = kernel(&c, &|_, n| matches!(n.op, crate::graph::Op::Fill(_)));
    validate("const", &src);
    assert!(src.contains("src0: array") && !src.contains("src1: array"));
    // A fused broadcast_to is a strided load of its input.
    let e = &x + &b.broadcast_to([2, 3]);
    let src = kernel(&e, &|_, n| matches!(n.op, crate::graph::Op::Expand));
    validate("expand", &src);
    assert!(src.contains("src1: array") && src.contains("rem1"));
    let not_inputs = |_: &crate::graph::Node, n: &crate::graph::Node| {
        !matches!(n.op, crate::graph::Op::Input(_))
    };
    // Four elements at a time: broadcast rows as vec4s, broadcast columns
    // as one element; not for fewer than VEC4_MIN_ELEMENTS elements or a
    // count that is not a multiple of 4, nor a broadcast where the last
    // axis is not.
    let x4 = Tensor::from_vec(&d, vec![0.5; 4096], [2, 2048]);
    let row4 = Tensor::from_vec(&d, vec![0.5; 2048], [2048]);
    let col4 = Tensor::from_vec(&d, vec![0.5; 2], [2, 1]);
    let e4 = &(&x4 + &row4.broadcast_to([2, 2048])) * &col4.broadcast_to([2, 2048]);
    let value = value_fn_vec4(&e4.node, &not_inputs, ELEMENTWISE_HEAD, None).unwrap();
    assert!(value.code.contains("src1[j1 / 4u]") && value.code.contains("src2[j2]"));
    assert!(
        value.code.contains("src1: array<vec4<f32>>") && value.code.contains("src2: array<f32>")
    );
    validate("broadcasts vec4", &elementwise_source(&value));
    // Too few elements, or not a multiple of 4.
    let small = Tensor::from_vec(&d, vec![0.5; 8], [2, 4]);
    assert!(value_fn_vec4(&small.exp().node, &not_inputs, ELEMENTWISE_HEAD, None).is_none());
    let odd = Tensor::from_vec(&d, vec![0.5; 4098], [4098]);
    assert!(value_fn_vec4(&odd.exp().node, &not_inputs, ELEMENTWISE_HEAD, None).is_none());
    let x6 = Tensor::from_vec(&d, vec![0.5; 6144], [1024, 6]);
    let row6 = Tensor::from_vec(&d, vec![0.5; 6], [6]);
    let e6 = &x6 + &row6.broadcast_to([1024, 6]);
    assert!(value_fn_vec4(&e6.node, &not_inputs, ELEMENTWISE_HEAD, None).is_none());
    let chain4 = &(&x4.sin() * &x4.exp()) + &Tensor::from_vec(&d, vec![2.0], []);
    validate("chain vec4", &kernel_vec4(&chain4, &not_inputs));
    // A broadcast (and reshaped) constant computed where fused: a
    // parameter word, not a buffer.
    let seed = Tensor::full(&d, [], 2.0)
        .reshape([1])
        .broadcast_to([2, 2048]);
    let scaled = &x4 * &seed;
    let value = value_fn_vec4(&scaled.node, &not_inputs, ELEMENTWISE_HEAD, None).unwrap();
    assert_eq!(value.inputs.len(), 1);
    assert_eq!(value.params, vec![2.0f32.to_bits()]);
    validate("broadcast constant vec4", &elementwise_source(&value));
    // An in-place update reads its variable's old value from dst, as a vec4.
    let update = &x4 * 0.5;
    let value = value_fn_in_place(
        &update.node,
        &not_inputs,
        ELEMENTWISE_HEAD,
        Some(x4.node.id),
    );
    assert!(value.inputs.is_empty() && value.code.contains("let old = dst[i];"));
    let value = value_fn_vec4(
        &update.node,
        &not_inputs,
        ELEMENTWISE_HEAD,
        Some(x4.node.id),
    )
    .unwrap();
    assert!(value.inputs.is_empty() && value.code.contains("value_s(old.w)"));
    validate("in place vec4", &elementwise_source(&value));
}
