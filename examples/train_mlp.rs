//! Trains an MLP on the UCI handwritten digits (shipped with the crate) and
//! reports test accuracy.
//!
//! cargo run --release --example train_mlp [-- --epochs N] [--save FILE] [--load FILE] [--seed S]
//!
//! Each step is one submit: forward pass, backward pass and the Adam update
//! recorded together and realized without waiting; the loss is read back
//! every 10 steps only, so the GPU is never stalled on a readback.
//! `--save` writes the parameters as .safetensors at the end; `--load`
//! starts from such a file (for instance to resume with more epochs).

#[path = "shared/digits.rs"]
mod digits;

use webgrad::data::Dataset;
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, Result, Tensor, grad, io, read_and_realize_blocking, realize_all_blocking};

struct Args {
    epochs: usize,
    seed: u64,
    save: Option<String>,
    load: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        epochs: 30,
        seed: 0,
        save: None,
        load: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => a.epochs = value().parse().expect("--epochs N"),
            "--seed" => a.seed = value().parse().expect("--seed S"),
            "--save" => a.save = Some(value()),
            "--load" => a.load = Some(value()),
            other => {
                panic!("unknown flag {other} (use --epochs N, --seed S, --save FILE, --load FILE)")
            }
        }
    }
    a
}

/// Fraction of `set` classified correctly (one batch, one readback).
fn accuracy(model: &Mlp, set: &Dataset, dev: &Device) -> Result<f64> {
    let (x, _) = set.tensors(dev);
    Ok(set.accuracy(&model.forward(&x).to_vec_blocking()?))
}

fn main() -> Result<()> {
    let args = args();
    let dev = Device::new_blocking()?;
    let (train, test) = Dataset::digits()?.split(0.2, 0);
    println!(
        "digits: {} training and {} test images of 8×8 pixels, on {}",
        train.len(),
        test.len(),
        dev.adapter().unwrap().name
    );
    let model = Mlp::new(
        &dev,
        &[64, 128, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        args.seed,
    )?;
    if let Some(path) = &args.load {
        io::load(path, &model.named_parameters())?;
        println!(
            "loaded {path}: test accuracy {:.1}%",
            100.0 * accuracy(&model, &test, &dev)?
        );
    }
    let params = model.parameters();
    let mut opt = Adam::new(2e-3);
    let mut step = 0usize;
    let run = digits::train(
        args.epochs,
        |epoch| train.batches(32, args.seed * 1000 + epoch as u64).collect(),
        |batch| {
            let (x, labels) = batch.tensors(&dev);
            let loss = model.forward(&x).cross_entropy(&labels);
            let grads = grad(&loss, &params);
            let updates = opt.step(&params, &grads)?;
            let handles: Vec<&Tensor> = updates.iter().collect();
            step += 1;
            // The loss is read every 10 steps; the others only submit.
            if step.is_multiple_of(10) {
                Ok(Some(read_and_realize_blocking(&[&loss], &handles)?[0][0]))
            } else {
                realize_all_blocking(&handles)?;
                Ok(None)
            }
        },
        5,
        || accuracy(&model, &train, &dev),
    )?;
    digits::report(&run, accuracy(&model, &test, &dev)?, test.len());
    if let Some(path) = &args.save {
        io::save_blocking(path, &model.named_parameters())?;
        println!("saved the parameters to {path}");
    }
    Ok(())
}
