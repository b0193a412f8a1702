//! Expressions as a hash-consed DAG: every distinct subexpression exists
//! once (common-subexpression elimination by construction), and the
//! constructors simplify as they build (0·a, 1·a, a+0, constant folding).
//!
//! Nodes only refer to nodes created before them, so the arena's order is
//! a topological order: every walk here is a loop over ids, never recursion.

use std::collections::HashMap;

/// A node of an [`ExprGraph`]: valid only in the graph that made it (and
/// its clones); using it with another graph panics with a clear message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId {
    graph: u32,
    pub(crate) index: u32,
}

/// Elementary functions of the expression language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    /// eˣ
    Exp,
    /// ln x
    Ln,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// tan x
    Tan,
    /// tanh x
    Tanh,
    /// σ(x)
    Sigmoid,
    /// √x
    Sqrt,
    /// |x|
    Abs,
    /// max(x, 0)
    Relu,
    /// −1, 0, 1: the derivative of abs.
    Sign,
    /// 1 for x > 0, else 0: the derivative of relu.
    Step,
}

impl Func {
    /// Every function, for tests and the parser.
    pub const ALL: [Func; 12] = [
        Func::Exp,
        Func::Ln,
        Func::Sin,
        Func::Cos,
        Func::Tan,
        Func::Tanh,
        Func::Sigmoid,
        Func::Sqrt,
        Func::Abs,
        Func::Relu,
        Func::Sign,
        Func::Step,
    ];

    /// The name the parser reads.
    pub fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::Ln => "ln",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
            Func::Tanh => "tanh",
            Func::Sigmoid => "sigmoid",
            Func::Sqrt => "sqrt",
            Func::Abs => "abs",
            Func::Relu => "relu",
            Func::Sign => "sign",
            Func::Step => "step",
        }
    }

    /// The function called `name` (`log` is a synonym of `ln`).
    pub fn by_name(name: &str) -> Option<Func> {
        if name == "log" {
            return Some(Func::Ln);
        }
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The function's value at `x`.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Func::Exp => x.exp(),
            Func::Ln => x.ln(),
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Tanh => x.tanh(),
            Func::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Func::Sqrt => x.sqrt(),
            Func::Abs => x.abs(),
            Func::Relu => x.max(0.0),
            Func::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Func::Step => (x > 0.0) as u8 as f64,
        }
    }
}

/// Binary operators, in the language `+ - * / ^`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// +
    Add,
    /// −
    Sub,
    /// ·
    Mul,
    /// /
    Div,
    /// ^
    Pow,
}

impl BinOp {
    /// The operator as printed.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
        }
    }
    /// Binding strength: + − 1, * / 2, (unary minus 3), ^ 4.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub => 1,
            BinOp::Mul | BinOp::Div => 2,
            BinOp::Pow => 4,
        }
    }
    /// Whether `a op b op c` groups to the right (`^`).
    pub fn right_associative(self) -> bool {
        self == BinOp::Pow
    }
    /// The operator applied to two numbers.
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Pow => a.powf(b),
        }
    }
}

/// Precedence of unary minus (and of negative number literals).
pub(crate) const NEG_PRECEDENCE: u8 = 3;
const ATOM_PRECEDENCE: u8 = 5;

/// One node. Numbers are stored by their bits so that nodes hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A number (its f64 bits).
    Num(u64),
    /// A variable (its index).
    Var(u32),
    /// −a
    Neg(ExprId),
    /// f(a)
    Func(Func, ExprId),
    /// a op b
    Bin(BinOp, ExprId, ExprId),
}

impl Node {
    /// The operands, in order.
    pub fn children(&self) -> impl Iterator<Item = ExprId> {
        let (a, b) = match *self {
            Node::Num(_) | Node::Var(_) => (None, None),
            Node::Neg(a) | Node::Func(_, a) => (Some(a), None),
            Node::Bin(_, a, b) => (Some(a), Some(b)),
        };
        a.into_iter().chain(b)
    }
}

/// An arena of hash-consed expressions.
#[derive(Clone)]
pub struct ExprGraph {
    /// Tells this graph's ids from another's.
    id: u32,
    nodes: Vec<Node>,
    /// Whether each node's subexpression mentions a variable.
    has_var: Vec<bool>,
    ids: HashMap<Node, ExprId>,
    names: Vec<String>,
    name_ids: HashMap<String, u32>,
}

impl Default for ExprGraph {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        ExprGraph {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nodes: Vec::new(),
            has_var: Vec::new(),
            ids: HashMap::new(),
            names: Vec::new(),
            name_ids: HashMap::new(),
        }
    }
}

impl ExprGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct nodes ever created in this graph.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// Whether no node exists yet.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node `id`.
    #[track_caller]
    pub fn node(&self, id: ExprId) -> Node {
        assert!(
            id.graph == self.id,
            "ExprGraph: expression #{} belongs to another ExprGraph",
            id.index
        );
        self.nodes[id.index as usize]
    }

    /// The name of variable number `v`.
    pub fn var_name(&self, v: u32) -> &str {
        &self.names[v as usize]
    }

    /// The node for `node`, created only if no equal node exists.
    fn intern(&mut self, node: Node) -> ExprId {
        if let Some(&id) = self.ids.get(&node) {
            return id;
        }
        let id = ExprId {
            graph: self.id,
            index: self.nodes.len() as u32,
        };
        let has_var = match node {
            Node::Var(_) => true,
            Node::Num(_) => false,
            Node::Neg(a) | Node::Func(_, a) => self.has_var[a.index as usize],
            Node::Bin(_, a, b) => self.has_var[a.index as usize] || self.has_var[b.index as usize],
        };
        self.nodes.push(node);
        self.has_var.push(has_var);
        self.ids.insert(node, id);
        id
    }

    fn as_num(&self, id: ExprId) -> Option<f64> {
        match self.node(id) {
            Node::Num(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }

    /// True if the subexpression at `id` mentions a variable.
    #[track_caller]
    fn has_var(&self, id: ExprId) -> bool {
        self.node(id);
        self.has_var[id.index as usize]
    }

    fn is(&self, id: ExprId, v: f64) -> bool {
        self.as_num(id) == Some(v)
    }

    /// A number (negative zero is stored as zero).
    pub fn num(&mut self, v: f64) -> ExprId {
        let v = if v == 0.0 { 0.0 } else { v };
        self.intern(Node::Num(v.to_bits()))
    }

    /// The variable `name` (one node per name).
    pub fn var(&mut self, name: &str) -> ExprId {
        let next = self.names.len() as u32;
        let v = *self.name_ids.entry(name.to_string()).or_insert(next);
        if v == next {
            self.names.push(name.to_string());
        }
        self.intern(Node::Var(v))
    }

    /// A folded constant, if the result is finite (so it prints and parses back).
    fn folded(&mut self, v: f64) -> Option<ExprId> {
        v.is_finite().then(|| self.num(v))
    }

    /// −a, simplified.
    pub fn neg(&mut self, a: ExprId) -> ExprId {
        if let Some(x) = self.as_num(a) {
            return self.num(-x);
        }
        if let Node::Neg(inner) = self.node(a) {
            return inner;
        }
        self.intern(Node::Neg(a))
    }

    /// f(a), simplified.
    pub fn func(&mut self, f: Func, a: ExprId) -> ExprId {
        if let Some(x) = self.as_num(a)
            && let Some(id) = self.folded(f.apply(x))
        {
            return id;
        }
        self.intern(Node::Func(f, a))
    }

    /// `a op b`, simplified: constants fold; 0 and 1 vanish where they are
    /// identities.
    ///
    /// The rules are algebraic, as in a computer algebra system: x − x = 0,
    /// 0·x = 0 and 0/x = 0 hold for every finite x, and are applied even
    /// though at x = ±∞ or NaN IEEE arithmetic would give NaN. They are never
    /// applied next to a non-finite constant (1e999, or one that did not fold:
    /// 1/0, 0/0), so `0/0`, `0·(1/0)` and `0·1e999` stay as written.
    pub fn bin(&mut self, op: BinOp, a: ExprId, b: ExprId) -> ExprId {
        if let (Some(x), Some(y)) = (self.as_num(a), self.as_num(b))
            && let Some(id) = self.folded(op.apply(x, y))
        {
            return id;
        }
        // A constant that is or did not fold to a finite number (±∞, NaN,
        // 1/0): no identity applies.
        let undefined =
            |g: &Self, id: ExprId| !g.has_var(id) && g.as_num(id).is_none_or(|v| !v.is_finite());
        if undefined(self, a) || undefined(self, b) {
            return self.intern(Node::Bin(op, a, b));
        }
        match op {
            BinOp::Add if self.is(a, 0.0) => b,
            BinOp::Add if self.is(b, 0.0) => a,
            BinOp::Sub if self.is(b, 0.0) => a,
            BinOp::Sub if self.is(a, 0.0) => self.neg(b),
            BinOp::Sub if a == b => self.num(0.0),
            BinOp::Mul if self.is(a, 0.0) || self.is(b, 0.0) => self.num(0.0),
            BinOp::Mul if self.is(a, 1.0) => b,
            BinOp::Mul if self.is(b, 1.0) => a,
            BinOp::Mul if self.is(a, -1.0) => self.neg(b),
            BinOp::Mul if self.is(b, -1.0) => self.neg(a),
            BinOp::Div if self.is(b, 1.0) => a,
            BinOp::Div if self.is(a, 0.0) && !self.is(b, 0.0) => self.num(0.0),
            BinOp::Pow if self.is(b, 1.0) => a,
            BinOp::Pow if self.is(b, 0.0) => self.num(1.0),
            _ => self.intern(Node::Bin(op, a, b)),
        }
    }

    /// a + b, simplified.
    pub fn add(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Add, a, b)
    }
    /// a − b, simplified.
    pub fn sub(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Sub, a, b)
    }
    /// a · b, simplified.
    pub fn mul(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Mul, a, b)
    }
    /// a / b, simplified.
    pub fn div(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Div, a, b)
    }
    /// aᵇ, simplified.
    pub fn pow(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Pow, a, b)
    }

    /// Ids reachable from `roots`, in increasing (topological) order.
    #[track_caller]
    pub fn reachable(&self, roots: &[ExprId]) -> Vec<ExprId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<ExprId> = roots.to_vec();
        while let Some(id) = stack.pop() {
            let node = self.node(id);
            if !std::mem::replace(&mut seen[id.index as usize], true) {
                stack.extend(node.children());
            }
        }
        (0..self.nodes.len() as u32)
            .filter(|&i| seen[i as usize])
            .map(|index| ExprId {
                graph: self.id,
                index,
            })
            .collect()
    }

    /// Distinct nodes needed for `roots`: the cost of evaluating them with
    /// common subexpressions shared.
    pub fn dag_size(&self, roots: &[ExprId]) -> usize {
        self.reachable(roots).len()
    }

    /// Nodes of `roots` written out as trees, nothing shared: the size of
    /// the expressions on paper (expression swell). An f64, as it can be
    /// astronomically large.
    pub fn tree_size(&self, roots: &[ExprId]) -> f64 {
        let mut size: HashMap<ExprId, f64> = HashMap::new();
        for id in self.reachable(roots) {
            let s = 1.0 + self.node(id).children().map(|c| size[&c]).sum::<f64>();
            size.insert(id, s);
        }
        roots.iter().map(|r| size[r]).sum()
    }

    /// The variables `e` uses, in order of first creation.
    pub fn variables(&self, e: ExprId) -> Vec<String> {
        self.reachable(&[e])
            .into_iter()
            .filter_map(|id| match self.node(id) {
                Node::Var(v) => Some(self.names[v as usize].clone()),
                _ => None,
            })
            .collect()
    }

    /// Evaluates `e` in f64; `None` names a variable with no value.
    pub fn eval(&self, e: ExprId, values: &[(&str, f64)]) -> Result<f64, String> {
        let mut v: HashMap<ExprId, f64> = HashMap::new();
        for id in self.reachable(&[e]) {
            let x = match self.node(id) {
                Node::Num(bits) => f64::from_bits(bits),
                Node::Var(i) => {
                    let name = &self.names[i as usize];
                    values
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|p| p.1)
                        .ok_or_else(|| format!("no value for variable {name}"))?
                }
                Node::Neg(a) => -v[&a],
                Node::Func(f, a) => f.apply(v[&a]),
                Node::Bin(op, a, b) => op.apply(v[&a], v[&b]),
            };
            v.insert(id, x);
        }
        Ok(v[&e])
    }

    fn precedence(&self, id: ExprId) -> u8 {
        match self.node(id) {
            Node::Num(bits) if f64::from_bits(bits) < 0.0 => NEG_PRECEDENCE,
            Node::Num(_) | Node::Var(_) | Node::Func(..) => ATOM_PRECEDENCE,
            Node::Neg(_) => NEG_PRECEDENCE,
            Node::Bin(op, ..) => op.precedence(),
        }
    }

    /// Prints `e` with the fewest parentheses that parse back to the same
    /// expression (`parse(print(e)) == e`). Shared subexpressions are
    /// written out each time they occur.
    pub fn print(&self, e: ExprId) -> String {
        enum Step {
            Visit(ExprId),
            Text(&'static str),
            Open,
            Close,
        }
        let mut out = String::new();
        let mut stack = vec![Step::Visit(e)];
        // Pushes a child, wrapped in parentheses when it binds less tightly than its parent requires.
        let child = |stack: &mut Vec<Step>, id: ExprId, parens: bool| {
            if parens {
                stack.push(Step::Close);
                stack.push(Step::Visit(id));
                stack.push(Step::Open);
            } else {
                stack.push(Step::Visit(id));
            }
        };
        while let Some(step) = stack.pop() {
            match step {
                Step::Text(t) => out.push_str(t),
                Step::Open => out.push('('),
                Step::Close => out.push(')'),
                Step::Visit(id) => match self.node(id) {
                    Node::Num(bits) => out.push_str(&number_text(f64::from_bits(bits))),
                    Node::Var(v) => out.push_str(&self.names[v as usize]),
                    Node::Neg(a) => {
                        // A negative literal under a minus would print as "--2"; parenthesize it.
                        child(&mut stack, a, self.precedence(a) <= NEG_PRECEDENCE);
                        out.push('-');
                    }
                    Node::Func(f, a) => {
                        stack.push(Step::Close);
                        stack.push(Step::Visit(a));
                        out.push_str(f.name());
                        out.push('(');
                    }
                    Node::Bin(op, a, b) => {
                        let p = op.precedence();
                        let (pa, pb) = (self.precedence(a), self.precedence(b));
                        let (left, right) = if op.right_associative() {
                            (pa <= p, pb < p)
                        } else {
                            (pa < p, pb <= p)
                        };
                        child(&mut stack, b, right);
                        stack.push(Step::Text(match op {
                            BinOp::Add => " + ",
                            BinOp::Sub => " - ",
                            BinOp::Mul => "*",
                            BinOp::Div => "/",
                            BinOp::Pow => "^",
                        }));
                        child(&mut stack, a, left);
                    }
                },
            }
        }
        out
    }
}

/// A number as the parser reads it back: non-finite values, which Rust
/// prints as `inf` and `NaN` (names the parser would take for variables),
/// become expressions of the same value.
fn number_text(v: f64) -> String {
    if v.is_nan() {
        "(0/0)".to_string()
    } else if v == f64::INFINITY {
        "1e999".to_string()
    } else if v == f64::NEG_INFINITY {
        "(-1e999)".to_string()
    } else {
        format!("{v}")
    }
}
