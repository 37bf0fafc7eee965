//! The backend list: address and traffic counters per backend.

use std::fmt::{Display, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use log::{info, warn};

use crate::health::{HealthState, Transition};
use crate::outlier::Ejection;
use crate::slow_start::Ramp;
use crate::stats::{StatusCounts, TimeHistogram};

/// Counters for one backend. "up" is client to backend, "down" the reverse.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackendStats {
    /// Client sessions pinned to this backend: TCP sessions whose connect
    /// succeeded, and in HTTP mode tunnels (WebSocket) after a `101`.
    pub total: u64,
    /// Bytes sent to the backend: request heads as rewritten, bodies, tunnel bytes.
    pub bytes_up: u64,
    /// Bytes received from the backend and passed on: response heads, bodies, tunnel bytes.
    pub bytes_down: u64,
    pub connect_failures: u64,
    /// HTTP requests sent here (HTTP mode) or redirected here (redirect mode).
    pub requests: u64,
    /// Backend connections whose connect was started (every mode; in HTTP
    /// mode fewer than requests when pooled connections are reused).
    pub conns_opened: u64,
    /// Responses the backend sent, by status (HTTP mode).
    pub responses: StatusCounts,
    /// Request head written to response head read (HTTP mode).
    pub response_time: TimeHistogram,
    /// Connect started to connected.
    pub connect_time: TimeHistogram,
    /// Health transitions: taken out of rotation (checks, traffic, max fails).
    pub went_down: u64,
    /// Health transitions: back in rotation.
    pub went_up: u64,
}

impl BackendStats {
    /// Sum of two workers' counts. A health transition is counted by the
    /// one copy that made it (checks run in the main reactor; failure
    /// marking is shared, and the worker whose failure marked it down
    /// counts that), so the sum counts each once.
    pub fn add(&mut self, o: &BackendStats) {
        self.total += o.total;
        self.bytes_up += o.bytes_up;
        self.bytes_down += o.bytes_down;
        self.connect_failures += o.connect_failures;
        self.requests += o.requests;
        self.conns_opened += o.conns_opened;
        self.responses.add_all(&o.responses);
        self.response_time.add_all(&o.response_time);
        self.connect_time.add_all(&o.connect_time);
        self.went_down += o.went_down;
        self.went_up += o.went_up;
    }
}

/// One unit of a backend's active count, held by a session (TCP) or an
/// exchange (HTTP) for as long as it uses the backend; dropping it gives the
/// unit back, so no path can forget to (or do it twice). The count is
/// shared by every worker thread's copy of the backend, so policies that
/// read it see the sessions of all workers.
#[derive(Debug)]
pub struct Claim(Arc<AtomicU64>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Passive failure marking's state, one per backend, shared by every
/// worker thread's copy of it: failed connects add up whichever worker saw
/// them, and a backend marked down is down for all of them.
#[derive(Debug, Default)]
struct Marks {
    /// Failed connects in a row, in all workers.
    consecutive: AtomicU32,
    /// Whether `down` holds a time: read without the lock on every pick.
    is_down: AtomicBool,
    down: Mutex<Down>,
}

#[derive(Debug, Default)]
struct Down {
    until: Option<Instant>,
    /// Why it was marked down last (kept after it comes back).
    reason: Option<String>,
}

impl Marks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Down> {
        self.down.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Mark it down until `until`; false when it already was (by another worker).
    fn mark_down(&self, until: Instant, reason: String) -> bool {
        let mut d = self.lock();
        if d.until.is_some() {
            return false;
        }
        *d = Down { until: Some(until), reason: Some(reason) };
        self.is_down.store(true, Ordering::Release);
        true
    }

    /// Back up if its time is over, with `fails` failures in a row counted.
    fn revive_if_due(&self, now: Instant, fails: u32) -> bool {
        let mut d = self.lock();
        if d.until.is_none_or(|t| now < t) {
            return false;
        }
        d.until = None;
        self.consecutive.store(fails, Ordering::Relaxed);
        self.is_down.store(false, Ordering::Release);
        true
    }
}

/// What every worker thread's copy of one backend shares: the in-use
/// count, failure marking and ejection (one of each per backend).
#[derive(Debug, Clone)]
pub struct SharedState {
    active: Arc<AtomicU64>,
    marks: Arc<Marks>,
    outlier: Ejection,
}

/// Passive failure marking, as nginx's `max_fails`/`fail_timeout`: after
/// `max_fails` consecutive failed connects a backend sits out `fail_timeout`,
/// then gets real traffic again. `max_fails == 0` never marks it down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailPolicy {
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

impl Default for FailPolicy {
    fn default() -> Self {
        FailPolicy { max_fails: 3, fail_timeout: Duration::from_secs(10) }
    }
}

/// What the operator said about a backend (admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Enabled,
    /// No new sessions; open ones finish. Set by `/drain` and by `/rm`.
    Draining,
    /// No new sessions, kept in the list until enabled again.
    Disabled,
}

impl AdminState {
    pub fn name(self) -> &'static str {
        match self {
            AdminState::Enabled => "enabled",
            AdminState::Draining => "draining",
            AdminState::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    /// Relative share of traffic for weighted policies (1 = normal).
    pub weight: u32,
    pub stats: BackendStats,
    /// Sessions (TCP) or requests (HTTP) using it now, connecting included:
    /// the number of live `Claim`s, in every worker.
    active: Arc<AtomicU64>,
    pub admin: AdminState,
    /// Removed by the admin API: leaves the list once its sessions end.
    pub removing: bool,
    /// Gone from the list; the slot stays so indices held elsewhere keep their meaning.
    pub removed: bool,
    /// Active health (when checks are on; passive failures count toward `fall` too).
    pub health: HealthState,
    thresholds: Option<(u32, u32)>,
    fail_policy: FailPolicy,
    /// Failure marking (shared by every worker's copy).
    marks: Arc<Marks>,
    /// Backend response times in microseconds (HTTP mode), made on first use.
    latency: Option<Histogram<u64>>,
    /// Slow start after joining or coming back up.
    pub ramp: Ramp,
    /// Outlier ejection (HTTP mode; shared by every worker's copy).
    pub outlier: Ejection,
}

impl Backend {
    pub fn new(addr: SocketAddr) -> Backend {
        Backend::with_fail_policy(addr, FailPolicy::default())
    }

    pub fn with_fail_policy(addr: SocketAddr, fail_policy: FailPolicy) -> Backend {
        Backend {
            addr,
            weight: 1,
            stats: BackendStats::default(),
            active: Arc::default(),
            admin: AdminState::Enabled,
            removing: false,
            removed: false,
            health: HealthState::default(),
            thresholds: None,
            fail_policy,
            marks: Arc::default(),
            latency: None,
            ramp: Ramp::default(),
            outlier: Ejection::default(),
        }
    }

    /// Sessions (TCP) or requests (HTTP) using the backend now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Count one more user of the backend until the claim is dropped.
    pub fn claim(&self) -> Claim {
        self.active.fetch_add(1, Ordering::Relaxed);
        Claim(Arc::clone(&self.active))
    }

    /// What a worker's copy of this backend shares with it.
    pub fn shared(&self) -> SharedState {
        SharedState { active: Arc::clone(&self.active), marks: Arc::clone(&self.marks), outlier: self.outlier.clone() }
    }

    /// A worker's copy counts into, marks down and ejects through the main
    /// reactor's state (nothing when it already does). Only before the copy
    /// holds claims (it starts with none), or when the slot is taken by
    /// another backend.
    pub fn share(&mut self, s: SharedState) {
        if !(Arc::ptr_eq(&self.active, &s.active)
            && Arc::ptr_eq(&self.marks, &s.marks)
            && self.outlier.same(&s.outlier))
        {
            (self.active, self.marks, self.outlier) = (s.active, s.marks, s.outlier);
        }
    }

    /// A worker follows the main reactor's verdict on health checks
    /// (failure marking and ejection are shared, not followed).
    pub fn follow_health(&mut self, up: bool) {
        if self.health.is_up() != up {
            self.health = if up { HealthState::default() } else { HealthState::starting_down() };
        }
    }

    /// Add what a worker's copy of this backend counted (for `/stats`).
    pub fn add_counts(&mut self, other: &Backend) {
        self.stats.add(&other.stats);
        if let Some(h) = other.latency.as_ref() {
            if self.latency.is_none() {
                self.latency = Some(h.clone());
            } else if let Some(mine) = self.latency.as_mut() {
                let _ = mine.add(h);
            }
        }
    }

    /// Count one backend response time.
    pub fn record_latency(&mut self, d: Duration) {
        self.stats.response_time.record(d);
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        if self.latency.is_none() {
            // 1 us .. 1 h with 2 significant digits: about 30 KiB.
            self.latency = Histogram::new_with_bounds(1, 3_600_000_000, 2).ok();
        }
        if let Some(h) = self.latency.as_mut() {
            let _ = h.record(us);
        }
    }

    /// The recorded response times (microseconds), if any: what the policy
    /// lab predicts a shadow policy's latency from.
    pub fn latency_histogram(&self) -> Option<&Histogram<u64>> {
        self.latency.as_ref().filter(|h| !h.is_empty())
    }

    /// p50, p90, p99 and max of the recorded response times, in microseconds.
    pub fn latency_percentiles(&self) -> Option<[u64; 4]> {
        let h = self.latency.as_ref().filter(|h| !h.is_empty())?;
        Some([h.value_at_quantile(0.5), h.value_at_quantile(0.9), h.value_at_quantile(0.99), h.max()])
    }

    pub fn with_weight(mut self, weight: u32) -> Backend {
        self.weight = weight.max(1);
        self
    }

    /// Health checks decide up and down (`rise`, `fall`); `start_down`
    /// holds traffic back until the first `rise` checks pass.
    pub fn with_health(mut self, rise: u32, fall: u32, start_down: bool) -> Backend {
        self.thresholds = Some((rise, fall));
        if start_down {
            self.health = HealthState::starting_down();
        }
        self
    }

    /// New failure marking and health thresholds (a reload); counters, and
    /// the health state while checks stay on, are kept. Checks turned off:
    /// the backend is up again (nothing would ever bring it back otherwise).
    pub fn reconfigure(&mut self, fail_policy: FailPolicy, thresholds: Option<(u32, u32)>) {
        self.fail_policy = fail_policy;
        if thresholds.is_none() && self.thresholds.is_some() {
            self.health = HealthState::default();
        }
        self.thresholds = thresholds;
    }

    /// May new sessions be sent here?
    pub fn accepts_new(&self) -> bool {
        self.admin == AdminState::Enabled && !self.removed && self.is_up() && !self.outlier.is_ejected()
    }

    /// Up as far as health and failure marking know (admin state aside).
    pub fn is_up(&self) -> bool {
        self.health.is_up() && !self.marks.is_down.load(Ordering::Acquire)
    }

    /// One word for listings: up, ejected, down, draining, disabled.
    pub fn state_name(&self) -> &'static str {
        match (self.admin, self.is_up()) {
            (AdminState::Enabled, true) if self.outlier.is_ejected() => "ejected",
            (AdminState::Enabled, true) => "up",
            (AdminState::Enabled, false) => "down",
            (other, _) => other.name(),
        }
    }

    /// Marked down by failure marking until then.
    pub fn down_until(&self) -> Option<Instant> {
        self.marks.lock().until
    }

    /// Why failure marking took it out last (kept after it comes back).
    pub fn down_reason(&self) -> Option<String> {
        self.marks.lock().reason.clone()
    }

    /// Failed connects in a row (every worker's), toward `--max-fails`.
    pub fn consecutive_fails(&self) -> u32 {
        self.marks.consecutive.load(Ordering::Relaxed)
    }

    /// A connect to this backend failed (refused, timed out, ...). With
    /// health checks it counts toward `fall`; without, toward `--max-fails`.
    pub fn note_connect_failure(&mut self, now: Instant, why: &dyn Display) {
        self.stats.connect_failures += 1;
        if let Some((rise, fall)) = self.thresholds {
            let reason = why.to_string();
            match self.health.record(false, &reason, rise, fall) {
                Some(Transition::WentDown { after, reason }) => {
                    self.stats.went_down += 1;
                    warn!("backend {} DOWN: {reason} ({after}/{fall}, from traffic)", self.addr)
                }
                _ => warn!("backend {} connect failed: {reason} ({}/{fall})", self.addr, self.health.bad_in_a_row()),
            }
            return;
        }
        let fails = self.marks.consecutive.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let fp = self.fail_policy;
        // The one copy whose failure marks it down counts the transition.
        if fp.max_fails > 0 && fails >= fp.max_fails && self.marks.mark_down(now + fp.fail_timeout, why.to_string()) {
            self.stats.went_down += 1;
            warn!("backend {} DOWN: {why} ({fails}/{}); retried in {:?}", self.addr, fp.max_fails, fp.fail_timeout);
        } else {
            warn!("backend {} connect failed: {why} ({fails}/{})", self.addr, fp.max_fails);
        }
    }

    pub fn note_connect_success(&mut self) {
        // Read first: most connects succeed, and a store would take the
        // counter's cache line from every other worker each time.
        if self.marks.consecutive.load(Ordering::Relaxed) != 0 {
            self.marks.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// The result of one active check.
    pub fn note_check(&mut self, ok: bool, reason: &str) {
        let Some((rise, fall)) = self.thresholds else { return };
        match self.health.record(ok, reason, rise, fall) {
            Some(Transition::WentDown { after, reason }) => {
                self.stats.went_down += 1;
                warn!("backend {} DOWN: {reason} ({after}/{fall})", self.addr)
            }
            Some(Transition::WentUp { after }) => {
                self.stats.went_up += 1;
                self.ramp.start(Instant::now());
                info!("backend {} UP: {after}/{rise} checks passed", self.addr)
            }
            None => {}
        }
    }

    /// Put a down backend back in rotation once its fail timeout is over
    /// (the main reactor's tick: it happens once for every worker).
    pub fn revive_if_due(&mut self, now: Instant) {
        // One more failure takes it out again at once.
        let fails = self.fail_policy.max_fails.saturating_sub(1);
        if self.marks.is_down.load(Ordering::Acquire) && self.marks.revive_if_due(now, fails) {
            self.stats.went_up += 1;
            self.ramp.start(now);
            info!("backend {} back in rotation after {:?}", self.addr, self.fail_policy.fail_timeout);
        }
    }
}

/// The periodic usage summary of a pool: one line (log shippers and
/// journald take a line as one event), `key=value` per backend, backends
/// separated by `; `.
pub fn usage_line(pool: &str, backends: &[Backend]) -> String {
    let mut out = format!("usage pool={pool}:");
    for (i, b) in backends.iter().filter(|b| !b.removed).enumerate() {
        let s = &b.stats;
        let _ = write!(
            out,
            "{} {} state={} sessions={} active={} requests={} bytes_up={} bytes_down={} connect_failures={}",
            if i == 0 { "" } else { ";" },
            b.addr,
            b.state_name(),
            s.total,
            b.active(),
            s.requests,
            s.bytes_up,
            s.bytes_down,
            s.connect_failures
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_fails_marks_down_and_fail_timeout_revives() {
        let fp = FailPolicy { max_fails: 2, fail_timeout: Duration::from_secs(10) };
        let mut b = Backend::with_fail_policy("127.0.0.1:1".parse().unwrap(), fp);
        let t0 = Instant::now();
        b.note_connect_failure(t0, &"refused");
        assert!(b.accepts_new());
        b.note_connect_failure(t0, &"refused");
        assert!(!b.accepts_new());
        assert_eq!(b.stats.connect_failures, 2);
        b.revive_if_due(t0 + Duration::from_secs(9));
        assert!(!b.accepts_new());
        b.revive_if_due(t0 + Duration::from_secs(10));
        assert!(b.accepts_new());
        b.note_connect_failure(t0, &"refused");
        assert!(!b.accepts_new(), "a revived backend that fails again goes straight back down");
        let mut ok = Backend::with_fail_policy("127.0.0.1:2".parse().unwrap(), fp);
        ok.note_connect_failure(t0, &"refused");
        ok.note_connect_success();
        ok.note_connect_failure(t0, &"refused");
        assert!(ok.accepts_new(), "failures must be consecutive");
    }

    #[test]
    fn health_transitions_are_counted_once_each() {
        let mut b = Backend::new("127.0.0.1:8001".parse().unwrap()).with_health(2, 2, false);
        for ok in [false, false, false, true, true, true] {
            b.note_check(ok, "check");
        }
        assert_eq!((b.stats.went_down, b.stats.went_up), (1, 1), "down after 2 failures, up after 2 passes");
        let fp = FailPolicy { max_fails: 1, fail_timeout: Duration::from_secs(1) };
        let mut p = Backend::with_fail_policy("127.0.0.1:8002".parse().unwrap(), fp);
        let t0 = Instant::now();
        p.note_connect_failure(t0, &"refused");
        p.revive_if_due(t0 + Duration::from_secs(1));
        assert_eq!((p.stats.went_down, p.stats.went_up), (1, 1));
    }

    #[test]
    fn copies_sharing_a_backend_mark_it_down_once_and_bring_it_back_once() {
        let fp = FailPolicy { max_fails: 3, fail_timeout: Duration::from_secs(10) };
        let addr = "127.0.0.1:8003".parse().unwrap();
        let mut main = Backend::with_fail_policy(addr, fp);
        let mut worker = Backend::with_fail_policy(addr, fp);
        worker.share(main.shared());
        let t0 = Instant::now();
        main.note_connect_failure(t0, &"refused");
        worker.note_connect_failure(t0, &"refused");
        assert!(main.accepts_new() && worker.accepts_new());
        worker.note_connect_failure(t0, &"refused");
        assert!(!main.accepts_new() && !worker.accepts_new(), "3 failures in all, 2 + 1");
        assert_eq!(main.down_reason().as_deref(), Some("refused"));
        main.note_connect_failure(t0, &"refused");
        main.revive_if_due(t0 + Duration::from_secs(10));
        worker.revive_if_due(t0 + Duration::from_secs(10));
        assert!(worker.accepts_new());
        let mut sum = main.stats.clone();
        sum.add(&worker.stats);
        assert_eq!((sum.went_down, sum.went_up, sum.connect_failures), (1, 1, 4), "each transition counted once");
        // A success in one copy resets the count of both.
        worker.note_connect_success();
        assert_eq!(main.consecutive_fails(), 0);
    }

    #[test]
    fn usage_is_one_line_naming_every_backend() {
        let mut b =
            vec![Backend::new("127.0.0.1:8001".parse().unwrap()), Backend::new("127.0.0.1:8002".parse().unwrap())];
        b[0].stats.total = 6720;
        let _claims: Vec<_> = (0..3).map(|_| b[0].claim()).collect();
        let t = usage_line("web", &b);
        assert!(!t.contains('\n'), "{t}");
        assert!(t.starts_with("usage pool=web: 127.0.0.1:8001 state=up sessions=6720 active=3 "), "{t}");
        assert!(t.contains("; 127.0.0.1:8002 state=up sessions=0 "), "{t}");
    }
}
