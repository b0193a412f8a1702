//! Trains a character-level transformer (`webgrad::models::CharTransformer`:
//! 2 layers, 4 heads, width 64, context 64) on the King James Bible text
//! shipped with the crate (data/kjv.txt), with AdamW, then generates text.
//!
//! cargo run --release --example train_gpt [-- --minutes M] [--steps N] [--batch B] [--lr L] [--seed S] [--save FILE] [--precision P] [--composed-attention]
//!
//! It trains for 4.5 minutes (or N steps) at batch 16 × 64 characters with
//! AdamW (learning rate 5e-3 after a 50-step warm-up, weight decay 0.01).
//!
//! Every step is one call, `opt.minimize_blocking(&loss, &params)`: the
//! forward pass (embeddings by index, causal attention, GELU MLPs, layer
//! norms), its gradient and the AdamW update in one submit. Losses are in
//! nats per character (a uniform guess over the 72 characters: ln 72 = 4.28).
//! `--precision bf16` or `f16` runs the forward pass under
//! `webgrad::autocast` (activations in 16 bits, parameters and AdamW in
//! f32, the loss in f32 from the logits; f16 with dynamic loss scaling,
//! `webgrad::optim::LossScaler`). `--composed-attention` runs attention as
//! the composition of matmul and softmax instead of the fused kernels.

use std::io::Write;
use std::time::Instant;

use webgrad::layers::Module;
use webgrad::models::{CharTransformer, TransformerConfig};
use webgrad::optim::{Adam, LossScaler, LrSchedule, Optimizer};
use webgrad::text::{CharCorpus, batch};
use webgrad::{DType, Device, IndexTensor, Result, Tensor, autocast, io};

struct Args {
    minutes: f64,
    steps: usize,
    batch: usize,
    lr: f32,
    seed: u64,
    save: String,
    precision: DType,
    composed_attention: bool,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 4.5,
        steps: 100_000,
        batch: 16,
        lr: 5e-3,
        seed: 0,
        save: "char_transformer.safetensors".into(),
        precision: DType::F32,
        composed_attention: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--minutes" => a.minutes = value().parse().expect("--minutes M"),
            "--steps" => a.steps = value().parse().expect("--steps N"),
            "--batch" => a.batch = value().parse().expect("--batch B"),
            "--lr" => a.lr = value().parse().expect("--lr L"),
            "--seed" => a.seed = value().parse().expect("--seed S"),
            "--composed-attention" => a.composed_attention = true,
            "--save" => a.save = value(),
            "--precision" => {
                a.precision = value()
                    .parse()
                    .unwrap_or_else(|e| panic!("--precision: {e}"))
            }
            other => panic!(
                "unknown flag {other} (use --minutes M, --steps N, --seed S, --save FILE, --precision P, --composed-attention)"
            ),
        }
    }
    a
}

/// Mean cross-entropy of predicting `targets`, the forward pass's
/// activations stored in `precision`, the loss computed in f32.
fn loss(
    model: &CharTransformer,
    ids: &IndexTensor,
    targets: &[usize],
    dropout_seed: Option<u64>,
    precision: DType,
) -> Tensor {
    let logits = autocast(precision, || model.forward(ids, dropout_seed)).to_dtype(DType::F32);
    let (b, t, v) = (logits.dims()[0], logits.dims()[1], logits.dims()[2]);
    logits.reshape([b * t, v]).cross_entropy(targets)
}

/// Mean loss over fixed batches of `tokens` (no dropout).
fn evaluate(
    model: &CharTransformer,
    dev: &Device,
    tokens: &[u32],
    batches: usize,
    precision: DType,
) -> Result<f32> {
    let c = model.config;
    let mut total = 0.0;
    for k in 0..batches {
        let b = batch(dev, tokens, 32, c.context, 1_000_000 + k as u64);
        total += loss(model, &b.inputs, &b.targets, None, precision).item_blocking()?;
    }
    Ok(total / batches as f32)
}

/// `count` characters after `prompt`, sampled at `temperature` (seeded).
fn generate(
    model: &CharTransformer,
    corpus: &CharCorpus,
    dev: &Device,
    prompt: &str,
    count: usize,
    temperature: f32,
    seed: u64,
) -> Result<String> {
    let mut tokens = corpus.encode(prompt)?;
    let mut state = seed | 1;
    for _ in 0..count {
        let start = tokens.len().saturating_sub(model.config.context);
        let window = &tokens[start..];
        let ids = IndexTensor::from_vec(dev, window.to_vec(), [1, window.len()]);
        let logits = model.forward(&ids, None);
        let v = model.config.vocabulary;
        let last = logits
            .reshape([window.len(), v])
            .narrow(0, window.len() - 1..(window.len() - 1) + 1);
        let probs = (last * (1.0 / temperature)).softmax(1).to_vec_blocking()?;
        // xorshift64 for the draw.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let u = (state >> 11) as f32 / (1u64 << 53) as f32;
        let mut acc = 0.0;
        let next = probs.iter().position(|&p| {
            acc += p;
            u < acc
        });
        tokens.push(next.unwrap_or(v - 1) as u32);
    }
    corpus.decode(&tokens)
}

fn main() -> Result<()> {
    let args = args();
    let dev = Device::new_blocking()?;
    let corpus = CharCorpus::kjv();
    let (train, val) = corpus.split(0.1);
    let config = TransformerConfig {
        vocabulary: corpus.vocabulary.len(),
        context: 64,
        width: 64,
        heads: 4,
        layers: 2,
        dropout: 0.0,
    };
    let mut model = CharTransformer::new(&dev, config, args.seed)?;
    model.set_fused_attention(!args.composed_attention);
    let params = model.parameters();
    let count: usize = params.iter().map(|p| p.numel()).sum();
    println!(
        "King James Bible, Genesis to Job: {} training and {} validation characters, {} distinct; \
         transformer of {count} parameters on {}, activations in {}",
        train.len(),
        val.len(),
        config.vocabulary,
        dev.adapter().unwrap().name,
        args.precision
    );
    // Linear warm-up over 50 steps, then constant: the run's length is set by time.
    let mut opt = Adam::new(LrSchedule::warmup(args.lr, 50)).decoupled_weight_decay(0.01);
    // f16 needs loss scaling (its range ends at 65504, its precision near
    // 6e-8); bf16 has f32's range and needs none.
    let mut scaler = match args.precision {
        DType::F16 => Some(LossScaler::new(&dev)?),
        _ => None,
    };
    let budget = args.minutes * 60.0;
    let start = Instant::now();
    println!(
        "{:>6} {:>8} {:>10} {:>10}",
        "step", "seconds", "train", "validation"
    );
    let mut step = 0;
    let mut smoothed = f32::NAN;
    while step < args.steps && start.elapsed().as_secs_f64() < budget {
        let b = batch(
            &dev,
            train,
            32,
            config.context,
            args.seed * 1_000_003 + step as u64,
        );
        let step_loss = loss(
            &model,
            &b.inputs,
            &b.targets,
            Some(step as u64),
            args.precision,
        );
        let value = match &mut scaler {
            Some(scaler) => scaler.minimize_blocking(&mut opt, &step_loss, &params)?,
            None => opt.minimize_blocking(&step_loss, &params)?,
        };
        smoothed = if smoothed.is_nan() {
            value
        } else {
            0.95 * smoothed + 0.05 * value
        };
        step += 1;
        if step % 100 == 0 {
            let v = evaluate(&model, &dev, val, 4, args.precision)?;
            println!(
                "\r{step:>6} {:>8.1} {smoothed:>10.3} {v:>10.3}",
                start.elapsed().as_secs_f64()
            );
        } else if step % 10 == 0 {
            print!(
                "\r{step:>6} {:>8.1} {smoothed:>10.3}",
                start.elapsed().as_secs_f64()
            );
            std::io::stdout().flush().ok();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let val_loss = evaluate(&model, &dev, val, 16, args.precision)?;
    println!(
        "\n{step} steps in {seconds:.1} s ({:.1} steps/s); validation loss {val_loss:.3} nats per character",
        step as f64 / seconds
    );
    let sample = generate(
        &model,
        &corpus,
        &dev,
        "And God said",
        300,
        0.8,
        args.seed + 7,
    )?;
    println!("sample (temperature 0.8):\n{sample}");
    io::save_module_blocking(&args.save, &model)?;
    println!("saved the parameters to {}", args.save);
    Ok(())
}
