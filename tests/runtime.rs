//! The lazy runtime: laziness, one submit for many outputs, buffer reuse,
//! bounded memory in a training loop, big tensors and errors.

mod common;

use webgrad::{Device, Error, Tensor, grad, read_all_blocking, realize_all_blocking, reference};

#[test]
fn ops_record_nodes_and_run_nothing_until_read() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let before = dev.memory_stats();
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    let y = (&x.exp() * 2.0).sum();
    // Nothing was uploaded or allocated by recording.
    assert_eq!(dev.memory_stats().live_buffers, before.live_buffers);
    assert_eq!(y.op_name(), "reshape");
    assert_eq!(y.inputs()[0].op_name(), "sum[0]");
    assert_eq!(dev.pipelines_compiled(), 0);
    let want: f64 = [1f64, 2.0, 3.0].iter().map(|v| 2.0 * v.exp()).sum();
    assert!((y.item_blocking().unwrap() as f64 - want).abs() < 1e-4);
    // Realized handles keep their values: x's upload and y.
    assert!(dev.memory_stats().live_buffers >= before.live_buffers + 2);
}

#[test]
fn one_realize_computes_several_outputs() {
    let dev = gpu!();
    let x = Tensor::rand_uniform(&dev, [64], -1.0, 1.0, 3);
    let a = x.sin();
    let b = x.cos();
    realize_all_blocking(&[&a, &b]).unwrap();
    let v = read_all_blocking(&[&a, &b]).unwrap();
    for ((s, c), xv) in v[0].iter().zip(&v[1]).zip(x.to_vec_blocking().unwrap()) {
        assert!((s - xv.sin()).abs() < 1e-6 && (c - xv.cos()).abs() < 1e-6);
    }
}

#[test]
fn dropped_tensors_return_their_buffers_to_the_pool() {
    // A private device, so no other test's buffers are counted.
    let Some(dev) = common::private_device() else {
        return;
    };
    let x = Tensor::rand_uniform(&dev, [1000], -1.0, 1.0, 1);
    let y = x.exp();
    y.realize_blocking().unwrap();
    let live = dev.memory_stats();
    assert_eq!(live.live_buffers, 2, "{live:?}");
    drop(y);
    drop(x);
    let after = dev.memory_stats();
    assert_eq!(after.live_buffers, 0);
    assert!(after.pooled_buffers >= 2);
    // The next tensor reuses a pooled buffer instead of allocating.
    let z = Tensor::rand_uniform(&dev, [900], -1.0, 1.0, 2);
    z.realize_blocking().unwrap();
    assert_eq!(
        dev.memory_stats().live_buffers + dev.memory_stats().pooled_buffers,
        after.pooled_buffers
    );
    dev.trim_pool();
    assert_eq!(dev.memory_stats().pooled_buffers, 0);
}

#[test]
fn a_tensor_of_20_million_elements() {
    let dev = gpu!();
    let n = 20_000_000;
    let data: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 / 1000.0).collect();
    let x = Tensor::from_vec(&dev, data, [n]);
    let y = &(&x * 2.0) + 1.0;
    let s = y.sum();
    let g = &grad(&s.clone(), &[&x])[0];
    let v = read_all_blocking(&[&y, &s, g]).unwrap();
    assert_eq!(v[0].len(), n);
    for i in [0, 1, 999, 1000, 12_345_678, n - 1] {
        let want = 2.0 * (i % 1000) as f32 / 1000.0 + 1.0;
        assert!(
            (v[0][i] - want).abs() < 1e-6,
            "element {i}: {} vs {want}",
            v[0][i]
        );
    }
    // Σ over 20,000 blocks of (2·k/1000 + 1), k = 0..999.
    let want_sum = 20_000.0
        * (0..1000)
            .map(|k| 2.0 * k as f64 / 1000.0 + 1.0)
            .sum::<f64>();
    assert!(
        ((v[1][0] as f64) - want_sum).abs() / want_sum < 1e-5,
        "{} vs {want_sum}",
        v[1][0]
    );
    assert!(v[2].iter().all(|&d| d == 2.0));
}

#[test]
fn a_tensor_larger_than_a_binding_is_an_error() {
    let dev = gpu!();
    let big = Tensor::full(&dev, [40_000_000], 1.0); // 160 MB > 128 MiB
    match big.sum().realize_blocking() {
        Err(Error::TooLarge { bytes, limit }) => assert!(bytes > limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The device still works afterwards.
    assert_eq!(
        Tensor::scalar(&dev, 2.0).square().item_blocking().unwrap(),
        4.0
    );
}

#[test]
fn reference_only_devices_evaluate_on_the_cpu() {
    let dev = Device::reference_only();
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
    let y = (&x * &x).sum();
    assert!(matches!(y.realize_blocking(), Err(Error::NoGpu)));
    assert_eq!(reference::eval(&y).unwrap(), vec![5.0]);
    assert_eq!(
        reference::eval(&grad(&y, &[&x])[0]).unwrap(),
        vec![2.0, 4.0]
    );
}

#[test]
fn reductions_are_bitwise_deterministic() {
    let dev = gpu!();
    let x = Tensor::rand_normal(&dev, [3, 100_000], 0.0, 1.0, 9);
    let a = x.sum_axes(&[1]).to_vec_blocking().unwrap();
    for _ in 0..3 {
        let b = x.sum_axes(&[1]).to_vec_blocking().unwrap();
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn random_tensors_are_reproducible_from_a_seed() {
    let dev = Device::reference_only();
    let a = reference::eval(&Tensor::rand_normal(&dev, [100], 0.0, 1.0, 42)).unwrap();
    let b = reference::eval(&Tensor::rand_normal(&dev, [100], 0.0, 1.0, 42)).unwrap();
    let c = reference::eval(&Tensor::rand_normal(&dev, [100], 0.0, 1.0, 43)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn zero_sized_tensors() {
    let dev = gpu!();
    let x = Tensor::zeros(&dev, [0, 3]);
    assert_eq!(x.exp().to_vec_blocking().unwrap(), Vec::<f32>::new());
    assert_eq!(x.sum().item_blocking().unwrap(), 0.0);
}

#[test]
fn threads_sharing_a_device_do_not_see_each_others_buffers() {
    let dev = gpu!();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let dev = dev.clone();
            std::thread::spawn(move || {
                for step in 0..40 {
                    let v = (w * 100 + step) as f32;
                    let x = Tensor::full(&dev, [300], v);
                    let y = Tensor::from_vec(&dev, vec![v; 300], [300]);
                    let s = (&(&x + &y) * 0.5).sum();
                    let got = s.item_blocking().unwrap();
                    assert_eq!(got, 300.0 * v, "worker {w}, step {step}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

/// A GPU error is returned by the realize that caused it, and the device
/// works normally afterwards (the browser test checks the same on wasm).
#[test]
fn a_gpu_error_is_reported_by_the_realize_that_caused_it() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
    let y = &x * 3.0;
    dev.inject_validation_error();
    let err = pollster::block_on(webgrad::realize_all(&[&y])).unwrap_err();
    assert!(matches!(err, webgrad::Error::Validation(_)), "{err}");
    // The next calls succeed: the error was not left for them.
    let z = &x + 1.0;
    z.realize_blocking().unwrap();
    assert_eq!(z.to_vec_blocking().unwrap(), vec![2.0, 3.0]);
    // The same through the blocking realize and a read.
    dev.inject_validation_error();
    let err = (&x * 2.0).realize_blocking().unwrap_err();
    assert!(matches!(err, webgrad::Error::Validation(_)), "{err}");
    dev.inject_validation_error();
    let err = (&x * 2.0).to_vec_blocking().unwrap_err();
    assert!(matches!(err, webgrad::Error::Validation(_)), "{err}");
    assert_eq!((&x * 2.0).to_vec_blocking().unwrap(), vec![2.0, 4.0]);
}

/// The profiler names every kernel, counts its FLOPs and bytes from the
/// shapes, times it where the adapter has timestamp queries (lavapipe
/// does), and writes a trace that parses as Chrome's trace-event JSON.
#[test]
fn the_profiler_records_every_kernel_with_its_work_and_time() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let a = Tensor::rand_uniform(&dev, [32, 48], -1.0, 1.0, 1);
    let b = Tensor::rand_uniform(&dev, [48, 16], -1.0, 1.0, 2);
    a.realize_blocking().unwrap();
    b.realize_blocking().unwrap();
    let before = dev.counters();
    let (value, profile) = dev.profile(|| {
        let y = a.matmul(&b).tanh().sum();
        y.item_blocking().unwrap()
    });
    assert!(value.is_finite());
    let kernels = dev.counters().kernels - before.kernels;
    assert_eq!(profile.kernels.len() as u64, kernels);
    assert_eq!(profile.submits.len(), 1);
    let matmul = profile
        .kernels
        .iter()
        .find(|k| k.name.starts_with("matmul"))
        .expect("a matmul kernel");
    assert_eq!(matmul.name, "matmul [32, 16]");
    assert_eq!(matmul.flops, 2 * 32 * 48 * 16);
    assert_eq!(matmul.bytes_read, 4 * (32 * 48 + 48 * 16));
    assert_eq!(matmul.bytes_written, 4 * 32 * 16);
    // tanh is fused into the sum: one kernel named for both.
    assert!(
        profile.kernels.iter().any(|k| k.name.contains("tanh")),
        "{:?}",
        profile.kernels.iter().map(|k| &k.name).collect::<Vec<_>>()
    );
    if std::env::var_os("CI").is_some() {
        // lavapipe has timestamp queries: every kernel is timed.
        assert!(profile.timestamps);
    }
    if profile.timestamps {
        assert!(
            profile
                .kernels
                .iter()
                .all(|k| k.gpu_ns.is_some_and(|t| t > 0))
        );
    }
    let s = &profile.submits[0];
    assert!(s.plan_ns > 0 && s.encode_ns > 0 && s.total_ns >= s.plan_ns + s.encode_ns);
    assert!(profile.wall_ns >= s.total_ns);
    let table = profile.table();
    assert!(
        table.contains("matmul [32, 16]") && table.contains("CPU: recording"),
        "{table}"
    );
    let trace: serde_json::Value = serde_json::from_str(&profile.chrome_trace()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let gpu_events = events.iter().filter(|e| e["cat"] == "gpu").count();
    assert_eq!(
        gpu_events,
        if profile.timestamps {
            profile.kernels.len()
        } else {
            0
        }
    );
    assert!(events.iter().any(|e| e["name"] == "plan" && e["ph"] == "X"));
    // Profiling is off again afterwards: nothing more is recorded.
    (&a * 2.0).realize_blocking().unwrap();
}

/// Kernels that read and write four elements at a time (element counts
/// that are multiples of 4, no broadcast loads) give each element the same
/// bits as the one-element kernels, and their reductions the reference's
/// values, NaN rule included, wherever in a vec4 the NaN sits.
#[test]
fn four_at_a_time_kernels_agree_with_the_one_element_kernels() {
    let dev = gpu!();
    // (Four at a time from 1,024 elements: VEC4_MIN_ELEMENTS.)
    let data = common::data(8193, -2.0, 2.0, 0.0, 5);
    let half = Tensor::scalar(&dev, 0.5);
    let f = |x: &Tensor| &(&(&(&x.sin() * &x.exp()) + &x.square()) - &x.tanh()) * &half;
    // 8,193 elements: one per invocation; 8,192: four per invocation.
    let one = f(&Tensor::from_vec(&dev, data.clone(), [8193]));
    let four = f(&Tensor::from_vec(&dev, data[..8192].to_vec(), [8192]));
    let (one, four) = (
        one.to_vec_blocking().unwrap(),
        four.to_vec_blocking().unwrap(),
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one[..8192]), bits(&four));
    // Broadcast rows (a bias) and columns (a per-row statistic): rows of
    // 101 elements one at a time, of 100 four at a time.
    let g = |x: &Tensor, row: &Tensor, col: &Tensor| (&(x + row) * col).tanh();
    let (xs, rows, cols) = (
        common::data(64 * 101, -2.0, 2.0, 0.0, 9),
        common::data(101, -1.0, 1.0, 0.0, 10),
        common::data(64, -1.0, 1.0, 0.0, 11),
    );
    let col = Tensor::from_vec(&dev, cols, [64, 1]);
    let one = g(
        &Tensor::from_vec(&dev, xs.clone(), [64, 101]),
        &Tensor::from_vec(&dev, rows.clone(), [101]),
        &col,
    );
    let narrow: Vec<f32> = xs.chunks(101).flat_map(|r| r[..100].to_vec()).collect();
    let four = g(
        &Tensor::from_vec(&dev, narrow, [64, 100]),
        &Tensor::from_vec(&dev, rows[..100].to_vec(), [100]),
        &col,
    );
    let (one, four) = (
        one.to_vec_blocking().unwrap(),
        four.to_vec_blocking().unwrap(),
    );
    let one: Vec<f32> = one.chunks(101).flat_map(|r| r[..100].to_vec()).collect();
    assert_eq!(bits(&one), bits(&four));

    // Rows of 1,024 (256 vec4s each), a NaN in each of the four lanes of a
    // vec4 in four rows; the reductions over rows and over everything.
    let mut values = common::data(6 * 1024, -3.0, 3.0, 0.0, 6);
    for (row, lane) in [(0, 0), (1, 1), (2, 2), (4, 3)] {
        values[row * 1024 + 40 + lane] = f32::NAN;
    }
    let x = Tensor::from_vec(&dev, values, [6, 1024]);
    for (what, y, atol) in [
        ("sum of rows", x.sum_axes(&[1]), 1e-3),
        ("max of rows", x.max_axes(&[1]), 0.0),
        ("min of rows", x.min_axes(&[1]), 0.0),
        ("sum of exp", x.exp().sum_axes(&[1]), 1e-2),
        ("max", x.max(), 0.0),
    ] {
        let got = y.to_vec_blocking().unwrap();
        let want = reference::eval(&y).unwrap();
        common::assert_close(what, &got, &want, atol, 1e-5);
        assert_eq!(
            got.iter().map(|v| v.is_nan()).collect::<Vec<_>>(),
            want.iter().map(|v| v.is_nan()).collect::<Vec<_>>(),
            "{what}"
        );
    }
    // A long row: several passes, the first four elements at a time.
    let long = Tensor::from_vec(&dev, common::data(200_000, -1.0, 1.0, 0.0, 7), [200_000]);
    for (what, y) in [("long sum", long.sum()), ("long max", long.max())] {
        let got = y.to_vec_blocking().unwrap();
        common::assert_close(what, &got, &reference::eval(&y).unwrap(), 1e-3, 1e-5);
    }
}

/// The bench's elementwise workload: sum(sin x·eˣ + x² − tanh x) and its
/// gradient. The forward is one fused reduction (its passes), the
/// gradient's sum too: the reverse pass's seed, a broadcast constant, is
/// computed inside it, not filled by a kernel of its own.
#[test]
fn an_elementwise_chain_and_its_gradient_are_one_fused_kernel_each() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let x = Tensor::from_vec(&dev, common::data(4096, -1.0, 1.0, 0.0, 8), [4096]);
    x.realize_blocking().unwrap();
    let y = (&(&(&x.sin() * &x.exp()) + &(&x * &x)) - &x.tanh()).sum();
    let g = grad(&y, &[&x])[0].sum();
    let (values, profile) = dev.profile(|| read_all_blocking(&[&y, &g]).unwrap());
    let names: Vec<&str> = profile.kernels.iter().map(|k| k.name.as_str()).collect();
    // Two reductions of 4,096 elements, one pass each.
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("sum[0](")), "{names:?}");
    let want = reference::eval_with(&[&y, &g], &[]).unwrap();
    common::assert_close("forward", &values[0], &want[0], 1e-3, 1e-5);
    common::assert_close("gradient", &values[1], &want[1], 1e-3, 1e-5);
}

/// The seed of a product's adjoints — ones broadcast to the product's
/// shape, read as a buffer by the matmul kernels — is one fill kernel of
/// the broadcast shape, not a fill and a broadcasting copy.
#[test]
fn a_broadcast_seed_read_by_a_product_is_one_fill_kernel() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let a = Tensor::from_vec(&dev, common::data(32 * 16, -1.0, 1.0, 0.0, 12), [32, 16]);
    let b = Tensor::from_vec(&dev, common::data(16 * 8, -1.0, 1.0, 0.0, 13), [16, 8]);
    a.realize_blocking().unwrap();
    b.realize_blocking().unwrap();
    let g = grad(&a.matmul(&b).sum(), &[&a, &b]);
    let (sa, sb) = (g[0].sum(), g[1].sum());
    let (values, profile) = dev.profile(|| read_all_blocking(&[&sa, &sb]).unwrap());
    let names: Vec<&str> = profile.kernels.iter().map(|k| k.name.as_str()).collect();
    let others: Vec<&&str> = names
        .iter()
        .filter(|n| !n.starts_with("matmul") && !n.starts_with("sum"))
        .collect();
    assert_eq!(others.len(), 1, "{names:?}");
    assert!(others[0].starts_with("broadcast_to"), "{names:?}");
    let want = reference::eval_with(&[&sa, &sb], &[]).unwrap();
    common::assert_close("sum of dA", &values[0], &want[0], 1e-3, 1e-5);
    common::assert_close("sum of dB", &values[1], &want[1], 1e-3, 1e-5);
}
