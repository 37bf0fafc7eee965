//! Request smuggling, end to end (issue 16): raw attacks through lbproxy
//! `--mode http` to `examples/lenient_backend`, which parses the way many real
//! servers do (LF line ends, lenient chunk lines) and logs every request it
//! parses. Whatever the proxy answers, that backend must never parse a request
//! the proxy did not see, and no client may get another request's answer.
//!
//! Each attack runs against a fresh backend and proxy, once with a persistent
//! pool of one backend connection (so whatever an attack leaves on it meets the
//! next client) and once with `--backend-conn per-request`.

mod util;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};

use sha2::{Digest, Sha256};
use util::*;

/// The target of every smuggled request; no legitimate request uses it.
const SMUGGLED: &str = "/SMUGGLED";

/// The body of the backend's malicious responses (see examples/lenient_backend.rs).
const SMUGGLED_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSMUGGLED!";

/// How lbproxy talks to the backend.
#[derive(Clone, Copy, Debug)]
enum Pool {
    /// `--backend-conn persistent --pool-size 1`: the next request reuses the connection.
    Persistent,
    /// `--backend-conn per-request`: the backend is told `Connection: close`.
    PerRequest,
}

const POOLS: [Pool; 2] = [Pool::Persistent, Pool::PerRequest];

fn http_proxy(backend: SocketAddr, pool: Pool) -> Proc {
    let conn: &[&str] = match pool {
        Pool::Persistent => &["--backend-conn", "persistent", "--pool-size", "1"],
        Pool::PerRequest => &["--backend-conn", "per-request"],
    };
    let mut args = vec!["--mode", "http"];
    args.extend_from_slice(conn);
    lbproxy("round_robin", &[backend], &args)
}

/// One answer as read off the wire.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// How the body was delimited: `Content-Length`, `chunked`, or `None` when
    /// the head had neither and the body was read until the connection closed
    /// or `SMUGGLED!` showed up.
    framing: Option<&'static str>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// For failure messages.
    fn describe(&self) -> String {
        let framing = self.framing.unwrap_or("no length (body read until SMUGGLED! or close)");
        format!("{} with {framing}, body {:?}", self.status, self.text())
    }
}

/// A raw client connection: exactly the bytes a test writes go out, and an
/// answer that breaks the rules comes back as an `Err` that says so.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        let s = connect(addr);
        Client { writer: s.try_clone().expect("clone"), reader: BufReader::new(s) }
    }

    fn send(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).expect("send");
    }

    fn get(&mut self, target: &str) -> Result<Reply, String> {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.reply()
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).map_err(|e| format!("reading the answer: {e}"))?;
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Read one answer; interim (1xx) ones are skipped.
    fn reply(&mut self) -> Result<Reply, String> {
        let mut status_line = Vec::new();
        match self.reader.read_until(b'\n', &mut status_line) {
            Ok(0) => return Err(format!("{CLOSED_UNANSWERED} (FIN)")),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Err(format!("{CLOSED_UNANSWERED} (reset)")),
            Err(e) => return Err(format!("reading the answer: {e}")),
            Ok(_) => {}
        }
        let status_line = String::from_utf8_lossy(&status_line);
        let status = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {status_line:?}"))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            let h = line.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                if !line.ends_with('\n') {
                    return Err(format!("connection closed inside the head of a {status}"));
                }
                break;
            }
            let (n, v) = h.split_once(':').ok_or_else(|| format!("bad header line {line:?} in a {status}"))?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        if (100..200).contains(&status) {
            return self.reply();
        }
        let mut r = Reply { status, headers, body: Vec::new(), framing: None };
        if r.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            r.framing = Some("chunked");
            r.body = self.chunked_body()?;
        } else if let Some(len) = r.header("content-length") {
            let len: usize = len.parse().map_err(|_| format!("bad Content-Length {len:?}"))?;
            r.framing = Some("Content-Length");
            r.body = self.exactly(len)?;
        } else if status == 204 || status == 304 {
            r.framing = Some("no body");
        } else {
            // No length: the body runs until the connection closes. A keep-alive
            // answer like that only comes from a framing header gone missing; stop
            // as soon as the smuggled answer shows up instead of waiting for a close.
            while !contains(&r.body, b"SMUGGLED!") {
                let Ok(buf) = self.reader.fill_buf() else { break };
                if buf.is_empty() {
                    break;
                }
                let n = buf.len();
                r.body.extend_from_slice(buf);
                self.reader.consume(n);
            }
        }
        Ok(r)
    }

    fn exactly(&mut self, len: usize) -> Result<Vec<u8>, String> {
        let mut body = vec![0u8; len];
        std::io::Read::read_exact(&mut self.reader, &mut body).map_err(|e| format!("body of {len} bytes: {e}"))?;
        Ok(body)
    }

    fn chunked_body(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let hex = line.trim_end_matches(['\r', '\n']);
            let size = usize::from_str_radix(hex.split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                while !self.line()?.trim_end_matches(['\r', '\n']).is_empty() {}
                return Ok(body);
            }
            body.extend(self.exactly(size)?);
            self.line()?;
        }
    }
}

const CLOSED_UNANSWERED: &str = "connection closed without an answer";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Make sure the backend has parsed everything it was ever sent, and check
/// that an innocent client still gets its own answer: a marker request on a
/// fresh connection through the proxy (with a pool of one it reuses whatever
/// backend connection the attack left), then the proxy is stopped so every
/// backend connection ends, and each one is waited for.
fn settle(backend: &Proc, lb: Proc, n: u32) -> Vec<String> {
    let mut problems = Vec::new();
    let marker = format!("/marker-{n}");
    let mut c = Client::open(lb.addr);
    match c.get(&marker) {
        Ok(r) if r.status == 200 && r.text() == format!("server=1 GET {marker}") => {}
        Ok(r) => problems.push(format!("the next client, asking for {marker}, got {}", r.describe())),
        Err(e) => problems.push(format!("the next client, asking for {marker}: {e}")),
    }
    backend.wait_for_line(&format!(" GET {marker} "));
    drop(c);
    drop(lb); // killed: its backend connections close
    let opened: Vec<String> = backend
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.strip_prefix("CONN 1 ")?.strip_suffix(" open").map(str::to_string))
        .collect();
    for conn in opened {
        backend.wait_for_line(&format!("END 1 {conn} after "));
    }
    problems
}

/// The requests the backend parsed, in order.
fn parsed(backend: &Proc) -> Vec<String> {
    backend.log.lock().unwrap().iter().filter(|l| l.starts_with("REQ ")).cloned().collect()
}

/// The backend lines that show a smuggled request, as a problem.
fn smuggled(backend: &Proc) -> Option<String> {
    let all = parsed(backend);
    all.iter()
        .any(|l| l.contains(SMUGGLED))
        .then(|| format!("the backend parsed a request the proxy never saw; it parsed {all:?}"))
}

/// Send `attack` alone on a connection, in both pool modes; every way the
/// proxy let it through, prefixed by the mode.
fn request_attack(attack: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    for pool in POOLS {
        let backend = lenient_backend(1);
        let lb = http_proxy(backend.addr, pool);
        let mut found = Vec::new();
        let mut c = Client::open(lb.addr);
        c.send(attack);
        match c.reply() {
            Ok(r) if r.status == 400 => {}
            Ok(r) => found.push(format!("the attack was answered {} (want 400)", r.describe())),
            Err(e) => found.push(format!("the attack's answer: {e} (want 400)")),
        }
        drop(c);
        found.extend(settle(&backend, lb, 1));
        found.extend(smuggled(&backend));
        problems.extend(found.into_iter().map(|p| format!("[{pool:?}] {p}")));
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// A request as an attacker hides it, with an X-Forwarded-For of its choice
/// that the proxy would have appended to.
fn smuggled_get() -> String {
    format!("GET {SMUGGLED} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
}

/// A valid chunked body whose one chunk-size line, `ACE /SMUGGLED HTTP/1.1`
/// (0xACE data bytes, then what reads as whitespace and an extension), is also
/// a request line: a server that does not decode the body as chunked reads a
/// request `ACE /SMUGGLED` whose Content-Length covers the rest, so it stays in
/// step and the smuggled request is answered.
fn chunked_body_that_is_a_request() -> Vec<u8> {
    const SIZE: usize = 0xACE;
    let tail = "\r\n0\r\n\r\n";
    let head_for =
        |pad: usize| format!("Host: x\r\nX-Forwarded-For: 6.6.6.6\r\nContent-Length: {}\r\n\r\n", pad + tail.len());
    let pad = (0..SIZE).find(|&p| head_for(p).len() + p == SIZE).expect("a padding that fits");
    let mut body = format!("ACE {SMUGGLED} HTTP/1.1\r\n{}", head_for(pad)).into_bytes();
    body.resize(body.len() + pad, b'a');
    body.extend_from_slice(tail.as_bytes());
    body
}

#[test]
fn content_length_named_in_connection_is_refused() {
    let body = smuggled_get();
    let attack = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: Content-Length\r\n\r\n{body}",
        body.len()
    );
    assert_none(request_attack(attack.as_bytes()));
}

#[test]
fn transfer_encoding_named_in_connection_is_refused() {
    let mut attack =
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n".to_vec();
    attack.extend(chunked_body_that_is_a_request());
    assert_none(request_attack(&attack));
}

#[test]
fn mixed_case_connection_close_content_length_is_refused() {
    let body = smuggled_get();
    let attack = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nconnection: close, content-length\r\n\r\n{body}",
        body.len()
    );
    assert_none(request_attack(attack.as_bytes()));
}

#[test]
fn bare_lf_ending_a_chunk_extension_is_refused() {
    // The backend: last chunk `0;a`, empty trailer line, then the request.
    // A proxy reading the extension up to a CR swallows both LFs and the
    // request line, and takes the smuggled headers for trailers.
    let attack = format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0;a\n\n{}", smuggled_get());
    assert_none(request_attack(attack.as_bytes()));
}

#[test]
fn bare_lf_ending_a_trailer_line_is_refused() {
    // The backend: trailer `X: y`, then the CRLF that ends the trailers.
    let attack =
        format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n{}", smuggled_get());
    assert_none(request_attack(attack.as_bytes()));
}

#[test]
fn bare_lf_as_the_empty_trailer_line_is_refused() {
    // The backend: the bare LF is the empty line that ends the message.
    let attack = format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n{}", smuggled_get());
    assert_none(request_attack(attack.as_bytes()));
}

#[test]
fn http10_request_with_transfer_encoding_is_refused() {
    // An HTTP/1.0 server knows no transfer codings: it reads no body, then
    // the chunk-size line as a request line (RFC 9112 §6.1: treat as faulty).
    let mut attack = b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    attack.extend(chunked_body_that_is_a_request());
    assert_none(request_attack(&attack));
}

/// The backend answers `path` with a body that is itself a response and a
/// `Connection` header naming the framing header. The client must get a 502
/// (or the response with its framing intact), then, on the same connection
/// and on another one (which gets the pooled backend connection), its own
/// answers and never `SMUGGLED!`.
fn response_attack(path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for pool in POOLS {
        let backend = lenient_backend(1);
        let lb = http_proxy(backend.addr, pool);
        let mut found = Vec::new();
        let mut c = Client::open(lb.addr);
        let usable = match c.get(path) {
            Ok(r) if r.status == 502 => !r.closes(),
            Ok(r) if r.status == 200 && r.framing.is_some() && r.body == SMUGGLED_RESPONSE => !r.closes(),
            Ok(r) => {
                found.push(format!("GET {path} was answered {} (want 502)", r.describe()));
                r.framing.is_some() && !r.closes()
            }
            Err(e) => {
                found.push(format!("GET {path}: {e} (want 502)"));
                false
            }
        };
        let mut own_answer = |c: &mut Client, who: &str| match c.get("/ok") {
            Ok(r) if r.status == 200 && r.text() == "server=1 GET /ok" => {}
            Ok(r) => found.push(format!("then GET /ok {who} was answered {}", r.describe())),
            Err(e) => found.push(format!("then GET /ok {who}: {e}")),
        };
        if usable {
            own_answer(&mut c, "on the same connection");
        }
        own_answer(&mut Client::open(lb.addr), "on another connection");
        problems.extend(found.into_iter().map(|p| format!("[{pool:?}] {p}")));
    }
    problems
}

#[test]
fn response_with_content_length_named_in_connection_is_refused() {
    assert_none(response_attack("/resp-connection-cl"));
}

#[test]
fn response_with_transfer_encoding_named_in_connection_is_refused() {
    assert_none(response_attack("/resp-connection-te"));
}

#[test]
fn a_chunked_post_with_extensions_and_a_trailer_passes_intact() {
    for pool in POOLS {
        let backend = lenient_backend(1);
        let lb = http_proxy(backend.addr, pool);
        let mut c = Client::open(lb.addr);
        c.send(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;name=value\r\nhello\r\n6 ; a ; b=\"q;\"\r\n world\r\n0;last\r\nX-Trailer: t\r\n\r\n",
        );
        let r = c.reply().unwrap_or_else(|e| panic!("[{pool:?}] {e}"));
        assert_eq!((r.status, r.text()), (200, "server=1 POST /upload".to_string()), "[{pool:?}]");
        assert_eq!(r.header("x-body-length"), Some("11"), "[{pool:?}]");
        let sha: String = Sha256::digest(b"hello world").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r.header("x-body-sha256"), Some(sha.as_str()), "[{pool:?}]");
        // The connection is still in step.
        assert_eq!(c.get("/after").map(|r| r.text()), Ok("server=1 GET /after".to_string()), "[{pool:?}]");
        drop(c);
        assert_none(settle(&backend, lb, 1));
        assert_eq!(
            parsed(&backend),
            ["REQ 1 POST /upload xff=127.0.0.1", "REQ 1 GET /after xff=127.0.0.1", "REQ 1 GET /marker-1 xff=127.0.0.1"],
            "[{pool:?}]"
        );
    }
}

#[test]
fn a_body_that_looks_like_a_request_stays_a_body() {
    // Framed correctly, request-shaped bytes are only data: pipelined behind
    // it, the next request is the only other one the backend parses.
    let backend = lenient_backend(1);
    let lb = http_proxy(backend.addr, Pool::Persistent);
    let inner = "GET /inside-the-body HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut c = Client::open(lb.addr);
    c.send(
        format!(
            "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{inner}GET /next HTTP/1.1\r\nHost: x\r\n\r\n",
            inner.len()
        )
        .as_bytes(),
    );
    let first = c.reply().expect("first answer");
    assert_eq!(
        (first.text(), first.header("x-body-length")),
        ("server=1 POST /form".to_string(), Some(inner.len().to_string().as_str()))
    );
    assert_eq!(c.reply().map(|r| r.text()), Ok("server=1 GET /next".to_string()));
    drop(c);
    assert_none(settle(&backend, lb, 1));
    assert_eq!(
        parsed(&backend),
        ["REQ 1 POST /form xff=127.0.0.1", "REQ 1 GET /next xff=127.0.0.1", "REQ 1 GET /marker-1 xff=127.0.0.1"]
    );
}

#[test]
fn a_header_named_in_connection_is_stripped_and_keep_alive_still_works() {
    let backend = lenient_backend(1);
    let lb = http_proxy(backend.addr, Pool::Persistent);
    let mut c = Client::open(lb.addr);
    for n in 1..=2 {
        c.send(
            format!("GET /custom-{n} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Custom\r\nX-Custom: secret\r\nX-Keep: 1\r\n\r\n")
                .as_bytes(),
        );
        let r = c.reply().expect("answer");
        assert_eq!((r.status, r.text()), (200, format!("server=1 GET /custom-{n}")));
        assert!(!r.closes(), "keep-alive was not kept");
        let names: Vec<&str> = r.header("x-header-names").expect("X-Header-Names").split(',').collect();
        assert!(names.contains(&"x-keep") && !names.contains(&"x-custom"), "the backend got headers {names:?}");
    }
}
