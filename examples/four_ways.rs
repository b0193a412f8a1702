//! The lecture's example y = ln(x1) + x1·x2 − sin(x2) at (2, 5),
//! differentiated four ways on the GPU (the code shown in the README).
//!
//! cargo run --example four_ways

use webgrad::symbolic::ExprGraph;
use webgrad::*;

fn main() -> Result<()> {
    let dev = Device::new_blocking()?;
    let x1 = Tensor::scalar(&dev, 2.0);
    let x2 = Tensor::scalar(&dev, 5.0);
    let f = |x: &[Tensor]| &(&x[0].log() + &(&x[0] * &x[1])) - &x[1].sin();

    // 1. Numerical: central differences on the GPU in f32 (2n evaluations, one submit) ...
    let num = numerical_grad_blocking(f, &[&x1, &x2], Difference::Central, None)?;
    // ... or on the f64 reference, with exact perturbations.
    let y = f(&[x1.clone(), x2.clone()]);
    let num64 = numerical_grad_reference(&y, &[&x1, &x2], Difference::Central, None)?;

    // 2. Symbolic: parse, differentiate by the rules, simplify, print, compile to shaders.
    let mut g = ExprGraph::new();
    let e = g.parse("ln(x1) + x1*x2 - sin(x2)")?;
    let d = g.gradient(e, &["x1", "x2"]);
    assert_eq!(g.print(d[0]), "1/x1 + x2");
    assert_eq!(g.print(d[1]), "x1 - cos(x2)");
    let on_gpu = g.to_graph(&dev, &d, &[("x1", &x1), ("x2", &x2)]);

    // 3. Forward mode: one pass per direction; tangent (1, 0) gives ∂y/∂x1 = 5.5.
    let (one, zero) = (Tensor::scalar(&dev, 1.0), Tensor::scalar(&dev, 0.0));
    let (y, dy_dx1) = jvp(f, &[&x1, &x2], &[&one, &zero]);

    // 4. Reverse mode: one pass for all inputs.
    let g_rev = grad(&y, &[&x1, &x2]);

    let v = read_all_blocking(&[&y, &on_gpu[0], &on_gpu[1], &dy_dx1, &g_rev[0], &g_rev[1]])?;
    println!("y = {:.4}", v[0][0]);
    println!(
        "numerical (f32 GPU):  ∂y/∂x1 = {:.6}, ∂y/∂x2 = {:.6}",
        num[0][0], num[1][0]
    );
    println!(
        "numerical (f64 ref):  ∂y/∂x1 = {:.6}, ∂y/∂x2 = {:.6}",
        num64[0][0], num64[1][0]
    );
    println!(
        "symbolic:             ∂y/∂x1 = {} = {:.6}, ∂y/∂x2 = {} = {:.6}",
        g.print(d[0]),
        v[1][0],
        g.print(d[1]),
        v[2][0]
    );
    println!("forward mode:         ∂y/∂x1 = {:.6}", v[3][0]);
    println!(
        "reverse mode:         ∂y/∂x1 = {:.6}, ∂y/∂x2 = {:.6}",
        v[4][0], v[5][0]
    );
    println!(
        "exact:                ∂y/∂x1 = 5.5, ∂y/∂x2 = 2 − cos 5 = {:.6}",
        2.0 - 5f64.cos()
    );
    Ok(())
}
