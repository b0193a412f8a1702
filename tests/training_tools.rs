//! Learning-rate schedules, gradient clipping, gradient accumulation and
//! weight EMA against closed forms and PyTorch's documented formulas.

mod common;

use std::f64::consts::PI;

use webgrad::data::Dataset;
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{
    Adam, Clip, Ema, GradAccumulator, LrSchedule, Optimizer, Sgd, clip_grad_norm, clip_grad_value,
};
use webgrad::{Tensor, grad, read_all_blocking, realize_all_blocking};

use common::{assert_close, data};

/// PyTorch's chainable StepLR: the rate is multiplied by γ at every
/// multiple of the period (a recursion, not the closed form under test).
#[test]
fn step_schedule_follows_pytorchs_recursion() {
    let s = LrSchedule::step(0.1, 3, 0.5);
    let mut lr = 0.1f64;
    for t in 0..12 {
        if t > 0 && t % 3 == 0 {
            lr *= 0.5;
        }
        assert!(
            (s.at(t) as f64 - lr).abs() <= 1e-7 * lr,
            "t {t}: {} vs {lr}",
            s.at(t)
        );
    }
}

/// CosineAnnealingLR's recursive form (PyTorch's `get_lr`):
/// η_t = (1 + cos(πt/T)) / (1 + cos(π(t−1)/T)) · (η_{t−1} − η_min) + η_min.
#[test]
fn cosine_schedule_follows_pytorchs_recursion() {
    let (lr0, min, steps) = (0.2f64, 0.01f64, 10usize);
    let s = LrSchedule::Cosine {
        lr: lr0 as f32,
        steps,
        min_lr: min as f32,
    };
    let mut lr = lr0;
    assert!((s.at(0) as f64 - lr0).abs() < 1e-7);
    for t in 1..=steps {
        let (a, b) = (
            PI * t as f64 / steps as f64,
            PI * (t - 1) as f64 / steps as f64,
        );
        lr = (1.0 + a.cos()) / (1.0 + b.cos()) * (lr - min) + min;
        assert!(
            (s.at(t) as f64 - lr).abs() <= 1e-6 * lr0,
            "t {t}: {} vs {lr}",
            s.at(t)
        );
    }
    // After the schedule it stays at the minimum.
    assert!((s.at(steps + 5) as f64 - min).abs() < 1e-7);
}

/// Known points of the warm-up schedules and of PyTorch's OneCycleLR:
/// starting at max/25, the peak at step pct_start·steps − 1, the end at
/// max/(25·10⁴), and the cosine midpoints.
#[test]
fn warmup_and_one_cycle_schedules_hit_their_known_points() {
    let w = LrSchedule::warmup_cosine(1.0, 10, 110);
    assert_eq!(w.at(0), 0.0);
    assert!((w.at(5) - 0.5).abs() < 1e-7);
    assert!((w.at(10) - 1.0).abs() < 1e-7);
    assert!((w.at(60) - 0.5).abs() < 1e-6, "{}", w.at(60));
    assert!(w.at(110).abs() < 1e-7);
    let c = LrSchedule::warmup(2.0, 4);
    assert_eq!((c.at(0), c.at(2), c.at(4), c.at(100)), (0.0, 1.0, 2.0, 2.0));

    let o = LrSchedule::one_cycle(1.0, 100);
    let (initial, min) = (1.0f64 / 25.0, 1.0f64 / 25.0 / 1e4);
    assert!((o.at(0) as f64 - initial).abs() < 1e-7);
    // pct_start 0.3 of 100 steps: the peak at step 29.
    assert!((o.at(29) - 1.0).abs() < 1e-7);
    assert!((o.at(99) as f64 - min).abs() < 1e-9);
    let up = LrSchedule::OneCycle {
        max_lr: 1.0,
        steps: 101,
        pct_start: 0.2,
        div: 25.0,
        final_div: 1e4,
    };
    // Peak at 0.2·101 − 1 = 19.2: a step on each side against PyTorch's
    // `_annealing_cos` written out.
    let pct = 7.0 / 19.2;
    let want = 1.0 + (initial - 1.0) / 2.0 * ((PI * pct).cos() + 1.0);
    assert!(
        (up.at(7) as f64 - want).abs() < 1e-6,
        "{} vs {want}",
        up.at(7)
    );
    let pct = (60.0 - 19.2) / (100.0 - 19.2);
    let want = min + (1.0 - min) / 2.0 * ((PI * pct).cos() + 1.0);
    assert!(
        (up.at(60) as f64 - want).abs() < 1e-6,
        "{} vs {want}",
        up.at(60)
    );
}

#[test]
fn schedules_refuse_nonsense_where_given() {
    let refused =
        |f: Box<dyn FnOnce()>| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    assert!(refused(Box::new(|| drop(Sgd::new(LrSchedule::step(
        0.1, 0, 0.5
    ))))));
    assert!(refused(Box::new(|| drop(Adam::new(
        LrSchedule::warmup_cosine(0.1, 10, 10)
    )))));
    assert!(refused(Box::new(|| drop(Adam::new(
        LrSchedule::one_cycle(0.1, 2)
    )))));
    assert!(refused(Box::new(|| drop(
        Sgd::new(0.1).clip(Clip::Norm(0.0))
    ))));
    assert!(refused(Box::new(|| drop(Sgd::new(-0.1)))));
}

/// SGD on L = ½‖w‖² (∇L = w) with a schedule: w_t = w₀ · Π(1 − η_k), the
/// rate read from the schedule at each step on the host and passed to the
/// update kernel.
#[test]
fn sgd_takes_its_rate_from_the_schedule_at_each_step() {
    let dev = gpu!();
    let schedule = LrSchedule::step(0.5, 2, 0.5);
    let mut opt = Sgd::new(schedule);
    let w0 = data(5, -1.0, 1.0, 0.0, 3);
    let w = Tensor::from_vec(&dev, w0.clone(), [5])
        .to_variable()
        .unwrap();
    let mut factor = 1.0f64;
    for t in 0..6 {
        let loss = w.square().sum() * 0.5;
        opt.minimize_blocking(&loss, &[&w]).unwrap();
        factor *= 1.0 - schedule.at(t) as f64;
    }
    assert_eq!(opt.steps(), 6);
    let want: Vec<f64> = w0.iter().map(|&v| v as f64 * factor).collect();
    assert_close(
        "scheduled sgd",
        &w.to_vec_blocking().unwrap(),
        &want,
        1e-6,
        1e-5,
    );
}

/// clip_grad_norm against the host: n = √Σg², factor min(1, c/(n + 1e-6)).
#[test]
fn clipping_by_norm_and_by_value_match_the_host() {
    let dev = gpu!();
    let a = data(12, -3.0, 3.0, 0.0, 7);
    let b = data(5, -3.0, 3.0, 0.0, 8);
    let grads = [
        Tensor::from_vec(&dev, a.clone(), [3, 4]),
        Tensor::from_vec(&dev, b.clone(), [5]),
    ];
    let norm: f64 = a
        .iter()
        .chain(&b)
        .map(|&v| (v as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    for max in [1.0f32, 100.0] {
        let (clipped, n) = clip_grad_norm(&grads, max);
        let got = read_all_blocking(&[&clipped[0], &clipped[1], &n]).unwrap();
        assert!((got[2][0] as f64 - norm).abs() < 1e-5 * norm);
        let factor = (max as f64 / (norm + 1e-6)).min(1.0);
        let want_a: Vec<f64> = a.iter().map(|&v| v as f64 * factor).collect();
        let want_b: Vec<f64> = b.iter().map(|&v| v as f64 * factor).collect();
        assert_close("clip a", &got[0], &want_a, 1e-6, 1e-5);
        assert_close("clip b", &got[1], &want_b, 1e-6, 1e-5);
        if max == 1.0 {
            let clipped_norm: f64 = got[0]
                .iter()
                .chain(&got[1])
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((clipped_norm - 1.0).abs() < 1e-5, "{clipped_norm}");
        }
    }
    let clipped = clip_grad_value(&grads, 0.5);
    let got = clipped[0].to_vec_blocking().unwrap();
    let want: Vec<f32> = a.iter().map(|v| v.clamp(-0.5, 0.5)).collect();
    assert_eq!(got, want);
}

/// An optimizer with clipping updates with the clipped gradient, inside
/// the step's one submit.
#[test]
fn sgd_with_clipping_updates_with_the_clipped_gradient() {
    let dev = gpu!();
    let w0 = [3.0f32, 4.0];
    let w = Tensor::from_vec(&dev, w0.to_vec(), [2])
        .to_variable()
        .unwrap();
    let mut opt = Sgd::new(0.1).clip(Clip::Norm(1.0));
    // ∇(½‖w‖²) = w = (3, 4), norm 5: clipped to (0.6, 0.8) (up to 1e-6).
    let loss = w.square().sum() * 0.5;
    opt.minimize_blocking(&loss, &[&w]).unwrap();
    let s = 1.0 / (5.0 + 1e-6);
    let want = [3.0 - 0.1 * 3.0 * s, 4.0 - 0.1 * 4.0 * s];
    assert_close(
        "clipped step",
        &w.to_vec_blocking().unwrap(),
        &want,
        1e-6,
        1e-6,
    );
}

/// Four micro-batches of 8 with a mean loss each, accumulated and
/// averaged, give the gradient of the mean loss over the 32 examples.
#[test]
fn accumulated_micro_batches_give_the_full_batch_gradient() {
    let dev = gpu!();
    let model = Mlp::new(&dev, &[64, 16, 10], Activation::Tanh, Init::XavierNormal, 3).unwrap();
    let params = model.parameters();
    let digits = Dataset::digits().unwrap();
    let batch = digits.select(&(0..32).collect::<Vec<_>>());
    let (x, labels) = batch.tensors(&dev);
    let full = grad(&model.forward(&x).cross_entropy(&labels), &params);
    let full = read_all_blocking(&full.iter().collect::<Vec<_>>()).unwrap();

    let mut acc = GradAccumulator::new(&params).unwrap();
    for part in 0..4 {
        let micro = digits.select(&(part * 8..part * 8 + 8).collect::<Vec<_>>());
        let (x, labels) = micro.tensors(&dev);
        let g = grad(&model.forward(&x).cross_entropy(&labels), &params);
        realize_all_blocking(&acc.add(&g).iter().collect::<Vec<_>>()).unwrap();
    }
    assert_eq!(acc.count(), 4);
    let (mean, resets) = acc.mean();
    let got = read_all_blocking(&mean.iter().chain(&resets).collect::<Vec<_>>()).unwrap();
    for (k, (g, f)) in got.iter().zip(&full).enumerate() {
        let f: Vec<f64> = f.iter().map(|&v| v as f64).collect();
        assert_close(&format!("parameter {k}"), g, &f, 1e-6, 1e-4);
    }
    // The resets zeroed the sums for the next batch.
    for r in &got[mean.len()..] {
        assert!(r.iter().all(|&v| v == 0.0));
    }
}

/// s ← d·s + (1 − d)·w from s₀ = a with w held at b: s_k = b + (a − b)·d^k.
#[test]
fn ema_follows_its_closed_form() {
    let dev = gpu!();
    let a = data(6, -1.0, 1.0, 0.0, 11);
    let b = data(6, -1.0, 1.0, 0.0, 12);
    let w = Tensor::from_vec(&dev, a.clone(), [2, 3])
        .to_variable()
        .unwrap();
    let ema = Ema::new(&[&w], 0.9).unwrap();
    realize_all_blocking(&[&w.assign(&Tensor::from_vec(&dev, b.clone(), [2, 3]))]).unwrap();
    for _ in 0..5 {
        realize_all_blocking(&ema.update(&[&w]).iter().collect::<Vec<_>>()).unwrap();
    }
    let d5 = 0.9f64.powi(5);
    let want: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(&a, &b)| b as f64 + (a as f64 - b as f64) * d5)
        .collect();
    assert_close(
        "ema",
        &ema.averages()[0].to_vec_blocking().unwrap(),
        &want,
        1e-6,
        1e-5,
    );
    // The parameter itself is untouched by the average.
    assert_eq!(w.to_vec_blocking().unwrap(), b);
}
