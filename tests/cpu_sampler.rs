//! tools/cpu-sampler against real processes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sampler() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cpu-sampler"))
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lbproxy-sampler-{}-{name}", std::process::id()))
}

/// A process that keeps one core busy until killed.
fn busy() -> Child {
    Command::new("yes").stdout(Stdio::null()).spawn().expect("spawn yes")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn three_samples_of_a_busy_process() {
    let child = Killed(busy());
    let pid = child.0.id().to_string();
    let out = temp("busy.csv");
    let st = sampler()
        .args(["--interval", "200ms", "--samples", "3", "--pid", &pid, "--output", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "header + 3 samples:\n{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header[0], "timestamp");
    assert_eq!(header[1], "total_pct");
    assert!(header.contains(&"cpu0_pct"));
    let cpu_col = header.iter().position(|h| *h == format!("pid_{pid}_cpu_pct")).expect("pid column");
    let rss_col = header.iter().position(|h| *h == format!("pid_{pid}_rss_kib")).expect("rss column");
    for line in &lines[1..] {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), header.len(), "{line}");
        for v in &f {
            v.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {v:?} in {line}"));
        }
        assert!(f[cpu_col].parse::<f64>().unwrap() > 0.0, "busy process at 0% CPU: {line}");
        assert!(f[rss_col].parse::<u64>().unwrap() > 0, "no resident memory: {line}");
    }
    let _ = std::fs::remove_file(out);
}

#[test]
fn a_watched_process_that_exits_is_reported_and_sampling_goes_on() {
    let mut short = busy();
    let stays = Killed(busy());
    let (p1, p2) = (short.id().to_string(), stays.0.id().to_string());
    let out = temp("exit.csv");
    let child = sampler()
        .args(["--interval", "100ms", "--samples", "6", "--pid", &p1, "--pid", &p2, "--output", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first sample, then end the first process.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "no sample written");
        std::thread::sleep(Duration::from_millis(20));
    }
    short.kill().unwrap();
    short.wait().unwrap();
    let res = child.wait_with_output().unwrap();
    assert!(res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains(&format!("process {p1} exited; still sampling the rest")), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let last: Vec<&str> = text.lines().last().unwrap().split(',').collect();
    let n = last.len();
    assert_eq!((last[n - 4], last[n - 3]), ("", ""), "exited process still has values: {last:?}");
    assert!(last[n - 2].parse::<f64>().unwrap() > 0.0, "the other process stopped being sampled");
    let _ = std::fs::remove_file(out);
}

#[test]
fn sigterm_stops_it_with_every_line_complete() {
    let out = temp("term.csv");
    let mut child = sampler().args(["--interval", "100ms", "--output", out.to_str().unwrap()]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "no samples written");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'), "a partial line was left");
    let cols = text.lines().next().unwrap().split(',').count();
    assert!(text.lines().all(|l| l.split(',').count() == cols));
}

#[test]
fn bad_interval_is_refused() {
    let out = sampler().args(["--interval", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval"));
}
