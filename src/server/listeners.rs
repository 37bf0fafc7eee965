//! Listening sockets: binding, taking them over (binary upgrade) or from
//! the main reactor (workers), and registering them with a poll.
//!
//! With several workers every reactor registers the same listening socket
//! (each its own descriptor of it) with `EPOLLEXCLUSIVE`, so a new
//! connection wakes one reactor instead of all of them. One socket per
//! frontend (not one per worker with SO_REUSEPORT) keeps reload and binary
//! upgrade as they are: there is one queue of waiting clients per address,
//! nothing queued behind a worker's own socket is lost when that worker
//! stops, and a new process takes the same socket over.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::upgrade;

/// The listeners of a process serving at `path`, if one does; `None` when
/// nothing listens there (a first start).
pub(super) fn take_over_if_running(
    path: &std::path::Path,
) -> io::Result<Option<(std::os::unix::net::UnixStream, Vec<upgrade::Handed>)>> {
    match upgrade::take_over(path) {
        Ok(h) => Ok(Some(h)),
        Err(e) if path.exists() && e.kind() != ErrorKind::ConnectionRefused => Err(e),
        Err(_) => Ok(None),
    }
}

/// The handed-over listener bound to `addr`, taken out of `handed`.
pub(super) fn take_listener(handed: &mut Vec<upgrade::Handed>, addr: SocketAddr) -> Option<TcpListener> {
    let i = handed.iter().position(|h| h.addr == addr)?;
    into_listener(handed.swap_remove(i))
}

/// The listener the main reactor handed to this worker for frontend `name`.
pub(super) fn take_named(handed: &mut Vec<upgrade::Handed>, name: &str) -> Option<TcpListener> {
    let i = handed.iter().position(|h| h.name == name)?;
    into_listener(handed.swap_remove(i))
}

fn into_listener(h: upgrade::Handed) -> Option<TcpListener> {
    let std_listener = std::net::TcpListener::from(h.fd);
    std_listener.set_nonblocking(true).ok()?;
    Some(TcpListener::from_std(std_listener))
}

/// A second descriptor of `l` for a worker (same socket, same queue).
pub(super) fn share(name: &str, l: &TcpListener) -> io::Result<upgrade::Handed> {
    // SAFETY: a borrowed view of our own socket, never closed through it.
    let view = std::mem::ManuallyDrop::new(unsafe {
        <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(l.as_raw_fd())
    });
    let fd = view.try_clone()?.into();
    Ok(upgrade::Handed { name: name.to_string(), addr: l.local_addr()?, fd })
}

/// Set up a listening socket: SO_REUSEADDR so a restart does not wait out
/// TIME_WAIT, and the configured backlog.
pub(super) fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Register a listener for readable, edge-triggered. `exclusive` (several
/// workers share the socket): level-triggered with `EPOLLEXCLUSIVE`, which
/// mio does not offer, so through epoll_ctl with the token as mio's events
/// carry it. Level-triggered so a worker may leave clients in the queue
/// (see `accept_ready`) and still be told about them.
pub(super) fn register(poll: &Poll, l: &mut TcpListener, token: Token, exclusive: bool) -> io::Result<()> {
    if !exclusive {
        return poll.registry().register(l, token, Interest::READABLE);
    }
    let flags = libc::EPOLLIN | libc::EPOLLEXCLUSIVE;
    let mut ev = libc::epoll_event { events: flags as u32, u64: token.0 as u64 };
    // SAFETY: both descriptors are open and owned by the caller; `ev` lives across the call.
    if unsafe { libc::epoll_ctl(poll.as_raw_fd(), libc::EPOLL_CTL_ADD, l.as_raw_fd(), &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take a listener out of the poll. An `exclusive` one was registered
/// behind mio's back, so it leaves the same way; it must leave before it is
/// closed: its socket lives on in other workers, and an epoll entry goes
/// away by itself only when the last descriptor of the socket is closed.
pub(super) fn deregister(poll: &Poll, l: &mut TcpListener, exclusive: bool) -> io::Result<()> {
    if !exclusive {
        return poll.registry().deregister(l);
    }
    // SAFETY: both descriptors are open; DEL ignores the event argument.
    if unsafe { libc::epoll_ctl(poll.as_raw_fd(), libc::EPOLL_CTL_DEL, l.as_raw_fd(), std::ptr::null_mut()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Stop the listening socket for every worker at once (shutdown): clients
/// arriving from now on are refused, as when a single reactor closes it.
pub(super) fn refuse_new(l: &TcpListener) {
    // SAFETY: an open socket of ours; shutdown does not close the descriptor.
    unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
}

/// Move a registered listener to another token (a reload handing it to the
/// frontend that replaces its owner). `EPOLLEXCLUSIVE` registrations cannot
/// be modified, only removed and added again.
pub(super) fn reregister(poll: &Poll, l: &mut TcpListener, token: Token, exclusive: bool) -> io::Result<()> {
    if !exclusive {
        return poll.registry().reregister(l, token, Interest::READABLE);
    }
    deregister(poll, l, exclusive)?;
    register(poll, l, token, exclusive)
}
