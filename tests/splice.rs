//! splice(2) in TCP mode, end to end: real lbproxy and real backends on
//! 127.0.0.1, each case with `--splice auto` and, where the data path
//! matters, `--splice off` (buffers) too. The admin API's `bytes_spliced`
//! proves which path carried the bytes; `pipes_in_use` and the proxy's
//! descriptors (/proc/PID/fd) prove pipes are held only while bytes move.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use util::*;

const MIB: u64 = 1 << 20;
/// What a direction may move through a buffer before a read fills one and
/// it turns to splicing (a transfer's first reads can be short).
const BEFORE_BULK: u64 = MIB;

/// lbproxy in TCP mode with `--splice MODE`, session end lines and an admin port.
fn proxy(backend: SocketAddr, mode: &str) -> (Proc, SocketAddr) {
    let admin_port = dead_addr().port().to_string();
    let lb = lbproxy("round_robin", &[backend], &["--splice", mode, "--log-sessions", "--admin", &admin_port]);
    let admin = admin_addr(&lb);
    (lb, admin)
}

fn admin_addr(lb: &Proc) -> SocketAddr {
    let line = lb.wait_for_line("admin API on http://");
    line.split("http://").nth(1).and_then(|r| r.split('/').next()).and_then(|a| a.parse().ok()).expect("admin addr")
}

fn stat(admin: SocketAddr, key: &str) -> u64 {
    let v = admin_stats(admin);
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in /stats: {v}"))
}

/// Descriptors the process `pid` has open.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd").count()
}

/// Poll (bounded) until the proxy holds no pipe, in use or free, and has
/// exactly `want` descriptors (the admin connection of a request may close
/// a moment after its answer: the loop looks again).
fn settles_at(lb: &Proc, admin: SocketAddr, want: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = admin_stats(admin);
        let (in_use, free) = (v["pipes_in_use"].as_u64(), v["pipes_free"].as_u64());
        let open_clients = v["open_clients"].as_u64();
        let fds = descriptors(lb.pid());
        if in_use == Some(0) && free == Some(0) && fds == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {PATIENCE:?}: pipes_in_use {in_use:?}, pipes_free {free:?}, open_clients {open_clients:?}, \
             descriptors {fds} (want {want})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `DOWNLOAD size seed` through the proxy, sha256-checked.
fn download(proxy: SocketAddr, size: u64, seed: u64) {
    let mut s = connect(proxy);
    s.write_all(format!("DOWNLOAD {size} {seed}\n").as_bytes()).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < size {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "download ended at {got} of {size}");
        h.update(&buf[..n]);
        got += n as u64;
    }
    assert_eq!(h.finalize().to_vec(), pattern_sha256(seed, size), "download corrupted");
}

/// `UPLOAD size` of the seeded pattern; the backend's sha256 must match ours.
fn upload(proxy: SocketAddr, size: u64, seed: u64) {
    let mut s = connect(proxy);
    s.write_all(format!("UPLOAD {size}\n").as_bytes()).unwrap();
    let mut p = Pattern::new(seed);
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < size {
        let n = buf.len().min((size - sent) as usize);
        p.fill(&mut buf[..n]);
        s.write_all(&buf[..n]).unwrap();
        sent += n as u64;
    }
    let hex: String = pattern_sha256(seed, size).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(read_line(&mut s), format!("SHA256 {hex} {size}"));
}

#[test]
fn transfers_of_256mib_both_ways_are_sha256_exact_spliced_and_buffered() {
    let b = stream_backend(1);
    for mode in ["auto", "off"] {
        let (lb, admin) = proxy(b.addr, mode);
        let idle = descriptors(lb.pid());
        let size = 256 * MIB;
        upload(lb.addr, size, 3);
        download(lb.addr, size, 4);
        // The counters and the end lines count every byte, whichever way it went.
        let up_cmd = format!("UPLOAD {size}\n").len() as u64;
        let down_cmd = format!("DOWNLOAD {size} 4\n").len() as u64;
        lb.wait_for_line(&format!("bytes_in={} bytes_out=", size + up_cmd));
        lb.wait_for_line(&format!("bytes_in={down_cmd} bytes_out={size} "));
        let v = admin_stats(admin);
        let backend = &v["backends"][0];
        assert_eq!(backend["bytes_in"].as_u64(), Some(size + up_cmd + down_cmd), "{mode}: {v}");
        let reply = format!("SHA256 {} {size}\n", "0".repeat(64)).len() as u64;
        assert_eq!(backend["bytes_out"].as_u64(), Some(size + reply), "{mode}: {v}");
        let spliced = v["bytes_spliced"].as_u64().unwrap();
        if mode == "auto" {
            // Both transfers through pipes, but for their start (a direction
            // splices once a read fills a buffer).
            assert!(spliced >= 2 * (size - BEFORE_BULK), "{mode}: only {spliced} bytes spliced of {}", 2 * size);
            assert_eq!(v["splice_fallbacks"].as_u64(), Some(0), "{v}");
        } else {
            assert_eq!(spliced, 0, "--splice off spliced {spliced} bytes");
        }
        settles_at(&lb, admin, idle);
    }
}

#[test]
fn parallel_file_transfers_through_pipes_are_byte_exact_with_workers() {
    let bs: Vec<_> = (1..=2).map(stream_backend).collect();
    let admin_port = dead_addr().port().to_string();
    // Two reactors, each with its own pipe pool: /stats adds them up.
    let lb = lbproxy("round_robin", &[bs[0].addr, bs[1].addr], &["--admin", &admin_port, "--workers", "2"]);
    let admin = admin_addr(&lb);
    let out = Command::new(example_bin("file_client"))
        .args(["--lb", &lb.addr.to_string(), "--size", "64MiB", "--parallel", "4"])
        .output()
        .expect("file_client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "file_client failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sha256 verified both ways: OK"), "{stdout}");
    let v = admin_stats(admin);
    let spliced = v["bytes_spliced"].as_u64().unwrap();
    assert!(spliced >= 4 * 2 * (64 * MIB - BEFORE_BULK), "splice is the default in TCP mode: {spliced} bytes spliced");
    let deadline = Instant::now() + PATIENCE;
    while stat(admin, "pipes_in_use") > 0 {
        assert!(Instant::now() < deadline, "pipes still in use after every transfer ended");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn half_close_passes_the_fin_after_the_pipe_drains() {
    let b = stream_backend(1);
    for mode in ["auto", "off"] {
        let (lb, admin) = proxy(b.addr, mode);
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let (reply, want) = upload_then_fin(lb.addr, &data);
        assert_eq!(reply, want, "{mode}");
        lb.wait_for_line("end=client_closed");
        let spliced = stat(admin, "bytes_spliced");
        assert_eq!(spliced >= data.len() as u64 - BEFORE_BULK, mode == "auto", "{mode}: {spliced} bytes spliced");
    }
}

#[test]
fn a_slow_reader_keeps_rss_bounded_while_splicing() {
    let b = stream_backend(1);
    let (lb, admin) = proxy(b.addr, "auto");
    let mut s = connect(lb.addr);
    let size = 256 * MIB;
    s.write_all(format!("DOWNLOAD {size} 7\n").as_bytes()).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut got, mut reads) = (0u64, 0u64);
    let mut most_pipes = 0;
    while got < size {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended at {got} of {size}");
        h.update(&buf[..n]);
        got += n as u64;
        reads += 1;
        // Slowly for the first 32 MiB: the backend outruns us and the proxy
        // must stop reading when the pipe is full, not hold the bytes.
        if got < 32 * MIB && reads.is_multiple_of(4) {
            std::thread::sleep(Duration::from_millis(2));
            if reads.is_multiple_of(64) {
                most_pipes = most_pipes.max(stat(admin, "pipes_in_use"));
            }
        }
    }
    assert_eq!(h.finalize().to_vec(), pattern_sha256(7, size), "download corrupted");
    assert!(most_pipes <= 2, "one session held {most_pipes} pipes");
    assert!(stat(admin, "bytes_spliced") >= size - BEFORE_BULK);
    let peak_kib = lb.status_kib("VmHWM");
    assert!(peak_kib < 32 * 1024, "proxy peak RSS {peak_kib} KiB for one 256 MiB session");
}

#[test]
fn a_backend_reset_mid_transfer_resets_the_client() {
    let dir = std::env::temp_dir().join(format!("lbproxy-splice-reset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let switch = dir.join("reset");
    let mut cmd = Command::new(example_bin("stream_backend"));
    cmd.args(["--port", "0", "--id", "1", "--reset-file"]).arg(&switch);
    let b = spawn_stdout_and_wait(cmd);
    for mode in ["auto", "off"] {
        let _ = std::fs::remove_file(&switch);
        let (lb, admin) = proxy(b.addr, mode);
        let idle = descriptors(lb.pid());
        let mut s = connect(lb.addr);
        let size = 256 * MIB;
        s.write_all(format!("DOWNLOAD {size} 9\n").as_bytes()).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        while got < 4 * MIB {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "{mode}: stream ended at {got}");
            got += n as u64;
        }
        std::fs::write(&switch, b"on").unwrap();
        // Read on: what the proxy already held may come first, then a reset, never a clean end.
        let end = loop {
            match s.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => got += n as u64,
                Err(e) => break Err(e),
            }
            assert!(got < size, "{mode}: the whole download arrived despite the reset");
        };
        assert!(
            matches!(&end, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "{mode}: client should see a reset after {got} bytes, got {end:?}"
        );
        lb.wait_for_line("end=reset");
        // The pipe that held bytes is closed, not reused; descriptors go back to idle.
        drop(s);
        settles_at(&lb, admin, idle);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_sessions_hold_two_descriptors_and_no_pipe() {
    let b = stream_backend(1);
    let (lb, admin) = proxy(b.addr, "auto");
    let idle = descriptors(lb.pid());
    let mut held: Vec<TcpStream> = (0..20).map(|_| connect(lb.addr)).collect();
    for s in held.iter_mut() {
        assert_eq!(server_of(&ask(s, "WHO")), 1);
    }
    // Small request/response exchanges never fill a buffer: they go
    // through buffers, not pipes; idle, the sessions hold neither.
    assert_eq!(stat(admin, "bytes_spliced"), 0);
    settles_at(&lb, admin, idle + 2 * held.len());
    for s in held.drain(..) {
        close_and_wait(s);
    }
    settles_at(&lb, admin, idle);
}

#[test]
fn out_of_descriptors_for_a_pipe_falls_back_to_buffers() {
    let b = stream_backend(1);
    let admin_port = dead_addr().port();
    let limit = 48;
    let mut cmd = Command::new("sh");
    cmd.env("RUST_LOG", "info").arg("-c").arg(format!(
        "ulimit -n {limit} && exec {} --bind 127.0.0.1 --port 0 --stats-interval 0 --admin 127.0.0.1:{admin_port} \
         --log-sessions --backend {}",
        lbproxy_bin().display(),
        b.addr
    ));
    let lb = spawn_cmd_and_wait(cmd);
    let admin = admin_addr(&lb);
    let idle = descriptors(lb.pid());
    let mut s = connect(lb.addr);
    assert_eq!(server_of(&ask(&mut s, "WHO")), 1);
    // No free pipe left to reuse: the next ones must be created.
    settles_at(&lb, admin, idle + 2);
    let spliced_before = stat(admin, "bytes_spliced");
    // Idle admin connections take every descriptor left.
    let free = limit - descriptors(lb.pid());
    let admin_sock: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let hogs: Vec<TcpStream> = (0..free).map(|_| TcpStream::connect(admin_sock).expect("admin connect")).collect();
    let deadline = Instant::now() + PATIENCE;
    while descriptors(lb.pid()) < limit {
        assert!(Instant::now() < deadline, "the proxy has {} of {limit} descriptors", descriptors(lb.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
    // No pipe can be made now; the session goes on through buffers.
    let size = 128 * MIB;
    s.write_all(format!("DOWNLOAD {size} 5\n").as_bytes()).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut read_until = |s: &mut TcpStream, until: u64, got: &mut u64| {
        while *got < until {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "download ended at {got} of {size}");
            h.update(&buf[..n]);
            *got += n as u64;
        }
    };
    read_until(&mut s, 8 * MIB, &mut got);
    drop(hogs);
    // The admin API can accept again once the hogs' descriptors are closed
    // (the stalled download may hold one pipe by then: two more).
    let deadline = Instant::now() + PATIENCE;
    while descriptors(lb.pid()) > idle + 4 {
        assert!(Instant::now() < deadline, "the admin connections were not closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let fallbacks = stat(admin, "splice_fallbacks");
    assert!(fallbacks >= 2, "both directions wanted a pipe, {fallbacks} fallbacks");
    // Pipes can be had again: the rest of the same download switches to them,
    // after what a buffer held, in order.
    read_until(&mut s, size, &mut got);
    assert_eq!(h.finalize().to_vec(), pattern_sha256(5, size), "download corrupted across the switch");
    // At most the sockets' buffers (a few MiB each) were in flight at the switch.
    let v = admin_stats(admin);
    let spliced = v["bytes_spliced"].as_u64().unwrap() - spliced_before;
    assert!(spliced >= 64 * MIB, "the session did not go back to splicing: {spliced} bytes spliced after the switch");
    assert_eq!(v["open_clients"].as_u64(), Some(1), "the session must survive: {v}");
    settles_at(&lb, admin, idle + 2);
}
