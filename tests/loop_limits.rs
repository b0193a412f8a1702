//! Kernels whose loops grow with a size, at sizes just below and above
//! 65,535 and 131,071 iterations: lavapipe leaves every loop of an
//! invocation after 65,535 iterations in all, silently, so each such loop
//! is split (over invocations, passes or dispatches). Every value is
//! checked against a closed form or the f64 reference, on the
//! register-blocked kernels (each matmul variant) and the tiled ones.

mod common;

use common::{assert_close, data, test_options};
use webgrad::{Device, DeviceOptions, IndexTensor, KernelFamily, Tensor, grad, reference};

/// Sizes around the limit and twice it.
const AROUND: [usize; 4] = [65_535, 65_537, 131_071, 131_073];

fn tiled() -> Option<Device> {
    common::device_with(DeviceOptions {
        kernel_family: KernelFamily::Tiled,
        ..test_options()
    })
}

#[test]
fn cumsum_of_a_long_axis_counts_every_step_both_ways() {
    let dev = gpu!();
    for n in AROUND {
        let x = Tensor::ones(&dev, [n]);
        let y = x.cumsum(0);
        // Its adjoint is the reversed cumsum: ∂(Σ cumsum x)/∂x_j = n − j.
        let g = grad(&y.sum(), &[&x]);
        let got = webgrad::read_all_blocking(&[&y, &g[0]]).unwrap();
        for j in [0, 65_533, 65_534, 65_535, 65_536, n - 1] {
            if j < n {
                assert_eq!(got[0][j], (j + 1) as f32, "cumsum of {n} ones at {j}");
                assert_eq!(
                    got[1][j],
                    (n - j) as f32,
                    "reverse cumsum of {n} ones at {j}"
                );
            }
        }
    }
    // Along the middle axis of a 3-D tensor, against the reference.
    let x = Tensor::from_vec(
        &dev,
        data(2 * 70_000 * 3, -1.0, 1.0, 0.0, 3),
        [2, 70_000, 3],
    );
    let y = x.cumsum(1);
    assert_close(
        "cumsum [2, 70000, 3]",
        &y.to_vec_blocking().unwrap(),
        &reference::eval(&y).unwrap(),
        1e-2,
        1e-4,
    );
}

#[test]
fn argmax_and_argmin_find_an_extreme_past_the_loop_limit() {
    let dev = gpu!();
    for n in [65_535, 65_537, 100_000, 131_073] {
        let mut v = data(n, -1.0, 1.0, 0.0, n as u64);
        v[n - 2] = 5.0;
        v[n - 1] = -5.0;
        let x = Tensor::from_vec(&dev, v, [n]);
        assert_eq!(
            x.argmax(0).to_vec_blocking().unwrap(),
            [(n - 2) as u32],
            "argmax of {n}"
        );
        assert_eq!(
            x.argmin(0).to_vec_blocking().unwrap(),
            [(n - 1) as u32],
            "argmin of {n}"
        );
    }
    // The first NaN wins, wherever it is.
    let mut v = vec![0.0f32; 131_073];
    v[100_000] = f32::NAN;
    v[120_000] = f32::NAN;
    let x = Tensor::from_vec(&dev, v, [131_073]);
    assert_eq!(x.argmax(0).to_vec_blocking().unwrap(), [100_000]);
    // Columns of a matrix: the extreme of each along a long axis 0.
    let n = 70_000;
    let mut v = data(n * 2, -1.0, 1.0, 0.0, 11);
    v[2 * 69_999] = 3.0;
    v[2 * 65_536 + 1] = 3.0;
    let x = Tensor::from_vec(&dev, v, [n, 2]);
    assert_eq!(x.argmax(0).to_vec_blocking().unwrap(), [69_999, 65_536]);
}

/// Sums and maxima over a long axis, of one row and of many (a reduction
/// of many rows once folded each row in one invocation), against closed
/// forms. (With WebGPU's default limits a buffer holds at most 2^25
/// values, so the many rows are 200.)
#[test]
fn reductions_over_long_rows_fold_every_element() {
    let dev = gpu!();
    for k in AROUND {
        for rows in [1, 3, 200] {
            let x = Tensor::ones(&dev, [rows, k]);
            let s = x.sum_axes(&[1]).to_vec_blocking().unwrap();
            assert!(
                s.iter().all(|&v| v == k as f32),
                "sum of {rows}×{k} ones: {:?}",
                &s[..rows.min(4)]
            );
        }
        let v = data(k, -1.0, 1.0, 0.0, 5);
        let want = v.iter().copied().fold(f32::MIN, f32::max);
        let x = Tensor::from_vec(&dev, v, [1, k]).broadcast_to([3, k]);
        let got = x.max_axes(&[1]).to_vec_blocking().unwrap();
        assert_eq!(got, [want; 3], "max over {k}");
    }
}

/// `[1, n] @ [n, 1]` of ones is n (exact in f32), on every matmul variant
/// and the tiled family; and a weight gradient summed over many rows.
#[test]
fn products_with_a_long_inner_dimension_sum_every_term() {
    let (Some(blocked), Some(tiled)) = (common::private_device(), tiled()) else {
        return;
    };
    let check = |dev: &Device, what: &str| {
        for n in AROUND.into_iter().chain([300_000]) {
            let a = Tensor::ones(dev, [1, n]);
            let b = Tensor::ones(dev, [n, 1]);
            assert_eq!(
                a.matmul(&b).to_vec_blocking().unwrap(),
                [n as f32],
                "{what}: K = {n}"
            );
            // Multiples of 4 for the vec4 kernels: [2, n] @ [n, 4].
            let n4 = n / 4 * 4;
            let a = Tensor::from_vec(dev, data(2 * n4, -1.0, 1.0, 0.0, 1), [2, n4]);
            let b = Tensor::from_vec(dev, data(n4 * 4, -1.0, 1.0, 0.0, 2), [n4, 4]);
            let c = a.matmul(&b);
            assert_close(
                &format!("{what}: [2, {n4}] @ [{n4}, 4]"),
                &c.to_vec_blocking().unwrap(),
                &reference::eval(&c).unwrap(),
                1e-2,
                1e-4,
            );
        }
        // xᵀ·g over 100,000 rows of ones: the weight gradient of a linear
        // layer over a batch of 100,000 (read transposed, in place or not).
        let x = Tensor::ones(dev, [100_000, 4]);
        let w = Tensor::ones(dev, [4, 4]);
        let g = grad(&x.matmul(&w).sum(), &[&w]);
        let got = g[0].to_vec_blocking().unwrap();
        assert!(
            got.iter().all(|&v| v == 100_000.0),
            "{what}: xᵀ·g = {got:?}"
        );
    };
    for variant in 0..4 {
        blocked.force_variant(Some(variant));
        check(&blocked, &format!("variant {variant}"));
    }
    check(&tiled, "tiled");
}

/// The gradient of `index_select` sums g over the positions of each index:
/// 70,000 alternating indices into a 2-row table give 35,000 each, from
/// host indices (segmented) and from GPU-computed ones (an argmax).
#[test]
fn scatter_adds_over_long_segments_sum_every_term() {
    let dev = gpu!();
    let table = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0, 4.0], [2, 2]);
    for k in [65_536, 70_000, 131_072] {
        let host: Vec<u32> = (0..k as u32).map(|i| i % 2).collect();
        let idx = IndexTensor::from_vec(&dev, host, [k]);
        let g = grad(&table.index_select(0, &idx).sum(), &[&table]);
        let half = (k / 2) as f32;
        assert_eq!(
            g[0].to_vec_blocking().unwrap(),
            [half; 4],
            "host indices, {k}"
        );
        // The same indices computed on the GPU: argmax of rows [i%2 == 0, i%2 == 1].
        let onehot: Vec<f32> = (0..k)
            .flat_map(|i| [(i % 2 == 0) as u8 as f32, (i % 2) as f32])
            .collect();
        let idx = Tensor::from_vec(&dev, onehot, [k, 2]).argmax(1);
        let g = grad(&table.index_select(0, &idx).sum(), &[&table]);
        assert_eq!(
            g[0].to_vec_blocking().unwrap(),
            [half; 4],
            "GPU indices, {k}"
        );
    }
}

/// Max pooling with one 512×512 window (262,144 positions) and its
/// gradient, which lands on the maximum's pixel only; on both families.
#[test]
fn max_pooling_over_a_huge_window_finds_the_maximum_and_its_pixel() {
    let (Some(blocked), Some(tiled)) = (common::private_device(), tiled()) else {
        return;
    };
    for dev in [&blocked, &tiled] {
        let side = 512;
        let mut v = data(side * side, -1.0, 0.5, 0.0, 9);
        let at = 300 * side + 400;
        v[at] = 1.0;
        let x = Tensor::from_vec(dev, v, [1, 1, side, side]);
        let y = x.max_pool2d(webgrad::Pool2dOptions {
            kernel: [side, side],
            stride: [1, 1],
            padding: [0, 0],
        });
        let g = grad(&y.sum(), &[&x]);
        let got = webgrad::read_all_blocking(&[&y, &g[0]]).unwrap();
        assert_eq!(got[0], [1.0]);
        let hot: Vec<usize> = (0..side * side).filter(|&i| got[1][i] != 0.0).collect();
        assert_eq!(hot, [at], "the gradient's pixels");
        assert_eq!(got[1][at], 1.0);
    }
    // Overlapping windows of 300×300 (90,000 positions) on a 320×320
    // image, stride 4, against the reference: values and gradient.
    let x = Tensor::from_vec(
        &blocked,
        data(320 * 320, -1.0, 1.0, 0.0, 4),
        [1, 1, 320, 320],
    );
    let y = x.max_pool2d(webgrad::Pool2dOptions {
        kernel: [300, 300],
        stride: [4, 4],
        padding: [0, 0],
    });
    let w = Tensor::from_vec(
        &blocked,
        data(y.numel(), -1.0, 1.0, 0.0, 6),
        y.shape().clone(),
    );
    let g = grad(&(&y * &w).sum(), &[&x]);
    assert_close(
        "pool 300",
        &y.to_vec_blocking().unwrap(),
        &reference::eval(&y).unwrap(),
        0.0,
        0.0,
    );
    assert_close(
        "pool 300 gradient",
        &g[0].to_vec_blocking().unwrap(),
        &reference::eval(&g[0]).unwrap(),
        1e-4,
        1e-5,
    );
}

/// Convolutions whose taps per output exceed the limit: 8,192 input
/// channels of 3×3 (73,728 taps), 8,192 output channels for the input
/// gradient, and a weight gradient summed over 70,000 columns; on both
/// families, values and gradients against the reference.
#[test]
fn convolutions_with_many_taps_sum_every_one() {
    let (Some(blocked), Some(tiled)) = (common::private_device(), tiled()) else {
        return;
    };
    for (dev, what) in [(&blocked, "register-blocked"), (&tiled, "tiled")] {
        let x = Tensor::ones(dev, [1, 8192, 3, 4]);
        let w = Tensor::ones(dev, [1, 8192, 3, 3]);
        let y = x.conv2d(&w, None, Default::default());
        assert_eq!(
            y.to_vec_blocking().unwrap(),
            [73_728.0, 73_728.0],
            "{what}: forward"
        );
        // 8,192 output channels: ∂(Σy)/∂x sums over all of them.
        let x = Tensor::from_vec(dev, data(12, -1.0, 1.0, 0.0, 1), [1, 1, 3, 4]);
        let w = Tensor::from_vec(dev, data(8192 * 9, -1.0, 1.0, 0.0, 2), [8192, 1, 3, 3]);
        let g = grad(&x.conv2d(&w, None, Default::default()).sum(), &[&x, &w]);
        for (name, t) in [("dx", &g[0]), ("dw", &g[1])] {
            assert_close(
                &format!("{what}: {name}, 8192 outputs"),
                &t.to_vec_blocking().unwrap(),
                &reference::eval(t).unwrap(),
                1e-2,
                1e-4,
            );
        }
        // A row of 70,000 columns: the weight gradient sums over all.
        let x = Tensor::from_vec(dev, data(70_000, -1.0, 1.0, 0.0, 3), [1, 1, 1, 70_000]);
        let w = Tensor::from_vec(dev, data(3, -1.0, 1.0, 0.0, 4), [1, 1, 1, 3]);
        let y = x.conv2d(&w, None, Default::default());
        let g = grad(&y.sum(), &[&w]);
        assert_close(
            &format!("{what}: dw over 70,000 columns"),
            &g[0].to_vec_blocking().unwrap(),
            &reference::eval(&g[0]).unwrap(),
            1e-2,
            1e-4,
        );
    }
}

/// Attention over long key rows: fused up to 32,768 keys (each invocation
/// loops over the keys its query sees), composed beyond; values and all
/// three gradients against the reference either way, on both kernel
/// families, with and without the causal mask.
#[test]
fn attention_over_keys_around_the_fused_kernels_limit() {
    use webgrad::AttentionMask;
    let devices = [common::device(), tiled()];
    for dev in devices.iter().flatten() {
        for s in [32_768, 32_769, 65_537] {
            let (t, d) = (2, 4);
            let q = Tensor::from_vec(dev, data(t * d, -1.0, 1.0, 0.0, 1), [1, t, d]);
            let k = Tensor::from_vec(dev, data(s * d, -1.0, 1.0, 0.0, 2), [1, s, d]);
            let v = Tensor::from_vec(dev, data(s * d, -1.0, 1.0, 0.0, 3), [1, s, d]);
            let w = Tensor::from_vec(dev, data(t * d, -1.0, 1.0, 0.0, 4), [1, t, d]);
            for mask in [AttentionMask::None, AttentionMask::Causal] {
                let y = q.scaled_dot_product_attention(&k, &v, mask);
                let g = grad(&(&y * &w).sum(), &[&q, &k, &v]);
                for (name, x) in [("values", &y), ("dq", &g[0]), ("dk", &g[1]), ("dv", &g[2])] {
                    assert_close(
                        &format!("attention over {s} keys, {mask:?}: {name}"),
                        &x.to_vec_blocking().unwrap(),
                        &reference::eval(x).unwrap(),
                        1e-5,
                        1e-3,
                    );
                }
            }
        }
    }
}
