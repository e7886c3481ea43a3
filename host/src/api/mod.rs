//! The HTTP API (axum): OpenAI-compatible routes, native routes, metrics and the OpenAPI
//! document. Handlers parse and check requests, the engine generates, [`crate::text`] turns ids
//! into text.
//!
//! - [`openai`]: `/v1/chat/completions`, `/v1/completions`, `/v1/models`;
//! - [`native`]: `/v1/generate`, `/v1/tokenize`, `/v1/detokenize`, `/healthz`, `/readyz`;
//! - [`validate`]: `/v1/validate`, validator plugins over a batch ([`crate::validation`]);
//! - [`jobs`]: `/v1/jobs...`, dataset jobs ([`crate::jobs`]);
//! - [`batches`]: OpenAI's `/v1/files` and `/v1/batches` on the job store;
//! - [`plugins`]: `/v1/plugins`, a tenant's own plugins; [`admin`]: `/v1/admin/...`,
//!   tenants, keys, shared plugins, grants, the audit log; [`usage`]: `/v1/usage`;
//! - [`auth`]: every route's [`auth::Policy`], enforced by one middleware;
//! - [`metrics`]: `/metrics` and the request-counting middleware;
//! - [`params`]: strict request parsing; [`error`]: OpenAI-shaped errors;
//! - [`generation`]: runs a request's choices through the engine.

mod admin;
pub mod auth;
mod batches;
pub mod error;
mod generation;
mod jobs;
pub mod metrics;
mod native;
mod openai;
mod params;
mod plugins;
mod usage;
mod validate;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};

use crate::engine::EngineHandle;
use crate::plugins::{Catalog, Registry};
use crate::tenancy::{Caller, Scope, Tenancy};
use crate::text::{TokenizerPool, Tokenizers};
use auth::Policy;
use error::ApiError;
use metrics::Metrics;

/// Everything the handlers share.
pub struct AppState {
    pub engine: EngineHandle,
    pub tokenizers: Arc<TokenizerPool>,
    /// The plugins each tenant can use (its own, shared, first-party).
    pub catalog: Arc<Catalog>,
    /// The installed plugins (tenants' and shared).
    pub registry: Arc<Registry>,
    /// Tenants, keys, limits, usage, audit.
    pub tenancy: Arc<Tenancy>,
    /// Whether `/metrics` answers without a key.
    pub public_metrics: bool,
    /// Validation runs at once; more wait for a slot.
    pub validation_slots: validate::Slots,
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
    /// The caller's tenant's tokenizer instances (tenants never share one).
    fn tokenizers_of(&self, caller: &Caller) -> Result<Arc<Tokenizers>, ApiError> {
        Ok(self.tokenizers.tenant(&caller.tenant.id)?)
    }

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
}

/// Resumes the batches an earlier process left running (call on the runtime).
pub fn resume_batches(state: &Arc<AppState>) {
    batches::resume_all(state);
}

type Handler = axum::routing::MethodRouter<Arc<AppState>>;

const GENERATE: Policy = Policy::AnyOf(&[Scope::Generate]);
const JOBS: Policy = Policy::AnyOf(&[Scope::Jobs]);
const READ_JOBS: Policy = Policy::AnyOf(&[Scope::Jobs, Scope::Read]);
const INSTALL: Policy = Policy::AnyOf(&[Scope::PluginsInstall]);
const READ_PLUGINS: Policy = Policy::AnyOf(&[Scope::PluginsInstall, Scope::Read]);
const READ: Policy = Policy::AnyOf(&[Scope::Read]);
const ADMIN: Policy = Policy::AnyOf(&[Scope::Admin]);

/// Every route as (path, method, who may call it, handler); `/openapi.json` describes
/// exactly these, and each one's policy is enforced by [`auth::authorize`].
fn routes() -> Vec<(&'static str, &'static str, Policy, Handler)> {
    vec![
        (
            "/v1/chat/completions",
            "post",
            GENERATE,
            post(openai::chat_completions),
        ),
        (
            "/v1/completions",
            "post",
            GENERATE,
            post(openai::completions),
        ),
        ("/v1/models", "get", Policy::AnyKey, get(openai::models)),
        ("/v1/generate", "post", GENERATE, post(native::generate)),
        ("/v1/tokenize", "post", GENERATE, post(native::tokenize)),
        ("/v1/detokenize", "post", GENERATE, post(native::detokenize)),
        (
            "/v1/validate",
            "post",
            GENERATE,
            post(validate::validate).layer(DefaultBodyLimit::max(validate::MAX_BODY_BYTES)),
        ),
        (
            "/v1/jobs",
            "post",
            JOBS,
            post(jobs::create).layer(DefaultBodyLimit::max(jobs::MAX_BODY_BYTES)),
        ),
        ("/v1/jobs", "get", READ_JOBS, get(jobs::list)),
        ("/v1/jobs/{id}", "get", READ_JOBS, get(jobs::get)),
        ("/v1/jobs/{id}/events", "get", READ_JOBS, get(jobs::events)),
        (
            "/v1/jobs/{id}/records",
            "get",
            READ_JOBS,
            get(jobs::records),
        ),
        ("/v1/jobs/{id}/card", "get", READ_JOBS, get(jobs::card)),
        ("/v1/jobs/{id}/cancel", "post", JOBS, post(jobs::cancel)),
        (
            "/v1/files",
            "post",
            JOBS,
            post(batches::upload).layer(DefaultBodyLimit::max(batches::MAX_FILE_BYTES)),
        ),
        ("/v1/files", "get", READ_JOBS, get(batches::list_files)),
        ("/v1/files/{id}", "get", READ_JOBS, get(batches::file)),
        (
            "/v1/files/{id}/content",
            "get",
            READ_JOBS,
            get(batches::file_content),
        ),
        ("/v1/batches", "post", JOBS, post(batches::create)),
        ("/v1/batches", "get", READ_JOBS, get(batches::list)),
        ("/v1/batches/{id}", "get", READ_JOBS, get(batches::get)),
        (
            "/v1/batches/{id}/cancel",
            "post",
            JOBS,
            post(batches::cancel),
        ),
        (
            "/v1/plugins",
            "post",
            INSTALL,
            post(plugins::install).layer(DefaultBodyLimit::max(plugins::MAX_BODY_BYTES)),
        ),
        ("/v1/plugins", "get", READ_PLUGINS, get(plugins::list)),
        (
            "/v1/plugins/{name}",
            "delete",
            INSTALL,
            delete(plugins::remove),
        ),
        ("/v1/usage", "get", READ, get(usage::usage)),
        (
            "/v1/admin/tenants",
            "post",
            ADMIN,
            post(admin::create_tenant),
        ),
        ("/v1/admin/tenants", "get", ADMIN, get(admin::list_tenants)),
        (
            "/v1/admin/tenants/{id}",
            "get",
            ADMIN,
            get(admin::get_tenant),
        ),
        (
            "/v1/admin/tenants/{id}",
            "patch",
            ADMIN,
            axum::routing::patch(admin::update_tenant),
        ),
        (
            "/v1/admin/tenants/{id}",
            "delete",
            ADMIN,
            delete(admin::delete_tenant),
        ),
        ("/v1/admin/keys", "post", ADMIN, post(admin::create_key)),
        ("/v1/admin/keys", "get", ADMIN, get(admin::list_keys)),
        (
            "/v1/admin/keys/{id}",
            "delete",
            ADMIN,
            delete(admin::revoke_key),
        ),
        (
            "/v1/admin/plugins",
            "post",
            ADMIN,
            post(admin::install_plugin).layer(DefaultBodyLimit::max(plugins::MAX_BODY_BYTES)),
        ),
        ("/v1/admin/plugins", "get", ADMIN, get(admin::list_plugins)),
        (
            "/v1/admin/plugins/{namespace}/{name}/grants",
            "post",
            ADMIN,
            post(admin::grant_plugin),
        ),
        (
            "/v1/admin/plugins/{namespace}/{name}",
            "delete",
            ADMIN,
            delete(admin::remove_plugin),
        ),
        ("/v1/admin/audit", "get", ADMIN, get(admin::audit)),
        ("/healthz", "get", Policy::Public, get(native::healthz)),
        ("/readyz", "get", Policy::Public, get(native::readyz)),
        ("/metrics", "get", Policy::Metrics, get(render_metrics)),
        ("/openapi.json", "get", Policy::AnyKey, get(openapi)),
    ]
}

/// The router: each route behind its policy, a 404 in OpenAI's error shape for anything
/// else, and the request-counting middleware around all of it.
pub fn router(state: Arc<AppState>) -> Router {
    let metrics = Arc::clone(&state.metrics);
    routes()
        .into_iter()
        .fold(Router::new(), |r, (path, _, policy, handler)| {
            let guarded = handler.layer(axum::middleware::from_fn_with_state(
                (Arc::clone(&state), policy),
                auth::authorize,
            ));
            r.route(path, guarded)
        })
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::count_requests,
        ))
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let usage: Vec<_> = state
        .tenancy
        .store()
        .usage(None)
        .unwrap_or_default()
        .into_iter()
        .map(|(tenant, _, usage)| (tenant, usage))
        .collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.engine, &usage),
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
            .map(|(p, m, _, _)| (p.to_owned(), m.to_owned()))
            .collect();
        assert_eq!(documented, served);
    }

    /// Each operation's `x-scopes` (absent: public; empty: any key) is its route's policy,
    /// so a client (and tests/openai/check_tenancy.py, which walks every route) can rely on it.
    #[test]
    fn the_openapi_document_states_each_routes_scopes() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        for (path, method, policy, _) in super::routes() {
            let documented = &doc["paths"][path][method]["x-scopes"];
            let expected = match policy.scopes(false) {
                None => serde_json::Value::Null,
                Some(scopes) => scopes.iter().map(|s| s.as_str()).collect(),
            };
            assert_eq!(documented, &expected, "{method} {path}");
        }
    }

    #[test]
    fn only_probes_are_public_and_admin_routes_need_admin() {
        use super::{Policy, Scope};
        for (path, method, policy, _) in super::routes() {
            let public = matches!(path, "/healthz" | "/readyz");
            assert_eq!(policy == Policy::Public, public, "{method} {path}");
            if path == "/metrics" {
                assert_eq!(policy, Policy::Metrics);
            }
            if path.starts_with("/v1/admin/") {
                assert_eq!(policy, Policy::AnyOf(&[Scope::Admin]), "{method} {path}");
            }
        }
    }
}
