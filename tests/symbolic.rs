//! The expression language, symbolic derivatives, CSE, and expressions
//! compiled to the GPU graph.

mod common;

use webgrad::symbolic::ExprGraph;
use webgrad::{
    Difference, Error, Tensor, grad, numerical_grad_blocking, read_all_blocking, tangent,
};

use common::assert_close;

const LECTURE: &str = "ln(x1) + x1*x2 - sin(x2)";

#[test]
fn lecture_example_symbolically() {
    let mut g = ExprGraph::new();
    let y = g.parse(LECTURE).unwrap();
    assert_eq!(g.variables(y), vec!["x1", "x2"]);
    let at = [("x1", 2.0), ("x2", 5.0)];
    assert!((g.eval(y, &at).unwrap() - 11.652).abs() < 1e-3);
    let d = g.gradient(y, &["x1", "x2"]);
    assert_eq!(g.print(d[0]), "1/x1 + x2");
    assert_eq!(g.print(d[1]), "x1 - cos(x2)");
    assert_eq!(g.eval(d[0], &at).unwrap(), 5.5);
    assert_eq!(g.eval(d[1], &at).unwrap(), 2.0 - 5f64.cos());
    // Second derivative: −1/x1².
    let d11 = g.diff(d[0], "x1");
    assert_eq!(g.eval(d11, &at).unwrap(), -0.25);
}

#[test]
fn rules_and_simplification() {
    let mut g = ExprGraph::new();
    let cases = [
        ("x*3 + 0*y + 1*x", "x", "4"),
        ("x^3", "x", "3*x^2"),
        ("sin(x)^2", "x", "2*sin(x)*cos(x)"),
        ("exp(2*x)", "x", "exp(2*x)*2"),
        ("x/y", "y", "-x/y^2"),
        ("2^x", "x", "2^x*0.6931471805599453"), // ln 2, folded
        ("sqrt(x)", "x", "1/(2*sqrt(x))"),
        ("tanh(x)", "x", "1 - tanh(x)^2"),
        ("relu(x) + abs(x)", "x", "step(x) + sign(x)"),
        ("-(x*y)", "x", "-y"),
        ("2 + 3*4 - 1", "x", "0"),
    ];
    for (src, var, want) in cases {
        let e = g.parse(src).unwrap();
        let d = g.diff(e, var);
        assert_eq!(g.print(d), want, "d/d{var} {src}");
    }
    // Constant folding and identities.
    let e = g.parse("0*x + (y - y) + 2*3 + x^1 + x^0").unwrap();
    assert_eq!(g.print(e), "6 + x + 1");
}

#[test]
fn printing_round_trips_through_the_parser() {
    let mut g = ExprGraph::new();
    let sources = [
        LECTURE,
        "-x^2",
        "(-x)^2",
        "a - (b - c)",
        "a - b - c",
        "a/(b*c)",
        "a^b^c",
        "(a^b)^c",
        "-(a + b)*c",
        "x^-2",
        "sigmoid(x)*tan(y) + sqrt(abs(z - 1.5e-3))",
        "2*x - -3",
        "log(x)",
    ];
    for src in sources {
        let e = g.parse(src).unwrap();
        let printed = g.print(e);
        let again = g.parse(&printed).unwrap();
        // Hash-consing: the same expression is the same node.
        assert_eq!(e, again, "{src} printed as {printed}");
        let d = g.diff(e, "x");
        assert_eq!(
            g.parse(&g.print(d)).unwrap(),
            d,
            "derivative of {src}: {}",
            g.print(d)
        );
    }
}

fn parse_error(src: &str) -> (usize, String) {
    match ExprGraph::new().parse(src) {
        Err(Error::Parse { position, message }) => (position, message),
        other => panic!("{src:?}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn malformed_inputs_give_positioned_errors() {
    let (p, m) = parse_error("(x + 1");
    assert!(
        p == 6 && m.contains("expected ')'") && m.contains("position 0"),
        "{p} {m}"
    );
    let (p, m) = parse_error("x + 1)");
    assert!(p == 5 && m.contains("unbalanced ')'"), "{p} {m}");
    let (p, m) = parse_error("x + foo(2)");
    assert!(p == 4 && m.contains("unknown function 'foo'"), "{p} {m}");
    let (p, m) = parse_error("x *");
    assert!(p == 3 && m.contains("end of the input"), "{p} {m}");
    let (p, m) = parse_error("");
    assert!(p == 0 && m.contains("end of the input"), "{p} {m}");
    let (p, m) = parse_error("2 x");
    assert!(p == 2 && m.contains("expected an operator"), "{p} {m}");
    let (p, m) = parse_error("x $ y");
    assert!(p == 2 && m.contains("unexpected character '$'"), "{p} {m}");
    let (p, _) = parse_error("sin()");
    assert_eq!(p, 4);
    // The Display form carries the position too.
    let e = ExprGraph::new().parse("x +* y").unwrap_err();
    assert_eq!(
        e.to_string(),
        "parse error at position 3: expected a number, a variable, a function or '(' but found '*'"
    );
}

#[test]
fn very_long_inputs_neither_panic_nor_overflow_the_stack() {
    // 100,000 characters of unclosed parentheses: a positioned error.
    let open = "(".repeat(100_000);
    let (p, m) = parse_error(&open);
    assert!(p == 100_000 && m.contains("end of the input"), "{p} {m}");
    // 100,000 characters of valid nesting: parses, differentiates, prints, evaluates.
    let deep = format!("{}x{}", "sin(".repeat(24_999), ")".repeat(24_999));
    assert!(deep.len() > 100_000);
    let mut g = ExprGraph::new();
    let e = g.parse(&deep).unwrap();
    assert_eq!(g.print(e), deep);
    let d = g.diff(e, "x");
    let v = g.eval(d, &[("x", 0.1)]).unwrap();
    assert!(v.is_finite() && v > 0.0);
    // A long flat sum: 50,000 terms.
    let flat = vec!["x"; 50_000].join("+");
    let e = g.parse(&flat).unwrap();
    let d = g.diff(e, "x");
    assert_eq!(g.eval(d, &[]).unwrap(), 50_000.0);
    // And trailing garbage far in.
    let (p, _) = parse_error(&format!("{flat}+"));
    assert_eq!(p, flat.len() + 1);
}

#[test]
fn expression_swell_of_a_product_and_cse() {
    let mut g = ExprGraph::new();
    let names: Vec<String> = (1..=16).map(|i| format!("t{i}")).collect();
    let f = g.parse(&names.join("*")).unwrap();
    let vars: Vec<&str> = names.iter().map(String::as_str).collect();
    let grad = g.gradient(f, &vars);
    // ∂f/∂t_k = ∏_{j≠k} t_j: written out, n(n−1)-ish leaves in all.
    let tree = g.tree_size(&grad);
    let dag = g.dag_size(&grad);
    assert!(tree > 16.0 * 15.0, "tree size {tree}");
    assert!(
        (dag as f64) < tree,
        "CSE shares the forward product's prefixes: {dag} vs {tree}"
    );
    let values: Vec<(&str, f64)> = vars
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, 1.0 + i as f64 / 16.0))
        .collect();
    let total: f64 = values.iter().map(|v| v.1).product();
    for (k, &d) in grad.iter().enumerate() {
        let want = total / values[k].1;
        assert!((g.eval(d, &values).unwrap() - want).abs() < 1e-9 * want);
    }
}

#[test]
fn one_expression_by_all_four_methods_on_the_gpu() {
    let dev = gpu!();
    let mut g = ExprGraph::new();
    let y = g.parse(LECTURE).unwrap();
    let d = g.gradient(y, &["x1", "x2"]);
    let x1 = Tensor::scalar(&dev, 2.0);
    let x2 = Tensor::scalar(&dev, 5.0);
    let bind = [("x1", &x1), ("x2", &x2)];
    // Symbolic: the derivative expressions compiled to shaders.
    let sym = g.to_graph(&dev, &[y, d[0], d[1]], &bind);
    // Reverse and forward mode on the compiled expression.
    let rev = grad(&sym[0], &[&x1, &x2]);
    let one = Tensor::scalar(&dev, 1.0);
    let zero = Tensor::scalar(&dev, 0.0);
    let fwd1 = tangent(&sym[0], &[&x1, &x2], &[&one, &zero]);
    let fwd2 = tangent(&sym[0], &[&x1, &x2], &[&zero, &one]);
    let v =
        read_all_blocking(&[&sym[0], &sym[1], &sym[2], &rev[0], &rev[1], &fwd1, &fwd2]).unwrap();
    let exact = [5.5, 2.0 - 5f64.cos()];
    assert_close("value", &v[0], &[2f64.ln() + 10.0 - 5f64.sin()], 1e-5, 1e-6);
    for (name, a, b) in [("symbolic", 1, 2), ("reverse", 3, 4), ("forward", 5, 6)] {
        assert_close(name, &[v[a][0], v[b][0]], &exact, 1e-5, 1e-6);
    }
    // Numerical: central differences of the compiled expression.
    let num = numerical_grad_blocking(
        |t| {
            g.to_graph(&dev, &[y], &[("x1", &t[0]), ("x2", &t[1])])
                .remove(0)
        },
        &[&x1, &x2],
        Difference::Central,
        None,
    )
    .unwrap();
    assert_close("numerical", &[num[0][0], num[1][0]], &exact, 2e-3, 0.0);
}
