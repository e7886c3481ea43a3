//! A `vllm bench serve`-style load generator for an OpenAI-compatible streaming server.
//!
//! ```sh
//! cargo run --release -p textnlp-tests --example load_test -- \
//!     --url http://127.0.0.1:8080 --concurrency 64 --requests 256 --max-tokens 128
//! ```
//!
//! `--concurrency` client tasks each send streaming requests back to back until `--requests`
//! have been sent or `--duration` seconds have passed (requests in flight then still finish).
//! Every request streams (`"stream": true, "stream_options": {"include_usage": true}`); the SSE
//! stream is parsed as bytes arrive, timing the first content-bearing chunk (TTFT), the gaps
//! between content-bearing chunks (ITL) and the whole request (E2E). Output tokens come from the
//! final usage chunk (`completion_tokens`), else from the number of content-bearing chunks.
//!
//! The summary table follows `vllm bench serve`; `--json FILE` writes the same numbers.
//! 429 responses are counted apart from failures. The exit status is 0 when at least one
//! request succeeded and none failed (429s are not failures), 1 otherwise, 2 on bad options.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Map, Value, json};

/// How many failures have their error text printed (and written to the JSON file).
const ERRORS_SHOWN: usize = 5;
/// Longest error text kept per failure, in characters.
const ERROR_TEXT_CHARS: usize = 500;
/// Most bytes read from the body of a non-200 response.
const ERROR_BODY_BYTES: usize = 64 * 1024;
/// Longest SSE line accepted; a server that sends more without a newline is broken.
const MAX_SSE_LINE: usize = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Endpoint {
    /// POST /v1/chat/completions with `messages: [{role: user, content: PROMPT}]`.
    Chat,
    /// POST /v1/completions with `prompt: PROMPT`.
    Completions,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
        }
    }
}

/// Load generator for an OpenAI-compatible streaming server (like `vllm bench serve`).
#[derive(Parser, Debug)]
#[command(name = "load_test")]
struct Args {
    /// Base URL of the server; the endpoint path is appended.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Which API to call.
    #[arg(long, value_enum, default_value_t = Endpoint::Chat)]
    endpoint: Endpoint,
    /// Client tasks, each sending requests back to back.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Total requests to send.
    #[arg(long, default_value_t = 256)]
    requests: usize,
    /// Stop issuing new requests after this many seconds (requests in flight finish).
    #[arg(long, default_value_t = 120.0)]
    duration: f64,
    /// `max_tokens` of every request.
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// Approximate prompt length in words.
    #[arg(long, default_value_t = 32)]
    prompt_len: usize,
    /// Seed of the prompt generator (request i always gets the same prompt for a given seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `temperature` of every request.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Send `ignore_eos: true` (a textnlp/vLLM extension) so every request generates exactly
    /// --max-tokens tokens, as `textnlp bench` and llama-batched-bench do.
    #[arg(long)]
    ignore_eos: bool,
    /// Sent as `Authorization: Bearer KEY`.
    #[arg(long)]
    api_key: Option<String>,
    /// `model` of every request.
    #[arg(long, default_value = "default")]
    model: String,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Give up on a request (counted as failed) after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    timeout: f64,
}

// ---------------------------------------------------------------------------------------------
// Prompts

/// Common English words; prompts are drawn from these so they tokenize to roughly one token each.
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at",
    "from", "his", "her", "an", "it", "are", "were", "which", "this", "be", "or", "has", "had",
    "not", "first", "one", "their", "its", "new", "after", "who", "they", "have", "two", "also",
    "been", "other", "year", "time", "city", "world", "school", "state", "river", "house", "water",
    "light", "music", "story", "bread", "green", "small", "great", "old", "long", "high", "little",
    "people", "family", "garden", "morning", "night", "forest", "mountain", "village", "market",
    "window", "letter", "summer", "winter", "friend", "teacher", "doctor", "farmer", "king",
    "queen", "ship", "train", "road", "bridge", "castle", "church", "field", "stone", "fire",
    "wind", "rain", "snow", "sun", "moon", "star", "bird", "horse", "dog", "cat", "fish", "tree",
    "flower", "book", "song", "game", "war", "peace", "art", "science", "history", "language",
    "number", "question", "answer", "reason", "idea", "power", "money", "table", "door", "paper",
    "color", "voice", "heart", "mind", "hand", "eye", "face", "head", "word", "place", "day",
];

/// SplitMix64: a tiny, well-mixed deterministic generator.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The prompt of request `index`: `words` words from [`WORDS`], determined by `(seed, index)`.
///
/// The first `digits` words are a bijection of `index` (its base-`WORDS.len()` digits, each
/// shifted by a seed-dependent offset), so requests `0..WORDS.len()^digits` get distinct prompts
/// whenever `words >= digits`; the remaining words are pseudo-random.
fn make_prompt(seed: u64, index: u64, digits: usize, words: usize) -> String {
    let n = WORDS.len() as u64;
    let mut seed_state = seed;
    let mut mixed = index;
    let mut state = seed ^ splitmix64(&mut mixed);
    let mut rest = index;
    let mut out = String::with_capacity(words * 7);
    for position in 0..words.max(1) {
        let word = if position < digits {
            let digit = rest % n;
            rest /= n;
            (digit + splitmix64(&mut seed_state) % n) % n
        } else {
            splitmix64(&mut state) % n
        };
        if position > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[word as usize]);
    }
    out
}

/// How many base-`WORDS.len()` digits distinguish `count` request indices.
fn index_digits(count: usize) -> usize {
    let n = WORDS.len();
    let mut digits = 1;
    let mut covered = n;
    while covered < count {
        covered = covered.saturating_mul(n);
        digits += 1;
    }
    digits
}

fn request_body(args: &Args, index: u64, prompt: &str) -> Value {
    let mut body = json!({
        "model": args.model,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "seed": index,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let fields = body.as_object_mut().expect("a JSON object literal");
    if args.ignore_eos {
        fields.insert("ignore_eos".into(), json!(true));
    }
    match args.endpoint {
        Endpoint::Chat => {
            fields.insert(
                "messages".into(),
                json!([{"role": "user", "content": prompt}]),
            );
        }
        Endpoint::Completions => {
            fields.insert("prompt".into(), json!(prompt));
        }
    }
    body
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

/// Incremental parser of a `text/event-stream`: feed it bytes as they arrive, get back the
/// `data` payload of each complete event. Lines end with `\n` or `\r\n`; a blank line ends an
/// event; several `data:` lines in one event are joined with `\n`; comments (`:...`) and other
/// fields (`event:`, `id:`, `retry:`) are ignored. Works on bytes, so a UTF-8 character split
/// across two network chunks is reassembled before anyone decodes it.
#[derive(Default)]
struct SseParser {
    /// Bytes not yet ending in a newline.
    pending: Vec<u8>,
    /// The `data` of the event being read, if it has any `data:` line yet.
    data: Option<Vec<u8>>,
}

impl SseParser {
    /// Consumes `bytes`, returning the payloads of the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                self.line(&rest[..newline], &mut events);
            } else {
                self.pending.extend_from_slice(&rest[..newline]);
                let line = std::mem::take(&mut self.pending);
                self.line(&line, &mut events);
            }
            rest = &rest[newline + 1..];
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() > MAX_SSE_LINE {
            return Err(format!(
                "SSE line longer than {MAX_SSE_LINE} bytes without a newline"
            ));
        }
        Ok(events)
    }

    /// Ends the stream: a last line without a newline and an event without its blank line
    /// are still delivered.
    fn finish(&mut self) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line, &mut events);
        }
        if let Some(data) = self.data.take() {
            events.push(data);
        }
        events
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<Vec<u8>>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(data);
            }
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            match &mut self.data {
                Some(data) => {
                    data.push(b'\n');
                    data.extend_from_slice(value);
                }
                None => self.data = Some(value.to_vec()),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One request

/// Timings and counts of one successful request.
#[derive(Debug, Clone, PartialEq)]
struct Success {
    ttft: f64,
    itl: Vec<f64>,
    e2e: f64,
    output_tokens: u64,
    prompt_tokens: Option<u64>,
}

#[derive(Debug)]
enum Outcome {
    Success(Success),
    RateLimited {
        retry_after: Option<String>,
    },
    Failed {
        /// HTTP status, if a response arrived.
        status: Option<u16>,
        error: String,
    },
    /// No complete response within `--timeout`.
    TimedOut,
}

/// What the stream of one request has shown so far.
struct StreamState {
    endpoint: Endpoint,
    start: Instant,
    ttft: Option<f64>,
    last_content: Option<Instant>,
    itl: Vec<f64>,
    content_chunks: u64,
    completion_tokens: Option<u64>,
    prompt_tokens: Option<u64>,
    done: Option<Instant>,
    /// Events seen, and the first bytes of the body (shown when it held no event at all).
    events: u64,
    head: Vec<u8>,
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= ERROR_TEXT_CHARS {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(ERROR_TEXT_CHARS).collect();
        short.push_str("...");
        short
    }
}

impl StreamState {
    fn new(endpoint: Endpoint, start: Instant) -> Self {
        StreamState {
            endpoint,
            start,
            ttft: None,
            last_content: None,
            itl: Vec::new(),
            content_chunks: 0,
            completion_tokens: None,
            prompt_tokens: None,
            done: None,
            events: 0,
            head: Vec::new(),
        }
    }

    /// Takes one event's payload, received at `now`. Errors describe a malformed chunk or an
    /// error the server reported inside the stream.
    fn event(&mut self, data: &[u8], now: Instant) -> Result<(), String> {
        self.events += 1;
        if self.done.is_some() {
            return Ok(());
        }
        if data.trim_ascii() == b"[DONE]" {
            self.done = Some(now);
            return Ok(());
        }
        let text = || shorten(&String::from_utf8_lossy(data));
        let chunk: Value = serde_json::from_slice(data)
            .map_err(|e| format!("malformed chunk ({e}): {}", text()))?;
        let Some(chunk) = chunk.as_object() else {
            return Err(format!("malformed chunk (not a JSON object): {}", text()));
        };
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(format!("error in stream: {}", text()));
        }
        match chunk.get("choices") {
            None | Some(Value::Null) => {}
            Some(Value::Array(choices)) => {
                if let Some(first) = choices.first() {
                    let content = match self.endpoint {
                        Endpoint::Chat => first.get("delta").and_then(|d| d.get("content")),
                        Endpoint::Completions => first.get("text"),
                    };
                    match content {
                        None | Some(Value::Null) => {}
                        Some(Value::String(s)) => {
                            if !s.is_empty() {
                                self.content(now);
                            }
                        }
                        Some(_) => {
                            return Err(format!(
                                "malformed chunk (content is not a string): {}",
                                text()
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(format!(
                    "malformed chunk (choices is not an array): {}",
                    text()
                ));
            }
        }
        if let Some(usage) = chunk.get("usage").and_then(Value::as_object) {
            self.usage(usage);
        }
        Ok(())
    }

    /// Keeps the first bytes of the body, for the error message of a body without events.
    fn keep_head(&mut self, bytes: &[u8]) {
        let room = ERROR_TEXT_CHARS.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    fn content(&mut self, now: Instant) {
        match self.last_content {
            None => self.ttft = Some((now - self.start).as_secs_f64()),
            Some(last) => self.itl.push((now - last).as_secs_f64()),
        }
        self.last_content = Some(now);
        self.content_chunks += 1;
    }

    fn usage(&mut self, usage: &Map<String, Value>) {
        if let Some(n) = usage.get("completion_tokens").and_then(Value::as_u64) {
            self.completion_tokens = Some(n);
        }
        if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_u64) {
            self.prompt_tokens = Some(n);
        }
    }

    /// The stream has ended; a request succeeds when `[DONE]` arrived after some content.
    fn finish(self) -> Outcome {
        let failed = |error: &str| Outcome::Failed {
            status: Some(200),
            error: error.to_string(),
        };
        let Some(done) = self.done else {
            if self.events == 0 {
                let head = shorten(&String::from_utf8_lossy(&self.head));
                return failed(&format!(
                    "stream ended without any SSE event; the body began: {head}"
                ));
            }
            return failed("stream ended without `data: [DONE]`");
        };
        let Some(ttft) = self.ttft else {
            return failed("stream had no chunk with content");
        };
        Outcome::Success(Success {
            ttft,
            itl: self.itl,
            e2e: (done - self.start).as_secs_f64(),
            output_tokens: self.completion_tokens.unwrap_or(self.content_chunks),
            prompt_tokens: self.prompt_tokens,
        })
    }
}

/// An error with its causes, `outer: inner: ...` (reqwest's own message omits them).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads at most [`ERROR_BODY_BYTES`] of a response body as text.
async fn read_capped(response: &mut reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            Ok(None) => break,
            Err(e) => {
                body.extend_from_slice(
                    format!(" [error reading body: {}]", error_chain(&e)).as_bytes(),
                );
                break;
            }
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

async fn send_one(
    client: &reqwest::Client,
    url: &str,
    api_key: Option<&str>,
    endpoint: Endpoint,
    body: &Value,
) -> Outcome {
    let start = Instant::now();
    let mut request = client.post(url).json(body);
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            return Outcome::Failed {
                status: None,
                error: format!("request failed: {}", error_chain(&e)),
            };
        }
    };
    let status = response.status().as_u16();
    if status == 429 {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        // Read the body so that the connection can be reused.
        read_capped(&mut response).await;
        return Outcome::RateLimited { retry_after };
    }
    if status != 200 {
        let body = read_capped(&mut response).await;
        return Outcome::Failed {
            status: Some(status),
            error: format!("HTTP {status}: {}", shorten(&body)),
        };
    }

    let mut parser = SseParser::default();
    let mut state = StreamState::new(endpoint, start);
    loop {
        let chunk = match response.chunk().await {
            Ok(chunk) => chunk,
            Err(e) => {
                return Outcome::Failed {
                    status: Some(200),
                    error: format!("error reading stream: {}", error_chain(&e)),
                };
            }
        };
        let now = Instant::now();
        let ended = chunk.is_none();
        let events = match chunk {
            Some(bytes) => {
                state.keep_head(&bytes);
                match parser.push(&bytes) {
                    Ok(events) => events,
                    Err(error) => {
                        return Outcome::Failed {
                            status: Some(200),
                            error,
                        };
                    }
                }
            }
            None => parser.finish(),
        };
        for data in &events {
            if let Err(error) = state.event(data, now) {
                return Outcome::Failed {
                    status: Some(200),
                    error,
                };
            }
        }
        if state.done.is_some() {
            // Read what the server still sends (normally nothing) so that the connection can
            // be reused; the request's latency was taken at `[DONE]`.
            while let Ok(Some(_)) = response.chunk().await {}
            return state.finish();
        }
        if ended {
            return state.finish();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics and report

/// The nearest-rank `p`-th percentile (0..=100) of ascending `sorted`; `None` when empty.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Mean, median, p90 and p99 of a set of durations, in milliseconds.
struct Summary {
    mean: Option<f64>,
    median: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
}

impl Summary {
    fn of_seconds(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let ms = |v: Option<f64>| v.map(|s| s * 1000.0);
        let mean = if values.is_empty() {
            None
        } else {
            Some(values.iter().sum::<f64>() / values.len() as f64)
        };
        Summary {
            mean: ms(mean),
            median: ms(percentile(&values, 50.0)),
            p90: ms(percentile(&values, 90.0)),
            p99: ms(percentile(&values, 99.0)),
        }
    }
}

struct Report {
    issued: usize,
    completed: usize,
    failed: usize,
    rate_limited: usize,
    /// `Retry-After` values of the 429 responses (`"none"` when absent), with counts.
    retry_after: BTreeMap<String, usize>,
    /// Responses by HTTP status (`"no response"` for requests that got none).
    statuses: BTreeMap<String, usize>,
    /// The first failures, `(request index, error)`.
    errors: Vec<(usize, String)>,
    duration: f64,
    input_tokens: u64,
    output_tokens: u64,
    /// Successful requests whose stream carried no usage (no prompt tokens known).
    missing_usage: usize,
    ttft: Summary,
    tpot: Summary,
    itl: Summary,
    e2e: Summary,
}

impl Report {
    fn new(mut outcomes: Vec<(usize, Outcome)>, duration: f64, timeout: f64) -> Self {
        outcomes.sort_by_key(|(index, _)| *index);
        let mut report = Report {
            issued: outcomes.len(),
            completed: 0,
            failed: 0,
            rate_limited: 0,
            retry_after: BTreeMap::new(),
            statuses: BTreeMap::new(),
            errors: Vec::new(),
            duration,
            input_tokens: 0,
            output_tokens: 0,
            missing_usage: 0,
            ttft: Summary::of_seconds(Vec::new()),
            tpot: Summary::of_seconds(Vec::new()),
            itl: Summary::of_seconds(Vec::new()),
            e2e: Summary::of_seconds(Vec::new()),
        };
        let (mut ttft, mut tpot, mut itl, mut e2e) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (index, outcome) in outcomes {
            let status = match &outcome {
                Outcome::Success(_) => Some(200),
                Outcome::RateLimited { .. } => Some(429),
                Outcome::Failed { status, .. } => *status,
                Outcome::TimedOut => None,
            };
            let status = match (&outcome, status) {
                (_, Some(status)) => status.to_string(),
                (Outcome::TimedOut, None) => "timeout".to_string(),
                (_, None) => "no response".to_string(),
            };
            *report.statuses.entry(status).or_default() += 1;
            match outcome {
                Outcome::Success(s) => {
                    report.completed += 1;
                    report.output_tokens += s.output_tokens;
                    match s.prompt_tokens {
                        Some(n) => report.input_tokens += n,
                        None => report.missing_usage += 1,
                    }
                    ttft.push(s.ttft);
                    if s.output_tokens > 1 {
                        tpot.push((s.e2e - s.ttft) / (s.output_tokens - 1) as f64);
                    }
                    itl.extend_from_slice(&s.itl);
                    e2e.push(s.e2e);
                }
                Outcome::RateLimited { retry_after } => {
                    report.rate_limited += 1;
                    let value = retry_after.unwrap_or_else(|| "none".to_string());
                    *report.retry_after.entry(value).or_default() += 1;
                }
                Outcome::Failed { error, .. } => {
                    report.failed += 1;
                    if report.errors.len() < ERRORS_SHOWN {
                        report.errors.push((index, error));
                    }
                }
                Outcome::TimedOut => {
                    report.failed += 1;
                    if report.errors.len() < ERRORS_SHOWN {
                        let error = format!("timed out after {} s", timeout);
                        report.errors.push((index, error));
                    }
                }
            }
        }
        report.ttft = Summary::of_seconds(ttft);
        report.tpot = Summary::of_seconds(tpot);
        report.itl = Summary::of_seconds(itl);
        report.e2e = Summary::of_seconds(e2e);
        report
    }

    fn per_second(&self, amount: f64) -> f64 {
        if self.duration > 0.0 {
            amount / self.duration
        } else {
            0.0
        }
    }

    fn request_throughput(&self) -> f64 {
        self.per_second(self.completed as f64)
    }

    fn output_throughput(&self) -> f64 {
        self.per_second(self.output_tokens as f64)
    }

    fn total_throughput(&self) -> f64 {
        self.per_second((self.input_tokens + self.output_tokens) as f64)
    }

    fn print(&self, requested: usize) {
        let line = |label: &str, value: String| println!("{label:<40} {value:<10}");
        let float = |v: f64| format!("{v:.2}");
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}"));
        println!("{:=^50}", " Serving Benchmark Result ");
        let mut rows = vec![
            ("Successful requests:", self.completed.to_string()),
            ("Failed requests:", self.failed.to_string()),
            (
                "Rate-limited requests (429):",
                self.rate_limited.to_string(),
            ),
        ];
        if self.issued < requested {
            let unsent = (requested - self.issued).to_string();
            rows.push(("Requests not sent (duration limit):", unsent));
        }
        rows.extend([
            ("Benchmark duration (s):", float(self.duration)),
            ("Total input tokens:", self.input_tokens.to_string()),
            ("Total generated tokens:", self.output_tokens.to_string()),
            (
                "Request throughput (req/s):",
                float(self.request_throughput()),
            ),
            (
                "Output token throughput (tok/s):",
                float(self.output_throughput()),
            ),
            (
                "Total token throughput (tok/s):",
                float(self.total_throughput()),
            ),
        ]);
        for (label, value) in rows {
            line(label, value);
        }
        let sections = [
            ("Time to First Token", "TTFT", &self.ttft),
            (
                "Time per Output Token (excl. 1st token)",
                "TPOT",
                &self.tpot,
            ),
            ("Inter-token Latency", "ITL", &self.itl),
            ("End-to-end Latency", "E2EL", &self.e2e),
        ];
        for (title, short, summary) in sections {
            println!("{title:-^50}");
            line(&format!("Mean {short} (ms):"), ms(summary.mean));
            line(&format!("Median {short} (ms):"), ms(summary.median));
            line(&format!("P90 {short} (ms):"), ms(summary.p90));
            line(&format!("P99 {short} (ms):"), ms(summary.p99));
        }
        println!("{}", "=".repeat(50));
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        println!("HTTP status counts: {}", statuses.join(", "));
        if !self.retry_after.is_empty() {
            let values: Vec<String> = self
                .retry_after
                .iter()
                .map(|(v, n)| format!("{v} (x{n})"))
                .collect();
            println!("429 Retry-After values: {}", values.join(", "));
        }
        if self.missing_usage > 0 {
            println!(
                "note: {} successful requests carried no usage chunk; their prompt tokens are not \
                 counted and their output tokens are content chunks",
                self.missing_usage
            );
        }
        if !self.errors.is_empty() {
            println!("First {} of {} errors:", self.errors.len(), self.failed);
            for (index, error) in &self.errors {
                println!("  request {index}: {error}");
            }
        }
    }

    fn to_json(&self, args: &Args, requested: usize) -> Value {
        let mut out = json!({
            "url": args.url,
            "endpoint": args.endpoint.name(),
            "model": args.model,
            "concurrency": args.concurrency,
            "num_prompts": requested,
            "max_tokens": args.max_tokens,
            "prompt_len_words": args.prompt_len,
            "temperature": args.temperature,
            "ignore_eos": args.ignore_eos,
            "seed": args.seed,
            "issued": self.issued,
            "completed": self.completed,
            "failed": self.failed,
            "rate_limited": self.rate_limited,
            "retry_after": self.retry_after,
            "status_counts": self.statuses,
            "errors": self.errors.iter().map(|(i, e)| json!({"request": i, "error": e})).collect::<Vec<_>>(),
            "duration": self.duration,
            "total_input_tokens": self.input_tokens,
            "total_output_tokens": self.output_tokens,
            "requests_without_usage": self.missing_usage,
            "request_throughput": self.request_throughput(),
            "output_throughput": self.output_throughput(),
            "total_token_throughput": self.total_throughput(),
        });
        let fields = out.as_object_mut().expect("a JSON object literal");
        for (name, summary) in [
            ("ttft", &self.ttft),
            ("tpot", &self.tpot),
            ("itl", &self.itl),
            ("e2el", &self.e2e),
        ] {
            fields.insert(format!("mean_{name}_ms"), json!(summary.mean));
            fields.insert(format!("median_{name}_ms"), json!(summary.median));
            fields.insert(format!("p90_{name}_ms"), json!(summary.p90));
            fields.insert(format!("p99_{name}_ms"), json!(summary.p99));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Main

fn check(args: &Args) -> Result<(), String> {
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err("--duration must be a positive number of seconds".into());
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err("--timeout must be a positive number of seconds".into());
    }
    if !args.temperature.is_finite() {
        return Err("--temperature must be a number".into());
    }
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        return Err(format!(
            "--url must start with http:// or https://, got {:?}",
            args.url
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = check(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // Connect straight to the server, whatever proxy the environment names.
    let client = match reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: building the HTTP client: {e:#}");
            return ExitCode::from(2);
        }
    };
    let url = format!("{}{}", args.url.trim_end_matches('/'), args.endpoint.path());
    let requested = args.requests;
    let workers = args.concurrency.min(requested);
    eprintln!(
        "load_test: POST {url}: {requested} requests, concurrency {workers}, max_tokens {}, \
         prompts of {} words, duration limit {} s",
        args.max_tokens, args.prompt_len, args.duration
    );

    let args = Arc::new(args);
    let client = Arc::new(client);
    let url: Arc<str> = url.into();
    let next = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let digits = index_digits(requested);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.duration);
    let timeout = Duration::from_secs_f64(args.timeout);

    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (args, client, url, next, finished) = (
            args.clone(),
            client.clone(),
            url.clone(),
            next.clone(),
            finished.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while Instant::now() < deadline {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= requested {
                    break;
                }
                let prompt = make_prompt(args.seed, index as u64, digits, args.prompt_len);
                let body = request_body(&args, index as u64, &prompt);
                let request =
                    send_one(&client, &url, args.api_key.as_deref(), args.endpoint, &body);
                let outcome = match tokio::time::timeout(timeout, request).await {
                    Ok(outcome) => outcome,
                    Err(_) => Outcome::TimedOut,
                };
                outcomes.push((index, outcome));
                finished.fetch_add(1, Ordering::Relaxed);
            }
            outcomes
        }));
    }

    let progress = {
        let finished = finished.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(10));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                eprintln!(
                    "load_test: {:.0} s, {} of {requested} requests finished",
                    start.elapsed().as_secs_f64(),
                    finished.load(Ordering::Relaxed)
                );
            }
        })
    };

    let mut outcomes = Vec::with_capacity(requested);
    let mut crashed = 0;
    for task in tasks {
        match task.await {
            Ok(mut part) => outcomes.append(&mut part),
            Err(e) => {
                eprintln!("error: a client task failed: {e}");
                crashed += 1;
            }
        }
    }
    let duration = start.elapsed().as_secs_f64();
    progress.abort();

    let report = Report::new(outcomes, duration, args.timeout);
    report.print(requested);
    if let Some(path) = &args.json {
        let text = match serde_json::to_string_pretty(&report.to_json(&args, requested)) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: serializing results: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("load_test: results written to {}", path.display());
    }
    if report.completed > 0 && report.failed == 0 && crashed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = ": keep-alive comment\r\n\
        data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\
        \r\n\
        data:{\"choices\":[{\"delta\":{\"content\":\"h\u{e9}llo \u{1F600}\"}}]}\n\
        \n\
        event: message\n\
        id: 7\n\
        data: {\"a\":\n\
        data: 1}\n\
        \n\
        data: [DONE]\n\
        \n";

    fn expected() -> Vec<Vec<u8>> {
        [
            "{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}",
            "{\"choices\":[{\"delta\":{\"content\":\"h\u{e9}llo \u{1F600}\"}}]}",
            "{\"a\":\n1}",
            "[DONE]",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    }

    fn parse_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([bytes.len()].iter()) {
            events.extend(parser.push(&bytes[from..cut]).unwrap());
            from = cut;
        }
        events.extend(parser.finish());
        events
    }

    #[test]
    fn sse_events_survive_any_chunking() {
        let bytes = STREAM.as_bytes();
        let n = bytes.len();
        assert_eq!(parse_in_pieces(bytes, &[]), expected());
        // Every split into two and three pieces (cuts inside CRLF and inside UTF-8 characters
        // included), then one byte at a time.
        for a in 0..=n {
            assert_eq!(parse_in_pieces(bytes, &[a]), expected(), "cut at {a}");
            for b in (a..=n).step_by(3) {
                assert_eq!(parse_in_pieces(bytes, &[a, b]), expected(), "cuts {a}, {b}");
            }
        }
        let every: Vec<usize> = (1..n).collect();
        assert_eq!(parse_in_pieces(bytes, &every), expected());
    }

    #[test]
    fn sse_last_event_without_blank_line_is_delivered() {
        assert_eq!(
            parse_in_pieces(b"data: 1\n\ndata: [DONE]", &[3]),
            vec![b"1".to_vec(), b"[DONE]".to_vec()]
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&values, 50.0), Some(5.0));
        assert_eq!(percentile(&values, 90.0), Some(9.0));
        assert_eq!(percentile(&values, 99.0), Some(10.0));
        assert_eq!(percentile(&values, 100.0), Some(10.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        let empty = Summary::of_seconds(Vec::new());
        assert!(empty.mean.is_none() && empty.p99.is_none());
    }

    #[test]
    fn stream_state_times_content_and_reads_usage() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut state = StreamState::new(Endpoint::Chat, start);
        let chunks = [
            (
                10,
                r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            ),
            (20, r#"{"choices":[{"delta":{"content":"a"}}]}"#),
            (25, r#"{"choices":[{"delta":{"content":"b"}}]}"#),
            (
                40,
                r#"{"choices":[{"delta":{"content":"c"},"finish_reason":null}]}"#,
            ),
            (
                41,
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":5}}"#,
            ),
            (42, "[DONE]"),
        ];
        for (ms, data) in chunks {
            state.event(data.as_bytes(), at(ms)).unwrap();
        }
        let Outcome::Success(s) = state.finish() else {
            panic!("expected success")
        };
        assert!((s.ttft - 0.020).abs() < 1e-9);
        assert_eq!(s.itl.len(), 2);
        assert!((s.e2e - 0.042).abs() < 1e-9);
        assert_eq!((s.output_tokens, s.prompt_tokens), (5, Some(9)));

        let mut state = StreamState::new(Endpoint::Completions, start);
        state
            .event(br#"{"choices":[{"text":"x"}]}"#, at(5))
            .unwrap();
        assert!(state.event(b"{\"choices\":[{\"text\":", at(6)).is_err());
        assert!(state.event(br#"{"choices":{}}"#, at(6)).is_err());
        assert!(
            state
                .event(br#"{"error":{"message":"boom"}}"#, at(6))
                .is_err()
        );
        assert!(
            matches!(state.finish(), Outcome::Failed { .. }),
            "no [DONE]"
        );
    }

    #[test]
    fn prompts_are_deterministic_and_distinct() {
        let digits = index_digits(1000);
        let prompts: Vec<String> = (0..1000).map(|i| make_prompt(3, i, digits, 8)).collect();
        assert_eq!(prompts[17], make_prompt(3, 17, digits, 8));
        assert_ne!(prompts[17], make_prompt(4, 17, digits, 8));
        assert!(prompts.iter().all(|p| p.split(' ').count() == 8));
        let distinct: std::collections::HashSet<&String> = prompts.iter().collect();
        assert_eq!(distinct.len(), prompts.len());
    }
}
