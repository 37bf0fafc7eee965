//! # lbproxy
//!
//! A load balancer on mio (epoll) reactors: one thread, or several
//! workers (`--workers`) that share listeners, membership and counters.
//!
//! # Layout
//! - `config`: flags (cli.rs) and the TOML file (file.rs) into one `ServerConfig` (frontends, pools; defaults stated once), value parsers, the per-frontend `Config`.
//! - `server`: the poll loop, tokens, frontends and pools, accept, signals and shutdown; workers (more reactor threads) and what they share.
//! - `mode`: the `Mode` interface every frontend's mode implements; TCP mode.
//! - `connection`: one TCP session, its two directions (buffer or kernel pipe); I/O helpers.
//! - `buffer`: fixed-size buffers and the pool they are taken from.
//! - `splice`: kernel pipes for splice(2) in TCP mode and the pool they are taken from.
//! - `backend`: the backend list and its per-backend counters.
//! - `stats`: counters by status code and time histograms (backends and frontends).
//! - `sessions`: session numbers for log lines, how a session ended, its end line.
//! - `policy`: the `Policy` trait and one module per balancing policy.
//! - `health`: health state per backend (rise/fall thresholds, history).
//! - `slow_start`: a joining or returning backend's ramp, applied around every policy's pick.
//! - `outlier`: outlier ejection from live HTTP traffic (consecutive 5xx and gateway failures).
//! - `http`: HTTP/1.1 mode and redirect mode (framing, heads, the engine).
//! - `checks`: active health checks run by the reactor.
//! - `client_hello`: the SNI of a TLS ClientHello, peeked (TCP-mode SNI routing).
//! - `discovery`: pools from DNS (A/AAAA, SRV) resolved on their own thread.
//! - `admin`: the admin API (routes, JSON, metrics, dashboard).
//! - `probes`: speed probes for the fastest_ranked policy.
//! - `lab`: the policy lab's simulation: access logs read back as traces, policies run over virtual time.
//! - `proxy_protocol`: PROXY protocol v1/v2 headers, read from upstreams and written to backends.
//! - `outbound`: the one non-blocking GET client of checks and probes.
//! - `spawn`: backends started by lbproxy (--spawn-cmd, --replicas).
//! - `tls`: TLS termination for HTTP frontends (rustls): certificates by SNI, the client stream.
//! - `logfmt`: UTC timestamps, JSON escaping, the process log's text and json formats.
//! - `limits`: open-file limit and the connection cap it implies.
//! - `per_ip`: connection and request-rate limits per client address.

pub mod admin;
pub mod backend;
pub mod buffer;
pub mod checks;
pub mod client_hello;
pub mod config;
pub mod connection;
pub mod discovery;
pub mod health;
pub mod http;
pub mod lab;
pub mod limits;
pub mod logfmt;
pub mod mode;
pub mod outbound;
pub mod outlier;
pub mod per_ip;
pub mod policy;
pub mod probes;
pub mod proxy_protocol;
pub mod server;
pub mod sessions;
pub mod slow_start;
pub mod spawn;
pub mod splice;
pub mod stamp;
pub mod stats;
pub mod tls;

pub use config::{Args, Config};
pub use server::{Plan, Server};
