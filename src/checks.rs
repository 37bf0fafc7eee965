//! Active health checks, run by the reactor on non-blocking sockets.
//!
//! Every `interval` each listed backend without a check in flight gets one:
//! a TCP connect (`tcp`) or `GET path` expecting a 2xx status (`http:/path`),
//! bounded by `timeout`, through the shared outbound client. Results go to
//! `Backend::note_check`, which counts them against `rise`/`fall` and logs
//! transitions.

use std::time::Instant;

use log::debug;
use mio::Registry;
use slab::Slab;

use crate::backend::Backend;
use crate::connection::is_descriptor_exhaustion;
use crate::health::{CheckKind, HealthConfig};
use crate::outbound::{Get, Progress, Until};
use crate::server::timers::{ROUND, Tick, TimerOwner, Timers};
use crate::server::tokens::Owner;

struct Check {
    backend: usize,
    get: Get,
    /// Generation of its timeout on the server's deadline heap.
    timeout: u64,
}

pub struct Checker {
    cfg: HealthConfig,
    checks: Slab<Check>,
    /// Backend index -> check key in flight.
    in_flight: Vec<Option<usize>>,
    /// Generation of the armed round deadline.
    round: u64,
    /// Index of the pool checked, for tokens and timers.
    pool: usize,
}

impl Checker {
    /// The first round starts at once.
    pub fn new(cfg: HealthConfig, pool: usize, now: Instant, timers: &mut Timers) -> Checker {
        let round = timers.arm(now, TimerOwner::Checks(pool), ROUND);
        Checker { cfg, checks: Slab::new(), in_flight: Vec::new(), round, pool }
    }

    /// A deadline this checker armed: a round to start, or a check that
    /// took too long (stale ones, by generation, are ignored).
    pub fn on_deadline(&mut self, key: usize, generation: u64, at: Tick<'_>, backends: &mut [Backend]) {
        let Tick { now, registry, timers } = at;
        if key == ROUND {
            if generation != self.round {
                return;
            }
            self.round = timers.arm(now + self.cfg.interval, TimerOwner::Checks(self.pool), ROUND);
            if self.in_flight.len() < backends.len() {
                self.in_flight.resize(backends.len(), None);
            }
            for idx in 0..backends.len() {
                if !backends[idx].removed && self.in_flight[idx].is_none() {
                    self.start(idx, Tick { now, registry, timers: &mut *timers }, backends);
                }
            }
        } else if self.checks.get(key).is_some_and(|c| c.timeout == generation) {
            let reason = format!("no answer within {:?}", self.cfg.timeout);
            self.finish(key, Err(reason), backends, registry);
        }
    }

    fn start(&mut self, idx: usize, at: Tick<'_>, backends: &mut [Backend]) {
        let Tick { now, registry, timers } = at;
        let addr = backends[idx].addr;
        let (path, until) = match &self.cfg.kind {
            CheckKind::Tcp => ("", Until::Connected),
            CheckKind::Http { path } => (path.as_str(), Until::StatusLine),
        };
        let entry = self.checks.vacant_entry();
        let token = Owner::Check { pool: self.pool, key: entry.key() }.token();
        match Get::start(addr, path, "lbproxy-check", until, registry, token) {
            Ok(get) => {
                let key = entry.key();
                let timeout = timers.arm(now + self.cfg.timeout, TimerOwner::Checks(self.pool), key);
                self.in_flight[idx] = Some(key);
                entry.insert(Check { backend: idx, get, timeout });
            }
            // Out of descriptors is the proxy's condition: no verdict this round.
            Err(e) if is_descriptor_exhaustion(&e) => debug!("health check of {addr} skipped: {e}"),
            Err(e) => {
                debug!("health check of {addr} could not start: {e}");
                backends[idx].note_check(false, &e.to_string());
            }
        }
    }

    pub fn on_event(&mut self, key: usize, ev: &mio::event::Event, backends: &mut [Backend], registry: &Registry) {
        let Some(check) = self.checks.get_mut(key) else { return };
        let verdict = match check.get.on_event(ev) {
            Progress::Pending => return,
            Progress::Done { status: None | Some(200..=299), .. } => Ok(()),
            Progress::Done { status: Some(code), .. } => Err(format!("status {code}")),
            Progress::Failed(why) => Err(why),
        };
        self.finish(key, verdict, backends, registry);
    }

    fn finish(&mut self, key: usize, verdict: Result<(), String>, backends: &mut [Backend], registry: &Registry) {
        let Some(check) = self.checks.try_remove(key) else { return };
        check.get.stop(registry);
        if let Some(slot) = self.in_flight.get_mut(check.backend) {
            *slot = None;
        }
        let Some(b) = backends.get_mut(check.backend) else { return };
        match verdict {
            Ok(()) => b.note_check(true, ""),
            Err(reason) => b.note_check(false, &reason),
        }
    }
}
