//! Bad and unusual input: each case asserts the exact outcome (which error,
//! which panic message, which values). The start of the adversarial
//! suite; every case here failed (wrapped, aborted or panicked inside the
//! library) before its fix.

mod common;

use webgrad::optim::{Adam, Optimizer, Sgd};
use webgrad::{Device, Error, Shape, Tensor, data, io};

#[track_caller]
fn panics_with(want: &str, f: impl FnOnce()) {
    let msg = common::panic_message(f);
    assert!(msg.contains(want), "panic message {msg:?} lacks {want:?}");
}

#[test]
fn element_counts_never_wrap() {
    let d = Device::reference_only();
    panics_with(
        "shape [1099511627776, 1099511627776] has more elements than a usize can count",
        || {
            Tensor::zeros(&d, [1 << 40, 1 << 40]);
        },
    );
    panics_with("has more elements than a usize can count", || {
        Tensor::from_vec(&d, Vec::<f32>::new(), [1 << 32, 1 << 32]);
    });
    panics_with("has more elements than a usize can count", || {
        Tensor::from_vec(&d, vec![1.0, 2.0], [2, (1 << 63) + 1]);
    });
    panics_with("has more elements than a usize can count", || {
        Tensor::zeros(&d, [3, 1 << 63]);
    });
    let x = Tensor::zeros(&d, [2]);
    panics_with("has more elements than a usize can count", || {
        x.broadcast_to([1 << 62, 1 << 62, 2]);
    });
    panics_with("has more elements than a usize can count", || {
        x.reshape(vec![1 << 40, 1 << 40, 0]);
    });
    // Checked, but representable, is fine: numel is exact.
    assert_eq!(Shape::new(&[1 << 31, 1 << 31]).numel(), 1 << 62);
}

#[test]
fn pad_into_checks_its_bounds_without_overflow() {
    let d = Device::reference_only();
    let x = Tensor::zeros(&d, [4]);
    panics_with(
        "pad: padding [(18446744073709551615, 0)] of shape [4] overflows a usize",
        || {
            x.pad(&[(usize::MAX, 0)]);
        },
    );
}

#[test]
fn repeated_reduction_axes_are_an_error_for_sum_and_mean() {
    let d = Device::reference_only();
    let x = Tensor::zeros(&d, [2, 3]);
    panics_with(
        "mean: axis 1 appears more than once in [1, 1] (shape [2, 3])",
        || {
            x.mean_axes(&[1, 1]);
        },
    );
    panics_with(
        "sum: axis 0 appears more than once in [0, 0, 1] (shape [2, 3])",
        || {
            x.sum_axes_keepdim(&[0, 1, 0]);
        },
    );
    panics_with(
        "mean: axis 2 is out of range for a tensor of shape [2, 3]",
        || {
            x.mean_axes(&[2]);
        },
    );
    // The panic points at the caller's line, not into the library.
    let (file, line) = panic_location(|| {
        let _ = Tensor::zeros(&Device::reference_only(), [2]).mean_axes(&[0, 0]);
    });
    assert!(
        file.ends_with("bad_input.rs"),
        "the panic points into {file}:{line}"
    );
}

/// Where the panic of `f` was reported: (file, line).
fn panic_location(f: impl FnOnce()) -> (String, u32) {
    let (_, at) = common::try_panic(f).expect("expected a panic");
    let (file, line) = at.rsplit_once(':').unwrap_or((&at, "0"));
    (file.to_string(), line.parse().unwrap_or(0))
}

#[test]
fn optimizers_require_gradients_of_the_parameters_exact_shape() {
    let dev = gpu!();
    let p = Tensor::zeros(&dev, [2, 3]).to_variable().unwrap();
    let g = Tensor::ones(&dev, [3]);
    panics_with(
        "Sgd::step: the gradient of parameter 0 has shape [3], the parameter [2, 3]",
        || {
            let _ = Sgd::new(0.1).step(&[&p], std::slice::from_ref(&g));
        },
    );
    panics_with(
        "Adam::step: the gradient of parameter 0 has shape [3], the parameter [2, 3]",
        || {
            let _ = Adam::new(0.1).step(&[&p], std::slice::from_ref(&g));
        },
    );
}

#[test]
fn uniform_samples_stay_in_their_half_open_interval() {
    let d = Device::reference_only();
    panics_with(
        "rand_uniform: the interval [1, 0) is empty or not finite",
        || {
            Tensor::rand_uniform(&d, [4], 1.0, 0.0, 1);
        },
    );
    panics_with(
        "rand_uniform: the interval [0, inf) is empty or not finite",
        || {
            Tensor::rand_uniform(&d, [4], 0.0, f32::INFINITY, 1);
        },
    );
    // A one-ulp interval below zero: every sample is lo.
    let hi = -1.0f32;
    let lo = f32::from_bits(hi.to_bits() + 1); // the float just below −1
    let t = Tensor::rand_uniform(&d, [1000], lo, hi, 3);
    let v = webgrad::reference::eval(&t).unwrap();
    assert!(
        v.iter().all(|&x| x as f32 == lo),
        "samples outside [{lo}, {hi})"
    );
    let t = Tensor::rand_uniform(&d, [1000], 0.0, f32::from_bits(1), 4);
    assert!(
        webgrad::reference::eval(&t)
            .unwrap()
            .iter()
            .all(|&x| x == 0.0)
    );
}

#[test]
fn empty_lists_give_empty_results() {
    let dev = gpu!();
    let _ = &dev;
    assert_eq!(
        webgrad::read_all_blocking(&[]).unwrap(),
        Vec::<Vec<f32>>::new()
    );
    webgrad::realize_all_blocking(&[]).unwrap();
    assert_eq!(
        webgrad::read_and_realize_blocking(&[], &[]).unwrap(),
        Vec::<Vec<f32>>::new()
    );
}

#[test]
fn data_helpers_reject_bad_arguments_with_clear_messages() {
    let set = data::Dataset::digits().unwrap();
    panics_with("batches: the batch size must be at least 1", || {
        let _ = set.batches(0, 1).count();
    });
    panics_with("split: the test fraction 1.5 is not in [0, 1]", || {
        set.split(1.5, 0);
    });
    panics_with(
        "select: index 5000 is out of range for a data set of 1797 samples",
        || {
            set.select(&[5000]);
        },
    );
    panics_with("argmax_rows: 4 values do not split into rows of 0", || {
        data::argmax_rows(&[1.0, 2.0, 3.0, 4.0], 0);
    });
    panics_with("argmax_rows: 5 values do not split into rows of 2", || {
        data::argmax_rows(&[1.0; 5], 2);
    });
}

#[test]
fn checkpoints_refuse_names_they_could_not_read_back() {
    let dev = gpu!();
    let w = Tensor::zeros(&dev, [2]).to_variable().unwrap();
    let dir = std::env::temp_dir().join(format!("webgrad-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    match io::save_blocking(&path, &[("__metadata__", &w)]) {
        Err(Error::Checkpoint(m)) => assert!(m.contains("__metadata__ is reserved"), "{m}"),
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    match io::save_blocking(&path, &[("w", &w), ("w", &w)]) {
        Err(Error::Checkpoint(m)) => assert!(m.contains("the name w is given twice"), "{m}"),
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    assert!(!path.exists(), "nothing is written on an error");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn nan_propagates_through_relu_tanh_maximum_and_max_reductions() {
    // numpy's rule, on the GPU and in the f64 reference alike: before, relu
    // and tanh turned NaN into 0 and −1, and max([1, NaN, 3]) was 3.
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, f32::NAN, 3.0, -2.0], [4]);
    let one = Tensor::ones(&dev, [4]);
    let cases: Vec<(&str, Tensor, Vec<bool>)> = vec![
        ("relu", x.relu(), vec![false, true, false, false]),
        ("tanh", x.tanh(), vec![false, true, false, false]),
        ("maximum", x.maximum(&one), vec![false, true, false, false]),
        ("minimum", one.minimum(&x), vec![false, true, false, false]),
        ("max", x.max(), vec![true]),
        ("min", x.min(), vec![true]),
        ("max of a fused chain", (&x * 2.0).relu().max(), vec![true]),
        (
            "max over an axis",
            x.reshape([2, 2]).max_axes(&[1]),
            vec![true, false],
        ),
    ];
    for (name, t, nan) in cases {
        let gpu = t.to_vec_blocking().unwrap();
        let reference = webgrad::reference::eval(&t).unwrap();
        for (i, want) in nan.iter().enumerate() {
            assert_eq!(gpu[i].is_nan(), *want, "{name}[{i}] on the GPU: {gpu:?}");
            assert_eq!(
                reference[i].is_nan(),
                *want,
                "{name}[{i}] in the reference: {reference:?}"
            );
        }
    }
    // Without NaN nothing changed: max is still the largest element.
    let y = Tensor::from_vec(&dev, vec![1.0, 5.0, 3.0, -2.0], [4]);
    assert_eq!(y.max().item_blocking().unwrap(), 5.0);
    assert_eq!(
        y.relu().to_vec_blocking().unwrap(),
        vec![1.0, 5.0, 3.0, 0.0]
    );
}

#[test]
fn transforms_of_empty_and_non_scalar_functions_say_what_is_wrong() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
    // An empty output or input: an empty Jacobian, not a panic inside concat.
    let j = webgrad::jacrev(|x| x.narrow(0, 0..0), &x);
    assert_eq!(j.dims(), &[0, 2]);
    let empty = Tensor::zeros(&dev, [0]);
    let h = webgrad::hessian_reverse(|x| x.sum(), &empty);
    assert_eq!(h.dims(), &[0, 0]);
    assert!(h.to_vec_blocking().unwrap().is_empty());
    panics_with(
        "hessian: the function's output has shape [2], not a single value",
        || {
            webgrad::hessian(|x| x.exp(), &x);
        },
    );
    panics_with(
        "hvp: the function's output has shape [2], not a single value",
        || {
            webgrad::hvp(|x| x.exp(), &x, &x);
        },
    );
    let d = Device::reference_only();
    panics_with(
        "matmul: the batch dims [2] of [2, 3, 4] and [5] of [5, 4, 2] do not broadcast",
        || {
            Tensor::zeros(&d, [2, 3, 4]).matmul(&Tensor::zeros(&d, [5, 4, 2]));
        },
    );
}

#[test]
fn two_devices_print_apart_and_a_seed_on_the_wrong_one_is_named() {
    let (Some(a), Some(b)) = (common::private_device(), common::private_device()) else {
        return;
    };
    let (da, db) = (format!("{a:?}"), format!("{b:?}"));
    assert_ne!(da, db, "two devices print identically");
    let y = Tensor::from_vec(&a, vec![1.0, 2.0], [2]);
    let seed = Tensor::ones(&b, [2]);
    panics_with(
        &format!("grad: the seed lives on {db}, the output on {da}"),
        || {
            webgrad::grad_with_seed(&y, &[&y], &seed);
        },
    );
}

#[test]
fn forward_mode_and_empty_argument_lists_name_the_real_problem() {
    let dev = gpu!();
    let x8 = Tensor::ones(&dev, [1, 1, 1, 1, 1, 1, 1, 2]);
    panics_with(
        "jacfwd: the input [1, 1, 1, 1, 1, 1, 1, 2] has 8 axes and batched tangents need one more (at most 8)",
        || {
            webgrad::jacfwd(|x| x.exp(), &x8);
        },
    );
    panics_with(
        "jvp_batched: the input [1, 1, 1, 1, 1, 1, 1, 2] has 8 axes",
        || {
            webgrad::jvp_batched(|t| t[0].exp(), &[&x8], &[&x8]);
        },
    );
    let x = Tensor::ones(&dev, [2]);
    let y = x.exp();
    panics_with("tangent_batched: 1 inputs but 0 tangents", || {
        webgrad::tangent_batched(&y, &[&x], &[]);
    });
    // No inputs: no gradients, and an empty checkpoint is a valid file.
    let g = webgrad::numerical_grad_blocking(
        |_| Tensor::scalar(&dev, 1.0),
        &[],
        webgrad::Difference::Central,
        None,
    )
    .unwrap();
    assert!(g.is_empty());
    let bytes = io::to_bytes_blocking::<&str>(&[]).unwrap();
    io::from_bytes::<&str>(&bytes, &[]).unwrap();
}

#[test]
fn gradient_reports_show_nan_errors_and_sweeps_check_their_exact_values() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![f32::NAN, 1.0], [2]);
    let report = webgrad::check_gradients_blocking(
        |t: &[Tensor]| t[0].square(),
        &[&x],
        webgrad::Tolerance::default(),
        1,
    )
    .unwrap();
    assert!(!report.passed);
    assert!(report.inputs[0].max_abs_error.is_nan(), "{report}");
    assert_eq!(report.inputs[0].worst, 0);
    let y = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
    panics_with(
        "step_sweep: `exact` must hold one gradient per input, of its size: got sizes [1] for inputs of shapes [[2]]",
        || {
            let _ = webgrad::step_sweep(|t| t[0].square().sum(), &[&y], &[vec![2.0]], &[1e-3]);
        },
    );
}

#[test]
fn symbolic_simplification_is_algebraic_but_never_folds_undefined_constants() {
    use webgrad::symbolic::ExprGraph;
    let mut g = ExprGraph::new();
    // Constants that do not fold (0/0 is NaN, 1/0 is ∞) are kept as written,
    // not simplified to 0; they evaluate as IEEE arithmetic does.
    let zero_over_zero = g.parse("0/0").unwrap();
    assert!(g.eval(zero_over_zero, &[]).unwrap().is_nan());
    assert_eq!(g.print(zero_over_zero), "0/0");
    let zero_times_inf = g.parse("0*(1/0)").unwrap();
    assert!(g.eval(zero_times_inf, &[]).unwrap().is_nan());
    let zero_times_big = g.parse("0*1e999").unwrap();
    assert!(g.eval(zero_times_big, &[]).unwrap().is_nan());
    // The algebraic rules (documented on ExprGraph::bin) do apply to variables.
    let x_minus_x = g.parse("x - x").unwrap();
    assert_eq!(g.print(x_minus_x), "0");
    // A non-finite number prints as something the parser reads back as it.
    let big = g.parse("1e999").unwrap();
    assert_eq!(g.eval(big, &[]).unwrap(), f64::INFINITY);
    let printed = g.print(big);
    assert_eq!(printed, "1e999");
    assert_eq!(g.parse(&printed).unwrap(), big);
    let neg = g.parse("-1e999 * x").unwrap();
    let again = g.parse(&g.print(neg)).unwrap();
    assert_eq!(g.eval(again, &[("x", 2.0)]).unwrap(), f64::NEG_INFINITY);
    // An id from another graph is named as such, not a bare index panic.
    let mut other = ExprGraph::new();
    let foreign = other.parse("a + b + c + d").unwrap();
    panics_with("expression #", || {
        g.print(foreign);
    });
    panics_with("belongs to another ExprGraph", || {
        g.print(foreign);
    });
}

#[test]
fn planning_is_near_linear_in_fan_out() {
    // One small node read by 100,000 consumers, with no handle left on it:
    // the fusion check used to ask every consumer about all the others
    // (20k consumers 4.8 s, 100k over a minute). Now it is one pass.
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![0.5], [1]);
    let n = 100_000;
    let shared = x.exp();
    let mut total = &shared * 0.0;
    for i in 1..n {
        total = &total + &(&shared * (i % 7) as f32);
    }
    drop(shared);
    // (Its time is measured by the bench's `fanout` workload, not asserted.)
    let value = total.item_blocking().unwrap() as f64;
    let weights: f64 = (1..n).map(|i| (i % 7) as f64).sum();
    let want = 0.5f64.exp() * weights;
    assert!((value - want).abs() < 1e-3 * want, "{value} vs {want}");
}

#[test]
fn matmuls_with_more_rows_than_one_dispatch_covers_split_their_grid() {
    // [4194304, 1] @ [1, 1] (16 MiB) needs 131,072 row groups: the rows are
    // split into whole chunks plus a remainder. Every product is checked.
    let dev = gpu!();
    for rows in [4_194_304usize, 2_097_152 + 37] {
        let a: Vec<f32> = (0..rows).map(|i| (i % 1000) as f32).collect();
        let x = Tensor::from_vec(&dev, a, [rows, 1]);
        let w = Tensor::from_vec(&dev, vec![0.5], [1, 1]);
        let y = x.matmul(&w).to_vec_blocking().unwrap();
        assert_eq!(y.len(), rows);
        let bad = (0..rows).find(|&i| y[i] != (i % 1000) as f32 * 0.5);
        assert_eq!(bad, None, "{rows} rows: first wrong row");
    }
}

#[test]
fn random_tensors_larger_than_the_device_allows_fail_before_any_allocation() {
    let dev = gpu!();
    let limit = dev.limits().unwrap().max_storage_buffer_binding_size;
    let n = 1usize << 31; // 8 GiB of f32: generated on the host first, before.
    for t in [
        Tensor::rand_uniform(&dev, [n], 0.0, 1.0, 1),
        Tensor::rand_normal(&dev, [n], 0.0, 1.0, 1),
    ] {
        match t.realize_blocking() {
            Err(Error::TooLarge { bytes, limit: l }) => {
                assert_eq!(bytes, 4 * n as u64);
                assert_eq!(l, limit);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}

#[test]
fn the_buffer_pool_stays_bounded_when_batch_sizes_vary() {
    // 1,000 Adam steps of the digits MLP at random batch sizes from 1 to 256:
    // every size class used stays pooled unless the pool is bounded. The
    // bound: free bytes never above the peak of live bytes, so the device
    // holds at most twice its working set.
    use webgrad::layers::{Activation, Init, Mlp, Module};
    let Some(dev) = common::private_device() else {
        return;
    };
    let set = data::Dataset::digits().unwrap();
    let model = Mlp::new(
        &dev,
        &[64, 128, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        0,
    )
    .unwrap();
    let params = model.parameters();
    let mut opt = Adam::new(1e-3);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut worst = 0.0f64;
    for _ in 0..1000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = 1 + (state % 256) as usize;
        let start = (state >> 20) as usize % (set.len() - size);
        let batch = set.select(&(start..start + size).collect::<Vec<_>>());
        let (x, labels) = batch.tensors(&dev);
        let loss = model.forward(&x).cross_entropy(&labels);
        let grads = webgrad::grad(&loss, &params);
        let updates = opt.step(&params, &grads).unwrap();
        webgrad::realize_all_blocking(&updates.iter().collect::<Vec<_>>()).unwrap();
        let m = dev.memory_stats();
        assert!(m.pooled_bytes <= m.peak_live_bytes, "{m:?}");
        worst = worst.max((m.live_bytes + m.pooled_bytes) as f64 / m.peak_live_bytes as f64);
    }
    assert!(worst <= 2.0, "live + pooled reached {worst:.2}× the peak");
}

#[test]
fn anomaly_detection_names_the_first_op_that_made_a_nan_or_inf() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let x = Tensor::from_vec(&dev, vec![1.0, 0.0], [2]);
    // Off: the infinity is just a value.
    let y = (x.log() * 2.0).sum();
    assert_eq!(y.item_blocking().unwrap(), f32::NEG_INFINITY);
    dev.set_detect_anomaly(true);
    // Forward: log(0) = −∞ is found at the log, not at the sum after it.
    let y = (x.log() * 2.0).sum();
    match y.item_blocking() {
        Err(Error::Anomaly(m)) => assert!(
            m.starts_with("log (node #")
                && m.contains("of shape [2] holds an infinity at element 1; its inputs: input [2]"),
            "{m}"
        ),
        other => panic!("expected an anomaly, got {other:?}"),
    }
    // Backward: √x is finite at 0, its adjoint g/(2√x) is not.
    let loss = x.sqrt().sum();
    let g = webgrad::grad(&loss, &[&x]).remove(0);
    match g.to_vec_blocking() {
        Err(Error::Anomaly(m)) => assert!(m.contains("holds an infinity at element 1"), "{m}"),
        other => panic!("expected an anomaly, got {other:?}"),
    }
    // Finite graphs give the same values with the check on.
    let z = Tensor::from_vec(&dev, vec![1.0, 4.0], [2]);
    let h = (z.sqrt() * &z.exp()).sum();
    let want = 1f32.exp() + 2.0 * 4f32.exp();
    assert!((h.item_blocking().unwrap() - want).abs() < 1e-3);
    assert!(webgrad::realize_all_blocking(&[&(x.log())]).is_err());
}

#[test]
fn a_broadcast_read_earlier_feeds_later_kernels() {
    // The consumer of a realized broadcast_to used to look for the
    // broadcast's input, which a realized node no longer needs.
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    let b = x.broadcast_to([2, 3]);
    assert_eq!(
        b.to_vec_blocking().unwrap(),
        vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    );
    let y = &b * 2.0;
    assert_eq!(
        y.to_vec_blocking().unwrap(),
        vec![2.0, 4.0, 6.0, 2.0, 4.0, 6.0]
    );
}

#[test]
fn reductions_of_nothing_follow_numpy() {
    let dev = gpu!();
    let empty = Tensor::zeros(&dev, [3, 0]);
    assert_eq!(
        empty.sum_axes(&[1]).to_vec_blocking().unwrap(),
        vec![0.0; 3]
    );
    let mean = empty.mean_axes(&[1]);
    assert!(mean.to_vec_blocking().unwrap().iter().all(|v| v.is_nan()));
    assert!(
        webgrad::reference::eval(&mean)
            .unwrap()
            .iter()
            .all(|v| v.is_nan())
    );
    assert!(
        Tensor::zeros(&dev, [0])
            .mean()
            .item_blocking()
            .unwrap()
            .is_nan()
    );
    panics_with(
        "max: cannot reduce over the empty axis 1 of shape [3, 0]",
        || {
            empty.max_axes(&[1]);
        },
    );
    panics_with(
        "min: cannot reduce over the empty axis 0 of shape [0]",
        || {
            Tensor::zeros(&dev, [0]).min();
        },
    );
    // An inner dimension of 0: the product is zeros.
    let a = Tensor::zeros(&dev, [2, 0]);
    let b = Tensor::zeros(&dev, [0, 3]);
    assert_eq!(a.matmul(&b).to_vec_blocking().unwrap(), vec![0.0; 6]);
}

#[test]
fn domain_errors_give_nan_on_every_adapter() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![-1.0, 0.0, 4.0, f32::NAN], [4]);
    let log = x.log().to_vec_blocking().unwrap();
    assert!(
        log[0].is_nan() && log[1] == f32::NEG_INFINITY && log[2] == 4f32.ln() && log[3].is_nan(),
        "{log:?}"
    );
    let sqrt = x.sqrt().to_vec_blocking().unwrap();
    assert!(
        sqrt[0].is_nan() && sqrt[1] == 0.0 && sqrt[2] == 2.0 && sqrt[3].is_nan(),
        "{sqrt:?}"
    );
    let log1p = Tensor::from_vec(&dev, vec![-2.0, -1.0], [2])
        .log1p()
        .to_vec_blocking()
        .unwrap();
    assert!(
        log1p[0].is_nan() && log1p[1] == f32::NEG_INFINITY,
        "{log1p:?}"
    );
    // The reference agrees.
    let r = webgrad::reference::eval(&x.log()).unwrap();
    assert!(r[0].is_nan() && r[1] == f64::NEG_INFINITY);
}

#[test]
fn gradients_at_the_usual_edges_follow_pytorch() {
    let dev = gpu!();
    let zero = Tensor::from_vec(&dev, vec![0.0], [1]);
    let grad_at = |f: &dyn Fn(&Tensor) -> Tensor| {
        webgrad::grad(&f(&zero).sum(), &[&zero])[0]
            .to_vec_blocking()
            .unwrap()[0]
    };
    assert_eq!(grad_at(&|x| x.powf(0.0)), 0.0, "d/dx x⁰ at 0");
    assert_eq!(grad_at(&|x| x.relu()), 0.0, "relu′(0)");
    assert_eq!(grad_at(&|x| x.abs()), 0.0, "|x|′ at 0");
    assert_eq!(grad_at(&|x| x.sqrt()), f32::INFINITY, "√x′ at 0");
    // ∂(aᵇ)/∂b at a = 0 and ∂(aᵇ)/∂a at b = 0 (0·∞ in the formulas) are 0.
    let a = Tensor::from_vec(&dev, vec![0.0], [1]);
    let b = Tensor::from_vec(&dev, vec![2.0], [1]);
    let g = webgrad::grad(&a.pow(&b).sum(), &[&a, &b]);
    assert_eq!(g[1].to_vec_blocking().unwrap(), vec![0.0]);
    let b0 = Tensor::from_vec(&dev, vec![0.0], [1]);
    let g = webgrad::grad(&a.pow(&b0).sum(), &[&a]);
    assert_eq!(g[0].to_vec_blocking().unwrap(), vec![0.0]);
    // The reference agrees.
    let r = webgrad::reference::eval(&webgrad::grad(&a.pow(&b).sum(), &[&b])[0]).unwrap();
    assert_eq!(r, vec![0.0]);
}

#[test]
fn byte_counts_never_wrap_into_a_small_allocation() {
    // 2⁶² elements count fine in a usize, but their 2⁶⁴ bytes do not: the
    // size check must see "too large", not a wrapped 0.
    let dev = gpu!();
    match Tensor::zeros(&dev, [1 << 62]).realize_blocking() {
        Err(Error::TooLarge { bytes, .. }) => assert_eq!(bytes, u64::MAX),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match Tensor::zeros(&dev, [3, 1 << 61]).realize_blocking() {
        Err(Error::TooLarge { .. }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// Attention's operands are checked before any kernel is chosen, fused or
/// composed, with a message naming the entry that was called; an empty
/// batch of heads gives an empty result.
#[test]
fn attention_refuses_operands_that_do_not_fit_on_either_path() {
    use webgrad::AttentionMask::{Causal, None as Every};
    let dev = gpu!();
    let t = |dims: &[usize]| Tensor::zeros(&dev, dims);
    type Entry = fn(&Tensor, &Tensor, &Tensor, webgrad::AttentionMask) -> Tensor;
    let entries: [(&str, Entry); 2] = [
        ("scaled_dot_product_attention:", |q, k, v, m| {
            q.scaled_dot_product_attention(k, v, m)
        }),
        ("scaled_dot_product_attention_composed:", |q, k, v, m| {
            q.scaled_dot_product_attention_composed(k, v, m)
        }),
    ];
    for (name, f) in entries {
        let at = |want: &str, q: &Tensor, k: &Tensor, v: &Tensor, m| {
            let msg = common::panic_message(|| drop(f(q, k, v, m)));
            assert!(
                msg.starts_with(name) && msg.contains(want),
                "{msg:?}: {name} {want}"
            );
        };
        at(
            "queries [4], keys [3, 4] and values [3, 4] need at least 2 axes",
            &t(&[4]),
            &t(&[3, 4]),
            &t(&[3, 4]),
            Every,
        );
        at(
            "keys [3, 5] and values [3, 4] do not fit",
            &t(&[2, 4]),
            &t(&[3, 5]),
            &t(&[3, 4]),
            Every,
        );
        at(
            "keys [3, 4] and values [2, 4] do not fit",
            &t(&[2, 4]),
            &t(&[3, 4]),
            &t(&[2, 4]),
            Every,
        );
        at(
            "needs at least one key",
            &t(&[2, 4]),
            &t(&[0, 4]),
            &t(&[0, 4]),
            Every,
        );
        at(
            "at least as many keys (2) as queries (3)",
            &t(&[3, 4]),
            &t(&[2, 4]),
            &t(&[2, 4]),
            Causal,
        );
        let empty = f(&t(&[0, 3, 4]), &t(&[0, 5, 4]), &t(&[0, 5, 2]), Causal);
        assert_eq!(empty.dims(), &[0, 3, 2]);
        assert!(empty.to_vec_blocking().unwrap().is_empty());
    }
}
