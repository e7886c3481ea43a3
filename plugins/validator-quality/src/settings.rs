//! Settings: one bound per rule, `null` turning it off, and the rule table they make.

use serde::Deserialize;

use crate::stats::Stats;

/// Each rule's bound (`None`: off), plus `min_words_for_stats`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub min_words: Option<u64>,
    pub max_words: Option<u64>,
    pub min_mean_word_length: Option<f64>,
    pub max_mean_word_length: Option<f64>,
    /// Fewer words than this make a mean word length too noisy to judge.
    pub min_words_for_stats: u64,
    pub max_symbol_ratio: Option<f64>,
    pub max_bullet_lines: Option<f64>,
    pub max_ellipsis_lines: Option<f64>,
    pub min_alpha_words: Option<f64>,
    pub min_unique_word_ratio: Option<f64>,
    pub max_non_printable_ratio: Option<f64>,
    pub max_dup_para_frac: Option<f64>,
    pub max_dup_para_char_frac: Option<f64>,
    pub max_dup_line_frac: Option<f64>,
    pub max_dup_line_char_frac: Option<f64>,
    pub max_top_2gram_char_frac: Option<f64>,
    pub max_top_3gram_char_frac: Option<f64>,
    pub max_top_4gram_char_frac: Option<f64>,
    pub max_dup_5gram_char_frac: Option<f64>,
    pub max_dup_6gram_char_frac: Option<f64>,
    pub max_dup_7gram_char_frac: Option<f64>,
    pub max_dup_8gram_char_frac: Option<f64>,
    pub max_dup_9gram_char_frac: Option<f64>,
    pub max_dup_10gram_char_frac: Option<f64>,
}

/// Gopher's thresholds (datatrove's defaults), except `min_words` (1 rather than 50: synthetic
/// samples are often a sentence) and the two rules Gopher lacks: non-printable characters
/// (none allowed) and the unique word ratio (off).
impl Default for Settings {
    fn default() -> Settings {
        Settings {
            min_words: Some(1),
            max_words: Some(100_000),
            min_mean_word_length: Some(3.0),
            max_mean_word_length: Some(10.0),
            min_words_for_stats: 20,
            max_symbol_ratio: Some(0.1),
            max_bullet_lines: Some(0.9),
            max_ellipsis_lines: Some(0.3),
            min_alpha_words: Some(0.8),
            min_unique_word_ratio: None,
            max_non_printable_ratio: Some(0.0),
            max_dup_para_frac: Some(0.3),
            max_dup_para_char_frac: Some(0.2),
            max_dup_line_frac: Some(0.3),
            max_dup_line_char_frac: Some(0.2),
            max_top_2gram_char_frac: Some(0.2),
            max_top_3gram_char_frac: Some(0.18),
            max_top_4gram_char_frac: Some(0.16),
            max_dup_5gram_char_frac: Some(0.15),
            max_dup_6gram_char_frac: Some(0.14),
            max_dup_7gram_char_frac: Some(0.13),
            max_dup_8gram_char_frac: Some(0.12),
            max_dup_9gram_char_frac: Some(0.11),
            max_dup_10gram_char_frac: Some(0.10),
        }
    }
}

/// Which side of a rule's limit passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Min,
    Max,
}

/// One rule: the setting it comes from (also its name in `rejected-by-<rule>`, kebab-cased),
/// the metric it judges and its limit.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub setting: &'static str,
    pub metric: &'static str,
    pub bound: Bound,
    pub limit: f64,
}

impl Rule {
    /// The corpus metric counting the samples this rule rejected.
    pub fn counter_name(&self) -> String {
        format!("rejected-by-{}", self.setting.replace('_', "-"))
    }

    /// Whether `value` is on the wrong side of the limit.
    pub fn fails(&self, value: f64) -> bool {
        match self.bound {
            Bound::Min => value < self.limit,
            Bound::Max => value > self.limit,
        }
    }
}

impl Settings {
    /// Parses and checks settings JSON; errors name the setting.
    pub fn parse(json: &str) -> Result<Settings, String> {
        let settings: Settings = textnlp_plugin_sdk::config::parse(json)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        for rule in self.rules() {
            let fraction = !matches!(rule.metric, "words" | "mean-word-length");
            if !rule.limit.is_finite() || rule.limit < 0.0 || (fraction && rule.limit > 1.0) {
                let range = if fraction { "[0, 1]" } else { "0 or more" };
                return Err(format!("{}: {} must be {range}", rule.setting, rule.limit));
            }
        }
        self.check_order(
            "min_words",
            self.min_words.map(|n| n as f64),
            "max_words",
            self.max_words.map(|n| n as f64),
        )?;
        self.check_order(
            "min_mean_word_length",
            self.min_mean_word_length,
            "max_mean_word_length",
            self.max_mean_word_length,
        )
    }

    fn check_order(
        &self,
        min_name: &str,
        min: Option<f64>,
        max_name: &str,
        max: Option<f64>,
    ) -> Result<(), String> {
        match (min, max) {
            (Some(min), Some(max)) if max < min => {
                Err(format!("{max_name}: {max} is below {min_name} {min}"))
            }
            _ => Ok(()),
        }
    }

    /// The enabled rules, in the order they are judged (the first failing one is reported).
    pub fn rules(&self) -> Vec<Rule> {
        use Bound::{Max, Min};
        let all = [
            ("min_words", "words", Min, self.min_words.map(|n| n as f64)),
            ("max_words", "words", Max, self.max_words.map(|n| n as f64)),
            (
                "min_mean_word_length",
                "mean-word-length",
                Min,
                self.min_mean_word_length,
            ),
            (
                "max_mean_word_length",
                "mean-word-length",
                Max,
                self.max_mean_word_length,
            ),
            (
                "max_symbol_ratio",
                "symbol-ratio",
                Max,
                self.max_symbol_ratio,
            ),
            (
                "max_bullet_lines",
                "bullet-lines",
                Max,
                self.max_bullet_lines,
            ),
            (
                "max_ellipsis_lines",
                "ellipsis-lines",
                Max,
                self.max_ellipsis_lines,
            ),
            ("min_alpha_words", "alpha-words", Min, self.min_alpha_words),
            (
                "min_unique_word_ratio",
                "unique-word-ratio",
                Min,
                self.min_unique_word_ratio,
            ),
            (
                "max_non_printable_ratio",
                "non-printable-ratio",
                Max,
                self.max_non_printable_ratio,
            ),
            (
                "max_dup_para_frac",
                "dup-para-frac",
                Max,
                self.max_dup_para_frac,
            ),
            (
                "max_dup_para_char_frac",
                "dup-para-char-frac",
                Max,
                self.max_dup_para_char_frac,
            ),
            (
                "max_dup_line_frac",
                "dup-line-frac",
                Max,
                self.max_dup_line_frac,
            ),
            (
                "max_dup_line_char_frac",
                "dup-line-char-frac",
                Max,
                self.max_dup_line_char_frac,
            ),
            (
                "max_top_2gram_char_frac",
                "top-2gram-char-frac",
                Max,
                self.max_top_2gram_char_frac,
            ),
            (
                "max_top_3gram_char_frac",
                "top-3gram-char-frac",
                Max,
                self.max_top_3gram_char_frac,
            ),
            (
                "max_top_4gram_char_frac",
                "top-4gram-char-frac",
                Max,
                self.max_top_4gram_char_frac,
            ),
            (
                "max_dup_5gram_char_frac",
                "dup-5gram-char-frac",
                Max,
                self.max_dup_5gram_char_frac,
            ),
            (
                "max_dup_6gram_char_frac",
                "dup-6gram-char-frac",
                Max,
                self.max_dup_6gram_char_frac,
            ),
            (
                "max_dup_7gram_char_frac",
                "dup-7gram-char-frac",
                Max,
                self.max_dup_7gram_char_frac,
            ),
            (
                "max_dup_8gram_char_frac",
                "dup-8gram-char-frac",
                Max,
                self.max_dup_8gram_char_frac,
            ),
            (
                "max_dup_9gram_char_frac",
                "dup-9gram-char-frac",
                Max,
                self.max_dup_9gram_char_frac,
            ),
            (
                "max_dup_10gram_char_frac",
                "dup-10gram-char-frac",
                Max,
                self.max_dup_10gram_char_frac,
            ),
        ];
        all.into_iter()
            .filter_map(|(setting, metric, bound, limit)| {
                limit.map(|limit| Rule {
                    setting,
                    metric,
                    bound,
                    limit,
                })
            })
            .collect()
    }

    /// Whether `rule` applies to a text with these statistics: mean word length needs
    /// `min_words_for_stats` words.
    pub fn applies(&self, rule: &Rule, stats: &Stats) -> bool {
        rule.metric != "mean-word-length" || stats.words as u64 >= self.min_words_for_stats
    }
}
