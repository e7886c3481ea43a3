//! A tenant's own plugins.
//!
//! - `POST /v1/plugins` (the component's bytes as the body; `?replace=true` to replace one
//!   of the same name) installs into the caller's tenant namespace;
//! - `GET /v1/plugins` lists what the tenant can use: its own, the shared ones, the
//!   first-party ones;
//! - `DELETE /v1/plugins/{name}` removes one of its own.
//!
//! A tenant's plugin is checked like any install ([`Registry::add`]) and gets no
//! capabilities: model access and outbound hosts are the operator's to grant
//! (`POST /v1/admin/plugins/{tenant}/{name}/grants`). Its memory and call deadline are capped by
//! the tenant's limits whenever it runs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::plugins::registry::{Entry, MAX_COMPONENT_BYTES, SHARED};
use crate::plugins::{CatalogEntry, GrantRequest, Registry, RegistryError};
use crate::tenancy::Caller;

/// Largest component body (the route's limit).
pub const MAX_BODY_BYTES: usize = MAX_COMPONENT_BYTES;

#[derive(Deserialize)]
pub struct InstallQuery {
    #[serde(default)]
    replace: bool,
}

pub async fn install(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<InstallQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = caller.tenant.id.clone();
    let entry = add(
        &state,
        &caller.actor(),
        &tenant,
        body,
        GrantRequest::default(),
        query.replace,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(entry_json(&entry))))
}

/// Installs `wasm` into `namespace` with the grants `request` approves, and writes the audit
/// log either way.
pub(super) async fn add(
    state: &Arc<AppState>,
    actor: &str,
    namespace: &str,
    wasm: Bytes,
    request: GrantRequest,
    replace: bool,
) -> Result<Entry, ApiError> {
    let registry = Arc::clone(&state.registry);
    let ns = namespace.to_owned();
    // Compiling a component is seconds of CPU: off the async runtime.
    let added = tokio::task::spawn_blocking(move || registry.add(&ns, &wasm, &request, replace))
        .await
        .map_err(|e| ApiError::internal(format!("install task: {e}")))?;
    let tenant = (namespace != SHARED).then_some(namespace);
    match added {
        Ok(entry) => {
            let detail = format!("{} {} sha256 {}", entry.kind, entry.version, entry.sha256);
            state.tenancy.audit(
                actor,
                tenant,
                "plugin.install",
                &format!("{namespace}/{}", entry.name),
                "ok",
                Some(&detail),
            );
            Ok(entry)
        }
        Err(e) => {
            let error = registry_error(e);
            state
                .tenancy
                .audit_failure(actor, tenant, "plugin.install", namespace, &error.message);
            Err(error)
        }
    }
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let own = listed(&state.registry, &caller.tenant.id)?;
    let shared = listed(&state.registry, SHARED)?;
    let first_party = state.catalog.first_party().map(first_party_json);
    let data: Vec<Value> = own.chain(shared).chain(first_party).collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entry = uninstall(&state, &caller.actor(), &caller.tenant.id, &name)?;
    Ok(Json(entry_json(&entry)))
}

/// Removes `name` from `namespace`, with an audit record.
pub(super) fn uninstall(
    state: &AppState,
    actor: &str,
    namespace: &str,
    name: &str,
) -> Result<Entry, ApiError> {
    let entry = state
        .registry
        .remove(namespace, name)
        .map_err(registry_error)?;
    let tenant = (namespace != SHARED).then_some(namespace);
    let target = format!("{namespace}/{name}");
    state
        .tenancy
        .audit(actor, tenant, "plugin.remove", &target, "ok", None);
    Ok(entry)
}

fn listed(registry: &Registry, namespace: &str) -> Result<impl Iterator<Item = Value>, ApiError> {
    let entries = registry.list(namespace).map_err(registry_error)?;
    Ok(entries.into_iter().map(|e| entry_json(&e)))
}

/// An installed plugin as the API shows it: what it is, what it asks, what it was granted.
pub(super) fn entry_json(entry: &Entry) -> Value {
    json!({
        "object": "plugin",
        "namespace": entry.namespace,
        "name": entry.name,
        "kind": entry.kind,
        "version": entry.version,
        "api_version": entry.api_version,
        "sha256": entry.sha256,
        "requested": entry.manifest.capabilities,
        "grants": entry.grants,
        "installed_at": entry.installed_at,
    })
}

fn first_party_json(entry: &CatalogEntry) -> Value {
    json!({
        "object": "plugin",
        "namespace": "first-party",
        "name": entry.manifest.name,
        "kind": entry.manifest.kind,
        "version": entry.manifest.version,
        "sha256": entry.sha256,
        "grants": entry.grants,
    })
}

pub(super) fn registry_error(e: RegistryError) -> ApiError {
    let message = e.to_string();
    match e {
        RegistryError::NotInstalled(_) => ApiError::not_found(message),
        RegistryError::AlreadyInstalled { .. } => {
            let mut error = ApiError::bad_request("plugin_exists", message);
            error.status = StatusCode::CONFLICT;
            error
        }
        RegistryError::TooLarge(_) => ApiError::too_large(message),
        RegistryError::Manifest(_)
        | RegistryError::Plugin(_)
        | RegistryError::Truncated { .. }
        | RegistryError::InvalidNamespace(_)
        | RegistryError::HostNotRequested { .. } => {
            ApiError::bad_request("invalid_plugin", message)
        }
        RegistryError::Open { .. } | RegistryError::Store(_) | RegistryError::Corrupt(_) => {
            ApiError::internal(message)
        }
    }
}
