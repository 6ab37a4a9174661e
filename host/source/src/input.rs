use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// The stream handed to pcap-parser. Its readers turn every read error into
/// a bare `PcapError::ReadError`, so the real error is kept here for the
/// message (and to tell a corrupt gzip stream from an I/O failure).
pub(crate) struct Stashing {
    pub inner: Box<dyn Read + Send>,
    pub error: Arc<Mutex<Option<io::Error>>>,
}

impl Read for Stashing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return Err(copy);
                }
                ok => return ok,
            }
        }
    }
}

/// Reads until `buf` holds `n` bytes or the stream ends; an error is returned
/// only if it stopped the stream short of `n`.
pub(crate) fn read_up_to(r: &mut dyn Read, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    while buf.len() < n {
        let want = (n - buf.len()).min(chunk.len());
        match r.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
