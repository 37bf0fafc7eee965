//! Configuration: the command line (`cli.rs`), the config file (`file.rs`),
//! the value parsers both share (`values.rs`), and what they produce.
//!
//! - [`ServerConfig`] (`server.rs`): global settings, frontends and pools, with
//!   every default stated once in their `Default` impls. `ServerConfig::from_args`
//!   reads `--config FILE` or turns the flags into one frontend and one pool.
//! - [`Config`]: what today's single-frontend reactor runs;
//!   `ServerConfig::to_config(i)` builds it for frontend `i` and its pool.
//! - [`ConfigError`] (`error.rs`): a config file error naming file, line,
//!   column, section and key.
//!
//! Every parser returns an error naming the value it rejected; clap adds the
//! flag name and exits with status 2, the config file adds file, line and key.

mod cli;
mod error;
mod file;
mod render;
mod server;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::FailPolicy;
use crate::health::HealthConfig;
use crate::http::head::HashKey;
use crate::http::{AccessLogFormat, BackendConnMode, HttpRole, HttpSettings};
use crate::policy::{PolicyKind, PolicyParams};

pub use cli::Args;
pub use error::ConfigError;
pub use server::{
    DEFAULT_NAME, DEFAULT_RESOLVE_INTERVAL, FrontendConfig, GlobalConfig, PoolConfig, ServerConfig, SniRoute, TOKEN_ENV,
};
pub use values::*;

/// What lbproxy does with a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tcp,
    Http,
    Redirect,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Http => "http",
            Mode::Redirect => "redirect",
        }
    }
}

/// The backends named by one `--backend` value (a comma-separated list).
#[derive(Debug, Clone)]
pub struct BackendList(pub Vec<BackendSpec>);

/// One backend as configured: where, and how much traffic relative to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendSpec {
    pub addr: SocketAddr,
    pub weight: u32,
}

/// Largest weight accepted; weights are relative, so this is plenty.
pub const MAX_WEIGHT: u32 = 1000;

/// Everything the reactor needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub backends: Vec<BackendSpec>,
    pub policy: PolicyKind,
    /// Shadow policies: decide beside `policy` on every pick, never sent.
    pub shadow_policies: Vec<PolicyKind>,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// 0 until `Server::bind` sets it: the open-file limit decides (users
    /// cannot give 0, see `parse_max_connections`).
    pub max_connections: usize,
    /// `--log-sessions`: an info line per ended session.
    pub log_sessions: bool,
    pub buffer_size: usize,
    /// Capacity asked for each splice pipe.
    pub pipe_size: usize,
    pub stats_interval: Option<Duration>,
    pub drain_timeout: Duration,
    pub backlog: i32,
    pub seed: u64,
    /// Reactor threads (`--workers`), the process's setting.
    pub workers: values::Workers,
    /// How the reactors take new clients (`--accept`), the process's setting.
    pub accept: values::Accept,
    /// The frontend's round-robin position, shared by its workers' copies.
    pub rotation: crate::policy::Rotation,
    /// The addresses its per-address limits track, shared by its workers' copies.
    pub per_ip_entries: crate::per_ip::SharedEntries,
    pub mode: Mode,
    pub backend_conn: BackendConnMode,
    pub pool_size: usize,
    pub pool_idle_timeout: Duration,
    pub max_header_size: usize,
    pub per_ip: crate::per_ip::PerIpLimits,
    pub accept_proxy: crate::proxy_protocol::AcceptProxy,
    pub send_proxy: Option<crate::proxy_protocol::Version>,
    /// TLS termination (HTTP and redirect modes).
    pub tls: Option<crate::tls::TlsSettings>,
    /// TLS towards the pool's backends (HTTP mode).
    pub backend_tls: Option<crate::tls::BackendTls>,
    /// TCP mode: server names and the (hidden) frontend that serves them.
    pub sni_routes: Vec<(Vec<String>, String)>,
    /// A hidden frontend serving an SNI route: no listener of its own.
    pub routed: bool,
    pub backend_timeout: Duration,
    pub request_timeout: Duration,
    pub keepalive_timeout: Option<Duration>,
    pub access_log: Option<PathBuf>,
    pub access_log_format: AccessLogFormat,
    /// `--access-log-explain`: an `explain` field on every line.
    pub access_log_explain: bool,
    pub redirect_code: u16,
    pub retry_budget: crate::http::retry_budget::RetryBudgetConfig,
    /// The frontend's retry window, shared by its workers' copies.
    pub retry_window: crate::http::retry_budget::SharedWindow,
    pub splice: crate::splice::SpliceMode,
    pub fail_policy: FailPolicy,
    pub slow_start: Option<Duration>,
    pub eject: crate::outlier::EjectPolicy,
    pub health: Option<HealthConfig>,
    pub admin: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub admin_read_only_open: bool,
    pub upgrade_socket: Option<PathBuf>,
    pub spawn_cmd: Option<String>,
    pub replicas: Option<usize>,
    /// The pool's DNS names (see `PoolConfig`).
    pub names: Vec<crate::discovery::NameSpec>,
    pub resolve_interval: Option<Duration>,
    pub resolvers: Vec<SocketAddr>,
    pub params: PolicyParams,
    pub hash_key: Option<HashKey>,
    pub probe_path: String,
    pub probe_interval: Duration,
}

impl Config {
    /// A config with the CLI defaults, for tests and embedding.
    pub fn new(listen: SocketAddr, backends: Vec<SocketAddr>, policy: PolicyKind) -> Config {
        let servers = backends.into_iter().map(|addr| BackendSpec { addr, weight: 1 }).collect();
        ServerConfig {
            global: GlobalConfig::default(),
            frontends: vec![FrontendConfig { listen, policy, ..FrontendConfig::default() }],
            pools: vec![PoolConfig { servers, ..PoolConfig::default() }],
        }
        .to_config(0)
    }

    /// Settings of the HTTP engine, or `None` in TCP mode.
    pub fn http_settings(&self) -> Option<HttpSettings> {
        let role = match self.mode {
            Mode::Tcp => return None,
            Mode::Http => HttpRole::Proxy,
            Mode::Redirect => HttpRole::Redirect(self.redirect_code),
        };
        Some(HttpSettings {
            role,
            // A connection carries one client's address in its PROXY header,
            // so none is shared: one per request.
            conn_mode: if self.send_proxy.is_some() { BackendConnMode::PerRequest } else { self.backend_conn },
            pool_size: self.pool_size,
            pool_idle_timeout: self.pool_idle_timeout,
            max_header_size: self.max_header_size.min(self.buffer_size),
            backend_timeout: self.backend_timeout,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            keepalive_timeout: self.keepalive_timeout,
            hash_key: self.hash_key.clone(),
            send_proxy: self.send_proxy,
            tls: self.tls.as_ref().map(|t| t.server.clone()),
            backend_tls: self.backend_tls.clone(),
            log_sessions: self.log_sessions,
            retry_budget: self.retry_budget,
            retry_window: self.retry_window.clone(),
        })
    }
}

impl From<Args> for Config {
    /// The flags as a `Config` (a `--config` file is not read here: use
    /// [`ServerConfig::from_args`]).
    fn from(a: Args) -> Config {
        ServerConfig::from_flags(a).to_config(0)
    }
}
