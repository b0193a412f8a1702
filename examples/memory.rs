//! Reverse mode's memory, and what checkpointing buys: for the
//! digits MLP, the digits CNN, the character transformer and a deep tanh
//! MLP, the predicted and measured peak GPU
//! bytes of one training step (forward, backward, SGD update, loss read)
//! and its time, without checkpoints, with the layers checkpointed in
//! segments of k (k = 1, √n and 2√n; the MLPs), and with no checkpoints but a
//! device memory budget (50% and 25% of the unbudgeted peak, and the
//! smallest that fits), which webgrad meets by rematerializing on its own.
//! Then (c) a training run that does not fit its budget without
//! recomputation: refused with the budget off, trained with it on; and (d)
//! the predicted peak of a step with the activations stored in f32, bf16
//! and f16 (`webgrad::autocast` around the forward pass, the loss in f32).
//!
//! ```text
//! cargo run --release --example memory [-- --depth 128 --width 256 --batch 256 --train-steps 4]
//! ```

use std::time::Instant;

use webgrad::layers::{Activation, Init, Mlp, Module};

// The bench's models (the CNN and the transformer), built the same way.
#[path = "bench/workloads.rs"]
#[allow(dead_code)]
mod workloads;
use webgrad::optim::{Optimizer, Sgd};
use webgrad::{DType, Device, Tensor, autocast, checkpoint, grad, read_and_realize_blocking};

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map_or(default, |v| v.parse().expect("a number"))
}

/// What one step measured: predicted, measured peak, median seconds, and
/// the bytes live before it (parameters, data).
type Measured = (webgrad::MemoryPrediction, u64, f64, u64);

/// One step of `forward` (checkpointed in segments of `every` layers, 0:
/// none) under the device's budget, if any; the budget error if it does
/// not fit.
fn measure(
    dev: &Device,
    params: &[Tensor],
    loss_of: &dyn Fn(usize) -> Tensor,
    every: usize,
    repeats: usize,
) -> webgrad::Result<Measured> {
    let mut opt = Sgd::new(1e-3);
    let refs: Vec<&Tensor> = params.iter().collect();
    let mut step = |record: bool| {
        let loss = loss_of(every);
        let grads = grad(&loss, &refs);
        let updates = opt.step(&refs, &grads).unwrap();
        // Handles keep values: dropped, the gradients are intermediates
        // whose buffers go as soon as their updates ran (minimize does this).
        drop(grads);
        let updates: Vec<&Tensor> = updates.iter().collect();
        let mut all = vec![&loss];
        all.extend(&updates);
        let predicted = if record {
            webgrad::predict_memory(&all)?
        } else {
            Default::default()
        };
        let live = dev.memory_stats().live_bytes;
        dev.reset_peak_memory();
        let start = Instant::now();
        read_and_realize_blocking(&[&loss], &updates)?;
        Ok((
            predicted,
            dev.memory_stats().peak_live_bytes,
            start.elapsed().as_secs_f64(),
            live,
        ))
    };
    // Warm-up: pipelines, autotune (at a shape's second sight), the pool.
    step(false)?;
    step(false)?;
    let (predicted, measured, _, live) = step(true)?;
    let mut times = Vec::new();
    for _ in 0..repeats {
        times.push(step(false)?.2);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((predicted, measured, times[times.len() / 2], live))
}

fn table(
    name: &str,
    dev: &Device,
    params: &[Tensor],
    loss_of: &dyn Fn(usize) -> Tensor,
    depth: usize,
) {
    let root = (depth as f64).sqrt().round().max(1.0) as usize;
    println!("\n{name}");
    println!(
        "{:>22} {:>14} {:>14} {:>10} {:>10} {:>9}",
        "policy", "predicted MB", "measured MB", "act. mem.", "step ms", "vs none"
    );
    // depth 0: a model without per-layer checkpoints here (budgets only).
    let mut policies = vec![(0, "none".to_string())];
    if depth > 0 {
        policies.push((1, "every layer".to_string()));
    }
    if root > 1 {
        policies.push((root, format!("segments of √n = {root}")));
        policies.push((2 * root, format!("segments of {}", 2 * root)));
    }
    // Beside each peak, the activation memory (the peak less what was
    // live before the step: parameters and data) as a share of the
    // unbudgeted step's.
    let row = |label: &str, (p, m, t, live): Measured, base: Measured| {
        println!(
            "{label:>22} {:>14.2} {:>14.2} {:>9.2}x {:>10.1} {:>8.2}x",
            p.peak_bytes as f64 / 1e6,
            m as f64 / 1e6,
            m.saturating_sub(live) as f64 / base.1.saturating_sub(base.3) as f64,
            t * 1e3,
            t / base.2
        );
        if p.recomputed_kernels > 0 {
            println!(
                "{:>22} recomputing {} kernels, {:.1} MB of values, {:.2} GFLOP",
                "",
                p.recomputed_kernels,
                p.recomputed_bytes as f64 / 1e6,
                p.recomputed_flops as f64 / 1e9
            );
        }
    };
    let mut base: Option<Measured> = None;
    for (every, label) in policies {
        let r = measure(dev, params, loss_of, every, 3).expect("no budget set");
        let b = *base.get_or_insert(r);
        row(&label, r, b);
    }
    // No checkpoints, a budget of 50% and 25% of the activation memory:
    // webgrad rematerializes by itself.
    let base = base.expect("a first row");
    let activations = base.1.saturating_sub(base.3);
    let mut smallest = None;
    for percent in [50u64, 25] {
        let budget = base.3 + activations * percent / 100;
        dev.set_memory_budget(Some(budget));
        let label = format!("auto, {percent}% budget");
        match measure(dev, params, loss_of, 0, 3) {
            Ok(r) => row(&label, r, base),
            Err(webgrad::Error::OutOfBudget { needed, .. }) => {
                println!(
                    "{label:>22} does not fit: the smallest peak reached is {:.2} MB",
                    needed as f64 / 1e6
                );
                smallest = Some(needed);
            }
            Err(e) => panic!("{e}"),
        }
    }
    if smallest.is_none() {
        // Ask for a budget nothing meets to learn the smallest peak.
        dev.set_memory_budget(Some(1));
        if let Err(webgrad::Error::OutOfBudget { needed, .. }) = measure(dev, params, loss_of, 0, 1)
        {
            smallest = Some(needed);
        }
    }
    if let Some(needed) = smallest {
        dev.set_memory_budget(Some(needed));
        match measure(dev, params, loss_of, 0, 3) {
            Ok(r) => row("auto, smallest", r, base),
            Err(e) => println!("{:>22} {e}", "auto, smallest"),
        }
    }
    // The machine's speed drifts: the 25% budget's time against none's,
    // as the ratio within pairs of steps taken back to back.
    let budget = base.3 + activations / 4;
    let mut ratios = Vec::new();
    for round in 0..5 {
        let time = |b: Option<u64>| -> webgrad::Result<f64> {
            dev.set_memory_budget(b);
            let refs: Vec<&Tensor> = params.iter().collect();
            let loss = loss_of(0);
            let grads = grad(&loss, &refs);
            let updates = Sgd::new(1e-3).step(&refs, &grads)?;
            drop(grads);
            let start = Instant::now();
            read_and_realize_blocking(&[&loss], &updates.iter().collect::<Vec<_>>())?;
            Ok(start.elapsed().as_secs_f64())
        };
        let (plain, budgeted) = if round % 2 == 0 {
            let p = time(None);
            (p, time(Some(budget)))
        } else {
            let b = time(Some(budget));
            (time(None), b)
        };
        if let (Ok(p), Ok(b)) = (plain, budgeted) {
            ratios.push(b / p);
        }
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    if let (Some(lo), Some(hi)) = (ratios.first(), ratios.last()) {
        println!(
            "{:>22} step time vs none, {} pairs back to back: median {:.2}x ({lo:.2}-{hi:.2})",
            "auto, 25% budget",
            ratios.len(),
            ratios[ratios.len() / 2]
        );
    }
    dev.set_memory_budget(None);
}

fn main() {
    // RUST_LOG=webgrad=info shows autotune's timings, pipeline compiles
    // and rematerialization decisions.
    env_logger::init();
    let depth = arg("--depth", 128);
    let train_steps = arg("--train-steps", 4);
    let width = arg("--width", 256);
    let batch = arg("--batch", 256);
    let dev = Device::new_blocking().unwrap();
    println!(
        "memory: one SGD step (forward, backward, update) on {}; peaks are the device's live bytes",
        dev.adapter().unwrap().name
    );

    // (a) The digits MLP, 64-128-64-10, batch 128.
    let mlp = Mlp::new(
        &dev,
        &[64, 128, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        0,
    )
    .unwrap();
    let data = webgrad::data::Dataset::digits().unwrap();
    let rows: Vec<usize> = (0..128).collect();
    let (xd, labels) = data.select(&rows).tensors(&dev);
    xd.realize_blocking().unwrap();
    let params: Vec<Tensor> = mlp.parameters().into_iter().cloned().collect();
    let digits = |every: usize| -> Tensor {
        let mut h = xd.clone();
        for (k, layer) in mlp.layers.iter().enumerate() {
            let last = k + 1 == mlp.layers.len();
            let (w, b) = (&layer.weight, &layer.bias);
            let f = move |v: &[Tensor]| {
                let z = &v[0].matmul(&v[1]) + &v[2];
                if last { z } else { z.relu() }
            };
            h = if every == 0 {
                f(&[h.clone(), w.clone(), b.clone()])
            } else {
                checkpoint(f, &[&h, w, b])
            };
        }
        h.cross_entropy(&labels)
    };
    table(
        "(a) digits MLP 64-128-64-10, batch 128",
        &dev,
        &params,
        &digits,
        3,
    );

    // The digits CNN (batch 128) and the character transformer (2 layers,
    // width 64, batch 32 × 64): budgets only.
    let (cnn, pixels, cnn_labels) = workloads::cnn_model(&dev);
    pixels.realize_blocking().unwrap();
    let cnn_params: Vec<Tensor> = cnn.parameters().into_iter().cloned().collect();
    let cnn_loss = |_: usize| cnn.forward(&pixels).cross_entropy(&cnn_labels);
    table("digits CNN, batch 128", &dev, &cnn_params, &cnn_loss, 0);
    let (gpt, ids, next) = workloads::gpt_model(&dev);
    let gpt_params: Vec<Tensor> = gpt.parameters().into_iter().cloned().collect();
    let gpt_loss = |_: usize| gpt.loss(&ids, &next, None);
    table(
        "character transformer, 2 layers, width 64, batch 32 × 64",
        &dev,
        &gpt_params,
        &gpt_loss,
        0,
    );

    // (b) A deep tanh MLP: `depth` layers of width `width`.
    let ws: Vec<Tensor> = (0..depth)
        .map(|i| {
            Tensor::rand_normal(
                &dev,
                [width, width],
                0.0,
                1.0 / (width as f32).sqrt(),
                i as u64,
            )
            .to_variable()
            .unwrap()
        })
        .collect();
    let x = Tensor::rand_uniform(&dev, [batch, width], -1.0, 1.0, 1000);
    x.realize_blocking().unwrap();
    let deep = |every: usize| -> Tensor {
        let mut h = x.clone();
        if every == 0 {
            for w in &ws {
                h = h.matmul(w).tanh();
            }
        } else {
            for seg in ws.chunks(every) {
                let mut inputs: Vec<&Tensor> = vec![&h];
                inputs.extend(seg.iter());
                h = checkpoint(
                    |v: &[Tensor]| {
                        let mut h = v[0].clone();
                        for w in &v[1..] {
                            h = h.matmul(w).tanh();
                        }
                        h
                    },
                    &inputs,
                );
            }
        }
        h.square().mean()
    };
    table(
        &format!("(b) {depth}-layer tanh MLP, width {width}, batch {batch}"),
        &dev,
        &ws,
        &deep,
        depth,
    );

    // (c) Training that does not fit without recomputation: a budget
    // leaving 40% of the step's activation memory.
    let mut opt = Sgd::new(0.05);
    let refs: Vec<&Tensor> = ws.iter().collect();
    let step = |opt: &mut Sgd| {
        let loss = deep(0);
        let grads = grad(&loss, &refs);
        let mut all = vec![loss];
        all.extend(opt.step(&refs, &grads).unwrap());
        all
    };
    let live = dev.memory_stats().live_bytes;
    let plain = {
        let all = step(&mut opt);
        webgrad::predict_peak_bytes(&all.iter().collect::<Vec<_>>()).unwrap()
    };
    // 40% of the activation memory, or the least webgrad can reach if
    // that is less (a budget of one byte makes it say).
    dev.set_memory_budget(Some(1));
    let least = {
        let all = step(&mut opt);
        match webgrad::realize_all_blocking(&all.iter().collect::<Vec<_>>()) {
            Err(webgrad::Error::OutOfBudget { needed, .. }) => needed,
            other => panic!("a budget of one byte: {other:?}"),
        }
    };
    let budget = (live + (plain - live) * 2 / 5).max(least);
    println!(
        "\n(c) training the {depth}-layer MLP under a budget of {:.1} MB (a step needs {:.1} MB, {:.1} MB of it before the step)",
        budget as f64 / 1e6,
        plain as f64 / 1e6,
        live as f64 / 1e6
    );
    dev.set_memory_budget(Some(budget));
    for auto in [false, true] {
        dev.set_auto_remat(auto);
        let what = if auto { "on" } else { "off" };
        for k in 0..if auto { train_steps } else { 1 } {
            let all = step(&mut opt);
            dev.reset_peak_memory();
            let start = Instant::now();
            match read_and_realize_blocking(&[&all[0]], &all[1..].iter().collect::<Vec<_>>()) {
                Ok(v) => println!(
                    "  recomputation {what}, step {k}: loss {:.6}, peak {:.1} MB, {:.0} ms",
                    v[0][0],
                    dev.memory_stats().peak_live_bytes as f64 / 1e6,
                    start.elapsed().as_secs_f64() * 1e3
                ),
                Err(e) => println!("  recomputation {what}: {e}"),
            }
        }
    }
    dev.set_memory_budget(None);
    dev.set_auto_remat(false);

    // (d) Activations in 16 bits.
    println!(
        "\n(d) one SGD step with the activations stored in each dtype (predicted peak; activations: the part above what lives before the step)"
    );
    dtype_rows("digits CNN, batch 128", &dev, &cnn_params, &|d| {
        let logits = autocast(d, || cnn.forward(&pixels)).to_dtype(DType::F32);
        logits.cross_entropy(&cnn_labels)
    });
    dtype_rows("character transformer", &dev, &gpt_params, &|d| {
        let logits = autocast(d, || gpt.forward(&ids, None)).to_dtype(DType::F32);
        let (b, t, v) = (logits.dims()[0], logits.dims()[1], logits.dims()[2]);
        logits.reshape([b * t, v]).cross_entropy(&next)
    });
    dtype_rows(&format!("{depth}-layer tanh MLP"), &dev, &ws, &|d| {
        let h = autocast(d, || ws.iter().fold(x.clone(), |h, w| h.matmul(w).tanh()));
        h.to_dtype(DType::F32).square().mean()
    });
}

/// (d): the predicted peak of one SGD step whose forward pass stores its
/// activations in each dtype, and its activations relative to f32's.
fn dtype_rows(name: &str, dev: &Device, params: &[Tensor], loss_of: &dyn Fn(DType) -> Tensor) {
    let refs: Vec<&Tensor> = params.iter().collect();
    let live = dev.memory_stats().live_bytes;
    let mut f32_activations = 1;
    println!("  {name}");
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let loss = loss_of(dtype);
        let grads = grad(&loss, &refs);
        let updates = Sgd::new(1e-3).step(&refs, &grads).unwrap();
        drop(grads);
        let mut all = vec![&loss];
        all.extend(&updates);
        let peak = webgrad::predict_memory(&all).unwrap().peak_bytes;
        let activations = peak.saturating_sub(live);
        if dtype == DType::F32 {
            f32_activations = activations.max(1);
        }
        println!(
            "    {:<5} peak {:>7.2} MB, activations {:>7.2} MB ({:.0}% of f32's)",
            dtype.name(),
            peak as f64 / 1e6,
            activations as f64 / 1e6,
            100.0 * activations as f64 / f32_activations as f64
        );
    }
}
