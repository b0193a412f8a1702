//! An f64 CPU interpreter of the graph IR: the oracle the tests check the
//! GPU against. It shares no code with the executor: every op is
//! re-implemented here from its definition, by index arithmetic.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::graph::ReduceOp;
use crate::graph::{Node, NodeId, Op, topo_order};
use crate::shape::{Shape, broadcast_strides, unravel};
use crate::tensor::Tensor;

/// Evaluates `t` in f64 on the CPU. Leaves come from their host data; a
/// detached value that has already been realized (and forgot its graph) is
/// read back from the GPU, which is the only case that can fail.
pub fn eval(t: &Tensor) -> Result<Vec<f64>> {
    Ok(eval_many(&[t])?.pop().unwrap())
}

/// Evaluates several tensors of one graph, sharing the work.
pub fn eval_many(ts: &[&Tensor]) -> Result<Vec<Vec<f64>>> {
    eval_with(ts, &[])
}

/// Evaluates `ts` with the values of some tensors replaced by f64 data
/// (`overrides`: tensor, its values in row-major order). Finite differences
/// of the reference perturb inputs this way, exactly, without rounding the
/// perturbed value to f32.
#[track_caller]
pub fn eval_with(ts: &[&Tensor], overrides: &[(&Tensor, &[f64])]) -> Result<Vec<Vec<f64>>> {
    let roots: Vec<Arc<Node>> = ts.iter().map(|t| t.node.clone()).collect();
    let mut values: HashMap<NodeId, Arc<Vec<f64>>> = HashMap::new();
    for (t, v) in overrides {
        assert_eq!(
            v.len(),
            t.numel(),
            "eval_with: {} values for a tensor of shape {:?}",
            v.len(),
            t.shape()
        );
        values.insert(t.id(), Arc::new(v.to_vec()));
    }
    for node in topo_order(&roots, |n| values.contains_key(&n.id)) {
        if values.contains_key(&node.id) {
            continue;
        }
        let inputs: Vec<Arc<Vec<f64>>> = node
            .inputs()
            .iter()
            .map(|i| values[&i.id].clone())
            .collect();
        let in_shapes: Vec<Shape> = node.inputs().iter().map(|i| i.shape.clone()).collect();
        let v = match (&node.op, inputs.is_empty()) {
            (Op::Detach, true) | (Op::Variable(_), _) => read_realized(&node)?,
            // The reference has no buffers to update: an assign's value is the new value.
            (Op::Assign, _) if node.is_realized() => read_realized(&node)?,
            _ => eval_op(&node.op, &node.shape, &inputs, &in_shapes),
        };
        values.insert(node.id, Arc::new(v));
    }
    Ok(ts
        .iter()
        .map(|t| values[&t.id()].as_ref().clone())
        .collect())
}

#[cfg(not(target_arch = "wasm32"))]
fn read_realized(node: &Arc<Node>) -> Result<Vec<f64>> {
    let t = Tensor::from_node(node.clone());
    Ok(t.to_vec_blocking()?.into_iter().map(f64::from).collect())
}

#[cfg(target_arch = "wasm32")]
fn read_realized(_node: &Arc<Node>) -> Result<Vec<f64>> {
    Err(crate::Error::Readback(
        "the reference interpreter cannot block on the GPU in a browser".into(),
    ))
}

/// Index in a tensor of shape `from` read as broadcast to the multi-index `idx` of `to`.
fn broadcast_index(idx: &[usize], strides: &[usize]) -> usize {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

fn eval_op(op: &Op, shape: &Shape, x: &[Arc<Vec<f64>>], xs: &[Shape]) -> Vec<f64> {
    let n = shape.numel();
    let dims = shape.dims();
    match op {
        Op::Input(data) => data.iter().map(|&v| v as f64).collect(),
        Op::Indices(data) => data.iter().map(|&v| v as f64).collect(),
        Op::Fill(v) => vec![*v as f64; n],
        Op::Unary(u) => {
            let f = u.rule().reference;
            let c = u.constant().unwrap_or(0.0) as f64;
            x[0].iter().map(|&v| f(v, c)).collect()
        }
        Op::Convert(d) => x[0]
            .iter()
            .map(|&v| crate::dtype::round_f64(*d, v))
            .collect(),
        Op::Where => {
            let s: Vec<Vec<usize>> = xs.iter().map(|x| broadcast_strides(x, shape)).collect();
            (0..n)
                .map(|i| {
                    let idx = unravel(i, dims);
                    let at = |k: usize| x[k][broadcast_index(&idx, &s[k])];
                    if at(0) != 0.0 { at(1) } else { at(2) }
                })
                .collect()
        }
        Op::Binary(b) => {
            let f = b.info().reference;
            let (sa, sb) = (
                broadcast_strides(&xs[0], shape),
                broadcast_strides(&xs[1], shape),
            );
            (0..n)
                .map(|i| {
                    let idx = unravel(i, dims);
                    f(
                        x[0][broadcast_index(&idx, &sa)],
                        x[1][broadcast_index(&idx, &sb)],
                    )
                })
                .collect()
        }
        Op::Reduce { op, .. } => {
            let (init, combine): (f64, fn(f64, f64) -> f64) = match op {
                ReduceOp::Sum => (0.0, |a, b| a + b),
                ReduceOp::Max => (f64::NEG_INFINITY, crate::ops::elementwise::nan_max),
                ReduceOp::Min => (f64::INFINITY, crate::ops::elementwise::nan_min),
            };
            let mut out = vec![init; n];
            let out_strides = broadcast_strides(shape, &xs[0]);
            for (i, &v) in x[0].iter().enumerate() {
                let o = broadcast_index(&unravel(i, xs[0].dims()), &out_strides);
                out[o] = combine(out[o], v);
            }
            out
        }
        Op::Family(f) => {
            let values: Vec<&[f64]> = x.iter().map(|v| v.as_slice()).collect();
            let shapes: Vec<&Shape> = xs.iter().collect();
            f.reference(shape, &values, &shapes)
        }
        Op::Reshape | Op::Detach | Op::Checkpoint(_) | Op::Custom(_) => x[0].as_ref().clone(),
        Op::Assign => x[1].as_ref().clone(),
        Op::Variable(_) => unreachable!("variables are read from the GPU"),
        Op::Permute(perm) => {
            let in_strides = xs[0].strides();
            (0..n)
                .map(|i| {
                    let idx = unravel(i, dims);
                    x[0][(0..perm.len())
                        .map(|d| idx[d] * in_strides[perm[d]])
                        .sum::<usize>()]
                })
                .collect()
        }
        Op::Expand => {
            let s = broadcast_strides(&xs[0], shape);
            (0..n)
                .map(|i| x[0][broadcast_index(&unravel(i, dims), &s)])
                .collect()
        }
        Op::Slice { starts } => {
            let in_strides = xs[0].strides();
            (0..n)
                .map(|i| {
                    let idx = unravel(i, dims);
                    x[0][(0..idx.len())
                        .map(|d| (idx[d] + starts[d]) * in_strides[d])
                        .sum::<usize>()]
                })
                .collect()
        }
        Op::Pad { starts } => {
            let mut out = vec![0.0; n];
            let out_strides = shape.strides();
            for (i, &v) in x[0].iter().enumerate() {
                let idx = unravel(i, xs[0].dims());
                out[(0..idx.len())
                    .map(|d| (idx[d] + starts[d]) * out_strides[d])
                    .sum::<usize>()] = v;
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    //! The interpreter against closed forms, with no GPU at all.
    use super::eval;
    use crate::{Device, Tensor, grad};

    fn t(d: &Device, v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(d, v.to_vec(), s)
    }

    #[test]
    fn ops_match_closed_forms() {
        let d = Device::reference_only();
        let a = t(&d, &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let b = t(&d, &[5.0, 6.0, 7.0, 8.0], &[2, 2]);
        assert_eq!(eval(&a.matmul(&b)).unwrap(), vec![19.0, 22.0, 43.0, 50.0]);
        let m = t(&d, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], &[2, 3]);
        assert_eq!(eval(&m.t()).unwrap(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(eval(&m.sum_axes(&[0])).unwrap(), vec![3.0, 5.0, 7.0]);
        assert_eq!(eval(&m.max_axes(&[1])).unwrap(), vec![2.0, 5.0]);
        assert_eq!(eval(&m.min()).unwrap(), vec![0.0]);
        assert_eq!(eval(&m.slice(&[1..2, 1..3])).unwrap(), vec![4.0, 5.0]);
        let row = t(&d, &[10.0, 20.0, 30.0], &[3]);
        assert_eq!(
            eval(&(&m + &row)).unwrap(),
            vec![10.0, 21.0, 32.0, 13.0, 24.0, 35.0]
        );
        assert_eq!(
            eval(&Tensor::concat(&[&row.reshape([1, 3]), &m], 0)).unwrap(),
            vec![10.0, 20.0, 30.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(
            eval(&row.narrow(0, 1..2).pad_into([3], &[2])).unwrap(),
            vec![0.0, 0.0, 20.0]
        );
        let p = eval(&m.softmax(1)).unwrap();
        assert!((p[0] + p[1] + p[2] - 1.0).abs() < 1e-12);
        assert!((p[2] - 2f64.exp() / (1.0 + 1f64.exp() + 2f64.exp())).abs() < 1e-12);
    }

    #[test]
    fn reverse_mode_graphs_evaluate_without_a_gpu() {
        let d = Device::reference_only();
        let x1 = Tensor::scalar(&d, 2.0);
        let x2 = Tensor::scalar(&d, 5.0);
        let y = &(&x1.log() + &(&x1 * &x2)) - &x2.sin();
        let g = grad(&y, &[&x1, &x2]);
        assert!((eval(&y).unwrap()[0] - (2f64.ln() + 10.0 - 5f64.sin())).abs() < 1e-12);
        assert!((eval(&g[0]).unwrap()[0] - 5.5).abs() < 1e-12);
        assert!((eval(&g[1]).unwrap()[0] - (2.0 - 5f64.cos())).abs() < 1e-12);
        let second = grad(&g[0], &[&x1]);
        assert!((eval(&second[0]).unwrap()[0] + 0.25).abs() < 1e-12);
    }
}
