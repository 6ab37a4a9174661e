//! One direction of a TCP connection: an explicit receive state machine with a
//! bounded out-of-order buffer.
//!
//! Stream offsets are `u64` and never wrap; sequence numbers are `u32` and are
//! compared modulo 2^32 relative to `next_seq` (the sequence number of the byte
//! at `next_off`), so a segment is placed correctly as long as it lies within
//! ±2 GiB of the delivery point.

use std::collections::BTreeMap;

use remora_core::{Direction, DropReason, Timestamp};

use crate::{FlowConfig, FlowCounters, FlowEvent, FlowInfo};

/// Receive state of one direction of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxState {
    /// Nothing seen in this direction yet: the stream origin is unknown.
    Unsynced,
    /// Origin known (from the SYN, or the first segment seen); delivering.
    Open,
    /// `End` emitted (FIN reached, RST, or flow closed); later segments are ignored.
    Ended,
}

/// What a stream needs from its table besides itself.
pub(crate) struct Ctx<'c> {
    pub cfg: &'c FlowConfig,
    pub c: &'c mut FlowCounters,
}

/// Where a stream's events go.
pub(crate) struct Out<'o, 's> {
    pub info: &'o FlowInfo,
    pub dir: Direction,
    pub sink: &'o mut (dyn FnMut(FlowEvent<'_>) + 's),
}

impl Out<'_, '_> {
    fn data(&mut self, ts: Timestamp, offset: u64, data: &[u8]) {
        (self.sink)(FlowEvent::Data {
            flow: self.info,
            dir: self.dir,
            ts,
            offset,
            data,
        });
    }
}

/// A buffered out-of-order piece. Pieces never overlap.
struct Seg {
    data: Box<[u8]>,
    /// Capture time it arrived: the hole in front of it existed since then.
    ts: Timestamp,
}

pub(crate) struct Stream {
    state: RxState,
    /// ISN, when a SYN was seen.
    isn: Option<u32>,
    /// Sequence number of the byte at `next_off`.
    next_seq: u32,
    /// Offset of the next byte to deliver.
    next_off: u64,
    /// Offset just past the last byte (FIN's sequence number), first FIN wins.
    fin_off: Option<u64>,
    fin_ts: Timestamp,
    /// Out-of-order pieces keyed by offset; all keys are > `next_off`.
    ooo: BTreeMap<u64, Seg>,
    buffered: usize,
}

impl Stream {
    pub fn new() -> Self {
        Stream {
            state: RxState::Unsynced,
            isn: None,
            next_seq: 0,
            next_off: 0,
            fin_off: None,
            fin_ts: Timestamp::default(),
            ooo: BTreeMap::new(),
            buffered: 0,
        }
    }

    pub fn state(&self) -> RxState {
        self.state
    }

    pub fn isn(&self) -> Option<u32> {
        self.isn
    }

    /// Bytes before the FIN or before buffered data are missing.
    pub fn has_hole(&self) -> bool {
        self.state == RxState::Open
            && (!self.ooo.is_empty() || self.fin_off.is_some_and(|f| f > self.next_off))
    }

    /// Since when the hole in front has existed (at least): the oldest arrival
    /// of anything waiting behind it.
    fn hole_since(&self) -> Option<Timestamp> {
        if !self.has_hole() {
            return None;
        }
        let fin = self.fin_off.map(|_| self.fin_ts);
        self.ooo.values().map(|s| s.ts).chain(fin).min()
    }

    fn advance(&mut self, n: u64) {
        self.next_off += n;
        self.next_seq = self.next_seq.wrapping_add(n as u32);
    }

    /// One TCP segment (RST is handled by the table). Returns true if this
    /// direction ended now.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        ts: Timestamp,
        ctx: &mut Ctx<'_>,
        out: &mut Out<'_, '_>,
    ) -> bool {
        match self.state {
            RxState::Ended => {
                ctx.c.retransmitted_bytes += payload.len() as u64;
                return false;
            }
            RxState::Unsynced => {
                if syn {
                    self.isn = Some(seq);
                    self.next_seq = seq.wrapping_add(1);
                } else {
                    self.next_seq = seq;
                }
                self.state = RxState::Open;
            }
            RxState::Open => {}
        }
        let data_seq = seq.wrapping_add(syn as u32);
        let rel = data_seq.wrapping_sub(self.next_seq) as i32 as i64;
        let raw_start = self.next_off as i64 + rel;
        let raw_end = raw_start + payload.len() as i64;
        if fin && self.fin_off.is_none() && raw_end >= self.next_off as i64 {
            self.set_fin(raw_end as u64, ts, ctx);
        }
        // Clip to [0, fin).
        let mut data = payload;
        let mut start = raw_start;
        if start < 0 {
            let skip = ((-start) as usize).min(data.len());
            ctx.c.retransmitted_bytes += skip as u64;
            data = &data[skip..];
            start = 0;
        }
        let start = start as u64;
        if let Some(f) = self.fin_off {
            let keep = f.saturating_sub(start).min(data.len() as u64) as usize;
            ctx.c.retransmitted_bytes += (data.len() - keep) as u64;
            data = &data[..keep];
        }
        if !data.is_empty() {
            let end = start + data.len() as u64;
            if end <= self.next_off {
                ctx.c.retransmitted_bytes += data.len() as u64;
            } else if start <= self.next_off {
                self.deliver(start, data, ts, ctx, out);
            } else {
                ctx.c.out_of_order_segments += 1;
                self.buffer(start, data, ts, ctx, out);
            }
        }
        self.check_fin(ts, out)
    }

    fn set_fin(&mut self, f: u64, ts: Timestamp, ctx: &mut Ctx<'_>) {
        self.fin_off = Some(f);
        self.fin_ts = ts;
        // Nothing can follow the FIN: drop buffered bytes at or past it.
        while let Some(mut e) = self.ooo.last_entry() {
            let k = *e.key();
            let len = e.get().data.len() as u64;
            if k + len <= f {
                break;
            }
            let keep = f.saturating_sub(k) as usize;
            let cut = len as usize - keep;
            if keep == 0 {
                e.remove();
            } else {
                let seg = e.get_mut();
                seg.data = seg.data[..keep].into();
            }
            self.release(cut, ctx);
            ctx.c.retransmitted_bytes += cut as u64;
        }
    }

    fn release(&mut self, n: usize, ctx: &mut Ctx<'_>) {
        self.buffered -= n;
        ctx.c.buffered_bytes -= n as u64;
    }

    /// `data` starts at or before `next_off` and ends after it: deliver it
    /// straight from the packet, interleaved with buffered pieces (which win
    /// where they overlap), then everything buffered that became contiguous.
    fn deliver(
        &mut self,
        start: u64,
        data: &[u8],
        ts: Timestamp,
        ctx: &mut Ctx<'_>,
        out: &mut Out<'_, '_>,
    ) {
        let skip = (self.next_off - start) as usize;
        ctx.c.retransmitted_bytes += skip as u64;
        let mut rest = &data[skip..]; // starts at next_off
        loop {
            let first = self.ooo.first_key_value().map(|(&k, _)| k);
            match first {
                Some(k) if k == self.next_off => {
                    let seg = self.ooo.pop_first().expect("non-empty").1;
                    let n = seg.data.len();
                    self.release(n, ctx);
                    out.data(ts, self.next_off, &seg.data);
                    self.advance(n as u64);
                    let covered = n.min(rest.len());
                    ctx.c.retransmitted_bytes += covered as u64;
                    rest = &rest[covered..];
                }
                _ if rest.is_empty() => break,
                _ => {
                    let lim = first.map_or(rest.len(), |k| {
                        ((k - self.next_off) as usize).min(rest.len())
                    });
                    out.data(ts, self.next_off, &rest[..lim]);
                    self.advance(lim as u64);
                    rest = &rest[lim..];
                }
            }
        }
    }

    /// Pieces of `[s, e)` not covered by buffered data.
    fn uncovered(&self, s: u64, e: u64) -> Vec<(u64, u64)> {
        let mut pieces = Vec::new();
        let mut cur = s;
        if let Some((&k, seg)) = self.ooo.range(..=cur).next_back() {
            cur = cur.max(k + seg.data.len() as u64);
        }
        for (&k, seg) in self.ooo.range(s..e) {
            if k > cur {
                pieces.push((cur, k.min(e)));
            }
            cur = cur.max(k + seg.data.len() as u64);
        }
        if cur < e {
            pieces.push((cur, e));
        }
        pieces
    }

    /// `data` starts after `next_off`: buffer what is new, within the limits.
    fn buffer(
        &mut self,
        start: u64,
        data: &[u8],
        ts: Timestamp,
        ctx: &mut Ctx<'_>,
        out: &mut Out<'_, '_>,
    ) {
        let end = start + data.len() as u64;
        loop {
            if start <= self.next_off {
                // Forced gaps moved the delivery point up to this segment.
                if end > self.next_off {
                    self.deliver(start, data, ts, ctx, out);
                } else {
                    ctx.c.retransmitted_bytes += data.len() as u64;
                }
                return;
            }
            let pieces = self.uncovered(start, end);
            let new: u64 = pieces.iter().map(|&(a, b)| b - a).sum();
            if new == 0 {
                ctx.c.retransmitted_bytes += data.len() as u64;
                return;
            }
            if self.buffered + new as usize > ctx.cfg.max_buffered_per_direction
                || self.ooo.len() + pieces.len() > ctx.cfg.max_segments_per_direction
            {
                if self.ooo.is_empty() {
                    // Too big to hold even alone: give up on the hole in front.
                    self.gap_to(start, ts, ctx, out);
                } else {
                    self.gap_front(ts, ctx, out);
                }
                continue;
            }
            if ctx.c.buffered_bytes + new > ctx.cfg.max_buffered_total as u64 {
                ctx.c.drops.add(DropReason::ReassemblyLimit, new);
                ctx.c.retransmitted_bytes += data.len() as u64 - new;
                return;
            }
            ctx.c.retransmitted_bytes += data.len() as u64 - new;
            for (a, b) in pieces {
                let piece = &data[(a - start) as usize..(b - start) as usize];
                self.ooo.insert(
                    a,
                    Seg {
                        data: piece.into(),
                        ts,
                    },
                );
            }
            self.buffered += new as usize;
            ctx.c.buffered_bytes += new;
            ctx.c.buffered_bytes_peak = ctx.c.buffered_bytes_peak.max(ctx.c.buffered_bytes);
            return;
        }
    }

    /// Declare `[next_off, to)` missing.
    fn gap_to(&mut self, to: u64, ts: Timestamp, ctx: &mut Ctx<'_>, out: &mut Out<'_, '_>) {
        let len = to - self.next_off;
        if len == 0 {
            return;
        }
        (out.sink)(FlowEvent::Gap {
            flow: out.info,
            dir: out.dir,
            ts,
            offset: self.next_off,
            len,
        });
        ctx.c.gaps += 1;
        ctx.c.gap_bytes += len;
        self.advance(len);
    }

    /// Declare the hole in front a gap and deliver what became contiguous.
    fn gap_front(&mut self, ts: Timestamp, ctx: &mut Ctx<'_>, out: &mut Out<'_, '_>) {
        let to = match (self.ooo.first_key_value(), self.fin_off) {
            (Some((&k, _)), _) => k,
            (None, Some(f)) => f,
            (None, None) => return,
        };
        self.gap_to(to, ts, ctx, out);
        self.deliver(self.next_off, &[], ts, ctx, out);
    }

    fn check_fin(&mut self, ts: Timestamp, out: &mut Out<'_, '_>) -> bool {
        if self.state == RxState::Open && self.fin_off == Some(self.next_off) {
            self.end(ts, out);
            return true;
        }
        false
    }

    fn end(&mut self, ts: Timestamp, out: &mut Out<'_, '_>) {
        debug_assert!(self.ooo.is_empty());
        self.state = RxState::Ended;
        (out.sink)(FlowEvent::End {
            flow: out.info,
            dir: out.dir,
            ts,
        });
    }

    /// Declare holes older than the gap timeout. Returns true if this direction
    /// ended now (its FIN became reachable).
    pub fn expire_gaps(
        &mut self,
        now: Timestamp,
        ctx: &mut Ctx<'_>,
        out: &mut Out<'_, '_>,
    ) -> bool {
        while let Some(since) = self.hole_since() {
            if now.micros().saturating_sub(since.micros()) < ctx.cfg.gap_timeout_us {
                break;
            }
            self.gap_front(now, ctx, out);
            if self.check_fin(now, out) {
                return true;
            }
        }
        false
    }

    /// The flow closes: deliver what is buffered (gaps for the holes), then
    /// `End` unless already ended.
    pub fn close(&mut self, ts: Timestamp, ctx: &mut Ctx<'_>, out: &mut Out<'_, '_>) {
        if self.state == RxState::Ended {
            return;
        }
        while self.has_hole() {
            self.gap_front(ts, ctx, out);
        }
        self.end(ts, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remora_core::{Endpoint, Transport};
    use std::net::{IpAddr, Ipv4Addr};

    /// Events of one direction, flattened for assertions.
    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        Data(u64, Vec<u8>),
        Gap(u64, u64),
        End,
    }

    struct Rig {
        s: Stream,
        cfg: FlowConfig,
        c: FlowCounters,
        info: FlowInfo,
        evs: Vec<Ev>,
    }

    impl Rig {
        fn new(cfg: FlowConfig) -> Self {
            let a = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
            let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);
            Rig {
                s: Stream::new(),
                cfg,
                c: FlowCounters::default(),
                info: FlowInfo {
                    id: 0,
                    transport: Transport::Tcp,
                    client: a,
                    server: b,
                    first_seen: Timestamp(0),
                    syn_seen: true,
                },
                evs: Vec::new(),
            }
        }

        fn with<R>(
            &mut self,
            f: impl FnOnce(&mut Stream, &mut Ctx<'_>, &mut Out<'_, '_>) -> R,
        ) -> R {
            let evs = &mut self.evs;
            let mut sink = |e: FlowEvent<'_>| match e {
                FlowEvent::Data { offset, data, .. } => evs.push(Ev::Data(offset, data.to_vec())),
                FlowEvent::Gap { offset, len, .. } => evs.push(Ev::Gap(offset, len)),
                FlowEvent::End { .. } => evs.push(Ev::End),
                other => panic!("unexpected {other:?}"),
            };
            let mut ctx = Ctx {
                cfg: &self.cfg,
                c: &mut self.c,
            };
            let mut out = Out {
                info: &self.info,
                dir: Direction::ToServer,
                sink: &mut sink,
            };
            f(&mut self.s, &mut ctx, &mut out)
        }

        fn seg(&mut self, ts: i64, seq: u32, flags: &str, data: &[u8]) -> bool {
            let syn = flags.contains('S');
            let fin = flags.contains('F');
            self.with(|s, ctx, out| s.segment(seq, syn, fin, data, Timestamp(ts), ctx, out))
        }

        fn take(&mut self) -> Vec<Ev> {
            std::mem::take(&mut self.evs)
        }
    }

    fn d(off: u64, s: &str) -> Ev {
        Ev::Data(off, s.as_bytes().to_vec())
    }

    #[test]
    fn in_order_segments_are_delivered_at_increasing_offsets() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 1000, "S", b"");
        r.seg(1, 1001, "", b"hello ");
        r.seg(2, 1007, "", b"world");
        assert_eq!(r.take(), vec![d(0, "hello "), d(6, "world")]);
        assert_eq!(r.c.buffered_bytes, 0);
        assert_eq!(r.c.out_of_order_segments, 0);
    }

    #[test]
    fn out_of_order_segment_is_buffered_until_the_hole_fills() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 0, "S", b"");
        r.seg(1, 6, "", b"world");
        assert_eq!(r.take(), vec![]);
        assert_eq!(r.c.buffered_bytes, 5);
        assert!(r.s.has_hole());
        r.seg(2, 1, "", b"hello");
        assert_eq!(r.take(), vec![d(0, "hello"), d(5, "world")]);
        assert_eq!(r.c.buffered_bytes, 0);
        assert_eq!(r.c.buffered_bytes_peak, 5);
        assert_eq!(r.c.out_of_order_segments, 1);
        assert!(!r.s.has_hole());
    }

    #[test]
    fn retransmitted_segment_is_ignored() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 0, "S", b"");
        r.seg(1, 1, "", b"abc");
        r.seg(2, 1, "", b"abc");
        r.seg(3, 4, "", b"def");
        assert_eq!(r.take(), vec![d(0, "abc"), d(3, "def")]);
        assert_eq!(r.c.retransmitted_bytes, 3);
    }

    #[test]
    fn partial_overlap_is_trimmed_and_first_copy_wins() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 0, "S", b"");
        r.seg(1, 1, "", b"abcd");
        // Overlaps delivered bytes "cd" with different content: trimmed.
        r.seg(2, 3, "", b"XYef");
        assert_eq!(r.take(), vec![d(0, "abcd"), d(4, "ef")]);
        // Out of order: buffered "ij" at 8..10, then "ghIJkl" at 6..12 — the
        // buffered copy of 8..10 wins.
        r.seg(3, 9, "", b"ij");
        r.seg(4, 7, "", b"ghIJkl");
        assert_eq!(r.take(), vec![d(6, "gh"), d(8, "ij"), d(10, "kl")]);
        // Overlap between two buffered pieces.
        r.seg(5, 16, "", b"pqr"); // 15..18
        r.seg(6, 15, "", b"oPQRs"); // 14..19, only o and s are new
        r.seg(7, 13, "", b"mn");
        assert_eq!(
            r.take(),
            vec![d(12, "mn"), d(14, "o"), d(15, "pqr"), d(18, "s")]
        );
        assert_eq!(r.c.retransmitted_bytes, 2 + 2 + 3);
    }

    #[test]
    fn sequence_numbers_wrap_around_2_pow_32() {
        let mut r = Rig::new(FlowConfig::default());
        let isn = u32::MAX - 2;
        r.seg(0, isn, "S", b"");
        // Bytes at seq MAX-1, MAX, 0, 1, ...
        r.seg(1, isn.wrapping_add(4), "", b"defg"); // out of order, past the wrap
        r.seg(2, isn.wrapping_add(1), "", b"abc");
        r.seg(3, 5, "", b"hi");
        assert_eq!(r.take(), vec![d(0, "abc"), d(3, "defg"), d(7, "hi")]);
    }

    #[test]
    fn mid_stream_pickup_starts_at_offset_zero() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 777_777, "", b"xyz");
        r.seg(1, 777_780, "", b"w");
        // An older retransmission from before the pickup is ignored.
        r.seg(2, 777_770, "", b"0123456");
        assert_eq!(r.take(), vec![d(0, "xyz"), d(3, "w")]);
        assert_eq!(r.s.isn(), None);
    }

    #[test]
    fn syn_payload_is_delivered_at_offset_zero() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 50, "S", b"GET");
        r.seg(1, 54, "", b" /");
        // A SYN retransmission carrying the same payload is a duplicate.
        r.seg(2, 50, "S", b"GET");
        assert_eq!(r.take(), vec![d(0, "GET"), d(3, " /")]);
        assert_eq!(r.c.retransmitted_bytes, 3);
    }

    #[test]
    fn fin_ends_the_direction_once_data_before_it_is_delivered() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 0, "S", b"");
        assert!(!r.seg(1, 4, "F", b"end")); // FIN arrives before "abc"
        assert_eq!(r.take(), vec![]);
        assert!(r.seg(2, 1, "", b"abc"));
        assert_eq!(r.take(), vec![d(0, "abc"), d(3, "end"), Ev::End]);
        assert_eq!(r.s.state(), RxState::Ended);
        // Anything after is ignored.
        assert!(!r.seg(3, 7, "", b"more"));
        assert_eq!(r.take(), vec![]);
    }

    #[test]
    fn bytes_past_the_fin_are_discarded() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 0, "S", b"");
        r.seg(1, 5, "", b"efgh"); // buffered 4..8
        r.seg(2, 3, "F", b"cd"); // FIN at 4: the buffered piece is past it
        assert_eq!(r.c.buffered_bytes, 2);
        r.seg(3, 1, "", b"ab");
        assert_eq!(r.take(), vec![d(0, "ab"), d(2, "cd"), Ev::End]);
    }

    #[test]
    fn hole_becomes_a_gap_after_the_timeout() {
        let cfg = FlowConfig {
            gap_timeout_us: 100,
            ..FlowConfig::default()
        };
        let mut r = Rig::new(cfg);
        r.seg(0, 0, "S", b"");
        r.seg(10, 1, "", b"ab");
        r.seg(20, 6, "", b"fg"); // hole 2..5
        r.seg(30, 10, "", b"jk"); // hole 7..9
        assert!(!r.with(|s, ctx, out| s.expire_gaps(Timestamp(119), ctx, out)));
        assert_eq!(r.take(), vec![d(0, "ab")]);
        r.with(|s, ctx, out| s.expire_gaps(Timestamp(120), ctx, out));
        // The second hole existed since t=30 only.
        assert_eq!(r.take(), vec![Ev::Gap(2, 3), d(5, "fg")]);
        r.with(|s, ctx, out| s.expire_gaps(Timestamp(130), ctx, out));
        assert_eq!(r.take(), vec![Ev::Gap(7, 2), d(9, "jk")]);
        // In order again afterwards.
        r.seg(140, 12, "", b"l");
        assert_eq!(r.take(), vec![d(11, "l")]);
        assert_eq!((r.c.gaps, r.c.gap_bytes), (2, 5));
    }

    #[test]
    fn missing_bytes_before_a_fin_become_a_gap_then_end() {
        let cfg = FlowConfig {
            gap_timeout_us: 100,
            ..FlowConfig::default()
        };
        let mut r = Rig::new(cfg);
        r.seg(0, 0, "S", b"");
        r.seg(10, 5, "F", b""); // FIN at offset 4, bytes 0..4 never seen
        assert!(r.with(|s, ctx, out| s.expire_gaps(Timestamp(110), ctx, out)));
        assert_eq!(r.take(), vec![Ev::Gap(0, 4), Ev::End]);
    }

    #[test]
    fn per_direction_buffer_limit_forces_a_gap() {
        let cfg = FlowConfig {
            max_buffered_per_direction: 8,
            ..FlowConfig::default()
        };
        let mut r = Rig::new(cfg);
        r.seg(0, 0, "S", b"");
        r.seg(1, 3, "", b"cdef"); // 2..6 buffered, hole 0..2
        r.seg(2, 9, "", b"ijkl"); // 8..12 buffered (8 bytes now), hole 6..8
        assert_eq!(r.take(), vec![]);
        r.seg(3, 13, "", b"m"); // would make 9: oldest hole goes
        assert_eq!(r.take(), vec![Ev::Gap(0, 2), d(2, "cdef")]);
        assert_eq!(r.c.buffered_bytes, 5);
        assert_eq!(r.c.drops.get(DropReason::ReassemblyLimit), 0);
    }

    #[test]
    fn segment_count_limit_forces_a_gap() {
        let cfg = FlowConfig {
            max_segments_per_direction: 2,
            ..FlowConfig::default()
        };
        let mut r = Rig::new(cfg);
        r.seg(0, 0, "S", b"");
        r.seg(1, 3, "", b"c");
        r.seg(2, 5, "", b"e");
        r.seg(3, 7, "", b"g");
        assert_eq!(r.take(), vec![Ev::Gap(0, 2), d(2, "c")]);
    }

    #[test]
    fn table_wide_buffer_limit_drops_out_of_order_data() {
        let cfg = FlowConfig {
            max_buffered_total: 4,
            ..FlowConfig::default()
        };
        let mut r = Rig::new(cfg);
        r.seg(0, 0, "S", b"");
        r.seg(1, 3, "", b"cd");
        r.seg(2, 5, "", b"efg"); // 2 + 3 > 4: dropped
        assert_eq!(r.c.drops.get(DropReason::ReassemblyLimit), 3);
        r.seg(3, 1, "", b"ab");
        assert_eq!(r.take(), vec![d(0, "ab"), d(2, "cd")]);
        r.with(|s, ctx, out| s.close(Timestamp(4), ctx, out));
        assert_eq!(r.take(), vec![Ev::End]);
    }

    #[test]
    fn close_flushes_buffered_data_behind_gaps() {
        let mut r = Rig::new(FlowConfig::default());
        r.seg(0, 0, "S", b"");
        r.seg(1, 3, "", b"c");
        r.seg(2, 6, "", b"fg");
        r.with(|s, ctx, out| s.close(Timestamp(3), ctx, out));
        assert_eq!(
            r.take(),
            vec![Ev::Gap(0, 2), d(2, "c"), Ev::Gap(3, 2), d(5, "fg"), Ev::End]
        );
        assert_eq!(r.c.buffered_bytes, 0);
    }
}
