//! What the pipeline reads from: a capture file or a live interface, behind
//! one lending interface so the pipeline does not care which.

use crate::{CaptureReader, Frame, SourceError};

/// The result of asking a source for its next frame.
#[derive(Debug)]
pub enum Next<'a> {
    /// A frame, borrowed until the next call.
    Frame(Frame<'a>),
    /// Nothing arrived within the source's read timeout; the source is still
    /// open. Only live sources return this, so the caller can do time-driven
    /// work on a quiet interface.
    Idle,
    /// No more frames, ever.
    End,
    /// The source failed; every frame before it was delivered. Later calls
    /// return `End`.
    Error(SourceError),
}

/// Counters of a source. For a file everything is delivered, so only
/// `frames` moves; a live capture also reports libpcap's drop counters.
/// Frames the pipeline itself skips or drops are counted by the pipeline
/// stages, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Frames delivered to the caller.
    pub frames: u64,
    /// Captured bytes delivered to the caller.
    pub bytes: u64,
    /// Packets the kernel passed through the capture filter (libpcap
    /// `ps_recv`); for a file, the frames read.
    pub received: u64,
    /// Packets dropped because the kernel buffer was full: the reader did not
    /// keep up (libpcap `ps_drop`).
    pub kernel_drops: u64,
    /// Packets dropped by the interface or its driver (libpcap `ps_ifdrop`).
    pub interface_drops: u64,
}

/// A source of captured frames, read one at a time on one thread.
pub trait FrameSource {
    fn next(&mut self) -> Next<'_>;
    /// Bytes read so far (for progress against [`total_bytes`](Self::total_bytes)).
    fn bytes_consumed(&self) -> u64;
    /// Size of the input if known; `None` for streams and live captures.
    fn total_bytes(&self) -> Option<u64>;
    /// Takes `&mut self` because libpcap's statistics call needs the handle
    /// mutably; it is cheap enough to call every 100 ms but not per frame.
    fn stats(&mut self) -> SourceStats;
    /// What is being read, for messages: a file name or an interface.
    fn name(&self) -> &str;
    /// Live sources never end on their own and return [`Next::Idle`]; the
    /// pipeline then flushes on wall-clock time instead of capture time.
    fn is_live(&self) -> bool {
        false
    }
}

impl FrameSource for CaptureReader {
    #[inline]
    fn next(&mut self) -> Next<'_> {
        match self.next_frame() {
            Some(Ok(frame)) => Next::Frame(frame),
            None => Next::End,
            Some(Err(e)) => Next::Error(e),
        }
    }

    fn bytes_consumed(&self) -> u64 {
        CaptureReader::bytes_consumed(self)
    }

    fn total_bytes(&self) -> Option<u64> {
        CaptureReader::total_bytes(self)
    }

    fn stats(&mut self) -> SourceStats {
        SourceStats {
            frames: self.frames(),
            bytes: self.frame_bytes(),
            received: self.frames(),
            kernel_drops: 0,
            interface_drops: 0,
        }
    }

    fn name(&self) -> &str {
        self.display_name()
    }
}
