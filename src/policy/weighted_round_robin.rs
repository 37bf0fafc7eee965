//! Smooth weighted round robin (nginx's): each pick adds every usable
//! backend's weight to its running score, takes the highest, and subtracts
//! the total from the winner. Weights 5:1:1 give a a b a c a a, not a a a a a b c.
//!
//! The scores are kept in the frontend's [`Rotation`], shared by every
//! worker's copy, so the sequence is global: the shares are exact over any
//! cycle of picks, whichever workers made them.

use std::sync::{Mutex, MutexGuard};

use serde_json::json;

use super::{Candidates, Explanation, PickKey, Policy, Rotation};

#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    scores: std::sync::Arc<Mutex<Vec<i64>>>,
}

/// Backend `i`'s running score once this pick added its weight.
fn raised(current: &[i64], c: &Candidates, i: usize) -> i64 {
    current.get(i).copied().unwrap_or(0) + i64::from(c.weight(i))
}

/// The highest raised score (the first seen on ties).
fn choose(current: &[i64], c: &Candidates) -> Option<usize> {
    c.usable_indices().fold(None, |best, i| match best {
        Some(b) if raised(current, c, i) <= raised(current, c, b) => Some(b),
        _ => Some(i),
    })
}

impl WeightedRoundRobin {
    /// The scores, held for one whole pick (a worker that panicked while
    /// holding them left numbers, not a broken invariant: keep going).
    fn scores(&self) -> MutexGuard<'_, Vec<i64>> {
        self.scores.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Policy for WeightedRoundRobin {
    fn share_rotation(&mut self, r: Rotation) {
        self.scores = r.scores;
    }

    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        let mut current = self.scores();
        if current.len() != c.len() {
            current.resize(c.len(), 0);
        }
        let b = choose(&current, c)?;
        let mut total = 0i64;
        for i in c.usable_indices() {
            let w = i64::from(c.weight(i));
            current[i] += w;
            total += w;
        }
        current[b] -= total;
        Some(b)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let current = self.scores();
        let mut e = Explanation::new(c, "smooth weighted round robin: the highest running score after adding weights");
        for i in c.usable_indices() {
            e.score(i, "weight", json!(c.weight(i)));
            e.score(i, "score", json!(raised(&current, c, i)));
        }
        e.picked(choose(&current, c))
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
    fn copies_sharing_a_rotation_make_one_sequence() {
        // Two workers' copies, picking in turn: together they give the
        // sequence one copy would, so the shares stay exact.
        let b = weighted(&[3, 1]);
        let shared = Rotation::default();
        let (mut w1, mut w2) = (WeightedRoundRobin::default(), WeightedRoundRobin::default());
        w1.share_rotation(shared.clone());
        w2.share_rotation(shared);
        let (key, c) = (key(1), Candidates::new(&b, &[]));
        let together: Vec<_> = (0..8).map(|n| if n % 3 == 0 { w1.pick(&key, &c) } else { w2.pick(&key, &c) }).collect();
        assert_eq!(together, picks(&mut WeightedRoundRobin::default(), &b, &[], 8));
    }

    #[test]
    fn shares_follow_weights_exactly_over_a_cycle() {
        let b = weighted(&[3, 2, 1]);
        let got = picks(&mut WeightedRoundRobin::default(), &b, &[], 600);
        let count = |i| got.iter().filter(|&&g| g == Some(i)).count();
        assert_eq!((count(0), count(1), count(2)), (300, 200, 100));
    }
}
