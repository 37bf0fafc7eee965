//! Micro-benchmarks of the per-request hot paths: one pick of every policy,
//! parsing and rewriting a request head, walking a chunked body.
//!
//! Run: `cargo bench --bench hot_paths` (a plain harness: prints ns per
//! operation, the median of 5 timed batches after a warm-up batch).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lbproxy::backend::Backend;
use lbproxy::http::framing::BodyFraming;
use lbproxy::http::head::parse_request;
use lbproxy::policy::rng::SplitMix64;
use lbproxy::policy::{Candidates, PickKey, PolicyKind, PolicyParams};

/// Median ns per call of `f` over 5 batches of `n` calls.
fn ns_per_op(n: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..n {
        f(i);
    }
    let mut batches: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..n {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[2]
}

fn main() {
    let backends: Vec<Backend> = (0..8u8).map(|i| Backend::new(SocketAddr::from(([10, 0, 0, 1 + i], 8080)))).collect();
    let mut rng = SplitMix64::new(1);
    let keys: Vec<PickKey> =
        (0..1024).map(|_| PickKey { client_ip: [127, 0, 0, 1].into(), request_hash: Some(rng.next_u64()) }).collect();
    println!("{:<28} {:>10}", "operation (8 backends)", "ns/op");
    for kind in PolicyKind::ALL {
        let mut p = kind.build(&PolicyParams::default());
        // Give the latency-aware policies samples so they take their real path.
        for i in 0..backends.len() {
            p.observe(i, Duration::from_micros(100 + 50 * i as u64), Instant::now());
            p.probed(i, Some(Duration::from_millis(1 + i as u64)));
        }
        let c = Candidates::new(&backends, &[]);
        let ns = ns_per_op(200_000, |i| {
            black_box(p.pick(&keys[i as usize % keys.len()], &c));
        });
        println!("{:<28} {:>10.1}", format!("pick {}", kind.name()), ns);
    }

    let head = b"GET /api/items?id=42 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\
                 Accept-Encoding: gzip\r\nConnection: keep-alive\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n";
    let ip = "127.0.0.1".parse().unwrap();
    let ns = ns_per_op(100_000, |_| {
        let h = parse_request(black_box(head), 65536, ip).unwrap().unwrap();
        let mut out = Vec::with_capacity(256);
        h.write_for_backend(true, &mut out);
        black_box(out);
    });
    println!("{:<28} {:>10.1}", "parse + rewrite request", ns);

    let mut body = Vec::new();
    for _ in 0..64 {
        body.extend_from_slice(b"400\r\n");
        body.extend_from_slice(&[b'x'; 1024]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let ns = ns_per_op(20_000, |_| {
        let mut f = BodyFraming::chunked();
        black_box(f.advance(black_box(&body)).unwrap());
    });
    println!("{:<28} {:>10.1}", "chunked framing, 64 KiB", ns);
}
