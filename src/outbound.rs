//! One non-blocking outbound client for the proxy's own requests: health
//! checks (a connect, or `GET path` judged by its status line) and speed
//! probes (`GET path` read to the end, timed). It runs inside the reactor on
//! the caller's token.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::connection::{ConnectCheck, Ready, check_connect};

/// Bytes of an answer kept to judge it (the status line fits easily).
const HEAD_MAX: usize = 1024;

/// What to do once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Nothing: the connect is the check.
    Connected,
    /// Send the GET, stop at the status line.
    StatusLine,
    /// Send the GET, read until the server closes.
    End,
}

/// Where a request stands after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Pending,
    /// Done: the status code (`None` for `Until::Connected`) and bytes read.
    Done {
        status: Option<u16>,
        received: u64,
    },
    Failed(String),
}

pub struct Get {
    sock: TcpStream,
    ready: Ready,
    connected: bool,
    request: Vec<u8>,
    sent: usize,
    until: Until,
    head: Vec<u8>,
    received: u64,
}

impl Get {
    /// Start connecting to `addr`; `path` is requested unless `until` is `Connected`.
    pub fn start(
        addr: SocketAddr,
        path: &str,
        agent: &str,
        until: Until,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Get> {
        let mut sock = TcpStream::connect(addr)?;
        registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)?;
        let request = match until {
            Until::Connected => Vec::new(),
            _ => format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: {agent}\r\n\r\n").into_bytes(),
        };
        Ok(Get {
            sock,
            ready: Ready::default(),
            connected: false,
            request,
            sent: 0,
            until,
            head: Vec::new(),
            received: 0,
        })
    }

    /// Take the socket out of the poll (it closes when the `Get` is dropped).
    pub fn stop(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.sock);
    }

    pub fn on_event(&mut self, ev: &mio::event::Event) -> Progress {
        self.ready.absorb(ev);
        if !self.connected {
            match check_connect(&self.sock, &mut self.ready) {
                ConnectCheck::Pending => return Progress::Pending,
                ConnectCheck::Failed(e) => return Progress::Failed(e.to_string()),
                ConnectCheck::Connected => self.connected = true,
            }
            if self.until == Until::Connected {
                return Progress::Done { status: None, received: 0 };
            }
        }
        while self.sent < self.request.len() {
            match self.sock.write(&self.request[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Progress::Failed(e.to_string()),
            }
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => return self.judge(),
                Ok(n) => {
                    let keep = n.min(HEAD_MAX - self.head.len());
                    self.head.extend_from_slice(&buf[..keep]);
                    self.received += n as u64;
                    if self.until == Until::StatusLine && (has_line(&self.head) || self.head.len() == HEAD_MAX) {
                        return self.judge();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Progress::Failed(e.to_string()),
            }
        }
    }

    fn judge(&self) -> Progress {
        match status_code(&self.head) {
            Ok(status) => Progress::Done { status: Some(status), received: self.received },
            Err(why) => Progress::Failed(why),
        }
    }
}

fn has_line(head: &[u8]) -> bool {
    head.windows(2).any(|w| w == b"\r\n")
}

/// The status code of an HTTP/1.x status line, or why there is none.
pub fn status_code(head: &[u8]) -> Result<u16, String> {
    let end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..end]);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(c)) if v.starts_with("HTTP/1.") && c.len() == 3 => {
            c.parse().map_err(|_| "answer is not HTTP".to_string())
        }
        _ if head.is_empty() => Err("closed without answering".into()),
        _ => Err("answer is not HTTP".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(status_code(b"HTTP/1.0 204 No Content\r\n\r\n"), Ok(204));
        assert_eq!(status_code(b"HTTP/1.1 503 Service Unavailable\r\n"), Ok(503));
        assert_eq!(status_code(b""), Err("closed without answering".into()));
        assert_eq!(status_code(b"SSH-2.0\r\n"), Err("answer is not HTTP".into()));
        assert_eq!(status_code(b"garbage"), Err("answer is not HTTP".into()));
        assert!(!has_line(b"HTTP/1.1 200"), "an incomplete status line is not judged yet");
    }
}
