//! Fused attention (no T×S scores stored): values, gradients, jvp and hvp
//! against the f64 reference and central differences, agreement with the
//! composed path, and its memory growing linearly in T.

mod common;

use common::{assert_close, check_op};
use webgrad::{AttentionMask, Shape, Tensor, grad, hvp, predict_memory};

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec_blocking().unwrap()
}

fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn operands(heads: usize, t: usize, s: usize, d: usize, e: usize) -> Vec<(Vec<f32>, Shape)> {
    vec![
        (
            common::data(heads * t * d, -1.5, 1.5, 0.0, 1),
            Shape::new(&[heads, t, d]),
        ),
        (
            common::data(heads * s * d, -1.5, 1.5, 0.0, 2),
            Shape::new(&[heads, s, d]),
        ),
        (
            common::data(heads * s * e, -1.5, 1.5, 0.0, 3),
            Shape::new(&[heads, s, e]),
        ),
    ]
}

#[test]
fn fused_attention_matches_the_reference_with_and_without_a_mask() {
    let dev = gpu!();
    for mask in [AttentionMask::None, AttentionMask::Causal] {
        // Odd sizes, S > T, d ≠ e.
        let inputs = operands(2, 5, 7, 3, 4);
        check_op(&dev, &format!("attention {mask:?}"), &inputs, &|x| {
            x[0].scaled_dot_product_attention(&x[1], &x[2], mask)
        });
    }
}

#[test]
fn second_derivatives_go_through_the_fused_kernels() {
    let dev = gpu!();
    let inputs = operands(1, 4, 6, 3, 2);
    // The gradient's own gradient (reverse over reverse, and the checker's
    // forward mode through the backward kernels).
    let w = Tensor::from_vec(&dev, common::data(8, -1.0, 1.0, 0.0, 9), [1, 4, 2]);
    check_op(&dev, "∂ attention", &inputs, &|x| {
        let y =
            (&x[0].scaled_dot_product_attention(&x[1], &x[2], AttentionMask::Causal) * &w).sum();
        grad(&y, &[&x[0], &x[1], &x[2]]).remove(1)
    });
    // hvp (forward over reverse) against the composed path's.
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|(d, s)| Tensor::from_vec(&dev, d.clone(), s.clone()))
        .collect();
    let q = &leaves[0];
    let dir = Tensor::from_vec(&dev, common::data(12, -1.0, 1.0, 0.0, 4), [1, 4, 3]);
    let f = |fused: bool| {
        let (k, v, w) = (leaves[1].clone(), leaves[2].clone(), w.clone());
        move |x: &Tensor| {
            let y = if fused {
                x.scaled_dot_product_attention(&k, &v, AttentionMask::Causal)
            } else {
                x.scaled_dot_product_attention_composed(&k, &v, AttentionMask::Causal)
            };
            (&y * &w).sum()
        }
    };
    let fused = hvp(f(true), q, &dir);
    let composed = hvp(f(false), q, &dir);
    assert_close(
        "hvp",
        &values(&fused),
        &as_f64(&values(&composed)),
        1e-5,
        1e-4,
    );
}

#[test]
fn fused_and_composed_attention_agree_at_transformer_sizes() {
    let dev = gpu!();
    let (b, h, t, d) = (2, 3, 70, 32);
    let q = Tensor::rand_normal(&dev, [b, h, t, d], 0.0, 1.0, 1);
    let k = Tensor::rand_normal(&dev, [b, h, t, d], 0.0, 1.0, 2);
    let v = Tensor::rand_normal(&dev, [b, h, t, d], 0.0, 1.0, 3);
    let w = Tensor::rand_normal(&dev, [b, h, t, d], 0.0, 1.0, 4);
    let run = |fused: bool| {
        let y = if fused {
            q.scaled_dot_product_attention(&k, &v, AttentionMask::Causal)
        } else {
            q.scaled_dot_product_attention_composed(&k, &v, AttentionMask::Causal)
        };
        let g = grad(&(&y * &w).sum(), &[&q, &k, &v]);
        [&y, &g[0], &g[1], &g[2]].map(values)
    };
    let (fused, composed) = (run(true), run(false));
    for (what, (a, b)) in ["values", "∂q", "∂k", "∂v"]
        .iter()
        .zip(fused.iter().zip(&composed))
    {
        assert_close(what, a, &as_f64(b), 1e-4, 1e-3);
    }
}

#[test]
fn the_widest_rows_run_fused_and_wider_ones_composed() {
    let dev = gpu!();
    for d in [128, 129] {
        let inputs = operands(1, 3, 3, d, 2);
        let x: Vec<Tensor> = inputs
            .iter()
            .map(|(v, s)| Tensor::from_vec(&dev, v.clone(), s.clone()))
            .collect();
        let y = x[0].scaled_dot_product_attention(&x[1], &x[2], AttentionMask::None);
        let expected = webgrad::reference::eval(&y).unwrap();
        assert_close(&format!("d = {d}"), &values(&y), &expected, 1e-5, 1e-4);
    }
}

/// Peak bytes of one forward and backward pass through attention alone at
/// context `t`, fused or composed.
fn attention_step_peak(dev: &webgrad::Device, t: usize, fused: bool) -> u64 {
    let shape = [4, 2, t, 16];
    let q = Tensor::rand_normal(dev, shape, 0.0, 1.0, 1);
    let k = Tensor::rand_normal(dev, shape, 0.0, 1.0, 2);
    let v = Tensor::rand_normal(dev, shape, 0.0, 1.0, 3);
    let y = if fused {
        q.scaled_dot_product_attention(&k, &v, AttentionMask::Causal)
    } else {
        q.scaled_dot_product_attention_composed(&k, &v, AttentionMask::Causal)
    };
    let g = grad(&y.sum(), &[&q, &k, &v]);
    predict_memory(&[&g[0], &g[1], &g[2]]).unwrap().peak_bytes
}

#[test]
fn fused_attention_memory_grows_linearly_in_the_context() {
    // A device of the test's own: the prediction counts every live buffer
    // of the device, and other tests' buffers on a shared one would add a
    // constant that depends on what runs beside this test.
    let Some(dev) = common::private_device() else {
        return;
    };
    let fused: Vec<u64> = [128, 256, 512]
        .iter()
        .map(|&t| attention_step_peak(&dev, t, true))
        .collect();
    let composed: Vec<u64> = [128, 256, 512]
        .iter()
        .map(|&t| attention_step_peak(&dev, t, false))
        .collect();
    // Affine in T for the fused path (operands, outputs, gradients: all
    // [.., T, d], plus what does not depend on T): the step from 256 to 512
    // is twice the step from 128 to 256 (up to the buffer pool's size
    // classes), where a T² term would make it four times.
    let steps = |p: &[u64]| (p[1] as f64 - p[0] as f64, p[2] as f64 - p[1] as f64);
    let (a, b) = steps(&fused);
    assert!((1.8..2.2).contains(&(b / a)), "fused peaks {fused:?}");
    let (a, b) = steps(&composed);
    assert!(b / a > 3.0, "composed peaks {composed:?}");
    assert!(
        fused[2] * 5 < composed[2],
        "fused {fused:?} vs composed {composed:?}"
    );
}

#[test]
fn nan_spreads_through_fused_attention_as_through_the_composition() {
    let dev = gpu!();
    let (t, d) = (4, 4);
    let mut qd = common::data(t * d, -1.0, 1.0, 0.0, 1);
    qd[d] = f32::NAN; // query row 1
    let mut kd = common::data(t * d, -1.0, 1.0, 0.0, 2);
    kd[2 * d] = f32::NAN; // key row 2
    let vd = common::data(t * d, -1.0, 1.0, 0.0, 3);
    let q = Tensor::from_vec(&dev, qd, [1, t, d]);
    let k = Tensor::from_vec(&dev, kd, [1, t, d]);
    let v = Tensor::from_vec(&dev, vd, [1, t, d]);
    let fused = values(&q.scaled_dot_product_attention(&k, &v, AttentionMask::Causal));
    let composed = values(&q.scaled_dot_product_attention_composed(&k, &v, AttentionMask::Causal));
    for (i, (f, c)) in fused.chunks(d).zip(composed.chunks(d)).enumerate() {
        // Row 1 reads a NaN query; rows 2 and 3 see the NaN key; row 0 sees
        // only key 0 and stays finite.
        let nan = i >= 1;
        assert!(f.iter().all(|x| x.is_nan() == nan), "fused row {i}: {f:?}");
        assert!(
            c.iter().all(|x| x.is_nan() == nan),
            "composed row {i}: {c:?}"
        );
    }
}

#[test]
fn the_tiled_kernels_for_real_gpus_match_too() {
    // The kernel family real GPUs get, forced on this adapter.
    let Some(dev) = common::device_with(webgrad::DeviceOptions {
        kernel_family: webgrad::KernelFamily::Tiled,
        ..common::test_options()
    }) else {
        return;
    };
    for mask in [AttentionMask::None, AttentionMask::Causal] {
        // More rows than one workgroup (64) and than one tile, odd sizes.
        let inputs = operands(2, 70, 75, 3, 5);
        check_op(&dev, &format!("tiled attention {mask:?}"), &inputs, &|x| {
            x[0].scaled_dot_product_attention(&x[1], &x[2], mask)
        });
    }
    let (t, d) = (130, 16);
    let q = Tensor::rand_normal(&dev, [2, t, d], 0.0, 1.0, 1);
    let k = Tensor::rand_normal(&dev, [2, t, d], 0.0, 1.0, 2);
    let v = Tensor::rand_normal(&dev, [2, t, d], 0.0, 1.0, 3);
    let run = |fused: bool| {
        let y = if fused {
            q.scaled_dot_product_attention(&k, &v, AttentionMask::Causal)
        } else {
            q.scaled_dot_product_attention_composed(&k, &v, AttentionMask::Causal)
        };
        let g = grad(&y.square().sum(), &[&q, &k, &v]);
        [&y, &g[0], &g[1], &g[2]].map(values)
    };
    let (fused, composed) = (run(true), run(false));
    for (what, (a, b)) in ["values", "∂q", "∂k", "∂v"]
        .iter()
        .zip(fused.iter().zip(&composed))
    {
        assert_close(what, a, &as_f64(b), 1e-4, 1e-3);
    }
}
