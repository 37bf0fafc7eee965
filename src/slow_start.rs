//! Slow start: a backend that joins the pool or comes back up gets a
//! growing share of new work over `--slow-start`, so a cold backend (empty
//! caches, JIT not warm, connection pools not filled) is not flooded.
//!
//! The ramp is applied around the policies, never inside one: when a policy
//! picks a ramping backend, the pick is admitted only for a share `factor`
//! of such picks, else that backend is excluded and the policy picks again
//! among the rest. That works the same for every policy, hashing ones
//! included (a refused key goes on to its next backend on the ring or
//! table), and leaves the policies' own state (rings, tables, weights)
//! untouched, so nothing is rebuilt while a backend ramps.
//!
//! Admission is a credit counter, not a coin toss: each pick adds `factor`
//! to the backend's credit and a pick is admitted when the credit reaches 1.
//! The share is then exact and deterministic (same picks, same answers),
//! which a seeded coin would only be on average.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::policy::{Candidates, PickKey, Policy};

/// The smallest share a ramping backend gets, so it is tried at all.
const MIN_FACTOR: f64 = 0.01;

/// One backend's ramp.
#[derive(Debug, Clone, Default)]
pub struct Ramp {
    /// `None`: slow start is off for this backend's pool.
    pub duration: Option<Duration>,
    /// When the backend joined or came back up; `None` once the ramp is over.
    since: Option<Instant>,
    credit: f64,
}

impl Ramp {
    pub fn new(duration: Option<Duration>) -> Ramp {
        Ramp { duration: duration.filter(|d| !d.is_zero()), since: None, credit: 0.0 }
    }

    /// The backend joined or came back up at `now`: start ramping (if on).
    pub fn start(&mut self, now: Instant) {
        if self.duration.is_some() {
            self.since = Some(now);
            self.credit = 0.0;
        }
    }

    /// When the ramp started (`None`: not ramping).
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// A worker's copy ramps as the main reactor's backend does (which
    /// starts the ramp when checks or a join say so).
    pub fn follow(&mut self, main: &Ramp) {
        if self.since != main.since || self.duration != main.duration {
            *self = Ramp { credit: 0.0, ..main.clone() };
        }
    }

    /// The share of its full traffic the backend may take at `now`: from
    /// 1% at the start of the ramp to 1 at its end, linearly.
    pub fn factor(&self, now: Instant) -> f64 {
        match (self.duration, self.since) {
            (Some(d), Some(since)) => {
                (now.saturating_duration_since(since).as_secs_f64() / d.as_secs_f64()).clamp(MIN_FACTOR, 1.0)
            }
            _ => 1.0,
        }
    }

    /// Is the backend still ramping at `now`? Ends the ramp once it is over.
    pub fn ramping(&mut self, now: Instant) -> bool {
        if self.since.is_some() && self.factor(now) >= 1.0 {
            self.since = None;
        }
        self.since.is_some()
    }

    /// A policy picked this backend at `now`: may it take the work?
    pub fn admit(&mut self, now: Instant) -> bool {
        if !self.ramping(now) {
            return true;
        }
        self.credit += self.factor(now);
        if self.credit >= 1.0 {
            self.credit -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Ask `policy` for a backend outside `tried`, with the ramps applied: a
/// refused pick is excluded and the policy asked again. When every usable
/// backend refused, the policy's first choice is taken anyway (a ramping
/// backend alone in the pool still serves). At most one pick per backend.
pub fn pick(
    policy: &mut dyn Policy,
    key: &PickKey,
    backends: &mut [Backend],
    tried: &[usize],
    now: Instant,
) -> Option<usize> {
    let first = policy.pick(key, &Candidates::new(backends, tried))?;
    if backends[first].ramp.admit(now) {
        return Some(first);
    }
    // Only a ramping backend gets here: the common path allocates nothing.
    let mut excluded = tried.to_vec();
    excluded.push(first);
    for _ in 0..backends.len() {
        let Some(i) = policy.pick(key, &Candidates::new(backends, &excluded)) else { break };
        if backends[i].ramp.admit(now) {
            return Some(i);
        }
        excluded.push(i);
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::{backends, hkey, key};
    use crate::policy::{PolicyKind, PolicyParams};

    #[test]
    fn factor_grows_linearly_from_one_percent_to_one() {
        let t0 = Instant::now();
        let mut r = Ramp::new(Some(Duration::from_secs(100)));
        assert_eq!(r.factor(t0), 1.0, "not started: full share");
        r.start(t0);
        assert_eq!(r.factor(t0), MIN_FACTOR);
        assert!((r.factor(t0 + Duration::from_secs(25)) - 0.25).abs() < 1e-9);
        assert!(r.ramping(t0 + Duration::from_secs(99)));
        assert!(!r.ramping(t0 + Duration::from_secs(100)), "the ramp ends at its duration");
        assert_eq!(r.factor(t0 + Duration::from_secs(100)), 1.0);
        let mut off = Ramp::new(Some(Duration::ZERO));
        off.start(t0);
        assert!(!off.ramping(t0), "0 turns slow start off");
    }

    #[test]
    fn admission_share_is_the_factor_exactly() {
        let t0 = Instant::now();
        let mut r = Ramp::new(Some(Duration::from_secs(10)));
        r.start(t0);
        let at = t0 + Duration::from_secs(2); // factor 0.2
        let admitted = (0..100).filter(|_| r.admit(at)).count();
        assert_eq!(admitted, 20);
    }

    /// Every policy, the hashing ones included: a backend that just joined
    /// a pool of 4 gets its ramp's share of what it would get, and the
    /// others take the rest.
    #[test]
    fn a_new_backend_gets_its_ramp_share_in_every_policy() {
        let t0 = Instant::now();
        let params = PolicyParams { maglev_size: 251, ..PolicyParams::default() };
        for kind in PolicyKind::ALL {
            let mut policy = kind.build(&params);
            let mut b = backends(4);
            for x in b.iter_mut() {
                x.ramp = Ramp::new(Some(Duration::from_secs(100)));
            }
            b[3].ramp.start(t0);
            let at = t0 + Duration::from_secs(5); // factor 0.05
            let mut counts = [0usize; 4];
            for n in 0..4000u64 {
                let k = if n % 2 == 0 { hkey(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) } else { key((n % 251) as u8) };
                let i = pick(policy.as_mut(), &k, &mut b, &[], at).expect("a pick");
                counts[i] += 1;
            }
            // Unramped it would get about 1000 of 4000 (latency policies
            // without samples may favour it more: still at most 5% of all).
            assert!(counts[3] <= 200, "{kind}: the ramping backend got {counts:?}");
            assert!(counts[..3].iter().all(|&c| c > 0), "{kind}: {counts:?}");
        }
    }

    #[test]
    fn a_backend_coming_back_up_ramps_and_one_up_from_the_start_does_not() {
        use crate::backend::FailPolicy;
        let t0 = Instant::now();
        let ramp = Ramp::new(Some(Duration::from_secs(60)));
        let fp = FailPolicy { max_fails: 1, fail_timeout: Duration::from_secs(1) };
        let mut b = Backend::with_fail_policy("127.0.0.1:1".parse().unwrap(), fp);
        b.ramp = ramp.clone();
        assert!(!b.ramp.ramping(t0), "configured backends start at full share");
        b.note_connect_failure(t0, &"refused");
        b.revive_if_due(t0 + Duration::from_secs(1));
        assert!(b.ramp.ramping(t0 + Duration::from_secs(2)), "back after --fail-timeout: ramping");
        let mut h = Backend::new("127.0.0.1:2".parse().unwrap()).with_health(1, 1, true);
        h.ramp = ramp;
        h.note_check(true, "ok");
        assert!(h.accepts_new() && h.ramp.ramping(Instant::now()), "up after its checks: ramping");
    }

    #[test]
    fn a_ramping_backend_alone_still_serves_and_tried_ones_stay_out() {
        let t0 = Instant::now();
        let mut policy = PolicyKind::RoundRobin.build(&PolicyParams::default());
        let mut b = backends(2);
        b[0].ramp = Ramp::new(Some(Duration::from_secs(100)));
        b[0].ramp.start(t0);
        assert_eq!(pick(policy.as_mut(), &key(1), &mut b, &[1], t0), Some(0), "the only candidate serves");
        assert_eq!(pick(policy.as_mut(), &key(1), &mut b, &[0, 1], t0), None);
        for _ in 0..10 {
            assert_eq!(pick(policy.as_mut(), &key(1), &mut b, &[], t0), Some(1), "1% share: 0 is refused");
        }
    }
}
