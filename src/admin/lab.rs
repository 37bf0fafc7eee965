//! The policy lab on live traffic: per frontend, the share each backend got
//! from the real policy and would have got from each shadow, how often a
//! shadow agreed, its latency predicted from the response times observed per
//! backend, and fairness (Jain's index, max/mean) of each.
//!
//! The prediction mixes the backends' observed response-time distributions
//! in the shadow's shares. It assumes a backend answers as it did, whatever
//! load the shadow would have sent it, so it ranks policies by where they
//! send traffic, not by the queueing they would cause. A backend the shadow
//! would use but the real policy never measured is left out of the mix, and
//! its share is reported as `unmeasured_share`.

use serde_json::{Value, json};

use crate::backend::Backend;

/// One policy's decisions on one frontend.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareView {
    pub policy: &'static str,
    pub decisions: u64,
    /// Shadows: decisions equal to the real policy's. `None` for the real policy.
    pub agreed: Option<u64>,
    /// (backend address, picks) for every listed backend, in list order.
    pub picks: Vec<(String, u64)>,
    pub fairness: Fairness,
    pub predicted: Option<Predicted>,
}

/// How even the picks were, weight for weight, across the listed backends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fairness {
    /// Jain's index (sum x)^2 / (n sum x^2) of x = picks / weight: 1 is even,
    /// 1/n is one backend taking everything. `None` before any pick.
    pub jain: Option<f64>,
    /// The most loaded backend's x over the mean x.
    pub max_over_mean: Option<f64>,
}

/// Latency predicted from the observed per-backend response times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predicted {
    pub mean_us: f64,
    pub p99_us: u64,
    /// Share of the picks on backends without any measured response.
    pub unmeasured_share: f64,
}

/// Jain's index and max/mean of `loads` (already divided by weight).
pub fn fairness(loads: &[f64]) -> Fairness {
    let n = loads.len() as f64;
    let sum: f64 = loads.iter().sum();
    if loads.is_empty() || sum <= 0.0 {
        return Fairness { jain: None, max_over_mean: None };
    }
    let squares: f64 = loads.iter().map(|x| x * x).sum();
    let max = loads.iter().copied().fold(0.0, f64::max);
    Fairness { jain: Some(sum * sum / (n * squares)), max_over_mean: Some(max / (sum / n)) }
}

/// The view of `picks` (per backend index) over `backends`.
pub fn share_view(
    policy: &'static str,
    (decisions, agreed): (u64, Option<u64>),
    picks: &[u64],
    backends: &[Backend],
) -> ShareView {
    let listed: Vec<usize> = (0..backends.len()).filter(|&i| !backends[i].removed).collect();
    let got = |i: usize| picks.get(i).copied().unwrap_or(0);
    let loads: Vec<f64> = listed.iter().map(|&i| got(i) as f64 / f64::from(backends[i].weight.max(1))).collect();
    ShareView {
        policy,
        decisions,
        agreed,
        picks: listed.iter().map(|&i| (backends[i].addr.to_string(), got(i))).collect(),
        fairness: fairness(&loads),
        predicted: predict(&listed.iter().map(|&i| (got(i), &backends[i])).collect::<Vec<_>>()),
    }
}

/// Mix the backends' observed response times in proportion to `picks`.
fn predict(picks: &[(u64, &Backend)]) -> Option<Predicted> {
    let total: u64 = picks.iter().map(|(n, _)| n).sum();
    let measured: Vec<(f64, &hdrhistogram::Histogram<u64>)> =
        picks.iter().filter(|(n, _)| *n > 0).filter_map(|(n, b)| Some((*n as f64, b.latency_histogram()?))).collect();
    let weight: f64 = measured.iter().map(|(w, _)| w).sum();
    if total == 0 || weight == 0.0 {
        return None;
    }
    let mean_us = measured.iter().map(|(w, h)| w * h.mean()).sum::<f64>() / weight;
    // The mixture's p99: the smallest value below which 99% of the mix lies.
    let below = |v: u64| measured.iter().map(|(w, h)| w * h.quantile_below(v)).sum::<f64>() / weight;
    let (mut lo, mut hi) = (0u64, measured.iter().map(|(_, h)| h.max()).max().unwrap_or(0));
    for _ in 0..64 {
        if lo >= hi {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        if below(mid) >= 0.99 { hi = mid } else { lo = mid + 1 }
    }
    Some(Predicted { mean_us, p99_us: hi, unmeasured_share: 1.0 - weight / total as f64 })
}

impl ShareView {
    pub fn to_json(&self) -> Value {
        let share: serde_json::Map<String, Value> = self
            .picks
            .iter()
            .map(|(a, n)| {
                let s = if self.decisions == 0 { 0.0 } else { *n as f64 / self.decisions as f64 };
                (a.clone(), json!(s))
            })
            .collect();
        let picks: serde_json::Map<String, Value> = self.picks.iter().map(|(a, n)| (a.clone(), json!(n))).collect();
        json!({
            "policy": self.policy,
            "decisions": self.decisions,
            "agreed": self.agreed,
            "agreement": self.agreed.map(|a| if self.decisions == 0 { 0.0 } else { a as f64 / self.decisions as f64 }),
            "picks": picks,
            "share": share,
            "fairness": {"jain": self.fairness.jain, "max_over_mean": self.fairness.max_over_mean},
            "predicted_latency_us": self.predicted.map(|p| json!({"mean": p.mean_us, "p99": p.p99_us,
                                                                  "unmeasured_share": p.unmeasured_share})),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn jain_is_one_when_even_and_one_over_n_when_one_takes_all() {
        assert_eq!(fairness(&[5.0, 5.0, 5.0]), Fairness { jain: Some(1.0), max_over_mean: Some(1.0) });
        let f = fairness(&[9.0, 0.0, 0.0]);
        assert!((f.jain.unwrap() - 1.0 / 3.0).abs() < 1e-12 && f.max_over_mean == Some(3.0), "{f:?}");
        assert_eq!(fairness(&[0.0, 0.0]).jain, None);
    }

    #[test]
    fn prediction_mixes_observed_latencies_in_the_shares() {
        let mut b: Vec<Backend> =
            (0..3).map(|i| Backend::new(format!("127.0.0.1:{}", 8001 + i).parse().unwrap())).collect();
        for _ in 0..100 {
            b[0].record_latency(Duration::from_millis(1));
            b[1].record_latency(Duration::from_millis(100));
        }
        b[2].weight = 2;
        // All on the fast one: 1 ms; three quarters fast: mean about 25.75 ms, p99 at the slow one.
        let fast = share_view("x", (10, Some(4)), &[10, 0, 0], &b);
        let p = fast.predicted.unwrap();
        assert!((p.mean_us - 1000.0).abs() < 20.0 && p.unmeasured_share == 0.0, "{p:?}");
        let mixed = share_view("x", (8, None), &[6, 2, 0], &b).predicted.unwrap();
        assert!((mixed.mean_us - 25_750.0).abs() < 600.0, "{mixed:?}");
        assert!((99_000..=101_000).contains(&mixed.p99_us), "{mixed:?}");
        // A share on the unmeasured backend is reported, not guessed.
        let some = share_view("x", (4, None), &[2, 0, 2], &b);
        assert_eq!(some.predicted.unwrap().unmeasured_share, 0.5);
        // Weight 2 with twice the picks is even.
        assert_eq!(share_view("x", (8, None), &[2, 2, 4], &b).fairness.jain, Some(1.0));
        assert_eq!(share_view("x", (0, None), &[], &b).predicted, None);
    }
}
