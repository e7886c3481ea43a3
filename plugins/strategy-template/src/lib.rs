//! `strategy-template` (manifest name `template`): prompts rendered from minijinja templates.
//!
//! Settings:
//!
//! ```json
//! {
//!   "system": "You are a {{tone}} critic.",
//!   "template": "Write a {{tone}} review of {{product}}.",
//!   "variables": { "tone": ["happy", "angry"], "product": ["a kettle", "a bike"] },
//!   "mode": "product"
//! }
//! ```
//!
//! Per-record variables come as `rows` (objects; a spec's `strategy.files: {rows: FILE}`
//! inlines a CSV or JSONL file): each row is one more dimension, the slowest in `product` mode
//! (every row × every combination), drawn first in `sample` mode; its fields are template
//! variables and metadata like the others.
//!
//! Variables are taken in name order. In `product` mode (the default) record `i` is the `i`-th
//! combination, counting in mixed radix with the last variable as the fastest digit, and the
//! dataset ends after the last combination; the seed plays no part. In `sample` mode each
//! variable of record `i` is drawn from a random stream seeded by (seed, i), and the dataset has
//! no end. Either way record `i` depends only on (seed, i) and the settings.
//!
//! Each record is an optional system message and a user message; its metadata is the chosen
//! variables as a JSON object. Generation is the SDK's default (the host model, per record).

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::Value;
use textnlp_plugin_sdk::rng::SplitMix64;
use textnlp_plugin_sdk::strategy::{
    ChatMessage, ExpandRequest, PromptRecord, Strategy, StrategyError,
};

/// Most records one `expand` call produces, so a request cannot exhaust the plugin's memory.
const MAX_RECORDS_PER_CALL: u32 = 10_000;

struct Template;

textnlp_plugin_sdk::register_strategy!(Template);

impl Strategy for Template {
    fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        let settings = Settings::parse(&textnlp_plugin_sdk::config::raw())?;
        Prompts::compile(&settings)?.expand(&request)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Product,
    Sample,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    system: Option<String>,
    template: String,
    #[serde(default)]
    variables: BTreeMap<String, Vec<Value>>,
    /// Per-record variables (a CSV/JSONL file the host inlined): one more dimension, whose
    /// values are whole objects of variables.
    #[serde(default)]
    rows: Vec<serde_json::Map<String, Value>>,
    #[serde(default)]
    mode: Mode,
}

impl Settings {
    fn parse(json: &str) -> Result<Settings, StrategyError> {
        let settings: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(StrategyError::InvalidConfig)?;
        if let Some((name, _)) = settings.variables.iter().find(|(_, v)| v.is_empty()) {
            return Err(StrategyError::InvalidConfig(format!(
                "variables.{name}: needs at least one value"
            )));
        }
        for (i, row) in settings.rows.iter().enumerate() {
            if let Some(name) = row.keys().find(|k| settings.variables.contains_key(*k)) {
                return Err(StrategyError::InvalidConfig(format!(
                    "rows[{i}].{name}: also a list variable; a name has one source"
                )));
            }
        }
        Ok(settings)
    }
}

/// The compiled templates and the variables, ready to render records.
struct Prompts<'s> {
    env: Environment<'s>,
    has_system: bool,
    /// In name order.
    variables: Vec<(&'s str, &'s [Value])>,
    rows: &'s [serde_json::Map<String, Value>],
    mode: Mode,
}

impl<'s> Prompts<'s> {
    fn compile(settings: &'s Settings) -> Result<Prompts<'s>, StrategyError> {
        let mut env = Environment::new();
        // A misspelt variable is an error, not an empty string in thousands of prompts.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template("template", &settings.template)
            .map_err(|e| invalid("template", &e))?;
        if let Some(system) = &settings.system {
            env.add_template("system", system)
                .map_err(|e| invalid("system", &e))?;
        }
        Ok(Prompts {
            env,
            has_system: settings.system.is_some(),
            variables: settings
                .variables
                .iter()
                .map(|(name, values)| (name.as_str(), values.as_slice()))
                .collect(),
            rows: &settings.rows,
            mode: settings.mode,
        })
    }

    fn expand(&self, request: &ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        if request.count > MAX_RECORDS_PER_CALL {
            return Err(StrategyError::InvalidRequest(format!(
                "count: {} is more than {MAX_RECORDS_PER_CALL} records per call",
                request.count
            )));
        }
        let end = request.start.saturating_add(u64::from(request.count));
        let end = match self.dataset_size() {
            Some(size) => end.min(size),
            None => end,
        };
        (request.start..end)
            .map(|index| self.record(request.seed, index))
            .collect()
    }

    /// Records in the dataset; `None` when unbounded (sample mode, or a product beyond `u64`).
    fn dataset_size(&self) -> Option<u64> {
        match self.mode {
            Mode::Sample => None,
            Mode::Product => self
                .variables
                .iter()
                .try_fold(self.rows.len().max(1) as u64, |size, (_, values)| {
                    size.checked_mul(values.len() as u64)
                }),
        }
    }

    /// The row (when there are rows) and the value index of each variable for record
    /// `index`. In product mode the row is the slowest digit; in sample mode it is drawn first.
    fn choose(&self, seed: u64, index: u64) -> (Option<usize>, Vec<usize>) {
        let rows = self.rows.len() as u64;
        match self.mode {
            Mode::Product => {
                let mut rest = index;
                let mut picks: Vec<usize> = self
                    .variables
                    .iter()
                    .rev()
                    .map(|(_, values)| {
                        let radix = values.len() as u64;
                        let digit = rest % radix;
                        rest /= radix;
                        digit as usize
                    })
                    .collect();
                picks.reverse();
                ((rows > 0).then(|| (rest % rows) as usize), picks)
            }
            Mode::Sample => {
                let mut rng = SplitMix64::for_record(seed, index);
                let row = (rows > 0).then(|| rng.below(rows) as usize);
                let picks = self
                    .variables
                    .iter()
                    .map(|(_, values)| rng.below(values.len() as u64) as usize)
                    .collect();
                (row, picks)
            }
        }
    }

    fn record(&self, seed: u64, index: u64) -> Result<PromptRecord, StrategyError> {
        let (row, picks) = self.choose(seed, index);
        let mut chosen = row.map(|r| self.rows[r].clone()).unwrap_or_default();
        chosen.extend(
            self.variables
                .iter()
                .zip(picks)
                .map(|((name, values), pick)| ((*name).to_owned(), values[pick].clone())),
        );
        let mut messages = Vec::with_capacity(2);
        if self.has_system {
            messages.push(message("system", self.render("system", &chosen)?));
        }
        messages.push(message("user", self.render("template", &chosen)?));
        Ok(PromptRecord {
            index,
            messages,
            metadata: Value::Object(chosen).to_string(),
        })
    }

    fn render(
        &self,
        name: &str,
        variables: &serde_json::Map<String, Value>,
    ) -> Result<String, StrategyError> {
        // Both templates were added in `compile`; a failed lookup is still an error, not a trap.
        let template = self.env.get_template(name).map_err(|e| invalid(name, &e))?;
        let context: BTreeMap<&str, minijinja::Value> = variables
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str(),
                    minijinja::Value::from(minijinja::value::Serde(value)),
                )
            })
            .collect();
        template
            .render(minijinja::Value::from(context))
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

    const REVIEWS: &str = r#"{
        "system": "You are {{ tone }}.",
        "template": "Write a {{tone}} review of {{product}}.",
        "variables": {"tone": ["happy", "angry"], "product": ["a kettle", "a bike", "a lamp"]}
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
            count: 1,
        };
        let result = Settings::parse(json)
            .and_then(|s| Prompts::compile(&s).and_then(|p| p.expand(&request)));
        match result {
            Err(StrategyError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_manifest_is_valid() {
        let manifest = Template::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind),
            ("template", Kind::Strategy)
        );
    }

    #[test]
    fn product_mode_counts_in_mixed_radix_and_ends() {
        let records = expand(REVIEWS, 0, 0, 100);
        assert_eq!(records.len(), 6);
        // Names in order: product, tone; tone (the last) varies fastest.
        let user: Vec<&str> = records
            .iter()
            .map(|r| r.messages[1].content.as_str())
            .collect();
        assert_eq!(user[0], "Write a happy review of a kettle.");
        assert_eq!(user[1], "Write a angry review of a kettle.");
        assert_eq!(user[5], "Write a angry review of a lamp.");
        assert_eq!(records[1].messages[0].content, "You are angry.");
        assert_eq!(
            records[1].metadata,
            r#"{"product":"a kettle","tone":"angry"}"#
        );
        assert_eq!(records[5].index, 5);
        let tail = expand(REVIEWS, 0, 4, 10);
        assert_eq!(tail.iter().map(|r| r.index).collect::<Vec<_>>(), [4, 5]);
        assert!(expand(REVIEWS, 0, 6, 10).is_empty());
        assert!(expand(REVIEWS, 0, u64::MAX, 10).is_empty());
    }

    #[test]
    fn rows_are_the_slowest_dimension_and_their_fields_are_variables() {
        let json = r#"{
            "template": "Ask {{ name }} ({{ city }}) about {{ topic }}.",
            "variables": {"topic": ["rain", "trains"]},
            "rows": [{"name": "Ada", "city": "Oslo"}, {"name": "Bo", "city": "Lyon"}]
        }"#;
        let records = expand(json, 0, 0, 100);
        let user: Vec<&str> = records
            .iter()
            .map(|r| r.messages[0].content.as_str())
            .collect();
        assert_eq!(
            user,
            [
                "Ask Ada (Oslo) about rain.",
                "Ask Ada (Oslo) about trains.",
                "Ask Bo (Lyon) about rain.",
                "Ask Bo (Lyon) about trains."
            ]
        );
        assert_eq!(
            records[2].metadata,
            r#"{"city":"Lyon","name":"Bo","topic":"rain"}"#
        );
        let sampled = expand(
            &json.replace("\"rows\"", "\"mode\": \"sample\", \"rows\""),
            9,
            0,
            40,
        );
        let names: std::collections::HashSet<&str> = sampled
            .iter()
            .map(|r| r.messages[0].content.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(names.len(), 2, "both rows drawn");
        assert!(
            error(&json.replace("\"city\": \"Oslo\"", "\"topic\": \"x\""))
                .starts_with("rows[0].topic")
        );
    }

    #[test]
    fn sample_mode_depends_only_on_seed_and_index() {
        let sample = REVIEWS.replace("\"variables\"", "\"mode\": \"sample\", \"variables\"");
        let all = expand(&sample, 42, 0, 50);
        assert_eq!(all.len(), 50);
        let resumed = expand(&sample, 42, 30, 5);
        assert_eq!(resumed[0].metadata, all[30].metadata);
        assert_eq!(resumed[4].messages[1].content, all[34].messages[1].content);
        let other_seed = expand(&sample, 43, 0, 50);
        assert!(
            all.iter()
                .zip(&other_seed)
                .any(|(a, b)| a.metadata != b.metadata)
        );
        let tones: std::collections::HashSet<&str> =
            all.iter().map(|r| r.messages[0].content.as_str()).collect();
        assert_eq!(tones.len(), 2);
    }

    #[test]
    fn variables_may_be_any_json() {
        let json = r#"{"template": "{{ n + 1 }} {{ w.a }} {{ l[0] }}",
                       "variables": {"n": [41], "w": [{"a": "x"}], "l": [[true, null]]}}"#;
        let records = expand(json, 0, 0, 1);
        assert_eq!(records[0].messages[0].content, "42 x True");
        assert_eq!(
            records[0].metadata,
            r#"{"l":[true,null],"n":41,"w":{"a":"x"}}"#
        );
    }

    #[test]
    fn no_variables_give_one_record() {
        let records = expand(r#"{"template": "Say hi."}"#, 0, 0, 3);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].messages.len(), 1);
        assert_eq!(records[0].metadata, "{}");
    }

    #[test]
    fn errors_name_the_setting() {
        assert!(error(r#"{"template": "{{ x"}"#).starts_with("template: "));
        assert!(error(r#"{"template": "{{ missing }}"}"#).starts_with("template: "));
        assert!(error(r#"{"template": "x", "system": "{% if %}"}"#).starts_with("system: "));
        assert!(error(r#"{"template": "x", "variables": {"a": []}}"#).starts_with("variables.a: "));
        assert!(error(r#"{"template": "x", "mode": "all"}"#).starts_with("mode: "));
        assert!(error(r#"{"template": 3}"#).starts_with("template: "));
        assert!(error("{}").contains("template"));
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
