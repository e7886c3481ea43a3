//! OpenAI-compatible routes: `/v1/chat/completions`, `/v1/completions`, `/v1/models`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::error::ApiError;
use super::generation::{ChoiceSpec, LogprobEntry, Run, Update, choice_seed};
use super::params::{Body, GENERATION_KEYS, Generation};
use crate::engine::fresh_seed;
use crate::plugins::ChatMessage;
use crate::tenancy::Caller;
use crate::text::Tokenizers;

/// The two response flavours.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Chat,
    Completion,
}

/// What a prepared request runs.
struct Prepared {
    flavor: Flavor,
    params: Generation,
    specs: Vec<ChoiceSpec>,
    prompt_tokens: usize,
    truncated_tokens: usize,
    top_logprobs: Option<usize>,
    seed: u64,
    model: String,
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let prepared = prepare_chat(&state, &caller, &body)?;
    respond(state, &caller, prepared, started).await
}

/// One chat completion of a batch (`/v1/batches`): the same checks and answer as the route,
/// not streamed, at background priority, charged to `caller` (within its tenant's sequence
/// limit, outside its tokens per minute: a batch is offline work).
pub async fn batch_chat_completion(
    state: &Arc<AppState>,
    caller: &Caller,
    body: &[u8],
) -> Result<Value, ApiError> {
    let started = Instant::now();
    let mut prepared = prepare_chat(state, caller, body)?;
    if prepared.params.stream {
        return Err(ApiError::invalid(
            "stream",
            "batch requests are not streamed",
        ));
    }
    prepared.params.priority = crate::engine::Priority::Background;
    let count = prepared.specs.len();
    let specs = std::mem::take(&mut prepared.specs);
    let run = Run::start(
        state,
        caller,
        false,
        specs,
        &prepared.params,
        prepared.top_logprobs,
        started,
    )?;
    collect_json(run, meta(state, &prepared), count).await
}

/// Reads and checks a chat request, tokenizes its rendered messages.
fn prepare_chat(state: &AppState, caller: &Caller, body: &[u8]) -> Result<Prepared, ApiError> {
    let mut keys = GENERATION_KEYS.to_vec();
    keys.extend([
        "messages",
        "max_completion_tokens",
        "logprobs",
        "top_logprobs",
    ]);
    let mut body = Body::parse(body, &keys)?;
    let model = state.check_model(&body.require::<String>("model")?)?;
    let messages = read_messages(body.require("messages")?)?;
    let params = Generation::read(&mut body, &["max_tokens", "max_completion_tokens"])?;
    let logprobs = body.take::<bool>("logprobs")?.unwrap_or(false);
    let top = body.integer("top_logprobs", 0, 20)?;
    if top.is_some() && !logprobs {
        return Err(ApiError::invalid(
            "top_logprobs",
            "`top_logprobs` requires `logprobs: true`",
        ));
    }
    let top_logprobs = logprobs.then(|| top.unwrap_or(0) as usize);
    let tokenizers = state.tokenizers_of(caller)?;
    let text = tokenizers.with_any(|t| t.apply_chat_template(&messages, true))?;
    let ids = tokenizers.with_any(|t| t.encode(&text, true, true))?;
    prepare(state, Flavor::Chat, vec![ids], params, top_logprobs, model)
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let mut keys = GENERATION_KEYS.to_vec();
    keys.extend(["prompt", "logprobs", "echo", "best_of", "suffix"]);
    let mut body = Body::parse(&body, &keys)?;
    let model = state.check_model(&body.require::<String>("model")?)?;
    // Accepted only at their no-op values, so a client relying on them hears about it.
    if body.take::<bool>("echo")?.unwrap_or(false) {
        return Err(ApiError::invalid("echo", "`echo: true` is not supported"));
    }
    if body.integer("best_of", 1, 1)?.is_some_and(|b| b != 1) {
        return Err(ApiError::invalid(
            "best_of",
            "only `best_of: 1` is supported",
        ));
    }
    if body
        .take::<String>("suffix")?
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::invalid("suffix", "`suffix` is not supported"));
    }
    let mut params = Generation::read(&mut body, &["max_tokens"])?;
    // OpenAI's default for this route.
    params.max_tokens.get_or_insert(16);
    let top_logprobs = body.integer("logprobs", 0, 20)?.map(|k| k as usize);
    let tokenizers = state.tokenizers_of(&caller)?;
    let prompts = read_prompts(&tokenizers, body.require("prompt")?)?;
    let prepared = prepare(
        &state,
        Flavor::Completion,
        prompts,
        params,
        top_logprobs,
        model,
    )?;
    respond(state, &caller, prepared, started).await
}

pub async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.model_id,
            "object": "model",
            "created": state.created,
            "owned_by": "textnlp",
            "max_model_len": state.engine.context_length(),
        }],
    }))
}

fn read_messages(value: Value) -> Result<Vec<ChatMessage>, ApiError> {
    let Value::Array(items) = value else {
        return Err(ApiError::invalid("messages", "`messages` must be an array"));
    };
    if items.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty",
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, m)| read_message(i, m))
        .collect()
}

fn read_message(i: usize, m: Value) -> Result<ChatMessage, ApiError> {
    let param = format!("messages[{i}]");
    let bad = |msg: String| ApiError::invalid(&param, msg);
    let Value::Object(mut m) = m else {
        return Err(bad(format!("{param} must be an object")));
    };
    let role = match m.remove("role") {
        Some(Value::String(r)) => r,
        _ => return Err(bad(format!("{param}.role must be a string"))),
    };
    let role = match role.as_str() {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        other => {
            return Err(bad(format!(
                "{param}.role `{other}` is not supported (system, developer, user, assistant)"
            )));
        }
    };
    let content = match m.remove("content") {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) => parts
            .into_iter()
            .map(|p| match p {
                Value::Object(p)
                    if p.get("type").and_then(Value::as_str) == Some("text") && p.len() == 2 =>
                {
                    p.get("text").and_then(Value::as_str).map(str::to_owned)
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat())
            .ok_or_else(|| {
                bad(format!(
                    "{param}.content parts must be {{\"type\": \"text\", \"text\": ...}}"
                ))
            })?,
        _ => {
            return Err(bad(format!(
                "{param}.content must be a string or text parts"
            )));
        }
    };
    if let Some(key) = m.keys().next() {
        return Err(bad(format!("{param}.{key} is not supported")));
    }
    Ok(ChatMessage {
        role: role.to_owned(),
        content,
    })
}

/// `prompt`: a string, an array of strings, an array of token ids, or an array of those.
fn read_prompts(tokenizers: &Tokenizers, value: Value) -> Result<Vec<Vec<u32>>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "prompt",
            "`prompt` must be a string, an array of strings, an array of token ids or an array of token-id arrays",
        )
    };
    let encode = |s: &str| tokenizers.with_any(|t| t.encode(s, true, true));
    let ids = |v: &[Value]| {
        v.iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<u32>, _>>()
    };
    let prompts = match value {
        Value::String(s) => vec![encode(&s)?],
        Value::Array(items) if items.is_empty() => return Err(bad()),
        Value::Array(items) if items[0].is_number() => vec![ids(&items)?],
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(encode(s)?),
                Value::Array(v) => ids(v),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    if prompts.iter().any(Vec::is_empty) {
        return Err(ApiError::invalid("prompt", "a prompt encodes to no tokens"));
    }
    Ok(prompts)
}

/// Fits each prompt and its token budget into the context (400 unless truncation was asked
/// for) and assigns choice indices and seeds.
fn prepare(
    state: &AppState,
    flavor: Flavor,
    prompts: Vec<Vec<u32>>,
    params: Generation,
    top_logprobs: Option<usize>,
    model: String,
) -> Result<Prepared, ApiError> {
    let seed = params.seed.unwrap_or_else(fresh_seed);
    let mut specs = Vec::new();
    let (mut prompt_tokens, mut truncated_tokens) = (0, 0);
    for (p, mut ids) in prompts.into_iter().enumerate() {
        let (max_tokens, dropped) = fit_context(
            &mut ids,
            params.max_tokens,
            state.engine.context_length(),
            params.truncate_prompt,
        )?;
        truncated_tokens += dropped;
        prompt_tokens += ids.len() * params.n;
        let ids = Arc::new(ids);
        for c in 0..params.n {
            let index = p * params.n + c;
            specs.push(ChoiceSpec {
                index,
                prompt: Arc::clone(&ids),
                max_tokens,
                seed: choice_seed(seed, index),
            });
        }
    }
    Ok(Prepared {
        flavor,
        params,
        specs,
        prompt_tokens,
        truncated_tokens,
        top_logprobs,
        seed,
        model,
    })
}

/// Returns the token budget and how many prompt tokens were dropped from the front.
fn fit_context(
    ids: &mut Vec<u32>,
    max_tokens: Option<usize>,
    context: usize,
    truncate: bool,
) -> Result<(usize, usize), ApiError> {
    let overflow = |budget: usize| {
        ApiError::bad_request(
            "context_length_exceeded",
            format!(
                "the prompt has {} tokens and max_tokens is {budget}: {} in all, more than the context length {context}; shorten the prompt, lower max_tokens, or send `truncate_prompt: true` to drop the oldest prompt tokens",
                ids.len(),
                ids.len() + budget
            ),
        )
    };
    let Some(budget) = max_tokens else {
        if ids.len() >= context {
            return Err(overflow(1));
        }
        return Ok((context - ids.len(), 0));
    };
    if budget >= context {
        return Err(ApiError::invalid(
            "max_tokens",
            format!("max_tokens {budget} leaves no room for a prompt in the context of {context}"),
        ));
    }
    if ids.len() + budget <= context {
        return Ok((budget, 0));
    }
    if !truncate {
        return Err(overflow(budget));
    }
    let dropped = ids.len() + budget - context;
    ids.drain(..dropped);
    Ok((budget, dropped))
}

/// Per-choice results of a non-streamed request.
#[derive(Default, Clone)]
struct Collected {
    text: String,
    logprobs: Vec<LogprobEntry>,
    finish: &'static str,
    tokens: usize,
}

async fn respond(
    state: Arc<AppState>,
    caller: &Caller,
    mut p: Prepared,
    started: Instant,
) -> Result<Response, ApiError> {
    let count = p.specs.len();
    let specs = std::mem::take(&mut p.specs);
    let run = Run::start(
        &state,
        caller,
        true,
        specs,
        &p.params,
        p.top_logprobs,
        started,
    )?;
    let meta = meta(&state, &p);
    if p.params.stream {
        return Ok(stream(run, meta, p.params.include_usage));
    }
    Ok(Json(collect_json(run, meta, count).await?).into_response())
}

/// What every chunk or answer of a prepared request carries.
fn meta(state: &AppState, p: &Prepared) -> Meta {
    Meta {
        id: format!("{}-{:016x}", p.flavor.id_prefix(), fresh_seed()),
        created: unix_now(),
        model: p.model.clone(),
        fingerprint: state.fingerprint.clone(),
        seed: p.seed,
        flavor: p.flavor,
        logprobs: p.top_logprobs.is_some(),
        prompt_tokens: p.prompt_tokens,
        truncated_tokens: p.params.truncate_prompt.then_some(p.truncated_tokens),
    }
}

impl Flavor {
    fn id_prefix(self) -> &'static str {
        match self {
            Flavor::Chat => "chatcmpl",
            Flavor::Completion => "cmpl",
        }
    }

    fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Flavor::Chat, false) => "chat.completion",
            (Flavor::Chat, true) => "chat.completion.chunk",
            (Flavor::Completion, _) => "text_completion",
        }
    }
}

/// The fields every response and chunk of one request repeats.
struct Meta {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
    seed: u64,
    flavor: Flavor,
    logprobs: bool,
    prompt_tokens: usize,
    /// `Some` when the request allowed truncation: how many prompt tokens were dropped.
    truncated_tokens: Option<usize>,
}

impl Meta {
    /// A response or chunk around `choices` (the seed is reported so any output can be
    /// reproduced; it is an extra field OpenAI clients keep in `model_extra`).
    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": self.flavor.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "seed": self.seed,
            "choices": choices,
        });
        if let Some(t) = self.truncated_tokens {
            v["truncated_prompt_tokens"] = json!(t);
        }
        v
    }

    fn usage(&self, completion_tokens: usize) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        })
    }

    /// The `logprobs` value of a choice.
    fn logprobs(&self, entries: &[LogprobEntry], text_offset: usize) -> Value {
        if !self.logprobs {
            return Value::Null;
        }
        match self.flavor {
            Flavor::Chat => {
                let item = |token: &str, logprob: f32| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
                let content: Vec<Value> = entries
                    .iter()
                    .map(|e| {
                        let mut v = item(&e.token, e.logprob);
                        v["top_logprobs"] = e
                            .top
                            .iter()
                            .map(|(t, l)| item(t, *l))
                            .collect::<Vec<_>>()
                            .into();
                        v
                    })
                    .collect();
                json!({"content": content, "refusal": null})
            }
            Flavor::Completion => {
                let mut offset = text_offset;
                let mut offsets = Vec::with_capacity(entries.len());
                for e in entries {
                    offsets.push(offset);
                    offset += e.token.chars().count();
                }
                json!({
                    "tokens": entries.iter().map(|e| &e.token).collect::<Vec<_>>(),
                    "token_logprobs": entries.iter().map(|e| e.logprob).collect::<Vec<_>>(),
                    "top_logprobs": entries.iter().map(|e| {
                        e.top.iter().map(|(t, l)| (t.clone(), json!(l))).collect::<serde_json::Map<_, _>>()
                    }).collect::<Vec<_>>(),
                    "text_offset": offsets,
                })
            }
        }
    }

    /// One choice, whole (non-streamed) or as a chunk's delta.
    fn choice(
        &self,
        index: usize,
        text: &str,
        logprobs: Value,
        finish: Option<&str>,
        chunk: bool,
    ) -> Value {
        match (self.flavor, chunk) {
            (Flavor::Chat, false) => json!({
                "index": index,
                "message": {"role": "assistant", "content": text},
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
            (Flavor::Chat, true) => json!({
                "index": index,
                "delta": if finish.is_some() { json!({}) } else { json!({"content": text}) },
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
            (Flavor::Completion, _) => json!({
                "index": index,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn collect_json(mut run: Run, meta: Meta, count: usize) -> Result<Value, ApiError> {
    let mut out = vec![Collected::default(); count];
    while let Some(update) = run.next().await {
        match update? {
            Update::Delta {
                index,
                text,
                logprobs,
            } => {
                out[index].text.push_str(&text);
                out[index].logprobs.extend(logprobs);
            }
            Update::Done {
                index,
                finish,
                completion_tokens,
            } => {
                out[index].finish = finish;
                out[index].tokens = completion_tokens;
            }
        }
    }
    let completion_tokens = out.iter().map(|c| c.tokens).sum();
    let choices: Vec<Value> = out
        .iter()
        .enumerate()
        .map(|(i, c)| {
            meta.choice(
                i,
                &c.text,
                meta.logprobs(&c.logprobs, 0),
                Some(c.finish),
                false,
            )
        })
        .collect();
    let mut body = meta.envelope(false, choices.into());
    body["usage"] = meta.usage(completion_tokens);
    Ok(body)
}

/// Streams the run as server-sent events. The run lives in its own task; when the client goes
/// away the channel closes, the task ends and dropping the run cancels its sequences.
fn stream(mut run: Run, meta: Meta, include_usage: bool) -> Response {
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            async move {
                tx.send(Ok(SseEvent::default().data(v.to_string())))
                    .await
                    .is_ok()
            }
        };
        let chunk = |choice: Value| {
            let mut v = meta.envelope(true, json!([choice]));
            if include_usage {
                v["usage"] = Value::Null;
            }
            v
        };
        if meta.flavor == Flavor::Chat {
            for index in 0..run.choices() {
                let first = json!({
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": null,
                    "finish_reason": null,
                });
                if !send(chunk(first)).await {
                    return;
                }
            }
        }
        let mut completion_tokens = 0;
        let mut offsets = vec![0usize; run.choices()];
        while let Some(update) = run.next().await {
            let v = match update {
                Ok(Update::Delta {
                    index,
                    text,
                    logprobs,
                }) => {
                    let lp = meta.logprobs(&logprobs, offsets[index]);
                    offsets[index] += text.chars().count();
                    chunk(meta.choice(index, &text, lp, None, true))
                }
                Ok(Update::Done {
                    index,
                    finish,
                    completion_tokens: n,
                }) => {
                    completion_tokens += n;
                    chunk(meta.choice(index, "", Value::Null, Some(finish), true))
                }
                Err(e) => {
                    send(e.body()).await;
                    return;
                }
            };
            if !send(v).await {
                return;
            }
        }
        if include_usage {
            let mut v = meta.envelope(true, json!([]));
            v["usage"] = meta.usage(completion_tokens);
            if !send(v).await {
                return;
            }
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}
