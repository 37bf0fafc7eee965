//! Backends that lbproxy starts itself (`--spawn-cmd`), for `/add` with more
//! replicas than hostnames and for `--replicas N` failure recovery.
//!
//! The template runs under `sh -c 'exec TEMPLATE'` with `{port}` and `{id}`
//! replaced, so the pid we hold is the backend's own and stopping it is one
//! signal. Children are stopped when lbproxy exits, and get SIGTERM from
//! the kernel if lbproxy dies without exiting.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

use log::{info, warn};

struct Spawned {
    id: u32,
    addr: SocketAddr,
    child: Child,
}

pub struct Spawner {
    template: String,
    children: Vec<Spawned>,
    next_id: u32,
}

impl Spawner {
    pub fn new(template: String) -> Spawner {
        Spawner { template, children: Vec::new(), next_id: 1 }
    }

    /// Start one backend on a free loopback port; returns its address.
    pub fn spawn(&mut self) -> io::Result<SocketAddr> {
        // Ask the kernel for a free port; the child binds it right after.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let id = self.next_id;
        self.next_id += 1;
        let cmd = self.template.replace("{port}", &port.to_string()).replace("{id}", &id.to_string());
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!("exec {cmd}")).stdin(Stdio::null()).stdout(Stdio::null());
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl(2), which is async-signal-safe. It asks the kernel to
        // send SIGTERM to the backend if lbproxy dies, even by SIGKILL, so no
        // spawned backend outlives its balancer.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        let child =
            command.spawn().map_err(|e| io::Error::new(e.kind(), format!("cannot run --spawn-cmd \"{cmd}\": {e}")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        info!("spawned backend {id} at {addr} (pid {}): {cmd}", child.id());
        self.children.push(Spawned { id, addr, child });
        Ok(addr)
    }

    /// Stop the backend spawned at `addr`, if it is ours.
    pub fn stop(&mut self, addr: SocketAddr) {
        if let Some(pos) = self.children.iter().position(|c| c.addr == addr) {
            let mut c = self.children.swap_remove(pos);
            let _ = c.child.kill();
            let _ = c.child.wait();
            info!("stopped spawned backend {} at {addr}", c.id);
        }
    }

    /// Spawned backends that exited by themselves since the last call.
    pub fn reap(&mut self) -> Vec<(SocketAddr, ExitStatus)> {
        let mut gone = Vec::new();
        self.children.retain_mut(|c| match c.child.try_wait() {
            Ok(Some(status)) => {
                warn!("spawned backend {} at {} exited: {status}", c.id, c.addr);
                gone.push((c.addr, status));
                false
            }
            _ => true,
        });
        gone
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
    }
}
