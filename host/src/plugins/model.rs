//! The host side of the WIT `model` interface: plugins reach the host's model through the
//! same continuous-batching engine as the HTTP API, charged to `plugin:<tenant>/<plugin>`.
//!
//! Calls block the plugin's thread (plugin calls never run on an async worker) and stop at the
//! plugin's call deadline: a model call still running then ends the plugin's call as a
//! timeout, and dropping the engine's receiver cancels the sequence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use textnlp_kernels::cpu::sampling::{Sampler, SamplingParams};
use wasmtime::Trap;
use wasmtime::component::Resource;

use super::bindings::validator::textnlp::plugin::model as wit;
use super::runtime::PluginState;
use crate::engine::{
    EngineHandle, Event, FinishReason, Priority, Request, SessionError, SessionHandle, SubmitError,
    fresh_seed, recv_until, token_logprob,
};
use crate::plugins::provider::ChatRequest;
use crate::plugins::{PluginError, ProviderPlugin};
use crate::text::{TextStream, TokenizerPool, Tokenizers};

/// Sessions one plugin instance may hold open at once; each may reserve KV memory.
const MAX_SESSIONS: usize = 8;

/// What a plugin instance with model access talks to: the host's model, or (for a dataset
/// job on `provider:NAME/MODEL`) a remote model behind a provider plugin, which serves
/// `generate` on chats only.
pub struct ModelAccess {
    engine: EngineHandle,
    tokenizers: Arc<TokenizerPool>,
    id: String,
    remote: Option<RemoteModel>,
}

/// A model of a remote API, reached through a provider plugin.
#[derive(Clone)]
pub struct RemoteModel {
    pub provider: Arc<ProviderPlugin>,
    pub model: String,
}

/// How one plugin call's model requests run: a dataset job's background priority and the
/// generation settings of its spec, which override what the plugin asks for.
#[derive(Clone, Debug, Default)]
pub struct GenerationPolicy {
    pub priority: Priority,
    /// Caps each completion's `max-tokens`.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Where the tokens of `generate` calls are counted (a job's usage).
    pub usage: Option<Arc<TokenUsage>>,
}

/// Prompt and completion tokens of model calls, counted as they finish.
#[derive(Debug, Default)]
pub struct TokenUsage {
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
}

impl TokenUsage {
    fn add(&self, prompt: u32, completion: u32) {
        self.prompt_tokens
            .fetch_add(u64::from(prompt), Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(u64::from(completion), Ordering::Relaxed);
    }
}

impl GenerationPolicy {
    fn apply(&self, request: &mut wit::GenerationRequest) {
        if let Some(max) = self.max_tokens {
            request.max_tokens = request.max_tokens.min(max);
        }
        request.temperature = self.temperature.unwrap_or(request.temperature);
        request.top_p = self.top_p.unwrap_or(request.top_p);
    }
}

impl ModelAccess {
    pub fn new(engine: EngineHandle, tokenizers: Arc<TokenizerPool>, id: String) -> Self {
        ModelAccess {
            engine,
            tokenizers,
            id,
            remote: None,
        }
    }

    /// The same host, with `generate` served by `remote` instead of the local model.
    pub fn with_remote(&self, remote: RemoteModel) -> ModelAccess {
        ModelAccess {
            engine: self.engine.clone(),
            tokenizers: Arc::clone(&self.tokenizers),
            id: remote.model.clone(),
            remote: Some(remote),
        }
    }

    /// A completion of a chat by the remote model.
    fn generate_remote(
        &self,
        remote: &RemoteModel,
        request: wit::GenerationRequest,
        policy: &GenerationPolicy,
    ) -> Result<wit::Completion, wit::Error> {
        let wit::Prompt::Chat(messages) = request.prompt else {
            return Err(wit::Error::Unavailable(format!(
                "the provider model `{}` takes chats; raw-text prompts need the local model",
                remote.model
            )));
        };
        let chat = ChatRequest {
            model: remote.model.clone(),
            messages,
            max_tokens: Some(request.max_tokens),
            temperature: Some(request.temperature.max(0.0)),
            top_p: Some(request.top_p),
            seed: request.seed,
            stop: request.stop,
        };
        let answer = remote
            .provider
            .complete(&chat)
            .map_err(|e| wit::Error::Failed(e.to_string()))?;
        let usage = answer.usage.unwrap_or(crate::plugins::provider::Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        if let Some(counter) = &policy.usage {
            counter.add(usage.prompt_tokens, usage.completion_tokens);
        }
        Ok(wit::Completion {
            text: answer.text,
            finish_reason: match answer.finish_reason.as_str() {
                "length" => wit::FinishReason::Length,
                _ => wit::FinishReason::Stop,
            },
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }

    fn info(&self) -> wit::ModelInfo {
        wit::ModelInfo {
            id: self.id.clone(),
            n_vocab: self.engine.n_vocab() as u32,
            context_length: self.engine.context_length() as u32,
            stop_tokens: self.stop_tokens(),
        }
    }

    fn stop_tokens(&self) -> Vec<u32> {
        self.tokenizers.special_tokens().end_of_turn.clone()
    }

    /// The tokenizer instances of `tenant` (never another tenant's: see [`TokenizerPool`]).
    fn tokenizers_of(&self, tenant: &str) -> Result<Arc<Tokenizers>, wit::Error> {
        Ok(self.tokenizers.tenant(tenant)?)
    }

    fn tokenize(
        &self,
        tenant: &str,
        text: &str,
        add_special: bool,
    ) -> Result<Vec<u32>, wit::Error> {
        Ok(self
            .tokenizers_of(tenant)?
            .with_any(|t| t.encode(text, true, add_special))?)
    }

    fn detokenize(&self, tenant: &str, ids: &[u32]) -> Result<String, wit::Error> {
        let n_vocab = self.engine.n_vocab();
        if let Some(id) = ids.iter().find(|&&id| id as usize >= n_vocab) {
            return Err(wit::Error::InvalidRequest(format!(
                "token id {id} is outside the vocabulary ({n_vocab} tokens)"
            )));
        }
        Ok(self
            .tokenizers_of(tenant)?
            .with_any(|t| t.decode(ids, false))?)
    }

    /// One whole completion through the engine.
    fn generate(
        &self,
        tenant: &str,
        client: &str,
        mut request: wit::GenerationRequest,
        policy: GenerationPolicy,
        deadline: Instant,
    ) -> Result<Result<wit::Completion, wit::Error>, Trap> {
        policy.apply(&mut request);
        if let Some(remote) = &self.remote {
            return Ok(self.generate_remote(remote, request, &policy));
        }
        let tokenizers = match self.tokenizers_of(tenant) {
            Ok(tokenizers) => tokenizers,
            Err(e) => return Ok(Err(e)),
        };
        let prompt = match self.prompt_ids(tenant, &request.prompt) {
            Ok(ids) => ids,
            Err(e) => return Ok(Err(e)),
        };
        let prompt_tokens = prompt.len() as u32;
        let submitted = self.engine.submit(Request {
            client: client.to_owned(),
            prompt,
            max_tokens: request.max_tokens as usize,
            sampling: SamplingParams {
                temperature: request.temperature,
                top_p: request.top_p,
                seed: request.seed.unwrap_or_else(fresh_seed),
                ..SamplingParams::default()
            },
            stop_tokens: self.stop_tokens(),
            logit_bias: Vec::new(),
            top_logprobs: None,
            priority: policy.priority,
        });
        let mut events = match submitted {
            Ok(events) => events,
            Err(e) => return Ok(Err(e.into())),
        };
        let mut stream = match TextStream::new(&tokenizers, request.stop) {
            Ok(stream) => stream,
            Err(e) => return Ok(Err(e.into())),
        };
        let mut text = String::new();
        let mut completion_tokens = 0;
        let finish = loop {
            let piece = match recv_until(&mut events, deadline) {
                None => return Err(Trap::Interrupt),
                Some(Some(Event::Token { id, .. })) => {
                    completion_tokens += 1;
                    stream.push(&tokenizers, id)
                }
                Some(Some(Event::Finished(reason))) => break reason,
                Some(Some(Event::Failed(why))) => return Ok(Err(wit::Error::Failed(why))),
                Some(None) => return Ok(Err(wit::Error::Failed("the engine stopped".into()))),
            };
            match piece {
                Ok(piece) if piece.stopped => {
                    text.push_str(&piece.text);
                    break FinishReason::Stop;
                }
                Ok(piece) => text.push_str(&piece.text),
                Err(e) => return Ok(Err(e.into())),
            }
        };
        match stream.finish(&tokenizers) {
            Ok(piece) => text.push_str(&piece.text),
            Err(e) => return Ok(Err(e.into())),
        }
        if let Some(usage) = &policy.usage {
            usage.add(prompt_tokens, completion_tokens);
        }
        Ok(Ok(wit::Completion {
            text,
            finish_reason: match finish {
                FinishReason::Stop => wit::FinishReason::Stop,
                FinishReason::Length => wit::FinishReason::Length,
            },
            prompt_tokens,
            completion_tokens,
        }))
    }

    fn prompt_ids(&self, tenant: &str, prompt: &wit::Prompt) -> Result<Vec<u32>, wit::Error> {
        let text = match prompt {
            wit::Prompt::Text(text) => text.clone(),
            wit::Prompt::Chat(messages) => self.render_chat(tenant, messages, true)?,
        };
        self.tokenize(tenant, &text, true)
    }

    /// The chat through the model's template, exactly as a `chat` prompt is rendered.
    fn render_chat(
        &self,
        tenant: &str,
        messages: &[wit::ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, wit::Error> {
        let messages: Vec<_> = messages
            .iter()
            .map(|m| crate::plugins::ChatMessage {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        Ok(self
            .tokenizers_of(tenant)?
            .with_any(|t| t.apply_chat_template(&messages, add_generation_prompt))?)
    }
}

impl From<PluginError> for wit::Error {
    fn from(e: PluginError) -> Self {
        wit::Error::Failed(format!("tokenizer: {e}"))
    }
}

impl From<SubmitError> for wit::Error {
    fn from(e: SubmitError) -> Self {
        let message = e.to_string();
        match e {
            SubmitError::QueueFull { .. }
            | SubmitError::ClientQueueFull { .. }
            | SubmitError::ShuttingDown => wit::Error::Busy(message),
            SubmitError::ContextOverflow { .. } | SubmitError::TooLarge { .. } => {
                wit::Error::ContextOverflow(message)
            }
            SubmitError::TokenOutOfRange { .. }
            | SubmitError::EmptyPrompt
            | SubmitError::NoTokens => wit::Error::InvalidRequest(message),
        }
    }
}

impl From<SessionError> for wit::Error {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Submit(e) => e.into(),
            SessionError::CapacityExceeded { .. } => wit::Error::ContextOverflow(e.to_string()),
            SessionError::Empty | SessionError::NoContext => {
                wit::Error::InvalidRequest(e.to_string())
            }
            SessionError::Deadline | SessionError::Ended(_) => wit::Error::Failed(e.to_string()),
        }
    }
}

/// A plugin's session: the engine's handle plus what sampling needs on the host side.
pub struct Session {
    handle: SessionHandle,
    tokens: Vec<u32>,
    logits: Option<Vec<f32>>,
    /// The sampler of the current parameters (its random stream restarts when they change).
    sampler: Option<(SamplingParams, Sampler)>,
}

fn sampling_params(p: &wit::SamplingParams) -> Result<SamplingParams, wit::Error> {
    let finite = [p.temperature, p.top_p, p.min_p, p.repetition_penalty]
        .iter()
        .all(|v| v.is_finite());
    if !finite || !(0.0..=1.0).contains(&p.top_p) || !(0.0..=1.0).contains(&p.min_p) {
        return Err(wit::Error::InvalidRequest(
            "sampling parameters must be finite, with top-p and min-p in [0, 1]".into(),
        ));
    }
    Ok(SamplingParams {
        temperature: p.temperature,
        top_k: p.top_k as usize,
        top_p: p.top_p,
        min_p: p.min_p,
        repetition_penalty: p.repetition_penalty,
        seed: p.seed,
        ..SamplingParams::default()
    })
}

impl PluginState {
    fn model(&self) -> Result<&Arc<ModelAccess>, wit::Error> {
        self.model.as_ref().ok_or_else(|| {
            wit::Error::Unavailable(format!(
                "plugin `{}` has no model access (not granted at install, or no model loaded)",
                self.name()
            ))
        })
    }

    /// The local model, for everything but `generate` (a remote model has no tokenizer,
    /// template or KV cache here).
    fn local_model(&self) -> Result<&Arc<ModelAccess>, wit::Error> {
        let model = self.model()?;
        match &model.remote {
            None => Ok(model),
            Some(remote) => Err(wit::Error::Unavailable(format!(
                "this job's model is `{}` behind provider `{}`: only `generate` (on chats) is available",
                remote.model,
                remote.provider.pool().name()
            ))),
        }
    }

    /// Whom model work is charged to in the engine's fair queue: the plugin's tenant, like
    /// the tenant's own API requests.
    fn client(&self) -> String {
        format!("tenant:{}", self.tenant())
    }
}

impl wit::Host for PluginState {
    fn info(&mut self) -> wasmtime::Result<Result<wit::ModelInfo, wit::Error>> {
        Ok(self.local_model().map(|m| m.info()))
    }

    fn tokenize(
        &mut self,
        text: String,
        add_special: bool,
    ) -> wasmtime::Result<Result<Vec<u32>, wit::Error>> {
        Ok(self
            .local_model()
            .and_then(|m| m.tokenize(self.tenant(), &text, add_special)))
    }

    fn detokenize(&mut self, tokens: Vec<u32>) -> wasmtime::Result<Result<String, wit::Error>> {
        Ok(self
            .local_model()
            .and_then(|m| m.detokenize(self.tenant(), &tokens)))
    }

    fn generate(
        &mut self,
        request: wit::GenerationRequest,
    ) -> wasmtime::Result<Result<wit::Completion, wit::Error>> {
        let model = match self.model() {
            Ok(model) => Arc::clone(model),
            Err(e) => return Ok(Err(e)),
        };
        Ok(model.generate(
            self.tenant(),
            &self.client(),
            request,
            self.policy.clone(),
            self.deadline(),
        )?)
    }

    fn render_chat(
        &mut self,
        messages: Vec<wit::ChatMessage>,
        add_generation_prompt: bool,
    ) -> wasmtime::Result<Result<String, wit::Error>> {
        Ok(self
            .local_model()
            .and_then(|m| m.render_chat(self.tenant(), &messages, add_generation_prompt)))
    }
}

impl wit::HostSession for PluginState {
    fn open(&mut self, capacity: u32) -> wasmtime::Result<Result<Resource<Session>, wit::Error>> {
        let model = match self.local_model() {
            Ok(model) => Arc::clone(model),
            Err(e) => return Ok(Err(e)),
        };
        if self.sessions >= MAX_SESSIONS {
            return Ok(Err(wit::Error::Busy(format!(
                "a plugin instance may hold at most {MAX_SESSIONS} sessions"
            ))));
        }
        let handle =
            match model
                .engine
                .open_session(&self.client(), capacity as usize, self.policy.priority)
            {
                Ok(handle) => handle,
                Err(e) => return Ok(Err(e.into())),
            };
        let session = Session {
            handle,
            tokens: Vec::new(),
            logits: None,
            sampler: None,
        };
        let resource = self.table.push(session)?;
        self.sessions += 1;
        Ok(Ok(resource))
    }

    fn len(&mut self, session: Resource<Session>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&session)?.tokens.len() as u32)
    }

    fn append(
        &mut self,
        session: Resource<Session>,
        tokens: Vec<u32>,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let deadline = self.deadline();
        let session = self.table.get_mut(&session)?;
        match session.handle.append(&tokens, deadline) {
            Ok(logits) => {
                session.tokens.extend_from_slice(&tokens);
                session.logits = Some(logits);
                Ok(Ok(()))
            }
            Err(SessionError::Deadline) => Err(Trap::Interrupt.into()),
            Err(e) => Ok(Err(e.into())),
        }
    }

    fn score(
        &mut self,
        session: Resource<Session>,
        tokens: Vec<u32>,
    ) -> wasmtime::Result<Result<Vec<f32>, wit::Error>> {
        let deadline = self.deadline();
        let session = self.table.get_mut(&session)?;
        // The first token is predicted by the logits the session already holds; the engine
        // scores the rest in the same pass that appends them.
        let first = match (&session.logits, tokens.first()) {
            (Some(logits), Some(&id)) if (id as usize) < logits.len() => {
                Some(token_logprob(logits, id, 0).logprob)
            }
            _ => None,
        };
        match session.handle.score(&tokens, deadline) {
            Ok(step) => {
                session.tokens.extend_from_slice(&tokens);
                session.logits = Some(step.logits);
                Ok(Ok(first.into_iter().chain(step.logprobs).collect()))
            }
            Err(SessionError::Deadline) => Err(Trap::Interrupt.into()),
            Err(e) => Ok(Err(e.into())),
        }
    }

    fn logits(
        &mut self,
        session: Resource<Session>,
    ) -> wasmtime::Result<Result<Vec<f32>, wit::Error>> {
        let session = self.table.get(&session)?;
        Ok(session.logits.clone().ok_or_else(no_logits))
    }

    fn sample(
        &mut self,
        session: Resource<Session>,
        params: wit::SamplingParams,
    ) -> wasmtime::Result<Result<u32, wit::Error>> {
        let session = self.table.get_mut(&session)?;
        let params = match sampling_params(&params) {
            Ok(params) => params,
            Err(e) => return Ok(Err(e)),
        };
        let Some(logits) = &session.logits else {
            return Ok(Err(no_logits()));
        };
        let sampler = match &mut session.sampler {
            Some((current, sampler)) if *current == params => sampler,
            slot => &mut slot.insert((params, Sampler::new(params))).1,
        };
        let mut row = logits.clone();
        Ok(Ok(sampler.sample(&mut row, &session.tokens)))
    }

    fn drop(&mut self, session: Resource<Session>) -> wasmtime::Result<()> {
        self.table.delete(session)?;
        self.sessions -= 1;
        Ok(())
    }
}

fn no_logits() -> wit::Error {
    wit::Error::InvalidRequest("no logits yet: append tokens first".into())
}
