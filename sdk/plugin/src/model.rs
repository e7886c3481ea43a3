//! The host's language model, for strategies and validators whose manifest asks for it
//! (`"capabilities": {"model": true}`). Every call is charged to the calling plugin's tenant and
//! runs through the host's batching engine.
//!
//! Only call these from a strategy or validator: a component that calls them imports
//! `textnlp:plugin/model`, and the host refuses that import for providers and tokenizers.
//!
//! ```no_run
//! use textnlp_plugin_sdk::model;
//! use textnlp_plugin_sdk::types::ChatMessage;
//!
//! let request = model::chat_request(vec![ChatMessage {
//!     role: "user".into(),
//!     content: "Name a colour.".into(),
//! }]);
//! let answer = model::generate(&request).map(|c| c.text);
//! ```

pub use crate::bindings::host::textnlp::plugin::model::{
    Completion, Error as ModelError, FinishReason, GenerationRequest, ModelInfo, Prompt,
    SamplingParams, Session, detokenize, generate, info, tokenize,
};
pub use crate::types::ChatMessage;

/// Completion budget of [`chat_request`].
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// Sampling temperature of [`chat_request`].
pub const DEFAULT_TEMPERATURE: f32 = 0.7;
/// Nucleus (top-p) mass of [`chat_request`].
pub const DEFAULT_TOP_P: f32 = 0.95;

/// A chat completion request with the SDK's defaults: at most [`DEFAULT_MAX_TOKENS`] tokens,
/// temperature [`DEFAULT_TEMPERATURE`], top-p [`DEFAULT_TOP_P`], a fresh seed, no stop strings.
/// Change the fields before sending it when those do not suit.
pub fn chat_request(messages: Vec<ChatMessage>) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(messages),
        max_tokens: DEFAULT_MAX_TOKENS,
        temperature: DEFAULT_TEMPERATURE,
        top_p: DEFAULT_TOP_P,
        seed: None,
        stop: Vec::new(),
    }
}

/// A readable message: the variant's name and the host's text (`"busy: queue full"`).
pub fn error_message(error: &ModelError) -> String {
    let (kind, text) = match error {
        ModelError::Unavailable(t) => ("unavailable", t),
        ModelError::InvalidRequest(t) => ("invalid request", t),
        ModelError::ContextOverflow(t) => ("context overflow", t),
        ModelError::Busy(t) => ("busy", t),
        ModelError::Failed(t) => ("failed", t),
    };
    format!("{kind}: {text}")
}
