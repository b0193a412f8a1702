//! Upsampling, group norm, and the layers built on them and on the
//! existing ops: ConvTranspose2d, AvgPool2d, BatchNorm2d, GroupNorm,
//! Sequential and `impl_module!`, checked against host formulas and the f64
//! reference.

mod common;

use webgrad::layers::{
    Activation, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, GroupNorm, Init, Layer, MaxPool2d,
    Module, Sequential, Upsample,
};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Conv2dOptions, Shape, Tensor, grad, io, read_all_blocking, realize_all_blocking};

use common::{assert_close, check_op, data};

fn input(shape: &[usize], seed: u64) -> (Vec<f32>, Shape) {
    let s = Shape::new(shape);
    (data(s.numel(), -2.0, 2.0, 0.0, seed), s)
}

/// PyTorch's bilinear upsampling (align_corners=False), written per output
/// pixel as a gather of four neighbours: an independent formula.
fn bilinear_host(x: &[f32], [n, c, h, w]: [usize; 4], [oh, ow]: [usize; 2]) -> Vec<f64> {
    let coord = |i: usize, inp: usize, out: usize| {
        let src = ((i as f64 + 0.5) * inp as f64 / out as f64 - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(inp - 1);
        (i0, (i0 + 1).min(inp - 1), src - i0 as f64)
    };
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for p in 0..n * c {
        let at = |r: usize, s: usize| x[p * h * w + r * w + s] as f64;
        for i in 0..oh {
            let (r0, r1, a) = coord(i, h, oh);
            for j in 0..ow {
                let (s0, s1, b) = coord(j, w, ow);
                let top = at(r0, s0) * (1.0 - b) + at(r0, s1) * b;
                let bottom = at(r1, s0) * (1.0 - b) + at(r1, s1) * b;
                y.push(top * (1.0 - a) + bottom * a);
            }
        }
    }
    y
}

#[test]
fn bilinear_upsampling_matches_pytorchs_formula_and_differentiates() {
    let dev = gpu!();
    for (shape, size) in [
        ([2, 3, 4, 5], [8, 10]),
        ([1, 2, 3, 3], [7, 4]),
        ([1, 1, 1, 2], [3, 5]),
    ] {
        let (x, s) = input(&shape, 1);
        let got = Tensor::from_vec(&dev, x.clone(), s.clone())
            .upsample_bilinear2d(size)
            .to_vec_blocking()
            .unwrap();
        assert_close(
            "bilinear",
            &got,
            &bilinear_host(&x, shape, size),
            1e-5,
            1e-5,
        );
        check_op(&dev, "upsample_bilinear2d", &[(x, s)], &|t| {
            t[0].upsample_bilinear2d(size)
        });
    }
}

#[test]
fn nearest_upsampling_repeats_pixels_and_sums_its_adjoint() {
    let dev = gpu!();
    let (x, s) = input(&[2, 2, 3, 2], 2);
    let up = Tensor::from_vec(&dev, x.clone(), s.clone()).upsample_nearest2d(3);
    assert_eq!(up.dims(), &[2, 2, 9, 6]);
    let got = up.to_vec_blocking().unwrap();
    for (k, v) in got.iter().enumerate() {
        let (p, i, j) = (k / 54, k / 6 % 9, k % 6);
        assert_eq!(*v, x[p * 6 + (i / 3) * 2 + j / 3]);
    }
    check_op(&dev, "upsample_nearest2d", &[(x, s)], &|t| {
        t[0].upsample_nearest2d(2)
    });
}

/// Each group of each example has mean 0 and variance 1 after group norm
/// (then the per-channel scale and shift), against the host.
#[test]
fn group_norm_normalizes_each_group_and_checks_its_gradients() {
    let dev = gpu!();
    let (x, s) = input(&[2, 6, 3, 2], 3);
    let (wt, ws) = input(&[6], 4);
    let (bs, bshape) = input(&[6], 5);
    let y = Tensor::from_vec(&dev, x.clone(), s.clone())
        .group_norm(
            3,
            Some(&Tensor::from_vec(&dev, wt.clone(), ws.clone())),
            Some(&Tensor::from_vec(&dev, bs.clone(), bshape.clone())),
            1e-5,
        )
        .to_vec_blocking()
        .unwrap();
    let mut want = vec![0.0f64; x.len()];
    // Groups of 2 channels × 6 pixels = 12 values, contiguous per example.
    for (g, chunk) in x.chunks(12).enumerate() {
        let mean = chunk.iter().map(|&v| v as f64).sum::<f64>() / 12.0;
        let var = chunk
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / 12.0;
        for (k, &v) in chunk.iter().enumerate() {
            let channel = (g % 3) * 2 + k / 6;
            let norm = (v as f64 - mean) / (var + 1e-5).sqrt();
            want[g * 12 + k] = norm * wt[channel] as f64 + bs[channel] as f64;
        }
    }
    assert_close("group_norm", &y, &want, 1e-5, 1e-4);
    check_op(
        &dev,
        "group_norm",
        &[(x, s), (wt, ws), (bs, bshape)],
        &|t| t[0].group_norm(3, Some(&t[1]), Some(&t[2]), 1e-5),
    );
}

/// BatchNorm2d in training normalizes by the batch and moves the running
/// averages by PyTorch's rule (unbiased variance); in evaluation it uses
/// them; the averages are saved with the parameters.
#[test]
fn batch_norm_layer_trains_evaluates_and_saves_its_running_averages() {
    let dev = gpu!();
    let bn = BatchNorm2d::new(&dev, 2).unwrap();
    let (x, s) = input(&[4, 2, 3, 3], 6);
    let xt = Tensor::from_vec(&dev, x.clone(), s);
    let y = bn.forward(&xt);
    let updates = bn.take_buffer_updates();
    assert_eq!(updates.len(), 2);
    let mut all: Vec<&Tensor> = updates.iter().collect();
    all.push(&y);
    realize_all_blocking(&all).unwrap();
    assert!(bn.take_buffer_updates().is_empty());
    let (mut means, mut vars) = (Vec::new(), Vec::new());
    for c in 0..2 {
        let vals: Vec<f64> = (0..4)
            .flat_map(|n| (0..9).map(move |k| (n, k)))
            .map(|(n, k)| x[n * 18 + c * 9 + k] as f64)
            .collect();
        let mean = vals.iter().sum::<f64>() / 36.0;
        let unbiased = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 35.0;
        means.push(0.1 * mean);
        vars.push(0.9 + 0.1 * unbiased);
    }
    let got = read_all_blocking(&[&bn.running_mean, &bn.running_var]).unwrap();
    assert_close("running mean", &got[0], &means, 1e-6, 1e-5);
    assert_close("running var", &got[1], &vars, 1e-6, 1e-5);

    bn.set_training(false);
    let e = bn.forward(&xt).to_vec_blocking().unwrap();
    assert!(bn.take_buffer_updates().is_empty());
    for (k, v) in e.iter().enumerate() {
        let c = k / 9 % 2;
        let want = (x[k] as f64 - means[c]) / (vars[c] + 1e-5).sqrt();
        assert!((*v as f64 - want).abs() < 1e-4, "{k}: {v} vs {want}");
    }
    let names: Vec<String> = bn.named_state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight", "bias", "running_mean", "running_var"]);
    assert_eq!(bn.parameters().len(), 2);
}

struct Autoencoder {
    encoder: Sequential,
    decoder: Sequential,
}
webgrad::impl_module!(Autoencoder { encoder, decoder });

fn autoencoder(dev: &webgrad::Device) -> Autoencoder {
    let same = Conv2dOptions::default().padding(1);
    Autoencoder {
        encoder: Sequential::new()
            .push(Conv2d::new(dev, 1, 4, [3, 3], same, Init::KaimingUniform, 1).unwrap())
            .push(BatchNorm2d::new(dev, 4).unwrap())
            .push(Activation::Relu)
            .push(MaxPool2d::new(2)),
        decoder: Sequential::new()
            .push(
                ConvTranspose2d::new(
                    dev,
                    4,
                    4,
                    [2, 2],
                    Conv2dOptions::default().stride(2),
                    Init::XavierUniform,
                    2,
                )
                .unwrap(),
            )
            .push(GroupNorm::new(dev, 2, 4).unwrap())
            .push(Activation::Tanh)
            .push(Upsample::bilinear(1))
            .push(Conv2d::new(dev, 4, 1, [3, 3], same, Init::XavierUniform, 3).unwrap())
            .push(AvgPool2d::new(1)),
    }
}

/// A convolutional autoencoder from the public layers, named by the macro
/// and by position, trains (its loss falls) with the batch norm's running
/// averages updated in the same submits, and saves and loads by name.
#[test]
fn a_convolutional_autoencoder_from_the_layers_trains_and_saves() {
    let dev = gpu!();
    let model = autoencoder(&dev);
    let names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "encoder.0.weight",
            "encoder.0.bias",
            "encoder.1.weight",
            "encoder.1.bias",
            "decoder.0.weight",
            "decoder.0.bias",
            "decoder.1.weight",
            "decoder.1.bias",
            "decoder.4.weight",
            "decoder.4.bias",
        ]
    );
    assert_eq!(
        model
            .named_buffers()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["encoder.1.running_mean", "encoder.1.running_var"]
    );
    // conv 1→4 3×3 (36 + 4), bn (4 + 4), convT 4→4 2×2 (64 + 4), gn (4 + 4), conv 4→1 (36 + 1).
    assert_eq!(model.parameter_count(), 40 + 8 + 68 + 8 + 37);

    let (x, s) = input(&[8, 1, 8, 8], 9);
    let x = Tensor::from_vec(&dev, x, s);
    let params = model.parameters();
    let mut opt = Adam::new(1e-2);
    let mut losses = Vec::new();
    for _ in 0..30 {
        let y = model.decoder.forward(&model.encoder.forward(&x));
        let loss = (&y - &x).square().mean();
        let updates = opt.step(&params, &grad(&loss, &params)).unwrap();
        let buffers = model.take_buffer_updates();
        let mut step: Vec<&Tensor> = updates.iter().chain(&buffers).collect();
        step.push(&loss);
        realize_all_blocking(&step).unwrap();
        losses.push(loss.item_blocking().unwrap());
    }
    assert!(
        losses[29] < 0.7 * losses[0],
        "the loss should fall: {} → {}",
        losses[0],
        losses[29]
    );
    let path = std::env::temp_dir().join(format!("webgrad-ae-{}.safetensors", std::process::id()));
    io::save_module_blocking(&path, &model).unwrap();
    let fresh = autoencoder(&dev);
    io::load_module(&path, &fresh).unwrap();
    std::fs::remove_file(&path).unwrap();
    model.set_training(false);
    fresh.set_training(false);
    let run = |m: &Autoencoder| {
        m.decoder
            .forward(&m.encoder.forward(&x))
            .to_vec_blocking()
            .unwrap()
    };
    assert_eq!(run(&model), run(&fresh));
}

/// `Display` reads the values (running what is pending) and prints them
/// with the shape, dtype and device; precision as asked.
#[test]
fn tensors_print_their_values() {
    let dev = gpu!();
    let t = Tensor::from_vec(&dev, vec![1.0, -2.5, 3.0, 0.25], [2, 2]);
    let printed = format!("{:.2}", &t * 2.0);
    assert!(
        printed.starts_with("tensor([[ 2.00, -5.00],\n        [ 6.00,  0.50]], shape=[2, 2], dtype=f32, device=Device#"),
        "{printed}"
    );
    let reference = Tensor::scalar(&webgrad::Device::reference_only(), 1.5).exp();
    assert_eq!(
        format!("{reference}"),
        "tensor(4.4817, shape=[], dtype=f32, device=Device(reference-only))"
    );
}

/// A frozen layer's parameters leave the optimizer's list but are saved,
/// and the gradient step leaves them unchanged.
#[test]
fn frozen_layers_are_saved_but_not_trained() {
    use webgrad::layers::{Frozen, Linear};
    let dev = gpu!();
    let net = Sequential::new()
        .push(Frozen(
            Linear::new(&dev, 4, 3, Init::XavierUniform, 1).unwrap(),
        ))
        .push(Linear::new(&dev, 3, 2, Init::XavierUniform, 2).unwrap());
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["1.weight", "1.bias"]);
    let state: Vec<String> = net.named_state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(state, ["1.weight", "1.bias", "0.weight", "0.bias"]);
    assert_eq!(net.parameter_count(), 3 * 2 + 2);
    let frozen_before = net.named_buffers()[0].1.to_vec_blocking().unwrap();
    let x = Tensor::ones(&dev, [5, 4]);
    let loss = net.forward(&x).square().sum();
    let mut opt = Adam::new(0.1);
    opt.minimize_blocking(&loss, &net.parameters()).unwrap();
    assert_eq!(
        net.named_buffers()[0].1.to_vec_blocking().unwrap(),
        frozen_before
    );
}

/// Freezing by name: the parameters left out of the optimizer's list keep
/// their values exactly, the others move.
#[test]
fn parameters_frozen_by_name_keep_their_values() {
    use webgrad::layers::Linear;
    let dev = gpu!();
    let net = Sequential::new()
        .push(Linear::new(&dev, 4, 3, Init::XavierUniform, 1).unwrap())
        .push(Linear::new(&dev, 3, 2, Init::XavierUniform, 2).unwrap());
    let trained = net.parameters_where(&|name| !name.ends_with(".bias"));
    assert_eq!(trained.len(), 2);
    let before: Vec<Vec<f32>> = net
        .parameters()
        .iter()
        .map(|t| t.to_vec_blocking().unwrap())
        .collect();
    let x = Tensor::ones(&dev, [5, 4]);
    let loss = net.forward(&x).square().sum();
    Adam::new(0.1).minimize_blocking(&loss, &trained).unwrap();
    for ((name, t), old) in net.named_parameters().into_iter().zip(&before) {
        let now = t.to_vec_blocking().unwrap();
        if name.ends_with(".bias") {
            assert_eq!(&now, old, "{name} is frozen");
        } else {
            assert!(now.iter().zip(old).any(|(a, b)| a != b), "{name} trains");
        }
    }
}
