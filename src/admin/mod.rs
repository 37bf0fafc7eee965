//! The admin API: JSON over HTTP/1.1 on its own listener, served by the
//! reactor itself. This module reads requests, checks them and turns them
//! into `Command`s; the reactor carries a command out and this module
//! renders the answer (JSON, Prometheus text, the dashboard page).
//!
//! One request per connection (`Connection: close`): the admin port is for
//! people and scrapers, not for load. So it is bounded: at most `MAX_CONNS`
//! connections, each with `TIMEOUT` to send its request and as long again
//! to take the answer.
//!
//! Layout: `routes` checks a request and names the `Command`; `render`
//! turns state into JSON, `metrics` into Prometheus text; `lab` the shadow
//! policies' shares, fairness and predicted latency; `resolver` looks
//! host names up on a thread of its own; this file is the transport (accept,
//! read, answer, linger, deadlines); `dashboard.html` is the page.

pub mod lab;
mod metrics;
mod render;
mod resolver;
mod routes;

pub use metrics::{COMMIT, metrics_text};
pub use render::{FrontendView, PipeCounts, StatsView, replicas, stats_json};
pub use routes::{Command, Reply, membership_of, route};

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Waker};
use slab::Slab;

use crate::http::head;
use crate::server::tokens::Owner;
use resolver::{Job, Resolver};

/// Largest admin request (head and body); larger ones get 413.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Admin connections open at once. More are answered 503 and closed, so a
/// flood of them cannot take the descriptors that sessions need (the
/// reactor keeps this many out of the session cap).
pub const MAX_CONNS: usize = 64;
/// An admin connection must send its whole request within this after it
/// opened, and take the answer within as long again, or it is closed.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// After answering before the whole request was read (413, 400), input
/// discarded while waiting for the client to close, at most.
const LINGER_MAX: usize = 1 << 20;

/// A page that polls `/stats` once a second, keeps minutes of history and
/// draws charts, tables and drain/enable/disable buttons.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// One admin connection: read a request, answer, close.
struct AdminConn {
    sock: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    phase: Phase,
    /// The input held exactly one whole request, so closing after the
    /// answer leaves nothing unread.
    read_all: bool,
    /// Closed then, whatever its phase.
    deadline: Instant,
    /// Unique in the process: a lookup's answer goes to this connection
    /// only, not to a later one that got the same slab key.
    serial: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    /// Request read; a host-name lookup is under way for it.
    Waiting,
    Answering,
    /// Answer sent and write side shut: discarding input until the client closes.
    Lingering {
        discarded: usize,
    },
}

/// A request read off an admin connection.
pub struct AdminRequest {
    pub conn: usize,
    pub serial: u64,
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub authorization: Option<String>,
}

pub struct AdminServer {
    listener: TcpListener,
    conns: Slab<AdminConn>,
    token: Option<String>,
    /// Read-only routes answer without the token.
    read_only_open: bool,
    /// The cap was hit and logged; logged again only after it was left.
    full_logged: bool,
    next_serial: u64,
    /// Started on the first host-name lookup.
    resolver: Option<Resolver>,
}

impl AdminServer {
    pub fn new(listener: TcpListener, token: Option<String>, read_only_open: bool) -> AdminServer {
        AdminServer {
            listener,
            conns: Slab::new(),
            token,
            read_only_open,
            full_logged: false,
            next_serial: 0,
            resolver: None,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The listening socket, to hand to a new process (binary upgrade).
    pub fn listener_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.listener)
    }

    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, peer)) if self.conns.len() >= MAX_CONNS => {
                    if !self.full_logged {
                        warn!("{MAX_CONNS} admin connections open: answering 503 to {peer} and more");
                        self.full_logged = true;
                    }
                    // Best effort: a fresh socket's buffer takes this small
                    // answer whole, and the drop closes it.
                    let reply = Reply::failure(503, &format!("{MAX_CONNS} admin connections are open already"));
                    let _ = sock.write(&reply.to_bytes());
                    let _ = sock.shutdown(Shutdown::Write);
                }
                Ok((mut sock, _)) => {
                    self.full_logged = false;
                    self.next_serial += 1;
                    let entry = self.conns.vacant_entry();
                    let token = Owner::Admin(entry.key()).token();
                    if registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE).is_ok() {
                        entry.insert(AdminConn {
                            sock,
                            input: Vec::new(),
                            output: Vec::new(),
                            written: 0,
                            phase: Phase::Reading,
                            read_all: false,
                            deadline: now + TIMEOUT,
                            serial: self.next_serial,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("admin accept: {e}");
                    return;
                }
            }
        }
    }

    /// Read what the connection has; return its request once complete.
    /// Bad or oversized requests are answered here.
    pub fn on_event(&mut self, key: usize, now: Instant) -> Option<AdminRequest> {
        let c = self.conns.get_mut(key)?;
        match c.phase {
            Phase::Reading => {}
            // Whatever the client does meanwhile waits for the answer (or the deadline).
            Phase::Waiting => return None,
            Phase::Answering => {
                self.flush(key);
                return None;
            }
            Phase::Lingering { .. } => {
                self.discard(key);
                return None;
            }
        }
        let mut buf = [0u8; 8192];
        let head = loop {
            match c.sock.read(&mut buf) {
                Ok(0) => {
                    self.conns.remove(key);
                    return None;
                }
                Ok(n) => {
                    c.input.extend_from_slice(&buf[..n]);
                    // Look at the head as soon as it is complete: a body
                    // declared too large is refused before it is read.
                    match parse_head(&c.input) {
                        Ok(Some(h)) if c.input.len() >= h.len + h.content_length => break h,
                        Err(reply) => {
                            self.answer(key, &reply, now);
                            return None;
                        }
                        Ok(_) if c.input.len() > MAX_REQUEST => {
                            let reply = Reply::failure(413, &format!("request larger than {MAX_REQUEST} bytes"));
                            self.answer(key, &reply, now);
                            return None;
                        }
                        Ok(_) => {}
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conns.remove(key);
                    return None;
                }
            }
        };
        let (head_len, length) = (head.len, head.content_length);
        c.read_all = c.input.len() == head_len + length;
        let request = AdminRequest {
            conn: key,
            serial: c.serial,
            method: head.method,
            path: head.path,
            body: c.input[head_len..head_len + length].to_vec(),
            authorization: head.authorization,
        };
        if let Some(expected) = &self.token
            && !is_open_route(&request.method, &request.path, self.read_only_open)
        {
            // Only the header: a token in the URL would end up in browser
            // history, proxies' logs and Referer headers.
            let bearer = request.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer "));
            if bearer != Some(expected.as_str()) {
                self.answer(key, &Reply::failure(401, "missing or wrong bearer token"), now);
                return None;
            }
        }
        Some(request)
    }

    /// Send `reply`; the client gets another `TIMEOUT` to take it.
    pub fn answer(&mut self, key: usize, reply: &Reply, now: Instant) {
        if let Some(c) = self.conns.get_mut(key) {
            c.output = reply.to_bytes();
            c.phase = Phase::Answering;
            c.deadline = now + TIMEOUT;
            self.flush(key);
        }
    }

    /// Hold request `req` unanswered (within its deadline) until the caller
    /// answers it; [`Self::still_waiting`] tells whether it still can.
    pub fn park(&mut self, req: &AdminRequest) {
        if let Some(c) = self.conns.get_mut(req.conn) {
            c.phase = Phase::Waiting;
        }
    }

    /// Is connection `conn` still the one of request `serial`, waiting?
    pub fn still_waiting(&self, conn: usize, serial: u64) -> bool {
        self.conns.get(conn).is_some_and(|c| c.serial == serial && c.phase == Phase::Waiting)
    }

    /// Look `hostnames` up on the resolver thread for request `req`; the
    /// connection waits, within its deadline, for [`Self::finished_lookups`].
    pub fn look_up(
        &mut self,
        waker: &Arc<Waker>,
        req: &AdminRequest,
        (remove, n, hostnames): (bool, usize, Vec<String>),
        now: Instant,
    ) {
        if self.resolver.is_none() {
            match Resolver::start(Arc::clone(waker)) {
                Ok(r) => self.resolver = Some(r),
                Err(e) => {
                    warn!("cannot start the resolver thread: {e}");
                    let reply = Reply::failure(503, &format!("cannot start the resolver thread: {e}"));
                    return self.answer(req.conn, &reply, now);
                }
            }
        }
        let Some(resolver) = self.resolver.as_ref() else { return };
        let job = Job { conn: req.conn, serial: req.serial, remove, n, hostnames };
        match resolver.submit(job) {
            Ok(()) => {
                if let Some(c) = self.conns.get_mut(req.conn) {
                    c.phase = Phase::Waiting;
                }
            }
            Err(_) => {
                let reply = Reply::failure(503, &format!("{} host-name lookups are queued already", MAX_CONNS));
                self.answer(req.conn, &reply, now);
            }
        }
    }

    /// Lookups finished since the last call, each with the connection that
    /// asked: the membership command to carry out, or the error to answer.
    /// A lookup whose connection is gone (deadline, client closed) is
    /// dropped unapplied: nobody would learn what it changed.
    pub fn finished_lookups(&mut self) -> Vec<(usize, Result<Command, Reply>)> {
        let mut out = Vec::new();
        let Some(resolver) = self.resolver.as_ref() else { return out };
        // Bounded: a result per waiting connection (MAX_CONNS) and per
        // queued job of a closed one (QUEUE), give or take the one in flight.
        for _ in 0..=2 * MAX_CONNS {
            let Some(done) = resolver.next_done() else { break };
            let job = done.job;
            let waiting = self.conns.get(job.conn).is_some_and(|c| c.serial == job.serial && c.phase == Phase::Waiting);
            if !waiting {
                info!("lookup of {:?} finished after its admin connection closed: not applied", job.hostnames);
                continue;
            }
            let result = match done.result {
                Ok(addrs) => Ok(membership_of(job.remove, job.n, job.hostnames.len(), addrs)),
                Err(e) => Err(Reply::failure(400, &e)),
            };
            out.push((job.conn, result));
        }
        out
    }

    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        while c.written < c.output.len() {
            match c.sock.write(&c.output[c.written..]) {
                Ok(n) => c.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conns.remove(key);
                    return;
                }
            }
        }
        if c.read_all {
            self.conns.remove(key);
            return;
        }
        // Closing with input unread would reset the connection: clients
        // report the reset instead of the answer, and the kernel drops what
        // of the answer is still unsent. So send a FIN and read until the
        // client closes, within LINGER_MAX and the deadline.
        let _ = c.sock.shutdown(Shutdown::Write);
        c.phase = Phase::Lingering { discarded: 0 };
        self.discard(key);
    }

    /// Read and drop input after the answer; close at EOF or past LINGER_MAX.
    fn discard(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        let Phase::Lingering { discarded } = &mut c.phase else { return };
        let mut buf = [0u8; 8192];
        loop {
            match c.sock.read(&mut buf) {
                Ok(n) if n > 0 && *discarded + n <= LINGER_MAX => *discarded += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EOF, too much, or an error: done.
                _ => break,
            }
        }
        self.conns.remove(key);
    }

    /// Close connections past their deadline: requests too slow to arrive,
    /// answers not taken, lingering that went on too long.
    pub fn sweep(&mut self, now: Instant) {
        let expired: Vec<usize> = self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(k, _)| k).collect();
        for key in expired {
            let c = self.conns.remove(key);
            debug!("admin connection {key}: {:?} past its deadline, closing", c.phase);
        }
    }
}

/// The dashboard page itself needs no token: it is static and holds no
/// data, and a browser cannot send the header when the page is typed in.
/// The page then asks for the token and sends it with each request it makes.
/// With `read_only_open`, so do the routes that only read.
fn is_open_route(method: &str, path: &str, read_only_open: bool) -> bool {
    let path = path.split('?').next().unwrap_or("/");
    method == "GET"
        && (matches!(path, "/" | "/dashboard") || (read_only_open && matches!(path, "/stats" | "/metrics" | "/rep")))
}

struct Head {
    len: usize,
    method: String,
    path: String,
    content_length: usize,
    authorization: Option<String>,
}

/// The request head, once complete; `Err` is the answer to a bad one.
/// Parsed by the HTTP mode's parser, with its framing rules.
fn parse_head(input: &[u8]) -> Result<Option<Head>, Reply> {
    let parsed = head::parse_plain_request(input, MAX_REQUEST, &["authorization"])
        .map_err(|(status, why)| Reply::failure(status, &why))?;
    let Some(p) = parsed else { return Ok(None) };
    if p.body_len > MAX_REQUEST as u64 {
        let why = format!("body of {} bytes is larger than the {MAX_REQUEST}-byte limit", p.body_len);
        return Err(Reply::failure(413, &why));
    }
    Ok(Some(Head {
        len: p.len,
        method: p.method,
        path: p.target,
        content_length: p.body_len as usize,
        authorization: p.kept.into_iter().next().map(|(_, v)| v),
    }))
}
