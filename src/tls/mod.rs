//! TLS termination for HTTP and redirect frontends, with rustls (the
//! field's standard Rust TLS stack, on its `ring` provider: pure Rust and C
//! it builds with cargo alone, no cmake).
//!
//! - `certs`: certificate chains and keys from PEM files, one chosen per
//!   handshake by the server name the client asked for (SNI).
//! - `stream`: `ClientIo`, the client side of an HTTP connection, plain or
//!   TLS, with the read/write semantics the reactor's edge-triggered loop
//!   relies on.

pub mod certs;
pub mod stream;

pub use certs::{TlsFiles, TlsSettings, load};
pub use stream::ClientIo;
