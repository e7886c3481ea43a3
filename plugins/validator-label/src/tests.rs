use super::*;
use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

const SENTIMENT: &str = r#"{"labels": ["positive", "negative", "neutral"]}"#;

fn settings(json: &str) -> Settings {
    Settings::parse(json).unwrap()
}

fn sample(text: &str, references: &[&str]) -> Sample {
    Sample {
        text: text.into(),
        references: references.iter().map(|r| r.to_string()).collect(),
    }
}

fn scored(logprobs: &[f64]) -> SampleScore {
    SampleScore::Scored {
        logprobs: logprobs.to_vec(),
    }
}

fn metric(metrics: &[Metric], name: &str) -> f64 {
    metrics.iter().find(|m| m.name == name).unwrap().value
}

#[test]
fn the_manifest_is_valid() {
    let manifest = Label::manifest().unwrap();
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("label", Kind::Validator)
    );
    assert!(manifest.capabilities.model);
}

#[test]
fn defaults_fill_everything_but_the_labels() {
    let s = settings(SENTIMENT);
    assert_eq!(s.labels, ["positive", "negative", "neutral"]);
    assert_eq!(s.template, "Text: {text}\nLabel:");
    assert_eq!(s.label_prefix, " ");
    assert_eq!(s.min_margin, 0.0);
    let s = settings(
        r#"{"labels": ["yes", "no"], "template": "Q: {text}\nA: ", "label_prefix": "", "min_margin": 1.5}"#,
    );
    assert_eq!(
        (s.template.as_str(), s.label_prefix.as_str(), s.min_margin),
        ("Q: {text}\nA: ", "", 1.5)
    );
}

#[test]
fn bad_settings_name_the_setting() {
    let err = |json| match Settings::parse(json) {
        Err(ValidatorError::InvalidConfig(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(err("{}").starts_with("labels: 0 given"));
    assert!(err(r#"{"labels": ["only"]}"#).starts_with("labels: 1 given"));
    assert!(err(r#"{"labels": "a,b"}"#).starts_with("labels: "));
    assert_eq!(
        err(r#"{"labels": ["a", "b", "a"]}"#),
        r#"labels[2]: "a" repeats labels[0]"#
    );
    assert_eq!(err(r#"{"labels": ["a", " "]}"#), "labels[1]: empty");
    assert!(err(r#"{"labels": ["a", "b "]}"#).starts_with("labels[1]: \"b \" has leading"));
    assert!(err(r#"{"labels": ["a", "b"], "template": "Text: {txt}"}"#).starts_with("template: "));
    assert!(err(r#"{"labels": ["a", "b"], "min_margin": -0.1}"#).starts_with("min_margin: "));
    assert!(err(r#"{"labels": ["a", "b"], "min_margin": "1"}"#).starts_with("min_margin: "));
    assert!(err(r#"{"labels": ["a", "b"], "prefix": " "}"#).contains("prefix"));
    assert!(err(r#"["a", "b"]"#).contains("JSON object"));
}

#[test]
fn the_expected_label_is_the_first_reference() {
    let s = settings(SENTIMENT);
    assert_eq!(s.expected(0, &sample("t", &["negative"])).unwrap(), 1);
    assert_eq!(
        s.expected(0, &sample("t", &[" neutral\n", "positive"]))
            .unwrap(),
        2
    );
    match s.expected(3, &sample("t", &[])) {
        Err(ValidatorError::InvalidInput(m)) => assert!(m.starts_with("sample 3 has no reference")),
        other => panic!("{other:?}"),
    }
    match s.expected(4, &sample("t", &["Positive"])) {
        Err(ValidatorError::InvalidInput(m)) => {
            assert!(
                m.starts_with("sample 4: label \"Positive\" is not one of"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_prompt_replaces_every_placeholder_and_hands_on_its_trailing_space() {
    let s = settings(SENTIMENT);
    assert_eq!(
        s.prompt("Great film."),
        ("Text: Great film.\nLabel:".to_owned(), String::new())
    );
    let s = settings(r#"{"labels": ["a", "b"], "template": "{text} / {text}\nAnswer: \n"}"#);
    assert_eq!(
        s.prompt("x"),
        ("x / x\nAnswer:".to_owned(), " \n".to_owned())
    );
    // The text itself may hold the placeholder: it is not expanded again.
    assert_eq!(s.prompt("{text}").0, "{text} / {text}\nAnswer:");
}

#[test]
fn continuation_tokens_follow_the_prompt_tokens() {
    assert_eq!(
        continuation_tokens(&[1, 2], &[1, 2, 3, 4]),
        Some(&[3, 4][..])
    );
    // A token across the boundary: the whole text does not start with the prompt's tokens.
    assert_eq!(continuation_tokens(&[1, 2], &[1, 5, 4]), None);
    assert_eq!(continuation_tokens(&[1, 2], &[1, 2]), None);
}

#[test]
fn the_most_likely_label_is_predicted() {
    let d = decide(&[-1.0, -3.0, -2.5], 0);
    assert_eq!((d.predicted, d.margin, d.logprob), (0, 1.5, -1.0));
    assert!(d.correct());
    let d = decide(&[-1.0, -3.0, -2.5], 2);
    assert_eq!((d.predicted, d.margin, d.logprob), (0, -1.5, -2.5));
    assert!(!d.correct());
    // On a tie the first label wins; the margin is 0 either way.
    let d = decide(&[-2.0, -2.0], 1);
    assert_eq!((d.predicted, d.margin), (0, 0.0));
    assert!(!d.correct());
    assert!(decide(&[-2.0, -2.0], 0).correct());
}

#[test]
fn verdicts_name_the_prediction_and_the_margin() {
    let s = settings(SENTIMENT);
    let judge = |logprobs: &[f64], expected| s.judge(&scored(logprobs), expected);
    let right = judge(&[-0.25, -2.0, -3.0], 0);
    assert!(right.verdict.keep);
    let values: Vec<(&str, f64)> = right
        .scores
        .iter()
        .map(|m| (m.name.as_str(), m.value))
        .collect();
    assert_eq!(
        values,
        [
            ("label-margin", 1.75),
            ("label-correct", 1.0),
            ("label-logprob", -0.25)
        ]
    );
    let wrong = judge(&[-0.25, -2.0, -3.0], 1);
    assert_eq!(
        wrong.verdict.reason.as_deref(),
        Some(r#"predicted "positive", expected "negative" (margin -1.75)"#)
    );
    assert_eq!(metric(&wrong.scores, "label-correct"), 0.0);

    let strict = settings(r#"{"labels": ["positive", "negative"], "min_margin": 0.5}"#);
    let close = strict.judge(&scored(&[-1.0, -1.25]), 0);
    assert_eq!(
        close.verdict.reason.as_deref(),
        Some(r#"predicted "positive" with margin 0.25 below min_margin 0.5"#)
    );
    assert_eq!(metric(&close.scores, "label-correct"), 1.0);
    assert!(strict.judge(&scored(&[-1.0, -1.5]), 0).verdict.keep);
    let hair = strict.judge(&scored(&[-1.0, -1.499_999_9]), 0);
    assert_eq!(
        hair.verdict.reason.as_deref(),
        Some(r#"predicted "positive" with margin 0.49999989999999994 below min_margin 0.5"#)
    );
}

#[test]
fn unscored_samples_say_why() {
    let s = settings(SENTIMENT);
    let long = s.judge(
        &SampleScore::TooLong {
            tokens: 9000,
            context: 8192,
        },
        0,
    );
    assert_eq!(
        long.verdict.reason.as_deref(),
        Some("prompt and label longer than the model's context (9000 > 8192 tokens)")
    );
    assert_eq!(metric(&long.scores, "tokens"), 9000.0);
    let empty = s.judge(&SampleScore::NoPrompt, 0);
    assert!(empty.verdict.keep);
}

#[test]
fn accuracy_counts_scored_samples() {
    let s = settings(SENTIMENT);
    let scores = [
        scored(&[-1.0, -2.0, -3.0]),
        scored(&[-1.0, -2.0, -3.0]),
        scored(&[-3.0, -2.0, -1.0]),
        scored(&[-3.0, -2.0, -1.0]),
        SampleScore::TooLong {
            tokens: 10,
            context: 8,
        },
    ];
    let report = s.report(&scores, &[0, 1, 2, 2, 0]);
    assert_eq!(report.samples.len(), 5);
    let kept: Vec<bool> = report.samples.iter().map(|r| r.verdict.keep).collect();
    assert_eq!(kept, [true, false, true, true, false]);
    assert_eq!(metric(&report.corpus, "count"), 5.0);
    assert_eq!(metric(&report.corpus, "scored"), 4.0);
    assert_eq!(metric(&report.corpus, "label-accuracy"), 0.75);
    let empty = s.report(&[], &[]);
    assert_eq!(empty.corpus.len(), 2);
}
