//! Random choice in proportion to weight, seeded.

use serde_json::json;

use super::rng::SplitMix64;
use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug)]
pub struct WeightedRandom {
    rng: SplitMix64,
}

impl WeightedRandom {
    pub fn new(seed: u64) -> WeightedRandom {
        WeightedRandom { rng: SplitMix64::new(seed) }
    }
}

/// A draw below the usable weights' total, and the backend whose range holds it.
fn choose(rng: &mut SplitMix64, c: &Candidates) -> Option<(usize, u64)> {
    let total: u64 = c.usable_indices().map(|i| u64::from(c.weight(i))).sum();
    if total == 0 {
        return None;
    }
    let draw = rng.below(total);
    let mut r = draw;
    for i in c.usable_indices() {
        let w = u64::from(c.weight(i));
        if r < w {
            return Some((i, draw));
        }
        r -= w;
    }
    None
}

impl Policy for WeightedRandom {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        choose(&mut self.rng, c).map(|(i, _)| i)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let got = choose(&mut self.rng.clone(), c);
        let mut e = Explanation::new(c, "random in proportion to weight (seeded): the range holding the draw");
        let mut from = 0u64;
        for i in c.usable_indices() {
            let w = u64::from(c.weight(i));
            e.score(i, "weight", json!(w));
            e.score(i, "range", json!(format!("{from}..{}", from + w)));
            from += w;
        }
        if let Some((_, draw)) = got {
            e.input("draw", json!(draw));
        }
        e.picked(got.map(|(i, _)| i))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn shares_follow_weights() {
        let b = weighted(&[1, 2, 3]);
        let counts = spread(&mut WeightedRandom::new(9), &b, &[], 60_000);
        for (i, want) in [10_000, 20_000, 30_000].iter().enumerate() {
            let got = counts[i] as f64;
            assert!((got / *want as f64 - 1.0).abs() < 0.05, "{counts:?}");
        }
    }

    #[test]
    fn reproducible_and_respects_exclusion() {
        let b = weighted(&[1, 5]);
        assert_eq!(picks(&mut WeightedRandom::new(2), &b, &[], 10), picks(&mut WeightedRandom::new(2), &b, &[], 10));
        assert!(picks(&mut WeightedRandom::new(2), &b, &[1], 50).iter().all(|p| *p == Some(0)));
    }
}
