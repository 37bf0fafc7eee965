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
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
    assert!(out.contains("[default: round_robin]") && out.contains("[default: 2s]"), "{out}");
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
