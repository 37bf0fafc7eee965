//! The policy lab on a live proxy: `/explain` names the next real pick, and
//! shadow policies change neither the picks nor the backend I/O while
//! `/stats`, `/metrics` and the access log show what they would have done.

mod util;

use std::net::SocketAddr;
use std::path::PathBuf;

use util::http::Conn;
use util::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lbproxy-lab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Three HTTP backends (ids 1, 2, 3).
fn backends() -> Vec<Proc> {
    (1..=3).map(|id| http_backend(id, &[])).collect()
}

fn explain(admin: SocketAddr, key: &str) -> serde_json::Value {
    let body = admin_get(admin, &format!("/explain?frontend=default&key={key}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/explain is not JSON ({e}): {body}"))
}

/// One request from 127.0.0.`src`: the backend that answered.
fn request_from(proxy: SocketAddr, src: u8, addrs: &[SocketAddr]) -> String {
    let mut c = Conn::open_from(proxy, [127, 0, 0, src]);
    let r = c.get("/");
    assert_eq!(r.status, 200);
    addrs[r.server() as usize - 1].to_string()
}

#[test]
fn explain_names_the_next_real_pick() {
    let b = backends();
    let addrs: Vec<SocketAddr> = b.iter().map(|p| p.addr).collect();
    for policy in ["random", "p2c_peak_ewma", "maglev", "fewest_connections"] {
        let (lb, admin) = start_proxy(policy, &addrs, &["--seed", "7", "--shadow-policy", "round_robin"]);
        for round in 0..12u8 {
            let src = 1 + round % 4;
            let e = explain(admin, &format!("127.0.0.{src}"));
            assert_eq!(e["policy"], policy);
            assert_eq!(e["candidates"].as_array().map(Vec::len), Some(3), "{e}");
            let picked = e["pick"].as_str().unwrap_or_else(|| panic!("no pick: {e}")).to_string();
            let marked: Vec<&serde_json::Value> =
                e["candidates"].as_array().unwrap().iter().filter(|c| c["picked"] == true).collect();
            assert_eq!(marked.len(), 1, "{e}");
            assert_eq!(marked[0]["backend"], picked.as_str());
            let got = request_from(lb.addr, src, &addrs);
            assert_eq!(got, picked, "{policy}, round {round}: /explain said {e}");
        }
        // The shadow's explanation comes along, and the explain itself picked nothing.
        let e = explain(admin, "127.0.0.1");
        assert_eq!(e["shadows"][0]["policy"], "round_robin");
        let stats = admin_stats(admin);
        assert_eq!(stats["frontends"][0]["picks"]["decisions"], 12, "{policy}: {stats}");
    }
}

#[test]
fn explain_reports_exclusions_and_refuses_bad_keys() {
    let b = backends();
    let addrs: Vec<SocketAddr> = b.iter().map(|p| p.addr).collect();
    let (_lb, admin) = start_proxy("round_robin", &addrs, &[]);
    let mut s = connect(admin);
    std::io::Write::write_all(
        &mut s,
        format!(
            "POST /backends/{}/drain HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            addrs[1]
        )
        .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let e = explain(admin, "10.1.2.3");
    let drained = &e["candidates"][1];
    assert_eq!(drained["backend"], addrs[1].to_string());
    assert_eq!(drained["excluded"], "draining", "{e}");
    assert_eq!(e["candidates"][0]["scores"]["turn"], 0, "{e}");
    for (path, status, needle) in [
        ("/explain?key=not-an-ip", "400", "\\\"not-an-ip\\\" is not an IP address"),
        ("/explain?frontend=nope&key=1.2.3.4", "404", "no frontend \\\"nope\\\""),
        ("/explain", "400", "needs key=K"),
    ] {
        let mut s = connect(admin);
        std::io::Write::write_all(
            &mut s,
            format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        assert!(out.starts_with(&format!("HTTP/1.1 {status}")) && out.contains(needle), "{path}: {out}");
    }
}

/// What one seeded run of 30 requests did.
struct Run {
    /// The backend of each request (index in the list), as the access log says.
    picks: Vec<usize>,
    log: String,
    /// Per backend: requests sent and connections opened (lbproxy's counters of its backend I/O).
    io: Vec<(u64, u64)>,
    proxy_log: Vec<String>,
}

/// 30 requests over three keep-alive clients through a seeded `random` policy.
fn seeded_run(extra: &[&str], log: &std::path::Path) -> Run {
    let b = backends();
    let addrs: Vec<SocketAddr> = b.iter().map(|p| p.addr).collect();
    let log_s = log.display().to_string();
    let mut args = vec!["--seed", "11", "--access-log", &log_s];
    args.extend_from_slice(extra);
    let (mut lb, admin) = start_proxy("random", &addrs, &args);
    let mut conns: Vec<Conn> = (1..=3).map(|src| Conn::open_from(lb.addr, [127, 0, 0, src])).collect();
    for k in 0..30 {
        assert_eq!(conns[k % 3].get("/").status, 200);
    }
    drop(conns);
    let stats = admin_stats(admin);
    let io = (stats["backends"].as_array().expect("backends").iter())
        .map(|b| (b["requests"].as_u64().unwrap(), b["connections_opened"].as_u64().unwrap()))
        .collect();
    // The access log is flushed at exit.
    lb.signal(libc::SIGTERM);
    assert!(lb.wait_exit().success());
    let text = std::fs::read_to_string(log).expect("access log");
    // Each run has new backend processes on other ports: compare by their place in the list.
    let picks = (text.lines().skip(1))
        .map(|l| {
            let backend = l.split(',').nth(4).unwrap_or("");
            addrs.iter().position(|a| a.to_string() == backend).unwrap_or_else(|| panic!("no backend in {l}"))
        })
        .collect();
    let proxy_log = lb.log.lock().unwrap().clone();
    Run { picks, log: text, io, proxy_log }
}

#[test]
fn shadows_never_change_the_real_pick_nor_add_io() {
    let dir = temp_dir("shadows");
    let bare = seeded_run(&[], &dir.join("bare.csv"));
    let shadows = [
        "--shadow-policy",
        "fastest_ranked",
        "--shadow-policy",
        "maglev",
        "--shadow-policy",
        "least_requests",
        "--access-log-explain",
    ];
    let with = seeded_run(&shadows, &dir.join("shadowed.csv"));
    assert_eq!(bare.picks.len(), 30);
    assert!((0..3).all(|i| bare.picks.contains(&i)), "a random spread reaches every backend: {:?}", bare.picks);
    assert_eq!(with.picks, bare.picks, "the same seeded run picks the same backends with shadows");
    assert_eq!(with.io, bare.io, "the same requests and connections per backend with shadows");
    assert_eq!(with.io.iter().map(|(r, _)| r).sum::<u64>(), 30, "nothing was sent for a shadow");
    // No probe ran for the fastest_ranked shadow: it must not add I/O.
    assert!(!with.proxy_log.iter().any(|l| l.contains("probe of backend")), "a shadow ran probes");
    let header = with.log.lines().next().unwrap();
    let shadows_after = ",time,wait_us,deliver_us,total_us,shadow_fastest_ranked,shadow_maglev,shadow_least_requests";
    assert!(header.ends_with(&format!("{shadows_after},explain")), "{header}");
    for line in with.log.lines().skip(1) {
        let cols: Vec<&str> = line.splitn(17, ',').collect();
        assert_eq!(cols.len(), 17, "{line}");
        for shadow in &cols[13..16] {
            assert!(shadow.starts_with("127.0.0.1:"), "a shadow's pick in every line: {line}");
        }
        let explained = cols[16].trim_matches('"');
        assert!(explained.contains(&format!("*{}(", cols[4])), "the explanation marks the real pick: {line}");
    }
}

#[test]
fn stats_and_metrics_show_shadows_and_fairness() {
    let b = backends();
    let addrs: Vec<SocketAddr> = b.iter().map(|p| p.addr).collect();
    let extra = ["--shadow-policy", "ip_hash", "--shadow-policy", "round_robin"];
    let (lb, admin) = start_proxy("round_robin", &addrs, &extra);
    for k in 0..30u8 {
        request_from(lb.addr, 1 + k % 5, &addrs);
    }
    let stats = admin_stats(admin);
    let f = &stats["frontends"][0];
    assert_eq!(f["picks"]["decisions"], 30);
    assert_eq!(f["fairness"]["jain"], 1.0, "round robin gave 10 each: {f}");
    assert_eq!(f["fairness"]["max_over_mean"], 1.0);
    let shadows = f["shadows"].as_array().expect("shadows");
    assert_eq!(shadows.len(), 2);
    let ip_hash = &shadows[0];
    assert_eq!(ip_hash["policy"], "ip_hash");
    assert_eq!(ip_hash["decisions"], 30);
    let picks: u64 = ip_hash["picks"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(picks, 30);
    let twin = &shadows[1];
    assert_eq!(twin["agreed"], 30, "round robin beside round robin agrees every time: {twin}");
    assert_eq!(twin["agreement"], 1.0);
    let p = &twin["predicted_latency_us"];
    assert!(p["mean"].as_f64().is_some_and(|m| m > 0.0) && p["unmeasured_share"] == 0.0, "{twin}");
    let metrics = admin_get(admin, "/metrics");
    assert!(metrics.contains("lbproxy_shadow_agreed_total{frontend=\"default\",policy=\"round_robin\"} 30\n"));
    assert!(metrics.contains("lbproxy_shadow_decisions_total{frontend=\"default\",policy=\"ip_hash\"} 30\n"));
    assert!(metrics.contains("lbproxy_frontend_fairness_jain{frontend=\"default\"} 1\n"), "{metrics}");
    assert!(
        metrics
            .contains("lbproxy_shadow_predicted_latency_seconds{frontend=\"default\",policy=\"ip_hash\",stat=\"p99\"}")
    );
}

/// `policy-lab ARGS`: its exit status, stdout and stderr.
fn policy_lab(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_policy-lab")).args(args).output().expect("run policy-lab");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn replay_of_a_recorded_log_is_the_same_for_a_seed() {
    let dir = temp_dir("replay");
    let log = dir.join("access.csv");
    let log_s = log.display().to_string();
    {
        let b: Vec<Proc> = [0, 3, 9]
            .iter()
            .enumerate()
            .map(|(i, &ms)| http_backend(i as u32 + 1, &["--delay-ms", &ms.to_string()]))
            .collect();
        let addrs: Vec<SocketAddr> = b.iter().map(|p| p.addr).collect();
        let (mut lb, _admin) =
            start_proxy("round_robin", &addrs, &["--access-log", &log_s, "--shadow-policy", "maglev"]);
        for k in 0..60u8 {
            request_from(lb.addr, 1 + k % 6, &addrs);
        }
        lb.signal(libc::SIGTERM);
        assert!(lb.wait_exit().success());
    }
    let run = |seed: &str, out: &str| {
        let out = dir.join(out);
        let (ok, stdout, stderr) =
            policy_lab(&["replay", "--trace", &log_s, "--seed", seed, "--out", &out.display().to_string()]);
        assert!(ok, "policy-lab replay failed: {stderr}");
        assert!(stdout.contains("| p2c_peak_ewma |"), "{stdout}");
        std::fs::read_to_string(out.join("replay.csv")).expect("replay.csv")
    };
    let (a, b) = (run("3", "a"), run("3", "b"));
    assert_eq!(a, b, "two replays with one seed");
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(lines.len(), 1 + 13, "a row per policy: {a}");
    assert!(
        lines[0].starts_with("policy,requests,refused,jain,max_over_mean,mean_ms,p99_ms,p999_ms,keys_moved,share_")
    );
    let rr = lines.iter().find(|l| l.starts_with("round_robin,")).expect("round robin row");
    assert!(rr.starts_with("round_robin,60,0,1.0000,1.0000,"), "round robin replays 20 each: {rr}");
    assert_ne!(a, run("4", "c"), "another seed draws other random picks and times");
    assert!(dir.join("a/report.md").exists());
    // Failure paths name what is wrong.
    let (ok, _, err) = policy_lab(&["replay"]);
    assert!(!ok && err.contains("--trace FILE is required"), "{err}");
    let missing = dir.join("nope.csv").display().to_string();
    let (ok, _, err) = policy_lab(&["replay", "--trace", &missing]);
    assert!(!ok && err.contains(&format!("cannot read {missing}")), "{err}");
    let (ok, _, err) = policy_lab(&["replay", "--trace", &log_s, "--policies", "round_robin,fastets"]);
    assert!(!ok && err.contains("unknown policy \"fastets\""), "{err}");
}

#[test]
fn shadow_counts_add_up_over_workers() {
    let b = backends();
    let addrs: Vec<SocketAddr> = b.iter().map(|p| p.addr).collect();
    let (lb, admin) = start_proxy("round_robin", &addrs, &["--workers", "2", "--shadow-policy", "ip_hash"]);
    for k in 0..30u8 {
        request_from(lb.addr, 1 + k % 5, &addrs);
    }
    let stats = admin_stats(admin);
    let f = &stats["frontends"][0];
    assert_eq!(f["picks"]["decisions"], 30, "every worker's picks are counted: {f}");
    let picks: u64 = f["picks"]["picks"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(picks, 30);
    assert_eq!(f["shadows"][0]["decisions"], 30, "{f}");
    let shadow: u64 = f["shadows"][0]["picks"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(shadow, 30);
}

/// lbproxy with `--mode http` and an admin port; returns it and the admin address.
fn start_proxy(policy: &str, backends: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--mode", "http"];
    args.extend_from_slice(extra);
    lbproxy_with_admin(policy, backends, &args)
}
