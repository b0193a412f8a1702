//! Reverse mode: the lecture's worked example, branches, second derivatives,
//! long chains, seeds, unreachable inputs.

mod common;

use webgrad::{Tensor, grad, grad_with_seed, read_all_blocking, reference};

use common::assert_close;

/// y = ln(x1) + x1·x2 − sin(x2), the lecture's example.
fn lecture(x1: &Tensor, x2: &Tensor) -> Tensor {
    &(&x1.log() + &(x1 * x2)) - &x2.sin()
}

#[test]
fn lecture_example_values_and_gradients() {
    let dev = gpu!();
    let x1 = Tensor::scalar(&dev, 2.0);
    let x2 = Tensor::scalar(&dev, 5.0);
    let y = lecture(&x1, &x2);
    let g = grad(&y, &[&x1, &x2]);
    let v = read_all_blocking(&[&y, &g[0], &g[1]]).unwrap();
    let exact_y = 2f64.ln() + 10.0 - 5f64.sin();
    assert!((exact_y - 11.652).abs() < 1e-3);
    assert_close("y", &v[0], &[exact_y], 1e-5, 1e-6);
    assert_close("dy/dx1", &v[1], &[5.5], 1e-6, 1e-6);
    assert_close("dy/dx2", &v[2], &[2.0 - 5f64.cos()], 1e-6, 1e-6);
    // The same through backward() and Gradients.
    let grads = y.backward();
    assert_close(
        "backward dy/dx1",
        &grads.wrt(&x1).to_vec_blocking().unwrap(),
        &[5.5],
        1e-6,
        1e-6,
    );
}

#[test]
fn second_derivatives_by_grad_of_grad() {
    let dev = gpu!();
    let x1 = Tensor::scalar(&dev, 2.0);
    let x2 = Tensor::scalar(&dev, 5.0);
    let y = lecture(&x1, &x2);
    let dx1 = &grad(&y, &[&x1])[0];
    // ∂²y/∂x1² = −1/x1², ∂²y/∂x2∂x1 = 1.
    let second = grad(dx1, &[&x1, &x2]);
    let v = read_all_blocking(&[&second[0], &second[1]]).unwrap();
    assert_close("d2y/dx1^2", &v[0], &[-0.25], 1e-6, 1e-6);
    assert_close("d2y/dx2dx1", &v[1], &[1.0], 1e-6, 1e-6);
    // ∂²y/∂x2² = sin(x2).
    let dx2 = &grad(&y, &[&x2])[0];
    let d22 = &grad(dx2, &[&x2])[0];
    assert_close(
        "d2y/dx2^2",
        &d22.to_vec_blocking().unwrap(),
        &[5f64.sin()],
        1e-5,
        1e-5,
    );
    // Third derivative of a vector function: d³/dx³ Σ sin(x) = −cos(x).
    let x = Tensor::from_vec(&dev, vec![0.1, 0.7, -1.3], [3]);
    let g1 = &grad(&x.sin().sum(), &[&x])[0];
    let g2 = &grad(&g1.sum(), &[&x])[0];
    let g3 = &grad(&g2.sum(), &[&x])[0];
    let want: Vec<f64> = [0.1f32, 0.7, -1.3]
        .iter()
        .map(|&v| -(v as f64).cos())
        .collect();
    assert_close(
        "third derivative",
        &g3.to_vec_blocking().unwrap(),
        &want,
        1e-5,
        1e-5,
    );
}

#[test]
fn partial_adjoints_from_50_branches_add_up() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![0.3, -0.8], [2]);
    // y = Σ_{i=1..50} sin(i·x): dy/dx = Σ i·cos(i·x).
    let mut y = (&x * 1.0).sin();
    for i in 2..=50 {
        y = &y + &(&x * i as f32).sin();
    }
    let g = &grad(&y.sum(), &[&x])[0];
    let want: Vec<f64> = [0.3f32, -0.8]
        .iter()
        .map(|&v| {
            (1..=50)
                .map(|i| i as f64 * (i as f64 * v as f64).cos())
                .sum()
        })
        .collect();
    assert_close(
        "50 branches",
        &g.to_vec_blocking().unwrap(),
        &want,
        1e-3,
        1e-4,
    );
}

#[test]
fn a_chain_of_100_000_ops() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![0.5, -1.0, 2.0], [3]);
    // 50,000 × (·1.00001, +0.00001): y = a·x + b with a = 1.00001^50000.
    let mut y = x.clone();
    for _ in 0..50_000 {
        y = (&y * 1.00001).add_scalar(0.00001);
    }
    let g = &grad(&y.sum(), &[&x])[0];
    let v = read_all_blocking(&[&y, g]).unwrap();
    let a = 1.00001f64.powi(50_000);
    let b: f64 = (0..50_000).map(|i| 0.00001 * 1.00001f64.powi(i)).sum();
    let want_y: Vec<f64> = [0.5, -1.0, 2.0].iter().map(|x| a * x + b).collect();
    // f32 rounding accumulates over 100,000 steps.
    assert_close("chain value", &v[0], &want_y, 1e-2, 1e-2);
    assert_close("chain gradient", &v[1], &[a; 3], 1e-2, 1e-2);
    drop((y, g.clone()));
}

#[test]
fn inputs_that_do_not_influence_the_output_get_zeros() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]);
    let unused = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    let y = x.exp().sum();
    let g = grad(&y, &[&x, &unused]);
    assert_eq!(g[1].to_vec_blocking().unwrap(), vec![0.0; 3]);
    assert!(y.backward().get(&unused).is_none());
    assert_eq!(
        y.backward().wrt(&unused).to_vec_blocking().unwrap(),
        vec![0.0; 3]
    );
}

#[test]
fn detach_blocks_the_gradient() {
    let dev = gpu!();
    let x = Tensor::scalar(&dev, 3.0);
    let y = &(&x * &x) + &(&x * &x).detach();
    assert_close(
        "detach",
        &grad(&y, &[&x])[0].to_vec_blocking().unwrap(),
        &[6.0],
        1e-6,
        0.0,
    );
}

#[test]
fn broadcast_inputs_get_gradients_of_their_own_shape() {
    let dev = gpu!();
    let b = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    let m = Tensor::from_vec(&dev, vec![1.0; 6], [2, 3]);
    let s = Tensor::scalar(&dev, 2.0);
    let y = (&(&m + &b) * &s).sum();
    let g = grad(&y, &[&b, &s]);
    assert_eq!(g[0].dims(), &[3]);
    assert_eq!(g[0].to_vec_blocking().unwrap(), vec![4.0; 3]);
    assert_close(
        "scalar grad",
        &g[1].to_vec_blocking().unwrap(),
        &[2.0 * (3.0 + 6.0)],
        1e-5,
        0.0,
    );
}

#[test]
fn non_scalar_outputs_take_an_explicit_seed() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![1.0, -2.0, 3.0], [3]);
    let y = &x * &x;
    let seed = Tensor::from_vec(&dev, vec![1.0, 10.0, 100.0], [3]);
    let g = &grad_with_seed(&y, &[&x], &seed)[0];
    assert_eq!(g.to_vec_blocking().unwrap(), vec![2.0, -40.0, 600.0]);
    let refg = reference::eval(g).unwrap();
    assert_eq!(refg, vec![2.0, -40.0, 600.0]);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| grad(&y, &[&x])));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(
        msg.contains("not a single value") && msg.contains("grad_with_seed"),
        "{msg}"
    );
}

#[test]
fn backward_trace_shows_node_to_grad() {
    let dev = gpu!();
    let x1 = Tensor::scalar(&dev, 2.0);
    let x2 = Tensor::scalar(&dev, 5.0);
    let y = lecture(&x1, &x2);
    let steps = webgrad::backward_trace(&y);
    // v7 … v1: seven nodes, the output first with its seed.
    assert_eq!(steps.len(), 7);
    assert!(steps[0].node.same_node(&y) && steps[0].partials[0].0.is_none());
    // v2 = x2 feeds v4 = x1·x2 and v5 = sin x2: two partial adjoints, x1 and −cos 5.
    let v2 = steps.iter().find(|s| s.node.same_node(&x2)).unwrap();
    assert_eq!(v2.partials.len(), 2);
    let mut parts: Vec<f32> = v2
        .partials
        .iter()
        .map(|p| p.1.item_blocking().unwrap())
        .collect();
    parts.sort_by(f32::total_cmp);
    assert_close("partials of v2", &parts, &[-(5f64.cos()), 2.0], 1e-6, 1e-6);
    assert_close(
        "adjoint of v2",
        &[v2.adjoint.item_blocking().unwrap()],
        &[2.0 - 5f64.cos()],
        1e-6,
        1e-6,
    );
    // Reverse topological order: every node comes after all the nodes it feeds.
    let pos = |t: &Tensor| steps.iter().position(|s| s.node.same_node(t)).unwrap();
    for s in &steps {
        for (from, _) in &s.partials {
            if let Some(j) = from {
                assert!(pos(j) < pos(&s.node));
            }
        }
    }
}
