//! Reductions, matmul, movement and nn ops on the GPU: forward against the
//! f64 reference, vjp against central finite differences of the reference.

mod common;

use webgrad::{Shape, Tensor, reference};

use common::{assert_close, check_forward, check_op, data};

fn input(shape: &[usize], seed: u64) -> (Vec<f32>, Shape) {
    let s = Shape::new(shape);
    (data(s.numel(), -2.0, 2.0, 0.0, seed), s)
}

#[test]
fn reductions_over_any_axes() {
    let dev = gpu!();
    let x = input(&[3, 4, 5], 1);
    let axes_sets: &[&[usize]] = &[&[], &[0], &[1], &[2], &[0, 2], &[1, 2], &[0, 1, 2]];
    for &axes in axes_sets {
        for keepdim in [false, true] {
            check_op(
                &dev,
                &format!("sum{axes:?} keepdim={keepdim}"),
                std::slice::from_ref(&x),
                &|t| {
                    if keepdim {
                        t[0].sum_axes_keepdim(axes)
                    } else {
                        t[0].sum_axes(axes)
                    }
                },
            );
            check_op(
                &dev,
                &format!("mean{axes:?}"),
                std::slice::from_ref(&x),
                &|t| {
                    if keepdim {
                        t[0].mean_axes_keepdim(axes)
                    } else {
                        t[0].mean_axes(axes)
                    }
                },
            );
            check_op(
                &dev,
                &format!("max{axes:?}"),
                std::slice::from_ref(&x),
                &|t| {
                    if keepdim {
                        t[0].max_axes_keepdim(axes)
                    } else {
                        t[0].max_axes(axes)
                    }
                },
            );
            check_op(
                &dev,
                &format!("min{axes:?}"),
                std::slice::from_ref(&x),
                &|t| {
                    if keepdim {
                        t[0].min_axes_keepdim(axes)
                    } else {
                        t[0].min_axes(axes)
                    }
                },
            );
        }
    }
    check_op(&dev, "sum all", std::slice::from_ref(&x), &|t| t[0].sum());
    check_op(&dev, "max all", std::slice::from_ref(&x), &|t| t[0].max());
    check_op(&dev, "mean all", &[x], &|t| t[0].mean());
}

#[test]
fn max_splits_the_gradient_between_ties() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, 3.0, 3.0, 2.0], [4]);
    let g = webgrad::grad(&x.max(), &[&x]);
    assert_eq!(g[0].to_vec_blocking().unwrap(), vec![0.0, 0.5, 0.5, 0.0]);
}

#[test]
fn long_reductions_take_several_deterministic_passes() {
    let dev = gpu!();
    let n = 1 << 20;
    let x = Tensor::from_vec(&dev, data(n, -1.0, 1.0, 0.0, 5), [n]);
    for (name, y) in [("sum", x.sum()), ("max", x.max()), ("min", x.min())] {
        let a = y.item_blocking().unwrap();
        let expected = reference::eval(&y).unwrap()[0];
        assert!(
            (a as f64 - expected).abs() < 1e-3,
            "{name}: {a} vs {expected}"
        );
        // Same graph, same bits.
        let again = (if name == "sum" {
            x.sum()
        } else if name == "max" {
            x.max()
        } else {
            x.min()
        })
        .item_blocking()
        .unwrap();
        assert_eq!(a.to_bits(), again.to_bits(), "{name} is not deterministic");
    }
    // Column sums of a tall matrix (reduce over the leading axis).
    let m = Tensor::from_vec(&dev, data(4096 * 33, -1.0, 1.0, 0.0, 6), [4096, 33]);
    let cols = m.sum_axes(&[0]);
    assert_close(
        "column sums",
        &cols.to_vec_blocking().unwrap(),
        &reference::eval(&cols).unwrap(),
        1e-3,
        1e-4,
    );
    let rows = m.mean_axes_keepdim(&[1]);
    assert_close(
        "row means",
        &rows.to_vec_blocking().unwrap(),
        &reference::eval(&rows).unwrap(),
        1e-5,
        1e-4,
    );
}

#[test]
fn matmul_2d_batched_and_broadcast() {
    let dev = gpu!();
    let cases: &[(&[usize], &[usize])] = &[
        (&[5, 7], &[7, 3]),          // scalar kernel
        (&[8, 12], &[12, 16]),       // vec4 kernel, exact tiles
        (&[9, 20], &[20, 36]),       // vec4 kernel, ragged edges
        (&[1, 4], &[4, 1]),          // dot product
        (&[2, 3, 4], &[2, 4, 8]),    // batched
        (&[2, 5, 4], &[4, 3]),       // batch broadcast of the right operand
        (&[3, 4], &[2, 4, 8]),       // batch broadcast of the left operand
        (&[2, 1, 4, 8], &[3, 8, 4]), // both broadcast: [2, 3, 4, 4]
    ];
    for (i, &(sa, sb)) in cases.iter().enumerate() {
        check_op(
            &dev,
            &format!("matmul {sa:?} @ {sb:?}"),
            &[input(sa, 10 + i as u64), input(sb, 20 + i as u64)],
            &|t| t[0].matmul(&t[1]),
        );
    }
}

#[test]
fn large_matmul_matches_reference() {
    let dev = gpu!();
    for (m, k, n) in [(130, 72, 96), (64, 33, 50)] {
        let a = Tensor::from_vec(&dev, data(m * k, -1.0, 1.0, 0.0, 1), [m, k]);
        let b = Tensor::from_vec(&dev, data(k * n, -1.0, 1.0, 0.0, 2), [k, n]);
        let c = a.matmul(&b);
        assert_close(
            "matmul",
            &c.to_vec_blocking().unwrap(),
            &reference::eval(&c).unwrap(),
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn movement_ops() {
    let dev = gpu!();
    let x = input(&[2, 3, 4], 3);
    check_op(&dev, "reshape", std::slice::from_ref(&x), &|t| {
        t[0].reshape([4, 6])
    });
    check_op(&dev, "permute", std::slice::from_ref(&x), &|t| {
        t[0].permute(&[2, 0, 1])
    });
    check_op(&dev, "transpose", std::slice::from_ref(&x), &|t| {
        t[0].transpose(0, 2)
    });
    check_op(&dev, "t", std::slice::from_ref(&x), &|t| t[0].t());
    check_op(&dev, "broadcast_to", &[input(&[3, 1], 4)], &|t| {
        t[0].broadcast_to([2, 3, 5])
    });
    check_op(&dev, "slice", std::slice::from_ref(&x), &|t| {
        t[0].slice(&[1..2, 0..2, 1..4])
    });
    check_op(&dev, "narrow", std::slice::from_ref(&x), &|t| {
        t[0].narrow(2, 1..3)
    });
    check_op(&dev, "pad", &[input(&[2, 2], 5)], &|t| {
        t[0].pad(&[(1, 0), (2, 1)])
    });
    check_op(
        &dev,
        "concat",
        &[input(&[2, 3], 6), input(&[2, 1], 7), input(&[2, 2], 8)],
        &|t| Tensor::concat(&[&t[0], &t[1], &t[2]], 1),
    );
    check_op(
        &dev,
        "concat axis 0",
        &[input(&[1, 3], 9), input(&[2, 3], 10)],
        &|t| Tensor::concat(&[&t[0], &t[1]], 0),
    );
    // Movement feeding a reduction over a non-contiguous set of axes.
    check_op(&dev, "permute then sum", &[x], &|t| {
        t[0].permute(&[1, 0, 2]).sum_axes(&[0, 2])
    });
}

#[test]
fn softmax_family_is_stable_and_differentiable() {
    let dev = gpu!();
    check_op(&dev, "softmax", &[input(&[3, 5], 1)], &|t| t[0].softmax(1));
    check_op(&dev, "softmax axis 0", &[input(&[3, 5], 2)], &|t| {
        t[0].softmax(0)
    });
    check_op(&dev, "log_softmax", &[input(&[3, 5], 3)], &|t| {
        t[0].log_softmax(1)
    });
    check_op(&dev, "cross_entropy", &[input(&[4, 3], 4)], &|t| {
        t[0].cross_entropy(&[0, 2, 1, 2])
    });
    check_op(&dev, "mse", &[input(&[4, 3], 5), input(&[4, 3], 6)], &|t| {
        t[0].mse(&t[1])
    });

    // Logits of ±100: finite, and equal to the closed form.
    let logits = Tensor::from_vec(&dev, vec![100.0, -100.0, 0.0, -100.0, 100.0, 100.0], [2, 3]);
    let p = logits.softmax(1).to_vec_blocking().unwrap();
    let lp = logits.log_softmax(1).to_vec_blocking().unwrap();
    assert!(p.iter().chain(&lp).all(|v| v.is_finite()), "{p:?} {lp:?}");
    assert_close(
        "softmax ±100",
        &p,
        &[1.0, 0.0, 0.0, 0.0, 0.5, 0.5],
        1e-6,
        0.0,
    );
    let ln2 = std::f64::consts::LN_2;
    assert_close(
        "log_softmax ±100",
        &lp,
        &[0.0, -200.0, -100.0, -200.0 - ln2, -ln2, -ln2],
        1e-4,
        1e-6,
    );
    let ce = logits.cross_entropy(&[0, 1]);
    assert_close(
        "cross_entropy ±100",
        &[ce.item_blocking().unwrap()],
        &[ln2 / 2.0],
        1e-5,
        1e-5,
    );
    let g = webgrad::grad(&ce, &[&logits]);
    check_forward("cross_entropy gradient at ±100", &g[0]);
}

#[test]
#[should_panic(expected = "matmul: inner dimensions differ: [2, 3] @ [4, 5]")]
fn shape_errors_name_the_op_and_shapes() {
    let dev = webgrad::Device::reference_only();
    Tensor::zeros(&dev, [2, 3]).matmul(&Tensor::zeros(&dev, [4, 5]));
}

#[test]
fn every_matmul_kernel_family_is_correct() {
    // The tiled family is what real GPUs get; lavapipe runs it too (slowly).
    for family in [
        webgrad::KernelFamily::Tiled,
        webgrad::KernelFamily::RegisterBlocked,
    ] {
        let options = webgrad::DeviceOptions {
            kernel_family: family,
            ..common::test_options()
        };
        let dev = match webgrad::Device::with_options_blocking(options) {
            Ok(d) => d,
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("CI is set and no GPU adapter was found: {e}")
            }
            Err(_) => return,
        };
        assert_eq!(dev.kernel_family(), Some(family));
        for (m, k, n) in [(130, 72, 96), (64, 33, 50), (1, 5, 1), (70, 16, 130)] {
            let a = Tensor::from_vec(&dev, data(m * k, -1.0, 1.0, 0.0, 1), [m, k]);
            let b = Tensor::from_vec(&dev, data(k * n, -1.0, 1.0, 0.0, 2), [k, n]);
            let c = a.matmul(&b);
            assert_close(
                &format!("{family:?} {m}x{k}x{n}"),
                &c.to_vec_blocking().unwrap(),
                &reference::eval(&c).unwrap(),
                1e-4,
                1e-4,
            );
        }
        check_op(
            &dev,
            &format!("{family:?} batched"),
            &[input(&[2, 5, 4], 1), input(&[3, 1, 4, 6], 2)],
            &|t| t[0].matmul(&t[1]),
        );
        // Transposed operands are read in place (the register-blocked
        // family's matmul_tn, matmul_nt and matmul_strided kernels; the
        // tiled family copies them): every combination, aligned and not,
        // batched and broadcast, against the reference, and their gradients
        // (which are products with transposed operands again).
        for (m, k, n) in [
            (16, 8, 12),
            (130, 72, 96),
            (10, 7, 13),
            (8, 12, 10),
            (1, 4, 1),
        ] {
            for (ta, tb) in [(true, false), (false, true), (true, true)] {
                let a_dims = if ta { [k, m] } else { [m, k] };
                let b_dims = if tb { [n, k] } else { [k, n] };
                let a = Tensor::from_vec(&dev, data(m * k, -1.0, 1.0, 0.0, 3), a_dims);
                let b = Tensor::from_vec(&dev, data(k * n, -1.0, 1.0, 0.0, 4), b_dims);
                let a_op = if ta { a.t() } else { a.clone() };
                let b_op = if tb { b.t() } else { b.clone() };
                let c = a_op.matmul(&b_op);
                assert_close(
                    &format!("{family:?} {m}x{k}x{n} ta={ta} tb={tb}"),
                    &c.to_vec_blocking().unwrap(),
                    &reference::eval(&c).unwrap(),
                    1e-4,
                    1e-4,
                );
            }
        }
        check_op(
            &dev,
            &format!("{family:?} batched, transposed A"),
            &[input(&[2, 4, 8], 5), input(&[3, 1, 4, 6], 6)],
            &|t| t[0].t().matmul(&t[1]),
        );
        check_op(
            &dev,
            &format!("{family:?} batched, transposed B"),
            &[input(&[2, 5, 4], 7), input(&[6, 4], 8)],
            &|t| t[0].matmul(&t[1].t()),
        );
    }
}

#[test]
fn the_backward_pass_of_a_matmul_copies_no_transpose() {
    // ∂L/∂A = G·Bᵀ and ∂L/∂B = Aᵀ·G read their operands in place: forward,
    // backward and nothing else but the loss's reduction kernels.
    let dev = gpu!();
    let a = Tensor::from_vec(&dev, data(32 * 16, -1.0, 1.0, 0.0, 1), [32, 16]);
    let b = Tensor::from_vec(&dev, data(16 * 8, -1.0, 1.0, 0.0, 2), [16, 8]);
    webgrad::realize_all_blocking(&[&a, &b]).unwrap();
    let loss = a.matmul(&b).sum();
    let g = webgrad::grad(&loss, &[&a, &b]);
    let (_, profile) = dev.profile(|| webgrad::realize_all_blocking(&[&g[0], &g[1]]).unwrap());
    let names: Vec<&str> = profile.kernels.iter().map(|k| k.name.as_str()).collect();
    assert!(!names.iter().any(|n| n.starts_with("permute")), "{names:?}");
    assert!(names.contains(&"matmul(Aᵀ) [16, 8]"), "{names:?}");
    assert!(names.contains(&"matmul(Bᵀ) [32, 16]"), "{names:?}");
}

#[test]
fn a_batch_larger_than_one_dispatch() {
    let dev = gpu!();
    // 70,000 tiny matrices: more than 65,535 workgroups along z.
    let batch = 70_000;
    let a = Tensor::from_vec(&dev, data(batch * 2, -1.0, 1.0, 0.0, 1), [batch, 1, 2]);
    let b = Tensor::from_vec(&dev, data(batch * 2, -1.0, 1.0, 0.0, 2), [batch, 2, 1]);
    let c = a.matmul(&b);
    assert_close(
        "batched dot products",
        &c.to_vec_blocking().unwrap(),
        &reference::eval(&c).unwrap(),
        1e-6,
        1e-6,
    );
}

#[test]
fn matmul_gradients_of_a_shared_weight_over_many_rows() {
    // A linear layer on [batch, T, k]: the weight's gradient is one product
    // over the stacked rows, split into partial products when long.
    let dev = gpu!();
    check_op(
        &dev,
        "batched @ shared weight",
        &[input(&[4, 64, 3], 11), input(&[3, 5], 12)],
        &|t| t[0].matmul(&t[1]).tanh(),
    );
    check_op(
        &dev,
        "short rows",
        &[input(&[2, 3, 4], 13), input(&[4, 2], 14)],
        &|t| t[0].matmul(&t[1]),
    );
}

/// Every lowering a family offers for matmul (the register-blocked
/// kernels, a transposed operand read in place or copied, and `matmul_sg`
/// where the adapter has fixed-size subgroups, as lavapipe does), forced
/// one at a time, gives the reference's values and gradients at shapes
/// that are not multiples of any block: edge rows and columns, batches,
/// broadcast operands; and every variant gives the same bits as the
/// first (autotune's choice never changes a result).
#[test]
fn every_matmul_variant_matches_the_reference_at_edge_shapes() {
    let Some(dev) = common::private_device() else {
        return;
    };
    type Case = (&'static [usize], &'static [usize]);
    let cases: [Case; 8] = [
        (&[1, 4], &[4, 4]),
        (&[7, 8], &[8, 12]),
        (&[65, 12], &[12, 20]),
        (&[130, 132], &[132, 36]),
        (&[3, 16], &[16, 260]),
        (&[9, 5], &[5, 10]),
        (&[3, 9, 8], &[8, 16]),
        (&[2, 5, 12], &[2, 12, 8]),
    ];
    // Every variant sums each output in the same order: the same bits.
    let mut bits_of_variant_0: Vec<Vec<u32>> = Vec::new();
    for forced in [0usize, 1, 2, 3] {
        dev.force_variant(Some(forced));
        for (i, (sa, sb)) in cases.iter().enumerate() {
            let a = Tensor::from_vec(
                &dev,
                data(Shape::new(sa).numel(), -1.0, 1.0, 0.0, i as u64),
                *sa,
            );
            let b = Tensor::from_vec(&dev, data(Shape::new(sb).numel(), -1.0, 1.0, 0.0, 9), *sb);
            let c = a.matmul(&b);
            let w = Tensor::from_vec(&dev, data(c.numel(), -1.0, 1.0, 0.0, 5), c.shape().clone());
            let g = webgrad::grad(&(&c * &w).sum(), &[&a, &b]);
            let what = format!("{sa:?} @ {sb:?}, variant {forced}");
            let got = webgrad::read_all_blocking(&[&c, &g[0], &g[1]]).unwrap();
            for (j, v) in got.iter().enumerate() {
                let bits: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
                if forced == 0 {
                    bits_of_variant_0.push(bits);
                } else {
                    assert!(
                        bits == bits_of_variant_0[3 * i + j],
                        "{what}: output {j} differs in its bits from variant 0's"
                    );
                }
            }
            for (name, t, v) in [
                ("c", &c, &got[0]),
                ("dA", &g[0], &got[1]),
                ("dB", &g[1], &got[2]),
            ] {
                assert_close(
                    &format!("{name} of {what}"),
                    v,
                    &reference::eval(t).unwrap(),
                    1e-5,
                    1e-5,
                );
            }
        }
    }
    dev.force_variant(None);
}

/// Autotune: a transposed matmul has two lowerings (read in place, or
/// copied first); the first realize times both and writes the choice next
/// to the pipeline cache, and a new device reads it back. Either choice,
/// forced through that file, gives the reference's values.
#[test]
fn autotune_times_the_variants_once_and_both_are_correct() {
    if common::device().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("webgrad-tune-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = || webgrad::DeviceOptions {
        kernel_family: webgrad::KernelFamily::RegisterBlocked,
        pipeline_cache: webgrad::PipelineCacheDir::Dir(dir.clone()),
        ..Default::default()
    };
    let run = |dev: &webgrad::Device| {
        let a = Tensor::from_vec(dev, data(24 * 16, -1.0, 1.0, 0.0, 1), [24, 16]);
        let b = Tensor::from_vec(dev, data(24 * 12, -1.0, 1.0, 0.0, 2), [24, 12]);
        let c = a.t().matmul(&b);
        assert_close(
            "Aᵀ·B",
            &c.to_vec_blocking().unwrap(),
            &reference::eval(&c).unwrap(),
            1e-5,
            1e-5,
        );
    };
    let dev = webgrad::Device::with_options_blocking(options()).unwrap();
    // The first time the family's first guess, timed the second time.
    run(&dev);
    assert!(
        std::fs::read_dir(&dir).map_or(true, |d| d
            .filter_map(|e| e.ok())
            .all(|e| !e.file_name().to_string_lossy().starts_with("tuning_"))),
        "nothing timed at first sight"
    );
    run(&dev);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("tuning_")
        })
        .expect("a tuning file");
    let choices: std::collections::BTreeMap<String, usize> =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let key = "matmul(Aᵀ) [16, 12] <- [[24, 16], [24, 12]]";
    assert!(choices.contains_key(key), "{choices:?}");
    drop(dev);
    for forced in [0usize, 1] {
        let mut c = choices.clone();
        c.insert(key.into(), forced);
        std::fs::write(&file, serde_json::to_vec(&c).unwrap()).unwrap();
        let dev = webgrad::Device::with_options_blocking(options()).unwrap();
        let before = dev.counters().submits;
        run(&dev);
        // No timing submits: the choice came from the file.
        assert_eq!(dev.counters().submits - before, 1, "forced {forced}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// flip against the f64 reference with its gradients, twice is the
/// identity to the bit, and a bad axis is named.
#[test]
fn flip_reverses_an_axis() {
    let dev = gpu!();
    let x = input(&[3, 4, 5], 21);
    for axis in 0..3 {
        check_op(
            &dev,
            &format!("flip {axis}"),
            std::slice::from_ref(&x),
            &|t| t[0].flip(axis),
        );
    }
    let t = Tensor::from_vec(&dev, x.0.clone(), x.1.clone());
    assert_eq!(t.flip(1).flip(1).to_vec_blocking().unwrap(), x.0);
    let row = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    assert_eq!(row.flip(0).to_vec_blocking().unwrap(), vec![3.0, 2.0, 1.0]);
    let msg =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(t.flip(3)))).unwrap_err();
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("flip"), "{msg}");
}
