//! Outlier ejection (HTTP mode): a backend that answers `--eject-after`
//! consecutive 5xx, or fails as many exchanges in a row (connect failed,
//! connection broke, no answer in time), is taken out of rotation for a
//! base time times the number of times it was ejected lately (capped at
//! `MAX_MULTIPLIER`), and comes back by itself when that time is over.
//! Never more than `--eject-max-percent` of the listed backends are out at
//! once: a failing pool is better served by all its backends than by few.
//!
//! This is passive, from live traffic, unlike health checks: it catches a
//! backend that accepts connections and answers its health path but fails
//! real requests.

use std::time::{Duration, Instant};

use log::{info, warn};

use crate::backend::Backend;

/// How long an ejection lasts is `base` times at most this.
pub const MAX_MULTIPLIER: u32 = 10;

/// A pool's ejection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectPolicy {
    /// Consecutive failures that eject a backend; 0 turns ejection off.
    pub after: u32,
    /// The first ejection's length; each further one adds as much.
    pub base: Duration,
    /// Most of the listed backends that may be ejected at once, in percent.
    pub max_percent: u32,
}

impl Default for EjectPolicy {
    fn default() -> Self {
        EjectPolicy { after: 0, base: Duration::from_secs(30), max_percent: 50 }
    }
}

/// What one exchange with a backend came to, for ejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer below 500.
    Success,
    /// A 5xx answer or a gateway failure, with a short reason.
    Failure(String),
}

/// One backend's ejection state.
#[derive(Debug, Clone, Default)]
pub struct Outlier {
    pub policy: EjectPolicy,
    consecutive: u32,
    last_failure: String,
    /// Ejected until then.
    until: Option<Instant>,
    /// How long the current (or last) ejection was.
    pub last_duration: Duration,
    /// The multiplier of the last ejection; steps down while it stays in.
    level: u32,
    /// When it last came back, for stepping `level` down.
    returned: Option<Instant>,
    /// Why it was ejected last (kept after it returns).
    pub reason: Option<String>,
    /// Ejections so far.
    pub ejections: u64,
    /// Ejections the `max_percent` cap held back.
    pub capped: u64,
}

impl Outlier {
    pub fn new(policy: EjectPolicy) -> Outlier {
        Outlier { policy, ..Outlier::default() }
    }

    pub fn is_ejected(&self) -> bool {
        self.until.is_some()
    }

    /// Time left of the current ejection.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.until.map(|t| t.saturating_duration_since(now))
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Count one outcome. `room`: may one more backend of the pool be
    /// ejected now (the `max_percent` cap)? Returns true when this one was
    /// ejected by it.
    pub fn record(&mut self, outcome: Outcome, now: Instant, room: bool) -> bool {
        let why = match outcome {
            Outcome::Success => {
                self.consecutive = 0;
                return false;
            }
            Outcome::Failure(why) => why,
        };
        if self.policy.after == 0 || self.is_ejected() {
            return false;
        }
        self.consecutive += 1;
        self.last_failure = why;
        if self.consecutive < self.policy.after {
            return false;
        }
        self.consecutive = 0;
        if !room {
            self.capped += 1;
            return false;
        }
        // The multiplier steps down by one for every base time spent back in rotation.
        let base = self.policy.base.max(Duration::from_millis(1));
        if let Some(back) = self.returned {
            let stayed = now.saturating_duration_since(back).as_nanos() / base.as_nanos();
            self.level = self.level.saturating_sub(u32::try_from(stayed).unwrap_or(u32::MAX));
        }
        self.level = (self.level + 1).min(MAX_MULTIPLIER);
        self.last_duration = self.policy.base * self.level;
        self.until = Some(now + self.last_duration);
        self.ejections += 1;
        self.reason = Some(format!("{} consecutive failures, last: {}", self.policy.after, self.last_failure));
        true
    }

    /// Bring it back once its time is over; true when it came back now.
    pub fn return_if_due(&mut self, now: Instant) -> bool {
        if self.until.is_some_and(|t| now >= t) {
            self.until = None;
            self.returned = Some(now);
            return true;
        }
        false
    }
}

/// May one more of `backends` be ejected under `max_percent`?
fn room(backends: &[Backend], max_percent: u32) -> bool {
    let listed = backends.iter().filter(|b| !b.removed && !b.removing).count();
    let ejected = backends.iter().filter(|b| !b.removed && b.outlier.is_ejected()).count();
    (ejected + 1) * 100 <= listed * max_percent as usize
}

/// Count `outcome` for backend `i` of a pool, ejecting it when it is due
/// and the pool has room.
pub fn record(backends: &mut [Backend], i: usize, outcome: Outcome, now: Instant) {
    let Some(b) = backends.get(i) else { return };
    if b.outlier.policy.after == 0 {
        return;
    }
    let room = room(backends, b.outlier.policy.max_percent);
    let b = &mut backends[i];
    let capped = b.outlier.capped;
    if b.outlier.record(outcome, now, room) {
        let o = &b.outlier;
        warn!("backend {} EJECTED for {:?}: {}", b.addr, o.last_duration, o.reason.as_deref().unwrap_or(""));
    } else if b.outlier.capped > capped {
        warn!(
            "backend {} not ejected after {} consecutive failures: --eject-max-percent {} reached",
            b.addr, b.outlier.policy.after, b.outlier.policy.max_percent
        );
    }
}

/// Ejected backends whose time is over come back (housekeeping tick);
/// returns the indices that came back.
pub fn return_due(backends: &mut [Backend], now: Instant) -> Vec<usize> {
    let mut back = Vec::new();
    for (i, b) in backends.iter_mut().enumerate() {
        if b.outlier.return_if_due(now) {
            info!("backend {} back from ejection after {:?}", b.addr, b.outlier.last_duration);
            back.push(i);
        }
    }
    back
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Outcome {
        Outcome::Failure("503 answer".into())
    }

    #[test]
    fn ejects_after_n_consecutive_failures_and_returns_after_the_base_time() {
        let t0 = Instant::now();
        let base = Duration::from_secs(10);
        let mut o = Outlier::new(EjectPolicy { after: 3, base, max_percent: 50 });
        assert!(!o.record(fail(), t0, true));
        assert!(!o.record(fail(), t0, true));
        assert!(!o.record(Outcome::Success, t0, true));
        assert!(!o.record(fail(), t0, true), "a success resets the count");
        assert!(!o.record(fail(), t0, true));
        assert!(o.record(fail(), t0, true));
        assert!(o.is_ejected());
        assert_eq!(o.reason.as_deref(), Some("3 consecutive failures, last: 503 answer"));
        assert_eq!(o.remaining(t0), Some(base));
        assert!(!o.return_if_due(t0 + base - Duration::from_millis(1)));
        assert!(o.return_if_due(t0 + base));
        assert!(!o.is_ejected());
        assert_eq!(o.ejections, 1);
    }

    #[test]
    fn ejections_grow_with_each_one_and_shrink_while_it_stays_in() {
        let t0 = Instant::now();
        let base = Duration::from_secs(10);
        let mut o = Outlier::new(EjectPolicy { after: 1, base, max_percent: 100 });
        let mut now = t0;
        for n in 1..=12u32 {
            assert!(o.record(fail(), now, true));
            assert_eq!(o.last_duration, base * n.min(MAX_MULTIPLIER), "ejection {n}");
            now += o.last_duration;
            assert!(o.return_if_due(now));
        }
        // 25 base times back in rotation: the multiplier steps down to 0, then 1.
        assert!(o.record(fail(), now + base * 25, true));
        assert_eq!(o.last_duration, base);
    }

    #[test]
    fn the_cap_holds_an_ejection_back_and_off_means_off() {
        let t0 = Instant::now();
        let mut o = Outlier::new(EjectPolicy { after: 2, base: Duration::from_secs(1), max_percent: 50 });
        assert!(!o.record(fail(), t0, false));
        assert!(!o.record(fail(), t0, false));
        assert!(!o.is_ejected());
        assert_eq!(o.capped, 1);
        let mut off = Outlier::new(EjectPolicy::default());
        for _ in 0..100 {
            assert!(!off.record(fail(), t0, true));
        }
    }

    #[test]
    fn never_more_than_max_percent_of_the_pool() {
        let t0 = Instant::now();
        let policy = EjectPolicy { after: 1, base: Duration::from_secs(5), max_percent: 50 };
        let mut b: Vec<Backend> =
            (0..4).map(|i| Backend::new(std::net::SocketAddr::from(([127, 0, 0, 1], 8001 + i)))).collect();
        for x in b.iter_mut() {
            x.outlier = Outlier::new(policy);
        }
        for i in 0..4 {
            record(&mut b, i, fail(), t0);
        }
        let out: Vec<bool> = b.iter().map(|x| x.outlier.is_ejected()).collect();
        assert_eq!(out, [true, true, false, false], "2 of 4 at 50%");
        assert!(!b[0].accepts_new() && b[2].accepts_new());
        assert_eq!(b[0].state_name(), "ejected");
        assert_eq!(return_due(&mut b, t0 + Duration::from_secs(5)), [0, 1]);
        assert!(b[0].accepts_new());
        // One backend alone at 50% is never ejected.
        let mut one = vec![Backend::new("127.0.0.1:9".parse().unwrap())];
        one[0].outlier = Outlier::new(policy);
        record(&mut one, 0, fail(), t0);
        assert!(!one[0].outlier.is_ejected());
    }
}
