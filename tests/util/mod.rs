//! Test support: start real processes (lbproxy, the example backends) on
//! free loopback ports and wait for them to say they are listening.
#![allow(dead_code)]

pub mod http;
pub mod netns;
pub mod peers;
pub mod pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The lbproxy under test: the one cargo built, or `LBPROXY_BIN` (read at run
/// time) to run the suite against another build, e.g. an older commit's.
pub fn lbproxy_bin() -> PathBuf {
    std::env::var_os("LBPROXY_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lbproxy")), PathBuf::from)
}

/// Examples are built by `cargo test` next to the test binaries' `deps/`.
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("examples").join(name);
    assert!(p.exists(), "{} not built: run `cargo build --examples` first", p.display());
    p
}

/// A child process that is killed when dropped, with its log lines kept.
/// A passing test prints nothing of it: the watched stream is kept in `log`,
/// the other one (a backend's stderr) goes to a file that is shown only if
/// the test fails (the process is dropped while panicking).
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
    stderr_file: Option<PathBuf>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Does this process hold a listening TCP socket on `port`? Read from
    /// /proc (its descriptors' socket inodes against the kernel's table),
    /// not by connecting: a port the process gave up may at once be bound
    /// by another test's listener, and a connect would then succeed.
    pub fn listens_on(&self, port: u16) -> bool {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid())).expect("the process's descriptors");
        let inodes: Vec<String> = fds
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
            .collect();
        ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            text.lines().skip(1).any(|row| {
                let f: Vec<&str> = row.split_whitespace().collect();
                // local_address is ADDR:PORT in hex; st 0A is LISTEN; field 9 the inode.
                let on_port = f.get(1).and_then(|a| a.rsplit(':').next()) == Some(&format!("{port:04X}")[..]);
                on_port && f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
            })
        })
    }

    /// Wait until a log line containing `needle` appears (or fail the test).
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line containing {needle:?}; log:\n{}", self.log.lock().unwrap().join("\n")),
            }
        }
    }

    /// Wait until the watched stream ended (the process exited and every
    /// line of it is in `log`), bounded by PATIENCE.
    pub fn wait_eof(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the process's output never ended"),
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill failed");
    }

    /// Wait for exit, bounded by PATIENCE.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    pub fn status_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in status"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(path) = self.stderr_file.take() {
            if std::thread::panicking()
                && let Ok(text) = std::fs::read_to_string(&path)
                && !text.is_empty()
            {
                eprintln!("--- stderr of {}:\n{text}", self.addr);
            }
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A file for a child's stderr, unique in this test run.
fn stderr_path() -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("lbproxy-test-stderr-{}-{n}", std::process::id()))
}

/// Spawn, collect lines from `stream` of the child, and return once a line
/// contains "listening on ADDR".
fn spawn_and_wait(mut cmd: Command, from_stderr: bool) -> Proc {
    cmd.stdin(Stdio::null());
    let mut stderr_file = None;
    if from_stderr {
        cmd.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        let path = stderr_path();
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&path).expect("stderr file"));
        stderr_file = Some(path);
    }
    let mut child = cmd.spawn().expect("spawn");
    let out: Box<dyn Read + Send> = if from_stderr {
        Box::new(child.stderr.take().expect("stderr"))
    } else {
        Box::new(child.stdout.take().expect("stdout"))
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            log2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("process never said it was listening; log:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split([',', ' ']).next().unwrap_or("").parse().expect("listen address");
            return Proc { child, addr, log, lines: rx, stderr_file };
        }
    }
}

/// Start any command that logs `listening on ADDR` on stderr (lbproxy under a wrapper).
pub fn spawn_cmd_and_wait(cmd: Command) -> Proc {
    spawn_and_wait(cmd, true)
}

/// Start any command that prints `listening on ADDR` on stdout (the examples).
pub fn spawn_stdout_and_wait(cmd: Command) -> Proc {
    spawn_and_wait(cmd, false)
}

pub fn stream_backend(id: u32) -> Proc {
    let mut cmd = Command::new(example_bin("stream_backend"));
    cmd.args(["--port", "0", "--id", &id.to_string()]);
    spawn_and_wait(cmd, false)
}

pub fn http_backend(id: u32, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(example_bin("http_backend"));
    cmd.args(["--port", "0", "--id", &id.to_string()]).args(extra);
    spawn_and_wait(cmd, false)
}

/// examples/lenient_backend: parses leniently and logs `REQ ...` for every
/// request it parses (the smuggling tests read `log`).
pub fn lenient_backend(id: u32) -> Proc {
    let mut cmd = Command::new(example_bin("lenient_backend"));
    cmd.args(["--port", "0", "--id", &id.to_string()]);
    spawn_and_wait(cmd, false)
}

/// Start lbproxy on 127.0.0.1 with a free port in front of `backends`.
pub fn lbproxy(policy: &str, backends: &[SocketAddr], extra: &[&str]) -> Proc {
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info").args(["--bind", "127.0.0.1", "--port", "0", "--policy", policy]).args(extra);
    if !extra.contains(&"--stats-interval") {
        cmd.args(["--stats-interval", "0"]);
    }
    // `LBPROXY_TEST_WORKERS=2 cargo test ...` runs the same tests on several workers.
    if let Some(n) = std::env::var_os("LBPROXY_TEST_WORKERS")
        && !extra.contains(&"--workers")
    {
        cmd.arg("--workers").arg(n);
    }
    for b in backends {
        cmd.args(["--backend", &b.to_string()]);
    }
    spawn_and_wait(cmd, true)
}

/// lbproxy in HTTP mode in front of `backend`, with an admin port; returns
/// the proxy and the admin address.
pub fn http_proxy_with_admin(backend: SocketAddr, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--mode", "http"];
    args.extend_from_slice(extra);
    lbproxy_with_admin("round_robin", &[backend], &args)
}

/// lbproxy (as [`lbproxy`]) with an admin port; returns the proxy and the admin address.
pub fn lbproxy_with_admin(policy: &str, backends: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr) {
    let admin_port = dead_addr().port().to_string();
    let mut args = vec!["--admin", &admin_port];
    args.extend_from_slice(extra);
    let lb = lbproxy(policy, backends, &args);
    let line = lb.wait_for_line("admin API on http://");
    let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).expect("admin addr");
    (lb, addr.parse().expect("admin addr"))
}

/// `POST path` with `body` to the admin API at `admin`, which must answer 200; the whole answer.
pub fn admin_post(admin: SocketAddr, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect_timeout(&admin, PATIENCE).expect("admin connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("admin request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("admin answer");
    assert!(out.starts_with("HTTP/1.1 200"), "POST {path}: {out}");
    out
}

/// The body of `GET path` from the admin API at `admin` (which must answer 200).
pub fn admin_get(admin: SocketAddr, path: &str) -> String {
    let mut s = connect(admin);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("admin request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("admin answer");
    assert!(out.starts_with("HTTP/1.1 200"), "GET {path}: {out}");
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// `GET /stats` from the admin API at `admin`, as JSON.
pub fn admin_stats(admin: SocketAddr) -> serde_json::Value {
    let body = admin_get(admin, "/stats");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/stats is not JSON ({e}): {body}"))
}

/// A loopback port for a peer that listens on a port given in its config
/// (dnsmasq, HAProxy, nginx): a port that a client connection names (in
/// use or in TIME_WAIT: thousands after tests/descriptors.rs, more under the
/// tests' own load) makes it exit with "Address already in use". So the
/// port is taken below the kernel's ephemeral range, which client
/// connections never use, and checked free on TCP and UDP.
pub fn quiet_port() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u16 = range.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32768);
    let span = u32::from(low.saturating_sub(10_000)).max(1);
    // Each call its own sequence: the tests run in parallel in one process.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut x = XorShift((u64::from(std::process::id()) << 20) ^ call.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for _ in 0..200 {
        let port = 10_000 + (x.next() % u64::from(span)) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tcp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("tcp socket");
        if tcp.bind(&addr.into()).is_ok() && std::net::UdpSocket::bind(addr).is_ok() {
            return port;
        }
    }
    panic!("no loopback port below {low} free for both UDP and TCP in 200 tries");
}

/// A loopback address where nothing listens.
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s
}

/// A connection to `addr` from the loopback address `src` (127.0.0.0/8).
pub fn connect_from(addr: SocketAddr, src: [u8; 4]) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::from((src, 0)).into()).expect("bind source address");
    s.connect_timeout(&addr.into(), PATIENCE).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s
}

/// Send one line, read one line.
pub fn ask(s: &mut TcpStream, line: &str) -> String {
    s.write_all(format!("{line}\n").as_bytes()).expect("send");
    read_line(s)
}

/// Read up to and including '\n', byte by byte so nothing after it is consumed.
pub fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => out.push(b[0]),
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `server=N` field of a stream_backend reply.
pub fn server_of(reply: &str) -> u32 {
    reply
        .split_whitespace()
        .find_map(|f| f.strip_prefix("server=")?.parse().ok())
        .unwrap_or_else(|| panic!("no server in reply {reply:?}"))
}

/// Which backend serves a fresh connection.
pub fn who(proxy: SocketAddr) -> u32 {
    let mut s = connect(proxy);
    let r = ask(&mut s, "WHO");
    server_of(&r)
}

/// End a session the orderly way and wait until the proxy has closed it:
/// the proxy's FIN to us comes after it has finished the session.
pub fn close_and_wait(mut s: TcpStream) {
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// The seeded byte pattern of examples/common (splitmix64, little endian).
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed)
    }

    /// Fill `out`; call with lengths that are multiples of 8 except the last.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let bytes = (z ^ (z >> 31)).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// sha256 of `size` bytes of the pattern for `seed`.
pub fn pattern_sha256(seed: u64, size: u64) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut p = Pattern::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        p.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        left -= n as u64;
    }
    h.finalize().to_vec()
}

/// xorshift64: a seeded stream of junk for the random-input tests.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Upload `data` to a stream_backend through `proxy` with `UPLOAD-EOF`, then
/// shut our write half: the backend answers only after that FIN reached it,
/// behind every byte. Returns (its answer, the answer it must give).
pub fn upload_then_fin(proxy: SocketAddr, data: &[u8]) -> (String, String) {
    use sha2::{Digest, Sha256};
    let mut s = connect(proxy);
    s.write_all(b"UPLOAD-EOF\n").unwrap();
    s.write_all(data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let hex: String = Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
    (reply, format!("SHA256 {hex} {}\n", data.len()))
}

/// `/stats` once `done` holds for it, polling for up to 10 s (workers
/// publish their counters every half second).
pub fn stats_when(admin: SocketAddr, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = admin_stats(admin);
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < until, "/stats never showed {what}: {stats}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sessions opened one after another until `stop`; returns (ok, failed).
pub fn steady_tcp_clients(
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, Vec::new());
        // Bounded: at most 20k sessions even if `stop` never comes.
        for _ in 0..20_000 {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let r = std::net::TcpStream::connect(addr).and_then(|mut s| {
                s.set_read_timeout(Some(PATIENCE))?;
                std::io::Write::write_all(&mut s, b"WHO\n")?;
                Ok(read_line(&mut s))
            });
            match r {
                Ok(line) if line.contains("server=") => ok += 1,
                Ok(line) => failed.push(format!("answer {line:?}")),
                Err(e) => failed.push(e.to_string()),
            }
        }
        (ok, failed)
    })
}
