//! `--config FILE` and `--check` with the real binary: errors exit 2 naming
//! file, line and key; the shipped examples pass `--check`; a one-frontend
//! file serves traffic.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use util::http::Conn;

/// A fresh folder for this test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lbproxy-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(util::lbproxy_bin()).args(args).output().expect("run lbproxy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).expect("write config");
    path.to_str().expect("utf-8 path").to_string()
}

const POOL: &str = "[[pool]]\nname = \"app\"\nservers = [\"127.0.0.1:8001\"]\n";

/// Pool on lines 1-3, frontend "web" on lines 4-7, `extra` from line 8.
fn config(extra: &str) -> String {
    format!("{POOL}[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\npool = \"app\"\n{extra}")
}

#[test]
fn each_error_exits_2_naming_file_line_and_key() {
    let dir = temp_dir("errors");
    let second = "[[frontend]]\nname = \"api\"\nbind = \"127.0.0.1:8080\"\npool = \"app\"\n";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("unknown-key", config("polcy = \"rr\"\n"), "8:1", "polcy"),
        ("bad-duration", config("connect_timeout = \"2\"\n"), "8:19", "connect_timeout"),
        ("bad-size", config("max_header_size = \"1G\"\n"), "8:19", "max_header_size"),
        ("bad-policy", config("policy = \"fastets\"\n"), "8:10", "policy"),
        ("bad-bind", config("").replace("127.0.0.1:8080", "127.0.0.1:http"), "6:8", "bind"),
        ("bad-backend", config("").replace("127.0.0.1:8001", "127.0.0.1:0"), "3:12", "servers[0]"),
        (
            "weight-0",
            config("").replace("[\"127.0.0.1:8001\"]", "[{ address = \"127.0.0.1:1\", weight = 0 }]"),
            "3:48",
            "servers[0].weight",
        ),
        ("duplicate-bind", config(second), "10:8", "bind"),
        ("duplicate-frontend", config(&second.replace("8080", "8081").replace("api", "web")), "9:8", "name"),
        ("duplicate-pool", format!("{}{POOL}", config("")), "9:8", "name"),
        ("unknown-pool", config("").replace("pool = \"app\"", "pool = \"ap\""), "7:8", "pool"),
        ("no-servers", config("").replace("[\"127.0.0.1:8001\"]", "[]"), "3:11", "servers"),
    ];
    for (name, text, place, key) in cases {
        let file = write(&dir.join(format!("{name}.toml")), &text);
        for check in [true, false] {
            let args: &[&str] = if check { &["--check", "--config", &file] } else { &["--config", &file] };
            let (code, out, err) = run(args);
            assert_eq!(code, 2, "{name}: exit {code}, stderr {err}");
            assert!(out.is_empty(), "{name}: printed {out}");
            let want = format!("error: {file}:{place}: ");
            assert!(err.starts_with(&want), "{name}: want {want:?}, got {err}");
            assert!(err.contains(&format!("key \"{key}\"")), "{name}: no key {key}: {err}");
        }
    }
    let (code, _, err) = run(&["--check", "--config", "/nonexistent/lb.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/lb.toml: cannot read the config file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_message_reads_like_the_documented_one() {
    let dir = temp_dir("message");
    let file = write(&dir.join("lbproxy.toml"), &config("policy = \"fastets\"\n"));
    let (_, _, err) = run(&["--config", &file]);
    let want = format!(
        "error: {file}:8:10: frontend \"web\": key \"policy\": unknown policy \"fastets\" (expected one of: round_robin,"
    );
    assert!(err.starts_with(&want), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_passes_every_shipped_example_and_prints_every_frontend_and_pool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/configs") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let (code, out, err) = run(&["--check", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", path.display());
        let text = std::fs::read_to_string(&path).unwrap();
        for section in ["[[frontend]]", "[[pool]]"] {
            let names = names_in(&text, section);
            assert!(!names.is_empty(), "{}: no {section}", path.display());
            assert_eq!(names_in(&out, section), names, "{}: --check output:\n{out}", path.display());
        }
        // Defaults are filled in: keys the example leaves out are printed.
        for key in ["connect_timeout = ", "max_header_size = ", "health_interval = ", "max_connections"] {
            assert!(out.contains(key), "{}: --check lacks {key}:\n{out}", path.display());
        }
    }
    assert!(seen >= 2, "expected the shipped examples in {}", dir.display());
}

#[test]
fn the_readme_example_passes_check() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("### Config file").nth(1).expect("a Config file section");
    let example = section.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("a toml block");
    let dir = temp_dir("readme");
    let file = write(&dir.join("lbproxy.toml"), example);
    let (code, out, err) = run(&["--check", "--config", &file]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names_in(&out, "[[frontend]]"), ["web", "redis"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `name` of each `section` entry, in order.
fn names_in(text: &str, section: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
        } else if let Some(v) = line.strip_prefix("name = ").filter(|_| inside) {
            names.push(v.split('"').nth(1).unwrap_or(v).to_string());
        }
    }
    names
}

#[test]
fn check_without_a_file_prints_the_flags_as_frontend_and_pool_default() {
    let (code, out, err) = run(&["--check", "--backend", "127.0.0.1:8001@2", "--mode", "http", "--port", "9123"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[[frontend]]\nname = \"default\"\nbind = \"0.0.0.0:9123\"\npool = \"default\"\nmode = \"http\"")
    );
    assert!(out.contains("servers = [{ address = \"127.0.0.1:8001\", weight = 2 }]"), "{out}");
}

#[test]
fn config_refuses_other_flags() {
    let (code, _, err) = run(&["--config", "lb.toml", "--port", "9000"]);
    assert_eq!(code, 2);
    assert!(err.contains("'--config <FILE>' cannot be used with '--port <PORT>'"), "{err}");
}

#[test]
fn several_frontends_check_and_start() {
    let dir = temp_dir("several");
    let file =
        write(&dir.join("two.toml"), &config("[[frontend]]\nname = \"api\"\nbind = \"127.0.0.1:0\"\npool = \"app\"\n"));
    let (code, out, _) = run(&["--check", "--config", &file]);
    assert_eq!(code, 0);
    assert_eq!(names_in(&out, "[[frontend]]"), ["web", "api"]);
    // Both start in one process (tests/frontends.rs sends traffic through several).
    let text = format!(
        "{POOL}[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\npool = \"app\"\n\
         [[frontend]]\nname = \"api\"\nbind = \"127.0.0.1:0\"\npool = \"app\"\n"
    );
    let runnable = write(&dir.join("run.toml"), &text);
    let mut cmd = Command::new(util::lbproxy_bin());
    cmd.env("RUST_LOG", "info").args(["--config", &runnable]);
    let proxy = util::spawn_cmd_and_wait(cmd);
    proxy.wait_for_line("frontend web");
    proxy.wait_for_line("frontend api");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_one_frontend_file_serves_traffic() {
    let b1 = util::http_backend(1, &[]);
    let b2 = util::http_backend(2, &[]);
    let dir = temp_dir("serve");
    let text = format!(
        "[global]\nstats_interval = \"0\"\n\n[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\npool = \"app\"\n\
         mode = \"http\"\npolicy = \"rr\"\naccess_log = \"access.csv\"\n\n\
         [[pool]]\nname = \"app\"\nservers = [\"{}\", {{ address = \"{}\", weight = 1 }}]\n",
        b1.addr, b2.addr
    );
    let file = write(&dir.join("lb.toml"), &text);
    let mut cmd = Command::new(util::lbproxy_bin());
    cmd.env("RUST_LOG", "info").args(["--config", &file]);
    let mut proxy = util::spawn_cmd_and_wait(cmd);
    let start = proxy.wait_for_line("listening on");
    assert!(start.contains("mode http") && start.contains("policy round_robin"), "{start}");
    let mut conn = Conn::open(proxy.addr);
    let mut servers: Vec<u32> = (0..4).map(|_| conn.get("/").server()).collect();
    servers.sort_unstable();
    assert_eq!(servers, [1, 1, 2, 2], "round robin over both servers of the pool");
    drop(conn);
    // A clean shutdown flushes the access log.
    proxy.signal(libc::SIGTERM);
    assert!(proxy.wait_exit().success());
    // access_log is relative to the config file's folder.
    let log = std::fs::read_to_string(dir.join("access.csv")).expect("access log beside the config file");
    assert_eq!(log.lines().count(), 5, "a header and four requests: {log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_exposed_admin_without_a_token_is_refused_at_its_line() {
    let dir = temp_dir("admin");
    let file = write(&dir.join("lb.toml"), &config("[global]\nadmin = \"0.0.0.0:9100\"\n"));
    for args in [&["--check", "--config", &file][..], &["--config", &file]] {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.starts_with(&format!("error: {file}:9:9: global: key \"admin\": 0.0.0.0:9100 exposes")), "{err}");
        assert!(err.contains("admin_token_file") && err.contains("admin_insecure = true"), "{err}");
    }
    let file = write(&dir.join("ok.toml"), &config("[global]\nadmin = \"0.0.0.0:9100\"\nadmin_insecure = true\n"));
    let (code, out, err) = run(&["--check", "--config", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("admin_insecure = true"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
