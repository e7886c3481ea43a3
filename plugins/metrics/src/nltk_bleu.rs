//! NLTK 3.10.4 BLEU (`nltk.translate.bleu_score`) and Texygen's Self-BLEU built on it.
//!
//! NLTK keeps each order's precision as an unnormalised `Fraction` (numerator and denominator
//! summed separately over the corpus), takes `log` of its correctly rounded float value, and
//! adds the weighted logs with `math.fsum`; all three are reproduced, so scores match to the
//! last digit. Where NLTK returns the integer `0` (no unigram match, no hypothesis token) these
//! functions return `0.0`.

use std::collections::HashMap;
use std::hash::Hash;

use crate::text::CorpusNgrams;

/// NLTK's `SmoothingFunction(epsilon=0.1, ...)` methods 0 to 3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Smoothing {
    /// `method0`: a zero precision becomes `sys.float_info.min` (NLTK also warns).
    Method0,
    /// `method1`: a zero numerator becomes `epsilon` (NLTK's default 0.1).
    Method1 {
        /// Added to zero numerators.
        epsilon: f64,
    },
    /// `method2`: add 1 to numerator and denominator of orders 2 and up.
    Method2,
    /// `method3`: the k-th zero precision becomes `1 / (2^k · denominator)` (NIST).
    Method3,
}

impl Smoothing {
    /// `SmoothingFunction().method1`: epsilon 0.1.
    pub const METHOD1: Smoothing = Smoothing::Method1 { epsilon: 0.1 };
}

/// One order's precision after smoothing: still a fraction, or already a float.
#[derive(Clone, Copy, Debug)]
enum Precision {
    Fraction(u64, u64),
    Float(f64),
}

impl Precision {
    /// `math.log(p)` for `p > 0`, `None` otherwise (NLTK skips those terms).
    fn ln(self) -> Option<f64> {
        let value = match self {
            // `float(Fraction)` is the correctly rounded quotient, as is an f64 division of
            // integers below 2^53.
            Precision::Fraction(num, den) if num > 0 => num as f64 / den as f64,
            Precision::Float(v) if v > 0.0 => v,
            _ => return None,
        };
        Some(value.ln())
    }
}

/// NLTK's `corpus_bleu` from summed statistics: `numerators[i]`/`denominators[i]` of order
/// `i + 1` (one per weight), total hypothesis length and total closest-reference length.
pub fn bleu_from_counts(
    numerators: &[u64],
    denominators: &[u64],
    hyp_len: u64,
    ref_len: u64,
    weights: &[f64],
    smoothing: Smoothing,
) -> f64 {
    if numerators.first().copied().unwrap_or(0) == 0 {
        return 0.0; // NLTK returns the int 0
    }
    let bp = if hyp_len > ref_len {
        1.0
    } else if hyp_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    };
    let mut next_power = 1.0; // method3's 2^k
    let precisions = numerators
        .iter()
        .zip(denominators)
        .enumerate()
        .map(|(i, (&num, &den))| match smoothing {
            Smoothing::Method0 if num == 0 => Precision::Float(f64::MIN_POSITIVE),
            Smoothing::Method1 { epsilon } if num == 0 => Precision::Float(epsilon / den as f64),
            Smoothing::Method2 if i > 0 => Precision::Fraction(num + 1, den + 1),
            Smoothing::Method3 if num == 0 => {
                next_power *= 2.0;
                Precision::Float(1.0 / (next_power * den as f64))
            }
            _ => Precision::Fraction(num, den),
        });
    let terms = weights
        .iter()
        .zip(precisions)
        .filter_map(|(w, p)| p.ln().map(|ln| w * ln));
    bp * fsum(terms).exp()
}

/// NLTK's `corpus_bleu(list_of_references, hypotheses, weights, smoothing_function)`: `weights`
/// has one entry per order (NLTK's default is `[0.25; 4]`). `references[i]` are the
/// references of `hypotheses[i]`; a hypothesis with no reference gets reference length 0
/// (NLTK raises).
pub fn corpus_bleu<T, H, R, Rs>(
    references: &[Rs],
    hypotheses: &[H],
    weights: &[f64],
    smoothing: Smoothing,
) -> f64
where
    T: Hash + Eq,
    H: AsRef<[T]>,
    R: AsRef<[T]>,
    Rs: AsRef<[R]>,
{
    let orders = weights.len();
    let mut numerators = vec![0u64; orders];
    let mut denominators = vec![0u64; orders];
    let (mut hyp_len, mut ref_len) = (0u64, 0u64);
    for (refs, hyp) in references.iter().zip(hypotheses) {
        let (refs, hyp) = (refs.as_ref(), hyp.as_ref());
        for n in 1..=orders {
            let (num, den) = modified_precision(refs, hyp, n);
            numerators[n - 1] += num;
            denominators[n - 1] += den;
        }
        hyp_len += hyp.len() as u64;
        let lens = refs.iter().map(|r| r.as_ref().len());
        ref_len += closest_ref_length(lens, hyp.len()).unwrap_or(0) as u64;
    }
    bleu_from_counts(
        &numerators,
        &denominators,
        hyp_len,
        ref_len,
        weights,
        smoothing,
    )
}

/// NLTK's `sentence_bleu(references, hypothesis, weights, smoothing_function)`.
pub fn sentence_bleu<T, R>(
    references: &[R],
    hypothesis: &[T],
    weights: &[f64],
    smoothing: Smoothing,
) -> f64
where
    T: Hash + Eq,
    R: AsRef<[T]>,
{
    corpus_bleu(&[references], &[hypothesis], weights, smoothing)
}

/// NLTK's `modified_precision` as `(numerator, denominator)`: clipped matches and
/// `max(1, hypothesis n-grams)`.
fn modified_precision<T: Hash + Eq, R: AsRef<[T]>>(
    references: &[R],
    hypothesis: &[T],
    n: usize,
) -> (u64, u64) {
    let counts = count_ngrams(hypothesis, n);
    let mut max_counts: HashMap<&[T], u64> = HashMap::new();
    for reference in references {
        let reference_counts = count_ngrams(reference.as_ref(), n);
        for ngram in counts.keys() {
            let count = reference_counts.get(ngram).copied().unwrap_or(0);
            let best = max_counts.entry(ngram).or_insert(0);
            *best = (*best).max(count);
        }
    }
    let numerator = counts
        .iter()
        .map(|(ngram, &count)| count.min(max_counts.get(ngram).copied().unwrap_or(0)))
        .sum();
    let denominator = counts.values().sum::<u64>().max(1);
    (numerator, denominator)
}

fn count_ngrams<T: Hash + Eq>(tokens: &[T], n: usize) -> HashMap<&[T], u64> {
    let mut counts = HashMap::new();
    if n > 0 {
        for window in tokens.windows(n) {
            *counts.entry(window).or_insert(0) += 1;
        }
    }
    counts
}

/// NLTK's `closest_ref_length`: the reference length nearest `hyp_len`, ties to the shorter;
/// `None` without references.
fn closest_ref_length(lens: impl Iterator<Item = usize>, hyp_len: usize) -> Option<usize> {
    lens.min_by_key(|&len| (len.abs_diff(hyp_len), len))
}

/// Python's `math.fsum`: the correctly rounded sum of the values (Shewchuk's exact partial
/// sums plus CPython's final half-even correction). Non-finite values give the plain sum.
pub fn fsum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    let mut plain = 0.0;
    for value in values {
        plain += value;
        if !value.is_finite() {
            continue;
        }
        let mut x = value;
        let mut kept = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    if !plain.is_finite() {
        return plain;
    }
    // Add the partials from the top, stopping at the first inexact addition; then round
    // half-even by hand when the rest of the partials would tip the rounding.
    let Some((&top, rest)) = partials.split_last() else {
        return 0.0;
    };
    let mut hi = top;
    let mut lo = 0.0;
    let mut n = rest.len();
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = rest[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && rest[n - 1] < 0.0) || (lo > 0.0 && rest[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

/// Texygen's Self-BLEU of one order (`SelfBleu.get_bleu_parallel`, 0..1 scale).
#[derive(Clone, Debug, PartialEq)]
pub struct SelfBleu {
    /// For each sentence: NLTK `sentence_bleu(every other sentence, it, (1/n,)*n, method1)`.
    pub per_sentence: Vec<f64>,
    /// `sum(per_sentence) / len` (Texygen's plain running sum).
    pub mean: f64,
}

/// Texygen Self-BLEU of order `n` over an indexed corpus (built with a `max_order` of at
/// least `n`). `None` with fewer than two sentences (NLTK cannot score a sentence against no
/// reference) or `n == 0`.
///
/// Texygen's default "fast" mode scores only the first 500 sentences (`sample_size`): index
/// `&sentences[..500]` for that. Its tokenizer, `nltk.word_tokenize`, is the caller's choice.
///
/// Cost is linear in the corpus's n-grams, not quadratic: for each n-gram the two largest
/// per-sentence counts (and which sentence holds the largest) give its maximum count over
/// "every sentence but i" in O(1), and the sorted lengths give the closest other length.
pub fn self_bleu(corpus: &CorpusNgrams, n: usize) -> Option<SelfBleu> {
    let count = corpus.sentences();
    if count < 2 || n == 0 {
        return None;
    }
    let top = TopCounts::new(corpus, n);
    let mut sorted_lengths = corpus.lengths().to_vec();
    sorted_lengths.sort_unstable();
    // `(1. / ngram for _ in range(ngram))`
    let weights = vec![1.0 / n as f64; n];
    let mut numerators = vec![0u64; n];
    let mut denominators = vec![0u64; n];
    let per_sentence: Vec<f64> = (0..count)
        .map(|s| {
            let len = corpus.lengths()[s];
            for order in 1..=n {
                let ngrams = corpus.ngrams(s, order);
                numerators[order - 1] = ngrams
                    .iter()
                    .map(|&(id, c)| u64::from(c.min(top.max_without(id, s))))
                    .sum();
                let total: u64 = ngrams.iter().map(|&(_, c)| u64::from(c)).sum();
                denominators[order - 1] = total.max(1);
            }
            let ref_len = closest_other_length(&sorted_lengths, len);
            bleu_from_counts(
                &numerators,
                &denominators,
                len as u64,
                ref_len as u64,
                &weights,
                Smoothing::METHOD1,
            )
        })
        .collect();
    let mean = per_sentence.iter().fold(0.0, |acc, s| acc + s) / count as f64;
    Some(SelfBleu { per_sentence, mean })
}

/// Per n-gram id: the largest count in any sentence, the sentence holding it, and the
/// largest count among the other sentences.
struct TopCounts {
    first: Vec<u32>,
    owner: Vec<u32>,
    second: Vec<u32>,
}

impl TopCounts {
    fn new(corpus: &CorpusNgrams, n: usize) -> TopCounts {
        let size = corpus.id_bound();
        let mut top = TopCounts {
            first: vec![0; size],
            owner: vec![u32::MAX; size],
            second: vec![0; size],
        };
        for s in 0..corpus.sentences() {
            for order in 1..=n {
                for &(id, c) in corpus.ngrams(s, order) {
                    let id = id as usize;
                    if c > top.first[id] {
                        top.second[id] = top.first[id];
                        top.first[id] = c;
                        top.owner[id] = s as u32;
                    } else if c > top.second[id] {
                        top.second[id] = c;
                    }
                }
            }
        }
        top
    }

    /// The n-gram's largest count over every sentence except `s`.
    fn max_without(&self, id: u32, s: usize) -> u32 {
        let id = id as usize;
        if self.owner[id] == s as u32 {
            self.second[id]
        } else {
            self.first[id]
        }
    }
}

/// The length closest to `len` (ties: shorter) in `sorted` once one copy of `len` (the
/// sentence's own) is left out.
fn closest_other_length(sorted: &[usize], len: usize) -> usize {
    let start = sorted.partition_point(|&l| l < len);
    let end = sorted.partition_point(|&l| l <= len);
    if end - start >= 2 {
        return len; // another sentence has the same length
    }
    let below = start.checked_sub(1).map(|i| sorted[i]);
    let above = sorted.get(end).copied();
    [below, above]
        .into_iter()
        .flatten()
        .min_by_key(|&l| (l.abs_diff(len), l))
        .unwrap_or(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::py_split;

    /// golden/metrics/reference_py311.json, key "self_bleu_texygen_method1_whitespace".
    const CORPUS: [&str; 5] = [
        "the cat sat on the mat",
        "the dog sat on the log",
        "a bird flew over the house",
        "the cat sat on the log today",
        "short",
    ];

    fn tokens(lines: &[&str]) -> Vec<Vec<String>> {
        lines
            .iter()
            .map(|l| py_split(l).map(str::to_string).collect())
            .collect()
    }

    #[test]
    // A golden value happens to be 1/sqrt(2); it stays written as the Python output.
    #[expect(clippy::approx_constant)]
    fn self_bleu_matches_texygen() {
        let index = CorpusNgrams::new(&tokens(&CORPUS), 4);
        let two = self_bleu(&index, 2).unwrap();
        assert_eq!(
            two.per_sentence,
            [
                0.816496580927726,
                0.7071067811865476,
                0.05773502691896258,
                0.8451542547285166,
                0.0
            ]
        );
        assert_eq!(two.mean, 0.4852985287523506);
        let three = self_bleu(&index, 3).unwrap();
        assert_eq!(
            three.per_sentence,
            [
                0.7937005259840998,
                0.6299605249474366,
                0.043679023236814954,
                0.8298265333662435,
                0.0
            ]
        );
        assert_eq!(three.mean, 0.45943332150691896);
        let four = self_bleu(&index, 4).unwrap();
        assert_eq!(
            four.per_sentence,
            [
                0.7598356856515925,
                0.537284965911771,
                0.040824829046386304,
                0.8091067115702212,
                0.0
            ]
        );
        assert_eq!(four.mean, 0.4294104384359942);
    }

    #[test]
    fn self_bleu_equals_leave_one_out_sentence_bleu() {
        // The O(n-grams) path against the literal definition, on a corpus with repeats,
        // equal lengths and duplicates.
        let lines = [
            "a a b",
            "a b a b",
            "b b",
            "a a b",
            "c",
            "a b c a b c",
            "b a",
            "c c c c",
        ];
        let sentences = tokens(&lines);
        let index = CorpusNgrams::new(&sentences, 5);
        for n in 1..=5 {
            let fast = self_bleu(&index, n).unwrap();
            let weights = vec![1.0 / n as f64; n];
            for (i, hyp) in sentences.iter().enumerate() {
                let others: Vec<&Vec<String>> = sentences
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, s)| s)
                    .collect();
                let slow = sentence_bleu(&others, hyp, &weights, Smoothing::METHOD1);
                assert_eq!(fast.per_sentence[i], slow, "n={n} i={i}");
            }
        }
        assert_eq!(self_bleu(&CorpusNgrams::new(&tokens(&["x"]), 2), 2), None);
    }

    #[test]
    fn sentence_bleu_follows_nltk() {
        let hyp: Vec<&str> = "the cat sat".split(' ').collect();
        let refs = [vec!["the", "cat", "sat", "down"]];
        let w = [0.25; 4];
        // No unigram match: NLTK's int 0.
        assert_eq!(
            sentence_bleu(&[vec!["x"]], &hyp, &w, Smoothing::METHOD1),
            0.0
        );
        // bp = exp(1 - 4/3); precisions 1, 1, 1 and a zero 4-gram precision.
        let bp = (1.0f64 - 4.0 / 3.0).exp();
        let m1 = sentence_bleu(&refs, &hyp, &w, Smoothing::METHOD1);
        assert_eq!(m1, bp * fsum([0.0, 0.0, 0.0, 0.25 * 0.1f64.ln()]).exp());
        let m0 = sentence_bleu(&refs, &hyp, &w, Smoothing::Method0);
        assert_eq!(m0, bp * (0.25 * f64::MIN_POSITIVE.ln()).exp());
        let m3 = sentence_bleu(&refs, &hyp, &w, Smoothing::Method3);
        assert_eq!(m3, bp * (0.25 * 0.5f64.ln()).exp());
        let m2 = sentence_bleu(&refs, &hyp, &w, Smoothing::Method2);
        assert_eq!(m2, bp * fsum([0.0, 0.0, 0.0, 0.25 * 0.5f64.ln()]).exp());
        // Closest reference length: 2 and 4 tie for 3, the shorter wins (bp < 1).
        let tie = [vec!["the", "cat"], vec!["the", "cat", "sat", "x"]];
        assert_eq!(sentence_bleu(&tie, &hyp, &[1.0], Smoothing::METHOD1), 1.0);
        let empty: [Vec<&str>; 0] = [];
        assert_eq!(sentence_bleu(&empty, &hyp, &w, Smoothing::METHOD1), 0.0);
        assert_eq!(sentence_bleu(&refs, &hyp, &[], Smoothing::METHOD1), 0.0);
    }

    #[test]
    fn fsum_is_correctly_rounded() {
        assert_eq!(fsum([0.1; 10]), 1.0);
        assert_eq!(
            fsum([1e100, 1.0, -1e100, 1e-100, 1e50, -1.0, -1e50]),
            1e-100
        );
        // A half-way case where the naive partial sum would round the wrong way.
        assert_eq!(fsum([1.0, 1e-16, 1e-16]), 1.0000000000000002);
        assert_eq!(fsum([]), 0.0);
        assert_eq!(fsum([f64::INFINITY, 1.0]), f64::INFINITY);
        assert!(fsum([f64::INFINITY, f64::NEG_INFINITY]).is_nan());
    }
}
