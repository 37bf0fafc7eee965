//! Maglev hashing (Eisenbud et al., NSDI 2016): a lookup table of prime
//! size M filled from per-backend permutations (offset, skip), weights
//! honoured by giving a backend `weight` turns per round.
//!
//! The table is built from the listed backends. A key whose entry points at
//! an unusable backend takes the next usable entry along the table, so keys
//! of healthy backends never move when one goes down, and the down
//! backend's keys spread over the others in table proportion.
//!
//! The table depends on the seed, the table size and the set of backends
//! (addresses and weights), not on the order they are listed in: instances
//! with the same three build the same table and send a key to the same
//! backend.

use serde_json::json;

use super::bounded_load;
use super::hash::hash_bytes;
use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug)]
pub struct Maglev {
    seed: u64,
    size: u64,
    table: Vec<usize>,
    built_for: Option<u64>,
    /// Bounded loads: the balance factor, if any.
    balance: Option<f64>,
}

impl Maglev {
    pub fn new(seed: u64, size: u32) -> Maglev {
        Maglev { seed, size: u64::from(size.max(7)), table: Vec::new(), built_for: None, balance: None }
    }

    /// With bounded loads at `factor` (see `bounded_load`).
    pub fn with_balance(mut self, factor: Option<f64>) -> Maglev {
        self.balance = factor;
        self
    }

    fn rebuild(&mut self, c: &Candidates) {
        let m = self.size;
        let listed = c.listed_by_address();
        self.table = vec![usize::MAX; m as usize];
        self.built_for = Some(c.fingerprint());
        if listed.is_empty() {
            self.table.clear();
            return;
        }
        let perm: Vec<(u64, u64)> = listed
            .iter()
            .map(|&i| {
                let name = c.addr(i).to_string();
                let offset = hash_bytes(self.seed, name.as_bytes()) % m;
                let skip = hash_bytes(self.seed ^ 0x5bd1_e995, name.as_bytes()) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; listed.len()];
        let mut filled = 0u64;
        'fill: loop {
            for (k, &i) in listed.iter().enumerate() {
                for _ in 0..c.weight(i) {
                    let (offset, skip) = perm[k];
                    let mut slot = (offset + next[k] * skip) % m;
                    while self.table[slot as usize] != usize::MAX {
                        next[k] += 1;
                        slot = (offset + next[k] * skip) % m;
                    }
                    self.table[slot as usize] = i;
                    next[k] += 1;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
    }
}

impl Maglev {
    /// Table entries per backend index (built for `c` if needed): what the
    /// policy lab measures the table's balance by.
    pub fn entries(&mut self, c: &Candidates) -> Vec<usize> {
        if self.built_for != Some(c.fingerprint()) {
            self.rebuild(c);
        }
        let mut per = vec![0; c.len()];
        for &i in &self.table {
            per[i] += 1;
        }
        per
    }

    /// The key's slot in the table, and the backend the walk from it ends at.
    fn choose(&self, key: &PickKey, c: &Candidates) -> Option<(usize, usize)> {
        let m = self.table.len();
        if m == 0 {
            return None;
        }
        let start = (key.hash(self.seed) % m as u64) as usize;
        let walk = |fits: &dyn Fn(usize) -> bool| (0..m).map(|k| self.table[(start + k) % m]).find(|&i| fits(i));
        let got = match self.balance {
            Some(f) => walk(&bounded_load::under_cap(c, f)).or_else(|| walk(&|i| c.usable(i))),
            None => walk(&|i| c.usable(i)),
        };
        got.map(|i| (start, i))
    }
}

impl Policy for Maglev {
    fn pick(&mut self, key: &PickKey, c: &Candidates) -> Option<usize> {
        if self.built_for != Some(c.fingerprint()) {
            self.rebuild(c);
        }
        self.choose(key, c).map(|(_, i)| i)
    }

    fn balance_factor(&self) -> Option<f64> {
        self.balance
    }

    fn explain(&mut self, key: &PickKey, c: &Candidates) -> Explanation {
        if self.built_for != Some(c.fingerprint()) {
            self.rebuild(c);
        }
        let got = self.choose(key, c);
        let mut e =
            Explanation::new(c, "the backend in the key's Maglev slot, else the next usable slot along the table");
        let m = self.table.len();
        e.input("table_size", json!(m));
        if m > 0 {
            let start = (key.hash(self.seed) % m as u64) as usize;
            e.input("slot", json!(start)).input("slot_owner", json!(c.addr(self.table[start]).to_string()));
            // Each backend's first slot from the key's on: the order of the walk.
            let listed = (0..c.len()).filter(|&i| c.listed(i)).count();
            let mut seen: Vec<usize> = Vec::new();
            for k in 0..m {
                let i = self.table[(start + k) % m];
                if !seen.contains(&i) {
                    e.score(i, "first_slot", json!((start + k) % m));
                    e.score(i, "walk_order", json!(seen.len()));
                    seen.push(i);
                    if seen.len() == listed {
                        break;
                    }
                }
            }
        }
        let pick = got.map(|(_, i)| i);
        if let Some(f) = self.balance.filter(|&f| pick.is_some_and(|p| bounded_load::under_cap(c, f)(p))) {
            bounded_load::explain(&mut e, c, f);
        }
        e.picked(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::policy::rng::SplitMix64;

    #[test]
    fn table_shares_are_even_and_keys_spread_within_10_percent() {
        let b = backends(3);
        let mut p = Maglev::new(0, 65_537);
        let counts = spread(&mut p, &b, &[], 10_000);
        assert!(counts.iter().all(|&n| (3_000..=3_667).contains(&n)), "{counts:?}");
        let per = p.entries(&Candidates::new(&b, &[]));
        // Maglev fills the table within one entry per backend of even.
        assert!(per.iter().all(|&n| n.abs_diff(65_537 / 3) <= 1), "{per:?}");
    }

    #[test]
    fn healthy_keys_stay_when_one_goes_down() {
        let b = backends(5);
        let mut p = Maglev::new(0, 65_537);
        let mut rng = SplitMix64::new(8);
        let keys: Vec<u64> = (0..5_000).map(|_| rng.next_u64()).collect();
        let before: Vec<_> = keys.iter().map(|&k| p.pick(&hkey(k), &Candidates::new(&b, &[])).unwrap()).collect();
        let after: Vec<_> = keys.iter().map(|&k| p.pick(&hkey(k), &Candidates::new(&b, &[3])).unwrap()).collect();
        for (x, y) in before.iter().zip(&after) {
            if *x != 3 {
                assert_eq!(x, y);
            }
        }
    }

    #[test]
    fn weights_are_honoured_in_the_table() {
        let b = weighted(&[1, 2]);
        let mut p = Maglev::new(0, 65_537);
        p.pick(&hkey(1), &Candidates::new(&b, &[]));
        let heavy = p.table.iter().filter(|&&i| i == 1).count() as f64 / 65_537.0;
        assert!((heavy - 2.0 / 3.0).abs() < 0.01, "{heavy}");
    }
}
