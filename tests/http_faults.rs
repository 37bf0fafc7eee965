//! HTTP mode against a backend that misbehaves (examples/faulty_backend.rs)
//! and clients that stall or leave: every exchange ends in bounded time, and
//! buffers, timers and memory come back. Real lbproxy, real backend processes.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::http::Conn;
use util::*;

/// Start examples/faulty_backend. It logs on stdout like the other example
/// backends; util's public spawner reads stderr, so a shell points one at
/// the other and then becomes the backend (same pid).
fn faulty_backend(id: u32) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec \"$0\" \"$@\" 1>&2"]).arg(example_bin("faulty_backend")).args([
        "--port",
        "0",
        "--id",
        &id.to_string(),
    ]);
    spawn_cmd_and_wait(cmd)
}

/// A top-level counter of /stats; the test fails at once if it is missing.
fn stat(v: &Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or_else(|| panic!("/stats has no {name:?}: {v}"))
}

/// Poll /stats until `buffers_in_use` and the backend's `active` are both 0.
fn wait_until_settled(admin: SocketAddr) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = admin_stats(admin);
        let buffers = stat(&v, "buffers_in_use");
        let active = v["backends"][0]["active"].as_u64().expect("backend active");
        if buffers == 0 && active == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {PATIENCE:?} with nothing in flight: buffers_in_use {buffers}, backend active {active}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn raw_client(addr: SocketAddr, request: &[u8]) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(request).expect("send");
    s
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// Read until what arrived contains `needle`; returns all of it.
fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        match s.read(&mut buf) {
            Ok(0) => panic!("closed before {:?}; got {:?}", lossy(needle), lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read before {:?}: {e}; got {:?}", lossy(needle), lossy(&got)),
        }
    }
    got
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Read until the proxy ends the connection (end of file or a reset) and
/// return what arrived before; `Err` if it is still open after `within`.
fn ends_within(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("connection still open after {within:?}; got {:?}", lossy(&got)));
        }
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return Ok(got),
        }
    }
}

#[test]
fn a_stalled_response_body_ends_after_the_backend_timeout() {
    let b = faulty_backend(1);
    let (lb, admin) = http_proxy_with_admin(b.addr, &["--backend-timeout", "1s"]);
    let mut c = raw_client(lb.addr, &get("/stall-body"));
    let head = read_until(&mut c, b"\r\n\r\nhello");
    assert!(head.starts_with(b"HTTP/1.1 200"), "{:?}", lossy(&head));
    if let Err(e) = ends_within(&mut c, PATIENCE) {
        panic!("a response body stalled past --backend-timeout 1s: {e}");
    }
    b.wait_for_line("CLOSED /stall-body");
    wait_until_settled(admin);
}

#[test]
fn a_client_that_leaves_mid_exchange_closes_the_backend_connection() {
    let b = faulty_backend(1);
    let log = std::env::temp_dir().join(format!("lbproxy-test-{}-faults-leave.csv", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let (mut lb, admin) = http_proxy_with_admin(b.addr, &["--access-log", log.to_str().unwrap()]);

    // Before the response head: the backend would keep it for --backend-timeout (30 s).
    let c = raw_client(lb.addr, &get("/stall-head"));
    b.wait_for_line("REQ /stall-head");
    drop(c);
    b.wait_for_line("CLOSED /stall-head");

    // In the middle of the response body.
    let mut c = raw_client(lb.addr, &get("/stall-body"));
    read_until(&mut c, b"\r\n\r\nhello");
    drop(c);
    b.wait_for_line("CLOSED /stall-body");
    wait_until_settled(admin);

    // Both are logged as 499 (client closed), as nginx does.
    lb.signal(libc::SIGTERM);
    assert!(lb.wait_exit().success());
    let text = std::fs::read_to_string(&log).expect("access log");
    let _ = std::fs::remove_file(&log);
    for path in ["/stall-head", "/stall-body"] {
        let row = text.lines().find(|l| l.split(',').nth(3) == Some(path));
        let status = row.and_then(|r| r.split(',').nth(5));
        assert_eq!(status, Some("499"), "access log row for {path}:\n{text}");
    }
}

#[test]
fn idle_timeout_applies_while_waiting_for_the_backend() {
    let b = faulty_backend(1);
    let (lb, _admin) = http_proxy_with_admin(b.addr, &["--idle-timeout", "1s", "--backend-timeout", "60s"]);
    let started = Instant::now();
    let mut c = raw_client(lb.addr, &get("/stall-head"));
    if let Err(e) = ends_within(&mut c, PATIENCE) {
        panic!("--idle-timeout 1s did not end an exchange with no traffic: {e}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the idle timeout",
        started.elapsed()
    );
    b.wait_for_line("CLOSED /stall-head");
}

#[test]
fn an_idle_keepalive_client_is_closed_after_the_keepalive_timeout() {
    let b = faulty_backend(1);
    let (lb, _admin) = http_proxy_with_admin(b.addr, &["--keepalive-timeout", "1s"]);
    let mut c = raw_client(lb.addr, &get("/ok"));
    let answer = read_until(&mut c, b"server=1");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{:?}", lossy(&answer));
    let idle_since = Instant::now();
    if let Err(e) = ends_within(&mut c, PATIENCE) {
        panic!("an idle keep-alive client outlived --keepalive-timeout 1s: {e}");
    }
    let idle = idle_since.elapsed();
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?} idle, before the timeout");

    let out = Command::new(lbproxy_bin()).arg("--help").output().expect("lbproxy --help");
    let help = lossy(&out.stdout);
    let at = help.find("--keepalive-timeout").unwrap_or_else(|| panic!("--help lacks --keepalive-timeout:\n{help}"));
    // The flag's entry: its line and the description lines up to the next flag.
    let mut lines = help[at..].lines();
    let entry: Vec<&str> =
        lines.next().into_iter().chain(lines.take_while(|l| !l.trim_start().starts_with('-'))).collect();
    let entry = entry.join("\n");
    assert!(entry.contains("[default: 75s]"), "--keepalive-timeout default is not 75s in --help: {entry}");
}

#[test]
fn endless_interim_responses_are_subject_to_backpressure() {
    let b = faulty_backend(1);
    let (lb, _admin) = http_proxy_with_admin(b.addr, &[]);
    // This client never reads what the proxy sends it.
    let _c = raw_client(lb.addr, &get("/endless-100"));
    let outcome = b.wait_for_line(" bytes");
    let peak_kib = lb.status_kib("VmHWM");
    println!("backend: {outcome}; proxy peak RSS {peak_kib} KiB");
    assert!(
        outcome.starts_with("BLOCKED"),
        "the proxy kept reading 100 Continue heads for a client that reads nothing: backend says {outcome:?}, \
         proxy peak RSS {peak_kib} KiB"
    );
    assert!(peak_kib < 48 * 1024, "proxy peak RSS {peak_kib} KiB while buffering interim responses");
}

#[test]
fn retrying_on_a_stale_pooled_connection_gives_its_buffer_back() {
    let b = faulty_backend(1);
    let (lb, admin) = http_proxy_with_admin(b.addr, &["--pool-size", "1"]);
    let mut c = Conn::open(lb.addr);
    for i in 0..40 {
        let r = c.get("/once");
        assert_eq!((r.status, r.text()), (200, "server=1".to_string()), "request {i}");
    }
    b.wait_for_line("STALE");
    drop(c);
    wait_until_settled(admin);
}

#[test]
fn answered_requests_leave_no_timers_behind() {
    let b = faulty_backend(1);
    let (lb, admin) = http_proxy_with_admin(b.addr, &["--backend-timeout", "600s"]);
    let mut c = Conn::open(lb.addr);
    for i in 0..5000 {
        assert_eq!(c.get("/ok").status, 200, "request {i}");
    }
    let pending = stat(&admin_stats(admin), "timers_pending");
    println!("{pending} timers pending");
    assert!(pending <= 64, "{pending} timers pending after 5000 answered requests");
}

#[test]
fn a_malformed_chunked_request_body_gets_400() {
    let b = faulty_backend(1);
    let (lb, _admin) = http_proxy_with_admin(b.addr, &[]);
    // The head is fine and goes to the backend; the body's first chunk size is not hex.
    let mut c = raw_client(
        lb.addr,
        b"POST /ok HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    let answer = ends_within(&mut c, PATIENCE).unwrap_or_else(|e| panic!("no answer to a malformed body: {e}"));
    assert!(answer.starts_with(b"HTTP/1.1 400"), "expected a 400 answer, got {:?}", lossy(&answer));
}

#[test]
fn partial_request_heads_do_not_pin_full_buffers() {
    const CLIENTS: usize = 1000;
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_max < 2500 {
            println!("skipped: the open-file hard limit {} is below 2500", rl.rlim_max);
            return;
        }
        rl.rlim_cur = rl.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
    }
    let b = faulty_backend(1);
    let (lb, admin) = http_proxy_with_admin(b.addr, &[]);
    assert_eq!(Conn::open(lb.addr).get("/ok").status, 200);
    let before = lb.status_kib("VmRSS");
    let slow: Vec<TcpStream> = (0..CLIENTS).map(|_| raw_client(lb.addr, b"GET / HTTP/1.1\r\nHost: x\r\n")).collect();
    let deadline = Instant::now() + PATIENCE;
    while stat(&admin_stats(admin), "open_clients") < CLIENTS as u64 {
        assert!(Instant::now() < deadline, "the proxy did not take {CLIENTS} clients");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A full exchange after them: the reactor has been through their reads.
    assert_eq!(Conn::open(lb.addr).get("/ok").status, 200);
    let grown = lb.status_kib("VmRSS").saturating_sub(before);
    println!("{CLIENTS} partial heads: proxy RSS {before} KiB -> +{grown} KiB");
    assert!(grown < 24 * 1024, "{CLIENTS} partial request heads grew the proxy's RSS by {grown} KiB");
    drop(slow);
}

/// Issue 9's pool defect, end to end: a backend that closes idle keep-alive
/// connections after 1 s, and bursts 1.5 s apart, so pooled connections are
/// found closed (or close while reused). Every request succeeds (the stale
/// retry), and no buffer stays taken once idle.
#[test]
fn a_backend_closing_idle_connections_between_bursts_costs_no_request_and_no_buffer() {
    const BURSTS: usize = 8;
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 10;
    let b = http_backend(1, &["--keepalive-ms", "1000"]);
    let (lb, admin) = http_proxy_with_admin(b.addr, &[]);
    let mut failed = Vec::new();
    for burst in 0..BURSTS {
        // The gap is the scenario: the backend's idle timeout must pass.
        if burst > 0 {
            std::thread::sleep(Duration::from_millis(1500));
        }
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let addr = lb.addr;
                std::thread::spawn(move || {
                    let mut c = Conn::open(addr);
                    (0..PER_CLIENT).map(|_| c.try_get("/").map(|r| r.status)).collect::<Vec<_>>()
                })
            })
            .collect();
        for w in workers {
            for r in w.join().unwrap() {
                if r != Ok(200) {
                    failed.push(format!("burst {burst}: {r:?}"));
                }
            }
        }
    }
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), BURSTS * CLIENTS * PER_CLIENT);
    wait_until_settled(admin);
    let opened = admin_stats(admin)["backends"][0]["connections_opened"].as_u64().unwrap_or(0);
    println!("{} requests over {BURSTS} bursts: {opened} backend connections opened", BURSTS * CLIENTS * PER_CLIENT);
    assert!(opened > CLIENTS as u64, "the backend's idle closes were never met: {opened} connections");
}
