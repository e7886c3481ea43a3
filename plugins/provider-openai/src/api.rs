//! The OpenAI chat completions wire format: request bodies, answers, and errors, as pure
//! functions of bytes so they can be tested off-wasm.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use textnlp_plugin_sdk::provider::{ChatCompletion, ChatRequest, ModelCard, ProviderError, Usage};

/// How much of a non-JSON error body goes into an error message.
const MAX_ERROR_TEXT: usize = 300;

/// The body of `POST /chat/completions`. `max_tokens` (not `max_completion_tokens`) because
/// every compatible server reads it; `stream_options.include_usage` asks for the usage chunk.
pub fn chat_body(request: &ChatRequest, stream: bool) -> Result<Vec<u8>, ProviderError> {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({ "role": m.role, "content": m.content }))
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), request.model.clone().into());
    body.insert("messages".into(), messages.into());
    if let Some(n) = request.max_tokens {
        body.insert("max_tokens".into(), n.into());
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), number("temperature", t)?);
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), number("top_p", p)?);
    }
    if let Some(seed) = request.seed {
        body.insert("seed".into(), seed.into());
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), request.stop.clone().into());
    }
    if stream {
        body.insert("stream".into(), true.into());
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Value::Object(body).to_string().into_bytes())
}

/// An `f32` as the JSON number it was written as (0.7, not 0.699999988079071).
fn number(name: &str, value: f32) -> Result<Value, ProviderError> {
    let shortest: f64 = value.to_string().parse().unwrap_or(f64::from(value));
    serde_json::Number::from_f64(shortest)
        .map(Value::Number)
        .ok_or_else(|| ProviderError::Rejected(format!("{name}: {value} is not a finite number")))
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    /// Whole answers carry `message`, stream chunks `delta`.
    #[serde(default)]
    message: Option<Content>,
    #[serde(default)]
    delta: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

impl Choice {
    fn text(&mut self) -> Option<String> {
        let from = |c: &mut Option<Content>| c.as_mut().and_then(|c| c.content.take());
        from(&mut self.message).or_else(|| from(&mut self.delta))
    }
}

#[derive(Debug, Deserialize)]
struct Content {
    #[serde(default)]
    content: Option<String>,
}

/// Some servers send partial usage objects; usage counts only when both numbers are there.
#[derive(Debug, Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

impl UsageJson {
    fn usage(self) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: self.prompt_tokens?,
            completion_tokens: self.completion_tokens?,
        })
    }
}

fn parse_answer(bytes: &[u8]) -> Result<Answer, ProviderError> {
    let answer: Answer = serde_json::from_slice(bytes).map_err(|e| {
        ProviderError::Protocol(format!("the answer is not the expected JSON: {e}"))
    })?;
    match &answer.error {
        Some(error) => Err(ProviderError::Unavailable(format!(
            "the server reported an error: {}",
            error_text(error)
        ))),
        None => Ok(answer),
    }
}

/// A whole (non-streamed) completion.
pub fn completion(bytes: &[u8]) -> Result<ChatCompletion, ProviderError> {
    let answer = parse_answer(bytes)?;
    let usage = answer.usage.and_then(UsageJson::usage);
    let mut choice = answer
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Protocol("the answer has no choices".into()))?;
    Ok(ChatCompletion {
        text: choice.text().unwrap_or_default(),
        finish_reason: choice
            .finish_reason
            .unwrap_or_else(|| UNKNOWN_REASON.into()),
        usage,
    })
}

/// The finish reason reported when the server sent none.
pub const UNKNOWN_REASON: &str = "unknown";

/// What one stream chunk carries; every field may be absent.
#[derive(Debug, Default)]
pub struct Delta {
    pub text: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// One `data:` payload of a streamed completion (not `[DONE]`).
pub fn delta(data: &str) -> Result<Delta, ProviderError> {
    let answer = parse_answer(data.as_bytes())?;
    let mut delta = Delta {
        usage: answer.usage.and_then(UsageJson::usage),
        ..Delta::default()
    };
    if let Some(mut choice) = answer.choices.into_iter().next() {
        delta.text = choice.text();
        delta.finish_reason = choice.finish_reason;
    }
    Ok(delta)
}

#[derive(Debug, Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
    #[serde(default)]
    owned_by: Option<String>,
    // Servers name the context size differently (OpenRouter, Groq, vLLM).
    #[serde(default)]
    context_length: Option<u64>,
    #[serde(default)]
    context_window: Option<u64>,
    #[serde(default)]
    max_model_len: Option<u64>,
}

impl ModelEntry {
    fn context(&self) -> Option<u32> {
        let n = self
            .context_length
            .or(self.context_window)
            .or(self.max_model_len)?;
        u32::try_from(n).ok()
    }
}

/// The answer of `GET /models`.
pub fn model_cards(bytes: &[u8]) -> Result<Vec<ModelCard>, ProviderError> {
    let list: ModelList = serde_json::from_slice(bytes).map_err(|e| {
        ProviderError::Protocol(format!("the model list is not the expected JSON: {e}"))
    })?;
    Ok(list
        .data
        .into_iter()
        .map(|m| ModelCard {
            context_length: m.context(),
            description: m
                .owned_by
                .map(|o| format!("owned by {o}"))
                .unwrap_or_default(),
            id: m.id,
        })
        .collect())
}

/// The error for a non-2xx answer: 401/403 unauthorized, 429 rate-limited (with `Retry-After`
/// when it is a number of seconds), other 4xx rejected, anything else unavailable.
pub fn status_error(status: u16, retry_after: Option<&str>, body: &[u8]) -> ProviderError {
    let message = || format!("HTTP {status}: {}", server_message(body));
    match status {
        401 | 403 => ProviderError::Unauthorized(message()),
        429 => ProviderError::RateLimited(retry_after.and_then(|s| s.trim().parse().ok())),
        400..=499 => ProviderError::Rejected(message()),
        _ => ProviderError::Unavailable(message()),
    }
}

/// The server's own words: `error.message` (OpenAI), `error` or `message` (others), else the
/// start of the body.
fn server_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.get("error").is_some() => error_text(&value["error"]),
        Ok(Value::Object(o)) if o.get("message").is_some_and(Value::is_string) => {
            o["message"].as_str().unwrap_or_default().to_owned()
        }
        _ => truncated(&String::from_utf8_lossy(body)),
    }
}

fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => truncated(&error.to_string()),
        },
        other => truncated(&other.to_string()),
    }
}

fn truncated(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "no details".into();
    }
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use textnlp_plugin_sdk::provider::ChatMessage;

    fn request() -> ChatRequest {
        ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "Hi".into(),
            }],
            max_tokens: Some(16),
            temperature: Some(0.7),
            top_p: None,
            seed: Some(1),
            stop: vec![],
        }
    }

    #[test]
    fn builds_request_bodies() {
        let body: Value = serde_json::from_slice(&chat_body(&request(), false).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}],
                   "max_tokens": 16, "temperature": 0.7, "seed": 1})
        );
        let body: Value = serde_json::from_slice(&chat_body(&request(), true).unwrap()).unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        let mut bad = request();
        bad.top_p = Some(f32::NAN);
        assert!(
            matches!(chat_body(&bad, false), Err(ProviderError::Rejected(m)) if m.starts_with("top_p"))
        );
    }

    #[test]
    fn parses_whole_completions() {
        let c = completion(
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"length"}],
                "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!(
            (c.text.as_str(), c.finish_reason.as_str()),
            ("Hello", "length")
        );
        assert_eq!(
            c.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            Some((3, 1))
        );
        assert!(matches!(
            completion(b"{\"choices\":[]}"),
            Err(ProviderError::Protocol(_))
        ));
        assert!(matches!(
            completion(b"<html>"),
            Err(ProviderError::Protocol(_))
        ));
        assert!(matches!(completion(br#"{"error":{"message":"boom"}}"#),
            Err(ProviderError::Unavailable(m)) if m.ends_with("boom")));
    }

    #[test]
    fn parses_stream_chunks() {
        let d = delta(r#"{"choices":[{"index":0,"delta":{"content":"He"},"finish_reason":null}],"usage":null}"#).unwrap();
        assert_eq!(d.text.as_deref(), Some("He"));
        assert_eq!(d.finish_reason, None);
        let d =
            delta(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#).unwrap();
        assert!(d.text.is_none() && d.usage.is_some());
        let d = delta(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(d.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn maps_statuses_to_errors() {
        let body = br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}"#;
        assert!(matches!(status_error(401, None, body),
            ProviderError::Unauthorized(m) if m == "HTTP 401: Incorrect API key"));
        assert!(matches!(
            status_error(429, Some(" 20 "), b""),
            ProviderError::RateLimited(Some(20))
        ));
        assert!(matches!(
            status_error(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b""),
            ProviderError::RateLimited(None)
        ));
        assert!(
            matches!(status_error(404, None, br#"{"message":"no such model"}"#),
            ProviderError::Rejected(m) if m.ends_with("no such model"))
        );
        assert!(matches!(status_error(503, None, b""),
            ProviderError::Unavailable(m) if m == "HTTP 503: no details"));
        let long = "x".repeat(1000);
        assert!(matches!(status_error(500, None, long.as_bytes()),
            ProviderError::Unavailable(m) if m.chars().count() < 320));
    }

    #[test]
    fn lists_models() {
        let cards = model_cards(
            br#"{"object":"list","data":[{"id":"a","owned_by":"me"},{"id":"b","context_length":8192}]}"#,
        )
        .unwrap();
        assert_eq!(cards[0].id, "a");
        assert_eq!(cards[0].description, "owned by me");
        assert_eq!(cards[1].context_length, Some(8192));
        assert!(model_cards(b"[]").is_err());
    }
}
