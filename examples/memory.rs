//! Reverse mode's memory, and what checkpointing buys (issue 11): for the
//! digits MLP and a deep tanh MLP, the predicted and measured peak GPU
//! bytes of one training step (forward, backward, SGD update, loss read)
//! and its time, without checkpoints and with the layers checkpointed in
//! segments of k (k = 1, √n and 2√n).
//!
//! ```text
//! cargo run --release --example memory [-- --depth 128 --width 256 --batch 256]
//! ```

use std::time::Instant;

use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Optimizer, Sgd};
use webgrad::{Device, Tensor, grad, read_and_realize_blocking, remat};

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map_or(default, |v| v.parse().expect("a number"))
}

/// One step of `forward` (checkpointed in segments of `every` layers, 0:
/// none): predicted peak, measured peak, median seconds of `repeats`.
fn measure(
    dev: &Device,
    params: &[Tensor],
    loss_of: &dyn Fn(usize) -> Tensor,
    every: usize,
    repeats: usize,
) -> (webgrad::MemoryPrediction, u64, f64) {
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
            webgrad::predict_memory(&all).unwrap()
        } else {
            Default::default()
        };
        dev.reset_peak_memory();
        let start = Instant::now();
        read_and_realize_blocking(&[&loss], &updates).unwrap();
        (
            predicted,
            dev.memory_stats().peak_live_bytes,
            start.elapsed().as_secs_f64(),
        )
    };
    step(false); // warm-up: pipelines, autotune, pool
    let (predicted, measured, _) = step(true);
    let mut times: Vec<f64> = (0..repeats).map(|_| step(false).2).collect();
    times.sort_by(|a, b| a.total_cmp(b));
    (predicted, measured, times[times.len() / 2])
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
        "policy", "predicted MB", "measured MB", "vs none", "step ms", "vs none"
    );
    let mut base: Option<(u64, f64)> = None;
    let mut policies = vec![(0, "none".to_string()), (1, "every layer".to_string())];
    if root > 1 {
        policies.push((root, format!("segments of √n = {root}")));
        policies.push((2 * root, format!("segments of {}", 2 * root)));
    }
    for (every, label) in policies {
        let (p, m, t) = measure(dev, params, loss_of, every, 3);
        let (m0, t0) = *base.get_or_insert((m, t));
        println!(
            "{label:>22} {:>14.2} {:>14.2} {:>9.2}x {:>10.1} {:>8.2}x",
            p.peak_bytes as f64 / 1e6,
            m as f64 / 1e6,
            m as f64 / m0 as f64,
            t * 1e3,
            t / t0
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
    }
}

fn main() {
    let depth = arg("--depth", 128);
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
    xd.realize().unwrap();
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
                remat(f, &[&h, w, b])
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
    x.realize().unwrap();
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
                h = remat(
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
}
