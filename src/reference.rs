//! An f64 CPU interpreter of the graph IR: the oracle the tests check the
//! GPU against. It shares no code with the executor: every op is
//! re-implemented here from its definition, by index arithmetic.

use std::collections::HashMap;
use std::rc::Rc;

use crate::error::Result;
use crate::graph::{Node, NodeId, Op, topo_order};
use crate::ops::reduce::ReduceOp;
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
    let roots: Vec<Rc<Node>> = ts.iter().map(|t| t.node.clone()).collect();
    let mut values: HashMap<NodeId, Rc<Vec<f64>>> = HashMap::new();
    for node in topo_order(&roots, |_| false) {
        let inputs: Vec<Rc<Vec<f64>>> = node
            .inputs()
            .iter()
            .map(|i| values[&i.id].clone())
            .collect();
        let in_shapes: Vec<Shape> = node.inputs().iter().map(|i| i.shape.clone()).collect();
        let v = match (&node.op, inputs.is_empty()) {
            (Op::Detach, true) => read_realized(&node)?,
            _ => eval_op(&node.op, &node.shape, &inputs, &in_shapes),
        };
        values.insert(node.id, Rc::new(v));
    }
    Ok(ts
        .iter()
        .map(|t| values[&t.id()].as_ref().clone())
        .collect())
}

#[cfg(not(target_arch = "wasm32"))]
fn read_realized(node: &Rc<Node>) -> Result<Vec<f64>> {
    let t = Tensor::from_node(node.clone());
    Ok(t.to_vec_blocking()?.into_iter().map(f64::from).collect())
}

#[cfg(target_arch = "wasm32")]
fn read_realized(_node: &Rc<Node>) -> Result<Vec<f64>> {
    Err(crate::Error::Readback(
        "the reference interpreter cannot block on the GPU in a browser".into(),
    ))
}

/// Index in a tensor of shape `from` read as broadcast to the multi-index `idx` of `to`.
fn broadcast_index(idx: &[usize], strides: &[usize]) -> usize {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

fn eval_op(op: &Op, shape: &Shape, x: &[Rc<Vec<f64>>], xs: &[Shape]) -> Vec<f64> {
    let n = shape.numel();
    let dims = shape.dims();
    match op {
        Op::Input(data) => data.iter().map(|&v| v as f64).collect(),
        Op::Fill(v) => vec![*v as f64; n],
        Op::Unary(u) => {
            let f = u.rule().reference;
            let c = u.constant().unwrap_or(0.0) as f64;
            x[0].iter().map(|&v| f(v, c)).collect()
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
                ReduceOp::Max => (f64::NEG_INFINITY, f64::max),
                ReduceOp::Min => (f64::INFINITY, f64::min),
            };
            let mut out = vec![init; n];
            let out_strides = broadcast_strides(shape, &xs[0]);
            for (i, &v) in x[0].iter().enumerate() {
                let o = broadcast_index(&unravel(i, xs[0].dims()), &out_strides);
                out[o] = combine(out[o], v);
            }
            out
        }
        Op::Matmul => {
            let (a, b) = (&xs[0], &xs[1]);
            let (m, k, nn) = (
                a.dims()[a.rank() - 2],
                a.dims()[a.rank() - 1],
                b.dims()[b.rank() - 1],
            );
            let batch = Shape::new(&dims[..dims.len() - 2]);
            let a_batch = broadcast_strides(&Shape::new(&a.dims()[..a.rank() - 2]), &batch);
            let b_batch = broadcast_strides(&Shape::new(&b.dims()[..b.rank() - 2]), &batch);
            let mut out = vec![0.0; n];
            for bi in 0..batch.numel() {
                let idx = unravel(bi, batch.dims());
                let (ao, bo) = (
                    broadcast_index(&idx, &a_batch) * m * k,
                    broadcast_index(&idx, &b_batch) * k * nn,
                );
                for r in 0..m {
                    for c in 0..nn {
                        out[bi * m * nn + r * nn + c] = (0..k)
                            .map(|j| x[0][ao + r * k + j] * x[1][bo + j * nn + c])
                            .sum();
                    }
                }
            }
            out
        }
        Op::Reshape | Op::Detach => x[0].as_ref().clone(),
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
        Op::Concat { axis } => {
            let mut out = vec![0.0; n];
            let out_strides = shape.strides();
            let mut offset = 0;
            for (part, s) in x.iter().zip(xs) {
                for (i, &v) in part.iter().enumerate() {
                    let mut idx = unravel(i, s.dims());
                    idx[*axis] += offset;
                    out[broadcast_index(&idx, &out_strides)] = v;
                }
                offset += s.dims()[*axis];
            }
            out
        }
    }
}
