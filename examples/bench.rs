//! Benchmarks: one JSON line per workload, medians over repeats after
//! warm-up. Every iteration ends by reading a scalar back, so the device is
//! idle before the clock stops.
//!
//! cargo run --release --example bench            all workloads
//! cargo run --release --example bench -- matmul  only the named ones
//!
//! Workloads: (1) matmul fwd+bwd at n = 256, 512, 1024; (2) a 1M-element
//! elementwise chain fwd+bwd; (3) one SGD step of a 784-256-256-10 MLP;
//! with the optimizer's in-place update included; (4) a 1000-op elementwise chain fwd+bwd; (5) cold start to the first
//! gradient (a fresh process, Mesa's shader cache disabled); (6) conv2d
//! fwd+bwd on [32, 16, 32, 32] with 32 filters of 3×3, padding 1; (7) one
//! Adam step of the digits CNN (`models::DigitsCnn`) at batch 128; (8) one
//! AdamW step of the character transformer (`models::CharTransformer`, 2
//! layers, 4 heads, width 64) at batch 32 × context 64; (9) `fanout`: one
//! node read by 100,000 consumers, realized (graph planning is linear in
//! fan-out; reported per node).

use std::time::Instant;

use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::models::{CharTransformer, DigitsCnn, TransformerConfig};
use webgrad::optim::{Adam, Optimizer, Sgd};
use webgrad::{Conv2dOptions, Device, Tensor, grad, read_all_blocking, read_and_realize_blocking};

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

fn matmul(dev: &Device) {
    for n in [256usize, 512, 1024] {
        let a = Tensor::rand_uniform(dev, [n, n], -1.0, 1.0, 1);
        let b = Tensor::rand_uniform(dev, [n, n], -1.0, 1.0, 2);
        let repeats = if n == 1024 { 5 } else { 10 };
        let ms = median_ms(2, repeats, || {
            let loss = a.matmul(&b).sum();
            let g = grad(&loss, &[&a, &b]);
            read_all_blocking(&[&g[0].sum(), &g[1].sum()]).unwrap();
        });
        let gflops = 3.0 * 2.0 * (n as f64).powi(3) / (ms * 1e-3) / 1e9;
        emit(
            dev,
            "matmul_fwd_bwd",
            &format!(r#""n":{n},"ms":{ms:.3},"gflops":{gflops:.2}"#),
        );
    }
}

fn elementwise(dev: &Device) {
    let n = 1 << 20;
    let x = Tensor::rand_uniform(dev, [n], -1.0, 1.0, 3);
    let ms = median_ms(3, 15, || {
        let y = (&(&(&x.sin() * &x.exp()) + &(&x * &x)) - &x.tanh()).sum();
        let g = &grad(&y, &[&x])[0];
        g.sum().item_blocking().unwrap();
    });
    emit(
        dev,
        "elementwise_chain_1m",
        &format!(r#""n":{n},"ms":{ms:.3}"#),
    );
}

/// The 784-256-256-10 ReLU MLP with its SGD optimizer (in-place updates).
struct Model {
    mlp: Mlp,
    opt: Sgd,
}

impl Model {
    fn new(dev: &Device) -> Model {
        let mlp = Mlp::new(
            dev,
            &[784, 256, 256, 10],
            Activation::Relu,
            Init::KaimingNormal,
            10,
        )
        .unwrap();
        Model {
            mlp,
            opt: Sgd::new(0.01),
        }
    }
    fn loss(&self, x: &Tensor, labels: &[usize]) -> Tensor {
        self.mlp.forward(x).cross_entropy(labels)
    }
    /// One SGD step: forward, backward and update in one submit; returns the loss.
    fn step(&mut self, x: &Tensor, labels: &[usize]) -> f32 {
        let loss = self.loss(x, labels);
        let params = self.mlp.parameters();
        let grads = grad(&loss, &params);
        let updates = self.opt.step(&params, &grads).unwrap();
        read_and_realize_blocking(&[&loss], &updates.iter().collect::<Vec<_>>()).unwrap()[0][0]
    }
}

fn mlp_batch(dev: &Device) -> (Tensor, Vec<usize>) {
    let x = Tensor::rand_uniform(dev, [128, 784], 0.0, 1.0, 4);
    let labels: Vec<usize> = (0..128).map(|i| (i * 7 + 3) % 10).collect();
    (x, labels)
}

fn mlp(dev: &Device) {
    let (x, labels) = mlp_batch(dev);
    let mut model = Model::new(dev);
    let first = model.step(&x, &labels);
    let ms = median_ms(3, 30, || {
        model.step(&x, &labels);
    });
    let last = model.step(&x, &labels);
    emit(
        dev,
        "mlp_sgd_step",
        &format!(r#""batch":128,"ms":{ms:.3},"loss_first":{first:.4},"loss_last":{last:.4}"#),
    );
}

/// Not a timing: the profiler's table for one step of a workload after
/// warm-up (`bench profile [mlp|elementwise]`, MLP by default), and its
/// Chrome trace in target/<workload>_trace.json.
fn profile(dev: &Device, which: &str) {
    let (name, profile) = if which == "elementwise" {
        let x = Tensor::rand_uniform(dev, [1 << 20], -1.0, 1.0, 3);
        let step = || {
            let y = (&(&(&x.sin() * &x.exp()) + &(&x * &x)) - &x.tanh()).sum();
            let g = &grad(&y, &[&x])[0];
            read_all_blocking(&[&y, &g.sum()]).unwrap();
        };
        for _ in 0..3 {
            step();
        }
        ("elementwise", dev.profile(step).1)
    } else {
        let (x, labels) = mlp_batch(dev);
        let mut model = Model::new(dev);
        for _ in 0..5 {
            model.step(&x, &labels);
        }
        ("mlp_step", dev.profile(|| model.step(&x, &labels)).1)
    };
    println!("{}", profile.table());
    let path = format!("target/{name}_trace.json");
    match std::fs::write(&path, profile.chrome_trace()) {
        Ok(()) => println!("trace: {path} (open it in https://ui.perfetto.dev)"),
        Err(e) => eprintln!("could not write {path}: {e}"),
    }
}

fn chain(dev: &Device) {
    let x = Tensor::rand_uniform(dev, [1024], -1.0, 1.0, 5);
    let ms = median_ms(3, 15, || {
        let mut y = x.clone();
        for i in 0..1000 {
            y = match i % 4 {
                0 => &y * 1.0001,
                1 => &y + 0.001,
                2 => y.tanh(),
                _ => y.sin(),
            };
        }
        let g = &grad(&y.sum(), &[&x])[0];
        g.sum().item_blocking().unwrap();
    });
    emit(dev, "chain_1000_ops", &format!(r#""n":1024,"ms":{ms:.3}"#));
}

/// Runs in a child process: acquire a device, compute the MLP's first
/// gradient, read it back.
fn cold_child() {
    let dev = Device::new_blocking().unwrap();
    let (x, labels) = mlp_batch(&dev);
    let model = Model::new(&dev);
    let loss = model.loss(&x, &labels);
    let g = grad(&loss, &[&model.mlp.layers[0].weight]);
    g[0].sum().item_blocking().unwrap();
}

/// A fresh process computing the MLP's first gradient, with Mesa's shader
/// cache off: cold (no caches at all), then warm (webgrad's pipeline cache,
/// written by the cold run, where the backend has one: Vulkan).
fn cold_start(dev: &Device) {
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
    let warm = run();
    let cached = std::fs::read_dir(dir.join("webgrad")).map_or(0, |d| d.count());
    let _ = std::fs::remove_dir_all(&dir);
    emit(
        dev,
        "cold_start_first_gradient",
        &format!(r#""ms":{cold:.1},"warm_ms":{warm:.1},"pipeline_cache_files":{cached}"#),
    );
}

fn conv(dev: &Device) {
    let (n, c, k, hw) = (32usize, 16usize, 32usize, 32usize);
    let x = Tensor::rand_uniform(dev, [n, c, hw, hw], -1.0, 1.0, 5);
    let w = Tensor::rand_uniform(dev, [k, c, 3, 3], -0.2, 0.2, 6);
    let options = Conv2dOptions::default().padding(1);
    let ms = median_ms(2, 10, || {
        let loss = x.conv2d(&w, None, options).sum();
        let g = grad(&loss, &[&x, &w]);
        read_all_blocking(&[&g[0].sum(), &g[1].sum()]).unwrap();
    });
    // Forward, input adjoint and weight adjoint: 2·N·K·C·R·S·H·W each.
    let flops = 3.0 * 2.0 * (n * k * c * 9 * hw * hw) as f64;
    let gflops = flops / (ms * 1e-3) / 1e9;
    emit(
        dev,
        "conv2d_fwd_bwd",
        &format!(r#""shape":[{n},{c},{hw},{hw}],"filters":{k},"ms":{ms:.3},"gflops":{gflops:.2}"#),
    );
}

fn cnn(dev: &Device) {
    let model = DigitsCnn::new(dev, 0).unwrap();
    let params = model.parameters();
    let mut opt = Adam::new(1e-3);
    let batch = 128;
    let x = Tensor::rand_uniform(dev, [batch, 64], 0.0, 1.0, 7);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let ms = median_ms(3, 15, || {
        let loss = model.forward(&x).cross_entropy(&labels);
        opt.minimize_blocking(&loss, &params).unwrap();
    });
    emit(
        dev,
        "cnn_adam_step",
        &format!(r#""batch":{batch},"ms":{ms:.3}"#),
    );
}

fn gpt(dev: &Device) {
    let config = TransformerConfig {
        vocabulary: 72,
        context: 64,
        width: 64,
        heads: 4,
        layers: 2,
        dropout: 0.0,
    };
    let model = CharTransformer::new(dev, config, 0).unwrap();
    let params = model.parameters();
    let mut opt = Adam::adamw(1e-3, 0.01);
    let (batch, context) = (32, 64);
    let ids: Vec<u32> = (0..batch * context).map(|i| (i * 31 % 72) as u32).collect();
    let targets: Vec<usize> = ids.iter().map(|&i| (i as usize + 1) % 72).collect();
    let ids = webgrad::IndexTensor::from_vec(dev, ids, [batch, context]);
    let ms = median_ms(2, 7, || {
        let loss = model.loss(&ids, &targets, None);
        opt.minimize_blocking(&loss, &params).unwrap();
    });
    emit(
        dev,
        "gpt_adamw_step",
        &format!(r#""batch":{batch},"context":{context},"ms":{ms:.3}"#),
    );
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--cold-child") {
        return cold_child();
    }
    let dev = Device::new_blocking().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    if args.first().is_some_and(|a| a == "profile") {
        return profile(&dev, args.get(1).map_or("mlp", String::as_str));
    }
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    type Workload = (&'static str, fn(&Device));
    let workloads: [Workload; 9] = [
        ("matmul", matmul),
        ("elementwise", elementwise),
        ("mlp", mlp),
        ("chain", chain),
        ("cold", cold_start),
        ("conv", conv),
        ("cnn", cnn),
        ("gpt", gpt),
        ("fanout", fanout),
    ];
    for (name, run) in workloads {
        if want(name) {
            run(&dev);
        }
    }
}
