//! `provider-openai` (manifest name `openai`): an adapter for any OpenAI-compatible chat
//! completions API (OpenAI, vLLM, llama.cpp's server, `textnlp serve`, ...).
//!
//! Settings: `{"base_url": "https://api.openai.com/v1", "models": ["gpt-4o-mini"]}`, both
//! optional. `models` lists the model ids to offer; without it they are asked from
//! `GET {base_url}/models`.
//!
//! - `complete`: `POST {base_url}/chat/completions`.
//! - `open_stream`: the same with `"stream": true`; the server-sent events are parsed as the host
//!   pulls pieces, reading the body only as far as needed. `finish` gives the finish reason and
//!   the usage when the server sent it (`stream_options.include_usage` asks for it).
//! - Errors: 401/403 `unauthorized`, 429 `rate-limited` (with `Retry-After` seconds), other 4xx
//!   `rejected` with the server's message, 5xx and network failures `unavailable`, answers that
//!   do not parse `protocol`. Invalid settings are `invalid-config`.
//!
//! The plugin never sets an `Authorization` header, nor any other credential: the host adds the
//! operator's API key to each request to an allowed host, and the plugin never sees it.

mod api;
mod sse;
mod stream;

use serde::Deserialize;
use textnlp_plugin_sdk::http::{self, Method, Request, Response};
use textnlp_plugin_sdk::provider::{
    ChatCompletion, ChatRequest, ModelCard, Provider, ProviderError, Stream, Whole,
};

use crate::stream::ChatStream;

const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

struct OpenAi;

textnlp_plugin_sdk::register_provider!(OpenAi);

impl Provider for OpenAi {
    fn models() -> Result<Vec<ModelCard>, ProviderError> {
        let settings = Settings::load()?;
        if let Some(ids) = settings.models {
            return Ok(ids.into_iter().map(ModelCard::named).collect());
        }
        let request =
            Request::new(Method::Get, settings.url("models")).header("accept", "application/json");
        api::model_cards(&success(send(&request)?)?)
    }

    fn complete(request: ChatRequest) -> Result<ChatCompletion, ProviderError> {
        let settings = Settings::load()?;
        let request = chat_request(&settings, &request, false)?;
        api::completion(&success(send(&request)?)?)
    }

    fn open_stream(request: ChatRequest) -> Result<Box<dyn Stream>, ProviderError> {
        let settings = Settings::load()?;
        let response = send(&chat_request(&settings, &request, true)?)?;
        if !(200..300).contains(&response.status) {
            return Err(failure(response));
        }
        // A server that ignores `stream` answers with one JSON document: hand it out whole.
        let json = response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        if json {
            return Ok(Box::new(Whole::new(api::completion(&read(response)?)?)));
        }
        Ok(Box::new(ChatStream::new(response.body)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    base_url: String,
    models: Option<Vec<String>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            base_url: DEFAULT_BASE_URL.into(),
            models: None,
        }
    }
}

impl Settings {
    fn load() -> Result<Settings, ProviderError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ProviderError> {
        let invalid = ProviderError::InvalidConfig;
        let mut settings: Settings = textnlp_plugin_sdk::config::parse(json).map_err(invalid)?;
        if !(settings.base_url.starts_with("https://") || settings.base_url.starts_with("http://"))
        {
            return Err(invalid(format!(
                "base_url: `{}` is not an http:// or https:// URL",
                settings.base_url
            )));
        }
        let trimmed = settings.base_url.trim_end_matches('/').len();
        settings.base_url.truncate(trimmed);
        Ok(settings)
    }

    /// `{base_url}/{path}`.
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }
}

/// The chat completions request. Only content negotiation headers: never `Authorization`.
fn chat_request(
    settings: &Settings,
    request: &ChatRequest,
    stream: bool,
) -> Result<Request, ProviderError> {
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    Ok(Request::new(Method::Post, settings.url("chat/completions"))
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(api::chat_body(request, stream)?))
}

fn send(request: &Request) -> Result<Response, ProviderError> {
    http::send(request).map_err(|e| match e {
        http::Error::InvalidRequest(m) => ProviderError::Rejected(m),
        http::Error::Transport(m) => ProviderError::Unavailable(m),
    })
}

fn read(response: Response) -> Result<Vec<u8>, ProviderError> {
    response
        .bytes()
        .map_err(|e| ProviderError::Unavailable(e.to_string()))
}

/// The body of a 2xx answer, or the error the status stands for.
fn success(response: Response) -> Result<Vec<u8>, ProviderError> {
    if (200..300).contains(&response.status) {
        read(response)
    } else {
        Err(failure(response))
    }
}

fn failure(response: Response) -> ProviderError {
    let status = response.status;
    let retry_after = response.header("retry-after").map(str::to_owned);
    // A body that cannot be read still leaves the status to report.
    let body = response.bytes().unwrap_or_default();
    api::status_error(status, retry_after.as_deref(), &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    #[test]
    fn the_manifest_is_valid() {
        let manifest = OpenAi::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind),
            ("openai", Kind::Provider)
        );
    }

    #[test]
    fn settings_default_to_openai() {
        let s = Settings::parse("{}").unwrap();
        assert_eq!(s.url("models"), "https://api.openai.com/v1/models");
        let s = Settings::parse(r#"{"base_url": "http://localhost:8080/v1/"}"#).unwrap();
        assert_eq!(
            s.url("chat/completions"),
            "http://localhost:8080/v1/chat/completions"
        );
        assert!(matches!(Settings::parse(r#"{"base_url": "localhost"}"#),
            Err(ProviderError::InvalidConfig(m)) if m.contains("base_url")));
        assert!(matches!(Settings::parse(r#"{"models": "gpt"}"#),
            Err(ProviderError::InvalidConfig(m)) if m.contains("models")));
    }

    #[test]
    fn never_sends_credentials() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![],
            max_tokens: None,
            temperature: None,
            top_p: None,
            seed: None,
            stop: vec![],
        };
        for stream in [false, true] {
            let r = chat_request(&Settings::default(), &request, stream).unwrap();
            assert!(r.headers.iter().all(|(name, _)| {
                !name.eq_ignore_ascii_case("authorization") && !name.eq_ignore_ascii_case("api-key")
            }));
        }
    }
}
