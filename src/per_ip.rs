//! Limits per client address (off by default), so one source cannot take
//! every slot: at most `max_conns` connections open at once, and at most
//! `rate` new requests per second (a token bucket holding one second's
//! worth, so a burst of `rate` passes). In TCP mode a connection is the
//! request; in HTTP and redirect modes every request counts.
//!
//! A connection's place is a `ClientSlot` owned by the session: dropping it
//! (however the session ends) gives the place back. Entries exist only for
//! addresses with open connections or a bucket still refilling, and the
//! periodic sweep removes the rest, so memory follows the live clients, not
//! every address ever seen.
//!
//! The table is shared by every worker thread's copy of the frontend (it
//! travels in the frontend's configuration), so the limits hold for the
//! process, not per worker.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use log::{debug, warn};

/// What one address may use; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerIpLimits {
    pub max_conns: Option<usize>,
    pub rate: Option<usize>,
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It has this many connections open already.
    Connections(usize),
    /// Its bucket is empty at this rate per second.
    Rate(usize),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Refused::Connections(n) => write!(f, "{n} connections open, the limit (max_conns_per_ip)"),
            Refused::Rate(r) => write!(f, "over {r} requests per second (rate_per_ip)"),
        }
    }
}

#[derive(Debug)]
struct Entry {
    open: usize,
    /// Requests the bucket holds now (at `refilled`).
    tokens: f64,
    refilled: Instant,
    /// A refusal of this address was logged at warn level already.
    warned: bool,
}

type Table = Arc<Mutex<HashMap<IpAddr, Entry>>>;

/// The addresses one frontend tracks, shared by its workers. Equal to any
/// other: it is state, not a setting, so a reload comparing settings ignores it.
#[derive(Debug, Clone, Default)]
pub struct SharedEntries(Table);

impl PartialEq for SharedEntries {
    fn eq(&self, _: &SharedEntries) -> bool {
        true
    }
}

fn lock(t: &Table) -> MutexGuard<'_, HashMap<IpAddr, Entry>> {
    // A worker that panicked holding it left whole entries: go on with them.
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// One frontend's limits and the addresses they are tracking.
pub struct PerIpTable {
    limits: PerIpLimits,
    entries: Table,
    /// Connections and requests refused since start.
    pub refused: u64,
}

/// A connection's place under `max_conns`; given back when dropped. Boxed:
/// every idle session holds one, most with limits off (8 bytes, not 32).
pub struct ClientSlot {
    held: Option<Box<(Table, IpAddr)>>,
}

impl ClientSlot {
    /// A place that counts toward nothing (limits off).
    pub fn unlimited() -> ClientSlot {
        ClientSlot { held: None }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some(held) = self.held.take()
            && let Some(e) = lock(&held.0).get_mut(&held.1)
        {
            e.open = e.open.saturating_sub(1);
        }
    }
}

impl PerIpTable {
    pub fn new(limits: PerIpLimits) -> PerIpTable {
        PerIpTable::shared(limits, SharedEntries::default())
    }

    /// Limits over `entries`, which other workers' tables may share.
    pub fn shared(limits: PerIpLimits, entries: SharedEntries) -> PerIpTable {
        PerIpTable { limits, entries: entries.0, refused: 0 }
    }

    /// New limits (reload): open connections keep their places.
    pub fn set_limits(&mut self, limits: PerIpLimits) {
        self.limits = limits;
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        lock(&self.entries).len()
    }

    /// A new connection from `ip`; in TCP mode (`is_request`) it also takes
    /// a request from the bucket.
    pub fn admit_connection(&mut self, ip: IpAddr, now: Instant, is_request: bool) -> Result<ClientSlot, Refused> {
        let PerIpLimits { max_conns, rate } = self.limits;
        let rate = rate.filter(|_| is_request);
        if max_conns.is_none() && rate.is_none() {
            return Ok(ClientSlot::unlimited());
        }
        let verdict = {
            let mut t = lock(&self.entries);
            let e = t.entry(ip).or_insert_with(|| fresh(rate, now));
            let verdict = match max_conns {
                Some(max) if e.open >= max => Err(Refused::Connections(e.open)),
                _ => rate.map_or(Ok(()), |r| take_token(e, r, now)),
            };
            // Counted under the same lock as the check: two workers cannot both take the last place.
            if verdict.is_ok() && max_conns.is_some() {
                e.open += 1;
            }
            verdict
        };
        match verdict {
            Ok(()) => Ok(ClientSlot { held: max_conns.map(|_| Box::new((Arc::clone(&self.entries), ip))) }),
            Err(why) => Err(self.refuse(ip, why)),
        }
    }

    /// A new request (HTTP and redirect modes) from `ip`.
    pub fn admit_request(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let Some(rate) = self.limits.rate else { return Ok(()) };
        let verdict = {
            let mut t = lock(&self.entries);
            let e = t.entry(ip).or_insert_with(|| fresh(Some(rate), now));
            take_token(e, rate, now)
        };
        verdict.map_err(|why| self.refuse(ip, why))
    }

    fn refuse(&mut self, ip: IpAddr, why: Refused) -> Refused {
        self.refused += 1;
        let mut t = lock(&self.entries);
        // Once per address while it is tracked: a flood must not flood the log.
        match t.get_mut(&ip) {
            Some(e) if !e.warned => {
                e.warned = true;
                warn!("client {ip} refused: {why} (further refusals of {ip} are logged at debug level)");
            }
            _ => debug!("client {ip} refused: {why}"),
        }
        why
    }

    /// Forget addresses with nothing open whose bucket is full again.
    pub fn sweep(&mut self, now: Instant) {
        let rate = self.limits.rate;
        lock(&self.entries).retain(|_, e| e.open > 0 || rate.is_some_and(|r| refilled(e, r, now) < r as f64));
    }
}

fn fresh(rate: Option<usize>, now: Instant) -> Entry {
    Entry { open: 0, tokens: rate.unwrap_or(0) as f64, refilled: now, warned: false }
}

/// The bucket's level at `now`, at most one second's worth.
fn refilled(e: &Entry, rate: usize, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(e.refilled).as_secs_f64();
    (e.tokens + elapsed * rate as f64).min(rate as f64)
}

fn take_token(e: &mut Entry, rate: usize, now: Instant) -> Result<(), Refused> {
    e.tokens = refilled(e, rate, now);
    e.refilled = now;
    if e.tokens >= 1.0 {
        e.tokens -= 1.0;
        Ok(())
    } else {
        Err(Refused::Rate(rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn off_by_default_tracks_nothing() {
        let mut t = PerIpTable::new(PerIpLimits::default());
        let now = Instant::now();
        let slots: Vec<_> = (0..1000).map(|_| t.admit_connection(ip(1), now, true).unwrap()).collect();
        assert!(t.admit_request(ip(1), now).is_ok());
        assert_eq!((t.tracked(), t.refused, slots.len()), (0, 0, 1000));
    }

    #[test]
    fn connection_places_come_back_when_slots_drop() {
        let mut t = PerIpTable::new(PerIpLimits { max_conns: Some(2), rate: None });
        let now = Instant::now();
        let a = t.admit_connection(ip(1), now, false).unwrap();
        let b = t.admit_connection(ip(1), now, false).unwrap();
        assert_eq!(t.admit_connection(ip(1), now, false).err(), Some(Refused::Connections(2)));
        // Another address has its own places.
        let _c = t.admit_connection(ip(2), now, false).unwrap();
        drop(a);
        let a2 = t.admit_connection(ip(1), now, false).unwrap();
        assert_eq!(t.refused, 1);
        drop((a2, b));
        t.sweep(now);
        assert_eq!(t.tracked(), 1, "only 127.0.0.2 still has a connection open");
    }

    #[test]
    fn the_bucket_passes_a_burst_of_rate_then_refills_at_rate() {
        let mut t = PerIpTable::new(PerIpLimits { max_conns: None, rate: Some(10) });
        let t0 = Instant::now();
        let passed = (0..25).filter(|_| t.admit_request(ip(1), t0).is_ok()).count();
        assert_eq!(passed, 10);
        assert_eq!(t.admit_request(ip(1), t0 + Duration::from_millis(50)).err(), Some(Refused::Rate(10)));
        // 0.5 s later: 5 more.
        let later = t0 + Duration::from_millis(550);
        assert_eq!((0..25).filter(|_| t.admit_request(ip(1), later).is_ok()).count(), 5);
        // A full bucket with nothing open is forgotten; an empty one is kept.
        t.sweep(later);
        assert_eq!(t.tracked(), 1);
        t.sweep(later + Duration::from_secs(2));
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn tcp_connections_count_as_requests_http_ones_do_not() {
        let mut t = PerIpTable::new(PerIpLimits { max_conns: None, rate: Some(3) });
        let now = Instant::now();
        let http: Vec<_> = (0..10).map(|_| t.admit_connection(ip(1), now, false)).collect();
        assert!(http.iter().all(Result::is_ok));
        let tcp = (0..10).filter(|_| t.admit_connection(ip(1), now, true).is_ok()).count();
        assert_eq!(tcp, 3);
    }
}
