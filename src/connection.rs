//! One proxied session: the client socket, the backend socket, one pipe per
//! direction, and the readiness each socket last reported.
//!
//! Readiness is kept in memory (see `reactor.rs` for the strategy): an event
//! sets flags, and a flag is cleared only when the kernel says the socket is
//! drained (`WouldBlock`, or a short read/write as epoll(7) allows for
//! stream sockets). Work is done while a wanted flag is set.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::TcpStream;

use crate::backend::Claim;
use crate::buffer::{Buffer, BufferPool};
use crate::per_ip::ClientSlot;
use crate::splice::{Checkout, PipePool, Spliced};
use crate::stamp::Stamp;

/// Read and write readiness of one socket, as last reported by the kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// The peer has sent FIN (or the socket failed): reads must continue
    /// until they return 0, and a short read is not proof of a drained socket.
    pub hup: bool,
}

impl Ready {
    pub fn absorb(&mut self, ev: &mio::event::Event) {
        self.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
        self.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
        self.hup |= ev.is_read_closed() || ev.is_error();
    }
}

/// What one read or write call amounted to. `io::Error` kinds are mapped here
/// once (for TCP sessions and the HTTP engine alike) so that the state
/// machines never match on them.
pub(crate) enum Io {
    Moved(usize),
    WouldBlock,
    Closed,
    Failed(io::Error),
}

pub(crate) fn classify(r: io::Result<usize>) -> Io {
    match r {
        Ok(0) => Io::Closed,
        Ok(n) => Io::Moved(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Io::WouldBlock,
        // EINTR: nothing happened; report zero progress and let the loop retry.
        Err(e) if e.kind() == ErrorKind::Interrupted => Io::Moved(0),
        Err(e) => Io::Failed(e),
    }
}

/// The process (or system) is out of descriptors or socket memory: the
/// proxy's own condition, never a backend's failure.
pub(crate) fn is_descriptor_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// One direction of a session: bytes read from `src` waiting to reach `dst`,
/// in a buffer or (splice) in a kernel pipe, never in both at once.
#[derive(Default)]
pub struct Pipe {
    buf: Option<Buffer>,
    /// Bytes in flight through a kernel pipe instead (`pump_sockets`).
    spliced: Option<Checkout>,
    /// The source has sent its FIN.
    pub eof: bool,
    /// We have shut the write half toward the destination.
    pub shut: bool,
    /// This direction may splice (two plain TCP sockets, `--splice auto`).
    splice: bool,
    /// A splice into the pipe found nothing to take while the pipe held
    /// bytes: the pipe may be full, so no more reading until some drain.
    stalled: bool,
    /// A read filled a whole buffer: this direction moves bulk data, and
    /// splices from now on. Until then it goes through buffers, as
    /// HAProxy's splice-auto does: for small request/response exchanges a
    /// pipe costs calls and a round trip through the pipe pool for nothing.
    bulk: bool,
}

impl Pipe {
    /// A pipe that starts with bytes already read from its source (an HTTP
    /// connection switching protocols hands over what followed the heads).
    pub(crate) fn holding(buf: Option<Buffer>) -> Pipe {
        let mut pipe = Pipe { buf, ..Pipe::default() };
        pipe.release_if_empty();
        pipe
    }

    /// A TCP session's direction: it splices when `splice` says so.
    pub(crate) fn between_sockets(splice: bool) -> Pipe {
        Pipe { splice, ..Pipe::default() }
    }

    /// Drop the buffer (it returns to its pool) once it holds nothing.
    fn release_if_empty(&mut self) {
        if self.buf.as_ref().is_some_and(Buffer::is_empty) {
            self.buf = None;
        }
    }

    /// Bytes read from the source and not yet written, buffer or pipe.
    pub fn buffered(&self) -> usize {
        self.buf.as_ref().map_or(0, Buffer::len) + self.spliced.as_ref().map_or(0, Checkout::held)
    }

    /// Holds a kernel pipe now (bytes in flight through it).
    pub fn has_pipe(&self) -> bool {
        self.spliced.is_some()
    }

    /// Move bytes from `src` to `dst` until both are drained, the buffer
    /// blocks, or `budget` reads have been done. Returns bytes written to `dst`.
    /// `Ok` with `budget_left == 0` means there may be more work.
    pub(crate) fn pump(
        &mut self,
        src: &mut impl Read,
        src_ready: &mut Ready,
        dst: &mut impl Write,
        dst_ready: &mut Ready,
        pool: &BufferPool,
        budget: &mut u32,
    ) -> io::Result<u64> {
        let mut written = 0u64;
        loop {
            let mut progressed = self.flush(dst, dst_ready, &mut written)?;

            if !self.eof && src_ready.readable && *budget > 0 {
                let buf = self.buf.get_or_insert_with(|| pool.take());
                if !buf.is_full() {
                    *budget -= 1;
                    let want = buf.space();
                    match classify(buf.fill_from(src)) {
                        Io::Moved(n) => {
                            progressed |= n > 0;
                            self.bulk |= buf.is_full();
                            if n > 0 && n < want && !src_ready.hup {
                                src_ready.readable = false;
                            }
                            if n == 0 {
                                progressed = true; // EINTR: try again
                            }
                        }
                        Io::WouldBlock => src_ready.readable = false,
                        Io::Closed => {
                            self.eof = true;
                            progressed = true;
                        }
                        Io::Failed(e) => return Err(e),
                    }
                }
                self.release_if_empty();
            }

            if !progressed {
                break;
            }
        }

        Ok(written)
    }

    /// Write what the buffer holds while `dst` takes it; drop the buffer once
    /// empty. Adds to `written`; says whether anything moved.
    fn flush(&mut self, dst: &mut impl Write, dst_ready: &mut Ready, written: &mut u64) -> io::Result<bool> {
        let mut progressed = false;
        if let Some(buf) = self.buf.as_mut() {
            while !buf.is_empty() && dst_ready.writable {
                let want = buf.len();
                match classify(buf.drain_to(dst)) {
                    Io::Moved(n) => {
                        *written += n as u64;
                        progressed |= n > 0;
                        if n > 0 && n < want {
                            // Short write: the send buffer is full.
                            dst_ready.writable = false;
                        }
                    }
                    Io::WouldBlock => dst_ready.writable = false,
                    Io::Closed => return Err(ErrorKind::WriteZero.into()),
                    Io::Failed(e) => return Err(e),
                }
            }
        }
        self.release_if_empty();
        Ok(progressed)
    }

    /// `pump` between two plain sockets: through a kernel pipe (splice(2),
    /// no copy in user space) when this direction may splice and a pipe can
    /// be had, else through a buffer for this turn. Bytes a buffer holds go
    /// out first, and no more are read until it is empty, so order holds and
    /// the next turn goes back to a pipe. The pipe is given back as soon
    /// as it is empty at the end of a turn (the source would block, ended, or
    /// the budget ran out), so an idle session holds none.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pump_sockets(
        &mut self,
        src: &mut TcpStream,
        src_ready: &mut Ready,
        dst: &mut TcpStream,
        dst_ready: &mut Ready,
        pool: &BufferPool,
        pipes: &PipePool,
        budget: &mut u32,
    ) -> io::Result<u64> {
        if !self.splice || !self.bulk {
            return self.pump(src, src_ready, dst, dst_ready, pool, budget);
        }
        let mut written = 0u64;
        self.flush(dst, dst_ready, &mut written)?;
        if self.buf.is_some() {
            return Ok(written);
        }
        loop {
            let mut progressed = false;
            if let Some(p) = self.spliced.as_mut() {
                while p.held() > 0 && dst_ready.writable {
                    let want = p.held();
                    match p.drain_to(dst) {
                        Spliced::Moved(n) => {
                            written += n as u64;
                            progressed |= n > 0;
                            self.stalled &= n == 0;
                            if n > 0 && n < want {
                                // Short write: the send buffer is full.
                                dst_ready.writable = false;
                            }
                        }
                        Spliced::WouldBlock => dst_ready.writable = false,
                        // A pipe with bytes never reads as ended; a 0 here is the
                        // socket refusing them, like a 0-byte write.
                        Spliced::Closed => return Err(ErrorKind::WriteZero.into()),
                        Spliced::Failed(e) => return Err(e),
                    }
                }
            }

            if !self.eof && src_ready.readable && *budget > 0 && !self.stalled {
                if self.spliced.is_none() {
                    match pipes.take() {
                        Some(p) => self.spliced = Some(p),
                        // No pipe (pool at its maximum, out of descriptors):
                        // this turn goes through a buffer.
                        None => return Ok(written + self.pump(src, src_ready, dst, dst_ready, pool, budget)?),
                    }
                }
                if let Some(p) = self.spliced.as_mut().filter(|p| p.room() > 0) {
                    *budget -= 1;
                    let was_empty = p.held() == 0;
                    match p.fill_from(src) {
                        // A short splice proves nothing (the pipe's slots may
                        // have run out first): only EAGAIN into an empty pipe does.
                        Spliced::Moved(_) => progressed = true,
                        Spliced::WouldBlock if was_empty => src_ready.readable = false,
                        Spliced::WouldBlock => self.stalled = true,
                        Spliced::Closed => {
                            self.eof = true;
                            progressed = true;
                        }
                        Spliced::Failed(e) => return Err(e),
                    }
                }
            }

            if !progressed {
                break;
            }
        }
        if self.spliced.as_ref().is_some_and(|p| p.held() == 0) {
            self.spliced = None;
            self.stalled = false;
        }
        Ok(written)
    }

    /// The source ended and everything it sent is delivered: time to pass its FIN on.
    pub(crate) fn wants_shut(&self) -> bool {
        self.eof && self.buffered() == 0 && !self.shut
    }

    /// Work is waiting that the readiness we hold allows.
    pub(crate) fn has_work(&self, src_ready: &Ready, dst_ready: &Ready) -> bool {
        let room = match (&self.buf, &self.spliced) {
            // A splicing direction reads no more until its buffer is flushed.
            (Some(b), _) => !(b.is_full() || self.splice && self.bulk),
            (None, Some(p)) => p.room() > 0 && !self.stalled,
            (None, None) => true,
        };
        let can_read = !self.eof && src_ready.readable && room;
        let can_write = self.buffered() > 0 && dst_ready.writable;
        can_read || can_write
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the backend's non-blocking connect; `attempt` identifies
    /// this connect among all, so a stale timeout can be told apart.
    Connecting {
        since: Stamp,
        attempt: u64,
    },
    Proxying,
}
// While connecting, client bytes stay in the kernel's receive queue (we do
// not read them), so nothing is lost and no buffer is held while waiting.

pub struct Session {
    // Fields drop in this order: the claim and the place are given back
    // before the sockets close, so a client that sees the close and comes
    // back at once finds them free, even in another worker thread.
    /// Counts this session in the backend's active sessions while it lives.
    pub claim: Claim,
    /// Its client address's place under `--max-conns-per-ip`, while it lives.
    pub slot: ClientSlot,
    pub client: TcpStream,
    pub client_addr: SocketAddr,
    pub client_ready: Ready,
    pub backend: TcpStream,
    pub backend_ready: Ready,
    /// Index of the backend in the reactor's list.
    pub backend_idx: usize,
    pub phase: Phase,
    /// Client to backend.
    pub up: Pipe,
    /// Backend to client.
    pub down: Pipe,
    /// Backends that refused or timed out for this client: rarely any, so
    /// boxed (8 bytes held by every idle session instead of 24).
    pub tried: Option<Box<Vec<usize>>>,
    pub last_active: Stamp,
    /// When the current backend connect started, until the first byte comes
    /// back: that span is the latency sample TCP mode gives the policy.
    pub awaiting_first_byte: Option<Stamp>,
    /// Unique in the process, for log lines (`s=N`).
    pub id: u64,
    pub started: Stamp,
    /// Bytes delivered client to backend, and backend to client.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Which side sent its FIN first, once one did.
    pub first_fin: Option<crate::sessions::End>,
}

/// Outcome of driving a session's pipes.
pub enum Step {
    /// Open; `more` is true when the work budget ran out with work left.
    Open { more: bool },
    /// Both directions finished cleanly.
    Finished,
    /// A socket failed (reset, broken pipe): close both sides.
    Failed(io::Error),
}

/// Bytes moved in one step, for the backend counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    pub up: u64,
    pub down: u64,
}

impl Session {
    /// Drive both directions. At most `budget` reads are done, so that one
    /// fast session cannot starve the others within one poll round.
    pub fn step(&mut self, pool: &BufferPool, pipes: &PipePool, mut budget: u32, moved: &mut Moved) -> Step {
        let up = self.up.pump_sockets(
            &mut self.client,
            &mut self.client_ready,
            &mut self.backend,
            &mut self.backend_ready,
            pool,
            pipes,
            &mut budget,
        );
        match up {
            Ok(n) => moved.up += n,
            Err(e) => return Step::Failed(e),
        }
        let down = self.down.pump_sockets(
            &mut self.backend,
            &mut self.backend_ready,
            &mut self.client,
            &mut self.client_ready,
            pool,
            pipes,
            &mut budget,
        );
        match down {
            Ok(n) => moved.down += n,
            Err(e) => return Step::Failed(e),
        }
        // Pass a FIN on with shutdown(2); when the other direction is already
        // finished the session closes right away and close(2) sends it.
        if self.up.wants_shut() {
            self.up.shut = true;
            if !self.down.shut
                && let Err(e) = shutdown_write(&self.backend)
            {
                return Step::Failed(e);
            }
        }
        if self.down.wants_shut() {
            self.down.shut = true;
            if !self.up.shut
                && let Err(e) = shutdown_write(&self.client)
            {
                return Step::Failed(e);
            }
        }
        if self.up.shut && self.down.shut {
            return Step::Finished;
        }
        let more = budget == 0
            && (self.up.has_work(&self.client_ready, &self.backend_ready)
                || self.down.has_work(&self.backend_ready, &self.client_ready));
        Step::Open { more }
    }

    /// Close both sockets (buffers and pipes go back to their pools when dropped); on
    /// failure make both peers see a reset rather than a clean end, so a
    /// truncated transfer is never mistaken for a whole one.
    pub fn close(self, abort: bool) {
        if abort {
            let _ = socket2::SockRef::from(&self.client).set_linger(Some(std::time::Duration::ZERO));
            let _ = socket2::SockRef::from(&self.backend).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

pub(crate) fn shutdown_write(s: &TcpStream) -> io::Result<()> {
    match s.shutdown(Shutdown::Write) {
        // The peer already went away; the other direction will see it.
        Err(e) if e.kind() == ErrorKind::NotConnected => Ok(()),
        r => r,
    }
}

/// Result of checking a non-blocking connect after an event.
pub enum ConnectCheck {
    Connected,
    Pending,
    Failed(io::Error),
}

/// The procedure from mio's docs, for every non-blocking connect lbproxy
/// makes (sessions, HTTP backend connections, health checks, probes):
/// nothing reported yet means pending; `take_error()` reports a failed
/// connect; a clean writable edge means the handshake ended, so success
/// needs no further call; any other wake-up asks `peer_addr()`, where
/// `NotConnected` marks it spurious: the flags are cleared and we wait on.
pub fn check_connect(stream: &TcpStream, ready: &mut Ready) -> ConnectCheck {
    if !(ready.writable || ready.readable || ready.hup) {
        return ConnectCheck::Pending;
    }
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return ConnectCheck::Failed(e),
        Ok(None) => {}
    }
    if ready.writable && !ready.hup {
        return ConnectCheck::Connected;
    }
    match stream.peer_addr() {
        Ok(_) => ConnectCheck::Connected,
        Err(e) if e.kind() == ErrorKind::NotConnected => {
            *ready = Ready::default();
            ConnectCheck::Pending
        }
        Err(e) => ConnectCheck::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direction_costs_no_more_with_splice_than_before() {
        // An idle session holds no buffer and no pipe; what it pays is these
        // structs, 48 bytes a direction before splicing existed (the
        // measured 0.26 KiB per idle session must not grow).
        assert!(size_of::<Pipe>() <= 48, "Pipe is {} bytes", size_of::<Pipe>());
    }

    #[test]
    fn an_idle_session_stays_small() {
        // What one held idle TCP session costs in the slab, beside its two
        // kernel sockets (tools/bench-idle.sh measures the whole: 0.36 KiB
        // per session when this was 336 bytes).
        // mio's sockets are 4 bytes in release builds and carry a selector
        // id in debug builds (which run this test): counted apart.
        let sockets = 2 * size_of::<TcpStream>();
        assert!(
            size_of::<Session>() - sockets <= 232,
            "Session is {} bytes + {sockets}",
            size_of::<Session>() - sockets
        );
        assert_eq!(size_of::<Phase>(), 16);
    }
}
