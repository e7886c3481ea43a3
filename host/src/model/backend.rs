//! Which compute backend runs the forward pass, chosen at run time (`--backend`).
//!
//! The CUDA backend needs the binary built with feature `cuda`, the driver and NVRTC
//! libraries (dlopened, so their absence is a run-time condition, not a build failure) and a
//! GPU that opens. Its forward pass is not written yet, so today every road ends on the CPU:
//! `auto` says why in one log line and `cuda` fails with the reason.

use std::fmt;

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendRequest {
    /// CUDA where it is usable, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// The backend a model runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Cuda,
}

impl Backend {
    /// The short name used in logs and the server's `system_fingerprint`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the CUDA backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("this textnlp was built without CUDA support (rebuild with `--features cuda`)")]
    NotBuilt,
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Unavailable(#[from] textnlp_kernels::cuda::Unavailable),
    #[cfg(feature = "cuda")]
    #[error("no usable GPU: {0}")]
    Device(textnlp_kernels::cuda::DeviceError),
    #[error("a GPU is available, but the CUDA forward pass is not implemented yet")]
    ForwardNotImplemented,
}

/// The backend for `requested`: `cpu` always; `cuda` or an error saying why it cannot run;
/// `auto` CUDA where usable, else the CPU with one info line giving the reason.
pub fn select(requested: BackendRequest) -> Result<Backend, BackendError> {
    match requested {
        BackendRequest::Cpu => Ok(Backend::Cpu),
        BackendRequest::Cuda => cuda().map(|()| Backend::Cuda),
        BackendRequest::Auto => Ok(cuda().map_or_else(
            |why| {
                tracing::info!("backend: cpu (CUDA: {why})");
                Backend::Cpu
            },
            |()| Backend::Cuda,
        )),
    }
}

/// Whether the CUDA backend can run here.
#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<(), BackendError> {
    Err(BackendError::NotBuilt)
}

/// Whether the CUDA backend can run here: probes the libraries first, because cudarc panics on
/// its first call into a missing one, then opens GPU 0 (which compiles or loads every kernel).
#[cfg(feature = "cuda")]
fn cuda() -> Result<(), BackendError> {
    use textnlp_kernels::cuda;
    cuda::probe()?;
    cuda::Device::new(0, &crate::paths::ptx_cache()).map_err(BackendError::Device)?;
    // The kernels load; what is missing is the model's forward pass on them.
    Err(BackendError::ForwardNotImplemented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_cpu_is_always_available() {
        assert_eq!(select(BackendRequest::Cpu).unwrap(), Backend::Cpu);
    }

    #[test]
    fn backend_auto_falls_back_to_the_cpu_here() {
        // No build of this crate can run CUDA yet (its forward pass is missing).
        assert_eq!(select(BackendRequest::Auto).unwrap(), Backend::Cpu);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn backend_cuda_without_the_feature_says_so() {
        let err = select(BackendRequest::Cuda).unwrap_err();
        assert!(matches!(err, BackendError::NotBuilt), "{err:?}");
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn backend_cuda_names_what_is_missing() {
        let err = select(BackendRequest::Cuda).unwrap_err();
        match textnlp_kernels::cuda::probe() {
            Err(missing) => {
                assert!(
                    matches!(err, BackendError::Unavailable(m) if m == missing),
                    "{err:?}"
                );
                assert!(err.to_string().contains(".so"), "{err}");
            }
            // Libraries present: either the GPU fails to open or the forward pass is missing.
            Ok(()) => assert!(
                matches!(
                    err,
                    BackendError::Device(_) | BackendError::ForwardNotImplemented
                ),
                "{err:?}"
            ),
        }
    }
}
