//! The admin API: JSON over HTTP/1.1 on its own listener, served by the
//! reactor itself. This module reads requests, checks them and turns them
//! into `Command`s; the reactor carries a command out and this module
//! renders the answer (JSON, Prometheus text, the dashboard page).
//!
//! One request per connection (`Connection: close`): the admin port is for
//! people and scrapers, not for load. So it is bounded: at most `MAX_CONNS`
//! connections, each with `TIMEOUT` to send its request and as long again
//! to take the answer.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};
use serde::Deserialize;
use serde_json::{Value, json};
use slab::Slab;

use crate::backend::{AdminState, Backend};
use crate::config::parse_backend_list;
use crate::http::head;
use crate::policy::PolicyKind;
use crate::server::tokens::Owner;

/// Largest admin request (head and body); larger ones get 413.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Admin connections open at once. More are answered 503 and closed, so a
/// flood of them cannot take the descriptors that sessions need (the
/// reactor keeps this many out of the session cap).
pub const MAX_CONNS: usize = 64;
/// An admin connection must send its whole request within this after it
/// opened, and take the answer within as long again, or it is closed.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// After answering before the whole request was read (413, 400), input
/// discarded while waiting for the client to close, at most.
const LINGER_MAX: usize = 1 << 20;

/// A checked admin request, for the reactor to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    ListReplicas,
    /// Add `hostnames`, and spawn `n - hostnames.len()` more when that is positive.
    Add {
        n: usize,
        hostnames: Vec<SocketAddr>,
    },
    /// Remove (drain, then drop) `hostnames`, plus `n - hostnames.len()` more.
    Remove {
        n: usize,
        hostnames: Vec<SocketAddr>,
    },
    SetState {
        addr: SocketAddr,
        state: AdminState,
    },
    SetPolicy(PolicyKind),
    Stats,
    Metrics,
    Dashboard,
    /// Read the configuration file again and apply it.
    Reload,
}

/// An answer: status, content type, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Reply {
        Reply { status, content_type: "application/json", body: v.to_string() }
    }

    /// `{"message": ..., "status": "successful"}`
    pub fn success(message: Value) -> Reply {
        Reply::json(200, &json!({"message": message, "status": "successful"}))
    }

    /// `{"message": "<Error> ...", "status": "failure"}`
    pub fn failure(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({"message": format!("<Error> {message}"), "status": "failure"}))
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
            self.status,
            head::reason_phrase(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

#[derive(Deserialize)]
struct Membership {
    n: usize,
    #[serde(default)]
    hostnames: Vec<String>,
}

#[derive(Deserialize)]
struct PolicyBody {
    policy: String,
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::failure(400, &format!("malformed JSON body: {e}")))
}

/// `{"n": N, "hostnames": [...]}`: N, and the hostnames as addresses (at most N).
/// A backend named twice (in any spelling of its address) is one instance:
/// it is listed once and counts once toward N, so it neither gets double
/// weight nor makes /add spawn or /rm take one more.
fn membership(body: &[u8], which: &str) -> Result<(usize, Vec<SocketAddr>), Reply> {
    let m: Membership = parse_json(body)?;
    if m.hostnames.len() > m.n {
        return Err(Reply::failure(400, &format!("Length of hostname list is more than {which} instances")));
    }
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(m.hostnames.len());
    for a in parse_addrs(&m.hostnames)? {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    Ok((m.n - (m.hostnames.len() - addrs.len()), addrs))
}

fn parse_addrs(names: &[String]) -> Result<Vec<SocketAddr>, Reply> {
    names.iter().map(|n| parse_backend_list(n).map(|l| l.0[0].addr).map_err(|e| Reply::failure(400, &e))).collect()
}

/// Check one request and name what it asks for.
pub fn route(method: &str, path: &str, body: &[u8]) -> Result<Command, Reply> {
    let path = path.split('?').next().unwrap_or("/");
    let allow = |ok: &[&str]| -> Result<(), Reply> {
        if ok.contains(&method) {
            Ok(())
        } else {
            Err(Reply::failure(405, &format!("{method} not allowed on {path} (use {})", ok.join(" or "))))
        }
    };
    match path {
        "/" | "/dashboard" => allow(&["GET"]).map(|_| Command::Dashboard),
        "/rep" => allow(&["GET"]).map(|_| Command::ListReplicas),
        "/stats" => allow(&["GET"]).map(|_| Command::Stats),
        "/metrics" => allow(&["GET"]).map(|_| Command::Metrics),
        "/reload" => allow(&["POST"]).map(|_| Command::Reload),
        "/add" => {
            allow(&["POST"])?;
            let (n, hostnames) = membership(body, "newly added")?;
            Ok(Command::Add { n, hostnames })
        }
        "/rm" => {
            allow(&["DELETE", "POST"])?;
            let (n, hostnames) = membership(body, "removable")?;
            Ok(Command::Remove { n, hostnames })
        }
        "/policy" => {
            allow(&["PUT", "POST"])?;
            let p: PolicyBody = parse_json(body)?;
            PolicyKind::from_str(&p.policy).map(Command::SetPolicy).map_err(|e| Reply::failure(400, &e))
        }
        p if p.starts_with("/backends/") => {
            let rest = &p["/backends/".len()..];
            let (addr, action) = rest.rsplit_once('/').ok_or_else(|| not_found(path))?;
            let state = match action {
                "drain" => AdminState::Draining,
                "enable" => AdminState::Enabled,
                "disable" => AdminState::Disabled,
                _ => return Err(not_found(path)),
            };
            allow(&["POST"])?;
            let addr = parse_addrs(&[addr.to_string()])?[0];
            Ok(Command::SetState { addr, state })
        }
        _ => Err(not_found(path)),
    }
}

fn not_found(path: &str) -> Reply {
    Reply::failure(404, &format!("no such route: {path}"))
}

/// `{"N": .., "replicas": [..]}` of the listed backends (not removed, not on their way out).
pub fn replicas(backends: &[Backend]) -> Value {
    let list: Vec<String> = backends.iter().filter(|b| !b.removed && !b.removing).map(|b| b.addr.to_string()).collect();
    json!({"N": list.len(), "replicas": list})
}

/// Everything `/stats` reports.
pub struct StatsView<'a> {
    pub backends: &'a [Backend],
    pub mode: &'a str,
    pub policy: &'a str,
    pub uptime: Duration,
    pub open_clients: usize,
    /// Buffers out of the pool (0 when nothing is in flight: a leak shows here).
    pub buffers_in_use: usize,
    /// Entries in the timer queues.
    pub timers_pending: usize,
    /// Every frontend: name, address, mode, policy, pool, open clients.
    pub frontends: Vec<FrontendView>,
    /// Every pool by name, with its backends.
    pub pools: Vec<(&'a str, &'a [Backend])>,
}

/// One frontend as `/stats` shows it.
pub struct FrontendView {
    pub name: String,
    pub listen: String,
    pub mode: &'static str,
    pub policy: &'static str,
    pub pool: String,
    pub open_clients: usize,
    /// False once it stopped accepting (reload removed it, or shutdown).
    pub accepting: bool,
}

fn backends_json(backends: &[Backend]) -> Vec<Value> {
    backends
        .iter()
        .filter(|b| !b.removed)
        .map(|b| {
            let s = &b.stats;
            let history: Vec<Value> = b.health.history().map(|(ok, why)| json!({"ok": ok, "reason": why})).collect();
            json!({
                "address": b.addr.to_string(),
                "state": b.state_name(),
                "weight": b.weight,
                "active": b.active(),
                "sessions": s.total,
                "requests": s.requests,
                "bytes_in": s.bytes_up,
                "bytes_out": s.bytes_down,
                "connect_failures": s.connect_failures,
                "connections_opened": s.conns_opened,
                "health": {"up": b.health.is_up(), "history": history},
                "latency_us": b.latency_percentiles().map(|p| json!({"p50": p[0], "p90": p[1], "p99": p[2], "max": p[3]})),
            })
        })
        .collect()
}

pub fn stats_json(v: &StatsView) -> Value {
    let listed = || v.backends.iter().filter(|b| !b.removed);
    let backends = backends_json(v.backends);
    let sum = |f: fn(&Backend) -> u64| listed().map(f).sum::<u64>();
    let frontends: Vec<Value> = v
        .frontends
        .iter()
        .map(|f| {
            json!({"name": f.name, "listen": f.listen, "mode": f.mode, "policy": f.policy, "pool": f.pool,
                   "open_clients": f.open_clients, "accepting": f.accepting})
        })
        .collect();
    let pools: Vec<Value> =
        v.pools.iter().map(|(name, b)| json!({"name": name, "backends": backends_json(b)})).collect();
    json!({
        "uptime_s": v.uptime.as_secs_f64(),
        "mode": v.mode,
        "policy": v.policy,
        "open_clients": v.open_clients,
        "buffers_in_use": v.buffers_in_use,
        "timers_pending": v.timers_pending,
        "backends": backends,
        "frontends": frontends,
        "pools": pools,
        "totals": {
            "active": sum(|b| b.active()),
            "sessions": sum(|b| b.stats.total),
            "requests": sum(|b| b.stats.requests),
            "bytes_in": sum(|b| b.stats.bytes_up),
            "bytes_out": sum(|b| b.stats.bytes_down),
            "connect_failures": sum(|b| b.stats.connect_failures),
        },
    })
}

/// Prometheus text exposition format (version 0.0.4).
pub fn metrics_text(v: &StatsView) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP lbproxy_uptime_seconds Seconds since lbproxy started.");
    let _ = writeln!(out, "# TYPE lbproxy_uptime_seconds gauge");
    let _ = writeln!(out, "lbproxy_uptime_seconds {:.3}", v.uptime.as_secs_f64());
    let _ = writeln!(out, "# HELP lbproxy_open_clients Client connections open now.");
    let _ = writeln!(out, "# TYPE lbproxy_open_clients gauge");
    let _ = writeln!(out, "lbproxy_open_clients {}", v.open_clients);
    let _ = writeln!(out, "# HELP lbproxy_buffers_in_use Buffers taken from the pool now.");
    let _ = writeln!(out, "# TYPE lbproxy_buffers_in_use gauge");
    let _ = writeln!(out, "lbproxy_buffers_in_use {}", v.buffers_in_use);
    let _ = writeln!(out, "# HELP lbproxy_timers_pending Entries in the timer queues.");
    let _ = writeln!(out, "# TYPE lbproxy_timers_pending gauge");
    let _ = writeln!(out, "lbproxy_timers_pending {}", v.timers_pending);
    type Metric = (&'static str, &'static str, &'static str, fn(&Backend) -> u64);
    let metrics: [Metric; 8] = [
        ("lbproxy_backend_up", "gauge", "1 when the backend accepts new sessions.", |b| u64::from(b.accepts_new())),
        ("lbproxy_backend_active_sessions", "gauge", "Sessions (TCP) or requests (HTTP) in flight.", |b| b.active()),
        ("lbproxy_backend_sessions_total", "counter", "Backend connections that succeeded.", |b| b.stats.total),
        ("lbproxy_backend_requests_total", "counter", "HTTP requests sent or redirected to the backend.", |b| {
            b.stats.requests
        }),
        ("lbproxy_backend_bytes_in_total", "counter", "Bytes from clients to the backend.", |b| b.stats.bytes_up),
        ("lbproxy_backend_bytes_out_total", "counter", "Bytes from the backend to clients.", |b| b.stats.bytes_down),
        ("lbproxy_backend_connect_failures_total", "counter", "Failed connects to the backend.", |b| {
            b.stats.connect_failures
        }),
        ("lbproxy_backend_connections_opened_total", "counter", "Backend connections opened (HTTP mode).", |b| {
            b.stats.conns_opened
        }),
    ];
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for b in v.backends.iter().filter(|b| !b.removed) {
            let _ = writeln!(out, "{name}{{backend=\"{}\"}} {}", b.addr, get(b));
        }
    }
    out
}

/// A page that polls `/stats` once a second and draws a table and bars.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// One admin connection: read a request, answer, close.
struct AdminConn {
    sock: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    phase: Phase,
    /// The input held exactly one whole request, so closing after the
    /// answer leaves nothing unread.
    read_all: bool,
    /// Closed then, whatever its phase.
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    Answering,
    /// Answer sent and write side shut: discarding input until the client closes.
    Lingering {
        discarded: usize,
    },
}

/// A request read off an admin connection.
pub struct AdminRequest {
    pub conn: usize,
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub authorization: Option<String>,
}

pub struct AdminServer {
    listener: TcpListener,
    conns: Slab<AdminConn>,
    token: Option<String>,
    /// The cap was hit and logged; logged again only after it was left.
    full_logged: bool,
}

impl AdminServer {
    pub fn new(listener: TcpListener, token: Option<String>) -> AdminServer {
        AdminServer { listener, conns: Slab::new(), token, full_logged: false }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The listening socket, to hand to a new process (binary upgrade).
    pub fn listener_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.listener)
    }

    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, peer)) if self.conns.len() >= MAX_CONNS => {
                    if !self.full_logged {
                        warn!("{MAX_CONNS} admin connections open: answering 503 to {peer} and more");
                        self.full_logged = true;
                    }
                    // Best effort: a fresh socket's buffer takes this small
                    // answer whole, and the drop closes it.
                    let reply = Reply::failure(503, &format!("{MAX_CONNS} admin connections are open already"));
                    let _ = sock.write(&reply.to_bytes());
                    let _ = sock.shutdown(Shutdown::Write);
                }
                Ok((mut sock, _)) => {
                    self.full_logged = false;
                    let entry = self.conns.vacant_entry();
                    let token = Owner::Admin(entry.key()).token();
                    if registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE).is_ok() {
                        entry.insert(AdminConn {
                            sock,
                            input: Vec::new(),
                            output: Vec::new(),
                            written: 0,
                            phase: Phase::Reading,
                            read_all: false,
                            deadline: now + TIMEOUT,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("admin accept: {e}");
                    return;
                }
            }
        }
    }

    /// Read what the connection has; return its request once complete.
    /// Bad or oversized requests are answered here.
    pub fn on_event(&mut self, key: usize, now: Instant) -> Option<AdminRequest> {
        let c = self.conns.get_mut(key)?;
        match c.phase {
            Phase::Reading => {}
            Phase::Answering => {
                self.flush(key);
                return None;
            }
            Phase::Lingering { .. } => {
                self.discard(key);
                return None;
            }
        }
        let mut buf = [0u8; 8192];
        let head = loop {
            match c.sock.read(&mut buf) {
                Ok(0) => {
                    self.conns.remove(key);
                    return None;
                }
                Ok(n) => {
                    c.input.extend_from_slice(&buf[..n]);
                    // Look at the head as soon as it is complete: a body
                    // declared too large is refused before it is read.
                    match parse_head(&c.input) {
                        Ok(Some(h)) if c.input.len() >= h.len + h.content_length => break h,
                        Err(reply) => {
                            self.answer(key, &reply, now);
                            return None;
                        }
                        Ok(_) if c.input.len() > MAX_REQUEST => {
                            let reply = Reply::failure(413, &format!("request larger than {MAX_REQUEST} bytes"));
                            self.answer(key, &reply, now);
                            return None;
                        }
                        Ok(_) => {}
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conns.remove(key);
                    return None;
                }
            }
        };
        let (head_len, length) = (head.len, head.content_length);
        c.read_all = c.input.len() == head_len + length;
        let request = AdminRequest {
            conn: key,
            method: head.method,
            path: head.path,
            body: c.input[head_len..head_len + length].to_vec(),
            authorization: head.authorization,
        };
        if let Some(expected) = &self.token {
            let query_token = request.path.split_once("?token=").map(|(_, t)| t.to_string());
            let bearer = request.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::to_string);
            if bearer.as_deref() != Some(expected.as_str()) && query_token.as_deref() != Some(expected.as_str()) {
                self.answer(key, &Reply::failure(401, "missing or wrong bearer token"), now);
                return None;
            }
        }
        Some(request)
    }

    /// Send `reply`; the client gets another `TIMEOUT` to take it.
    pub fn answer(&mut self, key: usize, reply: &Reply, now: Instant) {
        if let Some(c) = self.conns.get_mut(key) {
            c.output = reply.to_bytes();
            c.phase = Phase::Answering;
            c.deadline = now + TIMEOUT;
            self.flush(key);
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        while c.written < c.output.len() {
            match c.sock.write(&c.output[c.written..]) {
                Ok(n) => c.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conns.remove(key);
                    return;
                }
            }
        }
        if c.read_all {
            self.conns.remove(key);
            return;
        }
        // Closing with input unread would reset the connection: clients
        // report the reset instead of the answer, and the kernel drops what
        // of the answer is still unsent. So send a FIN and read until the
        // client closes, within LINGER_MAX and the deadline.
        let _ = c.sock.shutdown(Shutdown::Write);
        c.phase = Phase::Lingering { discarded: 0 };
        self.discard(key);
    }

    /// Read and drop input after the answer; close at EOF or past LINGER_MAX.
    fn discard(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        let Phase::Lingering { discarded } = &mut c.phase else { return };
        let mut buf = [0u8; 8192];
        loop {
            match c.sock.read(&mut buf) {
                Ok(n) if n > 0 && *discarded + n <= LINGER_MAX => *discarded += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EOF, too much, or an error: done.
                _ => break,
            }
        }
        self.conns.remove(key);
    }

    /// Close connections past their deadline: requests too slow to arrive,
    /// answers not taken, lingering that went on too long.
    pub fn sweep(&mut self, now: Instant) {
        let expired: Vec<usize> = self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(k, _)| k).collect();
        for key in expired {
            let c = self.conns.remove(key);
            debug!("admin connection {key}: {:?} past its deadline, closing", c.phase);
        }
    }
}

struct Head {
    len: usize,
    method: String,
    path: String,
    content_length: usize,
    authorization: Option<String>,
}

/// The request head, once complete; `Err` is the answer to a bad one.
/// Parsed by the HTTP mode's parser, with its framing rules.
fn parse_head(input: &[u8]) -> Result<Option<Head>, Reply> {
    let parsed = head::parse_plain_request(input, MAX_REQUEST, &["authorization"])
        .map_err(|(status, why)| Reply::failure(status, &why))?;
    let Some(p) = parsed else { return Ok(None) };
    if p.body_len > MAX_REQUEST as u64 {
        let why = format!("body of {} bytes is larger than the {MAX_REQUEST}-byte limit", p.body_len);
        return Err(Reply::failure(413, &why));
    }
    Ok(Some(Head {
        len: p.len,
        method: p.method,
        path: p.target,
        content_length: p.body_len as usize,
        authorization: p.kept.into_iter().next().map(|(_, v)| v),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_their_errors() {
        assert_eq!(route("GET", "/rep", b""), Ok(Command::ListReplicas));
        assert_eq!(route("GET", "/stats?x=1", b""), Ok(Command::Stats));
        let add = route("POST", "/add", br#"{"n":2,"hostnames":["127.0.0.1:8004"]}"#).unwrap();
        assert_eq!(add, Command::Add { n: 2, hostnames: vec!["127.0.0.1:8004".parse().unwrap()] });
        let twice = route("POST", "/add", br#"{"n":3,"hostnames":["127.0.0.1:8004","127.0.0.1:8004"]}"#).unwrap();
        assert_eq!(twice, Command::Add { n: 2, hostnames: vec!["127.0.0.1:8004".parse().unwrap()] });
        let too_many = route("POST", "/add", br#"{"n":1,"hostnames":["127.0.0.1:1","127.0.0.1:2"]}"#).unwrap_err();
        assert_eq!(too_many.status, 400);
        assert!(too_many.body.contains("Length of hostname list is more than newly added instances"));
        assert!(too_many.body.contains("\"status\":\"failure\""));
        assert_eq!(route("POST", "/add", b"{nope").unwrap_err().status, 400);
        assert!(route("POST", "/add", br#"{"n":1,"hostnames":["foo:bar"]}"#).unwrap_err().body.contains("foo:bar"));
        assert_eq!(route("GET", "/add", b"").unwrap_err().status, 405);
        assert_eq!(route("GET", "/nope", b"").unwrap_err().status, 404);
        assert_eq!(
            route("POST", "/backends/127.0.0.1:8001/drain", b""),
            Ok(Command::SetState { addr: "127.0.0.1:8001".parse().unwrap(), state: AdminState::Draining })
        );
        assert_eq!(route("POST", "/backends/127.0.0.1:8001/explode", b"").unwrap_err().status, 404);
        assert_eq!(route("PUT", "/policy", br#"{"policy":"source"}"#), Ok(Command::SetPolicy(PolicyKind::IpHash)));
        assert_eq!(route("PUT", "/policy", br#"{"policy":"fastest"}"#).unwrap_err().status, 400);
    }

    #[test]
    fn metrics_have_help_type_and_labels() {
        let b = vec![Backend::new("127.0.0.1:8001".parse().unwrap())];
        let view = StatsView {
            backends: &b,
            mode: "tcp",
            policy: "round_robin",
            uptime: Duration::from_secs(2),
            open_clients: 0,
            buffers_in_use: 0,
            timers_pending: 0,
            frontends: Vec::new(),
            pools: Vec::new(),
        };
        let text = metrics_text(&view);
        assert!(
            text.contains("# TYPE lbproxy_backend_up gauge\nlbproxy_backend_up{backend=\"127.0.0.1:8001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE lbproxy_backend_sessions_total counter"));
    }
}
