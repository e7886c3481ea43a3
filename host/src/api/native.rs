//! Native routes: batch generation, tokenize / detokenize, health and readiness.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::generation::{ChoiceSpec, Run, Update, choice_seed};
use super::params::{Body, Generation};
use crate::engine::fresh_seed;
use crate::plugins::ChatMessage;
use crate::tenancy::Caller;
use crate::text::Tokenizers;

/// Largest batch of prompts one `/v1/generate` call takes.
const MAX_PROMPTS: usize = 1024;

/// `POST /v1/generate`: `{prompts, max_tokens, temperature, top_p, top_k, seed, stop, chat}`
/// → `{texts, finish_reasons, seed, usage}`. Prompt i samples with `choice_seed(seed, i)`, so
/// a batch reproduces from the one seed it reports. With `chat` (default true) each prompt
/// is sent as a user message through the model's chat template.
pub async fn generate(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let keys = [
        "prompts",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "stop",
        "chat",
        "ignore_eos",
    ];
    let mut body = Body::parse(&body, &keys)?;
    let prompts: Vec<String> = body.require("prompts")?;
    if prompts.is_empty() || prompts.len() > MAX_PROMPTS {
        return Err(ApiError::invalid(
            "prompts",
            format!("give 1 to {MAX_PROMPTS} prompts"),
        ));
    }
    let chat = body.take::<bool>("chat")?.unwrap_or(true);
    let mut params = Generation::read(&mut body, &["max_tokens"])?;
    let max_tokens = *params.max_tokens.get_or_insert(256);
    let seed = *params.seed.get_or_insert_with(fresh_seed);
    let context = state.engine.context_length();
    let mut specs = Vec::with_capacity(prompts.len());
    let mut prompt_tokens = 0;
    let tokenizers = state.tokenizers_of(&caller)?;
    for (index, prompt) in prompts.iter().enumerate() {
        let ids = encode_prompt(&tokenizers, prompt, chat)?;
        if ids.len() + max_tokens > context {
            return Err(ApiError::bad_request(
                "context_length_exceeded",
                format!(
                    "prompt {index} has {} tokens; with max_tokens {max_tokens} that exceeds the context length {context}",
                    ids.len()
                ),
            ));
        }
        prompt_tokens += ids.len();
        specs.push(ChoiceSpec {
            index,
            prompt: Arc::new(ids),
            max_tokens,
            seed: choice_seed(seed, index),
        });
    }
    let mut run = Run::start(&state, &caller, true, specs, &params, None, started)?;
    let mut texts = vec![String::new(); prompts.len()];
    let mut finish = vec![""; prompts.len()];
    let mut completion_tokens = 0;
    while let Some(update) = run.next().await {
        match update? {
            Update::Delta { index, text, .. } => texts[index].push_str(&text),
            Update::Done {
                index,
                finish: f,
                completion_tokens: n,
            } => {
                finish[index] = f;
                completion_tokens += n;
            }
        }
    }
    Ok(Json(json!({
        "texts": texts,
        "finish_reasons": finish,
        "seed": seed,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
    .into_response())
}

fn encode_prompt(tokenizers: &Tokenizers, prompt: &str, chat: bool) -> Result<Vec<u32>, ApiError> {
    let text = if chat {
        let message = ChatMessage {
            role: "user".into(),
            content: prompt.to_owned(),
        };
        tokenizers.with_any(|t| t.apply_chat_template(&[message], true))?
    } else {
        prompt.to_owned()
    };
    let ids = tokenizers.with_any(|t| t.encode(&text, true, true))?;
    if ids.is_empty() {
        return Err(ApiError::invalid(
            "prompts",
            "a prompt encodes to no tokens",
        ));
    }
    Ok(ids)
}

/// `POST /v1/tokenize`: `{text, add_special?}` → `{tokens, count, max_model_len}`.
pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut body = Body::parse(&body, &["text", "add_special", "model"])?;
    if let Some(model) = body.take::<String>("model")? {
        state.check_model(&model)?;
    }
    let text: String = body.require("text")?;
    let add_special = body.take::<bool>("add_special")?.unwrap_or(true);
    let tokens = state
        .tokenizers_of(&caller)?
        .with_any(|t| t.encode(&text, true, add_special))?;
    Ok(Json(json!({
        "count": tokens.len(),
        "tokens": tokens,
        "max_model_len": state.engine.context_length(),
    })))
}

/// `POST /v1/detokenize`: `{tokens}` → `{text}`.
pub async fn detokenize(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut body = Body::parse(&body, &["tokens", "model"])?;
    if let Some(model) = body.take::<String>("model")? {
        state.check_model(&model)?;
    }
    let tokens: Vec<u32> = body.require("tokens")?;
    let n_vocab = state.n_vocab;
    if let Some(&id) = tokens.iter().find(|&&id| id as usize >= n_vocab) {
        return Err(ApiError::invalid(
            "tokens",
            format!("token id {id} is outside the vocabulary ({n_vocab} tokens)"),
        ));
    }
    let text = state
        .tokenizers_of(&caller)?
        .with_any(|t| t.decode(&tokens, false))?;
    Ok(Json(json!({ "text": text })))
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the model answered a warm-up step, the tokenizer plugins are loaded, and the
/// server is not draining.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.ready.load(Ordering::SeqCst) && !state.engine.is_draining();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": ready,
        "model": state.model_id,
        "draining": state.engine.is_draining(),
    });
    (status, Json(body)).into_response()
}
