//! The stateful session client: proves each session stays on one backend.
//!
//! Run (with `stream_backend`s behind lbproxy):
//! `cargo run --release --example client -- --lb 127.0.0.1:9000 --sessions 100 --messages 20`
//!
//! Each session sends `--messages` `MSG` lines and checks every reply: same
//! server, same session id, the per-session counter going 1, 2, 3, ... and
//! the echoed text. Prints sessions per backend and latency percentiles;
//! exits 1 on any mismatch or error.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Clone)]
#[command(about = "Stateful client: checks session continuity through the balancer")]
struct Args {
    /// The balancer (or a backend) as HOST:PORT.
    #[arg(long)]
    lb: SocketAddr,
    /// Number of sessions (connections).
    #[arg(long, default_value_t = 100)]
    sessions: u64,
    /// Messages per session.
    #[arg(long, default_value_t = 10)]
    messages: u64,
    /// Sessions running at once.
    #[arg(long, default_value_t = 8)]
    concurrency: u64,
    /// Source address to connect from (a second "host" on one machine).
    #[arg(long)]
    bind_ip: Option<IpAddr>,
}

struct Tally {
    per_server: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let next = Arc::new(AtomicU64::new(0));
    let tally =
        Arc::new(Mutex::new(Tally { per_server: BTreeMap::new(), latencies: Vec::new(), failures: Vec::new() }));
    let start = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (args, next, tally) = (args.clone(), next.clone(), tally.clone());
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < args.sessions {
                    let mut lat = Vec::with_capacity(args.messages as usize);
                    let result = run_session(&args, &mut lat);
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.latencies.extend(lat);
                    match result {
                        Ok(server) => *t.per_server.entry(server).or_default() += 1,
                        Err(e) => t.failures.push(e),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let elapsed = start.elapsed();
    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
    println!("sessions: {} in {:.2}s, {} messages each", args.sessions, elapsed.as_secs_f64(), args.messages);
    for (server, n) in &t.per_server {
        println!("  server {server}: {n} sessions");
    }
    println!("{}", common::latency_line(&mut t.latencies));
    if t.failures.is_empty() {
        println!("all sessions stayed on one backend: OK");
        ExitCode::SUCCESS
    } else {
        for f in t.failures.iter().take(10) {
            eprintln!("FAIL: {f}");
        }
        eprintln!("{} of {} sessions failed", t.failures.len(), args.sessions);
        ExitCode::FAILURE
    }
}

fn connect(args: &Args) -> io::Result<TcpStream> {
    match args.bind_ip {
        None => TcpStream::connect_timeout(&args.lb, Duration::from_secs(10)),
        Some(ip) => {
            let s = socket2::Socket::new(socket2::Domain::for_address(args.lb), socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::new(ip, 0).into())?;
            s.connect_timeout(&args.lb.into(), Duration::from_secs(10))?;
            Ok(s.into())
        }
    }
}

/// One session; returns the server id it stayed on.
fn run_session(args: &Args, lat: &mut Vec<Duration>) -> Result<String, String> {
    let stream = connect(args).map_err(|e| format!("connect {}: {e}", args.lb))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut out = stream.try_clone().map_err(|e| e.to_string())?;
    let mut input = BufReader::new(stream);
    let mut first: Option<(String, String)> = None;
    let mut line = String::new();
    for i in 1..=args.messages {
        let text = format!("m{i}");
        let t0 = Instant::now();
        writeln!(out, "MSG {text}").map_err(|e| format!("send: {e}"))?;
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => return Err(format!("connection closed after {} messages", i - 1)),
            Ok(_) if !line.ends_with('\n') => return Err(format!("connection closed in reply {i}")),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        lat.push(t0.elapsed());
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("")
                .to_string()
        };
        let (server, session) = (field("server"), field("session"));
        let (count, echo) = (field("count"), field("echo"));
        if count != i.to_string() || echo != text {
            return Err(format!("CORRUPT reply {i} out of order: {}", line.trim()));
        }
        match &first {
            None => first = Some((server, session)),
            Some((s0, ss0)) if *s0 != server || *ss0 != session => {
                return Err(format!("CORRUPT session moved from server {s0}/{ss0} to {server}/{session}"));
            }
            _ => {}
        }
    }
    let _ = writeln!(out, "QUIT");
    Ok(first.map(|f| f.0).unwrap_or_else(|| "none".into()))
}
