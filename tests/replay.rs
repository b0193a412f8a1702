//! Plan replay (`Device::set_plan_replay`): a realize whose graph has the
//! structure of an earlier one replays that one's recorded plan. Every
//! test checks values against an independent source (closed forms, the
//! f64 reference, or the same computation planned from scratch on a device
//! with replay off) and counts plans and replays, so that a structural
//! change that failed to make a new plan, or a replay that never happened,
//! fails.

mod common;

use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, Tensor, grad, read_all_blocking, realize_all_blocking, reference};

/// (plans from scratch, replays) so far.
fn plans(dev: &Device) -> (u64, u64) {
    let c = dev.counters();
    (c.plans, c.plans_replayed)
}

/// Values of `t` from the f64 reference interpreter.
fn reference_of(t: &Tensor) -> Vec<f64> {
    reference::eval(t).unwrap()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs reference {w}"
        );
    }
}

/// Trains the digits-sized MLP with Adam for `steps` steps, a new batch
/// each step; returns every loss and the final parameters.
fn train(dev: &Device, steps: u64) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mlp = Mlp::new(
        dev,
        &[64, 32, 16, 10],
        Activation::Relu,
        Init::KaimingUniform,
        3,
    )
    .unwrap();
    let mut adam = Adam::new(1e-2);
    let mut losses = Vec::new();
    for step in 0..steps {
        let x = Tensor::from_vec(
            dev,
            common::data(8 * 64, 0.0, 1.0, 0.0, 100 + step),
            [8, 64],
        );
        let labels: Vec<usize> = (0..8).map(|i| (i + step as usize) % 10).collect();
        let loss = mlp.forward(&x).cross_entropy(&labels);
        let params = mlp.parameters();
        let grads = grad(&loss, &params);
        let updates = adam.step(&params, &grads).unwrap();
        let mut all: Vec<&Tensor> = vec![&loss];
        all.extend(&updates);
        losses.push(read_all_blocking(&all).unwrap()[0][0]);
    }
    let params: Vec<Vec<f32>> = mlp
        .parameters()
        .iter()
        .map(|p| p.to_vec_blocking().unwrap())
        .collect();
    (losses, params)
}

#[test]
fn a_replayed_training_run_is_bit_identical_to_one_planned_every_step() {
    let (Some(on), Some(off)) = (common::private_device(), common::private_device()) else {
        return;
    };
    off.set_plan_replay(false);
    // The same kernels on both (autotune's timings could choose others).
    on.force_variant(Some(0));
    off.force_variant(Some(0));
    let before = plans(&on);
    let (losses_on, params_on) = train(&on, 12);
    let (losses_off, params_off) = train(&off, 12);
    // Adam's bias corrections change every step: constants, not structure.
    let (planned, replayed) = (plans(&on).0 - before.0, plans(&on).1 - before.1);
    assert!(
        replayed >= 9,
        "12 steps of one structure: {replayed} replayed, {planned} planned"
    );
    assert_eq!(plans(&off).1, 0, "replay off replays nothing");
    assert_eq!(losses_on, losses_off, "losses, replayed vs planned");
    assert_eq!(params_on, params_off, "parameters, replayed vs planned");
    assert!(
        losses_on[11] < losses_on[0],
        "the loss went down: {losses_on:?}"
    );
}

#[test]
fn new_constants_replay_with_their_own_values() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let x = Tensor::from_vec(&dev, vec![0.5, -1.0, 2.0, 3.0], [4]);
    x.realize_blocking().unwrap();
    let before = plans(&dev);
    for k in 0..8 {
        let c = 0.25 * k as f32 + 0.3;
        // A scale, a shift, a power, a fill and a reduction's prologue.
        let y = &(&x * c).add_scalar(-c) + &Tensor::full(&dev, [4], 2.0 * c);
        let z = x.abs().powf(c);
        let s = (&y * &z).sum();
        let got = read_all_blocking(&[&y, &z, &s]).unwrap();
        assert_close(&got[0], &reference_of(&y), &format!("y at c = {c}"));
        assert_close(&got[1], &reference_of(&z), &format!("z at c = {c}"));
        assert_close(&got[2], &reference_of(&s), &format!("sum at c = {c}"));
    }
    let (planned, replayed) = (plans(&dev).0 - before.0, plans(&dev).1 - before.1);
    assert_eq!(
        (planned, replayed),
        (2, 6),
        "one structure, eight constants"
    );
}

#[test]
fn a_changed_shape_op_axis_or_setting_is_planned_anew() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let a = Tensor::from_vec(&dev, common::data(12, -1.0, 1.0, 0.0, 1), [3, 4]);
    let b = Tensor::from_vec(&dev, common::data(12, -1.0, 1.0, 0.0, 2), [4, 3]);
    let c = Tensor::from_vec(&dev, common::data(16, -1.0, 1.0, 0.0, 3), [4, 4]);
    realize_all_blocking(&[&a, &b, &c]).unwrap();
    // Variants of one graph that differ in one structural detail each,
    // cycled so that each is planned, recorded and then replayed.
    let variants: Vec<Box<dyn Fn() -> Tensor>> = vec![
        Box::new(|| a.sin().sum_axes(&[0])),
        Box::new(|| a.cos().sum_axes(&[0])),
        Box::new(|| a.sin().sum_axes(&[1])),
        Box::new(|| b.sin().sum_axes(&[0])),
        Box::new(|| a.matmul(&b)),
        Box::new(|| c.matmul(&c.t())),
        Box::new(|| c.t().matmul(&c)),
        Box::new(|| c.permute(&[1, 0]).exp()),
        Box::new(|| c.narrow(0, 1..1 + 2).exp()),
        Box::new(|| c.narrow(1, 1..1 + 2).exp()),
    ];
    let before = plans(&dev);
    for round in 0..4 {
        for (i, f) in variants.iter().enumerate() {
            let y = f();
            let got = y.to_vec_blocking().unwrap();
            assert_close(
                &got,
                &reference_of(&y),
                &format!("variant {i}, round {round}"),
            );
        }
    }
    let (planned, replayed) = (plans(&dev).0 - before.0, plans(&dev).1 - before.1);
    let n = variants.len() as u64;
    assert_eq!(
        (planned, replayed),
        (2 * n, 2 * n),
        "each variant planned twice (seen, recorded), then replayed"
    );
}

#[test]
fn a_kept_handle_is_structure() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    x.realize_blocking().unwrap();
    // Rounds that hold the intermediate `h` while realizing must keep its
    // value on it, readable afterwards without a new kernel; the pattern
    // records the structure without the handle first.
    for (round, hold) in [false, false, true, true, false, true]
        .into_iter()
        .enumerate()
    {
        let h = x.exp();
        let y = (&h * 2.0).sum();
        if hold {
            y.realize_blocking().unwrap();
            let kernels = dev.counters().kernels;
            let h_value = h.to_vec_blocking().unwrap();
            assert_eq!(
                dev.counters().kernels,
                kernels,
                "round {round}: h was kept, not recomputed"
            );
            assert_close(&h_value, &[1f64.exp(), 2f64.exp(), 3f64.exp()], "h");
        } else {
            drop(h);
            y.realize_blocking().unwrap();
        }
        let e: f64 = (1..=3).map(|i| 2.0 * (i as f64).exp()).sum();
        assert_close(&y.to_vec_blocking().unwrap(), &[e], "y");
    }
    assert!(dev.counters().plans_replayed >= 2);
}

#[test]
fn replayed_updates_write_their_variables_in_place() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let v = Tensor::from_vec(&dev, vec![0.0, 4.0], [2])
        .to_variable()
        .unwrap();
    let live = dev.memory_stats().live_buffers;
    let mut want = [0.0f64, 4.0];
    for k in 1..=10 {
        // v ← v·½ + k: the constant changes, the structure does not.
        v.assign(&(&v * 0.5).add_scalar(k as f32))
            .realize_blocking()
            .unwrap();
        for w in &mut want {
            *w = *w * 0.5 + k as f64;
        }
    }
    assert_close(&v.to_vec_blocking().unwrap(), &want, "v");
    assert!(dev.counters().plans_replayed >= 7);
    assert_eq!(
        dev.memory_stats().live_buffers,
        live,
        "updates in place: no buffer per step"
    );
}

#[test]
fn realized_values_that_share_a_buffer_are_structure() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let v = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0, 4.0], [4]);
    v.realize_blocking().unwrap();
    // A realized view of v: another node, v's buffer.
    let same = v.reshape([1, 4]);
    same.realize_blocking().unwrap();
    let other = Tensor::from_vec(&dev, vec![10.0, 20.0, 30.0, 40.0], [1, 4]);
    other.realize_blocking().unwrap();
    // The second operand shares the first's buffer, or does not; the
    // pattern records the shared case first.
    for (round, shared) in [true, true, false, false, false, true]
        .into_iter()
        .enumerate()
    {
        let second = if shared { &same } else { &other };
        let y = &v + &second.exp();
        let got = y.to_vec_blocking().unwrap();
        assert_close(&got, &reference_of(&y), &format!("round {round}"));
    }
}

#[test]
fn new_inputs_are_uploaded_and_targets_come_back_in_the_order_asked() {
    let Some(dev) = common::private_device() else {
        return;
    };
    for k in 0..6 {
        let a = Tensor::from_vec(&dev, vec![k as f32, 1.0], [2]);
        let b = Tensor::from_vec(&dev, vec![2.0, k as f32], [2]);
        let (p, q) = (&a * &b, &a - &b);
        let got = if k % 2 == 0 {
            read_all_blocking(&[&p, &q]).unwrap()
        } else {
            let mut r = read_all_blocking(&[&q, &p]).unwrap();
            r.reverse();
            r
        };
        let k = k as f32;
        assert_eq!(got[0], vec![2.0 * k, k], "a·b at k = {k}");
        assert_eq!(got[1], vec![k - 2.0, 1.0 - k], "a − b at k = {k}");
    }
    assert!(dev.counters().plans_replayed >= 2);
}

#[test]
fn a_profile_of_a_replayed_step_names_its_kernels() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let x = Tensor::from_vec(&dev, vec![0.1, 0.2, 0.3], [3]);
    x.realize_blocking().unwrap();
    let step = || x.tanh().sum().item_blocking().unwrap();
    for _ in 0..3 {
        step();
    }
    let replayed = dev.counters().plans_replayed;
    let (value, profile) = dev.profile(step);
    assert_eq!(
        dev.counters().plans_replayed,
        replayed + 1,
        "profiled a replay"
    );
    let want: f64 = [0.1f64, 0.2, 0.3].iter().map(|v| v.tanh()).sum();
    assert!((value as f64 - want).abs() < 1e-6);
    let names: Vec<&str> = profile.kernels.iter().map(|k| k.name.as_str()).collect();
    assert!(
        names.iter().any(|n| n.contains("tanh")) && names.iter().any(|n| n.starts_with("sum")),
        "kernels named {names:?}"
    );
}

/// An empty tensor's ops (nothing to dispatch) beside a product, with a
/// constant that changes every step, replay with the right values.
#[test]
fn empty_tensors_beside_a_product_replay() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let empty = Tensor::from_vec(&dev, Vec::<f32>::new(), [0]);
    let m = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    let eye = Tensor::from_vec(
        &dev,
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        [3, 3],
    );
    webgrad::realize_all_blocking(&[&empty, &m, &eye]).unwrap();
    for k in 0..6 {
        let c = k as f32 + 0.5;
        // Recorded first, planned last: the product runs right after the
        // empty kernel.
        let t = m.matmul(&eye);
        let e = (&empty * 3.0).add_scalar(c);
        let got = read_all_blocking(&[&e, &t]).unwrap();
        assert!(got[0].is_empty());
        assert_eq!(got[1], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "k = {k}");
    }
    assert!(dev.counters().plans_replayed >= 3);
}
