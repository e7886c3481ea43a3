//! Dataset jobs over HTTP ([`crate::jobs`]).
//!
//! - `POST /v1/jobs` (a spec as JSON) → the job; submitting the same spec again returns the
//!   same job (resumed if it was interrupted), not a second one;
//! - `GET /v1/jobs`, `GET /v1/jobs/{id}`: state, counts, throughput and ETA;
//! - `GET /v1/jobs/{id}/events`: server-sent progress events until the job stops;
//! - `GET /v1/jobs/{id}/records?format=jsonl|csv|md`, `GET /v1/jobs/{id}/card`;
//! - `POST /v1/jobs/{id}/cancel`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::error::ApiError;
use crate::jobs::{Format, Job, JobError, Owner, Runner, Spec, SpecError, export};
use crate::tenancy::Caller;

/// Largest spec body (its strategy settings may hold seed data inline).
pub const MAX_BODY_BYTES: usize = 64 << 20;

fn runner(state: &AppState) -> Result<Arc<Runner>, ApiError> {
    state
        .jobs
        .clone()
        .ok_or_else(|| ApiError::unavailable("dataset jobs are not available: the job store could not be opened (see the server log)"))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let runner = runner(&state)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_json", "the body is not UTF-8"))?;
    let spec = Spec::parse(text).map_err(spec_error)?;
    if !spec.strategy.files.is_empty() {
        return Err(ApiError::invalid(
            "strategy.files",
            "the server does not read client paths; put the records in strategy.config",
        ));
    }
    let owner = Owner {
        tenant: caller.tenant.id.clone(),
        key: caller.key_id.clone(),
    };
    let job = blocking(move || {
        let job = runner.create(spec, owner)?;
        if !job.state.is_final() && runner.progress(&job.id).is_none() {
            drop(runner.start(&job.id)?);
        }
        Ok(job)
    })
    .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(job_json(&state, &job)),
    )
        .into_response())
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let runner = runner(&state)?;
    let jobs = runner.store().jobs().map_err(store_error)?;
    let data: Vec<Value> = jobs
        .iter()
        .filter(|j| j.owner.tenant == caller.tenant.id)
        .map(|j| job_json(&state, j))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = find(&state, &caller, &id)?;
    Ok(Json(job_json(&state, &job)))
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let runner = runner(&state)?;
    find(&state, &caller, &id)?;
    let job = runner.cancel(&id).map_err(job_error)?;
    Ok(Json(job_json(&state, &job)))
}

#[derive(Deserialize)]
pub struct RecordsQuery {
    #[serde(default)]
    format: Option<String>,
}

pub async fn records(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<RecordsQuery>,
) -> Result<Response, ApiError> {
    let format: Format = query
        .format
        .as_deref()
        .unwrap_or("jsonl")
        .parse()
        .map_err(|e: SpecError| ApiError::invalid("format", e.to_string()))?;
    let job = find(&state, &caller, &id)?;
    let runner = runner(&state)?;
    let records = export::records(runner.store(), &job).map_err(store_error)?;
    let mut bytes = Vec::new();
    export::write(format, &job, &records, &mut bytes)
        .map_err(|e| ApiError::internal(format!("rendering the records: {e}")))?;
    let content_type = match format {
        Format::Jsonl => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Md => "text/markdown; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// The dataset card (JSON); its corpus metrics are computed over the records now.
pub async fn card(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = find(&state, &caller, &id)?;
    let runner = runner(&state)?;
    let card = blocking(move || {
        let records = export::records(runner.store(), &job)?;
        let scope = runner.scope(&job.owner.tenant)?;
        let corpus = export::corpus_metrics(runner.catalog(), &scope, &job, &records);
        Ok(export::card(&job, &records, corpus, &[]))
    })
    .await?;
    Ok(Json(card))
}

/// Progress events (`data:` a JSON snapshot) until the job stops; the last one carries its
/// final state. A job not running now gets one event.
pub async fn events(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = find(&state, &caller, &id)?;
    let runner = runner(&state)?;
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(16);
    let receiver = runner.progress(&id);
    tokio::spawn(async move {
        let send = |value: Value| {
            SseEvent::default()
                .event("progress")
                .data(value.to_string())
        };
        let Some(mut progress) = receiver else {
            let _ = tx.send(Ok(send(final_event(&job)))).await;
            return;
        };
        loop {
            let snapshot =
                serde_json::to_value(&*progress.borrow_and_update()).unwrap_or(Value::Null);
            if tx.send(Ok(send(snapshot))).await.is_err() {
                return;
            }
            if progress.changed().await.is_err() {
                break;
            }
        }
        // The sender is gone: the job stopped and stored its end.
        if let Ok(Some(job)) = runner.store().job(&job.id) {
            let _ = tx.send(Ok(send(final_event(&job)))).await;
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn final_event(job: &Job) -> Value {
    json!({
        "id": job.id,
        "state": job.state,
        "target": job.spec.records,
        "counts": job.counts,
        "usage": job.usage,
    })
}

/// Job `id` of the caller's tenant: another tenant's job is as absent as one that never
/// existed (404, not 403, so ids tell nothing).
fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    runner(state)?
        .store()
        .job(id)
        .map_err(store_error)?
        .filter(|job| job.owner.tenant == caller.tenant.id)
        .ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))
}

/// The job as the API shows it, with live throughput and ETA while it runs.
fn job_json(state: &AppState, job: &Job) -> Value {
    let mut value = serde_json::to_value(job).unwrap_or(Value::Null);
    value["object"] = json!("dataset.job");
    let progress = state
        .jobs
        .as_ref()
        .and_then(|r| r.progress(&job.id))
        .map(|p| p.borrow().clone());
    if let Some(p) = progress {
        value["counts"] = serde_json::to_value(&p.counts).unwrap_or(Value::Null);
        value["throughput"] = json!({
            "records_per_s": p.records_per_s,
            "completion_tokens_per_s": p.tokens_per_s,
            "eta_s": p.eta_s,
        });
    }
    value
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("job task failed: {e}")))?
        .map_err(job_error)
}

fn spec_error(e: SpecError) -> ApiError {
    let message = e.to_string();
    let param = match &e {
        SpecError::Field { field, .. } => Some(field.clone()),
        SpecError::Parse(m) => m.split_once(':').map(|(p, _)| p.to_owned()),
        SpecError::File { .. } => None,
    };
    let mut error = ApiError::bad_request("invalid_spec", message);
    error.param = param;
    error
}

fn job_error(e: JobError) -> ApiError {
    match e {
        JobError::Spec(e) => spec_error(e),
        JobError::NotFound(id) => ApiError::not_found(format!("no job `{id}`")),
        JobError::Strategy { .. } | JobError::Provider { .. } | JobError::Validation(_) => {
            ApiError::bad_request("invalid_spec", e.to_string())
        }
        JobError::TooLarge { .. } => {
            let mut error = ApiError::bad_request("job_too_large", e.to_string());
            error.param = Some("records".into());
            error
        }
        JobError::Final { .. } | JobError::Running(_) => {
            ApiError::bad_request("job_state", e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

fn store_error(e: crate::jobs::StoreError) -> ApiError {
    ApiError::internal(e.to_string())
}
