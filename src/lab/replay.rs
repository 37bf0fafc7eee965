//! A recorded trace replayed through policies: each request arrives when it
//! did, with its key, and is answered in a time drawn from what its backend
//! was recorded to take (`sim::Empirical`). Per policy: the share each
//! backend gets, Jain's index and max/mean, the latency the run sees, and
//! how many of the trace's keys move when one backend is removed.
//!
//! The model holds each backend's recorded times fixed whatever load the
//! policy sends it: it shows where a policy sends traffic and what those
//! backends answered in, not the queueing a different spread would cause.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use super::sim::{Empirical, Load, simulate};
use super::trace::Trace;
use crate::admin::lab::{Fairness, fairness};
use crate::backend::Backend;
use crate::policy::hash::hash_bytes;
use crate::policy::{Candidates, PickKey, PolicyKind, PolicyParams};

/// What a policy keys on in the replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFrom {
    /// The client address (the proxy's default).
    Client,
    /// The path without its query (`--hash-key path`).
    Path,
}

#[derive(Debug, Clone)]
pub struct PolicyResult {
    pub kind: PolicyKind,
    /// Requests per backend, in the trace's backend order.
    pub picks: Vec<u64>,
    pub fairness: Fairness,
    pub mean_us: f64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// Share of the trace's distinct keys on another backend once the last
    /// backend (in address order) is removed.
    pub keys_moved: f64,
    pub refused: u64,
}

fn key_of(r: &super::trace::Request, from: KeyFrom) -> PickKey {
    match from {
        KeyFrom::Client => PickKey::ip(r.client),
        KeyFrom::Path => PickKey {
            client_ip: r.client,
            request_hash: Some(hash_bytes(0, r.path.split('?').next().unwrap_or("").as_bytes())),
        },
    }
}

/// Replay `trace` through each of `kinds`.
pub fn replay(trace: &Trace, kinds: &[PolicyKind], params: &PolicyParams, from: KeyFrom) -> Vec<PolicyResult> {
    let backends: Vec<Backend> = trace.backends.iter().map(|&a| Backend::new(a)).collect();
    let mut recorded = vec![Vec::new(); backends.len()];
    for r in &trace.requests {
        if let (Some(b), Some(l), true) = (r.backend, r.latency, r.status < 500) {
            let i = trace.backends.binary_search(&b).expect("the trace lists every backend it names");
            recorded[i].push(l);
        }
    }
    let model = Empirical::new(recorded);
    let arrivals: Vec<(Duration, PickKey)> = trace.requests.iter().map(|r| (r.at, key_of(r, from))).collect();
    let mut keys: Vec<PickKey> = Vec::new();
    for (_, k) in &arrivals {
        if !keys.iter().any(|x| x.client_ip == k.client_ip && x.request_hash == k.request_hash) {
            keys.push(*k);
        }
    }
    let load = Load::Open(arrivals);
    kinds
        .iter()
        .map(|&kind| {
            let mut policy = kind.build(params);
            let o = simulate(policy.as_mut(), &backends, &load, &model, params.seed);
            let loads: Vec<f64> = o.picks.iter().map(|&n| n as f64).collect();
            PolicyResult {
                kind,
                fairness: fairness(&loads),
                mean_us: o.latency_us.mean(),
                p99_us: o.latency_us.value_at_quantile(0.99),
                p999_us: o.latency_us.value_at_quantile(0.999),
                keys_moved: keys_moved(kind, params, &trace.backends, &keys),
                refused: o.refused,
                picks: o.picks,
            }
        })
        .collect()
}

/// Share of `keys` whose backend changes when the last of `addrs` is removed
/// (fresh policies, each key picked once in order, nothing in flight).
pub fn keys_moved(kind: PolicyKind, params: &PolicyParams, addrs: &[SocketAddr], keys: &[PickKey]) -> f64 {
    if addrs.len() < 2 || keys.is_empty() {
        return 0.0;
    }
    let owners = |list: &[SocketAddr]| -> Vec<Option<SocketAddr>> {
        let backends: Vec<Backend> = list.iter().map(|&a| Backend::new(a)).collect();
        let mut p = kind.build(params);
        keys.iter().map(|k| p.pick(k, &Candidates::new(&backends, &[])).map(|i| list[i])).collect()
    };
    let before = owners(addrs);
    let after = owners(&addrs[..addrs.len() - 1]);
    before.iter().zip(&after).filter(|(a, b)| a != b).count() as f64 / keys.len() as f64
}

/// The results as CSV: one row per policy, shares per backend in the trace's order.
pub fn to_csv(trace: &Trace, results: &[PolicyResult]) -> String {
    let mut out = String::from("policy,requests,refused,jain,max_over_mean,mean_ms,p99_ms,p999_ms,keys_moved");
    for b in &trace.backends {
        let _ = write!(out, ",share_{b}");
    }
    out.push('\n');
    for r in results {
        let total: u64 = r.picks.iter().sum();
        let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.4}"));
        let _ = write!(
            out,
            "{},{total},{},{},{},{:.3},{:.3},{:.3},{:.4}",
            r.kind.name(),
            r.refused,
            f(r.fairness.jain),
            f(r.fairness.max_over_mean),
            r.mean_us / 1e3,
            r.p99_us as f64 / 1e3,
            r.p999_us as f64 / 1e3,
            r.keys_moved
        );
        for &n in &r.picks {
            let _ = write!(out, ",{:.4}", if total == 0 { 0.0 } else { n as f64 / total as f64 });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::trace::parse;

    /// 200 requests from 20 clients over 3 backends, the third ten times slower.
    fn trace() -> Trace {
        let mut log = String::from("timestamp,client,method,path,backend,status,bytes,latency_us,reused,time\n");
        for i in 0..200u32 {
            let b = 8001 + i % 3;
            let lat = if b == 8003 { 20_000 + i } else { 2_000 + i };
            let _ = writeln!(
                log,
                "{}.{:06},10.0.0.{},GET,/p{},127.0.0.1:{b},200,1,{lat},true,t",
                1000 + i / 100,
                (i % 100) * 10_000,
                i % 20,
                i % 7
            );
        }
        parse(&log, "t.csv").unwrap()
    }

    #[test]
    fn replay_is_the_same_for_a_seed_and_moves_the_seeded_draws_for_another() {
        let t = trace();
        let p = PolicyParams { seed: 4, ..PolicyParams::default() };
        let a = to_csv(&t, &replay(&t, &PolicyKind::ALL, &p, KeyFrom::Client));
        let b = to_csv(&t, &replay(&t, &PolicyKind::ALL, &p, KeyFrom::Client));
        assert_eq!(a, b);
        let other = PolicyParams { seed: 5, ..p };
        assert_ne!(a, to_csv(&t, &replay(&t, &PolicyKind::ALL, &other, KeyFrom::Client)));
        assert_eq!(a.lines().count(), 1 + PolicyKind::ALL.len());
    }

    #[test]
    fn figures_per_policy() {
        let t = trace();
        let p = PolicyParams::default();
        let r = replay(&t, &[PolicyKind::RoundRobin, PolicyKind::IpHash, PolicyKind::P2cPeakEwma], &p, KeyFrom::Client);
        assert_eq!(r[0].picks.iter().sum::<u64>(), 200);
        assert!(r[0].fairness.jain.unwrap() > 0.999, "{:?}", r[0].picks);
        // Rendezvous hashing moves only the removed backend's keys: about a third.
        assert!(r[1].keys_moved > 0.1 && r[1].keys_moved < 0.6, "{}", r[1].keys_moved);
        // Round robin's backend does not follow the key: most keys move.
        assert!(r[0].keys_moved > r[1].keys_moved);
        // The slow third backend: peak EWMA sees less of it than round robin.
        assert!(r[2].picks[2] < r[0].picks[2], "{:?} vs {:?}", r[2].picks, r[0].picks);
        assert!(r[2].mean_us < r[0].mean_us);
    }
}
