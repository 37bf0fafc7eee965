//! A network namespace of its own for a test (root only), with loopback up
//! and, optionally, its own resolv.conf: `ip netns exec` bind-mounts
//! `/etc/netns/NAME/resolv.conf` over /etc/resolv.conf for what it runs, so
//! the machine's own is never touched.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// Deleted (with its /etc/netns folder) when dropped.
pub struct Netns {
    pub name: String,
}

/// Whether this process may make namespaces. When not, a test says so and
/// is skipped, except under CI (which runs as root), where it fails.
pub fn available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and no memory effects.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test} needs root (ip netns) and CI runs as root");
    eprintln!("SKIPPED {test}: needs root to make a network namespace");
    false
}

impl Netns {
    /// `lbp-TAG-PID`, loopback up, `resolv_conf` (if any) as its resolv.conf.
    pub fn new(tag: &str, resolv_conf: Option<&str>) -> Netns {
        let name = format!("lbp-{tag}-{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        if let Some(text) = resolv_conf {
            fs::create_dir_all(ns.etc()).expect("mkdir /etc/netns/NAME");
            fs::write(ns.etc().join("resolv.conf"), text).expect("write resolv.conf");
        }
        run(&mut ns.command("ip", &["link", "set", "lo", "up"]));
        ns
    }

    fn etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// `program args` to run inside.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).args(args);
        c
    }

    /// Move the calling thread into the namespace (sockets it opens then
    /// live there); other threads stay where they are.
    pub fn enter_this_thread(&self) {
        let f = fs::File::open(format!("/run/netns/{}", self.name)).expect("open netns");
        // SAFETY: setns on a descriptor we own; it changes only this thread's namespace.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {}: {}", self.name, std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = fs::remove_dir_all(self.etc());
    }
}

fn run(c: &mut Command) {
    let st = c.status().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(st.success(), "{c:?} failed: {st}");
}
