//! The config file (`--config FILE`): TOML read through serde.
//!
//! ```toml
//! [global]                       # optional, and so is each key in it
//! admin = "127.0.0.1:9100"
//! admin_token_file = "token"     # or admin_token = "..."
//! # admin_insecure = true        # needed for an admin beyond loopback without a token
//! # admin_read_only_open = true  # GET /stats, /metrics, /rep without the token
//! log_level = "info"             # used when RUST_LOG is not set
//! log_format = "text"            # or "json"
//! # max_connections = 10000       # default: what the open-file limit allows
//! # workers = 2                   # reactor threads, or "auto" (one per core); default 1
//! # accept = "exclusive"          # or "reuseport" (a listening socket per worker)
//!
//! [[frontend]]                   # one or more
//! name = "web"                   # required, unique
//! bind = "0.0.0.0:8080"          # required, IP:PORT, no two frontends on one
//! pool = "app"                   # required, the name of a [[pool]]
//! mode = "http"
//! policy = "least_conn"
//!
//! [[pool]]                       # one or more
//! name = "app"                   # required, unique
//! servers = ["10.0.0.1:8080", { address = "10.0.0.2:8080", weight = 3 }]
//! health_check = "http:/heartbeat"
//! ```
//!
//! Every other key is a command-line flag's name with `_` for `-`, in the
//! section it belongs to: limits, drain, statistics and the seed in
//! `[global]`; mode, policy and its tunables, timeouts and HTTP settings in
//! `[[frontend]]`; health checks, the failure policy and spawning in `[[pool]]`.
//! Values are written as for the flags (`"2s"`, `"64KiB"`, `"least_conn"`);
//! numbers may be bare. A key left out gets the flag's default. Relative
//! paths (`admin_token_file`, `access_log`) are relative to the file's folder.
//!
//! Values go through the flags' parsers inside serde, so the `toml` crate
//! places their errors; checks across entries (names, binds, pools) run after.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};
use toml::de::DeTable;

use super::error::{Seg, Source, key_path};
use super::server::{ADMIN_RISK, DEFAULT_RESOLVE_INTERVAL, none_if_zero, off_if_zero};
use super::values::*;
use super::{BackendSpec, ConfigError, FrontendConfig, GlobalConfig, Mode, PoolConfig, ServerConfig, SniRoute};
use crate::backend::FailPolicy;
use crate::discovery::NameSpec;
use crate::health::CheckKind;
use crate::http::head::HashKey;
use crate::http::retry_budget::RetryBudgetConfig;
use crate::http::{AccessLogFormat, BackendConnMode};
use crate::logfmt::LogFormat;
use crate::outlier::EjectPolicy;
use crate::per_ip::PerIpLimits;
use crate::policy::{PolicyKind, PolicyParams};
use crate::proxy_protocol::{AcceptMode, AcceptProxy, Cidr, Version as ProxyVersion};
use crate::tls::{BackendTlsMode, TlsFiles};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    global: RawGlobal,
    #[serde(default)]
    frontend: Vec<RawFrontend>,
    #[serde(default)]
    pool: Vec<RawPool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawGlobal {
    #[serde(deserialize_with = "via::admin")]
    admin: Option<SocketAddr>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    admin_insecure: Option<bool>,
    admin_read_only_open: Option<bool>,
    upgrade_socket: Option<PathBuf>,
    #[serde(deserialize_with = "via::log_level")]
    log_level: Option<LevelFilter>,
    #[serde(deserialize_with = "via::log_format")]
    log_format: Option<LogFormat>,
    log_sessions: Option<bool>,
    #[serde(deserialize_with = "via::max_connections")]
    max_connections: Option<usize>,
    #[serde(deserialize_with = "via::size")]
    buffer_size: Option<usize>,
    #[serde(deserialize_with = "via::size")]
    pipe_size: Option<usize>,
    #[serde(deserialize_with = "via::backlog")]
    backlog: Option<i32>,
    #[serde(deserialize_with = "via::duration")]
    drain_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::duration")]
    stats_interval: Option<Duration>,
    #[serde(deserialize_with = "via::seed")]
    seed: Option<u64>,
    #[serde(deserialize_with = "via::workers")]
    workers: Option<Workers>,
    #[serde(deserialize_with = "via::accept")]
    accept: Option<Accept>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawFrontend {
    name: Option<String>,
    #[serde(deserialize_with = "via::listen")]
    bind: Option<SocketAddr>,
    pool: Option<String>,
    #[serde(deserialize_with = "via::mode")]
    mode: Option<Mode>,
    #[serde(deserialize_with = "via::policy")]
    policy: Option<PolicyKind>,
    shadow_policies: Option<Vec<String>>,
    #[serde(deserialize_with = "via::vnodes")]
    vnodes: Option<u32>,
    #[serde(deserialize_with = "via::ring_slots")]
    ring_slots: Option<u32>,
    #[serde(deserialize_with = "via::maglev_size")]
    maglev_size: Option<u32>,
    #[serde(deserialize_with = "via::sma_window")]
    sma_window: Option<usize>,
    #[serde(deserialize_with = "via::alpha")]
    ewma_alpha: Option<f64>,
    #[serde(deserialize_with = "via::duration")]
    ewma_decay: Option<Duration>,
    #[serde(deserialize_with = "via::balance_factor")]
    hash_balance_factor: Option<f64>,
    #[serde(deserialize_with = "via::hash_key")]
    hash_key: Option<HashKey>,
    probe_path: Option<String>,
    #[serde(deserialize_with = "via::duration")]
    probe_interval: Option<Duration>,
    #[serde(deserialize_with = "via::duration")]
    connect_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::duration")]
    idle_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::duration")]
    request_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::duration")]
    backend_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::duration")]
    keepalive_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::backend_conn")]
    backend_conn: Option<BackendConnMode>,
    #[serde(deserialize_with = "via::count")]
    pool_size: Option<usize>,
    #[serde(deserialize_with = "via::duration")]
    pool_idle_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::size")]
    max_header_size: Option<usize>,
    #[serde(deserialize_with = "via::count")]
    max_conns_per_ip: Option<usize>,
    #[serde(deserialize_with = "via::count")]
    rate_per_ip: Option<usize>,
    #[serde(deserialize_with = "via::accept_proxy")]
    accept_proxy: Option<Option<AcceptMode>>,
    trusted_proxies: Option<Vec<String>>,
    tls: Option<Vec<RawTls>>,
    sni_routes: Option<Vec<RawSniRoute>>,
    access_log: Option<PathBuf>,
    #[serde(deserialize_with = "via::access_log_format")]
    access_log_format: Option<AccessLogFormat>,
    access_log_explain: Option<bool>,
    #[serde(deserialize_with = "via::redirect_code")]
    redirect_code: Option<u16>,
    #[serde(deserialize_with = "via::percent")]
    retry_budget: Option<u32>,
    #[serde(deserialize_with = "via::max_fails")]
    retry_min_per_sec: Option<u32>,
    #[serde(deserialize_with = "via::splice")]
    splice: Option<crate::splice::SpliceMode>,
}

/// One `sni_routes` entry of a frontend: names and the pool they go to.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSniRoute {
    names: Vec<String>,
    pool: String,
}

/// One `tls` entry of a frontend: a certificate chain and its key (PEM).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPool {
    name: Option<String>,
    servers: Option<Vec<Server>>,
    #[serde(deserialize_with = "via::health_check")]
    health_check: Option<CheckKind>,
    #[serde(deserialize_with = "via::duration")]
    health_interval: Option<Duration>,
    #[serde(deserialize_with = "via::duration")]
    health_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::threshold")]
    rise: Option<u32>,
    #[serde(deserialize_with = "via::threshold")]
    fall: Option<u32>,
    #[serde(deserialize_with = "via::max_fails")]
    max_fails: Option<u32>,
    #[serde(deserialize_with = "via::duration")]
    fail_timeout: Option<Duration>,
    #[serde(deserialize_with = "via::duration")]
    slow_start: Option<Duration>,
    #[serde(deserialize_with = "via::max_fails")]
    eject_after: Option<u32>,
    #[serde(deserialize_with = "via::duration")]
    eject_base: Option<Duration>,
    #[serde(deserialize_with = "via::percent")]
    eject_max_percent: Option<u32>,
    spawn_cmd: Option<String>,
    #[serde(deserialize_with = "via::count")]
    replicas: Option<usize>,
    #[serde(deserialize_with = "via::duration")]
    resolve_interval: Option<Duration>,
    resolvers: Option<Vec<String>>,
    #[serde(deserialize_with = "via::send_proxy")]
    send_proxy: Option<Option<ProxyVersion>>,
    #[serde(deserialize_with = "via::backend_tls")]
    backend_tls: Option<Option<BackendTlsMode>>,
    backend_ca: Option<PathBuf>,
    backend_sni: Option<String>,
}

/// One entry of `servers`: what `--backend` accepts (`"HOST:PORT"`,
/// `"HOST:PORT@3"`), an SRV name, or `{ address = "HOST:PORT", weight = 3 }`.
/// Host names are resolved later (once, or by the discovery thread).
struct Server(Vec<ServerEntry>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerTable {
    #[serde(default)]
    address: Option<String>,
    #[serde(default, deserialize_with = "via::weight")]
    weight: Option<u32>,
}

impl<'de> Deserialize<'de> for Server {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Server, D::Error> {
        struct ServerVisitor;
        impl<'de> Visitor<'de> for ServerVisitor {
            type Value = Server;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"HOST:PORT\" or { address = \"HOST:PORT\", weight = N }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Server, E> {
                parse_server_entries(s).map(Server).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Server, A::Error> {
                let t = ServerTable::deserialize(MapAccessDeserializer::new(map))?;
                let addr = t.address.ok_or_else(|| de::Error::missing_field("address"))?;
                let entry = parse_server_entry(&addr, t.weight.unwrap_or(1)).map_err(de::Error::custom)?;
                Ok(Server(vec![entry]))
            }
        }
        d.deserialize_any(ServerVisitor)
    }
}

/// Deserializers that hand a value's text to the flag's parser, so a file
/// accepts exactly what the command line does and the `toml` crate places
/// the parser's error on the value.
#[path = "file_via.rs"]
mod via;

impl ServerConfig {
    /// Parse and validate a config file's text; `file` names it in errors and
    /// is the folder relative paths start from.
    pub fn from_toml(text: &str, file: &Path) -> Result<ServerConfig, ConfigError> {
        let doc = match DeTable::parse(text) {
            Ok(doc) => doc,
            Err(e) => return Err(Source { file, text, doc: &DeTable::new() }.toml_error(&e)),
        };
        let src = Source { file, text, doc: doc.get_ref() };
        let raw = RawFile::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| with_section_hint(src.toml_error(&e)))?;
        // Relative paths in the file start from its folder, made absolute so
        // that `--check` prints paths that mean the same from anywhere.
        let folder = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
        Checker { src, dir: &dir }.build(raw)
    }
}

/// The checks across keys and entries, and the defaults for absent keys.
struct Checker<'a> {
    src: Source<'a>,
    dir: &'a Path,
}

impl Checker<'_> {
    fn build(&self, raw: RawFile) -> Result<ServerConfig, ConfigError> {
        if raw.frontend.is_empty() {
            return Err(ConfigError::whole_file(self.src.file, "no [[frontend]]: name at least one listener"));
        }
        if raw.pool.is_empty() {
            return Err(ConfigError::whole_file(self.src.file, "no [[pool]]: name at least one set of servers"));
        }
        let global = self.global(raw.global)?;
        let mut pool_names = HashMap::new();
        let mut pools = Vec::new();
        for (i, p) in raw.pool.into_iter().enumerate() {
            let name = self.unique_name("pool", i, p.name.clone(), &mut pool_names)?;
            pools.push(self.pool(i, name, p)?);
        }
        let mut names = HashMap::new();
        let mut frontends: Vec<FrontendConfig> = Vec::new();
        for (i, f) in raw.frontend.into_iter().enumerate() {
            let name = self.unique_name("frontend", i, f.name.clone(), &mut names)?;
            let at = |key: &str| key_path("frontend", i, key);
            let listen = f.bind.ok_or_else(|| self.src.error(at("bind"), "missing: every [[frontend]] needs bind"))?;
            if let Some((j, other)) = frontends.iter().enumerate().find(|(_, o)| overlaps(o.listen, listen)) {
                let line = self.src.line_of(&key_path("frontend", j, "bind"));
                let msg =
                    format!("{listen} is already taken by frontend \"{}\" ({}, line {line})", other.name, other.listen);
                return Err(self.src.error(at("bind"), msg));
            }
            let pool_name = f.pool.as_deref().ok_or_else(|| {
                self.src.error(at("pool"), "missing: every [[frontend]] names the [[pool]] it sends traffic to")
            })?;
            let pool = *pool_names.get(pool_name).ok_or_else(|| {
                let known: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                self.src.error(at("pool"), format!("no pool named \"{pool_name}\" (pools: {})", known.join(", ")))
            })?;
            let trusted: Vec<Cidr> = f
                .trusted_proxies
                .iter()
                .flatten()
                .map(|c| c.parse())
                .collect::<Result<_, String>>()
                .map_err(|e| self.src.error(at("trusted_proxies"), e))?;
            let shadows: Vec<PolicyKind> = f
                .shadow_policies
                .iter()
                .flatten()
                .map(|p| parse_policy(p))
                .collect::<Result<_, String>>()
                .map_err(|e| self.src.error(at("shadow_policies"), e))?;
            let tls = match &f.tls {
                None => None,
                Some(entries) => {
                    if f.mode.unwrap_or(FrontendConfig::default().mode) == Mode::Tcp {
                        return Err(self.src.error(at("tls"), "TLS is terminated for mode = \"http\" or \"redirect\""));
                    }
                    let files: Vec<TlsFiles> = entries
                        .iter()
                        .map(|t| TlsFiles { cert: self.dir.join(&t.cert), key: self.dir.join(&t.key) })
                        .collect();
                    Some(crate::tls::load(&files).map_err(|e| self.src.error(at("tls"), e))?)
                }
            };
            let mut sni_routes = Vec::new();
            for r in f.sni_routes.iter().flatten() {
                if f.mode.unwrap_or(FrontendConfig::default().mode) != Mode::Tcp {
                    return Err(self
                        .src
                        .error(at("sni_routes"), "SNI routing is for mode = \"tcp\" (TLS passed through)"));
                }
                let pool = *pool_names.get(r.pool.as_str()).ok_or_else(|| {
                    self.src.error(at("sni_routes"), format!("no pool named \"{}\" for names {:?}", r.pool, r.names))
                })?;
                if let Some(bad) = r.names.iter().find(|n| n.trim_start_matches("*.").is_empty() || n.contains(' ')) {
                    return Err(self.src.error(at("sni_routes"), format!("invalid server name \"{bad}\"")));
                }
                if r.names.is_empty() {
                    return Err(self.src.error(at("sni_routes"), "a route needs at least one name"));
                }
                sni_routes.push(SniRoute { names: r.names.iter().map(|n| n.to_ascii_lowercase()).collect(), pool });
            }
            let mut front = self.frontend(name, listen, pool, &global, trusted, f);
            front.tls = tls;
            front.shadow_policies = shadows;
            front.sni_routes = sni_routes;
            frontends.push(front);
        }
        Ok(ServerConfig { global, frontends, pools })
    }

    fn global(&self, g: RawGlobal) -> Result<GlobalConfig, ConfigError> {
        let d = GlobalConfig::default();
        let at = |key: &str| vec![Seg::Key("global".into()), Seg::Key(key.into())];
        let admin_token = match (g.admin_token, g.admin_token_file) {
            (Some(_), Some(_)) => {
                return Err(self.src.error(at("admin_token_file"), "give admin_token or admin_token_file, not both"));
            }
            (None, Some(file)) => {
                let path = self.dir.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    self.src.error(at("admin_token_file"), format!("cannot read {}: {e}", path.display()))
                })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(self.src.error(at("admin_token_file"), format!("{} is empty", path.display())));
                }
                Some(token.to_string())
            }
            (token, None) => token,
        };
        let global = GlobalConfig {
            admin: g.admin.or(d.admin),
            admin_token,
            admin_insecure: g.admin_insecure.unwrap_or(d.admin_insecure),
            admin_read_only_open: g.admin_read_only_open.unwrap_or(d.admin_read_only_open),
            log_level: g.log_level.unwrap_or(d.log_level),
            log_format: g.log_format.unwrap_or(d.log_format),
            log_sessions: g.log_sessions.unwrap_or(d.log_sessions),
            max_connections: g.max_connections.or(d.max_connections),
            buffer_size: g.buffer_size.unwrap_or(d.buffer_size),
            pipe_size: g.pipe_size.unwrap_or(d.pipe_size),
            backlog: g.backlog.unwrap_or(d.backlog),
            drain_timeout: g.drain_timeout.unwrap_or(d.drain_timeout),
            stats_interval: g.stats_interval.map_or(d.stats_interval, off_if_zero),
            seed: g.seed.unwrap_or(d.seed),
            workers: g.workers.unwrap_or(d.workers),
            accept: g.accept.unwrap_or(d.accept),
            upgrade_socket: g.upgrade_socket.map(|p| self.dir.join(p)).or(d.upgrade_socket),
        };
        if let (Some(admin), false) = (global.admin_exposed(), global.admin_insecure) {
            let msg = format!(
                "{admin} {ADMIN_RISK} without a token; set admin_token_file (or admin_token), or say admin_insecure = true"
            );
            return Err(self.src.error(at("admin"), msg));
        }
        Ok(global)
    }

    fn pool(&self, i: usize, name: String, p: RawPool) -> Result<PoolConfig, ConfigError> {
        let d = PoolConfig::default();
        let at = |key: &str| key_path("pool", i, key);
        if p.replicas.is_some() && p.spawn_cmd.is_none() {
            return Err(self.src.error(at("replicas"), "replicas needs spawn_cmd (the command that starts one)"));
        }
        let entries: Vec<(usize, ServerEntry)> = p
            .servers
            .into_iter()
            .flatten()
            .enumerate()
            .flat_map(|(i, s)| s.0.into_iter().map(move |e| (i, e)))
            .collect();
        let has_srv = entries.iter().any(|(_, e)| matches!(e, ServerEntry::Name(NameSpec::Srv { .. })));
        // Names are looked up again and again when asked to (or for SRV,
        // whose answers are meant to change); else once, here, as before.
        let resolve_interval = match p.resolve_interval {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None if has_srv => Some(DEFAULT_RESOLVE_INTERVAL),
            None => None,
        };
        if has_srv && p.resolve_interval.is_some_and(|d| d.is_zero()) {
            return Err(self.src.error(at("resolve_interval"), "SRV names are resolved periodically: set it above 0"));
        }
        let (mut servers, mut names) = (Vec::new(), Vec::new());
        for (i, e) in entries {
            match e {
                ServerEntry::Addr(b) => servers.push(b),
                ServerEntry::Name(n) if resolve_interval.is_some() => names.push(n),
                ServerEntry::Name(NameSpec::Host { host, port, weight }) => {
                    let addr = parse_backend(&format!("{host}:{port}"))
                        .map_err(|e| self.src.error(at(&format!("servers[{i}]")), e))?;
                    servers.push(BackendSpec { addr, weight });
                }
                // SRV names always have an interval (above).
                ServerEntry::Name(n @ NameSpec::Srv { .. }) => names.push(n),
            }
        }
        let backend_tls = match p.backend_tls.flatten() {
            None => None,
            Some(mode) => {
                let ca = p.backend_ca.map(|c| self.dir.join(c));
                Some(
                    crate::tls::backend::load(mode, ca, p.backend_sni)
                        .map_err(|e| self.src.error(at("backend_tls"), e))?,
                )
            }
        };
        let resolvers = p
            .resolvers
            .unwrap_or_default()
            .iter()
            .map(|r| parse_resolver(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.src.error(at("resolvers"), e))?;
        if servers.is_empty() && names.is_empty() && p.replicas.unwrap_or(0) == 0 {
            return Err(self
                .src
                .error(at("servers"), "no servers: list at least one \"HOST:PORT\" (or spawn replicas)"));
        }
        Ok(PoolConfig {
            name,
            servers,
            health_check: p.health_check.or(d.health_check),
            health_interval: p.health_interval.unwrap_or(d.health_interval),
            health_timeout: p.health_timeout.unwrap_or(d.health_timeout),
            rise: p.rise.unwrap_or(d.rise),
            fall: p.fall.unwrap_or(d.fall),
            fail_policy: FailPolicy {
                max_fails: p.max_fails.unwrap_or(d.fail_policy.max_fails),
                fail_timeout: p.fail_timeout.unwrap_or(d.fail_policy.fail_timeout),
            },
            slow_start: p.slow_start.map_or(d.slow_start, off_if_zero),
            eject: EjectPolicy {
                after: p.eject_after.unwrap_or(d.eject.after),
                base: p.eject_base.unwrap_or(d.eject.base),
                max_percent: p.eject_max_percent.unwrap_or(d.eject.max_percent),
            },
            spawn_cmd: p.spawn_cmd.or(d.spawn_cmd),
            replicas: p.replicas.or(d.replicas),
            names,
            resolve_interval,
            resolvers,
            send_proxy: p.send_proxy.unwrap_or(d.send_proxy),
            backend_tls,
        })
    }

    fn frontend(
        &self,
        name: String,
        listen: SocketAddr,
        pool: usize,
        g: &GlobalConfig,
        trusted: Vec<Cidr>,
        f: RawFrontend,
    ) -> FrontendConfig {
        let d = FrontendConfig::default();
        FrontendConfig {
            tls: None,
            sni_routes: Vec::new(),
            accept_proxy: AcceptProxy { mode: f.accept_proxy.unwrap_or(d.accept_proxy.mode), trusted },
            name,
            listen,
            mode: f.mode.unwrap_or(d.mode),
            pool,
            policy: f.policy.unwrap_or(d.policy),
            shadow_policies: Vec::new(),
            params: PolicyParams {
                seed: g.seed,
                vnodes: f.vnodes.unwrap_or(d.params.vnodes),
                ring_slots: f.ring_slots.or(d.params.ring_slots),
                maglev_size: f.maglev_size.unwrap_or(d.params.maglev_size),
                sma_window: f.sma_window.unwrap_or(d.params.sma_window),
                ewma_alpha: f.ewma_alpha.unwrap_or(d.params.ewma_alpha),
                ewma_decay: f.ewma_decay.unwrap_or(d.params.ewma_decay),
                balance_factor: f.hash_balance_factor.map_or(d.params.balance_factor, |b| (b > 0.0).then_some(b)),
            },
            hash_key: f.hash_key.or(d.hash_key),
            probe_path: f.probe_path.unwrap_or(d.probe_path),
            probe_interval: f.probe_interval.unwrap_or(d.probe_interval),
            connect_timeout: f.connect_timeout.unwrap_or(d.connect_timeout),
            idle_timeout: f.idle_timeout.map_or(d.idle_timeout, off_if_zero),
            request_timeout: f.request_timeout.unwrap_or(d.request_timeout),
            backend_timeout: f.backend_timeout.unwrap_or(d.backend_timeout),
            keepalive_timeout: f.keepalive_timeout.map_or(d.keepalive_timeout, off_if_zero),
            backend_conn: f.backend_conn.unwrap_or(d.backend_conn),
            pool_size: f.pool_size.unwrap_or(d.pool_size),
            pool_idle_timeout: f.pool_idle_timeout.unwrap_or(d.pool_idle_timeout),
            max_header_size: f.max_header_size.unwrap_or(d.max_header_size),
            per_ip: PerIpLimits {
                max_conns: f.max_conns_per_ip.map_or(d.per_ip.max_conns, none_if_zero),
                rate: f.rate_per_ip.map_or(d.per_ip.rate, none_if_zero),
            },
            access_log: f.access_log.map(|p| self.dir.join(p)).or(d.access_log),
            access_log_format: f.access_log_format.unwrap_or(d.access_log_format),
            retry_budget: RetryBudgetConfig {
                percent: f.retry_budget.unwrap_or(d.retry_budget.percent),
                min_per_sec: f.retry_min_per_sec.unwrap_or(d.retry_budget.min_per_sec),
            },
            access_log_explain: f.access_log_explain.unwrap_or(d.access_log_explain),
            redirect_code: f.redirect_code.unwrap_or(d.redirect_code),
            splice: f.splice.unwrap_or(d.splice),
        }
    }

    /// The `name` of entry `i` of `section`: present, well formed and not
    /// taken; recorded in `seen` with its index.
    fn unique_name(
        &self,
        section: &str,
        i: usize,
        name: Option<String>,
        seen: &mut HashMap<String, usize>,
    ) -> Result<String, ConfigError> {
        let at = || key_path(section, i, "name");
        let name = name.ok_or_else(|| self.src.error(at(), format!("missing: every [[{section}]] needs a name")))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            return Err(self.src.error(at(), format!("invalid name \"{name}\" (use letters, digits, '_', '-', '.')")));
        }
        if let Some(&first) = seen.get(&name) {
            let line = self.src.line_of(&key_path(section, first, "name"));
            return Err(self.src.error(at(), format!("duplicate {section} name \"{name}\" (first at line {line})")));
        }
        seen.insert(name.clone(), i);
        Ok(name)
    }
}

/// The keys of each section, to say where a misplaced key belongs (a unit
/// test holds these lists equal to what the raw structs accept).
const SECTION_KEYS: [(&str, &[&str]); 3] = [
    (
        "[global]",
        &[
            "admin",
            "admin_token",
            "admin_token_file",
            "admin_insecure",
            "admin_read_only_open",
            "upgrade_socket",
            "log_level",
            "log_format",
            "log_sessions",
            "max_connections",
            "buffer_size",
            "pipe_size",
            "backlog",
            "drain_timeout",
            "stats_interval",
            "seed",
            "workers",
            "accept",
        ],
    ),
    (
        "[[frontend]]",
        &[
            "name",
            "bind",
            "pool",
            "mode",
            "policy",
            "shadow_policies",
            "vnodes",
            "ring_slots",
            "maglev_size",
            "sma_window",
            "ewma_alpha",
            "ewma_decay",
            "hash_balance_factor",
            "hash_key",
            "probe_path",
            "probe_interval",
            "connect_timeout",
            "idle_timeout",
            "request_timeout",
            "backend_timeout",
            "keepalive_timeout",
            "backend_conn",
            "pool_size",
            "pool_idle_timeout",
            "max_header_size",
            "max_conns_per_ip",
            "rate_per_ip",
            "accept_proxy",
            "trusted_proxies",
            "tls",
            "sni_routes",
            "access_log",
            "access_log_format",
            "access_log_explain",
            "redirect_code",
            "retry_budget",
            "retry_min_per_sec",
            "splice",
        ],
    ),
    (
        "[[pool]]",
        &[
            "name",
            "servers",
            "health_check",
            "health_interval",
            "health_timeout",
            "rise",
            "fall",
            "max_fails",
            "fail_timeout",
            "slow_start",
            "eject_after",
            "eject_base",
            "eject_max_percent",
            "spawn_cmd",
            "replicas",
            "resolve_interval",
            "resolvers",
            "send_proxy",
            "backend_tls",
            "backend_ca",
            "backend_sni",
        ],
    ),
];

/// An unknown key that another section knows is most often a key written
/// below the wrong header (TOML puts every key after `[[frontend]]` into that
/// frontend): say where it belongs.
fn with_section_hint(mut e: ConfigError) -> ConfigError {
    if let (Some(key), true) = (&e.key, e.message.starts_with("unknown key")) {
        let homes: Vec<&str> =
            SECTION_KEYS.iter().filter(|(_, keys)| keys.contains(&key.as_str())).map(|(section, _)| *section).collect();
        if !homes.is_empty() {
            e.message = format!(
                "unknown key here; it belongs in {} (a key belongs to the header above it)",
                homes.join(" or ")
            );
        }
    }
    e
}

/// Would two listeners collide? Port 0 never does (each gets a free port);
/// `[::]` also takes IPv4 (dual stack), `0.0.0.0` every IPv4 address.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let dual = |x: SocketAddr| x.is_ipv6() && x.ip().is_unspecified();
    dual(a)
        || dual(b)
        || (a.is_ipv4() == b.is_ipv4() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()))
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
