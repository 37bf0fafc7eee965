//! The dashboard (GET / on the admin port), loaded by headless Chromium
//! against a live proxy with traffic: what it draws is read back from the
//! DOM Chromium dumps.

mod util;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use util::http::Conn;
use util::*;

/// The Chromium binary, if installed. Missing: the test says it is skipped,
/// except under CI (whose .ci/run installs it), where it fails.
fn chromium(test: &str) -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(name)).find(|p| p.exists())
    });
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "{test} needs chromium (apt-get install chromium)");
        eprintln!("SKIPPED {test}: chromium is not installed");
    }
    found
}

/// A browser profile folder of its own, removed on drop.
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Load `url` in headless Chromium, let the page poll for `budget_ms` of
/// virtual time, and return the DOM it drew.
fn dump_dom(chromium: &PathBuf, url: &str, budget_ms: u32) -> String {
    let profile = Profile(std::env::temp_dir().join(format!("lbp-chromium-{}-{budget_ms}", std::process::id())));
    // `timeout` bounds a browser that hangs; --no-sandbox because tests run as root.
    let out = Command::new("timeout")
        .arg(PATIENCE.as_secs().to_string())
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("DOM is UTF-8")
}

/// The element that starts with `start` (an opening tag's text) up to `end`.
fn section<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let from = dom.find(start).unwrap_or_else(|| panic!("no {start:?} in the DOM:\n{dom}"));
    let len = dom[from + start.len()..].find(end).unwrap_or_else(|| panic!("{start:?} has no {end:?}"));
    &dom[from..from + start.len() + len]
}

/// The text of `<td class="CLASS">` in `row`.
fn cell<'a>(row: &'a str, class: &str) -> &'a str {
    let tag = format!("<td class=\"{class}\">");
    let at = row.find(&tag).unwrap_or_else(|| panic!("no {class} cell in {row}")) + tag.len();
    &row[at..at + row[at..].find('<').expect("cell end")]
}

fn admin_addr(lb: &Proc) -> SocketAddr {
    let line = lb.wait_for_line("admin API on http://");
    line.split("http://").nth(1).and_then(|r| r.split('/').next()).and_then(|a| a.parse().ok()).expect("admin")
}

#[test]
fn dashboard_draws_rates_charts_health_and_codes_from_a_live_proxy() {
    let Some(chromium) = chromium("dashboard_draws_rates_charts_health_and_codes_from_a_live_proxy") else {
        return;
    };
    let (b1, b2) = (http_backend(1, &[]), http_backend(2, &[]));
    let dead = dead_addr();
    let admin_port = dead_addr().port().to_string();
    let args = ["--mode", "http", "--admin", &admin_port, "--health-check", "http:/heartbeat", "--fall", "1"];
    let lb = lbproxy("round_robin", &[b1.addr, b2.addr, dead], &args);
    let admin = admin_addr(&lb);
    lb.wait_for_line(&format!("backend {dead} DOWN"));

    // Traffic for as long as the browser looks, some of it 404s; bounded by PATIENCE.
    let stop = AtomicBool::new(false);
    let dom = std::thread::scope(|s| {
        s.spawn(|| {
            let until = Instant::now() + PATIENCE;
            let mut c = Conn::open(lb.addr);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let path = if i.is_multiple_of(5) { "/status/404" } else { "/" };
                let r = c.try_get(path).unwrap_or_else(|_| {
                    c = Conn::open(lb.addr);
                    c.get(path)
                });
                assert!(r.status == 200 || r.status == 404, "{}", r.status);
                i += 1;
            }
        });
        let dom = dump_dom(&chromium, &format!("http://{admin}/"), 6000);
        stop.store(true, Ordering::Relaxed);
        dom
    });

    // What is drawn, without the page's own script.
    let dom = &dom[..dom.find("<script>").expect("the page's script")];
    assert!(dom.contains("<div id=\"err\"></div>"), "the page shows an error: {dom}");
    assert!(!dom.contains("undefined") && !dom.contains("NaN"), "{dom}");
    let mut rates = Vec::new();
    for b in [b1.addr, b2.addr] {
        let row = section(dom, &format!("<tr data-backend=\"{b}\">"), "</tr>");
        assert!(row.contains("state up"), "{row}");
        assert!(row.contains("data-action=\"drain\"") && row.contains("data-action=\"enable\""), "{row}");
        rates.push(cell(row, "rps").parse::<f64>().expect("req/s is a number"));
        let chart = section(dom, "data-chart=\"rps\"", "</svg>");
        let line = chart
            .split("<polyline ")
            .find(|l| l.contains(&format!("data-backend=\"{b}\"")))
            .unwrap_or_else(|| panic!("no line for {b}: {chart}"));
        let points = section(line, "points=\"", "\"");
        assert!(points.split(' ').count() >= 2, "a line needs two points: {line}");
    }
    assert!(rates.iter().any(|&r| r > 0.0), "no request rate drawn: {rates:?}");
    let row = section(dom, &format!("<tr data-backend=\"{dead}\">"), "</tr>");
    assert!(row.contains("state down"), "{row}");
    assert!(section(row, "<div class=\"why\">", "</div>").contains("refused"), "{row}");
    assert!(row.contains("class=\"fail\""), "the failed checks are drawn: {row}");
    for chart in ["rps", "err", "p50", "p99"] {
        assert!(dom.contains(&format!("data-chart=\"{chart}\"")), "no {chart} chart");
    }
    // p50/p99 over a window when /metrics has response-time histograms, else since start.
    let mut metrics = String::new();
    let mut m = std::net::TcpStream::connect(admin).expect("admin");
    std::io::Write::write_all(&mut m, b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
    std::io::Read::read_to_string(&mut m, &mut metrics).unwrap();
    let p99 = section(dom, "<h3>p99 response time", "</h3>");
    if metrics.contains("lbproxy_backend_response_time_seconds_bucket") {
        assert!(p99.contains("over the last 10 s"), "{p99}");
        let chart = section(dom, "data-chart=\"p99\"", "</svg>");
        assert!(chart.contains(&format!("data-backend=\"{}\"", b1.addr)), "no windowed p99 line: {chart}");
    } else {
        assert!(p99.contains("since start"), "{p99}");
    }
    // Status codes: drawn when /stats has them (per backend `status_codes`).
    let stats = admin_stats(admin);
    if stats["backends"][0].get("status_codes").is_some() {
        let row = section(dom, &format!("<tr data-backend=\"{}\">", b1.addr), "</tr>");
        let code = section(row, "data-code=\"404\">", "</span>");
        let n: u64 = code.rsplit(": ").next().and_then(|n| n.replace(',', "").parse().ok()).expect("a count");
        assert!(n > 0, "{row}");
    } else {
        assert!(!dom.contains("data-code="), "codes drawn that /stats does not have");
    }
}

#[test]
fn dashboard_page_loads_without_the_token_and_asks_for_it() {
    let Some(chromium) = chromium("dashboard_page_loads_without_the_token_and_asks_for_it") else {
        return;
    };
    let b = http_backend(1, &[]);
    let admin_port = dead_addr().port().to_string();
    let lb = lbproxy("round_robin", &[b.addr], &["--mode", "http", "--admin", &admin_port, "--admin-token", "s3cret"]);
    let admin = admin_addr(&lb);
    let dom = dump_dom(&chromium, &format!("http://{admin}/"), 2000);
    let dom = &dom[..dom.find("<script>").expect("the page's script")];
    assert!(dom.contains("the admin API needs a token: enter it above"), "{dom}");
    assert!(!dom.contains("data-backend="), "nothing is shown without the token: {dom}");
}

#[test]
fn dashboard_draws_shares_fairness_and_shadow_policies() {
    let Some(chromium) = chromium("dashboard_draws_shares_fairness_and_shadow_policies") else {
        return;
    };
    let (b1, b2) = (http_backend(1, &[]), http_backend(2, &[]));
    let admin_port = dead_addr().port().to_string();
    let args = ["--mode", "http", "--admin", &admin_port, "--shadow-policy", "ip_hash"];
    let lb = lbproxy("round_robin", &[b1.addr, b2.addr], &args);
    let admin = admin_addr(&lb);
    let stop = AtomicBool::new(false);
    let dom = std::thread::scope(|s| {
        s.spawn(|| {
            let until = Instant::now() + PATIENCE;
            let mut c = Conn::open(lb.addr);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let r = c.try_get("/").unwrap_or_else(|_| {
                    c = Conn::open(lb.addr);
                    c.get("/")
                });
                assert_eq!(r.status, 200);
            }
        });
        // Its own budget: the profile folder is named after it, apart from the other tests' browsers.
        let dom = dump_dom(&chromium, &format!("http://{admin}/"), 6001);
        stop.store(true, Ordering::Relaxed);
        dom
    });
    let dom = &dom[..dom.find("<script>").expect("the page's script")];
    assert!(dom.contains("<div id=\"err\"></div>"), "the page shows an error: {dom}");
    assert!(!dom.contains("undefined") && !dom.contains("NaN"), "{dom}");
    // The share chart: a line per backend, round robin near half each.
    let chart = section(dom, "data-chart=\"share\"", "</svg>");
    for b in [b1.addr, b2.addr] {
        let line = chart
            .split("<polyline ")
            .find(|l| l.contains(&format!("data-backend=\"{b}\"")))
            .unwrap_or_else(|| panic!("no share line for {b}: {chart}"));
        assert!(section(line, "points=\"", "\"").split(' ').count() >= 2, "{line}");
    }
    // Fairness in the frontend row: round robin over two backends is even within one request.
    let row = section(dom, "<tr data-frontend=\"default\">", "</tr>");
    let jain: f64 = cell(row, "jain").parse().expect("Jain's index is a number");
    assert!(jain > 0.99, "{row}");
    // The real policy and the shadow side by side; one client address: ip_hash sends all to one backend.
    let real = section(dom, "data-policy=\"round_robin\" data-real=\"yes\">", "</tr>");
    assert_eq!(cell(real, "agreed"), "(real)");
    let shadow = section(dom, "data-policy=\"ip_hash\" data-real=\"no\">", "</tr>");
    let agreed: f64 = cell(shadow, "agreed").trim_end_matches(" %").parse().expect("agreement in %");
    assert!((30.0..=70.0).contains(&agreed), "one backend of two: about half agree: {shadow}");
    let shadow_jain: f64 = cell(shadow, "jain").parse().expect("the shadow's Jain index");
    assert!((shadow_jain - 0.5).abs() < 1e-9, "all on one of two backends: {shadow}");
    assert!(cell(shadow, "pmean").ends_with("ms"), "a predicted latency from observed times: {shadow}");
}
