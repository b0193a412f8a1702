//! Every elementwise op on the GPU: forward against the f64 reference, vjp
//! against central finite differences, with broadcasting.

mod common;

use webgrad::{ALL_BINARY, ALL_UNARY};
use webgrad::{Binary, Shape, Tensor, Unary};

use common::{check_op, data};

#[test]
fn unary_ops_match_reference_and_finite_differences() {
    let dev = gpu!();
    for &op in ALL_UNARY {
        let (lo, hi, gap) = match op {
            Unary::Log | Unary::Sqrt | Unary::PowScalar(_) => (0.3, 2.5, 0.0),
            // log1p is defined above −1.
            Unary::Log1p => (-0.7, 2.5, 0.0),
            // Kinks (and jumps) at 0: keep finite differences away from them.
            Unary::Relu | Unary::Abs | Unary::Step | Unary::Sign => (-2.0, 2.0, 0.05),
            _ => (-2.0, 2.0, 0.0),
        };
        let x = data(15, lo, hi, gap, 1);
        check_op(&dev, &op.name(), &[(x, Shape::new(&[3, 5]))], &|t| {
            t[0].unary(op)
        });
    }
}

#[test]
fn new_activations_match_closed_forms_at_the_edges() {
    // Values a naive formula gets wrong: log1p and expm1 near 0 (cancellation),
    // softplus at ±100 (overflow), erf and GELU against tabulated values.
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1e-7, -1e-7, 100.0, -100.0, 0.5, -2.0], [6]);
    let got = |t: Tensor| t.to_vec_blocking().unwrap();
    let log1p = got(x.narrow(0, 0..2).log1p());
    assert!(
        (log1p[0] - 1e-7).abs() < 1e-13 && (log1p[1] + 1e-7).abs() < 1e-13,
        "{log1p:?}"
    );
    let expm1 = got(x.narrow(0, 0..2).expm1());
    assert!(
        (expm1[0] - 1e-7).abs() < 1e-13 && (expm1[1] + 1e-7).abs() < 1e-13,
        "{expm1:?}"
    );
    let softplus = got(x.narrow(0, 2..2 + 2).softplus());
    assert_eq!(softplus[0], 100.0);
    // e^−100 is subnormal in f32: drivers may flush it to 0.
    assert!((0.0..1e-37).contains(&softplus[1]), "{softplus:?}");
    let small = got(Tensor::from_vec(&dev, vec![-20.0], [1]).softplus())[0];
    assert!(
        (small - 2.061_153_6e-9).abs() < 1e-14,
        "softplus(−20) = {small}"
    );
    // erf(0.5) = 0.5204998778, erf(−2) = −0.9953222650
    let erf = got(x.narrow(0, 4..4 + 2).erf());
    assert!(
        (erf[0] - 0.520_499_9).abs() < 2e-7 && (erf[1] + 0.995_322_3).abs() < 2e-7,
        "{erf:?}"
    );
    // gelu(−2) = −2·Φ(−2) = −0.0455002639
    let gelu = got(x.narrow(0, 5..5 + 1).gelu());
    assert!((gelu[0] + 0.045_500_26).abs() < 1e-6, "{gelu:?}");
    let clamped = got(x.clamp(-1.0, 1.0));
    assert_eq!(clamped, vec![1e-7, -1e-7, 1.0, -1.0, 0.5, -1.0]);
}

#[test]
fn select_chooses_broadcasts_and_routes_gradients() {
    let dev = gpu!();
    // Mask [3, 1] against branches [3, 4] and [4]: forward, vjp and jvp.
    let mask = Tensor::from_vec(&dev, vec![1.0, 0.0, 1.0], [3, 1]);
    check_op(
        &dev,
        "select",
        &[
            (data(12, -2.0, 2.0, 0.0, 3), Shape::new(&[3, 4])),
            (data(4, -2.0, 2.0, 0.0, 4), Shape::new(&[4])),
        ],
        &|t| mask.where_cond(&t[0].sin(), &t[1].exp()),
    );
    // The branch not taken may hold NaN: the value never sees it (unlike
    // mask·a + (1 − mask)·b). Its gradient is 0 there, but, as in PyTorch,
    // the untaken branch's own derivative (here 0 / (2·√−1)) is still NaN,
    // unless the branch is fed a safe value (the "double where").
    let x = Tensor::from_vec(&dev, vec![-1.0, 4.0], [2]);
    let positive = x.gt(&Tensor::zeros(&dev, [2]));
    let zeros = Tensor::zeros(&dev, [2]);
    let y = positive.where_cond(&x.sqrt(), &zeros);
    assert_eq!(y.to_vec_blocking().unwrap(), vec![0.0, 2.0]);
    let g = webgrad::grad(&y.sum(), &[&x])[0].to_vec_blocking().unwrap();
    assert!(g[0].is_nan() && g[1] == 0.25, "{g:?}");
    let safe = positive.where_cond(&x, &Tensor::ones(&dev, [2]));
    let y = positive.where_cond(&safe.sqrt(), &zeros);
    let g = webgrad::grad(&y.sum(), &[&x]);
    assert_eq!(g[0].to_vec_blocking().unwrap(), vec![0.0, 0.25]);
    // Comparisons give masks.
    let a = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    let b = Tensor::from_vec(&dev, vec![2.0, 2.0, 2.0], [3]);
    let v = |t: Tensor| t.to_vec_blocking().unwrap();
    assert_eq!(v(a.eq(&b)), vec![0.0, 1.0, 0.0]);
    assert_eq!(v(a.ne(&b)), vec![1.0, 0.0, 1.0]);
    assert_eq!(v(a.le(&b)), vec![1.0, 1.0, 0.0]);
    assert_eq!(v(a.gt(&b)), vec![0.0, 0.0, 1.0]);
}

#[test]
fn integer_powers_of_negative_numbers() {
    let dev = gpu!();
    let x = data(12, -2.0, 2.0, 0.1, 3);
    for c in [2.0, 3.0, -1.0] {
        check_op(
            &dev,
            &format!("powf({c})"),
            &[(x.clone(), Shape::new(&[12]))],
            &|t| t[0].powf(c),
        );
    }
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let dev = gpu!();
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[3, 4]),
        (&[3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[], &[2, 3]),
        (&[5, 1], &[1, 2]),
    ];
    for &op in ALL_BINARY {
        for (i, &(sa, sb)) in cases.iter().enumerate() {
            let (na, nb) = (Shape::new(sa).numel(), Shape::new(sb).numel());
            let (a, b) = match op {
                Binary::Pow => (
                    data(na, 0.3, 2.0, 0.0, 10 + i as u64),
                    data(nb, -1.5, 1.5, 0.0, 20 + i as u64),
                ),
                Binary::Div => (
                    data(na, -2.0, 2.0, 0.0, 10 + i as u64),
                    data(nb, -2.0, 2.0, 0.4, 20 + i as u64),
                ),
                _ => (
                    data(na, -2.0, 2.0, 0.0, 10 + i as u64),
                    data(nb, -2.0, 2.0, 0.0, 20 + i as u64),
                ),
            };
            check_op(
                &dev,
                &format!("{op:?} {sa:?} {sb:?}"),
                &[(a, Shape::new(sa)), (b, Shape::new(sb))],
                &|t| t[0].binary(op, &t[1]),
            );
        }
    }
}

#[test]
fn operator_overloads_build_the_same_ops() {
    let dev = gpu!();
    let a = Tensor::from_vec(&dev, data(6, 0.5, 2.0, 0.0, 1), [2, 3]);
    let b = Tensor::from_vec(&dev, data(3, 0.5, 2.0, 0.0, 2), [3]);
    let exprs = [
        &a + &b,
        &a - &b,
        &a * &b,
        &a / &b,
        -&a,
        &a * 2.0,
        &a + 1.5,
        &a - 0.5,
        &a / 4.0,
        2.0 - &a,
        3.0 * &a,
        1.0 / &a,
        a.clone() + b.clone(),
    ];
    let expected: [fn(f64, f64) -> f64; 13] = [
        |a, b| a + b,
        |a, b| a - b,
        |a, b| a * b,
        |a, b| a / b,
        |a, _| -a,
        |a, _| a * 2.0,
        |a, _| a + 1.5,
        |a, _| a - 0.5,
        |a, _| a / 4.0,
        |a, _| 2.0 - a,
        |a, _| 3.0 * a,
        |a, _| 1.0 / a,
        |a, b| a + b,
    ];
    let av = a.to_vec_blocking().unwrap();
    let bv = b.to_vec_blocking().unwrap();
    for (i, (e, f)) in exprs.iter().zip(expected).enumerate() {
        let want: Vec<f64> = (0..6).map(|j| f(av[j] as f64, bv[j % 3] as f64)).collect();
        common::assert_close(
            &format!("expression {i}"),
            &e.to_vec_blocking().unwrap(),
            &want,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn long_fused_chains_with_many_inputs_split_correctly() {
    let dev = gpu!();
    // Nine distinct inputs feed one expression: more than one kernel's six bindings.
    let xs: Vec<Tensor> = (0..9)
        .map(|i| Tensor::from_vec(&dev, data(10, 0.5, 1.5, 0.0, i), [10]))
        .collect();
    let mut y = xs[0].clone();
    for (i, x) in xs.iter().enumerate().skip(1) {
        y = if i % 2 == 0 {
            &y * x
        } else {
            &(&y + x).sin() * 0.9
        };
    }
    common::check_forward("nine-input chain", &y);
    check_op(
        &dev,
        "long chain",
        &[(data(8, -1.0, 1.0, 0.0, 4), Shape::new(&[8]))],
        &|t| {
            let mut y = t[0].clone();
            for i in 0..200 {
                y = match i % 4 {
                    0 => &y * 1.01,
                    1 => y.add_scalar(0.01),
                    2 => y.tanh(),
                    _ => y.sin(),
                };
            }
            y
        },
    );
}
