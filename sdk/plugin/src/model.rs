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
    SamplingParams, Session, detokenize, generate, info, render_chat, tokenize,
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

/// A raw-text completion request (the text is tokenized as is, special-token strings
/// included: no chat template is applied) with [`chat_request`]'s defaults. For prompts a
/// strategy formats itself: a numbered list to continue, a template's role prefix.
pub fn text_request(text: String) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Text(text),
        ..chat_request(Vec::new())
    }
}

/// The content [`role_prefix`] renders and cuts at: plain ASCII that no template rewrites and
/// no sensible chat contains.
pub const ROLE_SENTINEL: &str = "TEXTNLPROLESENTINEL7f3a9c";

/// The text the model's chat template puts before the content of a `role` message that follows
/// `before` (for a first user turn: the template's beginning-of-text, any default system
/// prompt, and the user header). Rendered by [`render_chat`] without a generation prompt, with
/// [`ROLE_SENTINEL`] as the content, and cut at the sentinel. Magpie sends the user prefix alone
/// as a raw-text prompt ([`text_request`]) so that the model writes a user turn.
///
/// A template that does not show the content verbatim is a [`ModelError::Failed`].
pub fn role_prefix(before: &[ChatMessage], role: &str) -> Result<String, ModelError> {
    let mut messages = before.to_vec();
    messages.push(ChatMessage {
        role: role.into(),
        content: ROLE_SENTINEL.into(),
    });
    let rendered = render_chat(&messages, false)?;
    prefix_before(&rendered, ROLE_SENTINEL)
        .map(str::to_owned)
        .ok_or_else(|| {
            ModelError::Failed(format!(
                "the chat template does not render a {role} message's content verbatim"
            ))
        })
}

/// `rendered` up to the first occurrence of `sentinel`; `None` when it does not occur. The
/// pure half of [`role_prefix`].
pub fn prefix_before<'a>(rendered: &'a str, sentinel: &str) -> Option<&'a str> {
    rendered.find(sentinel).map(|at| &rendered[..at])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_ends_at_the_sentinel() {
        let rendered = format!("<s><|user|>\n{ROLE_SENTINEL}<|end|>\n");
        assert_eq!(
            prefix_before(&rendered, ROLE_SENTINEL),
            Some("<s><|user|>\n")
        );
        assert_eq!(prefix_before("<|user|>\n<|end|>", ROLE_SENTINEL), None);
    }

    #[test]
    fn a_text_request_keeps_the_defaults() {
        let request = text_request("1. a\n2.".into());
        assert!(matches!(&request.prompt, Prompt::Text(t) if t == "1. a\n2."));
        assert_eq!(request.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(request.top_p, DEFAULT_TOP_P);
        assert!(request.seed.is_none() && request.stop.is_empty());
    }
}
