//! `validator-quality` (manifest name `quality`): Gopher-style quality and repetition rules
//! (Rae et al. 2021, as in datatrove's `GopherQualityFilter` and `GopherRepetitionFilter`),
//! adapted to short synthetic samples.
//!
//! Rules, each a setting (`null` turns it off): word count (`min_words` 1, `max_words`
//! 100000), mean word length (`min_mean_word_length` 3, `max_mean_word_length` 10, judged from
//! `min_words_for_stats` = 20 words on), "#" and ellipsis per word (`max_symbol_ratio` 0.1),
//! lines opening with a bullet (`max_bullet_lines` 0.9) or ending with an ellipsis
//! (`max_ellipsis_lines` 0.3), words with a letter (`min_alpha_words` 0.8), distinct words
//! (`min_unique_word_ratio`, off), control characters (`max_non_printable_ratio` 0), duplicate
//! paragraphs and lines (`max_dup_para_frac` 0.3, `max_dup_para_char_frac` 0.2,
//! `max_dup_line_frac` 0.3, `max_dup_line_char_frac` 0.2), the most repeated 2-, 3- and 4-gram
//! (`max_top_2gram_char_frac` 0.2, 0.18, 0.16) and repeated 5- to 10-grams
//! (`max_dup_5gram_char_frac` 0.15 down to `max_dup_10gram_char_frac` 0.10).
//!
//! Each sample scores every statistic (`words`, `mean-word-length`, `symbol-ratio`,
//! `bullet-lines`, `ellipsis-lines`, `alpha-words`, `unique-word-ratio`, `non-printable-ratio`,
//! `dup-para-frac`, `dup-para-char-frac`, `dup-line-frac`, `dup-line-char-frac`,
//! `top-{2,3,4}gram-char-frac`, `dup-{5..10}gram-char-frac`); the verdict names the first
//! failing rule ("dup-5gram-char-frac 0.42 above max 0.15"). Corpus: `count`, `kept`, and
//! `rejected-by-<rule>` (the setting's name, kebab-cased) for every enabled rule.

mod settings;
mod stats;

use textnlp_plugin_sdk::validator::{
    Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict,
};

use crate::settings::{Bound, Rule, Settings};
use crate::stats::{DUP_NGRAMS, Stats, TOP_NGRAMS};

struct Quality;

textnlp_plugin_sdk::register_validator!(Quality);

impl Validator for Quality {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        let settings = Settings::parse(&textnlp_plugin_sdk::config::raw())
            .map_err(ValidatorError::InvalidConfig)?;
        let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
        Ok(report(&settings, &texts))
    }
}

fn report(settings: &Settings, texts: &[&str]) -> Report {
    let rules = settings.rules();
    let mut rejected_by = vec![0usize; rules.len()];
    let samples: Vec<SampleResult> = texts
        .iter()
        .map(|text| {
            let stats = Stats::of(text);
            let scores = metrics(&stats);
            let failed = first_failure(settings, &rules, &stats, &scores);
            let verdict = match failed {
                Some((index, value)) => {
                    rejected_by[index] += 1;
                    Verdict::reject(reason(&rules[index], value))
                }
                None => Verdict::keep(),
            };
            SampleResult { scores, verdict }
        })
        .collect();
    let kept = samples.iter().filter(|s| s.verdict.keep).count();
    let mut corpus = vec![
        Metric::new("count", texts.len() as f64),
        Metric::new("kept", kept as f64),
    ];
    corpus.extend(
        rules
            .iter()
            .zip(&rejected_by)
            .map(|(rule, &n)| Metric::new(rule.counter_name(), n as f64)),
    );
    Report { corpus, samples }
}

/// The per-sample metrics, one per statistic.
fn metrics(stats: &Stats) -> Vec<Metric> {
    let mut metrics = vec![
        Metric::new("words", stats.words as f64),
        Metric::new("mean-word-length", stats.mean_word_length),
        Metric::new("symbol-ratio", stats.symbol_ratio),
        Metric::new("bullet-lines", stats.bullet_lines),
        Metric::new("ellipsis-lines", stats.ellipsis_lines),
        Metric::new("alpha-words", stats.alpha_words),
        Metric::new("unique-word-ratio", stats.unique_word_ratio),
        Metric::new("non-printable-ratio", stats.non_printable_ratio),
        Metric::new("dup-para-frac", stats.dup_para_frac),
        Metric::new("dup-para-char-frac", stats.dup_para_char_frac),
        Metric::new("dup-line-frac", stats.dup_line_frac),
        Metric::new("dup-line-char-frac", stats.dup_line_char_frac),
    ];
    for (n, value) in TOP_NGRAMS.iter().zip(stats.top_ngram_char_frac) {
        metrics.push(Metric::new(format!("top-{n}gram-char-frac"), value));
    }
    for (n, value) in DUP_NGRAMS.iter().zip(stats.dup_ngram_char_frac) {
        metrics.push(Metric::new(format!("dup-{n}gram-char-frac"), value));
    }
    metrics
}

/// The index of the first applicable rule that fails, and the value it judged.
fn first_failure(
    settings: &Settings,
    rules: &[Rule],
    stats: &Stats,
    scores: &[Metric],
) -> Option<(usize, f64)> {
    rules.iter().enumerate().find_map(|(index, rule)| {
        let value = scores.iter().find(|m| m.name == rule.metric)?.value;
        (settings.applies(rule, stats) && rule.fails(value)).then_some((index, value))
    })
}

/// "dup-5gram-char-frac 0.42 above max 0.15", "words 0 below min 1".
fn reason(rule: &Rule, value: f64) -> String {
    let side = match rule.bound {
        Bound::Min => "below min",
        Bound::Max => "above max",
    };
    format!(
        "{} {} {side} {}",
        rule.metric,
        number(value),
        number(rule.limit)
    )
}

/// A value with at most four decimals and no trailing zeros.
fn number(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests;
