//! `/metrics`: Prometheus text exposition format (version 0.0.4).
//!
//! Names follow Prometheus conventions: counters end in `_total`, sizes in
//! `_bytes`, times in `_seconds`; each family has its HELP and TYPE once,
//! before its samples. Frontends are labelled `frontend`, backends
//! `backend` (address) and `pool`. Status codes are a `code` label; the
//! answers lbproxy makes itself (400, 408, 429, 431, 502, 503, 504, redirects)
//! are a family of their own, so they are never mistaken for a backend's.

use std::fmt::Write as _;

use super::lab::ShareView;
use super::render::StatsView;
use crate::backend::Backend;
use crate::stats::TimeHistogram;

/// The commit lbproxy was built from (build.rs), or "unknown".
pub const COMMIT: &str = env!("LBPROXY_COMMIT");

/// Label values escaped as the text format wants (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The samples of one histogram with `labels` (`a="b",c="d"`, no braces).
fn histogram(out: &mut String, name: &str, labels: &str, h: &TimeHistogram) {
    for (le, n) in h.cumulative() {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
    }
    let count = h.count();
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_seconds());
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// What /proc says about this process: resident bytes, open descriptors,
/// CPU seconds, start time (seconds since the epoch). `None` off Linux.
struct ProcessInfo {
    resident_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    cpu_seconds: f64,
    start_time: f64,
}

fn process_info() -> Option<ProcessInfo> {
    // SAFETY: sysconf only reads a configuration value.
    let (page, ticks) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
    let (page, ticks) = (u64::try_from(page).ok()?, u64::try_from(ticks).ok().filter(|&t| t > 0)? as f64);
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Fields after the command (which may hold spaces), from field 3 on.
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let (utime, stime, start_ticks) = (field(14)?, field(15)?, field(22)?);
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    // The directory listing holds one descriptor of its own while it runs.
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count().saturating_sub(1) as u64;
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0).then_some(rl.rlim_cur);
    Some(ProcessInfo {
        resident_bytes: resident_pages * page,
        open_fds,
        max_fds,
        cpu_seconds: (utime + stime) as f64 / ticks,
        start_time: boot + start_ticks as f64 / ticks,
    })
}

/// One backend counter family over every pool.
type BackendMetric = (&'static str, &'static str, &'static str, fn(&Backend) -> u64);

const BACKEND_METRICS: [BackendMetric; 12] = [
    ("lbproxy_backend_up", "gauge", "1 when the backend accepts new sessions.", |b| u64::from(b.accepts_new())),
    ("lbproxy_backend_active_sessions", "gauge", "Sessions (TCP) or requests (HTTP) in flight now.", |b| b.active()),
    (
        "lbproxy_backend_sessions_total",
        "counter",
        "Client sessions pinned to the backend: TCP sessions connected, and in HTTP mode tunnels after 101 \
         (WebSocket). Plain HTTP requests are in requests_total.",
        |b| b.stats.total,
    ),
    (
        "lbproxy_backend_requests_total",
        "counter",
        "HTTP requests sent (HTTP mode) or redirected (redirect mode) to the backend.",
        |b| b.stats.requests,
    ),
    (
        "lbproxy_backend_bytes_in_total",
        "counter",
        "Bytes sent to the backend: request heads (as rewritten) and bodies, TCP and tunnel bytes.",
        |b| b.stats.bytes_up,
    ),
    (
        "lbproxy_backend_bytes_out_total",
        "counter",
        "Bytes from the backend passed to clients: response heads and bodies, TCP and tunnel bytes.",
        |b| b.stats.bytes_down,
    ),
    ("lbproxy_backend_connect_failures_total", "counter", "Connects to the backend that failed or timed out.", |b| {
        b.stats.connect_failures
    }),
    (
        "lbproxy_backend_connections_opened_total",
        "counter",
        "Connects to the backend started (every mode; in HTTP mode fewer than requests when pooled connections \
         are reused).",
        |b| b.stats.conns_opened,
    ),
    (
        "lbproxy_backend_went_down_total",
        "counter",
        "Health transitions of the backend to down (checks, failed connects from traffic, max fails).",
        |b| b.stats.went_down,
    ),
    ("lbproxy_backend_went_up_total", "counter", "Health transitions of the backend back to up.", |b| b.stats.went_up),
    ("lbproxy_backend_ejected", "gauge", "1 while the backend is ejected as an outlier (HTTP mode).", |b| {
        u64::from(b.outlier.is_ejected())
    }),
    (
        "lbproxy_backend_ejections_total",
        "counter",
        "Outlier ejections of the backend: consecutive 5xx answers or failed exchanges (HTTP mode).",
        |b| b.outlier.lock().ejections,
    ),
];

/// The whole `/metrics` page.
pub fn metrics_text(v: &StatsView) -> String {
    let mut out = String::with_capacity(16 * 1024);
    family(&mut out, "lbproxy_build_info", "gauge", "Version and commit of the running lbproxy (always 1).");
    let _ =
        writeln!(out, "lbproxy_build_info{{version=\"{}\",commit=\"{}\"}} 1", env!("CARGO_PKG_VERSION"), esc(COMMIT));
    process_metrics(&mut out);
    for (name, help, value) in [
        ("lbproxy_uptime_seconds", "Seconds since lbproxy started.", format!("{:.3}", v.uptime.as_secs_f64())),
        ("lbproxy_open_clients", "Client connections open now, every frontend.", v.open_clients.to_string()),
        ("lbproxy_buffers_in_use", "Buffers taken from the pool now.", v.buffers_in_use.to_string()),
        ("lbproxy_timers_pending", "Entries in the timer queues.", v.timers_pending.to_string()),
        ("lbproxy_pipes_in_use", "Splice pipes taken from the pool now.", v.pipes.in_use.to_string()),
        ("lbproxy_pipes_free", "Splice pipes kept free for reuse (two descriptors each).", v.pipes.free.to_string()),
    ] {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "lbproxy_splice_fallbacks_total",
        "counter",
        "Times a splice pipe was wanted and a buffer was used.",
    );
    let _ = writeln!(out, "lbproxy_splice_fallbacks_total {}", v.pipes.fallbacks);
    family(
        &mut out,
        "lbproxy_spliced_bytes_total",
        "counter",
        "Bytes delivered through splice pipes (TCP mode), both ways.",
    );
    let _ = writeln!(out, "lbproxy_spliced_bytes_total {}", v.pipes.bytes);
    frontend_metrics(&mut out, v);
    lab_metrics(&mut out, v);
    backend_metrics(&mut out, v);
    family(&mut out, "lbproxy_worker_sessions_total", "counter", "Client connections accepted by each worker thread.");
    for (i, (sessions, _, _)) in v.workers.iter().enumerate() {
        let _ = writeln!(out, "lbproxy_worker_sessions_total{{worker=\"{i}\"}} {sessions}");
    }
    out
}

/// The real policy's picks and fairness per frontend, and each shadow's.
fn lab_metrics(out: &mut String, v: &StatsView) {
    let front = |f: &super::FrontendView| format!("frontend=\"{}\"", esc(&f.name));
    let name = "lbproxy_frontend_picks_total";
    family(out, name, "counter", "Backends the policy picked (a retry's pick counts too), by backend.");
    for f in &v.frontends {
        for (addr, n) in &f.picks.picks {
            let _ = writeln!(out, "{name}{{{},backend=\"{addr}\"}} {n}", front(f));
        }
    }
    type Gauge = (&'static str, &'static str, fn(&ShareView) -> Option<f64>);
    let fairness: [Gauge; 2] = [
        (
            "fairness_jain",
            "Jain's fairness index of the picks per unit of weight (1: even, 1/n: one takes all).",
            |s| s.fairness.jain,
        ),
        ("load_max_over_mean", "The most picked backend's picks per unit of weight over the mean.", |s| {
            s.fairness.max_over_mean
        }),
    ];
    for (suffix, help, get) in fairness {
        let name = format!("lbproxy_frontend_{suffix}");
        family(out, &name, "gauge", help);
        for f in &v.frontends {
            if let Some(x) = get(&f.picks) {
                let _ = writeln!(out, "{name}{{{}}} {x}", front(f));
            }
        }
    }
    let shadows = || v.frontends.iter().flat_map(|f| f.shadows.iter().map(move |s| (f, s)));
    let labels = |f: &super::FrontendView, s: &ShareView| format!("{},policy=\"{}\"", front(f), s.policy);
    let name = "lbproxy_shadow_picks_total";
    family(out, name, "counter", "Backends a shadow policy would have picked (nothing is sent), by backend.");
    for (f, s) in shadows() {
        for (addr, n) in &s.picks {
            let _ = writeln!(out, "{name}{{{},backend=\"{addr}\"}} {n}", labels(f, s));
        }
    }
    type Counter = (&'static str, &'static str, fn(&ShareView) -> u64);
    let counters: [Counter; 2] = [
        ("lbproxy_shadow_decisions_total", "Picks the shadow policy made beside the real one.", |s| s.decisions),
        ("lbproxy_shadow_agreed_total", "Picks where the shadow chose what the real policy chose.", |s| {
            s.agreed.unwrap_or(0)
        }),
    ];
    for (name, help, get) in counters {
        family(out, name, "counter", help);
        for (f, s) in shadows() {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(f, s), get(s));
        }
    }
    for (suffix, help, get) in fairness {
        let name = format!("lbproxy_shadow_{suffix}");
        family(out, &name, "gauge", help);
        for (f, s) in shadows() {
            if let Some(x) = get(s) {
                let _ = writeln!(out, "{name}{{{}}} {x}", labels(f, s));
            }
        }
    }
    let name = "lbproxy_shadow_predicted_latency_seconds";
    family(
        out,
        name,
        "gauge",
        "Response time the shadow would have seen, mixing the observed per-backend times in its shares.",
    );
    for (f, s) in shadows() {
        if let Some(p) = s.predicted {
            let _ = writeln!(out, "{name}{{{},stat=\"mean\"}} {}", labels(f, s), p.mean_us / 1e6);
            let _ = writeln!(out, "{name}{{{},stat=\"p99\"}} {}", labels(f, s), p.p99_us as f64 / 1e6);
        }
    }
}

fn process_metrics(out: &mut String) {
    let Some(p) = process_info() else { return };
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    let _ = writeln!(out, "process_resident_memory_bytes {}", p.resident_bytes);
    family(out, "process_open_fds", "gauge", "Open file descriptors.");
    let _ = writeln!(out, "process_open_fds {}", p.open_fds);
    if let Some(max) = p.max_fds {
        family(out, "process_max_fds", "gauge", "The open-file limit (soft).");
        let _ = writeln!(out, "process_max_fds {max}");
    }
    family(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
    let _ = writeln!(out, "process_cpu_seconds_total {}", p.cpu_seconds);
    family(out, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.");
    let _ = writeln!(out, "process_start_time_seconds {}", p.start_time);
}

fn frontend_metrics(out: &mut String, v: &StatsView) {
    type Counter = (&'static str, &'static str, &'static str, fn(&super::FrontendView) -> u64);
    let counters: [Counter; 8] = [
        ("lbproxy_frontend_open_clients", "gauge", "Client connections open now.", |f| f.open_clients as u64),
        (
            "lbproxy_frontend_sessions_total",
            "counter",
            "Client connections accepted (one session each, every mode).",
            |f| f.stats.sessions,
        ),
        (
            "lbproxy_frontend_requests_total",
            "counter",
            "HTTP request heads read from clients (HTTP and redirect modes).",
            |f| f.stats.requests,
        ),
        (
            "lbproxy_frontend_bytes_in_total",
            "counter",
            "Bytes received from clients: request heads and bodies (TCP: all bytes).",
            |f| f.stats.bytes_in,
        ),
        (
            "lbproxy_frontend_bytes_out_total",
            "counter",
            "Bytes sent to clients: response heads and bodies, the proxy's own answers (TCP: all bytes).",
            |f| f.stats.bytes_out,
        ),
        (
            "lbproxy_frontend_retries_total",
            "counter",
            "Requests or sessions sent again after a failed connect, a 502/503 answer (idempotent requests) or a \
             pooled connection the backend had closed.",
            |f| f.stats.retries,
        ),
        (
            "lbproxy_frontend_retries_budget_exhausted_total",
            "counter",
            "Retries not made because the retry budget was spent (HTTP mode).",
            |f| f.stats.retries_budget_exhausted,
        ),
        ("lbproxy_frontend_up", "gauge", "1 while the frontend accepts new clients.", |f| u64::from(f.accepting)),
    ];
    for (name, kind, help, get) in counters {
        family(out, name, kind, help);
        for f in &v.frontends {
            let _ = writeln!(out, "{name}{{frontend=\"{}\"}} {}", esc(&f.name), get(f));
        }
    }
    let name = "lbproxy_frontend_responses_total";
    family(out, name, "counter", "Responses from backends passed to clients, by status code.");
    for f in &v.frontends {
        for (code, n) in f.stats.responses.iter() {
            let _ = writeln!(out, "{name}{{frontend=\"{}\",code=\"{code}\"}} {n}", esc(&f.name));
        }
    }
    let name = "lbproxy_frontend_proxy_responses_total";
    family(
        out,
        name,
        "counter",
        "Answers lbproxy made itself (400, 408, 429, 431, 502, 503, 504, redirects), by status code.",
    );
    for f in &v.frontends {
        for (code, n) in f.stats.proxy_responses.iter() {
            let _ = writeln!(out, "{name}{{frontend=\"{}\",code=\"{code}\"}} {n}", esc(&f.name));
        }
    }
    let name = "lbproxy_frontend_response_time_seconds";
    family(out, name, "histogram", "Request head sent to response head received, through any backend (HTTP mode).");
    for f in &v.frontends {
        histogram(out, name, &format!("frontend=\"{}\"", esc(&f.name)), &f.stats.response_time);
    }
}

fn backend_metrics(out: &mut String, v: &StatsView) {
    let listed = || v.pools.iter().flat_map(|(pool, bs, _)| bs.iter().filter(|b| !b.removed).map(move |b| (*pool, b)));
    let labels = |pool: &str, b: &Backend| format!("backend=\"{}\",pool=\"{}\"", b.addr, esc(pool));
    for (name, kind, help, get) in BACKEND_METRICS {
        family(out, name, kind, help);
        for (pool, b) in listed() {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(pool, b), get(b));
        }
    }
    let name = "lbproxy_backend_responses_total";
    family(out, name, "counter", "Responses the backend sent, by status code (HTTP mode).");
    for (pool, b) in listed() {
        for (code, n) in b.stats.responses.iter() {
            let _ = writeln!(out, "{name}{{{},code=\"{code}\"}} {n}", labels(pool, b));
        }
    }
    for (name, help, get) in [
        (
            "lbproxy_backend_response_time_seconds",
            "Request head sent to response head received (HTTP mode).",
            (|b| &b.stats.response_time) as fn(&Backend) -> &TimeHistogram,
        ),
        ("lbproxy_backend_connect_time_seconds", "Connect started to connected.", |b| &b.stats.connect_time),
    ] {
        family(out, name, "histogram", help);
        for (pool, b) in listed() {
            histogram(out, name, &labels(pool, b), get(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::FrontendView;
    use crate::stats::FrontendStats;
    use std::time::Duration;

    #[test]
    fn families_have_help_type_labels_and_histograms() {
        let mut b = vec![Backend::new("127.0.0.1:8001".parse().unwrap())];
        b[0].stats.responses.add(404);
        b[0].record_latency(Duration::from_millis(2));
        let mut stats = FrontendStats::default();
        stats.proxy_responses.add(503);
        let front = FrontendView {
            name: "web".into(),
            listen: "127.0.0.1:80".into(),
            mode: "http",
            policy: "round_robin",
            pool: "default".into(),
            open_clients: 0,
            accepting: true,
            stats,
            picks: crate::admin::lab::share_view("round_robin", (3, None), &[3], &b),
            shadows: vec![crate::admin::lab::share_view("maglev", (3, Some(2)), &[3], &b)],
        };
        let view = StatsView {
            backends: &b,
            mode: "http",
            policy: "round_robin",
            uptime: Duration::from_secs(2),
            open_clients: 0,
            buffers_in_use: 0,
            pipes: Default::default(),
            timers_pending: 0,
            frontends: vec![front],
            pools: vec![("default", &b, None)],
            workers: vec![(3, 0, 0)],
        };
        let text = metrics_text(&view);
        let labels = "backend=\"127.0.0.1:8001\",pool=\"default\"";
        assert!(
            text.contains(&format!("# TYPE lbproxy_backend_up gauge\nlbproxy_backend_up{{{labels}}} 1\n")),
            "{text}"
        );
        assert!(text.contains(&format!("lbproxy_backend_responses_total{{{labels},code=\"404\"}} 1\n")), "{text}");
        assert!(text.contains("lbproxy_frontend_proxy_responses_total{frontend=\"web\",code=\"503\"} 1\n"), "{text}");
        assert!(text.contains(&format!("lbproxy_backend_response_time_seconds_bucket{{{labels},le=\"0.001\"}} 0\n")));
        assert!(text.contains(&format!("lbproxy_backend_response_time_seconds_bucket{{{labels},le=\"0.0025\"}} 1\n")));
        assert!(text.contains(&format!("lbproxy_backend_response_time_seconds_count{{{labels}}} 1\n")));
        assert!(text.contains("lbproxy_build_info{version=\""), "{text}");
        assert!(text.contains("lbproxy_frontend_picks_total{frontend=\"web\",backend=\"127.0.0.1:8001\"} 3\n"));
        assert!(text.contains("lbproxy_frontend_fairness_jain{frontend=\"web\"} 1\n"), "{text}");
        assert!(text.contains("lbproxy_shadow_agreed_total{frontend=\"web\",policy=\"maglev\"} 2\n"), "{text}");
        let mean = "lbproxy_shadow_predicted_latency_seconds{frontend=\"web\",policy=\"maglev\",stat=\"mean\"} 0.002";
        assert!(text.contains(mean), "{text}");
        assert!(text.contains("\nprocess_open_fds "), "{text}");
    }
}
