//! A frontend's policy with its shadow policies: every pick the real policy
//! makes, each shadow makes too, on the same key and candidates, and only
//! its choice is counted; nothing is sent for it. Each shadow is its own
//! policy instance (its own state, seeded like the real one) and gets the
//! same response times through `observe`, so a user compares policies on
//! live traffic in one run. The real policy never sees a shadow: it is asked
//! first and its answer is what the caller gets.
//!
//! Probes are run for the real policy only (a shadow must not add I/O):
//! a `fastest_ranked` shadow hears probe results only when the real policy
//! is `fastest_ranked` too, and otherwise shares equally, as it does before
//! its first probe round.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Candidates, Explanation, PickKey, Policy, PolicyKind, PolicyParams, Rotation};

/// One shadow: its policy and what it would have done.
pub struct Shadow {
    pub kind: PolicyKind,
    policy: Box<dyn Policy>,
    /// Picks it would have given each backend (index as in the pool).
    pub picks: Vec<u64>,
    /// Decisions where it chose the same backend as the real policy (or none, as it did).
    pub agreed: u64,
}

/// What the last decision was, for the access log of the request that made it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PickNote {
    /// Each shadow's choice, in the order the shadows were named.
    pub shadows: Vec<Option<SocketAddr>>,
    /// The compact explanation of the real pick (`--access-log-explain`).
    pub explain: Option<String>,
}

/// The counts of a `Shadowed`, to add up over the workers that each run a copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabCounts {
    pub decisions: u64,
    /// The real policy's picks per backend.
    pub picks: Vec<u64>,
    /// Per shadow, in the order named: (decisions it agreed on, its picks per backend).
    pub shadows: Vec<(u64, Vec<u64>)>,
}

fn add_to(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

impl LabCounts {
    /// Add another copy's counts (the same shadows, in the same order).
    pub fn add(&mut self, other: &LabCounts) {
        self.decisions += other.decisions;
        add_to(&mut self.picks, &other.picks);
        if self.shadows.len() < other.shadows.len() {
            self.shadows.resize(other.shadows.len(), (0, Vec::new()));
        }
        for (a, b) in self.shadows.iter_mut().zip(&other.shadows) {
            a.0 += b.0;
            add_to(&mut a.1, &b.1);
        }
    }
}

pub struct Shadowed {
    real: Box<dyn Policy>,
    shadows: Vec<Shadow>,
    /// The real policy's own picks per backend (its share, on the same footing as the shadows').
    picks: Vec<u64>,
    /// Decisions made (each pick, a retry's included).
    decisions: u64,
    /// Explain every real pick for the access log.
    explain_each: bool,
    last: PickNote,
}

fn count(v: &mut Vec<u64>, i: Option<usize>) {
    if let Some(i) = i {
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        v[i] += 1;
    }
}

impl Shadowed {
    pub fn new(kind: PolicyKind, shadows: &[PolicyKind], params: &PolicyParams, explain_each: bool) -> Shadowed {
        Shadowed {
            real: kind.build(params),
            shadows: shadows
                .iter()
                .map(|&k| Shadow { kind: k, policy: k.build(params), picks: Vec::new(), agreed: 0 })
                .collect(),
            picks: Vec::new(),
            decisions: 0,
            explain_each,
            last: PickNote { shadows: vec![None; shadows.len()], explain: None },
        }
    }

    /// A new real policy (admin API, reload); the shadows and their counts stay.
    pub fn replace_real(&mut self, real: Box<dyn Policy>) {
        self.real = real;
    }

    pub fn shadows(&self) -> &[Shadow] {
        &self.shadows
    }

    pub fn shadows_mut(&mut self) -> &mut [Shadow] {
        &mut self.shadows
    }

    /// The real policy's picks per backend.
    pub fn picks(&self) -> &[u64] {
        &self.picks
    }

    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    pub fn counts(&self) -> LabCounts {
        LabCounts {
            decisions: self.decisions,
            picks: self.picks.clone(),
            shadows: self.shadows.iter().map(|s| (s.agreed, s.picks.clone())).collect(),
        }
    }

    /// `Policy::pick`, callable without the trait in scope.
    pub fn pick(&mut self, key: &PickKey, c: &Candidates) -> Option<usize> {
        Policy::pick(self, key, c)
    }

    /// `Policy::observe`, callable without the trait in scope.
    pub fn observe(&mut self, i: usize, latency: Duration, now: Instant) {
        Policy::observe(self, i, latency, now)
    }

    /// The shadows' choices (and the explanation) of the last decision.
    pub fn last_note(&self) -> &PickNote {
        &self.last
    }
}

impl Policy for Shadowed {
    fn pick(&mut self, key: &PickKey, c: &Candidates) -> Option<usize> {
        if self.explain_each {
            // Explaining first changes nothing the pick depends on.
            self.last.explain = Some(self.real.explain(key, c).compact(c));
        }
        let got = self.real.pick(key, c);
        self.decisions += 1;
        count(&mut self.picks, got);
        for (s, note) in self.shadows.iter_mut().zip(self.last.shadows.iter_mut()) {
            let would = s.policy.pick(key, c);
            count(&mut s.picks, would);
            s.agreed += u64::from(would == got);
            *note = would.map(|i| c.addr(i));
        }
        got
    }

    fn explain(&mut self, key: &PickKey, c: &Candidates) -> Explanation {
        self.real.explain(key, c)
    }

    fn observe(&mut self, i: usize, latency: Duration, now: Instant) {
        self.real.observe(i, latency, now);
        for s in &mut self.shadows {
            s.policy.observe(i, latency, now);
        }
    }

    fn wants_probes(&self) -> bool {
        self.real.wants_probes()
    }

    fn balance_factor(&self) -> Option<f64> {
        self.real.balance_factor()
    }

    /// The real policy's position only: a round_robin shadow turning the
    /// shared rotation would change the real picks.
    fn share_rotation(&mut self, r: Rotation) {
        self.real.share_rotation(r);
    }

    fn probed(&mut self, i: usize, result: Option<Duration>) {
        self.real.probed(i, result);
        for s in &mut self.shadows {
            s.policy.probed(i, result);
        }
    }
}

impl Shadow {
    /// What this shadow would pick for `key` now, and why.
    pub fn explain(&mut self, key: &PickKey, c: &Candidates) -> Explanation {
        self.policy.explain(key, c)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn shadows_never_change_the_real_pick() {
        let params = PolicyParams { seed: 5, maglev_size: 251, balance_factor: None, ..PolicyParams::default() };
        for kind in PolicyKind::ALL {
            let bare = workload(kind.build(&params).as_mut(), 500, false);
            let mut with = Shadowed::new(kind, &PolicyKind::ALL, &params, true);
            assert_eq!(workload(&mut with, 500, false), bare, "{kind} with every policy as a shadow");
            // Its own kind as a shadow agrees on every decision.
            let mut twin = Shadowed::new(kind, &[kind], &params, false);
            workload(&mut twin, 500, false);
            assert_eq!(twin.shadows()[0].agreed, twin.decisions(), "{kind}");
            assert_eq!(twin.shadows()[0].picks, twin.picks(), "{kind}");
        }
    }

    #[test]
    fn shadow_counts_and_notes() {
        let b = backends(3);
        let params = PolicyParams::default();
        let mut p = Shadowed::new(PolicyKind::RoundRobin, &[PolicyKind::IpHash], &params, true);
        let mut agreed = 0;
        for _ in 0..30 {
            let got = p.pick(&key(1), &Candidates::new(&b, &[]));
            let note = p.last_note().clone();
            let shadow = note.shadows[0].expect("the shadow picks too");
            agreed += u64::from(got.map(|i| b[i].addr) == Some(shadow));
            assert!(note.explain.as_deref().is_some_and(|e| e.contains('*')), "{note:?}");
        }
        let s = &p.shadows()[0];
        assert_eq!(s.picks.iter().sum::<u64>(), 30);
        assert_eq!(s.picks.iter().filter(|&&n| n == 30).count(), 1, "ip_hash sends one client to one backend");
        assert_eq!(p.picks(), [10, 10, 10]);
        assert_eq!(s.agreed, agreed);
        assert_eq!(s.agreed, 10);
        // Two workers' copies add up.
        let mut total = p.counts();
        total.add(&p.counts());
        assert_eq!((total.decisions, total.picks.clone()), (60, vec![20, 20, 20]));
        assert_eq!(total.shadows[0].0, 20);
        assert_eq!(total.shadows[0].1.iter().sum::<u64>(), 60);
    }
}
