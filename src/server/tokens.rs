//! Every mio token in one place.
//!
//! A token packs a 3-bit tag (who owns the socket), an 8-bit index (which
//! frontend or pool) and a key (the owner's slab key):
//! `Token((key << 11) | (index << 3) | tag)`. Sockets of a mode carry the
//! frontend index and a key the mode defines (e.g. slab key * 2 + side).
//! Fixed tokens sit at the top of the range, far above any key a slab reaches.

use mio::Token;

pub const SIGNALS: Token = Token(usize::MAX);
pub const ADMIN_LISTENER: Token = Token(usize::MAX - 1);
pub const UPGRADE_LISTENER: Token = Token(usize::MAX - 3);
pub const UPGRADE_STREAM: Token = Token(usize::MAX - 4);
/// Another thread has something for the reactor (DNS answers, admin host-name lookups).
pub const WAKER: Token = Token(usize::MAX - 5);

/// Most frontends, and most pools, one process serves.
pub const MAX_INDEX: usize = 1 << INDEX_BITS;

const TAG_BITS: u32 = 3;
const INDEX_BITS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The listening socket of a frontend.
    Listener { frontend: usize },
    /// A socket of a frontend's mode; `key` is the mode's to interpret.
    Mode { frontend: usize, key: usize },
    /// Active health check `key` of a pool.
    Check { pool: usize, key: usize },
    /// Speed probe `key` of a frontend's policy (fastest_ranked).
    Probe { frontend: usize, key: usize },
    /// Admin API connection `key`.
    Admin(usize),
    /// A client connection waiting for its PROXY protocol header.
    Handshake(usize),
    /// A token no socket was given (a stale or corrupt one): ignored.
    Unknown,
}

impl Owner {
    pub fn token(self) -> Token {
        let pack = |tag: usize, index: usize, key: usize| {
            debug_assert!(index < MAX_INDEX);
            Token((key << (TAG_BITS + INDEX_BITS)) | (index << TAG_BITS) | tag)
        };
        match self {
            Owner::Listener { frontend } => pack(0, frontend, 0),
            Owner::Mode { frontend, key } => pack(1, frontend, key),
            Owner::Check { pool, key } => pack(2, pool, key),
            Owner::Probe { frontend, key } => pack(3, frontend, key),
            Owner::Admin(key) => pack(4, 0, key),
            Owner::Handshake(key) => pack(5, 0, key),
            Owner::Unknown => Token(usize::MAX - 2),
        }
    }

    pub fn of(t: Token) -> Owner {
        let tag = t.0 & ((1 << TAG_BITS) - 1);
        let index = (t.0 >> TAG_BITS) & (MAX_INDEX - 1);
        let key = t.0 >> (TAG_BITS + INDEX_BITS);
        match tag {
            0 => Owner::Listener { frontend: index },
            1 => Owner::Mode { frontend: index, key },
            2 => Owner::Check { pool: index, key },
            3 => Owner::Probe { frontend: index, key },
            4 => Owner::Admin(key),
            5 => Owner::Handshake(key),
            _ => Owner::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for k in [0usize, 1, 5, 1 << 30] {
            for i in [0, 1, MAX_INDEX - 1] {
                for o in [
                    Owner::Listener { frontend: i },
                    Owner::Mode { frontend: i, key: k },
                    Owner::Check { pool: i, key: k },
                    Owner::Probe { frontend: i, key: k },
                    Owner::Admin(k),
                    Owner::Handshake(k),
                ] {
                    assert_eq!(Owner::of(o.token()), o);
                    assert_ne!(o.token(), SIGNALS);
                    assert_ne!(o.token(), ADMIN_LISTENER);
                    assert_ne!(o.token(), UPGRADE_LISTENER);
                    assert_ne!(o.token(), UPGRADE_STREAM);
                }
            }
        }
    }

    #[test]
    fn unused_tags_are_unknown() {
        for tag in 6..8 {
            assert_eq!(Owner::of(Token((7 << 11) | tag)), Owner::Unknown);
        }
    }
}
