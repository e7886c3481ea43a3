//! The dataset spec: what a user asks a job for, in YAML or JSON.
//!
//! Parsing is strict (unknown keys are errors) and every error names the offending field
//! (`validators[1].action: unknown variant ...`). The JSON Schema in
//! `examples/dataset-spec.schema.json` is generated from these types (`textnlp job schema`), so
//! documentation and parser cannot drift apart. Files a strategy needs (few-shot examples,
//! per-record variables) are read here, relative to the spec, and inlined into the strategy's
//! settings: plugins never see the file system.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::plugins::manifest::valid_name;
use crate::validation::{Action, Step};

/// Most records one job may ask for.
pub const MAX_RECORDS: u64 = 10_000_000;
/// Most model requests a job keeps in flight.
pub const MAX_CONCURRENCY: usize = 256;
/// Largest file a spec may inline into a strategy's settings.
const MAX_INLINED_BYTES: u64 = 64 << 20;

/// A synthetic dataset to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `[a-z0-9][a-z0-9-]{0,63}`: names the job and its exported files.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `local` (the host's model) or `provider:NAME/MODEL`: MODEL of the remote API behind
    /// provider plugin NAME (e.g. `provider:openai/gpt-4o-mini`). Strategies then generate
    /// through it (chats only); validators keep using the local model.
    #[serde(default = "local_model")]
    pub model: String,
    /// The provider plugin's settings and network grants, for `provider:` models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderSpec>,
    pub strategy: StrategySpec,
    /// How many records the dataset must have (accepted ones: rejected and duplicate
    /// candidates do not count).
    pub records: u64,
    /// Seed of every random choice: the same spec, seed, model file and plugin versions give
    /// the same dataset.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub generation: GenerationSpec,
    /// Applied to every candidate record, in order.
    #[serde(default)]
    pub validators: Vec<ValidatorSpec>,
    #[serde(default)]
    pub dedup: DedupSpec,
    /// Equal numbers of records per value of a metadata field (classification labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<BalanceSpec>,
    #[serde(default)]
    pub output: OutputSpec,
}

fn local_model() -> String {
    "local".into()
}

/// How a `provider:` model is reached. The API key is never in the spec: the host reads it
/// from `TEXTNLP_API_KEY_<NAME>` (upper case, `-` as `_`) and adds it to allowed requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The provider plugin's settings (for `openai`: `base_url`, `models`).
    #[serde(default)]
    pub config: Map<String, Value>,
    /// `host` or `host:port` entries the provider may reach besides those an operator
    /// granted. Honoured by `textnlp job run` (whose user is the operator), refused by the
    /// server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// The strategy plugin that produces candidate records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    /// The plugin's name (`template`, `few-shot`, `label-conditioned`, `self-instruct`,
    /// `evol-instruct`, `magpie`, or an installed one).
    pub plugin: String,
    /// The plugin's settings (see its `config_schema`: `textnlp plugin inspect`).
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Settings read from files: each key becomes a settings key whose value is the file's
    /// records (JSONL: one JSON value per line; CSV: one object per row, from the header).
    /// Paths are relative to the spec file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, PathBuf>,
}

/// How the model is run for this job. The values override what a strategy asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationSpec {
    /// Caps every completion's length, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Replaces the strategy's temperature (0 = greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Replaces the strategy's top-p.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Candidate records generated at once (the engine batches them). Does not change the
    /// dataset.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// For strategies that build on earlier records (self-instruct): records are generated
    /// in rounds of this many, each seeing the records accepted in earlier rounds. Part of
    /// the dataset's identity: changing it changes the dataset.
    #[serde(default = "default_round_size")]
    pub round_size: u64,
    /// Candidates tried at most before the job gives up short of `records` (default: ten per
    /// record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_candidates: Option<u64>,
}

fn default_concurrency() -> usize {
    16
}

fn default_round_size() -> u64 {
    16
}

impl Default for GenerationSpec {
    fn default() -> Self {
        GenerationSpec {
            max_tokens: None,
            temperature: None,
            top_p: None,
            concurrency: default_concurrency(),
            round_size: default_round_size(),
            max_candidates: None,
        }
    }
}

/// A validator step: a validator plugin, its settings and what its verdict does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSpec {
    pub plugin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    /// `drop` (default): a rejected record is not kept; `annotate`: its verdict is stored
    /// with it; `redact`: its text is replaced by the validator's rewrite.
    #[serde(default)]
    pub action: Action,
    /// The record metadata field given to the validator as the reference (the `label`
    /// validator checks `label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
}

impl ValidatorSpec {
    /// The references this step gives a record: its `references` metadata field, as text.
    pub fn references(&self, metadata: &Map<String, Value>) -> Vec<String> {
        let value = self
            .references
            .as_ref()
            .and_then(|field| metadata.get(field));
        value
            .map(|value| match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .into_iter()
            .collect()
    }

    /// The step of the validation pipeline.
    pub fn step(&self) -> Step {
        Step {
            name: self.plugin.clone(),
            config: self.config.clone(),
            action: self.action,
        }
    }
}

/// Duplicate removal over the accepted records, in record order (the first one stays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    /// Drop records whose normalized text equals an earlier one's.
    #[serde(default = "yes")]
    pub exact: bool,
    /// Drop records whose word 5-gram Jaccard similarity to an earlier one is at least
    /// this (MinHash LSH candidates, verified exactly); `null` turns it off.
    #[serde(default = "default_near")]
    pub near: Option<f64>,
}

fn yes() -> bool {
    true
}

fn default_near() -> Option<f64> {
    Some(0.8)
}

impl Default for DedupSpec {
    fn default() -> Self {
        DedupSpec {
            exact: true,
            near: default_near(),
        }
    }
}

/// Per-value quotas: `records / values` records per value (the first `records % values`
/// values get one more). Candidates of a full value are skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceSpec {
    /// The metadata field (e.g. `label`).
    pub field: String,
    /// Its values; default: the strategy's `labels` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// What `textnlp job run` writes when a job ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default = "default_formats")]
    pub formats: Vec<Format>,
    /// Directory of the exported files, relative to the spec (default: `NAME-output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

fn default_formats() -> Vec<Format> {
    vec![Format::Jsonl]
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            formats: default_formats(),
            dir: None,
        }
    }
}

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Csv,
    Md,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Md => "md",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "md" | "markdown" => Ok(Format::Md),
            other => Err(SpecError::field(
                "format",
                format!("`{other}` is not one of jsonl, csv, md"),
            )),
        }
    }
}

/// Why a spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not YAML/JSON of the spec's shape; the message names the field and position.
    #[error("{0}")]
    Parse(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

impl SpecError {
    fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError::Field {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Spec {
    /// Reads a spec file (YAML, of which JSON is a subset) and inlines the files it names.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut spec = Spec::parse(&text)?;
        spec.inline_files(path.parent().unwrap_or(Path::new(".")))?;
        Ok(spec)
    }

    /// Parses and checks a spec; `strategy.files` stay unread (see [`Spec::load`]).
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let spec: Spec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            match path.as_str() {
                "" | "." => SpecError::Parse(e.into_inner().to_string()),
                _ => SpecError::Parse(format!("{path}: {}", e.into_inner())),
            }
        })?;
        spec.check()?;
        Ok(spec)
    }

    /// The rules beyond the shape.
    pub fn check(&self) -> Result<(), SpecError> {
        if !valid_name(&self.name) {
            return Err(SpecError::field(
                "name",
                format!("`{}` must match [a-z0-9][a-z0-9-]{{0,63}}", self.name),
            ));
        }
        self.check_model()?;
        if !(1..=MAX_RECORDS).contains(&self.records) {
            return Err(SpecError::field(
                "records",
                format!("{} is outside 1..={MAX_RECORDS}", self.records),
            ));
        }
        self.generation.check()?;
        for (i, v) in self.validators.iter().enumerate() {
            if v.plugin.is_empty() {
                return Err(SpecError::field(
                    format!("validators[{i}].plugin"),
                    "is empty",
                ));
            }
        }
        if let Some(near) = self.dedup.near
            && !(near > 0.0 && near <= 1.0)
        {
            return Err(SpecError::field(
                "dedup.near",
                format!("{near} is outside (0, 1]"),
            ));
        }
        if self.output.formats.is_empty() {
            return Err(SpecError::field(
                "output.formats",
                "needs at least one format",
            ));
        }
        if let Some(values) = self.balance_values()? {
            let mut unique = values.clone();
            unique.sort();
            unique.dedup();
            if values.is_empty() || unique.len() != values.len() {
                return Err(SpecError::field(
                    "balance.values",
                    "needs at least one value, each once",
                ));
            }
        }
        Ok(())
    }

    /// Each validator with its label in reports (`name`, `name#k` for a repeated one).
    pub fn labelled_validators(&self) -> impl Iterator<Item = (String, &ValidatorSpec)> {
        let labels = crate::validation::labels(self.validators.iter().map(|v| v.plugin.as_str()));
        labels.into_iter().zip(&self.validators)
    }

    /// `(provider, model)` of a `provider:NAME/MODEL` model; none for `local`.
    pub fn remote_model(&self) -> Option<(&str, &str)> {
        self.model.strip_prefix("provider:")?.split_once('/')
    }

    fn check_model(&self) -> Result<(), SpecError> {
        if self.model == "local" {
            return match self.provider {
                None => Ok(()),
                Some(_) => Err(SpecError::field(
                    "provider",
                    "is only for `provider:NAME/MODEL` models",
                )),
            };
        }
        match self.remote_model() {
            Some((name, model)) if valid_name(name) && !model.is_empty() => Ok(()),
            _ => Err(SpecError::field(
                "model",
                format!(
                    "`{}` is neither `local` nor `provider:NAME/MODEL`",
                    self.model
                ),
            )),
        }
    }

    /// The values to balance over: the spec's, or the strategy's `labels`.
    pub fn balance_values(&self) -> Result<Option<Vec<String>>, SpecError> {
        let Some(balance) = &self.balance else {
            return Ok(None);
        };
        if let Some(values) = &balance.values {
            return Ok(Some(values.clone()));
        }
        let labels = self.strategy.config.get("labels").and_then(Value::as_array);
        let labels: Option<Vec<String>> =
            labels.and_then(|l| l.iter().map(|v| v.as_str().map(str::to_owned)).collect());
        labels.map(Some).ok_or_else(|| {
            SpecError::field(
                "balance.values",
                "not given, and the strategy has no `labels` setting to take them from",
            )
        })
    }

    /// Reads every `strategy.files` entry into `strategy.config`.
    fn inline_files(&mut self, base: &Path) -> Result<(), SpecError> {
        for (key, path) in std::mem::take(&mut self.strategy.files) {
            if self.strategy.config.contains_key(&key) {
                return Err(SpecError::field(
                    format!("strategy.files.{key}"),
                    "is also given in strategy.config",
                ));
            }
            let full = base.join(&path);
            let records = read_records(&full)?;
            self.strategy.config.insert(key, Value::Array(records));
        }
        Ok(())
    }

    /// The model policy of the job's plugin calls.
    pub fn generation_policy(&self) -> crate::plugins::GenerationPolicy {
        crate::plugins::GenerationPolicy {
            priority: crate::engine::Priority::Background,
            max_tokens: self.generation.max_tokens,
            temperature: self.generation.temperature.map(|t| t as f32),
            top_p: self.generation.top_p.map(|p| p as f32),
            usage: None,
        }
    }

    /// Candidates the job tries at most.
    pub fn max_candidates(&self) -> u64 {
        self.generation
            .max_candidates
            .unwrap_or_else(|| self.records.saturating_mul(10))
    }

    /// The JSON Schema of the spec.
    pub fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(Spec)).expect("a schema is JSON")
    }
}

impl GenerationSpec {
    fn check(&self) -> Result<(), SpecError> {
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(SpecError::field(
                "generation.temperature",
                format!("{t} is outside 0..=2"),
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(SpecError::field(
                "generation.top_p",
                format!("{p} is outside (0, 1]"),
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(SpecError::field(
                "generation.max_tokens",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(SpecError::field(
                "generation.concurrency",
                format!("{} is outside 1..={MAX_CONCURRENCY}", self.concurrency),
            ));
        }
        if self.round_size == 0 {
            return Err(SpecError::field(
                "generation.round_size",
                "must be at least 1",
            ));
        }
        if self.max_candidates == Some(0) {
            return Err(SpecError::field(
                "generation.max_candidates",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A JSONL (one JSON value per line) or CSV (one object per row) file as JSON values.
fn read_records(path: &Path) -> Result<Vec<Value>, SpecError> {
    let bad = |message: String| SpecError::File {
        path: path.to_owned(),
        message,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if size > MAX_INLINED_BYTES {
        return Err(bad(format!(
            "{size} bytes; files inlined into settings are limited to {MAX_INLINED_BYTES}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
        return reader
            .records()
            .enumerate()
            .map(|(i, row)| {
                let row = row.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
                Ok(Value::Object(
                    header
                        .iter()
                        .zip(row.iter())
                        .map(|(k, v)| (k.to_owned(), Value::from(v)))
                        .collect(),
                ))
            })
            .collect();
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "name: reviews\nstrategy: {plugin: template, config: {template: hi}}\nrecords: 10\n";

    fn error_of(yaml: &str) -> String {
        Spec::parse(yaml)
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn a_minimal_spec_gets_the_documented_defaults() {
        let spec = Spec::parse(MINIMAL).expect("valid");
        assert_eq!(spec.model, "local");
        assert_eq!(spec.seed, 0);
        assert_eq!(spec.dedup, DedupSpec::default());
        assert_eq!(spec.output.formats, vec![Format::Jsonl]);
        assert_eq!(spec.generation.concurrency, 16);
        assert_eq!(spec.max_candidates(), 100);
    }

    #[test]
    fn errors_name_the_offending_field() {
        let cases = [
            (MINIMAL.replace("records: 10", "records: 0"), "records:"),
            (MINIMAL.replace("records: 10", "records: ten"), "records:"),
            (MINIMAL.replace("name: reviews", "name: Reviews"), "name:"),
            (format!("{MINIMAL}colour: red\n"), "colour"),
            (format!("{MINIMAL}dedup: {{near: 1.5}}\n"), "dedup.near"),
            (
                format!(
                    "{MINIMAL}validators: [{{plugin: length}}, {{plugin: pii, action: shred}}]\n"
                ),
                "validators[1].action",
            ),
            (
                format!("{MINIMAL}generation: {{temperature: 3}}\n"),
                "generation.temperature",
            ),
            (
                format!("{MINIMAL}generation: {{concurrency: 0}}\n"),
                "generation.concurrency",
            ),
            (format!("{MINIMAL}model: gpt-4\n"), "model"),
            (format!("{MINIMAL}model: provider:/gpt-4\n"), "model"),
            (format!("{MINIMAL}provider: {{config: {{}}}}\n"), "provider"),
            (
                format!("{MINIMAL}balance: {{field: label}}\n"),
                "balance.values",
            ),
            (
                format!("{MINIMAL}output: {{formats: [parquet]}}\n"),
                "output.formats[0]",
            ),
        ];
        for (yaml, field) in cases {
            let error = error_of(&yaml);
            assert!(error.contains(field), "{field} not named in: {error}");
        }
    }

    #[test]
    fn balance_values_default_to_the_strategy_labels() {
        let yaml = "name: s\nstrategy: {plugin: label-conditioned, config: {labels: [pos, neg]}}\nrecords: 4\nbalance: {field: label}\n";
        let spec = Spec::parse(yaml).expect("valid");
        assert_eq!(
            spec.balance_values().unwrap(),
            Some(vec!["pos".to_owned(), "neg".to_owned()])
        );
    }

    #[test]
    fn files_are_inlined_relative_to_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ex.jsonl"),
            "{\"input\": \"a\"}\n\n{\"input\": \"b\"}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("rows.csv"), "topic,tone\ncats,happy\n").unwrap();
        let spec_path = dir.path().join("spec.yaml");
        std::fs::write(
            &spec_path,
            "name: s\nstrategy: {plugin: few-shot, files: {examples: ex.jsonl, rows: rows.csv}}\nrecords: 1\n",
        )
        .unwrap();
        let spec = Spec::load(&spec_path).expect("loads");
        assert_eq!(spec.strategy.config["examples"][1]["input"], "b");
        assert_eq!(spec.strategy.config["rows"][0]["tone"], "happy");
        assert!(spec.strategy.files.is_empty());

        std::fs::write(dir.path().join("ex.jsonl"), "{\"input\": \n").unwrap();
        let error = Spec::load(&spec_path).unwrap_err().to_string();
        assert!(
            error.contains("ex.jsonl") && error.contains("line 1"),
            "{error}"
        );
    }

    #[test]
    fn every_example_spec_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).expect("examples/") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let spec = Spec::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(spec.strategy.files.is_empty());
                loaded += 1;
            }
        }
        assert!(loaded >= 6, "{loaded} example specs");
    }

    #[test]
    fn the_committed_schema_is_the_generated_one() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dataset-spec.schema.json");
        let committed: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).expect("examples/dataset-spec.schema.json exists"),
        )
        .expect("JSON");
        assert_eq!(
            committed,
            Spec::json_schema(),
            "regenerate it: textnlp job schema > examples/dataset-spec.schema.json"
        );
    }
}
