//! Binary upgrade: a new process takes the listening sockets over a Unix
//! socket; the old one stops accepting, finishes its sessions and exits.
//! Under a steady stream of connections, none fails.

mod util;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use util::http::Conn;
use util::*;

fn upgrade_socket(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lbproxy-upgrade-{name}-{}.sock", std::process::id()))
}

/// lbproxy on a fixed port (both processes must name the same address).
fn proxy_at(port: u16, socket: &PathBuf, args: &[&str]) -> Proc {
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--stats-interval", "0"])
        .arg("--upgrade-socket")
        .arg(socket)
        .args(args);
    if let Some(n) = std::env::var_os("LBPROXY_TEST_WORKERS") {
        cmd.arg("--workers").arg(n);
    }
    spawn_cmd_and_wait(cmd)
}

#[test]
fn tcp_upgrade_under_load_drops_nothing_and_the_old_process_finishes_its_sessions() {
    let b = stream_backend(1);
    let port = dead_addr().port();
    let sock = upgrade_socket("tcp");
    let backend = b.addr.to_string();
    let mut old = proxy_at(port, &sock, &["--backend", &backend]);
    let addr = old.addr;
    // A long session opened before the upgrade stays with the old process.
    let mut long = connect(addr);
    assert_eq!(server_of(&ask(&mut long, "WHO")), 1);

    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_tcp_clients(addr, stop.clone());
    let mut new = proxy_at(port, &sock, &["--backend", &backend]);
    new.wait_for_line("took over listeners from the running lbproxy");
    old.wait_for_line("handed 1 listeners to a new lbproxy process");
    old.wait_for_line("binary upgrade: stopped accepting");

    // The old process still serves its open session, then exits when it ends.
    assert_eq!(server_of(&ask(&mut long, "WHO")), 1);
    assert!(old.is_running());
    close_and_wait(long);
    assert!(old.wait_exit().success(), "old process failed");

    // New sessions keep coming, now all through the new process.
    let served_after = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        assert_eq!(who(addr), 1);
        served_after.fetch_add(1, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} sessions failed during the upgrade: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 0);
    assert!(new.is_running());
    let _ = std::fs::remove_file(&sock);
}

#[test]
fn http_upgrade_hands_over_the_admin_port_and_serves_every_request() {
    let b = http_backend(1, &[]);
    let port = dead_addr().port();
    let admin = dead_addr().port().to_string();
    let sock = upgrade_socket("http");
    let backend = b.addr.to_string();
    let args = ["--mode", "http", "--backend", &backend, "--admin", &admin];
    let mut old = proxy_at(port, &sock, &args);
    let addr = old.addr;
    // A keep-alive client mid-conversation across the upgrade.
    let mut kept = Conn::open(addr);
    assert_eq!(kept.get("/").status, 200);
    let mut new = proxy_at(port, &sock, &args);
    new.wait_for_line("took over listeners");
    old.wait_for_line("handed 2 listeners");
    // The kept connection is closed by the old process between requests
    // (drain); a new one reaches the new process, admin included.
    assert_eq!(Conn::open(addr).get("/").status, 200);
    assert!(old.wait_exit().success());
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let mut a = Conn::open(admin_addr);
    let stats = a.get("/stats");
    assert_eq!(stats.status, 200, "admin port after the upgrade: {}", stats.text());
    assert!(new.is_running());
    drop(kept);
    let _ = std::fs::remove_file(&sock);
}

#[test]
fn a_new_process_that_never_says_ready_does_not_stall_the_running_one() {
    let b = stream_backend(1);
    let port = dead_addr().port();
    let sock = upgrade_socket("silent");
    let backend = b.addr.to_string();
    let mut old = proxy_at(port, &sock, &["--backend", &backend]);
    // A "new process" that takes the handover message and then says nothing.
    let mut silent = std::os::unix::net::UnixStream::connect(&sock).expect("upgrade socket");
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut first = [0u8; 64];
    let n = std::io::Read::read(&mut silent, &mut first).expect("handover message");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("default 127.0.0.1:"), "{:?}", &first[..n]);
    old.wait_for_line("waiting for it to say ready");
    // Served while the handover waits: the loop is not blocked on it.
    assert_eq!(who(old.addr), 1);
    assert!(
        !old.log.lock().unwrap().iter().any(|l| l.contains("did not say ready")),
        "the session above must have been served while the handover was pending"
    );
    old.wait_for_line("did not say ready within");
    assert_eq!(who(old.addr), 1);
    assert!(old.is_running());
    drop(silent);
    let _ = std::fs::remove_file(&sock);
}
