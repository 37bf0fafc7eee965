//! HTTP Upgrade (WebSocket) through `--mode http`, end to end: a client and a
//! server on the `websockets` package from PyPI (tests/ws_client.py,
//! tests/ws_echo.py), raw sockets for the exact bytes, and the example HTTP
//! backend for upgrades that are declined.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::http::Conn;
use util::*;

const ECHO_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ws_echo.py");
const CLIENT_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ws_client.py");

/// RFC 6455's sample key and the accept value a server must derive from it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// ---- python3 with the websockets package ----

fn python_has_websockets() -> bool {
    Command::new("python3").args(["-c", "import websockets"]).status().is_ok_and(|s| s.success())
}

/// Whether python3 can import `websockets`, installing it with pip once if
/// needed. Without it the Python tests are skipped with the reason printed,
/// except under CI (`.ci/run` installs it), where that is a failure.
fn websockets_available(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        if python_has_websockets() {
            return Ok(());
        }
        let pip = Command::new("python3").args(["-m", "pip", "install", "--quiet", "websockets"]).status();
        if python_has_websockets() {
            return Ok(());
        }
        Err(format!("python3 cannot import websockets and `python3 -m pip install websockets` did not help ({pip:?})"))
    });
    match ready {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => panic!("{test}: {why}"),
        Err(why) => {
            // Straight to stderr: the harness captures eprintln! of passing tests.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            false
        }
    }
}

/// tests/ws_echo.py on a free port.
fn ws_echo() -> Proc {
    let mut cmd = Command::new("python3");
    cmd.args(["-u", ECHO_PY, "--port", "0"]);
    spawn_cmd_and_wait(cmd)
}

/// Run tests/ws_client.py; returns (success, stdout).
fn ws_client(args: &[&str]) -> (bool, String) {
    let out = Command::new("python3").arg(CLIENT_PY).args(args).output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("ws_client {args:?}: {}\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout)
}

// ---- lbproxy with its admin API ----

/// Wait until no client is open, no request is active and every buffer is
/// back in the pool (what a tunnel that ended must leave behind).
fn settled(admin: SocketAddr) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = admin_stats(admin);
        if v["open_clients"] == 0 && v["totals"]["active"] == 0 && v["buffers_in_use"] == 0 {
            return v;
        }
        assert!(Instant::now() < deadline, "the proxy did not settle after the tunnel ended: {v:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- a WebSocket client on a raw socket ----

struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

type Head = (u16, Vec<(String, String)>);

fn header<'a>(head: &'a Head, name: &str) -> Option<&'a str> {
    head.1.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl Raw {
    fn open(addr: SocketAddr) -> Raw {
        let s = connect(addr);
        Raw { w: s.try_clone().unwrap(), r: BufReader::new(s) }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("send");
    }

    fn head(&mut self) -> Head {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("status line");
        let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.r.read_line(&mut line).expect("header line");
            match line.trim_end().split_once(':') {
                Some((n, v)) => headers.push((n.trim().to_string(), v.trim().to_string())),
                None => return (status, headers),
            }
        }
    }

    /// A response's Content-Length body.
    fn body(&mut self, head: &Head) -> Vec<u8> {
        let n: usize = header(head, "content-length").map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; n];
        self.r.read_exact(&mut body).expect("body");
        body
    }

    /// The opening handshake for `path`; returns the response head.
    fn upgrade(&mut self, path: &str, version: &str) -> Head {
        self.send(
            format!(
                "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
            )
            .as_bytes(),
        );
        self.head()
    }

    /// Open a WebSocket to the echo server behind the proxy.
    fn websocket(addr: SocketAddr) -> Raw {
        let mut ws = Raw::open(addr);
        let head = ws.upgrade("/echo", "13");
        assert_eq!(head.0, 101, "{head:?}");
        assert_eq!(header(&head, "sec-websocket-accept"), Some(ACCEPT));
        ws
    }

    /// Send one masked frame, as a client must.
    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.send(&f);
    }

    /// Read one (unmasked, unfragmented) server frame: (opcode, payload).
    fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.r.read_exact(&mut h).expect("frame header");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.r.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.r.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0; len];
        self.r.read_exact(&mut payload).expect("frame payload");
        (h[0] & 0x0f, payload)
    }

    fn echo(&mut self, text: &str) {
        self.frame(1, text.as_bytes());
        assert_eq!(self.read_frame(), (1, text.as_bytes().to_vec()), "echo of {text:?}");
    }

    /// The client starts the closing handshake and sees it through: the
    /// server's close frame, then the end of the connection.
    fn close(mut self) {
        self.frame(8, &1000u16.to_be_bytes());
        let (op, payload) = self.read_frame();
        assert_eq!((op, &payload[..2]), (8, &1000u16.to_be_bytes()[..]), "close frame");
        assert!(self.at_eof(), "connection still open after the closing handshake");
    }

    /// True once the peer closed (0-byte read) or reset the connection.
    fn at_eof(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0) | Err(_))
    }
}

// ---- the tests ----

#[test]
fn a_websockets_client_and_server_echo_1000_messages_through_the_proxy() {
    if !websockets_available("a_websockets_client_and_server_echo_1000_messages_through_the_proxy") {
        return;
    }
    let server = ws_echo();
    let (lb, admin) = http_proxy_with_admin(server.addr, &[]);
    let url = format!("ws://{}/echo", lb.addr);
    let (ok, out) = ws_client(&[&url, "--messages", "1000", "--big", "5"]);
    assert!(ok, "the client saw a wrong echo or an unclean close:\n{out}");
    assert!(out.contains("echoed 1000 messages, ") && out.contains(", 5 of 1 MiB"), "{out}");
    assert!(out.contains("closed by client: code 1000"), "{out}");
    // The client's close ended the server's connection too.
    server.wait_for_line("closed /echo 1000");
    let v = settled(admin);
    let echoed: u64 = out.split("messages, ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap();
    let b = &v["backends"][0];
    assert_eq!(b["requests"], 1, "one upgrade request, then frames: {v:#}");
    assert!(b["bytes_in"].as_u64().unwrap() > echoed && b["bytes_out"].as_u64().unwrap() > echoed, "{v:#}");
}

#[test]
fn a_server_close_ends_both_connections() {
    if !websockets_available("a_server_close_ends_both_connections") {
        return;
    }
    let server = ws_echo();
    let (lb, admin) = http_proxy_with_admin(server.addr, &[]);
    let (ok, out) = ws_client(&[&format!("ws://{}/close-me", lb.addr), "--expect-server-close", "4000"]);
    assert!(ok, "the client did not see the server's close:\n{out}");
    assert!(out.contains("closed by server: code 4000 reason bye"), "{out}");
    server.wait_for_line("closed /close-me 4000");
    settled(admin);
}

#[test]
fn a_declined_upgrade_keeps_the_connection_as_http() {
    // examples/http_backend knows nothing of WebSocket: it answers 200.
    let backend = http_backend(1, &[]);
    let (lb, admin) = http_proxy_with_admin(backend.addr, &[]);
    let mut c = Conn::open(lb.addr);
    c.send(
        format!(
            "GET /headers HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    let seen = r.text();
    // The offer reached the backend, with nothing else named hop-by-hop.
    assert!(seen.contains("Upgrade: websocket\n") && seen.contains("Connection: Upgrade\n"), "{seen}");
    assert!(r.header("upgrade").is_none() && r.header("connection").is_none(), "{:?}", r.headers);
    // Still HTTP/1.1 keep-alive: a second request on the same connection.
    let r = c.get("/");
    assert_eq!((r.status, r.text()), (200, "Hello from server 1".to_string()));
    drop(c);
    settled(admin);
}

#[test]
fn a_websocket_servers_refusals_keep_http_and_a_later_upgrade_on_the_connection_works() {
    let test = "a_websocket_servers_refusals_keep_http_and_a_later_upgrade_on_the_connection_works";
    if !websockets_available(test) {
        return;
    }
    let server = ws_echo();
    let (lb, admin) = http_proxy_with_admin(server.addr, &[]);
    let mut ws = Raw::open(lb.addr);
    // An upgrade the server declines (unsupported version: 400), then a plain
    // request it refuses (426 Upgrade Required); the server closes its side
    // each time, the client's connection stays.
    let head = ws.upgrade("/echo", "99");
    assert_eq!(head.0, 400, "{head:?}");
    assert!(header(&head, "upgrade").is_none() && header(&head, "connection").is_none(), "{head:?}");
    ws.body(&head);
    ws.send(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = ws.head();
    assert_eq!(head.0, 426, "{head:?}");
    assert!(header(&head, "upgrade").is_none() && header(&head, "connection").is_none(), "{head:?}");
    assert!(String::from_utf8_lossy(&ws.body(&head)).contains("WebSocket"));
    // The same client connection, now upgraded for real.
    let head = ws.upgrade("/echo", "13");
    assert_eq!(head.0, 101, "{head:?}");
    assert_eq!(header(&head, "upgrade"), Some("websocket"));
    assert_eq!(header(&head, "connection"), Some("Upgrade"));
    assert_eq!(header(&head, "sec-websocket-accept"), Some(ACCEPT));
    ws.echo("after a 426");
    ws.frame(2, &[0u8; 200_000]);
    assert_eq!(ws.read_frame(), (2, vec![0u8; 200_000]));
    ws.close();
    server.wait_for_line("closed /echo 1000");
    settled(admin);
}

#[test]
fn plain_requests_never_carry_the_clients_upgrade_headers() {
    let backend = http_backend(1, &[]);
    let (lb, _admin) = http_proxy_with_admin(backend.addr, &[]);
    for raw in [
        // Upgrade without Connection naming it.
        "GET /headers HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\r\n",
        // Connection naming it without an Upgrade header.
        "GET /headers HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n\r\n",
        // HTTP/1.0 has no upgrade (RFC 9110 7.8).
        "GET /headers HTTP/1.0\r\nConnection: Upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n",
        // With a body: forwarded as a plain request.
        "GET /headers HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\nabc",
    ] {
        let mut c = Conn::open(lb.addr);
        c.send(raw.as_bytes());
        let r = c.read_response(false);
        assert_eq!(r.status, 200, "{raw:?}");
        let seen = r.text();
        assert!(!seen.to_ascii_lowercase().contains("upgrade"), "{raw:?} forwarded as:\n{seen}");
        assert!(seen.contains("Connection: keep-alive\n"), "{raw:?} forwarded as:\n{seen}");
    }
}

/// A backend that answers every request with `101`, the switching head and
/// `EARLY` in one write, then echoes every byte and, on the client's FIN,
/// says `BYE` and closes. Request heads it received go to the channel.
fn switching_backend() -> (SocketAddr, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let end = loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let _ = tx.send(String::from_utf8_lossy(&got[..end]).into_owned());
                let mut out =
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\nEARLY".to_vec();
                out.extend_from_slice(&got[end..]);
                if s.write_all(&out).is_err() {
                    return;
                }
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            let _ = s.write_all(b"BYE");
                            return;
                        }
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[test]
fn a_tunnel_carries_bytes_read_past_the_heads_and_passes_half_closes_on() {
    let (backend, heads) = switching_backend();
    let (lb, admin) = http_proxy_with_admin(backend, &[]);

    // A 101 the client did not ask for is the backend's error: 502, and none
    // of what followed it reaches the client.
    let r = Conn::open(lb.addr).get("/plain");
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("EARLY"), "{}", r.text());
    let plain = heads.recv_timeout(PATIENCE).unwrap();
    assert!(!plain.to_ascii_lowercase().contains("upgrade"), "{plain}");

    // The client's first bytes of the new protocol come in the same write as
    // its request; the backend's come in the same write as its 101.
    let mut t = Raw::open(lb.addr);
    t.send(b"GET /raw HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\nEAGER");
    let head = t.head();
    assert_eq!(head.0, 101, "{head:?}");
    assert_eq!((header(&head, "upgrade"), header(&head, "connection")), (Some("raw"), Some("Upgrade")));
    let sent = heads.recv_timeout(PATIENCE).unwrap();
    assert!(sent.contains("\r\nUpgrade: raw\r\n") && sent.ends_with("\r\nConnection: Upgrade\r\n\r\n"), "{sent}");
    let mut first = [0u8; 10];
    t.r.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"EARLYEAGER");
    t.send(b"ping");
    let mut pong = [0u8; 4];
    t.r.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"ping");
    // Half-close: our FIN reaches the backend, and its answer still reaches us.
    t.w.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    t.r.read_to_end(&mut rest).expect("a clean end, not a reset");
    assert_eq!(rest, b"BYE");
    let v = settled(admin);
    assert_eq!(v["backends"][0]["connections_opened"], 2, "{v:#}");
}

#[test]
fn silent_tunnels_outlive_the_backend_and_keepalive_timeouts() {
    if !websockets_available("silent_tunnels_outlive_the_backend_and_keepalive_timeouts") {
        return;
    }
    let server = ws_echo();
    let timeouts = ["--backend-timeout", "300ms", "--keepalive-timeout", "300ms", "--request-timeout", "300ms"];
    let (lb, admin) = http_proxy_with_admin(server.addr, &timeouts);
    let mut ws = Raw::websocket(lb.addr);
    ws.echo("before");
    // Several times every one of those clocks, with the sweep running twice a second.
    std::thread::sleep(Duration::from_millis(1500));
    ws.echo("after 1.5 s of silence");
    ws.close();
    server.wait_for_line("closed /echo 1000");
    settled(admin);
}

#[test]
fn the_idle_timeout_closes_a_silent_tunnel_on_both_sides() {
    if !websockets_available("the_idle_timeout_closes_a_silent_tunnel_on_both_sides") {
        return;
    }
    let server = ws_echo();
    let (lb, admin) = http_proxy_with_admin(server.addr, &["--idle-timeout", "500ms"]);
    let mut ws = Raw::websocket(lb.addr);
    ws.echo("hello");
    let start = Instant::now();
    assert!(ws.at_eof(), "the idle tunnel was not closed");
    let after = start.elapsed();
    assert!(after >= Duration::from_millis(400), "closed after {after:?}, before the idle timeout");
    // The server's side ended too: no close frame came, so 1006.
    server.wait_for_line("closed /echo 1006");
    settled(admin);
}

#[test]
fn a_drain_lets_tunnels_run_until_the_drain_timeout() {
    if !websockets_available("a_drain_lets_tunnels_run_until_the_drain_timeout") {
        return;
    }
    let server = ws_echo();
    let (mut lb, _admin) = http_proxy_with_admin(server.addr, &["--drain-timeout", "1500ms"]);
    let mut ws = Raw::websocket(lb.addr);
    ws.echo("before the signal");
    let signalled = Instant::now();
    lb.signal(libc::SIGTERM);
    lb.wait_for_line("stopped accepting");
    ws.echo("while draining");
    assert!(lb.wait_exit().success());
    let took = signalled.elapsed();
    assert!(took >= Duration::from_millis(1400), "exited {took:?} after the signal, before the drain timeout");
    lb.wait_for_line("drain timeout: closing 1 open sessions");
    assert!(ws.at_eof(), "the tunnel outlived the proxy");
    server.wait_for_line("closed /echo 1006");
}
