//! SNI routing in TCP mode (issue 11 item 2): the pool is chosen by the
//! server name in the TLS ClientHello, peeked and never consumed, so TLS
//! runs end to end from the client to the backend. The backends are HAProxy
//! terminating TLS (a.test's or b.test's certificate) and saying which pool
//! they are; the clients are curl and openssl s_client.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use util::peers::{Peer, haproxy};
use util::pki::{Pki, pki};
use util::*;

/// One HAProxy with three TLS frontends: pool A (a.test's certificate),
/// pool B (b.test's) and the default pool (a.test's), each answering its name.
fn tls_backends(p: &Pki) -> (Peer, [SocketAddr; 3]) {
    let combined = |n: &str| {
        let path = p.dir.join(format!("{n}.combined.pem"));
        let mut pem = std::fs::read(p.dir.join(format!("{n}.pem"))).unwrap();
        pem.extend(std::fs::read(p.dir.join(format!("{n}.key"))).unwrap());
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let (a, b) = (combined("a.test"), combined("b.test"));
    let ports = [quiet_port(), quiet_port(), quiet_port()];
    let mut cfg =
        String::from("defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n");
    for (port, (cert, name)) in ports.iter().zip([(&a, "A"), (&b, "B"), (&a, "default")]) {
        cfg += &format!(
            "frontend f{name}\n  bind 127.0.0.1:{port} ssl crt {cert}\n  \
             http-request return status 200 content-type text/plain lf-string \"pool={name}\\n\"\n"
        );
    }
    let peer = haproxy("sni", &cfg, &ports);
    (peer, ports.map(|port| SocketAddr::from(([127, 0, 0, 1], port))))
}

fn config(backends: &[SocketAddr; 3], a_pool: &str, admin: SocketAddr) -> String {
    format!(
        "[global]\nstats_interval = \"0\"\nadmin = \"{admin}\"\n\
         [[frontend]]\nname = \"edge\"\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\npool = \"fallback\"\n\
         sni_routes = [{{ names = [\"a.test\"], pool = \"{a_pool}\" }}, {{ names = [\"b.test\", \"*.b.test\"], pool = \"pb\" }}]\n\
         [[pool]]\nname = \"pa\"\nservers = [\"{}\"]\n\
         [[pool]]\nname = \"pb\"\nservers = [\"{}\"]\n\
         [[pool]]\nname = \"fallback\"\nservers = [\"{}\"]\n",
        backends[0], backends[1], backends[2]
    )
}

/// The body openssl s_client gets over TLS through `proxy` asking for `name`
/// (none: no SNI at all), without checking the certificate.
fn s_client(proxy: SocketAddr, name: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-ign_eof", "-connect", &proxy.to_string()]);
    match name {
        Some(n) => cmd.args(["-servername", n]),
        None => cmd.arg("-noservername"),
    };
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("openssl");
    child.stdin.take().unwrap().write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let out = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
    out.lines().find(|l| l.starts_with("pool=")).unwrap_or("(no answer)").to_string()
}

#[test]
fn the_client_hello_picks_the_pool_and_tls_goes_through_to_the_backend() {
    let p = pki("sni");
    let (_haproxy, backends) = tls_backends(&p);
    let admin = dead_addr();
    let file = p.dir.join("lb.toml");
    std::fs::write(&file, config(&backends, "pa", admin)).unwrap();
    let mut cmd = Command::new(lbproxy_bin());
    cmd.env("RUST_LOG", "info").arg("--config").arg(&file);
    let lb = spawn_cmd_and_wait(cmd);

    // curl checks the backend's certificate against the CA: TLS is end to end.
    for (name, want) in [("a.test", "pool=A\n"), ("b.test", "pool=B\n")] {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(p.dir.join("ca.pem"))
            .args(["--resolve", &format!("{name}:{}:127.0.0.1", lb.addr.port())])
            .arg(format!("https://{name}:{}/", lb.addr.port()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(s_client(lb.addr, Some("x.b.test")), "pool=B", "wildcard");
    assert_eq!(s_client(lb.addr, Some("c.test")), "pool=default", "a name no route has");
    assert_eq!(s_client(lb.addr, None), "pool=default", "no SNI");
    // Not TLS, and a ClientHello cut short: the default pool or a close, and still serving.
    let mut plain = connect(lb.addr);
    plain.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
    let _ = plain.read_to_end(&mut Vec::new());
    let mut cut = connect(lb.addr);
    cut.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01]).unwrap();
    drop(cut);
    assert_eq!(s_client(lb.addr, Some("a.test")), "pool=A");
    let stats = admin_stats(admin);
    let names: Vec<&str> = stats["frontends"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names, ["edge", "edge/sni0", "edge/sni1"]);

    // Reload: a.test now goes to pool B.
    std::fs::write(&file, config(&backends, "pb", admin)).unwrap();
    lb.signal(libc::SIGHUP);
    lb.wait_for_line("reloaded");
    assert_eq!(s_client(lb.addr, Some("a.test")), "pool=B");
    assert_eq!(s_client(lb.addr, Some("b.test")), "pool=B");
    assert_eq!(s_client(lb.addr, None), "pool=default");
}
