//! Every mio token in one place.
//!
//! Sockets that belong to a slab entry carry the entry's key and a 2-bit tag
//! saying which slab and which side: `Token(key * 4 + tag)`. Fixed tokens sit
//! at the top of the range, far above any key a slab can reach.

use mio::Token;

pub const LISTENER: Token = Token(usize::MAX);
pub const SIGNALS: Token = Token(usize::MAX - 1);

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
}

impl Owner {
    pub fn token(self) -> Token {
        match self {
            Owner::TcpClient(k) => Token(k * 4),
            Owner::TcpBackend(k) => Token(k * 4 + 1),
            Owner::HttpClient(k) => Token(k * 4 + 2),
            Owner::HttpBackend(k) => Token(k * 4 + 3),
        }
    }

    pub fn of(t: Token) -> Owner {
        let key = t.0 / 4;
        match t.0 % 4 {
            0 => Owner::TcpClient(key),
            1 => Owner::TcpBackend(key),
            2 => Owner::HttpClient(key),
            _ => Owner::HttpBackend(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for k in [0usize, 1, 5, 1 << 30] {
            for o in [
                Owner::TcpClient(k),
                Owner::TcpBackend(k),
                Owner::HttpClient(k),
                Owner::HttpBackend(k),
            ] {
                assert_eq!(Owner::of(o.token()), o);
                assert_ne!(o.token(), LISTENER);
                assert_ne!(o.token(), SIGNALS);
            }
        }
    }
}
