//! ROUGE exactly as Google's `rouge-score` 0.1.2 computes it (`rouge_scorer.RougeScorer`):
//! ROUGE-N for any n ≥ 1, ROUGE-L over the whole text and ROUGE-Lsum (summary-level union LCS
//! over "\n"-separated lines), with rouge-score's tokenizer and, optionally, NLTK's Porter
//! stemmer. Every precision, recall and F is bit-identical to Python's.
//!
//! Speed: tokens are interned to `u32` ids once (a vocabulary kept across calls also caches
//! stems), n-grams are counted through dense ids, and LCS tables are bit-parallel (64 cells per
//! word operation). Buffers live in the [`RougeScorer`] and are reused from one call to the next.

mod lcs;
mod tokens;

#[cfg(test)]
mod tests;

use std::fmt;
use std::num::NonZeroU8;
use std::str::FromStr;

use crate::porter::PorterStemmer;
use lcs::Lcs;
use rustc_hash::FxHashMap;
use tokens::{Piece, Tokens, Vocabulary};

/// One kind of ROUGE score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RougeType {
    /// ROUGE-N: n-gram overlap (`rouge1`, `rouge2`, …).
    N(NonZeroU8),
    /// ROUGE-L: longest common subsequence of the whole texts (`rougeL`).
    L,
    /// ROUGE-Lsum: summary-level LCS over the texts' lines (`rougeLsum`).
    Lsum,
}

impl RougeType {
    /// rouge-score's defaults for most uses: rouge1, rouge2, rougeL and rougeLsum.
    pub const DEFAULT: [RougeType; 4] = [
        RougeType::N(NonZeroU8::MIN),
        RougeType::N(NonZeroU8::MIN.saturating_add(1)),
        RougeType::L,
        RougeType::Lsum,
    ];
}

impl FromStr for RougeType {
    type Err = String;

    /// Parses rouge-score's names: `rouge1` … `rouge9` (its pattern allows one digit),
    /// `rougeL`, `rougeLsum`.
    fn from_str(name: &str) -> Result<RougeType, String> {
        match name {
            "rougeL" => Ok(RougeType::L),
            "rougeLsum" => Ok(RougeType::Lsum),
            _ => name
                .strip_prefix("rouge")
                .filter(|n| n.len() == 1)
                .and_then(|n| n.parse::<NonZeroU8>().ok())
                .map(RougeType::N)
                .ok_or_else(|| {
                    format!(
                        "unknown rouge type `{name}` (expected rouge1 to rouge9, rougeL or \
                         rougeLsum)"
                    )
                }),
        }
    }
}

impl fmt::Display for RougeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RougeType::N(n) => write!(f, "rouge{n}"),
            RougeType::L => f.write_str("rougeL"),
            RougeType::Lsum => f.write_str("rougeLsum"),
        }
    }
}

/// Precision, recall and F-measure (rouge-score's `Score`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    /// Matches over the prediction's size.
    pub precision: f64,
    /// Matches over the target's size.
    pub recall: f64,
    /// Harmonic mean of the two; 0 when both are 0.
    pub fmeasure: f64,
}

impl Score {
    /// `matches / predicted` and `matches / target`, with rouge-score's F.
    fn from_counts(matches: usize, predicted: usize, target: usize) -> Score {
        Score::new(
            matches as f64 / predicted as f64,
            matches as f64 / target as f64,
        )
    }

    /// The score with F computed as `scoring.fmeasure` does, operation for operation (the
    /// evaluation order decides the last bit).
    pub fn new(precision: f64, recall: f64) -> Score {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Score {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// The plain mean of each of precision, recall and F over `scores`, summed left to right (as
/// Python ≤ 3.11's `sum`); `None` for no scores. This is the dataset ROUGE to report, rather
/// than rouge-score's `BootstrapAggregator`, whose unseeded resampling differs run to run.
pub fn mean(scores: &[Score]) -> Option<Score> {
    if scores.is_empty() {
        return None;
    }
    let n = scores.len() as f64;
    let (p, r, f) = scores.iter().fold((0.0, 0.0, 0.0), |(p, r, f), s| {
        (p + s.precision, r + s.recall, f + s.fmeasure)
    });
    Some(Score {
        precision: p / n,
        recall: r / n,
        fmeasure: f / n,
    })
}

/// rouge-score's `tokenize.tokenize(text, stemmer)`: lowercase, split on everything outside
/// `[a-z0-9]`, stem tokens longer than three letters. [`RougeScorer`] does the same without
/// building strings.
pub fn tokenize(text: &str, stemmer: Option<&PorterStemmer>) -> Vec<String> {
    let mut out = Vec::new();
    tokens::scan(text, &mut String::new(), |piece| {
        if let Piece::Token(token) = piece {
            let token = tokens::stem_token(stemmer, token).unwrap_or_else(|| token.to_owned());
            if !token.is_empty() {
                out.push(token);
            }
        }
    });
    out
}

/// Scores predictions against targets (rouge-score's `RougeScorer`). Keep one for a whole
/// batch: it reuses its buffers and remembers token ids and stems across calls.
#[derive(Debug)]
pub struct RougeScorer {
    types: Vec<RougeType>,
    vocabulary: Vocabulary,
    target: Tokens,
    prediction: Tokens,
    work: Workspace,
}

/// Buffers reused across calls.
#[derive(Debug, Default)]
struct Workspace {
    lcs: Lcs,
    /// Per token id: its count in the target and in the prediction (zero between uses).
    counts: Vec<[u32; 2]>,
    /// Dense ids of the target's and the prediction's n-grams at the current n.
    target_grams: Vec<u32>,
    prediction_grams: Vec<u32>,
    /// (id of the (n-1)-gram, id of its next token) → id of the n-gram.
    gram_ids: FxHashMap<u64, u32>,
    gram_counts: Vec<[u32; 2]>,
    /// Per target token: whether some LCS of its line uses it (rougeLsum).
    union: Vec<bool>,
}

impl RougeScorer {
    /// A scorer for `types`, stemming with NLTK's default Porter stemmer when `use_stemmer`
    /// (as rouge-score's `DefaultTokenizer`).
    pub fn new(types: &[RougeType], use_stemmer: bool) -> RougeScorer {
        RougeScorer {
            types: types.to_vec(),
            vocabulary: Vocabulary::new(use_stemmer.then(PorterStemmer::default)),
            target: Tokens::default(),
            prediction: Tokens::default(),
            work: Workspace::default(),
        }
    }

    /// The types scored, in the order [`score`](Self::score) returns them.
    pub fn rouge_types(&self) -> &[RougeType] {
        &self.types
    }

    /// Scores `prediction` against `target` (rouge-score's `score(target, prediction)`: target
    /// first), one [`Score`] per type in [`rouge_types`](Self::rouge_types) order.
    pub fn score(&mut self, target: &str, prediction: &str) -> Vec<Score> {
        self.vocabulary.trim();
        self.vocabulary.tokenize(prediction, &mut self.prediction);
        self.vocabulary.tokenize(target, &mut self.target);
        self.score_tokens()
    }

    /// Scores `prediction` against each target and keeps, per type, the score of the target
    /// with the highest F (the first such target on ties, as `numpy.argmax`). `None` for no
    /// targets, where rouge-score raises `ValueError`.
    pub fn score_multi<S: AsRef<str>>(
        &mut self,
        targets: &[S],
        prediction: &str,
    ) -> Option<Vec<Score>> {
        self.vocabulary.trim();
        self.vocabulary.tokenize(prediction, &mut self.prediction);
        let mut best: Option<Vec<Score>> = None;
        for target in targets {
            self.vocabulary.tokenize(target.as_ref(), &mut self.target);
            let scores = self.score_tokens();
            match &mut best {
                None => best = Some(scores),
                Some(best) => {
                    for (kept, new) in best.iter_mut().zip(scores) {
                        if new.fmeasure > kept.fmeasure {
                            *kept = new;
                        }
                    }
                }
            }
        }
        best
    }

    fn score_tokens(&mut self) -> Vec<Score> {
        let ids = self.vocabulary.len();
        let (target, prediction) = (&self.target, &self.prediction);
        let max_n = self
            .types
            .iter()
            .filter_map(|t| match t {
                RougeType::N(n) => Some(usize::from(n.get())),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let ngrams = self
            .work
            .ngram_scores(&target.ids, &prediction.ids, ids, max_n);
        self.types
            .iter()
            .map(|rouge_type| match rouge_type {
                RougeType::N(n) => ngrams[usize::from(n.get()) - 1],
                RougeType::L => self.work.lcs_score(&target.ids, &prediction.ids, ids),
                RougeType::Lsum => self.work.summary_lcs_score(target, prediction, ids),
            })
            .collect()
    }
}

impl Workspace {
    /// ROUGE-1 … ROUGE-`max_n`. The n-grams of each order get dense ids from the (n-1)-gram
    /// ids and the next token, so no n-gram is ever built as a slice or hashed more than once.
    fn ngram_scores(
        &mut self,
        target: &[u32],
        prediction: &[u32],
        id_count: usize,
        max_n: usize,
    ) -> Vec<Score> {
        let mut scores = Vec::with_capacity(max_n);
        if max_n == 0 {
            return scores;
        }
        // Unigrams: count straight into the per-token-id array, then zero what was touched.
        if self.counts.len() < id_count {
            self.counts.resize(id_count, [0; 2]);
        }
        for &id in target {
            self.counts[id as usize][0] += 1;
        }
        for &id in prediction {
            self.counts[id as usize][1] += 1;
        }
        scores.push(overlap_score(
            &mut self.counts,
            target,
            prediction,
            target.len(),
            prediction.len(),
        ));

        self.target_grams.clear();
        self.target_grams.extend_from_slice(target);
        self.prediction_grams.clear();
        self.prediction_grams.extend_from_slice(prediction);
        for n in 2..=max_n {
            self.gram_ids.clear();
            for (grams, tokens) in [
                (&mut self.target_grams, target),
                (&mut self.prediction_grams, prediction),
            ] {
                let count = (tokens.len() + 1).saturating_sub(n);
                grams.truncate(count);
                for (i, gram) in grams.iter_mut().enumerate() {
                    let key = u64::from(*gram) << 32 | u64::from(tokens[i + n - 1]);
                    let next = self.gram_ids.len() as u32;
                    *gram = *self.gram_ids.entry(key).or_insert(next);
                }
            }
            self.gram_counts.clear();
            self.gram_counts.resize(self.gram_ids.len(), [0; 2]);
            for &id in &self.target_grams {
                self.gram_counts[id as usize][0] += 1;
            }
            for &id in &self.prediction_grams {
                self.gram_counts[id as usize][1] += 1;
            }
            scores.push(overlap_score(
                &mut self.gram_counts,
                &self.target_grams,
                &self.prediction_grams,
                self.target_grams.len(),
                self.prediction_grams.len(),
            ));
        }
        scores
    }

    /// ROUGE-L: zeros (rouge-score's integer `Score(0, 0, 0)`) when either text has no tokens.
    fn lcs_score(&mut self, target: &[u32], prediction: &[u32], id_count: usize) -> Score {
        if target.is_empty() || prediction.is_empty() {
            return Score::default();
        }
        let lcs = self.lcs.length(target, prediction, id_count);
        Score::from_counts(lcs, prediction.len(), target.len())
    }

    /// ROUGE-Lsum (rouge-score's `_summary_level_lcs`). For each target line, the union of
    /// its LCS positions against every prediction line; each token of that union is a hit
    /// while both its target and its prediction budget (its total counts) last.
    fn summary_lcs_score(
        &mut self,
        target: &Tokens,
        prediction: &Tokens,
        id_count: usize,
    ) -> Score {
        let (m, n) = (target.ids.len(), prediction.ids.len());
        if m == 0 || n == 0 {
            return Score::default();
        }
        self.union.clear();
        self.union.resize(m, false);
        for line in prediction.lines() {
            let candidate = &prediction.ids[line];
            let (lcs, union) = (&mut self.lcs, &mut self.union);
            lcs.with_columns(candidate, id_count, |lcs| {
                for reference in target.lines() {
                    let hits = &mut union[reference.clone()];
                    lcs.mark(&target.ids[reference], candidate, hits);
                }
            });
        }
        if self.counts.len() < id_count {
            self.counts.resize(id_count, [0; 2]);
        }
        for &id in &target.ids {
            self.counts[id as usize][0] += 1;
        }
        for &id in &prediction.ids {
            self.counts[id as usize][1] += 1;
        }
        // Target lines in order, each line's union positions ascending: rouge-score's order,
        // which matters because the budgets are shared.
        let mut hits = 0;
        for (&id, _) in target
            .ids
            .iter()
            .zip(&self.union)
            .filter(|(_, used)| **used)
        {
            let budget = &mut self.counts[id as usize];
            if budget[0] > 0 && budget[1] > 0 {
                hits += 1;
                budget[0] -= 1;
                budget[1] -= 1;
            }
        }
        for &id in target.ids.iter().chain(&prediction.ids) {
            self.counts[id as usize] = [0; 2];
        }
        Score::from_counts(hits, n, m)
    }
}

/// rouge-score's `_score_ngrams` from `counts` (indexed by the ids in `target` and
/// `prediction`, zeroed again on return): the clipped overlap over the n-gram totals, with
/// totals of 0 counted as 1.
fn overlap_score(
    counts: &mut [[u32; 2]],
    target: &[u32],
    prediction: &[u32],
    target_total: usize,
    predicted_total: usize,
) -> Score {
    let mut overlap = 0usize;
    for &id in target {
        let [t, p] = &mut counts[id as usize];
        // Each distinct n-gram once: zeroing its target count marks it as done.
        overlap += (*t).min(*p) as usize;
        *t = 0;
    }
    for &id in prediction {
        counts[id as usize][1] = 0;
    }
    Score::from_counts(overlap, predicted_total.max(1), target_total.max(1))
}
