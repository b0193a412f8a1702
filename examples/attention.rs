//! Fused against composed attention in the character transformer's
//! training step (2 blocks, 4 heads, width 64; AdamW), at growing context:
//! the predicted and measured peak GPU memory of one step and its time,
//! fused and composed alternately in one process (pairs, medians).
//!
//! cargo run --release --example attention [-- CONTEXT ...]   (default 64 256 1024)
//!
//! With `--profile`, the profiler's table of one fused and one composed
//! step at the last context follows.
//!
//! The batch holds 2,048 tokens at every context (32 × 64, 8 × 256,
//! 2 × 1024), so what grows with the context is attention's T×T part.

use std::time::Instant;

use webgrad::layers::Module;
use webgrad::models::{CharTransformer, TransformerConfig};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, IndexTensor, Result, Tensor, grad, read_and_realize_blocking};

const TOKENS: usize = 2048;
const VOCABULARY: usize = 72;

/// One AdamW step's (predicted peak, measured peak, bytes live before it,
/// seconds, loss).
fn step(
    dev: &Device,
    model: &CharTransformer,
    opt: &mut Adam,
    ids: &IndexTensor,
    targets: &[usize],
) -> Result<(u64, u64, u64, f64, f32)> {
    let params = model.parameters();
    let loss = model.loss(ids, targets, None);
    let grads = grad(&loss, &params);
    let updates = opt.step(&params, &grads)?;
    drop(grads);
    let updates: Vec<&Tensor> = updates.iter().collect();
    let mut all = vec![&loss];
    all.extend(&updates);
    let predicted = webgrad::predict_memory(&all)?.peak_bytes;
    let live = dev.memory_stats().live_bytes;
    dev.reset_peak_memory();
    let start = Instant::now();
    let v = read_and_realize_blocking(&[&loss], &updates)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok((
        predicted,
        dev.memory_stats().peak_live_bytes,
        live,
        seconds,
        v[0][0],
    ))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() -> Result<()> {
    let profile = std::env::args().any(|a| a == "--profile");
    let contexts: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--profile")
        .map(|a| a.parse().expect("contexts are positive integers"))
        .collect();
    let contexts = if contexts.is_empty() {
        vec![64, 256, 1024]
    } else {
        contexts
    };
    let dev = Device::new_blocking()?;
    let adapter = dev.adapter().map(|a| a.name.clone()).unwrap_or_default();
    println!("character transformer, AdamW step, {TOKENS} tokens per batch, on {adapter}");
    println!(
        "context batch | fused: predicted MB, measured MB, activations MB, ms | composed: the same | composed/fused time (median of pairs)"
    );
    for &context in &contexts {
        let batch = (TOKENS / context).max(1);
        let config = TransformerConfig {
            vocabulary: VOCABULARY,
            context,
            width: 64,
            heads: 4,
            layers: 2,
            dropout: 0.0,
        };
        let mut model = CharTransformer::new(&dev, config, 0)?;
        let ids: Vec<u32> = (0..batch * context)
            .map(|i| (i * 31 % VOCABULARY) as u32)
            .collect();
        let targets: Vec<usize> = ids.iter().map(|&i| (i as usize + 1) % VOCABULARY).collect();
        let ids = IndexTensor::from_vec(&dev, ids, [batch, context]);
        let mut opt = Adam::new(1e-3).decoupled_weight_decay(0.01);
        // The first loss is the same either way (same weights).
        model.set_fused_attention(true);
        let first_fused = model.loss(&ids, &targets, None).item_blocking()?;
        model.set_fused_attention(false);
        let first_composed = model.loss(&ids, &targets, None).item_blocking()?;
        assert!(
            (first_fused - first_composed).abs() < 1e-4 * first_fused.abs().max(1.0),
            "fused loss {first_fused} vs composed {first_composed}"
        );
        let pairs = if context >= 1024 { 5 } else { 7 };
        let mut rows: [Vec<(u64, u64, u64, f64)>; 2] = [Vec::new(), Vec::new()];
        // Two warm-up rounds (pipelines, autotune), then the pairs, the
        // order flipped every round so that drift falls on both.
        for round in 0..pairs + 2 {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                model.set_fused_attention(which == 0);
                let (p, m, live, s, _) = step(&dev, &model, &mut opt, &ids, &targets)?;
                if round >= 2 {
                    rows[which].push((p, m, live, s));
                }
            }
        }
        let mut ratios: Vec<f64> = rows[0]
            .iter()
            .zip(&rows[1])
            .map(|(f, c)| c.3 / f.3)
            .collect();
        let cell = |r: &Vec<(u64, u64, u64, f64)>| {
            let (p, m, live, _) = r[0];
            let mut ms: Vec<f64> = r.iter().map(|x| x.3 * 1e3).collect();
            format!(
                "{:>7.2} {:>7.2} {:>7.2} {:>8.1}",
                mb(p),
                mb(m),
                mb(m.saturating_sub(live)),
                median(&mut ms)
            )
        };
        println!(
            "{context:>7} {batch:>5} | {} | {} | {:.2}x",
            cell(&rows[0]),
            cell(&rows[1]),
            median(&mut ratios)
        );
        if profile && context == *contexts.last().expect("a context") {
            for fused in [true, false] {
                model.set_fused_attention(fused);
                let (r, table) = dev.profile(|| step(&dev, &model, &mut opt, &ids, &targets));
                r?;
                let which = if fused { "fused" } else { "composed" };
                println!("\n{which} step at context {context}:\n{}", table.table());
            }
        }
    }
    Ok(())
}
