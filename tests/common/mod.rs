//! Shared helpers for the GPU tests: one device per test binary, and the
//! checks of GPU values against the f64 reference and finite differences.
#![allow(dead_code)]

use std::sync::OnceLock;

use webgrad::{Device, Shape, Tensor, grad, read_all_blocking, reference};

/// The shared device, or `None` (test skipped, with a message) when no
/// adapter exists — except under CI, where a missing adapter fails the test.
pub fn device() -> Option<Device> {
    static DEVICE: OnceLock<Result<Device, String>> = OnceLock::new();
    let d = DEVICE.get_or_init(|| Device::new_blocking().map_err(|e| e.to_string()));
    match d {
        Ok(d) => Some(d.clone()),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and no GPU adapter was found: {e}")
        }
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// A device of the test's own (for counting buffers without other tests'
/// interference); `None` under the same rules as [`device`].
pub fn private_device() -> Option<Device> {
    match Device::new_blocking() {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and no GPU adapter was found: {e}")
        }
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// `let dev = gpu!();` — the device, or return from the test (see [`device`]).
#[macro_export]
macro_rules! gpu {
    () => {
        match common::device() {
            Some(d) => d,
            None => return,
        }
    };
}

/// Deterministic test data in [lo, hi), avoiding |x| < gap (kinks of relu, abs, ...).
pub fn data(n: usize, lo: f32, hi: f32, gap: f32, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            loop {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                let v = (lo as f64 + (hi - lo) as f64 * u) as f32;
                if v.abs() >= gap {
                    break v;
                }
            }
        })
        .collect()
}

pub fn assert_close(what: &str, gpu: &[f32], expected: &[f64], atol: f64, rtol: f64) {
    assert_eq!(gpu.len(), expected.len(), "{what}: length");
    for (i, (&g, &e)) in gpu.iter().zip(expected).enumerate() {
        let g = g as f64;
        let ok = (g - e).abs() <= atol + rtol * e.abs() || (g.is_nan() && e.is_nan()) || (g == e);
        assert!(
            ok,
            "{what}: element {i}: GPU {g} vs expected {e} (atol {atol}, rtol {rtol})"
        );
    }
}

/// The forward value on the GPU against the f64 reference.
pub fn check_forward(what: &str, y: &Tensor) {
    let gpu = y.to_vec_blocking().unwrap();
    let reference = reference::eval(y).unwrap();
    assert_close(&format!("{what} forward"), &gpu, &reference, 1e-5, 1e-5);
}

/// Checks `f` at inputs with the given shapes and values: the GPU forward
/// against the reference, and the GPU vjp (reverse mode, for a random
/// cotangent u: the gradient of ⟨u, f(x)⟩) against central finite
/// differences of the f64 reference.
pub fn check_op(
    dev: &Device,
    what: &str,
    inputs: &[(Vec<f32>, Shape)],
    f: &dyn Fn(&[Tensor]) -> Tensor,
) {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|(d, s)| Tensor::from_vec(dev, d.clone(), s.clone()))
        .collect();
    let y = f(&leaves);
    check_forward(what, &y);

    let u_data = data(y.numel(), -1.0, 1.0, 0.0, 99);
    let u = Tensor::from_vec(dev, u_data.clone(), y.shape().clone());
    let loss = (&y * &u).sum();
    let refs: Vec<&Tensor> = leaves.iter().collect();
    let grads = grad(&loss, &refs);
    let grads: Vec<Vec<f32>> = read_all_blocking(&grads.iter().collect::<Vec<_>>()).unwrap();

    // ⟨u, f(x)⟩ in f64 for perturbed inputs.
    let objective = |values: &[Vec<f32>]| -> f64 {
        let xs: Vec<Tensor> = values
            .iter()
            .zip(inputs)
            .map(|(v, (_, s))| Tensor::from_vec(dev, v.clone(), s.clone()))
            .collect();
        let out = reference::eval(&f(&xs)).unwrap();
        out.iter().zip(&u_data).map(|(o, &w)| o * w as f64).sum()
    };
    for (k, (x, _)) in inputs.iter().enumerate() {
        let mut fd = Vec::with_capacity(x.len());
        for i in 0..x.len() {
            let h = 1e-3f32 * x[i].abs().max(1.0);
            let mut values: Vec<Vec<f32>> = inputs.iter().map(|(d, _)| d.clone()).collect();
            values[k][i] = x[i] + h;
            let up = values[k][i] as f64;
            let f_up = objective(&values);
            values[k][i] = x[i] - h;
            let down = values[k][i] as f64;
            let f_down = objective(&values);
            fd.push((f_up - f_down) / (up - down));
        }
        assert_close(
            &format!("{what} vjp of input {k}"),
            &grads[k],
            &fd,
            2e-3,
            2e-3,
        );
    }
}
