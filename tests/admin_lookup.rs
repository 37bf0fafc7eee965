//! `POST /add` with host names: the lookup runs off the reactor thread.
//! Everything runs in a network namespace of its own whose resolv.conf
//! points at tests/slow_dns.py, a DNS server that answers after 3 s.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use util::http::Conn;
use util::netns::{self, Netns};
use util::*;

const SLOW_NAME: &str = "slow-backend.test";

/// CLOCK_MONOTONIC in seconds: the clock slow_dns.py stamps its lines with.
fn monotonic() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we pass.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0);
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The time stamped on a slow_dns.py line (`... at SECONDS`).
fn stamp(line: &str) -> f64 {
    line.rsplit(" at ").next().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("no time in {line:?}"))
}

/// One admin request from a thread inside `ns`: the raw answer ("" when
/// the connection was closed without one).
fn admin_raw_in(ns: &Netns, addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    ns.enter_this_thread();
    let mut s = TcpStream::connect_timeout(&addr, PATIENCE).expect("admin connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// One admin request from a thread inside `ns`; (status, body).
fn admin_in(ns: &Netns, addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let out = admin_raw_in(ns, addr, method, path, body);
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{out:?}"));
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A namespace with slow_dns.py answering `name` after `delay` seconds, two
/// http_backends, and lbproxy (HTTP mode, admin port) in front of the first.
struct World {
    dns: Proc,
    b1: Proc,
    b2: Proc,
    lb: Proc,
    admin: SocketAddr,
    // Last: dropped after the processes in it.
    ns: Netns,
}

impl World {
    fn new(tag: &str, name: &str, delay: &str) -> World {
        // One attempt, long timeout: the resolver waits the delay out.
        let ns = Netns::new(tag, Some("nameserver 127.0.0.1\noptions timeout:20 attempts:1\n"));
        let dns_script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slow_dns.py");
        let dns = spawn_cmd_and_wait(
            ns.command("python3", &[dns_script, "--delay", delay, "--name", &format!("{name}=127.0.0.1")]),
        );
        let backend_bin = example_bin("http_backend");
        let backend =
            |id: &str| spawn_stdout_and_wait(ns.command(backend_bin.to_str().unwrap(), &["--port", "0", "--id", id]));
        let (b1, b2) = (backend("1"), backend("2"));
        let lbproxy_bin = lbproxy_bin();
        let mut cmd: Command = ns.command(
            lbproxy_bin.to_str().unwrap(),
            &["--mode", "http", "--bind", "127.0.0.1", "--port", "0", "--admin", "127.0.0.1:0"],
        );
        cmd.args(["--backend", &b1.addr.to_string(), "--stats-interval", "0"]).env("RUST_LOG", "info");
        let lb = spawn_cmd_and_wait(cmd);
        let line = lb.wait_for_line("admin API on http://");
        let admin =
            line.split("http://").nth(1).and_then(|r| r.split('/').next()).and_then(|a| a.parse().ok()).expect("admin");
        World { dns, b1, b2, lb, admin, ns }
    }

    fn admin(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let (ns, admin) = (&self.ns, self.admin);
        std::thread::scope(|s| s.spawn(|| admin_in(ns, admin, method, path, body)).join().unwrap())
    }
}

#[test]
fn a_slow_lookup_for_add_does_not_hold_up_proxied_requests() {
    if !netns::available("a_slow_lookup_for_add_does_not_hold_up_proxied_requests") {
        return;
    }
    let w = World::new("dns", SLOW_NAME, "3");
    let (ns, dns, admin) = (&w.ns, &w.dns, w.admin);
    let b1_addr = w.b1.addr.to_string();
    let (proxy, port2) = (w.lb.addr, w.b2.addr.port());
    std::thread::scope(|s| {
        let add = s.spawn(|| {
            let body = format!(r#"{{"n":1,"hostnames":["{SLOW_NAME}:{port2}"]}}"#);
            admin_in(ns, admin, "POST", "/add", &body)
        });
        // The lookup has reached the DNS server: the reactor is past the /add.
        dns.wait_for_line(&format!("query A {SLOW_NAME}"));
        let got = s
            .spawn(|| {
                ns.enter_this_thread();
                let r = Conn::open(proxy).get("/");
                (r.status, monotonic())
            })
            .join()
            .unwrap();
        let (status, body) = add.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("127.0.0.1:{port2}")), "{body}");
        let answered = stamp(&dns.wait_for_line(&format!("answered A {SLOW_NAME}")));
        assert_eq!(got.0, 200, "status of the proxied request");
        assert!(got.1 < answered, "the proxied request finished at {} after the DNS answer at {answered}", got.1);
    });

    // The name came to the second backend.
    let (status, body) = w.admin("GET", "/rep", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&b1_addr) && body.contains(&format!("127.0.0.1:{port2}")), "{body}");

    // A name the server does not know: a clear answer naming it.
    let (status, body) = w.admin("POST", "/add", r#"{"n":1,"hostnames":["missing.test:80"]}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("cannot resolve \\\"missing.test\\\""), "{body}");
}

/// A lookup that outlasts the admin connection's 10 s deadline: the
/// connection is closed unanswered, and the late result changes nothing.
#[test]
fn a_lookup_past_the_admin_deadline_closes_the_connection_and_adds_nothing() {
    if !netns::available("a_lookup_past_the_admin_deadline_closes_the_connection_and_adds_nothing") {
        return;
    }
    let name = "slower-backend.test";
    let w = World::new("late", name, "13");
    let port2 = w.b2.addr.port();
    let body = format!(r#"{{"n":1,"hostnames":["{name}:{port2}"]}}"#);
    let answer =
        std::thread::scope(|s| s.spawn(|| admin_raw_in(&w.ns, w.admin, "POST", "/add", &body)).join().unwrap());
    assert_eq!(answer, "", "closed without an answer at the deadline");
    w.dns.wait_for_line(&format!("answered A {name}"));
    w.lb.wait_for_line("finished after its admin connection closed: not applied");
    let (status, rep) = w.admin("GET", "/rep", "");
    assert_eq!(status, 200);
    assert!(!rep.contains(&format!(":{port2}")), "{rep}");
}
