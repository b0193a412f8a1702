//! The bench's workloads, shared by `examples/bench.rs` (native) and the
//! browser's bench page (`web/bench.html`, through `web/src/bench.rs`), so
//! both measure exactly the same thing. Each workload builds its inputs once
//! and then records one iteration at a time; the runner realizes the
//! iteration's tensors, reads back its scalars (so the device is idle before
//! the clock stops) and takes the median over repeats after warm-up.

use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::models::{CharTransformer, DigitsCnn, TransformerConfig};
use webgrad::optim::{Adam, LossScaler, Optimizer, Sgd};
use webgrad::{Conv2dOptions, DType, Device, Tensor, autocast, grad};

/// One iteration: scalars to read back and updates to realize with them.
pub struct Iteration {
    pub read: Vec<Tensor>,
    pub realize: Vec<Tensor>,
}

/// A workload of the bench.
pub struct Workload {
    /// The JSON line's "workload".
    pub name: &'static str,
    /// JSON fields before the time, e.g. `"n":256`.
    pub fields: String,
    /// Floating-point operations per iteration, for GFLOP/s.
    pub flops: Option<f64>,
    pub warmup: usize,
    pub repeats: usize,
    pub step: Box<dyn FnMut() -> Iteration>,
}

/// The groups `build` knows, in the bench's order.
pub const GROUPS: [&str; 9] = [
    "matmul",
    "elementwise",
    "mlp",
    "chain",
    "conv",
    "cnn",
    "gpt",
    "precision",
    "attention",
];

/// The workloads of one group (see the bench's docs for what each is).
pub fn build(group: &str, dev: &Device) -> Vec<Workload> {
    match group {
        "matmul" => [256usize, 512, 1024]
            .into_iter()
            .map(|n| matmul(dev, n))
            .collect(),
        "elementwise" => vec![elementwise(dev)],
        "mlp" => vec![mlp(dev)],
        "chain" => vec![chain(dev)],
        "conv" => vec![conv(dev)],
        "cnn" => vec![cnn(dev, DType::F32)],
        "gpt" => vec![gpt(dev, DType::F32)],
        // The model steps and a matmul with 16-bit activations (autocast;
        // f16 with loss scaling), to compare with the f32 lines.
        "precision" => [DType::BF16, DType::F16]
            .into_iter()
            .flat_map(|d| [matmul_16(dev, 1024, d), cnn(dev, d), gpt(dev, d)])
            .collect(),
        // The transformer's step at long context with fused attention and
        // with the composition (2,048 tokens per batch at either context).
        "attention" => [256, 1024]
            .into_iter()
            .flat_map(|t| [gpt_attention(dev, t, true), gpt_attention(dev, t, false)])
            .collect(),
        // Not in GROUPS: a real GPU's lines (412 GFLOP per iteration, about
        // 16 s on lavapipe); the bench runs them only when named.
        "matmul4096" => vec![matmul(dev, 4096)],
        "matmul4096_16" => vec![
            matmul_16(dev, 4096, DType::BF16),
            matmul_16(dev, 4096, DType::F16),
        ],
        _ => Vec::new(),
    }
}

/// The JSON line of a workload's median time.
pub fn json_line(w: &Workload, ms: f64, dev: &Device) -> String {
    let a = dev.adapter().unwrap();
    let rate = w
        .flops
        .map(|f| format!(r#","gflops":{:.2}"#, f / (ms * 1e-3) / 1e9))
        .unwrap_or_default();
    let sep = if w.fields.is_empty() { "" } else { "," };
    format!(
        r#"{{"workload":"{}"{sep}{},"ms":{ms:.3}{rate},"adapter":"{}","backend":"{}"}}"#,
        w.name, w.fields, a.name, a.backend
    )
}

/// One optimizer step as an iteration: the loss read back, the updates
/// realized with it in one submit (what `Optimizer::minimize` does).
fn training_step(loss: Tensor, params: &[&Tensor], opt: &mut impl Optimizer) -> Iteration {
    let grads = grad(&loss, params);
    let updates = opt.step(params, &grads).unwrap();
    Iteration {
        read: vec![loss],
        realize: updates,
    }
}

/// [`training_step`] through a loss scaler (f16 training).
fn scaled_step(
    loss: Tensor,
    params: &[&Tensor],
    opt: &mut impl Optimizer,
    scaler: &mut LossScaler,
) -> Iteration {
    let grads = grad(&scaler.scale(&loss), params);
    let updates = scaler.step(opt, params, &grads).unwrap();
    Iteration {
        read: vec![loss],
        realize: updates,
    }
}

/// The JSON fields naming a 16-bit workload's precision (none for f32,
/// so that f32 lines stay as they were).
fn precision_field(precision: DType) -> String {
    match precision {
        DType::F32 => String::new(),
        d => format!(r#","precision":"{d}""#),
    }
}

/// [`matmul`] on 16-bit operands (f32 accumulation, 16-bit result).
fn matmul_16(dev: &Device, n: usize, precision: DType) -> Workload {
    let a = Tensor::rand_uniform(dev, [n, n], -1.0, 1.0, 1).to_dtype(precision);
    let b = Tensor::rand_uniform(dev, [n, n], -1.0, 1.0, 2).to_dtype(precision);
    Workload {
        name: "matmul_fwd_bwd",
        fields: format!(r#""n":{n}{}"#, precision_field(precision)),
        flops: Some(3.0 * 2.0 * (n as f64).powi(3)),
        warmup: 2,
        repeats: if n >= 1024 { 5 } else { 10 },
        step: Box::new(move || {
            let loss = a.matmul(&b).to_dtype(DType::F32).sum();
            let g = grad(&loss, &[&a, &b]);
            Iteration {
                read: vec![g[0].sum(), g[1].sum()],
                realize: Vec::new(),
            }
        }),
    }
}

fn matmul(dev: &Device, n: usize) -> Workload {
    let a = Tensor::rand_uniform(dev, [n, n], -1.0, 1.0, 1);
    let b = Tensor::rand_uniform(dev, [n, n], -1.0, 1.0, 2);
    Workload {
        name: "matmul_fwd_bwd",
        fields: format!(r#""n":{n}"#),
        // Forward and both adjoints: 3 products of 2n³.
        flops: Some(3.0 * 2.0 * (n as f64).powi(3)),
        warmup: 2,
        repeats: if n >= 1024 { 5 } else { 10 },
        step: Box::new(move || {
            let loss = a.matmul(&b).sum();
            let g = grad(&loss, &[&a, &b]);
            Iteration {
                read: vec![g[0].sum(), g[1].sum()],
                realize: Vec::new(),
            }
        }),
    }
}

fn elementwise(dev: &Device) -> Workload {
    let n = 1 << 20;
    let x = Tensor::rand_uniform(dev, [n], -1.0, 1.0, 3);
    Workload {
        name: "elementwise_chain_1m",
        fields: format!(r#""n":{n}"#),
        flops: None,
        warmup: 3,
        repeats: 15,
        step: Box::new(move || {
            let y = (&(&(&x.sin() * &x.exp()) + &(&x * &x)) - &x.tanh()).sum();
            let g = &grad(&y, &[&x])[0];
            Iteration {
                read: vec![g.sum()],
                realize: Vec::new(),
            }
        }),
    }
}

/// The 784-256-256-10 ReLU MLP and its batch of 128 random images.
pub fn mlp_model(dev: &Device) -> (Mlp, Tensor, Vec<usize>) {
    let mlp = Mlp::new(
        dev,
        &[784, 256, 256, 10],
        Activation::Relu,
        Init::KaimingNormal,
        10,
    )
    .unwrap();
    let x = Tensor::rand_uniform(dev, [128, 784], 0.0, 1.0, 4);
    let labels: Vec<usize> = (0..128).map(|i| (i * 7 + 3) % 10).collect();
    (mlp, x, labels)
}

fn mlp(dev: &Device) -> Workload {
    let (mlp, x, labels) = mlp_model(dev);
    let mut opt = Sgd::new(0.01);
    Workload {
        name: "mlp_sgd_step",
        fields: r#""batch":128"#.into(),
        flops: None,
        warmup: 3,
        repeats: 30,
        // Forward, backward and the in-place update: one submit.
        step: Box::new(move || {
            let loss = mlp.forward(&x).cross_entropy(&labels);
            training_step(loss, &mlp.parameters(), &mut opt)
        }),
    }
}

fn chain(dev: &Device) -> Workload {
    let x = Tensor::rand_uniform(dev, [1024], -1.0, 1.0, 5);
    Workload {
        name: "chain_1000_ops",
        fields: r#""n":1024"#.into(),
        flops: None,
        warmup: 3,
        repeats: 15,
        step: Box::new(move || {
            let mut y = x.clone();
            for i in 0..1000 {
                y = match i % 4 {
                    0 => &y * 1.0001,
                    1 => &y + 0.001,
                    2 => y.tanh(),
                    _ => y.sin(),
                };
            }
            let g = &grad(&y.sum(), &[&x])[0];
            Iteration {
                read: vec![g.sum()],
                realize: Vec::new(),
            }
        }),
    }
}

fn conv(dev: &Device) -> Workload {
    let (n, c, k, hw) = (32usize, 16usize, 32usize, 32usize);
    let x = Tensor::rand_uniform(dev, [n, c, hw, hw], -1.0, 1.0, 5);
    let w = Tensor::rand_uniform(dev, [k, c, 3, 3], -0.2, 0.2, 6);
    let options = Conv2dOptions::default().padding(1);
    Workload {
        name: "conv2d_fwd_bwd",
        fields: format!(r#""shape":[{n},{c},{hw},{hw}],"filters":{k}"#),
        // Forward, input adjoint and weight adjoint: 2·N·K·C·R·S·H·W each.
        flops: Some(3.0 * 2.0 * (n * k * c * 9 * hw * hw) as f64),
        warmup: 2,
        repeats: 10,
        step: Box::new(move || {
            let loss = x.conv2d(&w, None, options).sum();
            let g = grad(&loss, &[&x, &w]);
            Iteration {
                read: vec![g[0].sum(), g[1].sum()],
                realize: Vec::new(),
            }
        }),
    }
}

/// The digits CNN and its batch of 128 random images.
pub fn cnn_model(dev: &Device) -> (DigitsCnn, Tensor, Vec<usize>) {
    let model = DigitsCnn::new(dev, 0).unwrap();
    let x = Tensor::rand_uniform(dev, [128, 64], 0.0, 1.0, 7);
    let labels: Vec<usize> = (0..128).map(|i| i % 10).collect();
    (model, x, labels)
}

fn cnn(dev: &Device, precision: DType) -> Workload {
    let (model, x, labels) = cnn_model(dev);
    let mut opt = Adam::new(1e-3);
    let mut scaler = LossScaler::new(dev).unwrap();
    Workload {
        name: "cnn_adam_step",
        fields: format!(r#""batch":128{}"#, precision_field(precision)),
        flops: None,
        warmup: 3,
        repeats: 15,
        step: Box::new(move || {
            let logits = autocast(precision, || model.forward(&x)).to_dtype(DType::F32);
            let loss = logits.cross_entropy(&labels);
            let params = model.parameters();
            match precision {
                DType::F16 => scaled_step(loss, &params, &mut opt, &mut scaler),
                _ => training_step(loss, &params, &mut opt),
            }
        }),
    }
}

/// The character transformer (2 layers, 4 heads, width 64) and a batch of
/// 32 × 64 token ids with their next tokens.
pub fn gpt_model(dev: &Device) -> (CharTransformer, webgrad::IndexTensor, Vec<usize>) {
    let config = TransformerConfig {
        vocabulary: 72,
        context: 64,
        width: 64,
        heads: 4,
        layers: 2,
        dropout: 0.0,
    };
    let model = CharTransformer::new(dev, config, 0).unwrap();
    let ids: Vec<u32> = (0..32 * 64).map(|i| (i * 31 % 72) as u32).collect();
    let targets: Vec<usize> = ids.iter().map(|&i| (i as usize + 1) % 72).collect();
    let ids = webgrad::IndexTensor::from_vec(dev, ids, [32, 64]);
    (model, ids, targets)
}

/// The character transformer's AdamW step at `context` (batch 2,048 /
/// context), attention fused or composed.
fn gpt_attention(dev: &Device, context: usize, fused: bool) -> Workload {
    let config = TransformerConfig {
        vocabulary: 72,
        context,
        width: 64,
        heads: 4,
        layers: 2,
        dropout: 0.0,
    };
    let batch = (2048 / context).max(1);
    let mut model = CharTransformer::new(dev, config, 0).unwrap();
    model.set_fused_attention(fused);
    let ids: Vec<u32> = (0..batch * context).map(|i| (i * 31 % 72) as u32).collect();
    let targets: Vec<usize> = ids.iter().map(|&i| (i as usize + 1) % 72).collect();
    let ids = webgrad::IndexTensor::from_vec(dev, ids, [batch, context]);
    let mut opt = Adam::new(1e-3).decoupled_weight_decay(0.01);
    let attention = if fused { "fused" } else { "composed" };
    Workload {
        name: "gpt_attention_step",
        fields: format!(r#""batch":{batch},"context":{context},"attention":"{attention}""#),
        flops: None,
        warmup: 2,
        repeats: 5,
        step: Box::new(move || {
            let loss = model.loss(&ids, &targets, None);
            let params = model.parameters();
            training_step(loss, &params, &mut opt)
        }),
    }
}

fn gpt(dev: &Device, precision: DType) -> Workload {
    let (model, ids, targets) = gpt_model(dev);
    let mut opt = Adam::new(1e-3).decoupled_weight_decay(0.01);
    let mut scaler = LossScaler::new(dev).unwrap();
    Workload {
        name: "gpt_adamw_step",
        fields: format!(r#""batch":32,"context":64{}"#, precision_field(precision)),
        flops: None,
        warmup: 2,
        repeats: 7,
        step: Box::new(move || {
            let loss = match precision {
                DType::F32 => model.loss(&ids, &targets, None),
                d => {
                    let logits = autocast(d, || model.forward(&ids, None)).to_dtype(DType::F32);
                    let (b, t, v) = (logits.dims()[0], logits.dims()[1], logits.dims()[2]);
                    logits.reshape([b * t, v]).cross_entropy(&targets)
                }
            };
            let params = model.parameters();
            match precision {
                DType::F16 => scaled_step(loss, &params, &mut opt, &mut scaler),
                _ => training_step(loss, &params, &mut opt),
            }
        }),
    }
}
