//! Command-line handling of the real binary: bad values exit 2 naming the flag.

mod util;

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(util::lbproxy_bin()).args(args).output().expect("run lbproxy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_values_exit_2_and_name_flag_and_value() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--backend", "foo:bar"], "--backend", "invalid backend address \"foo:bar\""),
        (&["--backend", "127.0.0.1"], "--backend", "\"127.0.0.1\""),
        (&["--backend", "127.0.0.1:1", "--policy", "fastest"], "--policy", "\"fastest\""),
        (&["--backend", "127.0.0.1:1", "--connect-timeout", "2"], "--connect-timeout", "missing unit"),
        (&["--backend", "127.0.0.1:1", "--buffer-size", "1G"], "--buffer-size", "\"1G\""),
        (&["--backend", "127.0.0.1:1", "--port", "70000"], "--port", "70000"),
        (&["--backend", "127.0.0.1:1", "--max-connections", "0"], "--max-connections", "0"),
        (&["--backend", "127.0.0.1:1", "--retry-budget", "150%"], "--retry-budget", "\"150%\""),
        (&["--backend", "127.0.0.1:1", "--eject-max-percent", "x"], "--eject-max-percent", "\"x\""),
        (&["--backend", "127.0.0.1:1", "--splice", "always"], "--splice", "invalid splice mode \"always\""),
        (&[], "--backend", "required"),
    ];
    for (args, flag, detail) in cases {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: exit {code}, stderr {err}");
        assert!(err.contains(flag), "{args:?}: stderr does not name {flag}: {err}");
        assert!(err.contains(detail), "{args:?}: stderr lacks {detail:?}: {err}");
    }
}

#[test]
fn help_lists_every_flag_with_defaults() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--policy",
        "--port",
        "--bind",
        "--backend",
        "--connect-timeout",
        "--idle-timeout",
        "--max-connections",
        "--buffer-size",
        "--stats-interval",
        "--drain-timeout",
        "--splice",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
    assert!(out.contains("[default: round_robin]") && out.contains("[default: 2s]"), "{out}");
    assert!(out.contains("splice(2)") && out.contains("[default: auto]"), "{out}");
}

#[test]
fn version_prints_the_crate_version() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn port_in_use_fails_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(&["--bind", "127.0.0.1", "--port", &port, "--backend", "127.0.0.1:1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
}

/// `GET /stats` on the admin API with an optional token; the status code.
fn admin_status(admin: std::net::SocketAddr, token: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let mut s = util::connect(admin);
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET /stats HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status")
}

/// lbproxy with `extra` flags (and `env`), once it listens; the admin API's
/// address as 127.0.0.1:PORT (it may listen on 0.0.0.0).
fn proxy_with_admin(extra: &[&str], env: &[(&str, &str)]) -> (util::Proc, std::net::SocketAddr) {
    let mut cmd = Command::new(util::lbproxy_bin());
    cmd.env("RUST_LOG", "info").env_remove("LBPROXY_ADMIN_TOKEN").envs(env.iter().copied());
    cmd.args(["--bind", "127.0.0.1", "--port", "0", "--backend", "127.0.0.1:1", "--stats-interval", "0"]).args(extra);
    let proxy = util::spawn_cmd_and_wait(cmd);
    let line = proxy.wait_for_line("admin API on http://");
    let addr: std::net::SocketAddr =
        line.split("http://").nth(1).and_then(|r| r.split('/').next()).expect("admin addr").parse().unwrap();
    (proxy, std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())))
}

#[test]
fn an_exposed_admin_without_a_token_is_refused() {
    let out = Command::new(util::lbproxy_bin())
        .env_remove("LBPROXY_ADMIN_TOKEN")
        .args(["--backend", "127.0.0.1:1", "--admin", "0.0.0.0:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: --admin 0.0.0.0:0 exposes the admin API"), "{err}");
    for named in ["--admin-token", "--admin-token-file", "LBPROXY_ADMIN_TOKEN", "--admin-insecure"] {
        assert!(err.contains(named), "stderr does not name {named}: {err}");
    }
}

#[test]
fn admin_insecure_starts_and_warns() {
    let (proxy, admin) = proxy_with_admin(&["--admin", "0.0.0.0:0", "--admin-insecure"], &[]);
    let warning = proxy.wait_for_line("without a token (admin insecure)");
    assert!(warning.contains("WARN") && warning.contains("0.0.0.0:0"), "{warning}");
    assert_eq!(admin_status(admin, None), 200);
}

#[test]
fn admin_token_from_a_file_or_the_environment() {
    let dir = std::env::temp_dir().join(format!("lbproxy-cli-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "from-file\n").unwrap();
    // A token makes an address beyond loopback acceptable, without a warning.
    let (proxy, admin) = proxy_with_admin(&["--admin", "0.0.0.0:0", "--admin-token-file", file.to_str().unwrap()], &[]);
    assert_eq!(admin_status(admin, None), 401);
    assert_eq!(admin_status(admin, Some("wrong")), 401);
    assert_eq!(admin_status(admin, Some("from-file")), 200);
    assert!(!proxy.log.lock().unwrap().iter().any(|l| l.contains("admin insecure")), "{:?}", proxy.log.lock().unwrap());
    drop(proxy);

    let (_proxy, admin) = proxy_with_admin(&["--admin", "0"], &[("LBPROXY_ADMIN_TOKEN", "from-env")]);
    assert_eq!(admin_status(admin, None), 401);
    assert_eq!(admin_status(admin, Some("from-env")), 200);

    // An empty or unreadable file is an error naming the flag.
    std::fs::write(&file, " \n").unwrap();
    let (code, _, err) = run(&["--backend", "127.0.0.1:1", "--admin-token-file", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--admin-token-file") && err.contains("empty"), "{err}");
    let (code, _, err) = run(&["--backend", "127.0.0.1:1", "--admin-token-file", "/nonexistent/token"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--admin-token-file: cannot read /nonexistent/token"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
