//! Listening sockets: binding, taking them over (binary upgrade) or from
//! the main reactor (workers), and registering them with a poll.
//!
//! Two ways for several workers to take clients (`--accept`):
//!
//! - `exclusive` (the default): one socket per frontend, every reactor
//!   registers it (each its own descriptor of it) with `EPOLLEXCLUSIVE`, so
//!   a new connection wakes one reactor instead of all of them. There is one
//!   queue of waiting clients per address: nothing queued behind a worker's
//!   own socket is lost when that worker stops.
//! - `reuseport`: each reactor has a socket of its own per frontend, all
//!   bound to the address with `SO_REUSEPORT`; the kernel picks one per new
//!   connection by a hash of its addresses. A socket's waiting clients are
//!   reset when it closes, so the main reactor holds a descriptor of every
//!   worker's socket as well (`Sockets::held`): a reload keeps them, a
//!   binary upgrade hands them all over, and the new process polls all it
//!   is handed (some reactor polls the extra ones).

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

/// One frontend's listening sockets in one reactor.
pub(super) struct Sockets {
    /// Polled by this reactor, all under the frontend's token. One, unless
    /// taken over from a process that had more for this address.
    pub polled: Vec<TcpListener>,
    /// Main reactor with `--accept reuseport`: worker k's socket at k - 1,
    /// not polled here, held for a binary upgrade and to refuse clients at shutdown.
    pub held: Vec<TcpListener>,
}

impl Sockets {
    /// Every socket, polled ones first.
    pub fn all(&self) -> impl Iterator<Item = &TcpListener> {
        self.polled.iter().chain(self.held.iter())
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.polled[0].local_addr()
    }

    /// Register every polled socket (see `register`).
    pub fn register(&mut self, poll: &Poll, token: Token, exclusive: bool) -> io::Result<()> {
        self.polled.iter_mut().try_for_each(|l| register(poll, l, token, exclusive))
    }

    pub fn deregister(&mut self, poll: &Poll, exclusive: bool) -> io::Result<()> {
        self.polled.iter_mut().try_for_each(|l| deregister(poll, l, exclusive))
    }

    pub fn reregister(&mut self, poll: &Poll, token: Token, exclusive: bool) -> io::Result<()> {
        self.polled.iter_mut().try_for_each(|l| reregister(poll, l, token, exclusive))
    }

    /// What worker `id` (1..) polls of these: with `reuseport` its own
    /// socket, otherwise a descriptor of every socket.
    pub fn share_with(&self, name: &str, id: usize, reuseport: bool) -> io::Result<Vec<upgrade::Handed>> {
        if reuseport {
            let l = self.held.get(id - 1).ok_or_else(|| io::Error::other(format!("no socket for worker {id}")))?;
            return Ok(vec![share(name, l)?]);
        }
        self.polled.iter().map(|l| share(name, l)).collect()
    }
}

/// Every handed-over listener bound to `addr`, taken out of `handed`.
fn take_addr(handed: &mut Vec<upgrade::Handed>, addr: SocketAddr) -> io::Result<Vec<TcpListener>> {
    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(handed).into_iter().partition(|h| h.addr == addr);
    *handed = rest;
    mine.into_iter().map(into_listener).collect()
}

/// The listeners the main reactor handed to this worker for frontend `name`.
pub(super) fn take_named(handed: &mut Vec<upgrade::Handed>, name: &str) -> io::Result<Sockets> {
    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(handed).into_iter().partition(|h| h.name == name);
    *handed = rest;
    let polled = mine.into_iter().map(into_listener).collect::<io::Result<Vec<_>>>()?;
    if polled.is_empty() {
        return Err(io::Error::other(format!("no listener handed over for frontend {name}")));
    }
    Ok(Sockets { polled, held: Vec::new() })
}

fn into_listener(h: upgrade::Handed) -> io::Result<TcpListener> {
    let std_listener = std::net::TcpListener::from(h.fd);
    std_listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(std_listener))
}

/// The main reactor's sockets for a frontend on `addr`: every one handed
/// over for that address (each may hold waiting clients, none is closed),
/// plus what `reuseport` needs for `reactors`: a socket each.
pub(super) fn open(
    addr: SocketAddr,
    backlog: i32,
    (reuseport, reactors): (bool, usize),
    handed: Option<&mut Vec<upgrade::Handed>>,
) -> io::Result<Sockets> {
    let mut taken = match handed {
        Some(h) => take_addr(h, addr)?,
        None => Vec::new(),
    };
    if !reuseport {
        if taken.is_empty() {
            taken.push(listen(addr, backlog, false)?);
        }
        return Ok(Sockets { polled: taken, held: Vec::new() });
    }
    if let Some(first) = taken.first()
        && taken.len() < reactors
        && !has_reuseport(first)?
    {
        return Err(io::Error::other(format!(
            "the running process's listener on {addr} is not SO_REUSEPORT (it runs --accept exclusive): \
             --accept reuseport cannot add a socket per worker beside it; upgrade with --accept exclusive, \
             or with {} workers or fewer",
            taken.len()
        )));
    }
    if taken.is_empty() {
        taken.push(listen(addr, backlog, true)?);
    }
    // Port 0 binds once; the others join the port the first one got.
    let bound = taken[0].local_addr()?;
    while taken.len() < reactors {
        taken.push(listen(bound, backlog, true)?);
    }
    // Beyond one per reactor: the main reactor polls the rest.
    let mut polled = vec![taken.remove(0)];
    let held: Vec<TcpListener> = taken.drain(..reactors - 1).collect();
    polled.append(&mut taken);
    Ok(Sockets { polled, held })
}

fn has_reuseport(l: &TcpListener) -> io::Result<bool> {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an open socket of ours; `on` and `len` outlive the call and match in size.
    let r = unsafe {
        libc::getsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&mut on as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(on != 0)
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
/// TIME_WAIT, the configured backlog, and with `reuseport` SO_REUSEPORT
/// (one socket per reactor on the same address).
pub(super) fn listen(addr: SocketAddr, backlog: i32, reuseport: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuseport {
        let on: libc::c_int = 1;
        // SAFETY: a fresh socket of ours; `on` outlives the call.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEPORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
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
