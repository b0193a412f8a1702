//! Shared helpers for the GPU tests: one device per test binary, and the
//! checks of GPU values against the f64 reference and finite differences.
#![allow(dead_code)]

use std::sync::OnceLock;

use webgrad::{Device, DeviceOptions, PipelineCacheDir, Shape, Tensor, reference};

/// The options every test device starts from: no cache on disk (a test
/// never reads or writes the user's caches, so its outcome cannot depend
/// on what an earlier run left there) and deterministic mode (no kernel
/// chosen by timing: two computations a test compares run the same
/// kernels). Tests of autotune and of the caches set their own options,
/// with a directory they create.
pub fn test_options() -> DeviceOptions {
    DeviceOptions {
        pipeline_cache: PipelineCacheDir::Off,
        deterministic: true,
        ..Default::default()
    }
}

/// A device with `options`, or `None` (test skipped, with a message) when
/// no adapter exists — except under CI, where a missing adapter fails the
/// test.
pub fn device_with(options: DeviceOptions) -> Option<Device> {
    match Device::with_options_blocking(options) {
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

/// The shared device (with [`test_options`]), or `None` under the rules of
/// [`device_with`].
pub fn device() -> Option<Device> {
    static DEVICE: OnceLock<Option<Device>> = OnceLock::new();
    DEVICE.get_or_init(|| device_with(test_options())).clone()
}

/// A device of the test's own (for counting buffers without other tests'
/// interference); `None` under the same rules as [`device`].
pub fn private_device() -> Option<Device> {
    device_with(test_options())
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
/// against the f64 reference, then webgrad's gradient checker: reverse mode
/// (Jᵀu) and forward mode (Jv) on the GPU against each other through
/// ⟨u, Jv⟩ = ⟨Jᵀu, v⟩ and against central differences of the f64 reference.
/// This covers each op's vjp and jvp rules.
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
    check_forward(what, &f(&leaves));
    let refs: Vec<&Tensor> = leaves.iter().collect();
    let report =
        webgrad::check_gradients_blocking(f, &refs, webgrad::Tolerance::default(), 99).unwrap();
    assert!(report.passed, "{what}: {report}");
}

thread_local! {
    /// While `try_panic` runs: the last panic's message and "file:line".
    static CAUGHT: std::cell::RefCell<Option<(String, String)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f`; if it panics, its message and where it was raised
/// ("file:line"), reported quietly (set `WEBGRAD_SHOW_PANICS` to see them).
/// One panic hook per test binary, installed on first use.
pub fn try_panic(f: impl FnOnce()) -> Option<(String, String)> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let expected = CAUGHT.with(|c| match &mut *c.borrow_mut() {
                Some(slot) => {
                    *slot = (msg, at);
                    true
                }
                None => false,
            });
            if !expected || std::env::var_os("WEBGRAD_SHOW_PANICS").is_some() {
                default(info);
            }
        }));
    });
    CAUGHT.with(|c| *c.borrow_mut() = Some(Default::default()));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    let caught = CAUGHT.with(|c| c.borrow_mut().take().unwrap_or_default());
    panicked.then_some(caught)
}

/// The message of `f`'s panic; `f` must panic.
pub fn panic_message(f: impl FnOnce()) -> String {
    try_panic(f).expect("expected a panic").0
}
