//! The wasmtime plugin host.
//!
//! - [`runtime`]: one wasmtime engine, limits, a sandboxed store per plugin instance;
//! - [`tokenizer`]: the host side of the `tokenizer-plugin` world, [`TokenizerPlugin`];
//! - [`error`]: [`PluginError`] and [`TrapKind`].

pub mod error;
pub mod runtime;
pub mod tokenizer;

pub use error::{PluginError, TrapKind};
pub use runtime::{Limits, PluginRuntime};
pub use tokenizer::{ChatMessage, DecoderHandle, SpecialTokens, TokenizerError, TokenizerPlugin};
