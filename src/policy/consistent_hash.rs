//! Consistent hashing on a ring with virtual nodes.
//!
//! Default: each listed backend gets `vnodes x weight` points at 64-bit
//! positions (640 per unit of weight: nginx's ketama uses 160, which the
//! policy lab measured at up to ±18% off even for 3 backends), and a key
//! goes to the first point clockwise from its hash whose backend is usable.
//! A backend that goes down or leaves moves only the keys it owned.
//!
//! `ring_slots = Some(n)` reproduces the classic teaching ring: n slots,
//! each virtual node hashed to a slot with linear probing on collision, keys
//! taken modulo n. With 512 slots and 9 nodes per backend the arcs are few
//! and uneven, which is the point of showing it.

use serde_json::json;

use super::bounded_load;
use super::explain::hex;
use super::hash::hash_bytes;
use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug)]
pub struct ConsistentHash {
    seed: u64,
    vnodes: u32,
    slots: Option<u32>,
    /// (position, backend index), sorted by position.
    ring: Vec<(u64, usize)>,
    built_for: Option<u64>,
    /// Bounded loads: the balance factor, if any.
    balance: Option<f64>,
}

impl ConsistentHash {
    pub fn new(seed: u64, vnodes: u32, slots: Option<u32>) -> ConsistentHash {
        ConsistentHash { seed, vnodes: vnodes.max(1), slots, ring: Vec::new(), built_for: None, balance: None }
    }

    /// With bounded loads at `factor` (see `bounded_load`).
    pub fn with_balance(mut self, factor: Option<f64>) -> ConsistentHash {
        self.balance = factor;
        self
    }

    fn point(&self, c: &Candidates, i: usize, v: u32) -> u64 {
        hash_bytes(self.seed, format!("{}-{v}", c.addr(i)).as_bytes())
    }

    fn rebuild(&mut self, c: &Candidates) {
        self.ring.clear();
        match self.slots {
            None => {
                for i in c.listed_by_address() {
                    for v in 0..self.vnodes * c.weight(i) {
                        self.ring.push((self.point(c, i, v), i));
                    }
                }
            }
            Some(n) => {
                let n = u64::from(n.max(1));
                let mut taken = vec![false; n as usize];
                for i in c.listed_by_address() {
                    for v in 0..self.vnodes * c.weight(i) {
                        let mut slot = self.point(c, i, v) % n;
                        let mut probes = 0;
                        while taken[slot as usize] && probes < n {
                            slot = (slot + 1) % n;
                            probes += 1;
                        }
                        if probes < n {
                            taken[slot as usize] = true;
                            self.ring.push((slot, i));
                        }
                    }
                }
            }
        }
        // Equal positions are ordered by address, not by list index.
        self.ring.sort_unstable_by_key(|&(pos, i)| (pos, c.addr(i)));
        self.built_for = Some(c.fingerprint());
    }

    /// Where `key` lands: a 64-bit position, or a slot of the bounded ring.
    fn position(&self, key: u64) -> u64 {
        match self.slots {
            None => key,
            Some(n) => key % u64::from(n.max(1)),
        }
    }

    /// Which backend owns `key` on the ring, among those `usable` allows.
    fn owner(&self, key: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let pos = self.position(key);
        let start = self.ring.partition_point(|&(p, _)| p < pos);
        (0..self.ring.len()).map(|k| self.ring[(start + k) % self.ring.len()].1).find(|&i| usable(i))
    }

    fn choose(&self, k: u64, c: &Candidates) -> Option<usize> {
        match self.balance {
            Some(f) => self.owner(k, bounded_load::under_cap(c, f)).or_else(|| self.owner(k, |i| c.usable(i))),
            None => self.owner(k, |i| c.usable(i)),
        }
    }
}

impl ConsistentHash {
    /// The usable owner of a raw ring position (a slot, for the bounded
    /// ring): lets the policy lab feed positions from other hash functions.
    pub fn owner_at(&mut self, c: &Candidates, pos: u64) -> Option<usize> {
        if self.built_for != Some(c.fingerprint()) {
            self.rebuild(c);
        }
        let start = self.ring.partition_point(|&(p, _)| p < pos);
        let n = self.ring.len();
        (0..n).map(|k| self.ring[(start + k) % n].1).find(|&i| c.usable(i))
    }
}

impl Policy for ConsistentHash {
    fn pick(&mut self, key: &PickKey, c: &Candidates) -> Option<usize> {
        if self.built_for != Some(c.fingerprint()) {
            self.rebuild(c);
        }
        self.choose(key.hash(self.seed), c)
    }

    fn balance_factor(&self) -> Option<f64> {
        self.balance
    }

    fn explain(&mut self, key: &PickKey, c: &Candidates) -> Explanation {
        if self.built_for != Some(c.fingerprint()) {
            self.rebuild(c);
        }
        let k = key.hash(self.seed);
        let pick = self.choose(k, c);
        let mut e = Explanation::new(c, "the first backend clockwise from the key's ring position");
        let pos = self.position(k);
        e.input("key_position", hex(pos)).input("ring_points", json!(self.ring.len()));
        // Each backend's first point clockwise from the key: the order of the walk.
        let n = self.ring.len();
        let start = self.ring.partition_point(|&(p, _)| p < pos);
        let listed = (0..c.len()).filter(|&i| c.listed(i)).count();
        let mut seen: Vec<usize> = Vec::new();
        for step in 0..n {
            let (point, i) = self.ring[(start + step) % n];
            if seen.contains(&i) {
                continue;
            }
            if step == 0 {
                e.input("owner", json!(c.addr(i).to_string()));
            }
            e.score(i, "walk_order", json!(seen.len()));
            e.score(i, "point", hex(point));
            seen.push(i);
            if seen.len() == listed {
                break;
            }
        }
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

    fn deviation(counts: &[usize]) -> f64 {
        let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
        counts.iter().map(|&c| (c as f64 / mean - 1.0).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn default_ring_spreads_within_10_percent_for_3_backends() {
        let b = backends(3);
        let vnodes = crate::policy::PolicyParams::default().vnodes;
        let counts = spread(&mut ConsistentHash::new(0, vnodes, None), &b, &[], 10_000);
        assert!(deviation(&counts) < 0.10, "{counts:?}");
    }

    #[test]
    fn classic_512_slot_9_node_ring_is_visibly_less_even() {
        let b = backends(3);
        let fine = deviation(&spread(&mut ConsistentHash::new(0, 160, None), &b, &[], 10_000));
        let coarse = deviation(&spread(&mut ConsistentHash::new(0, 9, Some(512)), &b, &[], 10_000));
        assert!(coarse > fine, "coarse {coarse} fine {fine}");
        // Even the coarse ring with a proper hash is nowhere near 96% on one backend.
        let counts = spread(&mut ConsistentHash::new(0, 9, Some(512)), &b, &[], 10_000);
        assert!(counts.iter().all(|&c| c < 6_000), "{counts:?}");
    }

    #[test]
    fn a_down_backend_moves_only_its_own_keys() {
        let b = backends(4);
        let mut p = ConsistentHash::new(0, 160, None);
        let mut rng = SplitMix64::new(5);
        let keys: Vec<u64> = (0..5_000).map(|_| rng.next_u64()).collect();
        let before: Vec<_> = keys.iter().map(|&k| p.pick(&hkey(k), &Candidates::new(&b, &[])).unwrap()).collect();
        let after: Vec<_> = keys.iter().map(|&k| p.pick(&hkey(k), &Candidates::new(&b, &[2])).unwrap()).collect();
        for (x, y) in before.iter().zip(&after) {
            if *x != 2 {
                assert_eq!(x, y, "a key of a healthy backend moved");
            } else {
                assert_ne!(*y, 2);
            }
        }
    }

    #[test]
    fn weights_scale_the_share() {
        let b = weighted(&[1, 3]);
        let counts = spread(&mut ConsistentHash::new(0, 160, None), &b, &[], 20_000);
        let share = counts[1] as f64 / 20_000.0;
        assert!((0.70..0.80).contains(&share), "{counts:?}");
    }
}
