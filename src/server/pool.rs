//! A pool: the backends one or more frontends balance over, their health
//! checks, and the changes made while traffic flows (admin commands, spawned
//! backends, removals that wait for sessions to end).
//!
//! Backends are never taken out of the vector: sessions, idle connections
//! and policies hold indices into it. A removed backend stays as a tombstone
//! (`removed`) that no listing shows and no policy picks; adding its address
//! again revives the slot.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use log::{info, warn};

use super::timers::Timers;
use crate::admin::{Reply, replicas};
use crate::backend::{AdminState, Backend, usage_line};
use crate::checks::Checker;
use crate::config::{BackendSpec, Config};
use crate::outlier::{self, Ejection};
use crate::slow_start::Ramp;
use crate::spawn::Spawner;

pub struct Pool {
    pub name: String,
    pub backends: Vec<Backend>,
    pub checker: Option<Checker>,
    spawner: Option<Spawner>,
    /// Where the pool's settings come from: servers, health checks, fail
    /// policy, spawn command.
    pub config: Config,
    /// This pool's index in the server, for its sockets' tokens.
    index: usize,
    /// Present while the pool names servers by DNS.
    pub dns: Option<DnsState>,
    /// The usage line logged last, so an unchanged one is not repeated.
    last_usage: String,
}

/// A pool's servers found through DNS, and when to ask again.
pub struct DnsState {
    /// The last good answer (kept through failures and empty answers).
    pub discovered: Vec<BackendSpec>,
    pub next_at: Instant,
    /// A question is with the discovery thread.
    pub in_flight: bool,
    pub last_ok: Option<Instant>,
    /// Why the last answer was not used, until one is.
    pub last_error: Option<String>,
    pub answers: u64,
    pub failures: u64,
}

impl DnsState {
    fn new(now: Instant) -> DnsState {
        DnsState {
            discovered: Vec::new(),
            next_at: now,
            in_flight: false,
            last_ok: None,
            last_error: None,
            answers: 0,
            failures: 0,
        }
    }
}

/// A backend as configured: failure marking, and health thresholds when
/// checks are on. `start_down`: no traffic until `rise` checks pass.
pub(super) fn make_backend(config: &Config, addr: SocketAddr, start_down: bool) -> Backend {
    let mut b = Backend::with_fail_policy(addr, config.fail_policy);
    b.ramp = Ramp::new(config.slow_start);
    b.outlier = Ejection::new(config.eject);
    match &config.health {
        Some(h) => b.with_health(h.rise, h.fall, start_down),
        None => b,
    }
}

impl Pool {
    pub fn new(name: &str, config: Config, index: usize, now: Instant, timers: &mut Timers) -> io::Result<Pool> {
        let backends =
            config.backends.iter().map(|b| make_backend(&config, b.addr, false).with_weight(b.weight)).collect();
        let mut pool = Pool {
            name: name.to_string(),
            backends,
            checker: config.health.clone().map(|h| Checker::new(h, index, now, timers)),
            spawner: config.spawn_cmd.clone().map(Spawner::new),
            dns: (!config.names.is_empty()).then(|| DnsState::new(now)),
            config,
            index,
            last_usage: String::new(),
        };
        for _ in 0..pool.config.replicas.unwrap_or(0) {
            pool.spawn_backend()?;
        }
        Ok(pool)
    }

    /// Health checks as `config.health` says now (results so far are kept).
    pub fn restart_checks(&mut self, now: Instant, timers: &mut Timers) {
        self.checker = self.config.health.clone().map(|h| Checker::new(h, self.index, now, timers));
    }

    /// The usage line of `totals` (this pool's backends with every
    /// worker's counts added; `None`: its own are), if it differs from the
    /// one returned last time.
    pub fn usage_if_changed(&mut self, totals: Option<&[Backend]>) -> Option<String> {
        let line = usage_line(&self.name, totals.unwrap_or(&self.backends));
        (line != self.last_usage).then(|| {
            self.last_usage.clone_from(&line);
            line
        })
    }

    pub fn find_listed(&self, addr: SocketAddr) -> Option<usize> {
        self.backends.iter().position(|b| b.addr == addr && !b.removed && !b.removing)
    }

    pub fn add(&mut self, n: usize, hostnames: &[SocketAddr]) -> Reply {
        if let Some(dup) = hostnames.iter().find(|a| self.find_listed(**a).is_some()) {
            return Reply::failure(400, &format!("{dup} is already a backend"));
        }
        let missing = n - hostnames.len();
        if missing > 0 && self.spawner.is_none() {
            return Reply::failure(
                400,
                &format!(
                    "n is {n} but {} hostnames were given, and no --spawn-cmd is set to start the rest",
                    hostnames.len()
                ),
            );
        }
        for &addr in hostnames {
            self.add_backend(addr, false);
        }
        for _ in 0..missing {
            if let Err(e) = self.spawn_backend() {
                return Reply::failure(500, &e.to_string());
            }
        }
        Reply::success(replicas(&self.backends))
    }

    /// Mark backends for removal: they drain, and `upkeep` removes them once
    /// their last session ended.
    pub fn remove(&mut self, n: usize, hostnames: &[SocketAddr]) -> Reply {
        let mut chosen = Vec::new();
        for &addr in hostnames {
            match self.find_listed(addr) {
                Some(i) if !chosen.contains(&i) => chosen.push(i),
                Some(_) => {}
                None => return Reply::failure(400, &format!("unknown backend {addr}")),
            }
        }
        // Beyond the named ones, take the most recently added.
        let candidates: Vec<usize> = (0..self.backends.len())
            .rev()
            .filter(|&i| !self.backends[i].removed && !self.backends[i].removing && !chosen.contains(&i))
            .collect();
        let mut extra = candidates.into_iter();
        while chosen.len() < n {
            match extra.next() {
                Some(i) => chosen.push(i),
                None => {
                    return Reply::failure(
                        400,
                        &format!("cannot remove {n} backends: only {} are listed", chosen.len()),
                    );
                }
            }
        }
        for i in chosen {
            let b = &mut self.backends[i];
            b.admin = AdminState::Draining;
            b.removing = true;
            info!("backend {} removed: draining {} open sessions", b.addr, b.active());
        }
        Reply::success(replicas(&self.backends))
    }

    /// Add (or revive) a backend; returns its index.
    pub fn add_backend(&mut self, addr: SocketAddr, start_down: bool) -> usize {
        let fresh = make_backend(&self.config, addr, start_down);
        let i = match self.backends.iter().position(|b| b.addr == addr && b.removed) {
            Some(i) => {
                let stats = std::mem::take(&mut self.backends[i].stats);
                self.backends[i] = fresh;
                self.backends[i].stats = stats;
                i
            }
            None => {
                self.backends.push(fresh);
                self.backends.len() - 1
            }
        };
        if !start_down {
            // A backend waiting for its checks starts its ramp when they pass.
            self.backends[i].ramp.start(Instant::now());
        }
        info!("backend {addr} added{}", if start_down { " (waiting for its health checks)" } else { "" });
        i
    }

    /// Start one backend with --spawn-cmd; it gets traffic once checks pass.
    fn spawn_backend(&mut self) -> io::Result<SocketAddr> {
        let spawner = self.spawner.as_mut().ok_or_else(|| io::Error::other("no --spawn-cmd set"))?;
        let addr = spawner.spawn()?;
        self.add_backend(addr, true);
        Ok(addr)
    }

    /// Remove drained backends and replace spawned ones that died while
    /// `--replicas` asks for a fixed number. Returns the indices removed.
    pub fn upkeep(&mut self) -> Vec<usize> {
        let mut gone = Vec::new();
        for (i, b) in self.backends.iter_mut().enumerate() {
            if b.removing && !b.removed && b.active() == 0 {
                b.removed = true;
                b.removing = false;
                info!("backend {} drained and removed", b.addr);
                if let Some(s) = self.spawner.as_mut() {
                    s.stop(b.addr);
                }
                gone.push(i);
            }
        }
        let dead = self.spawner.as_mut().map(|s| s.reap()).unwrap_or_default();
        for (addr, _) in dead {
            if let Some(i) = self.backends.iter().position(|b| b.addr == addr && !b.removed) {
                let b = &mut self.backends[i];
                b.admin = AdminState::Draining;
                b.removing = true;
            }
            if self.config.replicas.is_some() {
                match self.spawn_backend() {
                    Ok(new) => info!("replaced dead backend {addr} with {new}"),
                    Err(e) => warn!("cannot replace dead backend {addr}: {e}"),
                }
            }
        }
        gone
    }

    /// The servers the pool should have: those configured by address and
    /// the last good DNS answer.
    pub fn wanted(&self) -> Vec<BackendSpec> {
        let mut wanted = self.config.backends.clone();
        for s in self.dns.iter().flat_map(|d| &d.discovered) {
            if !wanted.iter().any(|w| w.addr == s.addr) {
                wanted.push(*s);
            }
        }
        wanted
    }

    /// The configuration's names may have changed (reload): ask DNS now,
    /// or stop asking when no name is left.
    pub fn names_changed(&mut self, now: Instant) {
        match (&mut self.dns, self.config.names.is_empty()) {
            (_, true) => self.dns = None,
            (Some(d), false) => d.next_at = now,
            (None, false) => self.dns = Some(DnsState::new(now)),
        }
    }

    /// Bring the listed backends to `wanted` as a diff: backends that stay
    /// keep their state, new ones join (after their checks pass when checks
    /// are on), missing ones drain. Returns whether a weight changed.
    pub fn set_members(&mut self, wanted: &[BackendSpec], changes: &mut Vec<String>) -> bool {
        let name = self.name.clone();
        let leaving: Vec<_> = self
            .backends
            .iter()
            .filter(|b| !b.removed && !b.removing && !wanted.iter().any(|w| w.addr == b.addr))
            .map(|b| b.addr)
            .collect();
        if !leaving.is_empty() {
            let _ = self.remove(leaving.len(), &leaving);
            changes.push(format!("pool {name}: draining {leaving:?}"));
        }
        let mut reweighted = false;
        for spec in wanted {
            match self.find_listed(spec.addr) {
                Some(i) => {
                    if self.backends[i].weight != spec.weight {
                        self.backends[i].weight = spec.weight;
                        reweighted = true;
                        changes.push(format!("pool {name}: {} weight {}", spec.addr, spec.weight));
                    }
                }
                None => {
                    let i = self.add_backend(spec.addr, self.config.health.is_some());
                    self.backends[i].weight = spec.weight;
                    changes.push(format!("pool {name}: {} added", spec.addr));
                }
            }
        }
        reweighted
    }

    /// Backends whose fail timeout or ejection ended go back in rotation,
    /// ramping up (the main reactor's housekeeping tick: the state is
    /// shared, so the return happens once, and workers follow the ramp).
    pub fn revive_due(&mut self, now: Instant) {
        for b in self.backends.iter_mut() {
            b.revive_if_due(now);
        }
        for i in outlier::return_due(&self.backends, now) {
            self.backends[i].ramp.start(now);
        }
    }
}
