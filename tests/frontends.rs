//! One process, several frontends from a config file, and reloads of that
//! file under load: nothing open is lost, an invalid file changes nothing.

mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use util::http::Conn;
use util::*;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lbproxy-frontends-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_addr() -> SocketAddr {
    dead_addr()
}

fn start(file: &Path) -> Proc {
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info").arg("--config").arg(file);
    spawn_cmd_and_wait(cmd)
}

/// `GET path` on the admin API, as JSON.
fn admin_json(admin: SocketAddr, path: &str) -> Value {
    let r = Conn::open(admin).get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    serde_json::from_slice(&r.body).expect("JSON")
}

fn admin_post(admin: SocketAddr, path: &str) -> (u16, String) {
    let mut c = Conn::open(admin);
    c.send(format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").as_bytes());
    let r = c.read_response(false);
    (r.status, r.text())
}

/// Requests a pool's backend `addr` has been sent, from `/stats`.
fn requests_of(stats: &Value, pool: &str, addr: SocketAddr) -> Option<u64> {
    let pools = stats["pools"].as_array()?;
    let p = pools.iter().find(|p| p["name"] == pool)?;
    let b = p["backends"].as_array()?.iter().find(|b| b["address"] == addr.to_string())?;
    b["requests"].as_u64()
}

#[test]
fn one_process_serves_a_tcp_and_an_http_frontend_each_with_its_policy_and_stats() {
    let (s1, s2) = (stream_backend(1), stream_backend(2));
    let (h1, h2) = (http_backend(1, &[]), http_backend(2, &[]));
    let (tcp, web, admin) = (free_addr(), free_addr(), free_addr());
    let dir = temp_dir("two");
    let file = dir.join("lb.toml");
    std::fs::write(
        &file,
        format!(
            "[global]\nadmin = \"{admin}\"\nstats_interval = \"0\"\n\n\
             [[frontend]]\nname = \"redis\"\nbind = \"{tcp}\"\nmode = \"tcp\"\npolicy = \"round_robin\"\npool = \"streams\"\n\n\
             [[frontend]]\nname = \"web\"\nbind = \"{web}\"\nmode = \"http\"\npolicy = \"ip_hash\"\npool = \"sites\"\n\n\
             [[pool]]\nname = \"streams\"\nservers = [\"{}\", \"{}\"]\n\n\
             [[pool]]\nname = \"sites\"\nservers = [\"{}\", \"{}\"]\n",
            s1.addr, s2.addr, h1.addr, h2.addr
        ),
    )
    .unwrap();
    let lb = start(&file);
    lb.wait_for_line(&format!("listening on {web}"));
    // TCP frontend: strict rotation over its own pool.
    let tcp_servers: Vec<u32> = (0..6).map(|_| who(tcp)).collect();
    assert_eq!(tcp_servers, [1, 2, 1, 2, 1, 2]);
    // HTTP frontend: ip_hash pins this client to one of its pool's backends.
    let mut c = Conn::open(web);
    let web_servers: Vec<u32> = (0..10).map(|_| c.get("/").server()).collect();
    assert!(web_servers.iter().all(|&s| s == web_servers[0]), "{web_servers:?}");

    let stats = admin_json(admin, "/stats");
    let fronts = stats["frontends"].as_array().expect("frontends");
    let by_name = |n: &str| fronts.iter().find(|f| f["name"] == n).unwrap_or_else(|| panic!("no {n} in {stats}"));
    assert_eq!(
        (by_name("redis")["mode"].as_str(), by_name("redis")["policy"].as_str()),
        (Some("tcp"), Some("round_robin"))
    );
    assert_eq!((by_name("web")["mode"].as_str(), by_name("web")["policy"].as_str()), (Some("http"), Some("ip_hash")));
    let hit = if web_servers[0] == 1 { h1.addr } else { h2.addr };
    assert_eq!(requests_of(&stats, "sites", hit), Some(10));
    assert_eq!(requests_of(&stats, "streams", s1.addr).map(|_| ()), Some(()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reload test's fixed parts: admin, the two frontends, the access log.
struct Site {
    admin: SocketAddr,
    web: SocketAddr,
    files: SocketAddr,
    log: PathBuf,
}

impl Site {
    /// `web` (HTTP, `policy`) over `servers`, `files` (TCP) over `streams`, `extra` appended.
    fn config(&self, servers: &[SocketAddr], streams: &[SocketAddr], policy: &str, extra: &str) -> String {
        let list = |a: &[SocketAddr]| a.iter().map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(", ");
        let Site { admin, web, files, log } = self;
        format!(
            "[global]\nadmin = \"{admin}\"\nstats_interval = \"0\"\n\n\
             [[frontend]]\nname = \"web\"\nbind = \"{web}\"\nmode = \"http\"\npolicy = \"{policy}\"\npool = \"sites\"\naccess_log = \"{}\"\n\n\
             [[frontend]]\nname = \"files\"\nbind = \"{files}\"\nmode = \"tcp\"\npool = \"streams\"\n\n\
             {extra}\
             [[pool]]\nname = \"sites\"\nservers = [{}]\n\n\
             [[pool]]\nname = \"streams\"\nservers = [{}]\n",
            log.display(),
            list(servers),
            list(streams)
        )
    }
}

/// Keep-alive GETs until `stop` (at most 50k): (answered 200, failures).
fn http_load(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0u64, Vec::new());
        let mut conn: Option<Conn> = None;
        for i in 0..50_000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let c = conn.get_or_insert_with(|| Conn::open(addr));
            let r = c.try_get(&format!("/?load={i}"));
            match r {
                Ok(r) if r.status == 200 => ok += 1,
                Ok(r) => failed.push(format!("status {}", r.status)),
                // A keep-alive connection the proxy closed between requests
                // (a drain) is the client's to reopen, as every HTTP client does;
                // the request never reached a backend.
                Err(e) if e == "closed before an answer" => {}
                Err(e) => failed.push(e),
            }
            if !matches!(conn.as_mut().map(|c| c.is_open()), Some(true)) {
                conn = None;
            }
        }
        (ok, failed)
    })
}

#[test]
fn reload_under_load_adds_removes_and_changes_without_losing_a_request_or_a_byte() {
    let h: Vec<Proc> = (1..=3).map(|i| http_backend(i, &[])).collect();
    let s: Vec<Proc> = (1..=2).map(stream_backend).collect();
    let ha: Vec<SocketAddr> = h.iter().map(|p| p.addr).collect();
    let sa: Vec<SocketAddr> = s.iter().map(|p| p.addr).collect();
    let (admin, web, files, api) = (free_addr(), free_addr(), free_addr(), free_addr());
    let dir = temp_dir("reload");
    let file = dir.join("lb.toml");
    let site = Site { admin, web, files, log: dir.join("access.csv") };
    let v1 = site.config(&ha[..2], &sa, "round_robin", "");
    std::fs::write(&file, &v1).unwrap();
    let mut lb = start(&file);
    lb.wait_for_line(&format!("listening on {files}"));

    let stop = Arc::new(AtomicBool::new(false));
    let load = http_load(web, stop.clone());
    let transfer = std::thread::spawn(move || {
        Command::new(example_bin("file_client"))
            .args(["--lb", &files.to_string(), "--size", "32MiB", "--parallel", "2"])
            .output()
            .expect("file_client")
    });

    // v2: backend 3 joins, backend 1 leaves, another policy, a new frontend.
    let api_frontend = format!("[[frontend]]\nname = \"api\"\nbind = \"{api}\"\nmode = \"http\"\npool = \"sites\"\n\n");
    let v2 = site.config(&[ha[1], ha[2]], &sa, "least_requests", &api_frontend);
    std::fs::write(&file, &v2).unwrap();
    let (status, body) = admin_post(admin, "/reload");
    assert_eq!(status, 200, "{body}");
    for change in [
        format!("{} added", ha[2]),
        format!("draining [{}]", ha[0]),
        "policy least_requests".into(),
        format!("frontend api listening on {api}"),
    ] {
        assert!(body.contains(&change), "reload answer lacks {change:?}: {body}");
    }
    assert_eq!(Conn::open(api).get("/").status, 200);

    // An invalid file changes nothing.
    std::fs::write(&file, v2.replace("least_requests", "fastets")).unwrap();
    let (status, body) = admin_post(admin, "/reload");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("fastets"), "{body}");
    lb.signal(libc::SIGHUP);
    lb.wait_for_line("SIGHUP received: reload refused");
    assert_eq!(Conn::open(api).get("/").status, 200, "the api frontend survived the invalid file");

    // After the reload, nothing new reaches the removed backend.
    let mut c = Conn::open(web);
    for _ in 0..100 {
        let r = c.get("/");
        assert_eq!(r.status, 200);
        assert_ne!(r.server(), 1, "the removed backend got a request after the reload");
    }
    let out = transfer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("sha256 verified both ways: OK"), "{stdout}");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 0);
    lb.signal(libc::SIGTERM);
    assert!(lb.wait_exit().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reload_moves_a_frontend_to_another_pool_and_mode_on_its_address_and_a_failing_reload_changes_nothing() {
    let (h1, h2) = (http_backend(1, &[]), http_backend(2, &[]));
    let s3 = stream_backend(3);
    let (web, other, admin) = (free_addr(), free_addr(), free_addr());
    let dir = temp_dir("move");
    let file = dir.join("lb.toml");
    let pools = format!(
        "[[pool]]\nname = \"a\"\nservers = [\"{}\"]\n\n[[pool]]\nname = \"b\"\nservers = [\"{}\"]\n\n\
         [[pool]]\nname = \"c\"\nservers = [\"{}\"]\n",
        h1.addr, h2.addr, s3.addr
    );
    let config = |bind: SocketAddr, mode: &str, pool: &str, extra: &str| {
        format!(
            "[global]\nadmin = \"{admin}\"\nstats_interval = \"0\"\n\n\
             [[frontend]]\nname = \"web\"\nbind = \"{bind}\"\nmode = \"{mode}\"\npool = \"{pool}\"\n{extra}\n{pools}"
        )
    };
    std::fs::write(&file, config(web, "http", "a", "")).unwrap();
    let lb = start(&file);
    assert_eq!(Conn::open(web).get("/").server(), 1);

    // Another pool on the same address: a new frontend takes the listener.
    std::fs::write(&file, config(web, "http", "b", "")).unwrap();
    let (status, body) = admin_post(admin, "/reload");
    assert_eq!(status, 200, "{body}");
    let servers: Vec<u32> = (0..5).map(|_| Conn::open(web).get("/").server()).collect();
    assert_eq!(servers, [2; 5], "requests after the move must reach pool b");

    // Another mode on the same address.
    std::fs::write(&file, config(web, "tcp", "c", "")).unwrap();
    let (status, body) = admin_post(admin, "/reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(who(web), 3);

    // A reload that fails half-way (the access log cannot be opened) leaves
    // the running frontend as it was.
    let bad = config(other, "http", "a", &format!("access_log = \"{}/no/such/dir/x.csv\"", dir.display()));
    std::fs::write(&file, bad).unwrap();
    let (status, body) = admin_post(admin, "/reload");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("access log"), "{body}");
    assert_eq!(who(web), 3, "the frontend must still serve after a refused reload");
    assert!(std::net::TcpStream::connect(other).is_err(), "nothing may listen on the refused address");
    let stats = admin_json(admin, "/stats");
    let accepting: Vec<&Value> =
        stats["frontends"].as_array().unwrap().iter().filter(|f| f["accepting"] == true).collect();
    assert_eq!(accepting.len(), 1, "{stats}");
    assert_eq!(accepting[0]["mode"], "tcp");
    drop(lb);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reload_applies_new_health_checks_to_backends_that_stay() {
    let h1 = http_backend(1, &[]);
    let dead = dead_addr();
    let (web, admin) = (free_addr(), free_addr());
    let dir = temp_dir("health");
    let file = dir.join("lb.toml");
    let config = |checks: &str| {
        format!(
            "[global]\nadmin = \"{admin}\"\nstats_interval = \"0\"\n\n\
             [[frontend]]\nname = \"web\"\nbind = \"{web}\"\nmode = \"http\"\npool = \"p\"\n\n\
             [[pool]]\nname = \"p\"\nservers = [\"{}\", \"{dead}\"]\n{checks}",
            h1.addr
        )
    };
    std::fs::write(&file, config("")).unwrap();
    let lb = start(&file);
    let state = |lb_admin: SocketAddr| -> String {
        let stats = admin_json(lb_admin, "/stats");
        let p = &stats["pools"][0]["backends"];
        let b = p.as_array().unwrap().iter().find(|b| b["address"] == dead.to_string()).expect("dead backend listed");
        b["state"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(state(admin), "up");
    // Checks turned on: the backend that stays is checked and goes down.
    std::fs::write(&file, config("health_check = \"tcp\"\nhealth_interval = \"200ms\"\nfall = 1\n")).unwrap();
    assert_eq!(admin_post(admin, "/reload").0, 200);
    lb.wait_for_line(&format!("backend {dead} DOWN"));
    assert_ne!(state(admin), "up");
    // Checks turned off again: nothing would bring it back, so it is up.
    std::fs::write(&file, config("")).unwrap();
    assert_eq!(admin_post(admin, "/reload").0, 200);
    assert_eq!(state(admin), "up");
    let _ = std::fs::remove_dir_all(&dir);
}
