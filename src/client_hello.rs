//! The server name (SNI) of a TLS ClientHello, read from peeked bytes
//! without decrypting or consuming anything: what TCP-mode SNI routing
//! picks a pool by. Only the first record is looked at (a ClientHello that
//! does not fit one record is treated as having no name).

/// What the first bytes of a connection say about its server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sni {
    /// More bytes are needed to tell.
    Incomplete,
    /// A ClientHello asking for this name (lowercase).
    Name(String),
    /// A ClientHello without a server name.
    NoName,
    /// Not a TLS ClientHello (or a malformed one).
    NotTls,
}

/// Largest first record read (a TLS record's maximum plus its header).
pub const MAX_PEEK: usize = 5 + 16 * 1024;

/// Read the SNI out of the start of a connection.
pub fn server_name(buf: &[u8]) -> Sni {
    if buf.is_empty() {
        return Sni::Incomplete;
    }
    // Record: type 22 (handshake), version 3.x, length.
    if buf[0] != 0x16 || (buf.len() > 1 && buf[1] != 3) {
        return Sni::NotTls;
    }
    if buf.len() < 5 {
        return Sni::Incomplete;
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if len == 0 || len > 16 * 1024 + 256 {
        return Sni::NotTls;
    }
    if buf.len() < 5 + len {
        return Sni::Incomplete;
    }
    match hello_name(&buf[5..5 + len]) {
        Some(r) => r,
        None => Sni::NotTls,
    }
}

/// Bytes read one field at a time; `None` past the end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3).map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
}

fn hello_name(record: &[u8]) -> Option<Sni> {
    let mut c = Cursor(record);
    if c.u8()? != 1 {
        return Some(Sni::NotTls); // not a ClientHello
    }
    let body_len = c.u24()?;
    let Some(body) = c.take(body_len) else {
        // The ClientHello goes on in another record: no name from here.
        return Some(Sni::NoName);
    };
    let mut c = Cursor(body);
    c.take(2 + 32)?; // version, random
    let sid = c.u8()?;
    c.take(sid)?;
    let suites = c.u16()?;
    c.take(suites)?;
    let compression = c.u8()?;
    c.take(compression)?;
    if c.0.is_empty() {
        return Some(Sni::NoName); // no extensions at all
    }
    let ext_len = c.u16()?;
    let mut exts = Cursor(c.take(ext_len)?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = exts.u16()?;
        let data = exts.take(len)?;
        if kind != 0 {
            continue;
        }
        // server_name: a list of (type, name); type 0 is a host name.
        let mut list = Cursor(data);
        let list_len = list.u16()?;
        let mut names = Cursor(list.take(list_len)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let len = names.u16()?;
            let name = names.take(len)?;
            if name_type == 0 {
                let text = std::str::from_utf8(name).ok()?;
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                    return None;
                }
                return Some(Sni::Name(text.to_ascii_lowercase()));
            }
        }
        return Some(Sni::NoName);
    }
    Some(Sni::NoName)
}

/// Whether `name` matches `pattern`: equal (case-insensitive), or
/// `*.example.com` for exactly one more label.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
        }
        None => pattern.eq_ignore_ascii_case(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello with `name` (or none).
    pub fn hello(name: Option<&str>) -> Vec<u8> {
        let mut ext = Vec::new();
        if let Some(n) = name {
            let mut list = vec![0u8];
            list.extend_from_slice(&(n.len() as u16).to_be_bytes());
            list.extend_from_slice(n.as_bytes());
            let mut data = (list.len() as u16).to_be_bytes().to_vec();
            data.extend_from_slice(&list);
            ext.extend_from_slice(&[0, 0]);
            ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
            ext.extend_from_slice(&data);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn names_no_names_and_prefixes() {
        let h = hello(Some("A.Test"));
        assert_eq!(server_name(&h), Sni::Name("a.test".into()));
        for cut in 0..h.len() {
            assert_eq!(server_name(&h[..cut]), Sni::Incomplete, "cut at {cut}");
        }
        assert_eq!(server_name(&hello(None)), Sni::NoName);
        assert_eq!(server_name(b"GET / HTTP/1.1\r\n"), Sni::NotTls);
        assert_eq!(server_name(&[0x16, 3, 1, 0, 0]), Sni::NotTls);
        let mut bad = hello(Some("a.test"));
        let n = bad.len();
        bad[n - 3] = b'/';
        assert_eq!(server_name(&bad), Sni::NotTls, "a name with a slash");
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("*.a.test", "x.a.test"));
        assert!(!name_matches("*.a.test", "a.test"));
        assert!(!name_matches("*.a.test", "y.x.a.test"));
        assert!(name_matches("B.test", "b.test"));
    }
}
