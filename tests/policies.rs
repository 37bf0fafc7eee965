//! Every policy end to end, in TCP and HTTP modes, and fastest_ranked's probes.

mod util;

use std::collections::BTreeMap;

use lbproxy::policy::PolicyKind;
use util::http::Conn;
use util::*;

#[test]
fn every_policy_serves_in_tcp_and_http_mode_and_skips_a_dead_backend() {
    let (s1, s2) = (stream_backend(1), stream_backend(2));
    let (h1, h2) = (http_backend(1, &[]), http_backend(2, &[]));
    for kind in PolicyKind::ALL {
        let name = kind.name();
        let tcp = lbproxy(name, &[s1.addr, dead_addr(), s2.addr], &[]);
        for _ in 0..6 {
            let id = who(tcp.addr);
            assert!(id == 1 || id == 2, "{name} (tcp): served by {id}");
        }
        let http = lbproxy(name, &[h1.addr, dead_addr(), h2.addr], &["--mode", "http"]);
        let mut c = Conn::open(http.addr);
        for _ in 0..6 {
            let r = c.get("/");
            assert_eq!(r.status, 200, "{name} (http)");
            assert_eq!(r.text(), format!("Hello from server {}", r.server()));
        }
    }
}

#[test]
fn weights_shape_weighted_round_robin_exactly() {
    let (b1, b2) = (stream_backend(1), stream_backend(2));
    let spec = format!("{}@3", b1.addr);
    let lb = lbproxy("weighted_round_robin", &[], &["--backend", &spec, "--backend", &b2.addr.to_string()]);
    let mut got = BTreeMap::new();
    for _ in 0..40 {
        *got.entry(who(lb.addr)).or_insert(0) += 1;
    }
    assert_eq!(got, BTreeMap::from([(1, 30), (2, 10)]));
}

#[test]
fn fastest_ranked_prefers_fast_backends_and_drops_one_failing_its_probe() {
    // Backends 1-3 answer the probe after 1, 10 and 40 ms; backend 4 has no
    // /test.bin, so its probe fails and it must get nothing.
    let dir = std::env::temp_dir().join(format!("lbproxy-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test.bin"), vec![7u8; 100_000]).unwrap();
    let d = dir.to_str().unwrap();
    let fast = http_backend(1, &["--dir", d, "--delay-ms", "1"]);
    let mid = http_backend(2, &["--dir", d, "--delay-ms", "10"]);
    let slow = http_backend(3, &["--dir", d, "--delay-ms", "40"]);
    let broken = http_backend(4, &[]);
    let lb = lbproxy(
        "fastest_ranked",
        &[fast.addr, mid.addr, slow.addr, broken.addr],
        &["--mode", "redirect", "--probe-path", "/test.bin"],
    );
    lb.wait_for_line("probe round done");
    let mut c = Conn::open(lb.addr);
    let mut per: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..600 {
        let r = c.get("/f");
        assert_eq!(r.status, 301);
        let loc = r.header("location").unwrap().to_string();
        *per.entry(loc).or_default() += 1;
    }
    let count = |p: &Proc| per.get(&format!("http://{}/f", p.addr)).copied().unwrap_or(0);
    let (f, m, s, b) = (count(&fast), count(&mid), count(&slow), count(&broken));
    assert_eq!(b, 0, "the backend that failed its probe got traffic: {per:?}");
    // Expected 300 / 200 / 100 (weights 3:2:1); the standard deviation is about 12.
    assert!(f > m && m > s && s > 0, "not ranked by speed: fast {f}, mid {m}, slow {s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 12 requests of one hot key in flight at once (the backends take 1.5 s):
/// consistent_hash and maglev send them all to one backend, and with
/// `--hash-balance-factor 1.25` no backend gets more than
/// ceil(1.25 x 12 / 3) = 5.
#[test]
fn bounded_loads_spread_a_hot_key_over_the_cap() {
    let b: Vec<_> = (1..=3).map(|i| http_backend(i, &["--delay-ms", "1500"])).collect();
    let addrs: Vec<_> = b.iter().map(|p| p.addr).collect();
    for policy in ["consistent_hash", "maglev"] {
        for factor in ["0", "1.25"] {
            let args = ["--mode", "http", "--hash-key", "header:X-Key", "--hash-balance-factor", factor];
            let lb = lbproxy(policy, &addrs, &args);
            let threads: Vec<_> = (0..12)
                .map(|_| {
                    let addr = lb.addr;
                    std::thread::spawn(move || {
                        let mut c = util::http::Conn::open(addr);
                        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Key: the-hot-one\r\n\r\n");
                        c.read_response(false).server()
                    })
                })
                .collect();
            let mut counts = [0usize; 4];
            for t in threads {
                counts[t.join().expect("a client") as usize] += 1;
            }
            let most = *counts.iter().max().unwrap();
            if factor == "0" {
                assert_eq!(most, 12, "{policy} without a cap: {counts:?}");
            } else {
                assert!(most <= 5, "{policy} at 1.25: {counts:?}");
            }
        }
    }
}
