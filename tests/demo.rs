//! tools/demo.sh fails loudly when its port is taken: a non-zero exit and a
//! message naming the port, before it builds anything.

use std::net::TcpListener;
use std::process::Command;

#[test]
fn the_demo_fails_loudly_when_its_port_is_taken() {
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().unwrap().port().to_string();
    let out = Command::new("bash")
        .args(["tools/demo.sh", "--once"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PORT", &port)
        .output()
        .expect("run bash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout: {}\nstderr: {err}", String::from_utf8_lossy(&out.stdout));
    assert!(err.contains(&format!("error: port {port} on 127.0.0.1 is taken")), "{err}");
    assert!(err.contains("PORT="), "the message says how to pick another port: {err}");
    drop(held);
}
