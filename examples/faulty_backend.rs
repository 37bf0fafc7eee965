//! An HTTP/1.1 backend that misbehaves on purpose, for the fault tests
//! (tests/http_faults.rs): it stalls, floods interim responses and closes
//! keep-alive connections under the proxy's feet.
//!
//! Run: `cargo run --example faulty_backend -- --port 0 --id 1`
//! (the first stdout line is `listening on ADDR`; every event below is one
//! more stdout line, flushed at once, so a test can wait for it).
//!
//! One thread per connection. It reads request heads only (up to the empty
//! line); a `Content-Length` body is skipped, a chunked one is not read and
//! the connection closes after the answer. Routes, by path:
//! - `/ok` -> `200`, keep-alive, body `server=ID`
//! - `/stall-head` -> never answers; prints `CLOSED /stall-head` when the peer closes
//! - `/stall-body` -> a head with `Content-Length: 100` and the 5 bytes `hello`, then
//!   nothing; prints `CLOSED /stall-body` when the peer closes
//! - `/endless-100` -> `100 Continue` heads, up to 64 MiB, with a 2 s write timeout;
//!   prints `BLOCKED after N bytes` when a write times out, `WROTE ALL N bytes`
//!   when everything was taken (or `FAILED after N bytes: ERROR`), then closes
//! - `/once` -> `200`, keep-alive; a second request on the same connection is not
//!   answered: the connection is closed and `STALE` printed (a pooled connection
//!   that went stale)
//! - anything else -> `404`, keep-alive
//!
//! Every request head read prints `REQ PATH`.

#[path = "common/mod.rs"]
mod common;

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Clone)]
#[command(about = "HTTP/1.1 test server that stalls, floods and goes stale on purpose")]
struct Args {
    #[command(flatten)]
    listen: common::Listen,
}

/// Request heads larger than this end the connection.
const MAX_HEAD: usize = 64 * 1024;
/// The most interim-response bytes `/endless-100` writes (whole heads only).
const ENDLESS_TOTAL: usize = 64 << 20;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn main() -> io::Result<()> {
    let args = Args::parse();
    common::serve_forever(&args.listen.bind, args.listen.port, move |stream, _| {
        let _ = serve(stream, args.listen.id);
    })
}

/// One stdout line, flushed now: tests wait for these.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What a request head says that this server cares about.
struct Head {
    path: String,
    content_length: u64,
    chunked: bool,
}

fn serve(mut s: TcpStream, id: u32) -> io::Result<()> {
    s.set_nodelay(true)?;
    // Bytes read past the current head (the start of the next request).
    let mut pending = Vec::new();
    let mut answered_once = false;
    loop {
        let Some(head) = read_head(&mut s, &mut pending)? else { return Ok(()) };
        say(&format!("REQ {}", head.path));
        match head.path.as_str() {
            "/stall-head" => return wait_for_close(&mut s, "/stall-head"),
            "/stall-body" => {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")?;
                return wait_for_close(&mut s, "/stall-body");
            }
            "/endless-100" => return flood_interim(&mut s),
            "/once" if answered_once => {
                say("STALE");
                return Ok(());
            }
            path => {
                answered_once |= path == "/once";
                skip_body(&mut s, &mut pending, head.content_length)?;
                let (status, body) = match path {
                    "/ok" | "/once" => ("200 OK", format!("server={id}")),
                    _ => ("404 Not Found", "not found\n".to_string()),
                };
                let close = if head.chunked { "Connection: close\r\n" } else { "" };
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n{close}\r\n{body}", body.len());
                s.write_all(answer.as_bytes())?;
                if head.chunked {
                    // Its body was not read, so the next request cannot be found.
                    return Ok(());
                }
            }
        }
    }
}

/// Read up to the end of a request head (CRLF CRLF). `None` on a clean close
/// before any byte of it; bytes after the head stay in `pending`.
fn read_head(s: &mut TcpStream, pending: &mut Vec<u8>) -> io::Result<Option<Head>> {
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if pending.len() > MAX_HEAD {
            return Err(io::Error::new(ErrorKind::InvalidData, "request head too large"));
        }
        match s.read(&mut buf) {
            Ok(0) if pending.is_empty() => return Ok(None),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    let text = String::from_utf8_lossy(&pending[..end]).into_owned();
    pending.drain(..end);
    let mut lines = text.split("\r\n");
    let target = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("/");
    let mut head =
        Head { path: target.split('?').next().unwrap_or("/").to_string(), content_length: 0, chunked: false };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some(head))
}

/// Discard a `Content-Length` body, starting with what `pending` holds of it.
fn skip_body(s: &mut TcpStream, pending: &mut Vec<u8>, len: u64) -> io::Result<()> {
    let from_pending = pending.len().min(len as usize);
    pending.drain(..from_pending);
    let left = len - from_pending as u64;
    let copied = io::copy(&mut s.take(left), &mut io::sink())?;
    if copied < left {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Keep the connection open, reading and discarding, until the peer closes
/// it (end of file or an error such as a reset); then say so.
fn wait_for_close(s: &mut TcpStream, path: &str) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    say(&format!("CLOSED {path}"));
    Ok(())
}

/// Write `100 Continue` heads until `ENDLESS_TOTAL` bytes are out or one
/// write stays blocked for 2 s (the proxy stopped reading: backpressure).
fn flood_interim(s: &mut TcpStream) -> io::Result<()> {
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    // Whole heads only, so a partial write resumes in the middle of one and
    // the stream stays well formed.
    let batch: Vec<u8> = CONTINUE.repeat(64 * 1024 / CONTINUE.len());
    let limit = ENDLESS_TOTAL - ENDLESS_TOTAL % CONTINUE.len();
    let mut pos = 0;
    let mut total = 0;
    while total < limit {
        let want = (batch.len() - pos).min(limit - total);
        match s.write(&batch[pos..pos + want]) {
            Ok(0) => {
                say(&format!("FAILED after {total} bytes: write returned 0"));
                return Ok(());
            }
            Ok(n) => {
                total += n;
                pos = (pos + n) % batch.len();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                say(&format!("BLOCKED after {total} bytes"));
                return Ok(());
            }
            Err(e) => {
                say(&format!("FAILED after {total} bytes: {e}"));
                return Ok(());
            }
        }
    }
    say(&format!("WROTE ALL {total} bytes"));
    Ok(())
}
