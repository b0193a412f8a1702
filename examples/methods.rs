//! The lecture's table of the four ways to compute gradients — numerical,
//! symbolic, forward mode, reverse mode — with measured numbers instead of
//! claims, for f(θ) = ∏θᵢ and for the loss of a small MLP, at n inputs.
//!
//! cargo run --release --example methods            n = 1, 4, 16, 64, 256, 1024 (minutes)
//! cargo run --release --example methods -- 1 4 16 only those n
//!
//! Printed as Markdown: per method, the wall time (median of 3 after a
//! warm-up; a single run for n ≥ 256; graph building, kernels and readback), the graph passes, the
//! kernels dispatched, the extra GPU memory at peak, the size of the
//! expression or graph, and the largest error against the exact gradient.
//! Then a step-size sweep of finite differences.

use std::time::Instant;

use webgrad::symbolic::{ExprGraph, ExprId, Func};
use webgrad::{
    Device, Difference, Tensor, grad, graph_size, numerical_grad_blocking, read_all_blocking,
    reference, step_sweep, tangent, tangent_batched,
};

struct Outcome {
    grad: Vec<f64>,
    passes: String,
    size: String,
}

struct Row {
    method: &'static str,
    ms: f64,
    kernels: u64,
    peak: u64,
    outcome: Outcome,
}

/// Runs `f` once to warm up (pipelines compile) unless `repeats` is 1 (the
/// large sizes, whose kernels the smaller ones have compiled already), then
/// `repeats` times; the counters come from the last run.
fn measure(
    dev: &Device,
    method: &'static str,
    repeats: usize,
    mut f: impl FnMut() -> Outcome,
) -> Row {
    if repeats > 1 {
        let _ = f();
    }
    let mut times = Vec::new();
    let mut last = None;
    let (mut kernels, mut peak) = (0, 0);
    for _ in 0..repeats {
        let before = dev.counters().kernels;
        let live = dev.memory_stats().live_bytes;
        dev.reset_peak_memory();
        let t = Instant::now();
        let out = f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        kernels = dev.counters().kernels - before;
        peak = dev.memory_stats().peak_live_bytes.saturating_sub(live);
        last = Some(out);
    }
    times.sort_by(f64::total_cmp);
    Row {
        method,
        ms: times[times.len() / 2],
        kernels,
        peak,
        outcome: last.unwrap(),
    }
}

fn flat(v: Vec<Vec<f32>>) -> Vec<f64> {
    v.into_iter().flatten().map(f64::from).collect()
}

fn bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

fn print_table(title: &str, n: usize, exact: &[f64], rows: &[Row]) {
    println!("\n**{title}, n = {n}**\n");
    println!(
        "| method | time | graph passes | kernels | peak GPU memory | expression / graph size | max error |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let err = r
            .outcome
            .grad
            .iter()
            .zip(exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "| {} | {:.2} ms | {} | {} | {} | {} | {:.1e} |",
            r.method,
            r.ms,
            r.outcome.passes,
            r.kernels,
            bytes(r.peak),
            r.outcome.size,
            err
        );
    }
}

/// Reads the gradient tensors back (one submit) and counts their graph.
fn read_outcome(ts: &[Tensor], passes: String) -> Outcome {
    let all: Vec<&Tensor> = ts.iter().collect();
    let size = graph_size(&all);
    Outcome {
        grad: flat(read_all_blocking(&all).unwrap()),
        passes,
        size: format!("{size} nodes"),
    }
}

/// Differentiates `f` symbolically by each variable, compiles the
/// derivatives to the graph with the variables bound to `values`, runs them.
fn symbolic_gradient(
    dev: &Device,
    g: &mut ExprGraph,
    f: ExprId,
    names: &[String],
    values: &[Tensor],
) -> Outcome {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let d = g.gradient(f, &names);
    let bind: Vec<(&str, &Tensor)> = names.iter().copied().zip(values.iter()).collect();
    let ts = g.to_graph(dev, &d, &bind);
    let v = read_all_blocking(&ts.iter().collect::<Vec<_>>()).unwrap();
    let size = format!("DAG {} (tree {:.0})", g.dag_size(&d), g.tree_size(&d));
    Outcome {
        grad: flat(v),
        passes: "1".into(),
        size,
    }
}

/// f(θ) = θ1·θ2·…·θn over n scalar inputs, as in the lecture.
fn product(thetas: &[Tensor]) -> Tensor {
    thetas[1..]
        .iter()
        .fold(thetas[0].clone(), |acc, t| &acc * t)
}

fn product_rows(dev: &Device, n: usize, repeats: usize) {
    let values = webgrad::reference::eval(&Tensor::rand_uniform(dev, [n], 0.95, 1.05, 7)).unwrap();
    let thetas: Vec<Tensor> = values
        .iter()
        .map(|&v| Tensor::scalar(dev, v as f32))
        .collect();
    let refs: Vec<&Tensor> = thetas.iter().collect();
    let total: f64 = values.iter().product();
    let exact: Vec<f64> = values.iter().map(|v| total / v).collect();
    let mut rows = Vec::new();

    rows.push(measure(dev, "numerical (central, f32)", repeats, || {
        let g = numerical_grad_blocking(product, &refs, Difference::Central, None).unwrap();
        let one = graph_size(&[&product(&thetas)]);
        Outcome {
            grad: flat(g),
            passes: format!("{}", 2 * n),
            size: format!("{} nodes", 2 * n * one),
        }
    }));
    if n <= 256 {
        rows.push(measure(dev, "symbolic (CSE DAG)", repeats, || {
            let mut g = ExprGraph::new();
            let names: Vec<String> = (1..=n).map(|i| format!("t{i}")).collect();
            let vars: Vec<ExprId> = names.iter().map(|s| g.var(s)).collect();
            let f = vars[1..].iter().fold(vars[0], |acc, &v| g.mul(acc, v));
            symbolic_gradient(dev, &mut g, f, &names, &thetas)
        }));
    }
    rows.push(measure(dev, "forward mode", repeats, || {
        let y = product(&thetas);
        let one = Tensor::scalar(dev, 1.0);
        let zero = Tensor::scalar(dev, 0.0);
        let ts: Vec<Tensor> = (0..n)
            .map(|i| {
                let seeds: Vec<&Tensor> =
                    (0..n).map(|j| if i == j { &one } else { &zero }).collect();
                tangent(&y, &refs, &seeds)
            })
            .collect();
        read_outcome(&ts, format!("{n}"))
    }));
    rows.push(measure(dev, "reverse mode", repeats, || {
        let y = product(&thetas);
        let g = grad(&y, &refs);
        let all: Vec<&Tensor> = g.iter().collect();
        let size = graph_size(&all);
        Outcome {
            grad: flat(read_all_blocking(&all).unwrap()),
            passes: "1".into(),
            size: format!("{size} nodes"),
        }
    }));
    print_table("f(θ) = ∏θᵢ", n, &exact, &rows);
}

const HIDDEN: usize = 16;

struct Mlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
}

impl Mlp {
    fn new(dev: &Device, n: usize) -> Mlp {
        Mlp {
            w1: Tensor::rand_normal(dev, [n, HIDDEN], 0.0, 1.0 / (n as f32).sqrt(), 1),
            b1: Tensor::rand_normal(dev, [HIDDEN], 0.0, 0.1, 2),
            w2: Tensor::rand_normal(dev, [HIDDEN, 1], 0.0, 0.25, 3),
        }
    }
    /// (tanh(x·W1 + b1)·W2 − 1)², x: [1, n]
    fn loss(&self, x: &Tensor) -> Tensor {
        let out = (&x.matmul(&self.w1) + &self.b1).tanh().matmul(&self.w2);
        out.add_scalar(-1.0).square().sum()
    }
}

fn mlp_rows(dev: &Device, n: usize, repeats: usize) {
    let mlp = Mlp::new(dev, n);
    let x = Tensor::rand_uniform(dev, [1, n], -1.0, 1.0, 4);
    let exact = reference::eval(&grad(&mlp.loss(&x), &[&x])[0]).unwrap();
    let mut rows = Vec::new();
    rows.push(measure(dev, "numerical (central, f32)", repeats, || {
        let g =
            numerical_grad_blocking(|t| mlp.loss(&t[0]), &[&x], Difference::Central, None).unwrap();
        let one = graph_size(&[&mlp.loss(&x)]);
        Outcome {
            grad: flat(g),
            passes: format!("{}", 2 * n),
            size: format!("{} nodes", 2 * n * one),
        }
    }));
    if n <= 64 {
        let w1 = reference::eval(&mlp.w1).unwrap();
        let b1 = reference::eval(&mlp.b1).unwrap();
        let w2 = reference::eval(&mlp.w2).unwrap();
        let xv = reference::eval(&x).unwrap();
        let xs: Vec<Tensor> = xv.iter().map(|&v| Tensor::scalar(dev, v as f32)).collect();
        rows.push(measure(dev, "symbolic (CSE DAG)", repeats, || {
            let mut g = ExprGraph::new();
            let names: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
            let vars: Vec<ExprId> = names.iter().map(|s| g.var(s)).collect();
            let mut out = g.num(-1.0);
            for j in 0..HIDDEN {
                let mut pre = g.num(b1[j]);
                for i in 0..n {
                    let w = g.num(w1[i * HIDDEN + j]);
                    let t = g.mul(vars[i], w);
                    pre = g.add(pre, t);
                }
                let h = g.func(Func::Tanh, pre);
                let w = g.num(w2[j]);
                let t = g.mul(h, w);
                out = g.add(out, t);
            }
            let two = g.num(2.0);
            let loss = g.pow(out, two);
            symbolic_gradient(dev, &mut g, loss, &names, &xs)
        }));
    }
    rows.push(measure(dev, "forward mode", repeats, || {
        let y = mlp.loss(&x);
        let ts: Vec<Tensor> = (0..n)
            .map(|i| {
                let mut e = vec![0.0; n];
                e[i] = 1.0;
                tangent(&y, &[&x], &[&Tensor::from_vec(dev, e, [1, n])])
            })
            .collect();
        read_outcome(&ts, format!("{n}"))
    }));
    rows.push(measure(dev, "forward mode, batched", repeats, || {
        let y = mlp.loss(&x);
        let mut eye = vec![0.0; n * n];
        for i in 0..n {
            eye[i * n + i] = 1.0;
        }
        let t = tangent_batched(&y, &[&x], &[&Tensor::from_vec(dev, eye, [n, 1, n])]);
        let size = graph_size(&[&t]);
        Outcome {
            grad: flat(read_all_blocking(&[&t]).unwrap()),
            passes: format!("1 ({n} wide)"),
            size: format!("{size} nodes"),
        }
    }));
    rows.push(measure(dev, "reverse mode", repeats, || {
        let g = grad(&mlp.loss(&x), &[&x]);
        let size = graph_size(&[&g[0]]);
        Outcome {
            grad: flat(read_all_blocking(&[&g[0]]).unwrap()),
            passes: "1".into(),
            size: format!("{size} nodes"),
        }
    }));
    print_table(
        &format!("MLP loss (tanh(x·W1 + b1)·W2 − 1)², {HIDDEN} hidden units"),
        n,
        &exact,
        &rows,
    );
}

fn sweep(dev: &Device) {
    println!(
        "\n**Finite differences of f(x) = Σ exp(x)·sin(x) at x = (0.7, 1.3): max error by step**\n"
    );
    println!(
        "| step h | forward, f32 GPU | central, f32 GPU | forward, f64 reference | central, f64 reference |"
    );
    println!("|---|---|---|---|---|");
    let x = Tensor::from_vec(dev, vec![0.7, 1.3], [2]);
    let exact: Vec<f64> = [0.7f32, 1.3]
        .iter()
        .map(|&v| (v as f64).exp() * ((v as f64).sin() + (v as f64).cos()))
        .collect();
    let steps: Vec<f64> = (1..=12).map(|k| 10f64.powi(-k)).collect();
    for r in step_sweep(
        |t| (&t[0].exp() * &t[0].sin()).sum(),
        &[&x],
        &[exact],
        &steps,
    )
    .unwrap()
    {
        println!(
            "| {:.0e} | {:.1e} | {:.1e} | {:.1e} | {:.1e} |",
            r.step, r.forward_f32, r.central_f32, r.forward_f64, r.central_f64
        );
    }
    println!(
        "\nDefault steps (relative to max(1, |x|)): forward {:.2e} / central {:.2e} in f32, {:.2e} / {:.2e} in f64.",
        Difference::Forward.default_step_f32(),
        Difference::Central.default_step_f32(),
        Difference::Forward.default_step_f64(),
        Difference::Central.default_step_f64()
    );
}

fn main() -> webgrad::Result<()> {
    let dev = Device::new_blocking()?;
    let sizes: Vec<usize> = {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if args.is_empty() {
            vec![1, 4, 16, 64, 256, 1024]
        } else {
            args
        }
    };
    let a = dev.adapter().unwrap();
    println!(
        "Four ways to differentiate, measured on {} ({})",
        a.name, a.backend
    );
    for &n in &sizes {
        let repeats = if n >= 256 { 1 } else { 3 };
        product_rows(&dev, n, repeats);
        mlp_rows(&dev, n, repeats);
    }
    sweep(&dev);
    Ok(())
}
