//! HTTP/1.1 mode (per-request balancing) and redirect mode.
//!
//! - `framing`: where a message body ends (Content-Length, chunked, close).
//! - `head`: parsing and rewriting request and response heads; proxy-made answers.
//! - `engine`: client connections, request heads, the start of each exchange.
//! - `backend_conn`: backend connections: idle pool or new, picking and connecting, retries.
//! - `exchange`: one request and its response moving through, and how it ends.
//! - `tunnel`: a connection after `101 Switching Protocols` (WebSocket), a byte pipe both ways.
//! - `retry_budget`: how many retries the recent requests allow (a share plus a floor per second).
//! - `timeouts`: the idle, slow-head, keep-alive and stall clocks, swept periodically.
//! - `access_log`: one line per request (CSV, combined or JSON); reopened on SIGUSR1.
//! - `mode`: the engine behind the server core's `Mode` interface.

pub mod access_log;
mod backend_conn;
pub mod engine;
mod exchange;
pub mod framing;
pub mod head;
mod mode;
pub mod retry_budget;
mod timeouts;
mod tunnel;

pub use access_log::{ACCESS_LOG_HEADER, AccessLogFormat, open_access_log};
pub use engine::{BackendConnMode, Ctx, HttpEngine, HttpRole, HttpSettings};
