use std::io::{self, Cursor, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

/// Counts raw bytes pulled from the file so a progress bar can compare them
/// with the file size even when the capture is decompressed on the fly.
pub(crate) struct Counting<R> {
    pub inner: R,
    pub count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Wraps `raw` in a gzip decoder when it starts with the gzip magic. Multi-member
/// decoding because `cat a.pcap.gz b.gz`-style concatenations are valid gzip.
pub(crate) fn maybe_gunzip(
    mut raw: Box<dyn Read + Send>,
) -> io::Result<(Box<dyn Read + Send>, bool)> {
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < head.len() {
        match raw.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let rejoined = Cursor::new(head[..got].to_vec()).chain(raw);
    if got == 2 && head == [0x1f, 0x8b] {
        Ok((Box::new(MultiGzDecoder::new(rejoined)), true))
    } else {
        Ok((Box::new(rejoined), false))
    }
}
