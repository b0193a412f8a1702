//! The adversarial suite, table-driven: every op, transform,
//! layer and helper given bad or unusual input, each case asserting its
//! exact outcome — the panic message (and that it points at the caller's
//! line, not into the library), the `Error` variant, or the values.
//! Cases that need no GPU run on a reference-only device.

mod common;

use webgrad::AttentionMask;
use webgrad::data;
use webgrad::layers::{
    Activation, Conv2d, Embedding, Init, LayerNorm, Linear, Mlp, MultiHeadAttention,
};
use webgrad::optim::{Adam, Optimizer, Sgd};
use webgrad::{
    BatchNormMode, Binary, Conv2dOptions, Device, Error, IndexTensor, Shape, Tensor, Unary, grad,
    grad_with_seed, hessian, hvp, jacfwd, jacrev, jvp, one_hot, reference, tangent, vjp,
};

/// One case: what is done, and the substring its panic message must hold.
type Case<'a> = (&'static str, &'static str, Box<dyn FnOnce() + 'a>);

/// Runs each case, which must panic with its substring at a line of this
/// file; reports every case that does not, all at once.
fn run_panic_table(cases: Vec<Case<'_>>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for (name, want, f) in cases {
        let Some((msg, at)) = common::try_panic(f) else {
            failures.push(format!("{name}: did not panic"));
            continue;
        };
        if !msg.contains(want) {
            failures.push(format!("{name}: message {msg:?} lacks {want:?}"));
        } else if !at.starts_with("tests/adversarial.rs") {
            failures.push(format!(
                "{name}: points into {at}, not at the caller ({msg})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn t(d: &Device, shape: &[usize]) -> Tensor {
    Tensor::zeros(d, shape.to_vec())
}

#[test]
fn shape_errors_of_every_op_name_the_op_and_the_shapes() {
    let d = Device::reference_only();
    let d = &d;
    let cases: Vec<Case> = vec![
        ("add", "[2, 3]", {
            let (a, b) = (t(d, &[2, 3]), t(d, &[4]));
            Box::new(move || drop(&a + &b))
        }),
        ("mul", "[3, 2, 5]", {
            let (a, b) = (t(d, &[3, 2, 5]), t(d, &[4, 5]));
            Box::new(move || drop(a.mul(&b)))
        }),
        ("maximum", "maximum", {
            let (a, b) = (t(d, &[2]), t(d, &[3]));
            Box::new(move || drop(a.maximum(&b)))
        }),
        ("pow", "pow", {
            let (a, b) = (t(d, &[2]), t(d, &[3]));
            Box::new(move || drop(a.pow(&b)))
        }),
        ("eq", "eq", {
            let (a, b) = (t(d, &[2]), t(d, &[3]));
            Box::new(move || drop(a.eq(&b)))
        }),
        ("select", "[4]", {
            let (m, a, b) = (t(d, &[4]), t(d, &[3]), t(d, &[3]));
            Box::new(move || drop(m.where_cond(&a, &b)))
        }),
        ("matmul inner", "[2, 3]", {
            let (a, b) = (t(d, &[2, 3]), t(d, &[4, 5]));
            Box::new(move || drop(a.matmul(&b)))
        }),
        ("matmul rank 1", "matmul", {
            let (a, b) = (t(d, &[3]), t(d, &[3]));
            Box::new(move || drop(a.matmul(&b)))
        }),
        ("matmul batch", "[2, 3, 4]", {
            let (a, b) = (t(d, &[2, 3, 4]), t(d, &[3, 4, 5]));
            Box::new(move || drop(a.matmul(&b)))
        }),
        ("reshape count", "reshape", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.reshape([4, 2])))
        }),
        ("broadcast_to", "broadcast", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.broadcast_to([3, 3])))
        }),
        ("permute length", "permute", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.permute(&[0])))
        }),
        ("permute repeat", "permute", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.permute(&[0, 0])))
        }),
        ("transpose axis", "transpose", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.transpose(0, 2)))
        }),
        ("t of rank 1", "t", {
            let a = t(d, &[3]);
            Box::new(move || drop(a.t()))
        }),
        ("slice past end", "slice", {
            let a = t(d, &[2, 4]);
            Box::new(move || drop(a.slice(&[0..2, 2..6])))
        }),
        ("slice reversed", "slice", {
            let a = t(d, &[2, 4]);
            let reversed = std::ops::Range { start: 3, end: 1 };
            Box::new(move || drop(a.slice(&[0..2, reversed.clone()])))
        }),
        ("slice rank", "slice", {
            let a = t(d, &[4, 4]);
            Box::new(move || drop(a.slice(std::slice::from_ref(&(0..1)))))
        }),
        ("narrow", "narrow", {
            let a = t(d, &[4]);
            Box::new(move || drop(a.narrow(0, 3..5)))
        }),
        ("narrow axis", "narrow", {
            let a = t(d, &[4]);
            Box::new(move || drop(a.narrow(1, 0..1)))
        }),
        ("pad ranks", "pad", {
            let a = t(d, &[4]);
            Box::new(move || drop(a.pad(&[(0, 0), (1, 1)])))
        }),
        ("concat ranks", "concat", {
            let (a, b) = (t(d, &[2, 3]), t(d, &[3]));
            Box::new(move || drop(Tensor::concat(&[&a, &b], 0)))
        }),
        ("concat other axis", "concat", {
            let (a, b) = (t(d, &[2, 3]), t(d, &[2, 4]));
            Box::new(move || drop(Tensor::concat(&[&a, &b], 0)))
        }),
        ("concat axis", "concat", {
            let a = t(d, &[2]);
            Box::new(move || drop(Tensor::concat(&[&a, &a], 1)))
        }),
        (
            "concat empty list",
            "concat",
            Box::new(|| drop(Tensor::concat(&[], 0))),
        ),
        ("sum_axes range", "sum", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.sum_axes(&[2])))
        }),
        ("max_axes range", "max", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.max_axes_keepdim(&[5])))
        }),
        ("sum_to", "sum_to", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.sum_to(Shape::from([4]))))
        }),
        ("softmax axis", "softmax", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.softmax(2)))
        }),
        ("log_softmax axis", "log_softmax", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.log_softmax(7)))
        }),
        ("cumsum axis", "cumsum", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.cumsum(2)))
        }),
        ("cross_entropy labels", "cross_entropy", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.cross_entropy(&[0])))
        }),
        ("cross_entropy class", "cross_entropy", {
            let a = t(d, &[2, 3]);
            Box::new(move || drop(a.cross_entropy(&[0, 3])))
        }),
        ("cross_entropy_with_probs", "cross_entropy", {
            let (a, p) = (t(d, &[2, 3]), t(d, &[2, 4]));
            Box::new(move || drop(a.cross_entropy_with_probs(&p)))
        }),
        ("mse", "mse", {
            let (a, b) = (t(d, &[2, 3]), t(d, &[3, 2]));
            Box::new(move || drop(a.mse(&b)))
        }),
        ("conv2d rank", "conv2d", {
            let (x, w) = (t(d, &[3, 8, 8]), t(d, &[4, 3, 3, 3]));
            Box::new(move || drop(x.conv2d(&w, None, Conv2dOptions::default())))
        }),
        ("conv2d channels", "conv2d", {
            let (x, w) = (t(d, &[1, 2, 8, 8]), t(d, &[4, 3, 3, 3]));
            Box::new(move || drop(x.conv2d(&w, None, Conv2dOptions::default())))
        }),
        ("conv2d kernel larger than input", "conv2d", {
            let (x, w) = (t(d, &[1, 3, 2, 2]), t(d, &[4, 3, 3, 3]));
            Box::new(move || drop(x.conv2d(&w, None, Conv2dOptions::default())))
        }),
        ("conv2d stride 0", "stride", {
            let (x, w) = (t(d, &[1, 3, 8, 8]), t(d, &[4, 3, 3, 3]));
            Box::new(move || drop(x.conv2d(&w, None, Conv2dOptions::default().stride(0))))
        }),
        ("conv2d groups", "groups", {
            let (x, w) = (t(d, &[1, 3, 8, 8]), t(d, &[4, 3, 3, 3]));
            Box::new(move || drop(x.conv2d(&w, None, Conv2dOptions::default().groups(2))))
        }),
        ("conv2d bias", "bias", {
            let (x, w, b) = (t(d, &[1, 3, 8, 8]), t(d, &[4, 3, 3, 3]), t(d, &[3]));
            Box::new(move || drop(x.conv2d(&w, Some(&b), Conv2dOptions::default())))
        }),
        ("conv1d rank", "conv1d", {
            let (x, w) = (t(d, &[1, 3, 8, 8]), t(d, &[4, 3, 3]));
            Box::new(move || drop(x.conv1d(&w, None, webgrad::Conv1dOptions::default())))
        }),
        ("conv_transpose2d output_padding", "output_padding", {
            let (x, w) = (t(d, &[1, 4, 4, 4]), t(d, &[4, 3, 3, 3]));
            let o = Conv2dOptions::default().output_padding(1);
            Box::new(move || drop(x.conv_transpose2d(&w, None, o)))
        }),
        ("max_pool2d window", "max_pool2d", {
            let x = t(d, &[1, 1, 2, 2]);
            Box::new(move || {
                drop(x.max_pool2d(webgrad::Pool2dOptions {
                    kernel: [3, 3],
                    stride: [1, 1],
                    padding: [0, 0],
                }))
            })
        }),
        ("max_pool2d stride 0", "max_pool2d", {
            let x = t(d, &[1, 1, 4, 4]);
            Box::new(move || {
                drop(x.max_pool2d(webgrad::Pool2dOptions {
                    kernel: [2, 2],
                    stride: [0, 0],
                    padding: [0, 0],
                }))
            })
        }),
        ("avg_pool2d rank", "avg_pool2d", {
            let x = t(d, &[4, 4]);
            Box::new(move || {
                drop(x.avg_pool2d(webgrad::Pool2dOptions {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                }))
            })
        }),
        ("global_avg_pool2d rank", "global_avg_pool2d", {
            let x = t(d, &[4, 4]);
            Box::new(move || drop(x.global_avg_pool2d()))
        }),
        ("layer_norm axes", "layer_norm", {
            let x = t(d, &[2, 3]);
            Box::new(move || drop(x.layer_norm(3, None, None, 1e-5)))
        }),
        ("layer_norm weight", "layer_norm", {
            let (x, w) = (t(d, &[2, 3]), t(d, &[2]));
            Box::new(move || drop(x.layer_norm(1, Some(&w), None, 1e-5)))
        }),
        ("rms_norm weight", "rms_norm", {
            let (x, w) = (t(d, &[2, 3]), t(d, &[4]));
            Box::new(move || drop(x.rms_norm(1, Some(&w), 1e-6)))
        }),
        ("batch_norm running stats", "batch_norm", {
            let (x, m, v) = (t(d, &[2, 3, 4, 4]), t(d, &[4]), t(d, &[4]));
            Box::new(move || drop(x.batch_norm(&m, &v, None, None, BatchNormMode::Eval, 1e-5)))
        }),
        ("attention widths", "attention", {
            let (q, k, v) = (t(d, &[2, 4, 8]), t(d, &[2, 4, 6]), t(d, &[2, 4, 8]));
            Box::new(move || drop(q.scaled_dot_product_attention(&k, &v, AttentionMask::None)))
        }),
        ("attention lengths", "attention", {
            let (q, k, v) = (t(d, &[2, 4, 8]), t(d, &[2, 5, 8]), t(d, &[2, 4, 8]));
            Box::new(move || drop(q.scaled_dot_product_attention(&k, &v, AttentionMask::None)))
        }),
        ("split_heads", "split_heads", {
            let x = t(d, &[2, 4, 6]);
            Box::new(move || drop(x.split_heads(4)))
        }),
        ("index_select axis", "index_select", {
            let (x, i) = (t(d, &[3, 4]), IndexTensor::from_usize(d, &[0, 1], [2]));
            Box::new(move || drop(x.index_select(2, &i)))
        }),
        ("index_select rank", "index_select", {
            let (x, i) = (t(d, &[3, 4]), IndexTensor::from_usize(d, &[0, 1], [1, 2]));
            Box::new(move || drop(x.index_select(0, &i)))
        }),
        ("embedding table rank", "embedding", {
            let (x, i) = (t(d, &[3]), IndexTensor::from_usize(d, &[0, 1], [2]));
            Box::new(move || drop(x.embedding(&i)))
        }),
        ("argmax axis", "argmax", {
            let x = t(d, &[3, 4]);
            Box::new(move || drop(x.argmax(2)))
        }),
        ("index from_usize beyond u32", "u32", {
            let big = [1usize << 33];
            Box::new(move || drop(IndexTensor::from_usize(d, &big, [1])))
        }),
        ("dropout p", "dropout", {
            let x = t(d, &[4]);
            Box::new(move || drop(x.dropout(1.5, 0)))
        }),
        ("clamp bounds", "clamp", {
            let x = t(d, &[4]);
            Box::new(move || drop(x.clamp(1.0, -1.0)))
        }),
        (
            "from_vec count",
            "from_vec",
            Box::new(|| drop(Tensor::from_vec(d, vec![1.0; 5], [2, 3]))),
        ),
        ("item of many", "item", {
            let x = t(d, &[2]);
            Box::new(move || drop(x.item()))
        }),
        (
            "zeros of rank 9",
            "at most 8 axes",
            Box::new(|| drop(t(d, &[1; 9]))),
        ),
        (
            "zeros from an array of rank 9",
            "at most 8 axes",
            Box::new(|| drop(Tensor::zeros(d, [1usize; 9]))),
        ),
        ("reshape to rank 9", "at most 8 axes", {
            let a = t(d, &[1]);
            Box::new(move || drop(a.reshape([1usize; 9])))
        }),
        ("broadcast_to rank 9", "at most 8 axes", {
            let a = t(d, &[1]);
            Box::new(move || drop(a.broadcast_to(vec![1; 9])))
        }),
        ("assign to non-variable", "assign", {
            let (x, y) = (t(d, &[2]), t(d, &[2]));
            Box::new(move || drop(x.assign(&y)))
        }),
    ];
    run_panic_table(cases);
}

#[test]
fn shape_errors_of_transforms_layers_optimizers_and_helpers_name_the_call() {
    let Some(dev) = common::device() else {
        return;
    };
    let d = &dev;
    let other = Device::reference_only();
    let var = |shape: &[usize]| t(d, shape).to_variable().unwrap();
    let lin = Linear::new(d, 4, 3, Init::XavierUniform, 0).unwrap();
    let mlp = Mlp::new(d, &[4, 8, 2], Activation::Relu, Init::XavierUniform, 0).unwrap();
    let conv = Conv2d::new(
        d,
        3,
        4,
        [3, 3],
        Conv2dOptions::default(),
        Init::KaimingUniform,
        0,
    )
    .unwrap();
    let emb = Embedding::new(d, 10, 4, 0).unwrap();
    let norm = LayerNorm::new(d, 4).unwrap();
    let attn = MultiHeadAttention::new(d, 8, 2, 0).unwrap();
    let digits = data::spiral(2, 10, 0);
    let cases: Vec<Case> = vec![
        ("grad of a non-scalar", "grad", {
            let x = t(d, &[3]);
            Box::new(move || drop(grad(&x.exp(), &[&x])))
        }),
        ("grad_with_seed shape", "seed", {
            let x = t(d, &[3]);
            Box::new(move || drop(grad_with_seed(&x.exp(), &[&x], &t(d, &[2]))))
        }),
        ("grad_with_seed device", "seed", {
            let x = t(d, &[3]);
            let seed = t(&other, &[3]);
            Box::new(move || drop(grad_with_seed(&x.exp(), &[&x], &seed)))
        }),
        ("backward of a non-scalar", "backward", {
            let x = t(d, &[3]);
            Box::new(move || drop(x.exp().backward()))
        }),
        ("tangent count", "tangent", {
            let x = t(d, &[3]);
            Box::new(move || drop(tangent(&x.exp(), &[&x], &[])))
        }),
        ("tangent shape", "tangent", {
            let x = t(d, &[3]);
            Box::new(move || drop(tangent(&x.exp(), &[&x], &[&t(d, &[4])])))
        }),
        ("jvp tangent shape", "tangent", {
            let x = t(d, &[3]);
            Box::new(move || drop(jvp(|v| v[0].sin(), &[&x], &[&t(d, &[2, 3])])))
        }),
        ("vjp cotangent shape", "seed", {
            let x = t(d, &[3]);
            Box::new(move || drop(vjp(|v| v[0].sin(), &[&x], &t(d, &[1]))))
        }),
        ("hessian of a non-scalar", "hessian", {
            let x = t(d, &[3]);
            Box::new(move || drop(hessian(|v| v.exp(), &x)))
        }),
        ("hvp vector shape", "tangent", {
            let x = t(d, &[3]);
            Box::new(move || drop(hvp(|v| v.square().sum(), &x, &t(d, &[2]))))
        }),
        ("jacrev of rank 16", "would have 16 axes", {
            let x = t(d, &[1; 8]);
            Box::new(move || drop(jacrev(|v| v.reshape(vec![1; 8]), &x)))
        }),
        ("jacfwd of rank 8", "jacfwd", {
            let x = t(d, &[1; 8]);
            Box::new(move || drop(jacfwd(|v| v.exp(), &x)))
        }),
        ("Linear width", "[2, 5]", {
            let x = t(d, &[2, 5]);
            let lin = &lin;
            Box::new(move || drop(lin.forward(&x)))
        }),
        ("Mlp width", "[2, 3]", {
            let x = t(d, &[2, 3]);
            let mlp = &mlp;
            Box::new(move || drop(mlp.forward(&x)))
        }),
        ("Conv2d channels", "conv2d", {
            let x = t(d, &[1, 2, 8, 8]);
            let conv = &conv;
            Box::new(move || drop(conv.forward(&x)))
        }),
        ("Embedding id", "embedding", {
            let ids = IndexTensor::from_usize(d, &[3, 10], [2]);
            let emb = &emb;
            Box::new(move || drop(emb.forward(&ids)))
        }),
        ("LayerNorm width", "layer_norm", {
            let x = t(d, &[2, 5]);
            let norm = &norm;
            Box::new(move || drop(norm.forward(&x)))
        }),
        ("attention width", "[2, 4, 6]", {
            let x = t(d, &[2, 4, 6]);
            let attn = &attn;
            Box::new(move || drop(attn.forward(&x)))
        }),
        (
            "attention heads",
            "heads",
            Box::new(move || drop(MultiHeadAttention::new(d, 8, 3, 0))),
        ),
        (
            "Mlp sizes",
            "Mlp::new",
            Box::new(move || drop(Mlp::new(d, &[4], Activation::Relu, Init::XavierUniform, 0))),
        ),
        ("Sgd gradient count", "Sgd::step", {
            let p = var(&[2]);
            Box::new(move || drop(Sgd::new(0.1).step(&[&p], &[])))
        }),
        ("Sgd gradient shape", "Sgd::step", {
            let p = var(&[2, 3]);
            Box::new(move || drop(Sgd::new(0.1).step(&[&p], &[t(d, &[3])])))
        }),
        ("Adam gradient shape", "Adam::step", {
            let p = var(&[2, 3]);
            Box::new(move || drop(Adam::new(0.1).step(&[&p], &[t(d, &[3, 2])])))
        }),
        ("Adam on a non-variable", "variable", {
            let p = t(d, &[2]);
            Box::new(move || drop(Adam::new(0.1).step(&[&p], &[t(d, &[2])])))
        }),
        ("assign shape", "assign", {
            let p = var(&[2]);
            Box::new(move || drop(p.assign(&t(d, &[3]))))
        }),
        ("assign across devices", "assign", {
            let p = var(&[2]);
            let v = t(&other, &[2]);
            Box::new(move || drop(p.assign(&v)))
        }),
        ("add across devices", "different devices", {
            let (a, b) = (t(d, &[2]), t(&other, &[2]));
            Box::new(move || drop(&a + &b))
        }),
        ("matmul across devices", "different devices", {
            let (a, b) = (t(d, &[2, 2]), t(&other, &[2, 2]));
            Box::new(move || drop(a.matmul(&b)))
        }),
        ("concat across devices", "different devices", {
            let (a, b) = (t(d, &[2]), t(&other, &[2]));
            Box::new(move || drop(Tensor::concat(&[&a, &b], 0)))
        }),
        ("batches of 0", "batches", {
            let data = &digits;
            Box::new(move || assert_eq!(data.batches(0, 0).count(), 0))
        }),
        ("split fraction", "split", {
            let data = &digits;
            Box::new(move || drop(data.split(1.5, 0)))
        }),
        ("select out of range", "select", {
            let data = &digits;
            Box::new(move || drop(data.select(&[5000])))
        }),
        (
            "checkpoint without inputs",
            "checkpoint: a region needs at least one input",
            Box::new(|| drop(webgrad::checkpoint(|v: &[Tensor]| v[0].clone(), &[]))),
        ),
        (
            "argmax_rows width 0",
            "argmax_rows",
            Box::new(|| drop(data::argmax_rows(&[1.0], 0))),
        ),
        (
            "one_hot label",
            "one_hot",
            Box::new(move || drop(one_hot(d, &[4], 3))),
        ),
        (
            "text batch too short",
            "text batch",
            Box::new(move || drop(webgrad::text::batch(d, &[1, 2], 1, 4, 0))),
        ),
    ];
    run_panic_table(cases);
}

/// The special values every elementwise op and its gradient meets here.
const SPECIAL: [f32; 12] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    0.0,
    -0.0,
    1e-40, // subnormal
    1e-30,
    3e38,
    -3e38,
    1.0,
    -1.0,
    0.5,
];

/// Agreement under the README's rules: NaN where the reference is NaN
/// (and only there), infinities exact, finite values within a relative
/// tolerance. A subnormal input may be flushed to zero (WGSL allows it),
/// so the value at 0 is accepted for it too.
fn agrees(got: f32, want: f64, want_flushed: f64) -> bool {
    let close = |w: f64| {
        if w.is_nan() {
            got.is_nan()
        } else if w.is_infinite() || (w.abs() > f32::MAX as f64) {
            got as f64 == w || (got.is_infinite() && got.signum() as f64 == w.signum())
        } else {
            // f32 rounding of huge and tiny values, and lavapipe's ~1e-6
            // relative error in transcendentals.
            (got as f64 - w).abs() <= 1e-5 * w.abs().max(1.0) + 1e-30
        }
    };
    close(want) || close(want_flushed)
}

#[test]
fn special_values_through_every_elementwise_op_and_its_gradient() {
    let dev = gpu!();
    let mut failures = Vec::new();
    let mut cases = 0;
    let flushed: Vec<f32> = SPECIAL
        .iter()
        .map(|&v| {
            if v != 0.0 && v.abs() < f32::MIN_POSITIVE {
                0.0
            } else {
                v
            }
        })
        .collect();
    for &op in webgrad::ALL_UNARY {
        let x = Tensor::from_vec(&dev, SPECIAL.to_vec(), [SPECIAL.len()]);
        let xf = Tensor::from_vec(&dev, flushed.clone(), [SPECIAL.len()]);
        let y = x.unary(op);
        let g = grad_with_seed(&y, &[&x], &x.ones_like()).remove(0);
        let (yf, gf) = (
            xf.unary(op),
            grad_with_seed(&xf.unary(op), &[&xf], &xf.ones_like()).remove(0),
        );
        let got = webgrad::read_all_blocking(&[&y, &g]).unwrap();
        let want = [reference::eval(&y).unwrap(), reference::eval(&g).unwrap()];
        let want_f = [reference::eval(&yf).unwrap(), reference::eval(&gf).unwrap()];
        for (k, what) in ["value", "gradient"].iter().enumerate() {
            for i in 0..SPECIAL.len() {
                cases += 1;
                let (x, v) = (SPECIAL[i], got[k][i]);
                let trig = matches!(op, Unary::Sin | Unary::Cos | Unary::Tan);
                let exact = !trig
                    && matches!(
                        op,
                        Unary::Neg
                            | Unary::Abs
                            | Unary::Relu
                            | Unary::Step
                            | Unary::Sign
                            | Unary::Square
                            | Unary::Scale(_)
                            | Unary::AddScalar(_)
                    );
                let ok = if trig && x.abs() >= 1e5 && x.is_finite() {
                    // The README's rule: f32 holds no phase there; the
                    // driver's value, finite (sin, cos within [−1, 1]).
                    v.is_finite() && (op == Unary::Tan || v.abs() <= 1.0)
                } else if x != 0.0 && x.abs() < f32::MIN_POSITIVE && !exact {
                    // Subnormal arguments of transcendental functions: the
                    // driver's accuracy; NaN-ness and sign are kept.
                    let w = want[k][i];
                    v.is_nan() == w.is_nan()
                        && (v == 0.0 || w == 0.0 || (v > 0.0) == (w > 0.0) || v.is_infinite())
                } else {
                    agrees(v, want[k][i], want_f[k][i])
                };
                if !ok {
                    failures.push(format!(
                        "{} {what} at {:e}: GPU {:e}, reference {:e}",
                        op.name(),
                        SPECIAL[i],
                        got[k][i],
                        want[k][i]
                    ));
                }
            }
        }
        // NaN in, NaN out, for every op (numpy and PyTorch's rule).
        cases += 1;
        if !got[0][0].is_nan() {
            failures.push(format!("{}(NaN) = {}", op.name(), got[0][0]));
        }
    }
    for &op in webgrad::ALL_BINARY {
        // Every pair of special values, both ways round.
        let n = SPECIAL.len();
        let a: Vec<f32> = (0..n * n).map(|i| SPECIAL[i / n]).collect();
        let b: Vec<f32> = (0..n * n).map(|i| SPECIAL[i % n]).collect();
        let (ta, tb) = (
            Tensor::from_vec(&dev, a.clone(), [n * n]),
            Tensor::from_vec(&dev, b.clone(), [n * n]),
        );
        let y = ta.binary(op, &tb);
        let got = y.to_vec_blocking().unwrap();
        let want = reference::eval(&y).unwrap();
        let flush = |v: f32| {
            if v != 0.0 && v.abs() < f32::MIN_POSITIVE {
                0.0
            } else {
                v
            }
        };
        let yf = Tensor::from_vec(
            &dev,
            a.iter().map(|&v| flush(v)).collect::<Vec<_>>(),
            [n * n],
        )
        .binary(
            op,
            &Tensor::from_vec(
                &dev,
                b.iter().map(|&v| flush(v)).collect::<Vec<_>>(),
                [n * n],
            ),
        );
        let want_f = reference::eval(&yf).unwrap();
        for i in 0..n * n {
            cases += 1;
            let subnormal = |v: f32| v != 0.0 && v.abs() < f32::MIN_POSITIVE;
            let ok = if op == Binary::Pow && (subnormal(a[i]) || subnormal(b[i])) {
                // As for unary functions: the driver's accuracy at
                // subnormal arguments; NaN-ness and sign are kept.
                let (v, w) = (got[i], want[i]);
                v.is_nan() == w.is_nan() && (v == 0.0 || w == 0.0 || (v > 0.0) == (w > 0.0))
            } else {
                agrees(got[i], want[i], want_f[i])
            };
            if !ok {
                failures.push(format!(
                    "{:?}({:e}, {:e}): GPU {:e}, reference {:e}",
                    op, a[i], b[i], got[i], want[i]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} special-value cases disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn huge_and_tiny_magnitudes_stay_finite_where_the_maths_is() {
    let dev = gpu!();
    let v = |data: Vec<f32>| Tensor::from_vec(&dev, data.clone(), [data.len()]);
    let read = |t: &Tensor| t.to_vec_blocking().unwrap();
    // Softmax and log-softmax subtract the maximum: no overflow at 1e30.
    let logits = Tensor::from_vec(&dev, vec![1e30, 0.0, -1e30], [1, 3]);
    assert_eq!(read(&logits.softmax(1)), vec![1.0, 0.0, 0.0]);
    let ls = read(&logits.log_softmax(1));
    assert_eq!(ls[0], 0.0);
    assert!(
        ls[1] == -1e30 && ls[2] == f32::NEG_INFINITY || ls[2] <= -1e30,
        "{ls:?}"
    );
    // Cross-entropy of a confident right answer is 0, of a wrong one finite-huge.
    let ce = Tensor::from_vec(&dev, vec![1e30, 0.0], [1, 2]).cross_entropy(&[0]);
    assert_eq!(ce.item_blocking().unwrap(), 0.0);
    // sigmoid and tanh saturate without NaN; softplus is linear far out.
    assert_eq!(read(&v(vec![-1000.0, 1000.0]).sigmoid()), vec![0.0, 1.0]);
    assert_eq!(read(&v(vec![-1000.0, 1000.0]).tanh()), vec![-1.0, 1.0]);
    assert_eq!(
        read(&v(vec![1000.0, -1000.0]).softplus()),
        vec![1000.0, 0.0]
    );
    // Their gradients there are 0 (or 1 for softplus), not NaN.
    let x = v(vec![-1000.0, 1000.0]);
    let gs = grad(&x.sigmoid().sum(), &[&x]).remove(0);
    assert_eq!(read(&gs), vec![0.0, 0.0]);
    let gt = grad(&x.tanh().sum(), &[&x]).remove(0);
    assert_eq!(read(&gt), vec![0.0, 0.0]);
    let gp = grad(&x.softplus().sum(), &[&x]).remove(0);
    assert_eq!(read(&gp), vec![0.0, 1.0]);
    // log1p and expm1 keep tiny arguments (log(1 + x) would give 0).
    let tiny = read(&v(vec![1e-10]).log1p())[0];
    assert!((tiny / 1e-10 - 1.0).abs() < 1e-5, "{tiny}");
    let tiny = read(&v(vec![1e-10]).expm1())[0];
    assert!((tiny / 1e-10 - 1.0).abs() < 1e-5, "{tiny}");
    // Overflow is an infinity, not a wrap or NaN: sums, products, exp.
    assert_eq!(read(&v(vec![3e38, 3e38]).sum()), vec![f32::INFINITY]);
    assert_eq!(read(&v(vec![3e38]).square()), vec![f32::INFINITY]);
    assert_eq!(read(&v(vec![100.0]).exp()), vec![f32::INFINITY]);
    // The mean of huge values: f32 accumulation overflows as numpy's does.
    assert_eq!(read(&v(vec![3e38, 3e38]).mean()), vec![f32::INFINITY]);
    // Layer norm of a constant row is 0 (variance 0, eps keeps it finite).
    let ln = Tensor::full(&dev, [1, 4], 1e20).layer_norm(1, None, None, 1e-5);
    assert_eq!(read(&ln), vec![0.0; 4]);
}

#[test]
fn empty_tensors_flow_through_every_op_and_its_gradient() {
    let dev = gpu!();
    let d = &dev;
    let e = |shape: &[usize]| Tensor::zeros(d, shape.to_vec());
    let x = e(&[0, 3]);
    // (what, result, expected shape)
    let results: Vec<(&str, Tensor, Vec<usize>)> = vec![
        ("exp", x.exp(), vec![0, 3]),
        ("add broadcast", &x + &e(&[3]), vec![0, 3]),
        ("mul by [0, 1]", &x * &e(&[0, 1]), vec![0, 3]),
        ("where_cond", x.gt(&x).where_cond(&x, &x), vec![0, 3]),
        ("matmul 0 rows", x.matmul(&e(&[3, 4])), vec![0, 4]),
        (
            "matmul 0 columns",
            e(&[2, 3]).matmul(&e(&[3, 0])),
            vec![2, 0],
        ),
        (
            "matmul batch 0",
            e(&[0, 2, 3]).matmul(&e(&[0, 3, 4])),
            vec![0, 2, 4],
        ),
        ("sum over axis 1", x.sum_axes(&[1]), vec![0]),
        ("softmax", x.softmax(1), vec![0, 3]),
        ("cumsum", x.cumsum(0), vec![0, 3]),
        ("transpose", x.t(), vec![3, 0]),
        ("narrow to nothing", e(&[4]).narrow(0, 2..2), vec![0]),
        (
            "concat with empty",
            Tensor::concat(&[&x, &e(&[2, 3])], 0),
            vec![2, 3],
        ),
        ("pad", x.pad(&[(1, 1), (0, 0)]), vec![2, 3]),
        (
            "conv2d batch 0",
            e(&[0, 3, 5, 5]).conv2d(&e(&[2, 3, 3, 3]), None, Conv2dOptions::default()),
            vec![0, 2, 3, 3],
        ),
        (
            "max_pool2d batch 0",
            e(&[0, 1, 4, 4]).max_pool2d(webgrad::Pool2dOptions {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            }),
            vec![0, 1, 2, 2],
        ),
        (
            "index_select none",
            e(&[3, 2]).index_select(0, &IndexTensor::from_usize(d, &[], [0])),
            vec![0, 2],
        ),
        (
            "embedding of no ids",
            e(&[5, 4]).embedding(&IndexTensor::from_usize(d, &[], [0, 2])),
            vec![0, 2, 4],
        ),
        (
            "layer_norm of no rows",
            x.layer_norm(1, None, None, 1e-5),
            vec![0, 3],
        ),
        ("dropout", x.dropout(0.5, 1), vec![0, 3]),
    ];
    for (what, y, shape) in &results {
        assert_eq!(y.dims(), &shape[..], "{what}");
        let got = y
            .to_vec_blocking()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let want: usize = shape.iter().product();
        // Padding and concatenation with non-empty parts give zeros there.
        assert_eq!(got, vec![0.0; want], "{what}");
    }
    // Reductions of nothing: numpy's values.
    assert_eq!(x.sum().item_blocking().unwrap(), 0.0);
    assert!(x.mean().item_blocking().unwrap().is_nan());
    assert_eq!(
        e(&[2, 0]).sum_axes(&[1]).to_vec_blocking().unwrap(),
        vec![0.0, 0.0]
    );
    // An inner dimension of 0: zeros, and so are its gradients' shapes.
    let (a, b) = (e(&[2, 0]), e(&[0, 3]));
    assert_eq!(a.matmul(&b).to_vec_blocking().unwrap(), vec![0.0; 6]);
    // Gradients of empty inputs are empty, of the right shape.
    let w = e(&[0, 3]);
    let g = grad(&(&w.exp() * 2.0).sum(), &[&w]).remove(0);
    assert_eq!(g.dims(), &[0, 3]);
    assert!(g.to_vec_blocking().unwrap().is_empty());
    let g = grad(&x.matmul(&e(&[3, 4])).sum(), &[&x]).remove(0);
    assert_eq!(g.dims(), &[0, 3]);
    // An optimizer step on an empty parameter is a no-op, not an error.
    let p = e(&[0]).to_variable().unwrap();
    let updates = Adam::new(0.1).step(&[&p], &[e(&[0])]).unwrap();
    webgrad::realize_all_blocking(&updates.iter().collect::<Vec<_>>()).unwrap();
    assert!(p.to_vec_blocking().unwrap().is_empty());
    // jacrev of an 8-axis input to a scalar: 8 axes, no ninth in between.
    let x8 = Tensor::ones(d, vec![1, 1, 1, 1, 1, 1, 1, 2]);
    let j = jacrev(|v| v.square().sum(), &x8);
    assert_eq!(j.dims(), x8.dims());
    assert_eq!(j.to_vec_blocking().unwrap(), vec![2.0, 2.0]);
}

#[test]
fn sizes_at_and_past_the_device_limits() {
    let dev = gpu!();
    let limit = dev.limits().unwrap().max_storage_buffer_binding_size as usize;
    // Exactly one binding's worth of floats works, through a kernel whose
    // grid (2^25 / 256 = 131,072 groups) exceeds 65,535 in one dimension.
    let n = limit / 4;
    let x = Tensor::full(&dev, [n], 1.5);
    let y = &(&x * 2.0) + 1.0;
    let s = y.sum().item_blocking().unwrap() as f64;
    assert!((s - 4.0 * n as f64).abs() <= 1e-3 * 4.0 * n as f64, "{s}");
    drop((x, y));
    dev.trim_pool();
    // One more is TooLarge, with the byte counts.
    let err = Tensor::zeros(&dev, [n + 1]).realize_blocking().unwrap_err();
    match err {
        Error::TooLarge { bytes, limit: l } => {
            assert_eq!(bytes, (n as u64 + 1) * 4);
            assert_eq!(l, limit as u64);
        }
        e => panic!("expected TooLarge, got {e}"),
    }
    // Element counts past u32 (kernels index with u32): TooLarge, not a wrap.
    let err = Tensor::zeros(&dev, [1 << 16, 1 << 16])
        .realize_blocking()
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    // The largest u32 index is a valid index value; beyond it a clear panic
    // (checked in the panic table); on the GPU an index past the axis is
    // refused before any kernel runs.
    let idx = IndexTensor::from_usize(&dev, &[u32::MAX as usize], [1]);
    assert_eq!(idx.to_vec_blocking().unwrap(), vec![u32::MAX]);
}

#[test]
fn malformed_files_and_expressions_are_errors_with_the_reason() {
    let Some(dev) = common::device() else {
        return;
    };
    let w = Tensor::zeros(&dev, [2]).to_variable().unwrap();
    let named = [("w", &w)];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", vec![], "checkpoint"),
        (
            "header length past the end",
            1000u64.to_le_bytes().to_vec(),
            "checkpoint",
        ),
        (
            "header not JSON",
            [&8u64.to_le_bytes()[..], b"notjson!"].concat(),
            "checkpoint",
        ),
        (
            "huge header length",
            u64::MAX.to_le_bytes().to_vec(),
            "checkpoint",
        ),
    ];
    for (what, bytes, want) in cases {
        let err = webgrad::io::from_bytes(&bytes, &named).unwrap_err();
        assert!(matches!(err, Error::Checkpoint(_)), "{what}: {err}");
        assert!(err.to_string().contains(want), "{what}: {err}");
    }
    // A valid file that lacks the name, or has another shape.
    let other = Tensor::zeros(&dev, [3]).to_variable().unwrap();
    let bytes = pollster::block_on(webgrad::io::to_bytes(&[("v", &other)])).unwrap();
    let err = webgrad::io::from_bytes(&bytes, &named).unwrap_err();
    assert!(err.to_string().contains("w"), "{err}");
    let bytes = pollster::block_on(webgrad::io::to_bytes(&[("w", &other)])).unwrap();
    let err = webgrad::io::from_bytes(&bytes, &named).unwrap_err();
    assert!(
        err.to_string().contains("[3]") || err.to_string().contains("shape"),
        "{err}"
    );
    // The variable is untouched by every failed load.
    assert_eq!(w.to_vec_blocking().unwrap(), vec![0.0, 0.0]);
    // Text helpers: unknown characters and tokens are Data errors.
    let corpus = webgrad::text::CharCorpus::new("abc");
    assert!(matches!(corpus.encode("abz"), Err(Error::Data(m)) if m.contains("'z'")));
    assert!(matches!(corpus.decode(&[7]), Err(Error::Data(m)) if m.contains("token 7")));
    // Malformed digits data.
    assert!(matches!(
        data::Dataset::from_digits_bytes(b"1,2,3\n"),
        Err(Error::Data(_))
    ));
    // Expressions: each error has the position of the problem.
    let mut g = webgrad::symbolic::ExprGraph::new();
    for (src, pos) in [
        ("x1 +", 4),
        ("(x1", 3),
        ("x1 * * x2", 5),
        ("sin()", 4),
        ("2..5", 0),
        ("", 0),
    ] {
        match g.parse(src) {
            Err(Error::Parse { position, .. }) => assert_eq!(position, pos, "{src:?}"),
            other => panic!("{src:?}: {other:?}"),
        }
    }
}
