//! Power of two random choices with peak EWMA (Finagle, Linkerd): pick two
//! usable backends at random and take the one with the lower
//! `cost = latency estimate x (active + 1)`. The estimate jumps to any
//! sample above it (peak) and otherwise decays toward new samples with time
//! constant `decay`, so a backend that slows down is avoided at once and
//! forgiven gradually.

use std::time::{Duration, Instant};

use serde_json::json;

use super::rng::SplitMix64;
use super::{Candidates, Explanation, PickKey, Policy};

#[derive(Debug, Clone, Copy)]
struct Estimate {
    micros: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct P2cPeakEwma {
    rng: SplitMix64,
    decay: Duration,
    est: Vec<Option<Estimate>>,
}

impl P2cPeakEwma {
    pub fn new(seed: u64, decay: Duration) -> P2cPeakEwma {
        P2cPeakEwma { rng: SplitMix64::new(seed), decay: decay.max(Duration::from_millis(1)), est: Vec::new() }
    }

    fn cost(&self, c: &Candidates, i: usize) -> f64 {
        let latency = self.est.get(i).copied().flatten().map_or(0.0, |e| e.micros);
        latency * (c.active(i) as f64 + 1.0)
    }

    /// The two backends drawn (one when only one is usable) and the cheaper.
    fn choose(&self, rng: &mut SplitMix64, c: &Candidates) -> Option<(usize, Option<usize>)> {
        // Counted and indexed in place: no allocation on the request path.
        match c.usable_indices().count() {
            0 => None,
            1 => c.usable_indices().next().map(|i| (i, None)),
            n => {
                let a = rng.below(n as u64) as usize;
                let mut b = rng.below(n as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                let x = c.usable_indices().nth(a)?;
                let y = c.usable_indices().nth(b)?;
                Some(if self.cost(c, y) < self.cost(c, x) { (y, Some(x)) } else { (x, Some(y)) })
            }
        }
    }
}

impl Policy for P2cPeakEwma {
    fn pick(&mut self, _key: &PickKey, c: &Candidates) -> Option<usize> {
        let mut rng = self.rng.clone();
        let got = self.choose(&mut rng, c);
        self.rng = rng;
        got.map(|(i, _)| i)
    }

    fn explain(&mut self, _key: &PickKey, c: &Candidates) -> Explanation {
        let got = self.choose(&mut self.rng.clone(), c);
        let mut e = Explanation::new(c, "two drawn at random (seeded); the lower cost = peak EWMA x (in flight + 1)");
        for i in c.usable_indices() {
            let est = self.est.get(i).copied().flatten().map(|x| x.micros);
            e.score(i, "peak_ewma_us", est.map_or(json!("unmeasured"), |m| json!(m)));
            e.score(i, "in_flight", json!(c.active(i)));
            e.score(i, "cost", json!(self.cost(c, i)));
        }
        if let Some((won, other)) = got {
            let drawn: Vec<String> = [Some(won), other].into_iter().flatten().map(|i| c.addr(i).to_string()).collect();
            e.input("drawn", json!(drawn));
        }
        e.picked(got.map(|(i, _)| i))
    }

    fn observe(&mut self, i: usize, latency: Duration, now: Instant) {
        if self.est.len() <= i {
            self.est.resize(i + 1, None);
        }
        let x = latency.as_secs_f64() * 1e6;
        let next = match self.est[i] {
            Some(e) if x <= e.micros => {
                let dt = now.saturating_duration_since(e.at).as_secs_f64();
                let w = (-dt / self.decay.as_secs_f64()).exp();
                e.micros * w + x * (1.0 - w)
            }
            _ => x, // first sample, or a peak
        };
        self.est[i] = Some(Estimate { micros: next, at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn prefers_the_cheaper_of_two_and_never_the_slow_one_of_two() {
        let b = backends(2);
        let mut p = P2cPeakEwma::new(1, Duration::from_secs(10));
        let now = Instant::now();
        p.observe(0, Duration::from_millis(20), now);
        p.observe(1, Duration::from_millis(1), now);
        assert!(picks(&mut p, &b, &[], 50).iter().all(|x| *x == Some(1)));
    }

    #[test]
    fn peaks_jump_and_decay_follows_time() {
        let mut p = P2cPeakEwma::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        p.observe(0, Duration::from_millis(1), t0);
        p.observe(0, Duration::from_millis(100), t0);
        assert_eq!(p.est[0].unwrap().micros, 100_000.0, "a peak is taken at once");
        p.observe(0, Duration::from_millis(1), t0 + Duration::from_secs(10));
        let after = p.est[0].unwrap().micros;
        let expected = 100_000.0 * (-1f64).exp() + 1_000.0 * (1.0 - (-1f64).exp());
        assert!((after - expected).abs() < 1.0, "{after} vs {expected}");
    }

    #[test]
    fn load_counts_in_the_cost() {
        let b = backends(2);
        let mut p = P2cPeakEwma::new(1, Duration::from_secs(10));
        let now = Instant::now();
        p.observe(0, Duration::from_millis(2), now);
        p.observe(1, Duration::from_millis(3), now);
        let _held: Vec<_> = (0..5).map(|_| b[0].claim()).collect(); // 2 ms x 6 > 3 ms x 1
        assert!(picks(&mut p, &b, &[], 20).iter().all(|x| *x == Some(1)));
    }
}
