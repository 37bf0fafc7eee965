//! HTTP mode and redirect mode inside the reactor.
//!
//! A client connection carries a sequence of exchanges (request, response).
//! Each request is a new balancing decision; its backend connection comes
//! from that backend's idle pool (persistent mode) or is opened for it
//! (per-request mode). Bodies are streamed: bytes go from one socket's read
//! buffer straight to the other socket, and `BodyFraming` says where each
//! message ends, so pipelined requests are answered in order and memory per
//! connection is one buffer each way.
//!
//! Readiness follows the reactor's strategy: flags set by events, cleared
//! by `WouldBlock`; a client is driven until nothing moves or its round
//! budget is spent.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::Interest;
use mio::net::TcpStream;
use slab::Slab;

use super::access_log::{AccessLog, Entry, NO_PICK};
use super::exchange::Exchange;
use super::head::{self, HashKey, HeadError, RequestHead};
use super::retry_budget::RetryBudget;
use super::tunnel::Tunnel;
use crate::buffer::Buffer;
use crate::connection::{ConnectCheck, Io, Ready, check_connect, classify};
use crate::per_ip::ClientSlot;
use crate::policy::PickKey;
use crate::proxy_protocol;
use crate::sessions::{End, Summary, log_end, next_id};
use crate::tls::ClientIo;

/// What the HTTP front end answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRole {
    /// Forward each request to a backend.
    Proxy,
    /// Answer each request with a redirect to the chosen backend (status code).
    Redirect(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendConnMode {
    /// Keep backend connections in an idle pool and reuse them.
    Persistent,
    /// A fresh backend connection for every request, closed after it.
    PerRequest,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub role: HttpRole,
    pub conn_mode: BackendConnMode,
    /// Most idle connections kept per backend.
    pub pool_size: usize,
    pub pool_idle_timeout: Duration,
    pub max_header_size: usize,
    pub backend_timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// A request head must be complete this long after the connection
    /// opened or the head's first byte arrived (slow-header defence).
    pub request_timeout: Duration,
    /// An idle keep-alive client is closed after this long.
    pub keepalive_timeout: Option<Duration>,
    /// What hashing policies key on instead of the client address.
    pub hash_key: Option<HashKey>,
    /// PROXY protocol header in front of each backend connection.
    pub send_proxy: Option<proxy_protocol::Version>,
    /// TLS termination: clients speak TLS to this configuration.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// TLS towards the backends.
    pub backend_tls: Option<crate::tls::BackendTls>,
    /// `--log-sessions`: session end lines at info (else at debug).
    pub log_sessions: bool,
    pub retry_budget: super::retry_budget::RetryBudgetConfig,
    /// The frontend's retry window (shared by its workers' engines).
    pub retry_window: super::retry_budget::SharedWindow,
}

pub use crate::mode::Ctx;
use crate::mode::ReadyAgain;

/// Token keys: client key * 2, or backend connection key * 2 + 1.
pub(super) const CLIENT_KEY: usize = 0;
pub(super) const BACKEND_KEY: usize = 1;

/// Rounds of work per client per wake-up before yielding to others.
const ROUNDS: u32 = 32;

pub(super) enum ClientPhase {
    /// Waiting for (or reading) the next request head.
    Head,
    /// A request is in flight.
    Exchange(Box<Exchange>),
    /// Protocols were switched (`101`): bytes both ways until both ends close.
    Tunnel(Box<Tunnel>),
    /// Flush what is queued, then close.
    Closing,
}

pub(super) struct Client {
    /// Its address's place under `--max-conns-per-ip`, while it lives.
    /// First, so it is given back before the socket closes (fields drop in
    /// order): a client that sees the close and comes back at once finds it
    /// free, even in another worker thread.
    pub _slot: ClientSlot,
    /// The socket, plain or under TLS.
    pub io: ClientIo,
    pub addr: SocketAddr,
    pub ready: Ready,
    pub rbuf: Option<Buffer>,
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    pub eof: bool,
    pub phase: ClientPhase,
    /// Last time a byte moved for this client, either way (`--idle-timeout`).
    pub last_active: Instant,
    /// When the head being read began (connection start, or its first byte
    /// after an exchange); `None` while idle between requests.
    pub head_since: Option<Instant>,
    /// TLS close_notify queued (Closing phase).
    pub closing_notified: bool,
    /// Unique in the process, for log lines (`s=N`).
    pub id: u64,
    pub started: Instant,
    /// Bytes read from the client, and written to it (heads and bodies).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Request heads read.
    pub requests: u64,
    /// The backend of its latest request, for the end line.
    pub last_backend: Option<SocketAddr>,
    /// Why it is closing, when a timeout answered it (408, 504) before closing.
    pub end_hint: Option<End>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnPhase {
    Connecting { client: usize, attempt: u64 },
    Busy { client: usize },
    Idle { since: Instant },
}

/// A backend connection; its buffer goes back to the pool when it is dropped.
pub(super) struct BackendConn {
    /// The socket, plain or under TLS (`backend_tls`).
    pub io: ClientIo,
    pub ready: Ready,
    pub backend: usize,
    pub phase: ConnPhase,
    pub rbuf: Option<Buffer>,
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    pub eof: bool,
    /// When its connect started (for the connect-time histogram).
    pub opened: Instant,
}

/// Write `data` once if the socket is writable; clears the flag when it fills.
pub(super) fn write_some(sock: &mut impl Write, ready: &mut Ready, data: &[u8]) -> io::Result<usize> {
    if !ready.writable || data.is_empty() {
        return Ok(0);
    }
    match classify(sock.write(data)) {
        Io::Moved(n) => {
            if n < data.len() {
                ready.writable = false;
            }
            Ok(n)
        }
        Io::WouldBlock => {
            ready.writable = false;
            Ok(0)
        }
        Io::Closed => Err(ErrorKind::WriteZero.into()),
        Io::Failed(e) => Err(e),
    }
}

/// Read once into `buf` if readable and there is room. `Ok(true)` on EOF.
pub(super) fn read_some(sock: &mut impl Read, ready: &mut Ready, buf: &mut Buffer) -> io::Result<(usize, bool)> {
    if !ready.readable || buf.is_full() {
        return Ok((0, false));
    }
    let want = buf.space();
    match classify(buf.fill_from(sock)) {
        Io::Moved(n) => {
            if n > 0 && n < want && !ready.hup {
                ready.readable = false;
            }
            Ok((n, false))
        }
        Io::WouldBlock => {
            ready.readable = false;
            Ok((0, false))
        }
        Io::Closed => Ok((0, true)),
        Io::Failed(e) => Err(e),
    }
}

pub struct HttpEngine {
    pub(super) settings: HttpSettings,
    pub(super) clients: Slab<Client>,
    pub(super) conns: Slab<BackendConn>,
    /// Idle connection keys per backend index, most recent last.
    pub(super) idle: Vec<Vec<usize>>,
    ready_again: ReadyAgain,
    pub(super) access_log: Option<AccessLog>,
    pub(super) draining: bool,
    /// A backend connect failed for want of descriptors since the reactor
    /// last asked (it then pauses accepting).
    pub(super) out_of_descriptors: bool,
    /// How many retries the recent requests allow.
    pub(super) budget: RetryBudget,
}

impl HttpEngine {
    pub fn new(settings: HttpSettings, backends: usize, access_log: Option<AccessLog>) -> HttpEngine {
        HttpEngine {
            clients: Slab::new(),
            conns: Slab::new(),
            idle: vec![Vec::new(); backends],
            ready_again: ReadyAgain::default(),
            access_log,
            draining: false,
            out_of_descriptors: false,
            budget: RetryBudget::sharing(settings.retry_budget, settings.retry_window.clone()),
            settings,
        }
    }

    /// Room for the idle pool of every backend, after backends were added.
    pub fn ensure_backends(&mut self, n: usize) {
        if self.idle.len() < n {
            self.idle.resize(n, Vec::new());
        }
    }

    /// Close the pooled connections of a backend that left the list.
    pub fn forget_backend(&mut self, idx: usize) {
        let Some(list) = self.idle.get_mut(idx) else { return };
        for k in std::mem::take(list) {
            self.conns.try_remove(k);
        }
    }

    pub fn open_clients(&self) -> usize {
        self.clients.len()
    }

    pub fn has_ready_work(&self) -> bool {
        !self.ready_again.is_empty()
    }

    /// Whether a backend connect hit the descriptor limit since the last call.
    pub fn take_out_of_descriptors(&mut self) -> bool {
        std::mem::take(&mut self.out_of_descriptors)
    }

    pub fn accept(&mut self, mut sock: TcpStream, addr: SocketAddr, slot: ClientSlot, ctx: &mut Ctx) {
        let _ = sock.set_nodelay(true);
        let id = next_id();
        ctx.stats.sessions += 1;
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            ctx.registry.register(&mut sock, ctx.token(key * 2 + CLIENT_KEY), Interest::READABLE | Interest::WRITABLE)
        {
            warn!("s={id}: cannot register client {addr}: {e}");
            return;
        }
        let io = match &self.settings.tls {
            Some(tls) => match ClientIo::tls(sock, tls) {
                Ok(io) => io,
                Err(e) => {
                    warn!("s={id}: client {addr}: cannot start TLS: {e}");
                    return;
                }
            },
            None => ClientIo::plain(sock),
        };
        debug!("s={id}: client {addr} connected");
        entry.insert(Client {
            io,
            addr,
            ready: Ready::default(),
            rbuf: None,
            wbuf: Vec::new(),
            wpos: 0,
            eof: false,
            phase: ClientPhase::Head,
            last_active: ctx.now,
            head_since: Some(ctx.now),
            _slot: slot,
            closing_notified: false,
            id,
            started: ctx.now,
            bytes_in: 0,
            bytes_out: 0,
            requests: 0,
            last_backend: None,
            end_hint: None,
        });
    }

    pub fn client_event(&mut self, key: usize, ev: &mio::event::Event, ctx: &mut Ctx) {
        if let Some(c) = self.clients.get_mut(key) {
            c.ready.absorb(ev);
            self.drive(key, ctx);
        }
    }

    pub fn conn_event(&mut self, key: usize, ev: &mio::event::Event, ctx: &mut Ctx) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        conn.ready.absorb(ev);
        match conn.phase {
            ConnPhase::Connecting { client, .. } => match check_connect(&conn.io.sock, &mut conn.ready) {
                ConnectCheck::Pending => {}
                ConnectCheck::Connected => {
                    conn.phase = ConnPhase::Busy { client };
                    let b = &mut ctx.backends[conn.backend];
                    b.stats.connect_time.record(ctx.now.saturating_duration_since(conn.opened));
                    b.note_connect_success();
                    self.drive(client, ctx);
                }
                ConnectCheck::Failed(e) => self.connect_failed(client, e, ctx),
            },
            ConnPhase::Busy { client } => self.drive(client, ctx),
            ConnPhase::Idle { .. } => {
                // An idle backend connection that speaks is closing (or broken): drop it.
                // (Under TLS, records that carry no data, e.g. session tickets, are taken in.)
                let mut probe = [0u8; 1];
                match conn.io.read(&mut probe) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => conn.ready.readable = false,
                    _ => self.close_conn(key),
                }
            }
        }
    }

    /// Clients whose round budget ran out last time.
    pub fn run_ready_again(&mut self, ctx: &mut Ctx) {
        let keys = self.ready_again.take();
        for &k in &keys {
            self.drive(k, ctx);
        }
        self.ready_again.done(keys);
    }

    /// Stop taking new requests: idle keep-alive clients are closed now,
    /// the others after their current exchange.
    pub fn start_drain(&mut self) {
        self.draining = true;
        let idle: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                matches!(c.phase, ClientPhase::Head)
                    && c.rbuf.as_ref().is_none_or(Buffer::is_empty)
                    && c.wbuf.is_empty()
            })
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            self.close_client(k, false, End::Shutdown);
        }
    }

    pub fn close_all(&mut self) {
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close_client(k, true, End::Shutdown);
        }
    }

    /// Connection `key`'s connect deadline (`attempt`) came due.
    pub fn on_deadline(&mut self, key: usize, attempt: u64, ctx: &mut Ctx) {
        if let Some(ConnPhase::Connecting { client, attempt: a }) = self.conns.get(key).map(|c| c.phase)
            && a == attempt
        {
            let e =
                io::Error::new(ErrorKind::TimedOut, format!("no answer within {:?}", self.settings.connect_timeout));
            self.connect_failed(client, e, ctx);
        }
    }

    /// Whether connection `key` still waits on its connect deadline `attempt`.
    pub fn waits_for(&self, key: usize, attempt: u64) -> bool {
        matches!(self.conns.get(key).map(|c| c.phase), Some(ConnPhase::Connecting { attempt: a, .. }) if a == attempt)
    }

    /// Drive client `key` (and its backend connection) until nothing moves.
    pub(super) fn drive(&mut self, key: usize, ctx: &mut Ctx) {
        for _ in 0..ROUNDS {
            match self.step(key, ctx) {
                Ok(true) => self.mark_progress(key, ctx.now),
                Ok(false) => return,
                Err(e) => {
                    let id = self.clients.get(key).map_or(0, |c| c.id);
                    debug!("s={id}: {e}; closing");
                    self.close_client(key, true, End::of_error(&e));
                    return;
                }
            }
        }
        self.ready_again.push(key);
    }

    /// Something moved for client `key`: restart its idle and stall clocks.
    fn mark_progress(&mut self, key: usize, now: Instant) {
        if let Some(c) = self.clients.get_mut(key) {
            c.last_active = now;
            if let ClientPhase::Exchange(ex) = &mut c.phase {
                ex.last_progress = now;
            }
        }
    }

    /// One round of work. `Ok(true)` if anything moved. `Err`: the client
    /// connection is broken and must be reset.
    fn step(&mut self, key: usize, ctx: &mut Ctx) -> io::Result<bool> {
        let Some(c) = self.clients.get_mut(key) else {
            return Ok(false);
        };
        let mut moved = false;

        // Encrypted bytes TLS could not send last time (handshake, records)
        // go before anything else.
        if c.io.tls_pending() {
            match c.io.flush_tls() {
                Ok(()) => moved = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.ready.writable = false;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }

        // Queued bytes (response heads, proxy answers) go first.
        if c.wpos < c.wbuf.len() {
            let n = write_some(&mut c.io, &mut c.ready, &c.wbuf[c.wpos..])?;
            c.wpos += n;
            c.bytes_out += n as u64;
            ctx.stats.bytes_out += n as u64;
            moved |= n > 0;
            if c.wpos == c.wbuf.len() {
                c.wbuf.clear();
                c.wpos = 0;
            }
        }
        let flushed = c.wbuf.is_empty();

        match c.phase {
            ClientPhase::Closing => {
                if flushed {
                    // A TLS client gets close_notify before the FIN.
                    if !c.closing_notified {
                        c.closing_notified = true;
                        c.io.close_notify();
                    }
                    match c.io.flush_tls() {
                        Ok(()) => {
                            let end = c.end_hint.unwrap_or(End::ProxyClosed);
                            self.close_client(key, false, end);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => c.ready.writable = false,
                        Err(e) => return Err(e),
                    }
                }
                Ok(false)
            }
            ClientPhase::Head => {
                // Nothing buffered and nothing to read: no buffer to take.
                if !flushed || (c.rbuf.is_none() && !c.ready.readable && !c.eof) {
                    return Ok(moved);
                }
                // Heads start in a small buffer: a slow client holds 4 KiB, not a
                // full one; a head that fills it moves to a full-size buffer.
                let mut rbuf = c.rbuf.take().unwrap_or_else(|| ctx.pool.take_small());
                if rbuf.is_full() {
                    rbuf = ctx.pool.enlarge(rbuf);
                }
                let rbuf = c.rbuf.insert(rbuf);
                let parsed = head::parse_request_keyed(
                    rbuf.data(),
                    self.settings.max_header_size.min(ctx.pool.buffer_size()),
                    c.addr.ip(),
                    self.settings.hash_key.as_ref(),
                );
                match parsed {
                    Ok(Some(mut h)) => {
                        if self.settings.tls.is_some() {
                            h.arrived_over_tls();
                        }
                        rbuf.consume(h.len);
                        c.requests += 1;
                        ctx.stats.requests += 1;
                        c.last_active = ctx.now;
                        c.head_since = None;
                        self.start_exchange(key, h, ctx);
                        Ok(true)
                    }
                    Err(HeadError::TooLarge) => {
                        debug!("s={}: request head over the limit", c.id);
                        self.answer_and_close(key, 431, ctx);
                        Ok(true)
                    }
                    Err(HeadError::Bad(why)) => {
                        debug!("s={}: client {}: bad request: {why}", c.id, c.addr);
                        self.answer_and_close(key, 400, ctx);
                        Ok(true)
                    }
                    Ok(None) => {
                        if c.eof {
                            self.close_client(key, false, End::ClientClosed);
                            return Ok(false);
                        }
                        let (n, eof) = read_some(&mut c.io, &mut c.ready, rbuf)?;
                        c.eof |= eof;
                        c.bytes_in += n as u64;
                        ctx.stats.bytes_in += n as u64;
                        if n > 0 && c.head_since.is_none() {
                            c.head_since = Some(ctx.now);
                        }
                        if rbuf.is_empty() {
                            // Idle keep-alive client: hold no buffer.
                            c.rbuf = None;
                        }
                        Ok(moved || n > 0 || eof)
                    }
                }
            }
            ClientPhase::Exchange(_) => Ok(self.step_exchange(key, ctx)? || moved),
            // The 101 head goes out before any byte of the new protocol.
            ClientPhase::Tunnel(_) if !flushed => Ok(moved),
            ClientPhase::Tunnel(_) => Ok(self.step_tunnel(key, ctx)? || moved),
        }
    }

    /// Queue the proxy's own answer `status` and close after it.
    pub(super) fn answer_and_close(&mut self, key: usize, status: u16, ctx: &mut Ctx) {
        if let Some(c) = self.clients.get_mut(key) {
            head::error_response(status, true, &mut c.wbuf);
            ctx.stats.proxy_responses.add(status);
            c.phase = ClientPhase::Closing;
        }
    }

    fn start_exchange(&mut self, key: usize, h: RequestHead, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let client_ip = c.addr.ip();
        if ctx.per_ip.admit_request(client_ip, ctx.now).is_err() {
            // A body we do not read cannot be skipped safely: close after answering.
            let close = !h.keep_alive || !h.framing.is_done() || self.draining;
            head::error_response(429, close, &mut c.wbuf);
            ctx.stats.proxy_responses.add(429);
            debug!("s={}: {} {}: over --rate-per-ip, 429", c.id, h.method, h.target);
            c.phase = if close { ClientPhase::Closing } else { ClientPhase::Head };
            let client = c.addr;
            let (backend, note) = (None, &NO_PICK);
            let entry = Entry {
                client,
                head: &h,
                backend,
                status: 429,
                bytes: 0,
                latency: None,
                reused: false,
                spans: None,
                note,
            };
            self.log_access(&entry);
            return;
        }
        if let HttpRole::Redirect(code) = self.settings.role {
            let pick_key = PickKey { client_ip, request_hash: h.request_hash };
            let pick = crate::slow_start::pick(&mut *ctx.policy, &pick_key, ctx.backends, &[], ctx.now);
            // A body we do not read cannot be skipped safely: close after answering.
            let close = !h.keep_alive || !h.framing.is_done() || self.draining;
            let status = if pick.is_some() { code } else { 503 };
            ctx.stats.proxy_responses.add(status);
            match pick {
                Some(i) => {
                    ctx.backends[i].stats.requests += 1;
                    c.last_backend = Some(ctx.backends[i].addr);
                    head::redirect_response(code, &ctx.backends[i].addr.to_string(), &h.target, close, &mut c.wbuf);
                    let client = c.addr;
                    let backend = Some(ctx.backends[i].addr);
                    let note = &ctx.policy.last_note().clone();
                    let entry = Entry {
                        client,
                        head: &h,
                        backend,
                        status: code,
                        bytes: 0,
                        latency: None,
                        reused: false,
                        spans: None,
                        note,
                    };
                    self.log_access(&entry);
                }
                None => head::error_response(503, close, &mut c.wbuf),
            }
            let c = &mut self.clients[key];
            c.phase = if close { ClientPhase::Closing } else { ClientPhase::Head };
            return;
        }

        self.budget.note_request(ctx.now);
        let mut tried = Vec::new();
        let opened = self.open_conn(key, PickKey { client_ip, request_hash: h.request_hash }, &mut tried, ctx);
        let Some((conn, backend, reused, claim)) = opened else {
            let status = if tried.is_empty() { 503 } else { 502 };
            ctx.stats.proxy_responses.add(status);
            let c = &mut self.clients[key];
            debug!("s={}: no backend for {} {}: {status}", c.id, h.method, h.target);
            let close = !h.keep_alive || !h.framing.is_done() || self.draining;
            head::error_response(status, close, &mut c.wbuf);
            let client = c.addr;
            c.phase = if close { ClientPhase::Closing } else { ClientPhase::Head };
            let note = &ctx.policy.last_note().clone();
            self.log_access(&Entry {
                client,
                head: &h,
                backend: None,
                status,
                bytes: 0,
                latency: None,
                reused: false,
                spans: None,
                note,
            });
            return;
        };
        let keep = self.settings.conn_mode == BackendConnMode::Persistent;
        Self::dispatch(&mut self.conns, conn, &h, keep, &mut ctx.backends[backend]);
        if !reused {
            self.prefix_proxy_header(key, conn);
        }
        let req_body = h.framing;
        let c = &mut self.clients[key];
        c.last_backend = Some(ctx.backends[backend].addr);
        debug!(
            "s={}: {} {} -> backend {}{}",
            c.id,
            h.method,
            h.target,
            ctx.backends[backend].addr,
            if reused { " (pooled connection)" } else { "" }
        );
        self.clients[key].phase = ClientPhase::Exchange(Box::new(Exchange {
            conn,
            backend,
            head: h,
            req_body,
            head_sent: false,
            body_sent: 0,
            resp: None,
            begun: ctx.now,
            sent_at: None,
            first_byte: None,
            resp_bytes: 0,
            reused,
            tried,
            last_progress: ctx.now,
            claim: Some(claim),
            note: ctx.policy.last_note().clone(),
        }));
    }

    /// Close client `key` (`abort`: with a reset) and log its end line.
    pub(super) fn close_client(&mut self, key: usize, abort: bool, end: End) {
        let Some(c) = self.clients.try_remove(key) else {
            return;
        };
        // The clock is read only when the line is written.
        if self.settings.log_sessions || log::log_enabled!(log::Level::Debug) {
            let summary = Summary {
                id: c.id,
                client: c.addr,
                backend: c.last_backend,
                duration: c.started.elapsed(),
                bytes_in: c.bytes_in,
                bytes_out: c.bytes_out,
                requests: Some(c.requests),
                end,
            };
            log_end(self.settings.log_sessions, &summary);
        }
        // The exchange's or tunnel's claim on its backend goes with it.
        match &c.phase {
            ClientPhase::Exchange(ex) if ex.conn != usize::MAX => self.close_conn(ex.conn),
            ClientPhase::Tunnel(t) => {
                // Both ends of a tunnel see the same kind of end.
                if abort && let Some(bc) = self.conns.get(t.conn) {
                    let _ = socket2::SockRef::from(&bc.io.sock).set_linger(Some(Duration::ZERO));
                }
                self.close_conn(t.conn);
            }
            _ => {}
        }
        if abort {
            let _ = socket2::SockRef::from(&c.io.sock).set_linger(Some(Duration::ZERO));
        }
    }
}
