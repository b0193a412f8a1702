//! Dynamic loss scaling: a scaled step equals the plain one (scaling by a
//! power of 2 is exact), a step whose gradients are not finite is skipped
//! on the GPU (parameters and optimizer state untouched, the scale halved)
//! in the step's one submit, and the scale grows after its interval.

mod common;

use webgrad::optim::{LossScaler, Optimizer, Sgd};
use webgrad::{DType, Device, Tensor, autocast, grad, read_all_blocking, realize_all_blocking};

/// A two-layer classifier's parameters (f32 variables).
fn params(dev: &Device) -> Vec<Tensor> {
    let w1 = Tensor::from_vec(dev, common::data(32, -0.5, 0.5, 0.0, 1), [4, 8]);
    let w2 = Tensor::from_vec(dev, common::data(24, -0.5, 0.5, 0.0, 2), [8, 3]);
    vec![w1.to_variable().unwrap(), w2.to_variable().unwrap()]
}

/// The loss of a batch of 6 examples whose inputs are scaled by `gain`,
/// the model run in `dtype`.
fn loss(dev: &Device, ws: &[Tensor], batch: u64, gain: f32, dtype: DType) -> Tensor {
    let x = Tensor::from_vec(dev, common::data(24, -1.0, 1.0, 0.0, 10 + batch), [6, 4]) * gain;
    let logits = autocast(dtype, || x.matmul(&ws[0]).tanh().matmul(&ws[1]));
    logits
        .to_dtype(DType::F32)
        .cross_entropy(&[0, 1, 2, 0, 1, 2])
}

fn read(ws: &[Tensor]) -> Vec<Vec<f32>> {
    read_all_blocking(&ws.iter().collect::<Vec<_>>()).unwrap()
}

#[test]
fn scaled_steps_equal_plain_ones_and_a_non_finite_step_is_skipped() {
    // A device of its own: the profile counts every submit on the device.
    let Some(dev) = common::private_device() else {
        return;
    };
    // Plain SGD with momentum on batches 0 and 2.
    let plain = params(&dev);
    let refs: Vec<&Tensor> = plain.iter().collect();
    let mut opt = Sgd::new(0.1).momentum(0.9);
    for batch in [0, 2] {
        let l = loss(&dev, &plain, batch, 1.0, DType::F32);
        let updates = opt.step(&refs, &grad(&l, &refs)).unwrap();
        realize_all_blocking(&updates.iter().collect::<Vec<_>>()).unwrap();
    }
    // Scaled, with batch 1 in between not finite (infinite inputs: the
    // activations, the loss and the gradients are NaN).
    let scaled = params(&dev);
    let refs: Vec<&Tensor> = scaled.iter().collect();
    let mut opt = Sgd::new(0.1).momentum(0.9);
    let mut scaler = LossScaler::with_scale(&dev, 1024.0).unwrap();
    for (batch, gain) in [(0, 1.0), (1, f32::INFINITY), (2, 1.0)] {
        let before = read(&scaled);
        let l = loss(&dev, &scaled, batch, gain, DType::F32);
        let grads = grad(&scaler.scale(&l), &refs);
        let updates = scaler.step(&mut opt, &refs, &grads).unwrap();
        let all: Vec<&Tensor> = updates.iter().collect();
        // The whole step, its test for non-finite gradients included, is
        // one submit.
        let (_, profile) = dev.profile(|| realize_all_blocking(&all).unwrap());
        assert_eq!(profile.submits.len(), 1, "batch {batch}");
        let was_skipped = scaler.skipped().to_vec_blocking().unwrap()[0];
        assert_eq!(was_skipped, if batch == 1 { 1.0 } else { 0.0 });
        if batch == 1 {
            // Nothing moved, and the scale halved.
            assert_eq!(read(&scaled), before);
            assert_eq!(scaler.scale_value().unwrap(), 512.0);
        }
    }
    // The momentum buffers were not touched by the skipped step: the two
    // runs agree bit for bit (scaling by a power of 2 is exact in f32).
    assert_eq!(read(&scaled), read(&plain));
}

#[test]
fn the_scale_grows_after_its_interval_and_f16_training_steps_move() {
    let dev = gpu!();
    let ws = params(&dev);
    let refs: Vec<&Tensor> = ws.iter().collect();
    let mut opt = Sgd::new(0.1);
    let mut scaler = LossScaler::with_scale(&dev, 4.0)
        .unwrap()
        .growth_interval(2);
    let mut scales = Vec::new();
    let first = read(&ws);
    for batch in 0..5 {
        let l = loss(&dev, &ws, batch, 1.0, DType::F16);
        let grads = grad(&scaler.scale(&l), &refs);
        let updates = scaler.step(&mut opt, &refs, &grads).unwrap();
        realize_all_blocking(&updates.iter().collect::<Vec<_>>()).unwrap();
        scales.push(scaler.scale_value().unwrap());
    }
    // Doubles after every second good step.
    assert_eq!(scales, [4.0, 8.0, 8.0, 16.0, 16.0]);
    assert_ne!(read(&ws), first, "f16 steps update the f32 weights");
    // An f16 loss scaled past f16's range overflows in the backward pass:
    // skipped, and the scale halved.
    let mut scaler = LossScaler::with_scale(&dev, 2f32.powi(40)).unwrap();
    let before = read(&ws);
    let l = loss(&dev, &ws, 9, 1.0, DType::F16);
    let grads = grad(&scaler.scale(&l), &refs);
    let updates = scaler.step(&mut opt, &refs, &grads).unwrap();
    realize_all_blocking(&updates.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(scaler.skipped().to_vec_blocking().unwrap(), [1.0]);
    assert_eq!(read(&ws), before);
    assert_eq!(scaler.scale_value().unwrap(), 2f32.powi(39));
}

#[test]
#[should_panic(expected = "LossScaler: the scale must be positive")]
fn a_scale_of_zero_is_refused() {
    let dev = Device::reference_only();
    let _ = LossScaler::with_scale(&dev, 0.0);
}
