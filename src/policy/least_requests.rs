//! The backend that has been given the fewest requests (HTTP) or sessions
//! (TCP) so far, counted by this policy's own decisions so that a burst of
//! simultaneous new connections is spread at once. Ties go in rotation.

use serde_json::json;

use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug, Default)]
pub struct LeastRequests {
    given: Vec<u64>,
    next: usize,
}

impl LeastRequests {
    fn given(&self, i: usize) -> u64 {
        self.given.get(i).copied().unwrap_or(0)
    }

    fn choose(&self, c: &Candidates) -> Option<usize> {
        let n = c.len();
        if n == 0 {
            return None;
        }
        let start = self.next % n;
        (0..n).map(|k| (start + k) % n).filter(|&i| c.usable(i)).fold(None, |best: Option<usize>, i| match best {
            Some(b) if self.given(b) <= self.given(i) => Some(b),
            _ => Some(i),
        })
    }
}

impl Policy for LeastRequests {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        if self.given.len() != c.len() {
            self.given.resize(c.len(), 0);
        }
        let best = self.choose(c)?;
        self.given[best] += 1;
        self.next = best + 1;
        Some(best)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let mut e = Explanation::new(c, "fewest requests given by this policy; ties go to the first in rotation order");
        for i in c.usable_indices() {
            e.score(i, "given", json!(self.given(i)));
        }
        e.picked(self.choose(c))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn evens_out_after_a_backend_was_unusable() {
        let b = backends(3);
        let mut p = LeastRequests::default();
        // Backend 2 unusable for 4 picks: 0 and 1 get two each.
        assert_eq!(picks(&mut p, &b, &[2], 4), [0, 1, 0, 1].map(Some));
        // Back in: it catches up before the others get more.
        assert_eq!(picks(&mut p, &b, &[], 4), [2, 2, 0, 1].map(Some));
    }
}
