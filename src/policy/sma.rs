//! Latency-adaptive: the backend whose last `window` response times have the
//! lowest simple moving average. Backends without samples are tried first,
//! so every backend gets measured.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Candidates, Explanation, PickKey, Policy, lowest_score};

#[derive(Debug)]
pub struct Sma {
    window: usize,
    samples: Vec<VecDeque<f64>>,
    next: usize,
}

impl Sma {
    pub fn new(window: usize) -> Sma {
        Sma { window: window.max(1), samples: Vec::new(), next: 0 }
    }

    fn mean(&self, i: usize) -> Option<f64> {
        let s = self.samples.get(i).filter(|s| !s.is_empty())?;
        Some(s.iter().sum::<f64>() / s.len() as f64)
    }
}

impl Policy for Sma {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        let i = lowest_score(c, self.next, |i| self.mean(i))?;
        self.next = i + 1;
        Some(i)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let mut e = Explanation::new(c, "the lowest mean of the last response times; unmeasured ones first");
        for i in c.usable_indices() {
            let n = self.samples.get(i).map_or(0, VecDeque::len);
            e.score(i, "mean_us", self.mean(i).map_or(json!("unmeasured"), |m| json!(m)));
            e.score(i, "samples", json!(n));
        }
        e.picked(lowest_score(c, self.next, |i| self.mean(i)))
    }

    fn observe(&mut self, i: usize, latency: Duration, _now: Instant) {
        if self.samples.len() <= i {
            self.samples.resize(i + 1, VecDeque::new());
        }
        let s = &mut self.samples[i];
        if s.len() == self.window {
            s.pop_front();
        }
        s.push_back(latency.as_secs_f64() * 1e6);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn unsampled_first_then_lowest_mean() {
        let b = backends(3);
        let mut p = Sma::new(3);
        let now = Instant::now();
        assert_eq!(picks(&mut p, &b, &[], 3), [0, 1, 2].map(Some), "each unsampled backend once");
        for (i, l) in [(0, 20), (1, 1), (2, 5)] {
            p.observe(i, ms(l), now);
        }
        assert_eq!(picks(&mut p, &b, &[], 2), [Some(1), Some(1)]);
        assert_eq!(picks(&mut p, &b, &[1], 1), [Some(2)], "an excluded best is skipped");
    }

    #[test]
    fn the_window_forgets_old_samples() {
        let b = backends(2);
        let mut p = Sma::new(2);
        let now = Instant::now();
        p.observe(0, ms(1), now);
        p.observe(1, ms(5), now);
        for _ in 0..2 {
            p.observe(0, ms(50), now); // backend 0 got slow: after 2 samples its mean is 50
        }
        assert_eq!(picks(&mut p, &b, &[], 1), [Some(1)]);
    }
}
