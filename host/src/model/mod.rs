//! Model runtime: GGUF reader, weights, architectures and the forward pass.

pub mod backend;
pub mod config;
#[cfg(feature = "cuda")]
mod cuda;
pub mod gguf;
pub mod kv_cache;
pub mod llama;
pub mod vocab;

pub use backend::{Backend, BackendError, BackendRequest};
pub use config::LlamaConfig;
pub use kv_cache::KvCache;
pub use llama::{Draw, Llama, LogitsFor, Scratch, SequenceStep};

use gguf::GgufError;

/// Why a model cannot be loaded or a forward step cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported architecture `{0}` (supported: llama)")]
    UnsupportedArchitecture(String),
    #[error("invalid model hyper-parameters: {0}")]
    InvalidConfig(String),
    #[error("tensor `{0}` is missing from the model file")]
    MissingTensor(String),
    #[error("tensor `{name}` has dimensions {found:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("tensor `{name}` is unusable: {reason}")]
    TensorData { name: String, reason: String },
    #[error("token id {id} is outside the vocabulary ({n_vocab} tokens)")]
    TokenOutOfRange { id: u32, n_vocab: usize },
    #[error(
        "the sequence would hold {needed} tokens, more than the context length {context_length}"
    )]
    ContextOverflow {
        needed: usize,
        context_length: usize,
    },
    #[error("a sequence asked for logits without giving any token")]
    EmptyStep,
    #[error(
        "a sampled step needs one draw per sequence wanting its last logits, none wanting all, \
         and no penalties"
    )]
    InvalidDraws,
    #[error("a KV cache of one backend was given to a model running on another")]
    CacheBackend,
    #[error("the GPU's KV cache is full ({capacity} positions for all sequences together)")]
    KvCacheFull { capacity: usize },
    #[error(
        "tensor `{name}` is {ty}, which the CUDA backend has no kernel for (it has {supported})"
    )]
    NoDeviceKernel {
        name: String,
        ty: textnlp_kernels::TensorType,
        supported: String,
    },
    #[error("the CUDA backend's kernels do not support this model's {0}")]
    NoDeviceShape(String),
    #[cfg(feature = "cuda")]
    #[error("GPU: {0}")]
    Device(#[from] textnlp_kernels::cuda::DeviceError),
}
