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

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;

use super::framing::BodyFraming;
use super::head::{self, HashKey, HeadError, RequestHead};
use crate::backend::Backend;
use crate::buffer::{Buffer, BufferPool};
use crate::connection::{ConnectCheck, Io, Ready, check_connect, classify};
use crate::policy::{Candidates, PickKey, Policy};
use crate::tokens::Owner;

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
    /// What hashing policies key on instead of the client address.
    pub hash_key: Option<HashKey>,
}

/// What the reactor lends the engine for one call.
pub struct Ctx<'a> {
    pub registry: &'a Registry,
    pub backends: &'a mut [Backend],
    pub policy: &'a mut dyn Policy,
    pub pool: &'a mut BufferPool,
    pub now: Instant,
}

/// A stand-in where a `Ctx` is needed but nothing is chosen.
struct NoPolicy;

impl Policy for NoPolicy {
    fn pick(&mut self, _: &PickKey, _: &Candidates) -> Option<usize> {
        None
    }
}

/// Largest response body copied behind its head into one write.
const COALESCE_MAX: usize = 16 * 1024;

/// Rounds of work per client per wake-up before yielding to others.
const ROUNDS: u32 = 32;

enum ClientPhase {
    /// Waiting for (or reading) the next request head.
    Head,
    /// A request is in flight.
    Exchange(Box<Exchange>),
    /// Flush what is queued, then close.
    Closing,
}

struct Exchange {
    conn: usize,
    backend: usize,
    head: RequestHead,
    req_body: BodyFraming,
    /// Request head fully written to the backend.
    head_sent: bool,
    /// Request body bytes written so far (a retry is only safe before any).
    body_sent: u64,
    resp: Option<Resp>,
    sent_at: Option<Instant>,
    first_byte: Option<Instant>,
    resp_bytes: u64,
    reused: bool,
    tried: Vec<usize>,
    serial: u64,
}

struct Resp {
    status: u16,
    framing: BodyFraming,
    backend_closes: bool,
    client_close: bool,
}

struct Client {
    sock: TcpStream,
    addr: SocketAddr,
    ready: Ready,
    rbuf: Option<Buffer>,
    wbuf: Vec<u8>,
    wpos: usize,
    eof: bool,
    phase: ClientPhase,
    last_active: Instant,
    /// When the head being read began (connection start, or its first byte
    /// after an exchange); `None` while idle between requests.
    head_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnPhase {
    Connecting { client: usize, attempt: u64 },
    Busy { client: usize },
    Idle { since: Instant },
}

struct BackendConn {
    sock: TcpStream,
    ready: Ready,
    backend: usize,
    phase: ConnPhase,
    rbuf: Option<Buffer>,
    wbuf: Vec<u8>,
    wpos: usize,
    eof: bool,
}

/// Timers, ordered by deadline: (when, kind, key, serial).
type Deadlines = BinaryHeap<Reverse<(Instant, u8, usize, u64)>>;
const T_CONNECT: u8 = 0;
const T_RESPONSE: u8 = 1;

/// Write `data` once if the socket is writable; clears the flag when it fills.
fn write_some(sock: &mut TcpStream, ready: &mut Ready, data: &[u8]) -> io::Result<usize> {
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
fn read_some(sock: &mut TcpStream, ready: &mut Ready, buf: &mut Buffer) -> io::Result<(usize, bool)> {
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
    settings: HttpSettings,
    clients: Slab<Client>,
    conns: Slab<BackendConn>,
    /// Idle connection keys per backend index, most recent last.
    idle: Vec<Vec<usize>>,
    deadlines: Deadlines,
    serial: u64,
    ready_again: Vec<usize>,
    /// The previous round's `ready_again`, swapped in so neither is reallocated.
    running_again: Vec<usize>,
    access_log: Option<BufWriter<File>>,
    draining: bool,
}

impl HttpEngine {
    pub fn new(settings: HttpSettings, backends: usize, access_log: Option<File>) -> HttpEngine {
        HttpEngine {
            settings,
            clients: Slab::new(),
            conns: Slab::new(),
            idle: vec![Vec::new(); backends],
            deadlines: BinaryHeap::new(),
            serial: 0,
            ready_again: Vec::new(),
            running_again: Vec::new(),
            access_log: access_log.map(BufWriter::new),
            draining: false,
        }
    }

    /// Room for the idle pool of every backend, after backends were added.
    pub fn ensure_backends(&mut self, n: usize) {
        if self.idle.len() < n {
            self.idle.resize(n, Vec::new());
        }
    }

    /// Close the pooled connections of a backend that left the list.
    pub fn forget_backend(
        &mut self,
        idx: usize,
        backends: &mut [Backend],
        pool: &mut BufferPool,
        registry: &Registry,
        now: Instant,
    ) {
        let Some(list) = self.idle.get_mut(idx) else { return };
        let keys = std::mem::take(list);
        let mut ctx = Ctx { registry, backends, policy: &mut NoPolicy, pool, now };
        for k in keys {
            self.close_conn(k, &mut ctx);
        }
    }

    pub fn open_clients(&self) -> usize {
        self.clients.len()
    }

    pub fn has_ready_work(&self) -> bool {
        !self.ready_again.is_empty()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((t, ..))| *t)
    }

    pub fn accept(&mut self, mut sock: TcpStream, addr: SocketAddr, ctx: &mut Ctx) {
        let _ = sock.set_nodelay(true);
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            ctx.registry.register(&mut sock, Owner::HttpClient(key).token(), Interest::READABLE | Interest::WRITABLE)
        {
            warn!("cannot register client {addr}: {e}");
            return;
        }
        entry.insert(Client {
            sock,
            addr,
            ready: Ready::default(),
            rbuf: None,
            wbuf: Vec::new(),
            wpos: 0,
            eof: false,
            phase: ClientPhase::Head,
            last_active: ctx.now,
            head_since: Some(ctx.now),
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
            ConnPhase::Connecting { client, .. } => match check_connect(&conn.sock, &mut conn.ready) {
                ConnectCheck::Pending => {}
                ConnectCheck::Connected => {
                    conn.phase = ConnPhase::Busy { client };
                    ctx.backends[conn.backend].stats.total += 1;
                    ctx.backends[conn.backend].note_connect_success();
                    self.drive(client, ctx);
                }
                ConnectCheck::Failed(e) => self.connect_failed(client, e, ctx),
            },
            ConnPhase::Busy { client } => self.drive(client, ctx),
            ConnPhase::Idle { .. } => {
                // An idle backend connection that speaks is closing (or broken): drop it.
                let mut probe = [0u8; 1];
                match conn.sock.read(&mut probe) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => conn.ready.readable = false,
                    _ => self.close_conn(key, ctx),
                }
            }
        }
    }

    /// Clients whose round budget ran out last time.
    pub fn run_ready_again(&mut self, ctx: &mut Ctx) {
        std::mem::swap(&mut self.ready_again, &mut self.running_again);
        let mut keys = std::mem::take(&mut self.running_again);
        for &k in &keys {
            self.drive(k, ctx);
        }
        keys.clear();
        self.running_again = keys;
    }

    /// Stop taking new requests: idle keep-alive clients are closed now,
    /// the others after their current exchange.
    pub fn start_drain(&mut self, ctx: &mut Ctx) {
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
            self.close_client(k, false, ctx);
        }
    }

    pub fn close_all(&mut self, ctx: &mut Ctx) {
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close_client(k, true, ctx);
        }
    }

    pub fn flush_log(&mut self) {
        if let Some(l) = self.access_log.as_mut() {
            let _ = l.flush();
        }
    }

    pub fn on_timers(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        while let Some(&Reverse((when, kind, key, serial))) = self.deadlines.peek() {
            if when > now {
                break;
            }
            self.deadlines.pop();
            match kind {
                T_CONNECT => {
                    if let Some(ConnPhase::Connecting { client, attempt }) = self.conns.get(key).map(|c| c.phase)
                        && attempt == serial
                    {
                        let e = io::Error::new(
                            ErrorKind::TimedOut,
                            format!("no answer within {:?}", self.settings.connect_timeout),
                        );
                        self.connect_failed(client, e, ctx);
                    }
                }
                _ => {
                    let waiting = matches!(
                        self.clients.get(key).map(|c| &c.phase),
                        Some(ClientPhase::Exchange(ex)) if ex.serial == serial && ex.resp.is_none()
                    );
                    if waiting {
                        debug!("client {key}: no response within {:?}", self.settings.backend_timeout);
                        self.fail_exchange(key, 504, ctx);
                        self.drive(key, ctx);
                    }
                }
            }
        }
    }

    /// Periodic housekeeping: close pooled connections idle too long and
    /// keep-alive clients past --idle-timeout; flush the access log.
    pub fn sweep(&mut self, ctx: &mut Ctx) {
        self.flush_log();
        let now = ctx.now;
        let pool_idle = self.settings.pool_idle_timeout;
        let stale: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, ConnPhase::Idle { since } if now - since >= pool_idle))
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            self.close_conn(k, ctx);
        }
        let limit = self.settings.request_timeout;
        let slow: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| matches!(c.phase, ClientPhase::Head) && c.head_since.is_some_and(|t| now - t >= limit))
            .map(|(k, _)| k)
            .collect();
        for k in slow {
            debug!("client {k}: no complete request head within {limit:?}");
            self.answer_and_close(k, 408);
            self.drive(k, ctx);
        }
        if let Some(idle) = self.settings.idle_timeout {
            let expired: Vec<usize> = self
                .clients
                .iter()
                .filter(|(_, c)| matches!(c.phase, ClientPhase::Head) && now - c.last_active >= idle)
                .map(|(k, _)| k)
                .collect();
            for k in expired {
                self.close_client(k, false, ctx);
            }
        }
    }

    /// Drive client `key` (and its backend connection) until nothing moves.
    fn drive(&mut self, key: usize, ctx: &mut Ctx) {
        for _ in 0..ROUNDS {
            match self.step(key, ctx) {
                Ok(true) => continue,
                Ok(false) => return,
                Err(e) => {
                    debug!("client {key}: {e}; closing");
                    self.close_client(key, true, ctx);
                    return;
                }
            }
        }
        self.ready_again.push(key);
    }

    /// One round of work. `Ok(true)` if anything moved. `Err`: the client
    /// connection is broken and must be reset.
    fn step(&mut self, key: usize, ctx: &mut Ctx) -> io::Result<bool> {
        let Some(c) = self.clients.get_mut(key) else {
            return Ok(false);
        };
        let mut moved = false;

        // Queued bytes (response heads, proxy answers) go first.
        if c.wpos < c.wbuf.len() {
            let n = write_some(&mut c.sock, &mut c.ready, &c.wbuf[c.wpos..])?;
            c.wpos += n;
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
                    self.close_client(key, false, ctx);
                }
                Ok(false)
            }
            ClientPhase::Head => {
                if !flushed {
                    return Ok(moved);
                }
                let rbuf = c.rbuf.get_or_insert_with(|| ctx.pool.take());
                let parsed = head::parse_request_keyed(
                    rbuf.data(),
                    self.settings.max_header_size.min(rbuf_capacity(ctx)),
                    c.addr.ip(),
                    self.settings.hash_key.as_ref(),
                );
                match parsed {
                    Ok(Some(h)) => {
                        rbuf.consume(h.len);
                        c.last_active = ctx.now;
                        c.head_since = None;
                        self.start_exchange(key, h, ctx);
                        Ok(true)
                    }
                    Err(HeadError::TooLarge) => {
                        self.answer_and_close(key, 431);
                        Ok(true)
                    }
                    Err(HeadError::Bad(why)) => {
                        debug!("client {}: bad request: {why}", c.addr);
                        self.answer_and_close(key, 400);
                        Ok(true)
                    }
                    Ok(None) => {
                        if c.eof {
                            self.close_client(key, false, ctx);
                            return Ok(false);
                        }
                        let (n, eof) = read_some(&mut c.sock, &mut c.ready, rbuf)?;
                        c.eof |= eof;
                        if n > 0 && c.head_since.is_none() {
                            c.head_since = Some(ctx.now);
                        }
                        if rbuf.is_empty() {
                            // Idle keep-alive client: hold no buffer.
                            if let Some(b) = c.rbuf.take() {
                                ctx.pool.give(b);
                            }
                        }
                        Ok(moved || n > 0 || eof)
                    }
                }
            }
            ClientPhase::Exchange(_) => Ok(self.step_exchange(key, ctx)? || moved),
        }
    }

    fn answer_and_close(&mut self, key: usize, status: u16) {
        if let Some(c) = self.clients.get_mut(key) {
            head::error_response(status, true, &mut c.wbuf);
            c.phase = ClientPhase::Closing;
        }
    }

    fn start_exchange(&mut self, key: usize, h: RequestHead, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let client_ip = c.addr.ip();
        if let HttpRole::Redirect(code) = self.settings.role {
            let pick_key = PickKey { client_ip, request_hash: h.request_hash };
            let pick = ctx.policy.pick(&pick_key, &Candidates::new(ctx.backends, &[]));
            // A body we do not read cannot be skipped safely: close after answering.
            let close = !h.keep_alive || !h.framing.is_done() || self.draining;
            match pick {
                Some(i) => {
                    ctx.backends[i].stats.requests += 1;
                    head::redirect_response(code, &ctx.backends[i].addr.to_string(), &h.target, close, &mut c.wbuf);
                    let status = code;
                    let addr = c.addr;
                    let backend = ctx.backends[i].addr;
                    self.log_access(addr, &h, Some(backend), status, 0, None, false);
                }
                None => head::error_response(503, close, &mut c.wbuf),
            }
            let c = &mut self.clients[key];
            c.phase = if close { ClientPhase::Closing } else { ClientPhase::Head };
            return;
        }

        self.serial += 1;
        let serial = self.serial;
        let mut tried = Vec::new();
        let opened = self.open_conn(key, PickKey { client_ip, request_hash: h.request_hash }, &mut tried, ctx);
        let Some((conn, backend, reused)) = opened else {
            let status = if tried.is_empty() { 503 } else { 502 };
            let c = &mut self.clients[key];
            let close = !h.keep_alive || !h.framing.is_done() || self.draining;
            head::error_response(status, close, &mut c.wbuf);
            let addr = c.addr;
            c.phase = if close { ClientPhase::Closing } else { ClientPhase::Head };
            self.log_access(addr, &h, None, status, 0, None, false);
            return;
        };
        let keep = self.settings.conn_mode == BackendConnMode::Persistent;
        Self::dispatch(&mut self.conns, conn, &h, keep, &mut ctx.backends[backend]);
        self.deadlines.push(Reverse((ctx.now + self.settings.backend_timeout, T_RESPONSE, key, serial)));
        let req_body = h.framing;
        self.clients[key].phase = ClientPhase::Exchange(Box::new(Exchange {
            conn,
            backend,
            head: h,
            req_body,
            head_sent: false,
            body_sent: 0,
            resp: None,
            sent_at: None,
            first_byte: None,
            resp_bytes: 0,
            reused,
            tried,
            serial,
        }));
    }

    /// A backend connection for client `key`: an idle one from the pool
    /// (persistent mode) or a new one. Immediate connect failures are
    /// counted and the policy is asked again without that backend.
    fn open_conn(
        &mut self,
        key: usize,
        pick: PickKey,
        tried: &mut Vec<usize>,
        ctx: &mut Ctx,
    ) -> Option<(usize, usize, bool)> {
        loop {
            let idx = ctx.policy.pick(&pick, &Candidates::new(ctx.backends, tried))?;
            if self.settings.conn_mode == BackendConnMode::Persistent
                && let Some(ck) = self.idle[idx].pop()
            {
                self.conns[ck].phase = ConnPhase::Busy { client: key };
                return Some((ck, idx, true));
            }
            match TcpStream::connect(ctx.backends[idx].addr) {
                Ok(sock) => return self.adopt_connecting(sock, key, idx, ctx).map(|ck| (ck, idx, false)),
                Err(e) => {
                    ctx.backends[idx].note_connect_failure(ctx.now, &e);
                    tried.push(idx);
                }
            }
        }
    }

    /// Count a request against `backend` and queue its rewritten head on
    /// backend connection `conn`.
    fn dispatch(conns: &mut Slab<BackendConn>, conn: usize, head: &RequestHead, keep: bool, backend: &mut Backend) {
        backend.stats.active += 1;
        backend.stats.requests += 1;
        let bc = &mut conns[conn];
        bc.wbuf.clear();
        bc.wpos = 0;
        head.write_for_backend(keep, &mut bc.wbuf);
    }

    /// Take a socket whose non-blocking connect to backend `idx` has started
    /// on behalf of client `key`: register it, arm its connect deadline, count
    /// it. `None` if it cannot be registered (the socket is then closed).
    fn adopt_connecting(&mut self, mut sock: TcpStream, key: usize, idx: usize, ctx: &mut Ctx) -> Option<usize> {
        let _ = sock.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let ck = entry.key();
        let token = Owner::HttpBackend(ck).token();
        if let Err(e) = ctx.registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE) {
            warn!("cannot register backend socket: {e}");
            return None;
        }
        self.serial += 1;
        let attempt = self.serial;
        entry.insert(BackendConn {
            sock,
            ready: Ready::default(),
            backend: idx,
            phase: ConnPhase::Connecting { client: key, attempt },
            rbuf: None,
            wbuf: Vec::new(),
            wpos: 0,
            eof: false,
        });
        ctx.backends[idx].stats.conns_opened += 1;
        self.deadlines.push(Reverse((ctx.now + self.settings.connect_timeout, T_CONNECT, ck, attempt)));
        Some(ck)
    }

    /// The connect of the client's backend connection failed: try another backend.
    fn connect_failed(&mut self, key: usize, err: io::Error, ctx: &mut Ctx) {
        let Some(ClientPhase::Exchange(ex)) = self.clients.get_mut(key).map(|c| &mut c.phase) else {
            return;
        };
        let (old_conn, backend) = (ex.conn, ex.backend);
        let b = &mut ctx.backends[backend];
        b.stats.active -= 1;
        b.note_connect_failure(ctx.now, &err);
        ex.tried.push(backend);
        let mut tried = std::mem::take(&mut ex.tried);
        let request_hash = ex.head.request_hash;
        self.remove_conn(old_conn);
        let pick = PickKey { client_ip: self.clients[key].addr.ip(), request_hash };
        match self.open_conn(key, pick, &mut tried, ctx) {
            Some((conn, idx, reused)) => {
                let keep = self.settings.conn_mode == BackendConnMode::Persistent;
                let Some(ClientPhase::Exchange(ex)) = self.clients.get_mut(key).map(|c| &mut c.phase) else {
                    return;
                };
                Self::dispatch(&mut self.conns, conn, &ex.head, keep, &mut ctx.backends[idx]);
                ex.conn = conn;
                ex.backend = idx;
                ex.reused = reused;
                ex.tried = tried;
                self.drive(key, ctx);
            }
            None => {
                // Nothing was sent anywhere: answer 502 and keep the client if we can.
                if let Some(ClientPhase::Exchange(ex)) = self.clients.get_mut(key).map(|c| &mut c.phase) {
                    ex.tried = tried;
                    ex.conn = usize::MAX;
                }
                self.fail_exchange(key, 502, ctx);
                self.drive(key, ctx);
            }
        }
    }

    /// End the client's exchange with a proxy-made `status` (before any
    /// response byte reached the client), or reset the client if the
    /// response had already started.
    fn fail_exchange(&mut self, key: usize, status: u16, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let ClientPhase::Exchange(ex) = std::mem::replace(&mut c.phase, ClientPhase::Closing) else {
            return;
        };
        if ex.conn != usize::MAX {
            ctx.backends[ex.backend].stats.active -= 1;
            self.close_conn(ex.conn, ctx);
        }
        let c = &mut self.clients[key];
        if ex.resp.is_some() {
            // Part of a response is out: only a reset tells the client it is cut.
            let _ = socket2::SockRef::from(&c.sock).set_linger(Some(Duration::ZERO));
            c.wbuf.clear();
            c.wpos = 0;
            c.phase = ClientPhase::Closing;
            return;
        }
        let close = !ex.head.keep_alive || !ex.req_body.is_done() || self.draining;
        head::error_response(status, close, &mut c.wbuf);
        c.phase = if close { ClientPhase::Closing } else { ClientPhase::Head };
        let addr = c.addr;
        let backend = (ex.conn != usize::MAX).then(|| ctx.backends[ex.backend].addr);
        self.log_access(addr, &ex.head, backend, status, 0, None, ex.reused);
    }

    /// Move the exchange forward: request head and body to the backend,
    /// response head and body to the client.
    fn step_exchange(&mut self, key: usize, ctx: &mut Ctx) -> io::Result<bool> {
        let max_head = self.settings.max_header_size;
        let c = self.clients.get_mut(key).expect("caller checked");
        let ClientPhase::Exchange(ex) = &mut c.phase else {
            return Ok(false);
        };
        let Some(bc) = self.conns.get_mut(ex.conn) else {
            return Ok(false);
        };
        if matches!(bc.phase, ConnPhase::Connecting { .. }) {
            return Ok(false);
        }
        let mut moved = false;
        let mut backend_error: Option<io::Error> = None;

        // Request head, then request body, to the backend.
        if bc.wpos < bc.wbuf.len() {
            match write_some(&mut bc.sock, &mut bc.ready, &bc.wbuf[bc.wpos..]) {
                Ok(n) => {
                    bc.wpos += n;
                    moved |= n > 0;
                }
                Err(e) => backend_error = Some(e),
            }
        }
        if !ex.head_sent && bc.wpos == bc.wbuf.len() {
            ex.head_sent = true;
            ex.sent_at = Some(ctx.now);
        }
        if backend_error.is_none() && ex.head_sent && !ex.req_body.is_done() {
            let rbuf = c.rbuf.get_or_insert_with(|| ctx.pool.take());
            if !rbuf.is_empty() {
                let n = ex.req_body.peek(rbuf.data()).map_err(|e| io::Error::new(ErrorKind::InvalidData, e.0))?;
                match write_some(&mut bc.sock, &mut bc.ready, &rbuf.data()[..n]) {
                    Ok(k) => {
                        let _ = ex.req_body.advance(&rbuf.data()[..k]);
                        rbuf.consume(k);
                        ex.body_sent += k as u64;
                        ctx.backends[ex.backend].stats.bytes_up += k as u64;
                        moved |= k > 0;
                    }
                    Err(e) => backend_error = Some(e),
                }
            }
            if !ex.req_body.is_done() && !c.eof {
                let (n, eof) = read_some(&mut c.sock, &mut c.ready, rbuf)?;
                moved |= n > 0;
                if eof {
                    // The client stopped in the middle of its body.
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "client closed mid-body"));
                }
            }
        }

        // Response from the backend.
        if backend_error.is_none() && !bc.eof {
            let rbuf = bc.rbuf.get_or_insert_with(|| ctx.pool.take());
            let waiting_body = ex.resp.as_ref().is_some_and(|r| !r.framing.is_done());
            if ex.resp.is_none() || (waiting_body && rbuf.is_empty()) {
                match read_some(&mut bc.sock, &mut bc.ready, rbuf) {
                    Ok((n, eof)) => {
                        moved |= n > 0 || eof;
                        bc.eof |= eof;
                    }
                    Err(e) => backend_error = Some(e),
                }
            }
        }
        if ex.resp.is_none() && backend_error.is_none() {
            let rbuf = bc.rbuf.get_or_insert_with(|| ctx.pool.take());
            match head::parse_response(rbuf.data(), max_head.min(rbuf_capacity(ctx)), ex.head.is_head()) {
                Ok(Some(rh)) => {
                    rbuf.consume(rh.len);
                    moved = true;
                    if ex.first_byte.is_none() {
                        ex.first_byte = Some(ctx.now);
                    }
                    if rh.is_interim() {
                        rh.write_for_client(false, false, &mut c.wbuf);
                    } else {
                        let until_close = rh.framing == BodyFraming::UntilClose;
                        let client_close = !ex.head.keep_alive || until_close || self.draining;
                        let http10_ka = ex.head.minor == 0 && !client_close;
                        rh.write_for_client(client_close, http10_ka, &mut c.wbuf);
                        // Send a small body in the same write as the head: one
                        // syscall instead of two for the common short response.
                        let mut framing = rh.framing;
                        let ready = framing.peek(rbuf.data()).unwrap_or(0);
                        if ready > 0 && ready <= COALESCE_MAX {
                            let k = framing.advance(&rbuf.data()[..ready]).unwrap_or(0);
                            c.wbuf.extend_from_slice(&rbuf.data()[..k]);
                            rbuf.consume(k);
                            ex.resp_bytes += k as u64;
                            ctx.backends[ex.backend].stats.bytes_down += k as u64;
                        }
                        ex.resp =
                            Some(Resp { status: rh.status, framing, backend_closes: rh.backend_closes, client_close });
                    }
                }
                Ok(None) if bc.eof => {
                    backend_error = Some(io::Error::new(ErrorKind::UnexpectedEof, "backend closed before responding"))
                }
                Ok(None) => {}
                Err(_) => {
                    warn!("backend {}: malformed response", ctx.backends[ex.backend].addr);
                    self.fail_exchange(key, 502, ctx);
                    return Ok(true);
                }
            }
        }

        if let Some(e) = backend_error {
            return self.backend_broke(key, e, ctx).map(|_| true);
        }

        // Response body to the client, after the head went out.
        let mut finished = false;
        if let Some(resp) = ex.resp.as_mut() {
            if c.wbuf.is_empty() && !resp.framing.is_done() {
                let rbuf = bc.rbuf.get_or_insert_with(|| ctx.pool.take());
                if !rbuf.is_empty() {
                    let n = resp.framing.peek(rbuf.data()).map_err(|e| io::Error::new(ErrorKind::InvalidData, e.0));
                    let n = match n {
                        Ok(n) => n,
                        Err(e) => return self.backend_broke(key, e, ctx).map(|_| true),
                    };
                    let k = write_some(&mut c.sock, &mut c.ready, &rbuf.data()[..n])?;
                    let _ = resp.framing.advance(&rbuf.data()[..k]);
                    rbuf.consume(k);
                    ex.resp_bytes += k as u64;
                    ctx.backends[ex.backend].stats.bytes_down += k as u64;
                    moved |= k > 0;
                }
                if rbuf.is_empty() && bc.eof && !resp.framing.is_done() {
                    if resp.framing == BodyFraming::UntilClose {
                        resp.framing = BodyFraming::Done;
                    } else {
                        return self
                            .backend_broke(
                                key,
                                io::Error::new(ErrorKind::UnexpectedEof, "backend closed mid-body"),
                                ctx,
                            )
                            .map(|_| true);
                    }
                }
            }
            finished = resp.framing.is_done() && c.wbuf.is_empty();
        }
        if finished {
            self.finish_exchange(key, ctx);
            return Ok(true);
        }
        Ok(moved)
    }

    /// The backend connection failed during the exchange.
    fn backend_broke(&mut self, key: usize, err: io::Error, ctx: &mut Ctx) -> io::Result<()> {
        let Some(ClientPhase::Exchange(ex)) = self.clients.get_mut(key).map(|c| &mut c.phase) else {
            return Ok(());
        };
        let addr = ctx.backends[ex.backend].addr;
        // A pooled connection the backend had already closed: resend once on a
        // fresh one when that is safe (idempotent, nothing of the body sent, no answer yet).
        let retry =
            ex.reused && ex.resp.is_none() && ex.first_byte.is_none() && ex.head.is_idempotent() && ex.body_sent == 0;
        if retry {
            debug!("pooled connection to {addr} failed ({err}); retrying on a new connection");
            let old = ex.conn;
            let backend = ex.backend;
            self.remove_conn(old);
            let keep = self.settings.conn_mode == BackendConnMode::Persistent;
            match TcpStream::connect(addr) {
                Ok(sock) => {
                    if let Some(ck) = self.adopt_connecting(sock, key, backend, ctx)
                        && let Some(ClientPhase::Exchange(ex)) = self.clients.get_mut(key).map(|c| &mut c.phase)
                    {
                        ex.head.write_for_backend(keep, &mut self.conns[ck].wbuf);
                        ex.conn = ck;
                        ex.reused = false;
                        ex.head_sent = false;
                        return Ok(());
                    }
                }
                Err(e) => debug!("reconnect to {addr} failed: {e}"),
            }
            if let Some(ClientPhase::Exchange(ex)) = self.clients.get_mut(key).map(|c| &mut c.phase) {
                ex.conn = usize::MAX;
                ctx.backends[backend].stats.active -= 1;
            }
            self.fail_exchange(key, 502, ctx);
            return Ok(());
        }
        warn!("backend {addr}: {err}");
        self.fail_exchange(key, 502, ctx);
        Ok(())
    }

    fn finish_exchange(&mut self, key: usize, ctx: &mut Ctx) {
        let c = &mut self.clients[key];
        let ClientPhase::Exchange(ex) = std::mem::replace(&mut c.phase, ClientPhase::Head) else {
            return;
        };
        let resp = ex.resp.as_ref().expect("finished exchanges have a response");
        let req_done = ex.req_body.is_done();
        let client_close = resp.client_close || !req_done || self.draining;
        c.phase = if client_close { ClientPhase::Closing } else { ClientPhase::Head };
        c.last_active = ctx.now;
        let addr = c.addr;
        ctx.backends[ex.backend].stats.active -= 1;

        let reusable = self.settings.conn_mode == BackendConnMode::Persistent
            && !resp.backend_closes
            && req_done
            && self.conns.get(ex.conn).is_some_and(|bc| !bc.eof && bc.rbuf.as_ref().is_none_or(Buffer::is_empty));
        if reusable && self.idle[ex.backend].len() < self.settings.pool_size {
            let bc = &mut self.conns[ex.conn];
            bc.phase = ConnPhase::Idle { since: ctx.now };
            if let Some(b) = bc.rbuf.take() {
                ctx.pool.give(b);
            }
            self.idle[ex.backend].push(ex.conn);
        } else {
            self.close_conn(ex.conn, ctx);
        }
        let latency = match (ex.sent_at, ex.first_byte) {
            (Some(s), Some(f)) => Some(f.saturating_duration_since(s)),
            _ => None,
        };
        if let Some(l) = latency {
            ctx.backends[ex.backend].record_latency(l);
            ctx.policy.observe(ex.backend, l, ctx.now);
        }
        let backend = ctx.backends[ex.backend].addr;
        self.log_access(addr, &ex.head, Some(backend), resp.status, ex.resp_bytes, latency, ex.reused);
    }

    #[allow(clippy::too_many_arguments)]
    fn log_access(
        &mut self,
        client: SocketAddr,
        h: &RequestHead,
        backend: Option<SocketAddr>,
        status: u16,
        bytes: u64,
        latency: Option<Duration>,
        reused: bool,
    ) {
        let Some(log) = self.access_log.as_mut() else { return };
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let backend = backend.map(|b| b.to_string()).unwrap_or_default();
        let latency = latency.map(|d| d.as_micros().to_string()).unwrap_or_default();
        let _ = writeln!(
            log,
            "{}.{:06},{},{},{},{},{},{},{},{}",
            ts.as_secs(),
            ts.subsec_micros(),
            client.ip(),
            h.method,
            csv_field(&h.target),
            backend,
            status,
            bytes,
            latency,
            reused
        );
    }

    /// Remove a backend connection from the slab (closing it) and from its pool.
    fn remove_conn(&mut self, key: usize) {
        if let Some(bc) = self.conns.try_remove(key)
            && let ConnPhase::Idle { .. } = bc.phase
        {
            self.idle[bc.backend].retain(|&k| k != key);
        }
    }

    fn close_conn(&mut self, key: usize, ctx: &mut Ctx) {
        if let Some(bc) = self.conns.get_mut(key)
            && let Some(b) = bc.rbuf.take()
        {
            ctx.pool.give(b);
        }
        self.remove_conn(key);
    }

    fn close_client(&mut self, key: usize, abort: bool, ctx: &mut Ctx) {
        let Some(mut c) = self.clients.try_remove(key) else {
            return;
        };
        if let ClientPhase::Exchange(ex) = &c.phase
            && ex.conn != usize::MAX
        {
            ctx.backends[ex.backend].stats.active -= 1;
            self.close_conn(ex.conn, ctx);
        }
        if let Some(b) = c.rbuf.take() {
            ctx.pool.give(b);
        }
        if abort {
            let _ = socket2::SockRef::from(&c.sock).set_linger(Some(Duration::ZERO));
        }
    }
}

fn rbuf_capacity(ctx: &Ctx) -> usize {
    ctx.pool.buffer_size()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// The access log's first line.
pub const ACCESS_LOG_HEADER: &str = "timestamp,client,method,path,backend,status,bytes,latency_us,reused";
