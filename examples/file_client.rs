//! File transfers through the balancer, verified by sha256 in both directions.
//!
//! Run (with `stream_backend`s behind lbproxy), from one or several hosts at once:
//! `cargo run --release --example file_client -- --lb 127.0.0.1:9000 --size 64MiB --parallel 2 [--file PATH]`
//!
//! Each of `--parallel` workers uploads the data (the file, or `--size` bytes
//! of the seeded pattern) and compares the backend's sha256 with its own, then
//! downloads as many bytes of the seeded pattern and checks their sha256.
//! Prints MB/s each way; exits 1 on any mismatch or error. A failure is
//! printed `FAIL: ...`; one where the bytes arrived in full but differ (the
//! kind a proxy must never cause) is printed `FAIL: CORRUPT ...`.

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use sha2::{Digest, Sha256};

#[derive(Parser, Clone)]
#[command(about = "Upload and download through the balancer, verifying sha256 both ways")]
struct Args {
    /// The balancer as HOST:PORT.
    #[arg(long)]
    lb: SocketAddr,
    /// Bytes per transfer when no --file is given (K, M, G suffixes).
    #[arg(long, default_value = "16MiB", value_parser = common::parse_size)]
    size: u64,
    /// Transfers running at once.
    #[arg(long, default_value_t = 1)]
    parallel: u32,
    /// Upload this file instead of generated data.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Source address to connect from (a second "host" on one machine).
    #[arg(long)]
    bind_ip: Option<IpAddr>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let size = match &args.file {
        Some(p) => match std::fs::metadata(p) {
            Ok(m) => m.len(),
            Err(e) => {
                eprintln!("cannot read --file {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => args.size,
    };
    let expected_up = match upload_sha(&args, size) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot hash upload data: {e}");
            return ExitCode::from(2);
        }
    };
    let expected_down = common::pattern_sha256(args.seed, size);
    let start = Instant::now();
    let workers: Vec<_> = (0..args.parallel.max(1))
        .map(|w| {
            let (args, up, down) = (args.clone(), expected_up.clone(), expected_down.clone());
            std::thread::spawn(move || worker(&args, w, size, &up, &down))
        })
        .collect();
    let mut failed = 0;
    let (mut up_secs, mut down_secs) = (0f64, 0f64);
    for w in workers {
        match w.join() {
            Ok(Ok((u, d))) => {
                up_secs = up_secs.max(u.as_secs_f64());
                down_secs = down_secs.max(d.as_secs_f64());
            }
            Ok(Err(e)) => {
                eprintln!("FAIL: {e}");
                failed += 1;
            }
            Err(_) => failed += 1,
        }
    }
    let total_mb = size as f64 * f64::from(args.parallel.max(1)) / 1e6;
    println!(
        "{} x {} bytes: upload {:.1} MB/s, download {:.1} MB/s, wall {:.2}s",
        args.parallel,
        size,
        total_mb / up_secs.max(1e-9),
        total_mb / down_secs.max(1e-9),
        start.elapsed().as_secs_f64()
    );
    if failed == 0 {
        println!("sha256 verified both ways: OK");
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} transfers failed");
        ExitCode::FAILURE
    }
}

fn upload_sha(args: &Args, size: u64) -> io::Result<String> {
    match &args.file {
        Some(p) => {
            let mut h = Sha256::new();
            io::copy(&mut File::open(p)?, &mut HashWriter(&mut h))?;
            Ok(common::hex(&h.finalize()))
        }
        None => Ok(common::pattern_sha256(args.seed, size)),
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn connect(args: &Args) -> io::Result<TcpStream> {
    let s = match args.bind_ip {
        None => TcpStream::connect_timeout(&args.lb, Duration::from_secs(10))?,
        Some(ip) => {
            let s = socket2::Socket::new(socket2::Domain::for_address(args.lb), socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::new(ip, 0).into())?;
            s.connect_timeout(&args.lb.into(), Duration::from_secs(10))?;
            s.into()
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(s)
}

fn worker(args: &Args, w: u32, size: u64, up_sha: &str, down_sha: &str) -> Result<(Duration, Duration), String> {
    let ctx = |what: &str, e: io::Error| format!("worker {w} {what}: {e}");
    // Upload.
    let t0 = Instant::now();
    let mut s = connect(args).map_err(|e| ctx("connect", e))?;
    writeln!(s, "UPLOAD {size}").map_err(|e| ctx("upload", e))?;
    match &args.file {
        Some(p) => {
            let mut f = File::open(p).map_err(|e| ctx("open", e))?;
            io::copy(&mut f, &mut s).map_err(|e| ctx("upload", e))?;
        }
        None => {
            let mut p = common::Pattern::new(args.seed);
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = size;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                p.fill(&mut buf[..n]);
                s.write_all(&buf[..n]).map_err(|e| ctx("upload", e))?;
                left -= n as u64;
            }
        }
    }
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(|e| ctx("upload reply", e))?;
    let want = format!("SHA256 {up_sha} {size}");
    if line.trim() != want {
        // All bytes arrived (the backend counted them) yet the hash differs.
        let whole = line.trim().strip_prefix("SHA256 ").is_some_and(|r| r.ends_with(&format!(" {size}")));
        let kind = if whole { "CORRUPT upload" } else { "upload failed" };
        return Err(format!("{kind}: worker {w}: backend said {:?}, expected {want:?}", line.trim()));
    }
    let up = t0.elapsed();
    // Download.
    let t1 = Instant::now();
    let mut s = connect(args).map_err(|e| ctx("connect", e))?;
    writeln!(s, "DOWNLOAD {size} {}", args.seed).map_err(|e| ctx("download", e))?;
    let mut h = Sha256::new();
    let got = io::copy(&mut (&mut s).take(size), &mut HashWriter(&mut h)).map_err(|e| ctx("download", e))?;
    if got != size {
        return Err(format!("worker {w}: download truncated at {got} of {size} bytes"));
    }
    let sha = common::hex(&h.finalize());
    if sha != down_sha {
        return Err(format!("CORRUPT download: worker {w}: sha256 {sha}, expected {down_sha}"));
    }
    Ok((up, t1.elapsed()))
}
