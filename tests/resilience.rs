//! Slow start, outlier ejection and the retry budget, end to end: real
//! lbproxy processes in front of examples/http_backend (which can be cold,
//! or fail with 503 on demand).

mod util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::http::Conn;
use util::*;

/// The `/stats` entry of the backend at `addr` (default pool).
fn backend_stats(admin: SocketAddr, addr: SocketAddr) -> Value {
    let stats = admin_stats(admin);
    let list = stats["backends"].as_array().expect("backends").clone();
    list.into_iter().find(|b| b["address"] == addr.to_string()).unwrap_or_else(|| panic!("{addr} not in {stats}"))
}

/// Poll `/stats` until `done` holds for backend `addr` (bounded by PATIENCE).
fn wait_backend(admin: SocketAddr, addr: SocketAddr, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let b = backend_stats(admin, addr);
        if done(&b) {
            return b;
        }
        assert!(start.elapsed() < PATIENCE, "{addr} never became {what}: {b}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Backend ids of `n` requests, each with its own hash key (`?k=N`).
fn served(proxy: SocketAddr, n: usize) -> BTreeMap<u32, usize> {
    let mut c = Conn::open(proxy);
    let mut per = BTreeMap::new();
    for k in 0..n {
        let r = c.get(&format!("/?k={k}"));
        assert_eq!(r.status, 200);
        *per.entry(r.server()).or_default() += 1;
    }
    per
}

/// A backend added to a running pool gets under 10% of the requests in the
/// first tenth of a 10-minute ramp, in round_robin and in maglev (hashing:
/// the ramp holds its keys back too); without slow start it gets its third.
#[test]
fn slow_start_gives_a_new_backend_under_a_tenth_in_the_first_tenth_of_its_ramp() {
    let (b1, b2) = (http_backend(1, &[]), http_backend(2, &[]));
    // Backend 3 is cold (slower) for its first minute: what slow start protects.
    let b3 = http_backend(3, &["--cold-ms", "60000", "--cold-delay-ms", "1"]);
    let add = format!(r#"{{"n":1,"hostnames":["{}"]}}"#, b3.addr);
    for policy in ["round_robin", "maglev"] {
        let hash = ["--hash-key", "query:k"];
        let (lb, admin) = start_proxy(policy, &[b1.addr, b2.addr], &["--slow-start", "10m", hash[0], hash[1]]);
        admin_post(admin, "/add", &add);
        let per = served(lb.addr, 300);
        let new = per.get(&3).copied().unwrap_or(0);
        assert!(new < 30, "{policy}: the joining backend got {new} of 300: {per:?}");
        // All of them came within the first tenth of the ramp (the factor says so).
        let b = backend_stats(admin, b3.addr);
        let factor = b["slow_start"]["factor"].as_f64().unwrap_or_else(|| panic!("{policy}: no ramp in {b}"));
        assert!(factor < 0.1, "{policy}: {b}");
        assert_eq!(b["state"], "up");

        let (plain, plain_admin) = start_proxy(policy, &[b1.addr, b2.addr], &hash);
        admin_post(plain_admin, "/add", &add);
        let per = served(plain.addr, 300);
        let new = per.get(&3).copied().unwrap_or(0);
        assert!(new >= 60, "{policy} without slow start: the new backend got only {new} of 300: {per:?}");
        assert!(backend_stats(plain_admin, b3.addr)["slow_start"].is_null());
    }
}

/// A backend that went down and comes back up (its health check passes
/// again) ramps too: under 10% of the requests right after it is up.
#[test]
fn slow_start_ramps_a_backend_that_comes_back_up() {
    let (b1, b2) = (http_backend(1, &[]), http_backend(2, &[]));
    let back: SocketAddr = ([127, 0, 0, 1], quiet_port()).into();
    let checks = ["--health-check", "http:/heartbeat", "--health-interval", "100ms", "--rise", "1", "--fall", "1"];
    let (lb, admin) =
        start_proxy("round_robin", &[b1.addr, b2.addr, back], &[&checks[..], &["--slow-start", "10m"]].concat());
    wait_backend(admin, back, "down", |b| b["state"] == "down");
    let mut cmd = std::process::Command::new(example_bin("http_backend"));
    cmd.args(["--port", &back.port().to_string(), "--id", "3"]);
    let _b3 = spawn_stdout_and_wait(cmd);
    let up = wait_backend(admin, back, "up", |b| b["state"] == "up");
    assert!(up["slow_start"]["factor"].as_f64().is_some_and(|f| f < 0.1), "{up}");
    let per = served(lb.addr, 300);
    let share = per.get(&3).copied().unwrap_or(0);
    assert!(share < 30, "the returning backend got {share} of 300: {per:?}");
    let b = backend_stats(admin, back);
    assert!(b["slow_start"]["factor"].as_f64().is_some_and(|f| f < 0.1), "still in the first tenth: {b}");
}

/// A backend that answers 503 is ejected after exactly --eject-after of
/// them, gets nothing while ejected, and comes back by itself after the base
/// time; /stats says why.
#[test]
fn ejection_happens_after_n_errors_and_ends_after_the_base_time() {
    let good = http_backend(1, &[]);
    let bad = http_backend(2, &["--fail-status", "503"]);
    // No retries: every 503 reaches the client, so the count is exact.
    let extra = ["--eject-after", "3", "--eject-base", "3s", "--retry-budget", "0", "--retry-min-per-sec", "0"];
    let (lb, admin) = start_proxy("round_robin", &[good.addr, bad.addr], &extra);
    let mut c = Conn::open(lb.addr);
    let mut failed = 0;
    for _ in 0..6 {
        let r = c.get("/");
        if r.status == 503 {
            assert_eq!(r.server(), 2, "the backend's own 503");
            failed += 1;
        }
    }
    assert_eq!(failed, 3, "round robin sent every other request to the failing backend");
    let b = backend_stats(admin, bad.addr);
    assert_eq!(b["state"], "ejected", "{b}");
    assert_eq!(b["outlier"]["ejected"], true);
    assert_eq!(b["outlier"]["ejections"], 1);
    assert_eq!(b["outlier"]["duration_ms"], 3000, "the first ejection lasts the base time");
    assert_eq!(b["outlier"]["reason"], "3 consecutive failures, last: answered 503");
    let before = b["requests"].as_u64().unwrap();
    assert_eq!(before, 3);

    let back = wait_backend(admin, bad.addr, "back from ejection", |b| b["outlier"]["ejected"] == false);
    assert_eq!(back["state"], "up", "{back}");
    assert_eq!(back["outlier"]["reason"], "3 consecutive failures, last: answered 503", "the reason stays");
    // While it was out, everything went to the good backend.
    assert_eq!(back["requests"].as_u64().unwrap(), before);
    // Back in rotation: it gets requests again (and fails them).
    let statuses: Vec<u16> = (0..2).map(|_| c.get("/").status).collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    let metrics = admin_get(admin, "/metrics");
    let line = format!("lbproxy_backend_ejections_total{{backend=\"{}\",pool=\"default\"}} 1\n", bad.addr);
    assert!(metrics.contains(&line), "{metrics}");
}

/// With every backend failing, --eject-max-percent 50 ejects one of two and
/// holds the other back; a backend refusing connects is ejected for
/// gateway failures, with the reason saying so.
#[test]
fn ejection_never_takes_more_than_max_percent_and_counts_gateway_failures() {
    let (x, y) = (http_backend(1, &["--fail-status", "500"]), http_backend(2, &["--fail-status", "500"]));
    let extra = ["--eject-after", "2", "--eject-base", "1m", "--retry-budget", "0", "--retry-min-per-sec", "0"];
    let (lb, admin) = start_proxy("round_robin", &[x.addr, y.addr], &extra);
    let mut c = Conn::open(lb.addr);
    for _ in 0..8 {
        assert_eq!(c.get("/").status, 500);
    }
    let (bx, by) = (backend_stats(admin, x.addr), backend_stats(admin, y.addr));
    let ejected = [&bx, &by].iter().filter(|b| b["outlier"]["ejected"] == true).count();
    assert_eq!(ejected, 1, "50% of 2 backends is one: {bx} {by}");
    let held = bx["outlier"]["held_back_by_max_percent"].as_u64().unwrap()
        + by["outlier"]["held_back_by_max_percent"].as_u64().unwrap();
    assert!(held >= 1, "{bx} {by}");

    let good = http_backend(3, &[]);
    let dead = dead_addr();
    let extra = ["--eject-after", "2", "--eject-base", "1m", "--max-fails", "0", "--retry-budget", "100"];
    let (lb, admin) = start_proxy("round_robin", &[good.addr, dead], &extra);
    let mut c = Conn::open(lb.addr);
    for _ in 0..6 {
        assert_eq!(c.get("/").status, 200, "connect failures are retried on the good backend");
    }
    let b = wait_backend(admin, dead, "ejected", |b| b["outlier"]["ejected"] == true);
    let reason = b["outlier"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("2 consecutive failures, last: connect failed"), "{reason}");
}

/// Backends 2 and 4 of 4 answer 503. With a budget of 20% (no floor), some
/// GETs are retried on a good backend, at most a fifth of the requests, and
/// the rest of the 503s reach the client: retries stop. With 100%, none do.
#[test]
fn a_retry_budget_of_20_percent_stops_retries_when_half_the_backends_fail() {
    let good = [http_backend(1, &[]), http_backend(3, &[])];
    let bad = [http_backend(2, &["--fail-status", "503"]), http_backend(4, &["--fail-status", "503"])];
    let all = [good[0].addr, bad[0].addr, good[1].addr, bad[1].addr];
    let run = |budget: &str| {
        let (lb, admin) = start_proxy("round_robin", &all, &["--retry-budget", budget, "--retry-min-per-sec", "0"]);
        let mut c = Conn::open(lb.addr);
        let mut per = BTreeMap::<u16, usize>::new();
        for _ in 0..200 {
            *per.entry(c.get("/").status).or_default() += 1;
        }
        let stats = admin_stats(admin);
        (lb, admin, per, stats["frontends"][0].clone())
    };

    let (_lb, _admin, per, front) = run("20%");
    let retries = front["retries"].as_u64().unwrap();
    let (ok, unavailable) = (per.get(&200).copied().unwrap_or(0), per.get(&503).copied().unwrap_or(0));
    assert_eq!(ok + unavailable, 200, "{per:?}");
    assert!((1..=40).contains(&retries), "retries {retries} not within 20% of 200 requests: {front}");
    assert!(ok > 100, "retries turned some 503s into answers: {per:?}");
    assert!(unavailable >= 1, "the budget stopped retries, so some 503s reached the client: {per:?}");
    assert!(front["retries_budget_exhausted"].as_u64().unwrap() >= 1, "{front}");

    let (lb, admin, per, front) = run("100%");
    assert_eq!(per.get(&200), Some(&200), "every failed GET retried: {per:?} {front}");
    // A POST is not idempotent: its 503 is passed on, never retried.
    let mut c = Conn::open(lb.addr);
    let mut posts = BTreeMap::<u16, usize>::new();
    for _ in 0..4 {
        c.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        *posts.entry(c.read_response(false).status).or_default() += 1;
    }
    // The good backends answer an empty POST with 404; the failing ones' 503 passes through.
    assert_eq!(posts, BTreeMap::from([(404, 2), (503, 2)]), "{posts:?}");
    let metrics = admin_get(admin, "/metrics");
    assert!(metrics.contains("lbproxy_frontend_retries_budget_exhausted_total{frontend=\"default\"} 0\n"));

    // A backend alone has nobody to retry on: its own 503 reaches the client.
    let (lb, admin) = start_proxy("round_robin", &[bad[0].addr], &["--retry-budget", "100%"]);
    let r = Conn::open(lb.addr).get("/");
    assert_eq!((r.status, r.server()), (503, 2));
    assert_eq!(admin_stats(admin)["frontends"][0]["retries"], 0);

    // The budget bounds connect-failure retries too: none allowed, a refused
    // connect is a 502.
    let (lb, admin) = start_proxy(
        "round_robin",
        &[good[0].addr, dead_addr()],
        &["--retry-budget", "0", "--retry-min-per-sec", "0", "--max-fails", "0"],
    );
    let mut c = Conn::open(lb.addr);
    let statuses: Vec<u16> = (0..6).map(|_| c.get("/").status).collect();
    let refused = statuses.iter().filter(|&&s| s == 502).count();
    assert!(refused >= 1 && statuses.iter().all(|&s| s == 200 || s == 502), "{statuses:?}");
    let front = admin_stats(admin)["frontends"][0].clone();
    assert_eq!(front["retries"], 0, "{front}");
    assert_eq!(front["retries_budget_exhausted"].as_u64(), Some(refused as u64), "{front}");
}

/// lbproxy with `--mode http` and an admin port; returns it and the admin address.
fn start_proxy(policy: &str, backends: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--mode", "http"];
    args.extend_from_slice(extra);
    lbproxy_with_admin(policy, backends, &args)
}
