//! Step-by-step sequences for plugins (the WIT `model.session` resource): the caller appends
//! tokens, the engine feeds them in its batched steps, and the caller gets the logits of the
//! last position back. Sampling is the caller's business.
//!
//! A session is admitted like a request, on its first append, with its whole capacity
//! reserved in the KV pool; it then sits in the batch, costing nothing while idle, until its
//! handle is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::request::{Priority, Request, SubmitError};
pub use super::scheduler::SessionStep;
use super::scheduler::{Append, EngineHandle, SessionReply, Sink};

/// Why a session operation failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SessionError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error("the session holds {held} tokens; {adding} more exceed its capacity of {capacity}")]
    CapacityExceeded {
        held: usize,
        adding: usize,
        capacity: usize,
    },
    #[error("nothing to append")]
    Empty,
    #[error("the session holds no token yet: the first token has nothing to be predicted from")]
    NoContext,
    #[error("the deadline passed while the engine was working")]
    Deadline,
    #[error("the session ended: {0}")]
    Ended(String),
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// One open session. Dropping it frees its KV reservation at the engine's next step.
pub struct SessionHandle {
    engine: EngineHandle,
    client: String,
    id: u64,
    capacity: usize,
    priority: Priority,
    held: usize,
    replies: Option<UnboundedReceiver<SessionReply>>,
    /// Why the session is over, once it is (its KV cache is gone or in an unknown state).
    ended: Option<String>,
}

impl EngineHandle {
    /// A session of up to `capacity` tokens, charged to `client` and admitted at `priority`.
    /// Nothing is reserved until the first append.
    pub fn open_session(
        &self,
        client: &str,
        capacity: usize,
        priority: Priority,
    ) -> Result<SessionHandle, SubmitError> {
        // Capacity checks as for a request of that size (one prompt token, the rest to come).
        self.check(&Request {
            client: client.to_owned(),
            prompt: vec![0],
            max_tokens: capacity.saturating_sub(1),
            sampling: Default::default(),
            stop_tokens: Vec::new(),
            logit_bias: Vec::new(),
            top_logprobs: None,
            priority,
        })?;
        Ok(SessionHandle {
            engine: self.clone(),
            client: client.to_owned(),
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            capacity,
            priority,
            held: 0,
            replies: None,
            ended: None,
        })
    }
}

impl SessionHandle {
    /// Tokens held so far.
    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Feeds `tokens` through the model and returns the logits of the last one. Blocks the
    /// calling thread (never call it on an async runtime's worker) until then or `deadline`.
    pub fn append(&mut self, tokens: &[u32], deadline: Instant) -> Result<Vec<f32>, SessionError> {
        self.feed(tokens, false, deadline).map(|step| step.logits)
    }

    /// Like [`append`](Self::append), and also returns the log-probability of each appended
    /// token but the first given the tokens before it (the first one's prediction is in the
    /// logits the previous append returned). The session must hold a token already.
    pub fn score(
        &mut self,
        tokens: &[u32],
        deadline: Instant,
    ) -> Result<SessionStep, SessionError> {
        if self.held == 0 {
            return Err(SessionError::NoContext);
        }
        self.feed(tokens, true, deadline)
    }

    fn feed(
        &mut self,
        tokens: &[u32],
        score: bool,
        deadline: Instant,
    ) -> Result<SessionStep, SessionError> {
        if let Some(why) = &self.ended {
            return Err(SessionError::Ended(why.clone()));
        }
        if tokens.is_empty() {
            return Err(SessionError::Empty);
        }
        if self.held + tokens.len() > self.capacity {
            return Err(SessionError::CapacityExceeded {
                held: self.held,
                adding: tokens.len(),
                capacity: self.capacity,
            });
        }
        let n_vocab = self.engine.n_vocab();
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= n_vocab) {
            return Err(SubmitError::TokenOutOfRange { id, n_vocab }.into());
        }
        match &self.replies {
            None => self.start(tokens)?,
            Some(_) => self.engine.append(Append {
                session: self.id,
                tokens: tokens.to_vec(),
                score,
            }),
        }
        let replies = self.replies.as_mut().expect("started above");
        match recv_until(replies, deadline) {
            Some(Some(Ok(step))) => {
                self.held += tokens.len();
                Ok(step)
            }
            Some(Some(Err(why))) => Err(self.end(why)),
            Some(None) => Err(self.end("the engine dropped it".into())),
            None => Err(self.end_with(SessionError::Deadline)),
        }
    }

    /// Admits the session with `tokens` as its first tokens and the rest of its capacity
    /// reserved.
    fn start(&mut self, tokens: &[u32]) -> Result<(), SessionError> {
        let (replies, receiver) = unbounded_channel();
        let request = Request {
            client: self.client.clone(),
            prompt: tokens.to_vec(),
            max_tokens: self.capacity - tokens.len(),
            sampling: Default::default(),
            stop_tokens: Vec::new(),
            logit_bias: Vec::new(),
            top_logprobs: None,
            priority: self.priority,
        };
        self.engine.check(&request)?;
        let sink = Sink::Session {
            id: self.id,
            replies,
        };
        self.engine.enqueue(request, sink)?;
        self.replies = Some(receiver);
        Ok(())
    }

    /// After a failure the session is over: its KV cache is gone or in an unknown state.
    fn end(&mut self, why: String) -> SessionError {
        self.end_with(SessionError::Ended(why))
    }

    fn end_with(&mut self, error: SessionError) -> SessionError {
        self.ended = Some(error.to_string());
        self.close();
        error
    }

    /// Closes the reply channel, which the engine takes as the end of the session, and wakes
    /// the engine so the KV reservation is freed now.
    fn close(&mut self) {
        if let Some(mut replies) = self.replies.take() {
            replies.close();
            self.engine.wake();
        }
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.close();
    }
}

/// Receives from `rx` on a plain thread, giving up at `deadline`: `None` on timeout,
/// `Some(None)` once the sender is gone.
pub(crate) fn recv_until<T>(rx: &mut UnboundedReceiver<T>, deadline: Instant) -> Option<Option<T>> {
    let signal = Arc::new(Signal::default());
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = rx.poll_recv(&mut cx) {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        signal.wait(deadline - now);
    }
}

/// Wakes a thread blocked in [`recv_until`].
#[derive(Default)]
struct Signal {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Signal {
    fn wait(&self, timeout: std::time::Duration) {
        let woken = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        let (mut woken, _) = self
            .cond
            .wait_timeout_while(woken, timeout, |woken| !*woken)
            .unwrap_or_else(|p| p.into_inner());
        *woken = false;
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        *self.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_one();
    }
}
