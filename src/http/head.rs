//! HTTP/1.x request and response heads: parsing (httparse), the framing
//! rules that decide where a body ends, and the rewrite sent to the other side.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::framing::BodyFraming;

const MAX_HEADERS: usize = 128;

/// Headers that describe one hop and never cross the proxy.
/// (Transfer-Encoding is kept: chunked bodies are forwarded as they are.)
const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate"];

/// Why a request head was refused; becomes the status sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not yet complete, and already larger than the limit: 431.
    TooLarge,
    /// Malformed or ambiguous: 400 with this reason.
    Bad(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The client wants the connection kept after this exchange.
    pub keep_alive: bool,
    pub framing: BodyFraming,
    /// Length of the head in the buffer, to consume it.
    pub len: usize,
    /// Hash of what `--hash-key` names, when the request has it.
    pub request_hash: Option<u64>,
    /// The client asks to switch protocols (WebSocket): an HTTP/1.1 request
    /// without a body, with `Connection: Upgrade` and an `Upgrade` header.
    /// Its head keeps `Upgrade` and says `Connection: Upgrade`; a `101` answer
    /// turns the connection into a byte tunnel.
    pub upgrade: bool,
    /// The rewritten head for the backend, without the Connection line.
    rewritten: Vec<u8>,
    /// Where the `X-Forwarded-Proto` value lbproxy added starts (none when
    /// the client sent its own).
    proto_at: Option<usize>,
}

impl RequestHead {
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The request came over TLS: the `X-Forwarded-Proto` lbproxy adds says `https`.
    pub fn arrived_over_tls(&mut self) {
        if let Some(at) = self.proto_at.take() {
            self.rewritten.splice(at..at + 4, *b"https");
        }
    }

    /// Safe to send again on another connection (RFC 9110 9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE")
    }

    /// The head for the backend, ending with the Connection line we choose
    /// (`Upgrade` for an upgrade request: if the backend declines, the
    /// connection is only pooled when its answer allows, as for any request).
    pub fn write_for_backend(&self, keep_backend_alive: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rewritten);
        let conn = match (self.upgrade, keep_backend_alive) {
            (true, _) => "Upgrade",
            (false, true) => "keep-alive",
            (false, false) => "close",
        };
        let _ = write!(VecWriter(out), "Connection: {conn}\r\n\r\n");
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// The backend will close after this response.
    pub backend_closes: bool,
    pub framing: BodyFraming,
    pub len: usize,
    rewritten: Vec<u8>,
}

impl ResponseHead {
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// `101 Switching Protocols`: its head keeps `Upgrade`, and what follows
    /// it on the connection is the new protocol.
    pub fn is_switching(&self) -> bool {
        self.status == 101
    }

    /// The `101` head for the client, with `Connection: Upgrade`.
    pub fn write_switching_for_client(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rewritten);
        out.extend_from_slice(b"Connection: Upgrade\r\n\r\n");
    }

    /// The head for the client; `close` adds `Connection: close`.
    pub fn write_for_client(&self, close: bool, http10_keep_alive: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rewritten);
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if http10_keep_alive {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn connection_tokens(headers: &[httparse::Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value).split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// Headers a `Connection` option may not remove: they decide where the
/// message ends (RFC 9110 7.6.1), so stripping them after the proxy framed the
/// body would let the next hop read the body as another message (smuggling).
const END_TO_END: [&str; 3] = ["content-length", "transfer-encoding", "host"];

/// Refuse a message whose `Connection` header names a framing header.
fn check_connection_options(conn_tokens: &[String]) -> Result<(), &'static str> {
    if conn_tokens.iter().any(|t| END_TO_END.contains(&t.as_str())) {
        return Err("Connection names Content-Length, Transfer-Encoding or Host");
    }
    Ok(())
}

/// The `Upgrade` header, when a protocol switch is being offered or accepted.
fn is_upgrade(name: &str) -> bool {
    name.eq_ignore_ascii_case("upgrade")
}

fn is_hop_by_hop(name: &str, conn_tokens: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) || conn_tokens.iter().any(|t| name.eq_ignore_ascii_case(t))
}

/// Content-Length and Transfer-Encoding, checked as RFC 9112 6.3 asks so
/// that the proxy and the backend cannot disagree on where a body ends.
fn body_framing(headers: &[httparse::Header], minor: u8) -> Result<Option<BodyFraming>, &'static str> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut chunked_count = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| "bad Content-Length")?.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err("bad Content-Length");
            }
            let n: u64 = v.parse().map_err(|_| "bad Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length");
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            chunked_count += v.split(',').filter(|c| c.trim() == "chunked").count();
            chunked = v.split(',').map(str::trim).next_back() == Some("chunked");
        }
    }
    // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
    // framing (1.0 peers may ignore the header and read the body as messages).
    if te_seen && minor == 0 {
        return Err("Transfer-Encoding in an HTTP/1.0 message");
    }
    // RFC 9112 6.1: chunked must not be applied more than once.
    if chunked_count > 1 {
        return Err("chunked applied more than once");
    }
    match (te_seen, chunked, length) {
        (true, _, Some(_)) => Err("both Transfer-Encoding and Content-Length"),
        (true, false, _) => Err("Transfer-Encoding without final chunked"),
        (true, true, None) => Ok(Some(BodyFraming::chunked())),
        (false, _, Some(n)) => Ok(Some(if n == 0 { BodyFraming::Done } else { BodyFraming::Length(n) })),
        (false, _, None) => Ok(None),
    }
}

/// Parse a request head from `buf`. `Ok(None)`: incomplete, read more.
/// What a hashing policy keys on in HTTP mode (`--hash-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    Header(String),
    Query(String),
    Path,
}

impl HashKey {
    /// `header:NAME`, `query:NAME` or `path`.
    pub fn parse(s: &str) -> Result<HashKey, String> {
        let t = s.trim();
        if t == "path" {
            return Ok(HashKey::Path);
        }
        match t.split_once(':') {
            Some(("header", n)) if !n.is_empty() => Ok(HashKey::Header(n.to_string())),
            Some(("query", n)) if !n.is_empty() => Ok(HashKey::Query(n.to_string())),
            _ => Err(format!("invalid hash key \"{s}\" (expected header:NAME, query:NAME or path)")),
        }
    }

    /// The value this key names in a request, if the request has it.
    fn value<'a>(&self, target: &'a str, headers: &'a [httparse::Header<'a>]) -> Option<&'a [u8]> {
        match self {
            HashKey::Path => Some(target.split('?').next().unwrap_or(target).as_bytes()),
            HashKey::Query(name) => target.split_once('?')?.1.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then_some(v.as_bytes())
            }),
            HashKey::Header(name) => headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value),
        }
    }
}

pub fn parse_request(buf: &[u8], max_head: usize, client_ip: IpAddr) -> Result<Option<RequestHead>, HeadError> {
    parse_request_keyed(buf, max_head, client_ip, None)
}

/// Parse a request head from `buf`, also hashing what `hash_key` names.
/// `Ok(None)`: incomplete, read more.
pub fn parse_request_keyed(
    buf: &[u8],
    max_head: usize,
    client_ip: IpAddr,
    hash_key: Option<&HashKey>,
) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Bad("malformed request head")),
    };
    if len > max_head {
        return Err(HeadError::TooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Bad("incomplete request line"));
    };
    let framing = body_framing(req.headers, minor).map_err(HeadError::Bad)?.unwrap_or(BodyFraming::Done);
    let hosts = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host")).count();
    if minor == 1 && hosts == 0 {
        return Err(HeadError::Bad("HTTP/1.1 request without Host"));
    }
    // RFC 9112 3.2: two Host headers make the target ambiguous.
    if hosts > 1 {
        return Err(HeadError::Bad("more than one Host header"));
    }
    let tokens = connection_tokens(req.headers);
    check_connection_options(&tokens).map_err(HeadError::Bad)?;
    let keep_alive =
        if minor == 0 { tokens.iter().any(|t| t == "keep-alive") } else { !tokens.iter().any(|t| t == "close") };
    // RFC 9110 7.8: Upgrade is ignored in HTTP/1.0. A request with a body is
    // forwarded as a plain request (Upgrade stripped), so the new protocol can
    // never start in the middle of a body the proxy is still framing.
    let upgrade = minor == 1
        && framing.is_done()
        && tokens.iter().any(|t| t == "upgrade")
        && req.headers.iter().any(|h| is_upgrade(h.name));

    let mut out = Vec::with_capacity(len + 128);
    // Forward the client's own version: a conforming backend then never
    // sends chunked (a 1.1 feature) to an HTTP/1.0 client.
    let _ = write!(VecWriter(&mut out), "{method} {target} HTTP/1.{minor}\r\n");
    let mut xff: Option<String> = None;
    let mut via: Option<String> = None;
    let mut has_proto = false;
    for h in req.headers.iter() {
        if is_hop_by_hop(h.name, &tokens) && !(upgrade && is_upgrade(h.name)) {
            continue;
        }
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("x-forwarded-for") {
            xff = Some(xff.map_or_else(|| value.to_string(), |x| format!("{x}, {value}")));
            continue;
        }
        if h.name.eq_ignore_ascii_case("via") {
            via = Some(via.map_or_else(|| value.to_string(), |v| format!("{v}, {value}")));
            continue;
        }
        has_proto |= h.name.eq_ignore_ascii_case("x-forwarded-proto");
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let ip = client_ip.to_canonical();
    let _ = match xff {
        Some(x) => write!(VecWriter(&mut out), "X-Forwarded-For: {x}, {ip}\r\n"),
        None => write!(VecWriter(&mut out), "X-Forwarded-For: {ip}\r\n"),
    };
    let proto_at = (!has_proto).then(|| {
        out.extend_from_slice(b"X-Forwarded-Proto: http\r\n");
        out.len() - b"http\r\n".len()
    });
    let _ = match via {
        Some(v) => write!(VecWriter(&mut out), "Via: {v}, 1.{minor} lbproxy\r\n"),
        None => write!(VecWriter(&mut out), "Via: 1.{minor} lbproxy\r\n"),
    };
    let request_hash =
        hash_key.and_then(|k| k.value(target, req.headers)).map(|v| crate::policy::hash::hash_bytes(0, v));
    Ok(Some(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        minor,
        keep_alive,
        framing,
        len,
        request_hash,
        upgrade,
        rewritten: out,
        proto_at,
    }))
}

/// A request to the proxy's own endpoints (the admin API): parsed with the
/// same rules as proxied requests, without the rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainRequest {
    pub len: usize,
    pub method: String,
    pub target: String,
    /// Declared body length (chunked bodies are refused: 411).
    pub body_len: u64,
    /// Headers the caller asked to keep, by lowercase name.
    pub kept: Vec<(String, String)>,
}

/// Parse a request head for the proxy's own endpoints, keeping the values
/// of the headers named in `keep`. `Ok(None)`: incomplete. `Err`: the status
/// and why.
pub fn parse_plain_request(buf: &[u8], max_head: usize, keep: &[&str]) -> Result<Option<PlainRequest>, (u16, String)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err((431, "request head too large".into())),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err((400, format!("malformed request: {e}"))),
    };
    // The limit holds however the head arrived: not only when it came in pieces.
    if len > max_head {
        return Err((431, "request head too large".into()));
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err((400, "incomplete request line".into()));
    };
    let body_len = match body_framing(req.headers, minor) {
        Err(why) => return Err((400, why.to_string())),
        Ok(None | Some(BodyFraming::Done)) => 0,
        Ok(Some(BodyFraming::Length(n))) => n,
        Ok(Some(_)) => return Err((411, "a body needs a Content-Length here".into())),
    };
    let kept = req
        .headers
        .iter()
        .filter_map(|h| {
            let name = h.name.to_ascii_lowercase();
            keep.contains(&name.as_str()).then(|| (name, String::from_utf8_lossy(h.value).into_owned()))
        })
        .collect();
    Ok(Some(PlainRequest { len, method: method.to_string(), target: target.to_string(), body_len, kept }))
}

/// Parse a response head. `Ok(None)`: incomplete. `Err`: the backend sent
/// something that is not HTTP/1.x (the client gets a 502).
pub fn parse_response(buf: &[u8], max_head: usize, request_is_head: bool) -> Result<Option<ResponseHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HeadError::Bad("malformed response head")),
    };
    // The limit holds however the head arrived: not only when it came in pieces.
    if len > max_head {
        return Err(HeadError::TooLarge);
    }
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(HeadError::Bad("incomplete status line"));
    };
    let tokens = connection_tokens(resp.headers);
    check_connection_options(&tokens).map_err(HeadError::Bad)?;
    let backend_closes =
        tokens.iter().any(|t| t == "close") || (minor == 0 && !tokens.iter().any(|t| t == "keep-alive"));
    let declared = body_framing(resp.headers, minor).map_err(HeadError::Bad)?;
    let no_body = request_is_head || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body { BodyFraming::Done } else { declared.unwrap_or(BodyFraming::UntilClose) };
    let switching = status == 101;
    if switching && !resp.headers.iter().any(|h| is_upgrade(h.name)) {
        return Err(HeadError::Bad("101 without Upgrade"));
    }

    let mut out = Vec::with_capacity(len + 64);
    let reason = resp.reason.unwrap_or("");
    let _ = write!(VecWriter(&mut out), "HTTP/1.1 {status} {reason}\r\n");
    for h in resp.headers.iter() {
        if is_hop_by_hop(h.name, &tokens) && !(switching && is_upgrade(h.name)) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    Ok(Some(ResponseHead { status, backend_closes, framing, len, rewritten: out }))
}

/// A response made by the proxy itself, with a short text body.
pub fn error_response(status: u16, close: bool, out: &mut Vec<u8>) {
    let reason = reason_phrase(status);
    let body = format!("{status} {reason}\n");
    let conn = if close { "Connection: close\r\n" } else { "" };
    // The per-address rate refills every second (crate::per_ip).
    let retry = if status == 429 { "Retry-After: 1\r\n" } else { "" };
    let _ = write!(
        VecWriter(out),
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{retry}{conn}\r\n{body}",
        body.len()
    );
}

/// The redirector's answer: `Location` names the chosen backend.
pub fn redirect_response(code: u16, backend: &str, target: &str, close: bool, out: &mut Vec<u8>) {
    let reason = reason_phrase(code);
    let location = format!("http://{backend}{target}");
    let body = format!(
        "<html><head><title>{code} {reason}</title></head><body><a href=\"{}\">{}</a></body></html>\n",
        html_escape(&location),
        html_escape(&location)
    );
    let conn = if close { "Connection: close\r\n" } else { "" };
    let _ = write!(
        VecWriter(out),
        "HTTP/1.1 {code} {reason}\r\nLocation: {location}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n{conn}\r\n{body}",
        body.len()
    );
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    fn req(s: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request(s.as_bytes(), 64 * 1024, IP)
    }

    fn backend_bytes(h: &RequestHead, keep: bool) -> String {
        let mut out = Vec::new();
        h.write_for_backend(keep, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rewrite_strips_hop_by_hop_and_adds_forwarding() {
        let h = req("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.1.1.1\r\nAccept: */*\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let s = backend_bytes(&h, true);
        assert_eq!(
            s,
            "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-Forwarded-For: 1.1.1.1, 10.1.2.3\r\n\
             X-Forwarded-Proto: http\r\nVia: 1.1 lbproxy\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn upgrade_requests_keep_upgrade_and_every_other_request_loses_it() {
        let h = req("GET /chat HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade, HTTP2-Settings\r\n\
                     Upgrade: websocket\r\nHTTP2-Settings: AAA\r\nSec-WebSocket-Key: k==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap()
        .unwrap();
        assert!(h.upgrade && h.keep_alive);
        let expected = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k==\r\n\
                        Sec-WebSocket-Version: 13\r\nX-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\n\
                        Via: 1.1 lbproxy\r\nConnection: Upgrade\r\n\r\n";
        // Persistent or per-request, the backend is offered the upgrade alone.
        assert_eq!(backend_bytes(&h, true), expected);
        assert_eq!(backend_bytes(&h, false), expected);

        for plain in [
            // Upgrade without Connection naming it, and the other way round.
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n",
            // HTTP/1.0 ignores Upgrade (RFC 9110 7.8).
            "GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            // A body: forwarded as a plain request.
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let h = req(plain).unwrap().unwrap();
            assert!(!h.upgrade, "{plain:?} taken for an upgrade");
            let s = backend_bytes(&h, true).to_ascii_lowercase();
            assert!(!s.contains("upgrade"), "{plain:?} forwarded as {s:?}");
        }
        // An empty body is no body.
        let h =
            req("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n");
        assert!(h.unwrap().unwrap().upgrade);
    }

    #[test]
    fn only_a_101_keeps_upgrade_on_the_way_back() {
        let r = |s: &str| parse_response(s.as_bytes(), 65536, false);
        let h =
            r("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Hop\r\nX-Hop: 1\r\n\
                   Sec-WebSocket-Accept: abc=\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.is_switching() && !h.is_interim());
        assert_eq!(h.framing, BodyFraming::Done);
        let mut out = Vec::new();
        h.write_switching_for_client(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: abc=\r\n\
             Connection: Upgrade\r\n\r\n"
        );
        // A declined upgrade (426, 200) is a plain answer: Upgrade is stripped.
        let h = r(
            "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(!h.is_switching());
        let mut out = Vec::new();
        h.write_for_client(false, false, &mut out);
        assert_eq!(out, b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n");
        // RFC 9110 15.2.2: a 101 names the protocol it switches to.
        assert!(r("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n").is_err());
    }

    #[test]
    fn the_client_version_is_forwarded() {
        let h = req("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().unwrap();
        let s = backend_bytes(&h, true);
        assert!(s.starts_with("GET /x HTTP/1.0\r\n"), "{s}");
        assert!(s.ends_with("Via: 1.0 lbproxy\r\nConnection: keep-alive\r\n\r\n"), "{s}");
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(!req("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap().unwrap().keep_alive);
    }

    #[test]
    fn framing_rules() {
        let f = |s: &str| req(s).map(|h| h.unwrap().framing);
        assert_eq!(f("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"), Ok(BodyFraming::Length(5)));
        assert_eq!(f("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), Ok(BodyFraming::chunked()));
        assert_eq!(f("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(BodyFraming::Done));
        for bad in [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GARBAGE\r\n\r\n",
        ] {
            assert!(matches!(req(bad), Err(HeadError::Bad(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn framing_headers_named_in_connection_are_refused() {
        for bad in [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\nConnection: Content-Length\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, transfer-encoding\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: HOST\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert!(matches!(req(bad), Err(HeadError::Bad(_))), "{bad:?} accepted");
        }
        let resp = |s: &str| parse_response(s.as_bytes(), 65536, false);
        assert!(resp("HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: Content-Length\r\n\r\n").is_err());
        assert!(
            resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n").is_err()
        );
        assert!(resp("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        // Other options are still removed, with the header they name.
        let h = req("GET / HTTP/1.1\r\nHost: x\r\nConnection: X-A\r\nX-A: 1\r\n\r\n").unwrap().unwrap();
        assert!(!backend_bytes(&h, true).contains("X-A"));
    }

    #[test]
    fn hash_keys_pick_the_named_value() {
        let raw = b"GET /a/b?user=42&x=1 HTTP/1.1\r\nHost: h\r\nX-User: 42\r\n\r\n";
        let h = |k: &str| parse_request_keyed(raw, 65536, IP, Some(&HashKey::parse(k).unwrap())).unwrap().unwrap();
        let hash = |v: &[u8]| Some(crate::policy::hash::hash_bytes(0, v));
        assert_eq!(h("path").request_hash, hash(b"/a/b"));
        assert_eq!(h("query:user").request_hash, hash(b"42"));
        assert_eq!(h("header:x-user").request_hash, hash(b"42"));
        assert_eq!(h("query:none").request_hash, None);
        assert!(HashKey::parse("cookie:x").is_err());
    }

    #[test]
    fn partial_and_too_large() {
        assert_eq!(req("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(parse_request(big.as_bytes(), 64, IP), Err(HeadError::TooLarge));
    }

    #[test]
    fn response_framing_and_close() {
        let r = |s: &str, head: bool| parse_response(s.as_bytes(), 65536, head).unwrap().unwrap();
        assert_eq!(r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false).framing, BodyFraming::Length(3));
        assert_eq!(r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true).framing, BodyFraming::Done);
        assert_eq!(r("HTTP/1.1 204 No Content\r\n\r\n", false).framing, BodyFraming::Done);
        assert_eq!(r("HTTP/1.1 304 Not Modified\r\n\r\n", false).framing, BodyFraming::Done);
        assert_eq!(r("HTTP/1.1 200 OK\r\n\r\n", false).framing, BodyFraming::UntilClose);
        assert!(r("HTTP/1.1 100 Continue\r\n\r\n", false).is_interim());
        assert!(r("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false).backend_closes);
        assert!(r("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).backend_closes);
        let h = r("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\nX-Server: 1\r\n\r\n", false);
        let mut out = Vec::new();
        h.write_for_client(true, false, &mut out);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Server: 1\r\nConnection: close\r\n\r\n");
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", 65536, false).is_err());
        // Over the limit, even when complete in one read (found by fuzz/ response_head).
        let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(parse_response(big.as_bytes(), 64, false), Err(HeadError::TooLarge));
    }

    #[test]
    fn random_heads_never_panic() {
        let mut rng = crate::policy::rng::SplitMix64::new(7);
        let pieces: [&[u8]; 10] = [
            b"GET ",
            b"/x ",
            b"HTTP/1.1\r\n",
            b"Host: h\r\n",
            b"Content-Length: 5\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Connection: close, X\r\n",
            b"\r\n",
            b": :\r\n",
            b"\xff\x00",
        ];
        for _ in 0..20_000 {
            let mut buf = Vec::new();
            for _ in 0..rng.below(12) {
                if rng.below(4) == 0 {
                    buf.push(rng.below(256) as u8);
                } else {
                    buf.extend_from_slice(pieces[rng.below(pieces.len() as u64) as usize]);
                }
            }
            let _ = parse_request_keyed(&buf, 1024, IP, Some(&HashKey::Header("host".into())));
            let _ = parse_response(&buf, 1024, rng.below(2) == 0);
        }
    }

    #[test]
    fn redirect_names_backend_and_path() {
        let mut out = Vec::new();
        redirect_response(301, "127.0.0.1:8001", "/f.bin?x=1", false, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:8001/f.bin?x=1\r\n"),
            "{s}"
        );
    }

    #[test]
    fn a_plain_request_head_over_the_limit_is_431_even_when_it_arrives_whole() {
        let head = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n", "p".repeat(200));
        assert_eq!(parse_plain_request(head.as_bytes(), 100, &[]).err().map(|e| e.0), Some(431));
        assert!(parse_plain_request(head.as_bytes(), head.len(), &[]).unwrap().is_some());
    }
}
