//! `strategy-few-shot` (manifest name `few-shot`): few-shot prompts over a pool of examples.
//!
//! Settings:
//!
//! ```json
//! {
//!   "system": "You write customer reviews.",
//!   "instruction": "Here are some examples:\n\n{{ shots }}\n\nWrite one new example.",
//!   "examples": [
//!     {"input": "kettle", "output": "Boils fast, looks great."},
//!     {"input": "bike", "output": "The gears slip."},
//!     {"input": "lamp", "output": "Warm light, cheap plastic."}
//!   ],
//!   "k": 2,
//!   "example_template": "Product: {{ input }}\nReview: {{ output }}"
//! }
//! ```
//!
//! - `examples` (required, at least one): the pool, one JSON object per example. The host
//!   inlines a JSONL or CSV file here, so keys are whatever the file's fields are.
//! - `k` (default 3, from 1 to the number of examples): examples shown per record.
//! - `example_template` (default `Input: {{ input }}\nOutput: {{ output }}`): how one example
//!   is shown. Variables: the example's keys, `example` (the whole object), `number` (its
//!   1-based position in the prompt).
//! - `instruction` (default: the shots, then "Write one new example in the same format ...")
//!   and `system` (optional): minijinja templates of the user and system messages. Variables:
//!   `examples` (the k chosen examples, objects, in prompt order), `shots` (them rendered with
//!   `example_template`, separated by blank lines) and `index` (the record's index).
//!
//! Templates are strict: a variable an example lacks is an error naming the template and the
//! example, never an empty string.
//!
//! Determinism: record `i` shows `k` examples drawn without replacement (a partial
//! Fisher–Yates shuffle, so their order is random too) from the stream
//! [`SplitMix64::for_record`]`(seed, i)`; nothing else is random, so a resumed job rebuilds the
//! same prompts. The dataset has no end. Metadata: `{"examples": [pool indices, in prompt
//! order]}`. Generation is the SDK's default (one chat completion per record, seeded from
//! (seed, i)), through `generate` and `generate_record` alike.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use textnlp_plugin_sdk::rng::SplitMix64;
use textnlp_plugin_sdk::strategy::{
    ChatMessage, ExpandRequest, PromptRecord, Strategy, StrategyError,
};

/// Most records one `expand` call produces, so a request cannot exhaust the plugin's memory.
const MAX_RECORDS_PER_CALL: u32 = 10_000;

const DEFAULT_INSTRUCTION: &str = "Here are some examples:\n\n{{ shots }}\n\nWrite one new \
     example in the same format, different from the ones above. Reply with the new example only.";
const DEFAULT_EXAMPLE_TEMPLATE: &str = "Input: {{ input }}\nOutput: {{ output }}";

struct FewShot;

textnlp_plugin_sdk::register_strategy!(FewShot);

impl Strategy for FewShot {
    fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        let settings = Settings::parse(&textnlp_plugin_sdk::config::raw())?;
        Prompts::compile(&settings)?.expand(&request)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    system: Option<String>,
    #[serde(default = "default_instruction")]
    instruction: String,
    examples: Vec<Map<String, Value>>,
    #[serde(default = "default_k")]
    k: u32,
    #[serde(default = "default_example_template")]
    example_template: String,
}

fn default_instruction() -> String {
    DEFAULT_INSTRUCTION.into()
}

fn default_k() -> u32 {
    3
}

fn default_example_template() -> String {
    DEFAULT_EXAMPLE_TEMPLATE.into()
}

impl Settings {
    fn parse(json: &str) -> Result<Settings, StrategyError> {
        let settings: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(StrategyError::InvalidConfig)?;
        if settings.examples.is_empty() {
            return Err(StrategyError::InvalidConfig(
                "examples: needs at least one example".into(),
            ));
        }
        if settings.k == 0 {
            return Err(StrategyError::InvalidConfig("k: must be at least 1".into()));
        }
        if settings.k as usize > settings.examples.len() {
            return Err(StrategyError::InvalidConfig(format!(
                "k: {} is more than the {} examples",
                settings.k,
                settings.examples.len()
            )));
        }
        Ok(settings)
    }
}

/// The compiled templates and the pool, ready to render records.
struct Prompts<'s> {
    env: Environment<'s>,
    settings: &'s Settings,
}

impl<'s> Prompts<'s> {
    fn compile(settings: &'s Settings) -> Result<Prompts<'s>, StrategyError> {
        let mut env = Environment::new();
        // A misspelt variable is an error, not an empty string in thousands of prompts.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template("instruction", &settings.instruction)
            .map_err(|e| invalid("instruction", &e))?;
        env.add_template("example_template", &settings.example_template)
            .map_err(|e| invalid("example_template", &e))?;
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
            .map(|index| self.record(request.seed, index))
            .collect()
    }

    fn record(&self, seed: u64, index: u64) -> Result<PromptRecord, StrategyError> {
        let examples = &self.settings.examples;
        let chosen = sample_without_replacement(
            &mut SplitMix64::for_record(seed, index),
            examples.len(),
            self.settings.k as usize,
        );
        let shots = chosen
            .iter()
            .enumerate()
            .map(|(position, &pick)| self.shot(pick, position + 1))
            .collect::<Result<Vec<_>, _>>()?
            .join("\n\n");
        let mut context = BTreeMap::new();
        context.insert(
            "examples",
            chosen
                .iter()
                .map(|&pick| object_value(&examples[pick]))
                .collect::<minijinja::Value>(),
        );
        context.insert("shots", minijinja::Value::from(shots));
        context.insert("index", minijinja::Value::from(index));
        let context = minijinja::Value::from(context);
        let mut messages = Vec::with_capacity(2);
        if self.settings.system.is_some() {
            messages.push(message("system", self.render("system", &context)?));
        }
        messages.push(message("user", self.render("instruction", &context)?));
        Ok(PromptRecord {
            index,
            messages,
            metadata: json!({ "examples": chosen }).to_string(),
        })
    }

    /// Example `pick` of the pool through `example_template`, at 1-based `number`.
    fn shot(&self, pick: usize, number: usize) -> Result<String, StrategyError> {
        let example = &self.settings.examples[pick];
        let mut context: BTreeMap<&str, minijinja::Value> = example
            .iter()
            .map(|(key, value)| {
                (
                    key.as_str(),
                    minijinja::Value::from(minijinja::value::Serde(value)),
                )
            })
            .collect();
        context.insert("example", object_value(example));
        context.insert("number", minijinja::Value::from(number));
        self.template("example_template")?
            .render(minijinja::Value::from(context))
            .map_err(|e| {
                StrategyError::InvalidConfig(format!("example_template: examples[{pick}]: {e}"))
            })
    }

    fn render(&self, name: &str, context: &minijinja::Value) -> Result<String, StrategyError> {
        self.template(name)?
            .render(context)
            .map_err(|e| invalid(name, &e))
    }

    fn template(&self, name: &str) -> Result<minijinja::Template<'_, '_>, StrategyError> {
        // Every template was added in `compile`; a failed lookup is still an error, not a trap.
        self.env.get_template(name).map_err(|e| invalid(name, &e))
    }
}

/// `k` distinct values of `0..n` in random order (`k <= n`): the first `k` steps of a
/// Fisher–Yates shuffle, with the permutation kept sparse (only moved slots are stored), so
/// the cost is O(k log k) whatever the size of the pool.
fn sample_without_replacement(rng: &mut SplitMix64, n: usize, k: usize) -> Vec<usize> {
    let mut moved: BTreeMap<usize, usize> = BTreeMap::new();
    (0..k.min(n))
        .map(|i| {
            let j = i + rng.below((n - i) as u64) as usize;
            let at_j = moved.get(&j).copied().unwrap_or(j);
            let at_i = moved.get(&i).copied().unwrap_or(i);
            moved.insert(j, at_i);
            at_j
        })
        .collect()
}

fn object_value(object: &Map<String, Value>) -> minijinja::Value {
    minijinja::Value::from(
        object
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    minijinja::Value::from(minijinja::value::Serde(v)),
                )
            })
            .collect::<BTreeMap<_, _>>(),
    )
}

fn message(role: &str, content: String) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content,
    }
}

/// A settings error naming the template it came from ("instruction: syntax error: ...").
fn invalid(setting: &str, error: &minijinja::Error) -> StrategyError {
    StrategyError::InvalidConfig(format!("{setting}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    const REVIEWS: &str = r#"{
        "system": "You write reviews ({{ examples|length }} shown).",
        "examples": [
            {"input": "kettle", "output": "Boils fast."},
            {"input": "bike", "output": "Gears slip."},
            {"input": "lamp", "output": "Warm light."},
            {"input": "desk", "output": "Sturdy."},
            {"input": "pen", "output": "Leaks."}
        ],
        "k": 3
    }"#;

    fn expand(json: &str, seed: u64, start: u64, count: u32) -> Vec<PromptRecord> {
        let settings = Settings::parse(json).unwrap();
        let request = ExpandRequest { seed, start, count };
        Prompts::compile(&settings)
            .unwrap()
            .expand(&request)
            .unwrap()
    }

    fn error(json: &str) -> String {
        let request = ExpandRequest {
            seed: 0,
            start: 0,
            count: 4,
        };
        let result = Settings::parse(json)
            .and_then(|s| Prompts::compile(&s).and_then(|p| p.expand(&request)));
        match result {
            Err(StrategyError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    fn chosen(record: &PromptRecord) -> Vec<usize> {
        let metadata: Value = serde_json::from_str(&record.metadata).unwrap();
        metadata["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    }

    #[test]
    fn the_manifest_is_valid() {
        let manifest = FewShot::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind, manifest.context),
            ("few-shot", Kind::Strategy, 0)
        );
        assert_eq!(manifest.capabilities.timeout_ms, 120_000);
    }

    #[test]
    fn a_record_shows_k_distinct_examples_in_the_default_format() {
        let records = expand(REVIEWS, 7, 0, 20);
        assert_eq!(records.len(), 20);
        let examples: Value = serde_json::from_str(REVIEWS).unwrap();
        for record in &records {
            let picks = chosen(record);
            assert_eq!(picks.len(), 3);
            assert_eq!(picks.iter().collect::<HashSet<_>>().len(), 3);
            assert_eq!(record.messages[0].content, "You write reviews (3 shown).");
            let user = &record.messages[1].content;
            assert!(
                user.starts_with("Here are some examples:\n\nInput: "),
                "{user}"
            );
            assert!(user.ends_with("Reply with the new example only."));
            // In prompt order, separated by blank lines.
            let shots: Vec<String> = picks
                .iter()
                .map(|&p| {
                    let e = &examples["examples"][p];
                    format!(
                        "Input: {}\nOutput: {}",
                        e["input"].as_str().unwrap(),
                        e["output"].as_str().unwrap()
                    )
                })
                .collect();
            assert!(user.contains(&shots.join("\n\n")), "{user}");
        }
        // Draws vary across records and cover the pool.
        let all: HashSet<usize> = records.iter().flat_map(chosen).collect();
        assert_eq!(all.len(), 5);
        assert!(records.iter().any(|r| chosen(r) != chosen(&records[0])));
    }

    #[test]
    fn records_depend_only_on_seed_and_index() {
        let all = expand(REVIEWS, 42, 0, 30);
        let resumed = expand(REVIEWS, 42, 25, 5);
        for (a, b) in all[25..].iter().zip(&resumed) {
            assert_eq!((a.index, &a.metadata), (b.index, &b.metadata));
            assert_eq!(a.messages[1].content, b.messages[1].content);
        }
        let other = expand(REVIEWS, 43, 0, 30);
        assert!(
            all.iter()
                .zip(&other)
                .any(|(a, b)| a.metadata != b.metadata)
        );
    }

    #[test]
    fn sampling_is_without_replacement_and_uniform_enough() {
        let mut counts = [0usize; 10];
        for index in 0..2000 {
            let picks = sample_without_replacement(&mut SplitMix64::for_record(1, index), 10, 4);
            assert_eq!(picks.iter().collect::<HashSet<_>>().len(), 4);
            for p in picks {
                counts[p] += 1;
            }
        }
        // 800 expected per value.
        assert!(
            counts.iter().all(|&c| (650..950).contains(&c)),
            "{counts:?}"
        );
        let all = sample_without_replacement(&mut SplitMix64::new(3), 6, 6);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3, 4, 5]);
        assert!(
            sample_without_replacement(&mut SplitMix64::new(3), 1_000_000_000, 2)
                .iter()
                .all(|&p| p < 1_000_000_000)
        );
    }

    #[test]
    fn templates_see_examples_keys_number_and_index() {
        let json = r##"{
            "instruction": "#{{ index }} {{ examples[0].q }} | {{ shots }}",
            "examples": [{"q": "Why?", "a": 42, "tags": ["x"]}],
            "k": 1,
            "example_template": "{{ number }}. {{ q }} -> {{ a + 1 }} {{ example.tags[0] }}"
        }"##;
        let records = expand(json, 0, 5, 1);
        assert_eq!(records[0].messages.len(), 1);
        assert_eq!(records[0].messages[0].content, "#5 Why? | 1. Why? -> 43 x");
        assert_eq!(records[0].metadata, r#"{"examples":[0]}"#);
    }

    #[test]
    fn bad_settings_name_the_field() {
        assert!(error(r#"{"examples": []}"#).starts_with("examples: "));
        assert!(error(r#"{"k": 1}"#).contains("examples"));
        assert!(error(r#"{"examples": ["text"]}"#).starts_with("examples[0]: "));
        assert!(
            error(r#"{"examples": [{"input": "a", "output": "b"}], "k": 2}"#)
                .starts_with("k: 2 is more than the 1 examples")
        );
        assert!(
            error(r#"{"examples": [{"input": "a", "output": "b"}], "k": 0}"#).starts_with("k: ")
        );
        assert!(
            error(r#"{"examples": [{"input": "a", "output": "b"}], "k": -1}"#).starts_with("k: ")
        );
        assert!(
            error(r#"{"examples": [{"input": "a"}], "k": 1}"#)
                .starts_with("example_template: examples[0]: ")
        );
        assert!(
            error(r#"{"examples": [{"input": "a"}], "k": 1, "instruction": "{{ x"}"#)
                .starts_with("instruction: ")
        );
        assert!(
            error(
                r#"{"examples": [{"input": "a"}], "k": 1, "system": "{{ nope }}",
                          "example_template": "{{ input }}"}"#
            )
            .starts_with("system: ")
        );
        assert!(error(r#"{"examples": [{"a": 1}], "shots": 2}"#).contains("unknown field `shots`"));
        let settings = Settings::parse(REVIEWS).unwrap();
        let request = ExpandRequest {
            seed: 0,
            start: 0,
            count: MAX_RECORDS_PER_CALL + 1,
        };
        assert!(matches!(
            Prompts::compile(&settings).unwrap().expand(&request),
            Err(StrategyError::InvalidRequest(_))
        ));
    }
}
