//! Benchmarks: one JSON line per workload, medians over repeats after
//! warm-up. Every iteration ends by reading a scalar back, so the device is
//! idle before the clock stops.
//!
//! cargo run --release --example bench            all workloads
//! cargo run --release --example bench -- matmul  only the named ones
//! cargo run --release --example bench -- --deterministic mlp   in deterministic mode
//!
//! Workloads: (1) matmul fwd+bwd at n = 256, 512, 1024; (2) a 1M-element
//! elementwise chain fwd+bwd; (3) one SGD step of a 784-256-256-10 MLP;
//! with the optimizer's in-place update included; (4) a 1000-op elementwise chain fwd+bwd; (5) cold start to the first
//! gradient (a fresh process, Mesa's shader cache disabled; `warm` adds a
//! second start with webgrad's pipeline cache); (6) conv2d
//! fwd+bwd on [32, 16, 32, 32] with 32 filters of 3×3, padding 1; (7) one
//! Adam step of the digits CNN (`models::DigitsCnn`) at batch 128; (8) one
//! AdamW step of the character transformer (`models::CharTransformer`, 2
//! layers, 4 heads, width 64) at batch 32 × context 64; (9) `fanout`: one
//! node read by 100,000 consumers, realized (graph planning is linear in
//! fan-out; reported per node); (10) `replay`: CPU time per training step
//! with plan replay on and off (digits MLP, the MLP step, the chain);
//! (11) `matmul4096`: matmul fwd+bwd at n = 4096, for real GPUs, run only
//! when named (`scripts/device_bench.sh` runs it with the rest on a GPU),
//! and `matmul4096_16`, the same on bf16 and f16 operands; (12)
//! `precision`: (7), (8) and matmul at n = 1024 with bf16 and f16
//! activations (autocast; f16 with loss scaling), lines marked
//! `"precision"`.

use std::time::Instant;

use webgrad::{Device, Tensor, grad, read_and_realize_blocking};

#[path = "bench/workloads.rs"]
mod workloads;

use workloads::{Iteration, Workload};

fn median_ms(warmup: usize, repeats: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

fn emit(dev: &Device, workload: &str, fields: &str) {
    let a = dev.adapter().unwrap();
    println!(
        r#"{{"workload":"{workload}",{fields},"adapter":"{}","backend":"{}"}}"#,
        a.name, a.backend
    );
}

/// Realizes one iteration and reads its scalars back.
fn run_once(iteration: Iteration) {
    let read: Vec<&Tensor> = iteration.read.iter().collect();
    let realize: Vec<&Tensor> = iteration.realize.iter().collect();
    read_and_realize_blocking(&read, &realize).unwrap();
}

/// Times every workload of a group (`workloads.rs`), one JSON line each.
fn run_group(dev: &Device, group: &str) {
    for mut w in workloads::build(group, dev) {
        let ms = median_ms(w.warmup, w.repeats, || run_once((w.step)()));
        println!("{}", workloads::json_line(&w, ms, dev));
    }
}

/// Not a timing: the profiler's table for one iteration of a workload
/// group's first workload after warm-up (`bench profile [group]`, the MLP
/// step by default), and its Chrome trace in target/<workload>_trace.json.
fn profile(dev: &Device, group: &str) {
    let Some(mut w): Option<Workload> = workloads::build(group, dev).into_iter().next() else {
        eprintln!(
            "no workload group {group:?}; groups: {:?}",
            workloads::GROUPS
        );
        std::process::exit(2);
    };
    for _ in 0..w.warmup.max(2) {
        run_once((w.step)());
    }
    let (_, profile) = dev.profile(|| run_once((w.step)()));
    println!("{}", profile.table());
    let path = format!("target/{}_trace.json", w.name);
    match std::fs::write(&path, profile.chrome_trace()) {
        Ok(()) => println!("trace: {path} (open it in https://ui.perfetto.dev)"),
        Err(e) => eprintln!("could not write {path}: {e}"),
    }
}

/// Runs in a child process: acquire a device, compute the MLP's first
/// gradient, read it back.
fn cold_child() {
    let dev = Device::new_blocking().unwrap();
    let (mlp, x, labels) = workloads::mlp_model(&dev);
    let loss = mlp.forward(&x).cross_entropy(&labels);
    let g = grad(&loss, &[&mlp.layers[0].weight]);
    g[0].sum().item_blocking().unwrap();
}

/// A fresh process computing the MLP's first gradient, with Mesa's shader
/// cache off and webgrad's caches in a fresh directory: cold (no caches at
/// all). `warm`: then once more, with the pipeline cache and autotune
/// choices the cold run wrote (where the backend has a pipeline cache:
/// Vulkan). `cold` runs one child only, so that timing the whole bench
/// process (the Burn pairing script does) measures one cold start.
fn cold_start(dev: &Device, warm: bool) {
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("webgrad-bench-cold-{}", std::process::id()));
    let run = || {
        let t = Instant::now();
        let status = std::process::Command::new(&exe)
            .arg("--cold-child")
            .env("MESA_SHADER_CACHE_DISABLE", "true")
            .env("MESA_SHADER_CACHE_DIR", dir.join("mesa"))
            .env("WEBGRAD_CACHE_DIR", dir.join("webgrad"))
            .status()
            .expect("spawn the cold-start child");
        assert!(status.success(), "cold-start child failed");
        t.elapsed().as_secs_f64() * 1e3
    };
    let cold = run();
    let fields = if warm {
        let warm = run();
        format!(r#""ms":{cold:.1},"warm_ms":{warm:.1}"#)
    } else {
        format!(r#""ms":{cold:.1}"#)
    };
    let _ = std::fs::remove_dir_all(&dir);
    emit(dev, "cold_start_first_gradient", &fields);
}

/// What plan replay saves: CPU time per training step (recording the
/// graph, planning or replaying, encoding and submitting: the time until
/// `realize_all_blocking` returns) and whole-step time, with replay on and off,
/// alternating in rounds within this one run. Steps: the digits MLP of
/// `train_mlp` (64-128-64-10, Adam, batch 32), the bench's MLP step and
/// the 1000-op chain.
fn replay(dev: &Device) {
    use webgrad::layers::{Activation, Init, Mlp, Module};
    use webgrad::optim::{Adam, Optimizer};
    let digits = Mlp::new(
        dev,
        &[64, 128, 64, 10],
        Activation::Relu,
        Init::KaimingUniform,
        1,
    )
    .unwrap();
    let mut adam = Adam::new(2e-3);
    let mut batch = 0u64;
    let mut digits_step = move || {
        batch += 1;
        // A new batch every step, uploaded like the data loader's.
        let x = Tensor::rand_uniform(dev, [32, 64], 0.0, 16.0, batch);
        let labels: Vec<usize> = (0..32).map(|i| (i * 3 + batch as usize) % 10).collect();
        let loss = digits.forward(&x).cross_entropy(&labels);
        let params = digits.parameters();
        let grads = grad(&loss, &params);
        let updates = adam.step(&params, &grads).unwrap();
        workloads::Iteration {
            read: Vec::new(),
            realize: updates,
        }
    };
    type Step<'a> = Box<dyn FnMut() -> workloads::Iteration + 'a>;
    let mut steps: Vec<(&str, Step)> = vec![("digits_mlp_adam_step", Box::new(&mut digits_step))];
    for group in ["mlp", "chain"] {
        let mut w = workloads::build(group, dev).remove(0);
        steps.push((w.name, Box::new(move || (w.step)())));
    }
    for (name, step) in &mut steps {
        // (cpu ms, step ms) samples per mode; rounds alternate the modes.
        let mut samples: [(Vec<f64>, Vec<f64>); 2] = Default::default();
        for round in 0..10 {
            for (mode, on) in [(0, true), (1, false)] {
                let on = if round % 2 == 0 { on } else { !on };
                let mode = if round % 2 == 0 { mode } else { 1 - mode };
                dev.set_plan_replay(on);
                for i in 0..8 {
                    let t = Instant::now();
                    let it = step();
                    let all: Vec<&Tensor> = it.read.iter().chain(&it.realize).collect();
                    webgrad::realize_all_blocking(&all).unwrap();
                    let cpu = t.elapsed().as_secs_f64() * 1e3;
                    dev.synchronize().unwrap();
                    let total = t.elapsed().as_secs_f64() * 1e3;
                    // Two steps to plan and record a structure first.
                    if i >= 2 {
                        samples[mode].0.push(cpu);
                        samples[mode].1.push(total);
                    }
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let [(mut cpu_on, mut all_on), (mut cpu_off, mut all_off)] = samples;
        let (c1, c0) = (median(&mut cpu_on), median(&mut cpu_off));
        let (s1, s0) = (median(&mut all_on), median(&mut all_off));
        emit(
            dev,
            &format!("replay_{name}"),
            &format!(
                r#""cpu_ms_replayed":{c1:.3},"cpu_ms_planned":{c0:.3},"cpu_ratio":{:.2},"step_ms_replayed":{s1:.3},"step_ms_planned":{s0:.3}"#,
                c0 / c1
            ),
        );
    }
    dev.set_plan_replay(true);
}

fn fanout(dev: &Device) {
    let n = 100_000;
    let x = Tensor::from_vec(dev, vec![0.5], [1]);
    let ms = median_ms(1, 3, || {
        let shared = x.exp();
        let mut total = &shared * 0.0;
        for i in 1..n {
            total = &total + &(&shared * (i % 7) as f32);
        }
        drop(shared);
        total.item_blocking().unwrap();
    });
    emit(
        dev,
        "fanout_100k",
        &format!(
            r#""nodes":{},"ms":{ms:.1},"us_per_node":{:.2}"#,
            2 * n,
            ms * 1e3 / (2 * n) as f64
        ),
    );
}

fn main() {
    // RUST_LOG=webgrad=info shows autotune's timings, pipeline compiles
    // and rematerialization decisions.
    env_logger::init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--cold-child") {
        return cold_child();
    }
    // `--deterministic`: the device in deterministic mode (no autotune), to
    // measure what that mode costs.
    let deterministic = args.iter().any(|a| a == "--deterministic");
    args.retain(|a| a != "--deterministic");
    let options = webgrad::DeviceOptions {
        deterministic,
        ..Default::default()
    };
    let dev = Device::with_options_blocking(options).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    if args.first().is_some_and(|a| a == "profile") {
        return profile(&dev, args.get(1).map_or("mlp", String::as_str));
    }
    // With no arguments everything runs, the cold start as "warm" (cold,
    // then warm); "cold" alone runs one cold start.
    let want = |name: &str| {
        if args.is_empty() {
            name != "cold" && !name.starts_with("matmul4096")
        } else {
            args.iter().any(|a| a == name)
        }
    };
    let mut order: Vec<&str> = workloads::GROUPS.to_vec();
    order.insert(4, "cold");
    order.insert(5, "warm");
    order.push("fanout");
    order.push("replay");
    order.push("matmul4096");
    order.push("matmul4096_16");
    for name in order {
        if want(name) {
            match name {
                "cold" => cold_start(&dev, false),
                "warm" => cold_start(&dev, true),
                "fanout" => fanout(&dev),
                "replay" => replay(&dev),
                group => run_group(&dev, group),
            }
        }
    }
}
