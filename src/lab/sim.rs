//! A discrete-event run of one policy over virtual time: requests arrive
//! (at recorded times, or from a fixed number of clients that send again as
//! soon as they are answered), the policy picks among backends whose
//! in-flight counts are the simulated requests', each answer takes a time
//! drawn from the backend's latency model, and every answer is observed by
//! the policy at its virtual completion time. No network, no wall clock:
//! the same seed gives the same run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::backend::{Backend, Claim};
use crate::policy::rng::SplitMix64;
use crate::policy::{Candidates, PickKey, Policy};

/// How long backend `i` takes to answer one request.
pub trait LatencyModel {
    fn draw(&self, backend: usize, rng: &mut SplitMix64) -> Duration;
}

/// Times recorded per backend, drawn uniformly (a backend without any: the
/// times of all backends together).
pub struct Empirical {
    per_backend: Vec<Vec<Duration>>,
    all: Vec<Duration>,
}

impl Empirical {
    pub fn new(per_backend: Vec<Vec<Duration>>) -> Empirical {
        let mut all: Vec<Duration> = per_backend.iter().flatten().copied().collect();
        if all.is_empty() {
            all.push(Duration::from_millis(1));
        }
        Empirical { per_backend, all }
    }
}

impl LatencyModel for Empirical {
    fn draw(&self, backend: usize, rng: &mut SplitMix64) -> Duration {
        let from = self.per_backend.get(backend).filter(|s| !s.is_empty()).unwrap_or(&self.all);
        from[rng.below(from.len() as u64) as usize]
    }
}

/// Uniform in whole milliseconds from 0 to below a maximum per backend
/// (the delay services of tower's balance demo), but at least 1 ms: a
/// timer set for 0 ms fires on the timer's next 1 ms tick, not at once (an
/// answer in no time at all would let one backend take unbounded traffic).
pub struct UniformMs(pub Vec<u64>);

impl LatencyModel for UniformMs {
    fn draw(&self, backend: usize, rng: &mut SplitMix64) -> Duration {
        Duration::from_millis(rng.below(self.0[backend].max(1)).max(1))
    }
}

/// Where the requests come from.
pub enum Load {
    /// Each request at its time, with its key.
    Open(Vec<(Duration, PickKey)>),
    /// `clients` clients, each sending its next request the moment its last
    /// is answered, `requests` in all.
    Closed { clients: usize, requests: usize },
}

/// What one run did.
pub struct Outcome {
    /// Requests per backend.
    pub picks: Vec<u64>,
    /// Response times in microseconds.
    pub latency_us: Histogram<u64>,
    /// First request sent to last answer.
    pub makespan: Duration,
    /// Requests no backend was picked for.
    pub refused: u64,
}

/// An answer due: (time in ns, sequence, backend, latency, client).
type Due = Reverse<(u64, u64, usize, u64, usize)>;

struct Run<'a> {
    policy: &'a mut dyn Policy,
    backends: &'a [Backend],
    model: &'a dyn LatencyModel,
    rng: SplitMix64,
    t0: Instant,
    due: BinaryHeap<Due>,
    /// Claims of the requests in flight, by sequence number.
    claims: Vec<Option<Claim>>,
    out: Outcome,
}

impl Run<'_> {
    /// Send one request at `at_ns` for `key` from `client`.
    fn send(&mut self, at_ns: u64, key: &PickKey, client: usize) {
        let Some(i) = self.policy.pick(key, &Candidates::new(self.backends, &[])) else {
            self.out.refused += 1;
            return;
        };
        self.out.picks[i] += 1;
        let lat = self.model.draw(i, &mut self.rng).as_nanos() as u64;
        let seq = self.claims.len() as u64;
        self.claims.push(Some(self.backends[i].claim()));
        self.due.push(Reverse((at_ns + lat, seq, i, lat, client)));
    }

    /// The next answer: its time and client, with the policy told.
    fn answer(&mut self) -> Option<(u64, usize)> {
        let Reverse((t, seq, i, lat, client)) = self.due.pop()?;
        self.claims[seq as usize] = None;
        let l = Duration::from_nanos(lat);
        self.policy.observe(i, l, self.t0 + Duration::from_nanos(t));
        let _ = self.out.latency_us.record((lat / 1000).max(1));
        self.out.makespan = self.out.makespan.max(Duration::from_nanos(t));
        Some((t, client))
    }
}

/// Run `load` through `policy` over `backends`, answers timed by `model`.
pub fn simulate(
    policy: &mut dyn Policy,
    backends: &[Backend],
    load: &Load,
    model: &dyn LatencyModel,
    seed: u64,
) -> Outcome {
    let latency_us = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds");
    let mut run = Run {
        policy,
        backends,
        model,
        rng: SplitMix64::new(seed),
        t0: Instant::now(),
        due: BinaryHeap::new(),
        claims: Vec::new(),
        out: Outcome { picks: vec![0; backends.len()], latency_us, makespan: Duration::ZERO, refused: 0 },
    };
    match load {
        Load::Open(arrivals) => {
            for (at, key) in arrivals {
                let at_ns = at.as_nanos() as u64;
                while run.due.peek().is_some_and(|Reverse(d)| d.0 <= at_ns) {
                    run.answer();
                }
                run.send(at_ns, key, 0);
            }
            while run.answer().is_some() {}
        }
        &Load::Closed { clients, requests } => {
            let key = |c: usize| PickKey::ip(IpAddr::from([10, (c >> 16) as u8, (c >> 8) as u8, c as u8]));
            let mut sent = 0;
            for c in 0..clients.min(requests) {
                run.send(0, &key(c), c);
                sent += 1;
            }
            while let Some((t, c)) = run.answer() {
                if sent < requests {
                    run.send(t, &key(c), c);
                    sent += 1;
                }
            }
        }
    }
    run.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyKind, PolicyParams};

    fn backends(n: usize) -> Vec<Backend> {
        (0..n).map(|i| Backend::new(format!("10.0.0.{}:80", i + 1).parse().unwrap())).collect()
    }

    #[test]
    fn closed_loop_round_robin_is_exact() {
        let b = backends(2);
        let mut p = PolicyKind::RoundRobin.build(&PolicyParams::default());
        let o = simulate(p.as_mut(), &b, &Load::Closed { clients: 2, requests: 10 }, &UniformMs(vec![10, 10]), 1);
        assert_eq!(o.picks, [5, 5]);
        assert_eq!(o.latency_us.len(), 10);
        assert!(b.iter().all(|b| b.active() == 0), "every claim was given back");
    }

    #[test]
    fn same_seed_same_run_and_latency_aware_policies_avoid_the_slow_backend() {
        let b = backends(3);
        let model = UniformMs(vec![2, 2, 400]);
        let load = Load::Closed { clients: 6, requests: 3000 };
        let run = |kind: PolicyKind, seed| {
            let mut p = kind.build(&PolicyParams { seed: 3, ..PolicyParams::default() });
            let o = simulate(p.as_mut(), &b, &load, &model, seed);
            (o.picks, o.latency_us.value_at_quantile(0.99), o.makespan)
        };
        assert_eq!(run(PolicyKind::P2cPeakEwma, 9), run(PolicyKind::P2cPeakEwma, 9));
        assert_ne!(run(PolicyKind::RoundRobin, 9).2, run(PolicyKind::RoundRobin, 10).2, "the seed moves latency draws");
        let (rr, ewma) = (run(PolicyKind::RoundRobin, 9), run(PolicyKind::P2cPeakEwma, 9));
        assert_eq!(rr.0, [1000, 1000, 1000]);
        assert!(ewma.0[2] < 100, "peak EWMA sends little to the slow one: {:?}", ewma.0);
        assert!(ewma.2 < rr.2, "and finishes sooner: {:?} vs {:?}", ewma.2, rr.2);
    }

    #[test]
    fn open_arrivals_keep_their_times() {
        let b = backends(2);
        let mut p = PolicyKind::FewestConnections.build(&PolicyParams::default());
        let k = PickKey::ip(IpAddr::from([1, 2, 3, 4]));
        // Three at once, nothing answered yet: 0, 1, then 0 again (ties rotate).
        let load = Load::Open(vec![(Duration::ZERO, k), (Duration::ZERO, k), (Duration::ZERO, k)]);
        let o = simulate(p.as_mut(), &b, &load, &UniformMs(vec![5, 5]), 1);
        assert_eq!(o.picks, [2, 1]);
        assert!(o.makespan < Duration::from_millis(5));
    }
}
