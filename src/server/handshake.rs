//! Client connections between accept and their mode, for frontends that
//! must look at the first bytes first:
//! - `accept_proxy`: peeked until a PROXY protocol header is complete,
//!   exactly the header is read, and the connection goes on as if it came
//!   from the address the header names;
//! - `sni_routes` (TCP mode): the TLS ClientHello is peeked, never
//!   consumed, and the connection goes to the frontend of the route whose
//!   names cover its server name (the frontend's own pool otherwise).
//!
//! Bounded: the bytes must arrive within `TIMEOUT`, and at most
//! `proxy_protocol::MAX_HEADER` or `client_hello::MAX_PEEK` are looked at.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::Interest;
use mio::net::TcpStream;
use slab::Slab;

use super::Server;
use super::tokens::Owner;
use crate::client_hello::{self, Sni};
use crate::config::Mode as ModeKind;
use crate::proxy_protocol::{self, AcceptMode, MAX_HEADER};

/// How long an upstream has to send its header.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Pending {
    sock: TcpStream,
    /// The connection's source (the PROXY header's, once read).
    peer: SocketAddr,
    frontend: usize,
    deadline: Instant,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Proxy,
    Sni,
}

/// Connections waiting for their header.
#[derive(Default)]
pub(super) struct Handshakes {
    conns: Slab<Pending>,
}

impl Handshakes {
    pub fn len(&self) -> usize {
        self.conns.len()
    }
}

/// What the first bytes of a connection say.
enum Verdict {
    /// Not enough bytes yet.
    Wait,
    /// A header of `len` bytes naming this client (or none: UNKNOWN, LOCAL).
    Header { len: usize, client: Option<SocketAddr> },
    /// No header, and none is required: a plain connection.
    Plain,
    /// Close it.
    Refuse(String),
}

fn judge(bytes: &[u8], mode: AcceptMode, eof: bool) -> Verdict {
    if mode == AcceptMode::Optional && !proxy_protocol::may_start_header(bytes) {
        return Verdict::Plain;
    }
    match proxy_protocol::parse(bytes) {
        Ok(Some((h, len))) => Verdict::Header { len, client: h.addrs.map(|a| a.0) },
        Ok(None) if eof => Verdict::Refuse("closed before its PROXY header was complete".into()),
        Ok(None) => Verdict::Wait,
        Err(e) => Verdict::Refuse(e.to_string()),
    }
}

impl Server {
    /// A client accepted on a frontend with `accept_proxy`: wait for its
    /// header if its source may send one; else decide now.
    pub(super) fn start_handshake(&mut self, i: usize, sock: TcpStream, peer: SocketAddr) {
        let ap = &self.frontends[i].config.accept_proxy;
        let Some(mode) = ap.mode else { return self.route(i, sock, peer) };
        if !ap.trusts(peer.ip()) {
            if mode == AcceptMode::Required {
                debug!("client {peer}: not a trusted PROXY source (trusted_proxies), closed");
                return;
            }
            return self.route(i, sock, peer);
        }
        self.wait_for_bytes(i, sock, peer, Stage::Proxy);
    }

    fn wait_for_bytes(&mut self, i: usize, mut sock: TcpStream, peer: SocketAddr, stage: Stage) {
        let entry = self.handshakes.conns.vacant_entry();
        let token = Owner::Handshake(entry.key()).token();
        if let Err(e) = self.poll.registry().register(&mut sock, token, Interest::READABLE) {
            warn!("cannot register client {peer}: {e}");
            return;
        }
        entry.insert(Pending { sock, peer, frontend: i, deadline: self.now + TIMEOUT, stage });
    }

    /// A client of frontend `i` whose address is known: to the frontend of
    /// its SNI route once its ClientHello says, or straight to `i`'s mode.
    fn route(&mut self, i: usize, sock: TcpStream, client: SocketAddr) {
        if self.frontends[i].config.sni_routes.is_empty() {
            return self.admit(i, sock, client);
        }
        self.wait_for_bytes(i, sock, client, Stage::Sni);
    }

    /// The frontend serving server name `name` for frontend `i`: its route's, or `i`.
    fn sni_target(&self, i: usize, name: Option<&str>) -> usize {
        let Some(name) = name else { return i };
        let routes = &self.frontends[i].config.sni_routes;
        let Some((_, target)) =
            routes.iter().find(|(names, _)| names.iter().any(|p| client_hello::name_matches(p, name)))
        else {
            return i;
        };
        self.frontends.iter().position(|f| f.is_live() && &f.name == target).unwrap_or(i)
    }

    /// The ClientHello of a client waiting in `key` came (or enough to tell).
    fn on_client_hello(&mut self, key: usize) {
        let Some(p) = self.handshakes.conns.get_mut(key) else { return };
        let mut buf = vec![0u8; client_hello::MAX_PEEK];
        let name = match p.sock.peek(&mut buf) {
            Ok(0) => {
                self.handshakes.conns.remove(key);
                return;
            }
            Ok(n) => match client_hello::server_name(&buf[..n]) {
                Sni::Incomplete if n < buf.len() => return,
                Sni::Name(name) => Some(name),
                _ => None,
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return,
            Err(e) => {
                debug!("client {}: {e}; closed", p.peer);
                self.handshakes.conns.remove(key);
                return;
            }
        };
        let Pending { mut sock, peer, frontend, .. } = self.handshakes.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut sock);
        let target = self.sni_target(frontend, name.as_deref());
        debug!("client {peer}: server name {name:?} -> frontend {}", self.frontends[target].name);
        self.admit(target, sock, peer);
    }

    /// Bytes arrived on a waiting connection: look at them.
    pub(super) fn on_handshake(&mut self, key: usize) {
        let Some(p) = self.handshakes.conns.get_mut(key) else { return };
        if p.stage == Stage::Sni {
            return self.on_client_hello(key);
        }
        let Some(mode) = self.frontends.get(p.frontend).and_then(|f| f.config.accept_proxy.mode) else {
            self.handshakes.conns.remove(key);
            return;
        };
        let mut buf = [0u8; MAX_HEADER];
        let verdict = match p.sock.peek(&mut buf) {
            Ok(n) => judge(&buf[..n], mode, n == 0),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => Verdict::Wait,
            Err(e) => Verdict::Refuse(e.to_string()),
        };
        let (client, skip) = match verdict {
            Verdict::Wait => return,
            Verdict::Refuse(why) => {
                debug!("client {}: {why}; closed", p.peer);
                self.handshakes.conns.remove(key);
                return;
            }
            Verdict::Plain => (None, 0),
            Verdict::Header { len, client } => (client, len),
        };
        let Pending { mut sock, peer, frontend, .. } = self.handshakes.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut sock);
        // The header's bytes are in the socket (we peeked them): take exactly those.
        if skip > 0 && sock.read_exact(&mut buf[..skip]).is_err() {
            debug!("client {peer}: its PROXY header could not be read back; closed");
            return;
        }
        let client = client.unwrap_or(peer);
        if client != peer {
            debug!("client {client} via PROXY header from {peer}");
        }
        self.route(frontend, sock, client);
    }

    /// Close connections whose header did not come in time (housekeeping tick).
    pub(super) fn sweep_handshakes(&mut self) {
        let now = self.now;
        self.handshakes.conns.retain(|_, p| {
            let keep = p.deadline > now;
            if !keep {
                debug!("client {}: no PROXY header within {TIMEOUT:?}; closed", p.peer);
            }
            keep
        });
    }

    /// Hand a client to its frontend's mode, within its address's limits.
    pub(super) fn admit(&mut self, i: usize, stream: TcpStream, addr: SocketAddr) {
        let front = &mut self.frontends[i];
        let is_tcp = front.config.mode == ModeKind::Tcp;
        match front.per_ip.admit_connection(addr.ip(), self.now, is_tcp) {
            Ok(slot) => self.with_mode(i, |m, ctx| m.accept(stream, addr, slot, ctx)),
            Err(_) => super::accept::refuse_client(stream, is_tcp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_mode_lets_plain_traffic_through_and_required_does_not() {
        assert!(matches!(judge(b"GET / HTTP/1.1\r\n", AcceptMode::Optional, false), Verdict::Plain));
        assert!(matches!(judge(b"GET / HTTP/1.1\r\n", AcceptMode::Required, false), Verdict::Refuse(_)));
        assert!(matches!(judge(b"PROX", AcceptMode::Optional, false), Verdict::Wait));
        assert!(matches!(judge(b"PROX", AcceptMode::Required, true), Verdict::Refuse(_)));
        let h = b"PROXY TCP4 192.0.2.1 10.0.0.1 40000 80\r\nGET /";
        match judge(h, AcceptMode::Required, false) {
            Verdict::Header { len, client } => {
                assert_eq!((len, client), (40, Some("192.0.2.1:40000".parse().unwrap())));
            }
            _ => panic!("a complete header"),
        }
    }
}
