//! Drives the choices of one API request through the engine and turns their token events
//! into text updates (shared by the OpenAI routes and `/v1/generate`).

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::AppState;
use super::error::ApiError;
use super::params::Generation;
use crate::engine::{Event, FinishReason, Request, TokenLogprob};
use crate::tenancy::{Admission, Caller, Usage};
use crate::text::{TextStream, Tokenizers};

/// One sequence to run: a prompt and its choice index in the response.
pub struct ChoiceSpec {
    pub index: usize,
    pub prompt: Arc<Vec<u32>>,
    pub max_tokens: usize,
    pub seed: u64,
}

/// A token's log-probability with the text of it and of its alternatives.
#[derive(Debug, Clone)]
pub struct LogprobEntry {
    pub token: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

/// Progress of one choice.
pub enum Update {
    /// New text (possibly empty when only log-probabilities arrived).
    Delta {
        index: usize,
        text: String,
        logprobs: Vec<LogprobEntry>,
    },
    /// The choice ended.
    Done {
        index: usize,
        finish: &'static str,
        completion_tokens: usize,
    },
}

/// The seed of choice `i` of a request seeded with `seed`: choice 0 uses it as given (so a
/// request with n = 1 reproduces with the seed it reports), later choices a hash of both.
pub fn choice_seed(seed: u64, i: usize) -> u64 {
    if i == 0 {
        return seed;
    }
    // SplitMix64 of (seed, i): distinct, well-mixed streams per choice.
    let mut z = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct ChoiceState {
    text: TextStream,
    tokens: usize,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    done: bool,
}

/// The running choices of one request. Dropping it cancels every choice still running and
/// charges what they used to the caller's tenant and key.
pub struct Run {
    state: Arc<AppState>,
    /// The tenant's sequences and tokens this run holds.
    admission: Admission,
    /// (tenant, key) the usage is charged to.
    charged: (String, String),
    /// The tenant's tokenizer instances, which hold this run's decoders.
    tokenizers: Arc<Tokenizers>,
    prompt_tokens: usize,
    events: StreamMap<usize, UnboundedReceiverStream<Event>>,
    choices: Vec<ChoiceState>,
    started: Instant,
    top_logprobs: Option<usize>,
    queued: std::collections::VecDeque<Update>,
}

impl Run {
    /// Submits every choice (all or none: if one is refused, the others are cancelled),
    /// once the caller's tenant has room for them: its running sequences and, when
    /// `rate_limited`, its tokens per minute (`prompt + max_tokens` of each choice).
    pub fn start(
        state: &Arc<AppState>,
        caller: &Caller,
        rate_limited: bool,
        specs: Vec<ChoiceSpec>,
        params: &Generation,
        top_logprobs: Option<usize>,
        started: Instant,
    ) -> Result<Run, ApiError> {
        let tokens: u64 = specs
            .iter()
            .map(|s| (s.prompt.len() + s.max_tokens) as u64)
            .sum();
        let tenant = &caller.tenant;
        let admission = state.tenancy.limiter().admit(
            &tenant.id,
            &tenant.limits,
            specs.len() as u32,
            tokens,
            rate_limited,
        )?;
        let client = caller.client();
        let tokenizers = state.tokenizers_of(caller)?;
        let stop_tokens = if params.ignore_eos {
            Vec::new()
        } else {
            state.tokenizers.special_tokens().end_of_turn.clone()
        };
        let mut events = StreamMap::new();
        let mut choices = Vec::with_capacity(specs.len());
        for spec in &specs {
            let request = Request {
                client: client.clone(),
                prompt: spec.prompt.to_vec(),
                max_tokens: spec.max_tokens,
                sampling: textnlp_kernels::cpu::sampling::SamplingParams {
                    seed: spec.seed,
                    ..params.sampling
                },
                stop_tokens: stop_tokens.clone(),
                logit_bias: params.logit_bias.clone(),
                top_logprobs,
                priority: params.priority,
            };
            let receiver = state.engine.submit(request).inspect_err(|e| {
                if matches!(e, crate::engine::SubmitError::QueueFull { .. })
                    || matches!(e, crate::engine::SubmitError::ClientQueueFull { .. })
                {
                    state.metrics.rejected_overload.inc();
                }
            })?;
            state.metrics.prompt_tokens.inc_by(spec.prompt.len() as u64);
            events.insert(spec.index, UnboundedReceiverStream::new(receiver));
            choices.push(ChoiceState {
                text: TextStream::new(&tokenizers, params.stop.clone())?,
                tokens: 0,
                first_token: None,
                last_token: None,
                done: false,
            });
        }
        Ok(Run {
            state: Arc::clone(state),
            admission,
            charged: (tenant.id.clone(), caller.key_id.clone()),
            tokenizers,
            prompt_tokens: specs.iter().map(|s| s.prompt.len()).sum(),
            events,
            choices,
            started,
            top_logprobs,
            queued: Default::default(),
        })
    }

    /// Number of choices.
    pub fn choices(&self) -> usize {
        self.choices.len()
    }

    /// The next update; `None` when every choice is done.
    pub async fn next(&mut self) -> Option<Result<Update, ApiError>> {
        loop {
            if let Some(u) = self.queued.pop_front() {
                return Some(Ok(u));
            }
            let (index, event) = self.events.next().await?;
            if let Err(e) = self.on_event(index, event) {
                return Some(Err(e));
            }
        }
    }

    fn on_event(&mut self, index: usize, event: Event) -> Result<(), ApiError> {
        let state = Arc::clone(&self.state);
        let tokenizers = Arc::clone(&self.tokenizers);
        let pool = &*tokenizers;
        let choice = &mut self.choices[index];
        if choice.done {
            return Ok(());
        }
        match event {
            Event::Token { id, logprob } => {
                let now = Instant::now();
                match choice.last_token {
                    None => state
                        .metrics
                        .time_to_first_token
                        .observe((now - self.started).as_secs_f64()),
                    Some(last) => state
                        .metrics
                        .inter_token_latency
                        .observe((now - last).as_secs_f64()),
                }
                choice.first_token.get_or_insert(now);
                choice.last_token = Some(now);
                choice.tokens += 1;
                state.metrics.generation_tokens.inc();
                let piece = choice.text.push(pool, id)?;
                let logprobs = match logprob {
                    Some(lp) if self.top_logprobs.is_some() => vec![self.entry(id, &lp)?],
                    _ => Vec::new(),
                };
                if !piece.text.is_empty() || !logprobs.is_empty() {
                    self.queued.push_back(Update::Delta {
                        index,
                        text: piece.text,
                        logprobs,
                    });
                }
                if piece.stopped {
                    self.finish(index, "stop");
                }
            }
            Event::Finished(reason) => {
                let piece = choice.text.finish(pool)?;
                if !piece.text.is_empty() {
                    self.queued.push_back(Update::Delta {
                        index,
                        text: piece.text,
                        logprobs: Vec::new(),
                    });
                }
                let finish = match reason {
                    FinishReason::Stop => "stop",
                    FinishReason::Length if piece.stopped => "stop",
                    FinishReason::Length => "length",
                };
                self.finish(index, finish);
            }
            Event::Failed(why) => {
                return Err(if self.state.engine.is_draining() {
                    ApiError::unavailable(why)
                } else {
                    ApiError::internal(why)
                });
            }
        }
        Ok(())
    }

    /// Marks choice `index` done and cancels its sequence (if the engine still runs it).
    fn finish(&mut self, index: usize, finish: &'static str) {
        let choice = &mut self.choices[index];
        choice.done = true;
        self.events.remove(&index);
        self.state
            .metrics
            .e2e_latency
            .observe(self.started.elapsed().as_secs_f64());
        self.queued.push_back(Update::Done {
            index,
            finish,
            completion_tokens: choice.tokens,
        });
    }

    fn entry(&self, id: u32, lp: &TokenLogprob) -> Result<LogprobEntry, ApiError> {
        let pool = &self.tokenizers;
        let text = |id: u32| pool.with_any(|t| t.decode(&[id], false));
        Ok(LogprobEntry {
            token: text(id)?,
            logprob: lp.logprob,
            top: lp
                .top
                .iter()
                .map(|&(id, l)| Ok((text(id)?, l)))
                .collect::<Result<_, ApiError>>()?,
        })
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let completion: usize = self.choices.iter().map(|c| c.tokens).sum();
        self.admission
            .used((self.prompt_tokens + completion) as u64);
        let usage = Usage {
            prompt_tokens: self.prompt_tokens as u64,
            completion_tokens: completion as u64,
            ..Usage::default()
        };
        let (tenant, key) = &self.charged;
        self.state.tenancy.account(tenant, key, &usage);
    }
}
