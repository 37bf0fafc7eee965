//! A stateful session server for lbproxy's TCP mode.
//!
//! Run: `cargo run --release --example stream_backend -- --port 8001 --id 1`
//! (`--port 0` picks a free port; the first stdout line is `listening on ADDR`).
//!
//! Line protocol, one command per line; every reply names the server and
//! the session so a client can prove its session never moved:
//! - `WHO` -> `server=ID session=SID count=C`
//! - `MSG TEXT` -> `server=ID session=SID count=C echo=TEXT` (C counts this session's messages)
//! - `UPLOAD SIZE` then SIZE raw bytes -> `SHA256 HEX SIZE`
//! - `UPLOAD-EOF` then raw bytes until the client shuts its write half -> `SHA256 HEX N`, then close
//! - `DOWNLOAD SIZE SEED` -> SIZE bytes of the seeded pattern (see examples/common)
//! - `QUIT` -> close
//!
//! `--reset-file PATH` (fault injection, tools/chaos.sh): while PATH exists,
//! every session is reset (RST) at its next command or download chunk.

#[path = "common/mod.rs"]
mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use clap::Parser;
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(about = "Stateful session server: counters per session, uploads with sha256, seeded downloads")]
struct Args {
    #[command(flatten)]
    listen: common::Listen,
    /// While this file exists, sessions are reset at their next command or chunk.
    #[arg(long)]
    reset_file: Option<std::path::PathBuf>,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let id = args.listen.id;
    let reset_file = args.reset_file.clone();
    common::serve_forever(&args.listen.bind, args.listen.port, move |stream, sid| {
        let resets = Resets(reset_file.clone());
        if let Err(e) = serve(stream, id, sid, &resets)
            && e.kind() != io::ErrorKind::UnexpectedEof
        {
            eprintln!("server {id} session {sid}: {e}");
        }
    })
}

/// The `--reset-file` switch.
struct Resets(Option<std::path::PathBuf>);

impl Resets {
    /// Reset `s` (RST, not FIN) if the switch is on; true if it was.
    fn reset(&self, s: &TcpStream) -> bool {
        let on = self.0.as_ref().is_some_and(|p| p.exists());
        if on {
            let _ = socket2::SockRef::from(s).set_linger(Some(std::time::Duration::ZERO));
            let _ = s.shutdown(std::net::Shutdown::Read);
        }
        on
    }
}

fn serve(stream: TcpStream, id: u32, sid: u64, resets: &Resets) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::with_capacity(64 * 1024, stream);
    let session = format!("s{id}-{sid}");
    let mut count = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 || resets.reset(&out) {
            return Ok(());
        }
        let cmd = line.trim_end_matches(['\r', '\n']);
        let (verb, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
        match verb {
            "WHO" => reply(&mut out, format!("server={id} session={session} count={count}"))?,
            "MSG" => {
                count += 1;
                reply(&mut out, format!("server={id} session={session} count={count} echo={rest}"))?;
            }
            "UPLOAD" => match rest.trim().parse::<u64>() {
                Ok(size) => {
                    let sha = sha_of(&mut (&mut input).take(size))?;
                    reply(&mut out, format!("SHA256 {} {}", sha.0, sha.1))?;
                }
                Err(_) => reply(&mut out, "ERR bad size".into())?,
            },
            "UPLOAD-EOF" => {
                let sha = sha_of(&mut input)?;
                reply(&mut out, format!("SHA256 {} {}", sha.0, sha.1))?;
                return Ok(());
            }
            "DOWNLOAD" => {
                let mut it = rest.split_whitespace().map(str::parse::<u64>);
                match (it.next(), it.next()) {
                    (Some(Ok(size)), Some(Ok(seed))) => {
                        if !send_pattern(&mut out, size, seed, resets)? {
                            return Ok(());
                        }
                    }
                    _ => reply(&mut out, "ERR usage: DOWNLOAD SIZE SEED".into())?,
                }
            }
            "QUIT" => return Ok(()),
            _ => reply(&mut out, "ERR unknown command".into())?,
        }
    }
}

/// One reply line in one write, so it travels in one segment.
fn reply(out: &mut TcpStream, mut line: String) -> io::Result<()> {
    line.push('\n');
    out.write_all(line.as_bytes())
}

fn sha_of<R: Read>(r: &mut R) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((common::hex(&h.finalize()), total));
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
}

/// False if the session was reset part way.
fn send_pattern(out: &mut TcpStream, size: u64, seed: u64, resets: &Resets) -> io::Result<bool> {
    let sent = common::for_each_pattern_chunk(seed, size, |chunk| {
        if resets.reset(out) { Err(io::ErrorKind::ConnectionAborted.into()) } else { out.write_all(chunk) }
    });
    match sent {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => Ok(false),
        Err(e) => Err(e),
    }
}
