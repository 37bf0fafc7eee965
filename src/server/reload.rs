//! Reload: a new `Plan` applied to the running server as a diff, so that no
//! open session and no in-flight request is lost.
//!
//! - Frontends, by name: a new one starts listening; a removed one stops
//!   accepting and its open sessions finish (its slot stays, its index is in
//!   tokens); one whose mode or pool changed is replaced by a new frontend
//!   that takes over its listener (same address) or listens anew (another
//!   address), while the old one drains; any other change (timeouts, HTTP
//!   settings, policy) applies to new work at once.
//! - Pools, by name: backends that stay keep their counters, health state
//!   and pooled connections; new ones join (after their checks pass when
//!   checks are on); removed ones drain; changed health checks restart.
//!   A changed policy, policy parameter or weight builds the frontend's
//!   policy anew.

use std::net::SocketAddr;
use std::time::Instant;

use log::info;

use super::frontend::Frontend;
use super::listeners::{self, Sockets};
use super::pool::Pool;
use super::timers::Timers;
use super::tokens::{MAX_INDEX, Owner};
use super::{Plan, Server};
use crate::config::Config;
use crate::mode::{self, Mode};

/// What a reload changed, for the log and the admin API's answer.
#[derive(Debug, Default)]
pub struct Changes(pub Vec<String>);

/// Where a new or replaced frontend's listener comes from.
enum Listener {
    /// Bound while preparing, registered on commit.
    Fresh(Sockets, SocketAddr),
    /// Handed over from the frontend it replaces (same address).
    From(usize),
    /// An SNI route's frontend: its parent's listener serves it.
    None,
}

/// One frontend of the new plan, prepared.
enum Step {
    /// Same name, address, mode and pool: new settings in place.
    Keep { frontend: usize, config: Box<Config> },
    /// New, or replacing `old` (which then drains).
    Start {
        name: String,
        config: Box<Config>,
        pool: String,
        mode: Box<dyn Mode>,
        listener: Listener,
        old: Option<usize>,
    },
}

impl Server {
    /// Apply `plan` to the running server. Everything that can fail (binding
    /// new addresses, opening access logs, spawning a new pool's backends)
    /// is done first; if any of it fails nothing has changed.
    pub fn apply(&mut self, plan: Plan) -> Result<Changes, String> {
        let now = self.now;
        let mut changes = Changes::default();
        let first_new = self.frontends.len();
        let active = |f: &Frontend, name: &str| f.is_live() && f.name == name;

        // Prepare.
        let mut steps = Vec::new();
        let mut new_pools: Vec<Pool> = Vec::new();
        for (name, config, pool_name) in plan.frontends {
            if !self.pools.iter().any(|p| p.name == pool_name) && !new_pools.iter().any(|p| p.name == pool_name) {
                let index = self.pools.len() + new_pools.len();
                new_pools.push(
                    Pool::new(&pool_name, config.clone(), index, now, &mut self.timers)
                        .map_err(|e| format!("pool {pool_name}: {e}"))?,
                );
            }
            let current = self.frontends.iter().position(|f| active(f, &name));
            let same_addr = current.filter(|&i| self.frontends[i].config.listen == config.listen);
            if let Some(i) = same_addr
                && self.frontends[i].config.mode == config.mode
                && self.pools[self.frontends[i].pool].name == pool_name
            {
                steps.push(Step::Keep { frontend: i, config: Box::new(config) });
                continue;
            }
            let index = first_new + steps.iter().filter(|s| matches!(s, Step::Start { .. })).count();
            if index >= MAX_INDEX || self.pools.len() + new_pools.len() > MAX_INDEX {
                return Err(format!("at most {MAX_INDEX} frontends and pools over a process's life"));
            }
            let listener = match same_addr {
                _ if config.routed => Listener::None,
                Some(i) => Listener::From(i),
                None => {
                    // Registered only once nothing can fail (see the commit below).
                    let l = self.open_listener(&name, &config)?;
                    let addr = l.local_addr().map_err(|e| e.to_string())?;
                    Listener::Fresh(l, addr)
                }
            };
            let mode = mode::build(&config).map_err(|e| format!("frontend {name}: {e}"))?;
            steps.push(Step::Start { name, config: Box::new(config), pool: pool_name, mode, listener, old: current });
        }

        // Commit: nothing below can fail.
        for p in new_pools {
            changes.0.push(format!("pool {} added", p.name));
            self.pools.push(p);
        }
        let mut reweighted = Vec::new();
        let mut updated = Vec::new();
        for step in &steps {
            let (config, pool_name) = match step {
                Step::Keep { frontend, config } => (config, &self.pools[self.frontends[*frontend].pool].name),
                Step::Start { config, pool, .. } => (config, pool),
            };
            let p = self.pools.iter().position(|x| &x.name == pool_name).expect("prepared above");
            if updated.contains(&p) {
                continue;
            }
            updated.push(p);
            // A worker's membership is the main reactor's (sent with the reload).
            let (gone, weights) = if self.is_worker() {
                apply_backend_settings(&mut self.pools[p], config);
                (Vec::new(), false)
            } else {
                update_pool(&mut self.pools[p], config, (now, &mut self.timers), &mut changes)
            };
            if weights {
                reweighted.push(p);
            }
            self.sync_modes(p, &gone);
        }
        // Frontends the plan no longer names drain.
        let named: Vec<&str> = steps
            .iter()
            .map(|s| match s {
                Step::Keep { frontend, .. } => self.frontends[*frontend].name.as_str(),
                Step::Start { name, .. } => name.as_str(),
            })
            .collect::<Vec<_>>();
        let leaving: Vec<usize> = (0..first_new)
            .filter(|&i| self.frontends[i].is_live() && !named.contains(&self.frontends[i].name.as_str()))
            .collect();
        for i in leaving {
            self.retire(i, None, &mut changes);
        }
        for step in steps {
            match step {
                Step::Keep { frontend, config } => {
                    let f = &mut self.frontends[frontend];
                    let policy_changed = f.config.policy != config.policy || f.config.params != config.params;
                    let shadows_changed = f.config.shadow_policies != config.shadow_policies
                        || f.config.access_log_explain != config.access_log_explain;
                    f.mode.reconfigure(&config);
                    f.per_ip.set_limits(config.per_ip);
                    f.config = *config;
                    if shadows_changed {
                        let names: Vec<&str> = f.config.shadow_policies.iter().map(|k| k.name()).collect();
                        changes.0.push(format!("frontend {}: shadow policies [{}]", f.name, names.join(", ")));
                        f.rebuild_policy();
                    }
                    if policy_changed || reweighted.contains(&f.pool) {
                        let kind = f.config.policy;
                        changes.0.push(format!("frontend {}: policy {kind}", f.name));
                        f.set_policy(kind, now, &mut self.timers);
                    }
                }
                Step::Start { name, config, pool, mode, listener, old } => {
                    let index = self.frontends.len();
                    let pool = self.pools.iter().position(|p| p.name == pool).expect("prepared above");
                    let (listener, addr) = match listener {
                        Listener::Fresh(mut l, addr) => {
                            // Shared listeners stay out of the poll while accepting is paused.
                            if !(self.exclusive && self.accept_pause.is_some()) {
                                let token = Owner::Listener { frontend: index }.token();
                                if let Err(e) = l.register(&self.poll, token, self.exclusive) {
                                    log::warn!("reload: frontend {name} on {addr} cannot be polled: {e}");
                                }
                            }
                            (Some(l), addr)
                        }
                        Listener::From(i) => match self.retire(i, Some(index), &mut changes) {
                            Some((l, addr)) => (Some(l), addr),
                            None => (None, config.listen),
                        },
                        Listener::None => (None, config.listen),
                    };
                    if let Some(i) = old.filter(|&i| self.frontends[i].is_live()) {
                        self.retire(i, None, &mut changes);
                    }
                    changes.0.push(format!("frontend {name} listening on {addr}, mode {}", config.mode.name()));
                    let slots = self.pools[pool].backends.len();
                    let timers = (now, &mut self.timers);
                    let f = Frontend::new(name, (listener, addr), mode, (pool, slots), *config, index, timers);
                    self.frontends.push(f);
                }
            }
        }
        for c in changes.0.iter().filter(|_| !self.is_worker()) {
            info!("reload: {c}");
        }
        Ok(changes)
    }

    /// A new frontend's listener: bound here, or in a worker the one the
    /// main reactor bound for it.
    fn open_listener(&mut self, name: &str, config: &Config) -> Result<Sockets, String> {
        match self.supplied.as_mut() {
            Some(handed) => listeners::take_named(handed, name).map_err(|e| format!("frontend {name}: {e}")),
            None => listeners::open(config.listen, config.backlog, (self.reuseport, self.reactors), None)
                .map_err(|e| format!("frontend {name}: cannot listen on {}: {e}", config.listen)),
        }
    }

    /// Frontend `i` stops accepting and drains. With `to`, its listener is
    /// handed to the new frontend `to` (same address: nothing is refused in
    /// between) and returned; otherwise it is closed.
    fn retire(&mut self, i: usize, to: Option<usize>, changes: &mut Changes) -> Option<(Sockets, SocketAddr)> {
        let f = &mut self.frontends[i];
        if f.config.routed {
            f.retired = true;
            f.prober = None;
            f.mode.start_drain();
            changes.0.push(format!("SNI route {} stopped taking clients ({} open)", f.name, f.mode.open_clients()));
            return None;
        }
        let mut l = f.listener.take()?;
        f.prober = None;
        f.mode.start_drain();
        changes.0.push(format!(
            "frontend {} on {} stopped accepting ({} open)",
            f.name,
            f.local_addr,
            f.mode.open_clients()
        ));
        match to {
            Some(new) => {
                let token = Owner::Listener { frontend: new }.token();
                if let Err(e) = l.reregister(&self.poll, token, self.exclusive) {
                    log::warn!("reload: cannot hand {} over: {e}", f.local_addr);
                }
                Some((l, f.local_addr))
            }
            None => {
                let _ = l.deregister(&self.poll, self.exclusive);
                None
            }
        }
    }
}

/// The pool's new settings, and each backend's part of them (failure
/// marking, health thresholds, ramp length, ejection).
fn apply_backend_settings(pool: &mut Pool, config: &Config) {
    let health_changed = pool.config.health != config.health;
    let fail_changed = pool.config.fail_policy != config.fail_policy;
    pool.config = config.clone();
    if health_changed || fail_changed {
        let thresholds = config.health.as_ref().map(|h| (h.rise, h.fall));
        for b in pool.backends.iter_mut().filter(|b| !b.removed) {
            b.reconfigure(config.fail_policy, thresholds);
        }
    }
    for b in pool.backends.iter_mut() {
        // Ramps and ejections under way keep going with the new lengths.
        b.ramp.duration = config.slow_start.filter(|d| !d.is_zero());
        b.outlier.set_policy(config.eject);
    }
}

/// Bring `pool` to what `config` says; returns the indices of backends
/// removed at once (nothing was open on them), and whether a weight changed.
fn update_pool(
    pool: &mut Pool,
    config: &Config,
    (now, timers): (Instant, &mut Timers),
    changes: &mut Changes,
) -> (Vec<usize>, bool) {
    let name = pool.name.clone();
    let health_changed = pool.config.health != config.health;
    apply_backend_settings(pool, config);
    if health_changed {
        pool.restart_checks(now, timers);
        changes.0.push(format!("pool {name}: health checks restarted"));
    }
    pool.names_changed(now);
    // Servers found through DNS stay until the next answer says otherwise.
    let wanted = pool.wanted();
    let reweighted = pool.set_members(&wanted, &mut changes.0);
    (pool.upkeep(), reweighted)
}
