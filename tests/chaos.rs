//! The chaos run (tools/chaos.sh), short: real lbproxy, backends and clients
//! on loopback while faults are injected; the script's verdict is the
//! assertion (no silent corruption, no leaked buffer or descriptor, lbproxy
//! alive; with only reloads and upgrades, no failure at all).

mod util;

use std::path::Path;
use std::process::Command;

fn chaos(faults: &str, secs: u32) -> String {
    chaos_with(faults, secs, 1, "exclusive")
}

fn chaos_with(faults: &str, secs: u32, workers: u32, accept: &str) -> String {
    let bin_dir = util::lbproxy_bin().parent().expect("bin dir").to_path_buf();
    let out = tempdir(&format!("{faults}-{workers}-{accept}"));
    let run = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/chaos.sh"))
        .arg(secs.to_string())
        .env("BIN_DIR", &bin_dir)
        .env("SIZE", "2MiB")
        .env("FAULTS", faults)
        .env("LB_WORKERS", workers.to_string())
        .env("LB_ACCEPT", accept)
        .env("OUT", &out)
        .output()
        .expect("run tools/chaos.sh");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    assert!(
        run.status.success(),
        "chaos run with {faults} failed:\n{}\n{}\n{report}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let _ = std::fs::remove_dir_all(&out);
    report
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lbproxy-chaos-{}-{}", std::process::id(), tag.replace(' ', "-")));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn backend_faults_reloads_and_upgrades_corrupt_nothing_and_leak_nothing() {
    let report = chaos("kill slow reset reload upgrade", 15);
    assert!(report.contains("Verdict: **PASS**"), "{report}");
    assert!(report.contains("| 0 |\n| client sessions"), "corrupted transfers: {report}");
}

#[test]
fn reloads_and_upgrades_under_load_fail_no_transfer_and_no_session() {
    let report = chaos("reload upgrade", 12);
    assert!(report.contains("Verdict: **PASS**"), "{report}");
    assert!(report.contains("every transfer and session had to complete"), "{report}");
}

#[test]
fn with_two_workers_reloads_and_upgrades_fail_no_transfer_and_no_session() {
    let report = chaos_with("reload upgrade", 12, 2, "exclusive");
    assert!(report.contains("LB_WORKERS=2"), "{report}");
    assert!(report.contains("Verdict: **PASS**"), "{report}");
    assert!(report.contains("every transfer and session had to complete"), "{report}");
}

#[test]
fn with_a_socket_per_worker_reloads_and_upgrades_fail_no_transfer_and_no_session() {
    let report = chaos_with("reload upgrade", 12, 2, "reuseport");
    assert!(report.contains("LB_WORKERS=2 LB_ACCEPT=reuseport"), "{report}");
    assert!(report.contains("Verdict: **PASS**"), "{report}");
    assert!(report.contains("every transfer and session had to complete"), "{report}");
}
