//! A throwaway PKI for TLS tests: a CA and certificates for a.test and
//! b.test, made with the openssl command line.

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Pki {
    pub dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A CA and certificates for a.test and b.test, with openssl.
pub fn pki(tag: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("lbproxy-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = |f: &str| dir.join(f);
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=lbproxy test CA", "-keyout"])
        .arg(d("ca.key"))
        .arg("-out")
        .arg(d("ca.pem")));
    for name in ["a.test", "b.test"] {
        run(Command::new("openssl")
            .args(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
            .args(["-subj", &format!("/CN={name}"), "-keyout"])
            .arg(d(&format!("{name}.key")))
            .arg("-out")
            .arg(d(&format!("{name}.csr"))));
        std::fs::write(d(&format!("{name}.ext")), format!("subjectAltName=DNS:{name}\n")).unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(d(&format!("{name}.csr")))
            .arg("-CA")
            .arg(d("ca.pem"))
            .arg("-CAkey")
            .arg(d("ca.key"))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(d(&format!("{name}.ext")))
            .arg("-out")
            .arg(d(&format!("{name}.pem"))));
    }
    Pki { dir }
}
