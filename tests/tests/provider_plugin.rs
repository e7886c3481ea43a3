//! The first-party `provider-openai` adapter against a mock OpenAI-compatible server: what goes
//! over the wire (the request JSON, and the API key that only the host holds), what comes back
//! (whole and streamed completions, model lists, errors by status), and the egress allow-list
//! (a host outside it is refused before anything is sent).
//!
//! The mock is an axum server on 127.0.0.1:0, run by a tokio runtime of its own; the plugin
//! calls block, so they run on the test threads, outside any tokio runtime (wasmtime-wasi-http's
//! synchronous path drives its own).
//!
//! Needs the component built: `scripts/setup.sh` builds the guest workspace (plugins/).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use textnlp_host::plugins::provider::{ChatCompletion, ChatMessage, ChatRequest};
use textnlp_host::plugins::{
    Credential, Egress, InstanceSpec, Limits, PluginError, PluginRuntime, ProviderPlugin,
};

/// The operator's API key: given to the host only, never to the plugin.
const KEY: &str = "sk-test-4f1c9a0e7d2b";

fn component() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| textnlp_tests::built_component("provider_openai"))
}

fn runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        PluginRuntime::with_limits(limits())
            .expect("runtime")
            .with_artifact_dir(None)
    })
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        call_deadline: Duration::from_secs(10),
        ..Limits::default()
    }
}

/// The adapter with `settings` as its configuration and `egress` as its outbound policy.
fn provider(settings: Value, egress: Egress) -> ProviderPlugin {
    let mut spec = InstanceSpec::new("tenant-a", "openai", limits());
    spec.config = settings.to_string();
    assert!(
        !spec.config.contains(KEY),
        "the key must not reach the plugin"
    );
    spec.egress = egress;
    ProviderPlugin::new(runtime(), component(), spec, 1).expect("provider-openai loads")
}

/// Allowed to reach the mock (exactly its host and port), with the key as a bearer token.
fn to_mock(mock: &Mock, credential: bool) -> Egress {
    let credential = credential.then(|| Credential::bearer(KEY).expect("a valid header value"));
    Egress::allow(&[format!("127.0.0.1:{}", mock.addr.port())], credential)
}

fn settings(mock: &Mock) -> Value {
    json!({ "base_url": format!("http://127.0.0.1:{}/v1", mock.addr.port()) })
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "gpt-test-mini".into(),
        messages: vec![
            ChatMessage {
                role: "system".into(),
                content: "Answer briefly.".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: "Say hello, \"world\".".into(),
            },
        ],
        max_tokens: Some(32),
        temperature: Some(0.7),
        top_p: None,
        seed: Some(1_234_567_890_123),
        stop: vec!["\n\n".into()],
    }
}

/// The body `request()` must become (`top_p` unset, so absent).
fn expected_body() -> Value {
    json!({
        "model": "gpt-test-mini",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Say hello, \"world\"."}
        ],
        "max_tokens": 32,
        "temperature": 0.7,
        "seed": 1_234_567_890_123_u64,
        "stop": ["\n\n"]
    })
}

fn usage(completion: &ChatCompletion) -> Option<(u32, u32)> {
    completion
        .usage
        .map(|u| (u.prompt_tokens, u.completion_tokens))
}

// ---------------------------------------------------------------------------------------------
// The mock server.

/// One request as the mock received it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }

    /// The request went to `method path` carrying the key the host holds (added on the way
    /// out; the plugin's settings never had it).
    fn assert_keyed(&self, method: Method, path: &str) {
        assert_eq!((&self.method, self.path.as_str()), (&method, path));
        assert_eq!(
            self.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

type Reply = dyn Fn(&Seen) -> Response + Send + Sync;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    reply: Box<Reply>,
}

/// A server that records every request and answers each with `reply`. Stops when dropped.
struct Mock {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

fn server_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mock-openai")
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

impl Mock {
    fn start(reply: impl Fn(&Seen) -> Response + Send + Sync + 'static) -> Mock {
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            reply: Box::new(reply),
        });
        let rt = server_runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let task = rt.spawn(async move {
            axum::serve(listener, app).await.expect("mock server");
        });
        Mock { addr, shared, task }
    }

    /// The requests received so far.
    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The only request received.
    fn one(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "expected exactly one request: {seen:?}");
        seen.into_iter().next().unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method,
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    };
    let response = (shared.reply)(&seen);
    shared.seen.lock().unwrap().push(seen);
    response
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A whole chat completion, as OpenAI sends it.
fn completion_json(text: &str, finish_reason: &str, usage: (u32, u32)) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-test-mini",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason
        }],
        "usage": {
            "prompt_tokens": usage.0,
            "completion_tokens": usage.1,
            "total_tokens": usage.0 + usage.1
        }
    })
}

/// One stream chunk carrying `content`.
fn delta_event(content: &str) -> String {
    let chunk = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n")
}

/// A `text/event-stream` answer whose body comes from `events`, sent as the test decides.
fn sse_reply(events: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(events),
        ))
        .expect("a valid response")
}

// ---------------------------------------------------------------------------------------------
// Completions.

#[test]
fn complete_returns_the_servers_answer_and_the_host_adds_the_key() {
    let mock = Mock::start(|seen| {
        if seen.method == Method::POST && seen.path == "/v1/chat/completions" {
            json_reply(
                StatusCode::OK,
                completion_json("Hello, world.", "stop", (21, 4)),
            )
        } else {
            StatusCode::NOT_FOUND.into_response()
        }
    });
    let plugin = provider(settings(&mock), to_mock(&mock, true));

    let completion = plugin.complete(&request()).expect("the completion");
    assert_eq!(completion.text, "Hello, world.");
    assert_eq!(completion.finish_reason, "stop");
    assert_eq!(usage(&completion), Some((21, 4)));

    let seen = mock.one();
    seen.assert_keyed(Method::POST, "/v1/chat/completions");
    assert_eq!(seen.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(seen.header("x-api-key"), None);
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.json(), expected_body());
    assert!(!String::from_utf8_lossy(&seen.body).contains(KEY));

    // The instance stays usable, and the next call carries the key again.
    let again = plugin.complete(&request()).expect("a second completion");
    assert_eq!(again.text, "Hello, world.");
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    seen[1].assert_keyed(Method::POST, "/v1/chat/completions");
}

#[test]
fn without_a_credential_no_authorization_header_is_sent() {
    let mock = Mock::start(|_| {
        json_reply(
            StatusCode::OK,
            completion_json("No key needed.", "length", (5, 3)),
        )
    });
    let plugin = provider(settings(&mock), to_mock(&mock, false));

    let completion = plugin.complete(&request()).expect("the completion");
    assert_eq!(
        (completion.text.as_str(), completion.finish_reason.as_str()),
        ("No key needed.", "length")
    );
    assert_eq!(usage(&completion), Some((5, 3)));

    let seen = mock.one();
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-api-key"), None);
    assert_eq!(seen.json(), expected_body());
}

#[test]
fn describe_names_the_adapter() {
    let plugin = provider(json!({}), Egress::deny_all());
    let info = plugin.describe().expect("describe");
    assert_eq!(info.name, "openai");
    let schema: Value = serde_json::from_str(&info.config_schema).expect("the schema is JSON");
    assert_eq!(schema["properties"]["base_url"]["type"], "string");
}

// ---------------------------------------------------------------------------------------------
// Streaming.

/// The events of a streamed "Hello, world." answer, each with whether it carries a piece of
/// text. The first event is split across two writes.
fn stream_events() -> Vec<(String, bool)> {
    let role = json!({
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]
    });
    let role = format!("data: {role}\n\n");
    let (head, tail) = role.split_at(20);
    let finish = json!({
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]
    });
    let usage = json!({
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {"prompt_tokens": 17, "completion_tokens": 4, "total_tokens": 21}
    });
    vec![
        (": keep-alive\n\n".into(), false),
        (head.into(), false),
        (tail.into(), false),
        (delta_event("Hel"), true),
        (delta_event("lo, "), true),
        (delta_event("wor"), true),
        (delta_event("ld."), true),
        (format!("data: {finish}\n\n"), false),
        (format!("data: {usage}\n\n"), false),
        ("data: [DONE]\n\n".into(), false),
    ]
}

#[test]
fn stream_delivers_pieces_as_the_server_sends_them() {
    // Pieces the host has received so far; the server sends nothing after a piece until the
    // host has it, so a plugin that waited for the whole body would stall the stream.
    let received = Arc::new(AtomicUsize::new(0));
    let stalled = Arc::new(AtomicBool::new(false));
    let mock = {
        let (received, stalled) = (Arc::clone(&received), Arc::clone(&stalled));
        Mock::start(move |_| {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let (received, stalled) = (Arc::clone(&received), Arc::clone(&stalled));
            tokio::spawn(async move {
                let mut pieces = 0;
                for (event, piece) in stream_events() {
                    if tx.send(Ok(Bytes::from(event))).await.is_err() {
                        return;
                    }
                    if piece {
                        pieces += 1;
                        let start = Instant::now();
                        while received.load(Ordering::SeqCst) < pieces {
                            if start.elapsed() > Duration::from_secs(3) {
                                stalled.store(true, Ordering::SeqCst);
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                }
            });
            sse_reply(rx)
        })
    };
    let plugin = provider(settings(&mock), to_mock(&mock, true));

    let mut pieces = Vec::new();
    let completion = plugin
        .stream(&request(), |piece| {
            pieces.push(piece.to_owned());
            received.fetch_add(1, Ordering::SeqCst);
        })
        .expect("the streamed completion");
    assert_eq!(pieces, ["Hel", "lo, ", "wor", "ld."]);
    assert!(
        !stalled.load(Ordering::SeqCst),
        "a piece reached the host only after the server sent more"
    );
    assert_eq!(completion.text, pieces.concat());
    assert_eq!(completion.text, "Hello, world.");
    assert_eq!(completion.finish_reason, "length");
    assert_eq!(usage(&completion), Some((17, 4)));

    let seen = mock.one();
    seen.assert_keyed(Method::POST, "/v1/chat/completions");
    assert_eq!(seen.header("accept"), Some("text/event-stream"));
    let mut expected = expected_body();
    expected["stream"] = json!(true);
    expected["stream_options"] = json!({"include_usage": true});
    assert_eq!(seen.json(), expected);
}

#[test]
fn a_stream_cut_before_its_end_is_unavailable() {
    let mock = Mock::start(|_| {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Ok(Bytes::from(delta_event("Hel")))).unwrap();
        tx.try_send(Ok(Bytes::from(delta_event("lo")))).unwrap();
        // The sender is dropped here: the body ends with no finish reason and no [DONE].
        sse_reply(rx)
    });
    let plugin = provider(settings(&mock), to_mock(&mock, true));

    let mut pieces = Vec::new();
    let error = plugin
        .stream(&request(), |piece| pieces.push(piece.to_owned()))
        .expect_err("a cut stream fails");
    assert_eq!(pieces, ["Hel", "lo"]);
    match error {
        PluginError::Reported {
            plugin,
            code,
            message,
        } => {
            assert_eq!((plugin.as_str(), code), ("openai", "unavailable"));
            assert!(message.contains("ended before"), "{message}");
        }
        other => panic!("expected an unavailable error, got {other:?}"),
    }
    // The failure is the plugin's own: the instance is still usable.
    assert!(plugin.describe().is_ok());
}

#[test]
fn a_server_that_ignores_stream_is_handed_out_whole() {
    let mock = Mock::start(|_| {
        json_reply(
            StatusCode::OK,
            completion_json("All at once.", "stop", (9, 3)),
        )
    });
    let plugin = provider(settings(&mock), to_mock(&mock, true));

    let mut pieces = Vec::new();
    let completion = plugin
        .stream(&request(), |piece| pieces.push(piece.to_owned()))
        .expect("the completion");
    assert_eq!(pieces, ["All at once."]);
    assert_eq!(
        (completion.text.as_str(), completion.finish_reason.as_str()),
        ("All at once.", "stop")
    );
    assert_eq!(usage(&completion), Some((9, 3)));
    assert_eq!(mock.one().json()["stream"], true);
}

// ---------------------------------------------------------------------------------------------
// Models.

#[test]
fn models_are_listed_from_the_server() {
    let mock = Mock::start(|seen| {
        if seen.method == Method::GET && seen.path == "/v1/models" {
            json_reply(
                StatusCode::OK,
                json!({
                    "object": "list",
                    "data": [
                        {"id": "gpt-test-mini", "object": "model", "owned_by": "test-lab"},
                        {"id": "local-8k", "object": "model", "context_length": 8192},
                        {"id": "vllm-32k", "object": "model", "max_model_len": 32768}
                    ]
                }),
            )
        } else {
            StatusCode::NOT_FOUND.into_response()
        }
    });
    let plugin = provider(settings(&mock), to_mock(&mock, true));

    let models = plugin.models().expect("the model list");
    let cards: Vec<_> = models
        .iter()
        .map(|m| (m.id.as_str(), m.context_length, m.description.as_str()))
        .collect();
    assert_eq!(
        cards,
        [
            ("gpt-test-mini", None, "owned by test-lab"),
            ("local-8k", Some(8192), ""),
            ("vllm-32k", Some(32768), ""),
        ]
    );
    let seen = mock.one();
    seen.assert_keyed(Method::GET, "/v1/models");
}

#[test]
fn configured_models_are_listed_without_asking_the_server() {
    let mock = Mock::start(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    let mut settings = settings(&mock);
    settings["models"] = json!(["gpt-a", "gpt-b"]);
    let plugin = provider(settings, to_mock(&mock, true));

    let models = plugin.models().expect("the configured list");
    let cards: Vec<_> = models
        .iter()
        .map(|m| (m.id.as_str(), m.context_length, m.description.as_str()))
        .collect();
    assert_eq!(cards, [("gpt-a", None, ""), ("gpt-b", None, "")]);
    assert!(mock.seen().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// The code and message of a reported error.
fn reported(result: Result<ChatCompletion, PluginError>) -> (&'static str, String) {
    match result {
        Err(PluginError::Reported {
            plugin,
            code,
            message,
        }) => {
            assert_eq!(plugin, "openai");
            (code, message)
        }
        other => panic!("expected a reported error, got {other:?}"),
    }
}

fn openai_error(message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

#[test]
fn http_errors_map_to_the_wit_error_cases() {
    let cases: Vec<(Response, &str, &str)> = vec![
        (
            json_reply(
                StatusCode::UNAUTHORIZED,
                openai_error("Incorrect API key provided.", "invalid_request_error"),
            ),
            "unauthorized",
            "HTTP 401: Incorrect API key provided.",
        ),
        (
            json_reply(
                StatusCode::FORBIDDEN,
                openai_error("Project has no access.", "invalid_request_error"),
            ),
            "unauthorized",
            "HTTP 403: Project has no access.",
        ),
        (
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "7")],
                openai_error("Rate limit reached.", "requests").to_string(),
            )
                .into_response(),
            "rate-limited",
            "retry after 7 s",
        ),
        (
            json_reply(
                StatusCode::BAD_REQUEST,
                openai_error("max_tokens is too large: 999999.", "invalid_request_error"),
            ),
            "rejected",
            "HTTP 400: max_tokens is too large: 999999.",
        ),
        (
            (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
            "unavailable",
            "HTTP 500: upstream exploded",
        ),
        (
            json_reply(
                StatusCode::OK,
                json!({"error": {"message": "The model is overloaded."}}),
            ),
            "unavailable",
            "the server reported an error: The model is overloaded.",
        ),
        (
            (StatusCode::OK, "<html>not json</html>").into_response(),
            "protocol",
            "the answer is not the expected JSON",
        ),
    ];
    for (response, code, message) in cases {
        let status = response.status();
        let response = Mutex::new(Some(response));
        let mock = Mock::start(move |_| {
            response
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| StatusCode::GONE.into_response())
        });
        let plugin = provider(settings(&mock), to_mock(&mock, true));
        let (got_code, got_message) = reported(plugin.complete(&request()));
        assert_eq!(got_code, code, "HTTP {status}: {got_message}");
        assert!(
            got_message.starts_with(message),
            "HTTP {status}: `{got_message}` does not start with `{message}`"
        );
        assert_eq!(mock.seen().len(), 1, "HTTP {status}");
    }
}

#[test]
fn a_rate_limit_without_a_usable_retry_time_says_so() {
    let mock = Mock::start(|_| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT")],
        )
            .into_response()
    });
    let plugin = provider(settings(&mock), to_mock(&mock, true));
    assert_eq!(
        reported(plugin.complete(&request())),
        ("rate-limited", "no retry time given".to_owned())
    );
}

#[test]
fn errors_opening_a_stream_map_the_same_way() {
    let mock = Mock::start(|_| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "7")],
            openai_error("Slow down.", "requests").to_string(),
        )
            .into_response()
    });
    let plugin = provider(settings(&mock), to_mock(&mock, true));
    let mut pieces = 0;
    let result = plugin.stream(&request(), |_| pieces += 1);
    assert_eq!(
        reported(result),
        ("rate-limited", "retry after 7 s".to_owned())
    );
    assert_eq!(pieces, 0);
}

#[test]
fn invalid_settings_are_reported_without_a_request() {
    let mock = Mock::start(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    let plugin = provider(
        json!({ "base_url": format!("127.0.0.1:{}/v1", mock.addr.port()) }),
        to_mock(&mock, true),
    );
    let (code, message) = reported(plugin.complete(&request()));
    assert_eq!(code, "invalid-config");
    assert!(message.contains("base_url"), "{message}");
    assert!(mock.seen().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Egress.

/// The authority named by a denial.
fn denied<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match result {
        Err(PluginError::Denied { plugin, message }) => {
            assert_eq!(plugin, "openai");
            message
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn a_host_off_the_allow_list_is_refused_before_anything_is_sent() {
    let mock = Mock::start(|_| {
        json_reply(
            StatusCode::OK,
            completion_json("should not be seen", "stop", (1, 1)),
        )
    });
    let port = mock.addr.port();
    let other_port = if port == u16::MAX { port - 1 } else { port + 1 };
    let key = || Some(Credential::bearer(KEY).expect("a valid header value"));

    // The mock's own address, but the allow-list names another port.
    let plugin = provider(
        settings(&mock),
        Egress::allow(&[format!("127.0.0.1:{other_port}")], key()),
    );
    let message = denied(plugin.complete(&request()));
    assert!(
        message.contains(&format!("`127.0.0.1:{port}`")),
        "{message}"
    );

    // The mock again, under a host name the allow-list does not have.
    let plugin = provider(
        json!({ "base_url": format!("http://localhost:{port}/v1") }),
        Egress::allow(&[format!("127.0.0.1:{port}")], key()),
    );
    let message = denied(plugin.complete(&request()));
    assert!(
        message.contains(&format!("`localhost:{port}`")),
        "{message}"
    );
    let message = denied(plugin.models());
    assert!(
        message.contains(&format!("`localhost:{port}`")),
        "{message}"
    );
    let mut pieces = 0;
    let message = denied(plugin.stream(&request(), |_| pieces += 1));
    assert!(
        message.contains(&format!("`localhost:{port}`")),
        "{message}"
    );
    assert_eq!(pieces, 0);

    // Another host altogether.
    let plugin = provider(
        json!({ "base_url": "http://example.com/v1" }),
        Egress::allow(&[format!("127.0.0.1:{port}")], key()),
    );
    let message = denied(plugin.complete(&request()));
    assert!(message.contains("`example.com`"), "{message}");

    assert!(mock.seen().is_empty(), "{:?}", mock.seen());
}

#[test]
fn a_plugin_without_egress_reaches_nothing() {
    let mock = Mock::start(|_| {
        json_reply(
            StatusCode::OK,
            completion_json("should not be seen", "stop", (1, 1)),
        )
    });
    let plugin = provider(settings(&mock), Egress::deny_all());
    let port = mock.addr.port();

    let message = denied(plugin.complete(&request()));
    assert!(
        message.contains(&format!("`127.0.0.1:{port}`")),
        "{message}"
    );
    let message = denied(plugin.models());
    assert!(
        message.contains(&format!("`127.0.0.1:{port}`")),
        "{message}"
    );
    assert!(mock.seen().is_empty(), "{:?}", mock.seen());

    // InstanceSpec::new's default is the same: no network.
    let mut spec = InstanceSpec::new("tenant-b", "openai", limits());
    spec.config = settings(&mock).to_string();
    let plugin = ProviderPlugin::new(runtime(), component(), spec, 1).expect("loads");
    denied(plugin.complete(&request()));
    assert!(mock.seen().is_empty(), "{:?}", mock.seen());
}
