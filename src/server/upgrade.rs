//! Binary upgrade without dropping a connection: the running process hands
//! its listening sockets to a new process over a Unix socket (SCM_RIGHTS, as
//! HAProxy, Envoy, Sōzu and Pingora do). Both processes then hold the same
//! sockets, so a connection waiting in the accept queue is taken by one of
//! them, never refused; once the new process says it is ready, the old one
//! stops accepting, lets its sessions finish and exits.
//!
//! The exchange, on a stream socket at `--upgrade-socket PATH`:
//! 1. new -> old: connect.
//! 2. old -> new: one message: text lines `NAME ADDR` (a frontend's name or
//!    `admin`, and its address), with the listeners' descriptors in the same
//!    order as SCM_RIGHTS ancillary data.
//! 3. new -> old: `ready\n` once it has registered them; the old process
//!    then stops accepting and drains.
//!
//! The old process never waits: it sends the listeners, registers the stream
//! and goes on serving; `ready` arrives as an event (or `READY_WAIT` passes
//! and the handover is abandoned, the old process still serving).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long the old process waits for the new one's `ready`.
pub const READY_WAIT: Duration = Duration::from_secs(5);
/// Most listeners one handover carries.
const MAX_FDS: usize = 253;

/// One listener handed over: what it serves, where, and the socket.
pub struct Handed {
    pub name: String,
    pub addr: SocketAddr,
    pub fd: OwnedFd,
}

/// Old process: send `listeners` (name, address, descriptor) on `stream`
/// (a fresh socket takes this small message whole, without waiting).
pub fn send_listeners(stream: &UnixStream, listeners: &[(String, SocketAddr, RawFd)]) -> io::Result<()> {
    if listeners.len() > MAX_FDS {
        return Err(io::Error::other(format!("{} listeners: at most {MAX_FDS} can be handed over", listeners.len())));
    }
    let text: String = listeners.iter().map(|(name, addr, _)| format!("{name} {addr}\n")).collect();
    let fds: Vec<RawFd> = listeners.iter().map(|(_, _, fd)| *fd).collect();
    send_with_fds(stream, text.as_bytes(), &fds)
}

/// Old process, on a readable event: `Ok(true)` once the new process said
/// `ready`, `Ok(false)` if it has not yet, `Err` if it said something else or left.
pub fn is_ready(stream: &mut impl Read, got: &mut Vec<u8>) -> io::Result<bool> {
    let mut buf = [0u8; 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Err(io::Error::other("the new process left before saying ready")),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() > 64 {
                    return Err(io::Error::other("the new process said too much"));
                }
                if got.ends_with(b"\n") {
                    return match String::from_utf8_lossy(got).trim() {
                        "ready" => Ok(true),
                        other => Err(io::Error::other(format!("the new process answered {other:?} instead of ready"))),
                    };
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// New process: connect to the running one at `path` and take its listeners.
/// The returned stream is for `confirm` once they are in use.
pub fn take_over(path: &Path) -> io::Result<(UnixStream, Vec<Handed>)> {
    let stream = UnixStream::connect(path).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot reach the running lbproxy at {}: {e}", path.display()))
    })?;
    stream.set_read_timeout(Some(READY_WAIT))?;
    let (text, fds) = recv_with_fds(&stream)?;
    let text = String::from_utf8(text).map_err(|_| io::Error::other("handover message is not UTF-8"))?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != fds.len() {
        return Err(io::Error::other(format!("handover named {} listeners but carried {}", lines.len(), fds.len())));
    }
    let mut handed = Vec::new();
    for (line, fd) in lines.into_iter().zip(fds) {
        let (name, addr) = line.rsplit_once(' ').ok_or_else(|| io::Error::other(format!("bad line {line:?}")))?;
        let addr = addr.parse().map_err(|_| io::Error::other(format!("bad address in {line:?}")))?;
        handed.push(Handed { name: name.to_string(), addr, fd });
    }
    Ok((stream, handed))
}

/// The socket a later process will ask on, bound at `PATH.new` with mode
/// 0600 (only this user may take the listeners); `publish` moves it to PATH.
pub fn listen(path: &Path) -> io::Result<mio::net::UnixListener> {
    let staged = staged(path);
    let _ = std::fs::remove_file(&staged);
    let l = mio::net::UnixListener::bind(&staged)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", staged.display())))?;
    std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(l)
}

/// Put the socket bound by `listen` in place at `path` (an atomic rename:
/// the path always names one process's socket).
pub fn publish(path: &Path) -> io::Result<()> {
    std::fs::rename(staged(path), path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot move the upgrade socket to {}: {e}", path.display())))
}

fn staged(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".new");
    p.into()
}

/// New process: tell the old one its listeners are in use here now.
pub fn confirm(mut stream: UnixStream) -> io::Result<()> {
    stream.write_all(b"ready\n")
}

fn send_with_fds(stream: &UnixStream, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u8; space.max(1)];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: a zeroed msghdr is a valid empty header; the fields set below
    // point into `iov` and `control`, which outlive the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer holds CMSG_SPACE(fd_bytes) bytes, so the
        // first header and its data (fd_bytes) fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(cmsg), fd_bytes);
        }
    }
    // SAFETY: `msg` is fully initialised above; the socket is ours.
    let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != data.len() {
        return Err(io::Error::other("handover message sent in part"));
    }
    Ok(())
}

fn recv_with_fds(stream: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut data = vec![0u8; 64 * 1024];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: as in send_with_fds; the buffers outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at buffers we own; MSG_CMSG_CLOEXEC keeps the
    // received descriptors out of processes we spawn.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    data.truncate(n as usize);
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote, within
    // msg_controllen; each SCM_RIGHTS payload is an array of descriptors now
    // owned by this process.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = payload / std::mem::size_of::<RawFd>();
                let first = libc::CMSG_DATA(cmsg) as *const RawFd;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(first.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("handover descriptors were truncated"));
    }
    Ok((data, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn listeners_cross_a_unix_socket_and_still_accept() {
        let (old, new) = UnixStream::pair().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        send_listeners(&old, &[("web".into(), addr, l.as_raw_fd())]).unwrap();
        let (text, fds) = recv_with_fds(&new).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), format!("web {addr}\n"));
        assert_eq!(fds.len(), 1);
        old.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        assert!(!is_ready(&mut &old, &mut got).unwrap(), "nothing said yet");
        confirm(new).unwrap();
        assert!(is_ready(&mut &old, &mut got).unwrap());
        let taken = TcpListener::from(fds.into_iter().next().unwrap());
        assert_eq!(taken.local_addr().unwrap(), addr);
        let _c = std::net::TcpStream::connect(addr).unwrap();
        assert!(taken.accept().is_ok());
    }
}
