//! Strict rotation over the usable backends.
//!
//! The position is a [`Rotation`] shared by every worker's copy of the
//! frontend, so the rotation is global, not per worker thread.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::{Candidates, Explanation, PickKey, Policy, Rotation};

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: Rotation,
}

impl RoundRobin {
    fn start(&self, c: &Candidates) -> usize {
        if c.is_empty() { 0 } else { self.next.position.load(Ordering::Relaxed) % c.len() }
    }
}

impl Policy for RoundRobin {
    fn share_rotation(&mut self, r: Rotation) {
        self.next = r;
    }

    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        // Two workers picking at the same moment may take one backend
        // each from the same position: the rotation stays even overall.
        let i = c.next_usable_from(self.start(c))?;
        self.next.position.store(i + 1, Ordering::Relaxed);
        Some(i)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let start = self.start(c);
        let mut e = Explanation::new(c, "the first usable backend in rotation order from the turn");
        for i in c.usable_indices() {
            e.score(i, "turn", json!((i + c.len() - start) % c.len()));
        }
        e.picked(c.next_usable_from(start))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn rotates_strictly() {
        let b = backends(3);
        let got = picks(&mut RoundRobin::default(), &b, &[], 7);
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0].map(Some));
    }

    #[test]
    fn skips_excluded_and_keeps_order() {
        let b = backends(3);
        let got = picks(&mut RoundRobin::default(), &b, &[1], 4);
        assert_eq!(got, [0, 2, 0, 2].map(Some));
    }

    #[test]
    fn none_when_nothing_usable() {
        assert_eq!(picks(&mut RoundRobin::default(), &backends(0), &[], 1), [None]);
        assert_eq!(picks(&mut RoundRobin::default(), &backends(2), &[0, 1], 1), [None]);
    }
}
