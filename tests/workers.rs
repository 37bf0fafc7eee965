//! Workers (`--workers 2`): several reactor threads accept from the same
//! listeners. What they share must behave as one proxy: the counts that
//! fewest_connections reads, the health verdict of the main reactor's
//! checks, failure marking, ejection, the retry budget, and the totals of
//! `/stats`. (Every other end-to-end test runs
//! on workers too with `LBPROXY_TEST_WORKERS=2 cargo test --test NAME`.)

mod util;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use serde_json::Value;
use util::http::Conn;
use util::*;

fn workers_open(stats: &Value) -> Vec<u64> {
    stats["workers"].as_array().expect("workers").iter().map(|w| w["open_clients"].as_u64().unwrap()).collect()
}

/// Open TCP sessions in bursts (a burst arrives faster than one reactor
/// takes it) until both workers hold some; each is answered by `expect`.
fn hold_on_both_workers(lb: SocketAddr, admin: SocketAddr, expect: u32) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..20 {
        let burst: Vec<TcpStream> = (0..8).map(|_| connect(lb)).collect();
        for mut s in burst {
            assert_eq!(server_of(&ask(&mut s, "WHO")), expect);
            held.push(s);
        }
        let n = held.len() as u64;
        let stats = stats_when(admin, "every held session", |s| workers_open(s).iter().sum::<u64>() == n);
        if workers_open(&stats).iter().all(|&o| o > 0) {
            return held;
        }
    }
    panic!("{} sessions all landed on one worker", held.len());
}

#[test]
fn fewest_connections_counts_the_sessions_of_every_worker() {
    let (a, b) = (stream_backend(1), stream_backend(2));
    let (lb, admin) = start_proxy("fewest_connections", &[a.addr, b.addr], &[]);
    admin_post(admin, &format!("/backends/{}/disable", b.addr), "");
    let held = hold_on_both_workers(lb.addr, admin, 1);
    let n = held.len() as u64;
    // One count per backend, shared: it holds the sessions of both workers.
    let stats = admin_stats(admin);
    assert_eq!(stats["backends"][0]["active"], n, "{stats}");
    admin_post(admin, &format!("/backends/{}/enable", b.addr), "");
    // Backend 2 has fewer sessions in total until it has as many: each new
    // session goes there. Counted per worker, the worker taking these (which
    // holds only some of the n) would turn back to backend 1 early.
    let mut fresh = Vec::new();
    for k in 0..n {
        let mut s = connect(lb.addr);
        assert_eq!(server_of(&ask(&mut s, "WHO")), 2, "new session {k} of {n}");
        fresh.push(s);
    }
    let stats = admin_stats(admin);
    assert_eq!((stats["backends"][0]["active"].as_u64(), stats["backends"][1]["active"].as_u64()), (Some(n), Some(n)));
    drop(held);
    drop(fresh);
    // Every worker's sessions give their count back when they end.
    stats_when(admin, "all counts back to 0", |s| {
        s["backends"][0]["active"] == 0 && s["backends"][1]["active"] == 0 && s["open_clients"] == 0
    });
}

#[test]
fn stats_add_up_every_workers_requests_and_sessions() {
    let (a, b) = (http_backend(1, &[]), http_backend(2, &[]));
    let (lb, admin) = start_proxy("round_robin", &[a.addr, b.addr], &["--mode", "http"]);
    const EACH: usize = 25;
    // Connections opened in bursts until both workers hold some.
    let mut conns: Vec<Conn> = Vec::new();
    for _ in 0..20 {
        conns.extend((0..8).map(|_| Conn::open(lb.addr)));
        let n = conns.len() as u64;
        let stats = stats_when(admin, "every connection", |s| workers_open(s).iter().sum::<u64>() == n);
        if workers_open(&stats).iter().all(|&o| o > 0) {
            break;
        }
    }
    let conns_n = conns.len();
    let mut per_backend = [0u64; 2];
    for _ in 0..EACH {
        for c in conns.iter_mut() {
            let r = c.get("/");
            assert_eq!(r.status, 200);
            per_backend[r.server() as usize - 1] += 1;
        }
    }
    let total = (conns_n * EACH) as u64;
    let stats = stats_when(admin, "every request", |s| s["frontends"][0]["requests"] == total);
    let workers = stats["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{stats}");
    let sessions: Vec<u64> = workers.iter().map(|w| w["sessions"].as_u64().unwrap()).collect();
    assert_eq!(sessions.iter().sum::<u64>(), conns_n as u64, "{stats}");
    assert!(sessions.iter().all(|&s| s > 0), "one worker took every connection: {sessions:?}");
    let requests: u64 = workers.iter().map(|w| w["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, total, "each worker's requests add up to the frontend's: {stats}");
    // Per backend, the totals are what the clients saw.
    for (i, &n) in per_backend.iter().enumerate() {
        assert_eq!(stats["backends"][i]["requests"], n, "backend {}: {stats}", i + 1);
    }
    let metrics = admin_get(admin, "/metrics");
    let line = |name: &str| metrics.lines().filter(|l| l.starts_with(name)).count();
    assert_eq!(line("lbproxy_worker_sessions_total{"), 2, "{metrics}");
    drop(conns);
    stats_when(admin, "no buffer in use", |s| s["buffers_in_use"] == 0 && s["open_clients"] == 0);
}

#[test]
fn workers_follow_the_main_reactors_health_checks() {
    let a = stream_backend(1);
    let mut b = stream_backend(2);
    let checks = ["--health-check", "tcp", "--health-interval", "200ms", "--fall", "1", "--rise", "1"];
    let (lb, admin) = start_proxy("round_robin", &[a.addr, b.addr], &checks);
    b.child.kill().expect("kill backend 2");
    let _ = b.child.wait();
    stats_when(admin, "backend 2 down", |s| s["backends"][1]["state"] == "down");
    // Sessions on both workers: none is sent to the dead backend. (A worker
    // that tried it would count a failed connect, then retry on backend 1.)
    let held = hold_on_both_workers(lb.addr, admin, 1);
    let n = held.len() as u64;
    let sessions =
        |s: &Value| s["workers"].as_array().unwrap().iter().map(|w| w["sessions"].as_u64().unwrap()).sum::<u64>();
    let stats = stats_when(admin, "every worker's sessions counted", |s| sessions(s) == n);
    assert_eq!(stats["backends"][1]["connect_failures"], 0, "a worker tried the down backend: {stats}");
    assert_eq!(stats["backends"][0]["sessions"], n, "{stats}");
}

/// HTTP connections opened in bursts until both workers hold some.
fn conns_on_both_workers(lb: SocketAddr, admin: SocketAddr) -> Vec<Conn> {
    let mut conns: Vec<Conn> = Vec::new();
    for _ in 0..20 {
        conns.extend((0..8).map(|_| Conn::open(lb)));
        let n = conns.len() as u64;
        let stats = stats_when(admin, "every connection", |s| workers_open(s).iter().sum::<u64>() == n);
        if workers_open(&stats).iter().all(|&o| o > 0) {
            return conns;
        }
    }
    panic!("{} connections all landed on one worker", conns.len());
}

/// The `/stats` entry of the backend at `addr`.
fn backend_at(stats: &Value, addr: SocketAddr) -> Value {
    let list = stats["backends"].as_array().expect("backends");
    list.iter().find(|b| b["address"] == addr.to_string()).cloned().unwrap_or_else(|| panic!("{addr} not in {stats}"))
}

/// One request on each connection in turn (each waits for the last answer),
/// so both workers send some; the statuses, and which came from the backend.
fn one_request_each(conns: &mut [Conn]) -> Vec<(u16, bool)> {
    conns.iter_mut().map(|c| c.get("/")).map(|r| (r.status, r.header("x-server").is_some())).collect()
}

/// Three 503s spread over two workers eject the backend: the failure count
/// is one per backend, not one per worker. Counted per worker, the worker
/// that saw fewer than 3 would go on sending there (at least 4 in all,
/// since both workers hold connections and there are more than 4).
#[test]
fn ejection_counts_the_failures_of_every_worker() {
    let bad = http_backend(2, &["--fail-status", "503"]);
    // One backend, so the cap must allow it all; no retries: every 503 reaches the client.
    let extra = ["--mode", "http", "--eject-after", "3", "--eject-base", "1m", "--eject-max-percent", "100"];
    let budget = ["--retry-budget", "0", "--retry-min-per-sec", "0"];
    let (lb, admin) = start_proxy("round_robin", &[bad.addr], &[&extra[..], &budget].concat());
    let mut conns = conns_on_both_workers(lb.addr, admin);
    let answers = one_request_each(&mut conns);
    let from_backend = answers.iter().filter(|(_, backend)| *backend).count();
    assert_eq!(from_backend, 3, "the backend answered until its 3rd failure in all: {answers:?}");
    assert!(answers.iter().all(|&(s, _)| s == 503), "{answers:?}");
    let stats = admin_stats(admin);
    let sessions: Vec<u64> =
        stats["workers"].as_array().unwrap().iter().map(|w| w["sessions"].as_u64().unwrap()).collect();
    assert!(sessions.len() == 2 && sessions.iter().all(|&s| s > 0), "{stats}");
    // The main reactor (which served none of them) reports the ejection.
    let b = backend_at(&stats, bad.addr);
    assert_eq!(b["state"], "ejected", "{b}");
    assert_eq!(b["requests"], 3, "{b}");
    assert_eq!(b["outlier"]["ejections"], 1, "{b}");
    assert_eq!(b["outlier"]["reason"], "3 consecutive failures, last: answered 503", "{b}");
    assert!(b["outlier"]["remaining_ms"].as_u64().is_some_and(|ms| ms > 0), "{b}");
    let metrics = admin_get(admin, "/metrics");
    let line = format!("lbproxy_backend_ejected{{backend=\"{}\",pool=\"default\"}} 1\n", bad.addr);
    assert!(metrics.contains(&line), "{metrics}");
}

/// One HTTP connection on each worker, in the order of `/stats` `workers`
/// (and the others opened on the way, kept open so the counts hold). A
/// burst of 8 spreads over the workers; its connections are closed one at
/// a time (from the front or the back, in turn) until the rest are all on
/// one worker, which the counts then tell.
fn conn_on_each_worker(lb: SocketAddr, admin: SocketAddr) -> ([Conn; 2], Vec<Conn>) {
    let total = |s: &Value| workers_open(s).iter().sum::<u64>();
    let (mut known, mut kept): ([Option<Conn>; 2], Vec<Conn>) = ([None, None], Vec::new());
    for round in 0..20 {
        let before = workers_open(&admin_stats(admin));
        let held = before.iter().sum::<u64>();
        let mut burst: Vec<Conn> = (0..8).map(|_| Conn::open(lb)).collect();
        let after = workers_open(&stats_when(admin, "the burst", |s| total(s) == held + 8));
        // How many of the burst each worker holds.
        let mut left = [after[0] - before[0], after[1] - before[1]];
        while left.iter().all(|&n| n > 0) {
            let c = if round % 2 == 0 { burst.remove(0) } else { burst.pop().expect("one left") };
            c.close_and_wait();
            let now =
                workers_open(&stats_when(admin, "a connection closed", |s| total(s) == held + burst.len() as u64));
            let w = (0..2).find(|&w| now[w] < before[w] + left[w]).expect("one worker closed it");
            left[w] -= 1;
        }
        let w = if left[0] > 0 { 0 } else { 1 };
        if known[w].is_none() {
            known[w] = burst.pop();
        }
        kept.extend(burst);
        if let [Some(_), Some(_)] = &known {
            let [a, b] = known.map(|c| c.expect("known"));
            return ([a, b], kept);
        }
    }
    panic!("no burst left a connection on each worker");
}

/// `--max-fails 3` with connects refused: three failed connects in all,
/// two seen by one worker and one by the other, mark the backend down for
/// every worker. Counted per worker, neither would reach 3.
#[test]
fn max_fails_counts_the_failed_connects_of_every_worker() {
    let dead = dead_addr();
    let extra = ["--mode", "http", "--max-fails", "3", "--fail-timeout", "1m"];
    let (lb, admin) = start_proxy("round_robin", &[dead], &extra);
    let ([mut a, mut b], _kept) = conn_on_each_worker(lb.addr, admin);
    let statuses: Vec<u16> = (0..6).map(|i| if i % 2 == 0 { a.get("/") } else { b.get("/") }.status).collect();
    // 502: a connect was tried and failed; 503: no backend to try.
    assert_eq!(statuses, [502, 502, 502, 503, 503, 503]);
    let stats = admin_stats(admin);
    let b = backend_at(&stats, dead);
    assert_eq!(b["connect_failures"], 3, "{b}");
    assert_eq!(b["state"], "down", "{b}");
    assert_eq!(b["failure_marking"]["consecutive_failures"], 3, "{b}");
    assert!(b["failure_marking"]["down_remaining_ms"].as_u64().is_some_and(|ms| ms > 0), "{b}");
    assert!(b["failure_marking"]["reason"].as_str().is_some_and(|r| r.contains("refused")), "{b}");
    // The transition is counted once, though both workers' counts are added.
    let metrics = admin_get(admin, "/metrics");
    let line = format!("lbproxy_backend_went_down_total{{backend=\"{dead}\",pool=\"default\"}} 1\n");
    assert!(metrics.contains(&line), "{metrics}");
}

/// The retry budget is one per frontend: `--retry-min-per-sec 1` (no
/// percentage) allows 10 retries per 10-second window for both workers
/// together. Nearly every request is first sent to the failing backend
/// (weight 100 to 1), so each worker wants more than a few retries; counted
/// per worker they would get up to 10 each.
#[test]
fn the_retry_budget_is_shared_by_every_worker() {
    let (bad, good) = (http_backend(2, &["--fail-status", "503"]), http_backend(1, &[]));
    let (weighted, plain) = (format!("{}@100", bad.addr), good.addr.to_string());
    let extra = ["--mode", "http", "--retry-budget", "0", "--retry-min-per-sec", "1", "--backend", &weighted];
    let (lb, admin) = start_proxy("weighted_round_robin", &[], &[&extra[..], &["--backend", &plain]].concat());
    let mut conns = conns_on_both_workers(lb.addr, admin);
    // Sent within a second or so: the window is 10 s long.
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.extend(one_request_each(&mut conns));
    }
    let refused = answers.iter().filter(|&&(s, _)| s == 503).count() as u64;
    let ok = answers.iter().filter(|&&(s, _)| s == 200).count() as u64;
    assert_eq!(ok + refused, answers.len() as u64, "{answers:?}");
    let front =
        stats_when(admin, "every request", |s| s["frontends"][0]["requests"] == answers.len())["frontends"][0].clone();
    assert_eq!(front["retries"], 10, "10 retries for the whole frontend: {front}");
    // Each refusal is counted once, by the worker that refused it.
    assert_eq!(front["retries_budget_exhausted"], refused, "{front}");
    assert!(refused >= 20, "most requests wanted a retry: {answers:?}");
}

/// `/explain` asks the main reactor's copy of the policy, and says whether
/// every worker's copy picks the same: maglev does (a request with each key
/// on connections held by both workers goes where /explain said), random
/// does not (each worker draws its own numbers).
#[test]
fn explain_says_whether_every_worker_picks_alike() {
    let b: Vec<Proc> = (1..=3).map(|id| http_backend(id, &[])).collect();
    let addrs: Vec<SocketAddr> = b.iter().map(|p| p.addr).collect();
    let args = ["--mode", "http", "--workers", "2", "--hash-key", "header:X-Key"];
    let (lb, admin) = lbproxy_with_admin("maglev", &addrs, &args);
    let explain = |key: &str| -> Value {
        serde_json::from_str(&admin_get(admin, &format!("/explain?frontend=default&key={key}"))).unwrap()
    };
    let mut conns = conns_on_both_workers(lb.addr, admin);
    for k in 0..12 {
        let e = explain(&format!("user-{k}"));
        assert_eq!(
            e["workers"],
            serde_json::json!({"reactors": 2, "explained_by": "main reactor", "same_in_every_worker": true})
        );
        for c in conns.iter_mut() {
            c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Key: user-{k}\r\n\r\n").as_bytes());
            let r = c.read_response(false);
            assert_eq!(addrs[r.server() as usize - 1].to_string(), e["pick"], "key user-{k}: {e}");
        }
    }
    drop((conns, lb));
    let (_lb, admin) = lbproxy_with_admin("random", &addrs, &["--mode", "http", "--workers", "2"]);
    let e: Value = serde_json::from_str(&admin_get(admin, "/explain?frontend=default&key=127.0.0.1")).unwrap();
    assert_eq!(e["workers"]["same_in_every_worker"], false, "{e}");
}

#[test]
fn workers_flag_and_key_are_checked() {
    let run = |args: &[&str]| {
        let out = Command::new(lbproxy_bin()).args(args).output().expect("run lbproxy");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run(&["--workers", "0", "--backend", "127.0.0.1:1", "--check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--workers") && err.contains("\"0\"") && err.contains("auto"), "{err}");
    let (code, err) = run(&["--workers", "many", "--backend", "127.0.0.1:1", "--check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("\"many\""), "{err}");
    let dir = std::env::temp_dir().join(format!("lbproxy-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lb.toml");
    let body = "[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:1\"\npool = \"app\"\n\n[[pool]]\nname = \"app\"\nservers = [\"127.0.0.1:2\"]\n";
    std::fs::write(&file, format!("[global]\nworkers = \"lots\"\n\n{body}")).unwrap();
    let (code, err) = run(&["--config", file.to_str().unwrap(), "--check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("lb.toml:2") && err.contains("workers") && err.contains("\"lots\""), "{err}");
    std::fs::write(&file, format!("[global]\nworkers = \"auto\"\n\n{body}")).unwrap();
    let out = Command::new(lbproxy_bin()).args(["--config", file.to_str().unwrap(), "--check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("workers = \"auto\""));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A new process that cannot start its workers (too few descriptors) must
/// not have told the running one to stop: it says `ready` only once all run.
#[test]
fn a_new_process_whose_workers_fail_leaves_the_old_one_serving() {
    let b = stream_backend(1);
    let sock = std::env::temp_dir().join(format!("lbproxy-workers-upgrade-{}.sock", std::process::id()));
    let port = dead_addr().port().to_string();
    let common = ["--bind", "127.0.0.1", "--port", &port, "--stats-interval", "0", "--backend", &b.addr.to_string()];
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info").args(common).args(["--workers", "2", "--upgrade-socket"]).arg(&sock);
    let mut old = spawn_cmd_and_wait(cmd);
    assert_eq!(who(old.addr), 1);
    // 24 descriptors: enough to take the listener over, not for 8 reactors.
    let new = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n 24; exec {} {} --workers 8 --upgrade-socket {}",
            lbproxy_bin().display(),
            common.join(" "),
            sock.display()
        ))
        .output()
        .expect("run the new process");
    assert!(!new.status.success(), "the new process started: {}", String::from_utf8_lossy(&new.stderr));
    let err = String::from_utf8_lossy(&new.stderr);
    assert!(err.contains("Too many open files"), "{err}");
    // The old process goes on serving and never started to drain.
    for _ in 0..20 {
        assert_eq!(who(old.addr), 1);
    }
    assert!(old.is_running());
    assert!(!old.log.lock().unwrap().iter().any(|l| l.contains("stopped accepting")), "{:?}", old.log.lock().unwrap());
    let _ = std::fs::remove_file(&sock);
}

/// lbproxy with `--workers 2` and an admin port; returns it and the admin address.
fn start_proxy(policy: &str, backends: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(extra);
    lbproxy_with_admin(policy, backends, &args)
}
