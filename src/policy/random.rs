//! Uniform random choice among usable backends, seeded.

use serde_json::json;

use super::rng::SplitMix64;
use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug)]
pub struct Random {
    rng: SplitMix64,
}

impl Random {
    pub fn new(seed: u64) -> Random {
        Random { rng: SplitMix64::new(seed) }
    }
}

/// The `k`-th usable backend for a draw `k` below the usable count.
fn choose(rng: &mut SplitMix64, c: &Candidates) -> Option<(usize, usize)> {
    let usable = c.usable_indices().count();
    if usable == 0 {
        return None;
    }
    let k = rng.below(usable as u64) as usize;
    c.usable_indices().nth(k).map(|i| (i, k))
}

impl Policy for Random {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        choose(&mut self.rng, c).map(|(i, _)| i)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        // The generator's next draw, on a copy: the real pick makes the same one.
        let got = choose(&mut self.rng.clone(), c);
        let mut e = Explanation::new(c, "uniform random among the usable backends (seeded)");
        for (k, i) in c.usable_indices().enumerate() {
            e.score(i, "position", json!(k));
        }
        if let Some((_, k)) = got {
            e.input("draw", json!(k));
        }
        e.picked(got.map(|(i, _)| i))
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
