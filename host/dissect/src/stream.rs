//! Per-direction stream state of a dissected flow: the host-owned buffer of
//! bytes the plugin has not consumed, bytes it asked to skip, how many it
//! needs before the next call, and when each byte arrived.

use std::collections::VecDeque;

use remora_core::{Direction, Timestamp};
use remora_runtime::wit;

use crate::backend::{Backend, BackendFault};

/// Arrival times of stream offsets, so a message's start offset maps back to
/// the capture time of the packet that carried it.
#[derive(Default)]
pub(crate) struct Marks(VecDeque<(u64, Timestamp)>);

impl Marks {
    /// Enough for the head and captured body of any message in flight; older
    /// marks fall off and a very old start maps to the oldest time kept.
    const CAP: usize = 256;

    fn push(&mut self, offset: u64, ts: Timestamp) {
        if let Some(&(last_off, _)) = self.0.back() {
            if last_off >= offset {
                return;
            }
        }
        if self.0.len() == Self::CAP {
            self.0.pop_front();
        }
        self.0.push_back((offset, ts));
    }

    /// Time of the packet that carried stream byte `offset`.
    pub(crate) fn at(&self, offset: u64) -> Timestamp {
        // Messages start in the packets just read, near the back: a few
        // steps from there before a binary search over up to `CAP` marks
        // (one look-up per message).
        let n = self.0.len();
        for i in (n.saturating_sub(4)..n).rev() {
            let (o, ts) = self.0[i];
            if o <= offset {
                return ts;
            }
        }
        let i = self.0.partition_point(|&(o, _)| o <= offset);
        match i {
            0 => self.0.front().map(|m| m.1).unwrap_or_default(),
            i => self.0[i - 1].1,
        }
    }
}

/// What the calls made for one event did.
#[derive(Default)]
pub(crate) struct Outcome {
    pub calls: u64,
    pub messages: u64,
    pub errors: u32,
    pub fault: Option<BackendFault>,
    /// The plugin left more than `max_pending` bytes unconsumed.
    pub over_limit: bool,
    /// The plugin asked to hand the flow to another protocol; no further
    /// call was made on its session.
    pub switch: Option<Box<wit::ProtocolSwitch>>,
}

/// Hands a call's messages to the pairing, with the input their spans point into.
pub(crate) type Collect<'a> = dyn FnMut(&wit::Messages, &[u8], &Marks) + 'a;

#[derive(Default)]
pub(crate) struct DirStream {
    /// Bytes not yet consumed by the plugin.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]` (of the next byte when `buf` is empty).
    base: u64,
    /// Bytes still to drop unseen, at the plugin's request.
    skip: u64,
    /// Minimum pending bytes before the next call.
    need: u32,
    pub(crate) ended: bool,
    /// An end call is queued: bytes no longer arrive.
    pub(crate) end_queued: bool,
    marks: Marks,
    /// Next offset for datagram flows, which have no stream offsets of their own.
    datagram_offset: u64,
}

/// Bound on calls per event: a plugin that keeps asking to skip tiny amounts
/// cannot make the host spin.
pub(crate) const MAX_CALLS_PER_EVENT: usize = 64;

/// What [`DirStream::append`] left behind.
pub(crate) struct Appended {
    /// Enough bytes are pending for a call (see `need`).
    pub ready: bool,
    /// The buffer outgrew twice `max_pending` while waiting for its call.
    pub over_limit: bool,
}

impl DirStream {
    /// Buffer new stream bytes at `offset` (dropping what the plugin asked
    /// to skip); the call that offers them is made later, in a batch.
    pub(crate) fn append(
        &mut self,
        ts: Timestamp,
        mut offset: u64,
        mut data: &[u8],
        max_pending: usize,
    ) -> Appended {
        if self.ended || self.end_queued {
            return Appended {
                ready: false,
                over_limit: false,
            };
        }
        if self.skip > 0 {
            let n = self.skip.min(data.len() as u64);
            self.skip -= n;
            data = &data[n as usize..];
            offset += n;
            if self.buf.is_empty() {
                self.base = offset;
            }
        }
        if !data.is_empty() {
            self.marks.push(offset, ts);
            if self.buf.is_empty() {
                self.base = offset;
            }
            self.buf.extend_from_slice(data);
        }
        Appended {
            ready: self.ready(),
            // Until its call the plugin cannot consume: allow the bytes of
            // one batch window on top of the limit checked after each call.
            over_limit: self.buf.len() > max_pending.saturating_mul(2),
        }
    }

    /// Whether a call should be made on what is pending.
    pub(crate) fn ready(&self) -> bool {
        !self.ended && !self.buf.is_empty() && self.buf.len() >= self.need as usize
    }

    /// Stream offset of the first byte held.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    pub(crate) fn marks(&self) -> &Marks {
        &self.marks
    }

    /// Stream offset just past the bytes held.
    pub(crate) fn end_offset(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// The input of a batched call whose bytes end at stream offset `end`:
    /// first drops what an earlier answer asked to skip (the plugin drops
    /// it from these bytes too), then everything held up to `end`.
    pub(crate) fn input_until(&mut self, end: u64) -> usize {
        let held_until = end.saturating_sub(self.base).min(self.buf.len() as u64) as usize;
        if self.skip > 0 {
            let n = self.skip.min(held_until as u64) as usize;
            self.buf.drain(..n);
            self.base += n as u64;
            self.skip -= n as u64;
            return held_until - n;
        }
        held_until
    }

    /// The bytes held (a call's input is a prefix of them).
    pub(crate) fn held(&self) -> &[u8] {
        &self.buf
    }

    /// Apply the answer to a call whose input was the first `len` bytes
    /// held: drop what the plugin consumed, and what it skipped within
    /// them; a skip beyond them is kept for the bytes that follow. Returns
    /// whether it made progress and what is left is worth another call.
    pub(crate) fn consume(&mut self, res: &wit::FeedResult, len: usize) -> bool {
        let len = len.min(self.buf.len());
        let consumed = (res.consumed as usize).min(len);
        let rest = len - consumed;
        // After a switch the remaining bytes belong to the next protocol:
        // nothing is skipped on the old one's behalf.
        let skip = if res.switch.is_some() { 0 } else { res.skip };
        let skipped = skip.min(rest as u64) as usize;
        self.skip = skip - skipped as u64;
        self.need = res.need;
        let done = consumed + skipped;
        self.buf.drain(..done);
        self.base += done as u64;
        done > 0 && res.switch.is_none() && res.error.is_none() && self.ready()
    }

    pub(crate) fn over_limit(&self, max_pending: usize) -> bool {
        self.buf.len() > max_pending
    }

    /// Offer what is held, and again while a call makes progress and leaves
    /// enough for another (a call may stop at a message boundary, or a skip
    /// may expose bytes it never saw).
    fn feed_loop<B: Backend>(
        &mut self,
        backend: &mut B,
        session: &B::Session,
        dir: Direction,
        out: &mut Outcome,
        collect: &mut Collect<'_>,
    ) {
        for _ in 0..MAX_CALLS_PER_EVENT {
            let len = self.buf.len();
            let res = match backend.feed(session, dir, self.base, &self.buf) {
                Ok(r) => r,
                Err(f) => {
                    out.fault = Some(f);
                    return;
                }
            };
            out.calls += 1;
            out.messages += res.messages.len() as u64;
            if res.error.is_some() {
                out.errors += 1;
            }
            collect(&res.messages, &self.buf, &self.marks);
            let again = self.consume(&res, len);
            if res.switch.is_some() {
                out.switch = res.switch;
                return;
            }
            if !again {
                return;
            }
        }
    }

    /// The flow switched protocols and the next protocol starts at stream
    /// `offset` in this direction: drop what lies before it and forget the
    /// old plugin's `skip` and `need`. Returns how many bytes at or after
    /// `offset` the old plugin had already consumed (the new session gets
    /// them as a gap).
    pub(crate) fn hand_over(&mut self, offset: u64) -> u64 {
        self.need = 0;
        self.skip = 0;
        if offset < self.base {
            return self.base - offset;
        }
        let before = offset - self.base;
        if before <= self.buf.len() as u64 {
            self.buf.drain(..before as usize);
        } else {
            // The next protocol starts beyond what arrived: drop up to it.
            self.skip = before - self.buf.len() as u64;
            self.buf.clear();
        }
        self.base = offset;
        0
    }

    /// Offer the bytes held for this direction to a (new) session.
    pub(crate) fn resume<B: Backend>(
        &mut self,
        backend: &mut B,
        session: &B::Session,
        dir: Direction,
        max_pending: usize,
        collect: &mut Collect<'_>,
    ) -> Outcome {
        let mut out = Outcome::default();
        if self.ended || self.buf.is_empty() {
            return out;
        }
        self.feed_loop(backend, session, dir, &mut out, collect);
        if self.buf.len() > max_pending {
            out.over_limit = true;
        }
        out
    }

    /// Hold a datagram until its call (see `DissectStage::datagram`);
    /// returns the offset just past it, or `None` once the direction ended.
    /// Datagrams get consecutive offsets of their own, so that a message's
    /// start maps to its datagram's time.
    pub(crate) fn push_datagram(&mut self, ts: Timestamp, data: &[u8]) -> Option<u64> {
        if self.ended || self.end_queued {
            return None;
        }
        let offset = self.datagram_offset;
        self.datagram_offset += data.len() as u64;
        self.marks.push(offset, ts);
        if self.buf.is_empty() {
            self.base = offset;
        }
        self.buf.extend_from_slice(data);
        Some(self.datagram_offset)
    }

    /// Bytes of the datagram at the front that ends at offset `end`.
    pub(crate) fn datagram_len(&self, end: u64) -> usize {
        end.saturating_sub(self.base).min(self.buf.len() as u64) as usize
    }

    /// The datagram at the front was offered: whatever the plugin
    /// consumed, the next call starts with the next datagram.
    pub(crate) fn drop_datagram(&mut self, len: usize) {
        let len = len.min(self.buf.len());
        self.buf.drain(..len);
        self.base += len as u64;
    }

    pub(crate) fn gap<B: Backend>(
        &mut self,
        backend: &mut B,
        session: &B::Session,
        dir: Direction,
        mut len: u64,
        collect: &mut Collect<'_>,
    ) -> Outcome {
        let mut out = Outcome::default();
        // Lost bytes inside a body the plugin skips anyway are no loss.
        if self.skip >= len {
            self.skip -= len;
            self.base += len;
            return out;
        }
        len -= self.skip;
        self.skip = 0;
        // Pending bytes were an unfinished message; after the hole they are stale.
        self.base += self.buf.len() as u64 + len;
        self.buf.clear();
        self.need = 0;
        match backend.gap(session, dir, len) {
            Ok(res) => {
                out.calls = 1;
                out.messages = res.messages.len() as u64;
                out.errors = res.error.is_some() as u32;
                collect(&res.messages, &[], &self.marks);
            }
            Err(f) => out.fault = Some(f),
        }
        out
    }

    pub(crate) fn end<B: Backend>(
        &mut self,
        backend: &mut B,
        session: &B::Session,
        dir: Direction,
        collect: &mut Collect<'_>,
    ) -> Outcome {
        let mut out = Outcome::default();
        if self.ended {
            return out;
        }
        self.ended = true;
        self.buf = Vec::new();
        match backend.end(session, dir) {
            Ok(res) => {
                out.calls = 1;
                out.messages = res.messages.len() as u64;
                out.errors = res.error.is_some() as u32;
                collect(&res.messages, &[], &self.marks);
            }
            Err(f) => out.fault = Some(f),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_map_offsets_to_the_packet_that_carried_them() {
        let mut m = Marks::default();
        m.push(0, Timestamp(10));
        m.push(100, Timestamp(20));
        m.push(250, Timestamp(30));
        assert_eq!(m.at(0), Timestamp(10));
        assert_eq!(m.at(99), Timestamp(10));
        assert_eq!(m.at(100), Timestamp(20));
        assert_eq!(m.at(1000), Timestamp(30));
    }

    #[test]
    fn marks_stay_bounded_and_old_offsets_map_to_the_oldest_kept() {
        let mut m = Marks::default();
        for i in 0..1000u64 {
            m.push(i * 10, Timestamp(i as i64));
        }
        assert_eq!(m.0.len(), Marks::CAP);
        assert_eq!(m.at(0), Timestamp((1000 - Marks::CAP) as i64));
    }

    /// The look-up from the back agrees with a plain scan, for offsets
    /// before, between, on and after the marks, with few and many marks.
    #[test]
    fn marks_lookup_agrees_with_a_scan() {
        for count in [0u64, 1, 2, 3, 4, 5, 9, 300] {
            let mut m = Marks::default();
            for i in 0..count {
                m.push(100 + i * 10, Timestamp(i as i64 + 1));
            }
            for offset in 0..(120 + count * 10) {
                let want =
                    m.0.iter()
                        .rev()
                        .find(|(o, _)| *o <= offset)
                        .or(m.0.front())
                        .map(|m| m.1)
                        .unwrap_or_default();
                assert_eq!(m.at(offset), want, "{count} marks, offset {offset}");
            }
        }
    }
}
