//! Project tasks, in wgpu's `cargo xtask` style.
//!
//!   cargo xtask demo    run the main demo (train an MLP on the digits, then the lecture's example)
//!   cargo xtask test    run every test (Rust unit + GPU tests, portability checks)
//!   cargo xtask bench   run the benchmarks (release build)
//!
//! `demo` and `test` first make sure a Vulkan driver is present: on
//! Debian/Ubuntu as root they install Mesa's lavapipe (mesa-vulkan-drivers);
//! elsewhere they print the exact command to run.

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
        _ => {
            eprintln!(
                "usage: cargo xtask <demo | test | bench>\n\n  demo   train an MLP on the digits, then the lecture's example, on the GPU\n  test   run every test\n  bench  run the benchmarks"
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
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)?;
    for target in PORTABILITY_TARGETS {
        run("rustup", &["target", "add", target])?;
        run(
            "cargo",
            &["check", "--package", "webgrad", "--lib", "--target", target],
        )?;
    }
    println!("xtask: all tests passed");
    Ok(())
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
