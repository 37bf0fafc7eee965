//! Command line: clap arguments, value parsers, and the validated `Config`.
//!
//! Every parser returns an error naming the value it rejected; clap adds the
//! flag name and exits with status 2.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use crate::backend::FailPolicy;
use crate::health::{CheckKind, HealthConfig};
use crate::http::head::HashKey;
use crate::http::{BackendConnMode, HttpRole, HttpSettings};
use crate::policy::{PolicyKind, PolicyParams};

/// lbproxy: a single-threaded load balancer for TCP sessions, HTTP/1.1 requests and redirects.
#[derive(Parser, Debug, Clone)]
#[command(name = "lbproxy", version, about, long_about = None)]
pub struct Args {
    /// Balancing policy: round_robin, fewest_connections, ip_hash, weighted_round_robin,
    /// random, weighted_random, least_requests, consistent_hash, maglev, sma, ewma,
    /// p2c_peak_ewma, fastest_ranked (also: round-robin, rr, least_conn, leastconn, ip_hashing, source, wrr,
    /// ketama, p2c).
    #[arg(long, default_value = "round_robin", value_parser = parse_policy)]
    pub policy: PolicyKind,

    /// Port to listen on for clients (0 picks a free port and logs it).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Backend server as HOST:PORT; repeat the flag or give a comma-separated
    /// list. Host names are resolved once at start. A weight follows as HOST:PORT@3 or as
    /// HOST:PORT,weight=3. At least one is required (unless --replicas spawns them).
    #[arg(long = "backend", value_name = "HOST:PORT", required_unless_present = "replicas", value_parser = parse_backend_list)]
    pub backends: Vec<BackendList>,

    /// How long a backend connect may take before the next backend is tried.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Close a session after this long without traffic in either direction (0 = never).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Most client connections open at once; further clients wait in the
    /// listen backlog until a session ends.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Size of each per-direction buffer. Accepts K/KiB/M/MiB suffixes.
    /// A session holds at most two; idle sessions hold none.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub buffer_size: usize,

    /// How often to log the per-backend usage table (0 = only at shutdown).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub stats_interval: Duration,

    /// On SIGINT/SIGTERM, how long open sessions may take to finish before exit.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Listen backlog passed to listen(2).
    #[arg(long, default_value_t = 1024)]
    pub backlog: i32,

    /// Seed for hashing and random policies: the same seed gives the same picks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// tcp: pin each client connection to one backend. http: balance every
    /// HTTP/1.1 request on its own. redirect: answer each request with a
    /// redirect to the chosen backend.
    #[arg(long, default_value = "tcp", value_parser = parse_mode)]
    pub mode: Mode,

    /// HTTP mode: `persistent` reuses backend connections from an idle pool,
    /// `per-request` opens one per request and closes it after the response.
    #[arg(long, default_value = "persistent", value_parser = parse_backend_conn)]
    pub backend_conn: BackendConnMode,

    /// HTTP mode: most idle backend connections kept per backend.
    #[arg(long, default_value_t = 64)]
    pub pool_size: usize,

    /// HTTP mode: idle backend connections are closed after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub pool_idle_timeout: Duration,

    /// HTTP mode: largest request or response head; larger requests get 431.
    /// At most --buffer-size.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub max_header_size: usize,

    /// HTTP and redirect modes: a request head must be complete this long after
    /// the connection opened or its first byte arrived, else 408 (slow-header defence).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// HTTP mode: a backend that has not started its response this long
    /// after the request arrived gets the client a 504; an exchange on which
    /// no byte moves either way for this long (a stalled body) is cut.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub backend_timeout: Duration,

    /// HTTP and redirect modes: close a keep-alive client that has not started
    /// a new request this long after its last response (0 = never).
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,

    /// HTTP and redirect modes: append one CSV line per request to FILE
    /// (timestamp,client,method,path,backend,status,bytes,latency_us,reused).
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,

    /// Consecutive failed connects that take a backend out of rotation
    /// for --fail-timeout (0: never).
    #[arg(long, default_value_t = 3)]
    pub max_fails: u32,

    /// How long a backend that reached --max-fails sits out before it gets traffic again.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub fail_timeout: Duration,

    /// Active health checks: `tcp` (connect succeeds) or `http:/PATH` (GET answers 2xx).
    /// Off unless given (then only failed connects from traffic count).
    #[arg(long, value_name = "tcp|http:/PATH", value_parser = CheckKind::parse)]
    pub health_check: Option<CheckKind>,

    /// Time between two checks of one backend.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// A check without an answer this long has failed.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub health_timeout: Duration,

    /// Consecutive passed checks that bring a down backend up.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub rise: u32,

    /// Consecutive failed checks (or failed connects from traffic) that take a backend down.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub fall: u32,

    /// Serve the admin API (JSON, /metrics, dashboard) on ADDR; a bare port means 127.0.0.1:PORT.
    #[arg(long, value_name = "ADDR", value_parser = parse_admin_addr)]
    pub admin: Option<SocketAddr>,

    /// Require `Authorization: Bearer TOKEN` on every admin request.
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,

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
    #[arg(long, default_value_t = 640, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub vnodes: u32,

    /// consistent_hash: use the classic bounded ring of this many slots
    /// (linear probing on collisions) instead of 64-bit positions.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub ring_slots: Option<u32>,

    /// maglev: lookup table size (a prime well above the number of backends).
    #[arg(long, default_value_t = 65_537, value_parser = parse_prime)]
    pub maglev_size: u32,

    /// sma: response times averaged per backend.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sma_window: u64,

    /// ewma: weight of each new response time, 0 < alpha <= 1.
    #[arg(long, default_value_t = 0.3, value_parser = parse_alpha)]
    pub ewma_alpha: f64,

    /// p2c_peak_ewma: decay time of the latency estimate.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub ewma_decay: Duration,

    /// HTTP mode, hashing policies (ip_hash, consistent_hash, maglev): hash
    /// `header:NAME`, `query:NAME` or `path` instead of the client address.
    #[arg(long, value_parser = HashKey::parse)]
    pub hash_key: Option<HashKey>,

    /// fastest_ranked: path whose transfer time ranks the backends.
    #[arg(long, default_value = "/")]
    pub probe_path: String,

    /// fastest_ranked: time between probe rounds (an idle proxy probes sooner).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub probe_interval: Duration,

    /// Redirect mode: the status code sent (301, 302, 307 or 308).
    #[arg(long, default_value_t = 301, value_parser = parse_redirect_code)]
    pub redirect_code: u16,
}

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

pub fn parse_mode(s: &str) -> Result<Mode, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(Mode::Tcp),
        "http" => Ok(Mode::Http),
        "redirect" => Ok(Mode::Redirect),
        _ => Err(format!("unknown mode \"{s}\" (expected tcp, http or redirect)")),
    }
}

pub fn parse_backend_conn(s: &str) -> Result<BackendConnMode, String> {
    match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "persistent" | "keep-alive" | "keepalive" => Ok(BackendConnMode::Persistent),
        "per-request" | "perrequest" | "close" => Ok(BackendConnMode::PerRequest),
        _ => Err(format!("unknown backend connection mode \"{s}\" (expected persistent or per-request)")),
    }
}

pub fn parse_redirect_code(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(c @ (301 | 302 | 307 | 308)) => Ok(c),
        _ => Err(format!("invalid redirect code \"{s}\" (expected 301, 302, 307 or 308)")),
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
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_connections: usize,
    pub buffer_size: usize,
    pub stats_interval: Option<Duration>,
    pub drain_timeout: Duration,
    pub backlog: i32,
    pub seed: u64,
    pub mode: Mode,
    pub backend_conn: BackendConnMode,
    pub pool_size: usize,
    pub pool_idle_timeout: Duration,
    pub max_header_size: usize,
    pub backend_timeout: Duration,
    pub request_timeout: Duration,
    pub keepalive_timeout: Option<Duration>,
    pub access_log: Option<PathBuf>,
    pub redirect_code: u16,
    pub fail_policy: FailPolicy,
    pub health: Option<HealthConfig>,
    pub admin: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub spawn_cmd: Option<String>,
    pub replicas: Option<usize>,
    pub params: PolicyParams,
    pub hash_key: Option<HashKey>,
    pub probe_path: String,
    pub probe_interval: Duration,
}

impl Config {
    /// A config with the CLI defaults, for tests and embedding.
    pub fn new(listen: SocketAddr, backends: Vec<SocketAddr>, policy: PolicyKind) -> Config {
        Config {
            listen,
            backends: backends.into_iter().map(|addr| BackendSpec { addr, weight: 1 }).collect(),
            policy,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: None,
            max_connections: 10_000,
            buffer_size: 64 * 1024,
            stats_interval: Some(Duration::from_secs(5)),
            drain_timeout: Duration::from_secs(10),
            backlog: 1024,
            seed: 0,
            mode: Mode::Tcp,
            backend_conn: BackendConnMode::Persistent,
            pool_size: 64,
            pool_idle_timeout: Duration::from_secs(60),
            max_header_size: 64 * 1024,
            backend_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            keepalive_timeout: Some(Duration::from_secs(75)),
            access_log: None,
            redirect_code: 301,
            fail_policy: FailPolicy::default(),
            health: None,
            admin: None,
            admin_token: None,
            spawn_cmd: None,
            replicas: None,
            params: PolicyParams::default(),
            hash_key: None,
            probe_path: "/".into(),
            probe_interval: Duration::from_secs(300),
        }
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
            conn_mode: self.backend_conn,
            pool_size: self.pool_size,
            pool_idle_timeout: self.pool_idle_timeout,
            max_header_size: self.max_header_size.min(self.buffer_size),
            backend_timeout: self.backend_timeout,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            keepalive_timeout: self.keepalive_timeout,
            hash_key: self.hash_key.clone(),
        })
    }
}

impl From<Args> for Config {
    fn from(a: Args) -> Config {
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        Config {
            listen: SocketAddr::new(a.bind, a.port),
            backends: a.backends.into_iter().flat_map(|l| l.0).collect(),
            policy: a.policy,
            connect_timeout: a.connect_timeout,
            idle_timeout: nonzero(a.idle_timeout),
            max_connections: a.max_connections as usize,
            buffer_size: a.buffer_size,
            stats_interval: nonzero(a.stats_interval),
            drain_timeout: a.drain_timeout,
            backlog: a.backlog,
            seed: a.seed,
            mode: a.mode,
            backend_conn: a.backend_conn,
            pool_size: a.pool_size,
            pool_idle_timeout: a.pool_idle_timeout,
            max_header_size: a.max_header_size,
            backend_timeout: a.backend_timeout,
            request_timeout: a.request_timeout,
            keepalive_timeout: nonzero(a.keepalive_timeout),
            access_log: a.access_log,
            redirect_code: a.redirect_code,
            fail_policy: FailPolicy { max_fails: a.max_fails, fail_timeout: a.fail_timeout },
            // Spawned backends join once a check passes, so --spawn-cmd turns on tcp checks.
            health: a.health_check.or_else(|| a.spawn_cmd.as_ref().map(|_| CheckKind::Tcp)).map(|kind| HealthConfig {
                kind,
                interval: a.health_interval,
                timeout: a.health_timeout,
                rise: a.rise,
                fall: a.fall,
            }),
            admin: a.admin,
            admin_token: a.admin_token,
            spawn_cmd: a.spawn_cmd,
            replicas: a.replicas,
            params: PolicyParams {
                seed: a.seed,
                vnodes: a.vnodes,
                ring_slots: a.ring_slots,
                maglev_size: a.maglev_size,
                sma_window: a.sma_window as usize,
                ewma_alpha: a.ewma_alpha,
                ewma_decay: a.ewma_decay,
            },
            hash_key: a.hash_key,
            probe_path: a.probe_path,
            probe_interval: a.probe_interval,
        }
    }
}

fn parse_prime(s: &str) -> Result<u32, String> {
    let n: u32 = s.trim().parse().map_err(|_| format!("invalid table size \"{s}\""))?;
    let prime = n >= 7 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d));
    if prime && n <= 10_000_019 {
        Ok(n)
    } else {
        Err(format!("invalid table size \"{s}\": use a prime from 7 to 10000019"))
    }
}

fn parse_alpha(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(a) if a > 0.0 && a <= 1.0 => Ok(a),
        _ => Err(format!("invalid alpha \"{s}\" (expected 0 < alpha <= 1)")),
    }
}

/// `HOST:PORT`, or a bare port on the loopback address.
pub fn parse_admin_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.trim().parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.trim().parse().map_err(|_| format!("invalid admin address \"{s}\" (expected IP:PORT or PORT)"))
}

pub fn parse_policy(s: &str) -> Result<PolicyKind, String> {
    PolicyKind::from_str(s)
}

/// `HOST:PORT[,HOST:PORT...]`, each resolved now (first address of each
/// name). A weight follows as `HOST:PORT@3` or as a `weight=3` item after
/// the address: `127.0.0.1:8001,weight=3,127.0.0.1:8002`.
pub fn parse_backend_list(s: &str) -> Result<BackendList, String> {
    let mut out: Vec<BackendSpec> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(w) = part.strip_prefix("weight=") {
            let last =
                out.last_mut().ok_or_else(|| format!("invalid backend list \"{s}\": weight before any address"))?;
            last.weight = parse_weight(s, w)?;
            continue;
        }
        let (addr, weight) = match part.rsplit_once('@') {
            Some((a, w)) => (a, parse_weight(s, w)?),
            None => (part, 1),
        };
        out.push(BackendSpec { addr: parse_backend(addr)?, weight });
    }
    if out.is_empty() {
        return Err(format!("invalid backend address \"{s}\": empty list"));
    }
    Ok(BackendList(out))
}

fn parse_weight(list: &str, w: &str) -> Result<u32, String> {
    match w.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_WEIGHT).contains(&n) => Ok(n),
        _ => Err(format!("invalid weight \"{w}\" in \"{list}\" (expected 1-{MAX_WEIGHT})")),
    }
}

fn parse_backend(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return check_port(s, addr);
    }
    let (host, port) =
        s.rsplit_once(':').ok_or_else(|| format!("invalid backend address \"{s}\": expected HOST:PORT"))?;
    if host.is_empty() {
        return Err(format!("invalid backend address \"{s}\": empty host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid backend address \"{s}\": port \"{port}\" is not a number 1-65535"))?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("invalid backend address \"{s}\": cannot resolve \"{host}\": {e}"))?
        .next()
        .ok_or_else(|| format!("invalid backend address \"{s}\": \"{host}\" has no address"))?;
    check_port(s, addr)
}

fn check_port(s: &str, addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() == 0 {
        return Err(format!("invalid backend address \"{s}\": port 0"));
    }
    Ok(addr)
}

/// `500ms`, `2s`, `5m`, `1h`, or `0`. A unit is required for non-zero values
/// so that `--connect-timeout 2` is not silently two milliseconds or hours.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("invalid duration \"{s}\": missing unit (ms, s, m, h)"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration \"{s}\": \"{num}\" is not a number"))?;
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!("invalid duration \"{s}\": unknown unit \"{other}\" (use ms, s, m, h)"));
        }
    };
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("invalid duration \"{s}\": out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Byte sizes: `16384`, `16K`, `16KiB`, `1M`, `1MiB`. Between 1 KiB and 64 MiB.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("invalid size \"{s}\": \"{num}\" is not a whole number"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        other => return Err(format!("invalid size \"{s}\": unknown unit \"{other}\" (use K or M)")),
    };
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("invalid size \"{s}\": too large"))?;
    if !(1024..=64 * 1024 * 1024).contains(&bytes) {
        return Err(format!("invalid size \"{s}\": must be between 1KiB and 64MiB"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("2").unwrap_err().contains("missing unit"));
        assert!(parse_duration("2x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("ms").unwrap_err().contains("not a number"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16KiB").unwrap(), 16384);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12").is_err());
        assert!(parse_size("1G").is_err());
    }

    #[test]
    fn backends_lists_and_errors() {
        let l = parse_backend_list("127.0.0.1:8001, 127.0.0.1:8002").unwrap();
        assert_eq!(l.0.len(), 2);
        assert_eq!(parse_backend_list("localhost:80").unwrap().0[0].addr.port(), 80);
        let w = parse_backend_list("127.0.0.1:1,weight=3,127.0.0.1:2@2,127.0.0.1:3").unwrap().0;
        assert_eq!(w.iter().map(|b| b.weight).collect::<Vec<_>>(), [3, 2, 1]);
        assert!(parse_backend_list("weight=3").unwrap_err().contains("weight before any address"));
        assert!(parse_backend_list("127.0.0.1:1@0").unwrap_err().contains("invalid weight \"0\""));
        let e = parse_backend_list("foo:bar").unwrap_err();
        assert!(e.starts_with("invalid backend address \"foo:bar\""), "{e}");
        assert!(parse_backend_list("127.0.0.1").unwrap_err().contains("HOST:PORT"));
        assert!(parse_backend_list("127.0.0.1:0").unwrap_err().contains("port 0"));
    }

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
    }
}
