//! The validated configuration of a whole server: global settings, any number
//! of frontends (listeners) and pools (backend sets), from the command line or
//! from a config file.
//!
//! Every default is stated once, in the `Default` impls below (and in
//! `PolicyParams::default` and `FailPolicy::default` for the policy tunables
//! and the passive failure policy). The clap flags and their `--help` text take
//! their defaults from these impls, and a key absent from a config file gets
//! the same value.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;

use super::{Args, BackendSpec, Config, ConfigError, Mode};
use crate::backend::FailPolicy;
use crate::discovery::NameSpec;
use crate::health::{CheckKind, HealthConfig};
use crate::http::head::HashKey;
use crate::http::retry_budget::RetryBudgetConfig;
use crate::http::{AccessLogFormat, BackendConnMode};
use crate::logfmt::LogFormat;
use crate::outlier::EjectPolicy;
use crate::per_ip::PerIpLimits;
use crate::policy::{PolicyKind, PolicyParams};
use crate::proxy_protocol::{AcceptProxy, Version as ProxyVersion};
use crate::tls::{BackendTls, TlsFiles, TlsSettings};

/// Name of the one frontend and the one pool that the command-line flags make.
pub const DEFAULT_NAME: &str = "default";

/// A duration where zero means off.
/// `0` means "no limit" in a count.
pub(super) fn none_if_zero(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

pub(super) fn off_if_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Everything a server runs: settings shared by all frontends, the frontends
/// (one listener each) and the pools they send traffic to.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub global: GlobalConfig,
    /// At least one; binds do not overlap; names are unique.
    pub frontends: Vec<FrontendConfig>,
    /// At least one; names are unique; each has servers (or spawns them).
    pub pools: Vec<PoolConfig>,
}

/// Settings of the process: admin API, logging, limits, shutdown, statistics, seed.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    pub admin: Option<SocketAddr>,
    /// Read from `admin_token_file` when the file names one.
    pub admin_token: Option<String>,
    /// The user accepts an admin API beyond loopback without a token; without
    /// it such a configuration is refused (see [`GlobalConfig::admin_exposed`]).
    pub admin_insecure: bool,
    /// GET /stats, /metrics and /rep answer without the token (changes still need it).
    pub admin_read_only_open: bool,
    /// Used when `RUST_LOG` is not set.
    pub log_level: LevelFilter,
    /// The process log's format (stderr).
    pub log_format: LogFormat,
    /// One info line per ended session.
    pub log_sessions: bool,
    /// `None`: as many as the open-file limit allows.
    pub max_connections: Option<usize>,
    pub buffer_size: usize,
    /// Capacity asked for each splice pipe (TCP mode).
    pub pipe_size: usize,
    pub backlog: i32,
    pub drain_timeout: Duration,
    /// `None`: the usage table is logged only at shutdown.
    pub stats_interval: Option<Duration>,
    /// Seed of hashes and random policies in every frontend.
    pub seed: u64,
    /// Binary upgrade: where a new process asks for the listeners.
    pub upgrade_socket: Option<PathBuf>,
    /// Reactor threads serving every frontend (1: everything on one thread).
    pub workers: super::values::Workers,
    /// How several reactors take new clients.
    pub accept: super::values::Accept,
}

/// One listener: where it binds, what it speaks, how it picks a backend from its pool.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontendConfig {
    pub name: String,
    pub listen: SocketAddr,
    pub mode: Mode,
    /// Index into [`ServerConfig::pools`].
    pub pool: usize,
    pub policy: PolicyKind,
    /// Policies that decide beside `policy` on every pick, counted but never sent.
    pub shadow_policies: Vec<PolicyKind>,
    /// Policy tunables; `seed` is the global seed.
    pub params: PolicyParams,
    pub hash_key: Option<HashKey>,
    pub probe_path: String,
    pub probe_interval: Duration,
    pub connect_timeout: Duration,
    /// `None`: sessions may stay idle for ever.
    pub idle_timeout: Option<Duration>,
    pub request_timeout: Duration,
    pub backend_timeout: Duration,
    /// `None`: keep-alive clients may wait for ever between requests.
    pub keepalive_timeout: Option<Duration>,
    pub backend_conn: BackendConnMode,
    pub pool_size: usize,
    pub pool_idle_timeout: Duration,
    pub max_header_size: usize,
    /// Limits per client address (off by default).
    pub per_ip: PerIpLimits,
    /// PROXY protocol headers read from upstreams (off by default).
    pub accept_proxy: AcceptProxy,
    /// TLS termination (HTTP and redirect modes): certificates, read when
    /// the configuration is.
    pub tls: Option<TlsSettings>,
    /// TCP mode: pools chosen by the TLS ClientHello's server name; `pool`
    /// takes the rest (no name, another name, not TLS).
    pub sni_routes: Vec<SniRoute>,
    pub access_log: Option<PathBuf>,
    pub access_log_format: AccessLogFormat,
    /// The access log carries the policy's explanation of every pick.
    pub access_log_explain: bool,
    pub redirect_code: u16,
    /// HTTP: how many retries the recent requests allow.
    pub retry_budget: RetryBudgetConfig,
    /// TCP mode: splice(2) where possible, or always buffers.
    pub splice: crate::splice::SpliceMode,
}

/// A set of backends with its health checks and failure policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub name: String,
    pub servers: Vec<BackendSpec>,
    /// Active checks; `None`: only failed connects from traffic count.
    pub health_check: Option<CheckKind>,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub fail_policy: FailPolicy,
    /// Ramp of a backend that joins or comes back up; `None`: off.
    pub slow_start: Option<Duration>,
    /// Outlier ejection (HTTP mode).
    pub eject: EjectPolicy,
    pub spawn_cmd: Option<String>,
    pub replicas: Option<usize>,
    /// Servers named by DNS and looked up again every `resolve_interval`
    /// (`servers` holds the addresses given as such).
    pub names: Vec<NameSpec>,
    /// `None`: names are resolved once, when the file is read.
    pub resolve_interval: Option<Duration>,
    /// DNS servers to ask; empty: the system's.
    pub resolvers: Vec<SocketAddr>,
    /// PROXY protocol header sent to every backend connection (off by default).
    pub send_proxy: Option<ProxyVersion>,
    /// TLS towards the backends (HTTP mode; off by default).
    pub backend_tls: Option<BackendTls>,
}

/// One SNI route of a TCP frontend: server names (`a.test`, `*.a.test`) and the pool they go to.
#[derive(Debug, Clone, PartialEq)]
pub struct SniRoute {
    pub names: Vec<String>,
    /// Index into [`ServerConfig::pools`].
    pub pool: usize,
}

/// How often names are looked up again when only SRV names ask for it.
pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            admin: None,
            admin_token: None,
            admin_insecure: false,
            admin_read_only_open: false,
            log_level: LevelFilter::Info,
            log_format: LogFormat::Text,
            log_sessions: false,
            max_connections: None,
            buffer_size: 64 * 1024,
            pipe_size: 64 * 1024,
            backlog: 1024,
            drain_timeout: Duration::from_secs(10),
            stats_interval: Some(Duration::from_secs(5)),
            seed: 0,
            upgrade_socket: None,
            workers: super::values::Workers::Count(1),
            accept: super::values::Accept::Exclusive,
        }
    }
}

impl GlobalConfig {
    /// The admin address when anyone beyond this host may use the admin API
    /// without a token (it can add and remove backends and switch the policy).
    /// Configuration checks refuse this unless `admin_insecure` is set; then
    /// `main` logs a warning.
    pub fn admin_exposed(&self) -> Option<SocketAddr> {
        self.admin.filter(|a| self.admin_token.is_none() && !a.ip().to_canonical().is_loopback())
    }
}

/// The reason an exposed admin API without a token is refused; the flag or
/// key names are filled in by the caller.
pub(super) const ADMIN_RISK: &str = "exposes the admin API (add/remove backends, switch policy) beyond this host";

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            name: DEFAULT_NAME.into(),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9000),
            mode: Mode::Tcp,
            pool: 0,
            policy: PolicyKind::RoundRobin,
            shadow_policies: Vec::new(),
            params: PolicyParams::default(),
            hash_key: None,
            probe_path: "/".into(),
            probe_interval: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(2),
            idle_timeout: None,
            request_timeout: Duration::from_secs(30),
            backend_timeout: Duration::from_secs(30),
            keepalive_timeout: Some(Duration::from_secs(75)),
            backend_conn: BackendConnMode::Persistent,
            pool_size: 64,
            pool_idle_timeout: Duration::from_secs(60),
            max_header_size: 64 * 1024,
            per_ip: PerIpLimits::default(),
            accept_proxy: AcceptProxy::default(),
            tls: None,
            sni_routes: Vec::new(),
            access_log: None,
            access_log_format: AccessLogFormat::Csv,
            access_log_explain: false,
            redirect_code: 301,
            retry_budget: RetryBudgetConfig::default(),
            splice: crate::splice::SpliceMode::Auto,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: DEFAULT_NAME.into(),
            servers: Vec::new(),
            health_check: None,
            health_interval: Duration::from_secs(2),
            health_timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            fail_policy: FailPolicy::default(),
            slow_start: None,
            eject: EjectPolicy::default(),
            spawn_cmd: None,
            replicas: None,
            names: Vec::new(),
            resolve_interval: None,
            resolvers: Vec::new(),
            send_proxy: None,
            backend_tls: None,
        }
    }
}

impl PoolConfig {
    /// The active checks to run, if any. Spawned backends join once a check
    /// passes, so a spawn command turns on tcp checks when none is configured.
    pub fn health(&self) -> Option<HealthConfig> {
        let kind = self.health_check.clone().or_else(|| self.spawn_cmd.as_ref().map(|_| CheckKind::Tcp))?;
        Some(HealthConfig {
            kind,
            interval: self.health_interval,
            timeout: self.health_timeout,
            rise: self.rise,
            fall: self.fall,
        })
    }
}

/// The environment variable the admin token is read from when no flag gives it.
pub const TOKEN_ENV: &str = "LBPROXY_ADMIN_TOKEN";

/// The admin token the flags give: `--admin-token`, the file named by
/// `--admin-token-file`, or `LBPROXY_ADMIN_TOKEN` (clap refuses both flags).
fn flag_token(a: &Args) -> Result<Option<String>, ConfigError> {
    if let Some(token) = &a.admin_token {
        return Ok(Some(token.clone()));
    }
    let (text, source) = match &a.admin_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::flags(format!("--admin-token-file: cannot read {}: {e}", path.display())))?;
            (text, format!("--admin-token-file {}", path.display()))
        }
        None => match std::env::var(TOKEN_ENV) {
            Ok(text) => (text, TOKEN_ENV.to_string()),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(e) => return Err(ConfigError::flags(format!("{TOKEN_ENV}: {e}"))),
        },
    };
    match text.trim() {
        "" => Err(ConfigError::flags(format!("{source}: the admin token is empty"))),
        token => Ok(Some(token.to_string())),
    }
}

/// `--tls-cert`/`--tls-key` pairs, loaded; `None` when none is given.
fn flag_tls(a: &Args) -> Result<Option<TlsSettings>, ConfigError> {
    if a.tls_cert.len() != a.tls_key.len() {
        return Err(ConfigError::flags(format!(
            "{} --tls-cert and {} --tls-key: give them in pairs, a key after each certificate",
            a.tls_cert.len(),
            a.tls_key.len()
        )));
    }
    if a.tls_cert.is_empty() {
        return Ok(None);
    }
    let files: Vec<TlsFiles> =
        a.tls_cert.iter().zip(&a.tls_key).map(|(c, k)| TlsFiles { cert: c.clone(), key: k.clone() }).collect();
    crate::tls::load(&files).map(Some).map_err(ConfigError::flags)
}

impl ServerConfig {
    /// The configuration the command line asks for: the file named by
    /// `--config`, or else the flags as one frontend and one pool, both named
    /// "default". (clap refuses `--config` together with other flags.)
    ///
    /// With the flags, the admin token comes from `--admin-token`,
    /// `--admin-token-file` or else the `LBPROXY_ADMIN_TOKEN` environment
    /// variable; an `--admin` beyond loopback without one is refused unless
    /// `--admin-insecure` says so.
    pub fn from_args(args: Args) -> Result<ServerConfig, ConfigError> {
        if let Some(path) = &args.config {
            return ServerConfig::load(path);
        }
        let token = flag_token(&args)?;
        let tls = flag_tls(&args)?;
        let backend_tls = match args.backend_tls.0 {
            None => None,
            Some(mode) => Some(
                crate::tls::backend::load(mode, args.backend_ca.clone(), args.backend_sni.clone())
                    .map_err(ConfigError::flags)?,
            ),
        };
        let mut s = ServerConfig::from_flags(args);
        s.global.admin_token = token;
        if tls.is_some() && s.frontends[0].mode == Mode::Tcp {
            return Err(ConfigError::flags("--tls-cert needs --mode http or redirect (TLS is terminated for HTTP)"));
        }
        s.frontends[0].tls = tls;
        if backend_tls.is_some() && s.frontends[0].mode == Mode::Tcp {
            return Err(ConfigError::flags("--backend-tls needs --mode http (TCP mode passes TLS through untouched)"));
        }
        s.pools[0].backend_tls = backend_tls;
        if let (Some(admin), false) = (s.global.admin_exposed(), s.global.admin_insecure) {
            return Err(ConfigError::flags(format!(
                "--admin {admin} {ADMIN_RISK} without --admin-token; give a token (--admin-token-file FILE or \
                 {TOKEN_ENV}) or say --admin-insecure"
            )));
        }
        Ok(s)
    }

    /// Read and validate a config file (see `file.rs` for its format).
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole_file(path, format!("cannot read the config file: {e}")))?;
        ServerConfig::from_toml(&text, path)
    }

    /// One frontend and one pool from the flags.
    pub(super) fn from_flags(a: Args) -> ServerConfig {
        let global = GlobalConfig {
            admin: a.admin,
            admin_token: a.admin_token,
            admin_insecure: a.admin_insecure,
            admin_read_only_open: a.admin_read_only_open,
            log_level: a.log_level,
            log_format: a.log_format,
            log_sessions: a.log_sessions,
            max_connections: a.max_connections,
            buffer_size: a.buffer_size,
            pipe_size: a.pipe_size,
            backlog: a.backlog,
            drain_timeout: a.drain_timeout,
            stats_interval: off_if_zero(a.stats_interval),
            seed: a.seed,
            upgrade_socket: a.upgrade_socket,
            workers: a.workers,
            accept: a.accept,
        };
        let frontend = FrontendConfig {
            name: DEFAULT_NAME.into(),
            listen: SocketAddr::new(a.bind, a.port),
            mode: a.mode,
            pool: 0,
            policy: a.policy,
            shadow_policies: a.shadow_policy,
            params: PolicyParams {
                seed: a.seed,
                vnodes: a.vnodes,
                ring_slots: a.ring_slots,
                maglev_size: a.maglev_size,
                sma_window: a.sma_window,
                ewma_alpha: a.ewma_alpha,
                ewma_decay: a.ewma_decay,
                balance_factor: (a.hash_balance_factor > 0.0).then_some(a.hash_balance_factor),
            },
            hash_key: a.hash_key,
            probe_path: a.probe_path,
            probe_interval: a.probe_interval,
            connect_timeout: a.connect_timeout,
            idle_timeout: off_if_zero(a.idle_timeout),
            request_timeout: a.request_timeout,
            backend_timeout: a.backend_timeout,
            keepalive_timeout: off_if_zero(a.keepalive_timeout),
            backend_conn: a.backend_conn,
            pool_size: a.pool_size,
            pool_idle_timeout: a.pool_idle_timeout,
            max_header_size: a.max_header_size,
            per_ip: PerIpLimits { max_conns: none_if_zero(a.max_conns_per_ip), rate: none_if_zero(a.rate_per_ip) },
            accept_proxy: AcceptProxy { mode: a.accept_proxy.0, trusted: a.trusted_proxies },
            tls: None,
            sni_routes: Vec::new(),
            access_log: a.access_log,
            access_log_format: a.access_log_format,
            access_log_explain: a.access_log_explain,
            redirect_code: a.redirect_code,
            retry_budget: RetryBudgetConfig { percent: a.retry_budget, min_per_sec: a.retry_min_per_sec },
            splice: a.splice,
        };
        let pool = PoolConfig {
            name: DEFAULT_NAME.into(),
            servers: a.backends.into_iter().flat_map(|l| l.0).collect(),
            health_check: a.health_check,
            health_interval: a.health_interval,
            health_timeout: a.health_timeout,
            rise: a.rise,
            fall: a.fall,
            fail_policy: FailPolicy { max_fails: a.max_fails, fail_timeout: a.fail_timeout },
            slow_start: off_if_zero(a.slow_start),
            eject: EjectPolicy { after: a.eject_after, base: a.eject_base, max_percent: a.eject_max_percent },
            spawn_cmd: a.spawn_cmd,
            replicas: a.replicas,
            send_proxy: a.send_proxy.0,
            ..PoolConfig::default()
        };
        ServerConfig { global, frontends: vec![frontend], pools: vec![pool] }
    }

    /// The pool frontend `frontend` sends its traffic to.
    pub fn pool_of(&self, frontend: usize) -> &PoolConfig {
        &self.pools[self.frontends[frontend].pool]
    }

    /// Today's single-frontend [`Config`] for frontend `frontend` (an index
    /// into `frontends`) with its pool's servers, so the existing reactor can
    /// run any one frontend. Panics if the index is out of range.
    pub fn to_config(&self, frontend: usize) -> Config {
        self.to_config_with_pool(frontend, self.frontends[frontend].pool)
    }

    /// The name of the hidden frontend that serves SNI route `route` of `frontend`.
    pub fn sni_frontend_name(&self, frontend: usize, route: usize) -> String {
        format!("{}/sni{route}", self.frontends[frontend].name)
    }

    /// Frontend `frontend`'s settings with pool `pool`'s servers (its own
    /// pool, or one of its SNI routes' pools).
    pub fn to_config_with_pool(&self, frontend: usize, pool: usize) -> Config {
        let f = &self.frontends[frontend];
        let p = &self.pools[pool];
        let g = &self.global;
        Config {
            listen: f.listen,
            backends: p.servers.clone(),
            policy: f.policy,
            shadow_policies: f.shadow_policies.clone(),
            connect_timeout: f.connect_timeout,
            idle_timeout: f.idle_timeout,
            // 0: what the open-file limit allows (worked out at bind).
            max_connections: g.max_connections.unwrap_or(0),
            log_sessions: g.log_sessions,
            buffer_size: g.buffer_size,
            pipe_size: g.pipe_size,
            stats_interval: g.stats_interval,
            drain_timeout: g.drain_timeout,
            backlog: g.backlog,
            seed: g.seed,
            workers: g.workers,
            accept: g.accept,
            rotation: Default::default(),
            per_ip_entries: Default::default(),
            mode: f.mode,
            backend_conn: f.backend_conn,
            pool_size: f.pool_size,
            pool_idle_timeout: f.pool_idle_timeout,
            max_header_size: f.max_header_size,
            per_ip: f.per_ip,
            accept_proxy: f.accept_proxy.clone(),
            tls: f.tls.clone(),
            send_proxy: p.send_proxy,
            backend_tls: p.backend_tls.clone(),
            backend_timeout: f.backend_timeout,
            request_timeout: f.request_timeout,
            keepalive_timeout: f.keepalive_timeout,
            access_log: f.access_log.clone(),
            access_log_format: f.access_log_format,
            access_log_explain: f.access_log_explain,
            redirect_code: f.redirect_code,
            retry_budget: f.retry_budget,
            retry_window: Default::default(),
            slow_start: p.slow_start,
            eject: p.eject,
            splice: f.splice,
            sni_routes: f
                .sni_routes
                .iter()
                .enumerate()
                .map(|(r, route)| (route.names.clone(), self.sni_frontend_name(frontend, r)))
                .collect(),
            routed: false,
            fail_policy: p.fail_policy,
            health: p.health(),
            admin: g.admin,
            admin_token: g.admin_token.clone(),
            admin_read_only_open: g.admin_read_only_open,
            upgrade_socket: g.upgrade_socket.clone(),
            spawn_cmd: p.spawn_cmd.clone(),
            replicas: p.replicas,
            names: p.names.clone(),
            resolve_interval: p.resolve_interval,
            resolvers: p.resolvers.clone(),
            params: PolicyParams { seed: g.seed, ..f.params },
            hash_key: f.hash_key.clone(),
            probe_path: f.probe_path.clone(),
            probe_interval: f.probe_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_make_one_frontend_and_one_pool_named_default() {
        let a =
            Args::try_parse_from(["lbproxy", "--backend", "127.0.0.1:1@2", "--mode", "http", "--seed", "7"]).unwrap();
        let s = ServerConfig::from_args(a).unwrap();
        assert_eq!(s.frontends.len(), 1);
        assert_eq!(s.pools.len(), 1);
        assert_eq!(s.frontends[0].name, "default");
        assert_eq!(s.pools[0].name, "default");
        assert_eq!(s.pools[0].servers, [BackendSpec { addr: "127.0.0.1:1".parse().unwrap(), weight: 2 }]);
        let c = s.to_config(0);
        assert_eq!(c.mode, Mode::Http);
        assert_eq!((c.seed, c.params.seed), (7, 7));
    }

    /// The clap defaults come from the `Default` impls: flags left out give
    /// exactly the defaults a config file gets.
    #[test]
    fn flags_left_out_give_the_default_structs() {
        let a = Args::try_parse_from(["lbproxy", "--backend", "127.0.0.1:1"]).unwrap();
        let s = ServerConfig::from_args(a).unwrap();
        assert_eq!(s.global, GlobalConfig::default());
        assert_eq!(s.frontends[0], FrontendConfig::default());
        let servers = s.pools[0].servers.clone();
        assert_eq!(s.pools[0], PoolConfig { servers, ..PoolConfig::default() });
    }

    #[test]
    fn an_exposed_admin_flag_needs_a_token_or_admin_insecure() {
        let parse = |extra: &[&str]| {
            let args = [&["lbproxy", "--backend", "127.0.0.1:1"], extra].concat();
            ServerConfig::from_args(Args::try_parse_from(args).unwrap())
        };
        let e = parse(&["--admin", "0.0.0.0:9100"]).unwrap_err().to_string();
        assert!(e.starts_with("--admin 0.0.0.0:9100 exposes the admin API") && e.contains("--admin-insecure"), "{e}");
        let s = parse(&["--admin", "0.0.0.0:9100", "--admin-insecure"]).unwrap();
        assert_eq!(s.global.admin_exposed(), Some("0.0.0.0:9100".parse().unwrap()));
        assert!(parse(&["--admin", "0.0.0.0:9100", "--admin-token", "t"]).is_ok());
        assert!(parse(&["--admin", "9100"]).is_ok());
    }

    #[test]
    fn spawn_cmd_turns_on_tcp_checks() {
        let pool = PoolConfig { spawn_cmd: Some("x {port}".into()), ..PoolConfig::default() };
        assert_eq!(pool.health().map(|h| h.kind), Some(CheckKind::Tcp));
        assert!(PoolConfig::default().health().is_none());
    }
}
