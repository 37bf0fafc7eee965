//! Balancing policies behind one small trait.
//!
//! A policy only chooses among the candidates it is shown. Which backends are
//! eligible (not already tried for this client, later: healthy, not draining)
//! is decided by the caller and exposed through [`Candidates::usable`], so no
//! policy re-implements that filtering.

mod fewest_connections;
pub mod hash;
mod ip_hash;
mod round_robin;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::backend::Backend;

pub use fewest_connections::FewestConnections;
pub use ip_hash::IpHash;
pub use round_robin::RoundRobin;

/// What a policy may key on for one decision.
#[derive(Debug, Clone, Copy)]
pub struct PickKey {
    pub client_ip: IpAddr,
}

/// The backends a policy may choose from for one decision.
pub struct Candidates<'a> {
    backends: &'a [Backend],
    excluded: &'a [usize],
}

impl<'a> Candidates<'a> {
    pub fn new(backends: &'a [Backend], excluded: &'a [usize]) -> Candidates<'a> {
        Candidates { backends, excluded }
    }

    pub fn len(&self) -> usize {
        self.backends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// May backend `i` receive this client?
    pub fn usable(&self, i: usize) -> bool {
        i < self.backends.len() && self.backends[i].accepts_new() && !self.excluded.contains(&i)
    }

    /// Sessions currently open on backend `i`.
    pub fn active(&self, i: usize) -> u64 {
        self.backends[i].stats.active
    }

    /// The first usable index at or after `start`, wrapping around.
    pub fn next_usable_from(&self, start: usize) -> Option<usize> {
        let n = self.len();
        (0..n).map(|k| (start + k) % n).find(|&i| self.usable(i))
    }
}

pub trait Policy {
    /// Choose a backend index, or `None` when no candidate is usable.
    fn pick(&mut self, key: &PickKey, candidates: &Candidates) -> Option<usize>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    RoundRobin,
    FewestConnections,
    IpHash,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [PolicyKind::RoundRobin, PolicyKind::FewestConnections, PolicyKind::IpHash];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::RoundRobin => "round_robin",
            PolicyKind::FewestConnections => "fewest_connections",
            PolicyKind::IpHash => "ip_hash",
        }
    }

    pub fn build(self, seed: u64) -> Box<dyn Policy> {
        match self {
            PolicyKind::RoundRobin => Box::new(RoundRobin::default()),
            PolicyKind::FewestConnections => Box::new(FewestConnections::default()),
            PolicyKind::IpHash => Box::new(IpHash::new(seed)),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PolicyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<PolicyKind, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        match norm.as_str() {
            "round_robin" | "roundrobin" | "rr" => Ok(PolicyKind::RoundRobin),
            "fewest_connections" | "fewestconnections" | "least_conn" | "leastconn" | "least_connections"
            | "leastconnections" => Ok(PolicyKind::FewestConnections),
            "ip_hash" | "iphash" | "ip_hashing" | "source" => Ok(PolicyKind::IpHash),
            _ => Err(format!(
                "unknown policy \"{s}\" (expected one of: {})",
                PolicyKind::ALL.map(|p| p.name()).join(", ")
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use std::net::SocketAddr;

    pub fn backends(n: usize) -> Vec<Backend> {
        (0..n).map(|i| Backend::new(SocketAddr::from(([127, 0, 0, 1], 8001 + i as u16)))).collect()
    }

    pub fn key(last_octet: u8) -> PickKey {
        PickKey { client_ip: IpAddr::from([127, 0, 0, last_octet]) }
    }

    pub fn picks(p: &mut dyn Policy, b: &[Backend], excluded: &[usize], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| p.pick(&key(1), &Candidates::new(b, excluded))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        for s in ["round_robin", "round-robin", "roundrobin", "RR"] {
            assert_eq!(s.parse::<PolicyKind>().unwrap(), PolicyKind::RoundRobin);
        }
        for s in ["fewest_connections", "least_conn", "leastconn", "Least-Connections"] {
            assert_eq!(s.parse::<PolicyKind>().unwrap(), PolicyKind::FewestConnections);
        }
        for s in ["ip_hash", "ip_hashing", "source", "ip-hash"] {
            assert_eq!(s.parse::<PolicyKind>().unwrap(), PolicyKind::IpHash);
        }
        let e = "fastest".parse::<PolicyKind>().unwrap_err();
        assert!(e.contains("\"fastest\"") && e.contains("round_robin"), "{e}");
    }
}
