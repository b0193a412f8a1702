//! The bench page (`web/bench.html`): the workloads of `examples/bench.rs`
//! (the same source file, `examples/bench/workloads.rs`) on the visitor's
//! GPU, timed with the page's clock, one JSON line per workload.

#[path = "../../examples/bench/workloads.rs"]
#[allow(dead_code)] // mlp_model serves the native cold-start child only
mod workloads;

use webgrad::{Device, Result, Tensor, read_and_realize};

pub use workloads::GROUPS;

/// `performance.now()` in milliseconds.
fn now_ms() -> f64 {
    let global = js_sys::global();
    let perf = js_sys::Reflect::get(&global, &"performance".into()).unwrap_or_default();
    let now = js_sys::Reflect::get(&perf, &"now".into()).unwrap_or_default();
    js_sys::Function::from(now)
        .call0(&perf)
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}

async fn run_once(iteration: workloads::Iteration) -> Result<()> {
    let read: Vec<&Tensor> = iteration.read.iter().collect();
    let realize: Vec<&Tensor> = iteration.realize.iter().collect();
    read_and_realize(&read, &realize).await?;
    Ok(())
}

/// Runs a group's workloads and returns their JSON lines. `quick`: one
/// warm-up and one timed run each (the headless test), instead of the
/// native bench's repeats.
pub async fn run(dev: &Device, group: &str, quick: bool) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for mut w in workloads::build(group, dev) {
        let (warmup, repeats) = if quick { (1, 1) } else { (w.warmup, w.repeats) };
        for _ in 0..warmup {
            run_once((w.step)()).await?;
        }
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = now_ms();
            run_once((w.step)()).await?;
            times.push(now_ms() - start);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        lines.push(workloads::json_line(&w, times[times.len() / 2], dev));
    }
    Ok(lines)
}
