//! Byte buffers and the pool they come from.
//!
//! A session takes a buffer only while bytes are in flight in that direction
//! and drops it as soon as it is empty, so an idle session holds none. A
//! buffer goes back to its pool in `Drop`: no path (error, retry, reset) can
//! forget to return it, and `in_use` is exact. The pool keeps a bounded
//! number of free buffers for reuse and frees the rest, so a burst does not
//! pin its peak memory forever.
//!
//! Two sizes: full buffers for bodies and byte pipes, and small ones for
//! request heads, which are usually short and may sit half-read for a long
//! time (slow clients); a head that outgrows its small buffer is moved into
//! a full one (`BufferPool::enlarge`).

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::rc::Rc;

/// Size of the buffers request heads are first read into.
pub const SMALL_BUFFER: usize = 4 * 1024;

/// The free buffers of one size, shared by the pool and its buffers.
struct Shelf {
    size: usize,
    keep_free: usize,
    free: RefCell<Vec<Box<[u8]>>>,
    in_use: Cell<usize>,
}

impl Shelf {
    fn take(self: &Rc<Shelf>) -> Buffer {
        self.in_use.set(self.in_use.get() + 1);
        let data = self.free.borrow_mut().pop().unwrap_or_else(|| vec![0; self.size].into_boxed_slice());
        Buffer { data, start: 0, end: 0, shelf: Rc::clone(self) }
    }
}

/// `start..end` is the filled part. u32 offsets (buffers are at most 64 MiB,
/// `config::values::parse_size`) keep a session's two directions small.
pub struct Buffer {
    data: Box<[u8]>,
    start: u32,
    end: u32,
    shelf: Rc<Shelf>,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let shelf = &self.shelf;
        shelf.in_use.set(shelf.in_use.get() - 1);
        let mut free = shelf.free.borrow_mut();
        if free.len() < shelf.keep_free {
            free.push(std::mem::take(&mut self.data));
        }
    }
}

impl Buffer {
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    fn start(&self) -> usize {
        self.start as usize
    }

    fn end(&self) -> usize {
        self.end as usize
    }

    /// No byte can be read in, even after moving the filled part to the front.
    pub fn is_full(&self) -> bool {
        self.len() == self.data.len()
    }

    /// Bytes the next `fill_from` may read.
    pub fn space(&self) -> usize {
        if self.end() == self.data.len() { self.data.len() - self.len() } else { self.data.len() - self.end() }
    }

    /// The filled part.
    pub fn data(&self) -> &[u8] {
        &self.data[self.start()..self.end()]
    }

    /// Drop `n` bytes from the front of the filled part.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len()) as u32;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Read once from `src` into the free tail. When the tail is full but
    /// the front was consumed, the filled part is moved to the front first.
    pub fn fill_from<R: Read>(&mut self, src: &mut R) -> io::Result<usize> {
        if self.end() == self.data.len() && self.start > 0 {
            let (start, end) = (self.start(), self.end());
            self.data.copy_within(start..end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end();
        let n = src.read(&mut self.data[end..])?;
        self.end += n as u32;
        Ok(n)
    }

    /// Write once from the filled part into `dst`.
    pub fn drain_to<W: Write>(&mut self, dst: &mut W) -> io::Result<usize> {
        let n = dst.write(&self.data[self.start()..self.end()])?;
        self.start += n as u32;
        if self.start == self.end {
            // Empty: rewind so the next read gets the whole buffer.
            self.start = 0;
            self.end = 0;
        }
        Ok(n)
    }
}

/// Hands out buffers; cheap to share, since buffers find their way back alone.
pub struct BufferPool {
    full: Rc<Shelf>,
    small: Rc<Shelf>,
}

impl BufferPool {
    /// Buffers of `size` bytes (and small head buffers); at most `keep_free`
    /// idle ones of each size are kept.
    pub fn new(size: usize, keep_free: usize) -> BufferPool {
        let shelf = |size| Rc::new(Shelf { size, keep_free, free: RefCell::new(Vec::new()), in_use: Cell::new(0) });
        BufferPool { full: shelf(size), small: shelf(SMALL_BUFFER.min(size)) }
    }

    pub fn buffer_size(&self) -> usize {
        self.full.size
    }

    /// Buffers out of the pool right now, of both sizes.
    pub fn in_use(&self) -> usize {
        self.full.in_use.get() + self.small.in_use.get()
    }

    pub fn take(&self) -> Buffer {
        self.full.take()
    }

    /// A small buffer, for a request head.
    pub fn take_small(&self) -> Buffer {
        self.small.take()
    }

    /// `b`'s bytes in a full-size buffer (`b` itself if it is one already).
    pub fn enlarge(&self, b: Buffer) -> Buffer {
        if b.capacity() >= self.full.size {
            return b;
        }
        let mut big = self.full.take();
        big.data[..b.len()].copy_from_slice(b.data());
        big.end = b.len() as u32;
        big
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_drain_rewinds() {
        let pool = BufferPool::new(8, 1);
        let mut b = pool.take();
        let mut src: &[u8] = b"abcdefghij";
        assert_eq!(b.fill_from(&mut src).unwrap(), 8);
        assert!(b.is_full());
        let mut out = Vec::new();
        let mut small = [0u8; 3];
        let mut w: &mut [u8] = &mut small;
        assert_eq!(b.drain_to(&mut w).unwrap(), 3);
        assert_eq!(b.len(), 5);
        assert_eq!(b.drain_to(&mut out).unwrap(), 5);
        assert!(b.is_empty());
        assert_eq!(b.space(), 8);
        assert_eq!(out, b"defgh");
        drop(b);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn pool_keeps_at_most_keep_free() {
        let pool = BufferPool::new(16, 1);
        let (a, b) = (pool.take(), pool.take());
        assert_eq!(pool.in_use(), 2);
        drop(a);
        drop(b);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.full.free.borrow().len(), 1);
    }

    #[test]
    fn enlarge_keeps_the_bytes_and_returns_the_small_one() {
        let pool = BufferPool::new(SMALL_BUFFER * 4, 4);
        let mut small = pool.take_small();
        let mut src: &[u8] = b"GET / HTTP/1.1\r\n";
        small.fill_from(&mut src).unwrap();
        small.consume(4);
        assert_eq!(pool.in_use(), 1);
        let big = pool.enlarge(small);
        assert_eq!(big.data(), b"/ HTTP/1.1\r\n");
        assert_eq!(big.capacity(), SMALL_BUFFER * 4);
        assert_eq!(pool.in_use(), 1);
        assert_eq!(pool.small.free.borrow().len(), 1);
    }
}
