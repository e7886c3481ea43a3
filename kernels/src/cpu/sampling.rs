//! Token sampling: greedy, temperature, top-k, top-p, min-p and repetition penalties, seeded.
//!
//! # How the filters compose
//!
//! Penalties are applied to the logits first. Then, on the temperature-scaled distribution
//! `p = softmax(z / T)` over the **whole** vocabulary, each active filter keeps a prefix of the
//! tokens ranked by probability (ties broken by lower id):
//!
//! - top-k keeps the `k` most likely tokens;
//! - top-p keeps the smallest prefix whose probability mass reaches `top_p`;
//! - min-p keeps tokens with `p ≥ min_p · p_max`.
//!
//! The kept set is the **intersection** of these prefixes, i.e. the shortest one, so the result
//! does not depend on the order the filters are listed in. (HF transformers instead applies
//! top-p to the renormalised top-k mass, which can keep slightly more tokens when both are set.)
//! The token is then drawn from `p` renormalised on the kept set.
//!
//! # Randomness
//!
//! Draws use the Gumbel-max trick with noise from a counter-based hash of
//! `(seed, step, token id)`: no sequential RNG state, so a sequence's tokens depend only on its
//! seed and its own logits, whatever else runs in the same batch, and a GPU kernel can
//! reproduce the same stream.

use thiserror::Error;

/// Parameters of one sequence's sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// `<= 0` selects greedy decoding.
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1 disables top-p.
    pub top_p: f32,
    /// 0 disables min-p.
    pub min_p: f32,
    /// llama.cpp-style: positive logits of seen tokens are divided by it, negative multiplied. 1 disables.
    pub repetition_penalty: f32,
    /// OpenAI-style: subtracted once from the logit of every seen token. 0 disables.
    pub presence_penalty: f32,
    /// OpenAI-style: subtracted per occurrence of a seen token. 0 disables.
    pub frequency_penalty: f32,
    /// How many of the most recent tokens the penalties look at; 0 means all of them.
    pub penalty_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: 0,
        }
    }
}

/// A parameter outside its valid range.
#[derive(Debug, Error, PartialEq)]
#[error("invalid sampling parameter `{name}` = {value}: {expected}")]
pub struct SamplingError {
    pub name: &'static str,
    pub value: f32,
    pub expected: &'static str,
}

impl SamplingParams {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), SamplingError> {
        let check = |name, value: f32, ok: bool, expected| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(SamplingError {
                    name,
                    value,
                    expected,
                })
            }
        };
        check(
            "temperature",
            self.temperature,
            self.temperature >= 0.0,
            "finite and >= 0",
        )?;
        check(
            "top_p",
            self.top_p,
            self.top_p > 0.0 && self.top_p <= 1.0,
            "in (0, 1]",
        )?;
        check(
            "min_p",
            self.min_p,
            (0.0..=1.0).contains(&self.min_p),
            "in [0, 1]",
        )?;
        check(
            "repetition_penalty",
            self.repetition_penalty,
            self.repetition_penalty > 0.0,
            "finite and > 0",
        )?;
        let penalty_range = |v: f32| (-2.0..=2.0).contains(&v);
        check(
            "presence_penalty",
            self.presence_penalty,
            penalty_range(self.presence_penalty),
            "in [-2, 2]",
        )?;
        check(
            "frequency_penalty",
            self.frequency_penalty,
            penalty_range(self.frequency_penalty),
            "in [-2, 2]",
        )
    }

    /// Whether any repetition, presence or frequency penalty applies (they need the history).
    pub fn has_penalties(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.presence_penalty != 0.0
            || self.frequency_penalty != 0.0
    }

    fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }

    /// No filter removes any of `n` tokens: plain sampling from the tempered softmax.
    fn is_unfiltered(&self, n: usize) -> bool {
        (self.top_k == 0 || self.top_k >= n) && self.top_p >= 1.0 && self.min_p <= 0.0
    }
}

/// One sequence's sampler: parameters plus the step counter that indexes its random stream.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    step: u64,
    ranked: Vec<(f32, u32)>,
    seen: Vec<u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        Self::at_step(params, 0)
    }

    /// A sampler whose next draw is draw number `step` of its random stream.
    pub fn at_step(params: SamplingParams, step: u64) -> Self {
        Sampler {
            params,
            step,
            ranked: Vec::new(),
            seen: Vec::new(),
        }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The step of the next draw.
    pub fn next_step(&self) -> u64 {
        self.step
    }

    /// Claims the next draw for a sampler elsewhere (the GPU's), which draws from the same
    /// random stream at the returned step; this sampler's next draw comes after it.
    pub fn take_step(&mut self) -> u64 {
        self.step += 1;
        self.step - 1
    }

    /// Picks the next token. `logits` is modified in place (penalties); `history` is the
    /// sequence so far (prompt and generated tokens), used by the penalties.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.apply_penalties(logits, history);
        let (step, seed) = (self.step, self.params.seed);
        self.step += 1;
        if self.params.is_greedy() {
            return argmax(logits);
        }
        if self.params.is_unfiltered(logits.len()) {
            return gumbel_argmax(logits, 1.0 / self.params.temperature, seed, step);
        }
        let keep = self.rank_kept(logits);
        let (_, token) = keep
            .iter()
            .map(|&(z, id)| (z + gumbel(seed, step, id), id))
            .fold((f32::NEG_INFINITY, keep[0].1), |best, cand| {
                if cand.0 > best.0 { cand } else { best }
            });
        token
    }

    fn apply_penalties(&mut self, logits: &mut [f32], history: &[u32]) {
        let Sampler {
            params: p, seen, ..
        } = self;
        if !p.has_penalties() {
            return;
        }
        let window = match p.penalty_last_n {
            0 => history,
            n => &history[history.len().saturating_sub(n)..],
        };
        seen.clear();
        seen.extend_from_slice(window);
        seen.sort_unstable();
        for run in seen.chunk_by(|a, b| a == b) {
            let Some(logit) = logits.get_mut(run[0] as usize) else {
                continue;
            };
            if *logit > 0.0 {
                *logit /= p.repetition_penalty;
            } else {
                *logit *= p.repetition_penalty;
            }
            *logit -= p.presence_penalty + p.frequency_penalty * run.len() as f32;
        }
    }

    /// The kept tokens as `(z / T, id)`, most likely first.
    fn rank_kept(&mut self, logits: &[f32]) -> &[(f32, u32)] {
        let p = self.params;
        let inv_t = 1.0 / p.temperature;
        let limit = match p.top_k {
            0 => logits.len(),
            k => k.min(logits.len()),
        };
        let z_max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) * inv_t;
        // Total mass relative to the maximum, needed only by top-p.
        let total = if p.top_p < 1.0 {
            logits
                .iter()
                .map(|&l| (l * inv_t - z_max).exp())
                .sum::<f32>()
        } else {
            0.0
        };
        let z_min_p = if p.min_p > 0.0 {
            z_max + p.min_p.ln()
        } else {
            f32::NEG_INFINITY
        };

        // Rank a growing prefix until it contains every kept token.
        let mut m = limit.min(256);
        loop {
            self.rank_top(logits, inv_t, m);
            let keep = kept_prefix(&self.ranked, z_max, total, p.top_p, z_min_p);
            if keep < self.ranked.len() || m == limit {
                self.ranked.truncate(keep.max(1));
                return &self.ranked;
            }
            m = (m * 4).min(limit);
        }
    }

    /// Fills `ranked` with the `m` most likely tokens in order.
    fn rank_top(&mut self, logits: &[f32], inv_t: f32, m: usize) {
        self.ranked.clear();
        self.ranked.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (l * inv_t, i as u32)),
        );
        let by_rank = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if m < self.ranked.len() {
            self.ranked.select_nth_unstable_by(m - 1, by_rank);
            self.ranked.truncate(m);
        }
        self.ranked.sort_unstable_by(by_rank);
    }
}

/// Length of the prefix of `ranked` that top-p and min-p keep (top-k is the caller's limit).
/// Returns `ranked.len()` when the prefix may extend beyond the ranked tokens.
fn kept_prefix(ranked: &[(f32, u32)], z_max: f32, total: f32, top_p: f32, z_min_p: f32) -> usize {
    let mut mass = 0.0f32;
    for (i, &(z, _)) in ranked.iter().enumerate() {
        if z < z_min_p {
            return i;
        }
        if top_p < 1.0 {
            mass += (z - z_max).exp();
            if mass >= top_p * total {
                return i + 1;
            }
        }
    }
    ranked.len()
}

/// Index of the largest logit; ties go to the lowest id.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// An upper bound of [`gumbel`] over every value [`uniform`] returns: u ≤ 1 − 2⁻²⁴ gives
/// −ln(−ln u) ≈ 16.6, rounded up so that f32 evaluation stays below it.
const GUMBEL_MAX: f32 = 18.0;

/// The token maximising z + g (z = logit / T, g its Gumbel noise) over the whole vocabulary —
/// exactly what the ranked path computes with no filter, ties going to the larger z and then
/// the smaller id — but with noise drawn only for tokens that can still win: one whose z is
/// more than [`GUMBEL_MAX`] below the best score so far cannot. That is typically a few
/// hundred tokens instead of the whole vocabulary.
fn gumbel_argmax(logits: &[f32], inv_t: f32, seed: u64, step: u64) -> u32 {
    let top = argmax(logits);
    let z_top = logits[top as usize] * inv_t;
    let (mut best_v, mut best_z, mut best_id) = (z_top + gumbel(seed, step, top), z_top, top);
    let cut = best_v - GUMBEL_MAX;
    for (id, &l) in (0u32..).zip(logits) {
        let z = l * inv_t;
        if z <= cut || id == top {
            continue;
        }
        let v = z + gumbel(seed, step, id);
        if v > best_v || (v == best_v && (z > best_z || (z == best_z && id < best_id))) {
            (best_v, best_z, best_id) = (v, z, id);
        }
    }
    best_id
}

/// Standard Gumbel noise from the counter-based stream `(seed, step, id)`.
fn gumbel(seed: u64, step: u64, id: u32) -> f32 {
    let u = uniform(seed, step, id);
    -(-u.ln()).ln()
}

/// A uniform draw in (0, 1) from a SplitMix64-style hash of the counter.
pub fn uniform(seed: u64, step: u64, id: u32) -> f32 {
    let mut x = seed
        ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(id).wrapping_mul(0xD1B5_4A32_D192_ED03);
    for _ in 0..2 {
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    // 23 bits: (k + 0.5) / 2^23 is exact in f32 for every k, so u never rounds to 1.0 (with
    // 24 bits the largest k would, and its Gumbel noise would be +inf).
    ((x >> 41) as f32 + 0.5) / (1u64 << 23) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            seed: 7,
            ..Default::default()
        }
    }

    fn draw_many(p: SamplingParams, logits: &[f32], n: usize) -> Vec<usize> {
        let mut counts = vec![0; logits.len()];
        let mut s = Sampler::new(p);
        for _ in 0..n {
            counts[s.sample(&mut logits.to_vec(), &[]) as usize] += 1;
        }
        counts
    }

    #[test]
    fn greedy_picks_lowest_id_among_ties() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&mut [1.0, 3.0, 3.0, 2.0], &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens_different_seed_different_tokens() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 20.0).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params(1.0)
            });
            (0..64)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn draws_follow_the_softmax_distribution() {
        let logits = [0.0f32, 1.0, 2.0, 0.5];
        let n = 40_000;
        let counts = draw_many(params(1.0), &logits, n);
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        for (c, l) in counts.iter().zip(logits) {
            let expected = l.exp() / z;
            let got = *c as f32 / n as f32;
            assert!((got - expected).abs() < 0.01, "p={expected} got {got}");
        }
    }

    #[test]
    fn top_k_keeps_k_most_likely() {
        let counts = draw_many(
            SamplingParams {
                top_k: 2,
                ..params(5.0)
            },
            &[0.0, 1.0, 2.0, 0.5],
            2000,
        );
        assert_eq!((counts[0], counts[3]), (0, 0));
        assert!(counts[1] > 0 && counts[2] > 0);
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // probabilities ≈ [0.64, 0.24, 0.09, 0.03]: nucleus for 0.8 is the first two.
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let counts = draw_many(
            SamplingParams {
                top_p: 0.8,
                ..params(1.0)
            },
            &logits,
            2000,
        );
        assert_eq!((counts[2], counts[3]), (0, 0));
        assert!(counts[1] > 0);
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let logits = [3.0f32, 2.9, 0.0, -1.0];
        let counts = draw_many(
            SamplingParams {
                min_p: 0.5,
                ..params(1.0)
            },
            &logits,
            2000,
        );
        assert_eq!((counts[2], counts[3]), (0, 0));
    }

    #[test]
    fn filter_order_does_not_matter_intersection() {
        // top_k = 3 and top_p = 0.8 together keep the shorter prefix (2 tokens).
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let counts = draw_many(
            SamplingParams {
                top_k: 3,
                top_p: 0.8,
                ..params(1.0)
            },
            &logits,
            2000,
        );
        assert_eq!(counts[2], 0);
    }

    #[test]
    fn large_vocab_nucleus_beyond_first_rank_window() {
        // A flat distribution over 5000 tokens: top-p 0.5 needs ~2500 tokens, more than the
        // initial 256-token ranking window.
        let logits = vec![0.0f32; 5000];
        let mut s = Sampler::new(SamplingParams {
            top_p: 0.5,
            ..params(1.0)
        });
        let kept = s.rank_kept(&logits).len();
        assert_eq!(kept, 2500);
    }

    #[test]
    fn penalties_lower_seen_tokens() {
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 2.0,
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            ..params(0.0)
        });
        let mut logits = [4.0f32, -1.0, 3.0];
        let _ = s.sample(&mut logits, &[0, 0, 1]);
        assert_eq!(logits, [4.0 / 2.0 - 0.5 - 0.5, -2.0 - 0.5 - 0.25, 3.0]);
    }

    #[test]
    fn validation_rejects_out_of_range() {
        assert!(params(1.0).validate().is_ok());
        let bad = [
            SamplingParams {
                temperature: -1.0,
                ..params(1.0)
            },
            SamplingParams {
                temperature: f32::NAN,
                ..params(1.0)
            },
            SamplingParams {
                top_p: 0.0,
                ..params(1.0)
            },
            SamplingParams {
                min_p: 1.5,
                ..params(1.0)
            },
            SamplingParams {
                repetition_penalty: 0.0,
                ..params(1.0)
            },
            SamplingParams {
                presence_penalty: 3.0,
                ..params(1.0)
            },
        ];
        for p in bad {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }

    #[test]
    fn unfiltered_fast_path_equals_ranking_every_token() {
        let mut rng = 12345u64;
        for trial in 0..200u64 {
            let logits: Vec<f32> = (0..5000)
                .map(|_| {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // Wide, peaked logits as a language model gives, with some exact ties.
                    ((rng >> 40) % 4000) as f32 / 100.0 - 20.0
                })
                .collect();
            let t = [0.3f32, 0.8, 1.0, 1.7][trial as usize % 4];
            let inv_t = 1.0 / t;
            // Brute force in rank order (z descending, id ascending), first strict maximum.
            let mut ranked: Vec<(f32, u32)> = (0u32..)
                .zip(&logits)
                .map(|(i, &l)| (l * inv_t, i))
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut best = (f32::NEG_INFINITY, ranked[0].1);
            for &(z, id) in &ranked {
                let v = z + gumbel(trial, trial * 3, id);
                if v > best.0 {
                    best = (v, id);
                }
            }
            assert_eq!(
                gumbel_argmax(&logits, inv_t, trial, trial * 3),
                best.1,
                "trial {trial}"
            );
        }
    }

    #[test]
    fn gumbel_bound_holds_at_the_extremes() {
        let scale = (1u64 << 23) as f32;
        for k in [0u64, (1 << 23) - 1] {
            let u = (k as f32 + 0.5) / scale;
            assert!(u > 0.0 && u < 1.0, "{u}");
            let g = -(-u.ln()).ln();
            assert!(g.is_finite() && g < GUMBEL_MAX, "{g}");
        }
    }

    #[test]
    fn uniform_is_strictly_inside_unit_interval() {
        for i in 0..10_000 {
            let u = uniform(i, i * 3, i as u32);
            assert!(u > 0.0 && u < 1.0);
        }
    }

    #[test]
    fn a_claimed_step_is_the_draw_a_sampler_at_that_step_makes() {
        let params = SamplingParams {
            temperature: 0.8,
            top_k: 20,
            seed: 7,
            ..SamplingParams::default()
        };
        let logits: Vec<f32> = (0..64).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let mut all_here = Sampler::new(params);
        let draws: Vec<u32> = (0..8)
            .map(|_| all_here.sample(&mut logits.clone(), &[]))
            .collect();
        // Every other draw made elsewhere: the remaining ones are unchanged.
        let mut mixed = Sampler::new(params);
        for (step, &want) in draws.iter().enumerate() {
            if step % 2 == 0 {
                let claimed = mixed.take_step();
                assert_eq!(claimed, step as u64);
                let elsewhere = Sampler::at_step(params, claimed).sample(&mut logits.clone(), &[]);
                assert_eq!(elsewhere, want);
            } else {
                assert_eq!(mixed.sample(&mut logits.clone(), &[]), want);
            }
        }
    }
}
