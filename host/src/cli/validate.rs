//! `textnlp validate`: validator plugins over a JSONL or CSV file, a summary table and a
//! JSON report (the same report `POST /v1/validate` answers).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

use super::ModelArgs;
use crate::engine::EngineConfig;
use crate::plugins::PluginRuntime;
use crate::plugins::validator::Sample;
use crate::plugins::{Catalog, PluginScope};
use crate::tenancy::OPERATOR;
use crate::validation::{Action, Report, Step, validate};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Input file (`-`: standard input), one sample per JSONL line or CSV row.
    input: PathBuf,
    /// Input format [default: from the extension, else jsonl].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Field (JSONL) or column (CSV) holding the sample text.
    #[arg(long, default_value = "text", value_name = "NAME")]
    text_field: String,
    /// Field or column holding references: a text, or in JSONL a list of texts. Repeat for
    /// several columns.
    #[arg(long = "reference-field", value_name = "NAME")]
    reference_fields: Vec<String>,
    /// A validator to run, in order: `NAME`, `NAME:ACTION` (drop, annotate or redact) and
    /// optionally `=JSON` settings, e.g. `bleu:annotate={"tokenize":"13a"}`.
    #[arg(long = "validator", short = 'v', value_name = "SPEC", required = true)]
    validators: Vec<String>,
    /// Also load this validator component (repeatable).
    #[arg(long = "plugin", value_name = "FILE")]
    plugins: Vec<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the kept samples here as JSONL (their fields, with redacted text if any).
    #[arg(long, value_name = "FILE")]
    kept: Option<PathBuf>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

pub fn run(args: ValidateArgs) -> Result<()> {
    let steps = args
        .validators
        .iter()
        .map(|s| parse_step(s))
        .collect::<Result<Vec<_>>>()?;
    let records = read_records(&args)?;
    let samples = records
        .iter()
        .enumerate()
        .map(|(i, r)| to_sample(r, &args).with_context(|| format!("record {}", i + 1)))
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        !samples.is_empty(),
        "{} holds no samples",
        args.input.display()
    );

    let runtime = PluginRuntime::new().context("starting the plugin runtime")?;
    let registry = super::read_registry(&runtime);
    let mut catalog = Catalog::discover(runtime, None, registry);
    let scope = PluginScope::uncapped(OPERATOR);
    for plugin in &args.plugins {
        catalog
            .add_file(plugin)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("loading {}", plugin.display()))?;
    }
    // The model is loaded only for validators that use it (perplexity, token lengths).
    let engine = if catalog.needs_model(&scope, steps.iter().map(|s| s.name.as_str())) {
        let (engine, access) = args.model.start_engine(EngineConfig::default())?;
        catalog.set_model(access);
        Some(engine)
    } else {
        None
    };
    let report = validate(&catalog, &scope, &steps, samples);
    if let Some(engine) = engine {
        engine.shutdown(Duration::ZERO);
    }
    let report = report?;

    if let Some(path) = &args.report {
        write_json(path, &report)?;
    }
    if let Some(path) = &args.kept {
        write_kept(path, &records, &report, &args.text_field)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// `NAME[:ACTION][=JSON]`.
fn parse_step(spec: &str) -> Result<Step> {
    let (head, config) = match spec.split_once('=') {
        Some((head, json)) => {
            let config: Map<String, Value> = serde_json::from_str(json).with_context(|| {
                format!("--validator {spec}: the settings are not a JSON object")
            })?;
            (head, Some(config))
        }
        None => (spec, None),
    };
    let (name, action) = match head.split_once(':') {
        Some((name, action)) => {
            let action = Action::from_str(action).with_context(|| {
                format!("--validator {spec}: unknown action `{action}` (drop, annotate, redact)")
            })?;
            (name, action)
        }
        None => (head, Action::Drop),
    };
    ensure!(!name.is_empty(), "--validator {spec}: no validator name");
    Ok(Step {
        name: name.to_owned(),
        config,
        action,
    })
}

impl Action {
    fn from_str(s: &str) -> Result<Action> {
        Ok(serde_json::from_value(Value::from(s))?)
    }
}

/// The input's records, each as a JSON object (CSV rows keyed by their header).
fn read_records(args: &ValidateArgs) -> Result<Vec<Map<String, Value>>> {
    let mut text = String::new();
    if args.input == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        std::fs::File::open(&args.input)
            .and_then(|mut f| f.read_to_string(&mut text))
            .with_context(|| format!("reading {}", args.input.display()))?;
    }
    let csv_extension = args.input.extension().is_some_and(|e| e == "csv");
    match args.format {
        Some(Format::Csv) => read_csv(&text),
        None if csv_extension => read_csv(&text),
        _ => read_jsonl(&text),
    }
}

fn read_jsonl(text: &str) -> Result<Vec<Map<String, Value>>> {
    let mut records = Vec::new();
    for (i, line) in BufReader::new(text.as_bytes()).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str::<Map<String, Value>>(&line)
            .with_context(|| format!("line {}: not a JSON object", i + 1))?;
        records.push(record);
    }
    Ok(records)
}

fn read_csv(text: &str) -> Result<Vec<Map<String, Value>>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().context("reading the CSV header")?.clone();
    let mut records = Vec::new();
    for (i, row) in reader.records().enumerate() {
        // Row 1 is the header.
        let row = row.with_context(|| format!("CSV row {}", i + 2))?;
        let record = headers
            .iter()
            .zip(row.iter())
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        records.push(record);
    }
    Ok(records)
}

fn to_sample(record: &Map<String, Value>, args: &ValidateArgs) -> Result<Sample> {
    let text = match record.get(&args.text_field) {
        Some(Value::String(text)) => text.clone(),
        Some(_) => bail!("field `{}` is not a text", args.text_field),
        None => bail!("no field `{}` (set --text-field)", args.text_field),
    };
    let mut references = Vec::new();
    for field in &args.reference_fields {
        match record.get(field) {
            Some(Value::String(r)) => references.push(r.clone()),
            Some(Value::Array(items)) => {
                for item in items {
                    let r = item.as_str().with_context(|| {
                        format!("field `{field}` holds a reference that is not a text")
                    })?;
                    references.push(r.to_owned());
                }
            }
            Some(_) => bail!("field `{field}` is neither a text nor a list of texts"),
            None => bail!("no field `{field}`"),
        }
    }
    Ok(Sample { text, references })
}

fn write_json(path: &Path, report: &Report) -> Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

fn write_kept(
    path: &Path,
    records: &[Map<String, Value>],
    report: &Report,
    text_field: &str,
) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (record, sample) in records.iter().zip(&report.samples) {
        if !sample.keep {
            continue;
        }
        let mut record = record.clone();
        if let Some(text) = &sample.text {
            record.insert(text_field.to_owned(), Value::from(text.as_str()));
        }
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

fn print_table(report: &Report) {
    for v in &report.validators {
        let action = serde_json::to_value(v.action).unwrap_or_default();
        println!(
            "{} {} ({}) — rejected {}{}",
            v.name,
            v.version,
            action.as_str().unwrap_or("?"),
            v.rejected,
            if v.rewritten > 0 {
                format!(", rewrote {}", v.rewritten)
            } else {
                String::new()
            }
        );
        let width = v.corpus.keys().map(|k| k.len()).max().unwrap_or(0);
        for (name, value) in &v.corpus {
            println!("  {name:<width$}  {}", format_value(value));
        }
    }
    let s = &report.summary;
    println!(
        "{} samples: {} kept, {} dropped, {} rewritten",
        s.count, s.kept, s.dropped, s.rewritten
    );
    for sample in report.samples.iter().filter(|s| !s.keep).take(10) {
        if let Some(d) = &sample.dropped_by {
            println!(
                "  dropped #{}: {} — {}",
                sample.index, d.validator, d.reason
            );
        }
    }
}

fn format_value(value: &Value) -> String {
    match value.as_f64() {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.6}"),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_specs_parse() {
        let s = parse_step("bleu").unwrap();
        assert_eq!(
            (s.name.as_str(), s.action, s.config),
            ("bleu", Action::Drop, None)
        );
        let s = parse_step(r#"pii:redact={"types":["email"]}"#).unwrap();
        assert_eq!((s.name.as_str(), s.action), ("pii", Action::Redact));
        assert_eq!(s.config.unwrap()["types"], serde_json::json!(["email"]));
        let s = parse_step("rouge={}").unwrap();
        assert_eq!((s.name.as_str(), s.action), ("rouge", Action::Drop));
        assert!(parse_step("pii:erase").is_err());
        assert!(parse_step("bleu=[1]").is_err());
        assert!(parse_step(":drop").is_err());
    }

    #[test]
    fn csv_rows_become_records() {
        let records = read_csv("text,ref\n\"a, b\",c\nd,e\n").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["text"], "a, b");
        assert_eq!(records[1]["ref"], "e");
    }
}
