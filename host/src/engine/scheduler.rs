//! The continuous-batching scheduler.
//!
//! One engine thread owns the model's compute. Each iteration it
//! 1. drops sequences whose client went away (their event receiver was dropped),
//! 2. admits waiting requests while the batch and the KV pool have room, choosing the waiting
//!    client that has been served the fewest tokens (virtual-token-counter fairness), so no
//!    caller can starve another by queueing many requests,
//! 3. runs ONE forward step over every running sequence: one token for each decoding
//!    sequence, plus prompt chunks for prefilling ones (and tokens appended to plugin
//!    sessions) up to a per-step token budget (so a long prompt or append never stalls the
//!    running decodes),
//! 4. samples the sequences whose prompt is done and streams their tokens; a session gets
//!    the logits of its last position instead, and for a scored append the log-probability of
//!    every appended token.
//!
//! Reproducibility: each sequence samples from its own counter-based random stream (seed,
//! step, token), and every kernel computes a sequence's rows in an order that does not depend
//! on the other rows of the batch (see `kernels::cpu::matmul`), so a seeded request yields
//! the same tokens whatever else is running, however its prompt was chunked.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use textnlp_kernels::cpu::sampling::Sampler;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::kv_pool::KvPool;
use super::logprobs::token_logprob;
use super::request::{Event, FinishReason, Priority, Request, SubmitError, TokenLogprob};
use crate::model::{Draw, KvCache, Llama, LogitsFor, Scratch, SequenceStep};

/// Limits of one engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Sequences in one forward step at most.
    pub max_running: usize,
    /// Tokens in one forward step at most (decodes count one each; prefill chunks fill the
    /// rest). At least `max_running`, so every running decode always fits.
    pub step_tokens: usize,
    /// KV-cache tokens shared by all running sequences.
    pub kv_tokens: usize,
    /// Requests waiting for admission at most; beyond it `submit` refuses.
    pub max_waiting: usize,
    /// Requests one client may have waiting at most.
    pub max_waiting_per_client: usize,
    /// Serve a shorter context than the model's (`None`: the model's own).
    pub max_model_len: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_running: 64,
            step_tokens: 512,
            kv_tokens: 65_536,
            max_waiting: 256,
            max_waiting_per_client: 128,
            max_model_len: None,
        }
    }
}

/// Live numbers for monitoring (read without locking).
#[derive(Debug, Default)]
pub struct EngineStats {
    pub waiting: AtomicUsize,
    pub running: AtomicUsize,
    pub kv_reserved: AtomicUsize,
    pub kv_capacity: AtomicUsize,
    /// Sequences dropped because their client went away.
    pub cancelled: AtomicU64,
    pub steps: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
}

/// A cheap, cloneable handle to submit requests to the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

/// The engine thread; dropping it does not stop it, [`Engine::shutdown`] does.
pub struct Engine {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    config: EngineConfig,
    stats: EngineStats,
    n_vocab: usize,
    context_length: usize,
    /// Set when the server stops accepting work.
    draining: AtomicBool,
    /// Set to end every sequence now (`Failed`) and stop the thread.
    abort: AtomicBool,
    /// Average seconds a sequence runs, for `Retry-After` estimates (f64 bits).
    mean_run_secs: AtomicU64,
}

struct Waiting {
    request: Request,
    sink: Sink,
}

/// Where a sequence's results go.
pub(super) enum Sink {
    /// A generation request: sampled tokens stream out as events.
    Events(UnboundedSender<Event>),
    /// A plugin's model session ([`super::session`]): nothing is sampled; after each append
    /// the logits of the last position go back to the session handle, with the appended
    /// tokens' log-probabilities for a scored append.
    Session {
        id: u64,
        replies: UnboundedSender<SessionReply>,
    },
}

/// The answer to one session append, or why it failed.
pub(super) type SessionReply = Result<SessionStep, String>;

/// What one session append produced.
#[derive(Debug)]
pub struct SessionStep {
    /// Logits of the last position.
    pub logits: Vec<f32>,
    /// For a scored append, the log-probability of each appended token but the first (whose
    /// prediction came from the previous append's logits), given all tokens before it.
    pub logprobs: Vec<f32>,
}

impl Sink {
    /// Nobody listens any more (a dropped receiver or session handle).
    fn is_closed(&self) -> bool {
        match self {
            Sink::Events(events) => events.is_closed(),
            Sink::Session { replies, .. } => replies.is_closed(),
        }
    }

    /// Tells the listener the sequence failed (a listener already gone needs no telling).
    fn fail(&self, why: &str) {
        match self {
            Sink::Events(events) => drop(events.send(Event::Failed(why.to_owned()))),
            Sink::Session { replies, .. } => drop(replies.send(Err(why.to_owned()))),
        }
    }
}

/// Tokens for a running session, queued by its handle.
pub(super) struct Append {
    pub(super) session: u64,
    pub(super) tokens: Vec<u32>,
    /// Return the appended tokens' log-probabilities too (teacher forcing).
    pub(super) score: bool,
}

/// Requests waiting for admission, per client, with each client's virtual token counter.
#[derive(Default)]
struct Queue {
    clients: HashMap<String, ClientQueue>,
    len: usize,
    /// Appends to running sessions, applied by the engine thread before its next step.
    appends: Vec<Append>,
}

#[derive(Default)]
struct ClientQueue {
    waiting: VecDeque<Waiting>,
    /// Tokens (prompt + max_tokens) admitted for this client while it had work waiting.
    served: u64,
}

impl Queue {
    /// The waiting client to admit next: interactive work first, then the client served
    /// least so far (ties: by name, for determinism). Background work is considered only
    /// when `background` allows it.
    fn next_client(&self, background: bool) -> Option<&str> {
        self.clients
            .iter()
            .filter_map(|(name, c)| Some((name, c, c.waiting.front()?.request.priority)))
            .filter(|&(_, _, priority)| background || priority == Priority::Interactive)
            .min_by(|a, b| (a.2, a.1.served, a.0).cmp(&(b.2, b.1.served, b.0)))
            .map(|(name, _, _)| name.as_str())
    }

    fn push(&mut self, w: Waiting) {
        // A client arriving after idling starts level with the least-served waiting client
        // instead of spending credit banked while it was away.
        let floor = self
            .clients
            .values()
            .filter(|c| !c.waiting.is_empty())
            .map(|c| c.served)
            .min()
            .unwrap_or(0);
        let client = self.clients.entry(w.request.client.clone()).or_default();
        if client.waiting.is_empty() {
            client.served = client.served.max(floor);
        }
        client.waiting.push_back(w);
        self.len += 1;
    }

    fn pop(&mut self, name: &str) -> Option<Waiting> {
        let client = self.clients.get_mut(name)?;
        let w = client.waiting.pop_front()?;
        client.served += (w.request.prompt.len() + w.request.max_tokens) as u64;
        self.len -= 1;
        if client.waiting.is_empty() {
            // Idle clients are forgotten; `push` lifts a returning one to the floor anyway.
            self.clients.remove(name);
        }
        Some(w)
    }

    fn peek(&self, name: &str) -> Option<&Waiting> {
        self.clients.get(name)?.waiting.front()
    }

    fn drain(&mut self) -> impl Iterator<Item = Waiting> + '_ {
        self.len = 0;
        self.clients.drain().flat_map(|(_, c)| c.waiting)
    }
}

/// A running sequence.
struct Sequence {
    request: Request,
    sink: Sink,
    cache: KvCache,
    /// Prompt then generated tokens.
    tokens: Vec<u32>,
    /// Tokens already in the cache.
    fed: usize,
    generated: usize,
    sampler: Sampler,
    reserved: usize,
    started: Instant,
    /// A scored session append: tokens from this index on get their log-probability
    /// (`usize::MAX`: none).
    score_from: usize,
    logprobs: Vec<f32>,
}

impl Sequence {
    /// Tokens to feed before the next sample.
    fn pending(&self) -> usize {
        self.tokens.len() - self.fed
    }

    /// The draw for its next token, when the device may sample it: a plain sampled request
    /// (no logit bias, log-probabilities or penalties).
    fn device_draw(&self) -> Option<Draw> {
        let r = &self.request;
        let plain = matches!(self.sink, Sink::Events(_))
            && r.logit_bias.is_empty()
            && r.top_logprobs.is_none()
            && !self.sampler.params().has_penalties();
        plain.then(|| Draw {
            params: *self.sampler.params(),
            step: self.sampler.next_step(),
        })
    }

    fn decoding(&self) -> bool {
        self.fed >= self.request.prompt.len()
    }

    /// Whether feeding the next `take` tokens predicts a token being scored: position `p`'s
    /// logits predict token `p + 1`.
    fn scores_next(&self, take: usize) -> bool {
        take > 0 && self.fed + take >= self.score_from && self.score_from < self.tokens.len()
    }
}

impl Engine {
    /// Starts the engine thread for `model`.
    pub fn start(model: Arc<Llama>, config: EngineConfig) -> Engine {
        // On a GPU the cache is a fixed pool of pages: never admit more than it surely holds.
        let kv_tokens = model
            .device_kv_budget(config.max_running)
            .map_or(config.kv_tokens, |budget| config.kv_tokens.min(budget));
        let config = EngineConfig {
            step_tokens: config.step_tokens.max(config.max_running),
            kv_tokens,
            ..config
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: EngineStats::default(),
            n_vocab: model.config().n_vocab,
            context_length: config
                .max_model_len
                .map_or(model.config().context_length, |m| {
                    m.min(model.config().context_length)
                }),
            draining: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            mean_run_secs: AtomicU64::new(1f64.to_bits()),
            config,
        });
        shared
            .stats
            .kv_capacity
            .store(shared.config.kv_tokens, Ordering::Relaxed);
        let worker = Worker {
            pool: KvPool::new(shared.config.kv_tokens),
            shared: Arc::clone(&shared),
            model,
            running: Vec::new(),
            scratch: Scratch::default(),
            row: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("textnlp-engine".into())
            .spawn(move || worker.run())
            .expect("spawning the engine thread");
        Engine {
            handle: EngineHandle { shared },
            thread: Some(thread),
        }
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Stops accepting requests, lets running and waiting ones finish for up to `grace`, then
    /// fails whatever is left and joins the thread.
    pub fn shutdown(mut self, grace: Duration) {
        self.handle.drain();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.handle.is_idle() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.handle.abort();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl EngineHandle {
    /// Queues a request; its events arrive on the returned receiver. Dropping the receiver
    /// cancels the sequence at the next step.
    pub fn submit(&self, request: Request) -> Result<UnboundedReceiver<Event>, SubmitError> {
        self.check(&request)?;
        if request.max_tokens == 0 {
            return Err(SubmitError::NoTokens);
        }
        let (events, receiver) = unbounded_channel();
        self.enqueue(request, Sink::Events(events))?;
        Ok(receiver)
    }

    /// Queues a request whose results go to `sink`, within the queue bounds.
    pub(super) fn enqueue(&self, request: Request, sink: Sink) -> Result<(), SubmitError> {
        let s = &self.shared;
        let mut queue = s.lock_queue();
        let waiting = queue.len;
        if waiting >= s.config.max_waiting {
            return Err(SubmitError::QueueFull {
                waiting,
                retry_after: self.retry_after(waiting),
            });
        }
        let mine = queue
            .clients
            .get(&request.client)
            .map_or(0, |c| c.waiting.len());
        if mine >= s.config.max_waiting_per_client {
            return Err(SubmitError::ClientQueueFull {
                waiting: mine,
                retry_after: self.retry_after(waiting),
            });
        }
        queue.push(Waiting { request, sink });
        s.stats.waiting.store(queue.len, Ordering::Relaxed);
        drop(queue);
        s.wake.notify_one();
        Ok(())
    }

    /// Queues tokens for a running session; the engine feeds them at its next step.
    pub(super) fn append(&self, append: Append) {
        self.shared.lock_queue().appends.push(append);
        self.shared.wake.notify_one();
    }

    /// Wakes the engine thread (a session closed: its KV can be freed).
    pub(super) fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// The vocabulary size of the engine's model.
    pub fn n_vocab(&self) -> usize {
        self.shared.n_vocab
    }

    pub(super) fn check(&self, r: &Request) -> Result<(), SubmitError> {
        let s = &self.shared;
        if s.draining.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        if r.prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        let n_vocab = s.n_vocab;
        let bad_id = r
            .prompt
            .iter()
            .chain(r.logit_bias.iter().map(|(id, _)| id))
            .find(|&&id| id as usize >= n_vocab);
        if let Some(&id) = bad_id {
            return Err(SubmitError::TokenOutOfRange { id, n_vocab });
        }
        let needed = r.prompt.len() + r.max_tokens;
        if needed > s.context_length {
            return Err(SubmitError::ContextOverflow {
                needed,
                context_length: s.context_length,
            });
        }
        if needed > s.config.kv_tokens {
            return Err(SubmitError::TooLarge {
                needed,
                capacity: s.config.kv_tokens,
            });
        }
        Ok(())
    }

    /// About how long until a slot frees up: one average sequence lifetime per full batch
    /// ahead in the queue.
    fn retry_after(&self, waiting: usize) -> Duration {
        let s = &self.shared;
        let mean = f64::from_bits(s.mean_run_secs.load(Ordering::Relaxed));
        let batches = (waiting / s.config.max_running.max(1) + 1) as f64;
        Duration::from_secs_f64((mean * batches).clamp(1.0, 60.0).ceil())
    }

    pub fn stats(&self) -> &EngineStats {
        &self.shared.stats
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    pub fn context_length(&self) -> usize {
        self.shared.context_length
    }

    /// Stops accepting requests; queued and running ones go on.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
    }

    /// Ends every queued and running sequence now (they get `Failed`) and stops the thread.
    pub fn abort(&self) {
        self.drain();
        self.shared.abort.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
    }

    /// Whether the engine stopped accepting requests.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::SeqCst)
    }

    /// Nothing waiting and nothing running.
    pub fn is_idle(&self) -> bool {
        let stats = &self.shared.stats;
        stats.waiting.load(Ordering::SeqCst) == 0 && stats.running.load(Ordering::SeqCst) == 0
    }
}

impl Shared {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // The queue holds no invariant a panic could break halfway.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Samples `seq`'s next token from its `logits` (copied into `row`, which the sampler may
/// modify) and emits it. `Some(Some(reason))`: it finished; `Some(None)`: its client went away.
fn sample(
    seq: &mut Sequence,
    logits: &[f32],
    row: &mut Vec<f32>,
    stats: &EngineStats,
) -> Option<Option<FinishReason>> {
    row.clear();
    row.extend_from_slice(logits);
    for &(id, bias) in &seq.request.logit_bias {
        row[id as usize] += bias;
    }
    // The sampler applies penalties in place; log-probabilities are of the unpenalised
    // distribution, so they are taken first (only when asked for).
    let top = seq.request.top_logprobs;
    let unpenalised = top.map(|k| (k, row.clone()));
    let id = seq.sampler.sample(row, &seq.tokens);
    let logprob = unpenalised.map(|(k, l)| token_logprob(&l, id, k));
    emit(seq, id, logprob, stats)
}

/// Appends `id` to `seq` and sends it to the client (unless it is a stop token); the same
/// answer as [`sample`].
fn emit(
    seq: &mut Sequence,
    id: u32,
    logprob: Option<TokenLogprob>,
    stats: &EngineStats,
) -> Option<Option<FinishReason>> {
    let Sink::Events(events) = &seq.sink else {
        return None;
    };
    if seq.request.stop_tokens.contains(&id) {
        return Some(Some(FinishReason::Stop));
    }
    seq.tokens.push(id);
    seq.generated += 1;
    stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
    if events.send(Event::Token { id, logprob }).is_err() {
        return Some(None);
    }
    (seq.generated == seq.request.max_tokens).then_some(Some(FinishReason::Length))
}

/// The state owned by the engine thread.
struct Worker {
    shared: Arc<Shared>,
    model: Arc<Llama>,
    running: Vec<Sequence>,
    pool: KvPool,
    scratch: Scratch,
    /// One sequence's logits, as the sampler modifies them.
    row: Vec<f32>,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.shared.abort.load(Ordering::SeqCst) {
                self.fail_everything("the server is shutting down");
                return;
            }
            self.retire_cancelled();
            self.admit();
            if !self.running.iter().any(|seq| seq.pending() > 0) {
                self.wait_for_work();
                continue;
            }
            self.step();
        }
    }

    /// Sleeps until a request or an append arrives (or 100 ms pass). With sessions idle in
    /// the batch, waiting requests that `admit` just left in the queue cannot be admitted
    /// either, until a session closes (which also wakes the engine).
    fn wait_for_work(&self) {
        let queue = self.shared.lock_queue();
        let stuck = queue.len == 0 || !self.running.is_empty();
        if queue.appends.is_empty() && stuck && !self.shared.abort.load(Ordering::SeqCst) {
            let _ = self
                .shared
                .wake
                .wait_timeout(queue, Duration::from_millis(100));
        }
    }

    /// Drops sequences nobody listens to any more.
    fn retire_cancelled(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].sink.is_closed() {
                let seq = self.running.swap_remove(i);
                if matches!(seq.sink, Sink::Events(_)) {
                    self.shared.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                }
                self.release(seq);
            } else {
                i += 1;
            }
        }
    }

    fn admit(&mut self) {
        let s = Arc::clone(&self.shared);
        let mut queue = s.lock_queue();
        // Background work leaves a quarter of the slots to interactive requests (it may
        // always use one).
        let background_slots = (s.config.max_running - s.config.max_running / 4).max(1);
        while self.running.len() < s.config.max_running {
            let background = self
                .running
                .iter()
                .filter(|seq| seq.request.priority == Priority::Background)
                .count();
            let Some(client) = queue
                .next_client(background < background_slots)
                .map(str::to_owned)
            else {
                break;
            };
            let w = queue.peek(&client).expect("next_client has waiting work");
            if w.sink.is_closed() {
                queue.pop(&client);
                continue;
            }
            let need = w.request.prompt.len() + w.request.max_tokens;
            // Head-of-line: when the chosen request does not fit, wait for memory rather than
            // let smaller ones overtake it forever.
            let Some(cache) = self.pool.acquire(&self.model, need) else {
                break;
            };
            let w = queue.pop(&client).expect("peeked above");
            self.running.push(Sequence {
                tokens: w.request.prompt.clone(),
                sampler: Sampler::new(w.request.sampling),
                fed: 0,
                generated: 0,
                reserved: need,
                started: Instant::now(),
                score_from: usize::MAX,
                logprobs: Vec::new(),
                cache,
                sink: w.sink,
                request: w.request,
            });
        }
        s.stats.waiting.store(queue.len, Ordering::Relaxed);
        let appends = std::mem::take(&mut queue.appends);
        drop(queue);
        for append in appends {
            self.apply(append);
        }
        self.publish();
    }

    /// Adds appended tokens to their session (gone already: the tokens are dropped, and the
    /// handle sees its reply channel closed).
    fn apply(&mut self, append: Append) {
        // (A handle appends only after the reply to its previous append, so a session has
        // nothing pending here: `score_from` below is the first appended position.)
        let session = self
            .running
            .iter_mut()
            .find(|seq| matches!(seq.sink, Sink::Session { id, .. } if id == append.session));
        let Some(seq) = session else { return };
        if seq.tokens.len() + append.tokens.len() > seq.reserved {
            // The handle checks capacity first; this only guards the reservation.
            seq.sink.fail("the session's capacity is exceeded");
            return;
        }
        seq.score_from = if append.score {
            seq.tokens.len()
        } else {
            usize::MAX
        };
        seq.logprobs.clear();
        seq.tokens.extend(append.tokens);
    }

    fn publish(&self) {
        let stats = &self.shared.stats;
        stats.running.store(self.running.len(), Ordering::Relaxed);
        stats
            .kv_reserved
            .store(self.pool.reserved(), Ordering::Relaxed);
    }

    /// One forward step over all running sequences, then sampling.
    fn step(&mut self) {
        // Single tokens (decodes, a session's one-token appends) first: each must never wait
        // behind a prompt or a long append, which take what budget is left.
        self.running.sort_by_key(|s| s.pending() > 1);
        let mut budget = self.shared.config.step_tokens;
        let mut takes = Vec::with_capacity(self.running.len());
        for seq in &self.running {
            let take = seq.pending().min(budget);
            budget -= take;
            takes.push(take);
        }
        let mut batch = Vec::with_capacity(self.running.len());
        // (sequence, logits rows it gets), in batch order.
        let mut rows = Vec::with_capacity(self.running.len());
        // A draw per sequence that samples this step, while all of them may sample on the
        // device (sequences feeding a prompt chunk want nothing back either way).
        let mut draws = self
            .model
            .samples_on_device()
            .then(|| Vec::with_capacity(self.running.len()));
        for (i, (seq, &take)) in self.running.iter_mut().zip(&takes).enumerate() {
            if take == 0 {
                continue;
            }
            let logits = if seq.scores_next(take) {
                LogitsFor::All
            } else if seq.fed + take == seq.tokens.len() {
                LogitsFor::Last
            } else {
                LogitsFor::None
            };
            if let Some(list) = &mut draws {
                match (logits, seq.device_draw()) {
                    (LogitsFor::None, _) => {}
                    (LogitsFor::Last, Some(draw)) => list.push(draw),
                    _ => draws = None,
                }
            }
            rows.push((
                i,
                match logits {
                    LogitsFor::None => 0,
                    LogitsFor::Last => 1,
                    LogitsFor::All => take,
                },
            ));
            batch.push(SequenceStep {
                cache: &mut seq.cache,
                tokens: &seq.tokens[seq.fed..seq.fed + take],
                logits,
            });
        }
        let shared = Arc::clone(&self.shared);
        let stats = &shared.stats;
        stats.steps.fetch_add(1, Ordering::Relaxed);
        let Worker {
            model,
            scratch,
            row,
            ..
        } = self;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &draws {
            Some(draws) => model.forward_sampled(&mut batch, draws, scratch).map(drop),
            None => model.forward(&mut batch, scratch).map(drop),
        }));
        drop(batch);
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return self.fail_step(&takes, &err.to_string()),
            Err(_) => return self.fail_step(&takes, "the forward step panicked"),
        }
        if let Some(draws) = &draws
            && scratch.tokens().len() != draws.len()
        {
            let why = format!(
                "the device sampled {} tokens for {} sequences",
                scratch.tokens().len(),
                draws.len()
            );
            return self.fail_step(&takes, &why);
        }
        let n_vocab = model.config().n_vocab;
        let mut logits = scratch.logits().chunks_exact(n_vocab);
        // Tokens the device sampled, one per sequence in batch order.
        let mut sampled = draws.is_some().then(|| scratch.tokens().iter());
        let mut finished = Vec::new();
        for (i, n_rows) in rows {
            let seq = &mut self.running[i];
            let take = takes[i];
            if !seq.decoding() {
                // Before the prompt is done, everything pending is prompt.
                stats
                    .prompt_tokens
                    .fetch_add(take as u64, Ordering::Relaxed);
            }
            let first = seq.fed;
            seq.fed += take;
            if let Some(tokens) = &mut sampled {
                if n_rows == 0 {
                    continue; // fed a prompt chunk; samples in a later step
                }
                let id = *tokens
                    .next()
                    .expect("checked: one token per sampling sequence");
                seq.sampler.take_step();
                if let Some(end) = emit(seq, id, None, stats) {
                    finished.push((i, end));
                }
                continue;
            }
            let mut last = None;
            for (p, row) in (first + take - n_rows..).zip(logits.by_ref().take(n_rows)) {
                if p + 1 >= seq.score_from && p + 1 < seq.tokens.len() {
                    let logprob = token_logprob(row, seq.tokens[p + 1], 0).logprob;
                    seq.logprobs.push(logprob);
                }
                last = Some(row);
            }
            let Some(last) = last.filter(|_| seq.pending() == 0) else {
                continue;
            };
            let end = match &seq.sink {
                Sink::Events(_) => sample(seq, last, row, stats),
                // A session waits for its next append; a closed one is retired next step.
                Sink::Session { replies, .. } => {
                    let _ = replies.send(Ok(SessionStep {
                        logits: last.to_vec(),
                        logprobs: std::mem::take(&mut seq.logprobs),
                    }));
                    seq.score_from = usize::MAX;
                    None
                }
            };
            if let Some(end) = end {
                finished.push((i, end));
            }
        }
        // Highest index first, so swap_remove does not move a later entry.
        finished.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
        for (i, end) in finished {
            let seq = self.running.swap_remove(i);
            if let (Some(reason), Sink::Events(events)) = (end, &seq.sink) {
                let _ = events.send(Event::Finished(reason));
            } else {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            self.release(seq);
        }
        self.publish();
    }

    /// Fails the sequences that took part in a failed step; the others go on.
    fn fail_step(&mut self, takes: &[usize], why: &str) {
        tracing::error!("forward step failed: {why}");
        let mut i = self.running.len();
        while i > 0 {
            i -= 1;
            if takes[i] > 0 {
                let seq = self.running.swap_remove(i);
                seq.sink.fail(why);
                self.release(seq);
            }
        }
        self.publish();
    }

    fn fail_everything(&mut self, why: &str) {
        for seq in std::mem::take(&mut self.running) {
            seq.sink.fail(why);
            self.release(seq);
        }
        let mut queue = self.shared.lock_queue();
        for w in queue.drain() {
            w.sink.fail(why);
        }
        self.shared.stats.waiting.store(0, Ordering::Relaxed);
        drop(queue);
        self.publish();
    }

    fn release(&mut self, seq: Sequence) {
        let secs = seq.started.elapsed().as_secs_f64();
        let mean = &self.shared.mean_run_secs;
        let old = f64::from_bits(mean.load(Ordering::Relaxed));
        mean.store((0.9 * old + 0.1 * secs).to_bits(), Ordering::Relaxed);
        self.pool.release(seq.cache, seq.reserved);
    }
}
