//! The access log: one line per request (`--access-log FILE`), as CSV (the
//! default), the combined format of nginx and Apache, or JSON
//! (`--access-log-format`). SIGUSR1 opens the file again by name, so that
//! logrotate can move it away.
//!
//! With shadow policies, CSV lines end in one column per shadow
//! (`shadow_NAME`: the backend it would have picked) and JSON lines carry a
//! `shadows` object; with `--access-log-explain`, a last `explain` field
//! holds the real pick's explanation in its compact form. The combined
//! format has fixed fields and carries neither.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::head::RequestHead;
use crate::logfmt::{clf_time, iso8601, json_string};
use crate::policy::{PickNote, PolicyKind};

/// The CSV access log's first line. `time` (ISO-8601 UTC) and the spans
/// came after the others, so that readers of the older columns by position
/// keep working.
pub const ACCESS_LOG_HEADER: &str =
    "timestamp,client,method,path,backend,status,bytes,latency_us,reused,time,wait_us,deliver_us,total_us";

/// How access log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// `ACCESS_LOG_HEADER` columns; the file starts with that header.
    #[default]
    Csv,
    /// `client - - [time] "METHOD target HTTP/1.x" status bytes "-" "-"`,
    /// with `[time]` in UTC, as log analysers expect it.
    Combined,
    /// One JSON object per line with the CSV's fields (`time` ISO-8601).
    Json,
}

impl AccessLogFormat {
    pub fn name(self) -> &'static str {
        match self {
            AccessLogFormat::Csv => "csv",
            AccessLogFormat::Combined => "combined",
            AccessLogFormat::Json => "json",
        }
    }
}

/// What a line carries besides the fixed fields.
#[derive(Debug, Clone, Default)]
struct Extra {
    shadows: Vec<&'static str>,
    explain: bool,
}

impl Extra {
    /// The CSV header: the fixed columns, then a column per shadow and `explain`.
    fn header(&self) -> String {
        let mut h = ACCESS_LOG_HEADER.to_string();
        for s in &self.shadows {
            h.push_str(",shadow_");
            h.push_str(s);
        }
        if self.explain {
            h.push_str(",explain");
        }
        h
    }
}

/// Open `path` for appending; a new CSV file gets the header.
fn open_file(path: &Path, format: AccessLogFormat, extra: &Extra) -> std::io::Result<File> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open access log {}: {e}", path.display())))?;
    if format == AccessLogFormat::Csv && f.metadata()?.len() == 0 {
        // One write: a worker opening the file at the same time sees it whole.
        f.write_all(format!("{}\n", extra.header()).as_bytes())?;
    }
    Ok(f)
}

/// Open `--access-log` (`None` without one).
pub fn open_access_log(config: &crate::config::Config) -> std::io::Result<Option<AccessLog>> {
    let Some(path) = &config.access_log else {
        return Ok(None);
    };
    let format = config.access_log_format;
    let extra = Extra {
        shadows: config.shadow_policies.iter().map(|k: &PolicyKind| k.name()).collect(),
        explain: config.access_log_explain,
    };
    let out = BufWriter::new(open_file(path, format, &extra)?);
    Ok(Some(AccessLog { out, line: Vec::new(), path: path.clone(), format, extra }))
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
    /// Where a completed exchange's time went (`None` for an answer the
    /// proxy gave itself or an exchange cut short).
    pub spans: Option<Spans>,
    /// The shadows' choices and the explanation of the pick ([`NO_PICK`] when none was made).
    pub note: &'a PickNote,
}

/// Where one exchange's time went, by the reactor's clock (read once per
/// event-loop turn), as HAProxy's `Tw`/`Tr`/`Td`/`Tt` timers split it:
/// `wait` from the request head read to the head written to the backend
/// (the pick, a connect or a pooled connection, the writing), then
/// `latency` (written to response head read, a body upload included), then `deliver` (the
/// response head read to its last byte handed to the client's socket).
/// `total` is from the head read to the end: the sum, retries included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spans {
    pub wait: Duration,
    pub deliver: Duration,
    pub total: Duration,
}

/// The note of a request that no policy was asked about.
pub static NO_PICK: PickNote = PickNote { shadows: Vec::new(), explain: None };

/// Buffered; flushed by the engine's periodic sweep, before a reopen and at exit.
pub struct AccessLog {
    out: BufWriter<File>,
    /// The entry being formatted.
    line: Vec<u8>,
    path: PathBuf,
    format: AccessLogFormat,
    extra: Extra,
}

impl AccessLog {
    pub fn write(&mut self, e: &Entry) {
        let now = SystemTime::now();
        // Whole lines only reach the buffer, so a flush never splits one:
        // with several workers appending to one file, lines stay intact.
        self.line.clear();
        let _ = match self.format {
            AccessLogFormat::Csv => write_csv(&mut self.line, e, now, &self.extra),
            AccessLogFormat::Combined => write_combined(&mut self.line, e, now),
            AccessLogFormat::Json => write_json(&mut self.line, e, now, &self.extra),
        };
        let _ = self.out.write_all(&self.line);
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// Open the file again by its name (after logrotate moved it): lines
    /// buffered so far go to the old file, later ones to the new. On failure
    /// the old file stays in use and the error says why.
    pub fn reopen(&mut self) -> std::io::Result<()> {
        self.flush();
        self.out = BufWriter::new(open_file(&self.path, self.format, &self.extra)?);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl super::HttpEngine {
    pub fn flush_log(&mut self) {
        if let Some(l) = self.access_log.as_mut() {
            l.flush();
        }
    }

    /// SIGUSR1: open the access log file again by name; `None` without one.
    pub fn reopen_log(&mut self) -> Option<std::io::Result<PathBuf>> {
        let l = self.access_log.as_mut()?;
        Some(l.reopen().map(|()| l.path().to_path_buf()))
    }

    pub(super) fn log_access(&mut self, entry: &Entry) {
        if let Some(l) = self.access_log.as_mut() {
            l.write(entry);
        }
    }
}

fn write_csv(out: &mut impl Write, e: &Entry, now: SystemTime, extra: &Extra) -> std::io::Result<()> {
    let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let backend = e.backend.map(|b| b.to_string()).unwrap_or_default();
    let latency = e.latency.map(|d| d.as_micros().to_string()).unwrap_or_default();
    let spans = e.spans.map_or_else(
        || ",,".to_string(),
        |s| format!("{},{},{}", s.wait.as_micros(), s.deliver.as_micros(), s.total.as_micros()),
    );
    let mut tail = String::new();
    for k in 0..extra.shadows.len() {
        tail.push(',');
        if let Some(a) = e.note.shadows.get(k).copied().flatten() {
            tail.push_str(&a.to_string());
        }
    }
    if extra.explain {
        tail.push(',');
        tail.push_str(&csv_field(e.note.explain.as_deref().unwrap_or("")));
    }
    writeln!(
        out,
        "{}.{:06},{},{},{},{},{},{},{},{},{},{spans}{tail}",
        ts.as_secs(),
        ts.subsec_micros(),
        e.client.ip(),
        e.head.method,
        csv_field(&e.head.target),
        backend,
        e.status,
        e.bytes,
        latency,
        e.reused,
        iso8601(now)
    )
}

fn write_combined(out: &mut impl Write, e: &Entry, now: SystemTime) -> std::io::Result<()> {
    // The request line is quoted: a quote or backslash in the target is escaped.
    let target = e.head.target.replace('\\', "\\\\").replace('"', "\\\"");
    writeln!(
        out,
        "{} - - [{}] \"{} {} HTTP/1.{}\" {} {} \"-\" \"-\"",
        e.client.ip(),
        clf_time(now),
        e.head.method,
        target,
        e.head.minor,
        e.status,
        e.bytes
    )
}

fn write_json(out: &mut impl Write, e: &Entry, now: SystemTime, extra: &Extra) -> std::io::Result<()> {
    let backend = e.backend.map_or_else(|| "null".to_string(), |b| json_string(&b.to_string()));
    let latency = e.latency.map_or_else(|| "null".to_string(), |d| d.as_micros().to_string());
    let mut tail = String::new();
    if let Some(s) = e.spans {
        let (w, d, t) = (s.wait.as_micros(), s.deliver.as_micros(), s.total.as_micros());
        tail.push_str(&format!(",\"wait_us\":{w},\"deliver_us\":{d},\"total_us\":{t}"));
    }
    if !extra.shadows.is_empty() {
        let picks: Vec<String> = (extra.shadows.iter().enumerate())
            .map(|(k, name)| {
                let a = e.note.shadows.get(k).copied().flatten();
                format!("\"{name}\":{}", a.map_or_else(|| "null".to_string(), |a| json_string(&a.to_string())))
            })
            .collect();
        tail = format!(",\"shadows\":{{{}}}", picks.join(","));
    }
    if extra.explain {
        let x = e.note.explain.as_deref().map_or_else(|| "null".to_string(), json_string);
        tail.push_str(&format!(",\"explain\":{x}"));
    }
    writeln!(
        out,
        "{{\"time\":\"{}\",\"client\":\"{}\",\"method\":{},\"path\":{},\"backend\":{backend},\"status\":{},\
         \"bytes\":{},\"latency_us\":{latency},\"reused\":{}{tail}}}",
        iso8601(now),
        e.client.ip(),
        json_string(&e.head.method),
        json_string(&e.head.target),
        e.status,
        e.bytes,
        e.reused
    )
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
