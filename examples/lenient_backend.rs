//! A deliberately lenient HTTP/1.1 server that logs every request it parses,
//! for lbproxy's request-smuggling tests (tests/http_smuggling.rs).
//!
//! Run: `cargo run --example lenient_backend -- --port 8001 --id 1`
//! (`--port 0` picks a free port; the first stdout line is `listening on ADDR`).
//!
//! It parses the way many real servers do, which is exactly what a proxy in
//! front of it must not disagree with:
//! - a line ends in LF, with an optional CR before it (RFC 9112 §2.2 allows
//!   that); blank lines before a request are skipped;
//! - header names are case-insensitive; `Transfer-Encoding: chunked` frames the
//!   body, else `Content-Length` (the last one wins), else there is no body;
//! - a chunk-size line is its leading hex digits, the rest (extensions) is
//!   ignored; trailer lines end in LF like any other line;
//! - an HTTP/1.0 request's `Transfer-Encoding` is ignored: HTTP/1.0 has no
//!   transfer codings, which is why RFC 9112 §6.1 has intermediaries treat
//!   1.0 + Transfer-Encoding as faulty;
//! - a connection is kept unless the request asks for close (1.1) or does not
//!   ask for keep-alive (1.0).
//!
//! stdout, one flushed line each (what the tests read):
//! - `CONN <id> #<n> open` when connection n opens, `END <id> #<n> after <k> requests` when it is over;
//! - `REQ <id> <METHOD> <TARGET> xff=<X-Forwarded-For or ->` for every request
//!   parsed, as soon as its head is read.
//!
//! Answers: 200, body `server=<id> <METHOD> <TARGET>`, Content-Length framed,
//! with `X-Server`, `X-Body-Length` and `X-Body-Sha256` (of the request body as
//! decoded) and `X-Header-Names` (the request's header names, lowercase).
//! A request it cannot parse gets 400 and the connection is closed.
//!
//! Two routes answer with a smuggling attempt of their own, for the
//! response-side tests. Both bodies are a complete second response,
//! `HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSMUGGLED!`, so a proxy that
//! strips the framing header forwards a response without a length whose body
//! reads as the next response:
//! - `/resp-connection-cl`: `Content-Length: N` and `Connection: Content-Length`;
//! - `/resp-connection-te`: `Transfer-Encoding: chunked` and `Connection: Transfer-Encoding`.

#[path = "common/mod.rs"]
mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use clap::Parser;
use sha2::{Digest, Sha256};

#[derive(Parser, Clone)]
#[command(about = "Lenient HTTP/1.1 test server that logs every request it parses")]
struct Args {
    #[command(flatten)]
    listen: common::Listen,
}

/// The most a request head may take, request line and headers together.
const MAX_HEAD: usize = 64 * 1024;

/// The body of both malicious responses: a whole response of its own.
const SMUGGLED_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSMUGGLED!";

struct Request {
    method: String,
    target: String,
    http10: bool,
    keep_alive: bool,
    body: Body,
    xff: Option<String>,
    header_names: Vec<String>,
}

#[derive(Clone, Copy)]
enum Body {
    None,
    Length(u64),
    Chunked,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let id = args.listen.id;
    common::serve_forever(&args.listen.bind, args.listen.port, move |stream, n| {
        log(&format!("CONN {id} #{n} open"));
        let mut requests = 0;
        let _ = serve(stream, id, &mut requests);
        log(&format!("END {id} #{n} after {requests} requests"));
    })
}

/// One line on stdout, flushed: the tests read it as it happens.
fn log(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn serve(stream: TcpStream, id: u32, requests: &mut u64) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    loop {
        let req = match read_head(&mut input) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return bad_request(&mut out),
            Err(e) => return Err(e),
        };
        *requests += 1;
        let xff = req.xff.as_deref().unwrap_or("-");
        log(&format!("REQ {id} {} {} xff={xff}", req.method, req.target));
        let (len, sha) = match read_body(&mut input, req.body) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return bad_request(&mut out),
            Err(e) => return Err(e),
        };
        out.write_all(&answer(id, &req, len, &sha))?;
        if !req.keep_alive {
            return Ok(());
        }
    }
}

fn bad_request(out: &mut TcpStream) -> io::Result<()> {
    out.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n")
}

/// One line without its LF and the CR before it, if any; `None` at a clean
/// end of input. `budget` is what the head may still take.
fn read_line<R: BufRead>(input: &mut R, budget: &mut usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = input.by_ref().take(*budget as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(bad("line too long"));
    }
    *budget -= n;
    if line.pop() != Some(b'\n') {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

fn read_head<R: BufRead>(input: &mut R) -> io::Result<Option<Request>> {
    let mut budget = MAX_HEAD;
    let line = loop {
        match read_line(input, &mut budget)? {
            None => return Ok(None),
            Some(l) if l.trim().is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad("version"));
    }
    let http10 = version == "HTTP/1.0";
    let (mut length, mut chunked, mut tokens) = (None, false, Vec::new());
    let (mut xff, mut header_names) = (None::<String>, Vec::new());
    loop {
        let Some(h) = read_line(input, &mut budget)? else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').ok_or_else(|| bad("header line"))?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = Some(value.parse::<u64>().map_err(|_| bad("content-length"))?),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => tokens.extend(value.split(',').map(|t| t.trim().to_ascii_lowercase())),
            "x-forwarded-for" => xff = Some(xff.map_or_else(|| value.to_string(), |x| format!("{x}, {value}"))),
            _ => {}
        }
        header_names.push(name);
    }
    let body = match (chunked && !http10, length) {
        (true, _) => Body::Chunked,
        (false, Some(n)) => Body::Length(n),
        (false, None) => Body::None,
    };
    let keep_alive =
        if http10 { tokens.iter().any(|t| t == "keep-alive") } else { !tokens.iter().any(|t| t == "close") };
    Ok(Some(Request {
        method: method.to_string(),
        target: target.to_string(),
        http10,
        keep_alive,
        body,
        xff,
        header_names,
    }))
}

/// Read the body as framed; returns its decoded length and sha256.
fn read_body<R: BufRead>(input: &mut R, body: Body) -> io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let total = match body {
        Body::None => 0,
        Body::Length(n) => copy_exactly(input, n, &mut h)?,
        Body::Chunked => {
            let mut total = 0;
            loop {
                let mut budget = MAX_HEAD;
                let line = read_line(input, &mut budget)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                let line = line.trim_start();
                let digits = &line[..line.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(line.len())];
                let size = u64::from_str_radix(digits, 16).map_err(|_| bad("chunk size"))?;
                if size == 0 {
                    // Trailer lines, up to an empty one.
                    while !read_line(input, &mut budget)?.ok_or(io::ErrorKind::UnexpectedEof)?.is_empty() {}
                    break total;
                }
                total += copy_exactly(input, size, &mut h)?;
                // The line end after the data (its content, if any, is ignored).
                read_line(input, &mut budget)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            }
        }
    };
    Ok((total, common::hex(&h.finalize())))
}

fn copy_exactly<R: Read>(input: &mut R, n: u64, h: &mut Sha256) -> io::Result<u64> {
    let mut buf = [0u8; 16 * 1024];
    let mut left = n;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let got = input.read(&mut buf[..want])?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        h.update(&buf[..got]);
        left -= got as u64;
    }
    Ok(n)
}

fn answer(id: u32, req: &Request, body_len: u64, sha: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match req.target.split('?').next().unwrap_or("") {
        "/resp-connection-cl" => {
            let len = SMUGGLED_RESPONSE.len();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: Content-Length\r\n\r\n");
            out.extend_from_slice(SMUGGLED_RESPONSE);
        }
        "/resp-connection-te" => {
            let len = SMUGGLED_RESPONSE.len();
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n{len:x}\r\n"
            );
            out.extend_from_slice(SMUGGLED_RESPONSE);
            out.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        _ => {
            let body = format!("server={id} {} {}", req.method, req.target);
            let conn = match (req.keep_alive, req.http10) {
                (false, _) => "Connection: close\r\n",
                (true, true) => "Connection: keep-alive\r\n",
                (true, false) => "",
            };
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Server: {id}\r\n\
                 X-Body-Length: {body_len}\r\nX-Body-Sha256: {sha}\r\nX-Header-Names: {}\r\n{conn}\r\n",
                body.len(),
                req.header_names.join(",")
            );
            if req.method != "HEAD" {
                out.extend_from_slice(body.as_bytes());
            }
        }
    }
    out
}
