use super::*;
use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

fn settings(json: &str) -> Settings {
    Settings::parse(json).unwrap()
}

#[test]
fn the_manifest_is_valid() {
    let manifest = Pii::manifest().unwrap();
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("pii", Kind::Validator)
    );
}

#[test]
fn bad_settings_name_the_setting() {
    let err = |json| match Settings::parse(json) {
        Err(ValidatorError::InvalidConfig(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(err(r#"{"types": ["email", "fax"]}"#).starts_with("types[1]: "));
    assert!(err(r#"{"types": []}"#).starts_with("types: "));
    assert!(err(r#"{"action": "drop"}"#).contains("action"));
    assert!(err(r#"{"redact": true}"#).contains("redact"));
    assert!(err("[]").contains("JSON object"));
    let s = settings(r#"{"types": ["ip_address", "credit-card", "email", "email"]}"#);
    assert_eq!(
        s.types,
        [PiiType::Email, PiiType::CreditCard, PiiType::IpAddress]
    );
    assert_eq!(settings("{}").types, PiiType::ALL);
}

#[test]
fn samples_with_pii_are_rejected_with_counts() {
    let texts = [
        "Write to a@example.com or b@example.org, or call 555-123-4567.",
        "Nothing to see here.",
        "Server at 10.0.0.1",
    ];
    let report = settings("{}").report(&texts);
    assert_eq!(report.samples.len(), 3);
    let first = &report.samples[0];
    assert_eq!(
        first.verdict.reason.as_deref(),
        Some("pii: 2 email, 1 phone")
    );
    let scores: Vec<(&str, f64)> = first
        .scores
        .iter()
        .map(|m| (m.name.as_str(), m.value))
        .collect();
    assert_eq!(
        scores,
        [("pii-email", 2.0), ("pii-phone", 1.0), ("pii-total", 3.0)]
    );
    assert!(report.samples[1].verdict.keep);
    assert_eq!(report.samples[1].scores.len(), 1);
    let corpus = |name: &str| {
        report
            .corpus
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    };
    assert_eq!(corpus("count"), Some(3.0));
    assert_eq!(corpus("samples-with-pii"), Some(2.0));
    assert_eq!(corpus("pii-total"), Some(4.0));
    assert_eq!(corpus("pii-ip-address"), Some(1.0));
    assert_eq!(corpus("pii-iban"), Some(0.0));
}

#[test]
fn disabled_types_are_ignored() {
    let texts = ["mail a@example.com from 10.0.0.1"];
    let report = settings("{}").report(&texts);
    assert_eq!(report.samples[0].scores.last().unwrap().value, 2.0);
    let report = settings(r#"{"types": ["ip-address"]}"#).report(&texts);
    assert_eq!(
        report.samples[0].verdict.reason.as_deref(),
        Some("pii: 1 ip-address")
    );
    assert!(!report.corpus.iter().any(|m| m.name == "pii-email"));
}

#[test]
fn an_empty_batch_reports_a_zero_count() {
    let report = settings("{}").report(&[]);
    assert!(report.samples.is_empty());
    assert_eq!(report.corpus[0].name, "count");
    assert_eq!(report.corpus[0].value, 0.0);
}

#[test]
fn rewrites_replace_enabled_types_only() {
    let text = "mail a@example.com from 10.0.0.1";
    assert_eq!(
        settings("{}").redact(text).as_deref(),
        Some("mail [EMAIL] from [IP_ADDRESS]")
    );
    assert_eq!(
        settings(r#"{"types": ["email"]}"#).redact(text).as_deref(),
        Some("mail [EMAIL] from 10.0.0.1")
    );
    assert_eq!(settings("{}").redact("nothing here, v1.2.3"), None);
}
