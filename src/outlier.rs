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
//!
//! With `--workers N` the state is one per backend ([`Ejection`]), shared
//! by every worker thread's copy: failures add up whichever worker saw
//! them, an ejection keeps every worker off the backend, and the cap holds
//! for the whole pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
        self.count(outcome) && self.eject(now, room)
    }

    /// Count one outcome; true when it is the `after`-th failure in a row
    /// (the count starts over): an ejection is due, if the pool has room.
    pub fn count(&mut self, outcome: Outcome) -> bool {
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
        true
    }

    /// Eject it now (an ejection was due) if `room`, else count the
    /// hold-back. Returns true when it was ejected.
    pub fn eject(&mut self, now: Instant, room: bool) -> bool {
        // Another worker's failures may have ejected it meanwhile.
        if self.is_ejected() {
            return false;
        }
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

/// One backend's ejection state, shared by every worker thread's copy of
/// the backend (a clone shares it, as the in-use count).
#[derive(Debug, Clone, Default)]
pub struct Ejection(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// Whether `state` says ejected: read without the lock on every pick.
    ejected: AtomicBool,
    /// `policy.after > 0`: when off, outcomes are not even counted.
    on: AtomicBool,
    state: Mutex<Outlier>,
}

impl Ejection {
    pub fn new(policy: EjectPolicy) -> Ejection {
        let e = Ejection::default();
        e.set_policy(policy);
        e
    }

    /// New settings (a reload); an ejection under way keeps its length.
    pub fn set_policy(&self, policy: EjectPolicy) {
        self.update(|o| o.policy = policy);
    }

    pub fn is_ejected(&self) -> bool {
        self.0.ejected.load(Ordering::Acquire)
    }

    /// The state as it is now (for `/stats` and `/metrics`); hold it briefly.
    pub fn lock(&self) -> MutexGuard<'_, Outlier> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Is this the same state as `other`'s (one backend)?
    pub fn same(&self, other: &Ejection) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Change the state under its lock, keeping the lock-free flags in step.
    fn update<R>(&self, f: impl FnOnce(&mut Outlier) -> R) -> R {
        let mut o = self.lock();
        let r = f(&mut o);
        self.0.ejected.store(o.is_ejected(), Ordering::Release);
        self.0.on.store(o.policy.after > 0, Ordering::Relaxed);
        r
    }
}

/// Ejection decisions, one at a time in the process: checking the cap and
/// ejecting are one step even when two workers' copies of a pool decide at
/// once (ejections are rare, so one lock costs nothing).
static DECIDING: Mutex<()> = Mutex::new(());

/// May one more of `backends` be ejected under `max_percent`?
fn room(backends: &[Backend], max_percent: u32) -> bool {
    let listed = backends.iter().filter(|b| !b.removed && !b.removing).count();
    let ejected = backends.iter().filter(|b| !b.removed && b.outlier.is_ejected()).count();
    (ejected + 1) * 100 <= listed * max_percent as usize
}

/// Count `outcome` for backend `i` of a pool, ejecting it when it is due
/// and the pool has room.
pub fn record(backends: &[Backend], i: usize, outcome: Outcome, now: Instant) {
    let Some(b) = backends.get(i) else { return };
    if !b.outlier.0.on.load(Ordering::Relaxed) || !b.outlier.update(|o| o.count(outcome)) {
        return;
    }
    // The backend's own lock is not held here: `room` reads every backend.
    let _one = DECIDING.lock().unwrap_or_else(PoisonError::into_inner);
    let max_percent = b.outlier.lock().policy.max_percent;
    let room = room(backends, max_percent);
    let said = b.outlier.update(|o| {
        let capped = o.capped;
        if o.eject(now, room) {
            Some(format!("EJECTED for {:?}: {}", o.last_duration, o.reason.as_deref().unwrap_or("")))
        } else {
            (o.capped > capped).then(|| {
                format!(
                    "not ejected after {} consecutive failures: --eject-max-percent {} reached",
                    o.policy.after, o.policy.max_percent
                )
            })
        }
    });
    if let Some(said) = said {
        warn!("backend {} {said}", b.addr);
    }
}

/// Ejected backends whose time is over come back (the main reactor's
/// housekeeping tick); returns the indices that came back.
pub fn return_due(backends: &[Backend], now: Instant) -> Vec<usize> {
    let mut back = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        if b.outlier.is_ejected() && b.outlier.update(|o| o.return_if_due(now)) {
            info!("backend {} back from ejection after {:?}", b.addr, b.outlier.lock().last_duration);
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
            x.outlier = Ejection::new(policy);
        }
        for i in 0..4 {
            record(&b, i, fail(), t0);
        }
        let out: Vec<bool> = b.iter().map(|x| x.outlier.is_ejected()).collect();
        assert_eq!(out, [true, true, false, false], "2 of 4 at 50%");
        assert!(!b[0].accepts_new() && b[2].accepts_new());
        assert_eq!(b[0].state_name(), "ejected");
        assert_eq!(return_due(&b, t0 + Duration::from_secs(5)), [0, 1]);
        assert!(b[0].accepts_new());
        // A worker's copy of the pool shares the state: the cap counts the
        // ejections made through either copy, and failures add up.
        let mut copy: Vec<Backend> = b.iter().map(|x| Backend::new(x.addr)).collect();
        for (c, x) in copy.iter_mut().zip(&b) {
            c.share(x.shared());
        }
        record(&copy, 2, fail(), t0);
        record(&b, 3, fail(), t0);
        record(&copy, 0, fail(), t0);
        let out: Vec<bool> = b.iter().map(|x| x.outlier.is_ejected()).collect();
        assert_eq!(out, [false, false, true, true], "2 of 4 at 50%, over both copies");
        assert_eq!(b[0].outlier.lock().capped, 1);
        let mut x = vec![Backend::new(b[0].addr)];
        x[0].outlier = Ejection::new(EjectPolicy { after: 2, ..policy });
        let mut y = vec![Backend::new(b[0].addr)];
        y[0].share(x[0].shared());
        record(&x, 0, fail(), t0);
        record(&y, 0, fail(), t0);
        assert_eq!(x[0].outlier.lock().capped, 1, "1 + 1 failures made an ejection due (the cap held it)");
        // One backend alone at 50% is never ejected.
        let mut one = vec![Backend::new("127.0.0.1:9".parse().unwrap())];
        one[0].outlier = Ejection::new(policy);
        record(&one, 0, fail(), t0);
        assert!(!one[0].outlier.is_ejected());
    }
}
