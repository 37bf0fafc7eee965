//! A minimal HTTP/1.1 client over a raw socket, so tests see exactly what
//! the proxy sends (status, headers, framing, connection close).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::PATIENCE;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The example backend's id, from `X-Server`.
    pub fn server(&self) -> u32 {
        self.header("x-server").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no X-Server in {}", self.status))
    }
}

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// An answer said `Connection: close`.
    closed: bool,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        Conn::from_stream(TcpStream::connect_timeout(&addr, PATIENCE).expect("connect"))
    }

    /// A connection to `addr` from the loopback address `src` (127.0.0.0/8).
    pub fn open_from(addr: SocketAddr, src: [u8; 4]) -> Conn {
        Conn::from_stream(super::connect_from(addr, src))
    }

    pub fn from_stream(s: TcpStream) -> Conn {
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        Conn { writer: s.try_clone().unwrap(), reader: BufReader::with_capacity(256 * 1024, s), closed: false }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).expect("send");
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.read_response(false)
    }

    pub fn read_response(&mut self, head_request: bool) -> Response {
        let mut body = Vec::new();
        let (status, headers) = self.read_response_with(head_request, |b| body.extend_from_slice(b));
        Response { status, headers, body }
    }

    /// Read one response head (interim ones included), no body.
    pub fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1."), "not an HTTP response: {line:?}");
        let status: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').expect("header");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        (status, headers)
    }

    /// Read one response, passing the body to `sink` as it arrives. Interim
    /// (100) responses are skipped.
    pub fn read_response_with(
        &mut self,
        head_request: bool,
        mut sink: impl FnMut(&[u8]),
    ) -> (u16, Vec<(String, String)>) {
        let (status, headers) = self.read_head();
        if status == 100 {
            return self.read_response_with(head_request, sink);
        }
        if head_request || status == 204 || status == 304 {
            return (status, headers);
        }
        self.read_body(&headers, &mut sink);
        (status, headers)
    }

    /// Read the body of a response whose head was read with `read_head`.
    pub fn read_body(&mut self, headers: &[(String, String)], mut sink: impl FnMut(&[u8])) {
        let mut line = String::new();
        let get = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let mut buf = vec![0u8; 128 * 1024];
        if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                line.clear();
                self.reader.read_line(&mut line).expect("chunk size");
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16).expect("hex size");
                if size == 0 {
                    line.clear();
                    self.reader.read_line(&mut line).expect("last CRLF");
                    break;
                }
                let mut left = size;
                while left > 0 {
                    let n = left.min(buf.len());
                    self.reader.read_exact(&mut buf[..n]).expect("chunk data");
                    sink(&buf[..n]);
                    left -= n;
                }
                line.clear();
                self.reader.read_line(&mut line).expect("chunk CRLF");
            }
        } else if let Some(len) = get("content-length") {
            let mut left: u64 = len.parse().expect("content-length");
            while left > 0 {
                let n = (left as usize).min(buf.len());
                self.reader.read_exact(&mut buf[..n]).expect("body");
                sink(&buf[..n]);
                left -= n as u64;
            }
        } else {
            loop {
                let n = self.reader.read(&mut buf).expect("body until close");
                if n == 0 {
                    break;
                }
                sink(&buf[..n]);
            }
        }
    }

    /// `GET path` with a Content-Length answer, without panicking: a
    /// connection closed before any answer byte is `Err("closed before an
    /// answer")`, which a client may retry. Marks the connection closed when
    /// the answer says `Connection: close`.
    pub fn try_get(&mut self, path: &str) -> Result<Response, String> {
        self.writer
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .map_err(|_| "closed before an answer".to_string())?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => return Err("closed before an answer".into()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err("closed before an answer".into()),
            Err(e) => return Err(format!("status line: {e}")),
            Ok(_) => {}
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).map_err(|e| format!("header: {e}"))?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').ok_or_else(|| format!("bad header {l:?}"))?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let r = Response { status, headers, body: Vec::new() };
        let len: usize =
            r.header("content-length").and_then(|v| v.parse().ok()).ok_or("answer without Content-Length")?;
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
        self.closed = r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        Ok(Response { body, ..r })
    }

    /// Close our side and wait until the proxy closes its side (it has
    /// finished with the connection then).
    pub fn close_and_wait(mut self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = self.reader.read_to_end(&mut sink);
    }

    /// False once an answer said `Connection: close`.
    pub fn is_open(&self) -> bool {
        !self.closed
    }

    /// True once the peer has closed (read returns 0 or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}
