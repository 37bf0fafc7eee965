//! Backend connections of the HTTP engine: take an idle one from the pool
//! or open one (asking the policy again after a failed connect; TLS towards
//! the backend when configured), queue the request head on it, and close it.

use std::io;

use log::{debug, warn};
use mio::Interest;
use mio::net::TcpStream;
use slab::Slab;

use super::engine::{BACKEND_KEY, BackendConn, BackendConnMode, ClientPhase, ConnPhase, Ctx, HttpEngine};
use super::head::RequestHead;
use crate::backend::{Backend, Claim};
use crate::connection::Ready;
use crate::mode::connector::{self, Got, NoBackend};
use crate::outlier::{self, Outcome};
use crate::policy::PickKey;
use crate::proxy_protocol;
use crate::tls::ClientIo;

impl HttpEngine {
    /// A backend connection for client `key`: an idle one from the pool
    /// (persistent mode) or a new one. Immediate connect failures are
    /// counted and the policy is asked again without that backend.
    pub(super) fn open_conn(
        &mut self,
        key: usize,
        pick: PickKey,
        tried: &mut Vec<usize>,
        ctx: &mut Ctx,
    ) -> Option<(usize, usize, bool, Claim)> {
        let persistent = self.settings.conn_mode == BackendConnMode::Persistent;
        loop {
            let idle = &mut self.idle;
            let kept = |b: usize| if persistent { idle.get_mut(b).and_then(Vec::pop) } else { None };
            let (budget, now) = (&mut self.budget, ctx.now);
            let (refused, failed) = (budget.exhausted, tried.len());
            let got = connector::connect_within(ctx, &pick, tried, kept, || budget.try_retry(now));
            ctx.stats.retries_budget_exhausted += self.budget.exhausted - refused;
            // Connects refused at once count toward ejection like late ones.
            for &b in &tried[failed..] {
                outlier::record(ctx.backends, b, Outcome::Failure("connect failed".into()), ctx.now);
            }
            match got {
                Ok(Got::Reused { backend, conn, claim }) => {
                    self.conns[conn].phase = ConnPhase::Busy { client: key };
                    return Some((conn, backend, true, claim));
                }
                Ok(Got::Connecting { backend, sock, claim }) => {
                    return self.adopt_connecting(sock, key, backend, ctx).map(|ck| (ck, backend, false, claim));
                }
                Err(NoBackend::NoneLeft) => return None,
                Err(NoBackend::OutOfDescriptors(e)) => {
                    // Free the idle pool's descriptors and try again; with none
                    // to free, answer 503 and let the server pause accepting.
                    let shed = self.shed_idle_pool();
                    let id = self.clients.get(key).map_or(0, |c| c.id);
                    warn!("s={id}: cannot open a backend connection: {e}; closed {shed} idle pooled connections");
                    if shed == 0 {
                        self.out_of_descriptors = true;
                        return None;
                    }
                }
            }
        }
    }

    /// Close every idle pooled connection; returns how many.
    pub(super) fn shed_idle_pool(&mut self) -> usize {
        let mut shed = 0;
        for list in self.idle.iter_mut() {
            for k in list.drain(..) {
                shed += usize::from(self.conns.try_remove(k).is_some());
            }
        }
        shed
    }

    /// Count a request against `backend` and queue its rewritten head on
    /// connection `conn` (the pick's claim keeps it counted as active).
    pub(super) fn dispatch(
        conns: &mut Slab<BackendConn>,
        conn: usize,
        head: &RequestHead,
        keep: bool,
        backend: &mut Backend,
    ) {
        backend.stats.requests += 1;
        let bc = &mut conns[conn];
        bc.wbuf.clear();
        bc.wpos = 0;
        head.write_for_backend(keep, &mut bc.wbuf);
    }

    /// With `send_proxy`, put the header naming client `key` in front of what
    /// a new backend connection `conn` will send.
    pub(super) fn prefix_proxy_header(&mut self, key: usize, conn: usize) {
        let Some(v) = self.settings.send_proxy else { return };
        let Some(c) = self.clients.get(key) else { return };
        let Ok(to) = c.io.local_addr() else { return };
        if let Some(bc) = self.conns.get_mut(conn) {
            bc.wbuf.splice(0..0, proxy_protocol::encode(v, c.addr, to));
        }
    }

    /// Take a socket whose non-blocking connect to backend `idx` has started
    /// on behalf of client `key`: register it, arm its connect deadline, count
    /// it. `None` if it cannot be registered (the socket is then closed).
    pub(super) fn adopt_connecting(
        &mut self,
        mut sock: TcpStream,
        key: usize,
        idx: usize,
        ctx: &mut Ctx,
    ) -> Option<usize> {
        let _ = sock.set_nodelay(true);
        let id = self.clients.get(key).map_or(0, |c| c.id);
        let entry = self.conns.vacant_entry();
        let ck = entry.key();
        let token = ctx.token(ck * 2 + BACKEND_KEY);
        if let Err(e) = ctx.registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE) {
            warn!("s={id}: cannot register backend socket: {e}");
            return None;
        }
        let attempt = ctx.arm(ctx.now + self.settings.connect_timeout, ck);
        let io = match &self.settings.backend_tls {
            Some(t) => {
                let name = t.server_name(ctx.backends[idx].addr.ip());
                match ClientIo::tls_client(sock, &t.client, name) {
                    Ok(io) => io,
                    Err(e) => {
                        warn!("s={id}: cannot start TLS to backend {}: {e}", ctx.backends[idx].addr);
                        return None;
                    }
                }
            }
            None => ClientIo::plain(sock),
        };
        entry.insert(BackendConn {
            io,
            ready: Ready::default(),
            backend: idx,
            phase: ConnPhase::Connecting { client: key, attempt },
            rbuf: None,
            wbuf: Vec::new(),
            wpos: 0,
            eof: false,
            opened: ctx.now,
        });
        ctx.backends[idx].stats.conns_opened += 1;
        Some(ck)
    }

    /// The connect of the client's backend connection failed: try another backend.
    pub(super) fn connect_failed(&mut self, key: usize, err: io::Error, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let id = c.id;
        let ClientPhase::Exchange(ex) = &mut c.phase else {
            return;
        };
        let (old_conn, backend) = (ex.conn, ex.backend);
        ex.claim = None;
        ctx.backends[backend].note_connect_failure(ctx.now, &format_args!("{err} (s={id})"));
        outlier::record(ctx.backends, backend, Outcome::Failure(format!("connect failed: {err}")), ctx.now);
        ex.tried.push(backend);
        self.close_conn(old_conn);
        self.send_elsewhere(key, ctx);
        self.drive(key, ctx);
    }

    /// Backend `ex.backend` answered `status` (502 or 503) to an idempotent
    /// request with nothing of its body sent: the answer is dropped with its
    /// connection and the request goes to another backend (the caller
    /// checked the retry budget and that one is left).
    pub(super) fn retry_answer(&mut self, key: usize, status: u16, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let ClientPhase::Exchange(ex) = &mut c.phase else {
            return;
        };
        debug!("s={}: backend {} answered {status}: retrying elsewhere", c.id, ctx.backends[ex.backend].addr);
        let (old_conn, backend) = (ex.conn, ex.backend);
        ex.claim = None;
        ex.tried.push(backend);
        // The request goes out again from its start.
        ex.head_sent = false;
        ex.sent_at = None;
        ex.first_byte = None;
        ex.last_progress = ctx.now;
        self.close_conn(old_conn);
        // The caller is driving the client: it goes on from the new state.
        self.send_elsewhere(key, ctx);
    }

    /// Open a connection to a backend not in the exchange's `tried` and send
    /// the request there; none left (or no retry budget): 502.
    fn send_elsewhere(&mut self, key: usize, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let ClientPhase::Exchange(ex) = &mut c.phase else {
            return;
        };
        let mut tried = std::mem::take(&mut ex.tried);
        let request_hash = ex.head.request_hash;
        let pick = PickKey { client_ip: self.clients[key].addr.ip(), request_hash };
        match self.open_conn(key, pick, &mut tried, ctx) {
            Some((conn, idx, reused, claim)) => {
                let keep = self.settings.conn_mode == BackendConnMode::Persistent;
                let Some(c) = self.clients.get_mut(key) else { return };
                c.last_backend = Some(ctx.backends[idx].addr);
                debug!("s={}: retrying on backend {}", c.id, ctx.backends[idx].addr);
                let ClientPhase::Exchange(ex) = &mut c.phase else {
                    return;
                };
                Self::dispatch(&mut self.conns, conn, &ex.head, keep, &mut ctx.backends[idx]);
                ex.claim = Some(claim);
                ex.note = ctx.policy.last_note().clone();
                ex.conn = conn;
                ex.backend = idx;
                ex.reused = reused;
                ex.tried = tried;
                if !reused {
                    self.prefix_proxy_header(key, conn);
                }
            }
            None => {
                // Nothing was sent anywhere: answer 502 and keep the client if we can.
                if let Some(ClientPhase::Exchange(ex)) = self.clients.get_mut(key).map(|c| &mut c.phase) {
                    ex.tried = tried;
                    ex.conn = usize::MAX;
                }
                self.fail_exchange(key, 502, ctx);
            }
        }
    }

    /// Close a backend connection: out of the slab and its idle pool; its
    /// buffer goes back to the pool as it is dropped.
    pub(super) fn close_conn(&mut self, key: usize) {
        if let Some(bc) = self.conns.try_remove(key)
            && let ConnPhase::Idle { .. } = bc.phase
        {
            self.idle[bc.backend].retain(|&k| k != key);
        }
    }
}
