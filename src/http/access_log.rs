//! The access log: one CSV line per request (`--access-log FILE`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::head::RequestHead;

/// The access log's first line.
pub const ACCESS_LOG_HEADER: &str = "timestamp,client,method,path,backend,status,bytes,latency_us,reused";

/// Open `--access-log` for appending (`None` without one); a new file gets the CSV header.
pub fn open_access_log(config: &crate::config::Config) -> std::io::Result<Option<File>> {
    let Some(path) = &config.access_log else {
        return Ok(None);
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open access log {}: {e}", path.display())))?;
    if f.metadata()?.len() == 0 {
        writeln!(f, "{ACCESS_LOG_HEADER}")?;
    }
    Ok(Some(f))
}

/// Status logged for an exchange the client abandoned (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// One request's line.
pub struct Entry<'a> {
    pub client: SocketAddr,
    pub head: &'a RequestHead,
    pub backend: Option<SocketAddr>,
    pub status: u16,
    pub bytes: u64,
    pub latency: Option<Duration>,
    pub reused: bool,
}

/// Buffered; flushed by the engine's periodic sweep and at exit.
pub struct AccessLog(BufWriter<File>);

impl AccessLog {
    pub fn new(f: File) -> AccessLog {
        AccessLog(BufWriter::new(f))
    }

    pub fn write(&mut self, e: &Entry) {
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let backend = e.backend.map(|b| b.to_string()).unwrap_or_default();
        let latency = e.latency.map(|d| d.as_micros().to_string()).unwrap_or_default();
        let _ = writeln!(
            self.0,
            "{}.{:06},{},{},{},{},{},{},{},{}",
            ts.as_secs(),
            ts.subsec_micros(),
            e.client.ip(),
            e.head.method,
            csv_field(&e.head.target),
            backend,
            e.status,
            e.bytes,
            latency,
            e.reused
        );
    }

    pub fn flush(&mut self) {
        let _ = self.0.flush();
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
