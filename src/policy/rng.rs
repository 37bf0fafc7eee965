//! A small seeded generator (splitmix64) for the random policies: the same
//! `--seed` gives the same sequence of picks on every run.

#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        super::hash::mix64(self.state)
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift; the bias for
    /// the small n used here is below 2^-50.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_in_range() {
        let a: Vec<u64> = (0..5).scan(SplitMix64::new(7), |r, _| Some(r.below(10))).collect();
        let b: Vec<u64> = (0..5).scan(SplitMix64::new(7), |r, _| Some(r.below(10))).collect();
        assert_eq!(a, b);
        let mut r = SplitMix64::new(1);
        assert!((0..10_000).all(|_| r.below(3) < 3));
        assert!((0..10_000).all(|_| (0.0..1.0).contains(&r.unit())));
    }
}
