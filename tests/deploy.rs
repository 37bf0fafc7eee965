//! The files a deployment needs: the systemd unit verifies and starts
//! lbproxy the way the README says; the example config it names passes `--check`.

mod util;

use std::path::Path;
use std::process::Command;

fn deploy(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(name)
}

/// `systemd-analyze verify` accepts the unit without a warning. It checks that
/// ExecStart's binary exists, so the copy it checks starts the binary under test
/// instead of /usr/local/bin/lbproxy; `--man=no` as the man page is not installed here.
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy("lbproxy.service")).expect("deploy/lbproxy.service");
    let exec = "ExecStart=/usr/local/bin/lbproxy --config /etc/lbproxy/lbproxy.toml\n";
    for line in [exec, "ExecReload=/bin/kill -HUP $MAINPID\n", "Restart=on-failure\n", "NoNewPrivileges=yes\n"] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        println!("skipped: systemd-analyze is not installed, the unit is not verified");
        return;
    }
    let dir = std::env::temp_dir().join(format!("lbproxy-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("lbproxy.service");
    let bin = util::lbproxy_bin();
    std::fs::write(&copy, unit.replace("/usr/local/bin/lbproxy", bin.to_str().unwrap())).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify: {}\n{err}", out.status);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_deploy_config_passes_check() {
    let out =
        Command::new(util::lbproxy_bin()).args(["--check", "--config"]).arg(deploy("lbproxy.toml")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
