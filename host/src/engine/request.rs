//! What goes into the engine (a [`Request`]) and what comes out of it (a stream of [`Event`]s).

use std::time::Duration;

use textnlp_kernels::cpu::sampling::SamplingParams;

/// One sequence to generate: token ids in, token ids out. Text (templates, stop strings,
/// detokenization) is the caller's business; the engine only sees ids.
#[derive(Clone, Debug)]
pub struct Request {
    /// Whom the request is charged to for fair scheduling (an API key, a tenant, a job).
    pub client: String,
    pub prompt: Vec<u32>,
    /// Generated tokens at most (the KV cache for prompt + max_tokens is reserved up front).
    pub max_tokens: usize,
    /// Sampler settings, including the seed of this sequence's random stream.
    pub sampling: SamplingParams,
    /// Ids that end the sequence (end of turn / end of text); they are not emitted.
    pub stop_tokens: Vec<u32>,
    /// Added to the logits before sampling (and before log-probabilities are taken).
    pub logit_bias: Vec<(u32, f32)>,
    /// `Some(k)`: report each token's log-probability and the k most likely alternatives.
    pub top_logprobs: Option<usize>,
    /// Interactive traffic is admitted before background work (dataset jobs).
    pub priority: Priority,
}

/// Which requests the engine serves first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// HTTP API calls and everything a person waits on.
    #[default]
    Interactive,
    /// Dataset jobs: admitted only when no interactive request waits, and never into the
    /// last quarter of the running slots, so a burst of API traffic finds room.
    Background,
}

/// Log-probabilities of one generated token under the model's distribution (after
/// `logit_bias`, before temperature, filters and penalties).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub logprob: f32,
    /// The `top_logprobs` most likely tokens, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// Why a sequence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was sampled (it is not emitted).
    Stop,
    /// `max_tokens` were generated.
    Length,
}

/// What the engine reports about one sequence, in order: tokens, then exactly one of
/// `Finished` or `Failed`.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Token {
        id: u32,
        logprob: Option<TokenLogprob>,
    },
    Finished(FinishReason),
    /// The sequence was dropped: the server is shutting down, or its forward step failed.
    Failed(String),
}

/// Why a request was not queued.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubmitError {
    #[error("the request queue is full ({waiting} waiting); retry after {retry_after:?}")]
    QueueFull {
        waiting: usize,
        retry_after: Duration,
    },
    #[error("this client already has {waiting} requests waiting; retry after {retry_after:?}")]
    ClientQueueFull {
        waiting: usize,
        retry_after: Duration,
    },
    #[error(
        "the sequence needs {needed} KV-cache tokens (prompt + max_tokens), more than the whole pool ({capacity})"
    )]
    TooLarge { needed: usize, capacity: usize },
    #[error(
        "the sequence would hold {needed} tokens (prompt + max_tokens), more than the context length {context_length}"
    )]
    ContextOverflow {
        needed: usize,
        context_length: usize,
    },
    #[error("token id {id} is outside the vocabulary ({n_vocab} tokens)")]
    TokenOutOfRange { id: u32, n_vocab: usize },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("max_tokens must be at least 1")]
    NoTokens,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// A fresh random seed (from the OS-seeded hasher), for requests that do not give one.
pub fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
