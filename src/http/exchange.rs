//! One exchange (request, response) of a client connection: the request
//! head and body to the backend, the response head and body to the client,
//! and how it ends (finished, failed with a proxy answer, or abandoned).

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::TcpStream;

use super::access_log::{CLIENT_CLOSED, Entry, Spans};
use super::engine::{BackendConnMode, ClientPhase, ConnPhase, Ctx, HttpEngine, read_some, write_some};
use super::framing::BodyFraming;
use super::head::{self, RequestHead};
use crate::backend::{Backend, Claim};
use crate::buffer::{Buffer, BufferPool};
use crate::outlier::{self, Outcome};
use crate::sessions::End;

/// Largest response body copied behind its head into one write.
const COALESCE_MAX: usize = 16 * 1024;

pub(super) struct Exchange {
    pub conn: usize,
    pub backend: usize,
    pub head: RequestHead,
    pub req_body: BodyFraming,
    /// Request head fully written to the backend.
    pub head_sent: bool,
    /// Request body bytes written so far (a retry is only safe before any).
    pub body_sent: u64,
    pub resp: Option<Resp>,
    /// The request head read (the exchange began).
    pub begun: Instant,
    pub sent_at: Option<Instant>,
    pub first_byte: Option<Instant>,
    pub resp_bytes: u64,
    pub reused: bool,
    pub tried: Vec<usize>,
    /// When a byte last moved on this exchange (or it began): the
    /// `--backend-timeout` clock, so a stalled body is cut like a missing head.
    pub last_progress: Instant,
    /// Counts the request as active on its backend while there is one.
    pub claim: Option<Claim>,
    /// What the shadow policies would have picked (and why the policy
    /// picked), from the pick that chose `backend`: for the access log.
    pub note: crate::policy::PickNote,
}

impl Exchange {
    /// May a 502/503 answer to this request be dropped and the request sent
    /// to another backend? Only an idempotent one without a body (nothing
    /// of it is kept to send again), with an untried backend left.
    fn may_retry(&self, backends: &[Backend]) -> bool {
        let safe = self.head.is_idempotent() && self.body_sent == 0 && self.req_body.is_done() && !self.head.upgrade;
        safe && (0..backends.len()).any(|i| i != self.backend && !self.tried.contains(&i) && backends[i].accepts_new())
    }

    /// Where the time of an exchange that ends `now` went, for the access log.
    fn spans(&self, now: Instant) -> Option<Spans> {
        let (sent, first) = (self.sent_at?, self.first_byte?);
        Some(Spans {
            wait: sent.saturating_duration_since(self.begun),
            deliver: now.saturating_duration_since(first),
            total: now.saturating_duration_since(self.begun),
        })
    }

    /// The backend's response time (request head written to response head
    /// read), handed to its histogram and the policy; `None` if unknown.
    pub fn observe_latency(&self, ctx: &mut Ctx) -> Option<Duration> {
        let l = self.first_byte?.saturating_duration_since(self.sent_at?);
        ctx.backends[self.backend].record_latency(l);
        ctx.stats.response_time.record(l);
        ctx.policy.observe(self.backend, l, ctx.now);
        Some(l)
    }
}

pub(super) struct Resp {
    pub status: u16,
    pub framing: BodyFraming,
    pub backend_closes: bool,
    pub client_close: bool,
}

/// The buffer a body is read into: a full-size one, except that bytes already
/// waiting in a small head buffer are forwarded from it first.
fn body_buffer<'b>(slot: &'b mut Option<Buffer>, pool: &BufferPool) -> &'b mut Buffer {
    if slot.as_ref().is_some_and(|b| b.is_empty() && b.capacity() < pool.buffer_size()) {
        *slot = None;
    }
    slot.get_or_insert_with(|| pool.take())
}

impl HttpEngine {
    /// Move the exchange forward: request head and body to the backend,
    /// response head and body to the client.
    pub(super) fn step_exchange(&mut self, key: usize, ctx: &mut Ctx) -> io::Result<bool> {
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

        // Encrypted bytes TLS could not send last time (handshake, records) first.
        if bc.io.tls_pending() {
            match bc.io.flush_tls() {
                Ok(()) => moved = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => bc.ready.writable = false,
                Err(e) => backend_error = Some(e),
            }
        }

        // Request head, then request body, to the backend.
        if bc.wpos < bc.wbuf.len() {
            match write_some(&mut bc.io, &mut bc.ready, &bc.wbuf[bc.wpos..]) {
                Ok(n) => {
                    bc.wpos += n;
                    // The request head as rewritten counts toward the backend's bytes.
                    ctx.backends[ex.backend].stats.bytes_up += n as u64;
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
            let rbuf = body_buffer(&mut c.rbuf, ctx.pool);
            if !rbuf.is_empty() {
                let Ok(n) = ex.req_body.peek(rbuf.data()) else {
                    // The head already went out, but no response has: the
                    // client can still be told why (the backend connection,
                    // now out of step, is closed).
                    debug!("s={}: client {}: malformed request body framing", c.id, c.addr);
                    self.fail_exchange(key, 400, ctx);
                    return Ok(true);
                };
                match write_some(&mut bc.io, &mut bc.ready, &rbuf.data()[..n]) {
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
                let (n, eof) = read_some(&mut c.io, &mut c.ready, rbuf)?;
                c.bytes_in += n as u64;
                ctx.stats.bytes_in += n as u64;
                moved |= n > 0;
                if eof {
                    // The client stopped in the middle of its body.
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "client closed mid-body"));
                }
            }
        }
        // The request is all sent: keep reading the client, so that its FIN or
        // reset (it left) is seen while the backend is still working; pipelined
        // requests wait in its buffer, which stops reading when full.
        if ex.req_body.is_done() && !c.eof && c.ready.readable {
            let rbuf = c.rbuf.get_or_insert_with(|| ctx.pool.take_small());
            let (n, eof) = read_some(&mut c.io, &mut c.ready, rbuf)?;
            c.bytes_in += n as u64;
            ctx.stats.bytes_in += n as u64;
            moved |= n > 0;
            if rbuf.is_empty() {
                c.rbuf = None;
            }
            if eof {
                c.eof = true;
                self.client_left(key, ctx);
                return Ok(true);
            }
        }

        // Response from the backend.
        if backend_error.is_none() && !bc.eof {
            let rbuf = bc.rbuf.get_or_insert_with(|| ctx.pool.take());
            let waiting_body = ex.resp.as_ref().is_some_and(|r| !r.framing.is_done());
            if ex.resp.is_none() || (waiting_body && rbuf.is_empty()) {
                match read_some(&mut bc.io, &mut bc.ready, rbuf) {
                    Ok((n, eof)) => {
                        moved |= n > 0 || eof;
                        bc.eof |= eof;
                    }
                    Err(e) => backend_error = Some(e),
                }
            }
        }
        // A head is parsed only once the client took the previous one, so
        // interim (1xx) heads are held back like any other bytes.
        let mut switching = false;
        if ex.resp.is_none() && backend_error.is_none() && c.wbuf.is_empty() {
            let rbuf = bc.rbuf.get_or_insert_with(|| ctx.pool.take());
            match head::parse_response(rbuf.data(), max_head.min(ctx.pool.buffer_size()), ex.head.is_head()) {
                Ok(Some(rh)) => {
                    if !rh.is_interim() {
                        let outcome = match rh.status {
                            500.. => Outcome::Failure(format!("answered {}", rh.status)),
                            _ => Outcome::Success,
                        };
                        outlier::record(ctx.backends, ex.backend, outcome, ctx.now);
                        if matches!(rh.status, 502 | 503) && ex.may_retry(ctx.backends) {
                            if self.budget.can_retry(ctx.now) {
                                ctx.backends[ex.backend].stats.responses.add(rh.status);
                                self.retry_answer(key, rh.status, ctx);
                                return Ok(true);
                            }
                            self.budget.exhausted += 1;
                            ctx.stats.retries_budget_exhausted += 1;
                        }
                    }
                    rbuf.consume(rh.len);
                    moved = true;
                    let b = &mut ctx.backends[ex.backend];
                    b.stats.bytes_down += rh.len as u64;
                    if !rh.is_interim() {
                        b.stats.responses.add(rh.status);
                        ctx.stats.responses.add(rh.status);
                    }
                    debug!("s={}: backend {} answered {}", c.id, b.addr, rh.status);
                    if ex.first_byte.is_none() {
                        ex.first_byte = Some(ctx.now);
                    }
                    if rh.is_switching() {
                        // Only an upgrade the client asked for, after its whole
                        // request went out, may turn the connection into a tunnel.
                        if !(ex.head.upgrade && ex.head_sent) {
                            warn!(
                                "s={}: backend {}: 101 to a request without an upgrade",
                                c.id, ctx.backends[ex.backend].addr
                            );
                            self.fail_exchange(key, 502, ctx);
                            return Ok(true);
                        }
                        rh.write_switching_for_client(&mut c.wbuf);
                        switching = true;
                    } else if rh.is_interim() {
                        // HTTP/1.0 has no interim answers (RFC 9110 15.2): drop them.
                        if ex.head.minor > 0 {
                            rh.write_for_client(false, false, &mut c.wbuf);
                        }
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
                Err(e) => {
                    warn!("s={}: backend {}: malformed response ({e:?})", c.id, ctx.backends[ex.backend].addr);
                    outlier::record(ctx.backends, ex.backend, Outcome::Failure("malformed response".into()), ctx.now);
                    self.fail_exchange(key, 502, ctx);
                    return Ok(true);
                }
            }
        }

        if switching {
            self.start_tunnel(key, ctx);
            return Ok(true);
        }
        if let Some(e) = backend_error {
            self.backend_broke(key, e, ctx);
            return Ok(true);
        }

        // Response body to the client, after the head went out.
        let mut finished = false;
        if let Some(resp) = ex.resp.as_mut() {
            if c.wbuf.is_empty() && !resp.framing.is_done() {
                let rbuf = bc.rbuf.get_or_insert_with(|| ctx.pool.take());
                if !rbuf.is_empty() {
                    let n = match resp.framing.peek(rbuf.data()) {
                        Ok(n) => n,
                        Err(e) => {
                            self.backend_broke(key, io::Error::new(ErrorKind::InvalidData, e.0), ctx);
                            return Ok(true);
                        }
                    };
                    let k = write_some(&mut c.io, &mut c.ready, &rbuf.data()[..n])?;
                    c.bytes_out += k as u64;
                    ctx.stats.bytes_out += k as u64;
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
                        let e = io::Error::new(ErrorKind::UnexpectedEof, "backend closed mid-body");
                        self.backend_broke(key, e, ctx);
                        return Ok(true);
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
    fn backend_broke(&mut self, key: usize, err: io::Error, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let id = c.id;
        let ClientPhase::Exchange(ex) = &mut c.phase else {
            return;
        };
        let addr = ctx.backends[ex.backend].addr;
        // A pooled connection the backend had already closed: resend once on a
        // fresh one when that is safe (idempotent, nothing of the body sent, no answer yet).
        let retry =
            ex.reused && ex.resp.is_none() && ex.first_byte.is_none() && ex.head.is_idempotent() && ex.body_sent == 0;
        if !retry {
            warn!("s={id}: backend {addr}: {err}");
            outlier::record(ctx.backends, ex.backend, Outcome::Failure(err.to_string()), ctx.now);
            self.fail_exchange(key, 502, ctx);
            return;
        }
        debug!("s={id}: pooled connection to {addr} failed ({err}); retrying on a new connection");
        ctx.stats.retries += 1;
        let (old, backend) = (ex.conn, ex.backend);
        self.close_conn(old);
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
                    return;
                }
            }
            Err(e) => debug!("s={id}: reconnect to {addr} failed: {e}"),
        }
        if let Some(ClientPhase::Exchange(ex)) = self.clients.get_mut(key).map(|c| &mut c.phase) {
            ex.conn = usize::MAX;
            ex.claim = None;
        }
        self.fail_exchange(key, 502, ctx);
    }

    /// End the client's exchange with a proxy-made `status` (before any
    /// response byte reached the client), or reset the client if the
    /// response had already started.
    pub(super) fn fail_exchange(&mut self, key: usize, status: u16, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let ClientPhase::Exchange(ex) = std::mem::replace(&mut c.phase, ClientPhase::Closing) else {
            return;
        };
        if ex.conn != usize::MAX {
            self.close_conn(ex.conn);
        }
        let c = &mut self.clients[key];
        if ex.resp.is_some() {
            // Part of a response is out: only a reset tells the client it is cut.
            let _ = socket2::SockRef::from(&c.io.sock).set_linger(Some(Duration::ZERO));
            c.wbuf.clear();
            c.wpos = 0;
            c.phase = ClientPhase::Closing;
            return;
        }
        let close = !ex.head.keep_alive || !ex.req_body.is_done() || self.draining;
        head::error_response(status, close, &mut c.wbuf);
        ctx.stats.proxy_responses.add(status);
        debug!("s={}: answered {status} for {} {}", c.id, ex.head.method, ex.head.target);
        c.phase = if close { ClientPhase::Closing } else { ClientPhase::Head };
        let client = c.addr;
        let backend = (ex.conn != usize::MAX).then(|| ctx.backends[ex.backend].addr);
        let (reused, note) = (ex.reused, &ex.note);
        let entry =
            Entry { client, head: &ex.head, backend, status, bytes: 0, latency: None, reused, spans: None, note };
        self.log_access(&entry);
    }

    /// The client closed (or reset) before its response was complete: stop
    /// the backend's work too, as nginx does by default.
    fn client_left(&mut self, key: usize, ctx: &mut Ctx) {
        let Some(c) = self.clients.get(key) else { return };
        if let ClientPhase::Exchange(ex) = &c.phase {
            debug!("s={}: client {} left before its response was complete", c.id, c.addr);
            let backend = Some(ctx.backends[ex.backend].addr);
            let (bytes, reused) = (ex.resp_bytes, ex.reused);
            let (status, note) = (CLIENT_CLOSED, &ex.note);
            let (latency, spans) = (None, None);
            let entry = Entry { client: c.addr, head: &ex.head, backend, status, bytes, latency, reused, spans, note };
            if let Some(log) = self.access_log.as_mut() {
                log.write(&entry);
            }
        }
        self.close_client(key, false, End::ClientClosed);
    }

    pub(super) fn finish_exchange(&mut self, key: usize, ctx: &mut Ctx) {
        let c = &mut self.clients[key];
        let ClientPhase::Exchange(ex) = std::mem::replace(&mut c.phase, ClientPhase::Head) else {
            return;
        };
        let resp = ex.resp.as_ref().expect("finished exchanges have a response");
        let req_done = ex.req_body.is_done();
        let client_close = resp.client_close || !req_done || self.draining || c.eof;
        c.phase = if client_close { ClientPhase::Closing } else { ClientPhase::Head };
        c.last_active = ctx.now;
        let client = c.addr;

        let reusable = self.settings.conn_mode == BackendConnMode::Persistent
            && !resp.backend_closes
            && req_done
            && self.conns.get(ex.conn).is_some_and(|bc| !bc.eof && bc.rbuf.as_ref().is_none_or(Buffer::is_empty));
        if reusable && self.idle[ex.backend].len() < self.settings.pool_size {
            let bc = &mut self.conns[ex.conn];
            bc.phase = ConnPhase::Idle { since: ctx.now };
            bc.rbuf = None;
            self.idle[ex.backend].push(ex.conn);
        } else {
            self.close_conn(ex.conn);
        }
        let latency = ex.observe_latency(ctx);
        let spans = ex.spans(ctx.now);
        let backend = Some(ctx.backends[ex.backend].addr);
        let (status, bytes, reused) = (resp.status, ex.resp_bytes, ex.reused);
        let note = &ex.note;
        self.log_access(&Entry { client, head: &ex.head, backend, status, bytes, latency, reused, spans, note });
    }
}
