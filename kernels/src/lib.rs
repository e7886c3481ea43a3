//! Compute primitives for textnlp.
//!
//! This crate knows about tensors and numbers only: GGUF block layouts, quantized dot
//! products, normalisation, rotary embeddings, attention and sampling. It never touches files,
//! models, HTTP or WebAssembly; `textnlp-host` composes these pieces into a forward pass.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod quant;

pub use quant::TensorType;
