//! Data-parallel training (`webgrad::distributed`) of the digits CNN and
//! the character transformer: one replica, then N replicas sharing the same
//! global batch, each on its own device and thread, with what the
//! gradients' all-reduce costs per step.
//!
//! cargo run --release --example train_ddp [-- --ranks N] [--model cnn|gpt|both] [--gpt-steps S]
//!
//! Over MPI, one process per GPU (here every rank on lavapipe):
//!
//! cargo build --release --features mpi --example train_ddp
//! mpirun -np 2 target/release/examples/train_ddp --mpi [--model cnn|gpt|both]
//!
//! The CNN trains 30 epochs at a global batch of 32 (Adam, cosine decay,
//! images shifted by up to a pixel, as `train_cnn`), the transformer
//! `--gpt-steps` steps at a global batch of 32 × 64 characters (AdamW, as
//! `train_gpt`). With N ranks each takes 1/N of every global batch
//! (`ShardedSampler`, `text::batch_rows`), so both runs see the same
//! examples and should reach the same accuracy and loss.

use std::time::Instant;

use webgrad::data::Dataset;
use webgrad::distributed::{DataParallel, ShardedSampler, Transport, run_local};
use webgrad::layers::Module;
use webgrad::models::{CharTransformer, DigitsCnn, TransformerConfig};
use webgrad::optim::{Adam, LrSchedule};
use webgrad::text::{CharCorpus, batch, batch_rows};
use webgrad::{Device, Result};

const GLOBAL_BATCH: usize = 32;
const CNN_EPOCHS: usize = 30;

struct Args {
    ranks: usize,
    cnn: bool,
    gpt: bool,
    gpt_steps: usize,
    mpi: bool,
}

fn args() -> Args {
    let mut a = Args {
        ranks: 2,
        cnn: true,
        gpt: true,
        gpt_steps: 300,
        mpi: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--ranks" => a.ranks = value().parse().expect("--ranks N"),
            "--gpt-steps" => a.gpt_steps = value().parse().expect("--gpt-steps S"),
            "--model" => match value().as_str() {
                "cnn" => a.gpt = false,
                "gpt" => a.cnn = false,
                "both" => {}
                other => panic!("--model cnn, gpt or both, not {other}"),
            },
            "--mpi" => a.mpi = true,
            other => {
                panic!("unknown flag {other} (use --ranks N, --model M, --gpt-steps S, --mpi)")
            }
        }
    }
    assert!(
        a.ranks >= 1 && GLOBAL_BATCH.is_multiple_of(a.ranks),
        "--ranks must divide the global batch of {GLOBAL_BATCH}"
    );
    a
}

/// One run's outcome on one rank.
struct Outcome {
    /// Test accuracy (CNN) or validation loss (transformer).
    metric: f64,
    steps: usize,
    seconds: f64,
    stats: webgrad::distributed::CommStats,
}

fn train_cnn<T: Transport>(dev: &Device, transport: T) -> Result<Outcome> {
    let (rank, ranks) = (transport.rank(), transport.size());
    let (train, test) = Dataset::digits()?.split(0.2, 0);
    let model = DigitsCnn::new(dev, 0)?;
    let params = model.parameters();
    let mut dp = DataParallel::new(transport).time_phases(true);
    dp.broadcast_parameters(&params)?;
    let per_epoch = train.len() / GLOBAL_BATCH;
    let mut opt = Adam::new(LrSchedule::cosine(3e-3, per_epoch * CNN_EPOCHS));
    let start = Instant::now();
    let mut steps = 0;
    for epoch in 0..CNN_EPOCHS {
        let shifted = train.shifted_images(8, 1, epoch as u64);
        let sampler = ShardedSampler::new(shifted.len(), rank, ranks, epoch as u64);
        for b in sampler.batches(epoch as u64, GLOBAL_BATCH / ranks) {
            let (x, labels) = shifted.select(&b).tensors(dev);
            dp.step(&mut opt, &model.forward(&x).cross_entropy(&labels), &params)?;
            steps += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    dp.check_in_sync(&params)?;
    let (x, _) = test.tensors(dev);
    let metric = test.accuracy(&model.forward(&x).to_vec_blocking()?);
    Ok(Outcome {
        metric,
        steps,
        seconds,
        stats: dp.stats(),
    })
}

fn train_gpt<T: Transport>(dev: &Device, transport: T, total_steps: usize) -> Result<Outcome> {
    let (rank, ranks) = (transport.rank(), transport.size());
    let corpus = CharCorpus::kjv();
    let (train, val) = corpus.split(0.1);
    let config = TransformerConfig {
        vocabulary: corpus.vocabulary.len(),
        context: 64,
        width: 64,
        heads: 4,
        layers: 2,
        dropout: 0.0,
    };
    let model = CharTransformer::new(dev, config, 0)?;
    let params = model.parameters();
    let mut dp = DataParallel::new(transport).time_phases(true);
    dp.broadcast_parameters(&params)?;
    let mut opt = Adam::new(LrSchedule::warmup(5e-3, 50)).decoupled_weight_decay(0.01);
    let per_rank = GLOBAL_BATCH / ranks;
    let rows = rank * per_rank..(rank + 1) * per_rank;
    let start = Instant::now();
    for step in 0..total_steps {
        let b = batch_rows(dev, train, GLOBAL_BATCH, 64, step as u64, rows.clone());
        dp.step(&mut opt, &model.loss(&b.inputs, &b.targets, None), &params)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    dp.check_in_sync(&params)?;
    // Validation loss over 10 fixed batches, as `train_gpt`.
    let mut total = 0.0;
    for k in 0..10 {
        let b = batch(dev, val, 32, 64, 1_000_000 + k);
        total += model.loss(&b.inputs, &b.targets, None).item_blocking()?;
    }
    Ok(Outcome {
        metric: f64::from(total / 10.0),
        steps: total_steps,
        seconds,
        stats: dp.stats(),
    })
}

fn report(model: &str, ranks: usize, o: &Outcome) {
    let per_step = |s: f64| 1e3 * s / o.steps as f64;
    let step_ms = per_step(o.seconds);
    let comm_ms = per_step(o.stats.readback_seconds + o.stats.reduce_seconds);
    let metric = match model {
        "cnn" => format!("test accuracy {:.1}%", 100.0 * o.metric),
        _ => format!("validation loss {:.3}", o.metric),
    };
    println!(
        "{model} ranks {ranks}: {metric}; {} steps, {step_ms:.2} ms/step: gradients computed {:.2} ms, \
         read back {:.3} ms, all-reduced {:.3} ms ({} bytes); communication {:.1}% of the step",
        o.steps,
        per_step(o.stats.backward_seconds),
        per_step(o.stats.readback_seconds),
        per_step(o.stats.reduce_seconds),
        o.stats.bytes / o.steps as u64,
        100.0 * comm_ms / step_ms
    );
}

/// `train` on 1 replica, then on `ranks` local replicas (a device each).
fn local(
    ranks: usize,
    name: &str,
    train: impl Fn(&Device, webgrad::distributed::LocalTransport) -> Result<Outcome> + Sync,
) -> Result<()> {
    for n in [1, ranks] {
        let outcomes = run_local(n, |_, transport| train(&Device::new_blocking()?, transport))?;
        report(name, n, &outcomes[0]);
    }
    Ok(())
}

#[cfg(feature = "mpi")]
fn over_mpi(args: &Args) -> Result<()> {
    let mut mpi = webgrad::distributed::Mpi::init()?;
    let dev = Device::new_blocking()?;
    let (rank, ranks) = (mpi.rank(), mpi.size());
    if args.cnn {
        let o = train_cnn(&dev, &mut mpi)?;
        if rank == 0 {
            report("cnn", ranks, &o);
        }
    }
    if args.gpt {
        let o = train_gpt(&dev, &mut mpi, args.gpt_steps)?;
        if rank == 0 {
            report("gpt", ranks, &o);
        }
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn over_mpi(_: &Args) -> Result<()> {
    panic!("--mpi needs the mpi feature: cargo build --release --features mpi --example train_ddp");
}

fn main() -> Result<()> {
    let args = args();
    if args.mpi {
        return over_mpi(&args);
    }
    let adapter = Device::new_blocking()?.adapter().unwrap().name.clone();
    println!(
        "local replicas on {adapter}, a device and a thread each; global batch {GLOBAL_BATCH}"
    );
    if args.cnn {
        local(args.ranks, "cnn", train_cnn)?;
    }
    if args.gpt {
        let steps = args.gpt_steps;
        local(args.ranks, "gpt", |dev, t| train_gpt(dev, t, steps))?;
    }
    Ok(())
}
