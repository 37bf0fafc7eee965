//! TCP pass-through: a client connection is pinned to one backend for its
//! life and bytes are spliced both ways (`connection::Session`): with
//! splice(2) through a kernel pipe (`--splice auto`), else through buffers.
//!
//! The backend connect is non-blocking with a deadline; a refusal or timeout
//! counts against that backend and the policy is asked again without it.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Token};
use slab::Slab;

use super::connector::{self, Got, NoBackend};
use super::{Ctx, Mode, ReadyAgain};
use crate::backend::Claim;
use crate::config::Config;
use crate::connection::{ConnectCheck, Moved, Phase, Pipe, Ready, Session, Step, check_connect};
use crate::per_ip::ClientSlot;
use crate::policy::PickKey;
use crate::proxy_protocol;
use crate::sessions::{End, Summary, log_end, next_id};
use crate::splice::SpliceMode;
use crate::stamp::Stamp;

/// Reads one session may do per turn (16 x 64 KiB = 1 MiB by default).
const READ_BUDGET: u32 = 16;

/// Token keys: session key * 2 + side.
const CLIENT_SIDE: usize = 0;
const BACKEND_SIDE: usize = 1;

/// A connect for a client at `ip` (TCP keeps no idle connections).
fn open_backend(ctx: &mut Ctx, ip: IpAddr, tried: &mut Vec<usize>) -> Result<(usize, TcpStream, Claim), NoBackend> {
    match connector::connect(ctx, &PickKey::ip(ip), tried, |_| None::<()>)? {
        Got::Connecting { backend, sock, claim } => Ok((backend, sock, claim)),
        Got::Reused { .. } => Err(NoBackend::NoneLeft),
    }
}

/// The PROXY header naming the session's client, written whole: it is the
/// first thing on a just-connected socket, whose send buffer takes it.
fn write_proxy_header(s: &mut Session, v: proxy_protocol::Version) -> std::io::Result<()> {
    let to = s.client.local_addr()?;
    let header = proxy_protocol::encode(v, s.client_addr, to);
    let n = std::io::Write::write(&mut s.backend, &header)?;
    if n < header.len() {
        return Err(std::io::Error::other("the header did not fit the send buffer"));
    }
    Ok(())
}

/// Idle timeouts are checked a few times per timeout, at most once a second.
fn sweep_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

pub struct TcpMode {
    sessions: Slab<Session>,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    ready_again: ReadyAgain,
    next_idle_sweep: Option<Instant>,
    out_of_descriptors: Option<String>,
    /// PROXY protocol header written to each backend first (`send_proxy`).
    send_proxy: Option<proxy_protocol::Version>,
    /// `--log-sessions`: session end lines at info.
    log_sessions: bool,
    /// `--splice auto`: new sessions move bytes with splice(2).
    splice: bool,
}

impl TcpMode {
    pub fn new(config: &Config) -> TcpMode {
        TcpMode {
            send_proxy: config.send_proxy,
            sessions: Slab::with_capacity(1024),
            connect_timeout: config.connect_timeout,
            idle_timeout: config.idle_timeout,
            ready_again: ReadyAgain::default(),
            next_idle_sweep: None,
            out_of_descriptors: None,
            log_sessions: config.log_sessions,
            splice: config.splice == SpliceMode::Auto,
        }
    }

    /// The connect deadline of session `key`; its generation names the attempt.
    fn arm_connect(&self, key: usize, ctx: &mut Ctx) -> u64 {
        ctx.arm(ctx.now + self.connect_timeout, key)
    }

    /// Do whatever work the session's readiness allows.
    fn drive(&mut self, key: usize, ctx: &mut Ctx) {
        let Some(s) = self.sessions.get_mut(key) else { return };
        if let Phase::Connecting { since, .. } = s.phase {
            // Pending also when only the client spoke: its bytes wait in the kernel.
            match check_connect(&s.backend, &mut s.backend_ready) {
                ConnectCheck::Pending => return,
                ConnectCheck::Failed(e) => {
                    self.connect_failed(key, e, ctx);
                    return;
                }
                ConnectCheck::Connected => {
                    if let Some(v) = self.send_proxy
                        && let Err(e) = write_proxy_header(s, v)
                    {
                        warn!("s={}: cannot send the PROXY header to {}: {e}", s.id, ctx.backends[s.backend_idx].addr);
                        self.end_session(key, true, End::Error, ctx);
                        return;
                    }
                    s.phase = Phase::Proxying;
                    let b = &mut ctx.backends[s.backend_idx];
                    b.stats.total += 1;
                    let took = since.elapsed_to(ctx.now);
                    b.stats.connect_time.record(took);
                    b.note_connect_success();
                    debug!("s={}: connected to {} in {took:?}", s.id, b.addr);
                }
            }
        }
        let mut moved = Moved::default();
        let step = s.step(ctx.pool, ctx.pipes, READ_BUDGET, &mut moved);
        if moved.up + moved.down > 0 {
            s.last_active = Stamp::at(ctx.now);
            let st = &mut ctx.backends[s.backend_idx].stats;
            st.bytes_up += moved.up;
            st.bytes_down += moved.down;
            ctx.stats.bytes_in += moved.up;
            ctx.stats.bytes_out += moved.down;
            s.bytes_up += moved.up;
            s.bytes_down += moved.down;
            if moved.down > 0
                && let Some(t) = s.awaiting_first_byte.take()
            {
                ctx.policy.observe(s.backend_idx, t.elapsed_to(ctx.now), ctx.now);
            }
        }
        if s.first_fin.is_none() {
            s.first_fin = match (s.up.eof, s.down.eof) {
                (true, _) => Some(End::ClientClosed),
                (_, true) => Some(End::BackendClosed),
                _ => None,
            };
        }
        match step {
            Step::Open { more: true } => self.ready_again.push(key),
            Step::Open { more: false } => {}
            Step::Finished => {
                let end = s.first_fin.unwrap_or(End::ClientClosed);
                self.end_session(key, false, end, ctx);
            }
            Step::Failed(e) => {
                debug!("s={} ({}): {e}; closing both sides", s.id, s.client_addr);
                self.end_session(key, true, End::of_error(&e), ctx);
            }
        }
    }

    /// The backend refused or timed out: count it and try the next one.
    fn connect_failed(&mut self, key: usize, err: io::Error, ctx: &mut Ctx) {
        let Some(s) = self.sessions.get_mut(key) else { return };
        let failed = s.backend_idx;
        let b = &mut ctx.backends[failed];
        b.note_connect_failure(ctx.now, &format_args!("{err} (client {}, s={})", s.client_addr, s.id));
        let tried = s.tried.get_or_insert_with(Box::default);
        tried.push(failed);
        // The old socket is closed (and so leaves epoll) when replaced below.
        let (idx, mut backend, claim) = match open_backend(ctx, s.client_addr.ip(), tried) {
            Ok(pair) => pair,
            Err(NoBackend::NoneLeft) => {
                let tried = s.tried.as_ref().map_or(0, |t| t.len());
                warn!("s={}: no backend accepted client {} ({tried} tried): closing it", s.id, s.client_addr);
                self.end_session(key, false, End::NoBackend, ctx);
                return;
            }
            Err(NoBackend::OutOfDescriptors(e)) => {
                let why = format!("s={}: client {}: no descriptor for its backend: {e}", s.id, s.client_addr);
                self.out_of_descriptors = Some(why);
                self.end_session(key, false, End::NoBackend, ctx);
                return;
            }
        };
        let id = s.id;
        ctx.backends[idx].stats.conns_opened += 1;
        let token = ctx.token(key * 2 + BACKEND_SIDE);
        if let Err(e) = ctx.registry.register(&mut backend, token, Interest::READABLE | Interest::WRITABLE) {
            warn!("s={id}: cannot register backend socket: {e}");
            self.end_session(key, false, End::Error, ctx);
            return;
        }
        let attempt = self.arm_connect(key, ctx);
        let s = &mut self.sessions[key];
        // Replacing the claim gives the failed backend's back.
        s.claim = claim;
        s.backend = backend;
        s.backend_idx = idx;
        s.backend_ready = Ready::default();
        let now = Stamp::at(ctx.now);
        s.phase = Phase::Connecting { since: now, attempt };
        s.awaiting_first_byte = Some(now);
    }

    /// Close session `key` (`abort`: with a reset) and log its end line.
    fn end_session(&mut self, key: usize, abort: bool, end: End, ctx: &Ctx) {
        // No explicit deregister: closing a descriptor removes it from epoll,
        // and two `epoll_ctl` calls are a real share of a short session.
        if let Some(s) = self.sessions.try_remove(key) {
            let summary = Summary {
                id: s.id,
                client: s.client_addr,
                backend: (s.phase == Phase::Proxying)
                    .then(|| ctx.backends.get(s.backend_idx).map(|b| b.addr))
                    .flatten(),
                duration: s.started.elapsed_to(ctx.now),
                bytes_in: s.bytes_up,
                bytes_out: s.bytes_down,
                requests: None,
                end,
            };
            s.close(abort);
            log_end(self.log_sessions, &summary);
        }
    }
}

impl Mode for TcpMode {
    fn accept(&mut self, mut client: TcpStream, client_addr: SocketAddr, slot: ClientSlot, ctx: &mut Ctx) {
        let _ = client.set_nodelay(true);
        let id = next_id();
        ctx.stats.sessions += 1;
        let mut tried = Vec::new();
        let (idx, mut backend, claim) = match open_backend(ctx, client_addr.ip(), &mut tried) {
            Ok(pair) => pair,
            Err(NoBackend::NoneLeft) => {
                warn!("s={id}: no backend available for client {client_addr}: closing it");
                return;
            }
            Err(NoBackend::OutOfDescriptors(e)) => {
                self.out_of_descriptors =
                    Some(format!("s={id}: client {client_addr}: no descriptor for its backend: {e}"));
                return;
            }
        };
        ctx.backends[idx].stats.conns_opened += 1;
        let key = self.sessions.vacant_key();
        let both = Interest::READABLE | Interest::WRITABLE;
        let (client_token, backend_token): (Token, Token) =
            (ctx.token(key * 2 + CLIENT_SIDE), ctx.token(key * 2 + BACKEND_SIDE));
        if let Err(e) = ctx
            .registry
            .register(&mut client, client_token, both)
            .and_then(|_| ctx.registry.register(&mut backend, backend_token, both))
        {
            warn!("s={id}: cannot register client {client_addr}: {e}");
            let _ = ctx.registry.deregister(&mut client);
            return;
        }
        let attempt = self.arm_connect(key, ctx);
        let now = Stamp::at(ctx.now);
        self.sessions.insert(Session {
            client,
            client_addr,
            client_ready: Ready::default(),
            backend,
            backend_ready: Ready::default(),
            backend_idx: idx,
            claim,
            slot,
            phase: Phase::Connecting { since: now, attempt },
            up: Pipe::between_sockets(self.splice),
            down: Pipe::between_sockets(self.splice),
            tried: (!tried.is_empty()).then(|| Box::new(tried)),
            last_active: now,
            awaiting_first_byte: Some(now),
            id,
            started: now,
            bytes_up: 0,
            bytes_down: 0,
            first_fin: None,
        });
        if self.next_idle_sweep.is_none() {
            self.next_idle_sweep = self.idle_timeout.map(|d| ctx.now + sweep_period(d));
        }
        debug!("s={id}: client {client_addr} -> backend {}", ctx.backends[idx].addr);
    }

    fn event(&mut self, key: usize, ev: &Event, ctx: &mut Ctx) {
        let (session, side) = (key / 2, key % 2);
        if let Some(s) = self.sessions.get_mut(session) {
            if side == CLIENT_SIDE {
                s.client_ready.absorb(ev)
            } else {
                s.backend_ready.absorb(ev)
            }
            self.drive(session, ctx);
        }
    }

    fn run_ready_again(&mut self, ctx: &mut Ctx) {
        let keys = self.ready_again.take();
        for &k in &keys {
            self.drive(k, ctx);
        }
        self.ready_again.done(keys);
    }

    fn has_ready_work(&self) -> bool {
        !self.ready_again.is_empty()
    }

    fn on_deadline(&mut self, key: usize, attempt: u64, ctx: &mut Ctx) {
        if self.waits_for(key, attempt) {
            let after = self.connect_timeout;
            self.connect_failed(key, io::Error::new(ErrorKind::TimedOut, format!("no answer within {after:?}")), ctx);
        }
    }

    fn waits_for(&self, key: usize, attempt: u64) -> bool {
        matches!(self.sessions.get(key).map(|s| s.phase), Some(Phase::Connecting { attempt: a, .. }) if a == attempt)
    }

    fn on_timers(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        if let (Some(at), Some(idle)) = (self.next_idle_sweep, self.idle_timeout)
            && now >= at
        {
            let expired: Vec<usize> =
                self.sessions.iter().filter(|(_, s)| s.last_active.elapsed_to(now) >= idle).map(|(k, _)| k).collect();
            for k in expired {
                debug!("s={}: idle for {idle:?}, closing", self.sessions[k].id);
                self.end_session(k, false, End::Timeout, ctx);
            }
            self.next_idle_sweep = (!self.sessions.is_empty()).then(|| now + sweep_period(idle));
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.next_idle_sweep
    }

    fn open_clients(&self) -> usize {
        self.sessions.len()
    }

    fn close_all(&mut self, ctx: &mut Ctx) {
        let keys: Vec<usize> = self.sessions.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.end_session(k, true, End::Shutdown, ctx);
        }
    }

    fn take_out_of_descriptors(&mut self) -> Option<String> {
        self.out_of_descriptors.take()
    }

    fn reconfigure(&mut self, config: &Config) {
        self.connect_timeout = config.connect_timeout;
        self.idle_timeout = config.idle_timeout;
        self.send_proxy = config.send_proxy;
        self.log_sessions = config.log_sessions;
        self.splice = config.splice == SpliceMode::Auto;
    }
}
