//! Which compute backend runs the forward pass, chosen at run time (`--backend`).
//!
//! The CUDA backend needs the binary built with feature `cuda`, the driver and NVRTC
//! libraries (dlopened, so their absence is a run-time condition, not a build failure), a GPU
//! that opens, and kernels for every weight type of the model. `auto` uses it where all of that
//! holds and otherwise stays on the CPU, saying why in one log line; `cuda` fails with the
//! reason.

use std::fmt;
use std::path::Path;

use super::{Llama, ModelError};

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
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl BackendError {
    /// Whether this only says that there is no GPU to use here (no build support, no driver or
    /// NVRTC, no device), as opposed to a GPU that is present but failed.
    pub fn no_gpu_here(&self) -> bool {
        match self {
            Self::NotBuilt => true,
            #[cfg(feature = "cuda")]
            Self::Unavailable(_) => true,
            #[cfg(feature = "cuda")]
            Self::Model(ModelError::Device(textnlp_kernels::cuda::DeviceError::NoDevice {
                ..
            })) => true,
            Self::Model(_) => false,
        }
    }
}

/// Moves `model` to the backend `requested` asks for and returns the one it runs on: `cpu`
/// leaves it where it is; `cuda` moves it or fails saying why; `auto` moves it where it can,
/// else leaves it on the CPU with one info line giving the reason.
pub fn place(
    model: &mut Llama,
    requested: BackendRequest,
    ptx_cache: &Path,
) -> Result<Backend, BackendError> {
    match requested {
        BackendRequest::Cpu => Ok(Backend::Cpu),
        BackendRequest::Cuda => to_cuda(model, ptx_cache).map(|()| Backend::Cuda),
        BackendRequest::Auto => Ok(to_cuda(model, ptx_cache).map_or_else(
            |why| {
                tracing::info!("backend: cpu (CUDA: {why})");
                Backend::Cpu
            },
            |()| Backend::Cuda,
        )),
    }
}

/// Why CUDA cannot even be tried here (no build support, or a library missing), if so.
pub fn cuda_unusable() -> Option<BackendError> {
    #[cfg(feature = "cuda")]
    return textnlp_kernels::cuda::probe().err().map(BackendError::from);
    #[cfg(not(feature = "cuda"))]
    Some(BackendError::NotBuilt)
}

/// Moves the model to GPU 0. The libraries are probed first, because cudarc panics on its first
/// call into a missing one.
fn to_cuda(model: &mut Llama, ptx_cache: &Path) -> Result<(), BackendError> {
    if let Some(why) = cuda_unusable() {
        return Err(why);
    }
    #[cfg(feature = "cuda")]
    model.use_cuda(ptx_cache)?;
    #[cfg(not(feature = "cuda"))]
    let _ = (model, ptx_cache);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn backend_cuda_without_the_feature_says_so() {
        let err = cuda_unusable().expect("a build without CUDA cannot use it");
        assert!(matches!(err, BackendError::NotBuilt), "{err:?}");
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn backend_cuda_names_the_missing_library() {
        match (textnlp_kernels::cuda::probe(), cuda_unusable()) {
            (Ok(()), None) => {}
            (Err(missing), Some(err)) => {
                assert!(
                    matches!(err, BackendError::Unavailable(m) if m == missing),
                    "{err:?}"
                );
                assert!(err.to_string().contains(".so"), "{err}");
            }
            (probe, unusable) => panic!("probe {probe:?} but cuda_unusable {unusable:?}"),
        }
    }
}
