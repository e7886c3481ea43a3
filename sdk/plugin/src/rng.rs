//! A small deterministic random stream for strategies. The `strategy` contract says record `i`
//! depends only on (seed, i) and the settings, so each record draws from its own stream,
//! [`SplitMix64::for_record`], never from one shared across records. A strategy that retries
//! unusable model output draws attempt `a` of record `i` from [`SplitMix64::for_attempt`], so a
//! resumed job retries exactly as the first run did.

/// SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit word of state, full period, and good
/// enough statistics for picking prompt variables. Not for cryptography.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 output function: a bijective mix of all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The stream of record `index` of a dataset seeded with `seed`. Mixing the index before
    /// combining keeps neighbouring records' streams unrelated.
    pub fn for_record(seed: u64, index: u64) -> SplitMix64 {
        SplitMix64::new(mix(seed ^ mix(index.wrapping_add(GAMMA))))
    }

    /// The stream of attempt `attempt` of record `index` (retries of an unusable output).
    /// Attempt 0 is [`for_record`](Self::for_record)'s stream, so a strategy that succeeds at
    /// once draws what a strategy without retries would; later attempts get unrelated streams.
    pub fn for_attempt(seed: u64, index: u64, attempt: u32) -> SplitMix64 {
        let record = SplitMix64::for_record(seed, index);
        if attempt == 0 {
            return record;
        }
        // A second mixing level keyed by the attempt: (seed, index, attempt) triples do not
        // collide with the (seed, index) pairs of attempt 0 short of a 64-bit coincidence.
        let key = mix(u64::from(attempt).wrapping_mul(GAMMA) ^ 0x5851_f42d_4c95_7f2d);
        SplitMix64::new(mix(record.state ^ key))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A value in `0..n` (`n > 0`), by multiply-shift: the bias is below `n / 2^64`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (the published reference values).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn records_are_independent_of_each_other() {
        let a = SplitMix64::for_record(7, 3).next_u64();
        assert_eq!(a, SplitMix64::for_record(7, 3).next_u64());
        assert_ne!(a, SplitMix64::for_record(7, 4).next_u64());
        assert_ne!(a, SplitMix64::for_record(8, 3).next_u64());
        let mut rng = SplitMix64::new(1);
        assert!((0..1000).all(|_| rng.below(3) < 3));
    }

    #[test]
    fn attempts_have_their_own_streams() {
        let first = |s, i, a| SplitMix64::for_attempt(s, i, a).next_u64();
        assert_eq!(first(7, 3, 0), SplitMix64::for_record(7, 3).next_u64());
        assert_eq!(first(7, 3, 2), first(7, 3, 2));
        let mut seen = std::collections::HashSet::new();
        for index in 0..50 {
            for attempt in 0..8 {
                assert!(seen.insert(first(7, index, attempt)), "{index} {attempt}");
            }
        }
        assert_ne!(first(7, 3, 1), first(8, 3, 1));
    }
}
