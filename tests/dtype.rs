//! 16-bit tensors: the conversions bit for bit against the `half` crate
//! (an independent implementation of IEEE 754 rounding), every f16 and
//! bf16 value, the ties between them and the edges of their ranges; ops on
//! 16-bit tensors against the f64 reference, which rounds where the GPU
//! stores; the promotion rule; f32 accumulation in long sums.

mod common;

use webgrad::{DType, Tensor, grad, read_all_blocking, reference};

/// The values whose rounding the tests check: every value of the format,
/// the midpoints between neighbours (the ties), values just off the
/// midpoints, the edges (largest finite, overflow, subnormals), and
/// pseudo-random f32 bit patterns.
fn probes(dtype: DType) -> Vec<f32> {
    let value = |bits: u16| match dtype {
        DType::F16 => half::f16::from_bits(bits).to_f32(),
        _ => half::bf16::from_bits(bits).to_f32(),
    };
    let mut v: Vec<f32> = (0..=u16::MAX).map(value).collect();
    for bits in 0..u16::MAX {
        let (a, b) = (value(bits), value(bits + 1));
        if a.is_finite() && b.is_finite() && (a < b) == (bits < 0x8000) {
            let mid = ((a as f64 + b as f64) / 2.0) as f32;
            v.extend([mid, f32::from_bits(mid.to_bits() + 1)]);
            if mid.to_bits() & 0x7fff_ffff > 0 {
                v.push(f32::from_bits(mid.to_bits() - 1));
            }
        }
    }
    v.extend([
        65504.0,
        65519.996,
        65520.0,
        65536.0,
        1e9,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-45,
        -0.0,
        2f32.powi(-25),
        2f32.powi(-25) * 1.000_001,
        2f32.powi(-24) * 1.5,
    ]);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..100_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.push(f32::from_bits(state as u32));
    }
    v
}

fn same_value(got: f32, want: f32) -> bool {
    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())
}

#[test]
fn conversions_round_to_nearest_even_bit_for_bit() {
    let dev = gpu!();
    for dtype in [DType::F16, DType::BF16] {
        let x = probes(dtype);
        let n = x.len();
        let t = Tensor::from_vec(&dev, x.clone(), [n]);
        let stored = t.to_dtype(dtype);
        assert_eq!(stored.dtype(), dtype);
        // Read as stored (widened on the host) and widened on the GPU.
        let widened = stored.to_dtype(DType::F32);
        assert_eq!(widened.dtype(), DType::F32);
        let got = read_all_blocking(&[&stored, &widened]).unwrap();
        let mut wrong = 0;
        for (i, &v) in x.iter().enumerate() {
            let want = dtype.round(v);
            for g in [got[0][i], got[1][i]] {
                if !same_value(g, want) {
                    wrong += 1;
                    if wrong < 10 {
                        eprintln!(
                            "{dtype}: {v:e} ({:#010x}) gave {g:e}, want {want:e}",
                            v.to_bits()
                        );
                    }
                }
            }
        }
        assert_eq!(wrong, 0, "{dtype}: {wrong} of {n} values rounded wrongly");
    }
}

#[test]
fn overflow_becomes_infinity_and_odd_lengths_pack() {
    let dev = gpu!();
    // 60000 fits f16; twice it does not, so the stored product is +inf,
    // as IEEE says, while bf16 keeps f32's range.
    let x = Tensor::from_vec(&dev, vec![60000.0, -60000.0, 3.0], [3]);
    let h = x.to_dtype(DType::F16);
    let b = x.to_dtype(DType::BF16);
    let got = read_all_blocking(&[&(&h * 2.0), &(&b * 2.0)]).unwrap();
    assert_eq!(got[0], [f32::INFINITY, f32::NEG_INFINITY, 6.0]);
    assert_eq!(got[1], [119808.0, -119808.0, 6.0]);
}

#[test]
fn ops_on_16_bit_tensors_match_the_reference_that_rounds_where_they_store() {
    let dev = gpu!();
    for dtype in [DType::F16, DType::BF16] {
        let a = Tensor::from_vec(&dev, common::data(24, -2.0, 2.0, 0.0, 1), [4, 6]).to_dtype(dtype);
        let w = Tensor::from_vec(&dev, common::data(18, -1.0, 1.0, 0.0, 2), [6, 3]).to_dtype(dtype);
        let bias = Tensor::from_vec(&dev, common::data(3, -1.0, 1.0, 0.0, 3), [3]).to_dtype(dtype);
        let h = (&a.matmul(&w) + &bias).tanh();
        let loss = (&h * &h).sum();
        assert_eq!((h.dtype(), loss.dtype()), (dtype, dtype));
        let grads = grad(&loss, &[&a, &w, &bias]);
        for g in &grads {
            assert_eq!(g.dtype(), dtype, "a gradient is in its input's dtype");
        }
        let mut all = vec![&h, &loss];
        all.extend(grads.iter());
        let got = read_all_blocking(&all).unwrap();
        for (t, values) in all.iter().zip(&got) {
            let want = reference::eval(t).unwrap();
            for (&g, &r) in values.iter().zip(&want) {
                // Each stored value is within half an ulp of the f32 value
                // the reference rounds; the f32 values the two round may
                // differ by the f32 computation's error, which can move a
                // value across a rounding boundary: one ulp of the dtype.
                let tol = dtype.epsilon() * r.abs().max(1.0) * 1.01;
                assert!(
                    (g as f64 - r).abs() <= tol,
                    "{dtype} {:?}: {g} vs reference {r}",
                    t
                );
            }
            // Values are representable in the dtype.
            assert!(values.iter().all(|&v| same_value(dtype.round(v), v)));
        }
    }
}

#[test]
fn mixing_dtypes_promotes_like_pytorch() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.5, 2.0], [2]);
    let h = x.to_dtype(DType::F16);
    let b = x.to_dtype(DType::BF16);
    assert_eq!((&h + &x).dtype(), DType::F32);
    assert_eq!((&h + &b).dtype(), DType::F32);
    assert_eq!((&h + &h).dtype(), DType::F16);
    // A 0-dimensional f32 tensor does not promote one with dimensions.
    let s = Tensor::from_vec(&dev, vec![0.1], []);
    let scaled = &h * &s;
    assert_eq!(scaled.dtype(), DType::F16);
    // 1.5·0.1 and 2·0.1 computed in f32, stored as f16.
    assert_eq!(
        scaled.to_vec_blocking().unwrap(),
        [DType::F16.round(1.5 * 0.1), DType::F16.round(2.0 * 0.1)]
    );
    // Indices are not floats: argmax of a 16-bit tensor is an index.
    assert_eq!(h.argmax(0).to_vec_blocking().unwrap(), [1]);
    // Variables are f32 master weights, converted exactly.
    let v = h.to_variable().unwrap();
    assert_eq!(v.dtype(), DType::F32);
    assert_eq!(v.to_vec_blocking().unwrap(), [1.5, 2.0]);
    assert_eq!(h.ones_like().dtype(), DType::F16);
}

#[test]
fn long_sums_of_16_bit_values_accumulate_in_f32() {
    let dev = gpu!();
    // 0.1 in f16 is 0.0999755859375; 4096 of them sum to 409.5 (an f16
    // value). Accumulated in f16 the sum would stop growing at 256, where
    // f16's spacing (0.25) exceeds twice the addend.
    let x = Tensor::full(&dev, [4096], 0.1).to_dtype(DType::F16);
    let s = x.sum();
    assert_eq!(s.dtype(), DType::F16);
    let want = DType::F16.round((4096.0 * DType::F16.round(0.1) as f64) as f32);
    assert_eq!(want, 409.5);
    assert_eq!(s.item_blocking().unwrap(), want);
    assert_eq!(reference::eval(&s).unwrap(), [want as f64]);
}

#[test]
fn sixteen_bit_tensors_save_in_their_dtype_and_load_into_f32_variables() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![0.1, -3.0, 65504.0, 1e-3], [2, 2]);
    let h = x.to_dtype(DType::F16);
    let b = x.to_dtype(DType::BF16);
    let bytes = webgrad::io::to_bytes_blocking(&[("h", &h), ("b", &b), ("x", &x)]).unwrap();
    // 2 bytes per 16-bit value, 4 per f32, plus the header.
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(bytes.len() - 8 - header, 4 * 2 + 4 * 2 + 4 * 4);
    let text = std::str::from_utf8(&bytes[8..8 + header]).unwrap();
    assert!(
        text.contains("\"F16\"") && text.contains("\"BF16\""),
        "{text}"
    );
    let vh = Tensor::zeros(&dev, [2, 2]).to_variable().unwrap();
    let vb = Tensor::zeros(&dev, [2, 2]).to_variable().unwrap();
    let vx = Tensor::zeros(&dev, [2, 2]).to_variable().unwrap();
    webgrad::io::from_bytes(&bytes, &[("h", &vh), ("b", &vb), ("x", &vx)]).unwrap();
    let got = read_all_blocking(&[&vh, &vb, &vx]).unwrap();
    let want = |d: DType| -> Vec<f32> { [0.1, -3.0, 65504.0, 1e-3].map(|v| d.round(v)).to_vec() };
    assert_eq!(got, [want(DType::F16), want(DType::BF16), want(DType::F32)]);
}

#[test]
fn a_16_bit_tensor_holds_two_values_per_word() {
    // A device of its own: other tests' buffers would count.
    let Some(dev) = common::private_device() else {
        return;
    };
    let n = 1 << 20;
    let x = Tensor::full(&dev, [n], 0.5).sin();
    x.realize_blocking().unwrap();
    let before = dev.memory_stats().live_bytes;
    let h = x.to_dtype(DType::F16);
    h.realize_blocking().unwrap();
    // The f32 value holds 4 MiB; its f16 copy adds 2 MiB (size classes
    // are powers of two here, so the sizes are exact).
    assert_eq!(dev.memory_stats().live_bytes - before, 2 * n as u64);
    assert_eq!(
        h.to_vec_blocking().unwrap()[7],
        DType::F16.round(0.5f32.sin())
    );
}

#[test]
fn an_op_family_stores_its_16_bit_result_itself() {
    // A device of its own: other tests' buffers would count.
    let Some(dev) = common::private_device() else {
        return;
    };
    let n = 256;
    for dtype in [DType::F16, DType::BF16] {
        let a = Tensor::from_vec(&dev, common::data(n * n, -1.0, 1.0, 0.0, 7), [n, n]);
        let b = Tensor::from_vec(&dev, common::data(n * n, -1.0, 1.0, 0.0, 8), [n, n]);
        let (a, b) = (a.to_dtype(dtype), b.to_dtype(dtype));
        webgrad::realize_all_blocking(&[&a, &b]).unwrap();
        dev.reset_peak_memory();
        let before = dev.memory_stats().live_bytes;
        let c = a.matmul(&b);
        assert_eq!(c.dtype(), dtype);
        c.realize_blocking().unwrap();
        // The product's kernel stored it in 16 bits: no f32 copy of it
        // was ever allocated (the size classes are exact here).
        let stats = dev.memory_stats();
        assert_eq!(
            stats.peak_live_bytes - before,
            2 * (n * n) as u64,
            "{dtype}"
        );
        // Rounded once, where stored: the f32 product (the same kernel,
        // reading the same values) rounded on the CPU, bit for bit.
        let wide = a.to_dtype(DType::F32).matmul(&b.to_dtype(DType::F32));
        let rounded: Vec<f32> = wide
            .to_vec_blocking()
            .unwrap()
            .iter()
            .map(|&v| dtype.round(v))
            .collect();
        assert_eq!(c.to_vec_blocking().unwrap(), rounded, "{dtype}");
        // And the reference, which sums in f64: the f32 sums of 256 terms
        // differ from it by about 1e-6, a step of a 16-bit value or less.
        let want = reference::eval(&c).unwrap();
        for (got, want) in rounded.iter().zip(&want) {
            let step = dtype.epsilon() * want.abs() + 1e-5;
            assert!(
                (*got as f64 - want).abs() <= step,
                "{dtype}: {got} vs {want}"
            );
        }
    }
    // f16's largest finite value is 65504: a product beyond it is stored
    // as infinity (IEEE's overflow), one below it as itself.
    let a = Tensor::from_vec(&dev, [256.0, 256.0, -256.0, -256.0], [2, 2]).to_dtype(DType::F16);
    let b = Tensor::from_vec(&dev, [256.0, 20.0, 20.0, 1.0], [2, 2]).to_dtype(DType::F16);
    let c = a.matmul(&b).to_vec_blocking().unwrap();
    assert_eq!(c, [f32::INFINITY, 5376.0, f32::NEG_INFINITY, -5376.0]);
}

#[test]
fn a_product_carried_over_dispatches_rounds_once() {
    let dev = gpu!();
    // K beyond one dispatch's steps along K: the sum is carried from one
    // dispatch to the next in f32. After the first, it is 1 + 2⁻¹⁴, which
    // no 16-bit format holds (rounded, 1); the second adds −1, so the
    // product is 2⁻¹⁴ (carried in 16 bits it would be 0).
    let k = 20_000;
    let (mut a, mut b) = (vec![0.0f32; 2 * k], vec![0.0f32; 2 * k]);
    for row in 0..2 {
        a[row * k] = 1.0;
        a[row * k + 1] = 2f32.powi(-7);
        a[row * k + 18_000] = 1.0;
    }
    for col in 0..2 {
        b[col] = 1.0;
        b[2 + col] = 2f32.powi(-7);
        b[2 * 18_000 + col] = -1.0;
    }
    for dtype in [DType::F16, DType::BF16] {
        let a = Tensor::from_vec(&dev, a.clone(), [2, k]).to_dtype(dtype);
        let b = Tensor::from_vec(&dev, b.clone(), [k, 2]).to_dtype(dtype);
        let c = a.matmul(&b);
        assert_eq!(c.to_vec_blocking().unwrap(), [2f32.powi(-14); 4], "{dtype}");
        assert_eq!(reference::eval(&c).unwrap(), [2f64.powi(-14); 4]);
    }
}

/// A forward and backward pass of an MLP whose activations are stored in
/// `dtype`: the peak memory the planner predicts, and the gradients.
fn mlp_step(dev: &webgrad::Device, dtype: DType) -> (u64, Vec<Vec<f32>>) {
    let dev = dev.clone();
    let (batch, width, layers) = (2048, 128, 6);
    let x = Tensor::from_vec(
        &dev,
        common::data(batch * width, -1.0, 1.0, 0.0, 1),
        [batch, width],
    );
    let ws: Vec<Tensor> = (0..layers)
        .map(|k| {
            let w = common::data(width * width, -0.1, 0.1, 0.0, 10 + k as u64);
            Tensor::from_vec(&dev, w, [width, width])
                .to_variable()
                .unwrap()
        })
        .collect();
    let mut h = x.to_dtype(dtype);
    for w in &ws {
        h = h.matmul(&w.to_dtype(dtype)).tanh();
    }
    let loss = h.square().mean();
    let refs: Vec<&Tensor> = ws.iter().collect();
    let grads = grad(&loss, &refs);
    let grad_refs: Vec<&Tensor> = grads.iter().collect();
    let peak = webgrad::predict_memory(&grad_refs).unwrap().peak_bytes;
    (peak, read_all_blocking(&grad_refs).unwrap())
}

#[test]
fn a_backward_pass_keeps_16_bit_activations() {
    // Fresh devices of their own: other tests' buffers would count.
    let Some(dev) = common::private_device() else {
        return;
    };
    let (peak32, g32) = mlp_step(&dev, DType::F32);
    for dtype in [DType::F16, DType::BF16] {
        let dev = common::private_device().unwrap();
        let (peak16, g16) = mlp_step(&dev, dtype);
        eprintln!(
            "{dtype}: peak {peak16} bytes, f32 {peak32} ({:.2})",
            peak16 as f64 / peak32 as f64
        );
        // The gradients (f32: the weights are f32 variables) agree with
        // f32's to the dtype's precision.
        for (a, b) in g16.iter().flatten().zip(g32.iter().flatten()) {
            assert!(
                (a - b).abs() <= 0.05 * b.abs() + 50.0 * dtype.epsilon() as f32 * 1e-3,
                "{dtype}: {a} vs {b}"
            );
        }
        assert!(peak16 < peak32, "{dtype}: {peak16} vs {peak32}");
    }
}

#[test]
fn autocast_stores_results_in_16_bits_and_keeps_master_weights_f32() {
    use webgrad::autocast;
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, common::data(64 * 16, -1.0, 1.0, 0.0, 4), [64, 16]);
    let w1 = Tensor::from_vec(&dev, common::data(16 * 32, -0.3, 0.3, 0.0, 5), [16, 32])
        .to_variable()
        .unwrap();
    let w2 = Tensor::from_vec(&dev, common::data(32 * 4, -0.3, 0.3, 0.0, 6), [32, 4])
        .to_variable()
        .unwrap();
    let forward = || x.matmul(&w1).gelu().matmul(&w2);
    let loss_of = |out: &Tensor| out.to_dtype(DType::F32).square().mean();
    let loss32 = loss_of(&forward());
    let g32 = grad(&loss32, &[&w1, &w2]);
    for dtype in [DType::BF16, DType::F16] {
        let out = autocast(dtype, || {
            let h = x.matmul(&w1);
            assert_eq!(h.dtype(), dtype);
            // Reductions stay f32 inside the scope.
            assert_eq!(h.sum().dtype(), DType::F32);
            forward()
        });
        assert_eq!(out.dtype(), dtype);
        // Outside the scope ops are f32 again.
        assert_eq!(x.matmul(&w1).dtype(), DType::F32);
        let loss = loss_of(&out);
        let g = grad(&loss, &[&w1, &w2]);
        assert!(g.iter().all(|g| g.dtype() == DType::F32));
        let mut all: Vec<&Tensor> = vec![&loss, &loss32];
        all.extend(g.iter().chain(&g32));
        let got = read_all_blocking(&all).unwrap();
        // Against the reference of the same graph (rounded where stored).
        for (t, v) in all.iter().zip(&got).take(4) {
            let want = reference::eval(t).unwrap();
            let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
            for (&a, &b) in v.iter().zip(&want) {
                assert!(
                    (a as f64 - b).abs() <= 8.0 * dtype.epsilon() * scale,
                    "{dtype}: {a} vs {b}"
                );
            }
        }
        // And near the f32 computation, to the dtype's precision.
        let rel = (got[0][0] - got[1][0]).abs() / got[1][0];
        assert!(
            (rel as f64) < 20.0 * dtype.epsilon(),
            "{dtype}: loss {} vs {}",
            got[0][0],
            got[1][0]
        );
    }
    // A panic inside the scope ends it.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        autocast(DType::F16, || panic!("inside"))
    }));
    assert!(caught.is_err());
    assert_eq!(x.matmul(&w1).dtype(), DType::F32);
}

#[test]
fn forward_mode_and_empty_tensors_in_16_bits() {
    let dev = gpu!();
    for dtype in [DType::F16, DType::BF16] {
        // jvp through a conversion and an op on 16-bit values: the
        // tangent is in the dtype and agrees with ⟨vjp⟩ and the reference.
        let x = Tensor::from_vec(&dev, common::data(6, -1.0, 1.0, 0.0, 8), [6]);
        let v = Tensor::from_vec(&dev, common::data(6, -1.0, 1.0, 0.0, 9), [6]);
        let f = move |t: &[Tensor]| t[0].to_dtype(dtype).sin();
        let (y, dy) = webgrad::jvp(f, &[&x], &[&v]);
        assert_eq!((y.dtype(), dy.dtype()), (dtype, dtype));
        let g = grad(
            &f(std::slice::from_ref(&x)).to_dtype(DType::F32).sum(),
            &[&x],
        )
        .remove(0);
        assert_eq!(g.dtype(), DType::F32);
        let got = read_all_blocking(&[&dy, &g]).unwrap();
        let want = reference::eval(&dy).unwrap();
        let vs = v.to_vec_blocking().unwrap();
        for i in 0..6 {
            let tol = 4.0 * dtype.epsilon();
            assert!(
                (got[0][i] as f64 - want[i]).abs() <= tol,
                "{dtype}: {} vs {}",
                got[0][i],
                want[i]
            );
            // Elementwise: the tangent is the gradient times the direction.
            assert!(
                (got[0][i] - got[1][i] * vs[i]).abs() as f64 <= tol * 2.0,
                "{dtype} element {i}"
            );
        }
        // Empty tensors convert to empty tensors, both ways.
        let empty = Tensor::from_vec(&dev, Vec::<f32>::new(), [0, 3]).to_dtype(dtype);
        let back = empty.to_dtype(DType::F32);
        assert_eq!(
            read_all_blocking(&[&empty, &back]).unwrap(),
            [Vec::<f32>::new(), Vec::new()]
        );
    }
}

#[test]
fn a_16_bit_elementwise_chain_is_one_kernel_that_rounds_where_it_would_store() {
    let dev = gpu!();
    for dtype in [DType::F16, DType::BF16] {
        let x =
            Tensor::from_vec(&dev, common::data(1001, -3.0, 3.0, 0.0, 7), [1001]).to_dtype(dtype);
        let bias = Tensor::from_vec(&dev, common::data(1, -1.0, 1.0, 0.0, 8), [1]).to_dtype(dtype);
        x.realize_blocking().unwrap();
        bias.realize_blocking().unwrap();
        let steps: [&dyn Fn(&Tensor) -> Tensor; 4] =
            [&|t| t * 1.7, &|t| t.sin(), &|t| &(t * &x) + &bias, &|t| {
                t.tanh()
            }];
        // Each op's result realized on its own: stored, hence rounded.
        let mut one_by_one = x.clone();
        for step in steps {
            one_by_one = step(&one_by_one);
            one_by_one.realize_blocking().unwrap();
        }
        // The same chain fused: loads and stores 16-bit values itself, in
        // one kernel, and rounds each intermediate in registers.
        let fused = steps.iter().fold(x.clone(), |t, step| step(&t));
        assert_eq!(fused.dtype(), dtype);
        let (got, profile) = dev.profile(|| fused.to_vec_blocking().unwrap());
        let names: Vec<&str> = profile.kernels.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names.len(), 1, "{dtype}: {names:?}");
        let want = one_by_one.to_vec_blocking().unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(same_value(*g, *w), "{dtype} element {i}: {g} vs {w}");
        }
        // And the reference, which rounds at the same four places.
        let reference = reference::eval(&fused).unwrap();
        for (g, r) in got.iter().zip(&reference) {
            let tol = dtype.epsilon() * r.abs().max(1.0) * 1.01;
            assert!((*g as f64 - r).abs() <= tol, "{dtype}: {g} vs {r}");
        }
    }
}
