//! Trains a small CNN (two blocks of convolution, ReLU and max pooling, then
//! a linear layer: `webgrad::models::DigitsCnn`) on the UCI handwritten
//! digits shipped with the crate, with Adam, a cosine learning-rate decay
//! and images shifted by up to a pixel, and reports test accuracy.
//!
//! cargo run --release --example train_cnn [-- --epochs N] [--save FILE] [--seed S] [--precision P]
//!
//! `--precision bf16` or `f16` runs the forward pass under `webgrad::autocast`:
//! activations stored in 16 bits, the parameters and their Adam update in
//! f32, the loss computed in f32 from the logits; f16 with dynamic loss
//! scaling (`webgrad::optim::LossScaler`), decided on the GPU.
//!
//! Each step is one call, `opt.minimize_blocking(&loss, &params)`: forward
//! pass, backward pass (transposed convolutions, weight correlations and
//! pooling scatters, all WGSL) and the Adam update in one submit, the loss
//! read back. The parameters are saved by name (`conv1.weight`, ...) at the end.

#[path = "shared/digits.rs"]
mod digits;

use webgrad::data::Dataset;
use webgrad::layers::Module;
use webgrad::models::DigitsCnn;
use webgrad::optim::{Adam, LossScaler, LrSchedule, Optimizer};
use webgrad::{DType, Device, Result, Tensor, autocast, io};

struct Args {
    epochs: usize,
    seed: u64,
    save: String,
    precision: DType,
}

fn args() -> Args {
    let mut a = Args {
        epochs: 30,
        seed: 0,
        save: "digits_cnn.safetensors".into(),
        precision: DType::F32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => a.epochs = value().parse().expect("--epochs N"),
            "--seed" => a.seed = value().parse().expect("--seed S"),
            "--save" => a.save = value(),
            "--precision" => {
                a.precision = value()
                    .parse()
                    .unwrap_or_else(|e| panic!("--precision: {e}"))
            }
            other => panic!(
                "unknown flag {other} (use --epochs N, --seed S, --save FILE, --precision P)"
            ),
        }
    }
    a
}

/// The model's logits for `x` with activations stored in `precision`,
/// converted to f32.
fn logits(model: &DigitsCnn, x: &Tensor, precision: DType) -> Tensor {
    autocast(precision, || model.forward(x)).to_dtype(DType::F32)
}

/// Fraction of `set` classified correctly (one batch, one readback).
fn accuracy(model: &DigitsCnn, set: &Dataset, dev: &Device, precision: DType) -> Result<f64> {
    let (x, _) = set.tensors(dev);
    Ok(set.accuracy(&logits(model, &x, precision).to_vec_blocking()?))
}

fn main() -> Result<()> {
    let args = args();
    let dev = Device::new_blocking()?;
    let (train, test) = Dataset::digits()?.split(0.2, 0);
    println!(
        "digits: {} training and {} test images of 8×8 pixels, on {}, activations in {}",
        train.len(),
        test.len(),
        dev.adapter().unwrap().name,
        args.precision
    );
    let model = DigitsCnn::new(&dev, args.seed)?;
    let params = model.parameters();
    let batch_size = 32;
    let total = train.len().div_ceil(batch_size) * args.epochs;
    // Cosine decay of the learning rate from 3e-3 to zero over the run.
    let mut opt = Adam::new(LrSchedule::cosine(3e-3, total));
    // f16 needs loss scaling (its range ends at 65504, its precision near
    // 6e-8); bf16 has f32's range and needs none.
    let mut scaler = match args.precision {
        DType::F16 => Some(LossScaler::new(&dev)?),
        _ => None,
    };
    let run = digits::train(
        args.epochs,
        // Augmentation: every image moved by up to one pixel, anew each epoch.
        |epoch| {
            let epoch_seed = args.seed * 1000 + epoch as u64;
            let shifted = train.shifted_images(8, 1, epoch_seed);
            shifted.batches(batch_size, epoch_seed).collect()
        },
        |batch| {
            let (x, labels) = batch.tensors(&dev);
            let loss = logits(&model, &x, args.precision).cross_entropy(&labels);
            let value = match &mut scaler {
                Some(scaler) => scaler.minimize_blocking(&mut opt, &loss, &params)?,
                None => opt.minimize_blocking(&loss, &params)?,
            };
            Ok(Some(value))
        },
        10,
        || accuracy(&model, &train, &dev, args.precision),
    )?;
    let test_accuracy = accuracy(&model, &test, &dev, args.precision)?;
    digits::report(&run, test_accuracy, test.len());
    io::save_module_blocking(&args.save, &model)?;
    println!("saved the parameters to {}", args.save);
    Ok(())
}
