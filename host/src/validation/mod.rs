//! Validation: validator plugins run in order over a batch of samples, their reports merged
//! into one (`POST /v1/validate`, `textnlp validate`, and dataset jobs).
//!
//! Each step names a validator (found in the tenant's [`Catalog`]), its settings for this run, and what its verdict
//! does ([`Action`]): `drop` removes rejected samples from the kept set, `annotate` only
//! reports, `redact` replaces each sample by the validator's rewrite (PII placeholders) and
//! never drops. Every step scores every sample, dropped ones included, so each report is
//! complete; a rewrite is what later steps see. Steps are labelled by their validator's name,
//! `name#2`, `name#3`, ... when a validator runs more than once, and per-sample results are
//! keyed by label.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::plugins::catalog::{Catalog, CatalogError, PluginScope};
use crate::plugins::validator::{Metric, Sample};
use crate::plugins::{GenerationPolicy, PluginError, TrapKind};

/// What can go wrong running validators.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("unknown validator `{name}` (available: {known})")]
    UnknownValidator { name: String, known: String },
    #[error("validator `{0}` cannot redact: it does not rewrite samples")]
    NotARewriter(String),
    #[error("validator `{validator}` could not be loaded: {message}")]
    Load { validator: String, message: String },
    #[error("validator `{validator}`: {source}")]
    Plugin {
        validator: String,
        #[source]
        source: PluginError,
    },
}

impl From<CatalogError> for ValidationError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Unknown { name, known, .. } => {
                ValidationError::UnknownValidator { name, known }
            }
            CatalogError::Load { name, message, .. } => ValidationError::Load {
                validator: name,
                message,
            },
        }
    }
}

impl ValidationError {
    /// The limit a validator's call ran into (memory, time, fuel): with a validator that works,
    /// the batch was too large for it.
    pub fn exceeded_limit(&self) -> Option<TrapKind> {
        match self {
            ValidationError::Plugin {
                source: PluginError::Trap { kind, .. },
                ..
            } if matches!(
                kind,
                TrapKind::OutOfMemory | TrapKind::Timeout | TrapKind::Fuel
            ) =>
            {
                Some(*kind)
            }
            _ => None,
        }
    }

    /// Whether the request, not the host, is at fault (bad settings or samples).
    pub fn is_caller_error(&self) -> bool {
        match self {
            ValidationError::UnknownValidator { .. } | ValidationError::NotARewriter(_) => true,
            ValidationError::Plugin { source, .. } => matches!(
                source,
                PluginError::Reported { code, .. } if *code != "model"
            ),
            ValidationError::Load { .. } => false,
        }
    }
}

/// What a validator's verdict does.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Rejected samples are not kept.
    #[default]
    Drop,
    /// Verdicts are reported; nothing is dropped.
    Annotate,
    /// Samples are replaced by the validator's rewrite; nothing is dropped.
    Redact,
}

/// One validator of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The validator's name.
    pub name: String,
    /// Settings for this run (a JSON object); none: the validator's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(default)]
    pub action: Action,
}

/// The merged report of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub validators: Vec<StepReport>,
    pub samples: Vec<SampleReport>,
    pub summary: Summary,
}

/// What one validator found over the batch.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// The key of this step's per-sample results: the name, `name#k` for its k-th run.
    pub label: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub action: Action,
    /// Corpus metrics, by name.
    pub corpus: Map<String, Value>,
    /// Samples its verdict rejected (whatever the action made of that).
    pub rejected: usize,
    /// Samples it rewrote (`redact` only).
    pub rewritten: usize,
}

/// Everything about one sample.
#[derive(Clone, Debug, Serialize)]
pub struct SampleReport {
    pub index: usize,
    pub keep: bool,
    /// The text after redaction, when a `redact` step changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The first `drop` step that rejected it, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_by: Option<DroppedBy>,
    /// Per step label: its scores and verdict.
    pub results: Map<String, Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DroppedBy {
    pub validator: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub count: usize,
    pub kept: usize,
    pub dropped: usize,
    pub rewritten: usize,
}

/// Runs `steps` in order over `samples`.
pub fn validate(
    catalog: &Catalog,
    scope: &PluginScope,
    steps: &[Step],
    samples: Vec<Sample>,
) -> Result<Report, ValidationError> {
    validate_with(catalog, scope, steps, samples, &GenerationPolicy::default())
}

/// [`validate`], with the validators' model requests run under `policy` (a dataset job's
/// background priority).
pub fn validate_with(
    catalog: &Catalog,
    scope: &PluginScope,
    steps: &[Step],
    mut samples: Vec<Sample>,
    policy: &GenerationPolicy,
) -> Result<Report, ValidationError> {
    let mut reports: Vec<SampleReport> = (0..samples.len())
        .map(|index| SampleReport {
            index,
            keep: true,
            text: None,
            dropped_by: None,
            results: Map::new(),
        })
        .collect();
    let mut validators: Vec<StepReport> = Vec::with_capacity(steps.len());
    let labels = labels(steps.iter().map(|s| s.name.as_str()));
    for (step, label) in steps.iter().zip(labels) {
        validators.push(run_step(
            catalog,
            scope,
            step,
            label,
            &mut samples,
            &mut reports,
            policy,
        )?);
    }
    let kept = reports.iter().filter(|r| r.keep).count();
    let summary = Summary {
        count: reports.len(),
        kept,
        dropped: reports.len() - kept,
        rewritten: reports.iter().filter(|r| r.text.is_some()).count(),
    };
    Ok(Report {
        validators,
        samples: reports,
        summary,
    })
}

/// The label of each step of a run: its validator's name, `name#k` for the k-th run of the
/// same validator.
pub fn labels<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut runs: std::collections::BTreeMap<&str, usize> = Default::default();
    names
        .map(|name| {
            let run = runs.entry(name).or_default();
            *run += 1;
            match *run {
                1 => name.to_owned(),
                k => format!("{name}#{k}"),
            }
        })
        .collect()
}

fn run_step(
    catalog: &Catalog,
    scope: &PluginScope,
    step: &Step,
    label: String,
    samples: &mut [Sample],
    reports: &mut [SampleReport],
    policy: &GenerationPolicy,
) -> Result<StepReport, ValidationError> {
    let (entry, plugin) = catalog.validator(scope, &step.name)?;
    if step.action == Action::Redact && !plugin.rewrites() {
        return Err(ValidationError::NotARewriter(step.name.clone()));
    }
    let failed = |source| ValidationError::Plugin {
        validator: step.name.clone(),
        source,
    };
    let config = step
        .config
        .as_ref()
        .map(|c| Value::Object(c.clone()).to_string());
    let report = plugin
        .score_with(samples, config.as_deref(), policy.clone())
        .map_err(failed)?;
    let mut rejected = 0;
    for (result, sample) in report.samples.iter().zip(reports.iter_mut()) {
        let verdict = &result.verdict;
        if !verdict.keep {
            rejected += 1;
            if step.action == Action::Drop && sample.keep {
                sample.keep = false;
                sample.dropped_by = Some(DroppedBy {
                    validator: label.clone(),
                    reason: verdict.reason.clone().unwrap_or_default(),
                });
            }
        }
        let result = serde_json::json!({
            "scores": metrics_object(&result.scores),
            "keep": verdict.keep,
            "reason": verdict.reason,
        });
        sample.results.insert(label.clone(), result);
    }
    let mut rewritten = 0;
    if step.action == Action::Redact {
        let texts: Vec<String> = samples.iter().map(|s| s.text.clone()).collect();
        let rewrites = plugin
            .rewrite(&texts, config.as_deref(), policy.clone())
            .map_err(failed)?;
        for ((rewrite, sample), report) in rewrites.into_iter().zip(samples).zip(reports) {
            if let Some(text) = rewrite.filter(|t| *t != sample.text) {
                report.text = Some(text.clone());
                sample.text = text;
                rewritten += 1;
            }
        }
    }
    Ok(StepReport {
        label,
        name: step.name.clone(),
        version: entry.manifest.version.clone(),
        sha256: entry.sha256.clone(),
        action: step.action,
        corpus: metrics_object(&report.corpus),
        rejected,
        rewritten,
    })
}

/// Metrics as a JSON object (names are unique: the host checks every report).
fn metrics_object(metrics: &[Metric]) -> Map<String, Value> {
    metrics
        .iter()
        .map(|m| (m.name.clone(), Value::from(m.value)))
        .collect()
}
