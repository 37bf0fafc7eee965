//! The backend with the fewest open sessions; ties go round in rotation so a
//! quiet pool does not send everything to the first backend.

use serde_json::json;

use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug, Default)]
pub struct FewestConnections {
    next: usize,
}

impl FewestConnections {
    fn choose(&self, c: &Candidates) -> Option<usize> {
        let n = c.len();
        let start = if n == 0 { 0 } else { self.next % n };
        // Scan from the rotation point; strict `<` keeps the first minimum seen.
        (0..n).map(|k| (start + k) % n).filter(|&i| c.usable(i)).fold(None, |best: Option<usize>, i| match best {
            Some(b) if c.active(b) <= c.active(i) => Some(b),
            _ => Some(i),
        })
    }
}

impl Policy for FewestConnections {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        let best = self.choose(c)?;
        self.next = best + 1;
        Some(best)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let mut e = Explanation::new(c, "fewest in flight; ties go to the first in rotation order");
        for i in c.usable_indices() {
            e.score(i, "in_flight", json!(c.active(i)));
        }
        if !c.is_empty() {
            e.input("rotation_from", json!(c.addr(self.next % c.len()).to_string()));
        }
        e.picked(self.choose(c))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn ties_rotate() {
        let b = backends(3);
        let got = picks(&mut FewestConnections::default(), &b, &[], 6);
        assert_eq!(got, [0, 1, 2, 0, 1, 2].map(Some));
    }

    /// `n` claims on each backend, in order: the active counts.
    fn load(b: &[crate::backend::Backend], n: &[u64]) -> Vec<crate::backend::Claim> {
        b.iter().zip(n).flat_map(|(b, &k)| (0..k).map(|_| b.claim())).collect()
    }

    #[test]
    fn prefers_fewest_active() {
        let b = backends(3);
        let mut held = load(&b, &[5, 2, 2]);
        let mut p = FewestConnections::default();
        // 1 and 2 tie; rotation starts at 0 so 1 is seen first, then 2.
        assert_eq!(picks(&mut p, &b, &[], 2), [Some(1), Some(2)]);
        held.pop(); // one of backend 2's ends
        assert_eq!(picks(&mut p, &b, &[], 1), [Some(2)]);
    }

    #[test]
    fn respects_exclusion() {
        let b = backends(3);
        let _held = load(&b, &[0, 9, 9]);
        assert_eq!(picks(&mut FewestConnections::default(), &b, &[0], 1), [Some(1)]);
        assert_eq!(picks(&mut FewestConnections::default(), &b, &[0, 1, 2], 1), [None]);
    }
}
