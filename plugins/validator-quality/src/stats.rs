//! The statistics the rules judge, after Gopher (Rae et al. 2021, table A1) as datatrove
//! implements its quality and repetition filters, with adaptations for short samples noted
//! where they apply.

use std::collections::{HashMap, HashSet};

/// Sizes of the "top n-gram" statistics.
pub const TOP_NGRAMS: [usize; 3] = [2, 3, 4];
/// Sizes of the "duplicate n-gram" statistics.
pub const DUP_NGRAMS: [usize; 6] = [5, 6, 7, 8, 9, 10];

/// Every statistic of one text; each field is the metric of the same name, kebab-cased.
#[derive(Debug)]
pub struct Stats {
    pub words: usize,
    pub mean_word_length: f64,
    pub symbol_ratio: f64,
    pub bullet_lines: f64,
    pub ellipsis_lines: f64,
    pub alpha_words: f64,
    pub unique_word_ratio: f64,
    pub non_printable_ratio: f64,
    pub dup_para_frac: f64,
    pub dup_para_char_frac: f64,
    pub dup_line_frac: f64,
    pub dup_line_char_frac: f64,
    /// For each of [`TOP_NGRAMS`].
    pub top_ngram_char_frac: [f64; 3],
    /// For each of [`DUP_NGRAMS`].
    pub dup_ngram_char_frac: [f64; 6],
}

/// Punctuation and symbols a word is trimmed of: ASCII punctuation and the common typographic
/// marks and bullets.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '…' | '—'
                | '–'
                | '“'
                | '”'
                | '‘'
                | '’'
                | '«'
                | '»'
                | '•'
                | '·'
                | '¿'
                | '¡'
                | '‣'
                | '◦'
                | '▪'
                | '●'
                | '。'
                | '、'
                | '，'
                | '！'
                | '？'
                | '：'
                | '；'
        )
}

/// Characters that open a bulleted line (datatrove: "•" and "-"; plus "*" and other bullets).
fn is_bullet(c: char) -> bool {
    matches!(c, '•' | '-' | '*' | '‣' | '◦' | '▪' | '●' | '·')
}

/// `part / whole`, or `empty` when there is no whole: ratios of nothing are neutral, so they
/// never fail a rule (the word-count rules deal with empty texts).
fn ratio(part: usize, whole: usize, empty: f64) -> f64 {
    if whole == 0 {
        empty
    } else {
        part as f64 / whole as f64
    }
}

impl Stats {
    /// Computes every statistic of `text`.
    pub fn of(text: &str) -> Stats {
        let chars = text.chars().count();
        let tokens: Vec<&str> = text.split_whitespace().collect();
        // Words: whitespace tokens that are not only punctuation, trimmed of it (close to
        // datatrove's word tokenizer, which splits punctuation off).
        let words: Vec<&str> = tokens
            .iter()
            .map(|t| t.trim_matches(is_punctuation))
            .filter(|w| !w.is_empty())
            .collect();
        let (dup_para_frac, dup_para_char_frac) = duplicates(&paragraphs(text), chars);
        let (dup_line_frac, dup_line_char_frac) = duplicates(&lines(text), chars);
        Stats {
            words: words.len(),
            mean_word_length: mean_length(&words),
            symbol_ratio: symbol_ratio(text, tokens.len()),
            bullet_lines: line_fraction(text, |l| l.trim_start().starts_with(is_bullet)),
            ellipsis_lines: line_fraction(text, |l| {
                let l = l.trim_end();
                l.ends_with("...") || l.ends_with('…')
            }),
            alpha_words: ratio(
                tokens
                    .iter()
                    .filter(|t| t.chars().any(char::is_alphabetic))
                    .count(),
                tokens.len(),
                1.0,
            ),
            unique_word_ratio: unique_ratio(&words),
            non_printable_ratio: ratio(
                text.chars()
                    .filter(|&c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
                    .count(),
                chars,
                0.0,
            ),
            dup_para_frac,
            dup_para_char_frac,
            dup_line_frac,
            dup_line_char_frac,
            top_ngram_char_frac: TOP_NGRAMS.map(|n| ratio(top_ngram_chars(&words, n), chars, 0.0)),
            dup_ngram_char_frac: DUP_NGRAMS.map(|n| ratio(dup_ngram_chars(&words, n), chars, 0.0)),
        }
    }
}

fn mean_length(words: &[&str]) -> f64 {
    let total: usize = words.iter().map(|w| w.chars().count()).sum();
    ratio(total, words.len(), 0.0)
}

/// The larger of the "#" and the ellipsis ("..." or "…") counts per whitespace token; Gopher
/// bounds each by the same limit, so the larger decides.
fn symbol_ratio(text: &str, tokens: usize) -> f64 {
    let hashes = text.matches('#').count();
    let ellipses = text.matches("...").count() + text.matches('…').count();
    ratio(hashes.max(ellipses), tokens, 0.0)
}

/// Non-blank lines: blank ones are layout, and counting them would dilute the line fractions.
fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

fn line_fraction(text: &str, pick: impl Fn(&str) -> bool) -> f64 {
    let lines = lines(text);
    ratio(lines.iter().filter(|l| pick(l)).count(), lines.len(), 0.0)
}

/// Paragraphs: the trimmed text split at blank lines.
fn paragraphs(text: &str) -> Vec<&str> {
    let mut paragraphs = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                paragraphs.push(text[s..end].trim());
            }
        } else {
            start.get_or_insert(offset);
            end = offset + line.len();
        }
        offset += line.len();
    }
    if let Some(s) = start {
        paragraphs.push(text[s..end].trim());
    }
    paragraphs
}

/// The fraction of `parts` that repeat an earlier one, and the fraction of the text's `chars`
/// they hold.
fn duplicates(parts: &[&str], chars: usize) -> (f64, f64) {
    let mut seen = HashSet::new();
    let (mut count, mut dup_chars) = (0, 0);
    for part in parts {
        if !seen.insert(*part) {
            count += 1;
            dup_chars += part.chars().count();
        }
    }
    (ratio(count, parts.len(), 0.0), ratio(dup_chars, chars, 0.0))
}

fn unique_ratio(words: &[&str]) -> f64 {
    let distinct: HashSet<String> = words.iter().map(|w| w.to_lowercase()).collect();
    ratio(distinct.len(), words.len(), 1.0)
}

/// Characters of the most frequent word `n`-gram (joined by spaces) times its count. An n-gram
/// seen once counts 0: in a short sample any single n-gram is a large share of the text, which
/// says nothing about repetition (datatrove counts it anyway, tuned for long web pages).
fn top_ngram_chars(words: &[&str], n: usize) -> usize {
    let mut counts: HashMap<&[&str], usize> = HashMap::new();
    for gram in words.windows(n) {
        *counts.entry(gram).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|&(_, count)| count > 1)
        .map(|(gram, count)| (count, gram_chars(gram) + n - 1))
        .max()
        .map_or(0, |(count, len)| count * len)
}

/// Characters (spaces excluded) in word `n`-grams that repeat an earlier one. After a repeat
/// the scan jumps past it, so overlapping windows of one repeated passage count once.
fn dup_ngram_chars(words: &[&str], n: usize) -> usize {
    let mut seen: HashSet<&[&str]> = HashSet::new();
    let mut repeated = 0;
    let mut i = 0;
    while i + n <= words.len() {
        let gram = &words[i..i + n];
        if seen.contains(gram) {
            repeated += gram_chars(gram);
            i += n;
        } else {
            seen.insert(gram);
            i += 1;
        }
    }
    repeated
}

fn gram_chars(gram: &[&str]) -> usize {
    gram.iter().map(|w| w.chars().count()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_trimmed_tokens() {
        let s = Stats::of("Hello, world! -- ... 42");
        assert_eq!(s.words, 3);
        assert_eq!(s.mean_word_length, 4.0);
        // "--", "..." and "42" have no letter.
        assert_eq!(s.alpha_words, 2.0 / 5.0);
    }

    #[test]
    fn paragraphs_split_at_blank_lines() {
        assert_eq!(paragraphs("\n a\nb \n\n  \nc\n"), ["a\nb", "c"]);
        assert!(paragraphs("").is_empty());
    }

    #[test]
    fn duplicate_ngrams_count_each_repeat_once() {
        let words: Vec<&str> = "a b c d e a b c d e a b c d e".split(' ').collect();
        assert_eq!(dup_ngram_chars(&words, 5), 10);
        assert_eq!(top_ngram_chars(&words, 2), 3 * 3);
        assert_eq!(top_ngram_chars(&["x", "y", "z"], 2), 0);
    }

    #[test]
    fn empty_text_is_neutral() {
        let s = Stats::of("");
        assert_eq!(s.words, 0);
        assert_eq!((s.alpha_words, s.unique_word_ratio), (1.0, 1.0));
        assert_eq!(
            (s.symbol_ratio, s.non_printable_ratio, s.dup_line_frac),
            (0.0, 0.0, 0.0)
        );
    }
}
