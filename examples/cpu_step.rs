//! CPU time per step of the digits MLP (64-128-64-10, Adam, batch 32, a new
//! batch uploaded each step): recording, planning or replaying, encoding and
//! submitting, until `realize_all_blocking` returns; then the step is waited for by
//! reading the loss back. It uses only API that predates plan replay, so the
//! same file builds at older commits for before/after comparisons (README,
//! "Plan replay"). `cargo run --release --example cpu_step`
use std::time::Instant;
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, Tensor, grad};
fn main() {
    let dev = Device::new_blocking().unwrap();
    let digits = Mlp::new(
        &dev,
        &[64, 128, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        1,
    )
    .unwrap();
    let mut adam = Adam::new(2e-3);
    let mut cpu = Vec::new();
    let mut total = Vec::new();
    for batch in 0..1010u64 {
        let t = Instant::now();
        let x = Tensor::rand_uniform(&dev, [32, 64], 0.0, 16.0, batch);
        let labels: Vec<usize> = (0..32).map(|i| (i * 3 + batch as usize) % 10).collect();
        let loss = digits.forward(&x).cross_entropy(&labels);
        let params = digits.parameters();
        let grads = grad(&loss, &params);
        let updates = adam.step(&params, &grads).unwrap();
        let mut all: Vec<&Tensor> = updates.iter().collect();
        all.push(&loss);
        webgrad::realize_all_blocking(&all).unwrap();
        let c = t.elapsed().as_secs_f64() * 1e3;
        loss.item_blocking().unwrap();
        if batch >= 10 {
            cpu.push(c);
            total.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    cpu.sort_by(|a, b| a.partial_cmp(b).unwrap());
    total.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{{\"cpu_ms_median\":{:.4},\"step_ms_median\":{:.4}}}",
        cpu[cpu.len() / 2],
        total[total.len() / 2]
    );
}
