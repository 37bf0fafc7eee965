//! Fixed-size byte buffers and the pool they come from.
//!
//! A session takes a buffer only while bytes are in flight in that direction
//! and gives it back as soon as it is empty, so an idle session holds none.
//! The pool keeps a bounded number of free buffers for reuse and frees the
//! rest, so a burst does not pin its peak memory forever.

use std::io::{self, Read, Write};

pub struct Buffer {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buffer {
    fn new(size: usize) -> Buffer {
        Buffer { data: vec![0; size].into_boxed_slice(), start: 0, end: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// No byte can be read in, even after moving the filled part to the front.
    pub fn is_full(&self) -> bool {
        self.len() == self.data.len()
    }

    /// Bytes the next `fill_from` may read.
    pub fn space(&self) -> usize {
        if self.end == self.data.len() { self.data.len() - self.len() } else { self.data.len() - self.end }
    }

    /// The filled part.
    pub fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Drop `n` bytes from the front of the filled part.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Read once from `src` into the free tail. When the tail is full but
    /// the front was consumed, the filled part is moved to the front first.
    pub fn fill_from<R: Read>(&mut self, src: &mut R) -> io::Result<usize> {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = src.read(&mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Write once from the filled part into `dst`.
    pub fn drain_to<W: Write>(&mut self, dst: &mut W) -> io::Result<usize> {
        let n = dst.write(&self.data[self.start..self.end])?;
        self.start += n;
        if self.start == self.end {
            // Empty: rewind so the next read gets the whole buffer.
            self.start = 0;
            self.end = 0;
        }
        Ok(n)
    }
}

pub struct BufferPool {
    size: usize,
    free: Vec<Buffer>,
    keep_free: usize,
    in_use: usize,
}

impl BufferPool {
    /// Buffers of `size` bytes; at most `keep_free` idle ones are kept.
    pub fn new(size: usize, keep_free: usize) -> BufferPool {
        BufferPool { size, free: Vec::new(), keep_free, in_use: 0 }
    }

    pub fn buffer_size(&self) -> usize {
        self.size
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }

    pub fn take(&mut self) -> Buffer {
        self.in_use += 1;
        self.free.pop().unwrap_or_else(|| Buffer::new(self.size))
    }

    pub fn give(&mut self, mut b: Buffer) {
        self.in_use -= 1;
        if self.free.len() < self.keep_free {
            b.start = 0;
            b.end = 0;
            self.free.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_drain_rewinds() {
        let mut pool = BufferPool::new(8, 1);
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
        pool.give(b);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn pool_keeps_at_most_keep_free() {
        let mut pool = BufferPool::new(16, 1);
        let (a, b) = (pool.take(), pool.take());
        assert_eq!(pool.in_use(), 2);
        pool.give(a);
        pool.give(b);
        assert_eq!(pool.free.len(), 1);
    }
}
