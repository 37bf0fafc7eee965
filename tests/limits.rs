//! Limits that hold under attack (issue 15): per-address connection and
//! request-rate limits, thousands of slow clients, backends that never read.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use util::http::Conn;
use util::*;

/// Raise this test process's open-file soft limit to the hard one (the
/// slow-client test holds thousands of sockets).
fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
    }
    rl.rlim_cur
}

#[test]
fn http_connections_over_the_per_ip_limit_get_429_and_other_addresses_are_served() {
    let b = http_backend(1, &[]);
    let lb = lbproxy("round_robin", &[b.addr], &["--mode", "http", "--max-conns-per-ip", "3"]);
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::open(lb.addr)).collect();
    for c in held.iter_mut() {
        assert_eq!(c.get("/").status, 200);
    }
    // The fourth from 127.0.0.1 is answered at once, before it asks.
    let mut extra = Conn::open(lb.addr);
    let refused = extra.read_response(false);
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(extra.is_closed());
    lb.wait_for_line("client 127.0.0.1 refused: 3 connections open");
    // Other addresses have places of their own.
    assert_eq!(Conn::open_from(lb.addr, [127, 0, 0, 2]).get("/").status, 200);
    // A held connection that ends gives its place back: the proxy's FIN to
    // us comes after it closed the session.
    let gone = held.pop().expect("a held connection");
    gone.close_and_wait();
    assert_eq!(Conn::open(lb.addr).get("/").status, 200);
    // Still serving the ones that stayed.
    assert_eq!(held[0].get("/").status, 200);
}

#[test]
fn tcp_connections_over_the_per_ip_limit_are_closed_without_a_backend() {
    let b = stream_backend(1);
    let lb = lbproxy("round_robin", &[b.addr], &["--max-conns-per-ip", "2"]);
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect(lb.addr)).collect();
    for s in held.iter_mut() {
        assert_eq!(server_of(&ask(s, "WHO")), 1);
    }
    let mut extra = connect(lb.addr);
    let _ = extra.write_all(b"WHO\n");
    let mut got = Vec::new();
    let ended = match extra.read_to_end(&mut got) {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    };
    assert!(ended && got.is_empty(), "the third connection got {:?}", String::from_utf8_lossy(&got));
    let mut other = connect_from(lb.addr, [127, 0, 0, 2]);
    assert_eq!(server_of(&ask(&mut other, "WHO")), 1);
    close_and_wait(held.pop().expect("held"));
    assert_eq!(who(lb.addr), 1);
}

#[test]
fn http_requests_over_the_per_ip_rate_get_429_and_the_connection_stays_open() {
    let b = http_backend(1, &[]);
    let rate = 5.0;
    let lb = lbproxy("round_robin", &[b.addr], &["--mode", "http", "--rate-per-ip", "5"]);
    let mut c = Conn::open(lb.addr);
    let start = Instant::now();
    let mut passed = 0;
    let refused = loop {
        let r = c.get("/");
        match r.status {
            200 => passed += 1,
            429 => break r,
            s => panic!("unexpected status {s}: {}", r.text()),
        }
        assert!(passed < 1000, "1000 requests passed a limit of 5 per second");
    };
    let elapsed = start.elapsed().as_secs_f64();
    // A full bucket (5) plus what refilled while these ran, and no more.
    assert!(passed >= 5, "only {passed} requests passed before the first 429");
    assert!(passed as f64 <= rate + rate * elapsed, "{passed} requests passed in {elapsed:.3} s at 5/s");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("connection"), None, "a body-less request's 429 keeps the connection");
    // Another address has its own bucket.
    assert_eq!(Conn::open_from(lb.addr, [127, 0, 0, 3]).get("/").status, 200);
    // The refused connection is still usable once its bucket has a token
    // again (the 429 said one second).
    let again = (0..50).find_map(|_| {
        let r = c.get("/");
        if r.status == 200 {
            return Some(r);
        }
        thread::sleep(Duration::from_millis(100));
        None
    });
    assert!(again.is_some(), "no 200 on the refused connection within 5 s");
}

/// Thousands of connections that send a request head a byte at a time,
/// slower than `--request-timeout` allows: each gets 408 and is closed,
/// and a normal client is served all along.
#[test]
fn thousands_of_slow_clients_get_408_while_normal_clients_are_served() {
    let slow_count: usize = 2000;
    let fds = raise_nofile();
    assert!(
        fds as usize > slow_count + 200,
        "this test needs {} open files, the hard limit is {fds}",
        slow_count + 200
    );
    let b = http_backend(1, &[]);
    let lb = lbproxy("round_robin", &[b.addr], &["--mode", "http", "--request-timeout", "2s"]);
    let mut slow: Vec<(TcpStream, Vec<u8>)> = (0..slow_count)
        .map(|_| {
            let s = TcpStream::connect_timeout(&lb.addr, PATIENCE).expect("slow connect");
            s.set_nonblocking(true).expect("nonblocking");
            (s, Vec::new())
        })
        .collect();
    let head = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
    // One byte per connection per second, until it has its answer (bounded rounds).
    let sender = thread::spawn(move || {
        for round in 0..20 {
            let mut waiting = 0;
            for (s, got) in slow.iter_mut() {
                let mut buf = [0u8; 512];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(_) => break,
                    }
                }
                if got.is_empty() {
                    waiting += 1;
                    let byte = head.get(round).copied().unwrap_or(b'a');
                    let _ = s.write(&[byte]);
                }
            }
            if waiting == 0 {
                break;
            }
            thread::sleep(Duration::from_secs(1));
        }
        slow
    });
    // Normal clients, while the slow ones hold their connections.
    for i in 0..50 {
        let r = Conn::open(lb.addr).get("/");
        assert_eq!(r.status, 200, "normal request {i}: {}", r.text());
    }
    let slow = sender.join().expect("slow sender");
    let answered = slow.iter().filter(|(_, got)| got.starts_with(b"HTTP/1.1 408 ")).count();
    let other: Vec<String> = slow
        .iter()
        .filter(|(_, got)| !got.starts_with(b"HTTP/1.1 408 "))
        .take(3)
        .map(|(_, got)| String::from_utf8_lossy(got).into_owned())
        .collect();
    assert_eq!(answered, slow_count, "slow clients without a 408, e.g. {other:?}");
    drop(slow);
    assert_eq!(Conn::open(lb.addr).get("/").status, 200);
}

/// A backend that accepts and never reads: the client's upload stops at
/// what the kernel buffers hold, the proxy holds at most its buffers, and
/// the client gets 504 after `--backend-timeout`.
#[test]
fn a_backend_that_never_reads_an_upload_costs_bounded_memory_and_the_client_gets_504() {
    let sink = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let sink_addr: SocketAddr = sink.local_addr().unwrap();
    let holder = thread::spawn(move || {
        let (s, _) = sink.accept().expect("sink accept");
        // Hold it unread until the proxy gives up and closes it.
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut one = [0u8; 1];
        let _ = s.peek(&mut one);
        s
    });
    let lb = lbproxy("round_robin", &[sink_addr], &["--mode", "http", "--backend-timeout", "1s"]);
    let mut c = TcpStream::connect(lb.addr).expect("connect");
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let size = 256u64 << 20;
    c.write_all(format!("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n").as_bytes()).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0u64;
    // Until the write side stalls (backpressure), then read the answer.
    while sent < size {
        match c.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    assert!(sent < size, "all {size} bytes were taken by a backend that reads nothing");
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 504 "), "answer: {text:?}");
    let hwm = lb.status_kib("VmHWM");
    assert!(hwm < 32 * 1024, "proxy peak RSS {hwm} KiB after {sent} bytes were sent to a sink");
    drop(holder.join());
}
