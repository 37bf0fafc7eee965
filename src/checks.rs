//! Active health checks, run by the reactor on non-blocking sockets.
//!
//! Every `interval` each listed backend without a check in flight gets one:
//! a TCP connect (`tcp`) or `GET path` expecting a 2xx status (`http:/path`),
//! bounded by `timeout`. Results go to `Backend::note_check`, which counts
//! them against `rise`/`fall` and logs transitions.

use std::io::{ErrorKind, Read, Write};
use std::time::Instant;

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;

use crate::backend::Backend;
use crate::connection::{ConnectCheck, Ready, check_connect};
use crate::health::{CheckKind, HealthConfig};
use crate::server::tokens::Owner;

/// Bytes of a check answer we look at (the status line fits easily).
const ANSWER_MAX: usize = 1024;

enum CheckPhase {
    Connecting,
    /// Request bytes sent so far.
    Sending(usize),
    Reading,
}

struct Check {
    backend: usize,
    sock: TcpStream,
    ready: Ready,
    phase: CheckPhase,
    deadline: Instant,
    answer: Vec<u8>,
}

pub struct Checker {
    cfg: HealthConfig,
    checks: Slab<Check>,
    /// Backend index -> check key in flight.
    in_flight: Vec<Option<usize>>,
    next_round: Instant,
    /// Index of the pool checked, for tokens.
    pool: usize,
}

/// What one step of a check came to.
enum Outcome {
    Pending,
    Passed,
    Failed(String),
}

impl Checker {
    pub fn new(cfg: HealthConfig, pool: usize, now: Instant) -> Checker {
        Checker { cfg, checks: Slab::new(), in_flight: Vec::new(), next_round: now, pool }
    }

    /// The earliest moment the checker needs the loop to wake.
    pub fn next_deadline(&self) -> Instant {
        self.checks.iter().map(|(_, c)| c.deadline).fold(self.next_round, Instant::min)
    }

    /// Start due checks and expire late ones.
    pub fn on_timers(&mut self, now: Instant, backends: &mut [Backend], registry: &Registry) {
        let late: Vec<usize> = self.checks.iter().filter(|(_, c)| now >= c.deadline).map(|(k, _)| k).collect();
        for key in late {
            let reason = format!("no answer within {:?}", self.cfg.timeout);
            self.finish(key, Outcome::Failed(reason), backends, registry);
        }
        if now < self.next_round {
            return;
        }
        self.next_round = now + self.cfg.interval;
        if self.in_flight.len() < backends.len() {
            self.in_flight.resize(backends.len(), None);
        }
        for idx in 0..backends.len() {
            if backends[idx].removed || self.in_flight[idx].is_some() {
                continue;
            }
            self.start(idx, now, backends, registry);
        }
    }

    fn start(&mut self, idx: usize, now: Instant, backends: &mut [Backend], registry: &Registry) {
        let addr = backends[idx].addr;
        let mut sock = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                backends[idx].note_check(false, &e.to_string());
                return;
            }
        };
        let entry = self.checks.vacant_entry();
        let key = entry.key();
        if let Err(e) = registry.register(
            &mut sock,
            Owner::Check { pool: self.pool, key }.token(),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            debug!("cannot register health check for {addr}: {e}");
            return;
        }
        entry.insert(Check {
            backend: idx,
            sock,
            ready: Ready::default(),
            phase: CheckPhase::Connecting,
            deadline: now + self.cfg.timeout,
            answer: Vec::new(),
        });
        self.in_flight[idx] = Some(key);
    }

    pub fn on_event(&mut self, key: usize, ev: &mio::event::Event, backends: &mut [Backend], registry: &Registry) {
        let Some(check) = self.checks.get_mut(key) else { return };
        check.ready.absorb(ev);
        let addr = backends.get(check.backend).map(|b| b.addr.to_string()).unwrap_or_default();
        let outcome = step(check, &self.cfg.kind, &addr);
        if !matches!(outcome, Outcome::Pending) {
            self.finish(key, outcome, backends, registry);
        }
    }

    fn finish(&mut self, key: usize, outcome: Outcome, backends: &mut [Backend], registry: &Registry) {
        let Some(mut check) = self.checks.try_remove(key) else { return };
        let _ = registry.deregister(&mut check.sock);
        if let Some(slot) = self.in_flight.get_mut(check.backend) {
            *slot = None;
        }
        let Some(b) = backends.get_mut(check.backend) else { return };
        match outcome {
            Outcome::Passed => b.note_check(true, ""),
            Outcome::Failed(reason) => b.note_check(false, &reason),
            Outcome::Pending => {}
        }
    }
}

fn step(check: &mut Check, kind: &CheckKind, addr: &str) -> Outcome {
    loop {
        match check.phase {
            CheckPhase::Connecting => {
                match check_connect(&check.sock, &mut check.ready) {
                    ConnectCheck::Pending => return Outcome::Pending,
                    ConnectCheck::Failed(e) => return Outcome::Failed(e.to_string()),
                    ConnectCheck::Connected => {}
                }
                match kind {
                    CheckKind::Tcp => return Outcome::Passed,
                    CheckKind::Http { .. } => check.phase = CheckPhase::Sending(0),
                }
            }
            CheckPhase::Sending(sent) => {
                let CheckKind::Http { path } = kind else { return Outcome::Passed };
                let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: lbproxy-check\r\n\r\n");
                let bytes = req.as_bytes();
                match check.sock.write(&bytes[sent..]) {
                    Ok(n) if sent + n == bytes.len() => check.phase = CheckPhase::Reading,
                    Ok(n) => check.phase = CheckPhase::Sending(sent + n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Outcome::Pending,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Outcome::Failed(e.to_string()),
                }
            }
            CheckPhase::Reading => {
                let mut buf = [0u8; 512];
                match check.sock.read(&mut buf) {
                    Ok(0) => return judge_answer(&check.answer),
                    Ok(n) => {
                        check.answer.extend_from_slice(&buf[..n]);
                        if let Some(done) = judged(&check.answer) {
                            return done;
                        }
                        if check.answer.len() >= ANSWER_MAX {
                            return judge_answer(&check.answer);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Outcome::Pending,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Outcome::Failed(e.to_string()),
                }
            }
        }
    }
}

/// The status line, once complete.
fn judged(answer: &[u8]) -> Option<Outcome> {
    answer.windows(2).any(|w| w == b"\r\n").then(|| judge_answer(answer))
}

fn judge_answer(answer: &[u8]) -> Outcome {
    let line_end = answer.windows(2).position(|w| w == b"\r\n").unwrap_or(answer.len());
    let line = String::from_utf8_lossy(&answer[..line_end]);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") && (200..300).contains(&code) => Outcome::Passed,
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Outcome::Failed(format!("status {code}")),
        _ if answer.is_empty() => Outcome::Failed("closed without answering".into()),
        _ => Outcome::Failed("answer is not HTTP".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(a: &[u8]) -> Result<(), String> {
        match judge_answer(a) {
            Outcome::Passed => Ok(()),
            Outcome::Failed(r) => Err(r),
            Outcome::Pending => Err("pending".into()),
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(verdict(b"HTTP/1.1 200 OK\r\n"), Ok(()));
        assert_eq!(verdict(b"HTTP/1.0 204 No Content\r\n\r\n"), Ok(()));
        assert_eq!(verdict(b"HTTP/1.1 503 Service Unavailable\r\n"), Err("status 503".into()));
        assert_eq!(verdict(b""), Err("closed without answering".into()));
        assert_eq!(verdict(b"SSH-2.0\r\n"), Err("answer is not HTTP".into()));
        assert!(judged(b"HTTP/1.1 200").is_none(), "an incomplete status line is not judged yet");
    }
}
