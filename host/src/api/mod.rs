//! The HTTP API (axum): OpenAI-compatible routes, native routes, metrics and the OpenAPI
//! document. Handlers parse and check requests, the engine generates, [`crate::text`] turns ids
//! into text.
//!
//! - [`openai`]: `/v1/chat/completions`, `/v1/completions`, `/v1/models`;
//! - [`native`]: `/v1/generate`, `/v1/tokenize`, `/v1/detokenize`, `/healthz`, `/readyz`;
//! - [`validate`]: `/v1/validate`, validator plugins over a batch ([`crate::validation`]);
//! - [`jobs`]: `/v1/jobs...`, dataset jobs ([`crate::jobs`]);
//! - [`batches`]: OpenAI's `/v1/files` and `/v1/batches` on the job store;
//! - [`metrics`]: `/metrics` and the request-counting middleware;
//! - [`params`]: strict request parsing; [`error`]: OpenAI-shaped errors;
//! - [`generation`]: runs a request's choices through the engine.

mod batches;
pub mod error;
mod generation;
mod jobs;
pub mod metrics;
mod native;
mod openai;
mod params;
mod validate;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

use crate::engine::EngineHandle;
use crate::text::TokenizerPool;
use crate::validation::Catalog;
use error::ApiError;
use metrics::Metrics;

/// Everything the handlers share.
pub struct AppState {
    pub engine: EngineHandle,
    pub tokenizers: Arc<TokenizerPool>,
    /// The validators `/v1/validate` runs.
    pub validators: Arc<Catalog>,
    /// Validation runs at once; more wait for a slot.
    pub validation_slots: tokio::sync::Semaphore,
    /// Dataset jobs (none when the job store could not be opened).
    pub jobs: Option<Arc<crate::jobs::Runner>>,
    /// OpenAI-style batches running in this process.
    pub batches: batches::Batches,
    pub metrics: Arc<Metrics>,
    /// The name `/v1/models` lists (requests may also say `default`).
    pub model_id: String,
    /// When the model was loaded (Unix seconds).
    pub created: u64,
    /// `system_fingerprint`: build and kernel ISA, which together fix the numerics.
    pub fingerprint: String,
    pub n_vocab: usize,
    /// Set once a warm-up step went through the engine.
    pub ready: AtomicBool,
}

impl AppState {
    /// The served model's id if `requested` names it (404 otherwise, as OpenAI answers).
    fn check_model(&self, requested: &str) -> Result<String, ApiError> {
        if requested == self.model_id || requested == "default" {
            return Ok(self.model_id.clone());
        }
        let mut e = ApiError::not_found(format!(
            "the model `{requested}` does not exist; this server serves `{}`",
            self.model_id
        ));
        e.param = Some("model".into());
        e.code = Some("model_not_found");
        Err(e)
    }

    /// Whom a request is charged to for fair scheduling: its bearer token (hashed, so the
    /// key itself is never kept), or one shared anonymous client.
    fn client_of(&self, headers: &HeaderMap) -> String {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token {
            Some(t) => {
                let digest = Sha256::digest(t.as_bytes());
                format!(
                    "key:{:x}",
                    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
                )
            }
            None => "anonymous".into(),
        }
    }
}

/// Resumes the batches an earlier process left running (call on the runtime).
pub fn resume_batches(state: &Arc<AppState>) {
    batches::resume_all(state);
}

type Handler = axum::routing::MethodRouter<Arc<AppState>>;

/// Every route as (path, method, handler); `/openapi.json` describes exactly these.
fn routes() -> Vec<(&'static str, &'static str, Handler)> {
    vec![
        (
            "/v1/chat/completions",
            "post",
            post(openai::chat_completions),
        ),
        ("/v1/completions", "post", post(openai::completions)),
        ("/v1/models", "get", get(openai::models)),
        ("/v1/generate", "post", post(native::generate)),
        ("/v1/tokenize", "post", post(native::tokenize)),
        ("/v1/detokenize", "post", post(native::detokenize)),
        (
            "/v1/validate",
            "post",
            post(validate::validate).layer(DefaultBodyLimit::max(validate::MAX_BODY_BYTES)),
        ),
        (
            "/v1/jobs",
            "post",
            post(jobs::create).layer(DefaultBodyLimit::max(jobs::MAX_BODY_BYTES)),
        ),
        ("/v1/jobs", "get", get(jobs::list)),
        ("/v1/jobs/{id}", "get", get(jobs::get)),
        ("/v1/jobs/{id}/events", "get", get(jobs::events)),
        ("/v1/jobs/{id}/records", "get", get(jobs::records)),
        ("/v1/jobs/{id}/card", "get", get(jobs::card)),
        ("/v1/jobs/{id}/cancel", "post", post(jobs::cancel)),
        (
            "/v1/files",
            "post",
            post(batches::upload).layer(DefaultBodyLimit::max(batches::MAX_FILE_BYTES)),
        ),
        ("/v1/files", "get", get(batches::list_files)),
        ("/v1/files/{id}", "get", get(batches::file)),
        ("/v1/files/{id}/content", "get", get(batches::file_content)),
        ("/v1/batches", "post", post(batches::create)),
        ("/v1/batches", "get", get(batches::list)),
        ("/v1/batches/{id}", "get", get(batches::get)),
        ("/v1/batches/{id}/cancel", "post", post(batches::cancel)),
        ("/healthz", "get", get(native::healthz)),
        ("/readyz", "get", get(native::readyz)),
        ("/metrics", "get", get(render_metrics)),
        ("/openapi.json", "get", get(openapi)),
    ]
}

/// The router: the routes, a 404 in OpenAI's error shape for anything else, and the
/// request-counting middleware around all of it.
pub fn router(state: Arc<AppState>) -> Router {
    let metrics = Arc::clone(&state.metrics);
    routes()
        .into_iter()
        .fold(Router::new(), |r, (path, _, handler)| {
            r.route(path, handler)
        })
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::count_requests,
        ))
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.engine),
    )
}

/// The OpenAPI 3.1 description of every route (kept in step with [`router`] by a test).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {uri}; see /openapi.json"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, ops)| {
                let ops = ops.as_object().expect("operations");
                ops.keys().map(move |m| (path.clone(), m.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = super::routes()
            .into_iter()
            .map(|(p, m, _)| (p.to_owned(), m.to_owned()))
            .collect();
        assert_eq!(documented, served);
    }
}
