//! HTTP and redirect modes, end to end: real lbproxy, real example backends.

mod util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use sha2::{Digest, Sha256};
use util::http::Conn;
use util::*;

fn backends(n: u32, extra: &[&str]) -> (Vec<Proc>, Vec<SocketAddr>) {
    let procs: Vec<_> = (1..=n).map(|i| http_backend(i, extra)).collect();
    let addrs = procs.iter().map(|p| p.addr).collect();
    (procs, addrs)
}

fn http_proxy(addrs: &[SocketAddr], extra: &[&str]) -> Proc {
    let mut args = vec!["--mode", "http"];
    args.extend_from_slice(extra);
    lbproxy("round_robin", addrs, &args)
}

/// Stop the proxy cleanly so the access log is flushed; return its rows.
fn access_rows(mut lb: Proc, path: &std::path::Path) -> Vec<Vec<String>> {
    lb.signal(libc::SIGTERM);
    assert!(lb.wait_exit().success());
    let text = std::fs::read_to_string(path).expect("access log");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(lbproxy::http::ACCESS_LOG_HEADER));
    lines.map(|l| l.split(',').map(str::to_string).collect()).collect()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lbproxy-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    dir
}

#[test]
fn one_keepalive_connection_is_balanced_per_request() {
    let (_b, addrs) = backends(3, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    let mut per = BTreeMap::new();
    for _ in 0..100 {
        let r = c.get("/");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("Hello from server {}", r.server()));
        *per.entry(r.server()).or_insert(0) += 1;
    }
    assert_eq!(per, BTreeMap::from([(1, 34), (2, 33), (3, 33)]));
}

fn run_requests(lb: SocketAddr, clients: usize, per_client: usize) {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::open(lb);
                for _ in 0..per_client {
                    assert_eq!(c.get("/").status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn persistent_mode_reuses_at_most_pool_size_connections() {
    let (_b, addrs) = backends(3, &[]);
    let log = temp_path("persistent.csv");
    let lb = http_proxy(&addrs, &["--pool-size", "2", "--access-log", log.to_str().unwrap()]);
    run_requests(lb.addr, 2, 1500);
    let rows = access_rows(lb, &log);
    assert_eq!(rows.len(), 3000);
    assert!(rows.iter().all(|r| r[5] == "200"));
    let mut opened: BTreeMap<String, u32> = BTreeMap::new();
    for r in rows.iter().filter(|r| r[8] == "false") {
        *opened.entry(r[4].clone()).or_default() += 1;
    }
    let total: u32 = opened.values().sum();
    assert!(opened.values().all(|&n| n <= 2), "more than pool-size connections to one backend: {opened:?}");
    assert!(total <= 6, "{total} backend connections for 3000 requests");
}

#[test]
fn per_request_mode_opens_one_connection_per_request() {
    let (_b, addrs) = backends(2, &[]);
    let log = temp_path("per-request.csv");
    let lb = http_proxy(&addrs, &["--backend-conn", "per-request", "--access-log", log.to_str().unwrap()]);
    run_requests(lb.addr, 2, 100);
    let rows = access_rows(lb, &log);
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|r| r[8] == "false" && r[5] == "200"), "a connection was reused in per-request mode");
    assert!(rows.iter().all(|r| r[7].parse::<u64>().is_ok()), "latency_us must be recorded");
}

#[test]
fn chunked_upload_and_download_are_intact() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    // Upload 3 MB in uneven chunks.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut raw = b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in data.chunks(77_777) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    c.send(&raw);
    let r = c.read_response(false);
    let hex: String = Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(r.text(), format!("sha256 {hex} {}\n", data.len()));
    // Download chunked on the same connection.
    let mut h = Sha256::new();
    let (status, headers) = c.read_response_with_get("/chunked?size=5000000&seed=3", |b| h.update(b));
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked"));
    assert_eq!(h.finalize().to_vec(), pattern_sha256(3, 5_000_000));
}

trait GetWith {
    fn read_response_with_get(&mut self, path: &str, sink: impl FnMut(&[u8])) -> (u16, Vec<(String, String)>);
}

impl GetWith for Conn {
    fn read_response_with_get(&mut self, path: &str, sink: impl FnMut(&[u8])) -> (u16, Vec<(String, String)>) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.read_response_with(false, sink)
    }
}

#[test]
fn a_256mib_download_streams_in_bounded_memory() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    let size: u64 = 256 << 20;
    let mut h = Sha256::new();
    let mut got = 0u64;
    let (status, _) = c.read_response_with_get(&format!("/bytes?size={size}&seed=11"), |b| {
        h.update(b);
        got += b.len() as u64;
    });
    assert_eq!((status, got), (200, size));
    assert_eq!(h.finalize().to_vec(), pattern_sha256(11, size));
    let peak = lb.status_kib("VmHWM");
    assert!(peak < 32 * 1024, "proxy peak RSS {peak} KiB for a 256 MiB response");
    // The connection is still usable afterwards.
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn malformed_request_gets_400_and_the_proxy_keeps_serving() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &[]);
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
    ] {
        let mut c = Conn::open(lb.addr);
        c.send(bad);
        let r = c.read_response(false);
        assert_eq!(r.status, 400, "for {bad:?}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.is_closed(), "connection left open after 400");
    }
    assert_eq!(Conn::open(lb.addr).get("/").status, 200);
}

#[test]
fn oversized_head_gets_431() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &["--max-header-size", "8KiB"]);
    let mut c = Conn::open(lb.addr);
    c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000)).as_bytes());
    let r = c.read_response(false);
    assert_eq!(r.status, 431);
    assert!(c.is_closed());
    assert_eq!(Conn::open(lb.addr).get("/").status, 200);
}

#[test]
fn unreachable_backends_give_502_then_503_when_all_are_marked_down() {
    let lb = http_proxy(&[dead_addr(), dead_addr()], &["--max-fails", "2", "--fail-timeout", "1h"]);
    let mut c = Conn::open(lb.addr);
    // Each request tries both backends; after two failures each, both are down.
    for _ in 0..2 {
        let r = c.get("/");
        assert_eq!(r.status, 502);
    }
    lb.wait_for_line("DOWN");
    let r = c.get("/");
    assert_eq!(r.status, 503, "all backends marked down should answer 503");
    assert!(r.header("connection").is_none(), "a 503 for a GET keeps the connection");
}

#[test]
fn a_dead_backend_is_retried_on_another_without_the_client_noticing() {
    let (_b, mut addrs) = backends(2, &[]);
    addrs.insert(1, dead_addr());
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    for _ in 0..30 {
        assert_eq!(c.get("/").status, 200);
    }
}

#[test]
fn malformed_backend_response_gives_502() {
    let junk = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = junk.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in junk.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"SSH-2.0-NotHttp\r\n\r\n");
        }
    });
    let lb = http_proxy(&[addr], &[]);
    let r = Conn::open(lb.addr).get("/");
    assert_eq!(r.status, 502);
}

#[test]
fn a_head_that_never_completes_gets_408_and_a_silent_connection_is_closed() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &["--request-timeout", "300ms"]);
    let mut slow = Conn::open(lb.addr);
    slow.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: 1\r\n"); // never the final CRLF
    let r = slow.read_response(false);
    assert_eq!(r.status, 408);
    assert!(slow.is_closed());
    let mut silent = Conn::open(lb.addr);
    assert_eq!(silent.read_response(false).status, 408);
    // A normal client on a fresh connection is unaffected.
    assert_eq!(Conn::open(lb.addr).get("/").status, 200);
}

#[test]
fn slow_backend_gives_504_after_backend_timeout() {
    let (_b, addrs) = backends(1, &["--delay-ms", "3000"]);
    let lb = http_proxy(&addrs, &["--backend-timeout", "300ms"]);
    let mut c = Conn::open(lb.addr);
    let r = c.get("/");
    assert_eq!(r.status, 504);
    // The heartbeat is never delayed: the same connection still works.
    assert_eq!(c.get("/heartbeat").status, 200);
}

#[test]
fn head_204_and_pipelined_requests_answer_in_order() {
    let (_b, addrs) = backends(2, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET /status/204 HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\nGET /bytes?size=10 HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("19"), "HEAD keeps the GET's length");
    assert!(head.body.is_empty());
    assert_eq!(c.read_response(false).status, 204);
    let r = c.read_response(false);
    assert_eq!(r.text(), format!("Hello from server {}", r.server()));
    assert_eq!(c.read_response(false).body.len(), 10);
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn forwarding_headers_added_and_hop_by_hop_removed() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    c.send(b"GET /headers HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nX-Keep: Kept Value\r\n\r\n");
    let r = c.read_response(false);
    let seen = r.text();
    assert!(seen.contains("X-Forwarded-For: 203.0.113.9, 127.0.0.1"), "{seen}");
    assert!(seen.contains("X-Forwarded-Proto: http"), "{seen}");
    assert!(seen.contains("Via: 1.1 lbproxy"), "{seen}");
    assert!(seen.contains("X-Keep: Kept Value"), "{seen}");
    assert!(!seen.contains("X-Hop"), "hop-by-hop header forwarded: {seen}");
}

#[test]
fn expect_100_continue_relays_the_interim_response() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    c.send(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    // The body is sent only after the interim answer arrives.
    let (status, _) = c.read_head();
    assert_eq!(status, 100);
    c.send(b"hello");
    let r = c.read_response(false);
    let hex: String = Sha256::digest(b"hello").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(r.text(), format!("sha256 {hex} 5\n"));
}

#[test]
fn an_http10_client_never_gets_chunked_framing() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    c.send(b"GET /chunked?size=100000&seed=4 HTTP/1.0\r\n\r\n");
    let mut h = Sha256::new();
    let mut n = 0;
    let (status, headers) = c.read_response_with(false, |b| {
        h.update(b);
        n += b.len();
    });
    assert_eq!(status, 200);
    assert!(!headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding")), "{headers:?}");
    assert_eq!(n, 100_000);
    assert_eq!(h.finalize().to_vec(), pattern_sha256(4, 100_000));
}

#[test]
fn http10_client_gets_its_answer_and_a_close() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello from server 1");
    assert!(c.is_closed());
}

fn write_file(dir: &std::path::Path, name: &str, size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    Pattern::new(size as u64).fill(&mut data);
    std::fs::write(dir.join(name), &data).unwrap();
    data
}

#[test]
fn redirect_mode_with_curl_fetches_files_byte_exact() {
    let dir = std::env::temp_dir().join(format!("lbproxy-redirect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sizes = [0usize, 1, 65_537, 3_000_001];
    let files: Vec<(String, Vec<u8>)> =
        sizes.iter().map(|&n| (format!("f{n}.bin"), write_file(&dir, &format!("f{n}.bin"), n))).collect();
    let d = dir.to_str().unwrap();
    let (_b, addrs) = backends(2, &["--dir", d]);
    let lb = lbproxy("round_robin", &addrs, &["--mode", "redirect"]);

    // The redirect itself names a backend and keeps the path and query.
    let mut c = Conn::open(lb.addr);
    let r = c.get("/f1.bin?x=1");
    assert_eq!(r.status, 301);
    let loc = r.header("location").unwrap().to_string();
    assert!(addrs.iter().any(|a| loc == format!("http://{a}/f1.bin?x=1")), "{loc}");
    assert!(r.text().contains(&loc));

    for (name, data) in &files {
        let out = dir.join(format!("{name}.got"));
        let st = Command::new("curl")
            .args(["-sSfL", "--max-time", "20", "-o", out.to_str().unwrap(), &format!("http://{}/{name}", lb.addr)])
            .status()
            .expect("curl (apt-get install curl)");
        assert!(st.success(), "curl failed for {name}");
        assert_eq!(&std::fs::read(&out).unwrap(), data, "{name} differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redirect_code_option_is_used() {
    let (_b, addrs) = backends(1, &[]);
    let lb = lbproxy("round_robin", &addrs, &["--mode", "redirect", "--redirect-code", "307"]);
    let r = Conn::open(lb.addr).get("/x");
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some(format!("http://{}/x", addrs[0]).as_str()));
}

#[test]
fn a_128mib_upload_streams_in_bounded_memory() {
    let (_b, addrs) = backends(1, &[]);
    let lb = http_proxy(&addrs, &[]);
    let mut c = Conn::open(lb.addr);
    let size: u64 = 128 << 20;
    c.send(format!("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n").as_bytes());
    let mut p = Pattern::new(5);
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..128 {
        p.fill(&mut buf);
        c.send(&buf);
    }
    let r = c.read_response(false);
    let hex: String = pattern_sha256(5, size).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(r.text(), format!("sha256 {hex} {size}\n"));
    let peak = lb.status_kib("VmHWM");
    assert!(peak < 32 * 1024, "proxy peak RSS {peak} KiB for a 128 MiB upload");
}

#[test]
fn random_bytes_from_clients_never_take_the_proxy_down() {
    let (_b, addrs) = backends(1, &[]);
    let mut lb = http_proxy(&addrs, &["--request-timeout", "2s"]);
    let mut rng = XorShift(0x1234_5678u64);
    let mut next = || rng.next();
    for _ in 0..150 {
        let len = (next() % 300) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if next() % 2 == 0 {
            // Half of them look like the start of a request, to get past the first checks.
            let mut req = b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            req.append(&mut junk);
            junk = req;
        }
        junk.extend_from_slice(b"\r\n\r\n");
        let mut s = std::net::TcpStream::connect(lb.addr).unwrap();
        let _ = s.write_all(&junk);
        let _ = s.shutdown(std::net::Shutdown::Write);
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if !out.is_empty() {
            assert!(out.starts_with(b"HTTP/1.1 "), "non-HTTP answer: {:?}", String::from_utf8_lossy(&out));
        }
    }
    assert!(lb.is_running(), "lbproxy died on random input");
    assert_eq!(Conn::open(lb.addr).get("/").status, 200);
}
