//! Health checks, runtime membership and the admin API, end to end.

mod util;

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use util::*;

/// One admin request; returns (status, body).
fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    admin_with(addr, method, path, body, None)
}

fn admin_with(addr: SocketAddr, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, PATIENCE).expect("admin connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Start lbproxy with an admin port; returns the proxy and the admin address.
fn proxy_with_admin(policy: &str, backends: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr) {
    let admin_port = dead_addr().port().to_string();
    let mut args = vec!["--admin", &admin_port];
    args.extend_from_slice(extra);
    let lb = lbproxy(policy, backends, &args);
    let line = lb.wait_for_line("admin API on http://");
    let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).expect("admin addr");
    (lb, addr.parse().unwrap())
}

fn replicas(admin_addr: SocketAddr) -> Vec<String> {
    let (status, body) = admin(admin_addr, "GET", "/rep", "");
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["status"], "successful");
    let list: Vec<String> =
        v["message"]["replicas"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    assert_eq!(v["message"]["N"].as_u64().unwrap() as usize, list.len());
    list
}

#[test]
fn every_admin_endpoint_answers_with_the_documented_json() {
    let (b1, b2) = (stream_backend(1), stream_backend(2));
    let (_lb, a) = proxy_with_admin("round_robin", &[b1.addr, b2.addr], &[]);
    assert_eq!(replicas(a), [b1.addr.to_string(), b2.addr.to_string()]);

    // add: success, then each error.
    let b3 = stream_backend(3);
    let (st, body) = admin(a, "POST", "/add", &format!(r#"{{"n":1,"hostnames":["{}"]}}"#, b3.addr));
    assert_eq!((st, json(&body)["message"]["N"].as_u64()), (200, Some(3)));
    let errors = [
        (
            r#"{"n":1,"hostnames":["127.0.0.1:1","127.0.0.1:2"]}"#,
            "Length of hostname list is more than newly added instances",
        ),
        (r#"{"n":1,"hostnames":["foo:bar"]}"#, "invalid backend address \"foo:bar\""),
        (r#"{"n":1,"hostnames":["#, "malformed JSON"),
        (r#"{"n":2,"hostnames":["127.0.0.1:7"]}"#, "no --spawn-cmd"),
    ];
    for (req, want) in errors {
        let (st, body) = admin(a, "POST", "/add", req);
        let v = json(&body);
        assert_eq!(st, 400, "{req}");
        assert_eq!(v["status"], "failure");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.starts_with("<Error> "), "{body}");
        assert!(msg.contains(want), "{req}: {body}");
    }
    let (st, body) = admin(a, "POST", "/add", &format!(r#"{{"n":1,"hostnames":["{}"]}}"#, b3.addr));
    assert_eq!(st, 400);
    assert!(body.contains("already a backend"), "{body}");

    // rm: unknown, then success.
    let (st, body) = admin(a, "DELETE", "/rm", r#"{"n":1,"hostnames":["127.0.0.1:9"]}"#);
    assert_eq!(st, 400);
    assert!(body.contains("unknown backend 127.0.0.1:9"), "{body}");
    let (st, body) = admin(a, "DELETE", "/rm", &format!(r#"{{"n":1,"hostnames":["{}"]}}"#, b3.addr));
    assert_eq!(st, 200, "{body}");
    assert_eq!(replicas(a).len(), 2);

    // drain / disable / enable, and an unknown backend.
    for action in ["drain", "disable", "enable"] {
        let (st, body) = admin(a, "POST", &format!("/backends/{}/{action}", b1.addr), "");
        assert_eq!(st, 200, "{action}: {body}");
    }
    let (st, _) = admin(a, "POST", "/backends/127.0.0.1:9/drain", "");
    assert_eq!(st, 404);

    // policy: good and bad.
    let (st, body) = admin(a, "PUT", "/policy", r#"{"policy":"leastconn"}"#);
    assert_eq!((st, json(&body)["message"]["policy"].as_str()), (200, Some("fewest_connections")));
    assert_eq!(admin(a, "PUT", "/policy", r#"{"policy":"fastest"}"#).0, 400);

    // stats
    who(_lb.addr);
    let (st, body) = admin(a, "GET", "/stats", "");
    assert_eq!(st, 200);
    let v = json(&body);
    assert_eq!(v["backends"].as_array().unwrap().len(), 2);
    for key in [
        "address",
        "state",
        "weight",
        "active",
        "sessions",
        "requests",
        "bytes_in",
        "bytes_out",
        "connect_failures",
        "health",
    ] {
        assert!(v["backends"][0].get(key).is_some(), "stats lack {key}: {body}");
    }
    assert!(v["totals"]["sessions"].as_u64().unwrap() >= 1);
    assert!(v["uptime_s"].as_f64().is_some());

    // dashboard, 404, 405, 413
    let (st, page) = admin(a, "GET", "/", "");
    assert_eq!(st, 200);
    assert!(page.contains("<html") && page.contains("/stats"));
    let (st, body) = admin(a, "GET", "/nowhere", "");
    assert_eq!((st, json(&body)["status"].as_str()), (404, Some("failure")));
    assert_eq!(admin(a, "GET", "/add", "").0, 405);
    assert_eq!(admin(a, "POST", "/add", &"x".repeat(70_000)).0, 413);
}

#[test]
fn admin_token_is_required_when_set() {
    let b = stream_backend(1);
    let (_lb, a) = proxy_with_admin("round_robin", &[b.addr], &["--admin-token", "s3cret"]);
    let (st, body) = admin(a, "GET", "/rep", "");
    assert_eq!(st, 401);
    assert_eq!(json(&body)["status"], "failure");
    assert_eq!(admin_with(a, "GET", "/rep", "", Some("wrong")).0, 401);
    assert_eq!(admin_with(a, "GET", "/rep", "", Some("s3cret")).0, 200);
    // Only the header counts: a token in the URL leaks into logs and history.
    assert_eq!(admin(a, "GET", "/rep?token=s3cret", "").0, 401);
    // The dashboard page is static and asks for the token itself.
    let (st, page) = admin(a, "GET", "/", "");
    assert_eq!(st, 200);
    assert!(page.contains("sessionStorage"), "{page}");
    assert_eq!(admin(a, "GET", "/stats", "").0, 401);
}

#[test]
fn read_only_routes_can_be_open_while_changes_need_the_token() {
    let b = stream_backend(1);
    let extra = ["--admin-token", "s3cret", "--admin-read-only-open"];
    let (_lb, a) = proxy_with_admin("round_robin", &[b.addr], &extra);
    for path in ["/stats", "/metrics", "/rep", "/"] {
        assert_eq!(admin(a, "GET", path, "").0, 200, "{path}");
    }
    let drain = format!("/backends/{}/drain", b.addr);
    assert_eq!(admin(a, "POST", &drain, "").0, 401);
    assert_eq!(admin(a, "PUT", "/policy", r#"{"policy":"ip_hash"}"#).0, 401);
    assert_eq!(admin(a, "POST", "/reload", "").0, 401);
    assert_eq!(admin_with(a, "POST", &drain, "", Some("s3cret")).0, 200);
}

#[test]
fn metrics_are_valid_prometheus_text() {
    let (b1, b2) = (stream_backend(1), stream_backend(2));
    let (lb, a) = proxy_with_admin("round_robin", &[b1.addr, b2.addr], &[]);
    for _ in 0..4 {
        who(lb.addr);
    }
    let (st, text) = admin(a, "GET", "/metrics", "");
    assert_eq!(st, 200);
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty());
            helped.insert(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
        } else {
            let (series, value) = line.rsplit_once(' ').expect("sample");
            value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line}"));
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with("lbproxy_") || name.starts_with("process_"), "{line}");
            // A histogram's samples are its name plus _bucket, _sum, _count.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family) && helped.contains(family), "sample before its TYPE/HELP: {line}");
            if let Some(labels) = series.strip_prefix(name)
                && !labels.is_empty()
            {
                assert!(labels.starts_with('{') && labels.ends_with("\"}"), "bad labels: {line}");
            }
            samples += 1;
        }
    }
    assert!(samples >= 2 + 8 * 2, "{text}");
    let want = format!("lbproxy_backend_sessions_total{{backend=\"{}\",pool=\"default\"}} 2", b1.addr);
    assert!(text.contains(&want), "{text}");
}

#[test]
fn policy_switch_takes_effect_live() {
    let b: Vec<_> = (1..=3).map(stream_backend).collect();
    let addrs: Vec<_> = b.iter().map(|p| p.addr).collect();
    let (lb, a) = proxy_with_admin("round_robin", &addrs, &[]);
    let before: BTreeSet<u32> = (0..6).map(|_| who(lb.addr)).collect();
    assert_eq!(before.len(), 3);
    assert_eq!(admin(a, "PUT", "/policy", r#"{"policy":"ip_hash"}"#).0, 200);
    let after: BTreeSet<u32> = (0..12).map(|_| who(lb.addr)).collect();
    assert_eq!(after.len(), 1, "ip_hash sends one client address to one backend: {after:?}");
}

type Seen = Arc<Mutex<Vec<Result<u32, String>>>>;

/// Open sessions in a loop until `stop`; record which backend served each
/// and any client-visible error. Each session holds `gate`, so a test that
/// takes the gate knows no session is in flight.
fn session_loop(lb: SocketAddr, stop: Arc<AtomicBool>, gate: Arc<Mutex<()>>) -> (std::thread::JoinHandle<()>, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let t = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let _in_flight = gate.lock().unwrap();
            let r = (|| {
                let mut s = TcpStream::connect_timeout(&lb, PATIENCE).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(PATIENCE)).unwrap();
                s.write_all(b"WHO\n").map_err(|e| e.to_string())?;
                let mut line = String::new();
                std::io::BufReader::new(&s).read_line(&mut line).map_err(|e| e.to_string())?;
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix("server=")?.parse().ok())
                    .ok_or_else(|| format!("bad reply {line:?}"))
            })();
            seen2.lock().unwrap().push(r);
            drop(_in_flight);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    (t, seen)
}

#[test]
fn a_killed_backend_leaves_after_fall_and_rejoins_after_rise() {
    let (mut b1, b2, b3) = (stream_backend(1), stream_backend(2), stream_backend(3));
    let port = b1.addr.port();
    let (lb, _a) = proxy_with_admin(
        "round_robin",
        &[b1.addr, b2.addr, b3.addr],
        &["--health-check", "tcp", "--health-interval", "100ms", "--fall", "2", "--rise", "2"],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Mutex::new(()));
    let (t, seen) = session_loop(lb.addr, stop.clone(), gate.clone());
    while seen.lock().unwrap().len() < 20 {
        std::thread::sleep(Duration::from_millis(10));
    }
    {
        // Kill between sessions: one cut mid-reply would rightly be an error.
        let _no_session = gate.lock().unwrap();
        b1.child.kill().unwrap();
        b1.child.wait().unwrap();
    }
    lb.wait_for_line(&format!("backend {} DOWN", b1.addr));
    let mark = seen.lock().unwrap().len();
    while seen.lock().unwrap().len() < mark + 30 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let after_down: Vec<_> = seen.lock().unwrap()[mark..].to_vec();
    assert!(after_down.iter().all(|r| matches!(r, Ok(2) | Ok(3))), "served by a down backend: {after_down:?}");

    // Restart on the same port: it comes back after `rise` checks.
    let revived = std::process::Command::new(example_bin("stream_backend"))
        .args(["--port", &port.to_string(), "--id", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _revived = KillOnDrop(revived);
    lb.wait_for_line(&format!("backend {} UP", b1.addr));
    let mark = seen.lock().unwrap().len();
    while seen.lock().unwrap().len() < mark + 30 {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    let all = seen.lock().unwrap().clone();
    assert!(all.iter().all(Result::is_ok), "a client saw an error: {:?}", all.iter().find(|r| r.is_err()));
    assert!(all[mark..].contains(&Ok(1)), "backend 1 did not rejoin");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_removed_backend_finishes_its_transfer_and_gets_no_new_sessions() {
    let (b1, b2) = (stream_backend(1), stream_backend(2));
    let (lb, a) = proxy_with_admin("round_robin", &[b1.addr, b2.addr], &[]);
    // The first session goes to backend 1 (round robin): a 64 MiB download.
    let mut s = connect(lb.addr);
    let size: u64 = 64 << 20;
    s.write_all(format!("DOWNLOAD {size} 9\n").as_bytes()).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    let n = s.read(&mut buf).unwrap();
    h.update(&buf[..n]);
    got += n as u64;

    let (st, body) = admin(a, "DELETE", "/rm", &format!(r#"{{"n":1,"hostnames":["{}"]}}"#, b1.addr));
    assert_eq!(st, 200, "{body}");
    assert_eq!(replicas(a), [b2.addr.to_string()]);
    for _ in 0..10 {
        assert_eq!(who(lb.addr), 2, "a new session reached the removed backend");
    }
    while got < size {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "transfer cut at {got}");
        h.update(&buf[..n]);
        got += n as u64;
    }
    assert_eq!(h.finalize().to_vec(), pattern_sha256(9, size));
    drop(s);
    lb.wait_for_line(&format!("backend {} drained and removed", b1.addr));
}

#[test]
fn spawned_backends_join_after_checks_and_are_replaced_when_they_die() {
    let cmd = format!("{} --port {{port}} --id {{id}}", example_bin("stream_backend").display());
    let (lb, a) = proxy_with_admin(
        "round_robin",
        &[],
        &["--spawn-cmd", &cmd, "--replicas", "2", "--health-interval", "100ms", "--rise", "1"],
    );
    lb.wait_for_line("UP");
    let first = replicas(a);
    assert_eq!(first.len(), 2);
    // Both are served once up.
    let mut served = BTreeSet::new();
    let deadline = Instant::now() + PATIENCE;
    while served.len() < 2 && Instant::now() < deadline {
        served.insert(who(lb.addr));
    }
    assert_eq!(served, BTreeSet::from([1, 2]));

    // Kill spawned backend 1: it is replaced and the count stays 2.
    let line = lb.wait_for_line("spawned backend 1 at");
    let pid: i32 = line.split("(pid ").nth(1).and_then(|r| r.split(')').next()).and_then(|p| p.parse().ok()).unwrap();
    // SAFETY: kill(2) on a pid lbproxy started for this test.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    lb.wait_for_line("replaced dead backend");
    let now = replicas(a);
    assert_eq!(now.len(), 2, "{now:?}");
    assert_ne!(now, first);

    // /add with more replicas than names spawns; /rm stops what it spawned.
    let (st, body) = admin(a, "POST", "/add", r#"{"n":1,"hostnames":[]}"#);
    assert_eq!(st, 200, "{body}");
    assert_eq!(replicas(a).len(), 3);
    let newest = replicas(a).pop().unwrap();
    let (st, _) = admin(a, "DELETE", "/rm", &format!(r#"{{"n":1,"hostnames":["{newest}"]}}"#));
    assert_eq!(st, 200);
    lb.wait_for_line(&format!("stopped spawned backend 4 at {newest}"));

    // Spawned backends do not outlive lbproxy, whether it exits or is killed.
    let alive: Vec<i32> = lb
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("spawned backend ") && l.contains("(pid "))
        .filter_map(|l| l.split("(pid ").nth(1)?.split(')').next()?.parse().ok())
        .collect();
    let mut lb = lb;
    lb.signal(libc::SIGKILL);
    lb.wait_exit();
    let deadline = Instant::now() + PATIENCE;
    for pid in alive {
        // SAFETY: kill(pid, 0) only checks whether the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid) {
            assert!(Instant::now() < deadline, "spawned backend {pid} outlived lbproxy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

#[test]
fn random_bytes_at_the_admin_port_get_json_errors_and_it_keeps_serving() {
    let b = stream_backend(1);
    let (mut lb, a) = proxy_with_admin("round_robin", &[b.addr], &[]);
    let mut rng = XorShift(0x9e37_79b9u64);
    let mut next = || rng.next();
    for i in 0..100 {
        let len = (next() % 200) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 {
            let mut req = format!("POST /add HTTP/1.1\r\nContent-Length: {len}\r\n\r\n").into_bytes();
            req.append(&mut junk);
            junk = req;
        } else {
            junk.extend_from_slice(b"\r\n\r\n");
        }
        let mut s = TcpStream::connect(a).unwrap();
        let _ = s.write_all(&junk);
        let _ = s.shutdown(std::net::Shutdown::Write);
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        if let Some((_, body)) = out.split_once("\r\n\r\n") {
            assert!(json(body)["status"] == "failure", "{out}");
        }
    }
    assert!(lb.is_running());
    assert_eq!(replicas(a), [b.addr.to_string()]);
    assert_eq!(who(lb.addr), 1);
}

#[test]
fn a_backend_named_twice_in_one_request_counts_once() {
    let (b1, b2) = (stream_backend(1), stream_backend(2));
    let (lb, a) = proxy_with_admin("round_robin", &[b1.addr], &[]);
    let twice = format!(r#"{{"n":2,"hostnames":["{0}","{0}"]}}"#, b2.addr);
    let (st, body) = admin(a, "POST", "/add", &twice);
    assert_eq!((st, json(&body)["message"]["N"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(replicas(a), [b1.addr.to_string(), b2.addr.to_string()]);
    let (_, stats) = admin(a, "GET", "/stats", "");
    let listed: Vec<String> =
        json(&stats)["backends"].as_array().unwrap().iter().map(|b| b["address"].as_str().unwrap().into()).collect();
    assert_eq!(listed, [b1.addr.to_string(), b2.addr.to_string()], "{stats}");
    // Listed twice, b2 would get two sessions in every three.
    let mut served = [0; 2];
    for _ in 0..6 {
        served[who(lb.addr) as usize - 1] += 1;
    }
    assert_eq!(served, [3, 3], "sessions per backend");

    // /rm reads the same body: the repeat does not take one more backend with it.
    let (st, body) = admin(a, "DELETE", "/rm", &twice);
    assert_eq!(st, 200, "{body}");
    assert_eq!(replicas(a), [b1.addr.to_string()]);
}

#[test]
fn an_oversized_admin_body_gets_a_readable_413_and_the_port_keeps_answering() {
    let b = stream_backend(1);
    let (_lb, a) = proxy_with_admin("round_robin", &[b.addr], &[]);
    let size = 10 << 20;
    let mut s = connect(a);
    // Head and body go out from another thread, as from a client that reads
    // only once it has sent everything; the head shares its first write with
    // the body, so the proxy finds more than the head when it answers.
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut request = format!("POST /add HTTP/1.1\r\nHost: admin\r\nContent-Length: {size}\r\n\r\n").into_bytes();
        request.resize(request.len() + size, b'x');
        for chunk in request.chunks(1 << 20) {
            if w.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("the 413 answer up to an orderly close");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{out}");
    let v = json(body);
    assert_eq!(v["status"], "failure");
    assert!(v["message"].as_str().unwrap().contains(&size.to_string()), "{body}");
    writer.join().unwrap();
    assert_eq!(admin(a, "GET", "/stats", "").0, 200);
}

#[test]
fn admin_connections_beyond_the_cap_get_503_and_traffic_goes_on() {
    const CAP: usize = 64; // lbproxy's admin::MAX_CONNS
    let b = stream_backend(1);
    let (lb, a) = proxy_with_admin("round_robin", &[b.addr], &[]);
    let held: Vec<TcpStream> = (0..CAP).map(|_| connect(a)).collect();
    // Accepts happen in arrival order, so this one is past the cap.
    let mut extra = connect(a);
    let mut out = String::new();
    extra.read_to_string(&mut out).expect("a 503 answer up to an orderly close");
    assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).expect("head and body");
    assert_eq!(json(body)["status"], "failure", "{out}");
    assert_eq!(who(lb.addr), 1, "the data port while the admin port is full");
    for s in held {
        close_and_wait(s);
    }
    assert_eq!(admin(a, "GET", "/stats", "").0, 200);
}

#[test]
fn an_admin_connection_without_a_complete_request_is_closed_after_the_admin_timeout() {
    // The timeout is admin::TIMEOUT, 10 s: this test waits that long.
    let b = stream_backend(1);
    let (_lb, a) = proxy_with_admin("round_robin", &[b.addr], &[]);
    let silent = connect(a);
    let mut partial = connect(a);
    partial.write_all(b"GET /stats HTTP/1.1\r\nHost: admin\r\n").unwrap();
    for (name, mut s) in [("silent", silent), ("partial head", partial)] {
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or_else(|e| panic!("{name}: {e} instead of an orderly close"));
        assert_eq!(n, 0, "{name}: got {:?} instead of an orderly close", String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(admin(a, "GET", "/stats", "").0, 200);
}
