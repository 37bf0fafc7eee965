//! TLS termination (issue 11 item 1) with peers no one here wrote: curl and
//! openssl s_client against an HTTP frontend holding two certificates (for
//! a.test and b.test, signed by a CA the test makes with openssl), chosen
//! by SNI.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use util::peers::{Peer, haproxy};
use util::pki::{Pki, pki};
use util::*;

fn tls_proxy(p: &Pki, backend: std::net::SocketAddr) -> Proc {
    let f = |n: &str| p.dir.join(n).display().to_string();
    let (ca, ak, bc, bk) = (f("a.test.pem"), f("a.test.key"), f("b.test.pem"), f("b.test.key"));
    lbproxy(
        "round_robin",
        &[backend],
        &["--mode", "http", "--tls-cert", &ca, "--tls-key", &ak, "--tls-cert", &bc, "--tls-key", &bk],
    )
}

/// curl over TLS to `name` (resolved to the proxy), verifying against the test CA.
fn curl(p: &Pki, proxy: std::net::SocketAddr, name: &str, paths: &[&str], extra: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "--cacert"])
        .arg(p.dir.join("ca.pem"))
        .args(["--resolve", &format!("{name}:{}:127.0.0.1", proxy.port())])
        .args(extra);
    for path in paths {
        cmd.arg(format!("https://{name}:{}{path}", proxy.port()));
    }
    cmd.output().expect("curl")
}

fn subject_seen_by_openssl(p: &Pki, proxy: std::net::SocketAddr, name: &str) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-ign_eof",
            "-connect",
            &proxy.to_string(),
            "-servername",
            name,
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(p.dir.join("ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    child.stdin.take().unwrap().write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Hello from server 1"), "no answer over TLS: {text}");
    text.lines().find(|l| l.starts_with("subject=")).unwrap_or_default().to_string()
}

#[test]
fn curl_and_openssl_get_the_certificate_their_sni_asks_for_and_an_answer() {
    let p = pki("sni");
    let b = http_backend(1, &[]);
    let lb = tls_proxy(&p, b.addr);
    for name in ["a.test", "b.test"] {
        let out = curl(&p, lb.addr, name, &["/"], &[]);
        assert!(out.status.success(), "curl {name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello from server 1");
        assert!(subject_seen_by_openssl(&p, lb.addr, name).contains(&format!("CN = {name}")), "{name}");
    }
    // Keep-alive: three requests, one TLS connection; the backend is told https.
    let out = curl(&p, lb.addr, "a.test", &["/", "/headers", "/"], &["-w", "[connects=%{num_connects}]"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.matches("[connects=1]").count() + text.matches("[connects=0]").count(), 3, "{text}");
    assert_eq!(text.matches("[connects=1]").count(), 1, "curl opened more than one connection: {text}");
    assert!(text.contains("X-Forwarded-Proto: https"), "{text}");
}

#[test]
fn a_256_mib_download_over_tls_is_byte_exact() {
    let p = pki("bulk");
    let b = http_backend(1, &[]);
    let lb = tls_proxy(&p, b.addr);
    let size: u64 = 256 << 20;
    let file = p.dir.join("download.bin");
    let out =
        curl(&p, lb.addr, "a.test", &[&format!("/bytes?size={size}&seed=9")], &["-o", &file.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256_file(&file), pattern_sha256(9, size));
    let hwm = lb.status_kib("VmHWM");
    assert!(hwm < 64 * 1024, "proxy peak RSS {hwm} KiB for a 256 MiB TLS download");
}

fn sha256_file(path: &Path) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().to_vec()
}

#[test]
fn garbage_and_a_stalled_handshake_leave_the_proxy_serving() {
    let p = pki("bad");
    let b = http_backend(1, &[]);
    let lb = tls_proxy(&p, b.addr);
    // Plain HTTP at a TLS port: refused by TLS, connection closed.
    let mut plain = connect(lb.addr);
    plain.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("Hello"), "plain HTTP was answered on the TLS port");
    // Random bytes.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20 {
        let mut s = connect(lb.addr);
        let junk: Vec<u8> = (0..512).map(|_| rng.next() as u8).collect();
        let _ = s.write_all(&junk);
        let _ = s.read_to_end(&mut Vec::new());
    }
    // A client that starts a handshake and stops: held open while others are served.
    let mut stalled = TcpStream::connect(lb.addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).unwrap();
    let out = curl(&p, lb.addr, "b.test", &["/"], &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello from server 1", "{}", String::from_utf8_lossy(&out.stderr));
    drop(stalled);
    assert!(lb.log.lock().unwrap().iter().all(|l| !l.contains("panicked")));
}

#[test]
fn a_64_mib_upload_over_tls_arrives_whole() {
    let p = pki("upload");
    let b = http_backend(1, &[]);
    let lb = tls_proxy(&p, b.addr);
    let size: u64 = 64 << 20;
    let file = p.dir.join("upload.bin");
    {
        let mut f = std::fs::File::create(&file).unwrap();
        let mut pat = Pattern::new(3);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..(size >> 20) {
            pat.fill(&mut buf);
            f.write_all(&buf).unwrap();
        }
    }
    let data = format!("@{}", file.display());
    let out = curl(
        &p,
        lb.addr,
        "a.test",
        &["/upload"],
        &["--data-binary", &data, "-H", "Content-Type: application/octet-stream"],
    );
    let want: String = pattern_sha256(3, size).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("sha256 {want} {size}\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A rustls client trusting the test CA at `ca`, connected to `addr` as `name`.
fn tls_client(
    ca: &Path,
    name: &str,
    addr: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// One GET on a kept-alive TLS stream; the body of a Content-Length answer.
fn get_over(s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> Result<String, String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).map_err(|e| e.to_string())?;
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let len: usize = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
        .ok_or("no Content-Length")?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn certificates_reload_with_sighup_and_open_tls_sessions_go_on() {
    let p = pki("reload");
    let b = http_backend(1, &[]);
    let conf = p.dir.join("lb.toml");
    let write_conf = |cert: &str| {
        let text = format!(
            "[global]\nstats_interval = \"0\"\n[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\npool = \"app\"\n\
             mode = \"http\"\ntls = [{{ cert = \"{cert}.pem\", key = \"{cert}.key\" }}]\n\
             [[pool]]\nname = \"app\"\nservers = [\"{}\"]\n",
            b.addr
        );
        std::fs::write(&conf, text).unwrap();
    };
    write_conf("a.test");
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info").arg("--config").arg(&conf);
    let lb = spawn_cmd_and_wait(cmd);
    let ca = p.dir.join("ca.pem");
    let mut open = tls_client(&ca, "a.test", lb.addr);
    assert_eq!(get_over(&mut open).unwrap(), "Hello from server 1");
    // The frontend now serves b.test's certificate only.
    write_conf("b.test");
    lb.signal(libc::SIGHUP);
    lb.wait_for_line("reloaded");
    let mut fresh_b = tls_client(&ca, "b.test", lb.addr);
    assert_eq!(get_over(&mut fresh_b).unwrap(), "Hello from server 1");
    let mut fresh_a = tls_client(&ca, "a.test", lb.addr);
    let refused = get_over(&mut fresh_a).unwrap_err();
    assert!(refused.contains("certificate") || refused.contains("NotValidForName"), "{refused}");
    // The session opened before the reload keeps its connection and certificate.
    assert_eq!(get_over(&mut open).unwrap(), "Hello from server 1");
    // A certificate file that does not parse refuses the reload and changes nothing.
    std::fs::write(p.dir.join("b.test.pem"), "not a certificate").unwrap();
    lb.signal(libc::SIGHUP);
    lb.wait_for_line("reload refused");
    let mut after = tls_client(&ca, "b.test", lb.addr);
    assert_eq!(get_over(&mut after).unwrap(), "Hello from server 1");
}

/// HAProxy as a TLS backend with a.test's certificate, answering with the
/// SNI and protocol it saw.
fn haproxy_tls_backend(p: &Pki) -> (Peer, std::net::SocketAddr) {
    let combined = p.dir.join("a.test.combined.pem");
    let mut pem = std::fs::read(p.dir.join("a.test.pem")).unwrap();
    pem.extend(std::fs::read(p.dir.join("a.test.key")).unwrap());
    std::fs::write(&combined, pem).unwrap();
    let port = quiet_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend f\n  bind 127.0.0.1:{port} ssl crt {}\n\
             http-request return status 200 content-type text/plain lf-string \"sni=%[ssl_fc_sni] tls=%[ssl_fc]\\n\"\n",
        combined.display()
    );
    let peer = haproxy("tls-backend", &cfg, &[port]);
    (peer, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn backend_tls_verifies_against_the_ca_file_or_explicitly_not() {
    let p = pki("backend");
    let (_haproxy, backend) = haproxy_tls_backend(&p);
    let ca = p.dir.join("ca.pem").display().to_string();
    let body = |lb: &Proc| util::http::Conn::open(lb.addr).get("/");
    // verify, for the name on the certificate: served over TLS, SNI sent.
    let lb = lbproxy(
        "round_robin",
        &[backend],
        &["--mode", "http", "--backend-tls", "verify", "--backend-ca", &ca, "--backend-sni", "a.test"],
    );
    let r = body(&lb);
    assert_eq!((r.status, r.text()), (200, "sni=a.test tls=1\n".to_string()));
    // verify, for a name the certificate does not cover: refused, 502.
    let wrong = lbproxy(
        "round_robin",
        &[backend],
        &["--mode", "http", "--backend-tls", "verify", "--backend-ca", &ca, "--backend-sni", "b.test"],
    );
    assert_eq!(body(&wrong).status, 502);
    // verify against another CA (b.test's certificate as the only root): 502.
    let other_ca = p.dir.join("b.test.pem").display().to_string();
    let untrusted = lbproxy(
        "round_robin",
        &[backend],
        &["--mode", "http", "--backend-tls", "verify", "--backend-ca", &other_ca, "--backend-sni", "a.test"],
    );
    assert_eq!(body(&untrusted).status, 502);
    // insecure: encrypted, certificate unchecked; keep-alive reuses the TLS connection.
    let insecure = lbproxy("round_robin", &[backend], &["--mode", "http", "--backend-tls", "insecure"]);
    let mut c = util::http::Conn::open(insecure.addr);
    for _ in 0..5 {
        let r = c.get("/");
        assert_eq!((r.status, r.text()), (200, "sni= tls=1\n".to_string()));
    }
}
