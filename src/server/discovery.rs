//! The reactor's side of pools from DNS: ask the discovery thread when a
//! pool's time has come, and apply each answer to its pool as a diff (the
//! same one a reload applies). A failed or empty answer changes nothing:
//! the pool keeps its last good set and says why in the log and `/stats`.

use std::time::{Duration, Instant};

use log::{info, warn};

use super::Server;
use crate::discovery::{Discovery, Job, Resolved};

/// Never ask again sooner than this, whatever the TTL says.
const TTL_FLOOR: Duration = Duration::from_secs(1);

/// When to ask again: after `interval`, or when the records expire if
/// sooner, but not before the floor.
fn next_question(now: Instant, interval: Duration, ttl: Option<Duration>) -> Instant {
    now + ttl.map_or(interval, |t| t.min(interval)).max(TTL_FLOOR)
}

impl Server {
    /// Hand the names of every pool that is due to the discovery thread
    /// (started on first use). Runs on the housekeeping tick.
    pub(super) fn dns_tick(&mut self) {
        let now = self.now;
        let due: Vec<usize> = (0..self.pools.len())
            .filter(|&p| self.pools[p].dns.as_ref().is_some_and(|d| !d.in_flight && now >= d.next_at))
            .collect();
        if due.is_empty() {
            return;
        }
        if self.discovery.is_none() {
            match Discovery::start(self.waker.clone()) {
                Ok(d) => self.discovery = Some(d),
                Err(e) => {
                    warn!("cannot start the DNS thread: {e}; pools keep their servers");
                    return;
                }
            }
        }
        let Some(discovery) = self.discovery.as_ref() else { return };
        for p in due {
            let pool = &mut self.pools[p];
            let job = Job { pool: p, names: pool.config.names.clone(), resolvers: pool.config.resolvers.clone() };
            discovery.ask(job);
            if let Some(d) = pool.dns.as_mut() {
                d.in_flight = true;
            }
        }
    }

    /// The discovery thread woke us: apply what it answered.
    pub(super) fn on_dns_answers(&mut self) {
        let answers = self.discovery.as_ref().map(Discovery::answers).unwrap_or_default();
        for a in answers {
            self.apply_answer(a);
        }
    }

    fn apply_answer(&mut self, a: Resolved) {
        let now = self.now;
        let Some(pool) = self.pools.get_mut(a.pool) else { return };
        let interval = pool.config.resolve_interval.unwrap_or(crate::config::DEFAULT_RESOLVE_INTERVAL);
        let name = pool.name.clone();
        let Some(d) = pool.dns.as_mut() else { return };
        d.in_flight = false;
        d.next_at = next_question(now, interval, a.ttl);
        let found = match a.result {
            Err(why) => {
                d.failures += 1;
                if d.last_error.is_none() {
                    warn!("pool {name}: DNS: {why}; keeping the last good set ({} servers)", d.discovered.len());
                }
                d.last_error = Some(why);
                return;
            }
            Ok(found) => found,
        };
        if d.last_error.take().is_some() {
            info!("pool {name}: DNS answers again ({} servers)", found.len());
        }
        d.answers += 1;
        d.last_ok = Some(now);
        if d.discovered == found {
            return;
        }
        d.discovered = found;
        let wanted = pool.wanted();
        let mut changes = Vec::new();
        let reweighted = pool.set_members(&wanted, &mut changes);
        let gone = pool.upkeep();
        for c in &changes {
            info!("DNS: {c}");
        }
        self.sync_modes(a.pool, &gone);
        if reweighted {
            for f in self.frontends.iter_mut().filter(|f| f.pool == a.pool) {
                let kind = f.config.policy;
                f.set_policy(kind, now, &mut self.timers);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ttl_shortens_the_interval_down_to_the_floor() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(next_question(now, s(30), None), now + s(30));
        assert_eq!(next_question(now, s(30), Some(s(5))), now + s(5));
        assert_eq!(next_question(now, s(30), Some(s(300))), now + s(30));
        assert_eq!(next_question(now, s(30), Some(s(0))), now + TTL_FLOOR);
    }
}
