//! Changing the backend list while traffic flows: the admin commands, the
//! backends lbproxy spawns, and removals that wait for sessions to end.
//!
//! Backends are never taken out of the vector: sessions, pools and policies
//! hold indices into it. A removed backend stays as a tombstone (`removed`)
//! that no listing shows and no policy picks; adding its address again
//! revives the slot.

use std::io;
use std::net::SocketAddr;

use log::{info, warn};
use serde_json::json;

use super::{Reactor, make_backend};
use crate::admin::{Command, DASHBOARD_HTML, Reply, StatsView, metrics_text, replicas, stats_json};
use crate::backend::AdminState;
use crate::http::HttpEngine;

impl Reactor {
    /// Carry out one admin command.
    pub(super) fn execute(&mut self, cmd: Command) -> Reply {
        match cmd {
            Command::ListReplicas => Reply::success(replicas(&self.backends)),
            Command::Add { n, hostnames } => self.add(n, &hostnames),
            Command::Remove { n, hostnames } => self.remove(n, &hostnames),
            Command::SetState { addr, state } => {
                let Some(i) = self.find_listed(addr) else {
                    return Reply::failure(404, &format!("no backend {addr}"));
                };
                self.backends[i].admin = state;
                info!("backend {addr} is now {} (admin API)", state.name());
                Reply::success(json!({"backend": addr.to_string(), "state": self.backends[i].state_name()}))
            }
            Command::SetPolicy(kind) => {
                self.policy = kind.build(&self.config.params);
                self.config.policy = kind;
                self.update_prober();
                info!("policy is now {kind} (admin API)");
                Reply::success(json!({"policy": kind.name()}))
            }
            Command::Stats => Reply::json(200, &stats_json(&self.stats_view())),
            Command::Metrics => Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics_text(&self.stats_view()),
            },
            Command::Dashboard => {
                Reply { status: 200, content_type: "text/html; charset=utf-8", body: DASHBOARD_HTML.to_string() }
            }
        }
    }

    fn stats_view(&self) -> StatsView<'_> {
        StatsView {
            backends: &self.backends,
            mode: self.config.mode.name(),
            policy: self.config.policy.name(),
            uptime: self.now.saturating_duration_since(self.started),
            open_clients: self.open_clients(),
            buffers_in_use: self.pool.in_use(),
            timers_pending: self.connect_deadlines.len() + self.http.as_ref().map_or(0, HttpEngine::timers_pending),
        }
    }

    fn find_listed(&self, addr: SocketAddr) -> Option<usize> {
        self.backends.iter().position(|b| b.addr == addr && !b.removed && !b.removing)
    }

    fn add(&mut self, n: usize, hostnames: &[SocketAddr]) -> Reply {
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

    fn remove(&mut self, n: usize, hostnames: &[SocketAddr]) -> Reply {
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
            info!("backend {} removed: draining {} open sessions", b.addr, b.stats.active);
        }
        self.upkeep_membership();
        Reply::success(replicas(&self.backends))
    }

    /// Add (or revive) a backend; returns its index.
    pub(super) fn add_backend(&mut self, addr: SocketAddr, start_down: bool) -> usize {
        let fresh = make_backend(&self.config, addr, start_down);
        let i = match self.backends.iter().position(|b| b.addr == addr && b.removed) {
            Some(i) => {
                let stats = self.backends[i].stats;
                self.backends[i] = fresh;
                self.backends[i].stats = stats;
                i
            }
            None => {
                self.backends.push(fresh);
                self.backends.len() - 1
            }
        };
        let n = self.backends.len();
        if let Some(h) = self.http.as_mut() {
            h.ensure_backends(n);
        }
        info!("backend {addr} added{}", if start_down { " (waiting for its health checks)" } else { "" });
        i
    }

    /// Start one backend with --spawn-cmd; it gets traffic once checks pass.
    pub(super) fn spawn_backend(&mut self) -> io::Result<SocketAddr> {
        let spawner = self.spawner.as_mut().ok_or_else(|| io::Error::other("no --spawn-cmd set"))?;
        let addr = spawner.spawn()?;
        self.add_backend(addr, true);
        Ok(addr)
    }

    /// Finish removals whose sessions have ended; replace spawned backends
    /// that died while `--replicas` asks for a fixed number.
    pub(super) fn upkeep_membership(&mut self) {
        for i in 0..self.backends.len() {
            let b = &self.backends[i];
            if b.removing && !b.removed && b.stats.active == 0 {
                let addr = b.addr;
                self.backends[i].removed = true;
                self.backends[i].removing = false;
                info!("backend {addr} drained and removed");
                if let Some(h) = self.http.as_mut() {
                    h.forget_backend(i);
                }
                if let Some(s) = self.spawner.as_mut() {
                    s.stop(addr);
                }
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
    }
}
