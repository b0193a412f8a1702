//! Part 1 of the page: one expression differentiated four ways on WebGPU,
//! with the computation graph, every node's value, tangent and adjoint, and
//! the reverse pass step by step (the node_to_grad table).

use std::collections::HashMap;

use webgrad::symbolic::{BinOp, ExprGraph, ExprId, Node};
use webgrad::{
    Device, Difference, Error, Tensor, backward_trace, numerical_grad, read_all, tangent,
};

use serde_json::{Value, json};

fn describe(g: &ExprGraph, id: ExprId, label: &HashMap<ExprId, String>) -> (String, String) {
    match g.node(id) {
        Node::Num(bits) => ("const".into(), format!("{}", f64::from_bits(bits))),
        Node::Var(v) => ("input".into(), g.var_name(v).to_string()),
        Node::Neg(a) => ("neg".into(), format!("−{}", label[&a])),
        Node::Func(f, a) => (f.name().into(), format!("{} {}", f.name(), label[&a])),
        Node::Bin(op, a, b) => {
            let sym = match op {
                BinOp::Mul => "×",
                BinOp::Sub => "−",
                other => other.symbol(),
            };
            (
                op.symbol().into(),
                format!("{} {sym} {}", label[&a], label[&b]),
            )
        }
    }
}

/// Differentiates `expr` at `values` (name → value); `wrt` picks the
/// forward-mode seed. Returns the page's JSON (or a positioned parse error).
pub async fn differentiate(
    dev: &Device,
    expr: &str,
    values: &[(String, f64)],
    wrt: &str,
) -> Result<String, String> {
    let mut g = ExprGraph::new();
    let root = match g.parse(expr) {
        Ok(r) => r,
        Err(Error::Parse { position, message }) => {
            return Ok(json!({"ok": false, "position": position, "message": &message}).to_string());
        }
        Err(e) => return Err(e.to_string()),
    };
    let vars = g.variables(root);
    for v in &vars {
        if !values.iter().any(|(n, _)| n == v) {
            let message = format!("no value given for the variable {v}");
            let position = expr.find(v.as_str()).unwrap_or(0);
            return Ok(json!({"ok": false, "position": position, "message": message}).to_string());
        }
    }

    // Number the nodes like the lecture: inputs first, then operations by
    // depth (longest path from an input), ties in creation order.
    let ids = g.reachable(&[root]);
    let mut depth: HashMap<ExprId, usize> = HashMap::new();
    for &id in &ids {
        let d = g
            .node(id)
            .children()
            .map(|c| depth[&c] + 1)
            .max()
            .unwrap_or(0);
        depth.insert(id, d);
    }
    let mut ordered = ids.clone();
    ordered.sort_by_key(|id| (!matches!(g.node(*id), Node::Var(_)), depth[id], *id));
    let label: HashMap<ExprId, String> = ordered
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, format!("v{}", i + 1)))
        .collect();

    let leaves: Vec<Tensor> = vars
        .iter()
        .map(|v| Tensor::scalar(dev, values.iter().find(|(n, _)| n == v).unwrap().1 as f32))
        .collect();
    let bind: Vec<(&str, &Tensor)> = vars.iter().map(String::as_str).zip(leaves.iter()).collect();
    let tensors = g.to_graph(dev, &ordered, &bind);
    let by_tensor: HashMap<u64, String> = tensors
        .iter()
        .zip(&ordered)
        .map(|(t, id)| (t.id(), label[id].clone()))
        .collect();
    let y = &tensors[ordered.iter().position(|&i| i == root).unwrap()];

    // Forward mode: tangents Δv_i = ∂v_i/∂(wrt).
    let seeds: Vec<Tensor> = vars
        .iter()
        .map(|v| Tensor::scalar(dev, if v == wrt { 1.0 } else { 0.0 }))
        .collect();
    let leaf_refs: Vec<&Tensor> = leaves.iter().collect();
    let seed_refs: Vec<&Tensor> = seeds.iter().collect();
    let tangents: Vec<Tensor> = tensors
        .iter()
        .map(|t| tangent(t, &leaf_refs, &seed_refs))
        .collect();
    // Reverse mode, as the node_to_grad walk.
    let steps = backward_trace(y);

    let mut wanted: Vec<&Tensor> = tensors.iter().chain(&tangents).collect();
    for s in &steps {
        wanted.push(&s.adjoint);
        wanted.extend(s.partials.iter().map(|p| &p.1));
    }
    let read = read_all(&wanted).await.map_err(|e| e.to_string())?;
    let n = tensors.len();
    let (value, tang) = (&read[..n], &read[n..2 * n]);
    let mut rest = read[2 * n..].iter().map(|v| v[0] as f64);
    let mut adjoint: HashMap<String, f64> = HashMap::new();
    let mut step_json = Vec::new();
    for s in &steps {
        let me = by_tensor[&s.node.id()].clone();
        let sum = rest.next().unwrap();
        adjoint.insert(me.clone(), sum);
        let partials: Vec<Value> = s
            .partials
            .iter()
            .map(|(from, _)| {
                let from = from.as_ref().map(|f| by_tensor[&f.id()].clone());
                json!({"from": from, "value": rest.next().unwrap()})
            })
            .collect();
        step_json.push(json!({"node": &me, "partials": partials, "sum": sum}));
    }

    // Symbolic derivatives, and central differences with their error.
    let at: Vec<(&str, f64)> = values.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let f = |xs: &[Tensor]| {
        let bind: Vec<(&str, &Tensor)> = vars.iter().map(String::as_str).zip(xs.iter()).collect();
        g.to_graph(dev, &[root], &bind).remove(0)
    };
    let numeric = numerical_grad(f, &leaf_refs, Difference::Central, None)
        .await
        .map_err(|e| e.to_string())?;
    // Reverse mode's memory: the peak bytes its pass needs (the forward
    // values it keeps), predicted without running, and with the whole
    // expression checkpointed (its values recomputed by the backward pass).
    let memory = |checkpointed: bool| -> Result<u64, String> {
        let y = if checkpointed {
            let (g2, vars2, dev2) = (g.clone(), vars.clone(), dev.clone());
            webgrad::checkpoint(
                move |xs: &[Tensor]| {
                    let bind: Vec<(&str, &Tensor)> =
                        vars2.iter().map(String::as_str).zip(xs.iter()).collect();
                    g2.to_graph(&dev2, &[root], &bind).remove(0)
                },
                &leaf_refs,
            )
        } else {
            f(&leaves)
        };
        let grads = webgrad::grad(&y, &leaf_refs);
        let mut all: Vec<&Tensor> = vec![&y];
        all.extend(grads.iter());
        let live = dev.memory_stats().live_bytes;
        webgrad::predict_peak_bytes(&all)
            .map(|p| p.saturating_sub(live))
            .map_err(|e| e.to_string())
    };
    let (kept, checkpointed) = (memory(false)?, memory(true)?);
    let mut per_var = Vec::new();
    for (k, v) in vars.iter().enumerate() {
        let d = g.diff(root, v);
        let exact = g.eval(d, &at).unwrap_or(f64::NAN);
        let leaf_label = &label[&g.var(v)];
        per_var.push(json!({"name": v, "node": leaf_label, "reverse": adjoint.get(leaf_label).copied().unwrap_or(0.0), "symbolic": &g.print(d), "symbolic_value": exact, "numerical": numeric[k][0] as f64, "numerical_error": (numeric[k][0] as f64 - exact).abs()}));
    }

    let nodes: Vec<Value> = ordered
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (op, text) = describe(&g, *id, &label);
            let inputs: Vec<&String> = g.node(*id).children().map(|c| &label[&c]).collect();
            json!({"id": &label[id], "op": &op, "text": &text, "inputs": inputs, "depth": depth[id], "value": value[i][0] as f64, "tangent": tang[i][0] as f64, "adjoint": adjoint.get(&label[id])})
        })
        .collect();
    Ok(json!({"ok": true, "output": &label[&root], "y": value[ordered.iter().position(|&i| i == root).unwrap()][0] as f64, "wrt": wrt, "nodes": nodes, "variables": per_var, "steps": step_json, "reverse_bytes": kept, "checkpointed_bytes": checkpointed}).to_string())
}
