//! Reload: a new `Plan` applied to the running server as a diff, so that no
//! open session and no in-flight request is lost.
//!
//! - Frontends, by name: a new one starts listening; a removed one stops
//!   accepting and its open sessions finish (its slot stays, its index is in
//!   tokens); one whose address or mode changed is replaced that way; any
//!   other change (timeouts, HTTP settings) applies to new work at once.
//! - Pools, by name: backends that stay keep their counters, health state
//!   and pooled connections; new ones join (after their checks pass when
//!   checks are on); removed ones drain; changed health checks restart.
//!   A changed policy, policy parameter or weight builds the frontend's
//!   policy anew.

use std::time::Instant;

use log::info;
use mio::Interest;

use super::frontend::Frontend;
use super::pool::Pool;
use super::tokens::{MAX_INDEX, Owner};
use super::{Plan, Server, listen};
use crate::config::Config;
use crate::mode;

/// What a reload changed, for the log and the admin API's answer.
#[derive(Debug, Default)]
pub struct Changes(pub Vec<String>);

impl Server {
    /// Apply `plan` to the running server. Errors (a port that cannot be
    /// bound, too many frontends) leave everything as it was.
    pub fn apply(&mut self, plan: Plan) -> Result<Changes, String> {
        let mut changes = Changes::default();
        // Listen on new addresses first: the only step that can fail.
        let mut fresh = Vec::new();
        for (name, config, _) in &plan.frontends {
            let same = self.frontends.iter().any(|f| f.serves(name, config));
            if !same {
                let l = listen(config.listen, config.backlog)
                    .map_err(|e| format!("frontend {name}: cannot listen on {}: {e}", config.listen))?;
                fresh.push((name.clone(), l));
            }
        }
        if self.frontends.len() + fresh.len() > MAX_INDEX || self.pools.len() + plan.frontends.len() > MAX_INDEX {
            return Err(format!("at most {MAX_INDEX} frontends and pools over a process's life"));
        }
        let now = self.now;
        // Pools: update the ones that stay (once each), add new ones.
        let mut reweighted = Vec::new();
        let mut updated = Vec::new();
        for (_, config, pool_name) in &plan.frontends {
            match self.pools.iter().position(|p| &p.name == pool_name) {
                Some(p) if updated.contains(&p) => {}
                Some(p) => {
                    updated.push(p);
                    let (gone, weights) = update_pool(&mut self.pools[p], config, now, &mut changes);
                    if weights {
                        reweighted.push(p);
                    }
                    self.sync_modes(p, &gone);
                }
                None => {
                    let index = self.pools.len();
                    let pool = Pool::new(pool_name, config.clone(), index, now).map_err(|e| e.to_string())?;
                    changes.0.push(format!("pool {pool_name} added"));
                    self.pools.push(pool);
                    updated.push(self.pools.len() - 1);
                }
            }
        }
        // Frontends that left (or whose address or mode changed) drain.
        let wanted: Vec<&str> = plan.frontends.iter().map(|(n, ..)| n.as_str()).collect();
        for i in 0..self.frontends.len() {
            let f = &self.frontends[i];
            let keep = plan.frontends.iter().any(|(n, c, _)| f.serves(n, c));
            if f.listener.is_some() && (!keep || !wanted.contains(&f.name.as_str())) {
                if let Some(mut l) = self.frontends[i].listener.take() {
                    let _ = self.poll.registry().deregister(&mut l);
                }
                let f = &self.frontends[i];
                changes.0.push(format!(
                    "frontend {} on {} stopped accepting ({} open)",
                    f.name,
                    f.local_addr,
                    f.mode.open_clients()
                ));
                self.frontends[i].mode.start_drain();
            }
        }
        // New frontends, and new settings for the ones that stay.
        for (name, config, pool_name) in plan.frontends {
            let pool = self.pools.iter().position(|p| p.name == pool_name).expect("added above");
            if let Some(k) = fresh.iter().position(|(n, _)| *n == name) {
                let (_, mut listener) = fresh.swap_remove(k);
                let i = self.frontends.len();
                self.poll
                    .registry()
                    .register(&mut listener, Owner::Listener { frontend: i }.token(), Interest::READABLE)
                    .map_err(|e| e.to_string())?;
                let mode = mode::build(&config).map_err(|e| e.to_string())?;
                let addr = config.listen;
                changes.0.push(format!("frontend {name} listening on {addr}, mode {}", config.mode.name()));
                let slots = self.pools[pool].backends.len();
                let f =
                    Frontend::new(name, listener, mode, (pool, slots), config, i, now).map_err(|e| e.to_string())?;
                self.frontends.push(f);
            } else if let Some(f) = self.frontends.iter_mut().find(|f| f.serves(&name, &config)) {
                let policy_changed = f.config.policy != config.policy || f.config.params != config.params;
                f.mode.reconfigure(&config);
                f.pool = pool;
                f.config = config;
                if policy_changed || reweighted.contains(&pool) {
                    let kind = f.config.policy;
                    changes.0.push(format!("frontend {}: policy {kind}", f.name));
                    f.set_policy(kind, now);
                }
            }
        }
        for c in &changes.0 {
            info!("reload: {c}");
        }
        Ok(changes)
    }
}

/// Bring `pool` to what `config` says; returns the indices of backends
/// removed at once (nothing was open on them), and whether a weight changed.
fn update_pool(pool: &mut Pool, config: &Config, now: Instant, changes: &mut Changes) -> (Vec<usize>, bool) {
    let name = pool.name.clone();
    let health_changed = pool.config.health != config.health;
    pool.config = config.clone();
    if health_changed {
        pool.restart_checks(now);
        changes.0.push(format!("pool {name}: health checks restarted"));
    }
    let wanted: Vec<_> = config.backends.iter().map(|b| b.addr).collect();
    let leaving: Vec<_> = pool
        .backends
        .iter()
        .filter(|b| !b.removed && !b.removing && !wanted.contains(&b.addr))
        .map(|b| b.addr)
        .collect();
    if !leaving.is_empty() {
        let _ = pool.remove(leaving.len(), &leaving);
        changes.0.push(format!("pool {name}: draining {leaving:?}"));
    }
    let mut reweighted = false;
    for spec in &config.backends {
        match pool.find_listed(spec.addr) {
            Some(i) => {
                if pool.backends[i].weight != spec.weight {
                    pool.backends[i].weight = spec.weight;
                    reweighted = true;
                    changes.0.push(format!("pool {name}: {} weight {}", spec.addr, spec.weight));
                }
            }
            None => {
                let i = pool.add_backend(spec.addr, config.health.is_some());
                pool.backends[i].weight = spec.weight;
                changes.0.push(format!("pool {name}: {} added", spec.addr));
            }
        }
    }
    (pool.upkeep(), reweighted)
}
