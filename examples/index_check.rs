//! What checking indices computed on the GPU costs: a greedy decoding
//! step (argmax of logits, then an embedding lookup of the chosen ids)
//! whose argmax runs over more entries than the table has rows, so the
//! lookup checks its indices on the GPU (status words read back by the
//! realize), against the same step with the ids clamped (no check) and
//! with a table as long as the argmax's axis (bound known, no check).
//! Each iteration reads a scalar back, as `examples/bench.rs` does; the
//! three alternate in rounds, and the medians are printed as ratios.
//!
//! ```text
//! cargo run --release --example index_check [-- --rounds 5]
//! ```

use std::time::Instant;

use webgrad::{Device, Result, Tensor};

const BATCH: usize = 64;
const LOGITS: usize = 1024;
const WIDTH: usize = 256;
const ITERS: usize = 50;

fn step(logits: &Tensor, table: &Tensor, clamp: bool) -> Result<f32> {
    let mut ids = logits.argmax(1);
    if clamp {
        ids = ids.clamp(table.dims()[0]);
    }
    Ok(table.embedding(&ids).sum().to_vec_blocking()?[0])
}

fn seconds_per_step(logits: &Tensor, table: &Tensor, clamp: bool) -> Result<f64> {
    step(logits, table, clamp)?;
    let start = Instant::now();
    for _ in 0..ITERS {
        step(logits, table, clamp)?;
    }
    Ok(start.elapsed().as_secs_f64() / ITERS as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .map_or(5, |s| s.parse().expect("--rounds takes a number"));
    let dev = Device::new_blocking()?;
    println!("index_check on {}", dev.adapter().unwrap().name);
    // Logits peaked at columns below 1000, so a 1000-row table fits them.
    let logits: Vec<f32> = (0..BATCH * LOGITS)
        .map(|i| {
            if i % LOGITS == (i / LOGITS * 37) % 1000 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let logits = Tensor::from_vec(&dev, logits, [BATCH, LOGITS]);
    let short = Tensor::rand_uniform(&dev, [1000, WIDTH], -1.0, 1.0, 1);
    let full = Tensor::rand_uniform(&dev, [LOGITS, WIDTH], -1.0, 1.0, 1);
    for t in [&logits, &short, &full] {
        t.realize_blocking()?;
    }
    let (mut checked, mut clamped) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let known = seconds_per_step(&logits, &full, false)?;
        let check = seconds_per_step(&logits, &short, false)?;
        let clamp = seconds_per_step(&logits, &short, true)?;
        println!(
            "round {round}: bound known {:.3} ms, checked {:.3} ms, clamped {:.3} ms",
            known * 1e3,
            check * 1e3,
            clamp * 1e3
        );
        checked.push(check / known);
        clamped.push(clamp / known);
    }
    println!(
        "medians of per-round ratios to the unchecked step: checked {:.3}x, clamped {:.3}x",
        median(checked),
        median(clamped)
    );
    Ok(())
}
