//! What the admin API shows: `/rep` and `/stats` as JSON, `/metrics` as
//! Prometheus text.

use std::time::Duration;

use serde_json::{Value, json};

use crate::backend::Backend;

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
    /// Entries in the timer queues.
    pub timers_pending: usize,
    /// Every frontend: name, address, mode, policy, pool, open clients.
    pub frontends: Vec<FrontendView>,
    /// Every pool by name, with its backends and its DNS state (pools from DNS).
    pub pools: Vec<(&'a str, &'a [Backend], Option<Value>)>,
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
}

fn backends_json(backends: &[Backend]) -> Vec<Value> {
    backends
        .iter()
        .filter(|b| !b.removed)
        .map(|b| {
            let s = &b.stats;
            let history: Vec<Value> = b.health.history().map(|(ok, why)| json!({"ok": ok, "reason": why})).collect();
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
                "health": {"up": b.health.is_up(), "history": history},
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
                   "open_clients": f.open_clients, "accepting": f.accepting})
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
        "timers_pending": v.timers_pending,
        "backends": backends,
        "frontends": frontends,
        "pools": pools,
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

/// Prometheus text exposition format (version 0.0.4).
pub fn metrics_text(v: &StatsView) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP lbproxy_uptime_seconds Seconds since lbproxy started.");
    let _ = writeln!(out, "# TYPE lbproxy_uptime_seconds gauge");
    let _ = writeln!(out, "lbproxy_uptime_seconds {:.3}", v.uptime.as_secs_f64());
    let _ = writeln!(out, "# HELP lbproxy_open_clients Client connections open now.");
    let _ = writeln!(out, "# TYPE lbproxy_open_clients gauge");
    let _ = writeln!(out, "lbproxy_open_clients {}", v.open_clients);
    let _ = writeln!(out, "# HELP lbproxy_buffers_in_use Buffers taken from the pool now.");
    let _ = writeln!(out, "# TYPE lbproxy_buffers_in_use gauge");
    let _ = writeln!(out, "lbproxy_buffers_in_use {}", v.buffers_in_use);
    let _ = writeln!(out, "# HELP lbproxy_timers_pending Entries in the timer queues.");
    let _ = writeln!(out, "# TYPE lbproxy_timers_pending gauge");
    let _ = writeln!(out, "lbproxy_timers_pending {}", v.timers_pending);
    type Metric = (&'static str, &'static str, &'static str, fn(&Backend) -> u64);
    let metrics: [Metric; 8] = [
        ("lbproxy_backend_up", "gauge", "1 when the backend accepts new sessions.", |b| u64::from(b.accepts_new())),
        ("lbproxy_backend_active_sessions", "gauge", "Sessions (TCP) or requests (HTTP) in flight.", |b| b.active()),
        ("lbproxy_backend_sessions_total", "counter", "Backend connections that succeeded.", |b| b.stats.total),
        ("lbproxy_backend_requests_total", "counter", "HTTP requests sent or redirected to the backend.", |b| {
            b.stats.requests
        }),
        ("lbproxy_backend_bytes_in_total", "counter", "Bytes from clients to the backend.", |b| b.stats.bytes_up),
        ("lbproxy_backend_bytes_out_total", "counter", "Bytes from the backend to clients.", |b| b.stats.bytes_down),
        ("lbproxy_backend_connect_failures_total", "counter", "Failed connects to the backend.", |b| {
            b.stats.connect_failures
        }),
        ("lbproxy_backend_connections_opened_total", "counter", "Backend connections opened (HTTP mode).", |b| {
            b.stats.conns_opened
        }),
    ];
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for b in v.backends.iter().filter(|b| !b.removed) {
            let _ = writeln!(out, "{name}{{backend=\"{}\"}} {}", b.addr, get(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_have_help_type_and_labels() {
        let b = vec![Backend::new("127.0.0.1:8001".parse().unwrap())];
        let view = StatsView {
            backends: &b,
            mode: "tcp",
            policy: "round_robin",
            uptime: Duration::from_secs(2),
            open_clients: 0,
            buffers_in_use: 0,
            timers_pending: 0,
            frontends: Vec::new(),
            pools: Vec::new(),
        };
        let text = metrics_text(&view);
        assert!(
            text.contains("# TYPE lbproxy_backend_up gauge\nlbproxy_backend_up{backend=\"127.0.0.1:8001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE lbproxy_backend_sessions_total counter"));
    }
}
