//! A job's dataset as files: JSONL, CSV and Markdown records, and the dataset card (Markdown
//! and JSON) with the provenance of every record.
//!
//! The record files are a function of the stored decisions only (maps are key-ordered, no
//! timestamps), so the same spec, seed, model file and plugins export byte-identical records.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::spec::Format;
use super::store::{Store, StoreError};
use super::{Job, Record, Verdict};
use crate::plugins::validator::Sample;
use crate::plugins::{Catalog, PluginScope};
use crate::validation::{self, Action, Step};

/// The job's accepted records in index order (at most `records` of them).
pub fn records(store: &Store, job: &Job) -> Result<Vec<(u64, Record)>, StoreError> {
    Ok(store
        .decisions(&job.id)?
        .into_iter()
        .filter_map(|d| match d.verdict {
            Verdict::Accepted { record } => Some((d.index, record)),
            _ => None,
        })
        .take(job.spec.records as usize)
        .collect())
}

/// Writes `records` in `format`.
pub fn write(
    format: Format,
    job: &Job,
    records: &[(u64, Record)],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Jsonl => write_jsonl(job, records, out),
        Format::Csv => write_csv(records, out),
        Format::Md => write_markdown(job, records, out),
    }
}

fn record_json(job: &Job, index: u64, record: &Record) -> Value {
    let mut value = json!({
        "id": format!("{}/{index}", job.id),
        "index": index,
        "messages": record.messages,
        "completion": record.completion,
        "metadata": record.metadata,
    });
    if !record.validation.is_empty() {
        value["validation"] = Value::Object(record.validation.clone());
    }
    value
}

fn write_jsonl(job: &Job, records: &[(u64, Record)], out: &mut dyn Write) -> std::io::Result<()> {
    for (index, record) in records {
        serde_json::to_writer(&mut *out, &record_json(job, *index, record))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// One row per record: index, prompt, completion, then every metadata field (sorted).
fn write_csv(records: &[(u64, Record)], out: &mut dyn Write) -> std::io::Result<()> {
    let fields: std::collections::BTreeSet<&str> = records
        .iter()
        .flat_map(|(_, r)| r.metadata.keys().map(String::as_str))
        .collect();
    let mut writer = csv::Writer::from_writer(out);
    let header = ["index", "prompt", "completion"]
        .into_iter()
        .chain(fields.iter().copied());
    writer.write_record(header)?;
    for (index, record) in records {
        let metadata = fields.iter().map(|f| match record.metadata.get(*f) {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
        let row = [
            index.to_string(),
            record.prompt().to_owned(),
            record.completion.clone(),
        ]
        .into_iter()
        .chain(metadata);
        writer.write_record(row)?;
    }
    writer.flush()
}

fn write_markdown(
    job: &Job,
    records: &[(u64, Record)],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "# {}\n", job.spec.name)?;
    for (index, record) in records {
        writeln!(out, "## Record {index}\n")?;
        for (key, value) in &record.metadata {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            writeln!(out, "- **{key}**: {value}")?;
        }
        if !record.metadata.is_empty() {
            writeln!(out)?;
        }
        for message in &record.messages {
            writeln!(out, "**{}**:\n", message.role)?;
            writeln!(out, "{}\n", quote(&message.content))?;
        }
        writeln!(out, "**assistant**:\n\n{}\n", record.completion.trim_end())?;
    }
    Ok(())
}

fn quote(text: &str) -> String {
    text.lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Corpus metrics of the final dataset, by validator label: each validator run once over
/// all records (annotate: nothing is dropped here). A validator that cannot (a time or memory
/// limit over the whole dataset) gets its error instead.
pub fn corpus_metrics(
    catalog: &Catalog,
    scope: &PluginScope,
    job: &Job,
    records: &[(u64, Record)],
) -> Map<String, Value> {
    let mut metrics = Map::new();
    for (label, v) in job.spec.labelled_validators() {
        let samples = records
            .iter()
            .map(|(_, r)| Sample {
                text: r.completion.clone(),
                references: v.references(&r.metadata),
            })
            .collect();
        let step = Step {
            action: Action::Annotate,
            ..v.step()
        };
        let value = match validation::validate(catalog, scope, &[step], samples) {
            Ok(report) => Value::Object(report.validators[0].corpus.clone()),
            Err(e) => json!({ "error": e.to_string() }),
        };
        metrics.insert(label, value);
    }
    metrics
}

/// The dataset card as JSON.
pub fn card(
    job: &Job,
    records: &[(u64, Record)],
    corpus: Map<String, Value>,
    files: &[(Format, String)],
) -> Value {
    let spec = &job.spec;
    let distribution = spec.balance.as_ref().map(|b| {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (_, r) in records {
            let value = r
                .metadata
                .get(&b.field)
                .and_then(Value::as_str)
                .unwrap_or("");
            *counts.entry(value.to_owned()).or_default() += 1;
        }
        json!({ "field": b.field, "counts": counts })
    });
    let candidates = job.counts.candidates.max(1) as f64;
    json!({
        "name": spec.name,
        "description": spec.description,
        "job": job.id,
        "state": job.state,
        "records": records.len(),
        "target": spec.records,
        "seed": spec.seed,
        "model": {
            "generated_by": spec.model,
            "file": job.provenance.model_file,
            "sha256": job.provenance.model_sha256,
        },
        "plugins": {
            "strategy": job.provenance.strategy,
            "validators": job.provenance.validators,
            "tokenizer": job.provenance.tokenizer,
            "provider": job.provenance.provider,
        },
        "host": format!("textnlp {}", job.provenance.host),
        "counts": job.counts,
        "acceptance_rate": job.counts.accepted as f64 / candidates,
        "balance": distribution,
        "corpus_metrics": corpus,
        "usage": job.usage,
        "wall_time_s": job.wall_ms as f64 / 1000.0,
        "runs": job.runs,
        "files": files.iter().map(|(f, sha)| (f.extension().to_owned(), Value::from(sha.clone()))).collect::<Map<_, _>>(),
        "spec": spec,
    })
}

/// The card as Markdown.
pub fn card_markdown(card: &Value) -> String {
    let mut md = String::new();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    md.push_str(&format!("# Dataset card: {}\n\n", s(&card["name"])));
    if !s(&card["description"]).is_empty() {
        md.push_str(&format!("{}\n\n", s(&card["description"])));
    }
    md.push_str("| | |\n|---|---|\n");
    for (label, value) in [
        ("job", &card["job"]),
        ("state", &card["state"]),
        ("records", &card["records"]),
        ("seed", &card["seed"]),
        ("generated by", &card["model"]["generated_by"]),
        ("model file", &card["model"]["file"]),
        ("model sha256", &card["model"]["sha256"]),
        ("host", &card["host"]),
        ("wall time (s)", &card["wall_time_s"]),
        ("runs (1 + resumes)", &card["runs"]),
        ("prompt tokens", &card["usage"]["prompt_tokens"]),
        ("completion tokens", &card["usage"]["completion_tokens"]),
    ] {
        md.push_str(&format!("| {label} | `{}` |\n", s(value)));
    }
    md.push_str("\n## Plugins\n\n| role | name | version | sha256 |\n|---|---|---|---|\n");
    let plugin_row = |role: &str, p: &Value| {
        format!(
            "| {role} | {} | {} | `{}` |\n",
            s(&p["name"]),
            s(&p["version"]),
            s(&p["sha256"])
        )
    };
    md.push_str(&plugin_row("strategy", &card["plugins"]["strategy"]));
    md.push_str(&plugin_row("tokenizer", &card["plugins"]["tokenizer"]));
    if card["plugins"]["provider"].is_object() {
        md.push_str(&plugin_row("provider", &card["plugins"]["provider"]));
    }
    for v in card["plugins"]["validators"]
        .as_array()
        .into_iter()
        .flatten()
    {
        md.push_str(&plugin_row("validator", v));
    }
    md.push_str("\n## Candidates\n\n| outcome | count |\n|---|---|\n");
    md.push_str(&format!(
        "| candidates | {} |\n",
        s(&card["counts"]["candidates"])
    ));
    md.push_str(&format!(
        "| accepted | {} |\n",
        s(&card["counts"]["accepted"])
    ));
    for (by, n) in card["counts"]["rejected"].as_object().into_iter().flatten() {
        md.push_str(&format!("| rejected by {by} | {} |\n", s(n)));
    }
    md.push_str(&format!(
        "| exact / near duplicates | {} / {} |\n",
        s(&card["counts"]["exact_duplicates"]),
        s(&card["counts"]["near_duplicates"])
    ));
    if let Some(balance) = card["balance"].as_object() {
        md.push_str(&format!(
            "\n## Balance over `{}`\n\n| value | records |\n|---|---|\n",
            s(&balance["field"])
        ));
        for (value, n) in balance["counts"].as_object().into_iter().flatten() {
            md.push_str(&format!("| {value} | {} |\n", s(n)));
        }
    }
    md.push_str("\n## Corpus metrics\n\n");
    for (validator, metrics) in card["corpus_metrics"].as_object().into_iter().flatten() {
        md.push_str(&format!("**{validator}**: "));
        let items: Vec<String> = metrics
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} = {}", s(v)))
            .collect();
        md.push_str(&format!("{}\n\n", items.join(", ")));
    }
    md.push_str("## Files\n\n");
    for (ext, sha) in card["files"].as_object().into_iter().flatten() {
        md.push_str(&format!(
            "- `{}.{ext}` sha256 `{}`\n",
            s(&card["name"]),
            s(sha)
        ));
    }
    md.push_str(&format!(
        "\n## Spec\n\n```json\n{}\n```\n",
        serde_json::to_string_pretty(&card["spec"]).unwrap_or_default()
    ));
    md
}

/// Writes every format of the spec and the card into `dir`; the paths written.
pub fn export_all(
    dir: &Path,
    job: &Job,
    records: &[(u64, Record)],
    catalog: &Catalog,
    scope: &PluginScope,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut hashes = Vec::new();
    for &format in &job.spec.output.formats {
        let mut bytes = Vec::new();
        write(format, job, records, &mut bytes)?;
        let path = dir.join(format!("{}.{}", job.spec.name, format.extension()));
        std::fs::write(&path, &bytes)?;
        hashes.push((format, hex(&Sha256::digest(&bytes))));
        written.push(path);
    }
    let corpus = corpus_metrics(catalog, scope, job, records);
    let card = card(job, records, corpus, &hashes);
    let json_path = dir.join("dataset-card.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&card).expect("JSON") + "\n",
    )?;
    let md_path = dir.join("dataset-card.md");
    std::fs::write(&md_path, card_markdown(&card))?;
    written.extend([json_path, md_path]);
    Ok(written)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
