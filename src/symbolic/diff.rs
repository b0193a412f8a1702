//! Symbolic differentiation by the sum, product, quotient and chain rules.
//! Walks the DAG in id order (children first), so each subexpression is
//! differentiated once; the simplifying constructors keep results small.

use std::collections::HashMap;

use super::expr::{BinOp, ExprGraph, ExprId, Func, Node};

impl ExprGraph {
    /// ∂e/∂`var`, simplified. Variables other than `var` are constants.
    pub fn diff(&mut self, e: ExprId, var: &str) -> ExprId {
        let x = self.var(var);
        let mut d: HashMap<ExprId, ExprId> = HashMap::new();
        for id in self.reachable(&[e]) {
            let zero = self.num(0.0);
            let dv = match self.node(id) {
                Node::Num(_) => zero,
                Node::Var(_) => self.num(if id == x { 1.0 } else { 0.0 }),
                Node::Neg(a) => self.neg(d[&a]),
                Node::Bin(op, a, b) => {
                    let (da, db) = (d[&a], d[&b]);
                    match op {
                        // (a ± b)' = a' ± b'
                        BinOp::Add | BinOp::Sub => self.bin(op, da, db),
                        // (ab)' = a'b + ab'
                        BinOp::Mul => {
                            let l = self.mul(da, b);
                            let r = self.mul(a, db);
                            self.add(l, r)
                        }
                        // (a/b)' = (a'b − ab') / b²
                        BinOp::Div => {
                            let l = self.mul(da, b);
                            let r = self.mul(a, db);
                            let top = self.sub(l, r);
                            let two = self.num(2.0);
                            let bottom = self.pow(b, two);
                            self.div(top, bottom)
                        }
                        BinOp::Pow => self.diff_pow(a, b, da, db),
                    }
                }
                // (f(a))' = f'(a)·a'
                Node::Func(f, a) => {
                    let da = d[&a];
                    if da == zero {
                        zero
                    } else {
                        let outer = self.derivative_of(f, id, a);
                        self.mul(outer, da)
                    }
                }
            };
            d.insert(id, dv);
        }
        d[&e]
    }

    /// (a^b)': c·a^(c−1)·a' for a constant exponent c; a^b·(b'·ln a + b·a'/a) otherwise.
    fn diff_pow(&mut self, a: ExprId, b: ExprId, da: ExprId, db: ExprId) -> ExprId {
        if let Node::Num(bits) = self.node(b) {
            let c = f64::from_bits(bits);
            let cn = self.num(c);
            let c1 = self.num(c - 1.0);
            let p = self.pow(a, c1);
            let k = self.mul(cn, p);
            return self.mul(k, da);
        }
        let y = self.bin(BinOp::Pow, a, b);
        let ln_a = self.func(Func::Ln, a);
        let t1 = self.mul(db, ln_a);
        let ba = self.mul(b, da);
        let t2 = self.div(ba, a);
        let s = self.add(t1, t2);
        self.mul(y, s)
    }

    /// f'(a), given the node `fa` = f(a).
    fn derivative_of(&mut self, f: Func, fa: ExprId, a: ExprId) -> ExprId {
        let one = self.num(1.0);
        match f {
            Func::Exp => fa,
            Func::Ln => self.div(one, a),
            Func::Sin => self.func(Func::Cos, a),
            Func::Cos => {
                let s = self.func(Func::Sin, a);
                self.neg(s)
            }
            // tan' = 1 + tan², tanh' = 1 − tanh²
            Func::Tan | Func::Tanh => {
                let two = self.num(2.0);
                let sq = self.pow(fa, two);
                if f == Func::Tan {
                    self.add(one, sq)
                } else {
                    self.sub(one, sq)
                }
            }
            // σ' = σ(1 − σ)
            Func::Sigmoid => {
                let rest = self.sub(one, fa);
                self.mul(fa, rest)
            }
            // √' = 1 / (2√a)
            Func::Sqrt => {
                let two = self.num(2.0);
                let t = self.mul(two, fa);
                self.div(one, t)
            }
            Func::Abs => self.func(Func::Sign, a),
            Func::Relu => self.func(Func::Step, a),
            Func::Sign | Func::Step => self.num(0.0),
        }
    }

    /// ∂e/∂v for each of `vars`.
    pub fn gradient(&mut self, e: ExprId, vars: &[&str]) -> Vec<ExprId> {
        vars.iter().map(|v| self.diff(e, v)).collect()
    }
}
