//! Latency-adaptive: the backend with the lowest exponentially weighted
//! moving average of response times, `avg = alpha * sample + (1 - alpha) * avg`.
//! Backends without samples are tried first.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Candidates, Explanation, PickKey, Policy, lowest_score};

#[derive(Debug)]
pub struct Ewma {
    alpha: f64,
    avg: Vec<Option<f64>>,
    next: usize,
}

impl Ewma {
    pub fn new(alpha: f64) -> Ewma {
        Ewma { alpha: alpha.clamp(0.001, 1.0), avg: Vec::new(), next: 0 }
    }
}

impl Policy for Ewma {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        let i = lowest_score(c, self.next, |i| self.avg.get(i).copied().flatten())?;
        self.next = i + 1;
        Some(i)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let mut e = Explanation::new(c, "the lowest EWMA of response times; unmeasured ones first");
        for i in c.usable_indices() {
            let avg = self.avg.get(i).copied().flatten();
            e.score(i, "ewma_us", avg.map_or(json!("unmeasured"), |m| json!(m)));
        }
        e.picked(lowest_score(c, self.next, |i| self.avg.get(i).copied().flatten()))
    }

    fn observe(&mut self, i: usize, latency: Duration, _now: Instant) {
        if self.avg.len() <= i {
            self.avg.resize(i + 1, None);
        }
        let x = latency.as_secs_f64() * 1e6;
        self.avg[i] = Some(match self.avg[i] {
            None => x,
            Some(a) => self.alpha * x + (1.0 - self.alpha) * a,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn follows_the_average_and_reacts_to_a_slowdown() {
        let b = backends(2);
        let mut p = Ewma::new(0.5);
        let now = Instant::now();
        assert_eq!(picks(&mut p, &b, &[], 2), [Some(0), Some(1)]);
        p.observe(0, Duration::from_millis(2), now);
        p.observe(1, Duration::from_millis(4), now);
        assert_eq!(picks(&mut p, &b, &[], 1), [Some(0)]);
        p.observe(0, Duration::from_millis(10), now); // avg 6 ms now
        assert_eq!(p.avg[0], Some(6000.0));
        assert_eq!(picks(&mut p, &b, &[], 1), [Some(1)]);
    }
}
