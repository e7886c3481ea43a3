//! Compiles every CUDA kernel with NVRTC for the architectures we target (A100: compute_80,
//! H100/H200: compute_90). Needs no GPU, only libnvrtc: `scripts/setup.sh` installs it from the
//! PyPI wheel and `scripts/test.sh` points LD_LIBRARY_PATH at it. Without it the tests say so
//! and pass, so that `cargo test --features cuda` works anywhere — unless
//! `TEXTNLP_REQUIRE_NVRTC` is set (as `scripts/test.sh` does), which makes a missing library
//! a failure instead of a silent skip.
#![cfg(feature = "cuda")]

use std::collections::BTreeSet;
use std::time::Instant;
use textnlp_kernels::cuda::{Compiler, Kernel, nvrtc_available, nvrtc_version};

const ARCHS: [&str; 2] = ["compute_80", "compute_90"];

fn nvrtc_or_skip() -> bool {
    if nvrtc_available() {
        return true;
    }
    let why = "libnvrtc not found (set LD_LIBRARY_PATH to the nvidia-cuda-nvrtc wheel's \
               nvidia/cu13/lib; scripts/setup.sh installs it)";
    assert!(
        std::env::var_os("TEXTNLP_REQUIRE_NVRTC").is_none(),
        "TEXTNLP_REQUIRE_NVRTC is set but {why}"
    );
    println!("skipped: {why}");
    false
}

#[test]
fn every_kernel_compiles_for_every_target() {
    if !nvrtc_or_skip() {
        return;
    }
    println!("NVRTC {:?}", nvrtc_version().unwrap());
    let compiler = Compiler::new();
    let mut failures = Vec::new();
    for arch in ARCHS {
        for kernel in Kernel::ALL {
            let started = Instant::now();
            let ptx = match compiler.compile(kernel, arch) {
                Ok(ptx) => ptx,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            println!(
                "{kernel} for {arch}: {:.2} s",
                started.elapsed().as_secs_f64()
            );
            assert!(!ptx.from_cache());
            let target = format!(".target sm_{}", &arch["compute_".len()..]);
            assert!(ptx.text().contains(&target), "{kernel}: no `{target}`");
            // Exactly the documented entry points: none missing, none unlisted.
            let entries: BTreeSet<&str> = ptx.entries().collect();
            let expected: BTreeSet<&str> = kernel.entry_points().iter().copied().collect();
            assert_eq!(entries, expected, "{kernel} for {arch}");
            if let Err(e) = assemble(ptx.text(), arch) {
                failures.push(format!("{kernel} for {arch}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Assembles `ptx` into machine code for `arch` with the ptxas that `TEXTNLP_PTXAS` names (CI
/// sets it; skipped when unset), printing each kernel's registers, spills and shared memory.
/// NVRTC accepts PTX that can still exceed what the GPU allows (static shared memory over
/// 48 KiB, registers over `__launch_bounds__`); only ptxas checks that.
fn assemble(ptx: &str, arch: &str) -> Result<(), String> {
    let Some(ptxas) = std::env::var_os("TEXTNLP_PTXAS") else {
        return Ok(());
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (src, out) = (dir.path().join("k.ptx"), dir.path().join("k.cubin"));
    std::fs::write(&src, ptx).map_err(|e| e.to_string())?;
    let sm = format!("sm_{}", &arch["compute_".len()..]);
    let run = std::process::Command::new(&ptxas)
        .args(["--gpu-name", &sm, "--verbose", "--warn-on-spills", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| format!("running {}: {e}", ptxas.to_string_lossy()))?;
    let log = String::from_utf8_lossy(&run.stderr);
    println!("{log}");
    if run.status.success() {
        Ok(())
    } else {
        Err(format!("ptxas failed:\n{log}"))
    }
}

#[test]
fn ptx_cache_hits_for_the_same_inputs_and_misses_for_other_options() {
    if !nvrtc_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let compiler = Compiler::new().with_cache_dir(dir.path().join("ptx"));
    let first = compiler.compile(Kernel::Rope, "compute_90").unwrap();
    assert!(!first.from_cache());
    let files = || std::fs::read_dir(dir.path().join("ptx")).unwrap().count();
    assert_eq!(files(), 1);

    let second = compiler.compile(Kernel::Rope, "compute_90").unwrap();
    assert!(second.from_cache());
    assert_eq!(second.text(), first.text());
    assert_eq!(files(), 1);

    let other_option = compiler.clone().option("-DTEXTNLP_CACHE_TEST=1");
    assert!(
        !other_option
            .compile(Kernel::Rope, "compute_90")
            .unwrap()
            .from_cache()
    );
    assert!(
        !compiler
            .compile(Kernel::Rope, "compute_80")
            .unwrap()
            .from_cache()
    );
    assert!(
        !compiler
            .compile(Kernel::Kv, "compute_90")
            .unwrap()
            .from_cache()
    );
    assert_eq!(files(), 4);
}

#[test]
fn compile_errors_carry_the_nvrtc_log() {
    if !nvrtc_or_skip() {
        return;
    }
    let err = Compiler::new()
        .option("-DTEXTNLP_BROKEN=1")
        .option("--pre-include=/nonexistent.h")
        .compile(Kernel::Kv, "compute_90")
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("kv.cu") && message.contains("nonexistent.h"),
        "{message}"
    );
    // CUDA 13 dropped Volta: NVRTC itself refuses compute_70.
    let volta = Compiler::new()
        .compile(Kernel::Kv, "compute_70")
        .unwrap_err();
    assert!(volta.to_string().contains("compute_70"), "{volta}");
    assert!(matches!(
        Compiler::new().compile(Kernel::Kv, "sm_90"),
        Err(textnlp_kernels::cuda::CompileError::Arch(_))
    ));
}
