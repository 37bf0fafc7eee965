//! Health of one backend as HAProxy counts it: `rise` consecutive good
//! checks bring a down backend up, `fall` consecutive bad ones (checks or
//! failed connects from real traffic) take an up backend down.
//!
//! `HealthState` is pure bookkeeping and reports transitions; the reactor
//! runs the checks (see `checks.rs`) and logs what changed.

use std::collections::VecDeque;
use std::time::Duration;

/// How a backend is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// The TCP connect succeeds.
    Tcp,
    /// `GET path` answers 2xx.
    Http { path: String },
}

impl CheckKind {
    /// `tcp` or `http:/path`.
    pub fn parse(s: &str) -> Result<CheckKind, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("tcp") {
            return Ok(CheckKind::Tcp);
        }
        match t.strip_prefix("http:") {
            Some(path) if path.starts_with('/') && !path.contains([' ', '\r', '\n']) => {
                Ok(CheckKind::Http { path: path.to_string() })
            }
            _ => Err(format!("invalid health check \"{s}\" (expected tcp or http:/PATH)")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// Results kept per backend for `/stats`.
const HISTORY: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    up: bool,
    good_in_a_row: u32,
    bad_in_a_row: u32,
    /// Most recent last: (check passed, reason when it did not).
    history: VecDeque<(bool, String)>,
}

/// A change of state, to be logged with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    WentUp { after: u32 },
    WentDown { after: u32, reason: String },
}

impl Default for HealthState {
    fn default() -> Self {
        // A backend starts up: traffic is not held back until a first check.
        HealthState { up: true, good_in_a_row: 0, bad_in_a_row: 0, history: VecDeque::new() }
    }
}

impl HealthState {
    /// A backend that must pass `rise` checks before it gets traffic.
    pub fn starting_down() -> HealthState {
        HealthState { up: false, ..HealthState::default() }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn history(&self) -> impl Iterator<Item = &(bool, String)> {
        self.history.iter()
    }

    /// Count one result toward `rise`/`fall`.
    pub fn record(&mut self, ok: bool, reason: &str, rise: u32, fall: u32) -> Option<Transition> {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((ok, if ok { String::new() } else { reason.to_string() }));
        if ok {
            self.good_in_a_row += 1;
            self.bad_in_a_row = 0;
            if !self.up && self.good_in_a_row >= rise.max(1) {
                self.up = true;
                return Some(Transition::WentUp { after: self.good_in_a_row });
            }
        } else {
            self.bad_in_a_row += 1;
            self.good_in_a_row = 0;
            if self.up && self.bad_in_a_row >= fall.max(1) {
                self.up = false;
                return Some(Transition::WentDown { after: self.bad_in_a_row, reason: reason.to_string() });
            }
        }
        None
    }

    /// Consecutive bad results so far (for log lines like "3/3").
    pub fn bad_in_a_row(&self) -> u32 {
        self.bad_in_a_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_then_rise_exactly_at_thresholds() {
        let mut h = HealthState::default();
        assert_eq!(h.record(false, "refused", 2, 3), None);
        assert_eq!(h.record(false, "refused", 2, 3), None);
        assert_eq!(h.record(false, "refused", 2, 3), Some(Transition::WentDown { after: 3, reason: "refused".into() }));
        assert!(!h.is_up());
        assert_eq!(h.record(false, "refused", 2, 3), None, "already down: no second transition");
        assert_eq!(h.record(true, "", 2, 3), None);
        assert_eq!(h.record(true, "", 2, 3), Some(Transition::WentUp { after: 2 }));
        assert!(h.is_up());
    }

    #[test]
    fn a_good_result_resets_the_bad_count() {
        let mut h = HealthState::default();
        h.record(false, "x", 2, 3);
        h.record(false, "x", 2, 3);
        h.record(true, "", 2, 3);
        assert_eq!(h.record(false, "x", 2, 3), None);
        assert!(h.is_up());
    }

    #[test]
    fn history_is_bounded() {
        let mut h = HealthState::default();
        for i in 0..25 {
            h.record(i % 2 == 0, "x", 2, 3);
        }
        assert_eq!(h.history().count(), HISTORY);
    }

    #[test]
    fn check_kinds() {
        assert_eq!(CheckKind::parse("tcp"), Ok(CheckKind::Tcp));
        assert_eq!(CheckKind::parse("http:/heartbeat"), Ok(CheckKind::Http { path: "/heartbeat".into() }));
        assert!(CheckKind::parse("http:heartbeat").unwrap_err().contains("\"http:heartbeat\""));
        assert!(CheckKind::parse("icmp").is_err());
    }
}
