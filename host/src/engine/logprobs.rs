//! Log-probabilities of a token and the most likely alternatives, from one row of logits.

use super::request::TokenLogprob;

/// `log Σ exp(logits)`, in f64 (shifted by the maximum, so it cannot overflow).
fn log_partition(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln()
}

/// `-log softmax(logits)[target]`, in f64.
pub fn negative_log_likelihood(logits: &[f32], target: u32) -> f64 {
    log_partition(logits) - logits[target as usize] as f64
}

/// log softmax(logits)[id], and the `k` most likely (id, logprob) pairs, most likely first
/// (ties broken by the smaller id, so the answer does not depend on the sort).
pub fn token_logprob(logits: &[f32], id: u32, k: usize) -> TokenLogprob {
    let log_z = log_partition(logits);
    let lp = |l: f32| (l as f64 - log_z) as f32;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        let better = |a: (u32, f32), b: (u32, f32)| a.1 > b.1 || (a.1 == b.1 && a.0 < b.0);
        for (i, &l) in logits.iter().enumerate() {
            let cand = (i as u32, l);
            if top.len() == k && !better(cand, top[k - 1]) {
                continue;
            }
            let at = top.partition_point(|&t| better(t, cand));
            top.insert(at, cand);
            top.truncate(k);
        }
    }
    TokenLogprob {
        logprob: lp(logits[id as usize]),
        top: top.into_iter().map(|(i, l)| (i, lp(l))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_softmax_and_orders_the_top() {
        let logits = [1.0f32, 3.0, -2.0, 3.0, 0.5];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        let r = token_logprob(&logits, 4, 3);
        assert!((r.logprob as f64 - ((0.5f64).exp() / z).ln()).abs() < 1e-6);
        let ids: Vec<u32> = r.top.iter().map(|t| t.0).collect();
        assert_eq!(ids, [1, 3, 0]);
        let total: f64 = logits
            .iter()
            .enumerate()
            .map(|(i, _)| (token_logprob(&logits, i as u32, 0).logprob as f64).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn k_larger_than_the_vocabulary_returns_everything() {
        let r = token_logprob(&[0.0, 1.0], 0, 5);
        assert_eq!(r.top.len(), 2);
        assert_eq!(r.top[0].0, 1);
    }
}
