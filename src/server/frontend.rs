//! A frontend: one listening address, the mode that serves its clients, the
//! policy that picks among its pool's backends (and the speed probes that
//! feed it, for fastest_ranked).

use std::net::SocketAddr;
use std::time::Instant;

use super::listeners::Sockets;
use super::timers::Timers;
use crate::config::Config;
use crate::mode::Mode;
use crate::per_ip::PerIpTable;
use crate::policy::{Policy, PolicyKind, Shadowed};
use crate::probes::Prober;
use crate::stats::FrontendStats;

pub(super) struct Frontend {
    pub name: String,
    /// Its listening sockets in this reactor; `None` once draining.
    pub listener: Option<Sockets>,
    pub local_addr: SocketAddr,
    pub mode: Box<dyn Mode>,
    /// Its policy and the shadow policies that decide beside it.
    pub policy: Shadowed,
    /// Speed probes, while the policy wants them (fastest_ranked).
    pub prober: Option<Prober>,
    /// Connections and request rate per client address.
    pub per_ip: PerIpTable,
    /// Index of its pool in the server.
    pub pool: usize,
    pub config: Config,
    /// Its counters (requests, answers by status, bytes, response times).
    pub stats: FrontendStats,
    /// This frontend's index in the server, for its sockets' tokens.
    index: usize,
    /// A routed frontend (no listener) that a reload removed.
    pub retired: bool,
}

impl Frontend {
    /// `slots`: how many backend slots its pool has now (the mode makes room for them).
    pub fn new(
        name: String,
        (listener, local_addr): (Option<Sockets>, SocketAddr),
        mut mode: Box<dyn Mode>,
        (pool, slots): (usize, usize),
        config: Config,
        index: usize,
        (now, timers): (Instant, &mut Timers),
    ) -> Frontend {
        mode.backends_changed(slots);
        let mut f = Frontend {
            name,
            local_addr,
            listener,
            retired: false,
            mode,
            policy: Shadowed::new(config.policy, &config.shadow_policies, &config.params, config.access_log_explain),
            prober: None,
            per_ip: PerIpTable::shared(config.per_ip, config.per_ip_entries.clone()),
            pool,
            config,
            stats: FrontendStats::default(),
            index,
        };
        f.policy.share_rotation(f.config.rotation.clone());
        f.update_prober(now, timers);
        f
    }

    /// Run speed probes exactly while the policy wants them.
    fn update_prober(&mut self, now: Instant, timers: &mut Timers) {
        if !self.policy.wants_probes() {
            self.prober = None;
        } else if self.prober.is_none() {
            let c = &self.config;
            self.prober = Some(Prober::new(c.probe_path.clone(), c.probe_interval, self.index, now, timers));
        }
    }

    /// Its policy and shadows built anew from its config (shadow counts start over).
    pub fn rebuild_policy(&mut self) {
        let c = &self.config;
        self.policy = Shadowed::new(c.policy, &c.shadow_policies, &c.params, c.access_log_explain);
        self.policy.share_rotation(c.rotation.clone());
    }

    pub fn set_policy(&mut self, kind: PolicyKind, now: Instant, timers: &mut Timers) {
        self.policy.replace_real(kind.build(&self.config.params));
        self.policy.share_rotation(self.config.rotation.clone());
        self.config.policy = kind;
        self.update_prober(now, timers);
    }

    /// Taking new clients: through its listener, or (an SNI route's
    /// frontend) through its parent's until a reload retires it.
    pub fn is_live(&self) -> bool {
        self.listener.is_some() || (self.config.routed && !self.retired)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.mode.next_deadline()
    }
}
