//! An optimizer loop does not grow memory. Alone in its test binary, so that
//! the process's resident memory is this loop's alone.

mod common;

use webgrad::data::Dataset;
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{MemoryStats, grad, read_and_realize_blocking, realize_all_blocking};

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    Some(statm.split_whitespace().nth(1)?.parse::<u64>().ok()? * 4096)
}

#[test]
fn adam_training_keeps_the_same_buffers_and_resident_memory() {
    let dev = gpu!();
    let (train, _) = Dataset::digits().unwrap().split(0.2, 0);
    let batch = train.batches(128, 0).next().unwrap();
    let (x, labels) = batch.tensors(&dev);
    let model = Mlp::new(
        &dev,
        &[64, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        1,
    )
    .unwrap();
    let mut opt = Adam::new(1e-3);
    let params = model.parameters();
    let mut at: Vec<(MemoryStats, Option<u64>)> = Vec::new();
    let mut bind_groups = Vec::new();
    for step in 1..=1000 {
        let loss = model.forward(&x).cross_entropy(&labels);
        let grads = grad(&loss, &params);
        let updates = opt.step(&params, &grads).unwrap();
        let handles: Vec<_> = updates.iter().collect();
        if step % 10 == 0 {
            read_and_realize_blocking(&[&loss], &handles).unwrap();
        } else {
            realize_all_blocking(&[&[&loss][..], &handles].concat()).unwrap();
        }
        if step == 100 || step == 1000 {
            // The measure: webgrad's live and pooled GPU buffers (count and
            // bytes) must be identical, and the process's resident memory
            // must not grow by more than allocator noise.
            let stats = MemoryStats {
                peak_live_bytes: 0,
                ..dev.memory_stats()
            };
            at.push((stats, resident_bytes()));
            bind_groups.push(dev.counters().bind_groups);
        }
    }
    assert_eq!(
        at[0].0, at[1].0,
        "GPU buffers changed between step 100 and step 1,000"
    );
    // The same buffers bound to the same pipelines: every bind group of the
    // last 900 steps came from the cache.
    assert_eq!(
        bind_groups[0], bind_groups[1],
        "bind groups were created after step 100"
    );
    if let (Some(a), Some(b)) = (at[0].1, at[1].1) {
        eprintln!("resident memory: {a} bytes at step 100, {b} at step 1,000");
        assert!(
            b < a + (4 << 20),
            "resident memory grew from {a} to {b} bytes"
        );
    }
}
