//! `validator-bleu` (manifest name `bleu`): sacreBLEU 2.6.0 BLEU of each sample against its
//! references, and of the whole batch.
//!
//! Settings (all optional): `tokenize` (`13a` | `none` | `char`), `lowercase`, `smooth_method`
//! (`exp` | `floor` | `add-k` | `none`), `smooth_value` (null: sacreBLEU's default),
//! `max_ngram_order` (1..=9, 4), `effective_order` (corpus score only; false), and `min` /
//! `max` bounds on the sentence BLEU.
//!
//! Each sample needs at least one reference. Its score `bleu` is sacreBLEU's `sentence_bleu`
//! (effective order, same tokenizer and smoothing), and a sample outside the bounds is
//! rejected ("bleu 12.3457 below min 20"). The corpus metrics are `count` and, for a non-empty
//! batch, sacreBLEU's `corpus_score`: `bleu`, `bleu-bp`, `bleu-sys-len`, `bleu-ref-len`,
//! `bleu-precision-{n}`, `bleu-correct-{n}`, `bleu-total-{n}`, and the score once more under
//! the name `bleu|<signature>` (`bleu|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`)
//! so reports carry how it was computed.

use serde::Deserialize;
use textnlp_metrics::bleu::{
    Bleu, BleuConfig, BleuScore, BleuStats, MAX_NGRAM_ORDER, Smoothing, Tokenize, compute_bleu,
    uniform_ref_count,
};
use textnlp_plugin_sdk::validator::{
    Bounds, Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict,
};

struct BleuValidator;

textnlp_plugin_sdk::register_validator!(BleuValidator);

impl Validator for BleuValidator {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        let settings = Settings::load()?;
        score(&settings, &samples)
    }
}

fn score(settings: &Settings, samples: &[Sample]) -> Result<Report, ValidatorError> {
    if let Some(i) = samples.iter().position(|s| s.references.is_empty()) {
        return Err(ValidatorError::InvalidInput(format!(
            "sample {i} has no reference; BLEU needs at least one"
        )));
    }
    let config = settings.bleu_config();
    let mut bleu = Bleu::new(config).map_err(|e| ValidatorError::InvalidConfig(e.to_string()))?;
    let mut corpus = BleuStats::default();
    let results = samples
        .iter()
        .map(|sample| {
            let stats = bleu.segment_stats(&sample.text, &sample.references);
            corpus += &stats;
            let sentence = compute_bleu(&stats, config.smoothing, true, config.max_ngram_order);
            SampleResult {
                scores: vec![Metric::new("bleu", sentence.score)],
                verdict: settings.judge(sentence.score),
            }
        })
        .collect();
    let mut metrics = vec![Metric::new("count", samples.len() as f64)];
    // An empty batch has no corpus score; leaving it out beats reporting a made-up zero.
    if !samples.is_empty() {
        let nrefs = uniform_ref_count(samples.iter().map(|s| s.references.len()));
        metrics.extend(corpus_metrics(&bleu.score(&corpus), &bleu.signature(nrefs)));
    }
    Ok(Report {
        corpus: metrics,
        samples: results,
    })
}

fn corpus_metrics(score: &BleuScore, signature: &str) -> Vec<Metric> {
    let mut metrics = vec![
        Metric::new("bleu", score.score),
        Metric::new(format!("bleu|{signature}"), score.score),
        Metric::new("bleu-bp", score.bp),
        Metric::new("bleu-sys-len", score.sys_len as f64),
        Metric::new("bleu-ref-len", score.ref_len as f64),
    ];
    for (n, precision) in score.precisions.iter().enumerate() {
        metrics.push(Metric::new(format!("bleu-precision-{}", n + 1), *precision));
    }
    for (n, count) in score.counts.iter().enumerate() {
        metrics.push(Metric::new(format!("bleu-correct-{}", n + 1), *count));
    }
    for (n, total) in score.totals.iter().enumerate() {
        metrics.push(Metric::new(format!("bleu-total-{}", n + 1), *total));
    }
    metrics
}

/// The `tokenize` setting: the tokenizers this build has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
enum TokenizeSetting {
    #[default]
    #[serde(rename = "13a")]
    Tok13a,
    #[serde(rename = "none")]
    None,
    #[serde(rename = "char")]
    Char,
}

/// The `smooth_method` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SmoothMethod {
    #[default]
    Exp,
    Floor,
    AddK,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    tokenize: TokenizeSetting,
    lowercase: bool,
    smooth_method: SmoothMethod,
    smooth_value: Option<f64>,
    max_ngram_order: usize,
    effective_order: bool,
    min: Option<f64>,
    max: Option<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tokenize: TokenizeSetting::default(),
            lowercase: false,
            smooth_method: SmoothMethod::default(),
            smooth_value: None,
            max_ngram_order: 4,
            effective_order: false,
            min: None,
            max: None,
        }
    }
}

impl Settings {
    fn load() -> Result<Settings, ValidatorError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ValidatorError> {
        let s: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(ValidatorError::InvalidConfig)?;
        let invalid = |message: String| Err(ValidatorError::InvalidConfig(message));
        if !(1..=MAX_NGRAM_ORDER).contains(&s.max_ngram_order) {
            return invalid(format!(
                "max_ngram_order: {} is outside 1..={MAX_NGRAM_ORDER}",
                s.max_ngram_order
            ));
        }
        if let Some(v) = s.smooth_value
            && v < 0.0
        {
            return invalid(format!("smooth_value: {v} is negative"));
        }
        s.bounds()
            .check("min", "max")
            .map_err(ValidatorError::InvalidConfig)?;
        Ok(s)
    }

    fn bleu_config(&self) -> BleuConfig {
        let value = self.smooth_value;
        BleuConfig {
            tokenize: match self.tokenize {
                TokenizeSetting::Tok13a => Tokenize::Tok13a,
                TokenizeSetting::None => Tokenize::None,
                TokenizeSetting::Char => Tokenize::Char,
            },
            lowercase: self.lowercase,
            smoothing: match self.smooth_method {
                SmoothMethod::Exp => Smoothing::Exp,
                SmoothMethod::Floor => Smoothing::Floor(value.unwrap_or(0.1)),
                SmoothMethod::AddK => Smoothing::AddK(value.unwrap_or(1.0)),
                SmoothMethod::None => Smoothing::None,
            },
            max_ngram_order: self.max_ngram_order,
            effective_order: self.effective_order,
        }
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            min: self.min,
            max: self.max,
        }
    }

    fn judge(&self, bleu: f64) -> Verdict {
        self.bounds().judge("bleu", bleu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    fn settings(json: &str) -> Settings {
        Settings::parse(json).unwrap()
    }

    fn sample(text: &str, references: &[&str]) -> Sample {
        Sample {
            text: text.into(),
            references: references.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn metric(metrics: &[Metric], name: &str) -> f64 {
        metrics.iter().find(|m| m.name == name).unwrap().value
    }

    #[test]
    fn the_manifest_is_valid() {
        let manifest = BleuValidator::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind),
            ("bleu", Kind::Validator)
        );
        assert!(!manifest.capabilities.model);
    }

    #[test]
    fn defaults_are_sacrebleu_s() {
        let s = settings("{}");
        assert_eq!(s.bleu_config(), BleuConfig::default());
        assert!(s.judge(0.0).keep && s.judge(100.0).keep);
        let s = settings(r#"{"smooth_method": "add-k", "smooth_value": 2, "tokenize": "char"}"#);
        assert_eq!(s.bleu_config().smoothing, Smoothing::AddK(2.0));
        assert_eq!(s.bleu_config().tokenize, Tokenize::Char);
        let s = settings(r#"{"smooth_method": "floor", "smooth_value": null}"#);
        assert_eq!(s.bleu_config().smoothing, Smoothing::Floor(0.1));
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let err = |json| match Settings::parse(json) {
            Err(ValidatorError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(r#"{"tokenize": "intl"}"#).starts_with("tokenize: "));
        assert!(err(r#"{"smooth_method": "add_k"}"#).starts_with("smooth_method: "));
        assert!(err(r#"{"smooth_value": -1}"#).starts_with("smooth_value: "));
        assert!(err(r#"{"max_ngram_order": 0}"#).starts_with("max_ngram_order: "));
        assert!(err(r#"{"max_ngram_order": 10}"#).starts_with("max_ngram_order: "));
        assert!(err(r#"{"min": 50, "max": 20}"#).starts_with("max: "));
        assert!(err(r#"{"lowercase": 1}"#).starts_with("lowercase: "));
        assert!(err(r#"{"minimum": 2}"#).contains("minimum"));
    }

    #[test]
    fn scores_the_golden_corpus() {
        // shared/golden/metrics/reference_py311.json, "corpus|exp|eff=False" and
        // "sentence|Hello world|exp|None".
        let samples = [
            sample(
                "The cat sat on the mat.",
                &["The cat is sitting on the mat."],
            ),
            sample(
                "There is a dog in the garden!",
                &["There's a dog in the garden."],
            ),
            sample("Hello world", &["Hello there world"]),
        ];
        let report = score(&settings(r#"{"min": 45}"#), &samples).unwrap();
        let corpus = &report.corpus;
        assert_eq!(metric(corpus, "count"), 3.0);
        assert_eq!(metric(corpus, "bleu"), 47.82790714816793);
        assert_eq!(
            metric(
                corpus,
                "bleu|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
            ),
            47.82790714816793
        );
        assert_eq!(metric(corpus, "bleu-bp"), 0.9428731438548749);
        assert_eq!(metric(corpus, "bleu-sys-len"), 17.0);
        assert_eq!(metric(corpus, "bleu-ref-len"), 18.0);
        assert_eq!(metric(corpus, "bleu-precision-2"), 57.142857142857146);
        assert_eq!(metric(corpus, "bleu-correct-4"), 3.0);
        assert_eq!(metric(corpus, "bleu-total-1"), 17.0);
        let hello = &report.samples[2];
        assert_eq!(metric(&hello.scores, "bleu"), 42.88819424803536);
        assert_eq!(
            hello.verdict.reason.as_deref(),
            Some("bleu 42.8882 below min 45")
        );
        assert!(report.samples.iter().all(|r| r.scores.len() == 1));
    }

    #[test]
    fn bounds_reject_with_a_reason() {
        let s = settings(r#"{"min": 20, "max": 90}"#);
        assert_eq!(
            s.judge(12.344).reason.as_deref(),
            Some("bleu 12.344 below min 20")
        );
        assert_eq!(
            s.judge(100.0).reason.as_deref(),
            Some("bleu 100 above max 90")
        );
        assert!(s.judge(20.0).keep && s.judge(90.0).keep);
    }

    #[test]
    fn references_may_vary_but_not_be_missing() {
        let s = settings("{}");
        let report = score(&s, &[sample("a b", &["a b"]), sample("c", &["c", "d"])]).unwrap();
        assert!(
            report
                .corpus
                .iter()
                .any(|m| m.name.starts_with("bleu|nrefs:var|"))
        );
        match score(&s, &[sample("a", &["a"]), sample("b", &[])]) {
            Err(ValidatorError::InvalidInput(m)) => assert!(m.starts_with("sample 1 "), "{m}"),
            other => panic!("{other:?}"),
        }
        let empty = score(&s, &[]).unwrap();
        assert_eq!(empty.corpus.len(), 1);
        assert_eq!(empty.corpus[0].name, "count");
    }

    #[test]
    fn odd_text_scores_finitely() {
        let s = settings(r#"{"max_ngram_order": 9, "smooth_method": "none"}"#);
        let samples = [
            sample("", &[""]),
            sample("\u{1c}\u{1f} ß 𝔘 &amp; <skipped>", &["ß"]),
        ];
        let report = score(&s, &samples).unwrap();
        let all = report
            .corpus
            .iter()
            .chain(report.samples.iter().flat_map(|r| &r.scores));
        assert!(all.into_iter().all(|m| m.value.is_finite()));
    }
}
