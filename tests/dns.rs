//! Pools from DNS (issue 12), against a real DNS server: dnsmasq on a free
//! loopback port serves A records from a hosts file (re-read on SIGHUP) and
//! SRV records from its command line (changed by restarting it on the same
//! port). Under continuous load no request may fail while servers join,
//! leave, change port, or while the DNS server is gone.

mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::http::Conn;
use util::*;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lbproxy-dns-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// dnsmasq answering from `hosts` and `srv` (`--srv-host` values) on `port`.
struct Dns {
    child: Child,
    port: u16,
    hosts: PathBuf,
}

impl Dns {
    fn start(port: u16, hosts: &Path, srv: &[String]) -> Dns {
        let log = hosts.with_extension(format!("log{port}-{}", srv.len()));
        let mut cmd = Command::new("dnsmasq");
        // --pid-file without a value: none. The default /var/run/dnsmasq.pid
        // is left behind by a killed instance, and the next one then refuses
        // to start ("failed to open pidfile ...: File exists").
        cmd.args(["--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces"])
            .arg("--pid-file")
            .args(["--listen-address=127.0.0.1", "--user=root", "--local-ttl=1", "--local=/test/"])
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .args(srv.iter().map(|s| format!("--srv-host={s}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("dnsmasq (apt-get install dnsmasq)");
        let dns = Dns { child, port, hosts: hosts.to_path_buf() };
        dns.wait_answering();
        dns
    }

    /// Until a question gets an answer (readiness, bounded).
    fn wait_answering(&self) {
        let deadline = Instant::now() + PATIENCE;
        let server: SocketAddr = ([127, 0, 0, 1], self.port).into();
        while lbproxy::discovery::dns::addresses(&[server], "ready.test", Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "dnsmasq on port {} does not answer", self.port);
        }
    }

    /// Write the hosts file and make dnsmasq read it again.
    fn set_hosts(&self, lines: &str) {
        std::fs::write(&self.hosts, format!("127.0.0.1 ready.test\n{lines}")).expect("hosts file");
        // SAFETY: kill only sends a signal to our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// lbproxy in HTTP mode from a config file whose pool is `servers`.
fn proxy(dir: &Path, servers: &str, dns_port: u16) -> (Proc, SocketAddr) {
    let admin = dead_addr();
    let text = format!(
        "[global]\nstats_interval = \"0\"\nadmin = \"{admin}\"\n\n\
         [[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\npool = \"app\"\nmode = \"http\"\npolicy = \"rr\"\n\n\
         [[pool]]\nname = \"app\"\nservers = [{servers}]\nresolve_interval = \"1s\"\n\
         resolvers = [\"127.0.0.1:{dns_port}\"]\n"
    );
    let file = dir.join("lb.toml");
    std::fs::write(&file, text).expect("config");
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info").arg("--config").arg(&file);
    (spawn_cmd_and_wait(cmd), admin)
}

/// Clients sending requests all along; every answer is recorded.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(u16, u32)>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, seen) = (stop.clone(), seen.clone());
                thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(90);
                    let mut c = Conn::open(addr);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let r = c.try_get("/").unwrap_or_else(|e| panic!("a request failed: {e}"));
                        let server = if r.status == 200 { r.server() } else { 0 };
                        seen.lock().unwrap().push((r.status, server));
                        if !c.is_open() {
                            c = Conn::open(addr);
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        Load { stop, seen, threads }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Wait (bounded) until a response from `server` arrives after answer number `from`.
    fn wait_for_server(&self, server: u32, from: usize) {
        let deadline = Instant::now() + PATIENCE;
        while !self.servers_since(from).contains(&server) {
            assert!(Instant::now() < deadline, "server {server} got no request");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn servers_since(&self, from: usize) -> Vec<u32> {
        let seen = self.seen.lock().unwrap();
        let mut s: Vec<u32> = seen[from.min(seen.len())..].iter().map(|&(_, s)| s).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// Stop, and return every status seen.
    fn finish(self) -> Vec<u16> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("a load client failed");
        }
        self.seen.lock().unwrap().iter().map(|&(st, _)| st).collect()
    }
}

fn pool_dns(admin: SocketAddr) -> Value {
    admin_stats(admin)["pools"][0]["dns"].clone()
}

/// Wait (bounded) until the pool's last good DNS answer is exactly `addrs`.
fn wait_discovered(admin: SocketAddr, addrs: &[String]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let dns = pool_dns(admin);
        let mut got: Vec<String> =
            dns["discovered"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
        got.sort();
        if got == addrs {
            return;
        }
        assert!(Instant::now() < deadline, "discovered {got:?}, waiting for {addrs:?}: {dns}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn http_backend_on(ip: &str, port: u16, id: u32) -> Proc {
    let mut cmd = Command::new(example_bin("http_backend"));
    cmd.args(["--bind", ip, "--port", &port.to_string(), "--id", &id.to_string()]);
    spawn_stdout_and_wait(cmd)
}

fn sha256_hex(data_sink: impl FnOnce(&mut dyn FnMut(&[u8]))) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    data_sink(&mut |b| h.update(b));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_records_join_and_leave_under_load_and_no_request_fails() {
    let dir = temp_dir("a");
    let b1 = http_backend_on("127.0.0.11", 0, 1);
    let port = b1.addr.port();
    let b2 = http_backend_on("127.0.0.12", port, 2);
    let b3 = http_backend_on("127.0.0.13", port, 3);
    let dns = Dns::start(quiet_port(), &dir.join("hosts"), &[]);
    dns.set_hosts("127.0.0.11 app.test\n127.0.0.12 app.test\n");
    dns.wait_answering();
    let (lb, admin) = proxy(&dir, &format!("\"app.test:{port}\""), dns.port);
    let at = |ip: &str| format!("{ip}:{port}");
    wait_discovered(admin, &[at("127.0.0.11"), at("127.0.0.12")]);
    let load = Load::start(lb.addr, 4);
    load.wait_for_server(1, 0);
    load.wait_for_server(2, 0);

    // A record added: the new server takes traffic.
    dns.set_hosts("127.0.0.11 app.test\n127.0.0.12 app.test\n127.0.0.13 app.test\n");
    wait_discovered(admin, &[at("127.0.0.11"), at("127.0.0.12"), at("127.0.0.13")]);
    load.wait_for_server(3, load.count());

    // A record removed while a long download from it is under way: the
    // download finishes, and no new request reaches it.
    let mut long = Conn::open(lb.addr);
    let mut tries = 0;
    let size = 64 << 20;
    let download = loop {
        long.send(format!("GET /bytes?size={size}&seed=7 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let (status, headers) = long.read_head();
        let server = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("x-server")).map(|(_, v)| v.clone());
        if server.as_deref() == Some("1") {
            break (status, headers, long);
        }
        long.read_body(&headers, |_| {});
        tries += 1;
        assert!(tries < 50, "round robin never sent the download to server 1");
    };
    dns.set_hosts("127.0.0.12 app.test\n127.0.0.13 app.test\n");
    wait_discovered(admin, &[at("127.0.0.12"), at("127.0.0.13")]);
    let after_removal = load.count();
    let (status, headers_of_download, mut long) = download;
    assert_eq!(status, 200);
    let got = sha256_hex(|sink| long.read_body(&headers_of_download, sink));
    let want: String = pattern_sha256(7, size as u64).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, want, "the download from a server whose record was removed");
    // Some answers since then, from the remaining servers only.
    let deadline = Instant::now() + PATIENCE;
    while load.count() < after_removal + 60 {
        assert!(Instant::now() < deadline, "the load stalled");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(load.servers_since(after_removal), [2, 3], "requests after server 1's record was removed");

    let statuses = load.finish();
    assert!(statuses.len() > 50, "too little load: {}", statuses.len());
    assert!(statuses.iter().all(|&s| s == 200), "failed requests: {:?}", statuses.iter().filter(|&&s| s != 200));
    drop((lb, b1, b2, b3, dns));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn srv_port_changes_apply_and_a_dead_dns_server_keeps_the_last_good_set() {
    let dir = temp_dir("srv");
    let b1 = http_backend_on("127.0.0.21", 0, 1);
    let b2 = http_backend_on("127.0.0.21", 0, 2);
    let (p1, p2) = (b1.addr.port(), b2.addr.port());
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 ready.test\n127.0.0.21 node.test\n").unwrap();
    let srv = |port: u16| format!("_app._tcp.test,node.test,{port},0,10");
    let dns = Dns::start(quiet_port(), &hosts, &[srv(p1)]);
    let (lb, admin) = proxy(&dir, "\"_app._tcp.test\"", dns.port);
    wait_discovered(admin, &[format!("127.0.0.21:{p1}")]);
    let load = Load::start(lb.addr, 2);
    load.wait_for_server(1, 0);

    // The SRV record's port changes (dnsmasq restarted on the same port).
    let port = dns.stop();
    let dns = Dns::start(port, &hosts, &[srv(p2)]);
    wait_discovered(admin, &[format!("127.0.0.21:{p2}")]);
    let moved = load.count();
    load.wait_for_server(2, moved);

    // The DNS server is gone: the pool keeps its last good set and says why.
    let port = dns.stop();
    let deadline = Instant::now() + PATIENCE;
    while pool_dns(admin)["last_error"].is_null() {
        assert!(Instant::now() < deadline, "no DNS failure reported: {}", pool_dns(admin));
        thread::sleep(Duration::from_millis(50));
    }
    let during_outage = load.count();
    lb.wait_for_line("keeping the last good set (1 servers)");
    load.wait_for_server(2, during_outage);
    assert_eq!(pool_dns(admin)["discovered"], serde_json::json!([format!("127.0.0.21:{p2}")]));

    // Back, with both targets: both take traffic again.
    let _dns = Dns::start(port, &hosts, &[srv(p1), srv(p2)]);
    let mut both = vec![format!("127.0.0.21:{p1}"), format!("127.0.0.21:{p2}")];
    both.sort();
    wait_discovered(admin, &both);
    assert!(pool_dns(admin)["last_error"].is_null());
    load.wait_for_server(1, load.count());

    let statuses = load.finish();
    assert!(statuses.iter().all(|&s| s == 200), "failed requests during SRV changes and the DNS outage");
    drop((lb, b1, b2));
    let _ = std::fs::remove_dir_all(&dir);
}
