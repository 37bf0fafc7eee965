//! /metrics as operators use it: valid for Prometheus (promtool), status
//! codes counted per backend and for lbproxy's own answers, bytes that
//! include request heads. Real processes: examples/http_backend behind lbproxy.

mod util;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use util::http::Conn;
use util::{admin_get, admin_stats, dead_addr, http_backend, http_proxy_with_admin};

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` on `text`: its exit status and what it said.
/// promtool comes with Debian's `prometheus` package; .ci/run installs it.
fn promtool(text: &str) -> (bool, String) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("cannot run promtool ({e}): install it (Debian: apt-get install prometheus); this check is not skipped")
    });
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[test]
fn promtool_accepts_the_live_metrics() {
    let b = http_backend(1, &[]);
    let (lb, admin) = http_proxy_with_admin(b.addr, &[]);
    let mut c = Conn::open(lb.addr);
    assert_eq!(c.get("/").status, 200);
    assert_eq!(c.get("/no-such-page").status, 404);
    let text = admin_get(admin, "/metrics");
    let (ok, said) = promtool(&text);
    assert!(ok, "promtool check metrics failed:\n{said}\n---\n{text}");
    // The families operators look for are there.
    for name in [
        "lbproxy_build_info{version=\"",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_cpu_seconds_total ",
        "process_start_time_seconds ",
        "lbproxy_frontend_response_time_seconds_bucket{frontend=\"default\",le=\"0.0001\"} ",
        "lbproxy_backend_connect_time_seconds_count{",
        "lbproxy_backend_went_down_total{",
        "lbproxy_frontend_retries_total{",
    ] {
        assert!(text.contains(name), "no {name} in:\n{text}");
    }
    let count = sample(&text, "lbproxy_frontend_response_time_seconds_count{frontend=\"default\"}");
    assert_eq!(count, Some(2.0), "{text}");
}

#[test]
fn status_codes_count_a_backend_404_and_a_proxy_503() {
    let b = http_backend(1, &[]);
    let (lb, admin) = http_proxy_with_admin(b.addr, &[]);
    let mut c = Conn::open(lb.addr);
    assert_eq!(c.get("/no-such-page").status, 404);
    assert_eq!(c.get("/").status, 200);
    let text = admin_get(admin, "/metrics");
    let labels = format!("backend=\"{}\",pool=\"default\"", b.addr);
    assert_eq!(
        sample(&text, &format!("lbproxy_backend_responses_total{{{labels},code=\"404\"}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("lbproxy_backend_responses_total{{{labels},code=\"200\"}}")),
        Some(1.0),
        "{text}"
    );
    let front = "lbproxy_frontend_responses_total{frontend=\"default\",code=\"404\"}";
    assert_eq!(sample(&text, front), Some(1.0), "{text}");
    assert!(!text.contains("lbproxy_frontend_proxy_responses_total{"), "no answer of lbproxy's own yet:\n{text}");
    let v = admin_stats(admin);
    assert_eq!(v["backends"][0]["status_codes"], serde_json::json!({"200": 1, "404": 1}), "{v:#}");
    assert_eq!(v["frontends"][0]["requests"], 2, "{v:#}");

    // Every backend down: lbproxy answers 503 itself. The first request's
    // failed connect (502) takes the only backend out for an hour.
    let (lb, admin) = http_proxy_with_admin(dead_addr(), &["--max-fails", "1", "--fail-timeout", "1h"]);
    let mut c = Conn::open(lb.addr);
    assert_eq!(c.get("/").status, 502);
    assert_eq!(c.get("/").status, 503);
    let text = admin_get(admin, "/metrics");
    for (code, n) in [("502", 1.0), ("503", 1.0)] {
        let series = format!("lbproxy_frontend_proxy_responses_total{{frontend=\"default\",code=\"{code}\"}}");
        assert_eq!(sample(&text, &series), Some(n), "{text}");
    }
    assert!(!text.contains("lbproxy_frontend_responses_total{"), "no backend answered:\n{text}");
    assert!(!text.contains("lbproxy_backend_responses_total{"), "no backend answered:\n{text}");
    let v = admin_stats(admin);
    assert_eq!(v["frontends"][0]["proxy_status_codes"], serde_json::json!({"502": 1, "503": 1}), "{v:#}");
    assert_eq!(v["backends"][0]["status_codes"], serde_json::json!({}), "{v:#}");
}

#[test]
fn bytes_in_count_request_heads() {
    let b = http_backend(1, &[]);
    let (lb, admin) = http_proxy_with_admin(b.addr, &[]);
    let head = b"GET / HTTP/1.1\r\nHost: test\r\nUser-Agent: metrics-test\r\nConnection: close\r\n\r\n";
    let mut s = util::connect(lb.addr);
    s.write_all(head).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    let text = admin_get(admin, "/metrics");
    let front = |name: &str| sample(&text, &format!("lbproxy_frontend_{name}{{frontend=\"default\"}}"));
    assert_eq!(front("bytes_in_total"), Some(head.len() as f64), "a GET has no body: its head is all:\n{text}");
    assert_eq!(front("bytes_out_total"), Some(answer.len() as f64), "{text}");
    let backend = |name: &str| {
        let series = format!("lbproxy_backend_{name}{{backend=\"{}\",pool=\"default\"}}", b.addr);
        sample(&text, &series).unwrap_or_else(|| panic!("no {series}:\n{text}"))
    };
    // The head goes to the backend rewritten (X-Forwarded-For, Connection), so
    // its size differs a little; a head it is all the same.
    assert!(backend("bytes_in_total") >= 40.0, "{text}");
    assert!(backend("bytes_out_total") >= answer.len() as f64 - 40.0, "{text}");
    assert_eq!(admin_stats(admin)["backends"][0]["bytes_in"].as_f64(), Some(backend("bytes_in_total")));
}

#[test]
fn retries_and_connect_failures_count_a_dead_backend() {
    let b = http_backend(1, &[]);
    let dead = dead_addr();
    let lb =
        util::lbproxy("round_robin", &[dead, b.addr], &["--mode", "http", "--admin", &dead_addr().port().to_string()]);
    let line = lb.wait_for_line("admin API on http://");
    let admin: std::net::SocketAddr =
        line.split("http://").nth(1).and_then(|r| r.split('/').next()).and_then(|a| a.parse().ok()).expect("admin");
    // Round robin alternates: one of two requests picks the dead backend
    // first and is sent again to the live one; the client sees no error.
    let mut c = Conn::open(lb.addr);
    assert_eq!(c.get("/").status, 200);
    assert_eq!(c.get("/").status, 200);
    let text = admin_get(admin, "/metrics");
    let failures = format!("lbproxy_backend_connect_failures_total{{backend=\"{dead}\",pool=\"default\"}}");
    let failed = sample(&text, &failures).expect("the dead backend's failures");
    assert!(failed >= 1.0, "{text}");
    let retries = sample(&text, "lbproxy_frontend_retries_total{frontend=\"default\"}");
    assert_eq!(retries, Some(failed), "one retry per failed connect:\n{text}");
    let connects = format!("lbproxy_backend_connect_time_seconds_count{{backend=\"{}\",pool=\"default\"}}", b.addr);
    assert!(sample(&text, &connects).is_some_and(|n| n >= 1.0), "{text}");
}
