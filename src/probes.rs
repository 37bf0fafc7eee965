//! Speed probes for `fastest_ranked`: time a whole transfer of
//! `--probe-path` from each backend (`GET` over HTTP/1.0, read to the end),
//! on non-blocking sockets inside the reactor. A round runs at start, every
//! `--probe-interval`, and sooner (at most every `IDLE_ROUND`) while the
//! proxy has no clients, so measuring never competes with real traffic.

use std::time::{Duration, Instant};

use log::{debug, info};
use mio::Registry;
use slab::Slab;

use crate::backend::Backend;
use crate::connection::is_descriptor_exhaustion;
use crate::outbound::{Get, Progress, Until};
use crate::policy::Policy;
use crate::server::tokens::Owner;

/// An idle proxy re-probes this often at most.
const IDLE_ROUND: Duration = Duration::from_secs(30);
/// A probe taking longer than this has failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

struct Probe {
    backend: usize,
    get: Get,
    started: Instant,
}

pub struct Prober {
    path: String,
    interval: Duration,
    probes: Slab<Probe>,
    next_round: Instant,
    last_round: Option<Instant>,
    /// Index of the frontend whose policy is fed, for tokens.
    frontend: usize,
}

impl Prober {
    pub fn new(path: String, interval: Duration, frontend: usize, now: Instant) -> Prober {
        Prober { path, interval, probes: Slab::new(), next_round: now, last_round: None, frontend }
    }

    pub fn next_deadline(&self) -> Instant {
        self.probes.iter().map(|(_, p)| p.started + PROBE_TIMEOUT).fold(self.next_round, Instant::min)
    }

    /// Start a round when due, and fail probes that took too long.
    pub fn on_timers(
        &mut self,
        now: Instant,
        idle: bool,
        backends: &[Backend],
        policy: &mut dyn Policy,
        reg: &Registry,
    ) {
        let late: Vec<usize> =
            self.probes.iter().filter(|(_, p)| now >= p.started + PROBE_TIMEOUT).map(|(k, _)| k).collect();
        for k in late {
            self.finish(k, Err("timed out".into()), policy, reg);
        }
        let idle_due = idle && self.last_round.is_some_and(|t| now >= t + IDLE_ROUND);
        if !self.probes.is_empty() || (now < self.next_round && !idle_due) {
            return;
        }
        self.next_round = now + self.interval;
        self.last_round = Some(now);
        for (i, b) in backends.iter().enumerate().filter(|(_, b)| !b.removed) {
            let entry = self.probes.vacant_entry();
            let token = Owner::Probe { frontend: self.frontend, key: entry.key() }.token();
            match Get::start(b.addr, &self.path, "lbproxy-probe", Until::End, reg, token) {
                Ok(get) => {
                    entry.insert(Probe { backend: i, get, started: now });
                }
                // Out of descriptors is the proxy's condition: no verdict this round.
                Err(e) if is_descriptor_exhaustion(&e) => debug!("probe of {} skipped: {e}", b.addr),
                Err(e) => {
                    debug!("probe of {} failed: {e}", b.addr);
                    policy.probed(i, None);
                }
            }
        }
    }

    pub fn on_event(&mut self, key: usize, ev: &mio::event::Event, policy: &mut dyn Policy, reg: &Registry) {
        let Some(p) = self.probes.get_mut(key) else { return };
        match p.get.on_event(ev) {
            Progress::Pending => {}
            Progress::Done { status: Some(200..=299), received } => {
                let elapsed = p.started.elapsed();
                self.finish(key, Ok((elapsed, received)), policy, reg);
            }
            Progress::Done { .. } => self.finish(key, Err("not a 2xx answer".into()), policy, reg),
            Progress::Failed(why) => self.finish(key, Err(why), policy, reg),
        }
    }

    /// A probe ended: `Ok((time, bytes))` or why it failed.
    fn finish(&mut self, key: usize, result: Result<(Duration, u64), String>, policy: &mut dyn Policy, reg: &Registry) {
        let Some(p) = self.probes.try_remove(key) else { return };
        p.get.stop(reg);
        match &result {
            Ok((t, bytes)) => info!("probe of backend #{}: {bytes} bytes in {t:?}", p.backend),
            Err(why) => info!("probe of backend #{} failed: {why}; it gets no traffic until a probe passes", p.backend),
        }
        policy.probed(p.backend, result.ok().map(|(t, _)| t));
        if self.probes.is_empty() {
            info!("probe round done");
        }
    }
}
