//! Every mio token in one place.
//!
//! Sockets that belong to a slab entry carry the entry's key and a 3-bit tag
//! saying which slab and which side: `Token(key * 8 + tag)`. Fixed tokens sit
//! at the top of the range, far above any key a slab can reach.

use mio::Token;

pub const LISTENER: Token = Token(usize::MAX);
pub const SIGNALS: Token = Token(usize::MAX - 1);
pub const ADMIN_LISTENER: Token = Token(usize::MAX - 2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// TCP session `key`, client side.
    TcpClient(usize),
    /// TCP session `key`, backend side.
    TcpBackend(usize),
    /// HTTP client connection `key`.
    HttpClient(usize),
    /// HTTP backend connection `key` (pooled, may outlive any client).
    HttpBackend(usize),
    /// Active health check `key`.
    Check(usize),
    /// Admin API connection `key`.
    Admin(usize),
    /// Speed probe `key` (fastest_ranked).
    Probe(usize),
}

impl Owner {
    pub fn token(self) -> Token {
        match self {
            Owner::TcpClient(k) => Token(k * 8),
            Owner::TcpBackend(k) => Token(k * 8 + 1),
            Owner::HttpClient(k) => Token(k * 8 + 2),
            Owner::HttpBackend(k) => Token(k * 8 + 3),
            Owner::Check(k) => Token(k * 8 + 4),
            Owner::Admin(k) => Token(k * 8 + 5),
            Owner::Probe(k) => Token(k * 8 + 6),
        }
    }

    pub fn of(t: Token) -> Owner {
        let key = t.0 / 8;
        match t.0 % 8 {
            0 => Owner::TcpClient(key),
            1 => Owner::TcpBackend(key),
            2 => Owner::HttpClient(key),
            3 => Owner::HttpBackend(key),
            4 => Owner::Check(key),
            5 => Owner::Admin(key),
            _ => Owner::Probe(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for k in [0usize, 1, 5, 1 << 30] {
            for o in [Owner::TcpClient(k), Owner::TcpBackend(k), Owner::HttpClient(k), Owner::HttpBackend(k)] {
                assert_eq!(Owner::of(o.token()), o);
                assert_ne!(o.token(), LISTENER);
                assert_ne!(o.token(), SIGNALS);
                assert_ne!(o.token(), ADMIN_LISTENER);
            }
        }
    }
}
