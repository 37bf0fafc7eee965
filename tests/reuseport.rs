//! `--accept reuseport`: each worker has a listening socket of its own per
//! frontend (SO_REUSEPORT). The kernel spreads clients over them; reload
//! keeps every socket, a binary upgrade hands every one over (to a process
//! with as many reactors, fewer or more, or with `--accept exclusive`), and
//! nothing waiting in any socket's queue is lost.

mod util;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use util::*;

fn worker_sessions(stats: &Value) -> Vec<u64> {
    stats["workers"].as_array().expect("workers").iter().map(|w| w["sessions"].as_u64().unwrap()).collect()
}

/// Listening sockets on `port` that `pid` holds, from /proc/net/tcp (state 0A).
fn listening_sockets(pid: u32, port: u16) -> usize {
    let inodes: Vec<String> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            (local_port == port && f[3] == "0A").then(|| f[9].to_string())
        })
        .collect();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    let mut held: Vec<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| Some(t.to_str()?.strip_prefix("socket:[")?.trim_end_matches(']').to_string()))
        .filter(|i| inodes.contains(i))
        .collect();
    held.sort();
    held.dedup();
    held.len()
}

#[test]
fn short_connections_spread_over_both_workers_sockets() {
    let b = stream_backend(1);
    let (lb, admin) = lbproxy_with_admin("round_robin", &[b.addr], &["--workers", "2", "--accept", "reuseport"]);
    lb.wait_for_line("a listening socket each (SO_REUSEPORT)");
    assert_eq!(listening_sockets(lb.pid(), lb.addr.port()), 2, "one socket per worker");
    const N: u64 = 200;
    for _ in 0..N {
        assert_eq!(who(lb.addr), 1);
    }
    let stats = stats_when(admin, "every session", |s| worker_sessions(s).iter().sum::<u64>() == N);
    let sessions = worker_sessions(&stats);
    assert_eq!(sessions.len(), 2, "{stats}");
    // The kernel picks a socket by a hash of the client's port: 200 new
    // ports all on one socket would be a broken group, not bad luck.
    assert!(sessions.iter().all(|&s| s > 0), "one worker took every connection: {sessions:?}");
}

fn upgrade_socket(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lbproxy-reuseport-{name}-{}.sock", std::process::id()))
}

/// lbproxy on a fixed port (both processes of an upgrade name the same address).
fn proxy_at(port: u16, sock: &PathBuf, backend: SocketAddr, args: &[&str]) -> Proc {
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--stats-interval", "0"])
        .args(["--backend", &backend.to_string(), "--upgrade-socket"])
        .arg(sock)
        .args(args);
    spawn_cmd_and_wait(cmd)
}

/// `n` threads opening short sessions one after another until `stop`;
/// returns (served, failures).
fn steady_clients(
    addr: SocketAddr,
    n: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(usize, Vec<String>)>> {
    (0..n).map(|_| steady_tcp_clients(addr, Arc::clone(stop))).collect()
}

fn stop_and_count(stop: &AtomicBool, load: Vec<std::thread::JoinHandle<(usize, Vec<String>)>>) -> usize {
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for t in load {
        let (o, f) = t.join().unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} of {} sessions failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..5.min(failed.len())]
    );
    ok
}

/// A binary upgrade from `old` to `new` arguments under steady load: the
/// old process hands `handed` sockets over and exits, no session fails,
/// and the new one then listens on `after` sockets.
fn upgrade_under_load(name: &str, old_args: &[&str], new_args: &[&str], handed: usize, after: usize) {
    let b = stream_backend(1);
    let port = dead_addr().port();
    let sock = upgrade_socket(name);
    let mut old = proxy_at(port, &sock, b.addr, old_args);
    let addr = old.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_clients(addr, 4, &stop);
    let new = proxy_at(port, &sock, b.addr, new_args);
    new.wait_for_line("took over listeners from the running lbproxy (0 not needed here");
    old.wait_for_line(&format!("handed {handed} listeners to a new lbproxy process"));
    assert!(old.wait_exit().success(), "old process failed");
    // Served by the new process alone now, on every socket it was handed.
    let mut after_upgrade = 0;
    while after_upgrade < 200 {
        assert_eq!(who(addr), 1);
        after_upgrade += 1;
    }
    let ok = stop_and_count(&stop, load);
    assert!(ok > 0);
    assert_eq!(listening_sockets(new.pid(), port), after, "{:?}", new.log.lock().unwrap());
    let _ = std::fs::remove_file(&sock);
}

#[test]
fn upgrade_under_load_hands_every_workers_socket_over() {
    let two = ["--workers", "2", "--accept", "reuseport"];
    upgrade_under_load("same", &two, &two, 2, 2);
}

#[test]
fn upgrade_to_fewer_workers_polls_the_extra_sockets() {
    let (two, one) = (["--workers", "2", "--accept", "reuseport"], ["--workers", "1", "--accept", "reuseport"]);
    upgrade_under_load("fewer", &two, &one, 2, 2);
}

#[test]
fn upgrade_to_more_workers_binds_more_sockets() {
    let (two, three) = (["--workers", "2", "--accept", "reuseport"], ["--workers", "3", "--accept", "reuseport"]);
    upgrade_under_load("more", &two, &three, 2, 3);
}

#[test]
fn upgrade_from_reuseport_to_exclusive_keeps_every_socket() {
    let (reuse, excl) = (["--workers", "2", "--accept", "reuseport"], ["--workers", "2", "--accept", "exclusive"]);
    upgrade_under_load("to-exclusive", &reuse, &excl, 2, 2);
}

#[test]
fn upgrade_from_exclusive_to_reuseport_fails_clearly_and_the_old_one_serves_on() {
    let b = stream_backend(1);
    let port = dead_addr().port();
    let sock = upgrade_socket("from-exclusive");
    let mut old = proxy_at(port, &sock, b.addr, &["--workers", "2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_clients(old.addr, 2, &stop);
    let mut cmd = Command::new(lbproxy_bin());
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--backend", &b.addr.to_string()])
        .args(["--workers", "2", "--accept", "reuseport", "--upgrade-socket"])
        .arg(&sock);
    let new = cmd.output().expect("run the new process");
    let err = String::from_utf8_lossy(&new.stderr);
    assert!(!new.status.success(), "the new process started: {err}");
    assert!(err.contains("not SO_REUSEPORT") && err.contains("--accept exclusive"), "{err}");
    old.wait_for_line("binary upgrade failed, still serving");
    for _ in 0..50 {
        assert_eq!(who(old.addr), 1);
    }
    stop_and_count(&stop, load);
    assert!(old.is_running());
    assert!(!old.log.lock().unwrap().iter().any(|l| l.contains("stopped accepting")), "{:?}", old.log.lock().unwrap());
    let _ = std::fs::remove_file(&sock);
}

/// A config file for the reload test: frontend `web` over pool `pool`, and
/// with `extra` a second frontend on that port.
fn reload_config(port: u16, admin: u16, backend: SocketAddr, pool: &str, extra: Option<u16>) -> String {
    let mut s = format!(
        "[global]\nadmin = \"127.0.0.1:{admin}\"\nstats_interval = \"0\"\nworkers = 2\naccept = \"reuseport\"\n\n\
         [[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:{port}\"\npool = \"{pool}\"\n\n"
    );
    if let Some(p) = extra {
        s += &format!("[[frontend]]\nname = \"more\"\nbind = \"127.0.0.1:{p}\"\npool = \"{pool}\"\n\n");
    }
    for name in ["a", "b"] {
        s += &format!("[[pool]]\nname = \"{name}\"\nservers = [\"{backend}\"]\n\n");
    }
    s
}

#[test]
fn reloads_under_load_keep_every_socket_and_fail_nothing() {
    let b = stream_backend(1);
    let (port, admin_port, more) = (dead_addr().port(), dead_addr().port(), dead_addr().port());
    let dir = std::env::temp_dir().join(format!("lbproxy-reuseport-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lb.toml");
    std::fs::write(&file, reload_config(port, admin_port, b.addr, "a", None)).unwrap();
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info").arg("--config").arg(&file);
    let lb = spawn_cmd_and_wait(cmd);
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_clients(lb.addr, 4, &stop);
    // Each reload changes the pool: the frontend is replaced by one that
    // takes its sockets over (every worker's), while the old one drains.
    for round in 0..6 {
        let pool = if round % 2 == 0 { "b" } else { "a" };
        std::fs::write(&file, reload_config(port, admin_port, b.addr, pool, None)).unwrap();
        let answer = admin_post(admin, "/reload", "");
        assert!(answer.contains("frontend web listening on"), "{answer}");
        assert_eq!(listening_sockets(lb.pid(), port), 2);
    }
    let ok = stop_and_count(&stop, load);
    assert!(ok > 0);
    // A frontend added by a reload gets a socket per worker too, and both serve it.
    std::fs::write(&file, reload_config(port, admin_port, b.addr, "a", Some(more))).unwrap();
    let answer = admin_post(admin, "/reload", "");
    assert!(answer.contains("frontend more listening on"), "{answer}");
    assert_eq!(listening_sockets(lb.pid(), more), 2);
    let before = worker_sessions(&admin_stats(admin));
    let more_addr: SocketAddr = format!("127.0.0.1:{more}").parse().unwrap();
    for _ in 0..200 {
        assert_eq!(who(more_addr), 1);
    }
    let total = before.iter().sum::<u64>() + 200;
    let stats = stats_when(admin, "the new frontend's sessions", |s| worker_sessions(s).iter().sum::<u64>() == total);
    let grew: Vec<u64> = worker_sessions(&stats).iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(grew.iter().all(|&g| g > 0), "one worker took every connection of the new frontend: {grew:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn accept_flag_and_key_are_checked() {
    let run = |args: &[&str]| {
        let out = Command::new(lbproxy_bin()).args(args).output().expect("run lbproxy");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, err, _) = run(&["--accept", "maybe", "--backend", "127.0.0.1:1", "--check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--accept") && err.contains("\"maybe\"") && err.contains("exclusive or reuseport"), "{err}");
    let (_, _, help) = run(&["--help"]);
    assert!(help.contains("--accept <ACCEPT>") && help.contains("[default: exclusive]"), "{help}");
    let dir = std::env::temp_dir().join(format!("lbproxy-accept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lb.toml");
    let body = "[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:1\"\npool = \"app\"\n\n[[pool]]\nname = \"app\"\nservers = [\"127.0.0.1:2\"]\n";
    std::fs::write(&file, format!("[global]\naccept = \"fast\"\n\n{body}")).unwrap();
    let (code, err, _) = run(&["--config", file.to_str().unwrap(), "--check"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("lb.toml:2") && err.contains("accept") && err.contains("\"fast\""), "{err}");
    std::fs::write(&file, format!("[global]\naccept = \"reuseport\"\n\n{body}")).unwrap();
    let (code, err, out) = run(&["--config", file.to_str().unwrap(), "--check"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("accept = \"reuseport\""), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_refuses_new_clients_on_every_socket_and_drains_both_workers() {
    let b = stream_backend(1);
    let args = ["--workers", "2", "--accept", "reuseport", "--drain-timeout", "15s"];
    let (mut lb, admin) = lbproxy_with_admin("round_robin", &[b.addr], &args);
    // Sessions until both workers hold some (the kernel hashes each new port).
    let mut held = Vec::new();
    let open = |s: &Value| {
        s["workers"].as_array().unwrap().iter().map(|w| w["open_clients"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    for _ in 0..20 {
        let mut s = connect(lb.addr);
        assert_eq!(server_of(&ask(&mut s, "WHO")), 1);
        held.push(s);
        let n = held.len() as u64;
        let stats = stats_when(admin, "every held session", |s| open(s).iter().sum::<u64>() == n);
        if open(&stats).iter().all(|&o| o > 0) {
            break;
        }
    }
    assert!(open(&admin_stats(admin)).iter().all(|&o| o > 0), "{} sessions all on one worker", held.len());
    lb.signal(libc::SIGTERM);
    lb.wait_for_line("stopped accepting");
    // Every worker's socket is shut: no new client is queued to be reset
    // later. (Read from /proc: a connect could reach another test's
    // listener on the port given up.)
    assert_eq!(listening_sockets(lb.pid(), lb.addr.port()), 0, "a socket still listens after SIGTERM");
    // Each open session, on either worker, is still served until it ends.
    for s in held.iter_mut() {
        assert!(ask(s, "MSG after").contains("echo=after"));
    }
    assert!(lb.is_running());
    for s in held {
        close_and_wait(s);
    }
    assert!(lb.wait_exit().success());
}

/// A worker whose socket the main reactor shut at SIGTERM stops accepting
/// from it (accept says EINVAL there) instead of retrying it for ever, so
/// an idle process exits at once.
#[test]
fn sigterm_with_nothing_open_exits_without_waiting_out_the_drain() {
    let b = stream_backend(1);
    let args = ["--workers", "2", "--accept", "reuseport", "--drain-timeout", "60s"];
    let mut lb = lbproxy("round_robin", &[b.addr], &args);
    assert_eq!(who(lb.addr), 1);
    lb.signal(libc::SIGTERM);
    assert!(lb.wait_exit().success());
    lb.wait_for_line("all sessions finished, exiting");
}
