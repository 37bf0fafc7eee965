//! Where an HTTP/1.1 message body ends, without buffering it.
//!
//! The proxy forwards body bytes as they arrive (chunked bodies stay
//! chunked, framing included). `BodyFraming` is told which bytes went through
//! and keeps just enough state to know when the message is over, so the bytes
//! after it (a pipelined request, the next response) are left alone.

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body, or the body is complete.
    Done,
    /// `Content-Length`: this many bytes are left.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// A response without length: the body ends when the backend closes.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunked {
    state: ChunkState,
    /// Data bytes left in the current chunk.
    left: u64,
    /// Guards against unbounded size lines and trailers.
    line_len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size digits.
    Size {
        digits: u8,
    },
    /// Whitespace after the size: only `;` (extensions) or CR LF may follow.
    SizeWs,
    /// After the size: extensions until CR LF.
    SizeLineRest,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last (zero) chunk: trailer lines until an empty line.
    TrailerLineStart,
    TrailerLine,
    TrailerLf {
        empty: bool,
    },
}

/// A body that breaks the framing rules: the connection cannot continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingError(pub &'static str);

const MAX_LINE: u32 = 8 * 1024;

impl Default for Chunked {
    fn default() -> Self {
        Chunked { state: ChunkState::Size { digits: 0 }, left: 0, line_len: 0 }
    }
}

impl BodyFraming {
    pub fn chunked() -> BodyFraming {
        BodyFraming::Chunked(Chunked::default())
    }

    pub fn is_done(&self) -> bool {
        matches!(self, BodyFraming::Done)
    }

    /// How many leading bytes of `avail` belong to this body. Consumes them:
    /// call it with the bytes that are actually being forwarded.
    pub fn advance(&mut self, avail: &[u8]) -> Result<usize, FramingError> {
        match self {
            BodyFraming::Done => Ok(0),
            BodyFraming::UntilClose => Ok(avail.len()),
            BodyFraming::Length(left) => {
                let n = (*left).min(avail.len() as u64);
                *left -= n;
                if *left == 0 {
                    *self = BodyFraming::Done;
                }
                Ok(n as usize)
            }
            BodyFraming::Chunked(c) => {
                let (n, done) = c.advance(avail)?;
                if done {
                    *self = BodyFraming::Done;
                }
                Ok(n)
            }
        }
    }

    /// How many leading bytes of `avail` belong to this body, without consuming.
    pub fn peek(&self, avail: &[u8]) -> Result<usize, FramingError> {
        let mut copy = *self;
        copy.advance(avail)
    }
}

impl Chunked {
    /// Returns (bytes of `avail` that belong to the body, body finished).
    fn advance(&mut self, avail: &[u8]) -> Result<(usize, bool), FramingError> {
        let mut i = 0;
        while i < avail.len() {
            let b = avail[i];
            match self.state {
                ChunkState::Data => {
                    let n = self.left.min((avail.len() - i) as u64);
                    self.left -= n;
                    i += n as usize;
                    if self.left == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::Size { digits } => match hex_val(b) {
                    Some(v) => {
                        if digits >= 15 {
                            return Err(FramingError("chunk size too large"));
                        }
                        self.left = self.left * 16 + u64::from(v);
                        self.state = ChunkState::Size { digits: digits + 1 };
                    }
                    None if digits == 0 => return Err(FramingError("chunk size missing")),
                    None if b == b'\r' => self.state = ChunkState::SizeLf,
                    None if b == b';' => self.state = ChunkState::SizeLineRest,
                    None if b == b' ' || b == b'\t' => self.state = ChunkState::SizeWs,
                    None => return Err(FramingError("bad chunk size")),
                },
                ChunkState::SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = ChunkState::SizeLineRest,
                    b'\r' => self.state = ChunkState::SizeLf,
                    // `5 6` must not be read as 5 by us and as something else by the next hop.
                    _ => return Err(FramingError("text after the chunk size")),
                },
                ChunkState::SizeLineRest => {
                    self.line_len += 1;
                    if self.line_len > MAX_LINE {
                        return Err(FramingError("chunk extension too long"));
                    }
                    if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else if is_control(b) {
                        // A bare LF here ends the line for a lenient next hop
                        // but not for us: the two would disagree on the body.
                        return Err(FramingError("control byte in chunk extension"));
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(FramingError("chunk size line not ended by CRLF"));
                    }
                    self.line_len = 0;
                    self.state = if self.left == 0 { ChunkState::TrailerLineStart } else { ChunkState::Data };
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(FramingError("chunk data not followed by CRLF"));
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(FramingError("chunk data not followed by CRLF"));
                    }
                    self.state = ChunkState::Size { digits: 0 };
                }
                ChunkState::TrailerLineStart => {
                    self.state = match b {
                        b'\r' => ChunkState::TrailerLf { empty: true },
                        _ if is_control(b) => return Err(FramingError("control byte in trailer")),
                        _ => ChunkState::TrailerLine,
                    };
                }
                ChunkState::TrailerLine => {
                    self.line_len += 1;
                    if self.line_len > MAX_LINE {
                        return Err(FramingError("trailer too long"));
                    }
                    if b == b'\r' {
                        self.state = ChunkState::TrailerLf { empty: false };
                    } else if is_control(b) {
                        return Err(FramingError("control byte in trailer"));
                    }
                }
                ChunkState::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(FramingError("trailer line not ended by CRLF"));
                    }
                    if empty {
                        return Ok((i + 1, true));
                    }
                    self.line_len = 0;
                    self.state = ChunkState::TrailerLineStart;
                }
            }
            i += 1;
        }
        Ok((i, false))
    }
}

/// Bytes no extension or trailer may hold (RFC 9110 5.5: field values are
/// visible characters, space and tab). LF is among them: lines end in CRLF.
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_stops_at_the_boundary() {
        let mut f = BodyFraming::Length(5);
        assert_eq!(f.advance(b"abc").unwrap(), 3);
        assert_eq!(f.advance(b"deGET /").unwrap(), 2);
        assert!(f.is_done());
        assert_eq!(f.advance(b"more").unwrap(), 0);
    }

    #[test]
    fn chunked_whole_and_byte_by_byte() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let mut f = BodyFraming::chunked();
        assert_eq!(f.advance(body).unwrap(), body.len() - 4);
        assert!(f.is_done());

        let mut f = BodyFraming::chunked();
        let mut taken = 0;
        for b in body.iter() {
            taken += f.advance(std::slice::from_ref(b)).unwrap();
            if f.is_done() {
                break;
            }
        }
        assert_eq!(taken, body.len() - 4);
    }

    #[test]
    fn chunked_without_trailers() {
        let mut f = BodyFraming::chunked();
        assert_eq!(f.advance(b"0\r\n\r\n").unwrap(), 5);
        assert!(f.is_done());
    }

    #[test]
    fn peek_does_not_consume() {
        let f = BodyFraming::chunked();
        assert_eq!(f.peek(b"3\r\nabc\r\n0\r\n\r\nzz").unwrap(), 13);
        assert_eq!(f, BodyFraming::chunked());
    }

    #[test]
    fn random_bytes_never_panic_and_never_overrun() {
        let mut rng = crate::policy::rng::SplitMix64::new(99);
        for _ in 0..20_000 {
            let len = rng.below(64) as usize;
            // Bias toward the characters chunked framing cares about.
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.below(6) {
                    0 => b'\r',
                    1 => b'\n',
                    2 => b'0' + rng.below(10) as u8,
                    3 => b'a' + rng.below(6) as u8,
                    4 => b';',
                    _ => rng.below(256) as u8,
                })
                .collect();
            let mut f = BodyFraming::chunked();
            if let Ok(n) = f.advance(&bytes) {
                assert!(n <= bytes.len());
            }
            let mut l = BodyFraming::Length(rng.below(100));
            assert!(l.advance(&bytes).unwrap() <= bytes.len());
        }
    }

    #[test]
    fn chunked_errors() {
        assert!(BodyFraming::chunked().advance(b"zz\r\n").is_err());
        assert!(BodyFraming::chunked().advance(b"3\r\nabcX").is_err());
        assert!(BodyFraming::chunked().advance(b"ffffffffffffffffff\r\n").is_err());
        assert!(BodyFraming::chunked().advance(b"\r\n").is_err());
    }

    #[test]
    fn bare_lf_never_ends_a_line() {
        // Each would end the body early for a peer that accepts LF line ends,
        // and what follows would reach it as a request the proxy never parsed.
        for bad in [
            &b"0;a\n\nGET /SMUGGLED HTTP/1.1\r\n"[..],
            b"0\r\n\nGET /SMUGGLED HTTP/1.1\r\n",
            b"0\r\nX: y\n\r\n",
            b"5;ext\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n",
            b"0;a\x00\r\n\r\n",
            b"5 6\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(BodyFraming::chunked().advance(bad).is_err(), "{:?} accepted", String::from_utf8_lossy(bad));
        }
        let good = b"5 ;name=\"v\"\t\r\nhello\r\n0 \r\nX: a\tb\r\n\r\n";
        let mut f = BodyFraming::chunked();
        assert_eq!(f.advance(good).unwrap(), good.len());
        assert!(f.is_done());
    }
}
