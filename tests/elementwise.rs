//! Every elementwise op on the GPU: forward against the f64 reference, vjp
//! against central finite differences, with broadcasting.

mod common;

use webgrad::ops::elementwise::{ALL_BINARY, ALL_UNARY};
use webgrad::{Binary, Shape, Tensor, Unary};

use common::{check_op, data};

#[test]
fn unary_ops_match_reference_and_finite_differences() {
    let dev = gpu!();
    for &op in ALL_UNARY {
        let (lo, hi, gap) = match op {
            Unary::Log | Unary::Sqrt | Unary::PowScalar(_) => (0.3, 2.5, 0.0),
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
