//! One client, one backend: rendezvous (highest random weight) hashing of
//! the client IP (never the port; in HTTP mode what --hash-key names)
//! against each backend's address. The usable backend with the highest
//! score wins, so:
//! - the pick depends on the seed and the set of backend addresses, not on
//!   the order they are listed in: instances with the same backends and
//!   seed send a client to the same backend;
//! - when a backend goes down or leaves, only its own clients move (each to
//!   its next-highest backend); everybody else stays.

use super::explain::hex;
use super::hash::{hash_addr, mix64};
use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug)]
pub struct IpHash {
    seed: u64,
}

impl IpHash {
    pub fn new(seed: u64) -> IpHash {
        IpHash { seed }
    }
}

impl IpHash {
    /// Backend `i`'s rendezvous score for key hash `k`.
    fn score(&self, c: &Candidates, k: u64, i: usize) -> u64 {
        mix64(k ^ hash_addr(self.seed, c.addr(i)))
    }
}

impl Policy for IpHash {
    fn pick(&mut self, key: &PickKey, c: &Candidates) -> Option<usize> {
        let k = key.hash(self.seed);
        // Ties (astronomically rare) go to the higher address, on every instance.
        c.usable_indices().max_by_key(|&i| (self.score(c, k, i), c.addr(i)))
    }

    fn explain(&mut self, key: &PickKey, c: &Candidates) -> Explanation {
        let k = key.hash(self.seed);
        let mut e = Explanation::new(c, "rendezvous hashing: the highest score of key and backend address");
        e.input("key_hash", hex(k));
        for i in c.usable_indices() {
            e.score(i, "score", hex(self.score(c, k, i)));
        }
        e.picked(self.pick(key, c))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn pick_for(p: &mut IpHash, b: &[crate::backend::Backend], ex: &[usize], octet: u8) -> Option<usize> {
        p.pick(&key(octet), &Candidates::new(b, ex))
    }

    #[test]
    fn same_ip_same_backend() {
        let b = backends(3);
        let mut p = IpHash::new(0);
        let first = pick_for(&mut p, &b, &[], 1);
        for _ in 0..10 {
            assert_eq!(pick_for(&mut p, &b, &[], 1), first);
        }
    }

    #[test]
    fn exact_mapping_for_seed_zero() {
        // Pinned so that an accidental change of the hash shows up here.
        let b = backends(3);
        let mut p = IpHash::new(0);
        let got: Vec<_> = (1..=12).map(|o| pick_for(&mut p, &b, &[], o).unwrap()).collect();
        assert_eq!(got, [1, 0, 2, 1, 2, 1, 0, 1, 0, 2, 2, 1]);
    }

    #[test]
    fn the_order_of_the_backends_does_not_matter() {
        let b = backends(5);
        let mut reversed = backends(5);
        reversed.reverse();
        let mut p = IpHash::new(7);
        for o in 1..=200 {
            let a = pick_for(&mut p, &b, &[], o).map(|i| b[i].addr);
            let r = pick_for(&mut p, &reversed, &[], o).map(|i| reversed[i].addr);
            assert_eq!(a, r, "client {o}");
        }
    }

    #[test]
    fn an_unusable_backend_moves_only_its_own_clients() {
        let b = backends(4);
        let mut p = IpHash::new(0);
        let before: Vec<_> = (1..=200).map(|o| pick_for(&mut p, &b, &[], o).unwrap()).collect();
        let after: Vec<_> = (1..=200).map(|o| pick_for(&mut p, &b, &[2], o).unwrap()).collect();
        for (o, (x, y)) in before.iter().zip(&after).enumerate() {
            if *x != 2 {
                assert_eq!(x, y, "client {} moved although its backend stayed", o + 1);
            } else {
                assert_ne!(*y, 2);
            }
        }
        assert!(before.contains(&2), "backend 2 had clients to move");
        assert_eq!(pick_for(&mut p, &b, &[0, 1, 2, 3], 1), None);
    }
}
