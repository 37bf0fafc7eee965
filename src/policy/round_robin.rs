//! Strict rotation over the usable backends.

use super::{Candidates, PickKey, Policy};

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Policy for RoundRobin {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        if c.is_empty() {
            return None;
        }
        let i = c.next_usable_from(self.next % c.len())?;
        self.next = i + 1;
        Some(i)
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
