//! The retry budget of an HTTP frontend: retries (after a failed connect,
//! or a 502/503 answer to an idempotent request) may be at most
//! `--retry-budget` percent of the requests of the last `WINDOW_SECS`
//! seconds, plus `--retry-min-per-sec` per second of that window, so that
//! a quiet proxy can still retry. When half the backends fail, unbounded
//! retries would add half again to their load exactly when they can least
//! take it; the budget keeps that amplification at its percentage.
//!
//! The window is one per frontend ([`SharedWindow`]), shared by every
//! worker thread's copy of it, so `--workers N` does not multiply the budget.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Seconds of history the budget looks at.
pub const WINDOW_SECS: u64 = 10;

/// A frontend's budget settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudgetConfig {
    /// Retries allowed per 100 requests.
    pub percent: u32,
    /// Retries allowed per second on top, whatever the traffic.
    pub min_per_sec: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig { percent: 20, min_per_sec: 10 }
    }
}

/// Requests and retries per second of the last `WINDOW_SECS` seconds.
#[derive(Debug)]
struct Window {
    start: Instant,
    /// Per slot (second modulo the window): which second it holds, requests, retries.
    slots: [(u64, u64, u64); WINDOW_SECS as usize],
}

impl Window {
    fn slot(&mut self, now: Instant) -> &mut (u64, u64, u64) {
        let sec = now.saturating_duration_since(self.start).as_secs();
        let s = &mut self.slots[(sec % WINDOW_SECS) as usize];
        if s.0 != sec {
            *s = (sec, 0, 0);
        }
        s
    }

    fn totals(&self, now: Instant) -> (u64, u64) {
        let sec = now.saturating_duration_since(self.start).as_secs();
        let live = self.slots.iter().filter(|s| s.0 != u64::MAX && s.0 <= sec && sec - s.0 < WINDOW_SECS);
        live.fold((0, 0), |(q, r), s| (q + s.1, r + s.2))
    }
}

/// A frontend's window, shared by every worker thread's copy of the
/// frontend (it travels in the `Config`, as round robin's position).
#[derive(Debug, Clone)]
pub struct SharedWindow(Arc<Mutex<Window>>);

impl Default for SharedWindow {
    fn default() -> Self {
        SharedWindow::starting(Instant::now())
    }
}

impl SharedWindow {
    fn starting(now: Instant) -> SharedWindow {
        SharedWindow(Arc::new(Mutex::new(Window { start: now, slots: [(u64::MAX, 0, 0); WINDOW_SECS as usize] })))
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One copy of a frontend's budget: its settings and the shared window.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    pub config: RetryBudgetConfig,
    window: SharedWindow,
    /// Retries this copy refused for want of budget, since start (each
    /// worker counts its own; `/stats` adds them up).
    pub exhausted: u64,
}

impl RetryBudget {
    /// A budget with a window of its own.
    pub fn new(config: RetryBudgetConfig, now: Instant) -> RetryBudget {
        RetryBudget::sharing(config, SharedWindow::starting(now))
    }

    /// A budget counting in `window`, with the other copies that share it.
    pub fn sharing(config: RetryBudgetConfig, window: SharedWindow) -> RetryBudget {
        RetryBudget { config, window, exhausted: 0 }
    }

    /// Requests and retries in the window ending at `now`.
    pub fn window(&self, now: Instant) -> (u64, u64) {
        self.window.lock().totals(now)
    }

    /// Retries the window allows in all.
    pub fn allowed(&self, now: Instant) -> u64 {
        self.allowed_of(self.window(now).0)
    }

    fn allowed_of(&self, requests: u64) -> u64 {
        requests * u64::from(self.config.percent) / 100 + u64::from(self.config.min_per_sec) * WINDOW_SECS
    }

    /// A new request arrived (it earns the budget its share).
    pub fn note_request(&mut self, now: Instant) {
        self.window.lock().slot(now).1 += 1;
    }

    /// Would a retry be allowed now (nothing counted)?
    pub fn can_retry(&self, now: Instant) -> bool {
        let (requests, retries) = self.window(now);
        retries < self.allowed_of(requests)
    }

    /// May a retry go out now? Counts it when yes, and the refusal when no.
    /// Check and count are one step under the lock, so two workers cannot
    /// both take the last retry.
    pub fn try_retry(&mut self, now: Instant) -> bool {
        let mut w = self.window.lock();
        let (requests, retries) = w.totals(now);
        if retries < self.allowed_of(requests) {
            w.slot(now).2 += 1;
            true
        } else {
            drop(w);
            self.exhausted += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn twenty_percent_of_requests_and_no_floor() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(RetryBudgetConfig { percent: 20, min_per_sec: 0 }, t0);
        assert!(!b.try_retry(t0), "no request yet: no budget");
        let mut granted = 0;
        for _ in 0..100 {
            b.note_request(t0);
            // Every request fails once and wants a retry.
            granted += usize::from(b.try_retry(t0));
        }
        assert_eq!(granted, 20);
        assert_eq!(b.exhausted, 81);
    }

    #[test]
    fn copies_sharing_a_window_share_one_budget() {
        let t0 = Instant::now();
        let config = RetryBudgetConfig { percent: 50, min_per_sec: 0 };
        let window = SharedWindow::starting(t0);
        let (mut a, mut b) = (RetryBudget::sharing(config, window.clone()), RetryBudget::sharing(config, window));
        for _ in 0..2 {
            a.note_request(t0);
            b.note_request(t0);
        }
        assert_eq!(a.allowed(t0), 2, "both copies' requests count");
        assert!(a.try_retry(t0) && b.try_retry(t0));
        assert!(!a.try_retry(t0) && !b.try_retry(t0), "2 in all, not 2 each");
        assert_eq!((a.exhausted, b.exhausted), (1, 1), "each copy counts its own refusals");
    }

    #[test]
    fn the_floor_allows_retries_without_traffic_and_the_window_forgets() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(RetryBudgetConfig { percent: 0, min_per_sec: 2 }, t0);
        let granted = (0..50).filter(|_| b.try_retry(t0)).count();
        assert_eq!(granted, 20, "2 per second over a 10 s window");
        let later = t0 + Duration::from_secs(WINDOW_SECS);
        assert_eq!(b.window(later), (0, 0), "a whole window later nothing counts");
        assert!(b.try_retry(later));
        let mut pct = RetryBudget::new(RetryBudgetConfig { percent: 50, min_per_sec: 0 }, t0);
        for s in 0..WINDOW_SECS {
            pct.note_request(t0 + Duration::from_secs(s));
            pct.note_request(t0 + Duration::from_secs(s));
        }
        assert_eq!(pct.allowed(t0 + Duration::from_secs(WINDOW_SECS - 1)), 10);
        assert_eq!(pct.allowed(t0 + Duration::from_secs(WINDOW_SECS)), 9, "the oldest second left the window");
    }
}
