//! The running process's side of a binary upgrade: send the listeners to
//! the new process, wait for its `ready`, then drain (the protocol itself
//! is in `upgrade.rs`).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Instant;

use log::{info, warn};
use mio::Interest;

use super::tokens::UPGRADE_STREAM;
use super::{Server, upgrade};

/// A binary upgrade under way: listeners sent, `ready` awaited until `until`.
pub(super) struct Handover {
    pub stream: mio::net::UnixStream,
    pub said: Vec<u8>,
    pub until: Instant,
    /// How many listening sockets it carried.
    pub sent: usize,
}

impl Server {
    /// A new lbproxy asks for our listeners: send them, then go on serving
    /// until it says `ready` (`on_upgrade_ready`).
    pub(super) fn on_upgrade_request(&mut self) {
        loop {
            let Some((l, _)) = self.upgrade.as_ref() else { return };
            let mut stream = match l.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("upgrade socket: {e}");
                    return;
                }
            };
            if self.handover.is_some() {
                warn!("binary upgrade: one is already under way; refusing another");
                continue;
            }
            let mut listeners: Vec<(String, SocketAddr, std::os::fd::RawFd)> = self
                .frontends
                .iter()
                .filter_map(|f| Some((f, f.listener.as_ref()?)))
                // Every socket (reuseport: each worker's too): one closed with
                // clients in its queue would reset them.
                .flat_map(|(f, s)| s.all().map(|l| (f.name.clone(), f.local_addr, l.as_raw_fd())))
                .collect();
            if let Some(a) = self.admin.as_ref() {
                listeners.push(("admin".into(), a.local_addr(), a.listener_fd()));
            }
            // SAFETY: a borrowed view of our own socket, never closed through it.
            let view =
                std::mem::ManuallyDrop::new(unsafe { std::os::unix::net::UnixStream::from_raw_fd(stream.as_raw_fd()) });
            if let Err(e) = upgrade::send_listeners(&view, &listeners) {
                warn!("binary upgrade failed, still serving: {e}");
                continue;
            }
            if let Err(e) = self.poll.registry().register(&mut stream, UPGRADE_STREAM, Interest::READABLE) {
                warn!("binary upgrade failed, still serving: {e}");
                continue;
            }
            info!("sent {} listeners to a new lbproxy process; waiting for it to say ready", listeners.len());
            let sent = listeners.len();
            self.handover = Some(Handover { stream, said: Vec::new(), until: self.now + upgrade::READY_WAIT, sent });
        }
    }

    /// The new process spoke on the handover stream.
    pub(super) fn on_upgrade_ready(&mut self) {
        let Some(h) = self.handover.as_mut() else { return };
        match upgrade::is_ready(&mut h.stream, &mut h.said) {
            Ok(false) => {}
            Ok(true) => {
                let n = h.sent;
                self.handover = None;
                info!("handed {n} listeners to a new lbproxy process");
                if let Some((mut l, _)) = self.upgrade.take() {
                    let _ = self.poll.registry().deregister(&mut l);
                }
                self.admin = None;
                self.start_drain("binary upgrade", false);
            }
            Err(e) => {
                self.handover = None;
                warn!("binary upgrade failed, still serving: {e}");
            }
        }
    }
}
