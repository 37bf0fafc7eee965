//! Accepting clients: a few per turn from shared listeners, pausing at
//! `--max-connections` or when descriptors run out, and resuming.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::tokens::Owner;
use super::{Server, listeners};
use crate::connection::is_descriptor_exhaustion;

/// After EMFILE/ENFILE with no session left to close, try accepting again after this.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Clients one worker takes from a shared listener per turn of its loop.
const SHARED_ACCEPT_BATCH: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AcceptPause {
    MaxConnections,
    OutOfDescriptors { retry_at: Instant },
}

impl Server {
    /// Accept on every socket frontend `i` polls here (one, unless taken
    /// over from a process that had more).
    pub(super) fn accept_ready(&mut self, i: usize) {
        let sockets = self.frontends.get(i).and_then(|f| f.listener.as_ref()).map_or(0, |s| s.polled.len());
        for k in 0..sockets {
            if self.accept_pause.is_some() {
                return;
            }
            self.accept_from(i, k);
        }
    }

    fn accept_from(&mut self, i: usize, k: usize) {
        // Listeners shared by workers are level-triggered: taking a few per
        // turn leaves the rest to a worker that is idle (the kernel wakes one
        // that waits), so a burst of clients spreads over the workers. A
        // reactor's own socket (reuseport) is edge-triggered: taken until empty.
        let mut budget = if self.exclusive { SHARED_ACCEPT_BATCH } else { usize::MAX };
        loop {
            if self.accept_pause.is_some() || budget == 0 {
                return;
            }
            budget -= 1;
            if self.open_clients() >= self.global.max_connections {
                match self.max_connections_total {
                    Some(total) => warn!(
                        "max connections ({total}) reached ({} in this worker): pausing accept",
                        self.global.max_connections
                    ),
                    None => warn!("max connections ({}) reached: pausing accept", self.global.max_connections),
                }
                self.set_accept_pause(Some(AcceptPause::MaxConnections));
                return;
            }
            let Some(listener) = self.frontends.get(i).and_then(|f| f.listener.as_ref()?.polled.get(k)) else { return };
            match listener.accept() {
                Ok((stream, addr)) => {
                    self.out_of_descriptors_logged = false;
                    self.start_handshake(i, stream, addr);
                    // A backend connect that found no descriptor: stop here, so
                    // the clients still queued wait instead of being dropped one by one.
                    if let Some(why) = self.frontends[i].mode.take_out_of_descriptors() {
                        self.pause_for_descriptors(&why);
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if is_descriptor_exhaustion(&e) => {
                    self.pause_for_descriptors(&format_args!("accept failed: {e}"));
                    return;
                }
                // The socket no longer listens (the main reactor shut it for
                // every worker at shutdown): nothing more to take, and an
                // edge-triggered reactor would otherwise retry it forever.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
                // ECONNABORTED and friends: that client is gone, the next may not be.
                Err(e) => debug!("accept error: {e}"),
            }
        }
    }

    /// Out of descriptors: stop accepting for a moment (sessions that end
    /// give some back). Logged once per episode: the retry would repeat it.
    pub(super) fn pause_for_descriptors(&mut self, why: &dyn std::fmt::Display) {
        if !self.out_of_descriptors_logged {
            warn!("{why}; pausing accept until a session closes");
            self.out_of_descriptors_logged = true;
        }
        self.set_accept_pause(Some(AcceptPause::OutOfDescriptors { retry_at: self.now + ACCEPT_RETRY }));
    }

    /// Level-triggered listeners (shared by workers) leave the poll while
    /// accepting is paused: a waiting client would wake it at once, again and again.
    pub(super) fn set_accept_pause(&mut self, pause: Option<AcceptPause>) {
        if self.exclusive && self.accept_pause.is_some() != pause.is_some() {
            for (i, f) in self.frontends.iter_mut().enumerate() {
                let Some(sockets) = f.listener.as_mut() else { continue };
                let token = Owner::Listener { frontend: i }.token();
                for l in sockets.polled.iter_mut() {
                    let r = match pause {
                        Some(_) => listeners::deregister(&self.poll, l, true),
                        // A reload during the pause may have registered one already.
                        None => listeners::register(&self.poll, l, token, true)
                            .or_else(|e| if e.raw_os_error() == Some(libc::EEXIST) { Ok(()) } else { Err(e) }),
                    };
                    if let Err(e) = r {
                        warn!(
                            "frontend {}: cannot {} its listener: {e}",
                            f.name,
                            if pause.is_some() { "park" } else { "resume" }
                        );
                    }
                }
            }
        }
        self.accept_pause = pause;
    }

    /// Accept again on every listener: connections may have queued while paused.
    pub(super) fn resume_accept(&mut self) {
        if self.accept_pause.is_some() {
            self.set_accept_pause(None);
            info!("resuming accept ({} sessions open)", self.open_clients());
            for i in 0..self.frontends.len() {
                self.accept_ready(i);
            }
        }
    }
}

/// A client over its address's limits: HTTP clients get a 429 first (best
/// effort: a fresh socket's buffer takes it whole), TCP clients are closed.
pub(super) fn refuse_client(mut stream: mio::net::TcpStream, is_tcp: bool) {
    if !is_tcp {
        let mut answer = Vec::new();
        crate::http::head::error_response(429, true, &mut answer);
        let _ = std::io::Write::write(&mut stream, &answer);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}
