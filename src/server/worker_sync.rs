//! The server's side of workers (`workers.rs` holds the threads and what
//! travels between them): what the main reactor sends, and how a worker
//! applies it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use log::{info, warn};

use super::workers::{self, Command, PoolMembers, Snapshot};
use super::{Server, upgrade};
use crate::policy::PolicyKind;

impl Server {
    pub(super) fn waker(&self) -> Arc<mio::Waker> {
        Arc::clone(&self.waker)
    }

    pub(super) fn is_worker(&self) -> bool {
        self.link.is_some()
    }

    /// Descriptors of the listeners worker `id` accepts on, by frontend name:
    /// every one we poll, or (reuseport) the socket held for it.
    pub(super) fn listener_shares(&self, id: usize) -> std::io::Result<Vec<upgrade::Handed>> {
        let live = self.frontends.iter().filter_map(|f| Some((f.name.as_str(), f.listener.as_ref()?)));
        let mut handed = Vec::new();
        for (name, sockets) in live {
            handed.extend(sockets.share_with(name, id, self.reuseport)?);
        }
        Ok(handed)
    }

    /// Every pool's slots as they are now.
    pub(super) fn members(&self) -> Vec<PoolMembers> {
        let slots = |p: &super::pool::Pool| p.backends.iter().map(workers::Member::of).collect();
        self.pools.iter().map(|p| PoolMembers { pool: p.name.clone(), slots: slots(p) }).collect()
    }

    /// Main reactor: pass on what changed in the pools (health, admin
    /// commands, DNS answers, reloads). Cheap when nothing did.
    pub(super) fn sync_workers(&mut self) {
        let Some(w) = self.workers.as_mut() else { return };
        for p in &self.pools {
            w.sync_pool(&p.name, &p.backends);
        }
    }

    /// Main reactor: the admin API switched the policy of pool `pool`'s frontends.
    pub(super) fn tell_workers_policy(&self, pool: usize, kind: PolicyKind) {
        let Some(w) = self.workers.as_ref() else { return };
        for f in self.frontends.iter().filter(|f| f.pool == pool && f.is_live()) {
            let name = f.name.clone();
            w.send(|| Command::Policy(name.clone(), kind));
        }
    }

    /// Worker: carry out what the main reactor sent.
    pub(super) fn on_commands(&mut self) {
        loop {
            let Some(cmd) = self.link.as_ref().and_then(|l| l.rx.try_recv().ok()) else { return };
            match cmd {
                Command::Members(m) => self.on_members(m),
                Command::Reload(plan, handed, members) => {
                    self.supplied = Some(handed);
                    if let Err(e) = self.apply(*plan) {
                        warn!("worker: reload failed here ({e}); serving as before");
                    }
                    self.supplied = None;
                    for m in members {
                        self.on_members(m);
                    }
                }
                Command::Policy(name, kind) => {
                    let now = self.now;
                    for f in self.frontends.iter_mut().filter(|f| f.name == name && f.is_live()) {
                        f.set_policy(kind, now, &mut self.timers);
                    }
                }
                Command::Publish(n) => {
                    self.publish_snapshot(n);
                    if let Some(l) = self.link.as_ref() {
                        let _ = l.main.wake();
                    }
                }
                Command::Drain if self.drain_until.is_some() => self.drain_until = Some(self.now),
                Command::Drain => self.start_drain("worker: main reactor stopping", false),
                Command::ReopenLogs => {
                    for f in self.frontends.iter_mut() {
                        if let Some(Err(e)) = f.mode.reopen_logs() {
                            warn!("worker: {e}; still writing to the file open before");
                        }
                    }
                }
            }
        }
    }

    /// Worker: mirror the main reactor's slots of one pool.
    pub(super) fn on_members(&mut self, m: PoolMembers) {
        let Some(p) = self.pools.iter().position(|p| p.name == m.pool) else { return };
        let pool = &mut self.pools[p];
        let config = &pool.config;
        let gone = workers::mirror(&mut pool.backends, m.slots, |addr| super::pool::make_backend(config, addr, false));
        self.sync_modes(p, &gone);
    }

    /// Worker: what it counted, for the main reactor's `/stats` (each tick and at exit).
    pub(super) fn publish_snapshot(&self, asked: u64) {
        let Some(link) = self.link.as_ref() else { return };
        let mut slot = link.shared.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        // A periodic snapshot keeps the number of the last one asked for.
        let asked = asked.max(slot.asked);
        let snap = Snapshot {
            frontends: self
                .frontends
                .iter()
                .map(|f| (f.name.clone(), f.stats.clone(), f.mode.open_clients()))
                .collect(),
            pools: self.pools.iter().map(|p| (p.name.clone(), p.backends.clone())).collect(),
            lab: self.frontends.iter().map(|f| (f.name.clone(), f.policy.counts())).collect(),
            buffers_in_use: self.buffers.in_use(),
            pipes: self.pipe_counts(),
            timers_pending: self.timers.len(),
            asked,
        };
        *slot = snap;
    }

    /// Worker: say how many clients are open (the main reactor's drain and `/stats` read it).
    pub(super) fn publish_open_clients(&self) {
        let Some(link) = self.link.as_ref() else { return };
        let open = self.open_clients();
        if link.shared.open_clients.swap(open, Ordering::Relaxed) != open {
            let mut by_frontend = link.shared.open_by_frontend.lock().unwrap_or_else(|p| p.into_inner());
            by_frontend.clear();
            by_frontend.extend(self.frontends.iter().map(|f| f.mode.open_clients()));
        }
    }

    /// Main reactor, after a reload: the workers apply the same plan, then
    /// the pools' slots as they are now.
    pub(super) fn reload_workers(&mut self, plan: super::Plan) {
        let Some(w) = self.workers.as_ref() else { return };
        let plan = plan.for_worker();
        w.send_each(|id| match self.listener_shares(id) {
            Ok(handed) => Command::Reload(Box::new(plan.clone()), handed, self.members()),
            Err(e) => {
                warn!("reload: cannot share listeners with workers ({e}); they keep the old frontends");
                Command::Members(PoolMembers { pool: String::new(), slots: Vec::new() })
            }
        });
        info!("reload: passed to {} workers", w.len());
        let sent: Vec<(String, u64)> =
            self.pools.iter().map(|p| (p.name.clone(), workers::pool_fingerprint(&p.backends))).collect();
        if let Some(w) = self.workers.as_mut() {
            w.sent_all(&sent);
        }
    }
}
