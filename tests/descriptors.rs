//! Out of descriptors is the proxy's own condition: it pauses accepting and
//! frees what it can, and never marks a healthy backend down for it.

mod util;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use util::http::Conn;
use util::*;

/// lbproxy under `ulimit -n LIMIT`, and the session cap it chose.
fn limited_proxy(limit: u32, args: &str) -> (Proc, usize) {
    let mut cmd = Command::new("sh");
    cmd.env("RUST_LOG", "info").arg("-c").arg(format!(
        "ulimit -n {limit} && exec {} --bind 127.0.0.1 --port 0 --stats-interval 0 {args}",
        lbproxy_bin().display()
    ));
    let lb = spawn_cmd_and_wait(cmd);
    let line = lb.wait_for_line("allows: using ");
    let cap = line.rsplit("using ").next().and_then(|n| n.trim().parse().ok()).expect("cap in log line");
    (lb, cap)
}

fn blamed_a_backend(lb: &Proc) -> Option<String> {
    lb.log.lock().unwrap().iter().find(|l| l.contains("DOWN") || l.contains("connect failed")).cloned()
}

/// A `--hash-key header:X-Key` value that the proxy sends to backend `id`.
fn key_for(proxy: SocketAddr, id: u32) -> String {
    let mut c = Conn::open(proxy);
    (0..200)
        .map(|i| format!("k{i}"))
        .find(|k| {
            c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Key: {k}\r\n\r\n").as_bytes());
            c.read_response(false).server() == id
        })
        .unwrap_or_else(|| panic!("no key maps to backend {id}"))
}

/// Every client sends one request at once (so the proxy needs one backend
/// connection per client), then all answers are read.
fn all_at_once(clients: &mut [Conn], key: &str) -> Vec<(u16, u32)> {
    for c in clients.iter_mut() {
        c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Key: {key}\r\n\r\n").as_bytes());
    }
    clients
        .iter_mut()
        .map(|c| {
            let r = c.read_response(false);
            let server = if r.status == 200 { r.server() } else { 0 };
            (r.status, server)
        })
        .collect()
}

#[test]
fn http_pooled_connections_that_exhaust_descriptors_are_shed_and_no_backend_is_blamed() {
    let b1 = http_backend(1, &["--delay-ms", "300"]);
    let b2 = http_backend(2, &["--delay-ms", "300"]);
    let args = format!(
        "--mode http --policy consistent_hash --hash-key header:X-Key --backend {} --backend {}",
        b1.addr, b2.addr
    );
    let (lb, cap) = limited_proxy(64, &args);
    let (to_1, to_2) = (key_for(lb.addr, 1), key_for(lb.addr, 2));
    // `cap` keep-alive clients, each with a request in flight to backend 1:
    // `cap` connections to it, which then stay in its idle pool. The same
    // again to backend 2 needs `cap` more descriptors than the limit holds.
    let n = cap - 1; // one descriptor's worth of room for the key probes above
    let mut clients: Vec<Conn> = (0..n).map(|_| Conn::open(lb.addr)).collect();
    assert!(all_at_once(&mut clients, &to_1).iter().all(|&r| r == (200, 1)));
    let second = all_at_once(&mut clients, &to_2);
    assert!(second.iter().all(|&r| r == (200, 2)), "answers while descriptors ran out: {second:?}");
    lb.wait_for_line("cannot open a backend connection");
    assert_eq!(blamed_a_backend(&lb), None, "a backend was blamed for the proxy's descriptor limit");
    assert_eq!(Conn::open(lb.addr).get("/").status, 200);
}

#[test]
fn tcp_backend_connect_out_of_descriptors_pauses_accept_and_blames_no_backend() {
    let b = stream_backend(1);
    let admin_port = dead_addr().port();
    let (lb, cap) = limited_proxy(32, &format!("--backend {} --admin 127.0.0.1:{admin_port} --max-fails 1", b.addr));
    // Idle admin connections take descriptors the session cap did not count
    // on, so the backend connect of a session fails with EMFILE.
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let _hogs: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(admin).expect("admin connect")).collect();
    let mut sessions = Vec::new();
    for _ in 0..cap {
        let mut s = connect(lb.addr);
        s.write_all(b"WHO\n").unwrap();
        sessions.push(s);
    }
    lb.wait_for_line("pausing accept");
    assert_eq!(blamed_a_backend(&lb), None, "a backend was blamed for the proxy's descriptor limit");
    // Paused, it waits for descriptors instead of spinning: over two seconds
    // it uses a small fraction of a core (a busy loop would use all of it).
    let (cpu_before, since) = (cpu_seconds(lb.pid()), std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (cpu, wall) = (cpu_seconds(lb.pid()) - cpu_before, since.elapsed().as_secs_f64());
    assert!(cpu < 0.25 * wall, "paused for descriptors, the proxy used {cpu:.2} s of CPU in {wall:.2} s");
    drop(_hogs);
    drop(sessions);
    // Once descriptors are free again, new sessions reach the same backend.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut s = connect(lb.addr);
        s.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        if s.write_all(b"WHO\n").is_ok() {
            let line = read_line_lossy(&mut s);
            if line.contains("server=1") {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the proxy did not recover");
    }
    assert_eq!(blamed_a_backend(&lb), None);
}

/// CPU time (user + system) the process `pid` has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).expect("stat format");
    let fields: Vec<u64> = rest.split_whitespace().skip(11).take(2).map(|f| f.parse().expect("ticks")).collect();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (fields[0] + fields[1]) as f64 / hz
}

/// One line, or empty when the connection ends or times out first.
fn read_line_lossy(s: &mut TcpStream) -> String {
    use std::io::Read;
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = s.read(&mut b) {
        if b[0] == b'\n' {
            break;
        }
        out.push(b[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

use std::io::Write;
