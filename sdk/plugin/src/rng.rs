//! A small deterministic random stream for strategies. The `strategy` contract says record `i`
//! depends only on (seed, i) and the settings, so each record draws from its own stream,
//! [`SplitMix64::for_record`], never from one shared across records.

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
}
