//! Data-parallel training over MPI: run by `cargo xtask test` as
//! `mpirun -np 2 <this test>` (each rank on its own lavapipe device).
//! With no argument every check runs and must pass; with `panic`, `error`
//! or `kill`, rank 1 fails at its third step in that way and the job must
//! stop (not hang) with an error naming rank 1 — `xtask` checks that.

mod common;

use webgrad::data::spiral;
use webgrad::distributed::{DataParallel, LocalGroup, Mpi, ShardedSampler, Transport};
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer, Sgd};
use webgrad::{Device, Tensor, read_all_blocking};

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

/// `steps` SGD steps over `transport`'s ranks with `batch` each; the
/// parameters afterwards.
fn train<T: Transport>(dev: &Device, transport: T, batch: usize, steps: usize) -> Vec<Vec<f32>> {
    let set = spiral(4, 64, 3);
    let (rank, ranks) = (transport.rank(), transport.size());
    // Different initial weights per rank: the broadcast makes them equal.
    let mlp = model(dev, 1 + rank as u64);
    let params = mlp.parameters();
    let mut dp = DataParallel::new(transport).bucket_bytes(1024);
    dp.broadcast_parameters(&params).unwrap();
    let mut opt = Sgd::new(0.2).momentum(0.9);
    let sampler = ShardedSampler::new(set.len(), rank, ranks, 11);
    for b in sampler.batches(0, batch).iter().take(steps) {
        let (x, labels) = set.select(b).tensors(dev);
        let loss = mlp.forward(&x).cross_entropy(&labels);
        dp.step(&mut opt, &loss, &params).unwrap();
        dp.check_in_sync(&params).unwrap();
    }
    read_all_blocking(&params).unwrap()
}

/// Fails rank 1 at its third step in the way `how` names.
fn fault(mpi: Mpi, dev: &Device, how: &str) {
    let rank = mpi.rank();
    let w = Tensor::from_vec(dev, vec![1.0; 1024], [32, 32])
        .to_variable()
        .unwrap();
    let mut dp = DataParallel::new(mpi);
    let mut opt = Sgd::new(0.01);
    for step in 0..6 {
        if rank == 1 && step == 2 {
            match how {
                "panic" => panic!("rank 1 ran out of data"),
                // Killed from outside, as an out-of-memory killer or a
                // scheduler would: SIGKILL, no handler runs.
                "kill" => {
                    let pid = std::process::id().to_string();
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid])
                        .status();
                    std::thread::sleep(std::time::Duration::from_secs(60));
                }
                // A realize over the memory budget: an error, as when the
                // GPU's memory is full.
                "error" => dev.set_memory_budget(Some(1024)),
                other => panic!("unknown fault {other}"),
            }
        }
        let loss = w.matmul(&w).square().mean();
        if let Err(e) = dp.step(&mut opt, &loss, &[&w]) {
            // Unreachable with MPI: the failing rank aborts the job.
            panic!("rank {rank}: {e}");
        }
    }
    println!("rank {rank}: finished, which no rank should");
}

fn main() {
    let mpi = Mpi::init().expect("MPI");
    let dev = common::private_device().expect("no GPU adapter");
    let (rank, ranks) = (mpi.rank(), mpi.size());
    if let Some(how) = std::env::args().nth(1) {
        return fault(mpi, &dev, &how);
    }
    assert_eq!(ranks, 2, "run with mpirun -np 2");
    let mut mpi = mpi;
    let steps = 8;
    let two = train(&dev, &mut mpi, 16, steps);
    // One rank with twice the batch, here (a group of one).
    let one = train(&dev, LocalGroup::new(1).transports().remove(0), 32, steps);
    for (a, b) in one.iter().flatten().zip(two.iter().flatten()) {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "rank {rank}: {a} (one rank, batch 32) vs {b} (two ranks, batch 16)"
        );
    }
    resume(&dev, &mut mpi);
    println!(
        "rank {rank} of {ranks}: two ranks in sync, equal to one rank with twice the batch, resumed exactly"
    );
}

/// Adam steps `from..to`, resuming from `file` first or saving it at the end.
fn adam_steps(
    dev: &Device,
    mpi: &mut Mpi,
    from: usize,
    to: usize,
    file: &std::path::Path,
    resume: bool,
) -> Vec<Vec<f32>> {
    let set = spiral(4, 64, 3);
    let rank = mpi.rank();
    let mlp = model(dev, if resume { 50 + rank as u64 } else { 1 });
    let params = mlp.parameters();
    let mut dp = DataParallel::new(mpi);
    let mut opt = Adam::new(0.01);
    if resume {
        dp.load_checkpoint(file, &mlp.named_state(), &mut opt, &params)
            .unwrap();
        assert_eq!(opt.steps(), from);
    }
    let sampler = ShardedSampler::new(set.len(), rank, 2, 4);
    for b in &sampler.batches(0, 16)[from..to] {
        let (x, labels) = set.select(b).tensors(dev);
        dp.step(&mut opt, &mlp.forward(&x).cross_entropy(&labels), &params)
            .unwrap();
    }
    if !resume {
        dp.save_checkpoint(file, &mlp.named_state(), &mut opt, &params)
            .unwrap();
    }
    read_all_blocking(&params).unwrap()
}

/// A checkpoint rank 0 writes after 2 steps, which every rank resumes from
/// with other weights and a fresh optimizer: 2 more steps give the
/// parameters of 4 uninterrupted ones.
fn resume(dev: &Device, mpi: &mut Mpi) {
    let dir = std::env::temp_dir().join(format!("webgrad-mpi-{}", std::process::id()));
    // Rank 0's directory name is every rank's: broadcast its process id.
    let mut id = [std::process::id() as f32];
    mpi.broadcast(&mut id, 0).unwrap();
    let dir = dir.with_file_name(format!("webgrad-mpi-{}", id[0]));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    let uninterrupted = adam_steps(dev, mpi, 0, 4, &a, false);
    adam_steps(dev, mpi, 0, 2, &b, false);
    let resumed = adam_steps(dev, mpi, 2, 4, &b, true);
    assert_eq!(resumed, uninterrupted, "rank {}", mpi.rank());
    if mpi.rank() == 0 {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
