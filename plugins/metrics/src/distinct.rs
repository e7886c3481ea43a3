//! distinct-n, in the three incompatible definitions found in evaluation code, each under its
//! own name so a number is never reported under the wrong one:
//!
//! - A, `distinct-{n}` (the default): distinct n-grams of the corpus / all its n-grams;
//! - B, `distinct-{n}-per-token`: distinct n-grams / all tokens (Li et al. 2016's wording);
//! - C, `distinct-{n}-sentence-mean`: the mean over sentences of a sentence's distinct n-grams /
//!   its tokens, 0 for an empty sentence (the `distinct_n` package of neural-dialogue-metrics).
//!
//! Means are plain left-to-right sums (Python ≤ 3.11 `sum()`).

use crate::text::CorpusNgrams;

/// distinct-n of one order under the three definitions; `None` where the Python code would
/// divide by zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distinct {
    /// A: distinct / total n-grams; `None` when no sentence has `n` tokens.
    pub corpus: Option<f64>,
    /// B: distinct n-grams / total tokens; `None` when the corpus has no token.
    pub per_token: Option<f64>,
    /// C: mean of [`sentence_distinct`]; `None` for an empty corpus.
    pub sentence_mean: Option<f64>,
}

/// distinct-n of order `n` over an indexed corpus (indexed with a `max_order` of at least
/// `n`).
pub fn distinct(corpus: &CorpusNgrams, n: usize) -> Distinct {
    let sentences = corpus.sentences();
    let mut seen = vec![false; corpus.id_bound()];
    let (mut unique, mut total) = (0usize, 0usize);
    for s in 0..sentences {
        for &(id, count) in corpus.ngrams(s, n) {
            total += count as usize;
            let seen = &mut seen[id as usize];
            if !*seen {
                *seen = true;
                unique += 1;
            }
        }
    }
    let tokens: usize = corpus.lengths().iter().sum();
    let ratio = |den: usize| (den > 0).then(|| unique as f64 / den as f64);
    let sentence_sum = (0..sentences)
        .map(|s| sentence_distinct(corpus, s, n))
        .fold(0.0, |acc, d| acc + d);
    Distinct {
        corpus: ratio(total),
        per_token: ratio(tokens),
        sentence_mean: (sentences > 0).then(|| sentence_sum / sentences as f64),
    }
}

/// Definition C for one sentence: its distinct n-grams / its tokens; 0 when it is empty.
pub fn sentence_distinct(corpus: &CorpusNgrams, s: usize, n: usize) -> f64 {
    match corpus.lengths().get(s) {
        Some(&len) if len > 0 => corpus.ngrams(s, n).len() as f64 / len as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::py_split;

    #[test]
    fn distinct_matches_the_golden_values() {
        // golden/metrics/reference_py311.json, key "distinct_n_whitespace".
        let corpus = [
            "the cat sat on the mat",
            "the dog sat on the log",
            "a bird flew over the house",
            "the cat sat on the log today",
            "short",
        ];
        let sentences: Vec<Vec<&str>> = corpus.iter().map(|l| py_split(l).collect()).collect();
        let index = CorpusNgrams::new(&sentences, 3);
        let golden = [
            (
                1,
                0.5384615384615384,
                0.5384615384615384,
                0.9047619047619048,
            ),
            (
                2,
                0.6666666666666666,
                0.5384615384615384,
                0.6714285714285715,
            ),
            (
                3,
                0.7058823529411765,
                0.46153846153846156,
                0.5428571428571429,
            ),
        ];
        for (n, a, b, c) in golden {
            let d = distinct(&index, n);
            assert_eq!(
                d.corpus,
                Some(a),
                "distinct{n}_corpus_unique_over_total_ngrams"
            );
            assert_eq!(
                d.per_token,
                Some(b),
                "distinct{n}_corpus_unique_over_tokens"
            );
            assert_eq!(
                d.sentence_mean,
                Some(c),
                "distinct{n}_neural_dialogue_metrics_avg"
            );
        }
        assert_eq!(sentence_distinct(&index, 4, 1), 1.0);
        assert_eq!(sentence_distinct(&index, 4, 2), 0.0);
    }

    #[test]
    fn undefined_ratios_are_none() {
        let empty = CorpusNgrams::new::<Vec<&str>, &str>(&[], 2);
        let none = Distinct {
            corpus: None,
            per_token: None,
            sentence_mean: None,
        };
        assert_eq!(distinct(&empty, 2), none);
        let blank = CorpusNgrams::new(&[Vec::<&str>::new()], 2);
        assert_eq!(distinct(&blank, 1).sentence_mean, Some(0.0));
        let short = CorpusNgrams::new(&[vec!["a"]], 2);
        let d = distinct(&short, 2);
        assert_eq!((d.corpus, d.per_token), (None, Some(0.0)));
        assert_eq!(distinct(&short, 0).corpus, None);
    }
}
