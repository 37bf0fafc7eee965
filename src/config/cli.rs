//! The command line: clap flags on top of the value parsers in `values.rs`.
//!
//! Defaults are not written here: each flag shows and uses the value of the
//! `Default` impl its setting lives in (`GlobalConfig`, `FrontendConfig`,
//! `PoolConfig`, `PolicyParams`, `FailPolicy`), the same value a config file
//! gets when it leaves the key out.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::Parser;

use super::server::{FrontendConfig, GlobalConfig, PoolConfig};
use super::values::*;
use super::{BackendList, Mode};
use crate::health::CheckKind;
use crate::http::head::HashKey;
use crate::http::{AccessLogFormat, BackendConnMode};
use crate::logfmt::LogFormat;
use crate::policy::PolicyKind;
use crate::proxy_protocol::{AcceptMode, Cidr, Version as ProxyVersion};
use crate::tls::BackendTlsMode;

static GLOBAL: LazyLock<GlobalConfig> = LazyLock::new(GlobalConfig::default);
static FRONTEND: LazyLock<FrontendConfig> = LazyLock::new(FrontendConfig::default);
static POOL: LazyLock<PoolConfig> = LazyLock::new(PoolConfig::default);

/// Every flag that `--config` refuses to be combined with: all but
/// `--config` and `--check` (a unit test keeps this list complete).
const SERVER_FLAGS: [&str; 73] = [
    "workers",
    "accept",
    "policy",
    "shadow_policy",
    "access_log_explain",
    "port",
    "bind",
    "backends",
    "connect_timeout",
    "idle_timeout",
    "max_connections",
    "buffer_size",
    "pipe_size",
    "stats_interval",
    "drain_timeout",
    "backlog",
    "seed",
    "mode",
    "backend_conn",
    "pool_size",
    "pool_idle_timeout",
    "max_header_size",
    "max_conns_per_ip",
    "rate_per_ip",
    "accept_proxy",
    "trusted_proxies",
    "send_proxy",
    "tls_cert",
    "tls_key",
    "backend_tls",
    "backend_ca",
    "backend_sni",
    "request_timeout",
    "backend_timeout",
    "keepalive_timeout",
    "access_log",
    "access_log_format",
    "log_format",
    "log_sessions",
    "log_level",
    "max_fails",
    "fail_timeout",
    "health_check",
    "health_interval",
    "health_timeout",
    "rise",
    "fall",
    "admin",
    "admin_token",
    "admin_token_file",
    "admin_insecure",
    "admin_read_only_open",
    "upgrade_socket",
    "spawn_cmd",
    "replicas",
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
    "redirect_code",
    "slow_start",
    "eject_after",
    "eject_base",
    "eject_max_percent",
    "retry_budget",
    "retry_min_per_sec",
    "splice",
];

/// lbproxy: a single-threaded load balancer for TCP sessions, HTTP/1.1 requests and redirects.
#[derive(Parser, Debug, Clone)]
#[command(name = "lbproxy", version, about, long_about = None)]
pub struct Args {
    /// Read frontends, pools and global settings from this TOML file (see
    /// examples/configs/). Not combined with the other flags: the file says everything.
    #[arg(long, value_name = "FILE", conflicts_with_all = SERVER_FLAGS)]
    pub config: Option<PathBuf>,

    /// Validate the configuration (--config FILE, or the flags), print it with
    /// every default filled in, and exit: 0 if it is valid, 2 if not.
    #[arg(long)]
    pub check: bool,

    /// Balancing policy: round_robin, fewest_connections, ip_hash, weighted_round_robin,
    /// random, weighted_random, least_requests, consistent_hash, maglev, sma, ewma,
    /// p2c_peak_ewma, fastest_ranked (also: round-robin, rr, least_conn, leastconn, ip_hashing, source, wrr,
    /// ketama, p2c).
    #[arg(long, default_value = FRONTEND.policy.name(), value_parser = parse_policy)]
    pub policy: PolicyKind,

    /// A shadow policy (repeat for more): it decides on every pick beside
    /// --policy, on the same backends, and nothing is sent for it; /stats,
    /// /metrics, the dashboard and the access log show what it would have done.
    #[arg(long, value_name = "POLICY", value_parser = parse_policy)]
    pub shadow_policy: Vec<PolicyKind>,

    /// Port to listen on for clients (0 picks a free port and logs it).
    #[arg(long, default_value_t = FRONTEND.listen.port())]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, default_value_t = FRONTEND.listen.ip())]
    pub bind: IpAddr,

    /// Backend server as HOST:PORT; repeat the flag or give a comma-separated
    /// list. Host names are resolved once at start. A weight follows as HOST:PORT@3 or as
    /// HOST:PORT,weight=3. At least one is required (unless --replicas spawns them).
    #[arg(long = "backend", value_name = "HOST:PORT", required_unless_present_any = ["replicas", "config"],
          value_parser = parse_backend_list)]
    pub backends: Vec<BackendList>,

    /// How long a backend connect may take before the next backend is tried.
    #[arg(long, default_value = fmt_duration(FRONTEND.connect_timeout), value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Close a session after this long without traffic in either direction (0 = never).
    #[arg(long, default_value = fmt_optional_duration(FRONTEND.idle_timeout), value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Most client connections open at once; further clients wait in the
    /// listen backlog until a session ends. Default: as many as the open-file
    /// limit allows (two descriptors per session); a larger value is lowered
    /// to that, with a warning.
    #[arg(long, value_parser = parse_max_connections)]
    pub max_connections: Option<usize>,

    /// Size of each per-direction buffer. Accepts K/KiB/M/MiB suffixes.
    /// A session holds at most two; idle sessions hold none.
    #[arg(long, default_value = fmt_size(GLOBAL.buffer_size), value_parser = parse_size)]
    pub buffer_size: usize,

    /// Capacity asked for each splice pipe (F_SETPIPE_SZ; the kernel's
    /// default is 64KiB, more than /proc/sys/fs/pipe-max-size needs root).
    /// A direction stops reading while its pipe holds this much.
    #[arg(long, default_value = fmt_size(GLOBAL.pipe_size), value_parser = parse_size)]
    pub pipe_size: usize,

    /// How often to log the one-line usage summary per pool, when it changed
    /// since the last one (0 = only at shutdown).
    #[arg(long, default_value = fmt_optional_duration(GLOBAL.stats_interval), value_parser = parse_duration)]
    pub stats_interval: Duration,

    /// On SIGINT/SIGTERM, how long open sessions may take to finish before exit.
    #[arg(long, default_value = fmt_duration(GLOBAL.drain_timeout), value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Listen backlog passed to listen(2).
    #[arg(long, default_value_t = GLOBAL.backlog)]
    pub backlog: i32,

    /// Reactor threads: each accepts from the same listeners and runs its own
    /// epoll; health checks, membership and the counters policies read are
    /// shared. `auto`: one per core this process may use.
    #[arg(long, default_value_t = GLOBAL.workers, value_parser = parse_workers)]
    pub workers: Workers,

    /// How workers take new clients. exclusive: one listening socket per
    /// frontend that every worker polls (EPOLLEXCLUSIVE wakes one).
    /// reuseport: a socket per worker per frontend (SO_REUSEPORT), the kernel
    /// spreads clients over them by address hash.
    #[arg(long, default_value_t = GLOBAL.accept, value_parser = parse_accept)]
    pub accept: Accept,

    /// Seed for hashing and random policies: the same seed gives the same picks.
    #[arg(long, default_value_t = GLOBAL.seed)]
    pub seed: u64,

    /// tcp: pin each client connection to one backend. http: balance every
    /// HTTP/1.1 request on its own. redirect: answer each request with a
    /// redirect to the chosen backend.
    #[arg(long, default_value = FRONTEND.mode.name(), value_parser = parse_mode)]
    pub mode: Mode,

    /// HTTP mode: `persistent` reuses backend connections from an idle pool,
    /// `per-request` opens one per request and closes it after the response.
    #[arg(long, default_value = fmt_backend_conn(FRONTEND.backend_conn), value_parser = parse_backend_conn)]
    pub backend_conn: BackendConnMode,

    /// HTTP mode: most idle backend connections kept per backend.
    #[arg(long, default_value_t = FRONTEND.pool_size)]
    pub pool_size: usize,

    /// HTTP mode: idle backend connections are closed after this long.
    #[arg(long, default_value = fmt_duration(FRONTEND.pool_idle_timeout), value_parser = parse_duration)]
    pub pool_idle_timeout: Duration,

    /// HTTP mode: largest request or response head; larger requests get 431.
    /// At most --buffer-size.
    #[arg(long, default_value = fmt_size(FRONTEND.max_header_size), value_parser = parse_size)]
    pub max_header_size: usize,

    /// Connections one client address may have open at once; more are
    /// refused (HTTP and redirect modes answer 429 first). 0 = no limit.
    #[arg(long, default_value_t = FRONTEND.per_ip.max_conns.unwrap_or(0), value_name = "N")]
    pub max_conns_per_ip: usize,

    /// New requests per second one client address may make (a burst of that
    /// many passes); more get 429 (HTTP, redirect) or are closed (TCP, where a
    /// connection is the request). 0 = no limit.
    #[arg(long, default_value_t = FRONTEND.per_ip.rate.unwrap_or(0), value_name = "R")]
    pub rate_per_ip: usize,

    /// HTTP and redirect modes: a request head must be complete this long after
    /// the connection opened or its first byte arrived, else 408 (slow-header defence).
    #[arg(long, default_value = fmt_duration(FRONTEND.request_timeout), value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// HTTP mode: a backend that has not started its response this long
    /// after the request arrived gets the client a 504; an exchange on which
    /// no byte moves either way for this long (a stalled body) is cut.
    #[arg(long, default_value = fmt_duration(FRONTEND.backend_timeout), value_parser = parse_duration)]
    pub backend_timeout: Duration,

    /// HTTP and redirect modes: close a keep-alive client that has not started
    /// a new request this long after its last response (0 = never).
    #[arg(long, default_value = fmt_optional_duration(FRONTEND.keepalive_timeout), value_parser = parse_duration)]
    pub keepalive_timeout: Duration,

    /// HTTP and redirect modes: append one line per request to FILE (see
    /// --access-log-format). SIGUSR1 opens FILE again (after logrotate moved it).
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,

    /// Access log lines: `csv` (a header, then the columns
    /// timestamp,client,method,path,backend,status,bytes,latency_us,reused,time,
    /// wait_us,deliver_us,total_us), `combined` (nginx's and Apache's, time in
    /// UTC) or `json` (one object per line). `time` is ISO-8601 UTC; the `_us`
    /// spans split a request's time: waiting for the backend, its answer, delivery.
    #[arg(long, default_value = FRONTEND.access_log_format.name(), value_parser = parse_access_log_format)]
    pub access_log_format: AccessLogFormat,

    /// Add a field `explain` to every access log line: the candidates, each
    /// one's score as the policy saw it, exclusions, and the pick (marked *).
    #[arg(long)]
    pub access_log_explain: bool,

    /// Process log (stderr) format: `text` or `json` (one object per line:
    /// time, level, target, msg).
    #[arg(long, default_value = GLOBAL.log_format.name(), value_parser = parse_log_format)]
    pub log_format: LogFormat,

    /// Log one info line when a client session ends (duration, bytes each
    /// way, backend, how it ended). Off by default: a busy proxy would log a
    /// line per connection; with RUST_LOG=debug the line is logged anyway.
    #[arg(long)]
    pub log_sessions: bool,

    /// Process log level (off, error, warn, info, debug, trace); RUST_LOG,
    /// when set, takes precedence.
    #[arg(long, default_value = fmt_log_level(GLOBAL.log_level), value_parser = parse_log_level)]
    pub log_level: log::LevelFilter,

    /// Consecutive failed connects that take a backend out of rotation
    /// for --fail-timeout (0: never).
    #[arg(long, default_value_t = POOL.fail_policy.max_fails)]
    pub max_fails: u32,

    /// How long a backend that reached --max-fails sits out before it gets traffic again.
    #[arg(long, default_value = fmt_duration(POOL.fail_policy.fail_timeout), value_parser = parse_duration)]
    pub fail_timeout: Duration,

    /// A backend that joins or comes back up ramps from 1% to its full share
    /// of new work over this long (0 = off).
    #[arg(long, default_value = fmt_optional_duration(POOL.slow_start), value_parser = parse_duration)]
    pub slow_start: Duration,

    /// http: consecutive 5xx answers or failed exchanges that eject a backend
    /// for --eject-base times its recent ejections (0 = off).
    #[arg(long, default_value_t = POOL.eject.after)]
    pub eject_after: u32,

    /// http: how long a first ejection lasts; each further one adds as much (at most 10x).
    #[arg(long, default_value = fmt_duration(POOL.eject.base), value_parser = parse_duration)]
    pub eject_base: Duration,

    /// http: most of the pool's backends ejected at once, in percent.
    #[arg(long, default_value = format!("{}%", POOL.eject.max_percent), value_parser = parse_percent)]
    pub eject_max_percent: u32,

    /// http: retries (after a failed connect, or a 502/503 to an idempotent
    /// request) may be this share of the last 10 s of requests, plus --retry-min-per-sec.
    #[arg(long, default_value = format!("{}%", FRONTEND.retry_budget.percent), value_parser = parse_percent)]
    pub retry_budget: u32,

    /// http: retries allowed per second whatever the traffic (on top of --retry-budget).
    #[arg(long, default_value_t = FRONTEND.retry_budget.min_per_sec)]
    pub retry_min_per_sec: u32,

    /// Active health checks: `tcp` (connect succeeds) or `http:/PATH` (GET answers 2xx).
    /// Off unless given (then only failed connects from traffic count).
    #[arg(long, value_name = "tcp|http:/PATH", value_parser = parse_health_check)]
    pub health_check: Option<CheckKind>,

    /// Time between two checks of one backend.
    #[arg(long, default_value = fmt_duration(POOL.health_interval), value_parser = parse_duration)]
    pub health_interval: Duration,

    /// A check without an answer this long has failed.
    #[arg(long, default_value = fmt_duration(POOL.health_timeout), value_parser = parse_duration)]
    pub health_timeout: Duration,

    /// Consecutive passed checks that bring a down backend up.
    #[arg(long, default_value_t = POOL.rise, value_parser = parse_threshold)]
    pub rise: u32,

    /// Consecutive failed checks (or failed connects from traffic) that take a backend down.
    #[arg(long, default_value_t = POOL.fall, value_parser = parse_threshold)]
    pub fall: u32,

    /// Serve the admin API (JSON, /metrics, dashboard) on ADDR; a bare port means 127.0.0.1:PORT.
    /// An address beyond loopback needs a token (or --admin-insecure).
    #[arg(long, value_name = "ADDR", value_parser = parse_admin_addr)]
    pub admin: Option<SocketAddr>,

    /// Require `Authorization: Bearer TOKEN` on every admin request but the
    /// dashboard page (which asks for the token itself). A flag
    /// shows in `ps`: prefer --admin-token-file or the LBPROXY_ADMIN_TOKEN
    /// environment variable (used when neither flag is given; a --config
    /// file names its own: admin_token_file).
    #[arg(long, value_name = "TOKEN", conflicts_with = "admin_token_file")]
    pub admin_token: Option<String>,

    /// Read the admin token from FILE (surrounding whitespace is dropped).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Serve --admin beyond loopback without a token: anyone who can reach it
    /// can add and remove backends and switch the policy. Without this flag
    /// such an --admin is refused; with it, a warning is logged at start.
    #[arg(long)]
    pub admin_insecure: bool,

    /// With a token, let the read-only admin routes (GET /stats, /metrics,
    /// /rep and the dashboard) answer without it, e.g. for a Prometheus
    /// scraper; everything that changes state still needs the token.
    #[arg(long)]
    pub admin_read_only_open: bool,

    /// Binary upgrade: if an lbproxy serves handovers at PATH, take its
    /// listening sockets (it then drains and exits); then serve handovers at
    /// PATH for the next upgrade. Start the new binary with the same arguments.
    #[arg(long, value_name = "PATH")]
    pub upgrade_socket: Option<PathBuf>,

    /// Command that starts one backend, with {port} and {id} filled in, e.g.
    /// 'target/release/examples/http_backend --port {port} --id {id}'. Used by
    /// /add when it asks for more replicas than it names, and by --replicas.
    #[arg(long, value_name = "TEMPLATE")]
    pub spawn_cmd: Option<String>,

    /// Keep this many spawned backends running: start them at launch and
    /// replace any that dies (needs --spawn-cmd).
    #[arg(long, value_name = "N", requires = "spawn_cmd")]
    pub replicas: Option<usize>,

    /// consistent_hash: virtual nodes per unit of weight. 640 keeps 3 backends
    /// within ±10% of even (measured, measurements/policy-lab); nginx's ketama uses 160.
    #[arg(long, default_value_t = FRONTEND.params.vnodes, value_parser = parse_vnodes)]
    pub vnodes: u32,

    /// consistent_hash: use the classic bounded ring of this many slots
    /// (linear probing on collisions) instead of 64-bit positions.
    #[arg(long, value_parser = parse_ring_slots)]
    pub ring_slots: Option<u32>,

    /// maglev: lookup table size (a prime well above the number of backends).
    #[arg(long, default_value_t = FRONTEND.params.maglev_size, value_parser = parse_prime)]
    pub maglev_size: u32,

    /// sma: response times averaged per backend.
    #[arg(long, default_value_t = FRONTEND.params.sma_window, value_parser = parse_sma_window)]
    pub sma_window: usize,

    /// ewma: weight of each new response time, 0 < alpha <= 1.
    #[arg(long, default_value_t = FRONTEND.params.ewma_alpha, value_parser = parse_alpha)]
    pub ewma_alpha: f64,

    /// p2c_peak_ewma: decay time of the latency estimate.
    #[arg(long, default_value = fmt_duration(FRONTEND.params.ewma_decay), value_parser = parse_duration)]
    pub ewma_decay: Duration,

    /// consistent_hash and maglev: bounded loads. No backend takes more than
    /// F times its share of the requests (HTTP) or sessions (TCP) in flight;
    /// a key over the cap goes on to the next backend along the ring or table
    /// (e.g. 1.25). 0 = off.
    #[arg(long, value_name = "F", default_value_t = FRONTEND.params.balance_factor.unwrap_or(0.0), value_parser = parse_balance_factor)]
    pub hash_balance_factor: f64,

    /// HTTP mode, hashing policies (ip_hash, consistent_hash, maglev): hash
    /// `header:NAME`, `query:NAME` or `path` instead of the client address.
    #[arg(long, value_parser = parse_hash_key)]
    pub hash_key: Option<HashKey>,

    /// fastest_ranked: path whose transfer time ranks the backends.
    #[arg(long, default_value = FRONTEND.probe_path.as_str())]
    pub probe_path: String,

    /// fastest_ranked: time between probe rounds (an idle proxy probes sooner).
    #[arg(long, default_value = fmt_duration(FRONTEND.probe_interval), value_parser = parse_duration)]
    pub probe_interval: Duration,

    /// Redirect mode: the status code sent (301, 302, 307 or 308).
    #[arg(long, default_value_t = FRONTEND.redirect_code, value_parser = parse_redirect_code)]
    pub redirect_code: u16,

    /// TCP mode: `auto` moves bytes socket to kernel pipe to socket with
    /// splice(2), no copy through user space (pipes only while bytes are in
    /// flight; buffers where a pipe cannot be had); `off`: always buffers.
    #[arg(long, value_name = "MODE", default_value = FRONTEND.splice.name(), value_parser = parse_splice)]
    pub splice: crate::splice::SpliceMode,

    /// Read a PROXY protocol header (v1 or v2) from upstreams in
    /// --trusted-proxies: `required` (connections without one are closed),
    /// `optional`, or `off`. The address it carries is the client's
    /// everywhere (policies, limits, logs, X-Forwarded-For).
    #[arg(long, value_name = "MODE", default_value = "off", value_parser = |s: &str| parse_accept_proxy(s).map(OffOr))]
    pub accept_proxy: OffOr<AcceptMode>,

    /// Address blocks allowed to send a PROXY header (`10.0.0.0/8,127.0.0.1`);
    /// none given: every source (as HAProxy's accept-proxy).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = |s: &str| s.trim().parse::<Cidr>())]
    pub trusted_proxies: Vec<Cidr>,

    /// HTTP and redirect modes: terminate TLS with this certificate chain
    /// (PEM); repeat with --tls-key for more chains, chosen by the name the
    /// client asks for (SNI), the first one by default.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Vec<PathBuf>,

    /// The private key (PEM) of the --tls-cert before it.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Vec<PathBuf>,

    /// HTTP mode: speak TLS to the backends: `verify` (against
    /// --backend-ca, for --backend-sni or the backend's IP address),
    /// `insecure` (encrypted, certificate not checked), or `off`.
    #[arg(long, value_name = "MODE", default_value = "off", value_parser = |s: &str| parse_backend_tls(s).map(OffOr))]
    pub backend_tls: OffOr<BackendTlsMode>,

    /// The CA certificate(s) (PEM) that --backend-tls verify checks backends against.
    #[arg(long, value_name = "FILE")]
    pub backend_ca: Option<PathBuf>,

    /// The server name sent to backends (SNI) and checked in their certificates.
    #[arg(long, value_name = "NAME")]
    pub backend_sni: Option<String>,

    /// Send a PROXY protocol header (`v1` or `v2`) to backends, naming the
    /// client; `off`. In HTTP mode each request then gets its own backend
    /// connection (a connection carries one client's address).
    #[arg(long, value_name = "VERSION", default_value = "off", value_parser = |s: &str| parse_send_proxy(s).map(OffOr))]
    pub send_proxy: OffOr<ProxyVersion>,
}

/// A flag whose value may be `off` (clap would read an `Option` field as
/// "the flag may be left out" instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffOr<T>(pub Option<T>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use clap::CommandFactory;

    #[test]
    fn cli_maps_to_config() {
        let a = Args::try_parse_from([
            "lbproxy",
            "--policy",
            "leastconn",
            "--backend",
            "127.0.0.1:1,127.0.0.1:2",
            "--backend",
            "127.0.0.1:3",
            "--stats-interval",
            "0",
        ])
        .unwrap();
        let c = Config::from(a);
        assert_eq!(c.policy, PolicyKind::FewestConnections);
        assert_eq!(c.backends.len(), 3);
        assert_eq!(c.stats_interval, None);
        assert_eq!(c.listen.port(), 9000);
        assert!(c.shadow_policies.is_empty() && !c.access_log_explain);
    }

    #[test]
    fn shadow_policies_repeat_and_bad_names_are_refused() {
        let a = Args::try_parse_from([
            "lbproxy",
            "--backend",
            "127.0.0.1:1",
            "--shadow-policy",
            "maglev",
            "--shadow-policy",
            "leastconn",
            "--access-log-explain",
        ])
        .unwrap();
        let c = Config::from(a);
        assert_eq!(c.shadow_policies, [PolicyKind::Maglev, PolicyKind::FewestConnections]);
        assert!(c.access_log_explain);
        let e =
            Args::try_parse_from(["lbproxy", "--backend", "127.0.0.1:1", "--shadow-policy", "fastets"]).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("--shadow-policy") && shown.contains("unknown policy \"fastets\""), "{shown}");
    }

    /// `--config` conflicts with every other server flag; a new flag must be
    /// added to SERVER_FLAGS or `--config` would silently ignore it.
    #[test]
    fn config_conflicts_with_every_other_flag() {
        let command = Args::command();
        let mut ids: Vec<&str> = command
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| !["config", "check", "help", "version"].contains(id))
            .collect::<Vec<_>>();
        ids.sort_unstable();
        let mut listed = SERVER_FLAGS.to_vec();
        listed.sort_unstable();
        assert_eq!(ids, listed);
        let e = Args::try_parse_from(["lbproxy", "--config", "x.toml", "--port", "1"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let a = Args::try_parse_from(["lbproxy", "--check", "--config", "x.toml"]).unwrap();
        assert!(a.check && a.config.is_some());
    }

    #[test]
    fn help_shows_the_defaults_of_the_default_impls() {
        let help = Args::command().render_help().to_string();
        for shown in ["[default: round_robin]", "[default: 2s]", "[default: 64KiB]", "[default: 75s]", "[default: 0.3]"]
        {
            assert!(help.contains(shown), "--help lacks {shown}: {help}");
        }
    }
}
