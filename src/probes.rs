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
use crate::server::timers::{ROUND, Tick, TimerOwner, Timers};
use crate::server::tokens::Owner;

/// An idle proxy re-probes this often at most.
const IDLE_ROUND: Duration = Duration::from_secs(30);
/// A probe taking longer than this has failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

struct Probe {
    backend: usize,
    get: Get,
    started: Instant,
    /// Generation of its timeout on the server's deadline heap.
    timeout: u64,
}

pub struct Prober {
    path: String,
    interval: Duration,
    probes: Slab<Probe>,
    next_round: Instant,
    last_round: Option<Instant>,
    /// Generation of the armed round deadline.
    round: u64,
    /// Index of the frontend whose policy is fed, for tokens and timers.
    frontend: usize,
}

impl Prober {
    /// The first round starts at once.
    pub fn new(path: String, interval: Duration, frontend: usize, now: Instant, timers: &mut Timers) -> Prober {
        let round = timers.arm(now, TimerOwner::Probes(frontend), ROUND);
        Prober { path, interval, probes: Slab::new(), next_round: now, last_round: None, round, frontend }
    }

    /// A deadline this prober armed: a round to consider (`idle`: the proxy has
    /// no clients, so a round may come sooner), or a probe that took too long.
    pub fn on_deadline(
        &mut self,
        (key, generation): (usize, u64),
        at: Tick<'_>,
        idle: bool,
        backends: &[Backend],
        policy: &mut dyn Policy,
    ) {
        let Tick { now, registry: reg, timers } = at;
        if key != ROUND {
            if self.probes.get(key).is_some_and(|p| p.timeout == generation) {
                self.finish(key, Err("timed out".into()), policy, reg);
            }
            return;
        }
        if generation != self.round {
            return;
        }
        self.start_round_if_due(Tick { now, registry: reg, timers: &mut *timers }, idle, backends, policy);
        // Next look: the interval's end, or when an idle proxy may probe sooner
        // (looked at again then; a round in flight is looked at shortly).
        let idle_check = self.last_round.map(|t| t + IDLE_ROUND).filter(|&t| t > now).unwrap_or(now + IDLE_ROUND);
        let next = self.next_round.min(idle_check).max(now + Duration::from_millis(100));
        self.round = timers.arm(next, TimerOwner::Probes(self.frontend), ROUND);
    }

    fn start_round_if_due(&mut self, at: Tick<'_>, idle: bool, backends: &[Backend], policy: &mut dyn Policy) {
        let Tick { now, registry: reg, timers } = at;
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
                    let timeout = timers.arm(now + PROBE_TIMEOUT, TimerOwner::Probes(self.frontend), entry.key());
                    entry.insert(Probe { backend: i, get, started: now, timeout });
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
