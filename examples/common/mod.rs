//! Helpers shared by the example programs (included with `#[path]`).
#![allow(dead_code)]

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Where a test server listens and what it calls itself: `--port`, `--id`, `--bind`.
#[derive(clap::Args, Clone, Debug)]
pub struct Listen {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8001)]
    pub port: u16,
    /// Server id, named in its answers.
    #[arg(long, default_value_t = 1)]
    pub id: u32,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
}

/// Bind, announce `listening on ADDR` (what tests and scripts wait for), and
/// serve each connection on its own thread; `handle` gets the connection's
/// 1-based sequence number.
pub fn serve_forever<F>(bind: &str, port: u16, handle: F) -> io::Result<()>
where
    F: Fn(TcpStream, u64) + Clone + Send + 'static,
{
    let listener = TcpListener::bind((bind, port))?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    for (n, conn) in listener.incoming().enumerate() {
        let Ok(stream) = conn else { continue };
        let handle = handle.clone();
        std::thread::spawn(move || handle(stream, n as u64 + 1));
    }
    Ok(())
}

/// Deterministic byte stream from a seed (splitmix64), so a downloader can
/// check what it received without the file existing on its side.
pub struct Pattern {
    state: u64,
    pending: [u8; 8],
    used: usize,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern { state: seed, pending: [0; 8], used: 8 }
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() {
            if self.used == 8 {
                self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                self.pending = (z ^ (z >> 31)).to_le_bytes();
                self.used = 0;
            }
            let n = (8 - self.used).min(out.len() - i);
            out[i..i + n].copy_from_slice(&self.pending[self.used..self.used + n]);
            self.used += n;
            i += n;
        }
    }
}

/// Hand `size` bytes of the pattern for `seed` to `f`, 64 KiB at a time.
pub fn for_each_pattern_chunk(seed: u64, size: u64, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut p = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        p.fill(&mut buf[..n]);
        f(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// sha256 of `size` bytes of the pattern for `seed`.
pub fn pattern_sha256(seed: u64, size: u64) -> String {
    let mut p = Pattern::new(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        p.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        left -= n as u64;
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `1048576`, `64K`, `64MiB`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size \"{s}\""))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size \"{s}\": unknown unit \"{unit}\"")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("invalid size \"{s}\": too large"))
}

/// p-th percentile (0..=100) of sorted samples, nearest-rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn latency_line(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let us = |d: Duration| d.as_micros();
    format!(
        "latency us: p50={} p90={} p99={} p99.9={} max={} (n={})",
        us(percentile(samples, 50.0)),
        us(percentile(samples, 90.0)),
        us(percentile(samples, 99.0)),
        us(percentile(samples, 99.9)),
        us(samples.last().copied().unwrap_or_default()),
        samples.len()
    )
}
