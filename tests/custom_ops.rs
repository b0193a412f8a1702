//! Users' own ops (`webgrad::op`): a kernel written in WGSL with its
//! derivative rules (the example's rotary embedding) against its f64
//! reference and finite differences, in 16 bits, in the profiler and the
//! memory prediction; and every breach of the kernel contract refused with
//! a message naming the op.

mod common;

#[path = "../examples/custom_op/rope.rs"]
mod rope;

use std::borrow::Cow;

use common::{assert_close, check_op, panic_message};
use rope::{Rope, rope, rope_composed};
use webgrad::op::{Buf, Family, KernelCall, Lowering, Target, check_writes_blocking};
use webgrad::{DType, Error, Shape, Tensor, grad, reference};

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec_blocking().unwrap()
}

#[test]
fn a_user_op_matches_its_reference_and_its_gradients_check() {
    let dev = gpu!();
    // Odd sizes: 3 batch rows, 5 positions, 6 features (3 pairs).
    let shape = Shape::new(&[3, 5, 6]);
    let x = common::data(shape.numel(), -2.0, 2.0, 0.05, 7);
    check_op(&dev, "rope", &[(x.clone(), shape.clone())], &|a| {
        rope(&a[0])
    });
    // The composition of built-in ops computes the same.
    let t = Tensor::from_vec(&dev, x.clone(), shape.clone());
    let composed: Vec<f64> = values(&rope_composed(&t))
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_close(
        "fused vs composed",
        &values(&rope(&t)),
        &composed,
        1e-5,
        1e-5,
    );
    // Second order: the vjp is the op again (inverse), checked through grad.
    let w = Tensor::from_vec(
        &dev,
        common::data(shape.numel(), -1.0, 1.0, 0.0, 3),
        shape.clone(),
    );
    check_op(&dev, "∂ rope", &[(x, shape)], &|a| {
        let y = (&rope(&a[0]).square() * &w).sum();
        grad(&y, &[&a[0]]).remove(0)
    });
}

#[test]
fn a_user_op_reads_and_stores_16_bit_values() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, common::data(2 * 4 * 8, -3.0, 3.0, 0.0, 5), [2, 4, 8]);
    for dtype in [DType::F16, DType::BF16] {
        let y = rope(&x.to_dtype(dtype));
        assert_eq!(y.dtype(), dtype, "an op on {dtype} inputs stores {dtype}");
        // The reference rounds where the GPU stores: the inputs, then the
        // result; the kernel computes in f32 in between.
        let expected = reference::eval(&y).unwrap();
        let eps = dtype.epsilon();
        assert_close(
            &format!("rope in {dtype}"),
            &values(&y),
            &expected,
            1e-6,
            eps,
        );
        let g = grad(&y.to_dtype(DType::F32).sum(), &[&x]);
        let expected = reference::eval(&g[0]).unwrap();
        assert_close(
            &format!("∂ rope in {dtype}"),
            &values(&g[0]),
            &expected,
            1e-6,
            2.0 * eps,
        );
    }
}

#[test]
fn a_user_op_is_named_by_the_profiler_and_counted_by_the_memory_prediction() {
    let dev = gpu!();
    let x = Tensor::rand_uniform(&dev, [4, 16, 32], -1.0, 1.0, 1);
    let y = rope(&x).sum();
    let (v, profile) = dev.profile(|| y.item_blocking().unwrap());
    let expected = reference::eval(&y).unwrap()[0];
    assert!((f64::from(v) - expected).abs() < 1e-3, "{v} vs {expected}");
    let table = profile.table();
    assert!(table.contains("rope(base 10000)"), "{table}");
    let prediction = webgrad::predict_memory(&[&rope(&x).sum()]).unwrap();
    // The input and the rope output (2,048 floats each) live at once.
    assert!(
        prediction.peak_bytes >= 2 * 4 * 4 * 16 * 32,
        "{prediction:?}"
    );
}

#[test]
fn check_writes_finds_a_shape_rule_that_disagrees_with_the_kernels() {
    let dev = gpu!();
    let x = Tensor::rand_uniform(&dev, [3, 5, 6], -1.0, 1.0, 2);
    let good = Rope {
        base: 100.0,
        inverse: false,
    };
    check_writes_blocking(good, &[&x]).unwrap();
    // Also inside an autocast scope, and on 16-bit inputs.
    webgrad::autocast(DType::BF16, || check_writes_blocking(good, &[&x])).unwrap();
    check_writes_blocking(good, &[&x.to_dtype(DType::F16)]).unwrap();
    // Declares two more features per row than the kernel writes.
    let wider = Lying {
        rope: good,
        extra: 2,
    };
    let message = check_writes_blocking(wider, &[&x]).unwrap_err().to_string();
    assert!(
        message.contains("op `lying rope") && message.contains("leave 30 of the 120"),
        "{message}"
    );
    // Declares two fewer: the kernel writes past the end.
    let narrower = Lying {
        rope: good,
        extra: -2,
    };
    let message = check_writes_blocking(narrower, &[&x])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("write past the output's 60 elements"),
        "{message}"
    );
    // Recording does the same the first time it sees an op on its shapes.
    let y = Tensor::rand_uniform(&dev, [3, 5, 6], -1.0, 1.0, 9);
    let refused = Tensor::try_apply_op(
        Lying {
            rope: good,
            extra: 2,
        },
        &[&y],
    );
    let message = refused.expect_err("refused").to_string();
    assert!(message.contains("leave 30 of the 120"), "{message}");
    let message = panic_message(|| {
        Tensor::apply_op(
            Lying {
                rope: good,
                extra: -2,
            },
            &[&y],
        );
    });
    assert!(
        message.contains("write past the output's 60 elements"),
        "{message}"
    );
}

/// A rope whose shape rule adds `extra` features per row to the truth.
#[derive(Debug)]
struct Lying {
    rope: Rope,
    extra: isize,
}

impl Family for Lying {
    fn name(&self) -> String {
        format!("lying {}", self.rope.name())
    }
    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape, String> {
        let mut dims = inputs[0].dims().to_vec();
        let last = dims.len() - 1;
        dims[last] = dims[last].checked_add_signed(self.extra).unwrap();
        Ok(Shape::new(&dims))
    }
    fn lower(&self, _: &Shape, inputs: &[&Shape], target: Target) -> Lowering {
        self.rope.lower(inputs[0], inputs, target)
    }
    fn vjp(&self, x: &[Tensor], _: &Tensor, _: &Tensor) -> Vec<Option<Tensor>> {
        vec![None; x.len()]
    }
}

/// One kernel call exactly as given, on any number of inputs.
#[derive(Debug, Clone)]
struct Raw {
    source: String,
    entry: &'static str,
    bindings: Vec<Buf>,
    groups: [u32; 3],
    loop_trips: u64,
    temps: Vec<usize>,
}

const COPY: &str = "
@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn copy(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < p[0] { y[id.x] = x[id.x]; }
}
";

impl Raw {
    fn copy() -> Raw {
        Raw {
            source: COPY.into(),
            entry: "copy",
            bindings: vec![Buf::Input(0), Buf::Output],
            groups: [1, 1, 1],
            loop_trips: 0,
            temps: Vec::new(),
        }
    }
}

impl Family for Raw {
    fn name(&self) -> String {
        "raw".into()
    }
    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape, String> {
        Ok(inputs[0].clone())
    }
    fn lower(&self, out: &Shape, _: &[&Shape], _: Target) -> Lowering {
        Lowering {
            temps: self.temps.clone(),
            kernels: vec![KernelCall {
                source: Cow::Owned(self.source.clone()),
                entry: self.entry,
                params: vec![out.numel() as u32],
                bindings: self.bindings.clone(),
                groups: self.groups,
                loop_trips: self.loop_trips,
            }],
        }
    }
    fn vjp(&self, x: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let mut v = vec![None; x.len()];
        v[0] = Some(g.clone());
        v
    }
}

/// The message of the error `Raw` gets on `inputs`, checked to name the op.
fn refused(op: Raw, inputs: &[&Tensor]) -> String {
    match Tensor::try_apply_op(op, inputs) {
        Err(e @ Error::InvalidOp { .. }) => {
            let message = e.to_string();
            assert!(message.starts_with("op `raw`: "), "{message}");
            message
        }
        Err(e) => panic!("a different error: {e}"),
        Ok(_) => panic!("the op was accepted"),
    }
}

#[test]
fn a_correct_raw_op_runs_and_is_differentiated() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, -2.0, 3.0], [3]);
    let y = Tensor::apply_op(Raw::copy(), &[&x]);
    assert_eq!(values(&y), vec![1.0, -2.0, 3.0]);
    // Without an f64 reference the interpreter says what to do instead.
    let message = panic_message(|| {
        let _ = reference::eval(&y);
    });
    assert!(
        message.contains("raw: the op has no f64 reference"),
        "{message}"
    );
    // The jvp is derived by transposing the vjp (no linear_in given).
    let d = Tensor::from_vec(&dev, vec![0.5, 0.25, -1.0], [3]);
    let (_, t) = webgrad::jvp(|a| Tensor::apply_op(Raw::copy(), &[&a[0]]), &[&x], &[&d]);
    assert_eq!(values(&t), vec![0.5, 0.25, -1.0]);
}

#[test]
fn kernels_that_break_the_contract_are_refused_with_the_ops_name() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
    let m = refused(
        Raw {
            source: COPY.replace("fn copy(", "fn copy[("),
            ..Raw::copy()
        },
        &[&x],
    );
    assert!(m.contains("does not parse"), "{m}");
    let m = refused(
        Raw {
            source: COPY.replace("y[id.x] = x[id.x];", "y[id.x] = x[id.x] + 1u;"),
            ..Raw::copy()
        },
        &[&x],
    );
    assert!(
        m.contains("is invalid") || m.contains("does not parse"),
        "{m}"
    );
    let m = refused(
        Raw {
            entry: "main",
            ..Raw::copy()
        },
        &[&x],
    );
    assert!(m.contains("no @compute entry point `main`"), "{m}");
    // Nine buffers and the parameters: more than WebGPU's 8 per stage.
    let nine: Vec<Tensor> = (0..9).map(|_| x.clone()).collect();
    let mut bindings: Vec<Buf> = (0..8).map(Buf::Input).collect();
    bindings.push(Buf::Output);
    let m = refused(
        Raw {
            bindings,
            ..Raw::copy()
        },
        &nine.iter().collect::<Vec<_>>(),
    );
    assert!(
        m.contains("binds 10 storage buffers") && m.contains("limit of 8"),
        "{m}"
    );
    let m = refused(
        Raw {
            groups: [70_000, 1, 1],
            ..Raw::copy()
        },
        &[&x],
    );
    assert!(m.contains("dimension 0 exceeds 65535"), "{m}");
    let m = refused(
        Raw {
            loop_trips: 100_000,
            ..Raw::copy()
        },
        &[&x],
    );
    assert!(m.contains("100000 loop iterations"), "{m}");
    // A scratch buffer bound but not declared by the shader.
    let m = refused(
        Raw {
            bindings: vec![Buf::Input(0), Buf::Output, Buf::Temp(0)],
            temps: vec![4],
            ..Raw::copy()
        },
        &[&x],
    );
    assert!(
        m.contains("binding 3 (Temp(0)) is not a storage buffer"),
        "{m}"
    );
    let m = refused(
        Raw {
            bindings: vec![Buf::Output, Buf::Input(0)],
            ..Raw::copy()
        },
        &[&x],
    );
    assert!(
        m.contains("binding 1 (Output) must be declared read_write"),
        "{m}"
    );
    let m = refused(
        Raw {
            bindings: vec![Buf::Input(1), Buf::Output],
            ..Raw::copy()
        },
        &[&x],
    );
    assert!(m.contains("binds input 1, but the op has 1"), "{m}");
    // A 16-bit input through a binding that cannot read it packed.
    let m = refused(
        Raw {
            source: COPY
                .replace("read> x: array<f32>", "read> x: array<u32>")
                .replace("= x[id.x]", "= bitcast<f32>(x[id.x])"),
            ..Raw::copy()
        },
        &[&x.to_dtype(DType::F16)],
    );
    assert!(m.contains("binding 1 reads a 16-bit input"), "{m}");
    // The shape rule's message, from apply_op as a panic.
    let message = panic_message(|| {
        rope(&Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]));
    });
    assert!(
        message
            .starts_with("op `rope(base 10000)`: needs a tensor [..., T, d] with d even, got [3]"),
        "{message}"
    );
}

#[test]
fn a_user_op_is_replayed_and_named_by_anomaly_detection() {
    let Some(dev) = common::private_device() else {
        return;
    };
    // The same structure with new data each step: planned once, replayed.
    let before = dev.counters();
    for step in 0..6 {
        let x = Tensor::rand_uniform(&dev, [2, 8, 6], -1.0, 1.0, step);
        let y = (&rope(&x) * 2.0).sum();
        let expected = reference::eval(&y).unwrap()[0];
        let v = y.item_blocking().unwrap();
        assert!(
            (f64::from(v) - expected).abs() < 1e-4,
            "step {step}: {v} vs {expected}"
        );
    }
    let after = dev.counters();
    assert!(
        after.plans_replayed - before.plans_replayed >= 4,
        "{before:?} → {after:?}"
    );
    // A kernel that overflows finite inputs: anomaly mode names the op.
    dev.set_detect_anomaly(true);
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
    let overflow = Raw {
        source: COPY.replace("y[id.x] = x[id.x];", "y[id.x] = x[id.x] * 3e38 * 3e38;"),
        ..Raw::copy()
    };
    let e = Tensor::apply_op(overflow, &[&x])
        .to_vec_blocking()
        .unwrap_err()
        .to_string();
    assert!(e.contains("raw") && e.contains("infinity"), "{e}");
}
