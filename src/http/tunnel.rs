//! A client connection after `101 Switching Protocols` (WebSocket): the
//! client socket and its backend connection become a byte tunnel, driven by
//! the same `Pipe` as a TCP session (bounded buffers, backpressure,
//! half-close), until both directions have ended.
//!
//! The backend connection stays in the engine's slab, `Busy` with this
//! client, so its events still reach the client; it is never pooled again.
//! The request stays counted in the backend's `active` (its `Claim`) until the tunnel
//! ends. Clocks: only `--idle-timeout` applies (a WebSocket may be silent for
//! hours, so neither `--backend-timeout` nor `--keepalive-timeout` does), and
//! a drain lets tunnels run until `--drain-timeout`.

use std::io::{self, ErrorKind};

use log::debug;

use super::access_log::Entry;
use super::engine::{ClientPhase, Ctx, HttpEngine};
use crate::backend::Claim;
use crate::connection::Pipe;
use crate::sessions::End;

/// Reads per direction per round; the engine's round limit then bounds a
/// tunnel's turn like any client's.
const READS_PER_ROUND: u32 = 1;

pub(super) struct Tunnel {
    /// The backend connection (a key in the engine's `conns`).
    pub conn: usize,
    /// The backend's index, for its counters.
    pub backend: usize,
    /// Client to backend.
    pub up: Pipe,
    /// Backend to client.
    pub down: Pipe,
    /// Counts the request as active on its backend until the tunnel ends.
    pub _claim: Option<Claim>,
}

impl HttpEngine {
    /// The backend answered `101` to client `key`'s upgrade request, and the
    /// `101` head is queued for the client: the exchange becomes a tunnel.
    /// Bytes already read past the request (client) or the `101` head
    /// (backend) belong to the new protocol and start its pipes.
    pub(super) fn start_tunnel(&mut self, key: usize, ctx: &mut Ctx) {
        let Some(c) = self.clients.get_mut(key) else { return };
        let ClientPhase::Exchange(mut ex) = std::mem::replace(&mut c.phase, ClientPhase::Closing) else {
            return;
        };
        let bc = &mut self.conns[ex.conn];
        let mut up = Pipe::holding(c.rbuf.take());
        up.eof = c.eof;
        let mut down = Pipe::holding(bc.rbuf.take());
        down.eof = bc.eof;
        // The request is out; its head buffer is not needed for hours.
        bc.wbuf = Vec::new();
        bc.wpos = 0;
        let claim = ex.claim.take();
        c.phase = ClientPhase::Tunnel(Box::new(Tunnel { conn: ex.conn, backend: ex.backend, up, down, _claim: claim }));
        c.last_active = ctx.now;
        let client = c.addr;

        let id = c.id;
        let latency = ex.observe_latency(ctx);
        // A tunnel is a session pinned to its backend, as in TCP mode.
        ctx.backends[ex.backend].stats.total += 1;
        let backend = ctx.backends[ex.backend].addr;
        debug!("s={id}: client {client}: switched protocols with {backend}; tunnelling");
        let (backend, reused, note) = (Some(backend), ex.reused, &ex.note);
        let entry =
            Entry { client, head: &ex.head, backend, status: 101, bytes: 0, latency, reused, spans: None, note };
        self.log_access(&entry);
    }

    /// Move the tunnel's bytes both ways and pass FINs on. `Ok(true)` while
    /// there is progress or work the readiness allows; `Err` resets both.
    pub(super) fn step_tunnel(&mut self, key: usize, ctx: &mut Ctx) -> io::Result<bool> {
        let c = self.clients.get_mut(key).expect("caller checked");
        let ClientPhase::Tunnel(t) = &mut c.phase else {
            return Ok(false);
        };
        let Some(bc) = self.conns.get_mut(t.conn) else {
            return Err(io::Error::new(ErrorKind::NotConnected, "tunnel lost its backend connection"));
        };
        let before = (t.up.eof, t.down.eof, t.up.shut, t.down.shut);

        let mut budget = READS_PER_ROUND;
        let up = t.up.pump(&mut c.io, &mut c.ready, &mut bc.io, &mut bc.ready, ctx.pool, &mut budget)?;
        let mut budget = READS_PER_ROUND;
        let down = t.down.pump(&mut bc.io, &mut bc.ready, &mut c.io, &mut c.ready, ctx.pool, &mut budget)?;
        let stats = &mut ctx.backends[t.backend].stats;
        stats.bytes_up += up;
        stats.bytes_down += down;
        // Counted as delivered: what a pipe read is written on before its source's FIN passes.
        c.bytes_in += up;
        c.bytes_out += down;
        ctx.stats.bytes_in += up;
        ctx.stats.bytes_out += down;

        // As in a TCP session: once a source's bytes are all delivered, its
        // FIN is passed on, and the other direction runs until it ends too.
        if t.up.wants_shut() {
            t.up.shut = true;
            if !t.down.shut {
                bc.io.shutdown_write()?;
            }
        }
        if t.down.wants_shut() {
            t.down.shut = true;
            if !t.up.shut {
                c.io.shutdown_write()?;
            }
        }
        if t.up.shut && t.down.shut {
            debug!("s={}: tunnel closed by both sides", c.id);
            let end = if t.up.eof { End::ClientClosed } else { End::BackendClosed };
            self.close_client(key, false, end);
            return Ok(false);
        }
        let changed = before != (t.up.eof, t.down.eof, t.up.shut, t.down.shut);
        let more = t.up.has_work(&c.ready, &bc.ready) || t.down.has_work(&bc.ready, &c.ready);
        Ok(up > 0 || down > 0 || changed || more)
    }
}
