//! Predicted peak memory equals the measured one: the
//! prediction plans the realize exactly as it will run, in a pool that only
//! counts, and the pool measures the high-water mark of the real run.

mod common;

use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Optimizer, Sgd};
use webgrad::{Device, Tensor, grad, predict_peak_bytes, read_and_realize_blocking};

/// Predicts, then realizes `read` and `realize` together and measures.
fn predicted_and_measured(dev: &Device, read: &[&Tensor], realize: &[&Tensor]) -> (u64, u64) {
    let all: Vec<&Tensor> = read.iter().chain(realize).copied().collect();
    let predicted = predict_peak_bytes(&all).unwrap();
    dev.reset_peak_memory();
    read_and_realize_blocking(read, realize).unwrap();
    (predicted, dev.memory_stats().peak_live_bytes)
}

#[test]
fn predicted_peak_memory_equals_the_measured_peak() {
    let Some(dev) = common::private_device() else {
        return;
    };
    // A prediction assumes a family's first variant until autotune has
    // timed the shapes (at their second sight); the kernel fixed here,
    // whatever the tuning file of an earlier run says.
    dev.force_variant(Some(0));
    // (a) An MLP SGD step: forward, backward, in-place updates, loss read.
    let mlp = Mlp::new(
        &dev,
        &[64, 128, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        0,
    )
    .unwrap();
    let x = Tensor::rand_uniform(&dev, [32, 64], 0.0, 1.0, 1);
    x.realize_blocking().unwrap();
    let labels: Vec<usize> = (0..32).map(|i| i % 10).collect();
    let mut opt = Sgd::new(0.1);
    for step in 0..3 {
        let loss = mlp.forward(&x).cross_entropy(&labels);
        let params = mlp.parameters();
        let grads = grad(&loss, &params);
        let updates = opt.step(&params, &grads).unwrap();
        let updates: Vec<&Tensor> = updates.iter().collect();
        let (p, m) = predicted_and_measured(&dev, &[&loss], &updates);
        assert_eq!(p, m, "MLP step {step}: predicted {p}, measured {m}");
    }
    // (b) A deep chain: 200 tanh layers of width 64, forward and backward.
    let w = Tensor::rand_normal(&dev, [64, 64], 0.0, 0.15, 2)
        .to_variable()
        .unwrap();
    let h0 = Tensor::rand_uniform(&dev, [16, 64], -1.0, 1.0, 3);
    h0.realize_blocking().unwrap();
    let mut h = h0.clone();
    for _ in 0..200 {
        h = h.matmul(&w).tanh();
    }
    let loss = h.square().mean();
    let g = grad(&loss, &[&w]).remove(0);
    let (p, m) = predicted_and_measured(&dev, &[&loss], &[&g]);
    assert_eq!(p, m, "deep chain: predicted {p}, measured {m}");
    // Reverse mode keeps the activations: far more than one layer's worth.
    assert!(p > 100 * 16 * 64 * 4, "{p}");
    // (c) Broadcast-heavy: outer sums and products of vectors, reduced.
    let a = Tensor::rand_uniform(&dev, [512, 1], -1.0, 1.0, 4);
    let b = Tensor::rand_uniform(&dev, [1, 384], -1.0, 1.0, 5);
    let c = Tensor::rand_uniform(&dev, [384], -1.0, 1.0, 6);
    webgrad::realize_all_blocking(&[&a, &b, &c]).unwrap();
    let outer = (&(&a + &b) * &c).exp();
    let y = (&outer.sum_axes_keepdim(&[1]) * &a).sum() + outer.max();
    let g = grad(&y, &[&a, &b, &c]);
    let (p, m) = predicted_and_measured(&dev, &[&y], &[&g[0], &g[1], &g[2]]);
    assert_eq!(p, m, "broadcasts: predicted {p}, measured {m}");
    // Predicting runs nothing and changes nothing: the values are still
    // pending and the live buffers are the same.
    let z = (&a * 2.0).sum();
    let before = dev.memory_stats();
    let kernels = dev.counters().kernels;
    predict_peak_bytes(&[&z]).unwrap();
    assert_eq!(dev.counters().kernels, kernels);
    assert_eq!(dev.memory_stats().live_bytes, before.live_bytes);
    assert_eq!(
        z.item_blocking().unwrap(),
        (&a * 2.0).sum().item_blocking().unwrap()
    );
}
