//! Sessions in the process log: every client connection gets a number at
//! accept, unique in the process (slab keys are reused as soon as a session
//! ends), shown as `s=N` on each of its lines; and one line when it ends.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The reactor is one thread; the atomic only makes a plain static safe.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A number no other session of this process has had (starting at 1).
pub fn next_id() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How a session ended, as its end line says (`end=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client closed first (FIN), or between requests.
    ClientClosed,
    /// The backend closed first (TCP mode and tunnels).
    BackendClosed,
    /// The proxy closed it after answering (`Connection: close`, an error answer).
    ProxyClosed,
    /// A peer reset the connection (or a write hit a closed one).
    Reset,
    /// A timeout (idle, slow head, keep-alive, stalled exchange).
    Timeout,
    /// No backend could be connected.
    NoBackend,
    /// Another I/O error.
    Error,
    /// Closed by a drain or the drain timeout.
    Shutdown,
}

impl End {
    pub fn name(self) -> &'static str {
        match self {
            End::ClientClosed => "client_closed",
            End::BackendClosed => "backend_closed",
            End::ProxyClosed => "proxy_closed",
            End::Reset => "reset",
            End::Timeout => "timeout",
            End::NoBackend => "no_backend",
            End::Error => "error",
            End::Shutdown => "shutdown",
        }
    }

    /// A socket error as an end: resets and broken pipes are the peer's doing.
    pub fn of_error(e: &io::Error) -> End {
        use io::ErrorKind::*;
        match e.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe | WriteZero => End::Reset,
            UnexpectedEof => End::ClientClosed,
            TimedOut => End::Timeout,
            _ => End::Error,
        }
    }
}

/// What a session's end line reports.
pub struct Summary {
    pub id: u64,
    pub client: SocketAddr,
    /// The backend it used last, if any.
    pub backend: Option<SocketAddr>,
    pub duration: Duration,
    /// Bytes from the client, and to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// HTTP requests read (`None` in TCP mode).
    pub requests: Option<u64>,
    pub end: End,
}

impl std::fmt::Display for Summary {
    /// `key=value` fields, so the line is parsed with a split.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s={} session end client={} backend=", self.id, self.client)?;
        match self.backend {
            Some(b) => write!(f, "{b}")?,
            None => f.write_str("-")?,
        }
        write!(
            f,
            " duration_s={:.6} bytes_in={} bytes_out={}",
            self.duration.as_secs_f64(),
            self.bytes_in,
            self.bytes_out
        )?;
        if let Some(n) = self.requests {
            write!(f, " requests={n}")?;
        }
        write!(f, " end={}", self.end.name())
    }
}

/// Log `summary` at info when `--log-sessions` is on, else at debug: one
/// line per session is too much for a busy proxy's default log, but with
/// `RUST_LOG=debug` every line of a session, its end included, is there.
pub fn log_end(enabled: bool, summary: &Summary) {
    if enabled {
        log::info!("{summary}");
    } else {
        log::debug!("{summary}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_increase_and_never_repeat() {
        let a = next_id();
        let b = next_id();
        assert!(b > a && a >= 1);
    }

    #[test]
    fn end_line_is_key_value() {
        let s = Summary {
            id: 7,
            client: "127.0.0.1:5000".parse().unwrap(),
            backend: None,
            duration: Duration::from_millis(1500),
            bytes_in: 10,
            bytes_out: 20,
            requests: Some(2),
            end: End::Timeout,
        };
        assert_eq!(
            s.to_string(),
            "s=7 session end client=127.0.0.1:5000 backend=- duration_s=1.500000 bytes_in=10 bytes_out=20 \
             requests=2 end=timeout"
        );
    }
}
