//! A training loop does not grow memory. Alone in its test binary, so that
//! the process's resident memory is this loop's alone.

mod common;

use webgrad::{MemoryStats, Tensor, grad, read_and_realize_blocking};

/// Resident set size of this process in bytes (Linux), from /proc/self/statm.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_training_loop_does_not_grow_memory() {
    let dev = gpu!();
    let x = Tensor::rand_uniform(&dev, [64, 16], -1.0, 1.0, 1);
    let target = Tensor::rand_uniform(&dev, [64, 1], -1.0, 1.0, 2);
    let mut w1 = Tensor::rand_normal(&dev, [16, 32], 0.0, 0.3, 3);
    let mut w2 = Tensor::rand_normal(&dev, [32, 1], 0.0, 0.3, 4);
    let mut at: Vec<(MemoryStats, Option<u64>)> = Vec::new();
    let mut losses = Vec::new();
    for step in 1..=10_000 {
        let loss = x.matmul(&w1).tanh().matmul(&w2).mse(&target);
        let g = grad(&loss, &[&w1, &w2]);
        // Detached updates: once realized they forget the previous step's graph.
        w1 = (&w1 - &(&g[0] * 0.05)).detach();
        w2 = (&w2 - &(&g[1] * 0.05)).detach();
        losses.push(read_and_realize_blocking(&[&loss], &[&w1, &w2]).unwrap()[0][0]);
        if step == 1_000 || step == 10_000 {
            at.push((dev.memory_stats(), resident_bytes()));
        }
    }
    assert!(
        losses[9_999] < losses[0] * 0.5,
        "loss did not fall: {} -> {}",
        losses[0],
        losses[9_999]
    );
    // The measure: webgrad's GPU buffers (count and bytes, live and pooled)
    // are identical at step 1,000 and step 10,000 ...
    assert_eq!(
        at[0].0, at[1].0,
        "GPU buffers changed between step 1,000 and step 10,000"
    );
    // ... and the process's resident memory grew by less than 4 MiB (allocator noise).
    if let (Some(a), Some(b)) = (at[0].1, at[1].1) {
        eprintln!("resident memory: {a} bytes at step 1,000, {b} at step 10,000");
        assert!(
            b < a + (4 << 20),
            "resident memory grew from {a} to {b} bytes"
        );
    }
}
