//! Soak test (not part of CI): trains the digits MLP for 10,000 Adam steps
//! at random batch sizes, with invalid calls of every kind mixed in (shape
//! errors, tensors larger than the device allows, stale reads, malformed
//! expressions and checkpoints, out-of-range indices), and prints GPU
//! buffers, host memory and the errors seen every 1,000 steps. Memory must
//! stay flat: the program fails if the GPU bytes or the host's resident
//! memory at the end exceed those at step 1,000 by more than the stated
//! slack.
//!
//! ```text
//! cargo run --release --example soak [-- --steps 10000]
//! ```

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use webgrad::data::Dataset;
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, Error, IndexTensor, Result, Tensor};

/// Growth allowed between the report at step 1,000 and the last one.
const GPU_SLACK: f64 = 1.10;
const RSS_SLACK_BYTES: u64 = 32 << 20;

fn main() -> Result<()> {
    let steps: usize = std::env::args()
        .skip_while(|a| a != "--steps")
        .nth(1)
        .map_or(10_000, |s| s.parse().expect("--steps takes a number"));
    // Mistakes made on purpose panic; their messages would flood the output.
    std::panic::set_hook(Box::new(|_| {}));
    let dev = Device::new_blocking()?;
    println!("soak: {} on {}", steps, dev.adapter().unwrap().name);
    let data = Dataset::digits()?;
    let features = data.features;
    let model = Mlp::new(
        &dev,
        &[features, 128, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        0,
    )?;
    let params = model.parameters();
    let mut opt = Adam::new(3e-3);
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = move |n: usize| {
        // xorshift64*: reproducible batch sizes and choices.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        (rng.wrapping_mul(0x2545f4914f6cdd1d) >> 33) as usize % n
    };
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut baseline: Option<(u64, u64)> = None;
    let mut last = (0u64, 0u64);
    let start = Instant::now();
    println!(
        "{:>6} {:>8} {:>8} {:>12} {:>8} {:>12} {:>9}  errors seen",
        "step", "loss", "buffers", "GPU bytes", "pooled", "pool bytes", "RSS MiB"
    );
    for step in 1..=steps {
        let batch = 1 + next(256);
        let rows: Vec<usize> = (0..batch).map(|_| next(data.len())).collect();
        let (x, labels) = data.select(&rows).tensors(&dev);
        let loss = model.forward(&x).cross_entropy(&labels);
        let value = opt.minimize_blocking(&loss, &params)?;
        if step % 7 == 0 {
            let kind = misuse(&dev, &model, next(8));
            *seen.entry(kind).or_default() += 1;
        }
        if step % 1000 == 0 || step == steps {
            let m = dev.memory_stats();
            let gpu = m.live_bytes + m.pooled_bytes;
            let rss = resident_bytes();
            if step == 1000 {
                baseline = Some((gpu, rss));
            }
            last = (gpu, rss);
            let errors: Vec<String> = seen.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "{step:>6} {value:>8.4} {:>8} {:>12} {:>8} {:>12} {:>9.1}  {}",
                m.live_buffers,
                m.live_bytes,
                m.pooled_buffers,
                m.pooled_bytes,
                rss as f64 / (1 << 20) as f64,
                errors.join(", ")
            );
        }
    }
    println!("soak: {:.1} s", start.elapsed().as_secs_f64());
    if let Some((gpu0, rss0)) = baseline {
        let (gpu, rss) = last;
        println!(
            "soak: from step 1,000 to the end, GPU bytes {gpu0} -> {gpu} ({:.2}x), host RSS {:.1} -> {:.1} MiB",
            gpu as f64 / gpu0.max(1) as f64,
            rss0 as f64 / (1 << 20) as f64,
            rss as f64 / (1 << 20) as f64
        );
        if gpu as f64 > gpu0 as f64 * GPU_SLACK || rss > rss0 + RSS_SLACK_BYTES {
            eprintln!(
                "soak: memory grew beyond the slack ({GPU_SLACK}x GPU, {} MiB host)",
                RSS_SLACK_BYTES >> 20
            );
            std::process::exit(1);
        }
        println!("soak: memory stayed flat");
    }
    Ok(())
}

/// One invalid (or unusual) call; returns the kind of outcome it had. Each
/// must fail cleanly and leave the device usable: a panic caught at the
/// call, or an `Error`.
fn misuse(dev: &Device, model: &Mlp, which: usize) -> &'static str {
    let panicked = |f: &mut dyn FnMut()| catch_unwind(AssertUnwindSafe(f)).is_err();
    match which {
        0 => {
            // A batch of the wrong width.
            let x = Tensor::zeros(dev, [3, 7]);
            assert!(panicked(&mut || drop(model.forward(&x))));
            "shape panic"
        }
        1 => match Tensor::zeros(dev, [1 << 30]).realize_blocking() {
            Err(Error::TooLarge { .. }) => "TooLarge",
            other => panic!("expected TooLarge, got {other:?}"),
        },
        2 => {
            // A read recorded before an update that has been written since.
            let v = Tensor::zeros(dev, [4]).to_variable().unwrap();
            let old = &v * 2.0;
            v.assign(&(&v + 1.0)).realize_blocking().unwrap();
            match old.to_vec_blocking() {
                Err(Error::StaleRead(_)) => "StaleRead",
                other => panic!("expected StaleRead, got {other:?}"),
            }
        }
        3 => {
            let mut g = webgrad::symbolic::ExprGraph::new();
            match g.parse("sin(x1 +* 2") {
                Err(Error::Parse { .. }) => "Parse",
                other => panic!("expected a parse error, got {other:?}"),
            }
        }
        4 => {
            let named = model.named_parameters();
            match webgrad::io::from_bytes(b"\x10\0\0\0\0\0\0\0{not json at all", &named) {
                Err(Error::Checkpoint(_)) => "Checkpoint",
                other => panic!("expected a checkpoint error, got {other:?}"),
            }
        }
        5 => {
            let table = Tensor::zeros(dev, [5, 2]);
            let ids = IndexTensor::from_usize(dev, &[1, 9], [2]);
            assert!(panicked(&mut || drop(table.embedding(&ids))));
            "index panic"
        }
        6 => {
            // Empty tensors: valid, and nothing to compute.
            let e = Tensor::zeros(dev, [0, 64]);
            let y = model.forward(&e);
            assert!(y.to_vec_blocking().unwrap().is_empty());
            "empty ok"
        }
        _ => {
            // A NaN input: propagates to the output, no error.
            let x = Tensor::full(dev, [1, 64], f32::NAN);
            let y = model.forward(&x).to_vec_blocking().unwrap();
            assert!(y.iter().all(|v| v.is_nan()));
            "NaN ok"
        }
    }
}

/// Resident set size of this process (Linux; 0 elsewhere).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
