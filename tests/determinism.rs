//! Results depend only on the graph, the seeds and the adapter: not on
//! the caches an earlier run left, not on autotune's timing, not on which
//! matmul family or variant runs. Checked from empty caches, in separate
//! processes, and with a tuning file that names other variants.

mod common;

use std::path::Path;
use std::process::Command;

use common::{data, test_options};
use webgrad::data::Dataset;
use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::models::DigitsCnn;
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, DeviceOptions, KernelFamily, PipelineCacheDir, Tensor};

/// The product, its two adjoints (`matmul(Aᵀ)`, `matmul(Bᵀ)`) and a
/// batched product, as bits.
fn products_bits(dev: &Device) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for (i, (m, k, n)) in [(130, 132, 36), (9, 5, 10), (64, 784, 128), (3, 16, 260)]
        .into_iter()
        .enumerate()
    {
        let a = Tensor::from_vec(dev, data(m * k, -1.0, 1.0, 0.0, 10 + i as u64), [m, k]);
        let b = Tensor::from_vec(dev, data(k * n, -1.0, 1.0, 0.0, 20 + i as u64), [k, n]);
        let c = a.matmul(&b);
        let w = Tensor::from_vec(dev, data(m * n, -1.0, 1.0, 0.0, 30), [m, n]);
        let g = webgrad::grad(&(&c * &w).sum(), &[&a, &b]);
        let a3 = Tensor::from_vec(dev, data(2 * m * k, -1.0, 1.0, 0.0, 40), [2, m, k]);
        let batched = a3.matmul(&b);
        let got = webgrad::read_all_blocking(&[&c, &g[0], &g[1], &batched]).unwrap();
        out.extend(got.iter().map(|v| bits(v)));
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Real GPUs get the tiled matmul family, CPU adapters the register-blocked
/// one; both sum each output in K's order with one fma per step, so on one
/// adapter they agree to the bit (lavapipe runs both).
#[test]
fn the_tiled_and_register_blocked_families_give_the_same_bits() {
    let with = |kernel_family| {
        common::device_with(DeviceOptions {
            kernel_family,
            ..test_options()
        })
    };
    let (Some(tiled), Some(blocked)) = (
        with(KernelFamily::Tiled),
        with(KernelFamily::RegisterBlocked),
    ) else {
        return;
    };
    let t = products_bits(&tiled);
    for variant in 0..4 {
        blocked.force_variant(Some(variant));
        for (i, (t, b)) in t.iter().zip(&products_bits(&blocked)).enumerate() {
            assert!(t == b, "output {i}: tiled and variant {variant} differ");
        }
    }
}

/// The files in `dir` whose name starts with `tuning_`.
fn tuning_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).map_or(Vec::new(), |d| {
        d.filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("tuning_")
            })
            .collect()
    })
}

/// Rewrites every choice of a tuning file to another variant (1 where it
/// was not, else 0; a family in the file has at least two): what a file
/// written by another build, or on a busier machine, might say.
fn point_tuning_file_elsewhere(file: &Path) {
    let mut choices: std::collections::BTreeMap<String, usize> =
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert!(!choices.is_empty(), "the tuning file holds choices");
    for v in choices.values_mut() {
        *v = if *v == 1 { 0 } else { 1 };
    }
    std::fs::write(file, serde_json::to_vec(&choices).unwrap()).unwrap();
}

/// Deterministic mode times nothing and neither reads nor writes a tuning
/// file, while the default mode writes one at a shape's second sight;
/// either way, and with a tuning file that names other variants, the bits
/// are those of a fresh deterministic device.
#[test]
fn deterministic_mode_ignores_tuning_files_and_autotune_changes_no_bits() {
    let Some(fresh) = common::device() else {
        return;
    };
    let want = products_bits(&fresh);
    let dir = tempfile::tempdir().unwrap();
    let options = |deterministic| DeviceOptions {
        kernel_family: KernelFamily::RegisterBlocked,
        pipeline_cache: PipelineCacheDir::Dir(dir.path().to_path_buf()),
        deterministic,
        ..Default::default()
    };
    // Default mode: first sight uses the first variant, the second times
    // them all and saves the choices.
    let tuned = Device::with_options_blocking(options(false)).unwrap();
    assert_eq!(products_bits(&tuned), want, "first sight");
    assert_eq!(products_bits(&tuned), want, "timed at second sight");
    drop(tuned);
    let files = tuning_files(dir.path());
    assert_eq!(files.len(), 1, "one tuning file: {files:?}");
    point_tuning_file_elsewhere(&files[0]);
    let foreign = std::fs::read(&files[0]).unwrap();
    // Default mode with those choices: other kernels, the same bits.
    let tuned = Device::with_options_blocking(options(false)).unwrap();
    let before = tuned.counters().submits;
    assert_eq!(products_bits(&tuned), want, "the file's variants");
    assert_eq!(
        tuned.counters().submits - before,
        4,
        "one submit a read: choices from the file, nothing timed"
    );
    drop(tuned);
    // Deterministic mode: the file is neither read nor rewritten, and a
    // shape's second sight times nothing.
    let det = Device::with_options_blocking(options(true)).unwrap();
    assert!(det.is_deterministic());
    let before = det.counters().submits;
    assert_eq!(products_bits(&det), want);
    assert_eq!(products_bits(&det), want);
    assert_eq!(det.counters().submits - before, 8, "nothing timed");
    drop(det);
    assert_eq!(std::fs::read(&files[0]).unwrap(), foreign, "file untouched");
}

/// What a child process does (see the test below): trains the digits CNN
/// for a few dozen Adam steps on shifted images, and beside it an MLP whose
/// products are all multiples of 4 wide (so that every matmul variant can
/// take them: the CNN's one product, 10 wide, has fewer), and writes the
/// bits of every parameter and loss to `out`.
fn train_digits_cnn(options: DeviceOptions, out: &Path) {
    let dev = Device::with_options_blocking(options).unwrap();
    let (train, _) = Dataset::digits().unwrap().split(0.2, 0);
    let train = train.select(&(0..512).collect::<Vec<_>>());
    let cnn = DigitsCnn::new(&dev, 7).unwrap();
    let mlp = Mlp::new(
        &dev,
        &[64, 64, 32, 12],
        Activation::Tanh,
        Init::XavierUniform,
        8,
    )
    .unwrap();
    let (cnn_params, mlp_params) = (cnn.parameters(), mlp.parameters());
    let (mut cnn_opt, mut mlp_opt) = (Adam::new(3e-3), Adam::new(3e-3));
    let mut lines = Vec::new();
    for epoch in 0..2u64 {
        let shifted = train.shifted_images(8, 1, epoch);
        for batch in shifted.batches(32, epoch) {
            let (x, labels) = batch.tensors(&dev);
            let loss = cnn.forward(&x).cross_entropy(&labels);
            let value = cnn_opt.minimize_blocking(&loss, &cnn_params).unwrap();
            lines.push(format!("cnn loss {:08x}", value.to_bits()));
            let loss = mlp.forward(&x).cross_entropy(&labels);
            let value = mlp_opt.minimize_blocking(&loss, &mlp_params).unwrap();
            lines.push(format!("mlp loss {:08x}", value.to_bits()));
        }
    }
    let params: Vec<&Tensor> = cnn_params.into_iter().chain(mlp_params).collect();
    for (i, v) in webgrad::read_all_blocking(&params)
        .unwrap()
        .iter()
        .enumerate()
    {
        let hex: Vec<String> = v.iter().map(|x| format!("{:08x}", x.to_bits())).collect();
        lines.push(format!("param {i} {}", hex.join(" ")));
    }
    std::fs::write(out, lines.join("\n")).unwrap();
}

const CHILD_MODE: &str = "WEBGRAD_DETERMINISM_CHILD";
const CHILD_OUT: &str = "WEBGRAD_DETERMINISM_OUT";

/// Runs this test binary's `the_digits_cnn_trains_to_the_same_bits_in_every_process`
/// as a child process in `mode` with `cache` as its cache directory
/// (`WEBGRAD_CACHE_DIR`, which the default options resolve), and returns
/// what it wrote.
fn child(mode: &str, cache: &Path) -> String {
    let out = cache.join("result.txt");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "the_digits_cnn_trains_to_the_same_bits_in_every_process",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_OUT, &out)
        .env("WEBGRAD_CACHE_DIR", cache)
        .status()
        .unwrap();
    assert!(status.success(), "the {mode} child failed: {status}");
    std::fs::read_to_string(&out).unwrap()
}

/// Two processes in deterministic mode, each with an empty cache directory
/// of its own, train the digits CNN to the same bits; so does the default
/// mode (autotune timing the variants), and the default mode again with
/// the tuning file that run wrote pointed at other variants (a file from
/// another build).
#[test]
fn the_digits_cnn_trains_to_the_same_bits_in_every_process() {
    if let Ok(mode) = std::env::var(CHILD_MODE) {
        // The child: the cache directory is the one its parent made.
        let options = DeviceOptions {
            pipeline_cache: PipelineCacheDir::Default,
            deterministic: mode == "deterministic",
            ..Default::default()
        };
        train_digits_cnn(options, Path::new(&std::env::var(CHILD_OUT).unwrap()));
        return;
    }
    if common::device().is_none() {
        return;
    }
    let caches: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let first = child("deterministic", caches[0].path());
    let second = child("deterministic", caches[1].path());
    assert!(first.lines().count() > 60, "{first}");
    assert!(first == second, "two deterministic processes differ");
    let tuned = child("autotuned", caches[2].path());
    assert!(tuned == first, "the autotuned process differs");
    let files = tuning_files(caches[2].path());
    assert_eq!(files.len(), 1, "the autotuned run wrote its choices");
    point_tuning_file_elsewhere(&files[0]);
    let foreign = child("autotuned", caches[2].path());
    assert!(foreign == first, "a foreign tuning file changed the bits");
}
