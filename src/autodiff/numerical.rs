//! Numerical differentiation: finite differences of any graph function,
//! on the GPU in f32 and on the f64 reference.
//!
//! The step is relative: input x_i moves by h_i = step · max(1, |x_i|).
//! The default steps balance the two errors of each scheme: truncation
//! (∝ h for forward differences, ∝ h² for central ones) against round-off
//! (∝ ε/h, with ε the machine epsilon), giving h ≈ √ε for forward and
//! h ≈ ∛ε for central differences. That balance is why numerical
//! differentiation is hard to get right: see [`step_sweep`].

use crate::error::Result;
use crate::reference;
use crate::tensor::{Tensor, read_all};

/// Finite-difference scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Difference {
    /// (f(x + h·eᵢ) − f(x)) / h: n + 1 evaluations, error O(h).
    Forward,
    /// (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h: 2n evaluations, error O(h²).
    Central,
}

impl Difference {
    /// √ε or ∛ε of f32: 3.45e-4 (forward), 4.92e-3 (central).
    pub fn default_step_f32(self) -> f64 {
        let eps = f32::EPSILON as f64;
        match self {
            Difference::Forward => eps.sqrt(),
            Difference::Central => eps.cbrt(),
        }
    }
    /// √ε or ∛ε of f64: 1.49e-8 (forward), 6.06e-6 (central).
    pub fn default_step_f64(self) -> f64 {
        let eps = f64::EPSILON;
        match self {
            Difference::Forward => eps.sqrt(),
            Difference::Central => eps.cbrt(),
        }
    }
    /// Function evaluations for n inputs.
    pub fn evaluations(self, n: usize) -> usize {
        match self {
            Difference::Forward => n + 1,
            Difference::Central => 2 * n,
        }
    }
}

/// Panics unless `step` is a usable finite-difference step: positive and
/// finite (0 divides by zero, a negative or NaN one means nothing).
#[track_caller]
pub(crate) fn check_step(op: &str, step: f64) {
    assert!(
        step > 0.0 && step.is_finite(),
        "{op}: the step must be positive and finite, got {step}"
    );
}

fn step_for(x: f64, step: f64) -> f64 {
    step * x.abs().max(1.0)
}

/// ∂f/∂x by finite differences on the GPU in f32. `f` must return one value.
/// Every evaluation is recorded first and all run in one submit.
pub async fn numerical_grad(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[&Tensor],
    scheme: Difference,
    step: Option<f64>,
) -> Result<Vec<Vec<f32>>> {
    let step = step.unwrap_or(scheme.default_step_f32());
    check_step("numerical_grad", step);
    let values = read_all(inputs).await?;
    let base: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let mut evals: Vec<Tensor> = Vec::new();
    let mut hs: Vec<Vec<f64>> = Vec::new();
    let f0 = f(&base);
    assert_eq!(
        f0.numel(),
        1,
        "numerical_grad: f must return a single value, got shape {:?}",
        f0.shape()
    );
    for (k, x) in inputs.iter().enumerate() {
        let mut ks = Vec::new();
        for i in 0..x.numel() {
            let h = step_for(values[k][i] as f64, step);
            ks.push(h);
            let signs: &[f64] = if scheme == Difference::Central {
                &[1.0, -1.0]
            } else {
                &[1.0]
            };
            for &sign in signs {
                // x ± h is rounded to f32: for tiny h the step vanishes, part of the round-off error.
                let mut data = values[k].clone();
                data[i] = (values[k][i] as f64 + sign * h) as f32;
                let mut args = base.clone();
                args[k] = Tensor::from_vec(x.device(), data, x.shape().clone());
                evals.push(f(&args));
            }
        }
        hs.push(ks);
    }
    evals.push(f0);
    let out = read_all(&evals.iter().collect::<Vec<_>>()).await?;
    let f0 = out.last().unwrap()[0] as f64;
    let mut it = out.iter().map(|v| v[0] as f64);
    Ok(hs
        .iter()
        .map(|ks| {
            ks.iter()
                .map(|&h| {
                    let f_up = it.next().unwrap();
                    match scheme {
                        Difference::Forward => ((f_up - f0) / h) as f32,
                        Difference::Central => ((f_up - it.next().unwrap()) / (2.0 * h)) as f32,
                    }
                })
                .collect()
        })
        .collect())
}

/// Blocking [`numerical_grad`] for native code.
#[cfg(not(target_arch = "wasm32"))]
#[track_caller]
pub fn numerical_grad_blocking(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[&Tensor],
    scheme: Difference,
    step: Option<f64>,
) -> Result<Vec<Vec<f32>>> {
    pollster::block_on(numerical_grad(f, inputs, scheme, step))
}

/// ∂y/∂x by finite differences of the f64 reference interpreter, for a
/// one-value `y` computed from `inputs`. Perturbations are exact in f64.
#[track_caller]
pub fn numerical_grad_reference(
    y: &Tensor,
    inputs: &[&Tensor],
    scheme: Difference,
    step: Option<f64>,
) -> Result<Vec<Vec<f64>>> {
    assert_eq!(
        y.numel(),
        1,
        "numerical_grad_reference: y must be a single value, got shape {:?}",
        y.shape()
    );
    let step = step.unwrap_or(scheme.default_step_f64());
    check_step("numerical_grad_reference", step);
    let values = reference::eval_many(inputs)?;
    let at = |k: usize, data: &[f64]| -> Result<f64> {
        Ok(reference::eval_with(&[y], &[(inputs[k], data)])?[0][0])
    };
    let f0 = reference::eval(y)?[0];
    let mut grads = Vec::new();
    for (k, x) in values.iter().enumerate() {
        let mut g = Vec::with_capacity(x.len());
        for i in 0..x.len() {
            let h = step_for(x[i], step);
            let mut data = x.clone();
            data[i] = x[i] + h;
            let f_up = at(k, &data)?;
            g.push(match scheme {
                Difference::Forward => (f_up - f0) / h,
                Difference::Central => {
                    data[i] = x[i] - h;
                    (f_up - at(k, &data)?) / (2.0 * h)
                }
            });
        }
        grads.push(g);
    }
    Ok(grads)
}

/// One row of a step-size sweep: the largest absolute error of each scheme
/// against the exact gradient, in f32 on the GPU and in f64 on the reference.
#[derive(Clone, Debug)]
pub struct SweepRow {
    /// The finite-difference step h.
    pub step: f64,
    /// The largest error of forward differences on the GPU (f32).
    pub forward_f32: f64,
    /// The largest error of central differences on the GPU (f32).
    pub central_f32: f64,
    /// The largest error of forward differences on the f64 reference.
    pub forward_f64: f64,
    /// The largest error of central differences on the f64 reference.
    pub central_f64: f64,
}

/// Finite-difference errors over a range of steps, against `exact` (e.g.
/// reverse mode evaluated by the f64 reference). Large steps show the
/// truncation error, small ones the round-off error.
#[cfg(not(target_arch = "wasm32"))]
#[track_caller]
pub fn step_sweep(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[&Tensor],
    exact: &[Vec<f64>],
    steps: &[f64],
) -> Result<Vec<SweepRow>> {
    assert!(
        exact.len() == inputs.len() && exact.iter().zip(inputs).all(|(e, x)| e.len() == x.numel()),
        "step_sweep: `exact` must hold one gradient per input, of its size: got sizes {:?} for inputs of shapes {:?}",
        exact.iter().map(Vec::len).collect::<Vec<_>>(),
        inputs.iter().map(|x| x.shape().clone()).collect::<Vec<_>>()
    );
    for &step in steps {
        check_step("step_sweep", step);
    }
    let base: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let y = f(&base);
    let err32 = |g: Vec<Vec<f32>>| -> f64 {
        g.iter()
            .zip(exact)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(&a, &b)| (a as f64 - b).abs()))
            .fold(0.0, f64::max)
    };
    let err64 = |g: Vec<Vec<f64>>| -> f64 {
        g.iter()
            .zip(exact)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(&a, &b)| (a - b).abs()))
            .fold(0.0, f64::max)
    };
    steps
        .iter()
        .map(|&h| {
            Ok(SweepRow {
                step: h,
                forward_f32: err32(numerical_grad_blocking(
                    &f,
                    inputs,
                    Difference::Forward,
                    Some(h),
                )?),
                central_f32: err32(numerical_grad_blocking(
                    &f,
                    inputs,
                    Difference::Central,
                    Some(h),
                )?),
                forward_f64: err64(numerical_grad_reference(
                    &y,
                    inputs,
                    Difference::Forward,
                    Some(h),
                )?),
                central_f64: err64(numerical_grad_reference(
                    &y,
                    inputs,
                    Difference::Central,
                    Some(h),
                )?),
            })
        })
        .collect()
}
