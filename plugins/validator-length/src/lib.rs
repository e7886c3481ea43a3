//! `validator-length` (manifest name `length`): keeps samples whose length is within bounds.
//!
//! Settings: `{"unit": "chars" | "words" | "tokens", "min": n, "max": n}`, all optional (`chars`,
//! 0, no upper bound). `chars` counts Unicode scalar values, `words` whitespace-separated runs,
//! `tokens` the host model's tokens (without special tokens; needs model access).
//!
//! Each sample gets one score, `length`, and a verdict whose reason names the failed bound
//! ("shorter than min 5 words"). The corpus metrics are `count`, and for a non-empty batch
//! `mean-length`, `min-length`, `max-length` and `kept-fraction`.

use serde::Deserialize;
use textnlp_plugin_sdk::model;
use textnlp_plugin_sdk::validator::{
    Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict,
};

struct Length;

textnlp_plugin_sdk::register_validator!(Length);

impl Validator for Length {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        let settings = Settings::load()?;
        let lengths = samples
            .iter()
            .map(|s| settings.unit.measure(&s.text))
            .collect::<Result<Vec<u64>, _>>()?;
        let results: Vec<SampleResult> = lengths
            .iter()
            .map(|&length| SampleResult {
                scores: vec![Metric::new("length", length as f64)],
                verdict: settings.judge(length),
            })
            .collect();
        Ok(Report {
            corpus: corpus_metrics(&lengths, &results),
            samples: results,
        })
    }
}

/// What a length counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Unit {
    #[default]
    Chars,
    Words,
    Tokens,
}

impl Unit {
    fn measure(self, text: &str) -> Result<u64, ValidatorError> {
        Ok(match self {
            Unit::Chars => text.chars().count() as u64,
            Unit::Words => text.split_whitespace().count() as u64,
            Unit::Tokens => model::tokenize(text, false)
                .map_err(|e| ValidatorError::Model(model::error_message(&e)))?
                .len() as u64,
        })
    }

    /// "5 words", "1 word".
    fn quantity(self, n: u64) -> String {
        let name = match self {
            Unit::Chars => "char",
            Unit::Words => "word",
            Unit::Tokens => "token",
        };
        let plural = if n == 1 { "" } else { "s" };
        format!("{n} {name}{plural}")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    unit: Unit,
    min: u64,
    max: Option<u64>,
}

impl Settings {
    fn load() -> Result<Settings, ValidatorError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ValidatorError> {
        let settings: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(ValidatorError::InvalidConfig)?;
        match settings.max {
            Some(max) if max < settings.min => Err(ValidatorError::InvalidConfig(format!(
                "max: {max} is below min {}",
                settings.min
            ))),
            _ => Ok(settings),
        }
    }

    fn judge(&self, length: u64) -> Verdict {
        if length < self.min {
            return Verdict::reject(format!("shorter than min {}", self.unit.quantity(self.min)));
        }
        match self.max {
            Some(max) if length > max => {
                Verdict::reject(format!("longer than max {}", self.unit.quantity(max)))
            }
            _ => Verdict::keep(),
        }
    }
}

fn corpus_metrics(lengths: &[u64], results: &[SampleResult]) -> Vec<Metric> {
    let count = lengths.len();
    let mut metrics = vec![Metric::new("count", count as f64)];
    // An empty batch has no mean or extremes; leaving them out beats reporting made-up zeros.
    if let (Some(&min), Some(&max)) = (lengths.iter().min(), lengths.iter().max()) {
        let total: f64 = lengths.iter().map(|&l| l as f64).sum();
        let kept = results.iter().filter(|r| r.verdict.keep).count();
        metrics.extend([
            Metric::new("mean-length", total / count as f64),
            Metric::new("min-length", min as f64),
            Metric::new("max-length", max as f64),
            Metric::new("kept-fraction", kept as f64 / count as f64),
        ]);
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    fn settings(json: &str) -> Settings {
        Settings::parse(json).unwrap()
    }

    #[test]
    fn the_manifest_is_valid() {
        let manifest = Length::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind),
            ("length", Kind::Validator)
        );
    }

    #[test]
    fn empty_settings_keep_everything() {
        let s = settings("{}");
        assert_eq!(s.unit, Unit::Chars);
        assert!(s.judge(0).keep && s.judge(u64::MAX).keep);
    }

    #[test]
    fn measures_chars_and_words() {
        assert_eq!(Unit::Chars.measure("héllo").unwrap(), 5);
        assert_eq!(Unit::Words.measure("  two\twords\n").unwrap(), 2);
        assert_eq!(Unit::Words.measure("").unwrap(), 0);
    }

    #[test]
    fn reasons_name_the_rule() {
        let s = settings(r#"{"unit": "words", "min": 5, "max": 10}"#);
        assert_eq!(
            s.judge(3).reason.as_deref(),
            Some("shorter than min 5 words")
        );
        assert_eq!(
            s.judge(11).reason.as_deref(),
            Some("longer than max 10 words")
        );
        assert!(s.judge(5).keep && s.judge(10).keep);
        let s = settings(r#"{"min": 1}"#);
        assert_eq!(
            s.judge(0).reason.as_deref(),
            Some("shorter than min 1 char")
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let err = |json| match Settings::parse(json) {
            Err(ValidatorError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(r#"{"min": -1}"#).starts_with("min: "));
        assert!(err(r#"{"unit": "lines"}"#).starts_with("unit: "));
        assert!(err(r#"{"min": 5, "max": 2}"#).starts_with("max: "));
        assert!(err(r#"{"maximum": 2}"#).contains("maximum"));
        assert!(err("[]").contains("JSON object"));
    }

    #[test]
    fn corpus_metrics_summarize_the_batch() {
        let s = settings(r#"{"min": 2}"#);
        let lengths = [1, 2, 6];
        let results: Vec<SampleResult> = lengths
            .iter()
            .map(|&l| SampleResult {
                scores: vec![],
                verdict: s.judge(l),
            })
            .collect();
        let metrics = corpus_metrics(&lengths, &results);
        let get = |name| metrics.iter().find(|m| m.name == name).unwrap().value;
        assert_eq!(get("count"), 3.0);
        assert_eq!(get("mean-length"), 3.0);
        assert_eq!((get("min-length"), get("max-length")), (1.0, 6.0));
        assert!((get("kept-fraction") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(corpus_metrics(&[], &[]).len(), 1);
    }
}
