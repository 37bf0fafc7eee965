//! The PROXY protocol (issue 11 item 3), with HAProxy as the peer on both
//! sides: HAProxy in front sends v1 or v2 headers that lbproxy reads
//! (`--accept-proxy`), and HAProxy behind reads the headers lbproxy sends
//! (`--send-proxy`) and answers with the source address it learned.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;

use util::http::Conn;
use util::peers::{Peer, haproxy, nginx};
use util::*;

const DEFAULTS: &str = "defaults\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n";

/// HAProxy on a free port forwarding TCP to `to`, with `send` (`send-proxy`
/// or `send-proxy-v2`) on its server line.
fn haproxy_in_front(to: SocketAddr, send: &str) -> (Peer, SocketAddr) {
    let port = quiet_port();
    let cfg = format!(
        "{DEFAULTS}  mode tcp\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend b\n\
         backend b\n  server lb {to} {send}\n"
    );
    (haproxy(send, &cfg, &[port]), SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The X-Forwarded-For a request through `proxy` from source `src` reached the backend with.
fn xff_from(proxy: SocketAddr, src: [u8; 4]) -> String {
    let mut c = Conn::open_from(proxy, src);
    let r = c.get("/headers");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("X-Forwarded-For: ").or_else(|| l.strip_prefix("x-forwarded-for: ")))
        .unwrap_or_else(|| panic!("no X-Forwarded-For in {}", r.text()))
        .to_string()
}

#[test]
fn headers_from_haproxy_v1_and_v2_name_the_client_everywhere() {
    let b = http_backend(1, &[]);
    let lb = lbproxy(
        "round_robin",
        &[b.addr],
        &["--mode", "http", "--accept-proxy", "required", "--trusted-proxies", "127.0.0.1"],
    );
    for send in ["send-proxy", "send-proxy-v2"] {
        let (_h, front) = haproxy_in_front(lb.addr, send);
        assert_eq!(xff_from(front, [127, 0, 0, 7]), "127.0.0.7", "{send}");
    }
    // Without a header (required), or from a source not trusted: closed.
    let mut direct = Conn::open(lb.addr);
    assert!(direct.try_get("/").is_err(), "a client without a PROXY header was served");
    let mut untrusted = connect_from(lb.addr, [127, 0, 0, 9]);
    untrusted.write_all(b"PROXY TCP4 6.6.6.6 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = untrusted.read_to_end(&mut got);
    assert!(got.is_empty(), "a header from an untrusted source was accepted: {}", String::from_utf8_lossy(&got));
    // A malformed header: closed, and the proxy keeps serving.
    let mut bad = connect(lb.addr);
    bad.write_all(b"PROXY TCP4 1.2.3.4 nope 1 2\r\n").unwrap();
    let mut got = Vec::new();
    let _ = bad.read_to_end(&mut got);
    assert!(got.is_empty());
    let (_h, front) = haproxy_in_front(lb.addr, "send-proxy-v2");
    assert_eq!(xff_from(front, [127, 0, 0, 8]), "127.0.0.8");
}

#[test]
fn optional_mode_serves_plain_clients_and_reads_headers_in_tcp_mode() {
    let b = stream_backend(1);
    let lb = lbproxy("ip_hash", &[b.addr], &["--accept-proxy", "optional"]);
    // Plain TCP client: served.
    assert_eq!(who(lb.addr), 1);
    // A v1 header written by hand, then the session's own bytes.
    let mut s = connect(lb.addr);
    s.write_all(b"PROXY TCP4 192.0.2.44 127.0.0.1 40000 9000\r\nWHO\n").unwrap();
    assert_eq!(server_of(&read_line(&mut s)), 1);
}

/// HAProxy behind lbproxy with `accept-proxy`, answering every request
/// with the source address it learned from the header.
fn haproxy_behind() -> (Peer, SocketAddr) {
    let port = quiet_port();
    let cfg = format!(
        "{DEFAULTS}  mode http\nfrontend f\n  bind 127.0.0.1:{port} accept-proxy\n\
         http-request return status 200 content-type text/plain lf-string \"src=%[src]\\n\"\n"
    );
    (haproxy("behind", &cfg, &[port]), SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn lbproxy_sends_v1_and_v2_headers_that_haproxy_reads() {
    let (_h, backend) = haproxy_behind();
    for (mode, version) in [("tcp", "v1"), ("tcp", "v2"), ("http", "v1"), ("http", "v2")] {
        let lb = lbproxy("round_robin", &[backend], &["--mode", mode, "--send-proxy", version]);
        for src in [[127, 0, 0, 21], [127, 0, 0, 22]] {
            let mut c = Conn::open_from(lb.addr, src);
            let r = c.get("/");
            let want = format!("src={}.{}.{}.{}\n", src[0], src[1], src[2], src[3]);
            assert_eq!(r.text(), want, "{mode} mode, {version}");
        }
    }
}

/// nginx behind lbproxy with `listen ... proxy_protocol`, answering with
/// `$proxy_protocol_addr` (the address the header named).
fn nginx_behind() -> (Peer, SocketAddr) {
    let port = quiet_port();
    let http = format!(
        "  server {{\n    listen 127.0.0.1:{port} proxy_protocol;\n\
             location / {{ return 200 \"pp=$proxy_protocol_addr\\n\"; }}\n  }}"
    );
    (nginx("pp", &http, port), SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn nginx_reads_the_v1_and_v2_headers_lbproxy_sends() {
    let (_nginx, backend) = nginx_behind();
    for (mode, version) in [("tcp", "v1"), ("tcp", "v2"), ("http", "v1"), ("http", "v2")] {
        let lb = lbproxy("round_robin", &[backend], &["--mode", mode, "--send-proxy", version]);
        let r = Conn::open_from(lb.addr, [127, 0, 0, 31]).get("/");
        assert_eq!(r.text(), "pp=127.0.0.31\n", "{mode} mode, {version}");
    }
}

#[test]
fn behind_haproxy_ip_hash_keys_on_the_real_client_addresses() {
    let backends: Vec<_> = (1..=3).map(stream_backend).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let lb = lbproxy("ip_hash", &addrs, &["--accept-proxy", "required", "--trusted-proxies", "127.0.0.1"]);
    let (_h, front) = haproxy_in_front(lb.addr, "send-proxy-v2");
    let who_from = |src: [u8; 4]| {
        let mut s = connect_from(front, src);
        server_of(&ask(&mut s, "WHO"))
    };
    // Every source keeps its backend; together they use more than one.
    let first: Vec<u32> = (40..60).map(|o| who_from([127, 0, 0, o])).collect();
    let again: Vec<u32> = (40..60).map(|o| who_from([127, 0, 0, o])).collect();
    assert_eq!(first, again, "a client moved");
    let mut used = first.clone();
    used.sort_unstable();
    used.dedup();
    assert!(used.len() >= 2, "20 client addresses all hashed to {used:?}: the proxy's own address was used");
}
