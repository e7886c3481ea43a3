//! `GET /v1/usage[?tenant=ID]`: what a tenant used (requests, rate-limited requests, prompt
//! and completion tokens, job records), in total and per key, with its limits and where its
//! rate-limit buckets stand. A tenant sees its own; only an admin names another (for anyone
//! else another tenant's usage is as absent as a tenant that does not exist).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::tenancy::{Caller, Scope, Usage, keys};

#[derive(Deserialize)]
pub struct UsageQuery {
    tenant: Option<String>,
}

pub async fn usage(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = query.tenant.unwrap_or_else(|| caller.tenant.id.clone());
    let absent = || ApiError::not_found("no tenant with that id");
    if id != caller.tenant.id && !caller.allows(Scope::Admin) {
        return Err(absent());
    }
    let tenant = state.tenancy.tenant(&id).map_err(|_| absent())?;
    let rows = state
        .tenancy
        .store()
        .usage(Some(&id))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut total = Usage::default();
    let per_key: Vec<Value> = rows
        .iter()
        .map(|(_, key, usage)| {
            total.add(usage);
            let mut row = serde_json::to_value(usage).expect("usage is JSON");
            row["key"] = json!(display_key(key));
            row
        })
        .collect();
    let rates = state.tenancy.limiter().view(&tenant.id, &tenant.limits);
    Ok(Json(json!({
        "object": "usage",
        "tenant": tenant.id,
        "total": total,
        "keys": per_key,
        "limits": tenant.limits,
        "requests_remaining": rates.requests.map(|b| b.remaining),
        "tokens_remaining": rates.tokens.map(|b| b.remaining),
    })))
}

/// A key's public prefix (`cli` for work the operator's CLI did).
fn display_key(id: &str) -> String {
    if id.len() == 12 {
        keys::visible_prefix(id)
    } else {
        id.to_owned()
    }
}
