//! Smooth weighted round robin (nginx's): each pick adds every usable
//! backend's weight to its running score, takes the highest, and subtracts
//! the total from the winner. Weights 5:1:1 give a a b a c a a, not a a a a a b c.

use serde_json::json;

use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    current: Vec<i64>,
}

impl WeightedRoundRobin {
    /// Backend `i`'s running score once this pick added its weight.
    fn raised(&self, c: &Candidates, i: usize) -> i64 {
        self.current.get(i).copied().unwrap_or(0) + i64::from(c.weight(i))
    }

    /// The highest raised score (the first seen on ties).
    fn choose(&self, c: &Candidates) -> Option<usize> {
        c.usable_indices().fold(None, |best, i| match best {
            Some(b) if self.raised(c, i) <= self.raised(c, b) => Some(b),
            _ => Some(i),
        })
    }
}

impl Policy for WeightedRoundRobin {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        if self.current.len() != c.len() {
            self.current.resize(c.len(), 0);
        }
        let b = self.choose(c)?;
        let mut total = 0i64;
        for i in c.usable_indices() {
            let w = i64::from(c.weight(i));
            self.current[i] += w;
            total += w;
        }
        self.current[b] -= total;
        Some(b)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let mut e = Explanation::new(c, "smooth weighted round robin: the highest running score after adding weights");
        for i in c.usable_indices() {
            e.score(i, "weight", json!(c.weight(i)));
            e.score(i, "score", json!(self.raised(c, i)));
        }
        e.picked(self.choose(c))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn smooth_sequence_for_5_1_1() {
        let b = weighted(&[5, 1, 1]);
        let got = picks(&mut WeightedRoundRobin::default(), &b, &[], 7);
        assert_eq!(got, [0, 0, 1, 0, 2, 0, 0].map(Some));
    }

    #[test]
    fn equal_weights_rotate_and_exclusion_is_respected() {
        let b = weighted(&[1, 1, 1]);
        assert_eq!(picks(&mut WeightedRoundRobin::default(), &b, &[], 6), [0, 1, 2, 0, 1, 2].map(Some));
        assert_eq!(picks(&mut WeightedRoundRobin::default(), &b, &[0, 1, 2], 1), [None]);
    }

    #[test]
    fn shares_follow_weights_exactly_over_a_cycle() {
        let b = weighted(&[3, 2, 1]);
        let got = picks(&mut WeightedRoundRobin::default(), &b, &[], 600);
        let count = |i| got.iter().filter(|&&g| g == Some(i)).count();
        assert_eq!((count(0), count(1), count(2)), (300, 200, 100));
    }
}
