//! Expressions compiled to the tensor graph, so an expression and its
//! symbolic derivatives run as shaders. Shared subexpressions become shared
//! graph nodes.

use std::collections::HashMap;

use super::expr::{BinOp, ExprGraph, ExprId, Func, Node};
use crate::device::Device;
use crate::ops::elementwise::Unary;
use crate::tensor::Tensor;

fn unary(f: Func) -> Unary {
    match f {
        Func::Exp => Unary::Exp,
        Func::Ln => Unary::Log,
        Func::Sin => Unary::Sin,
        Func::Cos => Unary::Cos,
        Func::Tan => Unary::Tan,
        Func::Tanh => Unary::Tanh,
        Func::Sigmoid => Unary::Sigmoid,
        Func::Sqrt => Unary::Sqrt,
        Func::Abs => Unary::Abs,
        Func::Relu => Unary::Relu,
        Func::Sign => Unary::Sign,
        Func::Step => Unary::Step,
    }
}

impl ExprGraph {
    /// Tensors computing `roots`, with each variable bound to a tensor
    /// (tensors broadcast like any elementwise op; numbers become scalars).
    #[track_caller]
    pub fn to_graph(
        &self,
        device: &Device,
        roots: &[ExprId],
        bindings: &[(&str, &Tensor)],
    ) -> Vec<Tensor> {
        let mut t: HashMap<ExprId, Tensor> = HashMap::new();
        for id in self.reachable(roots) {
            let v = match self.node(id) {
                Node::Num(bits) => Tensor::full(device, [], f64::from_bits(bits) as f32),
                Node::Var(i) => {
                    let name = self.var_name(i);
                    match bindings.iter().find(|(n, _)| *n == name) {
                        Some((_, x)) => (*x).clone(),
                        None => panic!("to_graph: no tensor is bound to the variable {name}"),
                    }
                }
                Node::Neg(a) => -&t[&a],
                Node::Func(f, a) => t[&a].unary(unary(f)),
                Node::Bin(BinOp::Pow, a, b) => match self.node(b) {
                    Node::Num(bits) => t[&a].powf(f64::from_bits(bits) as f32),
                    _ => t[&a].pow(&t[&b]),
                },
                Node::Bin(op, a, b) => {
                    let (x, y) = (&t[&a], &t[&b]);
                    match op {
                        BinOp::Add => x + y,
                        BinOp::Sub => x - y,
                        BinOp::Mul => x * y,
                        BinOp::Div => x / y,
                        BinOp::Pow => unreachable!(),
                    }
                }
            };
            t.insert(id, v);
        }
        roots.iter().map(|r| t[r].clone()).collect()
    }
}
