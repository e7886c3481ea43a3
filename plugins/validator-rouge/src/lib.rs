//! `validator-rouge` (manifest name `rouge`): ROUGE of each sample against its references,
//! bit-identical to Google's rouge-score 0.1.2 (`textnlp_metrics::rouge`).
//!
//! Settings: `rouge_types` (default `["rouge1", "rouge2", "rougeL", "rougeLsum"]`),
//! `use_stemmer` (false), `split_summaries` (only false: NLTK punkt is not bundled), and the
//! optional bounds `min_f` / `max_f`, each mapping a rouge type to an F-measure
//! (`{"rougeL": 0.7}`).
//!
//! The sample's text is rouge-score's *prediction*, its references the *targets*; with several
//! references each type keeps the best-F reference (`score_multi`). Each sample gets
//! `{type}-p`, `{type}-r` and `{type}-f` per type, and a verdict whose reason names the failed
//! bound ("rougeL F 0.82 above max 0.7"). The corpus metrics are `count` and, for a non-empty
//! batch, the plain mean of each per-sample metric under the same name.

use std::collections::BTreeMap;

use serde::Deserialize;
use textnlp_metrics::rouge::{self, RougeScorer, RougeType, Score};
use textnlp_plugin_sdk::validator::{
    Bounds, Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict,
};

struct Rouge;

textnlp_plugin_sdk::register_validator!(Rouge);

impl Validator for Rouge {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        Settings::load()?.score(&samples)
    }
}

/// The settings as written.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSettings {
    rouge_types: Vec<String>,
    use_stemmer: bool,
    split_summaries: bool,
    min_f: Option<BTreeMap<String, f64>>,
    max_f: Option<BTreeMap<String, f64>>,
}

impl Default for RawSettings {
    fn default() -> RawSettings {
        RawSettings {
            rouge_types: RougeType::DEFAULT.iter().map(|t| t.to_string()).collect(),
            use_stemmer: false,
            split_summaries: false,
            min_f: None,
            max_f: None,
        }
    }
}

/// The settings, checked.
#[derive(Debug, PartialEq)]
struct Settings {
    types: Vec<RougeType>,
    use_stemmer: bool,
    /// Per type, in `types` order: the lowest and highest F kept.
    bounds: Vec<Bounds>,
}

impl Settings {
    fn load() -> Result<Settings, ValidatorError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ValidatorError> {
        let raw: RawSettings =
            textnlp_plugin_sdk::config::parse(json).map_err(ValidatorError::InvalidConfig)?;
        Settings::check(raw).map_err(ValidatorError::InvalidConfig)
    }

    fn check(raw: RawSettings) -> Result<Settings, String> {
        if raw.split_summaries {
            return Err(
                "split_summaries: true is not supported: it needs NLTK's punkt sentence \
                        splitter, which this plugin does not bundle; put one sentence per line \
                        instead (rougeLsum splits on \"\\n\")"
                    .into(),
            );
        }
        if raw.rouge_types.is_empty() {
            return Err("rouge_types: name at least one rouge type".into());
        }
        let mut types = Vec::with_capacity(raw.rouge_types.len());
        for (i, name) in raw.rouge_types.iter().enumerate() {
            let rouge_type: RougeType =
                name.parse().map_err(|e| format!("rouge_types[{i}]: {e}"))?;
            if types.contains(&rouge_type) {
                return Err(format!("rouge_types[{i}]: `{name}` is listed twice"));
            }
            types.push(rouge_type);
        }
        let min = bounds("min_f", raw.min_f, &types)?;
        let max = bounds("max_f", raw.max_f, &types)?;
        let bounds: Vec<Bounds> = min
            .into_iter()
            .zip(max)
            .map(|(min, max)| Bounds { min, max })
            .collect();
        for (rouge_type, bound) in types.iter().zip(&bounds) {
            bound.check(
                &format!("min_f.{rouge_type}"),
                &format!("max_f.{rouge_type}"),
            )?;
        }
        Ok(Settings {
            types,
            use_stemmer: raw.use_stemmer,
            bounds,
        })
    }

    fn score(&self, samples: &[Sample]) -> Result<Report, ValidatorError> {
        if let Some(i) = samples.iter().position(|s| s.references.is_empty()) {
            return Err(ValidatorError::InvalidInput(format!(
                "sample {i} has no references: ROUGE scores a sample against at least one"
            )));
        }
        let mut scorer = RougeScorer::new(&self.types, self.use_stemmer);
        let names: Vec<[String; 3]> = self
            .types
            .iter()
            .map(|t| ["p", "r", "f"].map(|part| format!("{t}-{part}")))
            .collect();
        let mut per_type: Vec<Vec<Score>> =
            vec![Vec::with_capacity(samples.len()); self.types.len()];
        let mut results = Vec::with_capacity(samples.len());
        for sample in samples {
            // Never `None`: every sample was checked to have a reference.
            let scores = scorer
                .score_multi(&sample.references, &sample.text)
                .unwrap_or_default();
            let mut metrics = Vec::with_capacity(3 * scores.len());
            for ((score, [p, r, f]), column) in scores.iter().zip(&names).zip(&mut per_type) {
                metrics.extend([
                    Metric::new(p.clone(), score.precision),
                    Metric::new(r.clone(), score.recall),
                    Metric::new(f.clone(), score.fmeasure),
                ]);
                column.push(*score);
            }
            results.push(SampleResult {
                verdict: self.judge(&scores),
                scores: metrics,
            });
        }
        let mut corpus = vec![Metric::new("count", samples.len() as f64)];
        for (column, [p, r, f]) in per_type.iter().zip(names) {
            // An empty batch has no mean; leaving it out beats reporting made-up zeros.
            if let Some(mean) = rouge::mean(column) {
                corpus.extend([
                    Metric::new(p, mean.precision),
                    Metric::new(r, mean.recall),
                    Metric::new(f, mean.fmeasure),
                ]);
            }
        }
        Ok(Report {
            samples: results,
            corpus,
        })
    }

    /// The first failed bound, in `rouge_types` order, rejects the sample.
    fn judge(&self, scores: &[Score]) -> Verdict {
        self.types
            .iter()
            .zip(&self.bounds)
            .zip(scores)
            .map(|((rouge_type, bounds), score)| {
                bounds.judge(&format!("{rouge_type} F"), score.fmeasure)
            })
            .find(|verdict| !verdict.keep)
            .unwrap_or_else(Verdict::keep)
    }
}

/// The bounds of `setting` per type of `types`: every key must be one of them, every value
/// an F-measure (0 to 1).
fn bounds(
    setting: &str,
    map: Option<BTreeMap<String, f64>>,
    types: &[RougeType],
) -> Result<Vec<Option<f64>>, String> {
    let mut bounds = vec![None; types.len()];
    for (name, bound) in map.unwrap_or_default() {
        let rouge_type: RougeType = name.parse().map_err(|e| format!("{setting}.{name}: {e}"))?;
        let Some(i) = types.iter().position(|t| *t == rouge_type) else {
            return Err(format!("{setting}.{name}: {name} is not among rouge_types"));
        };
        if !(0.0..=1.0).contains(&bound) {
            return Err(format!(
                "{setting}.{name}: {bound} is not an F-measure (0 to 1)"
            ));
        }
        bounds[i] = Some(bound);
    }
    Ok(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    fn settings(json: &str) -> Settings {
        Settings::parse(json).unwrap()
    }

    fn err(json: &str) -> String {
        match Settings::parse(json) {
            Err(ValidatorError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    fn sample(text: &str, references: &[&str]) -> Sample {
        Sample {
            text: text.into(),
            references: references.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn get(metrics: &[Metric], name: &str) -> f64 {
        metrics.iter().find(|m| m.name == name).unwrap().value
    }

    #[test]
    fn the_manifest_is_valid() {
        let manifest = Rouge::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind),
            ("rouge", Kind::Validator)
        );
    }

    #[test]
    fn empty_settings_are_rouge_scores_defaults() {
        let s = settings("{}");
        assert_eq!(s.types, RougeType::DEFAULT);
        assert!(!s.use_stemmer);
        assert!(s.bounds.iter().all(|b| *b == Bounds::default()));
        let s = settings(r#"{"min_f": null, "max_f": {}}"#);
        assert!(s.bounds.iter().all(|b| *b == Bounds::default()));
    }

    #[test]
    fn bad_settings_name_the_setting() {
        assert!(err(r#"{"rouge_types": []}"#).starts_with("rouge_types: "));
        assert!(err(r#"{"rouge_types": ["rouge1", "rougeX"]}"#).starts_with("rouge_types[1]: "));
        assert!(err(r#"{"rouge_types": ["rouge0"]}"#).contains("unknown rouge type `rouge0`"));
        assert!(err(r#"{"rouge_types": ["rougeL", "rougeL"]}"#).contains("listed twice"));
        assert!(err(r#"{"use_stemmer": "yes"}"#).starts_with("use_stemmer: "));
        assert!(err(r#"{"split_summaries": true}"#).starts_with("split_summaries: "));
        assert!(err(r#"{"min_f": {"rouge3": 0.5}}"#).starts_with("min_f.rouge3: "));
        assert!(err(r#"{"max_f": {"rougeQ": 0.5}}"#).starts_with("max_f.rougeQ: "));
        assert!(err(r#"{"max_f": {"rougeL": 1.5}}"#).starts_with("max_f.rougeL: "));
        assert!(err(r#"{"min_f": {"rougeL": "high"}}"#).starts_with("min_f.rougeL: "));
        let e = err(r#"{"min_f": {"rougeL": 0.5}, "max_f": {"rougeL": 0.2}}"#);
        assert!(e.starts_with("max_f.rougeL: 0.2 is below"), "{e}");
        assert!(err(r#"{"rouge": 1}"#).contains("rouge"));
        assert!(err("[]").contains("JSON object"));
    }

    #[test]
    fn scores_match_the_reference_goldens() {
        let target = "The quick brown fox jumps over the lazy dog.\nIt was running quickly.";
        let prediction = "The quick brown dog jumps on the log.\nThe fox ran quickly!";
        let report = settings("{}")
            .score(&[sample(prediction, &[target])])
            .unwrap();
        let metrics = &report.samples[0].scores;
        assert_eq!(metrics.len(), 12);
        assert_eq!(get(metrics, "rouge1-p"), 0.6666666666666666);
        assert_eq!(get(metrics, "rouge2-f"), 0.17391304347826086);
        assert_eq!(get(metrics, "rougeL-f"), 0.48000000000000004);
        assert_eq!(get(metrics, "rougeLsum-r"), 0.5384615384615384);
        assert!(report.samples[0].verdict.keep);

        let stemmed = settings(r#"{"rouge_types": ["rouge1"], "use_stemmer": true}"#)
            .score(&[sample(
                "A cat runs quick",
                &["The cats are running quickly"],
            )])
            .unwrap();
        assert_eq!(
            get(&stemmed.samples[0].scores, "rouge1-f"),
            0.4444444444444445
        );
    }

    #[test]
    fn several_references_keep_the_best_per_type() {
        let s = settings(r#"{"rouge_types": ["rouge1", "rougeL"]}"#);
        let report = s
            .score(&[sample("the cat sat", &["a dog ran", "the cat sat", "cat"])])
            .unwrap();
        assert_eq!(get(&report.samples[0].scores, "rouge1-f"), 1.0);
        assert_eq!(get(&report.samples[0].scores, "rougeL-r"), 1.0);
    }

    #[test]
    fn verdicts_name_the_failed_bound() {
        let s = settings(
            r#"{"rouge_types": ["rouge1", "rougeL"], "min_f": {"rouge1": 0.3}, "max_f": {"rougeL": 0.7}}"#,
        );
        let report = s
            .score(&[
                sample("the cat sat on the mat", &["the cat sat on the mat"]),
                sample("completely different words", &["the cat sat on the mat"]),
                sample("the cat sat on a red mat", &["the cat sat on the mat"]),
                sample("the cat", &["the cat sat on the mat"]),
            ])
            .unwrap();
        let reasons: Vec<Option<&str>> = report
            .samples
            .iter()
            .map(|r| r.verdict.reason.as_deref())
            .collect();
        assert_eq!(
            reasons,
            [
                Some("rougeL F 1 above max 0.7"),
                Some("rouge1 F 0 below min 0.3"),
                Some("rougeL F 0.7692 above max 0.7"),
                None,
            ]
        );
    }

    #[test]
    fn corpus_metrics_are_plain_means() {
        let s = settings(r#"{"rouge_types": ["rouge1"]}"#);
        let report = s
            .score(&[
                sample("a b", &["a b"]),
                sample("a", &["b"]),
                sample("a b c d", &["a"]),
            ])
            .unwrap();
        assert_eq!(get(&report.corpus, "count"), 3.0);
        assert_eq!(get(&report.corpus, "rouge1-p"), (1.0 + 0.0 + 0.25) / 3.0);
        assert_eq!(get(&report.corpus, "rouge1-r"), (1.0 + 0.0 + 1.0) / 3.0);
        let empty = s.score(&[]).unwrap();
        assert_eq!(empty.corpus.len(), 1);
        assert!(empty.samples.is_empty());
    }

    #[test]
    fn a_sample_needs_a_reference() {
        let s = settings("{}");
        match s.score(&[sample("x", &["x"]), sample("y", &[])]) {
            Err(ValidatorError::InvalidInput(m)) => assert!(m.starts_with("sample 1 "), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn odd_texts_score_finite() {
        let s = settings(r#"{"use_stemmer": true}"#);
        let long = "word ".repeat(5_000);
        let report = s
            .score(&[
                sample("", &[""]),
                sample("\u{130}\u{212a}\n\n", &["\u{0}", "ok"]),
                sample(&long, &["word"]),
            ])
            .unwrap();
        for result in &report.samples {
            assert!(result.scores.iter().all(|m| m.value.is_finite()));
        }
    }
}
