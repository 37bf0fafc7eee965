//! Weighted random by measured backend speed (the classic redirect-balancer
//! setup): each backend's time to transfer `--probe-path` is measured at
//! start and every `--probe-interval`; backends are ranked slowest to
//! fastest and position k (1-based) gets weight k, so three servers share
//! 1:2:3. A backend whose probe failed gets nothing until a probe passes,
//! as long as another one passed; while no usable backend has passed (before
//! the first round, or with a wrong --probe-path) all usable ones share equally.

use std::time::Duration;

use serde_json::json;

use super::rng::SplitMix64;
use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug)]
pub struct FastestRanked {
    rng: SplitMix64,
    /// Last probe per backend: `Some(Ok(time))`, `Some(Err(()))` failed, `None` not probed.
    probes: Vec<Option<Result<Duration, ()>>>,
    /// Backends whose last probe passed, slowest first (equal times in index
    /// order). Rebuilt when a probe result arrives, not on every pick.
    ranked: Vec<usize>,
}

impl FastestRanked {
    pub fn new(seed: u64) -> FastestRanked {
        FastestRanked { rng: SplitMix64::new(seed), probes: Vec::new(), ranked: Vec::new() }
    }

    fn rerank(&mut self) {
        let mut timed: Vec<(usize, Duration)> = self
            .probes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Some(Ok(t)) => Some((i, *t)),
                _ => None,
            })
            .collect();
        timed.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        self.ranked = timed.into_iter().map(|(i, _)| i).collect();
    }

    /// Rank weights for the usable, successfully probed backends: (index, weight).
    #[cfg(test)]
    fn weights(&self, c: &Candidates) -> Vec<(usize, u64)> {
        self.ranked.iter().filter(|&&i| c.usable(i)).enumerate().map(|(k, &i)| (i, k as u64 + 1)).collect()
    }
}

impl FastestRanked {
    fn choose(&self, rng: &mut SplitMix64, c: &Candidates) -> Option<usize> {
        let ranked_usable = || self.ranked.iter().copied().filter(|&i| c.usable(i));
        let m = ranked_usable().count() as u64;
        if m == 0 {
            // No usable backend has passed a probe (none measured yet, or a
            // wrong --probe-path): share equally rather than refuse all traffic.
            let n = c.usable_indices().count() as u64;
            if n == 0 {
                return None;
            }
            return c.usable_indices().nth(rng.below(n) as usize);
        }
        // Position k (1-based, slowest first) weighs k: the total is m(m+1)/2.
        let mut r = rng.below(m * (m + 1) / 2);
        for (k, i) in ranked_usable().enumerate() {
            let w = k as u64 + 1;
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        None
    }
}

impl Policy for FastestRanked {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        let mut rng = self.rng.clone();
        let got = self.choose(&mut rng, c);
        self.rng = rng;
        got
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let mut e = Explanation::new(c, "random weighted by speed rank (slowest 1, next 2, ...) from the last probes");
        for (k, i) in self.ranked.iter().copied().filter(|&i| c.usable(i)).enumerate() {
            e.score(i, "rank_weight", json!(k + 1));
        }
        for i in c.usable_indices() {
            match self.probes.get(i).copied().flatten() {
                Some(Ok(t)) => e.score(i, "probe_ms", json!(t.as_secs_f64() * 1e3)),
                Some(Err(())) => e.score(i, "probe", json!("failed")),
                None => e.score(i, "probe", json!("none yet")),
            }
        }
        e.picked(self.choose(&mut self.rng.clone(), c))
    }

    fn wants_probes(&self) -> bool {
        true
    }

    fn probed(&mut self, i: usize, result: Option<Duration>) {
        if self.probes.len() <= i {
            self.probes.resize(i + 1, None);
        }
        self.probes[i] = Some(result.ok_or(()));
        self.rerank();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn three_servers_share_one_two_three_slowest_to_fastest() {
        let b = backends(3);
        let mut p = FastestRanked::new(4);
        p.probed(0, Some(Duration::from_millis(10))); // middle
        p.probed(1, Some(Duration::from_millis(30))); // slowest
        p.probed(2, Some(Duration::from_millis(2))); // fastest
        assert_eq!(p.weights(&Candidates::new(&b, &[])), [(1, 1), (0, 2), (2, 3)]);
        let counts = spread(&mut p, &b, &[], 60_000);
        for (i, want) in [(1, 10_000.0), (0, 20_000.0), (2, 30_000.0)] {
            assert!((counts[i] as f64 / want - 1.0).abs() < 0.05, "{counts:?}");
        }
    }

    #[test]
    fn a_failed_probe_takes_a_backend_out_until_it_passes() {
        let b = backends(2);
        let mut p = FastestRanked::new(1);
        p.probed(0, None);
        p.probed(1, Some(Duration::from_millis(5)));
        assert!(picks(&mut p, &b, &[], 50).iter().all(|x| *x == Some(1)));
        p.probed(0, Some(Duration::from_millis(1)));
        assert!(picks(&mut p, &b, &[], 50).contains(&Some(0)));
        assert_eq!(picks(&mut p, &b, &[0, 1], 1), [None]);
    }

    #[test]
    fn all_failed_falls_back_to_equal_shares() {
        let b = backends(2);
        let mut p = FastestRanked::new(3);
        p.probed(0, None);
        p.probed(1, None);
        let got = picks(&mut p, &b, &[], 40);
        assert!(got.contains(&Some(0)) && got.contains(&Some(1)));
    }

    #[test]
    fn unprobed_start_is_uniform() {
        let b = backends(3);
        let counts = spread(&mut FastestRanked::new(2), &b, &[], 9_000);
        assert!(counts.iter().all(|&c| (2_700..=3_300).contains(&c)), "{counts:?}");
    }
}
