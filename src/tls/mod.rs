//! TLS termination for HTTP and redirect frontends, with rustls (the
//! field's standard Rust TLS stack, on its `ring` provider: pure Rust and C
//! it builds with cargo alone, no cmake).
//!
//! - `certs`: certificate chains and keys from PEM files, one chosen per
//!   handshake by the server name the client asked for (SNI).
//! - `backend`: TLS towards backends (`backend_tls`: verify against a CA
//!   file, or insecure).
//! - `stream`: `ClientIo`, the client side of an HTTP connection, plain or
//!   TLS, with the read/write semantics the reactor's edge-triggered loop
//!   relies on.

pub mod backend;
pub mod certs;
pub mod stream;

pub use backend::{BackendTls, BackendTlsMode};
pub use certs::{TlsFiles, TlsSettings, load};
pub use stream::ClientIo;
