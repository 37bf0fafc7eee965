//! Admin API commands carried out by the server. Membership commands act
//! on the first pool (the command line's only one), the policy command on
//! the frontends over it.

use log::{info, warn};
use serde_json::json;

use super::Server;
use super::workers::Snapshot;
use crate::admin::lab::share_view;
use crate::admin::{
    AdminRequest, Command, DASHBOARD_HTML, FrontendView, Reply, StatsView, metrics_text, replicas, route, stats_json,
};
use crate::backend::Backend;

/// The pool admin commands change.
const ADMIN_POOL: usize = 0;

impl Server {
    /// Answer one admin request, or start the host-name lookup it needs
    /// (answered in [`Self::on_lookups_done`]).
    pub(super) fn serve_admin(&mut self, req: AdminRequest) {
        let now = self.now;
        let reply = match route(&req.method, &req.path, &req.body) {
            Ok(Command::Lookup { remove, n, hostnames }) => {
                if let Some(a) = self.admin.as_mut() {
                    a.look_up(&self.waker, &req, (remove, n, hostnames), now);
                }
                return;
            }
            // With workers, totals wait for a snapshot from each (taken now).
            Ok(cmd @ (Command::Stats | Command::Metrics)) if let Some(w) = self.workers.as_mut() => {
                let n = w.ask_snapshots();
                if let Some(a) = self.admin.as_mut() {
                    a.park(&req);
                }
                self.stats_requests.push((req.conn, req.serial, cmd, n, now));
                return;
            }
            Ok(cmd) => self.execute(cmd),
            Err(reply) => reply,
        };
        // Workers hear of a change before the client hears it is done.
        self.sync_workers();
        if let Some(a) = self.admin.as_mut() {
            a.answer(req.conn, &reply, now);
        }
    }

    /// The resolver thread finished lookups: carry out what they asked for
    /// and answer the connections that wait.
    pub(super) fn on_lookups_done(&mut self) {
        let Some(done) = self.admin.as_mut().map(|a| a.finished_lookups()) else { return };
        for (conn, result) in done {
            let reply = match result {
                Ok(cmd) => self.execute(cmd),
                Err(reply) => reply,
            };
            self.sync_workers();
            if let Some(a) = self.admin.as_mut() {
                a.answer(conn, &reply, self.now);
            }
        }
    }

    /// Answer the `/stats` and `/metrics` requests whose snapshots are in,
    /// and those waiting longer than `patience` with what is there: a
    /// worker that does not answer must not hold the admin API.
    pub(super) fn answer_stats_requests(&mut self, patience: Option<std::time::Duration>) {
        let Some(w) = self.workers.as_ref() else { return };
        let now = self.now;
        let waited_enough = |at: std::time::Instant| patience.is_some_and(|p| now.duration_since(at) >= p);
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.stats_requests).into_iter().partition(|r| w.published(r.3) || waited_enough(r.4));
        self.stats_requests = waiting;
        for (conn, serial, cmd, _, _) in ready {
            if !self.admin.as_ref().is_some_and(|a| a.still_waiting(conn, serial)) {
                continue;
            }
            let reply = self.execute(cmd);
            if let Some(a) = self.admin.as_mut() {
                a.answer(conn, &reply, self.now);
            }
        }
    }

    /// Carry out one admin command.
    pub(super) fn execute(&mut self, cmd: Command) -> Reply {
        match cmd {
            Command::Reload => match self.reload() {
                Ok(changes) => Reply::success(json!({"changes": changes.0})),
                Err(e) => {
                    warn!("{e}");
                    Reply::failure(400, &e)
                }
            },
            Command::Stats => Reply::json(200, &self.with_stats_view(stats_json)),
            Command::Explain { frontend, key } => self.explain(frontend.as_deref(), &key),
            Command::Metrics => Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.with_stats_view(metrics_text),
            },
            Command::Dashboard => {
                Reply { status: 200, content_type: "text/html; charset=utf-8", body: DASHBOARD_HTML.to_string() }
            }
            cmd => {
                let reply = self.execute_on_pool(cmd);
                // Removals may finish at once (nothing open), and added backends need room.
                self.upkeep_pools();
                self.sync_modes(ADMIN_POOL, &[]);
                reply
            }
        }
    }

    /// Membership, state and policy commands.
    fn execute_on_pool(&mut self, cmd: Command) -> Reply {
        let now = self.now;
        let pool = &mut self.pools[ADMIN_POOL];
        match cmd {
            Command::Add { n, hostnames } => pool.add(n, &hostnames),
            Command::Remove { n, hostnames } => pool.remove(n, &hostnames),
            Command::SetState { addr, state } => {
                let Some(i) = pool.find_listed(addr) else {
                    return Reply::failure(404, &format!("no backend {addr}"));
                };
                pool.backends[i].admin = state;
                info!("backend {addr} is now {} (admin API)", state.name());
                Reply::success(json!({"backend": addr.to_string(), "state": pool.backends[i].state_name()}))
            }
            Command::SetPolicy(kind) => {
                for f in self.frontends.iter_mut().filter(|f| f.pool == ADMIN_POOL) {
                    f.set_policy(kind, now, &mut self.timers);
                }
                self.tell_workers_policy(ADMIN_POOL, kind);
                info!("policy is now {kind} (admin API)");
                Reply::success(json!({"policy": kind.name()}))
            }
            _ => Reply::success(replicas(&pool.backends)),
        }
    }

    /// This reactor's splice pipe pool, as `/stats` shows it.
    pub(super) fn pipe_counts(&self) -> crate::admin::PipeCounts {
        let p = &self.pipes;
        crate::admin::PipeCounts {
            in_use: p.in_use(),
            free: p.free(),
            fallbacks: p.fallbacks(),
            bytes: p.bytes_spliced(),
        }
    }

    /// Each pool's backends with every worker's counts added (as of their
    /// last snapshots, published every tick); `None` without workers, when
    /// the pools' own backends are the totals.
    pub(super) fn pool_totals(&self) -> Option<Vec<Vec<Backend>>> {
        let w = self.workers.as_ref()?;
        Some(w.with_snapshots(|snaps| self.pools.iter().map(|p| totals_of_pool(p, snaps)).collect()))
    }

    /// The counters of every worker added up, shown to `f`.
    fn with_stats_view<R>(&self, f: impl FnOnce(&StatsView) -> R) -> R {
        match self.workers.as_ref() {
            None => f(&self.stats_view(&[], None)),
            Some(w) => w.with_snapshots(|snaps| {
                let pools: Vec<Vec<Backend>> = self.pools.iter().map(|p| totals_of_pool(p, snaps)).collect();
                f(&self.stats_view(snaps, Some(&pools)))
            }),
        }
    }

    /// `totals`: each pool's backends with the workers' counts added.
    fn stats_view<'a>(&'a self, snaps: &[&Snapshot], totals: Option<&'a [Vec<Backend>]>) -> StatsView<'a> {
        let backends_of = |p: usize| totals.map_or(self.pools[p].backends.as_slice(), |t| t[p].as_slice());
        StatsView {
            backends: backends_of(ADMIN_POOL),
            mode: self.frontends[0].config.mode.name(),
            policy: self.frontends[0].config.policy.name(),
            uptime: self.now.saturating_duration_since(self.started),
            open_clients: self.open_clients() + self.workers.as_ref().map_or(0, |w| w.open_clients()),
            buffers_in_use: self.buffers.in_use() + snaps.iter().map(|s| s.buffers_in_use).sum::<usize>(),
            pipes: snaps.iter().fold(self.pipe_counts(), |sum, s| sum.plus(&s.pipes)),
            timers_pending: self.timers.len() + snaps.iter().map(|s| s.timers_pending).sum::<usize>(),
            frontends: self
                .frontends
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut stats = f.stats.clone();
                    let mut open = f.mode.open_clients();
                    // Same index in every reactor (a replaced frontend keeps its slot under its name).
                    let copies = snaps.iter().filter_map(|s| s.frontends.get(i)).filter(|x| x.0 == f.name);
                    for (_, s, n) in copies {
                        stats.add(s);
                        open += n;
                    }
                    // Picks made in every worker's copy of the policy, shadows included.
                    let mut lab = f.policy.counts();
                    for (_, c) in snaps.iter().flat_map(|s| &s.lab).filter(|x| x.0 == f.name) {
                        lab.add(c);
                    }
                    FrontendView {
                        name: f.name.clone(),
                        listen: f.local_addr.to_string(),
                        mode: f.config.mode.name(),
                        policy: f.config.policy.name(),
                        pool: self.pools[f.pool].name.clone(),
                        open_clients: open,
                        accepting: f.is_live(),
                        stats,
                        picks: share_view(
                            f.config.policy.name(),
                            (lab.decisions, None),
                            &lab.picks,
                            backends_of(f.pool),
                        ),
                        shadows: (f.policy.shadows().iter().zip(&lab.shadows))
                            .map(|(s, (agreed, picks))| {
                                let counts = (lab.decisions, Some(*agreed));
                                share_view(s.kind.name(), counts, picks, backends_of(f.pool))
                            })
                            .collect(),
                    }
                })
                .collect(),
            pools: self
                .pools
                .iter()
                .enumerate()
                .map(|(i, p)| (p.name.as_str(), backends_of(i), dns_json(p, self.now)))
                .collect(),
            workers: std::iter::once((
                self.frontends.iter().map(|f| f.stats.sessions).sum(),
                self.frontends.iter().map(|f| f.stats.requests).sum(),
                self.open_clients(),
            ))
            .chain(
                snaps
                    .iter()
                    .map(|s| {
                        (s.frontends.iter().map(|f| f.1.sessions).sum(), s.frontends.iter().map(|f| f.1.requests).sum())
                    })
                    .zip(self.workers.iter().flat_map(|w| w.open_per_worker()))
                    .map(|((sessions, requests), open)| (sessions, requests, open)),
            )
            .collect(),
        }
    }
}

/// Pool `p`'s backends with every worker's counts added (their copies
/// mirror the main reactor's slots, so slot i is backend i everywhere).
pub(super) fn totals_of_pool(p: &super::pool::Pool, snaps: &[&Snapshot]) -> Vec<Backend> {
    let mut totals = p.backends.clone();
    for (_, copies) in snaps.iter().flat_map(|s| s.pools.iter().filter(|(name, _)| *name == p.name)) {
        for (b, c) in totals.iter_mut().zip(copies.iter()).filter(|(b, c)| b.addr == c.addr) {
            b.add_counts(c);
        }
    }
    totals
}

/// A pool's DNS state for `/stats`, when it names servers by DNS.
fn dns_json(p: &super::pool::Pool, now: std::time::Instant) -> Option<serde_json::Value> {
    let d = p.dns.as_ref()?;
    let ago = |t: std::time::Instant| now.saturating_duration_since(t).as_secs_f64();
    Some(serde_json::json!({
        "names": p.config.names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "resolvers": p.config.resolvers.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "discovered": d.discovered.iter().map(|s| s.addr.to_string()).collect::<Vec<_>>(),
        "answers": d.answers,
        "failures": d.failures,
        "last_ok_s_ago": d.last_ok.map(ago),
        "last_error": d.last_error,
        "next_in_s": d.next_at.saturating_duration_since(now).as_secs_f64(),
    }))
}
