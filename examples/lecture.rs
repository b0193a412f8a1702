//! The lecture's worked example, run on the GPU:
//! y = ln(x1) + x1·x2 − sin(x2) at x1 = 2, x2 = 5.
//!
//! Prints the forward trace v1…v7, then the reverse pass node by node (the
//! node_to_grad table: the partial adjoints reaching each node and their
//! sum), then ∂y/∂x1 and ∂y/∂x2.
//!
//! cargo run --example lecture

use std::collections::HashMap;

use webgrad::{Device, Tensor, backward_trace, read_all_blocking};

fn main() -> webgrad::Result<()> {
    let dev = Device::new_blocking()?;
    let adapter = dev.adapter().expect("a GPU device");
    println!(
        "webgrad on {} ({}, {})\n",
        adapter.name, adapter.backend, adapter.device_type
    );

    let v1 = Tensor::scalar(&dev, 2.0);
    let v2 = Tensor::scalar(&dev, 5.0);
    let v3 = v1.log();
    let v4 = &v1 * &v2;
    let v5 = v2.sin();
    let v6 = &v3 + &v4;
    let v7 = &v6 - &v5;
    let nodes = [
        ("v1", "x1", &v1),
        ("v2", "x2", &v2),
        ("v3", "ln v1", &v3),
        ("v4", "v1 × v2", &v4),
        ("v5", "sin v2", &v5),
        ("v6", "v3 + v4", &v6),
        ("v7", "v6 − v5", &v7),
    ];
    let name: HashMap<u64, &str> = nodes.iter().map(|(n, _, t)| (t.id(), *n)).collect();

    println!("Forward trace (evaluated on the GPU)");
    let values = read_all_blocking(&nodes.iter().map(|n| n.2).collect::<Vec<_>>())?;
    for ((n, def, _), v) in nodes.iter().zip(&values) {
        println!("  {n} = {def:<8} = {:>8.3}", v[0]);
    }
    println!("  y  = v7       = {:>8.3}\n", values[6][0]);

    // The reverse pass: visit nodes in reverse topological order; each
    // node's adjoint is the sum of the partial adjoints that reached it.
    let steps = backward_trace(&v7);
    let mut wanted: Vec<&Tensor> = Vec::new();
    for s in &steps {
        wanted.push(&s.adjoint);
        wanted.extend(s.partials.iter().map(|p| &p.1));
    }
    let read = read_all_blocking(&wanted)?;
    let mut it = read.iter().map(|v| v[0]);
    println!("Reverse pass (node_to_grad, adjoints computed on the GPU)");
    for s in &steps {
        let adjoint = it.next().unwrap();
        let me = name[&s.node.id()];
        let terms: Vec<String> = s
            .partials
            .iter()
            .map(|(from, _)| {
                let v = it.next().unwrap();
                match from {
                    Some(j) => format!("Δ{me}→{} ({v:.3})", name[&j.id()]),
                    None => format!("seed ({v:.0})"),
                }
            })
            .collect();
        println!("  Δ{me} = {} = {adjoint:.3}", terms.join(" + "));
    }
    let dx1 = steps.iter().find(|s| s.node.same_node(&v1)).unwrap();
    let dx2 = steps.iter().find(|s| s.node.same_node(&v2)).unwrap();
    let d = read_all_blocking(&[&dx1.adjoint, &dx2.adjoint])?;
    println!("\n∂y/∂x1 = {:.4}   (exact: 1/x1 + x2 = 5.5)", d[0][0]);
    println!(
        "∂y/∂x2 = {:.4}   (exact: x1 − cos x2 = 2 − cos 5 = {:.4})",
        d[1][0],
        2.0 - 5f64.cos()
    );
    Ok(())
}
