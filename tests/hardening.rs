//! Hostile and extreme input that once went wrong silently or crashed:
//! every case against a closed form or the f64 reference, or refused with
//! a message that names the call and the problem.

mod common;

use common::{data, panic_message, test_options};
use webgrad::AttentionMask;
use webgrad::{Device, DeviceOptions, KernelFamily, Tensor, grad, reference};

/// A product wider than one dispatch's 65,535 workgroups along x (and its
/// gradients, one of them as wide), on every variant and the tiled family.
#[test]
fn products_wider_than_one_dispatch_are_computed() {
    let tiled = common::device_with(DeviceOptions {
        kernel_family: KernelFamily::Tiled,
        ..test_options()
    });
    let (Some(blocked), Some(tiled)) = (common::private_device(), tiled) else {
        return;
    };
    let n = 1_048_600;
    let check = |dev: &Device, what: &str| {
        let a = Tensor::from_vec(dev, vec![3.0], [1, 1]);
        let v = data(n, -1.0, 1.0, 0.0, 7);
        let b = Tensor::from_vec(dev, v.clone(), [1, n]);
        let c = a.matmul(&b);
        let g = grad(&c.sum(), &[&a, &b]);
        let got = webgrad::read_all_blocking(&[&c, &g[0], &g[1]]).unwrap();
        for (i, (&c, &b)) in got[0].iter().zip(&v).enumerate() {
            assert_eq!(c, 3.0 * b, "{what}: column {i}");
        }
        // ∂(Σc)/∂a = Σ b (the reference's f64 sum, to f32 rounding); ∂/∂b = a.
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        assert!(
            (got[1][0] as f64 - sum).abs() < 1e-2,
            "{what}: {} vs {sum}",
            got[1][0]
        );
        assert!(got[2].iter().all(|&x| x == 3.0), "{what}: ∂/∂b");
    };
    for variant in 0..4 {
        blocked.force_variant(Some(variant));
        check(&blocked, &format!("variant {variant}"));
    }
    check(&tiled, "tiled");
}

/// Where the GPU and the reference once disagreed on what an op means:
/// both now follow one rule, checked here against the reference and
/// closed forms.
#[test]
fn the_gpu_and_the_reference_agree_at_the_edges() {
    let dev = gpu!();
    // A NaN mask counts as nonzero.
    let mask = Tensor::from_vec(&dev, vec![f32::NAN, 0.0, 1.0, -0.0], [4]);
    let a = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0, 4.0], [4]);
    let b = Tensor::from_vec(&dev, vec![10.0, 20.0, 30.0, 40.0], [4]);
    let s = mask.where_cond(&a, &b);
    assert_eq!(s.to_vec_blocking().unwrap(), [1.0, 20.0, 3.0, 40.0]);
    assert_eq!(reference::eval(&s).unwrap(), [1.0, 20.0, 3.0, 40.0]);
    // Zero padding is zeros that multiply: an infinite tap on padding
    // gives ∞·0 = NaN, on the image ∞ (PyTorch's rule).
    let x = Tensor::ones(&dev, [1, 1, 2, 2]);
    let mut wv = vec![0.0f32; 9];
    wv[0] = f32::INFINITY;
    let w = Tensor::from_vec(&dev, wv, [1, 1, 3, 3]);
    let y = x.conv2d(&w, None, webgrad::Conv2dOptions::default().padding(1));
    let got = y.to_vec_blocking().unwrap();
    let want = reference::eval(&y).unwrap();
    assert!(got[0].is_nan() && want[0].is_nan(), "{got:?} {want:?}");
    assert_eq!(got[3], f32::INFINITY);
    assert_eq!(want[3], f64::INFINITY);
    // The input gradient likewise: a tap that meets no output (between
    // strides, off the edge) multiplies a zero, on both kernel families.
    let tiled = common::device_with(DeviceOptions {
        kernel_family: KernelFamily::Tiled,
        ..test_options()
    })
    .expect("an adapter (gpu! found one)");
    for dev in [&dev, &tiled] {
        let x = Tensor::ones(dev, [1, 1, 3, 3]);
        let w = Tensor::from_vec(dev, vec![f32::INFINITY, 0.0, 0.0, 0.0], [1, 1, 2, 2]);
        let y = x.conv2d(&w, None, webgrad::Conv2dOptions::default().stride(2));
        let dx = grad(&y.sum(), &[&x]).remove(0);
        let got = dx.to_vec_blocking().unwrap();
        let want = reference::eval(&dx).unwrap();
        // Only x[0, 0] meets the one output through the infinite tap.
        assert_eq!((got[0], want[0]), (f32::INFINITY, f64::INFINITY));
        for i in 1..9 {
            assert!(got[i].is_nan() && want[i].is_nan(), "{i}: {got:?} {want:?}");
        }
    }
    // Batch norm of a constant channel with eps = 0 is 0/0 on both.
    let x = Tensor::ones(&dev, [3, 1]);
    let (rm, rv) = (
        Tensor::zeros(&dev, [1]).to_variable().unwrap(),
        Tensor::ones(&dev, [1]).to_variable().unwrap(),
    );
    let (y, _) = x.batch_norm(
        &rm,
        &rv,
        None,
        None,
        webgrad::BatchNormMode::Train { momentum: 0.1 },
        0.0,
    );
    assert!(y.to_vec_blocking().unwrap().iter().all(|v| v.is_nan()));
    assert!(reference::eval(&y).unwrap().iter().all(|v| v.is_nan()));
    // The mean of equal values is that value, exactly.
    let m = Tensor::full(&dev, [3], 0.1).mean();
    assert_eq!(m.to_vec_blocking().unwrap(), [0.1]);
    // erf keeps its relative accuracy near 0 (GELU's slope there needs it).
    let xs = vec![1e-7, -1e-7, 1e-30, -1e-30, 0.3, -0.49, 0.5, 2.0];
    let x = Tensor::from_vec(&dev, xs.clone(), [xs.len()]);
    let got = x.erf().to_vec_blocking().unwrap();
    for (&v, &g) in xs.iter().zip(&got) {
        let want = libm::erf(v as f64);
        // The series below 0.5: relative error within f32 rounding; above
        // it the rational fit's 1.5e-7 absolute error, plus rounding.
        let tolerance = if v.abs() < 0.5 {
            2e-7 * want.abs()
        } else {
            1.5e-7 + 1.2e-7 * want.abs()
        };
        assert!(
            ((g as f64) - want).abs() <= tolerance,
            "erf({v}) = {g}, want {want}"
        );
    }
    // expm1's slope is eˣ, also where eˣ − 1 rounds to −1.
    let x = Tensor::from_vec(&dev, vec![-20.0, -40.0, 0.5], [3]);
    let g = grad(&x.expm1().sum(), &[&x]);
    let got = g[0].to_vec_blocking().unwrap();
    for (i, v) in [-20.0f64, -40.0, 0.5].into_iter().enumerate() {
        assert!(
            ((got[i] as f64) - v.exp()).abs() <= 1e-6 * v.exp(),
            "expm1'({v}) = {}",
            got[i]
        );
    }
}

/// A call that must panic.
type Case<'a> = Box<dyn FnOnce() + 'a>;

/// Shapes and settings with no meaning are refused where they are given,
/// with a message naming the call, the parameter and its range.
#[test]
fn meaningless_settings_are_refused_where_given() {
    let d = Device::reference_only();
    let x = || Tensor::zeros(&d, [1, 3, 5, 5]);
    let cases: Vec<(Case, &str)> = vec![
        (
            Box::new(|| {
                drop(
                    Tensor::zeros(&d, [1, 1, 0, 0]).max_pool2d(webgrad::Pool2dOptions {
                        kernel: [2, 2],
                        stride: [1, 1],
                        padding: [1, 1],
                    }),
                )
            }),
            "max_pool2d: the image is empty (0×0)",
        ),
        (
            Box::new(|| {
                drop(x().conv2d(
                    &Tensor::zeros(&d, [4, 3, 3, 3]),
                    None,
                    webgrad::Conv2dOptions::default().padding(1 << 31),
                ))
            }),
            "conv2d: stride, padding, dilation and output_padding must be at most 1073741824",
        ),
        (
            Box::new(|| {
                drop(x().conv2d(
                    &Tensor::zeros(&d, [4, 3, 3, 3]),
                    None,
                    webgrad::Conv2dOptions::default().stride(1 << 33),
                ))
            }),
            "conv2d: stride, padding, dilation and output_padding must be at most 1073741824",
        ),
        (
            Box::new(|| {
                drop(x().conv2d(
                    &Tensor::zeros(&d, [4, 3, 1, 20_000]),
                    None,
                    Default::default(),
                ))
            }),
            "conv2d: a 1×20000 kernel has too many taps",
        ),
        (
            Box::new(|| {
                let _ = webgrad::layers::Dropout::new(-0.1);
            }),
            "Dropout::new: the probability p must be in [0, 1), got -0.1",
        ),
        (
            Box::new(|| drop(webgrad::layers::Dropout { p: f32::NAN }.forward(&x(), None))),
            "Dropout::forward: the probability p must be in [0, 1), got NaN",
        ),
        (
            Box::new(|| drop(webgrad::dropout_mask(&d, webgrad::Shape::new(&[2]), 1.0, 0))),
            "dropout_mask: the probability p must be in [0, 1), got 1",
        ),
        (
            Box::new(|| drop(Tensor::rand_normal(&d, [2], 0.0, -1.0, 0))),
            "rand_normal: the mean must be finite and the standard deviation finite and at least 0",
        ),
        (
            Box::new(|| drop(webgrad::optim::Sgd::new(-1.0))),
            "Sgd::new: the learning rate must be finite and at least 0, got -1",
        ),
        (
            Box::new(|| drop(webgrad::optim::Sgd::new(0.1).weight_decay(-0.1))),
            "Sgd::weight_decay: the weight decay must be finite and at least 0",
        ),
        (
            Box::new(|| drop(webgrad::optim::Adam::new(0.1).decoupled_weight_decay(f32::NAN))),
            "Adam::decoupled_weight_decay: the weight decay must be finite and at least 0, got NaN",
        ),
        (
            Box::new(|| {
                drop(webgrad::numerical_grad_reference(
                    &Tensor::zeros(&d, []),
                    &[],
                    webgrad::Difference::Central,
                    Some(0.0),
                ))
            }),
            "numerical_grad_reference: the step must be positive and finite, got 0",
        ),
        (
            Box::new(|| {
                drop(webgrad::step_sweep(
                    |t| t[0].sum(),
                    &[&Tensor::zeros(&d, [1])],
                    &[vec![1.0]],
                    &[1e-3, f64::NAN],
                ))
            }),
            "step_sweep: the step must be positive and finite, got NaN",
        ),
        // Messages name the caller's op, not the one it is built from.
        (
            Box::new(|| {
                let q = Tensor::zeros(&d, [1, 2, 4]);
                let kv = Tensor::zeros(&d, [1, 0, 4]);
                drop(q.scaled_dot_product_attention(&kv, &kv, AttentionMask::None))
            }),
            "scaled_dot_product_attention: needs at least one key",
        ),
        (
            Box::new(|| {
                let w = Tensor::zeros(&d, [4, 3, 7]);
                drop(Tensor::zeros(&d, [1, 3, 5]).conv1d(&w, None, Default::default()))
            }),
            "conv1d: kernel 7 (dilated to 7) is longer than the padded input (5)",
        ),
        (
            Box::new(|| {
                let w = Tensor::zeros(&d, [4, 3, 2]);
                let o = webgrad::Conv1dOptions::default().stride(0);
                drop(Tensor::zeros(&d, [1, 3, 5]).conv1d(&w, None, o))
            }),
            "conv1d: stride, dilation and groups must be at least 1, got stride 0",
        ),
        (
            Box::new(|| {
                drop(webgrad::layers::Conv2d::new(
                    &d,
                    3,
                    4,
                    [0, 3],
                    Default::default(),
                    webgrad::layers::Init::KaimingUniform,
                    0,
                ))
            }),
            "Conv2d::new: inputs, outputs and both kernel sizes must be at least 1",
        ),
        (
            Box::new(|| {
                let w = Tensor::zeros(&d, [16, 1, 1, 1]);
                let o = webgrad::Conv2dOptions::default().padding((1 << 29) - 1);
                drop(Tensor::zeros(&d, [16, 1, 1, 1]).conv2d(&w, None, o))
            }),
            "conv2d: the output [16, 16, 1073741823, 1073741823] for input [16, 1, 1, 1] and weight [16, 1, 1, 1] has more elements than a usize can count",
        ),
    ];
    for (f, want) in cases {
        let msg = panic_message(f);
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    }
}

/// Settings that are public fields are checked at each step too, and the
/// device's budget, the gradient checker and accuracy refuse nonsense.
#[test]
fn settings_checked_at_use() {
    use webgrad::optim::{Adam, Optimizer};
    let dev = gpu!();
    let p = Tensor::ones(&dev, [2]).to_variable().unwrap();
    let loss = p.square().sum();
    for (change, want) in [
        (
            Box::new(|a: &mut Adam| a.beta1 = 1.0) as Box<dyn Fn(&mut Adam)>,
            "Adam::step: beta1 must be in [0, 1), got 1",
        ),
        (
            Box::new(|a: &mut Adam| a.beta2 = 1.5),
            "Adam::step: beta2 must be in [0, 1), got 1.5",
        ),
        (
            Box::new(|a: &mut Adam| a.eps = 0.0),
            "Adam::step: eps must be positive and finite, got 0",
        ),
        (
            Box::new(|a: &mut Adam| a.lr = f32::INFINITY.into()),
            "Adam::step: the learning rate must be finite and at least 0, got inf",
        ),
    ] {
        let mut adam = Adam::new(0.1);
        change(&mut adam);
        let msg = panic_message(|| drop(adam.minimize_blocking(&loss, &[&p])));
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    }
    let msg = panic_message(|| dev.set_memory_budget(Some(0)));
    assert!(
        msg.contains("set_memory_budget: the budget must be at least 1 byte"),
        "{msg}"
    );
    let msg = panic_message(|| {
        drop(webgrad::check_gradients_blocking(
            |t| t[0].sum(),
            &[&p],
            webgrad::Tolerance {
                atol: -1.0,
                rtol: 0.0,
            },
            0,
        ))
    });
    assert!(
        msg.contains("check_gradients: the tolerances must be finite and at least 0"),
        "{msg}"
    );
    let msg = panic_message(|| {
        drop(webgrad::numerical_grad_blocking(
            |t| t[0].sum(),
            &[&p],
            webgrad::Difference::Forward,
            Some(-1e-3),
        ))
    });
    assert!(
        msg.contains("numerical_grad: the step must be positive and finite, got -0.001"),
        "{msg}"
    );
    // Rows of NaN logits predict nothing.
    let set = webgrad::data::spiral(2, 2, 0);
    assert_eq!(set.accuracy(&[f32::NAN; 8]), 0.0);
}

/// Loading a checkpoint of a larger model is an error naming the extra
/// tensors (the model is left as it was), unless a partial load is asked for.
#[test]
fn a_checkpoint_of_another_model_is_refused_unless_partial() {
    use webgrad::io;
    use webgrad::layers::{Activation, Init, Mlp, Module};
    let dev = gpu!();
    let big = Mlp::new(
        &dev,
        &[2, 3, 3, 3],
        Activation::Tanh,
        Init::XavierUniform,
        1,
    )
    .unwrap();
    let small = Mlp::new(&dev, &[2, 3, 3], Activation::Tanh, Init::XavierUniform, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.safetensors");
    io::save_module_blocking(&file, &big).unwrap();
    let before = small.parameters()[0].to_vec_blocking().unwrap();
    let e = io::load_module(&file, &small).unwrap_err().to_string();
    assert!(
        e.contains("the checkpoint has 2 tensor(s) the model does not"),
        "{e}"
    );
    assert_eq!(
        small.parameters()[0].to_vec_blocking().unwrap(),
        before,
        "untouched"
    );
    io::load_module_partial(&file, &small).unwrap();
    let want = big.parameters()[0].to_vec_blocking().unwrap();
    assert_eq!(small.parameters()[0].to_vec_blocking().unwrap(), want);
}

/// Anomaly mode runs every built-in layer: causal attention's −∞ mask is
/// intended (a constant, carried on through `select`), so a transformer
/// trains under it, while a NaN an op makes from finite inputs is still
/// named.
#[test]
fn anomaly_mode_accepts_intended_infinities_and_names_real_ones() {
    use webgrad::models::{CharTransformer, TransformerConfig};
    let Some(dev) = common::private_device() else {
        return;
    };
    dev.set_detect_anomaly(true);
    let config = TransformerConfig {
        vocabulary: 7,
        context: 4,
        width: 8,
        heads: 2,
        layers: 1,
        dropout: 0.0,
    };
    let model = CharTransformer::new(&dev, config, 3).unwrap();
    let ids = webgrad::IndexTensor::from_vec(&dev, vec![1, 2, 3, 4, 5, 6, 0, 1], [2, 4]);
    let loss = model.loss(&ids, &[2, 3, 4, 5, 6, 0, 1, 2], None);
    let params = webgrad::layers::Module::parameters(&model);
    let g = grad(&loss, &params);
    let values = webgrad::read_all_blocking(&g.iter().collect::<Vec<_>>()).unwrap();
    assert!(values.iter().flatten().all(|v| v.is_finite()));
    // A real one: log(0) = −∞ made from a finite input.
    let x = Tensor::from_vec(&dev, vec![0.0, 1.0], [2]);
    let e = (&x * &x.log())
        .sum()
        .to_vec_blocking()
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds an infinity") && e.contains("log"), "{e}");
}

/// A concat of 100,000 parts (and its gradient, 100,000 slices) once
/// crashed the process: each part's offset made a pipeline of its own.
#[test]
fn a_concat_of_many_parts_and_its_gradient() {
    let dev = gpu!();
    let n = 100_000;
    let parts: Vec<Tensor> = (0..n)
        .map(|i| Tensor::from_vec(&dev, vec![i as f32, -(i as f32)], [2]))
        .collect();
    let refs: Vec<&Tensor> = parts.iter().collect();
    let joined = Tensor::concat(&refs, 0);
    let weights: Vec<f32> = (0..2 * n).map(|j| (j % 7) as f32).collect();
    let w = Tensor::from_vec(&dev, weights.clone(), [2 * n]);
    let g = grad(&joined.mul(&w).sum(), &refs);
    // ∂/∂part i = its window of the weights; joined again to read once.
    let g_refs: Vec<&Tensor> = g.iter().collect();
    let got = webgrad::read_all_blocking(&[&joined, &Tensor::concat(&g_refs, 0)]).unwrap();
    for i in 0..n {
        assert_eq!(
            got[0][2 * i..2 * i + 2],
            [i as f32, -(i as f32)],
            "part {i}"
        );
    }
    assert_eq!(got[1], weights);
}

/// A character model given ids of the wrong rank says so (not an index
/// panic), and the reference computes attention over zero queries as the
/// GPU does: nothing, with zero gradients.
#[test]
fn models_and_the_reference_take_edge_shapes() {
    let dev = gpu!();
    let config = webgrad::models::TransformerConfig {
        vocabulary: 5,
        context: 4,
        width: 8,
        heads: 2,
        layers: 1,
        dropout: 0.0,
    };
    let model = webgrad::models::CharTransformer::new(&dev, config, 0).unwrap();
    let ids = webgrad::IndexTensor::from_vec(&dev, vec![1u32, 2], [2]);
    let msg = panic_message(|| drop(model.forward(&ids, None)));
    assert!(
        msg.contains("CharTransformer::forward: ids must be [batch, T] with 1 ≤ T ≤ 4, got [2]"),
        "{msg}"
    );
    let q = Tensor::zeros(&dev, [1, 0, 4]);
    let k = Tensor::from_vec(&dev, data(12, -1.0, 1.0, 0.0, 3), [1, 3, 4]);
    let v = Tensor::from_vec(&dev, data(6, -1.0, 1.0, 0.0, 4), [1, 3, 2]);
    let y = q.scaled_dot_product_attention(&k, &v, AttentionMask::None);
    let g = grad(&y.sum(), &[&k, &v]);
    assert!(reference::eval(&y).unwrap().is_empty());
    assert!(y.to_vec_blocking().unwrap().is_empty());
    for gi in &g {
        assert!(reference::eval(gi).unwrap().iter().all(|&x| x == 0.0));
        assert!(gi.to_vec_blocking().unwrap().iter().all(|&x| x == 0.0));
    }
}
