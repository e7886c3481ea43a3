//! The operator's API (`admin` scope): tenants, keys, shared plugins and grants, the audit
//! log.
//!
//! - `POST /v1/admin/tenants` `{"id", "name"?, "limits"?}`; `GET /v1/admin/tenants[/{id}]`;
//!   `PATCH /v1/admin/tenants/{id}` `{"name"?, "limits"?}` (limits merged key by key);
//!   `DELETE /v1/admin/tenants/{id}` (revokes its keys, removes its plugins);
//! - `POST /v1/admin/keys` `{"tenant", "scopes", "name"?, "expires_in"?}` answers the key
//!   once; `GET /v1/admin/keys[?tenant=]`; `DELETE /v1/admin/keys/{id}` revokes;
//! - `POST /v1/admin/plugins?namespace=shared|TENANT&grant=requested&replace=true` (the
//!   component as the body); `GET /v1/admin/plugins?namespace=`;
//!   `POST /v1/admin/plugins/{namespace}/{name}/grants` `{"model"?, "outbound_hosts"?,
//!   "requested"?}`; `DELETE /v1/admin/plugins/{namespace}/{name}`;
//! - `GET /v1/admin/audit?after=&limit=&tenant=&action=`: the audit log, oldest first.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::params::Body;
use super::plugins::{add, entry_json, registry_error, uninstall};
use crate::plugins::GrantRequest;
use crate::plugins::registry::SHARED;
use crate::tenancy::{Caller, Scope, TenancyError, Tenant, TenantLimits, now};

/// Most audit events one call returns.
const MAX_AUDIT_PAGE: usize = 1000;

fn tenancy_error(e: TenancyError) -> ApiError {
    let message = e.to_string();
    match e {
        TenancyError::NoTenant(_) | TenancyError::NoKey(_) => ApiError::not_found(message),
        TenancyError::TenantExists(_) => {
            let mut error = ApiError::bad_request("tenant_exists", message);
            error.status = StatusCode::CONFLICT;
            error
        }
        TenancyError::Invalid(_) => ApiError::bad_request("invalid_value", message),
        TenancyError::Store(_) | TenancyError::Corrupt(_) => ApiError::internal(message),
    }
}

pub async fn create_tenant(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let mut body = Body::parse(&body, &["id", "name", "limits"])?;
    let id: String = body.require("id")?;
    let name = body.take::<String>("name")?.unwrap_or_else(|| id.clone());
    let limits = match body.take::<Value>("limits")? {
        Some(given) => merged_limits(&TenantLimits::default(), given)?,
        None => TenantLimits::default(),
    };
    let tenant = state
        .tenancy
        .create_tenant(&caller.actor(), &id, &name, limits)
        .map_err(tenancy_error)?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// `base` with the keys of `given` replaced (unknown keys are an error).
fn merged_limits(base: &TenantLimits, given: Value) -> Result<TenantLimits, ApiError> {
    let Value::Object(given) = given else {
        return Err(ApiError::invalid("limits", "expected an object"));
    };
    let mut merged = serde_json::to_value(base).expect("limits are JSON");
    for (key, value) in given {
        merged[key] = value;
    }
    serde_json::from_value(merged).map_err(|e| ApiError::invalid("limits", e.to_string()))
}

pub async fn list_tenants(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let tenants = state.tenancy.store().tenants().map_err(tenancy_error)?;
    Ok(Json(json!({ "object": "list", "data": tenants })))
}

pub async fn get_tenant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(state.tenancy.tenant(&id).map_err(tenancy_error)?))
}

pub async fn update_tenant(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Tenant>, ApiError> {
    let mut body = Body::parse(&body, &["limits"])?;
    let tenant = state.tenancy.tenant(&id).map_err(tenancy_error)?;
    let limits = merged_limits(&tenant.limits, body.require("limits")?)?;
    let tenant = state
        .tenancy
        .set_limits(&caller.actor(), &id, limits)
        .map_err(tenancy_error)?;
    Ok(Json(tenant))
}

pub async fn delete_tenant(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = caller.actor();
    let tenant = state
        .tenancy
        .delete_tenant(&actor, &id)
        .map_err(tenancy_error)?;
    let plugins = state.registry.list(&id).map_err(registry_error)?;
    for plugin in plugins {
        uninstall(&state, &actor, &id, &plugin.name)?;
    }
    Ok(Json(json!({ "id": tenant.id, "deleted": true })))
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut body = Body::parse(&body, &["tenant", "scopes", "name", "expires_in"])?;
    let tenant: String = body.require("tenant")?;
    let scopes = body
        .require::<Vec<String>>("scopes")?
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(|e| ApiError::invalid("scopes", e.to_string()))?;
    let name = body.take::<String>("name")?.unwrap_or_default();
    let expires_at = match body.take::<String>("expires_in")? {
        None => None,
        Some(text) => {
            let after: Duration = humantime::parse_duration(&text).map_err(|e| {
                ApiError::invalid("expires_in", format!("`{text}`: {e} (e.g. `30d`, `12h`)"))
            })?;
            Some(now().saturating_add(after.as_secs()))
        }
    };
    let tenancy = Arc::clone(&state.tenancy);
    let actor = caller.actor();
    // argon2 is tens of milliseconds of CPU: off the async runtime.
    let (key, full) = tokio::task::spawn_blocking(move || {
        tenancy.create_key(&actor, &tenant, &name, scopes, expires_at)
    })
    .await
    .map_err(|e| ApiError::internal(format!("key task: {e}")))?
    .map_err(tenancy_error)?;
    let mut answer = key.summary();
    answer["key"] = json!(full);
    Ok((StatusCode::CREATED, Json(answer)))
}

#[derive(Deserialize)]
pub struct TenantFilter {
    tenant: Option<String>,
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<TenantFilter>,
) -> Result<Json<Value>, ApiError> {
    let keys = state
        .tenancy
        .store()
        .keys(filter.tenant.as_deref())
        .map_err(tenancy_error)?;
    let data: Vec<Value> = keys.iter().map(|k| k.summary()).collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = state
        .tenancy
        .revoke_key(&caller.actor(), &id)
        .map_err(tenancy_error)?;
    Ok(Json(key.summary()))
}

#[derive(Deserialize)]
pub struct InstallQuery {
    #[serde(default)]
    namespace: Option<String>,
    /// `requested`: grant what the manifest asks for; absent: no capabilities.
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    replace: bool,
}

pub async fn install_plugin(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<InstallQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let namespace = namespace(&state, query.namespace.as_deref())?;
    let request = match query.grant.as_deref() {
        None => GrantRequest::default(),
        Some("requested") => GrantRequest {
            requested: true,
            ..GrantRequest::default()
        },
        Some(other) => {
            return Err(ApiError::invalid(
                "grant",
                format!("`{other}`: give `requested`, or grant later through .../grants"),
            ));
        }
    };
    let entry = add(
        &state,
        &caller.actor(),
        &namespace,
        body,
        request,
        query.replace,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(entry_json(&entry))))
}

/// `shared`, or an existing tenant's id.
fn namespace(state: &AppState, given: Option<&str>) -> Result<String, ApiError> {
    match given {
        None | Some(SHARED) => Ok(SHARED.to_owned()),
        Some(tenant) => {
            state.tenancy.tenant(tenant).map_err(tenancy_error)?;
            Ok(tenant.to_owned())
        }
    }
}

#[derive(Deserialize)]
pub struct NamespaceQuery {
    namespace: Option<String>,
}

pub async fn list_plugins(
    State(state): State<Arc<AppState>>,
    Query(query): Query<NamespaceQuery>,
) -> Result<Json<Value>, ApiError> {
    let namespace = namespace(&state, query.namespace.as_deref())?;
    let entries = state.registry.list(&namespace).map_err(registry_error)?;
    let data: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn grant_plugin(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut body = Body::parse(&body, &["model", "outbound_hosts", "requested"])?;
    let request = GrantRequest {
        model: body.take("model")?.unwrap_or(false),
        outbound_hosts: body.take("outbound_hosts")?.unwrap_or_default(),
        requested: body.take("requested")?.unwrap_or(false),
    };
    let entry = state
        .registry
        .set_grants(&namespace, &name, &request)
        .map_err(registry_error)?;
    let detail = serde_json::to_string(&entry.grants).unwrap_or_default();
    let tenant = (namespace != SHARED).then_some(namespace.as_str());
    state.tenancy.audit(
        &caller.actor(),
        tenant,
        "plugin.grant",
        &format!("{namespace}/{name}"),
        "ok",
        Some(&detail),
    );
    Ok(Json(entry_json(&entry)))
}

pub async fn remove_plugin(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let entry = uninstall(&state, &caller.actor(), &namespace, &name)?;
    Ok(Json(entry_json(&entry)))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    tenant: Option<String>,
    action: Option<String>,
}

pub async fn audit(
    State(state): State<Arc<AppState>>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_AUDIT_PAGE);
    let events = state
        .tenancy
        .store()
        .audit(query.after, limit, |e| {
            query
                .tenant
                .as_deref()
                .is_none_or(|t| e.tenant.as_deref() == Some(t))
                && query.action.as_deref().is_none_or(|a| e.action == a)
        })
        .map_err(tenancy_error)?;
    Ok(Json(json!({ "object": "list", "data": events })))
}
