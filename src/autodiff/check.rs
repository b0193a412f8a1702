//! Gradient checking for f32 GPUs.
//!
//! For a graph function f and random directions u (output-shaped) and v
//! (input-shaped), reverse mode gives Jᵀu and forward mode gives Jv; they
//! must satisfy ⟨u, J·v⟩ = ⟨Jᵀ·u, v⟩. Both are also compared with central
//! differences of the f64 reference interpreter: Jᵀu element by element
//! (the derivative of ⟨u, f⟩ with respect to each input element) and Jv as
//! a directional derivative. The project's own op tests use this checker.

use std::fmt;

use crate::error::Result;
use crate::reference;
use crate::tensor::{Tensor, read_all};

use super::forward::tangent;
use super::numerical::{Difference, numerical_grad_reference};
use super::reverse::grad_with_seed;

/// Accepted error: |gpu − reference| ≤ atol + rtol·|reference|.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (of the larger magnitude).
    pub rtol: f64,
}

impl Default for Tolerance {
    /// Suits f32 arithmetic on well-scaled inputs: 2e-3 absolute and relative.
    fn default() -> Self {
        Tolerance {
            atol: 2e-3,
            rtol: 2e-3,
        }
    }
}

impl Tolerance {
    fn accepts(&self, got: f64, want: f64) -> bool {
        (got - want).abs() <= self.atol + self.rtol * want.abs() || got == want
    }
}

/// Reverse mode (Jᵀu) for one input against central differences of the reference.
#[derive(Clone, Debug)]
pub struct InputReport {
    pub max_abs_error: f64,
    pub max_rel_error: f64,
    /// Index of the worst element.
    pub worst: usize,
    pub passed: bool,
}

/// The result of [`check_gradients`].
#[derive(Clone, Debug)]
pub struct GradientReport {
    /// One entry per input.
    pub inputs: Vec<InputReport>,
    /// ⟨u, J·v⟩ from forward mode on the GPU.
    pub forward_dot: f64,
    /// ⟨Jᵀ·u, v⟩ from reverse mode on the GPU.
    pub reverse_dot: f64,
    /// ⟨u, J·v⟩ by central differences of the f64 reference along v.
    pub reference_dot: f64,
    /// Scale for the dot-product comparisons: Σ |terms|.
    pub dot_scale: f64,
    /// The tolerance the check used.
    pub tolerance: Tolerance,
    /// Everything within tolerance.
    pub passed: bool,
}

impl fmt::Display for GradientReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gradient check {}",
            if self.passed { "passed" } else { "FAILED" }
        )?;
        for (k, r) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "  input {k}: reverse vs f64 central differences: max abs {:.3e}, max rel {:.3e} (worst element {}){}",
                r.max_abs_error,
                r.max_rel_error,
                r.worst,
                if r.passed {
                    ""
                } else {
                    "  <-- out of tolerance"
                }
            )?;
        }
        write!(
            f,
            "  <u, Jv> forward = {:.6e}, <J^T u, v> reverse = {:.6e}, f64 differences = {:.6e} (scale {:.3e}, atol {:e}, rtol {:e})",
            self.forward_dot,
            self.reverse_dot,
            self.reference_dot,
            self.dot_scale,
            self.tolerance.atol,
            self.tolerance.rtol
        )
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Checks reverse and forward mode of `f` at `inputs` (see the module docs).
/// `seed` makes the random directions reproducible.
pub async fn check_gradients(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[&Tensor],
    tolerance: Tolerance,
    seed: u64,
) -> Result<GradientReport> {
    let Tolerance { atol, rtol } = tolerance;
    assert!(
        atol >= 0.0 && rtol >= 0.0 && atol.is_finite() && rtol.is_finite(),
        "check_gradients: the tolerances must be finite and at least 0, got atol {atol} and rtol {rtol}"
    );
    let xs: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let y = f(&xs);
    let u = Tensor::rand_uniform(y.device(), y.shape().clone(), -1.0, 1.0, seed);
    let vs: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(k, x)| {
            Tensor::rand_uniform(
                x.device(),
                x.shape().clone(),
                -1.0,
                1.0,
                seed.wrapping_add(1 + k as u64),
            )
        })
        .collect();
    let v_refs: Vec<&Tensor> = vs.iter().collect();
    let reverse = grad_with_seed(&y, inputs, &u);
    let forward = tangent(&y, inputs, &v_refs);

    let mut wanted: Vec<&Tensor> = vec![&u, &forward];
    wanted.extend(reverse.iter());
    wanted.extend(vs.iter());
    let read = read_all(&wanted).await?;
    let (u_host, jv) = (&read[0], &read[1]);
    let jtu = &read[2..2 + inputs.len()];
    let v_host = &read[2 + inputs.len()..];

    // The scalar ⟨u, f(x)⟩ on the reference, differentiated numerically.
    let loss = (&y * &u).sum();
    let fd = numerical_grad_reference(&loss, inputs, Difference::Central, None)?;
    let mut reports = Vec::new();
    for (g, want) in jtu.iter().zip(&fd) {
        let mut r = InputReport {
            max_abs_error: 0.0,
            max_rel_error: 0.0,
            worst: 0,
            passed: true,
        };
        for (i, (&g, &w)) in g.iter().zip(want).enumerate() {
            let abs = (g as f64 - w).abs();
            // A NaN error is the worst there is: report it, never hide it as 0.
            if !r.max_abs_error.is_nan() && (abs.is_nan() || abs > r.max_abs_error) {
                r.max_abs_error = abs;
                r.worst = i;
            }
            let rel = abs / w.abs().max(1e-12);
            if !r.max_rel_error.is_nan() && (rel.is_nan() || rel > r.max_rel_error) {
                r.max_rel_error = rel;
            }
            r.passed &= tolerance.accepts(g as f64, w);
        }
        reports.push(r);
    }

    // Directional derivative of ⟨u, f⟩ along v, by central differences in f64.
    let x_ref = reference::eval_many(inputs)?;
    let h = Difference::Central.default_step_f64();
    let moved = |sign: f64| -> Result<f64> {
        let data: Vec<Vec<f64>> = x_ref
            .iter()
            .zip(v_host)
            .map(|(x, v)| {
                x.iter()
                    .zip(v)
                    .map(|(&x, &v)| x + sign * h * v as f64)
                    .collect()
            })
            .collect();
        let overrides: Vec<(&Tensor, &[f64])> = inputs
            .iter()
            .zip(&data)
            .map(|(&t, d)| (t, d.as_slice()))
            .collect();
        Ok(reference::eval_with(&[&loss], &overrides)?[0][0])
    };
    let reference_dot = (moved(1.0)? - moved(-1.0)?) / (2.0 * h);
    let forward_dot = dot(u_host, jv);
    let reverse_dot: f64 = jtu.iter().zip(v_host).map(|(g, v)| dot(g, v)).sum();
    let dot_scale: f64 = u_host
        .iter()
        .zip(jv)
        .map(|(&a, &b)| (a as f64 * b as f64).abs())
        .sum::<f64>()
        + jtu
            .iter()
            .zip(v_host)
            .flat_map(|(g, v)| g.iter().zip(v).map(|(&a, &b)| (a as f64 * b as f64).abs()))
            .sum::<f64>();
    let dot_ok =
        |a: f64, b: f64| (a - b).abs() <= tolerance.atol + tolerance.rtol * dot_scale.max(b.abs());
    let passed = reports.iter().all(|r| r.passed)
        && dot_ok(forward_dot, reverse_dot)
        && dot_ok(forward_dot, reference_dot)
        && dot_ok(reverse_dot, reference_dot);
    Ok(GradientReport {
        inputs: reports,
        forward_dot,
        reverse_dot,
        reference_dot,
        dot_scale,
        tolerance,
        passed,
    })
}

/// Blocking [`check_gradients`] for native code.
#[cfg(not(target_arch = "wasm32"))]
pub fn check_gradients_blocking(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[&Tensor],
    tolerance: Tolerance,
    seed: u64,
) -> Result<GradientReport> {
    pollster::block_on(check_gradients(f, inputs, tolerance, seed))
}
