//! What the admin API shows as JSON: `/rep` and `/stats` (`/metrics` is
//! `metrics.rs`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::lab::ShareView;
use crate::backend::Backend;
use crate::stats::FrontendStats;

/// `{"N": .., "replicas": [..]}` of the listed backends (not removed, not on their way out).
pub fn replicas(backends: &[Backend]) -> Value {
    let list: Vec<String> = backends.iter().filter(|b| !b.removed && !b.removing).map(|b| b.addr.to_string()).collect();
    json!({"N": list.len(), "replicas": list})
}

/// Everything `/stats` reports.
pub struct StatsView<'a> {
    pub backends: &'a [Backend],
    pub mode: &'a str,
    pub policy: &'a str,
    pub uptime: Duration,
    pub open_clients: usize,
    /// Buffers out of the pool (0 when nothing is in flight: a leak shows here).
    pub buffers_in_use: usize,
    /// Splice pipes out of the pool (0 when nothing is in flight), kept
    /// free for reuse, and times one was wanted but a buffer was used.
    pub pipes: PipeCounts,
    /// Entries in the timer queues.
    pub timers_pending: usize,
    /// Every frontend: name, address, mode, policy, pool, open clients.
    pub frontends: Vec<FrontendView>,
    /// Every pool by name, with its backends and its DNS state (pools from DNS).
    pub pools: Vec<(&'a str, &'a [Backend], Option<Value>)>,
    /// Per worker (reactor thread; the main reactor first): client
    /// connections accepted, HTTP requests, and connections open now.
    pub workers: Vec<(u64, u64, usize)>,
}

/// The splice pipe pool's numbers.
#[derive(Debug, Default, Clone, Copy)]
pub struct PipeCounts {
    pub in_use: usize,
    pub free: usize,
    pub fallbacks: u64,
    pub bytes: u64,
}

impl PipeCounts {
    /// Two reactors' counts added up (workers).
    pub fn plus(&self, o: &PipeCounts) -> PipeCounts {
        PipeCounts {
            in_use: self.in_use + o.in_use,
            free: self.free + o.free,
            fallbacks: self.fallbacks + o.fallbacks,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// One frontend as `/stats` shows it.
pub struct FrontendView {
    pub name: String,
    pub listen: String,
    pub mode: &'static str,
    pub policy: &'static str,
    pub pool: String,
    pub open_clients: usize,
    /// False once it stopped accepting (reload removed it, or shutdown).
    pub accepting: bool,
    /// Requests, answers by status, bytes, response times.
    pub stats: FrontendStats,
    /// The real policy's picks per backend and their fairness.
    pub picks: ShareView,
    /// What each shadow policy would have done.
    pub shadows: Vec<ShareView>,
}

/// A backend's ramp (while it lasts), ejection and failure marking state.
fn passive_json(b: &Backend, now: Instant) -> (Value, Value, Value) {
    let ramp = b.ramp.clone().ramping(now).then(|| json!({"factor": (b.ramp.factor(now) * 1000.0).round() / 1000.0}));
    let marking = json!({
        "consecutive_failures": b.consecutive_fails(),
        "down_remaining_ms": b.down_until().map(|t| t.saturating_duration_since(now).as_millis() as u64),
        "reason": b.down_reason(),
    });
    let o = b.outlier.lock();
    let outlier = json!({
        "ejected": o.is_ejected(),
        "remaining_ms": o.remaining(now).map(|d| d.as_millis() as u64),
        "duration_ms": o.last_duration.as_millis() as u64,
        "ejections": o.ejections,
        "held_back_by_max_percent": o.capped,
        "consecutive_failures": o.consecutive_failures(),
        "reason": o.reason,
    });
    (json!(ramp), outlier, marking)
}

fn backends_json(backends: &[Backend]) -> Vec<Value> {
    let now = Instant::now();
    backends
        .iter()
        .filter(|b| !b.removed)
        .map(|b| {
            let s = &b.stats;
            let history: Vec<Value> = b.health.history().map(|(ok, why)| json!({"ok": ok, "reason": why})).collect();
            let (slow_start, outlier, failure_marking) = passive_json(b, now);
            json!({
                "address": b.addr.to_string(),
                "state": b.state_name(),
                "weight": b.weight,
                "active": b.active(),
                "sessions": s.total,
                "requests": s.requests,
                "bytes_in": s.bytes_up,
                "bytes_out": s.bytes_down,
                "connect_failures": s.connect_failures,
                "connections_opened": s.conns_opened,
                "status_codes": s.responses.to_json(),
                "health": {"up": b.health.is_up(), "history": history},
                "slow_start": slow_start,
                "outlier": outlier,
                "failure_marking": failure_marking,
                "latency_us": b.latency_percentiles().map(|p| json!({"p50": p[0], "p90": p[1], "p99": p[2], "max": p[3]})),
            })
        })
        .collect()
}

pub fn stats_json(v: &StatsView) -> Value {
    let listed = || v.backends.iter().filter(|b| !b.removed);
    let backends = backends_json(v.backends);
    let sum = |f: fn(&Backend) -> u64| listed().map(f).sum::<u64>();
    let frontends: Vec<Value> = v
        .frontends
        .iter()
        .map(|f| {
            json!({"name": f.name, "listen": f.listen, "mode": f.mode, "policy": f.policy, "pool": f.pool,
                   "open_clients": f.open_clients, "accepting": f.accepting, "requests": f.stats.requests,
                   "proxy_status_codes": f.stats.proxy_responses.to_json(), "retries": f.stats.retries,
                   "retries_budget_exhausted": f.stats.retries_budget_exhausted,
                   "picks": f.picks.to_json(), "fairness": f.picks.to_json()["fairness"].clone(),
                   "shadows": f.shadows.iter().map(ShareView::to_json).collect::<Vec<_>>()})
        })
        .collect();
    let pools: Vec<Value> =
        v.pools.iter().map(|(name, b, dns)| json!({"name": name, "backends": backends_json(b), "dns": dns})).collect();
    json!({
        "uptime_s": v.uptime.as_secs_f64(),
        "mode": v.mode,
        "policy": v.policy,
        "open_clients": v.open_clients,
        "buffers_in_use": v.buffers_in_use,
        "pipes_in_use": v.pipes.in_use,
        "pipes_free": v.pipes.free,
        "splice_fallbacks": v.pipes.fallbacks,
        "bytes_spliced": v.pipes.bytes,
        "timers_pending": v.timers_pending,
        "backends": backends,
        "frontends": frontends,
        "pools": pools,
        "workers": v.workers.iter().enumerate()
            .map(|(i, (sessions, requests, open))| {
                json!({"worker": i, "sessions": sessions, "requests": requests, "open_clients": open})
            })
            .collect::<Vec<_>>(),
        "totals": {
            "active": sum(|b| b.active()),
            "sessions": sum(|b| b.stats.total),
            "requests": sum(|b| b.stats.requests),
            "bytes_in": sum(|b| b.stats.bytes_up),
            "bytes_out": sum(|b| b.stats.bytes_down),
            "connect_failures": sum(|b| b.stats.connect_failures),
        },
    })
}
