//! `POST /v1/validate`: validator plugins over a batch of samples, one merged report.
//!
//! Body: `{"samples": [text | {"text", "references"}], "references"?: [text | [text]],
//! "validators": [name | {"name", "config"?, "action"?}]}`. `references`, when given, holds
//! one entry per sample (a text or a list of texts). The answer is
//! [`crate::validation::Report`] with `"object": "validation"`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::error::ApiError;
use super::params::Body;
use crate::plugins::validator::Sample;
use crate::plugins::{GenerationPolicy, TokenUsage, TrapKind};
use crate::tenancy::{Caller, Usage};
use crate::validation::{Step, ValidationError, validate_with as run};

/// Most samples one call takes.
pub const MAX_SAMPLES: usize = 100_000;
/// Most validators one call runs.
const MAX_VALIDATORS: usize = 32;
/// Largest request body (the route's limit; the default 2 MiB is too small for a dataset).
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// Validation runs at once, over all tenants: each holds a blocking thread and plugin
/// instances (up to their memory caps).
const SLOTS: usize = 4;
/// Validation runs of one tenant at once: a tenant whose validators run to their deadline
/// holds at most this many slots, and the others stay free for everyone else.
const SLOTS_PER_TENANT: usize = 2;

/// Who may run validators now: more runs wait here.
pub struct Slots {
    all: Arc<Semaphore>,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            all: Arc::new(Semaphore::new(SLOTS)),
            tenants: Mutex::default(),
        }
    }
}

impl Slots {
    /// A slot for `tenant`: first one of its own, then one of all.
    async fn acquire(&self, tenant: &str) -> Result<[OwnedSemaphorePermit; 2], ApiError> {
        let own = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                tenants
                    .entry(tenant.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(SLOTS_PER_TENANT))),
            )
        };
        let closed = |_| ApiError::unavailable("the server is shutting down");
        let own = own.acquire_owned().await.map_err(closed)?;
        let all = Arc::clone(&self.all)
            .acquire_owned()
            .await
            .map_err(closed)?;
        Ok([own, all])
    }
}

pub async fn validate(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut body = Body::parse(&body, &["samples", "references", "validators"])?;
    let samples = samples(
        body.require("samples")?,
        body.take::<Vec<Value>>("references")?,
    )?;
    let steps = steps(body.require("validators")?)?;
    let _slot = state.validation_slots.acquire(&caller.tenant.id).await?;
    let catalog = Arc::clone(&state.catalog);
    let scope = caller.tenant.plugin_scope();
    // The validators' own model work is the caller's usage too.
    let used = Arc::new(TokenUsage::default());
    let policy = GenerationPolicy {
        usage: Some(Arc::clone(&used)),
        ..GenerationPolicy::default()
    };
    let report =
        tokio::task::spawn_blocking(move || run(&catalog, &scope, &steps, samples, &policy))
            .await
            .map_err(|e| ApiError::internal(format!("validation task failed: {e}")))?
            .map_err(api_error);
    let usage = Usage {
        prompt_tokens: used.prompt_tokens.load(Ordering::Relaxed),
        completion_tokens: used.completion_tokens.load(Ordering::Relaxed),
        ..Usage::default()
    };
    state
        .tenancy
        .account(&caller.tenant.id, &caller.key_id, &usage);
    let mut answer = serde_json::to_value(report?)
        .map_err(|e| ApiError::internal(format!("rendering the report: {e}")))?;
    answer["object"] = json!("validation");
    Ok(Json(answer))
}

fn samples(items: Vec<Value>, references: Option<Vec<Value>>) -> Result<Vec<Sample>, ApiError> {
    if items.is_empty() || items.len() > MAX_SAMPLES {
        return Err(ApiError::invalid(
            "samples",
            format!("give 1 to {MAX_SAMPLES} samples"),
        ));
    }
    let mut samples = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| sample(i, item))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(references) = references {
        if references.len() != samples.len() {
            return Err(ApiError::invalid(
                "references",
                format!(
                    "{} references for {} samples (give one entry per sample)",
                    references.len(),
                    samples.len()
                ),
            ));
        }
        for (i, (sample, refs)) in samples.iter_mut().zip(references).enumerate() {
            let param = format!("references[{i}]");
            sample.references.extend(texts(&param, refs)?);
        }
    }
    Ok(samples)
}

fn sample(i: usize, item: Value) -> Result<Sample, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Full {
        text: String,
        #[serde(default)]
        references: Vec<String>,
    }
    let param = format!("samples[{i}]");
    match item {
        Value::String(text) => Ok(Sample {
            text,
            references: Vec::new(),
        }),
        item @ Value::Object(_) => {
            let full: Full = serde_json::from_value(item)
                .map_err(|e| ApiError::invalid(&param, format!("`{param}`: {e}")))?;
            Ok(Sample {
                text: full.text,
                references: full.references,
            })
        }
        _ => Err(ApiError::invalid(
            &param,
            format!("`{param}` must be a text or {{\"text\", \"references\"}}"),
        )),
    }
}

/// A text or a list of texts.
fn texts(param: &str, value: Value) -> Result<Vec<String>, ApiError> {
    match value {
        Value::String(text) => Ok(vec![text]),
        value => serde_json::from_value(value).map_err(|_| {
            ApiError::invalid(
                param,
                format!("`{param}` must be a text or a list of texts"),
            )
        }),
    }
}

fn steps(items: Vec<Value>) -> Result<Vec<Step>, ApiError> {
    if items.is_empty() || items.len() > MAX_VALIDATORS {
        return Err(ApiError::invalid(
            "validators",
            format!("give 1 to {MAX_VALIDATORS} validators"),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let param = format!("validators[{i}]");
            match item {
                Value::String(name) => Ok(Step {
                    name,
                    config: None,
                    action: Default::default(),
                }),
                item => serde_json::from_value(item)
                    .map_err(|e| ApiError::invalid(&param, format!("`{param}`: {e}"))),
            }
        })
        .collect()
}

fn api_error(e: ValidationError) -> ApiError {
    let message = e.to_string();
    if let Some(limit) = e.exceeded_limit() {
        let limit = match limit {
            TrapKind::OutOfMemory => "memory",
            TrapKind::Fuel => "fuel",
            _ => "time",
        };
        return ApiError::too_large(format!(
            "{message} (the batch exceeded the validator's {limit} limit: send fewer or \
             shorter samples per request)"
        ));
    }
    match &e {
        ValidationError::UnknownValidator { .. } | ValidationError::NotARewriter(_) => ApiError {
            code: Some("unknown_validator"),
            ..ApiError::invalid("validators", message)
        },
        _ if e.is_caller_error() => ApiError::bad_request("validator_rejected_input", message),
        _ => ApiError::internal(message),
    }
}
