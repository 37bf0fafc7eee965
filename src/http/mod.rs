//! HTTP/1.1 mode (per-request balancing) and redirect mode.
//!
//! - `framing`: where a message body ends (Content-Length, chunked, close).
//! - `head`: parsing and rewriting request and response heads; proxy-made answers.
//! - `engine`: client and backend connections, pools, and the exchange state machine.

pub mod engine;
pub mod framing;
pub mod head;

pub use engine::{ACCESS_LOG_HEADER, BackendConnMode, Ctx, HttpEngine, HttpRole, HttpSettings};
