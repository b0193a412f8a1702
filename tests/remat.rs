//! Gradient checkpointing: gradients are bit-identical with and
//! without it, higher orders go through it, and it lowers the predicted
//! and measured peak memory of a deep chain.

mod common;

use webgrad::{Tensor, checkpoint, grad, hvp, predict_peak_bytes, read_all_blocking};

fn bits(ts: &[Tensor]) -> Vec<Vec<u32>> {
    let refs: Vec<&Tensor> = ts.iter().collect();
    read_all_blocking(&refs)
        .unwrap()
        .into_iter()
        .map(|v| v.into_iter().map(f32::to_bits).collect())
        .collect()
}

fn layer(v: &[Tensor]) -> Tensor {
    v[0].matmul(&v[1]).tanh()
}

#[test]
fn gradients_are_bit_identical_with_and_without_checkpoints() {
    let dev = gpu!();
    // An MLP: every layer a checkpointed region.
    let x = Tensor::rand_uniform(&dev, [16, 32], -1.0, 1.0, 1);
    let ws: Vec<Tensor> = (0..4)
        .map(|i| Tensor::rand_normal(&dev, [32, 32], 0.0, 0.3, 10 + i))
        .collect();
    let forward = |checkpointed: bool| {
        let mut h = x.clone();
        for w in &ws {
            h = if checkpointed {
                checkpoint(layer, &[&h, w])
            } else {
                layer(&[h.clone(), w.clone()])
            };
        }
        h.square().mean()
    };
    let params: Vec<&Tensor> = ws.iter().chain([&x]).collect();
    // Autotune picks the products' kernels at the second sight of each
    // shape (its first guess before): compare once they are chosen.
    let warm_up = |f: &dyn Fn(bool) -> Tensor, params: &[&Tensor]| {
        bits(&grad(&f(false), params));
        bits(&grad(&f(false), params));
    };
    warm_up(&forward, &params);
    let plain = grad(&forward(false), &params);
    let kept = grad(&forward(true), &params);
    assert_eq!(bits(&plain), bits(&kept), "MLP");
    // A 1,000-op chain in checkpointed segments of 40 ops.
    let x = Tensor::rand_uniform(&dev, [256], -1.0, 1.0, 2);
    let segment = |v: &[Tensor]| {
        let mut y = v[0].clone();
        for i in 0..40 {
            y = match i % 4 {
                0 => &y * 1.0001,
                1 => &y + 0.001,
                2 => y.tanh(),
                _ => y.sin(),
            };
        }
        y
    };
    let mut a = x.clone();
    let mut b = x.clone();
    for _ in 0..25 {
        a = segment(&[a]);
        b = checkpoint(segment, &[&b]);
    }
    let ga = grad(&a.sum(), &[&x]);
    let gb = grad(&b.sum(), &[&x]);
    assert_eq!(bits(&ga), bits(&gb), "chain");
    // Shared subexpressions: the region's output used twice, its input
    // also used outside it.
    let u = Tensor::rand_uniform(&dev, [8, 8], -1.0, 1.0, 3);
    let region = |v: &[Tensor]| (&v[0].exp() * &v[0].sin()).matmul(&v[0]);
    let f = |checkpointed: bool| {
        let r = if checkpointed {
            checkpoint(region, &[&u])
        } else {
            region(std::slice::from_ref(&u))
        };
        (&(&r * &r) + &(&r * &u)).sum()
    };
    warm_up(&f, &[&u]);
    assert_eq!(
        bits(&grad(&f(false), &[&u])),
        bits(&grad(&f(true), &[&u])),
        "shared"
    );
}

#[test]
fn higher_derivatives_go_through_a_checkpoint() {
    let dev = gpu!();
    let x = Tensor::rand_uniform(&dev, [6], -1.0, 1.0, 4);
    let v = Tensor::rand_uniform(&dev, [6], -1.0, 1.0, 5);
    let region = |t: &[Tensor]| t[0].tanh().powf(3.0);
    // grad of grad: d/dx Σ (∂/∂x Σ f(x))² through the recomputed copy.
    let second = |checkpointed: bool| {
        let y = if checkpointed {
            checkpoint(region, &[&x])
        } else {
            region(std::slice::from_ref(&x))
        };
        let g = grad(&y.sum(), &[&x]).remove(0);
        grad(&g.square().sum(), &[&x]).remove(0)
    };
    assert_eq!(
        bits(&[second(false)]),
        bits(&[second(true)]),
        "grad of grad"
    );
    // Forward over reverse: a Hessian-vector product.
    let plain = hvp(|t| region(std::slice::from_ref(t)).sum(), &x, &v);
    let kept = hvp(|t| checkpoint(region, &[t]).sum(), &x, &v);
    assert_eq!(bits(&[plain]), bits(&[kept]), "hvp");
}

#[test]
fn checkpoints_lower_the_peak_memory_of_a_deep_chain() {
    let Some(dev) = common::private_device() else {
        return;
    };
    // 64 tanh layers of width 128 on a batch of 64: reverse mode keeps
    // every activation; checkpointing every 8 layers keeps the 8 segment
    // inputs plus one segment's recomputed activations at a time.
    // The same matmul kernel in both runs and in the predictions
    // (autotune would time the shapes at their second sight).
    dev.force_variant(Some(0));
    let (depth, width, batch, every) = (64usize, 128usize, 64usize, 8usize);
    let w = Tensor::rand_normal(&dev, [width, width], 0.0, 0.1, 6)
        .to_variable()
        .unwrap();
    let x = Tensor::rand_uniform(&dev, [batch, width], -1.0, 1.0, 7);
    x.realize_blocking().unwrap();
    let run = |checkpointed: bool| {
        let mut h = x.clone();
        for _ in 0..depth / every {
            let segment = move |v: &[Tensor]| {
                let mut h = v[0].clone();
                for _ in 0..every {
                    h = h.matmul(&v[1]).tanh();
                }
                h
            };
            h = if checkpointed {
                checkpoint(segment, &[&h, &w])
            } else {
                segment(&[h.clone(), w.clone()])
            };
        }
        let loss = h.square().mean();
        let g = grad(&loss, &[&w]).remove(0);
        let predicted = predict_peak_bytes(&[&loss, &g]).unwrap();
        let report = webgrad::predict_memory(&[&loss, &g]).unwrap();
        assert_eq!(report.peak_bytes, predicted);
        if checkpointed {
            // Every layer but the last segment's output recomputed once:
            // a matmul (2·batch·width² FLOPs) and a tanh per layer.
            assert!(report.recomputed_kernels >= depth, "{report:?}");
            let matmul = (2 * batch * width * width) as u64;
            assert!(
                report.recomputed_flops >= (depth as u64 - 8) * matmul,
                "{report:?}"
            );
            assert!(report.recomputed_bytes >= ((depth - 8) * batch * width * 4) as u64);
        } else {
            assert_eq!(report.recomputed_kernels, 0);
            assert_eq!(report.recomputed_flops, 0);
        }
        dev.reset_peak_memory();
        let got = read_all_blocking(&[&loss, &g]).unwrap();
        let measured = dev.memory_stats().peak_live_bytes;
        (predicted, measured, got)
    };
    let (p_plain, m_plain, plain) = run(false);
    let (p_kept, m_kept, kept) = run(true);
    assert_eq!(p_plain, m_plain);
    assert_eq!(p_kept, m_kept);
    let bits = |v: &Vec<Vec<f32>>| -> Vec<Vec<u32>> {
        v.iter()
            .map(|x| x.iter().map(|f| f.to_bits()).collect())
            .collect()
    };
    let differ: Vec<(usize, usize)> = (0..2)
        .flat_map(|k| (0..plain[k].len()).map(move |i| (k, i)))
        .filter(|&(k, i)| plain[k][i].to_bits() != kept[k][i].to_bits())
        .collect();
    if let Some(&(k, i)) = differ.first() {
        eprintln!(
            "{} differ, first {k}/{i}: {} vs {}",
            differ.len(),
            plain[k][i],
            kept[k][i]
        );
    }
    assert_eq!(bits(&plain), bits(&kept), "same gradient");
    let activation = (batch * width * 4) as u64;
    eprintln!(
        "peak without checkpoints {p_plain} bytes ({} activations), with {p_kept} ({})",
        p_plain / activation,
        p_kept / activation
    );
    // Without: ~64 activations kept; with: 8 segment inputs + ~8 recomputed.
    assert!(p_plain >= 60 * activation, "{p_plain}");
    assert!(p_kept * 2 < p_plain, "{p_kept} vs {p_plain}");
}

#[test]
fn tensors_a_region_captures_get_their_gradients() {
    let dev = gpu!();
    let x = Tensor::rand_uniform(&dev, [4, 8], -1.0, 1.0, 8);
    let w = Tensor::rand_normal(&dev, [8, 8], 0.0, 0.3, 9);
    let b = Tensor::rand_normal(&dev, [8], 0.0, 0.3, 10);
    // The weights captured by the closure, not passed as arguments.
    let (wc, bc) = (w.clone(), b.clone());
    let kept = checkpoint(move |v: &[Tensor]| (&v[0].matmul(&wc) + &bc).tanh(), &[&x]);
    let plain = (&x.matmul(&w) + &b).tanh();
    let gk = grad(&kept.square().sum(), &[&x, &w, &b]);
    let gp = grad(&plain.square().sum(), &[&x, &w, &b]);
    assert_eq!(bits(&gp), bits(&gk));
    // Not zero: the captured weights really receive their gradient.
    assert!(gk[1].to_vec_blocking().unwrap().iter().any(|v| *v != 0.0));
}

/// Training under a memory budget: without checkpoints the step does not
/// fit (the realize refuses before running); `sequential_within_budget`
/// picks segments that fit and the loss goes down; a budget nothing fits
/// names the smallest peak found.
#[test]
fn a_chain_trains_within_a_memory_budget_that_plain_reverse_mode_exceeds() {
    use std::sync::Arc;
    use webgrad::optim::{Optimizer, Sgd};
    use webgrad::{LayerFn, checkpoint_sequential, choose_segments};
    let Some(dev) = common::private_device() else {
        return;
    };
    let (depth, width, batch) = (36usize, 64usize, 64usize);
    let ws: Vec<Tensor> = (0..depth)
        .map(|i| {
            Tensor::rand_normal(&dev, [width, width], 0.0, 0.12, 20 + i as u64)
                .to_variable()
                .unwrap()
        })
        .collect();
    let layers: Vec<LayerFn> = ws
        .iter()
        .map(|w| {
            let w = w.clone();
            Arc::new(move |h: &Tensor| h.matmul(&w).tanh()) as LayerFn
        })
        .collect();
    let x = Tensor::rand_uniform(&dev, [batch, width], -1.0, 1.0, 99);
    let target = Tensor::rand_uniform(&dev, [batch, width], -0.5, 0.5, 98);
    webgrad::realize_all_blocking(&[&x, &target]).unwrap();
    let mut opt = Sgd::new(0.5);
    let refs: Vec<&Tensor> = ws.iter().collect();
    let mut step = |y: &Tensor| {
        let loss = y.mse(&target);
        let grads = grad(&loss, &refs);
        let mut out = vec![loss];
        out.extend(opt.step(&refs, &grads).unwrap());
        out
    };
    // Peaks without checkpoints and with √n = 6 segments, predicted.
    let plain = step(&checkpoint_sequential(&layers, &x, 0));
    let plain_peak = predict_peak_bytes(&plain.iter().collect::<Vec<_>>()).unwrap();
    drop(plain);
    let segmented = step(&checkpoint_sequential(&layers, &x, 6));
    let segmented_peak = predict_peak_bytes(&segmented.iter().collect::<Vec<_>>()).unwrap();
    drop(segmented);
    assert!(
        segmented_peak < plain_peak,
        "{segmented_peak} vs {plain_peak}"
    );
    let budget = (plain_peak + segmented_peak) / 2;
    dev.set_memory_budget(Some(budget));
    // Checkpoints placed by hand: the automatic recomputation off.
    dev.set_auto_remat(false);
    // Plain reverse mode does not fit: refused before anything runs.
    let plain = step(&checkpoint_sequential(&layers, &x, 0));
    let kernels = dev.counters().kernels;
    match webgrad::realize_all_blocking(&plain.iter().collect::<Vec<_>>()) {
        Err(webgrad::Error::OutOfBudget { needed, budget: b }) => {
            assert_eq!((needed, b), (plain_peak, budget));
        }
        other => panic!("expected OutOfBudget, got {other:?}"),
    }
    assert_eq!(dev.counters().kernels, kernels);
    drop(plain);
    // Within the budget: segments chosen (SGD keeps no host state, so the
    // probe can be the step itself), and training works.
    let segment = choose_segments(&layers, &x, budget, &mut step).unwrap();
    assert!(segment > 0);
    let mut losses = Vec::new();
    for _ in 0..8 {
        let tensors = step(&checkpoint_sequential(&layers, &x, segment));
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let read = webgrad::read_and_realize_blocking(&refs[..1], &refs[1..]).unwrap();
        losses.push(read[0][0]);
        assert!(dev.memory_stats().peak_live_bytes <= budget);
    }
    assert!(losses[7] < losses[0], "{losses:?}");
    // A budget nothing fits names the smallest peak found.
    dev.set_memory_budget(None);
    let live = dev.memory_stats().live_bytes;
    match choose_segments(&layers, &x, live, &mut step) {
        Err(webgrad::Error::OutOfBudget { needed, .. }) => {
            assert!(needed > live && needed < plain_peak, "{needed}");
        }
        other => panic!("expected OutOfBudget, got {other:?}"),
    }
}

#[test]
fn a_variable_updated_between_forward_and_backward_is_refused() {
    let dev = gpu!();
    let w = Tensor::rand_normal(&dev, [4, 4], 0.0, 0.5, 11)
        .to_variable()
        .unwrap();
    let x = Tensor::rand_uniform(&dev, [2, 4], -1.0, 1.0, 12);
    let y = checkpoint(|v: &[Tensor]| v[0].matmul(&v[1]).tanh(), &[&x, &w]);
    // An update recorded after the region: re-running it would read the
    // new weights, so the backward pass refuses instead of differentiating
    // something else.
    let _update = w.assign(&(&w * 0.5));
    let msg = common::panic_message(|| drop(grad(&y.sum(), &[&w])));
    assert!(
        msg.contains("was updated after the region was recorded"),
        "{msg}"
    );
}

/// A deep MLP's weights (variables, seeded) and input, realized.
fn deep_mlp(
    dev: &webgrad::Device,
    depth: usize,
    width: usize,
    batch: usize,
) -> (Vec<Tensor>, Tensor) {
    let ws: Vec<Tensor> = (0..depth)
        .map(|i| {
            Tensor::rand_normal(dev, [width, width], 0.0, 0.15, 40 + i as u64)
                .to_variable()
                .unwrap()
        })
        .collect();
    let x = Tensor::rand_uniform(dev, [batch, width], -1.0, 1.0, 7);
    x.realize_blocking().unwrap();
    (ws, x)
}

/// One SGD step (lr 0.1) of the MLP with `activation`: [loss, updates...].
/// The gradients are intermediates, freed as their updates run.
fn sgd_step(ws: &[Tensor], x: &Tensor, activation: fn(&Tensor) -> Tensor) -> Vec<Tensor> {
    let mut h = x.clone();
    for w in ws {
        h = activation(&h.matmul(w));
    }
    let loss = h.square().mean();
    let refs: Vec<&Tensor> = ws.iter().collect();
    let grads = grad(&loss, &refs);
    let mut out = vec![loss];
    out.extend(
        ws.iter()
            .zip(&grads)
            .map(|(w, g)| w.assign(&(w - &(g * 0.1)))),
    );
    out
}

/// Runs a step: its loss and updated weights, read back.
fn run_step(step: &[Tensor]) -> webgrad::Result<Vec<Vec<f32>>> {
    read_all_blocking(&step.iter().collect::<Vec<_>>())
}

fn assert_close(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 + 1e-5 * b.abs(),
                "{what}: value {k}[{i}] {a} vs {b}"
            );
        }
    }
}

/// Without any checkpoint in the model, a device budget below the step's
/// peak is met by recomputing saved values (segments of the recording
/// order): the measured peak stays within it, the step computes what the
/// unbudgeted one does, and with recomputation off it is refused.
#[test]
fn a_budget_is_met_by_recomputing_saved_values() {
    let Some(dev) = common::private_device() else {
        return;
    };
    // The same kernels with and without the budget.
    dev.force_variant(Some(0));
    let tanh: fn(&Tensor) -> Tensor = |t| t.tanh();
    // Two copies of one model: one stepped without a budget, one with.
    let (plain_ws, x) = deep_mlp(&dev, 36, 64, 64);
    let (ws, _) = deep_mlp(&dev, 36, 64, 64);
    let step = sgd_step(&plain_ws, &x, tanh);
    let peak = predict_peak_bytes(&step.iter().collect::<Vec<_>>()).unwrap();
    let plain = run_step(&step).unwrap();
    drop(step);
    let live = dev.memory_stats().live_bytes;
    let budget = live + (peak - live) / 2;

    dev.set_memory_budget(Some(budget));
    dev.set_auto_remat(false);
    let step = sgd_step(&ws, &x, tanh);
    match run_step(&step) {
        Err(webgrad::Error::OutOfBudget { needed, .. }) => assert!(needed > budget),
        other => panic!("expected OutOfBudget, got {other:?}"),
    }
    drop(step);

    dev.set_auto_remat(true);
    let step = sgd_step(&ws, &x, tanh);
    let refs: Vec<&Tensor> = step.iter().collect();
    let before = dev.counters().rematerialized;
    // The prediction under a budget is of the plan the realize will run.
    let predicted = webgrad::predict_memory(&refs).unwrap();
    assert_eq!(dev.counters().rematerialized, before + 1);
    assert!(predicted.peak_bytes <= budget, "{predicted:?} vs {budget}");
    assert!(predicted.recomputed_kernels > 0, "{predicted:?}");
    dev.reset_peak_memory();
    let values = run_step(&step).unwrap();
    assert!(
        dev.memory_stats().peak_live_bytes <= budget,
        "measured peak {} over the budget {budget}",
        dev.memory_stats().peak_live_bytes
    );
    assert_close("loss and updated weights", &values, &plain);
    dev.set_memory_budget(None);
    dev.force_variant(None);
}

/// Cheap recomputation first: with silu activations (whose adjoint reads
/// their input), a budget that dropping the activations' outputs meets is
/// met by recomputing silu alone, no matmul.
#[test]
fn cheap_values_are_recomputed_before_products() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let (depth, width, batch) = (36usize, 64usize, 64usize);
    let (ws, x) = deep_mlp(&dev, depth, width, batch);
    let silu: fn(&Tensor) -> Tensor = |t| t.silu();
    let step = sgd_step(&ws, &x, silu);
    let peak = predict_peak_bytes(&step.iter().collect::<Vec<_>>()).unwrap();
    drop(step);
    // A quarter of the silu outputs' bytes less than the plain peak.
    let layer_bytes = (batch * width * 4) as u64;
    let budget = peak - depth as u64 * layer_bytes / 4;
    dev.set_memory_budget(Some(budget));
    let step = sgd_step(&ws, &x, silu);
    let refs: Vec<&Tensor> = step.iter().collect();
    let predicted = webgrad::predict_memory(&refs).unwrap();
    let one_product = 2 * (batch * width * width) as u64;
    assert!(predicted.peak_bytes <= budget, "{predicted:?} vs {budget}");
    assert!(predicted.recomputed_kernels > 0, "{predicted:?}");
    assert!(
        predicted.recomputed_flops < one_product,
        "recomputed {} FLOPs: a product was recomputed ({predicted:?})",
        predicted.recomputed_flops
    );
    dev.reset_peak_memory();
    run_step(&step).unwrap();
    assert!(dev.memory_stats().peak_live_bytes <= budget);
    dev.set_memory_budget(None);
}

/// A budget no recomputation meets: refused before anything runs, the
/// error naming the smallest peak reached (below the plain one).
#[test]
fn a_budget_nothing_meets_names_the_smallest_peak() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let (ws, x) = deep_mlp(&dev, 16, 32, 32);
    let g = sgd_step(&ws, &x, |t| t.tanh());
    let refs_g: Vec<&Tensor> = g.iter().collect();
    let peak = predict_peak_bytes(&refs_g).unwrap();
    let budget = dev.memory_stats().live_bytes + 1;
    dev.set_memory_budget(Some(budget));
    let kernels = dev.counters().kernels;
    match webgrad::realize_all_blocking(&refs_g) {
        Err(webgrad::Error::OutOfBudget { needed, budget: b }) => {
            assert_eq!(b, budget);
            assert!(needed > budget && needed < peak, "{needed} vs plain {peak}");
        }
        other => panic!("expected OutOfBudget, got {other:?}"),
    }
    assert_eq!(dev.counters().kernels, kernels, "nothing ran");
    dev.set_memory_budget(None);
    // The graph is as it was: without the budget it runs as planned.
    assert_eq!(predict_peak_bytes(&refs_g).unwrap(), peak);
    webgrad::realize_all_blocking(&refs_g).unwrap();
}

/// A realize of gradients alone (no loss, no update) is rematerialized
/// under a budget as a training step is.
#[test]
fn a_realize_of_gradients_alone_meets_a_budget() {
    let Some(dev) = common::private_device() else {
        return;
    };
    dev.force_variant(Some(0));
    // Activations [256, 64] outweigh the gradients [64, 64], which are
    // held to the end: recomputing activations is what can lower the peak.
    let (ws, x) = deep_mlp(&dev, 16, 64, 256);
    let gradients = || {
        let mut h = x.clone();
        for w in &ws {
            h = h.matmul(w).tanh();
        }
        grad(&h.square().mean(), &ws.iter().collect::<Vec<_>>())
    };
    let plain_grads = gradients();
    let refs: Vec<&Tensor> = plain_grads.iter().collect();
    let peak = predict_peak_bytes(&refs).unwrap();
    let plain = read_all_blocking(&refs).unwrap();
    drop(plain_grads);
    let live = dev.memory_stats().live_bytes;
    let budget = live + (peak - live) * 9 / 10;
    dev.set_memory_budget(Some(budget));
    let grads = gradients();
    let refs: Vec<&Tensor> = grads.iter().collect();
    dev.reset_peak_memory();
    let before = dev.counters().rematerialized;
    let values = read_all_blocking(&refs);
    let rematerialized = dev.counters().rematerialized - before;
    dev.set_memory_budget(None);
    dev.force_variant(None);
    let values = values.unwrap();
    assert_eq!(rematerialized, 1);
    assert!(
        dev.memory_stats().peak_live_bytes <= budget,
        "measured peak {} over the budget {budget}",
        dev.memory_stats().peak_live_bytes
    );
    assert_close("gradients", &values, &plain);
}
