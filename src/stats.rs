//! Counters shared by backends and frontends that `/metrics` and `/stats`
//! show: answers by status code and time histograms with fixed buckets.
//!
//! Fixed Prometheus-style buckets (not the backend's HdrHistogram, which
//! feeds the percentiles of `/stats`): scrapers sum buckets across processes
//! and over time, which only works when every process uses the same bounds.

use std::collections::BTreeMap;
use std::time::Duration;

/// Upper bounds (seconds) of the time histograms: 0.1 ms to 10 s, the range
/// a proxy's response and connect times live in; slower lands in `+Inf`.
pub const TIME_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counts per time bucket (not cumulative), their sum and count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TimeHistogram {
    /// One per bound in `TIME_BUCKETS`, then one for slower.
    counts: [u64; TIME_BUCKETS.len() + 1],
    sum_micros: u64,
}

impl TimeHistogram {
    pub fn record(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = TIME_BUCKETS.iter().position(|&le| secs <= le).unwrap_or(TIME_BUCKETS.len());
        self.counts[i] += 1;
        self.sum_micros = self.sum_micros.saturating_add(d.as_micros() as u64);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn add_all(&mut self, o: &TimeHistogram) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.sum_micros = self.sum_micros.saturating_add(o.sum_micros);
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }

    /// `(le, observations <= le)` for each bound, cumulative as Prometheus
    /// wants; `+Inf` (the count) is left to the caller.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        TIME_BUCKETS.iter().zip(self.counts.iter()).scan(0u64, |acc, (&le, &n)| {
            *acc += n;
            Some((le, *acc))
        })
    }
}

/// Answers by HTTP status code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatusCounts(BTreeMap<u16, u64>);

impl StatusCounts {
    pub fn add(&mut self, code: u16) {
        *self.0.entry(code).or_insert(0) += 1;
    }

    pub fn add_all(&mut self, o: &StatusCounts) {
        for (c, n) in o.iter() {
            *self.0.entry(c).or_insert(0) += n;
        }
    }

    /// Codes in ascending order with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().map(|(&c, &n)| (c, n))
    }

    pub fn get(&self, code: u16) -> u64 {
        self.0.get(&code).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `{"200": n, ...}` for `/stats`.
    pub fn to_json(&self) -> serde_json::Value {
        self.iter().map(|(c, n)| (c.to_string(), serde_json::Value::from(n))).collect::<serde_json::Map<_, _>>().into()
    }
}

/// Counters of one frontend (all its clients, whatever backend served them).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FrontendStats {
    /// Client connections accepted.
    pub sessions: u64,
    /// HTTP requests whose head was read (HTTP and redirect modes).
    pub requests: u64,
    /// Bytes read from clients (heads and bodies; TCP: everything).
    pub bytes_in: u64,
    /// Bytes written to clients (heads, bodies, the proxy's own answers).
    pub bytes_out: u64,
    /// Answers that came from a backend, by status.
    pub responses: StatusCounts,
    /// Answers lbproxy made itself (400, 408, 429, 431, 502, 503, 504, redirects), by status.
    pub proxy_responses: StatusCounts,
    /// Requests (or sessions) sent again elsewhere after a failed connect, a
    /// 502/503 answer (idempotent requests), or a pooled connection the backend had closed.
    pub retries: u64,
    /// Retries not made because the retry budget was spent (HTTP).
    pub retries_budget_exhausted: u64,
    /// Request head read to response head read, through the backend.
    pub response_time: TimeHistogram,
}

impl FrontendStats {
    /// Sum of two workers' counts.
    pub fn add(&mut self, o: &FrontendStats) {
        self.sessions += o.sessions;
        self.requests += o.requests;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.responses.add_all(&o.responses);
        self.proxy_responses.add_all(&o.proxy_responses);
        self.retries += o.retries;
        self.retries_budget_exhausted += o.retries_budget_exhausted;
        self.response_time.add_all(&o.response_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounded_inclusively() {
        let mut h = TimeHistogram::default();
        h.record(Duration::from_micros(100));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(11));
        let c: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(c[0], (0.0001, 1), "100 us is in le=0.0001");
        assert_eq!(c[4], (0.0025, 1));
        assert_eq!(c[5], (0.005, 2));
        assert_eq!(c[15], (10.0, 2), "11 s only counts in +Inf");
        assert_eq!(h.count(), 3);
        assert!((h.sum_seconds() - 11.0031).abs() < 1e-9);
    }

    #[test]
    fn status_counts_render_as_a_json_object() {
        let mut s = StatusCounts::default();
        s.add(404);
        s.add(200);
        s.add(404);
        assert_eq!(s.to_json(), serde_json::json!({"200": 1, "404": 2}));
        assert_eq!((s.get(404), s.total()), (2, 3));
    }
}
