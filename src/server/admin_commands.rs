//! Admin API commands carried out by the server. Membership commands act
//! on the first pool (the command line's only one), the policy command on
//! the frontends over it.

use log::{info, warn};
use serde_json::json;

use super::Server;
use crate::admin::{
    AdminRequest, Command, DASHBOARD_HTML, FrontendView, Reply, StatsView, metrics_text, replicas, route, stats_json,
};

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
            Ok(cmd) => self.execute(cmd),
            Err(reply) => reply,
        };
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
            Command::Stats => Reply::json(200, &stats_json(&self.stats_view())),
            Command::Metrics => Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics_text(&self.stats_view()),
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
                info!("policy is now {kind} (admin API)");
                Reply::success(json!({"policy": kind.name()}))
            }
            _ => Reply::success(replicas(&pool.backends)),
        }
    }

    fn stats_view(&self) -> StatsView<'_> {
        let pool = &self.pools[ADMIN_POOL];
        StatsView {
            backends: &pool.backends,
            mode: self.frontends[0].config.mode.name(),
            policy: self.frontends[0].config.policy.name(),
            uptime: self.now.saturating_duration_since(self.started),
            open_clients: self.open_clients(),
            buffers_in_use: self.buffers.in_use(),
            timers_pending: self.timers.len(),
            frontends: self
                .frontends
                .iter()
                .map(|f| FrontendView {
                    name: f.name.clone(),
                    listen: f.local_addr.to_string(),
                    mode: f.config.mode.name(),
                    policy: f.config.policy.name(),
                    pool: self.pools[f.pool].name.clone(),
                    open_clients: f.mode.open_clients(),
                    accepting: f.is_live(),
                    stats: f.stats.clone(),
                })
                .collect(),
            pools: self.pools.iter().map(|p| (p.name.as_str(), p.backends.as_slice(), dns_json(p, self.now))).collect(),
        }
    }
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
