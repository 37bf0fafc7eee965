//! TCP pass-through, end to end: real lbproxy and real backends on 127.0.0.1.

mod util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};
use util::*;

fn counts(ids: impl IntoIterator<Item = u32>) -> BTreeMap<u32, u32> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(id).or_default() += 1;
    }
    m
}

#[test]
fn round_robin_spreads_300_connections_exactly_evenly() {
    let b: Vec<_> = (1..=3).map(stream_backend).collect();
    let addrs: Vec<_> = b.iter().map(|p| p.addr).collect();
    let lb = lbproxy("round_robin", &addrs, &[]);
    let got = counts((0..300).map(|_| who(lb.addr)));
    assert_eq!(got, BTreeMap::from([(1, 100), (2, 100), (3, 100)]));
}

#[test]
fn fewest_connections_sends_new_sessions_to_the_least_loaded() {
    let b: Vec<_> = (1..=3).map(stream_backend).collect();
    let addrs: Vec<_> = b.iter().map(|p| p.addr).collect();
    let lb = lbproxy("leastconn", &addrs, &[]);
    // Six held sessions: two per backend.
    let mut held: Vec<(u32, TcpStream)> = (0..6)
        .map(|_| {
            let mut s = connect(lb.addr);
            let id = server_of(&ask(&mut s, "WHO"));
            (id, s)
        })
        .collect();
    assert_eq!(counts(held.iter().map(|h| h.0)), BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    // Free both sessions of backend 2: the next two sessions must go there.
    let (freed, kept): (Vec<_>, Vec<_>) = held.drain(..).partition(|h| h.0 == 2);
    for (_, s) in freed {
        close_and_wait(s);
    }
    let mut next: Vec<(u32, TcpStream)> = Vec::new();
    for _ in 0..2 {
        let mut s = connect(lb.addr);
        next.push((server_of(&ask(&mut s, "WHO")), s));
    }
    assert_eq!(next.iter().map(|h| h.0).collect::<Vec<_>>(), [2, 2]);
    drop(kept);
}

fn who_from(proxy: SocketAddr, src: [u8; 4]) -> u32 {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    s.connect_timeout(&proxy.into(), PATIENCE).unwrap();
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    server_of(&ask(&mut s, "WHO"))
}

#[test]
fn ip_hash_pins_a_client_ip_and_spreads_many_ips() {
    let b: Vec<_> = (1..=3).map(stream_backend).collect();
    let addrs: Vec<_> = b.iter().map(|p| p.addr).collect();
    let lb = lbproxy("ip_hash", &addrs, &[]);
    let first = who(lb.addr);
    for _ in 0..30 {
        assert_eq!(who(lb.addr), first, "127.0.0.1 moved between backends");
    }
    // Many source addresses: each stays put, and together they use more than one backend.
    let mut seen = BTreeMap::new();
    for last in 2..=21u8 {
        let id = who_from(lb.addr, [127, 0, 0, last]);
        assert_eq!(who_from(lb.addr, [127, 0, 0, last]), id, "127.0.0.{last} moved");
        seen.insert(last, id);
    }
    let used: std::collections::BTreeSet<_> = seen.values().collect();
    assert!(used.len() > 1, "20 client addresses all on one backend: {seen:?}");
}

#[test]
fn two_parallel_64mib_transfers_are_byte_exact() {
    let b: Vec<_> = (1..=2).map(stream_backend).collect();
    let addrs: Vec<_> = b.iter().map(|p| p.addr).collect();
    let lb = lbproxy("round_robin", &addrs, &[]);
    let out = Command::new(example_bin("file_client"))
        .args(["--lb", &lb.addr.to_string(), "--size", "64MiB", "--parallel", "2"])
        .output()
        .expect("file_client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "file_client failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sha256 verified both ways: OK"), "{stdout}");
}

#[test]
fn half_close_keeps_the_reply_direction_open() {
    let b = stream_backend(1);
    let lb = lbproxy("round_robin", &[b.addr], &[]);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    // The backend answers only after it sees our FIN, so the reply proves
    // the FIN went through while the way back stayed open.
    let (reply, want) = upload_then_fin(lb.addr, &data);
    assert_eq!(reply, want);
}

#[test]
fn slow_reader_gets_256mib_intact_in_bounded_memory() {
    let b = stream_backend(1);
    let lb = lbproxy("round_robin", &[b.addr], &["--buffer-size", "64KiB"]);
    let mut s = connect(lb.addr);
    let size: u64 = 256 << 20;
    s.write_all(format!("DOWNLOAD {size} 7\n").as_bytes()).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut reads = 0u64;
    while got < size {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended at {got} of {size}");
        h.update(&buf[..n]);
        got += n as u64;
        reads += 1;
        // Read slowly for the first 32 MiB so the backend outruns us and
        // the proxy must hold back instead of buffering.
        if got < 32 << 20 && reads.is_multiple_of(4) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert_eq!(h.finalize().to_vec(), pattern_sha256(7, size), "download corrupted");
    let peak_kib = lb.status_kib("VmHWM");
    // Two 64 KiB buffers for the session plus the binary; 256 MiB would show.
    assert!(peak_kib < 32 * 1024, "proxy peak RSS {peak_kib} KiB for one 256 MiB session");
}

#[test]
fn one_backend_down_is_invisible_to_clients() {
    let (b1, b3) = (stream_backend(1), stream_backend(3));
    let addrs = [b1.addr, dead_addr(), b3.addr];
    for policy in ["round_robin", "fewest_connections", "ip_hash"] {
        let lb = lbproxy(policy, &addrs, &[]);
        for _ in 0..30 {
            let id = who(lb.addr);
            assert!(id == 1 || id == 3, "{policy}: served by {id}");
        }
    }
    let lb = lbproxy("round_robin", &addrs, &[]);
    let got = counts((0..30).map(|_| who(lb.addr)));
    assert_eq!(got.values().sum::<u32>(), 30);
    assert!(got.len() == 2, "round_robin should still use both live backends: {got:?}");
}

#[test]
fn all_backends_down_closes_clients_and_keeps_running() {
    let mut lb = lbproxy("round_robin", &[dead_addr(), dead_addr()], &[]);
    for _ in 0..3 {
        let mut s = connect(lb.addr);
        let _ = s.write_all(b"WHO\n");
        let mut buf = [0u8; 16];
        // Closed (EOF) or reset: either way no data and no hang.
        match s.read(&mut buf) {
            Ok(n) => assert_eq!(n, 0, "got data from nowhere"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    assert!(lb.is_running());
    lb.wait_for_line("no backend");
}

#[test]
fn unanswered_connect_times_out_and_the_next_backend_serves() {
    // A listener with a full accept queue drops further SYNs: a backend
    // that never answers, on loopback.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    sock.listen(0).unwrap();
    let silent: TcpListener = sock.into();
    let silent_addr = silent.local_addr().unwrap();
    let _fill: Vec<_> =
        (0..2).filter_map(|_| TcpStream::connect_timeout(&silent_addr, Duration::from_millis(300)).ok()).collect();
    let live = stream_backend(2);
    let lb = lbproxy("round_robin", &[silent_addr, live.addr], &["--connect-timeout", "300ms"]);
    for _ in 0..2 {
        assert_eq!(who(lb.addr), 2);
    }
    lb.wait_for_line("connect failed");
}

#[test]
fn a_reset_on_one_side_resets_the_other() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let lb = lbproxy("round_robin", &[backend.local_addr().unwrap()], &[]);
    let mut client = connect(lb.addr);
    client.write_all(b"hello").unwrap();
    let (mut b, _) = backend.accept().unwrap();
    b.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 5];
    b.read_exact(&mut buf).unwrap();
    socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).unwrap();
    drop(client); // RST
    let r = b.read(&mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "backend should see a reset, got {r:?}"
    );
}

#[test]
fn max_connections_holds_extra_clients_until_a_session_ends() {
    let b = stream_backend(1);
    let lb = lbproxy("round_robin", &[b.addr], &["--max-connections", "2"]);
    let mut s1 = connect(lb.addr);
    let mut s2 = connect(lb.addr);
    ask(&mut s1, "WHO");
    ask(&mut s2, "WHO");
    // The third connection completes in the kernel backlog but is not served yet.
    let mut s3 = connect(lb.addr);
    s3.write_all(b"WHO\n").unwrap();
    lb.wait_for_line("max connections (2) reached");
    s3.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 1];
    let r = s3.read(&mut buf);
    assert!(r.is_err(), "third client served beyond --max-connections: {r:?}");
    close_and_wait(s1);
    s3.set_read_timeout(Some(PATIENCE)).unwrap();
    let reply = read_line(&mut s3);
    assert_eq!(server_of(&reply), 1);
    drop(s2);
}

#[test]
fn sigterm_drains_open_sessions_then_exits_zero() {
    let b = stream_backend(1);
    let mut lb = lbproxy("round_robin", &[b.addr], &["--drain-timeout", "15s"]);
    let mut s = connect(lb.addr);
    assert!(ask(&mut s, "MSG before").contains("count=1"));
    assert!(lb.listens_on(lb.addr.port()), "listening before SIGTERM");
    lb.signal(libc::SIGTERM);
    let line = lb.wait_for_line("stopped accepting");
    assert!(line.contains("for 1 sessions [default (tcp): 1]"), "{line}");
    // No listening socket is left (read in /proc: a connect could reach
    // another test's listener that took the freed port), the open session still works.
    assert!(!lb.listens_on(lb.addr.port()), "listener still open after SIGTERM");
    assert!(ask(&mut s, "MSG after").contains("count=2 echo=after"));
    assert!(lb.is_running());
    close_and_wait(s);
    let status = lb.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    // The final table is the last thing logged; the reader thread may still be on its way to it.
    lb.wait_for_line("usage pool=default:");
}

#[test]
fn drain_timeout_closes_stuck_sessions_and_exits_zero() {
    let b = stream_backend(1);
    let mut lb = lbproxy("round_robin", &[b.addr], &["--drain-timeout", "200ms"]);
    let mut s = connect(lb.addr);
    ask(&mut s, "WHO");
    lb.signal(libc::SIGINT);
    assert!(lb.wait_exit().success());
    lb.wait_for_line("drain timeout: closing 1 open sessions");
}

#[test]
fn periodic_usage_line_names_each_backend() {
    let b = stream_backend(1);
    let lb = lbproxy("round_robin", &[b.addr], &["--stats-interval", "100ms"]);
    who(lb.addr);
    let needle = format!("{} state=up sessions=1 active=0 ", b.addr);
    lb.wait_for_line(&needle);
}

#[test]
fn idle_sessions_are_closed_after_idle_timeout() {
    let b = stream_backend(1);
    let lb = lbproxy("round_robin", &[b.addr], &["--idle-timeout", "200ms"]);
    let mut s = connect(lb.addr);
    ask(&mut s, "WHO");
    let mut buf = [0u8; 1];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "idle session was not closed");
}

#[test]
fn a_low_descriptor_limit_caps_sessions_and_the_proxy_recovers() {
    let b = stream_backend(1);
    // Under 32 descriptors lbproxy must cap its sessions (two descriptors
    // each, after what is open and a reserve) instead of failing backend
    // connects with EMFILE. The cap depends on inherited descriptors, so
    // the test uses the one lbproxy reports. A --max-connections given that
    // does not fit is lowered with a warning (without it: silently).
    let mut cmd = Command::new("sh");
    cmd.env("RUST_LOG", "info").arg("-c").arg(format!(
        "ulimit -n 32 && exec {} --bind 127.0.0.1 --port 0 --stats-interval 0 --max-connections 10000 --backend {}",
        lbproxy_bin().display(),
        b.addr
    ));
    let lb = spawn_cmd_and_wait(cmd);
    let line = lb.wait_for_line("needs more descriptors than the limit of 32 allows: using ");
    let cap: usize = line.rsplit("using ").next().and_then(|n| n.trim().parse().ok()).expect("cap in log line");
    assert!((1..=14).contains(&cap), "{line}");
    let mut held: Vec<TcpStream> = (0..cap)
        .map(|_| {
            let mut s = connect(lb.addr);
            assert_eq!(server_of(&ask(&mut s, "WHO")), 1);
            s
        })
        .collect();
    // One more waits in the backlog, then is served once a session ends.
    let mut waiting = connect(lb.addr);
    waiting.write_all(b"WHO\n").unwrap();
    lb.wait_for_line(&format!("max connections ({cap}) reached"));
    close_and_wait(held.pop().unwrap());
    assert_eq!(server_of(&read_line(&mut waiting)), 1);
    // No backend was blamed for the local limit.
    assert!(!lb.log.lock().unwrap().iter().any(|l| l.contains("DOWN") || l.contains("connect failed")));
}

#[test]
fn random_bytes_and_abrupt_closes_leave_tcp_mode_serving() {
    let b = stream_backend(1);
    let mut lb = lbproxy("round_robin", &[b.addr], &[]);
    let mut rng = XorShift(0xdead_beefu64);
    let mut next = || rng.next();
    for _ in 0..100 {
        let mut s = connect(lb.addr);
        let junk: Vec<u8> = (0..(next() % 4096)).map(|_| next() as u8).collect();
        let _ = s.write_all(&junk);
        match next() % 3 {
            0 => drop(s),
            1 => {
                socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
                drop(s) // reset mid-stream
            }
            _ => {
                let _ = s.shutdown(Shutdown::Write);
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }
    }
    assert!(lb.is_running());
    assert_eq!(who(lb.addr), 1);
}
