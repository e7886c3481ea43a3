//! The validation pipeline (`textnlp_host::validation`) over the first-party validator
//! components: actions, redaction, errors, and the validators no reference package covers
//! (near-duplicates, PII, quality, diversity) run as plugins.

use std::path::PathBuf;

use textnlp_host::plugins::validator::Sample;
use textnlp_host::plugins::{Catalog, PluginRuntime, PluginScope};
use textnlp_host::validation::{Action, Report, Step, ValidationError};

fn component_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

/// The built validators, without model access.
fn catalog() -> Catalog {
    let mut catalog = Catalog::new(PluginRuntime::new().expect("runtime"), None, None);
    for name in ["length", "pii", "dedup", "quality", "diversity", "bleu"] {
        let path = component_path(&format!("validator_{name}"));
        catalog
            .add_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", path.display()));
    }
    catalog
}

/// Runs `steps` over `samples` as the operator (uncapped).
fn validate(
    catalog: &Catalog,
    steps: &[Step],
    samples: Vec<Sample>,
) -> Result<Report, ValidationError> {
    textnlp_host::validation::validate(catalog, &PluginScope::uncapped("operator"), steps, samples)
}

fn step(name: &str, action: Action, config: serde_json::Value) -> Step {
    Step {
        name: name.into(),
        config: config.as_object().cloned(),
        action,
    }
}

fn samples(texts: &[&str]) -> Vec<Sample> {
    texts
        .iter()
        .map(|t| Sample {
            text: t.to_string(),
            references: vec![],
        })
        .collect()
}

fn score(report: &Report, sample: usize, validator: &str, metric: &str) -> Option<f64> {
    report.samples[sample].results[validator]["scores"][metric].as_f64()
}

#[test]
fn redaction_rewrites_what_later_steps_see_and_drop_steps_decide_keep() {
    let catalog = catalog();
    let texts = [
        "Contact jane.doe@example.com or call +1 415 555 0100 about order #123456.",
        "A perfectly ordinary sentence about the weather today.",
        "short",
    ];
    let steps = [
        step("pii", Action::Redact, serde_json::json!({})),
        step("pii", Action::Drop, serde_json::json!({})),
        step(
            "length",
            Action::Drop,
            serde_json::json!({"unit": "words", "min": 2}),
        ),
    ];
    let report = validate(&catalog, &steps, samples(&texts)).expect("validates");
    assert_eq!(
        report.samples[0].text.as_deref(),
        Some("Contact [EMAIL] or call [PHONE] about order #123456.")
    );
    // Results are keyed by step label: the first pii step found two items, the second one
    // (`pii#2`) saw the redacted text and found nothing left to drop for.
    assert_eq!(score(&report, 0, "pii", "pii-total"), Some(2.0));
    assert_eq!(score(&report, 0, "pii#2", "pii-total"), Some(0.0));
    let labels: Vec<&str> = report.validators.iter().map(|v| v.label.as_str()).collect();
    assert_eq!(labels, ["pii", "pii#2", "length"]);
    assert!(report.samples[0].keep && report.samples[1].keep);
    let dropped = report.samples[2].dropped_by.as_ref().expect("dropped");
    assert_eq!(dropped.validator, "length");
    assert_eq!(dropped.reason, "shorter than min 2 words");
    assert_eq!(
        (
            report.summary.kept,
            report.summary.dropped,
            report.summary.rewritten
        ),
        (2, 1, 1)
    );
    assert_eq!(report.validators[0].rewritten, 1);
    assert_eq!(report.validators[0].sha256.len(), 64);
}

#[test]
fn annotate_reports_without_dropping() {
    let catalog = catalog();
    let steps = [step("pii", Action::Annotate, serde_json::json!({}))];
    let report = validate(&catalog, &steps, samples(&["ssn 123-45-6789"])).expect("validates");
    assert!(report.samples[0].keep);
    assert_eq!(report.validators[0].rejected, 1);
    assert_eq!(score(&report, 0, "pii", "pii-ssn"), Some(1.0));
}

#[test]
fn errors_name_the_validator_and_the_problem() {
    let catalog = catalog();
    let run = |s: Step| validate(&catalog, &[s], samples(&["some text here"])).unwrap_err();
    match run(step("nope", Action::Drop, serde_json::json!({}))) {
        ValidationError::UnknownValidator { name, known } => {
            assert_eq!(name, "nope");
            assert!(known.contains("pii") && known.contains("dedup"), "{known}");
        }
        other => panic!("{other}"),
    }
    let e = run(step("length", Action::Redact, serde_json::json!({})));
    assert!(
        matches!(e, ValidationError::NotARewriter(ref n) if n == "length"),
        "{e}"
    );
    let e = run(step(
        "dedup",
        Action::Drop,
        serde_json::json!({"threshold": 2}),
    ));
    assert!(
        e.is_caller_error() && e.to_string().contains("threshold"),
        "{e}"
    );
    let e = run(step("bleu", Action::Drop, serde_json::json!({})));
    assert!(
        e.is_caller_error() && e.to_string().contains("sample 0"),
        "{e}"
    );
}

/// A seeded paragraph of `words` words from a small vocabulary.
fn paragraph(seed: u64, words: usize) -> Vec<String> {
    const VOCAB: &[&str] = &[
        "river", "mountain", "engine", "quiet", "market", "silver", "garden", "winter", "signal",
        "harbor", "pencil", "orange", "thunder", "library", "candle", "forest", "bridge", "copper",
        "meadow", "rocket", "violet", "canyon", "anchor", "lantern", "marble", "falcon", "velvet",
        "glacier", "compass", "saddle", "tunnel", "ember",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..words)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            VOCAB[(x % VOCAB.len() as u64) as usize].to_owned()
        })
        .collect()
}

#[test]
fn near_duplicates_are_clustered_and_distinct_texts_are_not() {
    let catalog = catalog();
    let mut texts = Vec::new();
    let sources = 40;
    for i in 0..sources {
        texts.push(paragraph(i, 60).join(" "));
    }
    // Each source's variant: punctuation and case changes, one word swapped near the end.
    for i in 0..sources as usize {
        let mut words = paragraph(i as u64, 60);
        words.swap(57, 58);
        words[0] = words[0].to_uppercase();
        texts.push(format!("{}!", words.join(", ")));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let steps = [step(
        "dedup",
        Action::Drop,
        serde_json::json!({"threshold": 0.8}),
    )];
    let report = validate(&catalog, &steps, samples(&refs)).expect("validates");
    let cluster = |i: usize| score(&report, i, "dedup", "cluster").expect("cluster id");
    for i in 0..sources as usize {
        assert_eq!(
            cluster(i),
            i as f64,
            "source {i} merged with another source"
        );
        assert_eq!(
            cluster(sources as usize + i),
            i as f64,
            "variant {i} not found"
        );
        assert!(!report.samples[sources as usize + i].keep);
    }
    assert_eq!(report.summary.kept, sources as usize);
}

#[test]
fn quality_and_diversity_report_through_the_pipeline() {
    let catalog = catalog();
    let texts = [
        "The committee reviewed the proposal and asked for a revised budget next week.",
        "buy now buy now buy now buy now buy now buy now buy now buy now buy now buy now",
        "The committee reviewed the proposal and asked for a revised budget next month.",
    ];
    let steps = [
        step("quality", Action::Drop, serde_json::json!({})),
        step(
            "diversity",
            Action::Annotate,
            serde_json::json!({"n": [1, 2]}),
        ),
    ];
    let report = validate(&catalog, &steps, samples(&texts)).expect("validates");
    assert!(report.samples[0].keep && report.samples[2].keep);
    let dropped = report.samples[1]
        .dropped_by
        .as_ref()
        .expect("repetition dropped");
    assert_eq!(dropped.validator, "quality");
    let corpus = &report.validators[1].corpus;
    assert!(corpus["distinct-1"].as_f64().unwrap() < 1.0);
    assert!(corpus.contains_key("self-bleu-4"), "{corpus:?}");
}
