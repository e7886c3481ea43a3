//! sacreBLEU 2.6.0 BLEU (`sacrebleu.metrics.BLEU`), digit for digit natively (glibc `exp`/`ln`);
//! under WebAssembly the maths library may round differently in the last place.
//!
//! Corpus BLEU sums each segment's statistics ([`BleuStats`]) and scores the sum with
//! [`compute_bleu`]; sentence BLEU scores one segment's statistics. Differences from the Python
//! package, all deliberate:
//! - The log-precisions are summed left to right, like Python ≤ 3.11's builtin `sum()`; from
//!   Python 3.12 `sum()` compensates, so scores can differ from a 3.12 run in the last 1-2 ulps.
//! - References come per segment (`references[i]` are the references of `hypotheses[i]`), not as
//!   sacreBLEU's reference streams; a segment's list may be of any length, like sacreBLEU's
//!   `None` references. A segment with no reference matches nothing and has reference length 0
//!   (sacreBLEU raises), and an empty corpus scores 0 (sacreBLEU raises).
//! - Tokenizers `13a`, `none` and `char` are built; `intl`, `zh`, `ja-mecab`, `ko-mecab` and
//!   the SentencePiece ones are not. Orders go up to [`MAX_NGRAM_ORDER`].
//! - `exp`/`ln` come from the platform's libm: glibc natively, like CPython on Linux; the wasm
//!   build's may differ in the last ulp.

mod stats;
mod tokenizers;

use std::borrow::Cow;
use std::fmt;

pub use stats::{BleuStats, MAX_NGRAM_ORDER};
pub use tokenizers::Tokenize;

use stats::SegmentCounter;

/// The sacreBLEU version whose behaviour (and signature) this reproduces.
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// sacreBLEU's `my_log(0.0)`: the log of a zero precision, so the score underflows to 0.
const LOG_ZERO: f64 = -9_999_999_999.0;

/// How precisions without matches are smoothed (`smooth_method` / `smooth_value`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Smoothing {
    /// `none`: a zero precision stays 0 (and so does the score).
    None,
    /// `floor`: a zero precision becomes `value / total` (default 0.1).
    Floor(f64),
    /// `add-k`: `value` is added to the matches and totals of orders 2 and up (default 1).
    AddK(f64),
    /// `exp` (the default): the k-th zero precision becomes `1 / (2^k · total)` (mteval's
    /// NIST smoothing).
    #[default]
    Exp,
}

impl Smoothing {
    /// The method's name as sacreBLEU spells it.
    pub fn name(self) -> &'static str {
        match self {
            Smoothing::None => "none",
            Smoothing::Floor(_) => "floor",
            Smoothing::AddK(_) => "add-k",
            Smoothing::Exp => "exp",
        }
    }

    /// The method called `name` with `value`, or sacreBLEU's `SMOOTH_DEFAULTS` value when
    /// `None` (`exp` and `none` ignore the value, as in sacreBLEU). `None` for an unknown name.
    pub fn from_name(name: &str, value: Option<f64>) -> Option<Smoothing> {
        Some(match name {
            "none" => Smoothing::None,
            "floor" => Smoothing::Floor(value.unwrap_or(0.1)),
            "add-k" => Smoothing::AddK(value.unwrap_or(1.0)),
            "exp" => Smoothing::Exp,
            _ => return None,
        })
    }

    /// The signature's `smooth:` part: `exp`, `floor[0.10]`, `add-k[1.00]`.
    pub fn signature(self) -> String {
        match self {
            Smoothing::Floor(v) | Smoothing::AddK(v) => format!("{}[{v:.2}]", self.name()),
            _ => self.name().to_string(),
        }
    }

    fn value(self) -> Option<f64> {
        match self {
            Smoothing::Floor(v) | Smoothing::AddK(v) => Some(v),
            _ => None,
        }
    }
}

/// The settings of a [`Bleu`] scorer; the defaults are those of sacreBLEU's `BLEU()`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BleuConfig {
    /// The word tokenizer (`13a`).
    pub tokenize: Tokenize,
    /// Lowercase hypotheses and references first (Unicode lowercasing, as `str.lower()`).
    pub lowercase: bool,
    /// The smoothing method (`exp`).
    pub smoothing: Smoothing,
    /// The highest n-gram order, 1..=[`MAX_NGRAM_ORDER`] (4).
    pub max_ngram_order: usize,
    /// Average over the orders the hypothesis has n-grams of, not always `max_ngram_order`
    /// (off; sentence BLEU turns it on).
    pub effective_order: bool,
}

impl Default for BleuConfig {
    fn default() -> Self {
        BleuConfig {
            tokenize: Tokenize::Tok13a,
            lowercase: false,
            smoothing: Smoothing::Exp,
            max_ngram_order: 4,
            effective_order: false,
        }
    }
}

/// Why a [`BleuConfig`] is unusable.
#[derive(Clone, Debug, PartialEq)]
pub enum BleuConfigError {
    /// `max_ngram_order` outside 1..=[`MAX_NGRAM_ORDER`].
    NgramOrder(usize),
    /// A smoothing value that is negative or not finite.
    SmoothValue(f64),
}

impl fmt::Display for BleuConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BleuConfigError::NgramOrder(n) => {
                write!(f, "{n} is not an n-gram order in 1..={MAX_NGRAM_ORDER}")
            }
            BleuConfigError::SmoothValue(v) => {
                write!(f, "{v} is not a smoothing value (finite, at least 0)")
            }
        }
    }
}

impl std::error::Error for BleuConfigError {}

/// A BLEU score with its parts, as sacreBLEU's `BLEUScore`.
#[derive(Clone, Debug, PartialEq)]
pub struct BleuScore {
    /// BLEU on the 0-100 scale, unrounded.
    pub score: f64,
    /// Matches per order, after add-k smoothing (which makes them non-integral for a
    /// non-integral k).
    pub counts: Vec<f64>,
    /// Hypothesis n-grams per order, after add-k smoothing.
    pub totals: Vec<f64>,
    /// Smoothed precisions per order, 0-100.
    pub precisions: Vec<f64>,
    /// Brevity penalty.
    pub bp: f64,
    /// Hypothesis length in tokens.
    pub sys_len: u64,
    /// Closest reference length in tokens.
    pub ref_len: u64,
}

/// sacreBLEU's `BLEU.compute_bleu`: the score of (summed) statistics over orders
/// `1..=max_ngram_order` (clamped to 1..=[`MAX_NGRAM_ORDER`]).
pub fn compute_bleu(
    stats: &BleuStats,
    smoothing: Smoothing,
    effective_order: bool,
    max_ngram_order: usize,
) -> BleuScore {
    let order = max_ngram_order.clamp(1, MAX_NGRAM_ORDER);
    let mut counts: Vec<f64> = stats.correct[..order].iter().map(|&c| c as f64).collect();
    let mut totals: Vec<f64> = stats.total[..order].iter().map(|&t| t as f64).collect();
    let mut precisions = vec![0.0; order];
    let (sys_len, ref_len) = (stats.sys_len, stats.ref_len);

    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        };
    }
    // No match at any order: 0, checked before add-k could invent matches (sacreBLEU #141).
    let score = if stats.correct[..order].iter().any(|&c| c > 0) {
        bp * smoothed_mean(
            &mut counts,
            &mut totals,
            &mut precisions,
            smoothing,
            effective_order,
        )
    } else {
        0.0
    };
    BleuScore {
        score,
        counts,
        totals,
        precisions,
        bp,
        sys_len,
        ref_len,
    }
}

/// Smooths the per-order counts and precisions in place (sacreBLEU returns them smoothed) and
/// returns the precisions' geometric mean (0-100) over the effective orders.
fn smoothed_mean(
    counts: &mut [f64],
    totals: &mut [f64],
    precisions: &mut [f64],
    smoothing: Smoothing,
    effective_order: bool,
) -> f64 {
    let mut smooth_mteval = 1.0;
    let mut eff_order = precisions.len();
    for n in 0..precisions.len() {
        if let Smoothing::AddK(k) = smoothing
            && n > 0
        {
            counts[n] += k;
            totals[n] += k;
        }
        if totals[n] == 0.0 {
            break;
        }
        if effective_order {
            // The orders the hypothesis has n-grams of, whether or not they match.
            eff_order = n + 1;
        }
        precisions[n] = if counts[n] == 0.0 {
            match smoothing {
                Smoothing::Exp => {
                    smooth_mteval *= 2.0;
                    100.0 / (smooth_mteval * totals[n])
                }
                Smoothing::Floor(v) => 100.0 * v / totals[n],
                Smoothing::None | Smoothing::AddK(_) => 0.0,
            }
        } else {
            100.0 * counts[n] / totals[n]
        };
    }
    // Left to right, as Python ≤ 3.11's `sum()` (see the module docs).
    let log_sum: f64 = precisions[..eff_order]
        .iter()
        .map(|&p| if p == 0.0 { LOG_ZERO } else { p.ln() })
        .fold(0.0, |acc, x| acc + x);
    (log_sum / eff_order as f64).exp()
}

/// The number of references per segment for the signature: `Some(n)` when every segment has
/// `n`, `None` ("var") when they differ or there is no segment (as sacreBLEU's `num_refs`).
pub fn uniform_ref_count(counts: impl IntoIterator<Item = usize>) -> Option<usize> {
    let mut counts = counts.into_iter();
    let first = counts.next()?;
    counts.all(|c| c == first).then_some(first)
}

/// A BLEU scorer: a validated [`BleuConfig`] plus reusable counting buffers.
#[derive(Debug)]
pub struct Bleu {
    config: BleuConfig,
    counter: SegmentCounter,
}

impl Bleu {
    /// A scorer for `config`.
    pub fn new(config: BleuConfig) -> Result<Bleu, BleuConfigError> {
        if !(1..=MAX_NGRAM_ORDER).contains(&config.max_ngram_order) {
            return Err(BleuConfigError::NgramOrder(config.max_ngram_order));
        }
        if let Some(v) = config.smoothing.value()
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(BleuConfigError::SmoothValue(v));
        }
        Ok(Bleu {
            config,
            counter: SegmentCounter::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BleuConfig {
        &self.config
    }

    /// The statistics of one segment.
    pub fn segment_stats<S: AsRef<str>>(
        &mut self,
        hypothesis: &str,
        references: &[S],
    ) -> BleuStats {
        let c = self.config;
        if c.lowercase {
            let lowered: Vec<String> = references
                .iter()
                .map(|r| r.as_ref().to_lowercase())
                .collect();
            self.counter.segment(
                c.tokenize,
                c.max_ngram_order,
                &hypothesis.to_lowercase(),
                &lowered,
            )
        } else {
            self.counter
                .segment(c.tokenize, c.max_ngram_order, hypothesis, references)
        }
    }

    /// The score of summed statistics under this configuration.
    pub fn score(&self, stats: &BleuStats) -> BleuScore {
        let c = &self.config;
        compute_bleu(stats, c.smoothing, c.effective_order, c.max_ngram_order)
    }

    /// sacreBLEU's `sentence_score`. For `sacrebleu.sentence_bleu` (and sentence-level use in
    /// general) set `effective_order`.
    pub fn sentence_score<S: AsRef<str>>(
        &mut self,
        hypothesis: &str,
        references: &[S],
    ) -> BleuScore {
        let stats = self.segment_stats(hypothesis, references);
        self.score(&stats)
    }

    /// sacreBLEU's `corpus_score`, with `references[i]` the references of `hypotheses[i]`
    /// (pairs beyond the shorter slice are ignored, as with Python's `zip`).
    pub fn corpus_score<H, R, S>(&mut self, hypotheses: &[H], references: &[R]) -> BleuScore
    where
        H: AsRef<str>,
        R: AsRef<[S]>,
        S: AsRef<str>,
    {
        let mut sum = BleuStats::default();
        for (h, r) in hypotheses.iter().zip(references) {
            sum += &self.segment_stats(h.as_ref(), r.as_ref());
        }
        self.score(&sum)
    }

    /// The reproducibility signature, e.g.
    /// `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`; `nrefs` is "var" for
    /// `None` (see [`uniform_ref_count`]).
    pub fn signature(&self, nrefs: Option<usize>) -> String {
        let c = &self.config;
        let nrefs: Cow<str> = nrefs.map_or("var".into(), |n| n.to_string().into());
        format!(
            "nrefs:{nrefs}|case:{}|eff:{}|tok:{}|smooth:{}|version:{SACREBLEU_VERSION}",
            if c.lowercase { "lc" } else { "mixed" },
            if c.effective_order { "yes" } else { "no" },
            c.tokenize.name(),
            c.smoothing.signature(),
        )
    }
}

#[cfg(test)]
mod tests;
