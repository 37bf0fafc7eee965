//! Peers no one here wrote (HAProxy, nginx), started from a config text in
//! a scratch folder and killed when dropped.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;

pub struct Peer {
    child: Child,
    /// The scratch folder: the config, and whatever the peer writes.
    pub dir: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Until every port in `ports` on 127.0.0.1 accepts a connection.
pub fn wait_ports(what: &str, ports: &[u16]) {
    let deadline = Instant::now() + PATIENCE;
    for &port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{what} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn scratch(tool: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lbproxy-{tool}-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// HAProxy in the foreground with `config`, ready once `ports` listen.
pub fn haproxy(tag: &str, config: &str, ports: &[u16]) -> Peer {
    let dir = scratch("haproxy", tag);
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, config).expect("haproxy config");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (apt-get install haproxy)");
    wait_ports("haproxy", ports);
    Peer { child, dir }
}

/// nginx in the foreground with the `http { ... }` block `http`, its
/// temporary files and pid in its scratch folder, ready once `port` listens.
pub fn nginx(tag: &str, http: &str, port: u16) -> Peer {
    let dir = scratch("nginx", tag);
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n  fastcgi_temp_path {d};\n\
               uwsgi_temp_path {d};\n  scgi_temp_path {d};\n{http}\n}}\n"
        ),
    )
    .expect("nginx config");
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (apt-get install nginx)");
    wait_ports("nginx", &[port]);
    Peer { child, dir }
}
