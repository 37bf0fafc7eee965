//! Speed probes for `fastest_ranked`: time a whole transfer of
//! `--probe-path` from each backend (`GET` over HTTP/1.0, read to the end),
//! on non-blocking sockets inside the reactor. A round runs at start, every
//! `--probe-interval`, and sooner (at most every `IDLE_ROUND`) while the
//! proxy has no clients, so measuring never competes with real traffic.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use log::{debug, info};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;

use crate::backend::Backend;
use crate::connection::{ConnectCheck, Ready, check_connect};
use crate::policy::Policy;
use crate::server::tokens::Owner;

/// An idle proxy re-probes this often at most.
const IDLE_ROUND: Duration = Duration::from_secs(30);
/// A probe taking longer than this has failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

struct Probe {
    backend: usize,
    sock: TcpStream,
    ready: Ready,
    started: Instant,
    request: Vec<u8>,
    sent: usize,
    connected: bool,
    /// The first bytes of the answer (status line), and the body byte count.
    head: Vec<u8>,
    received: u64,
}

pub struct Prober {
    path: String,
    interval: Duration,
    probes: Slab<Probe>,
    next_round: Instant,
    last_round: Option<Instant>,
    /// Index of the frontend whose policy is fed, for tokens.
    frontend: usize,
}

impl Prober {
    pub fn new(path: String, interval: Duration, frontend: usize, now: Instant) -> Prober {
        Prober { path, interval, probes: Slab::new(), next_round: now, last_round: None, frontend }
    }

    pub fn next_deadline(&self) -> Instant {
        self.probes.iter().map(|(_, p)| p.started + PROBE_TIMEOUT).fold(self.next_round, Instant::min)
    }

    /// Start a round when due, and fail probes that took too long.
    pub fn on_timers(
        &mut self,
        now: Instant,
        idle: bool,
        backends: &[Backend],
        policy: &mut dyn Policy,
        reg: &Registry,
    ) {
        let late: Vec<usize> =
            self.probes.iter().filter(|(_, p)| now >= p.started + PROBE_TIMEOUT).map(|(k, _)| k).collect();
        for k in late {
            self.finish(k, None, policy, reg, "timed out");
        }
        let idle_due = idle && self.last_round.is_some_and(|t| now >= t + IDLE_ROUND);
        if !self.probes.is_empty() || (now < self.next_round && !idle_due) {
            return;
        }
        self.next_round = now + self.interval;
        self.last_round = Some(now);
        for (i, b) in backends.iter().enumerate().filter(|(_, b)| !b.removed) {
            let request =
                format!("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: lbproxy-probe\r\n\r\n", self.path, b.addr)
                    .into_bytes();
            match TcpStream::connect(b.addr) {
                Ok(mut sock) => {
                    let entry = self.probes.vacant_entry();
                    let token = Owner::Probe { frontend: self.frontend, key: entry.key() }.token();
                    if reg.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE).is_ok() {
                        entry.insert(Probe {
                            backend: i,
                            sock,
                            ready: Ready::default(),
                            started: now,
                            request,
                            sent: 0,
                            connected: false,
                            head: Vec::new(),
                            received: 0,
                        });
                    }
                }
                Err(e) => {
                    debug!("probe of {} failed: {e}", b.addr);
                    policy.probed(i, None);
                }
            }
        }
    }

    pub fn on_event(&mut self, key: usize, ev: &mio::event::Event, policy: &mut dyn Policy, reg: &Registry) {
        let Some(p) = self.probes.get_mut(key) else { return };
        p.ready.absorb(ev);
        if !p.connected {
            match check_connect(&p.sock, &mut p.ready) {
                ConnectCheck::Pending => return,
                ConnectCheck::Connected => p.connected = true,
                ConnectCheck::Failed(e) => return self.finish(key, None, policy, reg, &e.to_string()),
            }
        }
        while p.sent < p.request.len() {
            match p.sock.write(&p.request[p.sent..]) {
                Ok(n) => p.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.finish(key, None, policy, reg, &e.to_string()),
            }
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match p.sock.read(&mut buf) {
                Ok(0) => {
                    let elapsed = p.started.elapsed();
                    let ok = status_is_2xx(&p.head);
                    let why = if ok { String::new() } else { "not a 2xx answer".to_string() };
                    return self.finish(key, ok.then_some(elapsed), policy, reg, &why);
                }
                Ok(n) => {
                    if p.head.len() < 64 {
                        let take = n.min(64 - p.head.len());
                        p.head.extend_from_slice(&buf[..take]);
                    }
                    p.received += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.finish(key, None, policy, reg, &e.to_string()),
            }
        }
    }

    fn finish(&mut self, key: usize, result: Option<Duration>, policy: &mut dyn Policy, reg: &Registry, why: &str) {
        let Some(mut p) = self.probes.try_remove(key) else { return };
        let _ = reg.deregister(&mut p.sock);
        match result {
            Some(t) => info!("probe of backend #{}: {} bytes in {t:?}", p.backend, p.received),
            None => info!("probe of backend #{} failed: {why}; it gets no traffic until a probe passes", p.backend),
        }
        policy.probed(p.backend, result);
        if self.probes.is_empty() {
            info!("probe round done");
        }
    }
}

fn status_is_2xx(head: &[u8]) -> bool {
    let line = String::from_utf8_lossy(head);
    let mut parts = line.split_whitespace();
    matches!((parts.next(), parts.next()), (Some(v), Some(c)) if v.starts_with("HTTP/1.") && c.starts_with('2') && c.len() == 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_passes() {
        assert!(status_is_2xx(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_2xx(b"HTTP/1.0 204 No Content"));
        assert!(!status_is_2xx(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_is_2xx(b""));
        assert!(!status_is_2xx(b"garbage"));
    }
}
