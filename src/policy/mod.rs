//! Balancing policies behind one small trait.
//!
//! A policy only chooses among the candidates it is shown. Which backends are
//! eligible (healthy, enabled, not already tried for this client) is decided
//! by the caller and exposed through [`Candidates::usable`], so no policy
//! re-implements that filtering. Randomness is seeded (`--seed`) and hashes
//! are fixed functions, so every run with the same inputs picks the same way.

pub mod bounded_load;
mod consistent_hash;
mod ewma;
pub mod explain;
mod fastest_ranked;
mod fewest_connections;
pub mod hash;
mod ip_hash;
mod least_requests;
mod maglev;
mod p2c_peak_ewma;
mod random;
pub mod rng;
mod round_robin;
pub mod shadow;
mod sma;
mod weighted_random;
mod weighted_round_robin;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::backend::{AdminState, Backend};

pub use consistent_hash::ConsistentHash;
pub use ewma::Ewma;
pub use explain::Explanation;
pub use fastest_ranked::FastestRanked;
pub use fewest_connections::FewestConnections;
pub use ip_hash::IpHash;
pub use least_requests::LeastRequests;
pub use maglev::Maglev;
pub use p2c_peak_ewma::P2cPeakEwma;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use shadow::{LabCounts, PickNote, Shadowed};
pub use sma::Sma;
pub use weighted_random::WeightedRandom;
pub use weighted_round_robin::WeightedRoundRobin;

/// What a policy may key on for one decision.
#[derive(Debug, Clone, Copy)]
pub struct PickKey {
    pub client_ip: IpAddr,
    /// HTTP mode with `--hash-key`: hash of the chosen header, query
    /// parameter or path. Hashing policies use it instead of the client IP.
    pub request_hash: Option<u64>,
}

impl PickKey {
    pub fn ip(client_ip: IpAddr) -> PickKey {
        PickKey { client_ip, request_hash: None }
    }

    /// The 64-bit key hashing policies place on their ring or table.
    pub fn hash(&self, seed: u64) -> u64 {
        match self.request_hash {
            Some(h) => hash::mix64(h ^ seed),
            None => match self.client_ip {
                IpAddr::V4(v4) => hash::hash_bytes(seed, &v4.octets()),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => hash::hash_bytes(seed, &v4.octets()),
                    None => hash::hash_bytes(seed, &v6.octets()),
                },
            },
        }
    }
}

/// The backends a policy may choose from for one decision.
pub struct Candidates<'a> {
    backends: &'a [Backend],
    excluded: &'a [usize],
}

impl<'a> Candidates<'a> {
    pub fn new(backends: &'a [Backend], excluded: &'a [usize]) -> Candidates<'a> {
        Candidates { backends, excluded }
    }

    pub fn len(&self) -> usize {
        self.backends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// May backend `i` receive this client?
    pub fn usable(&self, i: usize) -> bool {
        i < self.backends.len() && self.backends[i].accepts_new() && !self.excluded.contains(&i)
    }

    /// Why backend `i` may not receive this client (`None`: it may).
    pub fn why_not(&self, i: usize) -> Option<&'static str> {
        let b = self.backends.get(i)?;
        Some(if b.removed {
            "removed"
        } else if b.removing {
            "removing"
        } else if b.admin == AdminState::Draining {
            "draining"
        } else if b.admin == AdminState::Disabled {
            "disabled"
        } else if !b.is_up() {
            "down"
        } else if b.outlier.is_ejected() {
            "ejected"
        } else if self.excluded.contains(&i) {
            "tried"
        } else if !b.accepts_new() {
            // A state added later that `accepts_new` knows and this list not yet.
            "not accepting"
        } else {
            return None;
        })
    }

    /// In the configured set (not removed), whatever its health: what
    /// hashing policies build their ring or table from, so that a backend
    /// going down moves only its own keys.
    pub fn listed(&self, i: usize) -> bool {
        i < self.backends.len() && !self.backends[i].removed && !self.backends[i].removing
    }

    /// Sessions (TCP) or requests (HTTP) in flight on backend `i`.
    pub fn active(&self, i: usize) -> u64 {
        self.backends[i].active()
    }

    pub fn weight(&self, i: usize) -> u32 {
        self.backends[i].weight
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.backends[i].addr
    }

    /// A fingerprint of the listed set (addresses and weights), so a policy
    /// can tell when to rebuild what it derived from it.
    /// Called on every pick by the ring and Maglev, so it allocates nothing.
    pub fn fingerprint(&self) -> u64 {
        let mut h = 0x9e37_79b9_7f4a_7c15u64;
        for i in (0..self.len()).filter(|&i| self.listed(i)) {
            let addr = self.addr(i);
            let ip = match addr.ip() {
                IpAddr::V4(v4) => u64::from(u32::from(v4)),
                IpAddr::V6(v6) => {
                    let x = u128::from(v6);
                    (x as u64) ^ hash::mix64((x >> 64) as u64)
                }
            };
            let rest = u64::from(addr.port()) | u64::from(self.weight(i)) << 16 | (i as u64) << 40;
            h = hash::mix64(h ^ hash::mix64(ip) ^ rest);
        }
        h
    }

    /// The first usable index at or after `start`, wrapping around.
    pub fn next_usable_from(&self, start: usize) -> Option<usize> {
        let n = self.len();
        (0..n).map(|k| (start + k) % n).find(|&i| self.usable(i))
    }

    /// Listed indices in address order: hashing policies build from this, so
    /// the order in which backends were listed (or came from DNS) does not
    /// matter and every instance with the same set builds the same thing.
    pub fn listed_by_address(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.len()).filter(|&i| self.listed(i)).collect();
        v.sort_by_key(|&i| self.addr(i));
        v
    }

    /// Usable indices, in order.
    pub fn usable_indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.usable(i))
    }
}

pub trait Policy {
    /// Choose a backend index, or `None` when no candidate is usable.
    fn pick(&mut self, key: &PickKey, candidates: &Candidates) -> Option<usize>;

    /// What `pick` would answer now for `key`, and why: the same decision,
    /// made without changing anything that the next pick depends on (it may
    /// build caches, such as the ring or the Maglev table).
    fn explain(&mut self, key: &PickKey, candidates: &Candidates) -> Explanation;

    /// A response time measured on backend `i` (HTTP: request sent to
    /// response head; TCP: connect start to first byte back). Only
    /// latency-aware policies care.
    fn observe(&mut self, _i: usize, _latency: Duration, _now: Instant) {}

    /// Does this policy want speed probes (`--probe-path`) run for it?
    fn wants_probes(&self) -> bool {
        false
    }

    /// A probe of backend `i` took this long (`None`: it failed).
    fn probed(&mut self, _i: usize, _result: Option<Duration>) {}

    /// The bounded-loads factor this policy picks under, if any: the
    /// connector then checks the cap again once the pick is counted, so
    /// workers picking at the same moment cannot together pass it.
    fn balance_factor(&self) -> Option<f64> {
        None
    }

    /// Keep a rotating position (round_robin) or running scores
    /// (weighted_round_robin) in `r`, shared with the other workers serving
    /// the frontend, so the sequence is global; other policies ignore it.
    fn share_rotation(&mut self, _r: Rotation) {}
}

/// Tunables of the policies that have any; defaults as documented in `--help`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyParams {
    pub seed: u64,
    /// Virtual nodes per unit of weight on the consistent-hash ring.
    pub vnodes: u32,
    /// `Some(n)`: the classic bounded ring of n slots with linear probing.
    pub ring_slots: Option<u32>,
    /// Maglev lookup table size (a prime).
    pub maglev_size: u32,
    pub sma_window: usize,
    pub ewma_alpha: f64,
    /// Decay time of the peak EWMA in p2c_peak_ewma.
    pub ewma_decay: Duration,
    /// consistent_hash and maglev: cap every backend's requests in flight at
    /// this multiple of its share (bounded loads); `None`: no cap.
    pub balance_factor: Option<f64>,
}

/// round_robin's position and weighted_round_robin's running scores,
/// shared by the workers serving one frontend. Equal to any other: it is
/// state, not a setting, so a reload comparing settings ignores it.
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    pub position: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub scores: std::sync::Arc<std::sync::Mutex<Vec<i64>>>,
}

impl PartialEq for Rotation {
    fn eq(&self, _: &Rotation) -> bool {
        true
    }
}

impl Default for PolicyParams {
    fn default() -> Self {
        PolicyParams {
            seed: 0,
            vnodes: 640,
            ring_slots: None,
            maglev_size: 65_537,
            sma_window: 10,
            ewma_alpha: 0.3,
            ewma_decay: Duration::from_secs(10),
            balance_factor: None,
        }
    }
}

/// The usable backend with the lowest score, scanning from `start`; one
/// without a score (no samples yet) wins at once, so each gets measured.
/// Ties go to the first seen, which rotates with `start`.
pub(crate) fn lowest_score(c: &Candidates, start: usize, score: impl Fn(usize) -> Option<f64>) -> Option<usize> {
    let n = c.len();
    if n == 0 {
        return None;
    }
    let mut best: Option<(usize, f64)> = None;
    for i in (0..n).map(|k| (start + k) % n).filter(|&i| c.usable(i)) {
        match score(i) {
            None => return Some(i),
            Some(s) if best.is_none_or(|(_, b)| s < b) => best = Some((i, s)),
            Some(_) => {}
        }
    }
    best.map(|(i, _)| i)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    RoundRobin,
    FewestConnections,
    IpHash,
    WeightedRoundRobin,
    Random,
    WeightedRandom,
    LeastRequests,
    ConsistentHash,
    Maglev,
    Sma,
    Ewma,
    P2cPeakEwma,
    FastestRanked,
}

impl PolicyKind {
    /// Does every worker's copy pick alike for the same key at the same
    /// moment? True where the state a pick reads is shared (positions,
    /// scores, in-use counts) or there is none (hashes); false where each
    /// copy draws its own numbers or learns latencies from its own traffic.
    pub fn same_in_every_worker(self) -> bool {
        use PolicyKind::*;
        match self {
            RoundRobin | WeightedRoundRobin | FewestConnections | LeastRequests | IpHash | ConsistentHash | Maglev => {
                true
            }
            Random | WeightedRandom | Sma | Ewma | P2cPeakEwma | FastestRanked => false,
        }
    }

    pub const ALL: [PolicyKind; 13] = [
        PolicyKind::RoundRobin,
        PolicyKind::FewestConnections,
        PolicyKind::IpHash,
        PolicyKind::WeightedRoundRobin,
        PolicyKind::Random,
        PolicyKind::WeightedRandom,
        PolicyKind::LeastRequests,
        PolicyKind::ConsistentHash,
        PolicyKind::Maglev,
        PolicyKind::Sma,
        PolicyKind::Ewma,
        PolicyKind::P2cPeakEwma,
        PolicyKind::FastestRanked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::RoundRobin => "round_robin",
            PolicyKind::FewestConnections => "fewest_connections",
            PolicyKind::IpHash => "ip_hash",
            PolicyKind::WeightedRoundRobin => "weighted_round_robin",
            PolicyKind::Random => "random",
            PolicyKind::WeightedRandom => "weighted_random",
            PolicyKind::LeastRequests => "least_requests",
            PolicyKind::ConsistentHash => "consistent_hash",
            PolicyKind::Maglev => "maglev",
            PolicyKind::Sma => "sma",
            PolicyKind::Ewma => "ewma",
            PolicyKind::P2cPeakEwma => "p2c_peak_ewma",
            PolicyKind::FastestRanked => "fastest_ranked",
        }
    }

    pub fn build(self, p: &PolicyParams) -> Box<dyn Policy> {
        match self {
            PolicyKind::RoundRobin => Box::new(RoundRobin::default()),
            PolicyKind::FewestConnections => Box::new(FewestConnections::default()),
            PolicyKind::IpHash => Box::new(IpHash::new(p.seed)),
            PolicyKind::WeightedRoundRobin => Box::new(WeightedRoundRobin::default()),
            PolicyKind::Random => Box::new(Random::new(p.seed)),
            PolicyKind::WeightedRandom => Box::new(WeightedRandom::new(p.seed)),
            PolicyKind::LeastRequests => Box::new(LeastRequests::default()),
            PolicyKind::ConsistentHash => {
                Box::new(ConsistentHash::new(p.seed, p.vnodes, p.ring_slots).with_balance(p.balance_factor))
            }
            PolicyKind::Maglev => Box::new(Maglev::new(p.seed, p.maglev_size).with_balance(p.balance_factor)),
            PolicyKind::Sma => Box::new(Sma::new(p.sma_window)),
            PolicyKind::Ewma => Box::new(Ewma::new(p.ewma_alpha)),
            PolicyKind::P2cPeakEwma => Box::new(P2cPeakEwma::new(p.seed, p.ewma_decay)),
            PolicyKind::FastestRanked => Box::new(FastestRanked::new(p.seed)),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PolicyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<PolicyKind, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        let kind = match norm.as_str() {
            "round_robin" | "roundrobin" | "rr" => PolicyKind::RoundRobin,
            "fewest_connections" | "fewestconnections" | "least_conn" | "leastconn" | "least_connections"
            | "leastconnections" => PolicyKind::FewestConnections,
            "ip_hash" | "iphash" | "ip_hashing" | "source" => PolicyKind::IpHash,
            "weighted_round_robin" | "wrr" | "weighted_rr" => PolicyKind::WeightedRoundRobin,
            "random" => PolicyKind::Random,
            "weighted_random" | "wrandom" => PolicyKind::WeightedRandom,
            "least_requests" | "least_request" | "leastreq" => PolicyKind::LeastRequests,
            "consistent_hash" | "consistent_hashing" | "ring_hash" | "ketama" | "chash" => PolicyKind::ConsistentHash,
            "maglev" => PolicyKind::Maglev,
            "sma" | "latency_sma" => PolicyKind::Sma,
            "ewma" | "latency_ewma" => PolicyKind::Ewma,
            "p2c_peak_ewma" | "p2c" | "peak_ewma" => PolicyKind::P2cPeakEwma,
            "fastest_ranked" | "ranked" | "speed_ranked" => PolicyKind::FastestRanked,
            _ => {
                return Err(format!(
                    "unknown policy \"{s}\" (expected one of: {})",
                    PolicyKind::ALL.map(|p| p.name()).join(", ")
                ));
            }
        };
        Ok(kind)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use std::net::SocketAddr;

    pub fn backends(n: usize) -> Vec<Backend> {
        (0..n).map(|i| Backend::new(SocketAddr::from(([127, 0, 0, 1], 8001 + i as u16)))).collect()
    }

    pub fn key(last_octet: u8) -> PickKey {
        PickKey::ip(IpAddr::from([127, 0, 0, last_octet]))
    }

    /// A key with an explicit request hash, for distribution tests.
    pub fn hkey(h: u64) -> PickKey {
        PickKey { client_ip: IpAddr::from([127, 0, 0, 1]), request_hash: Some(h) }
    }

    pub fn weighted(weights: &[u32]) -> Vec<Backend> {
        let mut b = backends(weights.len());
        for (x, &w) in b.iter_mut().zip(weights) {
            x.weight = w;
        }
        b
    }

    /// How many of `n` random request keys each backend gets.
    pub fn spread(p: &mut dyn Policy, b: &[Backend], excluded: &[usize], n: usize) -> Vec<usize> {
        let mut rng = super::rng::SplitMix64::new(12345);
        let mut counts = vec![0; b.len()];
        for _ in 0..n {
            let i = p.pick(&hkey(rng.next_u64()), &Candidates::new(b, excluded)).expect("a pick");
            counts[i] += 1;
        }
        counts
    }

    /// Picks of `p` over a seeded run of `n` decisions: keys, claims held
    /// and released, latencies observed, probe results, a backend excluded
    /// now and then. With `explain_first`, each pick is explained first and
    /// the explanation must name the same backend.
    pub fn workload(p: &mut dyn Policy, n: usize, explain_first: bool) -> Vec<Option<usize>> {
        use std::time::{Duration, Instant};
        let b = weighted(&[1, 2, 1, 3]);
        let mut rng = super::rng::SplitMix64::new(99);
        let t0 = Instant::now();
        let mut held = Vec::new();
        (0..n)
            .map(|step| {
                let excluded: Vec<usize> = if step % 7 == 3 { vec![(step / 7) % 4] } else { Vec::new() };
                let c = Candidates::new(&b, &excluded);
                let k = hkey(rng.below(50));
                let explained = explain_first.then(|| p.explain(&k, &c));
                let got = p.pick(&k, &c);
                if let Some(e) = explained {
                    assert_eq!(e.pick, got, "step {step}: explained {e:?}");
                }
                if let Some(i) = got {
                    held.push(b[i].claim());
                    let ms = 1 + (i as u64 + 1) * rng.below(20);
                    p.observe(i, Duration::from_millis(ms), t0 + Duration::from_millis(step as u64 * 10));
                }
                if step % 50 == 0 {
                    let i = rng.below(4) as usize;
                    p.probed(i, (rng.below(4) > 0).then(|| Duration::from_millis(1 + rng.below(30))));
                }
                if rng.below(3) == 0 && !held.is_empty() {
                    held.remove(rng.below(held.len() as u64) as usize);
                }
                got
            })
            .collect()
    }

    pub fn picks(p: &mut dyn Policy, b: &[Backend], excluded: &[usize], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| p.pick(&key(1), &Candidates::new(b, excluded))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_answers_none_on_empty_or_all_excluded_sets() {
        use super::test_support::*;
        let p = PolicyParams { maglev_size: 7, ..PolicyParams::default() };
        for kind in PolicyKind::ALL {
            let mut policy = kind.build(&p);
            // Reports about backends a policy has never seen must not panic either.
            policy.observe(5, Duration::from_millis(1), Instant::now());
            policy.probed(5, Some(Duration::from_millis(1)));
            assert_eq!(policy.pick(&key(1), &Candidates::new(&[], &[])), None, "{kind} on no backends");
            let b = backends(3);
            assert_eq!(policy.pick(&key(1), &Candidates::new(&b, &[0, 1, 2])), None, "{kind} with all excluded");
            assert!(policy.pick(&key(1), &Candidates::new(&b, &[1])).is_some_and(|i| i != 1), "{kind}");
        }
    }

    #[test]
    fn explain_names_the_next_pick_for_every_policy() {
        use super::test_support::*;
        for balance in [None, Some(1.25)] {
            let p = PolicyParams { seed: 3, maglev_size: 251, balance_factor: balance, ..PolicyParams::default() };
            for kind in PolicyKind::ALL {
                let explained = workload(kind.build(&p).as_mut(), 600, true);
                // Explaining changed nothing: the same run without it picks the same.
                assert_eq!(explained, workload(kind.build(&p).as_mut(), 600, false), "{kind}");
            }
        }
    }

    #[test]
    fn explanations_name_exclusions_and_scores() {
        use super::test_support::*;
        let mut b = backends(4);
        b[1].admin = crate::backend::AdminState::Draining;
        b[2].admin = crate::backend::AdminState::Disabled;
        b[3].removed = true;
        let _held: Vec<_> = (0..2).map(|_| b[0].claim()).collect();
        let c = Candidates::new(&b, &[]);
        let mut p = PolicyKind::FewestConnections.build(&PolicyParams::default());
        let e = p.explain(&key(1), &c);
        assert_eq!(e.pick, Some(0));
        assert_eq!(e.candidates.len(), 3, "a removed backend is not a candidate: {e:?}");
        assert_eq!(e.candidates[0].scores, [("in_flight", serde_json::json!(2))]);
        assert_eq!(e.candidates[1].excluded.as_deref(), Some("draining"));
        assert_eq!(e.candidates[2].excluded.as_deref(), Some("disabled"));
        assert_eq!(e.compact(&c), "*127.0.0.1:8001(in_flight=2) 127.0.0.1:8002(!draining) 127.0.0.1:8003(!disabled)");
        let tried = Candidates::new(&b, &[0]);
        let e = p.explain(&key(1), &tried);
        assert_eq!((e.pick, e.candidates[0].excluded.as_deref()), (None, Some("tried")));
        // Bounded loads: the home backend at its cap is passed over, and says so.
        let b = backends(3);
        let mut m = Maglev::new(0, 251).with_balance(Some(1.0));
        let home = m.pick(&hkey(42), &Candidates::new(&b, &[])).unwrap();
        let _h = b[home].claim();
        let e = m.explain(&hkey(42), &Candidates::new(&b, &[]));
        assert_ne!(e.pick, Some(home));
        let why = e.candidates[home].excluded.clone().unwrap_or_default();
        assert!(why.starts_with("over its bounded load (1 in flight, cap 1"), "{why}");
        assert_eq!(e.pick, m.pick(&hkey(42), &Candidates::new(&b, &[])));
    }

    #[test]
    fn spellings() {
        for s in ["round_robin", "round-robin", "roundrobin", "RR"] {
            assert_eq!(s.parse::<PolicyKind>().unwrap(), PolicyKind::RoundRobin);
        }
        for s in ["fewest_connections", "least_conn", "leastconn", "Least-Connections"] {
            assert_eq!(s.parse::<PolicyKind>().unwrap(), PolicyKind::FewestConnections);
        }
        for s in ["ip_hash", "ip_hashing", "source", "ip-hash"] {
            assert_eq!(s.parse::<PolicyKind>().unwrap(), PolicyKind::IpHash);
        }
        let e = "fastest".parse::<PolicyKind>().unwrap_err();
        assert!(e.contains("\"fastest\"") && e.contains("round_robin"), "{e}");
    }
}
