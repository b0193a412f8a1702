//! Convolutions and pooling on the GPU: forward against the f64 reference;
//! vjp and jvp against central differences of the reference and against
//! each other (webgrad's gradient checker), first and second order; shape
//! errors that name the op and the shapes.

mod common;

use webgrad::{Conv2dOptions, Shape, Tensor, grad, jacfwd, jacrev};

use common::{assert_close, check_forward, check_op, data};

fn input(shape: &[usize], seed: u64) -> (Vec<f32>, Shape) {
    let s = Shape::new(shape);
    (data(s.numel(), -1.0, 1.0, 0.0, seed), s)
}

/// (input shape, weight shape, options) of conv2d cases: odd, non-square
/// sizes, stride, padding, dilation, groups and depthwise.
fn conv_cases() -> Vec<(&'static str, [usize; 4], [usize; 4], Conv2dOptions)> {
    let o = Conv2dOptions::default;
    vec![
        ("plain 3x3", [2, 3, 5, 6], [4, 3, 3, 3], o()),
        ("1x1", [1, 5, 3, 4], [3, 5, 1, 1], o()),
        ("non-square kernel", [2, 2, 7, 5], [3, 2, 3, 2], o()),
        (
            "stride 2, padding 1",
            [2, 3, 7, 6],
            [5, 3, 3, 3],
            o().stride(2).padding(1),
        ),
        (
            "asymmetric stride and padding",
            [1, 2, 8, 7],
            [3, 2, 3, 3],
            Conv2dOptions {
                stride: [2, 3],
                padding: [0, 2],
                ..o()
            },
        ),
        (
            "dilation 2",
            [1, 2, 9, 8],
            [3, 2, 3, 3],
            o().dilation(2).padding(1),
        ),
        (
            "groups 2",
            [2, 4, 5, 5],
            [6, 2, 3, 3],
            o().groups(2).padding(1),
        ),
        (
            "depthwise",
            [1, 3, 6, 5],
            [3, 1, 3, 3],
            o().groups(3).stride(2).padding(1),
        ),
        (
            "channel multiplier",
            [1, 2, 5, 5],
            [6, 1, 2, 2],
            o().groups(2),
        ),
        (
            "5 output channels (edge block)",
            [1, 3, 4, 9],
            [5, 3, 2, 3],
            o().padding(1),
        ),
    ]
}

#[test]
fn conv2d_matches_the_reference_with_gradients() {
    let dev = gpu!();
    for (i, (name, x, w, opts)) in conv_cases().into_iter().enumerate() {
        let seed = 10 * i as u64;
        check_op(
            &dev,
            &format!("conv2d {name}"),
            &[input(&x, seed), input(&w, seed + 1)],
            &|t| t[0].conv2d(&t[1], None, opts),
        );
    }
}

#[test]
fn conv2d_with_bias() {
    let dev = gpu!();
    check_op(
        &dev,
        "conv2d bias",
        &[
            input(&[2, 3, 5, 4], 1),
            input(&[4, 3, 3, 3], 2),
            input(&[4], 3),
        ],
        &|t| t[0].conv2d(&t[1], Some(&t[2]), Conv2dOptions::default().padding(1)),
    );
}

#[test]
fn conv_transpose2d_matches_the_reference_with_gradients() {
    let dev = gpu!();
    let o = Conv2dOptions::default;
    let cases: Vec<(&str, [usize; 4], [usize; 4], Conv2dOptions)> = vec![
        ("plain", [2, 3, 4, 5], [3, 2, 3, 3], o()),
        (
            "stride 2, padding 1",
            [1, 4, 3, 4],
            [4, 3, 3, 3],
            o().stride(2).padding(1),
        ),
        (
            "output padding",
            [1, 2, 3, 3],
            [2, 3, 3, 2],
            o().stride(2).output_padding(1),
        ),
        ("dilation", [1, 2, 4, 3], [2, 2, 2, 3], o().dilation(2)),
        (
            "groups",
            [1, 4, 3, 3],
            [4, 2, 3, 3],
            o().groups(2).stride(2),
        ),
    ];
    for (i, (name, x, w, opts)) in cases.into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        check_op(
            &dev,
            &format!("conv_transpose2d {name}"),
            &[
                input(&x, seed),
                input(&w, seed + 1),
                input(&[w[1] * opts.groups], seed + 2),
            ],
            &|t| t[0].conv_transpose2d(&t[1], Some(&t[2]), opts),
        );
    }
}

#[test]
fn conv_transpose2d_is_the_adjoint_of_conv2d() {
    // ⟨conv2d(x, w), g⟩ = ⟨x, conv_transpose2d(g, w)⟩ with the same options.
    let dev = gpu!();
    let opts = Conv2dOptions::default().stride(2).padding(1).groups(2);
    let (xd, xs) = input(&[2, 4, 7, 7], 1);
    let x = Tensor::from_vec(&dev, xd, xs);
    let (wd, ws) = input(&[6, 2, 3, 3], 2);
    let w = Tensor::from_vec(&dev, wd, ws);
    let y = x.conv2d(&w, None, opts);
    let (gd, gs) = input(y.dims(), 3);
    let g = Tensor::from_vec(&dev, gd, gs);
    let back = g.conv_transpose2d(&w, None, opts);
    assert_eq!(back.shape(), x.shape());
    let lhs = (&y * &g).sum().item_blocking().unwrap();
    let rhs = (&x * &back).sum().item_blocking().unwrap();
    assert!(
        (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
        "{lhs} vs {rhs}"
    );
}

#[test]
fn conv_second_derivatives() {
    // Gradients of gradients exercise the vjp rules of the two adjoint
    // families (transposed convolution and weight correlation).
    let dev = gpu!();
    let opts = Conv2dOptions::default().stride(2).padding(1);
    let loss = |x: &Tensor, w: &Tensor| x.conv2d(w, None, opts).tanh().square().sum();
    check_op(
        &dev,
        "d/dx of conv2d loss",
        &[input(&[1, 2, 5, 6], 7), input(&[3, 2, 3, 3], 8)],
        &|t| grad(&loss(&t[0], &t[1]), &[&t[0]])[0].clone(),
    );
    check_op(
        &dev,
        "d/dw of conv2d loss",
        &[input(&[1, 2, 5, 6], 9), input(&[3, 2, 3, 3], 10)],
        &|t| grad(&loss(&t[0], &t[1]), &[&t[1]])[0].clone(),
    );
}

#[test]
fn conv_jacobians_forward_and_reverse_agree() {
    // jacfwd pushes a batch of tangents (leading axis) through the rules.
    let dev = gpu!();
    let (wd, ws) = input(&[2, 1, 2, 2], 3);
    let w = Tensor::from_vec(&dev, wd, ws);
    let (xd, xs) = input(&[1, 1, 3, 4], 4);
    let x = Tensor::from_vec(&dev, xd, xs);
    let f = |x: &Tensor| {
        x.conv2d(&w, None, Conv2dOptions::default().padding(1))
            .max_pool2d(webgrad::Pool2dOptions {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            })
    };
    let forward = jacfwd(f, &x).to_vec_blocking().unwrap();
    let reverse = jacrev(f, &x).to_vec_blocking().unwrap();
    let expected: Vec<f64> = reverse.iter().map(|&v| v as f64).collect();
    assert_close("jacfwd vs jacrev", &forward, &expected, 1e-5, 1e-5);
    assert!(forward.iter().any(|&v| v != 0.0));
}

#[test]
fn conv1d_is_a_view_of_conv2d() {
    let dev = gpu!();
    check_op(
        &dev,
        "conv1d",
        &[input(&[2, 3, 11], 1), input(&[4, 3, 3], 2), input(&[4], 3)],
        &|t| {
            t[0].conv1d(
                &t[1],
                Some(&t[2]),
                webgrad::Conv1dOptions::default()
                    .stride(2)
                    .padding(1)
                    .dilation(2),
            )
        },
    );
}

#[test]
fn large_weight_gradients_split_their_sum_deterministically() {
    // A small weight and a big image: the weight gradient's sum is split
    // into parts and added in a fixed order, so two runs give the same bits.
    let dev = gpu!();
    let (xd, xs) = input(&[8, 2, 32, 32], 5);
    let x = Tensor::from_vec(&dev, xd, xs);
    let (wd, ws) = input(&[3, 2, 3, 3], 6);
    let w = Tensor::from_vec(&dev, wd, ws);
    let gw = |_: ()| {
        grad(
            &x.conv2d(&w, None, Conv2dOptions::default().padding(1))
                .sum(),
            &[&w],
        )[0]
        .clone()
    };
    let a = gw(()).to_vec_blocking().unwrap();
    let b = gw(()).to_vec_blocking().unwrap();
    assert_eq!(a, b);
    check_forward("split weight gradient", &gw(()));
}

#[test]
fn max_pool2d_matches_the_reference_with_gradients() {
    let dev = gpu!();
    type Case = (&'static str, [usize; 4], [usize; 2], [usize; 2], [usize; 2]);
    let cases: &[Case] = &[
        ("2x2 stride 2", [2, 3, 6, 8], [2, 2], [2, 2], [0, 0]),
        (
            "3x3 stride 2 padding 1",
            [1, 2, 7, 5],
            [3, 3],
            [2, 2],
            [1, 1],
        ),
        (
            "overlapping 3x2 stride 1",
            [1, 2, 5, 6],
            [3, 2],
            [1, 1],
            [0, 0],
        ),
        ("odd size, floor", [1, 1, 7, 7], [2, 2], [2, 2], [0, 0]),
    ];
    for (i, &(name, x, k, s, p)) in cases.iter().enumerate() {
        check_op(
            &dev,
            &format!("max_pool2d {name}"),
            &[input(&x, 200 + i as u64)],
            &|t| {
                t[0].max_pool2d(webgrad::Pool2dOptions {
                    kernel: k,
                    stride: s,
                    padding: p,
                })
            },
        );
    }
    // Second order: the gradient of a pooled loss, differentiated again.
    check_op(
        &dev,
        "d/dx of max_pool2d loss",
        &[input(&[1, 2, 6, 6], 300)],
        &|t| {
            grad(
                &t[0]
                    .max_pool2d(webgrad::Pool2dOptions {
                        kernel: [3, 3],
                        stride: [2, 2],
                        padding: [1, 1],
                    })
                    .sin()
                    .sum(),
                &[&t[0]],
            )[0]
            .clone()
        },
    );
}

#[test]
fn max_pool2d_sends_the_gradient_to_the_first_maximum_and_propagates_nan() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, 3.0, 3.0, 2.0], [1, 1, 2, 2]);
    let y = x.max_pool2d(webgrad::Pool2dOptions {
        kernel: [2, 2],
        stride: [1, 1],
        padding: [0, 0],
    });
    assert_eq!(y.to_vec_blocking().unwrap(), vec![3.0]);
    let g = grad(&y.sum(), &[&x]);
    assert_eq!(g[0].to_vec_blocking().unwrap(), vec![0.0, 1.0, 0.0, 0.0]);
    let x = Tensor::from_vec(&dev, vec![1.0, f32::NAN, 5.0, 2.0], [1, 1, 2, 2]);
    let y = x
        .max_pool2d(webgrad::Pool2dOptions {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
        })
        .to_vec_blocking()
        .unwrap();
    assert!(y[0].is_nan(), "max_pool2d of a window holding NaN: {y:?}");
}

#[test]
fn avg_and_global_pooling() {
    let dev = gpu!();
    check_op(&dev, "avg_pool2d", &[input(&[2, 3, 7, 6], 1)], &|t| {
        t[0].avg_pool2d(webgrad::Pool2dOptions {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
        })
    });
    check_op(
        &dev,
        "global_avg_pool2d",
        &[input(&[2, 3, 4, 5], 2)],
        &|t| t[0].global_avg_pool2d(),
    );
    // Closed form: the mean of 1..=4 and of a window with padding counted.
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]);
    assert_eq!(
        x.avg_pool2d(webgrad::Pool2dOptions {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0]
        })
        .to_vec_blocking()
        .unwrap(),
        vec![2.5]
    );
    assert_eq!(
        x.avg_pool2d(webgrad::Pool2dOptions {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [1, 1]
        })
        .to_vec_blocking()
        .unwrap(),
        vec![0.25, 0.5, 0.75, 1.0]
    );
}

#[test]
fn empty_batches_give_empty_outputs_and_zero_weight_gradients() {
    let dev = gpu!();
    let x = Tensor::zeros(&dev, [0, 2, 5, 5]);
    let w = Tensor::from_vec(&dev, vec![1.0; 2 * 2 * 9], [2, 2, 3, 3]);
    let y = x.conv2d(&w, None, Conv2dOptions::default());
    assert_eq!(y.dims(), &[0, 2, 3, 3]);
    assert!(y.to_vec_blocking().unwrap().is_empty());
    let gw = grad(&y.sum(), &[&w]);
    assert_eq!(gw[0].to_vec_blocking().unwrap(), vec![0.0; 36]);
}

#[test]
fn shape_errors_name_the_op_and_the_shapes() {
    let o = Conv2dOptions::default;
    type Case = (Box<dyn FnOnce()>, &'static str);
    let cases: Vec<Case> = vec![
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 3, 5, 5]).conv2d(&Tensor::zeros(&d, [4, 2, 3, 3]), None, o());
            }),
            "conv2d: input [1, 3, 5, 5] and weight [4, 2, 3, 3] do not match 1 group(s)",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 3, 2, 2]).conv2d(&Tensor::zeros(&d, [4, 3, 3, 3]), None, o());
            }),
            "conv2d: kernel 3 (dilated to 3) is larger than the padded input (2)",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [3, 5, 5]).conv2d(&Tensor::zeros(&d, [4, 3, 3, 3]), None, o());
            }),
            "conv2d: input must be [batch, channels, height, width] and weight 4-D, got [3, 5, 5]",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 4, 5, 5]).conv2d(
                    &Tensor::zeros(&d, [4, 2, 3, 3]),
                    None,
                    o().groups(3),
                );
            }),
            "do not match 3 group(s)",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 3, 5, 5]).conv2d(
                    &Tensor::zeros(&d, [4, 3, 3, 3]),
                    Some(&Tensor::zeros(&d, [3])),
                    o(),
                );
            }),
            "conv2d: bias must be [4] for an output of shape [1, 4, 3, 3], got [3]",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 3, 5, 5]).conv2d(
                    &Tensor::zeros(&d, [4, 3, 3, 3]),
                    None,
                    o().stride(0),
                );
            }),
            "conv2d: stride, dilation and groups must be at least 1",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 3, 5, 5]).conv_transpose2d(
                    &Tensor::zeros(&d, [3, 2, 3, 3]),
                    None,
                    o().stride(2).output_padding(2),
                );
            }),
            "conv_transpose2d: output_padding [2, 2] must be smaller than the stride or the dilation",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 3, 5, 5]).conv2d(
                    &Tensor::zeros(&d, [4, 3, 3, 3]),
                    None,
                    o().padding(usize::MAX / 2 + 1),
                );
            }),
            "conv2d: stride, padding, dilation and output_padding must be at most 1073741824 (2^30)",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 3, 5, 5]).max_pool2d(webgrad::Pool2dOptions {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [2, 0],
                });
            }),
            "max_pool2d: padding [2, 0] must be at most half the kernel [2, 2] (input [1, 3, 5, 5])",
        ),
        (
            Box::new(move || {
                let d = webgrad::Device::reference_only();
                Tensor::zeros(&d, [1, 3, 5]).max_pool2d(webgrad::Pool2dOptions {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                });
            }),
            "max_pool2d: input must be [batch, channels, height, width], got [1, 3, 5]",
        ),
    ];
    for (f, want) in cases {
        let msg = common::panic_message(f);
        assert!(msg.contains(want), "panic message {msg:?} lacks {want:?}");
    }
}

#[test]
fn the_tiled_family_for_real_gpus_is_correct_too() {
    // Real GPUs get the shared-memory tiled kernels; lavapipe runs them too
    // (slowly), so they are checked here, forward and both adjoints.
    let options = webgrad::DeviceOptions {
        kernel_family: webgrad::KernelFamily::Tiled,
        ..common::test_options()
    };
    let dev = match webgrad::Device::with_options_blocking(options) {
        Ok(d) => d,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and no GPU adapter was found: {e}")
        }
        Err(_) => return,
    };
    for (i, (name, x, w, opts)) in conv_cases().into_iter().enumerate() {
        let seed = 500 + 10 * i as u64;
        check_op(
            &dev,
            &format!("tiled conv2d {name}"),
            &[input(&x, seed), input(&w, seed + 1)],
            &|t| t[0].conv2d(&t[1], None, opts),
        );
    }
    // A weight gradient long enough to be split into parts, and a tile edge
    // (70 output channels: two 64-row tiles).
    let (xd, xs) = input(&[4, 3, 20, 20], 7);
    let x = Tensor::from_vec(&dev, xd, xs);
    let (wd, ws) = input(&[70, 3, 3, 3], 8);
    let w = Tensor::from_vec(&dev, wd, ws);
    let y = x.conv2d(&w, None, Conv2dOptions::default().padding(1));
    check_forward("tiled forward, 70 channels", &y);
    // The adjoints sum hundreds to thousands of f32 products of f32 values.
    let g = grad(&(&y * &y).sum(), &[&x, &w]);
    for (name, t) in [("input", &g[0]), ("weight", &g[1])] {
        let gpu = t.to_vec_blocking().unwrap();
        let want = webgrad::reference::eval(t).unwrap();
        assert_close(&format!("tiled {name} gradient"), &gpu, &want, 1e-4, 1e-4);
    }
}
