//! Uniform random choice among usable backends, seeded.

use super::rng::SplitMix64;
use super::{Candidates, PickKey, Policy};

#[derive(Debug)]
pub struct Random {
    rng: SplitMix64,
}

impl Random {
    pub fn new(seed: u64) -> Random {
        Random { rng: SplitMix64::new(seed) }
    }
}

impl Policy for Random {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        let usable = c.usable_indices().count();
        if usable == 0 {
            return None;
        }
        let k = self.rng.below(usable as u64) as usize;
        c.usable_indices().nth(k)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn reproducible_with_a_seed() {
        let b = backends(4);
        assert_eq!(picks(&mut Random::new(3), &b, &[], 20), picks(&mut Random::new(3), &b, &[], 20));
        assert_ne!(picks(&mut Random::new(3), &b, &[], 20), picks(&mut Random::new(4), &b, &[], 20));
    }

    #[test]
    fn near_even_and_never_an_excluded_one() {
        let b = backends(4);
        let counts = spread(&mut Random::new(1), &b, &[2], 12_000);
        assert_eq!(counts[2], 0);
        for i in [0, 1, 3] {
            assert!((3_700..=4_300).contains(&counts[i]), "{counts:?}");
        }
    }
}
