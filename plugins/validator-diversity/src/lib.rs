//! `validator-diversity` (manifest name `diversity`): lexical diversity of a batch.
//!
//! Settings (all optional): `tokenize` (`whitespace`, Python `str.split()`, or `13a`), `n`
//! (distinct-n orders, `[1, 2, 3]`), `self_bleu` (Self-BLEU orders, `[2, 3, 4]`; `[]`
//! disables), `self_bleu_sample_size` (score Self-BLEU on the first samples only, as Texygen's
//! fast mode does with 500) and `max_self_bleu` (drop samples above it at the highest order).
//!
//! Corpus metrics: `count` and, for a non-empty batch, `distinct-{n}`,
//! `distinct-{n}-per-token`, `distinct-{n}-sentence-mean` (three definitions, see
//! [`textnlp_metrics::distinct`]; each left out where it would divide by zero),
//! `self-bleu-{n}` (Texygen, 0-1, with at least two samples scored), `vocab-size`,
//! `type-token-ratio` (with at least one token), `mean-tokens`, `min-tokens`, `max-tokens`
//! and `stdev-tokens` (population standard deviation). Per sample: `tokens`,
//! `distinct-{n}-sentence` and `self-bleu-{n}` (for scored samples).

use serde::Deserialize;
use textnlp_metrics::bleu::Tokenize;
use textnlp_metrics::distinct::{distinct, sentence_distinct};
use textnlp_metrics::nltk_bleu::{SelfBleu, self_bleu};
use textnlp_metrics::text::{CorpusNgrams, py_rstrip, py_split};
use textnlp_plugin_sdk::validator::{
    Bounds, Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict,
};

struct Diversity;

textnlp_plugin_sdk::register_validator!(Diversity);

impl Validator for Diversity {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        let settings = Settings::load()?;
        Ok(score(&settings, &samples))
    }
}

/// The highest n-gram order the settings accept.
const MAX_ORDER: usize = 9;

fn score(settings: &Settings, samples: &[Sample]) -> Report {
    match settings.tokenize {
        TokenizeSetting::Whitespace => {
            let sentences: Vec<Vec<&str>> = samples
                .iter()
                .map(|s| py_split(&s.text).collect())
                .collect();
            report(settings, &sentences)
        }
        TokenizeSetting::Tok13a => {
            let sentences: Vec<Vec<String>> = samples
                .iter()
                .map(|s| {
                    let mut tokens = Vec::new();
                    Tokenize::Tok13a
                        .tokens(py_rstrip(&s.text), &mut |t| tokens.push(t.to_string()));
                    tokens
                })
                .collect();
            report(settings, &sentences)
        }
    }
}

fn report<T: AsRef<str>>(settings: &Settings, sentences: &[Vec<T>]) -> Report {
    let max_order = settings
        .n
        .iter()
        .chain(&settings.self_bleu)
        .copied()
        .max()
        .unwrap_or(1);
    let index = CorpusNgrams::new(sentences, max_order);
    let scored = settings
        .self_bleu_sample_size
        .map_or(sentences.len(), |k| k.min(sentences.len()));
    let sample_index;
    let self_bleu_index = if scored < sentences.len() {
        sample_index = CorpusNgrams::new(&sentences[..scored], max_order);
        &sample_index
    } else {
        &index
    };
    let self_bleus: Vec<(usize, SelfBleu)> = settings
        .self_bleu
        .iter()
        .filter_map(|&n| self_bleu(self_bleu_index, n).map(|s| (n, s)))
        .collect();

    // `max_self_bleu` judges by the highest Self-BLEU order.
    let top = self_bleus.iter().max_by_key(|(n, _)| *n);
    let samples = (0..sentences.len())
        .map(|s| {
            let mut scores = vec![Metric::new("tokens", index.lengths()[s] as f64)];
            for &n in &settings.n {
                scores.push(Metric::new(
                    format!("distinct-{n}-sentence"),
                    sentence_distinct(&index, s, n),
                ));
            }
            for (n, sb) in &self_bleus {
                if let Some(&value) = sb.per_sentence.get(s) {
                    scores.push(Metric::new(format!("self-bleu-{n}"), value));
                }
            }
            let bounds = Bounds {
                min: None,
                max: settings.max_self_bleu,
            };
            let verdict = match top.and_then(|(n, sb)| Some((n, *sb.per_sentence.get(s)?))) {
                Some((n, value)) => bounds.judge(&format!("self-bleu-{n}"), value),
                None => Verdict::keep(),
            };
            SampleResult { scores, verdict }
        })
        .collect();
    Report {
        corpus: corpus_metrics(settings, &index, &self_bleus),
        samples,
    }
}

fn corpus_metrics(
    settings: &Settings,
    index: &CorpusNgrams,
    self_bleus: &[(usize, SelfBleu)],
) -> Vec<Metric> {
    let count = index.sentences();
    let mut metrics = vec![Metric::new("count", count as f64)];
    // An empty batch has no diversity; leaving it out beats reporting made-up zeros.
    if count == 0 {
        return metrics;
    }
    for &n in &settings.n {
        let d = distinct(index, n);
        let named = [
            (format!("distinct-{n}"), d.corpus),
            (format!("distinct-{n}-per-token"), d.per_token),
            (format!("distinct-{n}-sentence-mean"), d.sentence_mean),
        ];
        metrics.extend(
            named
                .into_iter()
                .filter_map(|(name, v)| v.map(|v| Metric::new(name, v))),
        );
    }
    for (n, sb) in self_bleus {
        metrics.push(Metric::new(format!("self-bleu-{n}"), sb.mean));
    }
    let lengths = index.lengths();
    let tokens: usize = lengths.iter().sum();
    let mean = tokens as f64 / count as f64;
    let variance = lengths
        .iter()
        .map(|&l| (l as f64 - mean).powi(2))
        .sum::<f64>()
        / count as f64;
    metrics.push(Metric::new("vocab-size", index.vocab_size() as f64));
    if tokens > 0 {
        metrics.push(Metric::new(
            "type-token-ratio",
            index.vocab_size() as f64 / tokens as f64,
        ));
    }
    metrics.extend([
        Metric::new("mean-tokens", mean),
        Metric::new(
            "min-tokens",
            lengths.iter().min().copied().unwrap_or(0) as f64,
        ),
        Metric::new(
            "max-tokens",
            lengths.iter().max().copied().unwrap_or(0) as f64,
        ),
        Metric::new("stdev-tokens", variance.sqrt()),
    ]);
    metrics
}

/// The `tokenize` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
enum TokenizeSetting {
    #[default]
    #[serde(rename = "whitespace")]
    Whitespace,
    #[serde(rename = "13a")]
    Tok13a,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    tokenize: TokenizeSetting,
    n: Vec<usize>,
    self_bleu: Vec<usize>,
    self_bleu_sample_size: Option<usize>,
    max_self_bleu: Option<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tokenize: TokenizeSetting::default(),
            n: vec![1, 2, 3],
            self_bleu: vec![2, 3, 4],
            self_bleu_sample_size: None,
            max_self_bleu: None,
        }
    }
}

impl Settings {
    fn load() -> Result<Settings, ValidatorError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ValidatorError> {
        let mut s: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(ValidatorError::InvalidConfig)?;
        let invalid = |message: String| Err(ValidatorError::InvalidConfig(message));
        for (name, orders) in [("n", &s.n), ("self_bleu", &s.self_bleu)] {
            if let Some((i, n)) = orders
                .iter()
                .enumerate()
                .find(|(_, n)| !(1..=MAX_ORDER).contains(*n))
            {
                return invalid(format!("{name}[{i}]: {n} is outside 1..={MAX_ORDER}"));
            }
        }
        if let Some(k) = s.self_bleu_sample_size
            && k < 2
        {
            return invalid(format!(
                "self_bleu_sample_size: {k} is below 2 (Self-BLEU compares samples with each other)"
            ));
        }
        if let Some(max) = s.max_self_bleu
            && !(0.0..=1.0).contains(&max)
        {
            return invalid(format!("max_self_bleu: {max} is outside 0..=1"));
        }
        if s.max_self_bleu.is_some() && s.self_bleu.is_empty() {
            return invalid("max_self_bleu: needs a Self-BLEU order in self_bleu".into());
        }
        // Repeated orders would repeat metric names.
        for orders in [&mut s.n, &mut s.self_bleu] {
            let mut seen = [false; MAX_ORDER + 1];
            orders.retain(|&n| !std::mem::replace(&mut seen[n], true));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    fn settings(json: &str) -> Settings {
        Settings::parse(json).unwrap()
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

    fn metric(metrics: &[Metric], name: &str) -> Option<f64> {
        metrics.iter().find(|m| m.name == name).map(|m| m.value)
    }

    /// golden/metrics/reference_py311.json, "self_bleu_texygen_method1_whitespace" and
    /// "distinct_n_whitespace".
    const GOLDEN: [&str; 5] = [
        "the cat sat on the mat",
        "the dog sat on the log",
        "a bird flew over the house",
        "the cat sat on the log today",
        "short",
    ];

    #[test]
    fn the_manifest_is_valid() {
        let manifest = Diversity::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind),
            ("diversity", Kind::Validator)
        );
        assert!(!manifest.capabilities.model);
    }

    #[test]
    fn scores_the_golden_corpus() {
        let report = score(&settings("{}"), &samples(&GOLDEN));
        let c = &report.corpus;
        assert_eq!(metric(c, "count"), Some(5.0));
        assert_eq!(metric(c, "distinct-1"), Some(0.5384615384615384));
        assert_eq!(metric(c, "distinct-3-per-token"), Some(0.46153846153846156));
        assert_eq!(
            metric(c, "distinct-2-sentence-mean"),
            Some(0.6714285714285715)
        );
        assert_eq!(metric(c, "self-bleu-2"), Some(0.4852985287523506));
        assert_eq!(metric(c, "self-bleu-3"), Some(0.45943332150691896));
        assert_eq!(metric(c, "self-bleu-4"), Some(0.4294104384359942));
        assert_eq!(metric(c, "vocab-size"), Some(14.0));
        assert_eq!(metric(c, "type-token-ratio"), Some(14.0 / 26.0));
        assert_eq!(metric(c, "mean-tokens"), Some(5.2));
        assert_eq!(
            (metric(c, "min-tokens"), metric(c, "max-tokens")),
            (Some(1.0), Some(7.0))
        );
        assert!((metric(c, "stdev-tokens").unwrap() - 2.1354156504062622).abs() < 1e-12);
        let first = &report.samples[0].scores;
        assert_eq!(metric(first, "tokens"), Some(6.0));
        assert_eq!(metric(first, "self-bleu-2"), Some(0.816496580927726));
        assert_eq!(
            metric(&report.samples[4].scores, "distinct-1-sentence"),
            Some(1.0)
        );
    }

    #[test]
    fn max_self_bleu_rejects_near_duplicates() {
        let report = score(&settings(r#"{"max_self_bleu": 0.8}"#), &samples(&GOLDEN));
        let verdicts: Vec<bool> = report.samples.iter().map(|r| r.verdict.keep).collect();
        assert_eq!(verdicts, [true, true, true, false, true]);
        assert_eq!(
            report.samples[3].verdict.reason.as_deref(),
            Some("self-bleu-4 0.8091 above max 0.8")
        );
    }

    #[test]
    fn sample_size_limits_self_bleu() {
        let s = settings(r#"{"self_bleu": [2], "self_bleu_sample_size": 2}"#);
        let report = score(&s, &samples(&GOLDEN));
        assert!(metric(&report.samples[1].scores, "self-bleu-2").is_some());
        assert!(metric(&report.samples[2].scores, "self-bleu-2").is_none());
        assert!(metric(&report.corpus, "self-bleu-2").is_some());
    }

    #[test]
    fn small_and_empty_batches() {
        let s = settings("{}");
        let empty = score(&s, &[]);
        assert_eq!(empty.corpus.len(), 1);
        let one = score(&s, &samples(&[""]));
        assert!(metric(&one.corpus, "self-bleu-2").is_none());
        assert!(metric(&one.corpus, "distinct-1").is_none());
        assert!(metric(&one.corpus, "type-token-ratio").is_none());
        assert_eq!(metric(&one.corpus, "distinct-1-sentence-mean"), Some(0.0));
        assert!(one.corpus.iter().all(|m| m.value.is_finite()));
    }

    #[test]
    fn tok13a_splits_punctuation() {
        let report = score(
            &settings(r#"{"tokenize": "13a", "n": [1]}"#),
            &samples(&["Hello, world!"]),
        );
        assert_eq!(metric(&report.samples[0].scores, "tokens"), Some(4.0));
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let err = |json| match Settings::parse(json) {
            Err(ValidatorError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(r#"{"n": [1, 0]}"#).starts_with("n[1]: "));
        assert!(err(r#"{"self_bleu": [10]}"#).starts_with("self_bleu[0]: "));
        assert!(err(r#"{"self_bleu_sample_size": 1}"#).starts_with("self_bleu_sample_size: "));
        assert!(err(r#"{"self_bleu": [], "max_self_bleu": 0.5}"#).starts_with("max_self_bleu: "));
        assert!(err(r#"{"tokenize": "nltk"}"#).starts_with("tokenize: "));
        assert!(err(r#"{"ngrams": [1]}"#).contains("ngrams"));
        assert_eq!(settings(r#"{"n": [2, 2, 1]}"#).n, [2, 1]);
    }
}
