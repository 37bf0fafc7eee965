//! The backend list: address and traffic counters per backend.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Counters for one backend. "up" is client to backend, "down" the reverse.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackendStats {
    /// Sessions assigned to this backend and not yet closed (connecting included).
    pub active: u64,
    /// Sessions that reached this backend (connect succeeded).
    pub total: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub connect_failures: u64,
    /// HTTP requests sent here (HTTP mode) or redirected here (redirect mode).
    pub requests: u64,
    /// Backend connections opened (HTTP mode; shows pool reuse).
    pub conns_opened: u64,
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub stats: BackendStats,
}

impl Backend {
    pub fn new(addr: SocketAddr) -> Backend {
        Backend {
            addr,
            stats: BackendStats::default(),
        }
    }

    /// May new sessions be sent here? (Health and drain state will hook in here.)
    pub fn accepts_new(&self) -> bool {
        true
    }
}

/// The periodic usage table, one line per backend.
pub fn usage_table(backends: &[Backend]) -> String {
    let mut out = String::from("=== Backend usage ===");
    for b in backends {
        let s = &b.stats;
        let _ = write!(
            out,
            "\n  {}: {} sessions, {} active, {} B up, {} B down, {} connect failures",
            b.addr, s.total, s.active, s.bytes_up, s.bytes_down, s.connect_failures
        );
        if s.requests > 0 || s.conns_opened > 0 {
            let _ = write!(
                out,
                ", {} requests, {} backend connections opened",
                s.requests, s.conns_opened
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_every_backend() {
        let mut b = vec![
            Backend::new("127.0.0.1:8001".parse().unwrap()),
            Backend::new("127.0.0.1:8002".parse().unwrap()),
        ];
        b[0].stats.total = 6720;
        b[0].stats.active = 3;
        let t = usage_table(&b);
        assert!(t.starts_with("=== Backend usage ==="));
        assert!(t.contains("127.0.0.1:8001: 6720 sessions, 3 active"), "{t}");
        assert!(t.contains("127.0.0.1:8002: 0 sessions"), "{t}");
    }
}
