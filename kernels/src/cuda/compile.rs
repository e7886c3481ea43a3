//! NVRTC compilation of the kernel files, with an on-disk PTX cache.
//!
//! A kernel file compiles in roughly a second, so the PTX is kept under
//! `<cache dir>/<sha256>.ptx`, the hash covering everything that determines the output: the
//! program text (prelude and file), the options and the NVRTC version. A changed kernel, option
//! or NVRTC therefore misses, and stale files are simply never read again.

use super::{Kernel, Unavailable, nvrtc_available};
use sha2::{Digest, Sha256};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Why a kernel did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("invalid GPU architecture `{0}`: expected compute_XY (e.g. compute_80, compute_90)")]
    Arch(String),
    #[error("NVRTC rejected {kernel} for {arch}:\n{log}")]
    Rejected {
        kernel: Kernel,
        arch: String,
        log: String,
    },
    #[error("NVRTC failed on {kernel}: {message}")]
    Nvrtc { kernel: Kernel, message: String },
    #[error("nvrtcVersion failed: {0}")]
    Version(String),
    #[error("PTX cache file {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// PTX text for one kernel file.
#[derive(Clone, Debug)]
pub struct Ptx {
    text: String,
    from_cache: bool,
}

impl Ptx {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this came from the cache rather than from NVRTC.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// The names of the kernels (`.entry` directives) the module defines.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.text.lines().filter_map(|line| {
            let rest = line.split(".entry ").nth(1)?;
            Some(rest.split(['(', ' ']).next().unwrap_or(rest))
        })
    }
}

impl From<Ptx> for cudarc::nvrtc::Ptx {
    fn from(ptx: Ptx) -> Self {
        cudarc::nvrtc::Ptx::from_src(ptx.text)
    }
}

/// The NVRTC version, `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32), CompileError> {
    if !nvrtc_available() {
        return Err(Unavailable::Nvrtc.into());
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above); the pointers are valid for the call.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    match status {
        cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS => Ok((major, minor)),
        other => Err(CompileError::Version(format!("{other:?}"))),
    }
}

/// Compiles kernel files to PTX: options common to every file, plus an optional cache
/// directory.
#[derive(Clone, Debug, Default)]
pub struct Compiler {
    cache_dir: Option<PathBuf>,
    options: Vec<String>,
}

impl Compiler {
    /// A compiler without cache and without extra options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the PTX under `dir` (created when first needed) and reuses it.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Adds an NVRTC option for every file, e.g. `-DNAME=VALUE`.
    pub fn option(mut self, option: impl Into<String>) -> Self {
        self.options.push(option.into());
        self
    }

    /// The full NVRTC option list for `arch`.
    fn options_for(&self, arch: &str) -> Vec<String> {
        let mut options = vec![
            format!("--gpu-architecture={arch}"),
            "--std=c++17".to_owned(),
            // Line tables let profilers map SASS back to the .cu lines; no effect on the code.
            "--generate-line-info".to_owned(),
        ];
        options.extend(self.options.iter().cloned());
        options
    }

    /// Compiles `kernel` for a virtual architecture such as `compute_90` (H100/H200) or
    /// `compute_80` (A100), or returns the cached PTX of an identical earlier compilation.
    pub fn compile(&self, kernel: Kernel, arch: &str) -> Result<Ptx, CompileError> {
        if !valid_arch(arch) {
            return Err(CompileError::Arch(arch.to_owned()));
        }
        let version = nvrtc_version()?;
        let program = kernel.program();
        let options = self.options_for(arch);
        let cached = self
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.ptx", cache_key(version, &options, &program))));
        if let Some(path) = &cached {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    return Ok(Ptx {
                        text,
                        from_cache: true,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CompileError::Cache {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        let text = run_nvrtc(kernel, arch, &program, options)?;
        if let Some(path) = &cached {
            store(path, &text)?;
        }
        Ok(Ptx {
            text,
            from_cache: false,
        })
    }
}

/// `compute_` followed by the two or three digits of a compute capability and an optional
/// feature-set suffix (`compute_90a`).
fn valid_arch(arch: &str) -> bool {
    let Some(rest) = arch.strip_prefix("compute_") else {
        return false;
    };
    let digits = rest.trim_end_matches(|c: char| c.is_ascii_lowercase());
    (2..=3).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && rest.len() - digits.len() <= 1
}

/// The cache file stem: the SHA-256 of everything that determines the PTX.
fn cache_key(version: (i32, i32), options: &[String], program: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("textnlp-ptx\0nvrtc {}.{}\0", version.0, version.1));
    for option in options {
        h.update(option.as_bytes());
        h.update([0]);
    }
    h.update(program.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn run_nvrtc(
    kernel: Kernel,
    arch: &str,
    program: &str,
    options: Vec<String>,
) -> Result<String, CompileError> {
    use cudarc::nvrtc::{CompileError as Nvrtc, CompileOptions, compile_ptx_with_opts};
    let opts = CompileOptions {
        options,
        name: Some(kernel.file_name().to_owned()),
        ..Default::default()
    };
    // cudarc panics rather than erring when a symbol is missing from an unexpected NVRTC build.
    let compiled = catch_unwind(AssertUnwindSafe(|| compile_ptx_with_opts(program, opts)))
        .map_err(|panic| CompileError::Nvrtc {
            kernel,
            message: panic_message(panic.as_ref()),
        })?;
    let ptx = compiled.map_err(|e| match e {
        Nvrtc::CompileError { log, .. } => CompileError::Rejected {
            kernel,
            arch: arch.to_owned(),
            log: log.to_string_lossy().into_owned(),
        },
        other => CompileError::Nvrtc {
            kernel,
            message: other.to_string(),
        },
    })?;
    let bytes = ptx.as_bytes().ok_or_else(|| CompileError::Nvrtc {
        kernel,
        message: "no PTX image returned".to_owned(),
    })?;
    // The image is NUL-terminated ASCII.
    let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(text.to_vec()).map_err(|_| CompileError::Nvrtc {
        kernel,
        message: "PTX is not UTF-8".to_owned(),
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

/// Writes `text` to `path` through a temporary file and a rename, so that a concurrent reader
/// never sees a partial file.
fn store(path: &Path, text: &str) -> Result<(), CompileError> {
    let err = |source| CompileError::Cache {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("ptx.tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures() {
        for ok in [
            "compute_80",
            "compute_90",
            "compute_90a",
            "compute_100",
            "compute_120f",
        ] {
            assert!(valid_arch(ok), "{ok}");
        }
        for bad in [
            "sm_90",
            "compute_",
            "compute_9",
            "compute_90ab",
            "compute_x0",
            "90",
        ] {
            assert!(!valid_arch(bad), "{bad}");
        }
    }

    #[test]
    fn cache_key_covers_version_options_and_program() {
        let opts = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = cache_key((13, 0), &opts(&["a", "b"]), "src");
        assert_eq!(base.len(), 64);
        assert_eq!(base, cache_key((13, 0), &opts(&["a", "b"]), "src"));
        for other in [
            cache_key((13, 1), &opts(&["a", "b"]), "src"),
            cache_key((13, 0), &opts(&["a", "c"]), "src"),
            cache_key((13, 0), &opts(&["ab"]), "src"),
            cache_key((13, 0), &opts(&["a", "b"]), "src2"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn entries_are_parsed_from_ptx() {
        let ptx = Ptx {
            text: ".visible .entry rope_f32(\n\t.param .u64 x\n)\n.entry other (\n".to_owned(),
            from_cache: false,
        };
        assert_eq!(ptx.entries().collect::<Vec<_>>(), ["rope_f32", "other"]);
    }
}
