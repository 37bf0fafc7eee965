//! The PROXY protocol (HAProxy's, versions 1 and 2): the header an L4
//! proxy puts in front of a connection to say whose it is. lbproxy reads
//! one from trusted upstreams (`accept_proxy`) and writes one to backends
//! (`send_proxy`).
//!
//! Reading works on peeked bytes: `parse` says how long the header is, the
//! caller consumes exactly that much, and what follows stays in the socket
//! for the mode to read as if the header had never been there.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most this long, CRLF included (the spec's limit).
const V1_MAX: usize = 107;
/// The longest header accepted: v2's 16 bytes plus the largest address
/// block with TLVs we are willing to skip.
pub const MAX_HEADER: usize = 16 + 512;

/// Which version to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Version, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(Version::V1),
            "v2" | "2" => Ok(Version::V2),
            _ => Err(format!("invalid PROXY protocol version \"{s}\" (expected v1 or v2)")),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// Whether a frontend reads PROXY headers, and from whom.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AcceptProxy {
    /// `None`: headers are not read (off).
    pub mode: Option<AcceptMode>,
    /// Sources allowed to send one; empty: every source.
    pub trusted: Vec<Cidr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptMode {
    /// A trusted source must send a header; connections without one are closed.
    Required,
    /// A header is read when a trusted source sends one; else the connection is plain.
    Optional,
}

impl FromStr for AcceptMode {
    type Err = String;
    fn from_str(s: &str) -> Result<AcceptMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "required" => Ok(AcceptMode::Required),
            "optional" => Ok(AcceptMode::Optional),
            _ => Err(format!("invalid accept_proxy \"{s}\" (expected off, required or optional)")),
        }
    }
}

impl AcceptMode {
    pub fn name(self) -> &'static str {
        match self {
            AcceptMode::Required => "required",
            AcceptMode::Optional => "optional",
        }
    }
}

impl AcceptProxy {
    /// Whether `peer` may send a header.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.is_empty() || self.trusted.iter().any(|c| c.contains(peer))
    }
}

/// An address block, `10.0.0.0/8` or `2001:db8::/32` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub net: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid address block \"{s}\" (expected IP/PREFIX, e.g. 10.0.0.0/8)");
        let (ip, prefix) = s.trim().split_once('/').unwrap_or((s.trim(), ""));
        let net: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() { max } else { prefix.parse().map_err(|_| bad())? };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// What a header said: the original source and destination, or nothing
/// (v1 `UNKNOWN`, v2 `LOCAL`: a health check of the upstream itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "malformed PROXY header: {}", self.0)
    }
}

/// Whether `buf` can still become a PROXY header (a prefix of either
/// signature), for optional mode: if not, the connection has none.
pub fn may_start_header(buf: &[u8]) -> bool {
    let n = buf.len().min(V2_SIGNATURE.len());
    buf[..n] == V2_SIGNATURE[..n] || b"PROXY "[..buf.len().min(6)] == buf[..buf.len().min(6)]
}

/// A complete header at the start of `buf` and its length; `Ok(None)`: not
/// complete yet.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Malformed> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'\r' {
        return parse_v2(buf);
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, Malformed> {
    if !may_start_header(buf) {
        return Err(Malformed("no PROXY signature"));
    }
    let Some(end) = buf.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX { Err(Malformed("v1 line longer than 107 bytes")) } else { Ok(None) };
    };
    let line = &buf[..end];
    let line = line.strip_suffix(b"\r").ok_or(Malformed("v1 line not ended by CRLF"))?;
    let text = std::str::from_utf8(line).map_err(|_| Malformed("v1 line not ASCII"))?;
    let parts: Vec<&str> = text.split(' ').collect();
    let header = match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Header { addrs: None },
        ["PROXY", proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |s: &str| -> Result<IpAddr, Malformed> {
                let ip: IpAddr = s.parse().map_err(|_| Malformed("v1 address"))?;
                match (*proto, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(Malformed("v1 address of the other family")),
                }
            };
            let port = |s: &str| -> Result<u16, Malformed> {
                // No sign, no leading zero (the spec's form), 0-65535.
                if s.is_empty() || s.len() > 5 || (s.len() > 1 && s.starts_with('0')) {
                    return Err(Malformed("v1 port"));
                }
                s.parse().map_err(|_| Malformed("v1 port"))
            };
            let src = SocketAddr::new(ip(src)?, port(sport)?);
            let dst = SocketAddr::new(ip(dst)?, port(dport)?);
            Header { addrs: Some((src, dst)) }
        }
        _ => return Err(Malformed("v1 line is not PROXY TCP4|TCP6|UNKNOWN with four fields")),
    };
    Ok(Some((header, end + 1)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, Malformed> {
    let n = buf.len().min(12);
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(Malformed("no PROXY signature"));
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, fam) = (buf[12], buf[13]);
    if ver_cmd >> 4 != 2 {
        return Err(Malformed("v2 version is not 2"));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if 16 + len > MAX_HEADER {
        return Err(Malformed("v2 header longer than lbproxy accepts"));
    }
    if buf.len() < 16 + len {
        return Ok(None);
    }
    let body = &buf[16..16 + len];
    let header = match (ver_cmd & 0x0f, fam) {
        // LOCAL: the upstream's own connection; whatever follows is ignored.
        (0, _) => Header { addrs: None },
        // PROXY over TCP (STREAM) on IPv4 or IPv6.
        (1, 0x11) if len >= 12 => {
            let src = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let dst = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            let (sp, dp) = (u16::from_be_bytes([body[8], body[9]]), u16::from_be_bytes([body[10], body[11]]));
            Header { addrs: Some(((src, sp).into(), (dst, dp).into())) }
        }
        (1, 0x21) if len >= 36 => {
            let octets = |at: usize| -> [u8; 16] { body[at..at + 16].try_into().unwrap_or([0; 16]) };
            let (src, dst) = (Ipv6Addr::from(octets(0)), Ipv6Addr::from(octets(16)));
            let (sp, dp) = (u16::from_be_bytes([body[32], body[33]]), u16::from_be_bytes([body[34], body[35]]));
            Header { addrs: Some(((src, sp).into(), (dst, dp).into())) }
        }
        // UNSPEC or a family we do not proxy (UDP, UNIX): no address.
        (1, 0x00) => Header { addrs: None },
        (1, 0x11 | 0x21) => return Err(Malformed("v2 address block too short")),
        (1, _) => Header { addrs: None },
        _ => return Err(Malformed("v2 command is neither LOCAL nor PROXY")),
    };
    Ok(Some((header, 16 + len)))
}

/// The header that tells a backend about the connection `src` -> `dst`.
pub fn encode(version: Version, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    // Mixed families (an IPv4 client on an IPv6 listener) are written as IPv6.
    let (src, dst) = match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => (src, dst),
        _ => (as_v6(src), as_v6(dst)),
    };
    match version {
        Version::V1 => {
            let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!("PROXY {proto} {} {} {} {}\r\n", src.ip(), dst.ip(), src.port(), dst.port()).into_bytes()
        }
        Version::V2 => {
            let mut out = V2_SIGNATURE.to_vec();
            out.push(0x21);
            let mut body = Vec::with_capacity(36);
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11);
                    body.extend_from_slice(&s.octets());
                    body.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21);
                    body.extend_from_slice(&to_v6(s).octets());
                    body.extend_from_slice(&to_v6(d).octets());
                }
            }
            body.extend_from_slice(&src.port().to_be_bytes());
            body.extend_from_slice(&dst.port().to_be_bytes());
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(&body);
            out
        }
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn as_v6(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(to_v6(a.ip())), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn both_versions_round_trip_and_say_their_length() {
        for (src, dst) in [("192.0.2.7:51000", "10.0.0.1:443"), ("[2001:db8::1]:40000", "[2001:db8::2]:80")] {
            for v in [Version::V1, Version::V2] {
                let mut bytes = encode(v, addr(src), addr(dst));
                let len = bytes.len();
                bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
                let (h, n) = parse(&bytes).unwrap().unwrap();
                assert_eq!((h.addrs, n), (Some((addr(src), addr(dst))), len), "{v} {src}");
            }
        }
    }

    #[test]
    fn v1_exact_text_and_unknown() {
        let b = encode(Version::V1, addr("192.0.2.7:51000"), addr("10.0.0.1:443"));
        assert_eq!(b, b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n");
        assert_eq!(parse(b"PROXY UNKNOWN\r\nxyz").unwrap(), Some((Header { addrs: None }, 15)));
    }

    #[test]
    fn every_prefix_is_incomplete_not_wrong() {
        for v in [Version::V1, Version::V2] {
            let b = encode(v, addr("192.0.2.7:51000"), addr("10.0.0.1:443"));
            for cut in 0..b.len() {
                assert_eq!(parse(&b[..cut]), Ok(None), "{v} cut at {cut}");
                assert!(may_start_header(&b[..cut]));
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse(&[b'P'; 200]).is_err());
        let mut v2 = encode(Version::V2, addr("1.2.3.4:1"), addr("5.6.7.8:2"));
        v2[12] = 0x31;
        assert!(parse(&v2).is_err(), "version 3");
        let mut short = encode(Version::V2, addr("1.2.3.4:1"), addr("5.6.7.8:2"));
        short[15] = 4;
        assert!(parse(&short).is_err(), "IPv4 block of 4 bytes");
        assert!(!may_start_header(b"GET /"));
    }

    #[test]
    fn v2_local_carries_no_address() {
        let mut b = V2_SIGNATURE.to_vec();
        b.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(parse(&b).unwrap(), Some((Header { addrs: None }, 16)));
    }

    #[test]
    fn address_blocks() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.200.1.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        let one: Cidr = "127.0.0.5".parse().unwrap();
        assert!(one.contains("127.0.0.5".parse().unwrap()) && !one.contains("127.0.0.6".parse().unwrap()));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "x/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn mixed_families_are_written_as_ipv6() {
        let b = encode(Version::V1, addr("192.0.2.7:1"), addr("[::1]:2"));
        assert_eq!(b, b"PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n");
    }
}
