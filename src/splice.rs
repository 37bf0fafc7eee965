//! Kernel pipes for splice(2): TCP mode moves bytes socket -> pipe -> socket
//! without copying them through user space.
//!
//! A pipe costs two descriptors and up to its capacity in kernel memory, so
//! a session holds one only while bytes are in flight in that direction (the
//! same rule as buffers): idle sessions hold none. `PipePool` has a hard
//! maximum; past it, or when the process is out of descriptors, `take`
//! answers `None` and the caller moves the bytes through a buffer instead.
//! A `Checkout` goes back in `Drop`, to the free list only when it is empty:
//! a pipe with bytes stuck in it (its session was reset) is closed, never
//! handed to another session. Free pipes not used for a whole housekeeping
//! period are closed (`trim`), so a quiet proxy returns to its idle count of
//! descriptors.
//!
//! The syscalls come from the libc crate, already a dependency (limits.rs).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

/// Pipes out of the pool at once, all sessions together (each costs two
/// descriptors and up to 64 KiB of kernel memory; see `Server::bind` for the
/// descriptors reserved for them).
pub const MAX_PIPES: usize = 256;
/// Free pipes kept for reuse between housekeeping rounds.
const KEEP_FREE: usize = 64;

/// Whether TCP-mode sessions may splice (`--splice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpliceMode {
    /// Splice where possible, buffers where not.
    #[default]
    Auto,
    /// Always buffers.
    Off,
}

impl SpliceMode {
    pub fn name(self) -> &'static str {
        match self {
            SpliceMode::Auto => "auto",
            SpliceMode::Off => "off",
        }
    }
}

/// Both ends of one non-blocking pipe.
struct KernelPipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes it holds at most (F_GETPIPE_SZ): the backpressure limit.
    capacity: usize,
}

impl KernelPipe {
    /// A pipe, asked to hold `size` bytes when that is not the kernel's default.
    fn new(size: usize) -> io::Result<KernelPipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just opened and belong to nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let fd = write.as_raw_fd();
        // SAFETY: F_GETPIPE_SZ only reads the pipe's size.
        let given = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        if given > 0 && given as usize != size {
            // SAFETY: F_SETPIPE_SZ resizes the empty pipe we own. Refused
            // (EPERM past pipe-max-size, or the per-user pipe memory limit):
            // the pipe keeps the size it has.
            if unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size as libc::c_int) } < 0 {
                log::debug!("pipe size {size} refused: {}", io::Error::last_os_error());
            }
        }
        // SAFETY: as above.
        let size = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        // Past the per-user pipe memory limit the kernel hands out one-page pipes.
        let capacity = if size > 0 { size as usize } else { 4096 };
        Ok(KernelPipe { read, write, capacity })
    }
}

struct Shared {
    free: RefCell<Vec<KernelPipe>>,
    in_use: Cell<usize>,
    max: usize,
    /// Capacity asked for each new pipe (`--pipe-size`).
    size: usize,
    /// Times a pipe was wanted and none could be had (buffers were used).
    fallbacks: Cell<u64>,
    /// A pipe was taken since the last `trim`.
    used: Cell<bool>,
    /// Bytes spliced out of pipes into sockets, ever.
    bytes: Cell<u64>,
}

/// Hands out pipes; cheap to share, since checkouts find their way back alone.
pub struct PipePool {
    shared: Rc<Shared>,
}

impl PipePool {
    /// At most `max` pipes out at once, each asked to hold `size` bytes.
    pub fn new(max: usize, size: usize) -> PipePool {
        PipePool {
            shared: Rc::new(Shared {
                free: RefCell::new(Vec::new()),
                in_use: Cell::new(0),
                max,
                size,
                fallbacks: Cell::new(0),
                used: Cell::new(false),
                bytes: Cell::new(0),
            }),
        }
    }

    /// A pipe, or `None` at the maximum or when none can be created (out of
    /// descriptors, say): the caller then uses a buffer. Counted as a fallback.
    pub fn take(&self) -> Option<Checkout> {
        let s = &self.shared;
        s.used.set(true);
        if s.in_use.get() >= s.max {
            s.fallbacks.set(s.fallbacks.get() + 1);
            return None;
        }
        let pipe = match s.free.borrow_mut().pop() {
            Some(p) => p,
            None => match KernelPipe::new(s.size) {
                Ok(p) => p,
                Err(e) => {
                    log::debug!("no pipe for splicing ({e}): using a buffer");
                    s.fallbacks.set(s.fallbacks.get() + 1);
                    return None;
                }
            },
        };
        s.in_use.set(s.in_use.get() + 1);
        Some(Checkout(Box::new(Held { pipe: Some(pipe), held: 0, shared: Rc::clone(s) })))
    }

    /// Pipes out of the pool right now.
    pub fn in_use(&self) -> usize {
        self.shared.in_use.get()
    }

    /// Pipes kept free for reuse (two descriptors each).
    pub fn free(&self) -> usize {
        self.shared.free.borrow().len()
    }

    pub fn fallbacks(&self) -> u64 {
        self.shared.fallbacks.get()
    }

    /// Bytes delivered through pipes (the rest went through buffers).
    pub fn bytes_spliced(&self) -> u64 {
        self.shared.bytes.get()
    }

    /// Housekeeping: close the free pipes when none was taken since the last call.
    pub fn trim(&self) {
        let s = &self.shared;
        if !s.used.replace(false) {
            s.free.borrow_mut().clear();
        }
    }
}

struct Held {
    /// `None` only while the checkout is being dropped.
    pipe: Option<KernelPipe>,
    /// Bytes spliced in and not yet out.
    held: usize,
    shared: Rc<Shared>,
}

/// A pipe out of the pool. Boxed so that a session's direction pays one
/// pointer for it while it has none.
pub struct Checkout(Box<Held>);

impl Drop for Checkout {
    fn drop(&mut self) {
        let h = &mut *self.0;
        let s = &h.shared;
        s.in_use.set(s.in_use.get() - 1);
        let mut free = s.free.borrow_mut();
        // A pipe that still holds bytes is closed (taken below and dropped).
        if let Some(p) = h.pipe.take()
            && h.held == 0
            && free.len() < KEEP_FREE
        {
            free.push(p);
        }
    }
}

/// What one splice call amounted to (as `connection::Io`, for pipes).
pub(crate) enum Spliced {
    Moved(usize),
    /// EAGAIN: the source has nothing, or (into a pipe) the pipe is full.
    WouldBlock,
    /// The source socket sent its FIN.
    Closed,
    Failed(io::Error),
}

fn splice(from: RawFd, to: RawFd, len: usize) -> Spliced {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open for the call (owned by the caller's
    // socket and checkout); null offsets mean "the file position", as sockets and pipes need.
    let n = unsafe { libc::splice(from, std::ptr::null_mut(), to, std::ptr::null_mut(), len, flags) };
    match n {
        0 => Spliced::Closed,
        n if n > 0 => Spliced::Moved(n as usize),
        _ => {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => Spliced::WouldBlock,
                io::ErrorKind::Interrupted => Spliced::Moved(0),
                _ => Spliced::Failed(e),
            }
        }
    }
}

impl Checkout {
    fn pipe(&self) -> &KernelPipe {
        self.0.pipe.as_ref().expect("a checkout's pipe leaves it only in drop")
    }

    /// Bytes in the pipe.
    pub fn held(&self) -> usize {
        self.0.held
    }

    /// Room left before the backpressure limit.
    pub fn room(&self) -> usize {
        self.pipe().capacity.saturating_sub(self.0.held)
    }

    /// One splice from socket `src` into the pipe, at most `room()` bytes.
    pub(crate) fn fill_from(&mut self, src: &impl AsRawFd) -> Spliced {
        let r = splice(src.as_raw_fd(), self.pipe().write.as_raw_fd(), self.room());
        if let Spliced::Moved(n) = r {
            self.0.held += n;
        }
        r
    }

    /// One splice from the pipe into socket `dst`, everything it holds.
    pub(crate) fn drain_to(&mut self, dst: &impl AsRawFd) -> Spliced {
        let r = splice(self.pipe().read.as_raw_fd(), dst.as_raw_fd(), self.0.held);
        if let Spliced::Moved(n) = r {
            self.0.held -= n.min(self.0.held);
            let bytes = &self.0.shared.bytes;
            bytes.set(bytes.get() + n as u64);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// A connected pair of loopback sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn bytes_go_socket_to_pipe_to_socket_and_the_pipe_returns_empty() {
        let pool = PipePool::new(4, 64 * 1024);
        let (mut src_peer, src) = pair();
        let (dst, mut dst_peer) = pair();
        src_peer.write_all(b"hello splice").unwrap();
        let mut c = pool.take().expect("a pipe");
        assert_eq!(pool.in_use(), 1);
        assert!(matches!(c.fill_from(&src), Spliced::Moved(12)));
        assert_eq!(c.held(), 12);
        assert!(matches!(c.drain_to(&dst), Spliced::Moved(12)));
        assert_eq!(c.held(), 0);
        let mut got = [0u8; 12];
        dst_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello splice");
        drop(c);
        assert_eq!((pool.in_use(), pool.free(), pool.bytes_spliced()), (0, 1, 12));
        // Nothing waits in the socket (it is blocking, so set it non-blocking).
        src.set_nonblocking(true).unwrap();
        let mut c = pool.take().unwrap();
        assert_eq!(pool.free(), 0, "the free pipe was reused");
        assert!(matches!(c.fill_from(&src), Spliced::WouldBlock));
        drop(src_peer);
        assert!(matches!(c.fill_from(&src), Spliced::Closed));
    }

    #[test]
    fn a_pipe_with_bytes_left_is_closed_not_reused() {
        let pool = PipePool::new(4, 64 * 1024);
        let (mut src_peer, src) = pair();
        src_peer.write_all(b"stuck").unwrap();
        let mut c = pool.take().unwrap();
        assert!(matches!(c.fill_from(&src), Spliced::Moved(5)));
        drop(c);
        assert_eq!((pool.in_use(), pool.free()), (0, 0));
    }

    #[test]
    fn past_the_maximum_take_falls_back_and_counts_it() {
        let pool = PipePool::new(1, 64 * 1024);
        let a = pool.take();
        assert!(a.is_some());
        assert!(pool.take().is_none());
        assert_eq!(pool.fallbacks(), 1);
        drop(a);
        assert!(pool.take().is_some());
    }

    #[test]
    fn trim_closes_free_pipes_only_after_an_unused_period() {
        let pool = PipePool::new(4, 64 * 1024);
        drop(pool.take());
        assert_eq!(pool.free(), 1);
        pool.trim(); // used since the last trim: kept
        assert_eq!(pool.free(), 1);
        pool.trim(); // a whole period unused: closed
        assert_eq!(pool.free(), 0);
    }

    #[test]
    fn a_pipe_gets_the_size_asked_for_within_the_limit() {
        // 128 KiB is within the default pipe-max-size (1 MiB) for anyone.
        let pool = PipePool::new(1, 128 * 1024);
        assert_eq!(pool.take().unwrap().room(), 128 * 1024);
    }

    #[test]
    fn room_is_the_capacity_minus_what_is_held() {
        let pool = PipePool::new(1, 64 * 1024);
        let (mut src_peer, src) = pair();
        let mut c = pool.take().unwrap();
        let cap = c.room();
        assert!(cap >= 4096, "capacity {cap}");
        src_peer.write_all(&[7u8; 100]).unwrap();
        assert!(matches!(c.fill_from(&src), Spliced::Moved(100)));
        assert_eq!(c.room(), cap - 100);
    }
}
