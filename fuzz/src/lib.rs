//! The bodies of the fuzz targets, one function per target (issue 15).
//!
//! Each takes the raw input, feeds it to a parser that sees peer bytes and
//! asserts what must hold for any input: no panic, nothing counted beyond the
//! input, and the same answer however the input is cut. The fuzz targets in
//! `fuzz/fuzz_targets/` call these; `tests/fuzz_corpus.rs` includes this file
//! with `#[path]` and replays `fuzz/corpus/<target>/` through them under a
//! plain `cargo test`.
//!
//! Input layouts (the seeds in `fuzz/corpus/` follow them):
//! - `request_head`: byte 0 picks the hash key (none, path, query, header),
//!   the rest is what a client sent.
//! - `response_head`: byte 0 bit 0 says the request was a HEAD, the rest is
//!   what a backend sent.
//! - `chunked`: bytes 0-1 pick a split point, the rest is a chunked body and
//!   whatever follows it.
//! - `admin_request`: one admin request, head and body.
//! - `config_file`: a config file (inputs that are not UTF-8 are skipped).
//! - `dns_answer`: a DNS message as a server answers (A, AAAA, SRV records).
//! - `proxy_header`: a PROXY protocol header (v1 or v2) and what follows it.
//! - `client_hello`: the first bytes of a TLS connection (SNI routing peeks them).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use lbproxy::admin;
use lbproxy::config::ServerConfig;
use lbproxy::http::framing::BodyFraming;
use lbproxy::http::head::{self, HashKey, HeadError};

/// The head limit (`--max-header-size`, 64 KiB by default): small here so
/// that inputs of the fuzzer's usual length (4 KiB) reach it.
const MAX_HEAD: usize = 2048;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// A request head from a client, as the HTTP mode parses it.
pub fn request_head(data: &[u8]) {
    let Some((&pick, buf)) = data.split_first() else { return };
    let key = match pick % 4 {
        0 => None,
        1 => Some(HashKey::Path),
        2 => Some(HashKey::Query("user".into())),
        _ => Some(HashKey::Header("x-user".into())),
    };
    match head::parse_request_keyed(buf, MAX_HEAD, CLIENT, key.as_ref()) {
        Ok(Some(h)) => {
            assert!(h.len <= buf.len() && h.len <= MAX_HEAD, "head of {} bytes in {}", h.len, buf.len());
            // The head is all in its own bytes: what follows it cannot change it.
            let again = head::parse_request_keyed(&buf[..h.len], MAX_HEAD, CLIENT, key.as_ref());
            assert_eq!(again, Ok(Some(h.clone())), "the head parsed alone differs");
            // What goes to the backend frames the body as we do.
            let mut out = Vec::new();
            h.write_for_backend(true, &mut out);
            match head::parse_request_keyed(&out, usize::MAX, CLIENT, None) {
                Ok(Some(b)) => {
                    assert_eq!((&b.method, &b.target, b.minor, b.framing), (&h.method, &h.target, h.minor, h.framing));
                    assert_eq!(b.len, out.len(), "the rewritten head has bytes after its end");
                }
                // The proxy adds up to four lines: past the parser's header count.
                Err(HeadError::TooLarge) => {}
                other => panic!("the rewritten head does not parse: {other:?}\n{}", String::from_utf8_lossy(&out)),
            }
        }
        Ok(None) => assert!(buf.len() < MAX_HEAD, "incomplete at {} bytes, over the limit", buf.len()),
        Err(_) => {}
    }
}

/// A response head from a backend.
pub fn response_head(data: &[u8]) {
    let Some((&pick, buf)) = data.split_first() else { return };
    let is_head = pick & 1 == 1;
    match head::parse_response(buf, MAX_HEAD, is_head) {
        Ok(Some(r)) => {
            assert!(r.len <= buf.len() && r.len <= MAX_HEAD, "head of {} bytes in {}", r.len, buf.len());
            assert_eq!(head::parse_response(&buf[..r.len], MAX_HEAD, is_head), Ok(Some(r.clone())));
            if is_head || r.status == 204 || r.status == 304 || (100..200).contains(&r.status) {
                assert!(r.framing.is_done(), "a {} answer with a body", r.status);
            }
            let mut out = Vec::new();
            if r.is_switching() {
                r.write_switching_for_client(&mut out);
            } else {
                r.write_for_client(pick & 2 == 2, pick & 4 == 4, &mut out);
            }
            assert!(out.ends_with(b"\r\n\r\n"));
        }
        Ok(None) => assert!(buf.len() < MAX_HEAD),
        Err(_) => {}
    }
}

/// Feed `parts` to a fresh chunked framing in turn: the bytes that belong to
/// the body, whether it ended, or the first error.
fn chunked_in_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Result<(usize, bool), ()> {
    let mut f = BodyFraming::chunked();
    let mut total = 0;
    for part in parts {
        let peeked = f.peek(part);
        let n = f.advance(part);
        assert_eq!(peeked, n, "peek and advance disagree");
        let n = n.map_err(|_| ())?;
        assert!(n <= part.len(), "took {n} bytes of {}", part.len());
        // Short of the part only when the body ended inside it.
        assert!(n == part.len() || f.is_done(), "stopped at {n} of {} without ending", part.len());
        total += n;
    }
    Ok((total, f.is_done()))
}

/// A chunked body: however the bytes arrive, the body ends at the same place
/// (or is refused), and `peek` is `advance` without the consumption.
pub fn chunked(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let body = &data[2..];
    let at = usize::from(u16::from_le_bytes([data[0], data[1]])) % (body.len() + 1);
    let whole = chunked_in_parts([body]);
    let (a, b) = body.split_at(at);
    assert_eq!(chunked_in_parts([a, b]), whole, "split at {at}");
    assert_eq!(chunked_in_parts(body.chunks(1)), whole, "byte by byte");
    if let Ok((n, done)) = whole {
        assert!(n <= body.len());
        assert!(done || n == body.len());
    }
}

/// One admin API request: the head with the HTTP mode's rules, then the
/// route with the body the head declared (as much of it as came).
pub fn admin_request(data: &[u8]) {
    match head::parse_plain_request(data, admin::MAX_REQUEST, &["authorization"]) {
        Ok(Some(p)) => {
            assert!(p.len <= data.len());
            let rest = &data[p.len..];
            let body = &rest[..rest.len().min(usize::try_from(p.body_len).unwrap_or(usize::MAX))];
            if let Err(reply) = admin::route(&p.method, &p.target, body) {
                assert!((400..600).contains(&reply.status), "route answered {}", reply.status);
            }
        }
        Ok(None) => assert!(data.len() < admin::MAX_REQUEST),
        Err((status, _)) => assert!((400..600).contains(&status), "parser answered {status}"),
    }
}

/// A configuration file.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ServerConfig::from_toml(text, Path::new("fuzz.toml"));
}

/// A DNS answer, as the discovery thread reads it (A, AAAA, SRV records).
pub fn dns_answer(data: &[u8]) {
    if let Ok(records) = lbproxy::discovery::dns::records_in(data) {
        // Whatever was found was in the message: it cannot outgrow it.
        assert!(records.len() <= data.len());
    }
}

/// A PROXY protocol header (v1 or v2) and whatever follows it, as an
/// upstream sends it.
pub fn proxy_header(data: &[u8]) {
    use lbproxy::proxy_protocol::{MAX_HEADER, parse};
    let whole = parse(data);
    if let Ok(Some((_, len))) = &whole {
        assert!(*len <= data.len() && *len <= MAX_HEADER);
    }
    // Cut anywhere, a header that parses whole is incomplete before its end.
    if let Ok(Some((h, len))) = whole {
        for cut in [0, len / 2, len.saturating_sub(1)] {
            if cut < len {
                assert_eq!(parse(&data[..cut]), Ok(None), "a prefix of {len} bytes parsed ({h:?})");
            }
        }
    }
}

/// The first bytes of a TCP connection, as SNI routing peeks them.
pub fn client_hello(data: &[u8]) {
    use lbproxy::client_hello::{Sni, server_name};
    let whole = server_name(data);
    if let Sni::Name(n) = &whole {
        assert!(!n.is_empty() && n.len() < data.len());
        assert_eq!(n.to_ascii_lowercase(), *n);
    }
    // Fewer bytes never name another server.
    if let Sni::Name(n) = server_name(&data[..data.len() / 2]) {
        assert_eq!(whole, Sni::Name(n));
    }
}
