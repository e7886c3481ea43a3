//! Generation on top of the model's batched forward step.
//!
//! - [`scheduler`]: the continuous-batching engine that serves many sequences at once (the
//!   HTTP API, jobs and plugins all submit to it);
//! - [`generate`]: one sequence on the calling thread, for the command line.

mod kv_pool;
mod logprobs;
mod request;
pub mod scheduler;
mod session;

pub use logprobs::{negative_log_likelihood, token_logprob};
pub use request::{Event, FinishReason, Priority, Request, SubmitError, TokenLogprob, fresh_seed};
pub use scheduler::{Engine, EngineConfig, EngineHandle, EngineStats};
pub(crate) use session::recv_until;
pub use session::{SessionError, SessionHandle, SessionStep};

use std::time::{Duration, Instant};

use textnlp_kernels::cpu::sampling::{Sampler, SamplingParams};

use crate::model::{Llama, LogitsFor, ModelError, Scratch, SequenceStep};

/// Prompt tokens per forward step during prefill; bounds activation memory for long prompts.
pub const PREFILL_CHUNK: usize = 512;

/// What one generation produced, with its timings.
#[derive(Clone, Debug)]
pub struct Generation {
    pub ids: Vec<u32>,
    pub finish: FinishReason,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

/// A request for [`generate`].
pub struct GenerateRequest<'a> {
    pub prompt: &'a [u32],
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Tokens that end generation (ignored when empty).
    pub stop_tokens: &'a [u32],
}

/// Generates up to `max_tokens` after `prompt`, calling `on_token` with each new token as
/// soon as it is sampled (for streaming). An error from `on_token` aborts generation.
pub fn generate<E: From<ModelError>>(
    model: &Llama,
    req: &GenerateRequest<'_>,
    mut on_token: impl FnMut(u32) -> Result<(), E>,
) -> Result<Generation, E> {
    if req.prompt.is_empty() {
        return Err(ModelError::EmptyStep.into());
    }
    let needed = req.prompt.len() + req.max_tokens;
    let context_length = model.config().context_length;
    if needed > context_length {
        return Err(ModelError::ContextOverflow {
            needed,
            context_length,
        }
        .into());
    }
    let mut cache = model.new_cache();
    let mut scratch = Scratch::default();
    let mut sampler = Sampler::new(req.sampling);
    let mut history = req.prompt.to_vec();

    let started = Instant::now();
    let mut logits = prefill(model, &mut cache, req.prompt, &mut scratch)?;
    let prefill_time = started.elapsed();

    let started = Instant::now();
    let mut finish = FinishReason::Length;
    for produced in 0..req.max_tokens {
        let token = sampler.sample(&mut logits, &history);
        if req.stop_tokens.contains(&token) {
            finish = FinishReason::Stop;
            break;
        }
        history.push(token);
        on_token(token)?;
        if produced + 1 == req.max_tokens {
            break;
        }
        let mut step = [SequenceStep {
            cache: &mut cache,
            tokens: &[token],
            logits: LogitsFor::Last,
        }];
        logits.copy_from_slice(model.forward(&mut step, &mut scratch)?);
    }
    let ids = history.split_off(req.prompt.len());
    Ok(Generation {
        ids,
        finish,
        prefill_time,
        decode_time: started.elapsed(),
    })
}

/// Feeds `tokens` into `cache` in chunks and returns the logits after the last one.
pub fn prefill(
    model: &Llama,
    cache: &mut crate::model::KvCache,
    tokens: &[u32],
    scratch: &mut Scratch,
) -> Result<Vec<f32>, ModelError> {
    let mut chunks = tokens.chunks(PREFILL_CHUNK).peekable();
    while let Some(chunk) = chunks.next() {
        let logits = if chunks.peek().is_some() {
            LogitsFor::None
        } else {
            LogitsFor::Last
        };
        let out = model.forward(
            &mut [SequenceStep {
                cache,
                tokens: chunk,
                logits,
            }],
            scratch,
        )?;
        if logits == LogitsFor::Last {
            return Ok(out.to_vec());
        }
    }
    Err(ModelError::EmptyStep)
}
