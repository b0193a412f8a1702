//! Project tasks, in wgpu's `cargo xtask` style.
//!
//!   cargo xtask demo    run the main demo (train an MLP and a CNN on the digits, then the lecture's example)
//!   cargo xtask test    run every test (Rust unit + GPU tests, MPI ranks, portability checks)
//!   cargo xtask bench   run the benchmarks (release build)
//!   cargo xtask web     build the WASM package into web/pkg and serve web/ on 127.0.0.1:8000
//!                       (`--build-only` skips serving; `--port N` picks the port)
//!
//! `demo` and `test` first make sure a Vulkan driver is present: on
//! Debian/Ubuntu as root they install Mesa's lavapipe (mesa-vulkan-drivers);
//! elsewhere they print the exact command to run. `test` installs OpenMPI
//! and libclang for the MPI tests the same way.

mod mpi;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Targets `test` type-checks the library for: DX12, Metal and the browser.
const PORTABILITY_TARGETS: [&str; 3] = [
    "x86_64-pc-windows-msvc",
    "aarch64-apple-darwin",
    "wasm32-unknown-unknown",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("web") => web(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <demo | test | bench | web>\n\n  demo   train an MLP and a CNN on the digits, then the lecture's example, on the GPU\n  test   run every test\n  bench  run the benchmarks\n  web    build the browser demo and serve it on 127.0.0.1:8000 (--build-only, --port N)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a command in the repository root, failing on a non-zero exit.
fn run(program: &str, args: &[&str]) -> Result {
    println!("xtask: $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn demo() -> Result {
    prepare_gpu_environment()?;
    run("cargo", &["run", "--release", "--example", "train_mlp"])?;
    run("cargo", &["run", "--release", "--example", "train_cnn"])?;
    run("cargo", &["run", "--release", "--example", "lecture"])
}

fn bench(extra: &[String]) -> Result {
    prepare_gpu_environment()?;
    let mut args = vec!["run", "--release", "--example", "bench", "--"];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)
}

fn test(extra: &[String]) -> Result {
    prepare_gpu_environment()?;
    let caches = EmptyCaches::new()?;
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)?;
    mpi::mpi_tests()?;
    for target in PORTABILITY_TARGETS {
        run("rustup", &["target", "add", target])?;
        run(
            "cargo",
            &["check", "--package", "webgrad", "--lib", "--target", target],
        )?;
    }
    msrv_and_package()?;
    browser_test()?;
    drop(caches);
    println!("xtask: all tests passed");
    Ok(())
}

/// The crate as it would be published (`cargo publish --dry-run`: its
/// metadata, the files of its `include` list, and a build of exactly
/// those), built with the oldest Rust it claims to support (`rust-version`
/// in Cargo.toml), so that both claims are checked by one build.
fn msrv_and_package() -> Result {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).map_err(|e| e.to_string())?;
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .ok_or("Cargo.toml states no rust-version")?
        .to_string();
    run(
        "rustup",
        &["toolchain", "install", &msrv, "--profile", "minimal"],
    )?;
    let toolchain = format!("+{msrv}");
    run(
        "cargo",
        &[
            &toolchain,
            "publish",
            "--dry-run",
            "--package",
            "webgrad",
            "--allow-dirty",
        ],
    )
}

/// A fresh, empty cache directory for everything `test` starts, removed
/// when dropped: webgrad's (`WEBGRAD_CACHE_DIR`), Mesa's shader cache and
/// anything else under `XDG_CACHE_HOME` (Chromium's). The tests use no
/// cache on disk of their own accord; this keeps whatever resolves the
/// defaults away from the user's `~/.cache` too, and makes every run start
/// from nothing, so a result that depended on an earlier run's caches
/// fails here as it would on a fresh machine.
struct EmptyCaches(PathBuf);

impl EmptyCaches {
    fn new() -> Result<EmptyCaches> {
        let dir = std::env::temp_dir().join(format!("webgrad-test-caches-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("webgrad")).map_err(|e| e.to_string())?;
        // SAFETY: xtask is single-threaded; the children inherit these.
        unsafe {
            std::env::set_var("XDG_CACHE_HOME", &dir);
            std::env::set_var("WEBGRAD_CACHE_DIR", dir.join("webgrad"));
        }
        println!("xtask: caches for this run in {} (empty)", dir.display());
        Ok(EmptyCaches(dir))
    }
}

impl Drop for EmptyCaches {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the WASM package and runs web/test/browser_test.mjs in headless Chromium.
fn browser_test() -> Result {
    ensure_chromium()?;
    build_web()?;
    let test_dir = root().join("web").join("test");
    println!("xtask: $ npm ci (web/test, no browser download)");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .env("PUPPETEER_SKIP_DOWNLOAD", "1")
        .current_dir(&test_dir)
        .status()
        .map_err(|e| format!("could not start npm (install Node.js 18+): {e}"))?;
    if !status.success() {
        return Err("npm ci failed in web/test".into());
    }
    println!("xtask: $ node browser_test.mjs");
    let status = Command::new("node")
        .arg("browser_test.mjs")
        .current_dir(&test_dir)
        .status()
        .map_err(|e| format!("could not start node: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("the browser test failed (screenshots in web/test/output/)".into())
    }
}

fn ensure_chromium() -> Result {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Path::new(&path).exists() {
        return Ok(());
    }
    if Path::new("/etc/debian_version").exists() && is_root() {
        println!("xtask: installing Debian's Chromium for the browser test");
        run("apt-get", &["update", "-qq"])?;
        return run("apt-get", &["install", "-y", "-qq", "chromium"]);
    }
    Err(format!(
        "the browser test needs Chromium at {path} (set CHROMIUM to another path). \
         On Debian/Ubuntu: sudo apt-get install -y chromium"
    ))
}

/// The wasm-bindgen version in Cargo.lock: the CLI must match it exactly.
fn locked_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| e.to_string())?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(v.trim_end_matches('"').to_string());
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

fn ensure_wasm_bindgen() -> Result {
    let want = locked_wasm_bindgen()?;
    let have = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if have.as_deref() == Some(format!("wasm-bindgen {want}").as_str()) {
        return Ok(());
    }
    println!(
        "xtask: installing wasm-bindgen-cli {want} (found {have:?}); this compiles for a few minutes"
    );
    run(
        "cargo",
        // --force: cargo may still list a CLI whose binary was removed.
        &["install", "--force", "wasm-bindgen-cli", "--version", &want],
    )
}

/// cargo build for wasm32, then wasm-bindgen into web/pkg (git-ignored).
fn build_web() -> Result {
    run("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    ensure_wasm_bindgen()?;
    run(
        "cargo",
        &[
            "build",
            "--release",
            "--package",
            "webgrad-web",
            "--target",
            "wasm32-unknown-unknown",
        ],
    )?;
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let wasm = target_dir.join("wasm32-unknown-unknown/release/webgrad_web.wasm");
    let out = root().join("web").join("pkg");
    let (out_s, wasm_s) = (
        out.to_string_lossy().to_string(),
        wasm.to_string_lossy().to_string(),
    );
    run(
        "wasm-bindgen",
        &["--target", "web", "--out-dir", &out_s, &wasm_s],
    )?;
    let built = out.join("webgrad_web_bg.wasm");
    let raw = std::fs::metadata(&built).map_err(|e| e.to_string())?.len();
    let gz = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -9 -c '{}' | wc -c", built.display()))
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        });
    let gz = gz.map_or("?".to_string(), |g| (g / 1024).to_string());
    println!(
        "xtask: web/pkg/webgrad_web_bg.wasm: {} KiB raw, {gz} KiB gzipped",
        raw / 1024
    );
    Ok(())
}

fn web(args: &[String]) -> Result {
    build_web()?;
    if args.iter().any(|a| a == "--build-only") {
        return Ok(());
    }
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .map_or("8000", String::as_str);
    println!(
        "xtask: serving web/ on http://127.0.0.1:{port}/ (Ctrl-C to stop); open it in a browser with WebGPU"
    );
    let status = Command::new("python3")
        .args(["-m", "http.server", port, "--bind", "127.0.0.1"])
        .current_dir(root().join("web"))
        .status()
        .map_err(|e| format!("could not start python3 -m http.server: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the server stopped: {status}"))
    }
}

/// Makes sure wgpu can find a GPU driver, and quiets Mesa.
fn prepare_gpu_environment() -> Result {
    if cfg!(target_os = "linux") {
        ensure_vulkan_driver()?;
        // SAFETY: xtask is single-threaded; the children inherit these.
        unsafe {
            if std::env::var_os("WGPU_BACKEND").is_none() {
                std::env::set_var("WGPU_BACKEND", "vulkan");
            }
            if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
                let dir = root().join("target").join("xdg-runtime");
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| e.to_string())?;
                std::env::set_var("XDG_RUNTIME_DIR", &dir);
            }
        }
    }
    Ok(())
}

const ICD_DIRS: [&str; 4] = [
    "/usr/share/vulkan/icd.d",
    "/etc/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
    "/run/opengl-driver/share/vulkan/icd.d",
];

fn has_vulkan_driver() -> bool {
    ICD_DIRS.iter().any(|d| {
        std::fs::read_dir(d)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .unwrap_or(false)
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn ensure_vulkan_driver() -> Result {
    if has_vulkan_driver() {
        return Ok(());
    }
    let debian = Path::new("/etc/debian_version").exists();
    if debian && is_root() {
        println!("xtask: no Vulkan driver found; installing Mesa's software driver (lavapipe)");
        run("apt-get", &["update", "-qq"])?;
        run("apt-get", &["install", "-y", "-qq", "mesa-vulkan-drivers"])?;
        return if has_vulkan_driver() {
            Ok(())
        } else {
            Err("mesa-vulkan-drivers installed no Vulkan driver".into())
        };
    }
    let how = if debian {
        "sudo apt-get install -y mesa-vulkan-drivers"
    } else if Path::new("/etc/fedora-release").exists() {
        "sudo dnf install -y mesa-vulkan-drivers"
    } else if Path::new("/etc/arch-release").exists() {
        "sudo pacman -S vulkan-swrast"
    } else {
        "install your distribution's Mesa Vulkan drivers (lavapipe), or a GPU vendor's Vulkan driver"
    };
    Err(format!(
        "no Vulkan driver found (no ICD file in {}). Install one and re-run:\n\n    {how}\n",
        ICD_DIRS.join(", ")
    ))
}
