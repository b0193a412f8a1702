//! The MPI part of `cargo xtask test`: OpenMPI installed like lavapipe,
//! then `tests/mpi_ranks.rs` under `mpirun -np 2`, once to pass and once
//! per fault, each of which must stop the job (not hang it) with an error
//! naming the failed rank.

use std::path::Path;
use std::process::Command;

use super::{Result, is_root, root, run};

/// What `mpirun` needs to run as root and, on a machine with fewer cores
/// than ranks, to start them anyway.
const MPIRUN: [&str; 4] = ["--allow-run-as-root", "--oversubscribe", "-np", "2"];

/// A fault must stop the job well within this.
const FAULT_SECONDS: &str = "300";

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn has_libclang() -> bool {
    Command::new("sh")
        .args(["-c", "ldconfig -p | grep -q libclang"])
        .status()
        .is_ok_and(|s| s.success())
}

/// OpenMPI and libclang (for the `mpi` crate's bindings): installed on
/// Debian/Ubuntu as root, else the command to run is printed.
fn ensure_mpi() -> Result {
    if has("mpirun") && has("mpicc") && has_libclang() {
        return Ok(());
    }
    if Path::new("/etc/debian_version").exists() && is_root() {
        println!("xtask: installing OpenMPI and libclang for the MPI tests");
        run("apt-get", &["update", "-qq"])?;
        return run(
            "apt-get",
            &[
                "install",
                "-y",
                "-qq",
                "openmpi-bin",
                "libopenmpi-dev",
                "libclang-dev",
            ],
        );
    }
    Err(
        "the MPI tests need OpenMPI (or MPICH) and libclang. On Debian/Ubuntu: \
         sudo apt-get install -y openmpi-bin libopenmpi-dev libclang-dev"
            .into(),
    )
}

/// Builds `tests/mpi_ranks.rs` with the `mpi` feature; its executable.
fn build_ranks_test() -> Result<String> {
    let args = [
        "test",
        "--package",
        "webgrad",
        "--features",
        "mpi",
        "--test",
        "mpi_ranks",
        "--no-run",
        "--message-format=json",
    ];
    println!("xtask: $ cargo {}", args.join(" "));
    let out = Command::new("cargo")
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return Err("building the MPI test failed".into());
    }
    // The artifact line of the test names its executable.
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter(|l| l.contains("\"name\":\"mpi_ranks\""))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_string())
        })
        .ok_or_else(|| "cargo named no executable for the MPI test".into())
}

/// `mpirun -np 2 exe args` under a time limit: (exit code, output).
fn mpirun(exe: &str, args: &[&str]) -> Result<(i32, String)> {
    let mut all = vec![FAULT_SECONDS, "mpirun"];
    all.extend(MPIRUN);
    all.push(exe);
    all.extend(args);
    println!("xtask: $ timeout {}", all.join(" "));
    let out = Command::new("timeout")
        .args(&all)
        .current_dir(root())
        .output()
        .map_err(|e| format!("could not start mpirun: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

/// The MPI tests: two ranks that pass, and three faults that must stop.
/// Without MPI (and no way to install it here) they are skipped with the
/// command to run, except under CI, where that is a failure.
pub fn mpi_tests() -> Result {
    if let Err(e) = ensure_mpi() {
        if std::env::var_os("CI").is_some() {
            return Err(e);
        }
        println!("xtask: skipping the MPI tests: {e}");
        return Ok(());
    }
    let exe = build_ranks_test()?;
    let (code, text) = mpirun(&exe, &[])?;
    print!("{text}");
    if code != 0 {
        return Err(format!(
            "the MPI test failed under mpirun -np 2 (exit {code})"
        ));
    }
    // How each fault is reported: by webgrad's hook or MPI_Abort, or by
    // mpirun for a process that died.
    for (fault, says) in [
        ("panic", "webgrad: rank 1 failed"),
        ("error", "webgrad: rank 1 failed"),
        ("kill", "rank 1"),
    ] {
        let (code, text) = mpirun(&exe, &[fault])?;
        let stopped = code != 0 && code != 124;
        if !stopped || !text.contains(says) {
            eprintln!("{text}");
            return Err(format!(
                "MPI fault `{fault}`: expected the job to stop with an error naming rank 1 \
                 (exit {code}{})",
                if code == 124 {
                    ", timed out: a rank hung"
                } else {
                    ""
                }
            ));
        }
        println!("xtask: MPI fault `{fault}` stopped the job (exit {code}) naming rank 1");
    }
    Ok(())
}
