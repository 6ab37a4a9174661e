use std::io::{self, Read};

/// Reads start small so tiny captures do not pay for zeroing a big buffer,
/// and stop growing at a size where read syscalls are amortised.
const MIN_BUF: usize = 64 << 10;
const READ_BUF: usize = 1 << 20;

/// A refillable window over the (decompressed) stream. Records are parsed in
/// place and handed out as borrowed slices, so the window only moves when the
/// next record does not fit.
pub(crate) struct Input {
    inner: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    pos: u64,
    eof: bool,
    err: Option<io::Error>,
}

impl Input {
    pub fn new(inner: Box<dyn Read + Send>) -> Self {
        Input {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            pos: 0,
            eof: false,
            err: None,
        }
    }

    #[inline]
    pub fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Stream offset of the first unconsumed byte.
    #[inline]
    pub fn pos(&self) -> u64 {
        self.pos
    }

    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    #[inline]
    pub fn buf(&self) -> &[u8] {
        &self.buf
    }

    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(self.start + n <= self.end);
        self.start += n;
        self.pos += n as u64;
    }

    /// The read error that stopped the stream, if any (taken once).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.err.take()
    }

    /// Makes `n` bytes available; false if the stream ended (or failed) first.
    /// The buffer grows only as data actually arrives, so a corrupt length
    /// field in a short file cannot trigger a large allocation.
    #[inline]
    pub fn ensure(&mut self, n: usize) -> bool {
        if self.end - self.start >= n {
            return true;
        }
        self.ensure_slow(n)
    }

    #[cold]
    fn ensure_slow(&mut self, n: usize) -> bool {
        if self.eof || self.err.is_some() {
            return false;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < n {
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).clamp(MIN_BUF, READ_BUF).max(n);
                self.buf.resize(grown, 0);
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.err = Some(e);
                    return false;
                }
            }
        }
        true
    }
}
