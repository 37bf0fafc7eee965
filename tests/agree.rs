//! Instances that agree without talking (issue 12): two lbproxy processes
//! with the same backends (listed in different orders) and the same seed
//! send every key to the same backend under each hashing policy, also
//! after a backend went down (each sees that through its own checks). A
//! different seed gives a different mapping: the seed is part of the key.

mod util;

use std::net::SocketAddr;
use std::time::Instant;

use util::http::Conn;
use util::*;

/// An HTTP-mode lbproxy over `order`, hashing the X-Key header, with fast checks.
fn instance(order: &[SocketAddr], seed: &str) -> (Proc, SocketAddr) {
    let mut args = vec!["--hash-key", "header:X-Key", "--health-check", "http:/heartbeat", "--seed", seed];
    args.extend(["--health-interval", "100ms", "--rise", "1", "--fall", "1"]);
    let first = order[0];
    let rest: Vec<String> = order[1..].iter().map(|a| a.to_string()).collect();
    let mut all: Vec<&str> = args.clone();
    for r in &rest {
        all.extend(["--backend", r.as_str()]);
    }
    http_proxy_with_admin(first, &all)
}

/// Which backend answers each of `keys` through `proxy`.
fn mapping(proxy: SocketAddr, keys: usize) -> Vec<u32> {
    let mut c = Conn::open(proxy);
    (0..keys)
        .map(|k| {
            c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Key: user-{k}\r\n\r\n").as_bytes());
            let r = c.read_response(false);
            assert_eq!(r.status, 200, "key {k}: {}", r.text());
            r.server()
        })
        .collect()
}

fn set_policy(admin: SocketAddr, policy: &str) {
    let mut s = connect(admin);
    let body = format!("{{\"policy\":\"{policy}\"}}");
    let req = format!("PUT /policy HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

fn wait_down(admin: SocketAddr, addr: SocketAddr) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = admin_stats(admin);
        let state = stats["backends"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["address"] == addr.to_string()))
            .map(|b| b["state"].clone());
        if state == Some(serde_json::json!("down")) {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} never marked down: {stats}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn two_instances_map_every_key_alike_under_each_hashing_policy_also_with_a_backend_down() {
    let b1 = http_backend(1, &[]);
    let mut b2 = Some(http_backend(2, &[]));
    let b3 = http_backend(3, &[]);
    let b2_addr = b2.as_ref().unwrap().addr;
    let (a, a_admin) = instance(&[b1.addr, b2_addr, b3.addr], "0");
    let (b, b_admin) = instance(&[b3.addr, b1.addr, b2_addr], "0");
    let (c, c_admin) = instance(&[b1.addr, b2_addr, b3.addr], "1");
    let policies = ["consistent_hash", "maglev", "ip_hash"];
    for p in policies {
        for admin in [a_admin, b_admin, c_admin] {
            set_policy(admin, p);
        }
        let (ma, mb, mc) = (mapping(a.addr, 200), mapping(b.addr, 200), mapping(c.addr, 200));
        assert_eq!(ma, mb, "{p}: instances with the same backends and seed disagree");
        for id in 1..=3 {
            assert!(ma.contains(&id), "{p}: backend {id} got no key");
        }
        assert_ne!(ma, mc, "{p}: another seed gave the same mapping");
    }
    drop(b2.take());
    wait_down(a_admin, b2_addr);
    wait_down(b_admin, b2_addr);
    for p in policies {
        set_policy(a_admin, p);
        set_policy(b_admin, p);
        let (ma, mb) = (mapping(a.addr, 200), mapping(b.addr, 200));
        assert_eq!(ma, mb, "{p}: instances disagree while backend 2 is down");
        assert!(!ma.contains(&2), "{p}: a key went to the down backend");
    }
    drop((a, b, c, b1, b3));
}
