//! `strategy-label-conditioned` (manifest name `label-conditioned`): classification data,
//! one text per record written for a given label.
//!
//! Settings:
//!
//! ```json
//! {
//!   "labels": ["positive", "negative", "neutral"],
//!   "attributes": {
//!     "tone": ["formal", "casual", "sarcastic"],
//!     "length": ["one sentence", "three sentences"],
//!     "domain": ["restaurants", "electronics", "travel"]
//!   },
//!   "template": "Write a {{ length }} {{ tone }} review about {{ domain }} that expresses {{ label }} sentiment.",
//!   "system": "You write realistic product and service reviews.",
//!   "attempts": 3
//! }
//! ```
//!
//! - `labels` (required: at least two distinct, non-empty strings): the classes.
//! - `attributes` (optional): variation axes, each a non-empty list of values (any JSON; the
//!   names `label`, `attributes` and `index` are reserved).
//! - `template` (default: `Write a short text whose label is "{{ label }}".`, then the drawn
//!   attributes as "It should have these properties: name: value, ...", then "Reply with the
//!   text only.") and `system` (optional): minijinja templates of the user and system
//!   messages. Variables: `label`, each attribute by name, `attributes` (the drawn ones, a map
//!   in name order), `index`. A misspelt variable is an error, not an empty string.
//! - `attempts` (default 3, 1 to 10): model calls per record before it is rejected.
//!
//! Determinism: record `i`'s label is `labels[i % n]`, so each round of `n` consecutive records
//! holds every label exactly once (a balanced dataset at any multiple of `n`). Its attributes
//! are drawn, in name order, from [`SplitMix64::for_record`]`(seed, i)`; attempt `a`'s model
//! seed is the first value of [`SplitMix64::for_attempt`]`(seed, i, a)` (attempt 0's is the
//! seed the SDK's default generation uses, so `generate` and `generate_record` agree on it).
//! The dataset has no end.
//!
//! `generate_record` cleans the model's answer: a preamble line ("Sure! Here is a text:"),
//! markdown, a leading label ("Text:", "Review:", ...), an introduction to a quotation (`The
//! text is: "..."`) and wrapping quotes are removed. An
//! answer that is then empty, or only the label itself, is retried with the next attempt's
//! seed; after `attempts` it is `Rejected` naming the rule (`empty-text`, `label-only`). The
//! record's `messages` are the prompt, its `completion` the cleaned text, its `metadata`
//! `{"label": ..., <attribute>: <value>, ...}`. The batch `generate` is the SDK's default
//! (uncleaned completions); hosts use `generate_record`.

use std::collections::{BTreeMap, HashSet};

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{Map, Value};
use textnlp_plugin_sdk::rng::SplitMix64;
use textnlp_plugin_sdk::strategy::{
    ChatMessage, ExpandRequest, Generated, Outcome, PromptRecord, RecordError, RecordRequest,
    Retried, Strategy, StrategyError, retry,
};
use textnlp_plugin_sdk::{clean, config, model};

/// Most records one `expand` call produces, so a request cannot exhaust the plugin's memory.
const MAX_RECORDS_PER_CALL: u32 = 10_000;
/// Most model calls per record.
const MAX_ATTEMPTS: u32 = 10;

const DEFAULT_TEMPLATE: &str = "Write a short text whose label is \"{{ label }}\".\
     {% if attributes %} It should have these properties: \
     {% for name, value in attributes|items %}{{ name }}: {{ value }}\
     {% if not loop.last %}, {% endif %}{% endfor %}.{% endif %} Reply with the text only.";

/// Attribute names the templates already use.
const RESERVED: [&str; 3] = ["label", "attributes", "index"];

/// Labels a model puts before the text it was asked for.
const OUTPUT_LABELS: [&str; 9] = [
    "text", "output", "answer", "response", "review", "sentence", "example", "message", "post",
];

struct LabelConditioned;

textnlp_plugin_sdk::register_strategy!(LabelConditioned);

impl Strategy for LabelConditioned {
    fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        let settings = Settings::parse(&config::raw())?;
        Prompts::compile(&settings)?.expand(&request)
    }

    fn generate_record(request: RecordRequest) -> Result<Outcome, RecordError> {
        let settings = Settings::parse(&config::raw())?;
        let prompts = Prompts::compile(&settings)?;
        let (seed, index) = (request.seed, request.index);
        let (record, label) = prompts.record(seed, index)?;
        let retried = retry(settings.attempts, |attempt| {
            let mut ask = model::chat_request(record.messages.clone());
            ask.seed = Some(model_seed(seed, index, attempt));
            let answer = model::generate(&ask)?;
            Ok(clean_text(&answer.text, label))
        })?;
        Ok(match retried {
            Retried::Accepted { value, attempts } => Outcome::Accepted(Generated {
                messages: record.messages,
                completion: value,
                metadata: record.metadata,
                attempts,
            }),
            Retried::Rejected { reason, attempts } => {
                Outcome::Rejected(format!("{reason} (after {attempts} attempts)"))
            }
        })
    }
}

/// The model seed of attempt `attempt` of record `index`.
fn model_seed(seed: u64, index: u64, attempt: u32) -> u64 {
    SplitMix64::for_attempt(seed, index, attempt).next_u64()
}

/// The text in a model answer, or the rule it breaks.
fn clean_text(answer: &str, label: &str) -> Result<String, String> {
    // The answer is only the text, so `The text is: "..."` is an introduced quotation.
    let text = clean::tidy(answer, &OUTPUT_LABELS);
    let text = clean::tidy(clean::unquote_introduced(&text), &OUTPUT_LABELS);
    let bare = |s: &str| {
        s.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    if text.is_empty() {
        Err("empty-text: the answer is empty once quotes, labels and preambles are removed".into())
    } else if bare(&text) == bare(label) {
        Err(format!(
            "label-only: the answer is only the label {label:?}"
        ))
    } else {
        Ok(text)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    labels: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Vec<Value>>,
    #[serde(default = "default_template")]
    template: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default = "default_attempts")]
    attempts: u32,
}

fn default_template() -> String {
    DEFAULT_TEMPLATE.into()
}

fn default_attempts() -> u32 {
    3
}

impl Settings {
    fn parse(json: &str) -> Result<Settings, StrategyError> {
        let settings: Settings = config::parse(json).map_err(StrategyError::InvalidConfig)?;
        let fail = |m: String| Err(StrategyError::InvalidConfig(m));
        if settings.labels.len() < 2 {
            return fail(format!(
                "labels: needs at least two labels, got {}",
                settings.labels.len()
            ));
        }
        let mut seen = HashSet::new();
        for (i, label) in settings.labels.iter().enumerate() {
            if label.trim().is_empty() {
                return fail(format!("labels[{i}]: is empty"));
            }
            if !seen.insert(label.as_str()) {
                return fail(format!("labels[{i}]: {label:?} appears twice"));
            }
        }
        for (name, values) in &settings.attributes {
            if RESERVED.contains(&name.as_str()) {
                return fail(format!(
                    "attributes.{name}: the name is reserved (label, attributes, index)"
                ));
            }
            if values.is_empty() {
                return fail(format!("attributes.{name}: needs at least one value"));
            }
        }
        if !(1..=MAX_ATTEMPTS).contains(&settings.attempts) {
            return fail(format!(
                "attempts: {} is not between 1 and {MAX_ATTEMPTS}",
                settings.attempts
            ));
        }
        Ok(settings)
    }
}

/// The compiled templates, ready to render records.
struct Prompts<'s> {
    env: Environment<'s>,
    settings: &'s Settings,
}

impl<'s> Prompts<'s> {
    fn compile(settings: &'s Settings) -> Result<Prompts<'s>, StrategyError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template("template", &settings.template)
            .map_err(|e| invalid("template", &e))?;
        if let Some(system) = &settings.system {
            env.add_template("system", system)
                .map_err(|e| invalid("system", &e))?;
        }
        Ok(Prompts { env, settings })
    }

    fn expand(&self, request: &ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        if request.count > MAX_RECORDS_PER_CALL {
            return Err(StrategyError::InvalidRequest(format!(
                "count: {} is more than {MAX_RECORDS_PER_CALL} records per call",
                request.count
            )));
        }
        let end = request.start.saturating_add(u64::from(request.count));
        (request.start..end)
            .map(|index| self.record(request.seed, index).map(|(record, _)| record))
            .collect()
    }

    /// Record `index` and its label.
    fn record(&self, seed: u64, index: u64) -> Result<(PromptRecord, &'s str), StrategyError> {
        let labels = &self.settings.labels;
        let label = labels[(index % labels.len() as u64) as usize].as_str();
        let mut rng = SplitMix64::for_record(seed, index);
        let drawn: Vec<(&str, &Value)> = self
            .settings
            .attributes
            .iter()
            .map(|(name, values)| {
                let pick = rng.below(values.len() as u64) as usize;
                (name.as_str(), &values[pick])
            })
            .collect();

        let mut context: BTreeMap<&str, minijinja::Value> = drawn
            .iter()
            .map(|&(name, value)| (name, minijinja::Value::from(minijinja::value::Serde(value))))
            .collect();
        context.insert(
            "attributes",
            minijinja::Value::from(
                drawn
                    .iter()
                    .map(|&(name, value)| {
                        (name, minijinja::Value::from(minijinja::value::Serde(value)))
                    })
                    .collect::<BTreeMap<_, _>>(),
            ),
        );
        context.insert("label", minijinja::Value::from(label));
        context.insert("index", minijinja::Value::from(index));
        let context = minijinja::Value::from(context);

        let mut messages = Vec::with_capacity(2);
        if self.settings.system.is_some() {
            messages.push(message("system", self.render("system", &context)?));
        }
        messages.push(message("user", self.render("template", &context)?));
        let mut metadata = Map::new();
        metadata.insert("label".into(), Value::from(label));
        for (name, value) in drawn {
            metadata.insert(name.into(), value.clone());
        }
        let record = PromptRecord {
            index,
            messages,
            metadata: Value::Object(metadata).to_string(),
        };
        Ok((record, label))
    }

    fn render(&self, name: &str, context: &minijinja::Value) -> Result<String, StrategyError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| invalid(name, &e))
    }
}

fn message(role: &str, content: String) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content,
    }
}

/// A settings error naming the template it came from ("template: syntax error: ...").
fn invalid(setting: &str, error: &minijinja::Error) -> StrategyError {
    StrategyError::InvalidConfig(format!("{setting}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    const SENTIMENT: &str = r#"{
        "labels": ["positive", "negative", "neutral"],
        "attributes": {"tone": ["formal", "casual"], "domain": ["food", "travel", "tech"]},
        "system": "Label set: {{ index }}"
    }"#;

    fn records(json: &str, seed: u64, start: u64, count: u32) -> Vec<PromptRecord> {
        let settings = Settings::parse(json).unwrap();
        let request = ExpandRequest { seed, start, count };
        Prompts::compile(&settings)
            .unwrap()
            .expand(&request)
            .unwrap()
    }

    fn metadata(record: &PromptRecord) -> Value {
        serde_json::from_str(&record.metadata).unwrap()
    }

    fn error(json: &str) -> String {
        let request = ExpandRequest {
            seed: 0,
            start: 0,
            count: 3,
        };
        match Settings::parse(json)
            .and_then(|s| Prompts::compile(&s).and_then(|p| p.expand(&request)))
        {
            Err(StrategyError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_manifest_is_valid_and_matches_the_defaults() {
        let manifest = LabelConditioned::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind, manifest.context),
            ("label-conditioned", Kind::Strategy, 0)
        );
        let properties = &manifest.config_schema["properties"];
        assert_eq!(properties["template"]["default"], DEFAULT_TEMPLATE);
        assert_eq!(properties["attempts"]["default"], default_attempts());
        assert_eq!(properties["attempts"]["maximum"], MAX_ATTEMPTS);
    }

    #[test]
    fn labels_are_balanced_per_round() {
        let all = records(SENTIMENT, 5, 0, 30);
        for (i, record) in all.iter().enumerate() {
            let want = ["positive", "negative", "neutral"][i % 3];
            assert_eq!(metadata(record)["label"], want);
            assert!(record.messages[1].content.contains(&format!("\"{want}\"")));
        }
        // A resumed range gets its labels by index, not by position in the call.
        let tail = records(SENTIMENT, 5, 7, 2);
        assert_eq!(metadata(&tail[0])["label"], "negative");
        assert_eq!(tail[0].messages[0].content, "Label set: 7");
    }

    #[test]
    fn the_default_template_lists_the_drawn_attributes() {
        let record = &records(SENTIMENT, 1, 0, 1)[0];
        let meta = metadata(record);
        assert_eq!(
            record.messages[1].content,
            format!(
                "Write a short text whose label is \"positive\". It should have these \
                 properties: domain: {}, tone: {}. Reply with the text only.",
                meta["domain"].as_str().unwrap(),
                meta["tone"].as_str().unwrap()
            )
        );
        let plain = records(r#"{"labels": ["spam", "ham"]}"#, 1, 1, 1);
        assert_eq!(
            plain[0].messages[0].content,
            "Write a short text whose label is \"ham\". Reply with the text only."
        );
        assert_eq!(plain[0].metadata, r#"{"label":"ham"}"#);
    }

    #[test]
    fn attributes_depend_only_on_seed_and_index() {
        let all = records(SENTIMENT, 9, 0, 60);
        let resumed = records(SENTIMENT, 9, 40, 10);
        for (a, b) in all[40..50].iter().zip(&resumed) {
            assert_eq!(a.metadata, b.metadata);
            assert_eq!(format!("{:?}", a.messages), format!("{:?}", b.messages));
        }
        let tones: HashSet<String> = all
            .iter()
            .map(|r| metadata(r)["tone"].to_string())
            .collect();
        let domains: HashSet<String> = all
            .iter()
            .map(|r| metadata(r)["domain"].to_string())
            .collect();
        assert_eq!((tones.len(), domains.len()), (2, 3));
        let other = records(SENTIMENT, 10, 0, 60);
        assert!(
            all.iter()
                .zip(&other)
                .any(|(a, b)| a.metadata != b.metadata)
        );
        // Attempts get distinct model seeds; attempt 0 is the SDK default's.
        assert_eq!(model_seed(9, 4, 0), SplitMix64::for_record(9, 4).next_u64());
        assert_ne!(model_seed(9, 4, 0), model_seed(9, 4, 1));
    }

    #[test]
    fn custom_templates_see_attributes_by_name() {
        let json = r#"{"labels": ["a", "b"], "attributes": {"n": [1]},
                       "template": "{{ label }}{{ n + 1 }}{{ attributes.n }}{{ index }}"}"#;
        let record = &records(json, 0, 3, 1)[0];
        assert_eq!(record.messages[0].content, "b213");
        assert_eq!(record.metadata, r#"{"label":"b","n":1}"#);
    }

    #[test]
    fn answers_are_cleaned_and_judged() {
        let ok = |answer: &str| clean_text(answer, "positive").unwrap();
        assert_eq!(ok("\"I loved every bite.\""), "I loved every bite.");
        assert_eq!(ok("Text: I loved it."), "I loved it.");
        assert_eq!(ok("Sure! Here is a text:\n\n“I loved it.”"), "I loved it.");
        assert_eq!(ok("**Review:** Great stay."), "Great stay.");
        assert_eq!(ok("The text is: \"Great stay.\""), "Great stay.");
        assert_eq!(
            ok("Sure!\nThe following text has a positive label: \"**Great** stay.\""),
            "**Great** stay."
        );
        assert_eq!(
            ok("Great stay.\nWould return."),
            "Great stay.\nWould return."
        );
        let rule = |answer: &str| clean_text(answer, "positive").unwrap_err();
        assert!(rule("").starts_with("empty-text"));
        assert!(rule("  \"\"  ").starts_with("empty-text"));
        assert!(rule("Text:").starts_with("empty-text"));
        assert!(rule("Positive.").starts_with("label-only"));
    }

    #[test]
    fn bad_settings_name_the_field() {
        assert!(error("{}").contains("labels"));
        assert!(error(r#"{"labels": ["a"]}"#).starts_with("labels: needs at least two"));
        assert!(error(r#"{"labels": ["a", "a"]}"#).starts_with("labels[1]: "));
        assert!(error(r#"{"labels": ["a", " "]}"#).starts_with("labels[1]: "));
        assert!(error(r#"{"labels": ["a", 1]}"#).starts_with("labels[1]: "));
        assert!(
            error(r#"{"labels": ["a", "b"], "attributes": {"tone": []}}"#)
                .starts_with("attributes.tone: ")
        );
        assert!(
            error(r#"{"labels": ["a", "b"], "attributes": {"label": [1]}}"#)
                .starts_with("attributes.label: ")
        );
        assert!(
            error(r#"{"labels": ["a", "b"], "attributes": {"x": 1}}"#)
                .starts_with("attributes.x: ")
        );
        assert!(
            error(r#"{"labels": ["a", "b"], "template": "{{ tone }}"}"#).starts_with("template: ")
        );
        assert!(error(r#"{"labels": ["a", "b"], "system": "{% if %}"}"#).starts_with("system: "));
        assert!(error(r#"{"labels": ["a", "b"], "attempts": 0}"#).starts_with("attempts: "));
        assert!(error(r#"{"labels": ["a", "b"], "attempts": 11}"#).starts_with("attempts: "));
        assert!(error(r#"{"labels": ["a", "b"], "label": "a"}"#).contains("unknown field"));
    }
}
