//! Custom derivatives of compositions (`custom_vjp`, `custom_jvp`):
//! the user's rule replaces the ops' own in reverse and forward mode, is
//! differentiated again for higher orders, and misuse is refused with a
//! message naming the rule.

mod common;

use common::{assert_close, panic_message};
use webgrad::{DType, Shape, Tensor, custom_jvp, custom_vjp, grad, hvp, jvp, jvp_batched};

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec_blocking().unwrap()
}

/// |x| = √(Σ x²), whose own gradient x/|x| is 0/0 at 0; the rule gives
/// the subgradient 0 there.
fn stable_norm(x: &Tensor) -> Tensor {
    custom_vjp(
        "stable_norm",
        &[x],
        |a| a[0].square().sum().sqrt(),
        |a, y, g| {
            let tiny = Tensor::full(y.device(), Shape::scalar(), f32::MIN_POSITIVE);
            vec![Some(&a[0] * &(g / &y.maximum(&tiny)))]
        },
    )
}

#[test]
fn a_custom_vjp_gives_a_norm_a_gradient_at_zero() {
    let dev = gpu!();
    let zero = Tensor::zeros(&dev, [3]);
    // The composition's own rule: 0 · (1/(2·√0)) = 0 · ∞ = NaN.
    let plain = grad(&zero.square().sum().sqrt(), &[&zero]);
    assert!(values(&plain[0]).iter().all(|v| v.is_nan()));
    let custom = grad(&stable_norm(&zero), &[&zero]);
    assert_eq!(values(&custom[0]), vec![0.0; 3]);
    // Elsewhere the rule is the gradient, x/|x|, and the value the norm.
    let data = [3.0f32, -4.0, 12.0];
    let x = Tensor::from_vec(&dev, data.to_vec(), [3]);
    let y = stable_norm(&x);
    assert_close("norm", &values(&y), &[13.0], 1e-6, 1e-6);
    let expected: Vec<f64> = data.iter().map(|&v| v as f64 / 13.0).collect();
    assert_close("x/|x|", &values(&grad(&y, &[&x])[0]), &expected, 1e-6, 1e-6);
}

#[test]
fn a_straight_through_estimator_passes_the_gradient_where_the_ops_give_zero() {
    let dev = gpu!();
    let data = [-1.5f32, -0.3, 0.2, 0.9, 2.0];
    let x = Tensor::from_vec(&dev, data.to_vec(), [5]);
    // BinaryConnect: sign forward; backward the identity, clipped to |x| ≤ 1.
    let binarize = |x: &Tensor| {
        custom_vjp(
            "sign_ste",
            &[x],
            |a| a[0].sign(),
            |a, _, g| {
                let one = Tensor::ones(g.device(), Shape::scalar());
                vec![Some(one.ge(&a[0].abs()).where_cond(g, &g.zeros_like()))]
            },
        )
    };
    let weights = [1.0f32, 2.0, 3.0, 4.0, 5.0];
    let w = Tensor::from_vec(&dev, weights.to_vec(), [5]);
    let y = binarize(&x);
    assert_eq!(values(&y), vec![-1.0, -1.0, 1.0, 1.0, 1.0]);
    let dx = grad(&(&y * &w).sum(), &[&x]);
    assert_eq!(values(&dx[0]), vec![0.0, 2.0, 3.0, 4.0, 0.0]);
    // The ops' own derivative (sign's) is zero everywhere.
    let own = grad(&(&x.sign() * &w).sum(), &[&x]);
    assert_eq!(values(&own[0]), vec![0.0; 5]);
    // Forward mode follows the ops (documented: JAX refuses instead).
    let v = Tensor::ones(&dev, [5]);
    let (_, t) = jvp(|a| binarize(&a[0]), &[&x], &[&v]);
    assert_eq!(values(&t), vec![0.0; 5]);
}

#[test]
fn grad_of_grad_differentiates_the_users_vjp() {
    let dev = gpu!();
    let data = [0.5f32, -1.25, 2.0];
    let x = Tensor::from_vec(&dev, data.to_vec(), [3]);
    // y = Σ x³ with a rule that is deliberately not its derivative
    // (2x instead of 3x²), so that every order shows which rule ran.
    let f = |x: &Tensor| {
        custom_vjp(
            "cube_with_rule_2x",
            &[x],
            |a| a[0].powf(3.0).sum(),
            |a, _, g| vec![Some(&a[0] * &(g * 2.0))],
        )
    };
    let g = &grad(&f(&x), &[&x])[0];
    let twice: Vec<f64> = data.iter().map(|&v| 2.0 * v as f64).collect();
    assert_close("grad", &values(g), &twice, 1e-6, 1e-6);
    // ∂/∂x Σ_i g_i = ∂/∂x Σ 2x = 2.
    let gg = &grad(&g.sum(), &[&x])[0];
    assert_close("grad of grad", &values(gg), &[2.0; 3], 1e-6, 1e-6);
    // hvp: forward over reverse, through the rule's ops: H·v = 2v.
    let v = Tensor::from_vec(&dev, vec![1.0, -2.0, 0.5], [3]);
    let hv = hvp(f, &x, &v);
    assert_close("hvp", &values(&hv), &[2.0, -4.0, 1.0], 1e-6, 1e-6);
}

/// y = Σ a·b with a rule for the tangent.
fn dot_with_rule(a: &Tensor, b: &Tensor, scale: f32) -> Tensor {
    custom_jvp(
        "dot",
        &[a, b],
        |x| (&x[0] * &x[1]).sum(),
        move |x, _, dx| {
            let terms = [
                dx[0].as_ref().map(|d| (d * &x[1]).sum()),
                dx[1].as_ref().map(|d| (&x[0] * d).sum()),
            ];
            let sum = terms.into_iter().flatten().reduce(|p, q| &p + &q)?;
            Some(sum * scale)
        },
    )
}

#[test]
fn a_custom_jvp_is_followed_forward_and_transposed_for_reverse_mode() {
    let dev = gpu!();
    let (ad, bd) = ([1.0f32, -2.0, 3.0], [0.5f32, 4.0, -1.0]);
    let a = Tensor::from_vec(&dev, ad.to_vec(), [3]);
    let b = Tensor::from_vec(&dev, bd.to_vec(), [3]);
    // The value is the composition's, Σ a·b; the rule is scaled by 3 so
    // that both modes show it ran.
    let y = dot_with_rule(&a, &b, 3.0);
    assert_close("value", &values(&y), &[-10.5], 1e-6, 1e-6);
    let da = Tensor::from_vec(&dev, vec![1.0, 0.0, 2.0], [3]);
    let (_, t) = jvp(|x| dot_with_rule(&x[0], &x[1], 3.0), &[&a, &b], &[&da, &b]);
    // 3·(Δa·b + a·Δb) with Δb = b: 3·((0.5 − 2) + (0.5 − 8 − 3)).
    assert_close("jvp", &values(&t), &[3.0 * (-1.5 - 10.5)], 1e-6, 1e-6);
    let g = grad(&y, &[&a, &b]);
    let ga: Vec<f64> = bd.iter().map(|&v| 3.0 * v as f64).collect();
    let gb: Vec<f64> = ad.iter().map(|&v| 3.0 * v as f64).collect();
    assert_close("∂/∂a", &values(&g[0]), &ga, 1e-6, 1e-6);
    assert_close("∂/∂b", &values(&g[1]), &gb, 1e-6, 1e-6);
    // Second order through the transposed rule: ∂/∂b Σ ∂y/∂a = 3.
    let gg = grad(&g[0].sum(), &[&b]);
    assert_close("∂²", &values(&gg[0]), &[3.0; 3], 1e-6, 1e-6);
    // Several directions at once go through the rule one at a time.
    let dirs = Tensor::from_vec(&dev, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [2, 3]);
    let zero = Tensor::zeros(&dev, [2, 3]);
    let (_, tb) = jvp_batched(
        |x| dot_with_rule(&x[0], &x[1], 3.0),
        &[&a, &b],
        &[&dirs, &zero],
    );
    assert_eq!(tb.dims(), &[2]);
    assert_close("batched jvp", &values(&tb), &[1.5, 12.0], 1e-6, 1e-6);
}

#[test]
fn a_correct_rule_passes_the_gradient_checker() {
    let dev = gpu!();
    let a = Tensor::from_vec(&dev, common::data(6, -2.0, 2.0, 0.1, 1), [6]);
    let b = Tensor::from_vec(&dev, common::data(6, -2.0, 2.0, 0.1, 2), [6]);
    // The checker compares both modes on the GPU with central differences
    // of the f64 reference, which evaluates the composition.
    let f = |x: &[Tensor]| dot_with_rule(&x[0], &x[1], 1.0);
    let report = webgrad::check_gradients_blocking(f, &[&a, &b], Default::default(), 3).unwrap();
    assert!(report.passed, "{report}");
    let g = |x: &[Tensor]| stable_norm(&(&x[0] * &x[1]));
    let report = webgrad::check_gradients_blocking(g, &[&a, &b], Default::default(), 4).unwrap();
    assert!(report.passed, "{report}");
}

#[test]
fn a_custom_rule_keeps_16_bit_values_in_their_dtype() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![0.5, -3.0, 4.0], [3]).to_dtype(DType::F16);
    let y = stable_norm(&x);
    assert_eq!(y.dtype(), DType::F16);
    let g = &grad(&y.to_dtype(DType::F32), &[&x])[0];
    assert_eq!(g.dtype(), DType::F16);
    // 0.5, −3, 4 are exact in f16; |x| = 5.0249..., rounded to f16 (5.0234375).
    let norm = half::f16::from_f64(25.25f64.sqrt()).to_f64();
    let expected: Vec<f64> = [0.5, -3.0, 4.0].iter().map(|v| v / norm).collect();
    // The quotient is rounded to f16 once: half an ulp (2⁻¹¹) relative.
    assert_close(
        "f16 x/|x|",
        &values(&g.to_dtype(DType::F32)),
        &expected,
        0.0,
        1.0 / 2048.0,
    );
}

#[test]
fn misuse_is_refused_with_the_rules_name() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
    let w = Tensor::from_vec(&dev, vec![3.0, 4.0], [2]);
    let msg = panic_message(|| {
        custom_vjp(
            "scaled",
            &[&x],
            |a| &a[0] * &w,
            |_, _, g| vec![Some(g.clone())],
        );
    });
    assert!(
        msg.contains("`scaled`") && msg.contains("not one of its arguments"),
        "{msg}"
    );
    let y = custom_vjp(
        "two",
        &[&x],
        |a| a[0].exp(),
        |_, _, g| vec![Some(g.clone()); 2],
    );
    let msg = panic_message(|| {
        grad(&y.sum(), &[&x]);
    });
    assert!(
        msg.contains("`two`") && msg.contains("2 gradients for 1 arguments"),
        "{msg}"
    );
    let y = custom_vjp(
        "shape",
        &[&x],
        |a| a[0].exp(),
        |_, _, g| vec![Some(g.sum())],
    );
    let msg = panic_message(|| {
        grad(&y.sum(), &[&x]);
    });
    assert!(
        msg.contains("`shape`") && msg.contains("[]") && msg.contains("[2]"),
        "{msg}"
    );
    let msg = panic_message(|| {
        let y = custom_jvp("wide", &[&x], |a| a[0].exp(), |_, y, _| Some(y.sum()));
        let v = Tensor::ones(&dev, [2]);
        webgrad::tangent(&y, &[&x], &[&v]);
    });
    assert!(
        msg.contains("`wide`") && msg.contains("tangent of shape"),
        "{msg}"
    );
}
