//! The process log and the access log, read as a log shipper would: every
//! line of a session carries its unique id, the session end line counts the
//! bytes that moved, JSON lines parse, each access log format parses, and
//! SIGUSR1 reopens a moved access log. Real processes throughout.

mod util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use util::http::Conn;
use util::*;

/// lbproxy on a free port with `RUST_LOG=rust_log` and `args` (no backend added).
fn start(rust_log: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", rust_log).args(["--bind", "127.0.0.1", "--port", "0", "--stats-interval", "0"]).args(args);
    spawn_cmd_and_wait(cmd)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lbproxy-logs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Stop `lb` cleanly (logs flushed) and return its log lines.
fn stop(mut lb: Proc) -> Vec<String> {
    lb.signal(libc::SIGTERM);
    assert!(lb.wait_exit().success());
    lb.wait_eof();
    lb.log.lock().unwrap().clone()
}

/// The `key=value` field `key` of a line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// Lines logged for sessions (the modes and the end lines): each must carry
/// `s=N`. Returns the ids seen.
fn session_ids(log: &[String]) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    for line in log {
        let per_session = ["lbproxy::http", "lbproxy::mode", "lbproxy::sessions"].iter().any(|t| line.contains(t));
        if !per_session {
            continue;
        }
        let id = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("s=")?.trim_end_matches(':').parse::<u64>().ok())
            .unwrap_or_else(|| panic!("a session's line without its id: {line}\nlog:\n{}", log.join("\n")));
        ids.insert(id);
    }
    ids
}

#[test]
fn every_line_of_a_session_carries_its_unique_id() {
    // HTTP mode: two keep-alive sessions whose requests interleave.
    let b = http_backend(1, &[]);
    let lb = start("debug", &["--mode", "http", "--backend", &b.addr.to_string()]);
    let (mut one, mut two) = (Conn::open(lb.addr), Conn::open(lb.addr));
    assert_eq!(one.get("/").status, 200);
    assert_eq!(two.get("/no-such-page").status, 404);
    assert_eq!(one.get("/").status, 200);
    drop((one, two));
    // Both end lines are logged before the proxy can exit.
    let log = stop(lb);
    let ends: Vec<&String> = log.iter().filter(|l| l.contains(" session end ")).collect();
    assert_eq!(ends.len(), 2, "{}", log.join("\n"));
    let ids = session_ids(&log);
    assert_eq!(ids.len(), 2, "two sessions, two ids: {ids:?}\n{}", log.join("\n"));
    let requests: Vec<&str> = ends.iter().filter_map(|l| field(l, "requests")).collect();
    assert_eq!(BTreeSet::from_iter(requests), BTreeSet::from(["1", "2"]), "{ends:?}");

    // TCP mode: sessions one after another get new ids (slab keys are reused).
    let s = stream_backend(1);
    let lb = start("debug", &["--backend", &s.addr.to_string()]);
    for _ in 0..3 {
        close_and_wait(connect(lb.addr));
    }
    let log = stop(lb);
    let ids = session_ids(&log);
    assert_eq!(ids.len(), 3, "{ids:?}\n{}", log.join("\n"));
    assert_eq!(log.iter().filter(|l| l.contains(" session end ")).count(), 3, "{}", log.join("\n"));
}

#[test]
fn the_session_end_line_counts_the_bytes_that_moved() {
    let b = http_backend(1, &[]);
    // --log-sessions: end lines at info, the default level.
    let lb = start("info", &["--mode", "http", "--log-sessions", "--backend", &b.addr.to_string()]);
    let head = b"GET /bytes?size=5000 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    let mut s = connect(lb.addr);
    s.write_all(head).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200") && answer.len() > 5000, "{}", answer.len());
    let line = lb.wait_for_line(" session end ");
    assert_eq!(field(&line, "bytes_in"), Some(head.len().to_string().as_str()), "{line}");
    assert_eq!(field(&line, "bytes_out"), Some(answer.len().to_string().as_str()), "{line}");
    assert_eq!(field(&line, "backend"), Some(b.addr.to_string().as_str()), "{line}");
    assert_eq!(field(&line, "requests"), Some("1"), "{line}");
    assert_eq!(field(&line, "end"), Some("proxy_closed"), "Connection: close, so lbproxy closed: {line}");
    assert!(field(&line, "duration_s").and_then(|d| d.parse::<f64>().ok()).is_some(), "{line}");
    assert!(line.contains(" INFO "), "{line}");

    // TCP: the bytes each way of a session the client ends.
    let sb = stream_backend(1);
    let lb = start("info", &["--log-sessions", "--backend", &sb.addr.to_string()]);
    let mut c = connect(lb.addr);
    let reply = ask(&mut c, "WHO");
    close_and_wait(c);
    let line = lb.wait_for_line(" session end ");
    assert_eq!(field(&line, "bytes_in"), Some("4"), "WHO and a newline: {line}");
    assert_eq!(field(&line, "bytes_out"), Some((reply.len() + 1).to_string().as_str()), "{line}");
    assert_eq!(field(&line, "end"), Some("client_closed"), "{line}");
    assert_eq!(field(&line, "requests"), None, "TCP has no requests: {line}");
}

#[test]
fn json_log_lines_parse() {
    let b = http_backend(1, &[]);
    let lb = start("debug", &["--mode", "http", "--log-format", "json", "--backend", &b.addr.to_string()]);
    assert_eq!(Conn::open(lb.addr).get("/").status, 200);
    let log = stop(lb);
    assert!(log.len() >= 5, "{}", log.join("\n"));
    let mut with_session = 0;
    for line in &log {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let time = v["time"].as_str().unwrap_or_else(|| panic!("no time: {line}"));
        assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
        assert!(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&v["level"].as_str().unwrap_or("")), "{line}");
        assert!(v["target"].as_str().is_some_and(|t| t.starts_with("lbproxy")), "{line}");
        with_session += usize::from(v["msg"].as_str().is_some_and(|m| m.starts_with("s=")));
    }
    assert!(with_session >= 2, "{}", log.join("\n"));
}

/// One access log in `format` after a 200 and a 404 (the second path has a
/// comma and a quote, which each format must keep intact); the proxy is stopped.
fn access_log_text(format: &str) -> (String, std::net::SocketAddr) {
    let b = http_backend(1, &[]);
    let dir = temp_dir(format);
    let path = dir.join("access.log");
    let lb = start(
        "info",
        &[
            "--mode",
            "http",
            "--access-log",
            path.to_str().unwrap(),
            "--access-log-format",
            format,
            "--backend",
            &b.addr.to_string(),
        ],
    );
    let mut c = Conn::open(lb.addr);
    assert_eq!(c.get("/").status, 200);
    assert_eq!(c.get("/a,b%22c").status, 404);
    drop(c);
    stop(lb);
    let text = std::fs::read_to_string(&path).expect("access log");
    std::fs::remove_dir_all(&dir).unwrap();
    (text, b.addr)
}

/// An ISO-8601 UTC time with milliseconds: 2026-11-23T13:40:01.123Z.
fn is_iso(t: &str) -> bool {
    let b = t.as_bytes();
    t.len() == 24
        && t.ends_with('Z')
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && t[..4].parse::<u32>().is_ok_and(|y| y >= 2024)
}

#[test]
fn access_log_formats_each_parse() {
    let (csv, backend) = access_log_text("csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(lbproxy::http::ACCESS_LOG_HEADER));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let first: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(first.len(), 13, "{csv}");
    assert_eq!((first[2], first[3], first[5]), ("GET", "/", "200"), "{csv}");
    assert_eq!(first[4], backend.to_string(), "{csv}");
    assert!(is_iso(first[9]), "ISO time after the older columns: {csv}");
    let us = |f: &str| f.parse::<u64>().unwrap_or_else(|_| panic!("not microseconds: {f:?} in {csv}"));
    let [latency, wait, deliver, total] = [first[7], first[10], first[11], first[12]].map(us);
    // The spans add up to the whole (each is cut to whole microseconds).
    let sum = wait + latency + deliver;
    assert!(sum <= total && total <= sum + 3, "wait {wait} + latency {latency} + deliver {deliver} vs total {total}");
    // The path with a comma is quoted; the other columns stay in place.
    assert!(rows[1].contains(",\"/a,b%22c\","), "{csv}");
    let last: Vec<&str> = rows[1].rsplitn(4, ',').collect();
    assert!(is_iso(last[3].rsplit(',').next().unwrap()), "{csv}");
    assert!(last[..3].iter().all(|f| f.parse::<u64>().is_ok()), "{csv}");

    let (combined, _) = access_log_text("combined");
    let rows: Vec<&str> = combined.lines().collect();
    assert_eq!(rows.len(), 2, "no header in combined: {combined}");
    for (row, (path, status)) in rows.iter().zip([("/", "200"), ("/a,b%22c", "404")]) {
        // 127.0.0.1 - - [23/Nov/2026:13:40:01 +0000] "GET / HTTP/1.1" 200 19 "-" "-"
        let (ip, rest) = row.split_once(" - - [").unwrap_or_else(|| panic!("{row}"));
        assert_eq!(ip, "127.0.0.1", "{row}");
        let (time, rest) = rest.split_once("] \"").unwrap_or_else(|| panic!("{row}"));
        assert!(time.len() == 26 && time.ends_with(" +0000") && time.as_bytes()[2] == b'/', "{row}");
        let (request, rest) = rest.split_once("\" ").unwrap_or_else(|| panic!("{row}"));
        assert_eq!(request, format!("GET {path} HTTP/1.1"), "{row}");
        let f: Vec<&str> = rest.split(' ').collect();
        assert_eq!((f[0], f[2], f[3]), (status, "\"-\"", "\"-\""), "{row}");
        assert!(f[1].parse::<u64>().is_ok(), "{row}");
    }

    let (json, backend) = access_log_text("json");
    let rows: Vec<serde_json::Value> =
        json.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!((rows[0]["method"].as_str(), rows[0]["path"].as_str()), (Some("GET"), Some("/")));
    assert_eq!((rows[0]["status"].as_u64(), rows[1]["status"].as_u64()), (Some(200), Some(404)));
    assert_eq!(rows[1]["path"], "/a,b%22c");
    assert_eq!(rows[0]["backend"], backend.to_string());
    assert!(rows[0]["latency_us"].as_u64().is_some() && rows[0]["reused"].is_boolean(), "{json}");
    let span = |k: &str| rows[0][k].as_u64().unwrap_or_else(|| panic!("no {k}: {json}"));
    let sum = span("wait_us") + span("latency_us") + span("deliver_us");
    assert!(sum <= span("total_us") && span("total_us") <= sum + 3, "{json}");
    assert!(rows.iter().all(|r| r["time"].as_str().is_some_and(is_iso)), "{json}");
}

#[test]
fn an_answer_the_proxy_gave_itself_has_no_spans() {
    // No backend listens: the proxy answers 502 itself, so there is no
    // backend time to split and the span columns stay empty (JSON: absent).
    let dir = temp_dir("spans");
    for format in ["csv", "json"] {
        let path = dir.join(format!("access.{format}"));
        let args = ["--mode", "http", "--access-log", path.to_str().unwrap(), "--access-log-format", format];
        let lb = start("info", &[&args[..], &["--max-fails", "0", "--backend", &dead_addr().to_string()]].concat());
        assert_eq!(Conn::open(lb.addr).get("/").status, 502);
        stop(lb);
        let text = std::fs::read_to_string(&path).unwrap();
        let row = text.lines().last().unwrap();
        if format == "csv" {
            assert!(row.split(',').nth(5) == Some("502") && row.ends_with(",,,"), "{text}");
        } else {
            let v: serde_json::Value = serde_json::from_str(row).unwrap();
            assert!(v["status"] == 502 && v.get("wait_us").is_none() && v.get("total_us").is_none(), "{text}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigusr1_reopens_the_access_log_after_it_was_moved() {
    let b = http_backend(1, &[]);
    let dir = temp_dir("reopen");
    let path = dir.join("access.csv");
    let lb =
        start("info", &["--mode", "http", "--access-log", path.to_str().unwrap(), "--backend", &b.addr.to_string()]);
    let mut c = Conn::open(lb.addr);
    assert_eq!(c.get("/before").status, 404);
    // logrotate: move the file away, then tell the proxy.
    let moved = dir.join("access.csv.1");
    std::fs::rename(&path, &moved).unwrap();
    lb.signal(libc::SIGUSR1);
    lb.wait_for_line("access log");
    lb.wait_for_line("reopened");
    assert_eq!(c.get("/after").status, 404);
    drop(c);
    stop(lb);
    let old = std::fs::read_to_string(&moved).unwrap();
    let new = std::fs::read_to_string(&path).expect("a new access log at the old name");
    assert!(old.contains(",/before,") && !old.contains(",/after,"), "old file:\n{old}");
    assert!(new.starts_with(lbproxy::http::ACCESS_LOG_HEADER), "a new CSV file starts with the header:\n{new}");
    assert!(new.contains(",/after,") && !new.contains(",/before,"), "new file:\n{new}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_default_start_logs_no_warning_and_an_idle_proxy_no_usage_repeats() {
    let b = stream_backend(1);
    let mut cmd = Command::new(lbproxy_bin());
    // Only what a user must give, and a short stats interval to see it work.
    cmd.env_remove("RUST_LOG").args(["--bind", "127.0.0.1", "--port", "0", "--backend", &b.addr.to_string()]);
    cmd.args(["--stats-interval", "20ms"]);
    let lb = spawn_cmd_and_wait(cmd);
    let first = lb.wait_for_line("usage pool=default:");
    assert!(!first.contains('\n'));
    who(lb.addr);
    lb.wait_for_line("sessions=1 ");
    let log = stop(lb);
    assert!(log.iter().all(|l| !l.contains(" WARN ") && !l.contains(" ERROR ")), "{}", log.join("\n"));
    let usage: Vec<&String> = log.iter().filter(|l| l.contains("usage pool=")).collect();
    // Periodic lines only when something changed; the last one is the exit's.
    let periodic = &usage[..usage.len() - 1];
    let text = |l: &str| l.split_once("usage ").map(|(_, u)| u.to_string()).unwrap();
    for pair in periodic.windows(2) {
        assert_ne!(text(pair[0]), text(pair[1]), "an unchanged usage line repeated:\n{}", log.join("\n"));
    }
}
