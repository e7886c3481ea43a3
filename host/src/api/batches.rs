//! OpenAI's Files and Batch APIs, for users who already have JSONL request files:
//! `POST /v1/files` (multipart, purpose `batch`), `GET /v1/files[/{id}[/content]]`,
//! `POST /v1/batches`, `GET /v1/batches[/{id}]`, `POST /v1/batches/{id}/cancel`.
//!
//! A batch runs on the job store's durability rules: every finished line is committed to
//! sled (flushed) before it is counted, a batch interrupted by a crash resumes when the
//! server starts again without re-running the lines it has, and the output and error files
//! are written in input order once all lines are done (or with what was done when it is
//! cancelled). Lines run through the same code as `POST /v1/chat/completions`, at background
//! priority. Output lines have OpenAI's shape:
//! `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error": null}`;
//! requests answered with an error status go to the error file.
//!
//! Files and batches belong to the tenant that created them (their `owner`); another
//! tenant's ids answer 404, as ids that never existed do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::AppState;
use super::error::ApiError;
use super::openai::batch_chat_completion;
use super::params::Body;
use crate::jobs::{Owner, Store, now};
use crate::tenancy::Caller;

/// Largest uploaded file (the route's body limit).
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// Most request lines in one batch.
const MAX_LINES: usize = 50_000;
/// Lines of one batch running at once.
const CONCURRENCY: usize = 16;
/// The endpoints a batch may target.
const ENDPOINTS: [&str; 1] = ["/v1/chat/completions"];

const FILES: &str = "files";
const FILE_DATA: &str = "file-data";
const BATCHES: &str = "batches";

/// An uploaded or produced file, as OpenAI describes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    pub object: String,
    pub bytes: u64,
    pub created_at: u64,
    pub filename: String,
    pub purpose: String,
    /// The tenant it belongs to (and the key that made it).
    #[serde(default)]
    pub owner: Owner,
}

/// A batch, as OpenAI describes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub object: String,
    pub endpoint: String,
    pub errors: Option<Value>,
    pub input_file_id: String,
    pub completion_window: String,
    /// validating, failed, in_progress, finalizing, completed, cancelling, cancelled.
    pub status: String,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: u64,
    pub in_progress_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub finalizing_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub failed_at: Option<u64>,
    pub expired_at: Option<u64>,
    pub cancelling_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub request_counts: Counts,
    pub metadata: Option<Map<String, Value>>,
    /// The tenant it belongs to; its lines are charged to the key that made it.
    #[serde(default)]
    pub owner: Owner,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

/// One request line of an input file.
struct Line {
    custom_id: String,
    body: Vec<u8>,
}

/// Batches running in this process (their cancel flags).
#[derive(Default)]
pub struct Batches {
    running: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
}

fn store(state: &AppState) -> Result<&Store, ApiError> {
    state
        .jobs
        .as_ref()
        .map(|r| r.store())
        .ok_or_else(|| ApiError::unavailable("files and batches are not available: the job store could not be opened (see the server log)"))
}

fn store_error(e: crate::jobs::StoreError) -> ApiError {
    ApiError::internal(e.to_string())
}

fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}{:016x}{:08x}",
        crate::engine::fresh_seed(),
        now() as u32
    )
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    mut multipart: Multipart,
) -> Result<Json<FileObject>, ApiError> {
    let (mut purpose, mut file) = (None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request("invalid_multipart", e.to_string()))?
    {
        match field.name() {
            Some("purpose") => {
                purpose = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| ApiError::invalid("purpose", e.to_string()))?,
                )
            }
            Some("file") => {
                let name = field.file_name().unwrap_or("upload.jsonl").to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::invalid("file", e.to_string()))?;
                file = Some((name, bytes));
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown form field `{other}`"),
                ));
            }
            None => {}
        }
    }
    let purpose = purpose.ok_or_else(|| ApiError::invalid("purpose", "`purpose` is required"))?;
    if purpose != "batch" {
        return Err(ApiError::invalid(
            "purpose",
            format!("`{purpose}` is not supported; this server takes files for `batch`"),
        ));
    }
    let (filename, bytes) = file.ok_or_else(|| ApiError::invalid("file", "`file` is required"))?;
    let object = FileObject {
        id: new_id("file-"),
        object: "file".into(),
        bytes: bytes.len() as u64,
        created_at: now(),
        filename,
        purpose,
        owner: owner_of(&caller),
    };
    let store = store(&state)?;
    store
        .put_bytes(FILE_DATA, &object.id, &bytes)
        .map_err(store_error)?;
    store
        .put_object(FILES, &object.id, &object)
        .map_err(store_error)?;
    Ok(Json(object))
}

pub async fn list_files(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let files: Vec<FileObject> = store(&state)?.objects(FILES).map_err(store_error)?;
    let files: Vec<_> = files
        .into_iter()
        .filter(|f| f.owner.tenant == caller.tenant.id)
        .collect();
    Ok(Json(
        json!({"object": "list", "data": files, "has_more": false}),
    ))
}

pub async fn file(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<FileObject>, ApiError> {
    Ok(Json(find_file(&state, &caller, &id)?))
}

pub async fn file_content(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    find_file(&state, &caller, &id)?;
    let bytes = store(&state)?
        .bytes(FILE_DATA, &id)
        .map_err(store_error)?
        .unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], bytes).into_response())
}

fn find_file(state: &AppState, caller: &Caller, id: &str) -> Result<FileObject, ApiError> {
    store(state)?
        .object::<FileObject>(FILES, id)
        .map_err(store_error)?
        .filter(|f| f.owner.tenant == caller.tenant.id)
        .ok_or_else(|| ApiError::not_found(format!("no file `{id}`")))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Batch>, ApiError> {
    let mut body = Body::parse(
        &body,
        &["input_file_id", "endpoint", "completion_window", "metadata"],
    )?;
    let input_file_id: String = body.require("input_file_id")?;
    let endpoint: String = body.require("endpoint")?;
    let window: String = body.require("completion_window")?;
    let metadata = body.take::<Map<String, Value>>("metadata")?;
    if !ENDPOINTS.contains(&endpoint.as_str()) {
        return Err(ApiError::invalid(
            "endpoint",
            format!("`{endpoint}` is not supported; use one of {ENDPOINTS:?}"),
        ));
    }
    if window != "24h" {
        return Err(ApiError::invalid(
            "completion_window",
            "only `24h` is supported",
        ));
    }
    let file = find_file(&state, &caller, &input_file_id)?;
    if file.purpose != "batch" {
        return Err(ApiError::invalid(
            "input_file_id",
            "the file's purpose is not `batch`",
        ));
    }
    let store = store(&state)?;
    let content = store
        .bytes(FILE_DATA, &input_file_id)
        .map_err(store_error)?
        .unwrap_or_default();
    let created = now();
    let mut batch = Batch {
        id: new_id("batch_"),
        object: "batch".into(),
        endpoint: endpoint.clone(),
        errors: None,
        input_file_id,
        completion_window: window,
        status: "validating".into(),
        output_file_id: None,
        error_file_id: None,
        created_at: created,
        in_progress_at: None,
        expires_at: Some(created + 24 * 3600),
        finalizing_at: None,
        completed_at: None,
        failed_at: None,
        expired_at: None,
        cancelling_at: None,
        cancelled_at: None,
        request_counts: Counts::default(),
        metadata,
        owner: owner_of(&caller),
    };
    match parse_lines(&content, &endpoint) {
        Ok(lines) => {
            batch.request_counts.total = lines.len() as u64;
            batch.status = "in_progress".into();
            batch.in_progress_at = Some(now());
            store
                .put_object(BATCHES, &batch.id, &batch)
                .map_err(store_error)?;
            start(&state, batch.id.clone());
        }
        Err(errors) => {
            batch.status = "failed".into();
            batch.failed_at = Some(now());
            batch.errors = Some(json!({"object": "list", "data": errors}));
            store
                .put_object(BATCHES, &batch.id, &batch)
                .map_err(store_error)?;
        }
    }
    Ok(Json(batch))
}

/// The request lines of an input file, or every problem found (OpenAI's error objects, with
/// line numbers from 1).
fn parse_lines(content: &[u8], endpoint: &str) -> Result<Vec<Line>, Vec<Value>> {
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    let text = String::from_utf8_lossy(content);
    for (n, raw) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line = n + 1;
        let mut error = |code: &str, message: String| {
            errors.push(json!({"code": code, "message": message, "line": line, "param": null}));
        };
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(raw) else {
            error(
                "invalid_json_line",
                format!("line {line} is not a JSON object"),
            );
            continue;
        };
        let custom_id = object
            .get("custom_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let method = object.get("method").and_then(Value::as_str);
        let url = object.get("url").and_then(Value::as_str);
        match (custom_id, method, url, object.get("body")) {
            (None, ..) => error(
                "missing_required_parameter",
                format!("line {line}: `custom_id` is required"),
            ),
            (_, m, ..) if m != Some("POST") => error(
                "invalid_value",
                format!("line {line}: `method` must be POST"),
            ),
            (_, _, u, _) if u != Some(endpoint) => error(
                "mismatched_endpoint",
                format!("line {line}: `url` must be the batch's endpoint {endpoint}"),
            ),
            (_, _, _, Some(body)) if !body.is_object() => error(
                "invalid_value",
                format!("line {line}: `body` must be an object"),
            ),
            (Some(custom_id), _, _, Some(body)) => {
                if !seen.insert(custom_id.clone()) {
                    error(
                        "duplicate_custom_id",
                        format!("line {line}: `custom_id` {custom_id} repeats an earlier line"),
                    );
                    continue;
                }
                lines.push(Line {
                    custom_id,
                    body: serde_json::to_vec(body).expect("JSON"),
                });
            }
            (_, _, _, None) => error(
                "missing_required_parameter",
                format!("line {line}: `body` is required"),
            ),
        }
    }
    if lines.is_empty() && errors.is_empty() {
        errors.push(json!({"code": "empty_file", "message": "the input file has no request", "line": null, "param": null}));
    }
    if lines.len() > MAX_LINES {
        errors.push(json!({"code": "too_many_requests", "message": format!("{} requests; at most {MAX_LINES} per batch", lines.len()), "line": null, "param": null}));
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let batches: Vec<Batch> = store.objects(BATCHES).map_err(store_error)?;
    let data: Vec<Batch> = batches
        .into_iter()
        .filter(|b| b.owner.tenant == caller.tenant.id)
        .map(|b| with_counts(store, b))
        .collect::<Result<_, _>>()?;
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": false}),
    ))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    let batch = find(&state, &caller, &id)?;
    Ok(Json(with_counts(store(&state)?, batch)?))
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    let mut batch = find(&state, &caller, &id)?;
    let store = store(&state)?;
    if batch.status == "in_progress" || batch.status == "validating" {
        batch.status = "cancelling".into();
        batch.cancelling_at = Some(now());
        store
            .put_object(BATCHES, &id, &batch)
            .map_err(store_error)?;
        let running = state
            .batches
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match running.get(&id) {
            Some(flag) => flag.store(true, Ordering::Relaxed),
            // Not running here (an interrupted batch not resumed): finish it now.
            None => {
                drop(running);
                finish(store, &mut batch).map_err(store_error)?;
            }
        }
    }
    Ok(Json(with_counts(store, batch)?))
}

fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Batch, ApiError> {
    find_batch(state, id)?
        .filter(|b| b.owner.tenant == caller.tenant.id)
        .ok_or_else(|| ApiError::not_found(format!("no batch `{id}`")))
}

fn find_batch(state: &AppState, id: &str) -> Result<Option<Batch>, ApiError> {
    store(state)?.object(BATCHES, id).map_err(store_error)
}

fn owner_of(caller: &Caller) -> Owner {
    Owner {
        tenant: caller.tenant.id.clone(),
        key: caller.key_id.clone(),
    }
}

/// Batch `id` whoever owns it (for running it).
fn stored_batch(state: &AppState, id: &str) -> Result<Batch, ApiError> {
    find_batch(state, id)?.ok_or_else(|| ApiError::not_found(format!("no batch `{id}`")))
}

/// A running batch's counts come from its committed results.
fn with_counts(store: &Store, mut batch: Batch) -> Result<Batch, ApiError> {
    if matches!(batch.status.as_str(), "in_progress" | "cancelling") {
        let results: Vec<(u64, Value)> = store
            .results(&results_tree(&batch.id))
            .map_err(store_error)?;
        batch.request_counts.completed =
            results.iter().filter(|(_, r)| succeeded(r)).count() as u64;
        batch.request_counts.failed = results.len() as u64 - batch.request_counts.completed;
    }
    Ok(batch)
}

fn results_tree(id: &str) -> String {
    format!("batch-results:{id}")
}

fn succeeded(line: &Value) -> bool {
    line["response"]["status_code"] == 200
}

/// Resumes every batch an earlier process left running (at server start).
pub fn resume_all(state: &Arc<AppState>) {
    let Ok(store) = store(state) else { return };
    let Ok(batches) = store.objects::<Batch>(BATCHES) else {
        return;
    };
    for batch in batches {
        match batch.status.as_str() {
            "in_progress" => start(state, batch.id),
            "cancelling" => {
                let mut batch = batch;
                if let Err(e) = finish(store, &mut batch) {
                    tracing::warn!("batch {}: {e}", batch.id);
                }
            }
            _ => {}
        }
    }
}

/// Runs batch `id` on the async runtime.
fn start(state: &Arc<AppState>, id: String) {
    let flag = Arc::new(AtomicBool::new(false));
    state
        .batches
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), Arc::clone(&flag));
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if let Err(e) = run(&state, &id, &flag).await {
            tracing::warn!("batch {id}: {}", e.message);
        }
        state
            .batches
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    });
}

async fn run(state: &Arc<AppState>, id: &str, cancel: &AtomicBool) -> Result<(), ApiError> {
    let store = store(state)?.clone();
    let mut batch = stored_batch(state, id)?;
    // The lines are the owner's work, under its tenant's sequence limit.
    let tenant = state
        .tenancy
        .tenant(&batch.owner.tenant)
        .map_err(|e| ApiError::internal(format!("the batch's tenant: {e}")))?;
    let caller = Arc::new(Caller {
        tenant,
        key_id: batch.owner.key.clone(),
        scopes: Default::default(),
    });
    let content = store
        .bytes(FILE_DATA, &batch.input_file_id)
        .map_err(store_error)?
        .unwrap_or_default();
    let lines = parse_lines(&content, &batch.endpoint)
        .map_err(|_| ApiError::internal("the input file no longer parses"))?;
    let done: BTreeSet<u64> = store
        .results::<Value>(&results_tree(id))
        .map_err(store_error)?
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, line) in lines.into_iter().enumerate() {
        let index = index as u64;
        if done.contains(&index) {
            continue;
        }
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("never closed");
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let (state, store, caller, id) = (
            Arc::clone(state),
            store.clone(),
            Arc::clone(&caller),
            id.to_owned(),
        );
        tasks.spawn(async move {
            let _permit = permit;
            let result = batch_chat_completion(&state, &caller, &line.body).await;
            let output = output_line(&id, index, &line.custom_id, result);
            store
                .put_result(&results_tree(&id), index, &output)
                .map_err(store_error)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| ApiError::internal(format!("batch task: {e}")))??;
    }
    batch = stored_batch(state, id)?;
    finish(&store, &mut batch).map_err(store_error)
}

/// One output line: the response (or the error response) of a request line. The ids depend
/// only on (batch, line), so a resumed batch writes the same ones.
fn output_line(batch: &str, index: u64, custom_id: &str, result: Result<Value, ApiError>) -> Value {
    let digest = Sha256::digest(format!("{batch}/{index}").as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let (status, body) = match result {
        Ok(body) => (200, body),
        Err(e) => (e.status.as_u16(), e.body()),
    };
    json!({
        "id": format!("batch_req_{hex}"),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": hex, "body": body},
        "error": null,
    })
}

/// Writes the output and error files (input order) and the final status.
fn finish(store: &Store, batch: &mut Batch) -> Result<(), crate::jobs::StoreError> {
    let results: Vec<(u64, Value)> = store.results(&results_tree(&batch.id))?;
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    for (_, line) in &results {
        let target = if succeeded(line) {
            &mut output
        } else {
            &mut errors
        };
        serde_json::to_writer(&mut *target, line).expect("JSON");
        target.push(b'\n');
    }
    batch.request_counts.completed = results.iter().filter(|(_, r)| succeeded(r)).count() as u64;
    batch.request_counts.failed = results.len() as u64 - batch.request_counts.completed;
    batch.finalizing_at = Some(now());
    for (bytes, slot, name) in [
        (output, &mut batch.output_file_id, "output"),
        (errors, &mut batch.error_file_id, "errors"),
    ] {
        if bytes.is_empty() {
            continue;
        }
        let file = FileObject {
            id: new_id("file-"),
            object: "file".into(),
            bytes: bytes.len() as u64,
            created_at: now(),
            filename: format!("{}_{name}.jsonl", batch.id),
            purpose: "batch_output".into(),
            owner: batch.owner.clone(),
        };
        store.put_bytes(FILE_DATA, &file.id, &bytes)?;
        store.put_object(FILES, &file.id, &file)?;
        *slot = Some(file.id);
    }
    if batch.status == "cancelling" {
        batch.status = "cancelled".into();
        batch.cancelled_at = Some(now());
    } else {
        batch.status = "completed".into();
        batch.completed_at = Some(now());
    }
    store.put_object(BATCHES, &batch.id, batch)
}
