//! Forward mode, Jacobians, Hessians, numerical differentiation and the
//! gradient checker.

mod common;

use webgrad::{
    Difference, Tensor, Tolerance, check_gradients_blocking, grad, hessian, hessian_reverse, hvp,
    jacfwd, jacrev, jvp, jvp_batched, numerical_grad_blocking, numerical_grad_reference,
    read_all_blocking, reference, step_sweep, tangent,
};

use common::{assert_close, data};

#[test]
fn lecture_example_forward_mode_tangents() {
    let dev = gpu!();
    let x1 = Tensor::scalar(&dev, 2.0);
    let x2 = Tensor::scalar(&dev, 5.0);
    let v3 = x1.log();
    let v4 = &x1 * &x2;
    let v5 = x2.sin();
    let v6 = &v3 + &v4;
    let v7 = &v6 - &v5;
    // Seed Δv1 = 1, Δv2 = 0: tangents Δv_i = ∂v_i/∂x1.
    let (d1, d0) = (Tensor::scalar(&dev, 1.0), Tensor::scalar(&dev, 0.0));
    let nodes = [&x1, &x2, &v3, &v4, &v5, &v6, &v7];
    let tangents: Vec<Tensor> = nodes
        .iter()
        .map(|v| tangent(v, &[&x1, &x2], &[&d1, &d0]))
        .collect();
    let got: Vec<f32> = read_all_blocking(&tangents.iter().collect::<Vec<_>>())
        .unwrap()
        .iter()
        .map(|v| v[0])
        .collect();
    assert_close(
        "Δv1…Δv7",
        &got,
        &[1.0, 0.0, 0.5, 5.0, 0.0, 5.5, 5.5],
        1e-6,
        1e-6,
    );
    // ∂y/∂x2 with the other seed.
    let (y, dy) = jvp(
        |x| &(&x[0].log() + &(&x[0] * &x[1])) - &x[1].sin(),
        &[&x1, &x2],
        &[&d0, &d1],
    );
    let v = read_all_blocking(&[&y, &dy]).unwrap();
    assert_close("y", &v[0], &[2f64.ln() + 10.0 - 5f64.sin()], 1e-5, 1e-6);
    assert_close("∂y/∂x2", &v[1], &[2.0 - 5f64.cos()], 1e-6, 1e-6);
}

fn vector_fn(x: &Tensor) -> Tensor {
    // R^4 -> R^3, with a matmul, a reduction and a broadcast.
    let dev = x.device();
    let w = Tensor::from_vec(dev, data(12, -1.0, 1.0, 0.0, 7), [4, 3]);
    let h = x.reshape([1, 4]).matmul(&w).reshape([3]);
    &h.sin() * &x.square().sum()
}

#[test]
fn jacobians_by_forward_and_reverse_mode_agree_with_finite_differences() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![0.3, -0.7, 1.1, 0.4], [4]);
    let jf = jacfwd(vector_fn, &x);
    let jr = jacrev(vector_fn, &x);
    assert_eq!(jf.dims(), &[3, 4]);
    assert_eq!(jr.dims(), &[3, 4]);
    let v = read_all_blocking(&[&jf, &jr]).unwrap();
    let as64: Vec<f64> = v[1].iter().map(|&a| a as f64).collect();
    assert_close("jacfwd vs jacrev", &v[0], &as64, 1e-5, 1e-5);
    // Row i against central differences of output i on the reference.
    let y = vector_fn(&x);
    for i in 0..3 {
        let yi = y.narrow(0, i..i + 1).sum();
        let fd = numerical_grad_reference(&yi, &[&x], Difference::Central, None).unwrap();
        assert_close(
            &format!("Jacobian row {i}"),
            &v[0][i * 4..i * 4 + 4],
            &fd[0],
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn batched_tangents_equal_one_pass_per_direction() {
    let dev = gpu!();
    let a = Tensor::from_vec(&dev, data(6, -1.0, 1.0, 0.0, 1), [2, 3]);
    let b = Tensor::from_vec(&dev, data(3, -1.0, 1.0, 0.0, 2), [3]);
    let f = |t: &[Tensor]| {
        (&t[0].exp() * &t[1])
            .softmax(1)
            .matmul(&t[1].reshape([3, 1]))
    };
    let k = 5;
    let da = Tensor::from_vec(&dev, data(k * 6, -1.0, 1.0, 0.0, 3), [k, 2, 3]);
    let db = Tensor::from_vec(&dev, data(k * 3, -1.0, 1.0, 0.0, 4), [k, 3]);
    let (_, batched) = jvp_batched(f, &[&a, &b], &[&da, &db]);
    assert_eq!(batched.dims(), &[k, 2, 1]);
    let singles: Vec<Tensor> = (0..k)
        .map(|i| {
            jvp(
                f,
                &[&a, &b],
                &[
                    &da.narrow(0, i..i + 1).reshape([2, 3]),
                    &db.narrow(0, i..i + 1).reshape([3]),
                ],
            )
            .1
        })
        .collect();
    let all = read_all_blocking(&[&batched]).unwrap().remove(0);
    let one: Vec<f64> = read_all_blocking(&singles.iter().collect::<Vec<_>>())
        .unwrap()
        .concat()
        .into_iter()
        .map(f64::from)
        .collect();
    assert_close("batched vs single tangents", &all, &one, 1e-6, 1e-5);
}

fn cubic(x: &Tensor) -> Tensor {
    // f = Σ x_i³ + x0·x1: H = diag(6 x) + (e0 e1ᵀ + e1 e0ᵀ).
    &x.powf(3.0).sum() + &(&x.narrow(0, 0..1) * &x.narrow(0, 1..1 + 1)).sum()
}

#[test]
fn hessians_forward_over_reverse_and_reverse_over_reverse_agree() {
    let dev = gpu!();
    let xs = [0.5f32, -1.0, 2.0];
    let x = Tensor::from_vec(&dev, xs.to_vec(), [3]);
    let hf = hessian(cubic, &x);
    let hr = hessian_reverse(cubic, &x);
    let v = read_all_blocking(&[&hf, &hr]).unwrap();
    let mut exact = vec![0.0; 9];
    for i in 0..3 {
        exact[i * 4] = 6.0 * xs[i] as f64;
    }
    exact[1] = 1.0;
    exact[3] = 1.0;
    assert_close("hessian (forward over reverse)", &v[0], &exact, 1e-5, 1e-5);
    assert_close("hessian (reverse over reverse)", &v[1], &exact, 1e-5, 1e-5);
}

#[test]
fn hvp_matches_finite_differences_of_gradients() {
    let dev = gpu!();
    let f = |x: &Tensor| (&x.sin() * &x.exp()).sum() + x.square().sum().sqrt();
    let x = Tensor::from_vec(&dev, vec![0.2, -0.5, 0.9, 1.3], [4]);
    let v = Tensor::from_vec(&dev, vec![1.0, -2.0, 0.5, 0.25], [4]);
    let hv = hvp(f, &x, &v).to_vec_blocking().unwrap();
    // (∇f(x + h v) − ∇f(x − h v)) / 2h on the f64 reference.
    let g = &grad(&f(&x), &[&x])[0];
    let (xr, vr) = (reference::eval(&x).unwrap(), reference::eval(&v).unwrap());
    let h = 1e-5;
    let at = |s: f64| {
        let moved: Vec<f64> = xr.iter().zip(&vr).map(|(a, b)| a + s * h * b).collect();
        reference::eval_with(&[g], &[(&x, &moved)])
            .unwrap()
            .remove(0)
    };
    let (up, down) = (at(1.0), at(-1.0));
    let fd: Vec<f64> = up
        .iter()
        .zip(&down)
        .map(|(u, d)| (u - d) / (2.0 * h))
        .collect();
    assert_close("hvp", &hv, &fd, 1e-4, 1e-4);
}

#[test]
fn numerical_differentiation_on_gpu_and_reference() {
    let dev = gpu!();
    let x1 = Tensor::scalar(&dev, 2.0);
    let x2 = Tensor::scalar(&dev, 5.0);
    let f = |x: &[Tensor]| &(&x[0].log() + &(&x[0] * &x[1])) - &x[1].sin();
    let exact = [5.5, 2.0 - 5f64.cos()];
    for scheme in [Difference::Forward, Difference::Central] {
        let g = numerical_grad_blocking(f, &[&x1, &x2], scheme, None).unwrap();
        let tol = if scheme == Difference::Central {
            2e-3
        } else {
            1e-2
        };
        assert_close(
            &format!("{scheme:?} f32"),
            &[g[0][0], g[1][0]],
            &exact,
            tol,
            0.0,
        );
        let y = f(&[x1.clone(), x2.clone()]);
        let r = numerical_grad_reference(&y, &[&x1, &x2], scheme, None).unwrap();
        let tol = if scheme == Difference::Central {
            1e-9
        } else {
            1e-6
        };
        assert!(
            (r[0][0] - exact[0]).abs() < tol && (r[1][0] - exact[1]).abs() < tol,
            "{scheme:?} f64: {r:?}"
        );
    }
}

#[test]
fn the_step_sweep_shows_truncation_and_round_off() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![0.7, 1.3], [2]);
    let f = |t: &[Tensor]| (&t[0].exp() * &t[0].sin()).sum();
    let exact: Vec<f64> = [0.7f32, 1.3]
        .iter()
        .map(|&v| (v as f64).exp() * ((v as f64).sin() + (v as f64).cos()))
        .collect();
    let steps: Vec<f64> = (1..=12).map(|k| 10f64.powi(-k)).collect();
    let rows = step_sweep(f, &[&x], &[exact], &steps).unwrap();
    let best = |pick: fn(&webgrad::SweepRow) -> f64| {
        rows.iter()
            .enumerate()
            .min_by(|a, b| pick(a.1).total_cmp(&pick(b.1)))
            .unwrap()
            .0
    };
    // f32 central differences are best at a middling step: worse for large
    // steps (truncation) and for tiny ones (round-off).
    let i = best(|r| r.central_f32);
    assert!(
        i > 0 && i < rows.len() - 1,
        "best f32 central step at {}",
        steps[i]
    );
    assert!(rows[0].central_f32 > 10.0 * rows[i].central_f32);
    assert!(rows[rows.len() - 1].central_f32 > 10.0 * rows[i].central_f32);
    // In f64 the best step is far smaller than in f32, and much more accurate.
    let j = best(|r| r.central_f64);
    assert!(steps[j] < steps[i] && rows[j].central_f64 < rows[i].central_f32 * 1e-3);
    // Forward differences are first order: at large steps, worse than central.
    assert!(rows[1].forward_f64 > 10.0 * rows[1].central_f64);
}

#[test]
fn the_gradient_checker_passes_correct_gradients_and_catches_wrong_ones() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, data(6, -1.0, 1.0, 0.0, 5), [2, 3]);
    let good = check_gradients_blocking(
        |t| t[0].tanh().matmul(&t[0].t()),
        &[&x],
        Tolerance::default(),
        1,
    )
    .unwrap();
    assert!(good.passed, "{good}");
    assert!((good.forward_dot - good.reverse_dot).abs() < 1e-4);
    // x.detach()·x: the reference sees x², autodiff differentiates only one factor.
    let bad = check_gradients_blocking(|t| &t[0].detach() * &t[0], &[&x], Tolerance::default(), 1)
        .unwrap();
    assert!(!bad.passed && !bad.inputs[0].passed, "{bad}");
    assert!(bad.to_string().contains("FAILED"));
}
