//! Optimizers against the same update in f64 on the CPU, training on the
//! digits, checkpoints.

mod common;

use webgrad::data::Dataset;
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer, Sgd};
use webgrad::{Error, Tensor, grad, io, read_and_realize_blocking, realize_all_blocking};

use common::{assert_close, data};

/// Runs three steps of `opt` on a variable from fixed gradients and returns the values.
fn gpu_steps(
    dev: &webgrad::Device,
    opt: &mut dyn Optimizer,
    w0: &[f32],
    grads: &[Vec<f32>],
) -> Vec<f32> {
    let w = Tensor::from_vec(dev, w0.to_vec(), [w0.len()])
        .to_variable()
        .unwrap();
    for g in grads {
        let g = Tensor::from_vec(dev, g.clone(), [g.len()]);
        let updates = opt.step(&[&w], &[g]).unwrap();
        realize_all_blocking(&updates.iter().collect::<Vec<_>>()).unwrap();
    }
    w.to_vec_blocking().unwrap()
}

fn inputs() -> (Vec<f32>, Vec<Vec<f32>>) {
    (
        data(7, -1.0, 1.0, 0.0, 1),
        (0..3).map(|s| data(7, -2.0, 2.0, 0.0, 10 + s)).collect(),
    )
}

#[test]
fn sgd_with_momentum_and_weight_decay_matches_f64() {
    let dev = gpu!();
    let (w0, grads) = inputs();
    for (momentum, wd) in [(0.0, 0.0), (0.9, 0.0), (0.9, 0.01), (0.0, 0.05)] {
        let mut opt = Sgd::new(0.1).momentum(momentum).weight_decay(wd);
        let got = gpu_steps(&dev, &mut opt, &w0, &grads);
        let mut w: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
        let mut v = vec![0.0; w.len()];
        for g in &grads {
            for i in 0..w.len() {
                let gi = g[i] as f64 + wd as f64 * w[i];
                v[i] = momentum as f64 * v[i] + gi;
                w[i] -= 0.1 * if momentum != 0.0 { v[i] } else { gi };
            }
        }
        assert_close(
            &format!("sgd momentum {momentum} wd {wd}"),
            &got,
            &w,
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn adam_and_adamw_match_f64() {
    let dev = gpu!();
    let (w0, grads) = inputs();
    for (mut opt, decoupled, wd) in [
        (Adam::new(0.01), false, 0.0),
        (Adam::new(0.01).decoupled_weight_decay(0.1), true, 0.1),
        {
            let mut a = Adam::new(0.01);
            a.weight_decay = 0.05;
            (a, false, 0.05)
        },
    ] {
        let got = gpu_steps(&dev, &mut opt, &w0, &grads);
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let mut w: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
        let (mut m, mut v) = (vec![0.0; w.len()], vec![0.0; w.len()]);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            for i in 0..w.len() {
                let gi = g[i] as f64 + if decoupled { 0.0 } else { wd * w[i] };
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let step = (m[i] / (1.0 - b1.powi(t))) / ((v[i] / (1.0 - b2.powi(t))).sqrt() + eps);
                w[i] -= 0.01 * (step + if decoupled { wd * w[i] } else { 0.0 });
            }
        }
        assert_close(
            &format!("adam decoupled={decoupled} wd={wd}"),
            &got,
            &w,
            1e-6,
            1e-5,
        );
    }
}

fn accuracy(model: &Mlp, set: &Dataset, dev: &webgrad::Device) -> f64 {
    let (x, _) = set.tensors(dev);
    set.accuracy(&model.forward(&x).to_vec_blocking().unwrap())
}

#[test]
fn an_mlp_learns_the_digits() {
    let dev = gpu!();
    let (train, test) = Dataset::digits().unwrap().split(0.2, 0);
    let model = Mlp::new(
        &dev,
        &[64, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        1,
    )
    .unwrap();
    let mut opt = Adam::new(3e-3);
    let params = model.parameters();
    let before = accuracy(&model, &test, &dev);
    for epoch in 0..4 {
        for batch in train.batches(64, epoch) {
            let (x, labels) = batch.tensors(&dev);
            let loss = model.forward(&x).cross_entropy(&labels);
            let grads = grad(&loss, &params);
            let updates = opt.step(&params, &grads).unwrap();
            realize_all_blocking(&updates.iter().collect::<Vec<_>>()).unwrap();
        }
    }
    let after = accuracy(&model, &test, &dev);
    // Four epochs: well past chance (10%), not yet the example's 95%.
    assert!(
        after >= 0.85,
        "test accuracy {after} (before training {before})"
    );
}

#[test]
fn checkpoints_round_trip_bit_for_bit() {
    let dev = gpu!();
    let (train, _) = Dataset::digits().unwrap().split(0.2, 0);
    let batch = train.batches(32, 0).next().unwrap();
    let (x, labels) = batch.tensors(&dev);
    let model = Mlp::new(&dev, &[64, 16, 10], Activation::Tanh, Init::XavierNormal, 3).unwrap();
    let mut opt = Sgd::new(0.1);
    let params = model.parameters();
    for _ in 0..3 {
        let loss = model.forward(&x).cross_entropy(&labels);
        let grads = grad(&loss, &params);
        let updates = opt.step(&params, &grads).unwrap();
        read_and_realize_blocking(&[&loss], &updates.iter().collect::<Vec<_>>()).unwrap();
    }
    // What named_parameters() returns is what save and load take.
    let refs = model.named_parameters();
    let path =
        std::env::temp_dir().join(format!("webgrad-ckpt-{}.safetensors", std::process::id()));
    io::save_blocking(&path, &refs).unwrap();

    let fresh = Mlp::new(
        &dev,
        &[64, 16, 10],
        Activation::Tanh,
        Init::XavierNormal,
        99,
    )
    .unwrap();
    let fresh_refs = fresh.named_parameters();
    io::load(&path, &fresh_refs).unwrap();
    for ((_, a), (_, b)) in refs.iter().zip(&fresh_refs) {
        let (a, b) = (a.to_vec_blocking().unwrap(), b.to_vec_blocking().unwrap());
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    let next = |m: &Mlp| {
        m.forward(&x)
            .cross_entropy(&labels)
            .item_blocking()
            .unwrap()
    };
    assert_eq!(next(&model).to_bits(), next(&fresh).to_bits());

    // Missing and mis-shaped tensors are errors, and leave the model untouched.
    let other = Mlp::new(&dev, &[64, 8, 10], Activation::Tanh, Init::XavierNormal, 5).unwrap();
    let other_refs = other.named_parameters();
    let before = other.layers[0].weight.to_vec_blocking().unwrap();
    match io::load(&path, &other_refs) {
        Err(Error::Checkpoint(msg)) => assert!(
            msg.contains("shape [64, 16]") && msg.contains("[64, 8]"),
            "{msg}"
        ),
        r => panic!("expected a shape error, got {r:?}"),
    }
    assert_eq!(other.layers[0].weight.to_vec_blocking().unwrap(), before);
    let extra = Tensor::zeros(&dev, [3]).to_variable().unwrap();
    match io::load(&path, &[("layers.9.weight", &extra)]) {
        Err(Error::Checkpoint(msg)) => {
            assert!(msg.contains("no tensor named layers.9.weight"), "{msg}")
        }
        r => panic!("expected a missing-tensor error, got {r:?}"),
    }
    match io::from_bytes(b"not a checkpoint", &fresh_refs) {
        Err(Error::Checkpoint(msg)) => assert!(msg.contains("not a safetensors file"), "{msg}"),
        r => panic!("expected a format error, got {r:?}"),
    }
    std::fs::remove_file(&path).ok();
}

/// A module's parameters to bytes and back with no async runtime: the
/// blocking twin of `module_to_bytes` round-trips every bit.
#[test]
fn a_module_round_trips_through_bytes_blocking() {
    let dev = gpu!();
    let model = Mlp::new(&dev, &[6, 5, 3], Activation::Tanh, Init::XavierNormal, 3).unwrap();
    let bytes = io::module_to_bytes_blocking(&model).unwrap();
    let fresh = Mlp::new(&dev, &[6, 5, 3], Activation::Tanh, Init::XavierNormal, 9).unwrap();
    io::module_from_bytes(&bytes, &fresh).unwrap();
    for ((name, a), (_, b)) in model
        .named_parameters()
        .iter()
        .zip(fresh.named_parameters())
    {
        let bits = |t: &Tensor| -> Vec<u32> {
            t.to_vec_blocking()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(a), bits(b), "{name}");
    }
}
