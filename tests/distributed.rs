//! Data-parallel training with local replicas (a thread and a device each):
//! N replicas with batch b against one with batch N·b, bit-identical
//! replicas, gradient accumulation, checkpoints and failures.

mod common;

use webgrad::data::{Dataset, spiral};
use webgrad::distributed::{DataParallel, LocalTransport, ShardedSampler, run_local};
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, GradAccumulator, Optimizer, Sgd};
use webgrad::{Device, Error, Tensor, read_all_blocking, realize_all_blocking};

fn device() -> Device {
    common::private_device().expect("no GPU adapter")
}

fn data() -> Dataset {
    spiral(4, 64, 3)
}

fn model(dev: &Device, seed: u64) -> Mlp {
    Mlp::new(
        dev,
        &[2, 32, 32, 4],
        Activation::Tanh,
        Init::XavierUniform,
        seed,
    )
    .unwrap()
}

fn values(params: &[&Tensor]) -> Vec<Vec<f32>> {
    read_all_blocking(params).unwrap()
}

/// `steps` data-parallel SGD steps on `ranks` replicas with `batch` each;
/// every replica's parameters afterwards, in rank order.
fn train(ranks: usize, batch: usize, steps: usize) -> Vec<Vec<Vec<f32>>> {
    let set = data();
    run_local(ranks, |rank, transport| {
        let dev = device();
        let mlp = model(&dev, 1);
        let params = mlp.parameters();
        let mut dp = DataParallel::new(transport);
        let mut opt = Sgd::new(0.2).momentum(0.9);
        let sampler = ShardedSampler::new(set.len(), rank, ranks, 11);
        for (i, b) in sampler.batches(0, batch).iter().take(steps).enumerate() {
            let (x, labels) = set.select(b).tensors(&dev);
            let loss = mlp.forward(&x).cross_entropy(&labels);
            let mean = dp.step(&mut opt, &loss, &params)?;
            assert!(mean.is_finite(), "step {i}: loss {mean}");
        }
        Ok(values(&params))
    })
    .unwrap()
}

#[test]
fn two_replicas_with_batch_16_train_as_one_with_batch_32() {
    if common::device().is_none() {
        return;
    }
    let one = train(1, 32, 6);
    let two = train(2, 16, 6);
    // The replicas hold the same bits.
    assert_eq!(two[0], two[1]);
    // And the parameters of one rank with twice the batch, up to the order
    // of the summation (each replica's mean over 16, then their mean,
    // against one mean over 32): a few f32 roundings per step.
    for (k, (a, b)) in one[0].iter().zip(&two[0]).enumerate() {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                "parameter {k}: {x} (one rank) vs {y} (two ranks)"
            );
        }
    }
    // Training moved them.
    let dev = device();
    let start = values(&model(&dev, 1).parameters());
    assert_ne!(start, one[0]);
}

/// A small character transformer's Adam steps on replicas that start from
/// different weights: after `broadcast_parameters` they hold the same bits
/// at every step.
#[test]
fn replicas_stay_bit_identical_over_many_steps() {
    if common::device().is_none() {
        return;
    }
    use webgrad::models::{CharTransformer, TransformerConfig};
    let config = TransformerConfig {
        vocabulary: 12,
        context: 8,
        width: 16,
        heads: 2,
        layers: 1,
        dropout: 0.0,
    };
    let steps = 25;
    let finals = run_local(2, |rank, transport| {
        let dev = device();
        // Different initial weights on purpose.
        let model = CharTransformer::new(&dev, config, 100 + rank as u64)?;
        let params = model.parameters();
        let mut dp = DataParallel::new(transport).bucket_bytes(4096);
        dp.broadcast_parameters(&params)?;
        dp.check_in_sync(&params)?;
        let mut opt = Adam::new(3e-3);
        for step in 0..steps {
            let ids: Vec<u32> = (0..2 * 8)
                .map(|i| ((i * 5 + step * 3 + rank * 7) % 12) as u32)
                .collect();
            let targets: Vec<usize> = ids.iter().map(|&i| (i as usize + 1) % 12).collect();
            let ids = webgrad::IndexTensor::from_vec(&dev, ids, [2, 8]);
            let loss = model.loss(&ids, &targets, None);
            dp.step(&mut opt, &loss, &params)?;
            dp.check_in_sync(&params)?;
        }
        let stats = dp.stats();
        assert_eq!(stats.reductions, steps as u64);
        // 4 KiB buckets: several collectives per step.
        assert!(stats.buckets > stats.reductions, "{stats:?}");
        Ok(values(&params))
    })
    .unwrap();
    assert_eq!(finals[0], finals[1]);
}

#[test]
fn diverged_replicas_are_named() {
    if common::device().is_none() {
        return;
    }
    let outcome = run_local(3, |rank, transport| {
        let dev = device();
        let w = Tensor::from_vec(&dev, vec![1.0, 2.0], [2]).to_variable()?;
        let mut dp = DataParallel::new(transport);
        if rank == 2 {
            realize_all_blocking(&[&w.assign(&w.scale(1.5))])?;
        }
        Ok(dp.check_in_sync(&[&w]).err().map(|e| e.to_string()))
    })
    .unwrap();
    for message in outcome {
        let message = message.expect("every rank sees the difference");
        assert!(message.contains("[2]"), "{message}");
    }
}

#[test]
fn accumulated_micro_batches_are_reduced_once() {
    if common::device().is_none() {
        return;
    }
    let set = data();
    // 2 replicas × 2 micro-batches of 8 against 1 replica × 1 batch of 32.
    let run = |ranks: usize, micro: usize| {
        run_local(ranks, |rank, transport| {
            let dev = device();
            let mlp = model(&dev, 4);
            let params = mlp.parameters();
            let mut dp = DataParallel::new(transport);
            let mut acc = GradAccumulator::new(&params)?;
            let mut opt = Sgd::new(0.3);
            let per_rank = 32 / ranks;
            let sampler = ShardedSampler::new(set.len(), rank, ranks, 5);
            for b in sampler.batches(0, per_rank).iter().take(3) {
                for part in b.chunks(per_rank / micro) {
                    let (x, labels) = set.select(part).tensors(&dev);
                    let loss = mlp.forward(&x).cross_entropy(&labels);
                    let added = acc.add(&webgrad::grad(&loss, &params));
                    realize_all_blocking(&added.iter().collect::<Vec<_>>())?;
                }
                let (means, resets) = acc.mean();
                let averaged = dp.all_reduce_mean(&means)?;
                let updates = opt.step(&params, &averaged)?;
                realize_all_blocking(&updates.iter().chain(&resets).collect::<Vec<_>>())?;
            }
            assert_eq!(dp.stats().reductions, 3);
            Ok(values(&params))
        })
        .unwrap()
    };
    let one = run(1, 1);
    let two = run(2, 2);
    assert_eq!(two[0], two[1]);
    for (a, b) in one[0].iter().flatten().zip(two[0].iter().flatten()) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    if common::device().is_none() {
        return;
    }
    let set = data();
    let dir = std::env::temp_dir().join(format!("webgrad-ddp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("step2.safetensors");
    // Steps `from..to` of epoch 0; with `resume`, first load the checkpoint
    // into a model initialized differently and a fresh optimizer; with
    // `save`, write one at the end.
    let run = |from: usize, to: usize, resume: bool, save: bool| {
        run_local(2, |rank, transport| {
            let dev = device();
            let mlp = model(&dev, if resume { 77 } else { 1 });
            let params = mlp.parameters();
            let mut dp = DataParallel::new(transport);
            let mut opt = Adam::new(0.01);
            if resume {
                dp.load_checkpoint(&file, &mlp.named_state(), &mut opt, &params)?;
                assert_eq!(opt.steps(), from);
            }
            let sampler = ShardedSampler::new(set.len(), rank, 2, 9);
            for b in &sampler.batches(0, 16)[from..to] {
                let (x, labels) = set.select(b).tensors(&dev);
                let loss = mlp.forward(&x).cross_entropy(&labels);
                dp.step(&mut opt, &loss, &params)?;
            }
            if save {
                dp.save_checkpoint(&file, &mlp.named_state(), &mut opt, &params)?;
            }
            Ok(values(&params))
        })
        .unwrap()
    };
    let uninterrupted = run(0, 4, false, false);
    run(0, 2, false, true);
    let resumed = run(2, 4, true, false);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(resumed, uninterrupted);
}

#[test]
fn a_replica_that_panics_stops_the_others_with_its_rank() {
    if common::device().is_none() {
        return;
    }
    let outcome = run_local(3, |rank, transport: LocalTransport| {
        let dev = device();
        let w = Tensor::from_vec(&dev, vec![1.0; 4], [4]).to_variable()?;
        let mut dp = DataParallel::new(transport);
        let mut opt = Sgd::new(0.1);
        for step in 0..5 {
            if rank == 1 && step == 2 {
                panic!("replica 1 ran out of data");
            }
            let loss = w.square().sum();
            dp.step(&mut opt, &loss, &[&w])?;
        }
        Ok(())
    });
    match outcome {
        Err(Error::RankFailed { rank, message }) => {
            assert_eq!(rank, 1);
            assert!(message.contains("ran out of data"), "{message}");
        }
        other => panic!("expected rank 1's failure, got {other:?}"),
    }
}

#[test]
fn a_replica_that_leaves_early_does_not_hang_the_others() {
    if common::device().is_none() {
        return;
    }
    let outcome = run_local(2, |rank, transport| {
        let dev = device();
        let w = Tensor::from_vec(&dev, vec![1.0; 4], [4]).to_variable()?;
        let mut dp = DataParallel::new(transport);
        let mut opt = Sgd::new(0.1);
        let steps = if rank == 0 { 3 } else { 1 };
        for _ in 0..steps {
            dp.step(&mut opt, &w.square().sum(), &[&w])?;
        }
        Ok(())
    });
    let message = outcome.expect_err("rank 0 cannot finish").to_string();
    assert!(message.contains("replica 1 left the group"), "{message}");
}

#[test]
fn a_replica_out_of_memory_stops_the_others_with_its_error() {
    if common::device().is_none() {
        return;
    }
    let outcome = run_local(2, |rank, transport| {
        let dev = device();
        let w = Tensor::from_vec(&dev, vec![1.0; 1024], [32, 32]).to_variable()?;
        if rank == 1 {
            // Less than the step needs: its realize fails, as on a GPU
            // whose memory is full.
            dev.set_memory_budget(Some(1024));
        }
        let mut dp = DataParallel::new(transport);
        let mut opt = Sgd::new(0.1);
        for _ in 0..3 {
            dp.step(&mut opt, &w.matmul(&w).square().sum(), &[&w])?;
        }
        Ok(())
    });
    match outcome {
        Err(Error::RankFailed { rank, message }) => {
            assert_eq!(rank, 1);
            assert!(message.contains("memory budget"), "{message}");
        }
        other => panic!("expected rank 1's failure, got {other:?}"),
    }
}
