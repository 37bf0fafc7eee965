//! A stateless HTTP/1.1 server with keep-alive, for lbproxy tests and experiments.
//!
//! Run: `cargo run --release --example http_backend -- --port 8001 --id 1 [--delay-ms 5] [--jitter-ms 2] [--dir ./files] [--keepalive-ms 1000] [--fail-status 503] [--cold-ms 60000 --cold-delay-ms 20]`
//! (`--port 0` picks a free port; the first stdout line is `listening on ADDR`).
//!
//! Routes (every response carries `X-Server: ID`):
//! - `GET /` -> `Hello from server ID`
//! - `GET /heartbeat` -> 200, empty body, never delayed
//! - `GET /headers` -> the request's header lines, one per line
//! - `GET /bytes?size=N&seed=S` -> N bytes of the seeded pattern, Content-Length
//! - `GET /chunked?size=N&seed=S` -> the same bytes, chunked transfer encoding
//! - `GET /status/CODE` -> that status (204 and 304 without a body)
//! - `GET /fail/on`, `GET /fail/off` -> 200; from then on every other request (but
//!   `/heartbeat`) is answered with `--fail-status` (503 if not given), or normally again
//! - with `--fail-status CODE`: failing from the start (a backend in trouble)
//! - with `--cold-ms N --cold-delay-ms D`: for N ms after start every answer waits D ms
//!   (a cold backend: caches empty, JIT not warm), then none do
//! - `POST|PUT` anything -> `sha256 HEX N` of the request body (Content-Length or chunked)
//! - with `--dir DIR`: `GET /NAME` serves DIR/NAME, binary-safe
//!
//! HEAD is answered with the GET headers and no body.

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use sha2::{Digest, Sha256};

#[derive(Parser, Clone)]
#[command(about = "Stateless HTTP/1.1 test server with keep-alive")]
struct Args {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8001)]
    port: u16,
    /// Server id, in the body of `/` and the X-Server header.
    #[arg(long, default_value_t = 1)]
    id: u32,
    /// Fixed delay before each answer, emulating a slow server.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Extra random delay between 0 and this, per request.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Serve files from this directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Close a keep-alive connection that sends no new request this long (ms;
    /// 0 = never), as servers with a short keep-alive timeout do.
    #[arg(long, default_value_t = 0)]
    keepalive_ms: u64,
    /// Answer every request (but /heartbeat and /fail/*) with this status
    /// from the start (0 = answer normally until `GET /fail/on`).
    #[arg(long, default_value_t = 0)]
    fail_status: u16,
    /// How long after start the server is cold (ms; 0 = never).
    #[arg(long, default_value_t = 0)]
    cold_ms: u64,
    /// Extra delay of every answer while cold (ms).
    #[arg(long, default_value_t = 0)]
    cold_delay_ms: u64,
}

/// Failing now (`--fail-status`, `/fail/on`, `/fail/off`), shared by every connection.
static FAILING: AtomicBool = AtomicBool::new(false);
/// When the server started: it is cold for `--cold-ms` after.
static STARTED: OnceLock<Instant> = OnceLock::new();

const MAX_HEAD: usize = 64 * 1024;

struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
    http10: bool,
    /// The head as received, for `/headers`.
    raw_headers: String,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    FAILING.store(args.fail_status != 0, Ordering::Relaxed);
    STARTED.get_or_init(Instant::now);
    let (bind, port) = (args.bind.clone(), args.port);
    common::serve_forever(&bind, port, move |stream, _| {
        let _ = serve(stream, &args);
    })
}

fn serve(stream: TcpStream, args: &Args) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = io::BufWriter::with_capacity(64 * 1024, stream.try_clone()?);
    let mut input = BufReader::with_capacity(64 * 1024, stream);
    let mut rng = seed_rng();
    let idle_limit = (args.keepalive_ms > 0).then(|| Duration::from_millis(args.keepalive_ms));
    loop {
        input.get_ref().set_read_timeout(idle_limit)?;
        let head = read_head(&mut input);
        input.get_ref().set_read_timeout(None)?;
        let mut req = match head {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            // Idle past --keepalive-ms: close, as the backend's own timeout would.
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                respond(&mut out, args.id, "400 Bad Request", "text/plain", b"bad request\n", false, false)?;
                return out.flush();
            }
            Err(e) => return Err(e),
        };
        if req.expect_continue {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            out.flush()?;
        }
        if req.http10 && req.target.starts_with("/chunked") {
            // Its body will end with the connection (see answer()).
            req.keep_alive = false;
        }
        let body_sha = read_body(&mut input, &req)?;
        let cold = STARTED.get().is_some_and(|t| t.elapsed() < Duration::from_millis(args.cold_ms));
        if req.target != "/heartbeat" && cold {
            std::thread::sleep(Duration::from_millis(args.cold_delay_ms));
        }
        if req.target != "/heartbeat" && (args.delay_ms > 0 || args.jitter_ms > 0) {
            let jitter = if args.jitter_ms > 0 { next_rand(&mut rng) % (args.jitter_ms + 1) } else { 0 };
            std::thread::sleep(Duration::from_millis(args.delay_ms + jitter));
        }
        answer(&mut out, args, &req, body_sha)?;
        out.flush()?;
        if !req.keep_alive {
            return Ok(());
        }
    }
}

fn read_head<R: BufRead>(input: &mut R) -> io::Result<Option<Request>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    let mut total = 0;
    // Tolerate blank lines between requests, as RFC 9112 asks.
    loop {
        line.clear();
        let n = input.read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad("version"));
    }
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        keep_alive: version == "HTTP/1.1",
        http10: version == "HTTP/1.0",
        content_length: None,
        chunked: false,
        expect_continue: false,
        raw_headers: String::new(),
    };
    loop {
        line.clear();
        let n = input.read_line(&mut line)?;
        total += n;
        if n == 0 || total > MAX_HEAD {
            return Err(bad("head"));
        }
        let h = line.trim_end();
        if h.is_empty() {
            return Ok(Some(req));
        }
        let (name, value) = h.split_once(':').ok_or_else(|| bad("header"))?;
        let value = value.trim();
        req.raw_headers.push_str(h);
        req.raw_headers.push('\n');
        match name.to_ascii_lowercase().as_str() {
            "content-length" => req.content_length = Some(value.parse().map_err(|_| bad("content-length"))?),
            "transfer-encoding" => req.chunked = value.to_ascii_lowercase().contains("chunked"),
            "expect" => req.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    req.keep_alive = false;
                } else if v.contains("keep-alive") {
                    req.keep_alive = true;
                }
            }
            _ => {}
        }
    }
}

/// Read the request body (if any) and return its sha256 and length.
fn read_body<R: BufRead>(input: &mut R, req: &Request) -> io::Result<Option<(String, u64)>> {
    let mut h = Sha256::new();
    let mut total = 0u64;
    if req.chunked {
        let mut line = String::new();
        loop {
            line.clear();
            input.read_line(&mut line)?;
            let size_hex = line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size_hex, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    line.clear();
                    if input.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            total += copy_hashing(&mut input.take(size), &mut h)?;
            line.clear();
            input.read_line(&mut line)?;
        }
    } else if let Some(len) = req.content_length.filter(|&l| l > 0) {
        total = copy_hashing(&mut input.take(len), &mut h)?;
        if total != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    } else {
        return Ok(None);
    }
    Ok(Some((common::hex(&h.finalize()), total)))
}

fn copy_hashing<R: Read>(r: &mut R, h: &mut Sha256) -> io::Result<u64> {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
}

fn query_u64(target: &str, key: &str) -> Option<u64> {
    let q = target.split_once('?')?.1;
    q.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn answer<W: Write>(out: &mut W, args: &Args, req: &Request, body_sha: Option<(String, u64)>) -> io::Result<()> {
    let head_only = req.method == "HEAD";
    let ka = req.keep_alive;
    let path = req.target.split('?').next().unwrap_or("/");
    match path {
        "/fail/on" | "/fail/off" => {
            FAILING.store(path == "/fail/on", Ordering::Relaxed);
            return respond(out, args.id, "200 OK", "text/plain", b"ok\n", ka, head_only);
        }
        "/heartbeat" => {}
        _ if FAILING.load(Ordering::Relaxed) => {
            let code = if args.fail_status == 0 { 503 } else { args.fail_status };
            let status = format!("{code} Failing");
            return respond(out, args.id, &status, "text/plain", b"failing on purpose\n", ka, head_only);
        }
        _ => {}
    }
    if let Some((sha, n)) = body_sha.filter(|_| req.method == "POST" || req.method == "PUT") {
        let body = format!("sha256 {sha} {n}\n");
        return respond(out, args.id, "200 OK", "text/plain", body.as_bytes(), ka, head_only);
    }
    match path {
        "/" => {
            let body = format!("Hello from server {}", args.id);
            respond(out, args.id, "200 OK", "text/plain", body.as_bytes(), ka, head_only)
        }
        "/heartbeat" => respond(out, args.id, "200 OK", "text/plain", b"", ka, head_only),
        "/headers" => respond(out, args.id, "200 OK", "text/plain", req.raw_headers.as_bytes(), ka, head_only),
        "/bytes" | "/chunked" => {
            let size = query_u64(&req.target, "size").unwrap_or(1024);
            let seed = query_u64(&req.target, "seed").unwrap_or(0);
            // HTTP/1.0 has no chunked encoding: such a client gets the body
            // delimited by closing the connection instead.
            let body = match (path, req.http10) {
                ("/chunked", false) => Body::Chunked,
                ("/chunked", true) => Body::UntilClose,
                _ => Body::Length,
            };
            send_pattern(out, args.id, size, seed, body, ka, head_only)
        }
        p if p.starts_with("/status/") => {
            let code: u16 = p[8..].parse().unwrap_or(500);
            let status = format!("{code} {}", reason(code));
            if code == 204 || code == 304 {
                write!(out, "HTTP/1.1 {status}\r\nX-Server: {}\r\n{}\r\n", args.id, conn_header(ka))
            } else {
                respond(out, args.id, &status, "text/plain", status.as_bytes(), ka, head_only)
            }
        }
        p => match args.dir.as_deref().and_then(|d| safe_join(d, p)) {
            Some(file) if file.is_file() => send_file(out, args.id, &file, ka, head_only),
            _ => respond(out, args.id, "404 Not Found", "text/plain", b"not found\n", ka, head_only),
        },
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn conn_header(keep_alive: bool) -> &'static str {
    if keep_alive { "" } else { "Connection: close\r\n" }
}

fn respond<W: Write>(
    out: &mut W,
    id: u32,
    status: &str,
    ctype: &str,
    body: &[u8],
    ka: bool,
    head_only: bool,
) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nX-Server: {id}\r\n{}\r\n",
        body.len(),
        conn_header(ka)
    )?;
    if !head_only {
        out.write_all(body)?;
    }
    Ok(())
}

/// How a generated body is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    Length,
    Chunked,
    /// For HTTP/1.0 clients, which have no chunked encoding.
    UntilClose,
}

fn send_pattern<W: Write>(
    out: &mut W,
    id: u32,
    size: u64,
    seed: u64,
    body: Body,
    ka: bool,
    head_only: bool,
) -> io::Result<()> {
    let chunked = body == Body::Chunked;
    let framing = match body {
        Body::Chunked => "Transfer-Encoding: chunked\r\n".to_string(),
        Body::UntilClose => String::new(),
        Body::Length => format!("Content-Length: {size}\r\n"),
    };
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{framing}X-Server: {id}\r\n{}\r\n",
        conn_header(ka)
    )?;
    if head_only {
        return Ok(());
    }
    common::for_each_pattern_chunk(seed, size, |chunk| {
        if chunked {
            write!(out, "{:x}\r\n", chunk.len())?;
            out.write_all(chunk)?;
            out.write_all(b"\r\n")
        } else {
            out.write_all(chunk)
        }
    })?;
    if chunked {
        out.write_all(b"0\r\n\r\n")?;
    }
    Ok(())
}

fn send_file<W: Write>(out: &mut W, id: u32, file: &Path, ka: bool, head_only: bool) -> io::Result<()> {
    let mut f = File::open(file)?;
    let len = f.metadata()?.len();
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nX-Server: {id}\r\n{}\r\n",
        conn_header(ka)
    )?;
    if !head_only {
        io::copy(&mut f, out)?;
    }
    Ok(())
}

/// Join a URL path under `dir`, refusing anything that climbs out of it.
fn safe_join(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = Path::new(url_path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(dir.join(rel))
}

fn seed_rng() -> u64 {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    t | 1
}

fn next_rand(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}
