//! Your own op and your own gradient, end to end:
//!
//! 1. a rotary position embedding written from scratch as one WGSL kernel
//!    (`rope.wgsl`), with its vjp and reference (`rope.rs`), checked with
//!    `check_writes` and `check_gradients`;
//! 2. a straight-through estimator with `custom_vjp`: weights binarized to
//!    ±α forward, the gradient passed through to the real-valued weights
//!    backward (BinaryConnect);
//! 3. both in a training step;
//! 4. the fused op against the same rotation composed of built-in ops, in
//!    pairs (fwd+bwd, one process, alternating).
//!
//! cargo run --release --example custom_op [-- ROWS POSITIONS FEATURES]
//! (default 16 1024 64)

mod rope;

use std::time::Instant;

use rope::{Rope, rope, rope_composed};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, Result, Tensor, Tolerance, custom_vjp, grad};

/// sign(w)·α forward; backward the gradient passes straight through to w
/// (times α), where sign's own derivative is zero almost everywhere. As
/// usual for a straight-through estimator, it is cut off where |w| > 1 so
/// that latent weights do not drift without bound.
fn binarize(w: &Tensor, alpha: f32) -> Tensor {
    custom_vjp(
        "binarize_ste",
        &[w],
        |a| a[0].sign() * alpha,
        move |a, _, g| {
            let inside = a[0].abs().le(&a[0].ones_like());
            vec![Some(inside.where_cond(&(g * alpha), &g.zeros_like()))]
        },
    )
}

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are positive integers"))
        .collect();
    let [rows, positions, features] = match args[..] {
        [] => [16, 1024, 64],
        [r, t, d] => [r, t, d],
        _ => panic!("usage: custom_op [ROWS POSITIONS FEATURES]"),
    };
    let dev = Device::new_blocking()?;

    // 1. The op, checked: every output element written, nothing past the
    // end, for each kernel variant; gradients against the f64 reference.
    let small = Tensor::rand_uniform(&dev, [2, 7, 8], -1.0, 1.0, 1);
    let op = Rope {
        base: 10_000.0,
        inverse: false,
    };
    webgrad::op::check_writes_blocking(op, &[&small])?;
    let report =
        webgrad::check_gradients_blocking(|a| rope(&a[0]), &[&small], Tolerance::default(), 2)?;
    println!(
        "rope: writes checked; gradient check {}",
        verdict(report.passed)
    );

    // 2 and 3. A layer with binary weights fitting a rotated projection.
    let (d, alpha) = (16, 0.25);
    let x = Tensor::rand_uniform(&dev, [8, 32, d], -1.0, 1.0, 3);
    let truth = binarize(&Tensor::rand_uniform(&dev, [d, d], -1.0, 1.0, 4), alpha);
    let target = rope(&x.matmul(&truth)).detach();
    let w = Tensor::rand_uniform(&dev, [d, d], -0.1, 0.1, 5).to_variable()?;
    let mut opt = Adam::new(2e-2);
    for step in 0..=150 {
        let y = rope(&x.matmul(&binarize(&w, alpha)));
        let loss = (&y - &target).square().mean();
        let l = opt.minimize_blocking(&loss, &[&w])?;
        if step % 50 == 0 {
            println!("step {step:>3}  loss {l:.5}");
        }
    }
    let wrong = (&binarize(&w, alpha) - &truth)
        .abs()
        .sum()
        .item_blocking()?
        / (2.0 * alpha);
    println!(
        "binary weights different from the truth: {wrong} of {}",
        d * d
    );

    // 4. Fused against composed, fwd+bwd, in pairs.
    let x = Tensor::rand_uniform(&dev, [rows, positions, features], -1.0, 1.0, 6);
    let weight = Tensor::rand_uniform(&dev, [rows, positions, features], -1.0, 1.0, 7);
    let step = |f: &dyn Fn(&Tensor) -> Tensor| {
        let loss = (&f(&x) * &weight).sum();
        let g = grad(&loss, &[&x]);
        g[0].sum().item_blocking().expect("a realize");
    };
    let (fused_check, composed_check) = (
        (&rope(&x) * &weight).sum().item_blocking()?,
        (&rope_composed(&x) * &weight).sum().item_blocking()?,
    );
    println!("fused {fused_check:.4} vs composed {composed_check:.4} (same sum)");
    for _ in 0..3 {
        step(&rope);
        step(&rope_composed);
    }
    let mut ratios = Vec::new();
    let (mut fused_ms, mut composed_ms) = (Vec::new(), Vec::new());
    for round in 0..9 {
        let time = |f: &dyn Fn(&Tensor) -> Tensor| {
            let t = Instant::now();
            step(f);
            t.elapsed().as_secs_f64() * 1e3
        };
        // The order flips every round so that drift falls on both.
        let (a, b) = if round % 2 == 0 {
            let a = time(&rope);
            (a, time(&rope_composed))
        } else {
            let b = time(&rope_composed);
            (time(&rope), b)
        };
        fused_ms.push(a);
        composed_ms.push(b);
        ratios.push(b / a);
    }
    let adapter = dev.adapter().map(|a| a.name.clone()).unwrap_or_default();
    println!(
        "rope fwd+bwd on [{rows}, {positions}, {features}] ({adapter}): fused {:.2} ms, composed \
         {:.2} ms, composed / fused {:.2}x (medians of 9 pairs)",
        median(&mut fused_ms),
        median(&mut composed_ms),
        median(&mut ratios)
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn verdict(passed: bool) -> &'static str {
    if passed { "passed" } else { "FAILED" }
}
