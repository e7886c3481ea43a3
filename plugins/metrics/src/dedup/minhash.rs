//! Shingles, MinHash signatures and Jaccard similarity, with datatrove's parameters: word
//! n-gram shingles hashed with 64-bit xxHash (seed 0) of the words joined by a space, and
//! permutations `(a * x + b) mod p` with the Mersenne prime `p = 2^61 - 1`, `a` in `[1, p)`,
//! `b` in `[0, p)`.
//!
//! Deliberate differences: the product is taken in 128 bits, so the permutation is the exact
//! universal hash (datatrove's numpy `uint64` product wraps at 2^64 before the modulus); and the
//! `a`, `b` parameters come from a SplitMix64 stream of the seed rather than numpy's
//! `RandomState`, so signatures are not bit-compatible with datatrove's (the statistics are the
//! same).

use xxhash_rust::xxh64::xxh64;

const MERSENNE_PRIME: u64 = (1 << 61) - 1;

/// The sorted, de-duplicated hashes of a text's word `size`-grams. A text of fewer words is one
/// shingle (all its words); a text of no words has none.
pub fn shingles(words: &[String], size: usize) -> Vec<u64> {
    let size = size.max(1);
    let mut hashes: Vec<u64> = if words.len() < size {
        if words.is_empty() {
            Vec::new()
        } else {
            vec![hash_words(words)]
        }
    } else {
        words.windows(size).map(hash_words).collect()
    };
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

fn hash_words(words: &[String]) -> u64 {
    xxh64(words.join(" ").as_bytes(), 0)
}

/// Jaccard similarity of two sorted, de-duplicated shingle sets: |A ∩ B| / |A ∪ B|. Two empty
/// sets have nothing in common to measure, so their similarity is 0 (texts without words only
/// meet as exact duplicates).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    }
}

/// The `a`, `b` pairs of the MinHash permutations.
#[derive(Clone, Debug)]
pub struct Permutations {
    params: Vec<(u64, u64)>,
}

impl Permutations {
    /// `count` permutations drawn from `seed`.
    pub fn new(count: usize, seed: u64) -> Permutations {
        let mut state = seed;
        let params = (0..count)
            .map(|_| {
                let a = 1 + below(&mut state, MERSENNE_PRIME - 1);
                let b = below(&mut state, MERSENNE_PRIME);
                (a, b)
            })
            .collect();
        Permutations { params }
    }

    /// The MinHash signature of a non-empty shingle set: for each permutation, the smallest
    /// permuted shingle.
    pub fn signature(&self, shingles: &[u64]) -> Vec<u64> {
        self.params
            .iter()
            .map(|&(a, b)| {
                shingles
                    .iter()
                    .map(|&x| permute(a, b, x))
                    .min()
                    .unwrap_or(u64::MAX)
            })
            .collect()
    }
}

/// `(a * x + b) mod (2^61 - 1)`, reduced with the Mersenne identity `2^61 ≡ 1` instead of a
/// 128-bit division (the signature loop is the plugin's hot spot).
fn permute(a: u64, b: u64, x: u64) -> u64 {
    let v = u128::from(a) * u128::from(x) + u128::from(b);
    let p = u128::from(MERSENNE_PRIME);
    // v < 2^125 + 2^61: one fold leaves < 2^65, a second < 2^61 + 16, one subtraction finishes.
    let folded = (v & p) + (v >> 61);
    let folded = (folded & p) + (folded >> 61);
    let reduced = if folded >= p { folded - p } else { folded };
    reduced as u64
}

/// A draw in `[0, bound)` from a SplitMix64 stream. For bounds near 2^61 the modulo favours a
/// handful of values by one part in 2^61: irrelevant for hash parameters.
fn below(state: &mut u64, bound: u64) -> u64 {
    splitmix64(state) % bound
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn shingles_are_word_windows() {
        let w = words("a b c d e f");
        assert_eq!(shingles(&w, 5).len(), 2);
        assert_eq!(shingles(&w, 5)[..], {
            let mut v = vec![xxh64(b"a b c d e", 0), xxh64(b"b c d e f", 0)];
            v.sort_unstable();
            v
        });
        // Repeated windows count once.
        assert_eq!(shingles(&words("x y x y x y"), 2).len(), 2);
    }

    #[test]
    fn a_short_text_is_one_shingle() {
        assert_eq!(shingles(&words("two words"), 5), [xxh64(b"two words", 0)]);
        assert!(shingles(&[], 5).is_empty());
    }

    #[test]
    fn jaccard_edge_cases() {
        assert_eq!(jaccard(&[], &[]), 0.0);
        assert_eq!(jaccard(&[1, 2], &[]), 0.0);
        assert_eq!(jaccard(&[1, 2, 3], &[1, 2, 3]), 1.0);
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        // 4 of 5 in common: exactly the default threshold, which counts as a duplicate.
        assert_eq!(jaccard(&[1, 2, 3, 4, 5], &[1, 2, 3, 4]), 0.8);
    }

    #[test]
    fn permute_matches_the_plain_modulus() {
        let p = u128::from(MERSENNE_PRIME);
        for (a, b, x) in [
            (1, 0, 0),
            (MERSENNE_PRIME - 1, MERSENNE_PRIME - 1, u64::MAX),
            (123_456_789, 987_654_321, 0xDEAD_BEEF_CAFE_F00D),
            (MERSENNE_PRIME - 1, 0, MERSENNE_PRIME),
        ] {
            let expected = (u128::from(a) * u128::from(x) + u128::from(b)) % p;
            assert_eq!(u128::from(permute(a, b, x)), expected, "{a} {b} {x}");
        }
    }

    #[test]
    fn signatures_are_deterministic_and_seeded() {
        let set = shingles(&words("the quick brown fox jumps over the lazy dog"), 5);
        let one = Permutations::new(16, 1);
        assert_eq!(
            one.signature(&set),
            Permutations::new(16, 1).signature(&set)
        );
        assert_ne!(
            one.signature(&set),
            Permutations::new(16, 2).signature(&set)
        );
        assert!(
            one.params
                .iter()
                .all(|&(a, b)| (1..MERSENNE_PRIME).contains(&a) && b < MERSENNE_PRIME)
        );
    }
}
