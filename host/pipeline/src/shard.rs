//! One shard: a flow table and a dissect stage, fed packets and ticks.

use std::sync::Arc;

use remora_core::{Endpoint, Packet, Timestamp, L4};
use remora_dissect::{Backend, DissectCounters, DissectStage};
use remora_entry::{Catalog, Entry};
use remora_flow::{FlowCounters, FlowEvent, FlowTable};
use remora_source::Chunk;

use crate::recent::{RecentFlows, RECENT_FLOWS_PER_SHARD};
use crate::stats::ShardPublisher;
use crate::{PipelineConfig, Stage};

/// Position of an entry in the deterministic output order: the event that
/// finished it (a packet, a tick or the end of input), then the flow, then
/// the order of emission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    pub seq: u64,
    /// 0: packet, 1: tick, 2: end of input, 3: end of a batch window.
    pub phase: u8,
    pub flow: u64,
    pub n: u64,
}

impl OrderKey {
    pub const END: OrderKey = OrderKey {
        seq: u64::MAX,
        phase: u8::MAX,
        flow: u64::MAX,
        n: u64::MAX,
    };

    /// Everything up to and including this event has been processed.
    pub(crate) fn watermark(seq: u64, phase: u8) -> Self {
        OrderKey {
            seq,
            phase,
            flow: u64::MAX,
            n: u64::MAX,
        }
    }
}

/// A decoded packet travelling to a shard; its payload is in one of the
/// batch's chunks, or in its own bytes.
pub(crate) struct PacketRec {
    seq: u64,
    ts: Timestamp,
    src: Endpoint,
    dst: Endpoint,
    l4: L4,
    wire_len: u32,
    /// Index into the batch's chunks, or [`OWN_BYTES`].
    source: u32,
    payload: std::ops::Range<usize>,
}

#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A payload copied into the batch's own bytes.
const OWN_BYTES: u32 = u32::MAX;

pub(crate) enum Item {
    Packet(PacketRec),
    Tick { seq: u64, now: Timestamp },
}

/// Packets and ticks for one shard. A payload read from a file stays where
/// the reader read it: the batch holds that chunk of the file (a reference
/// count per chunk, not a copy per packet). Other payloads (live capture,
/// reassembled IP fragments) are packed into one buffer, so sending a packet
/// across threads allocates nothing per packet either way.
#[derive(Default)]
pub(crate) struct Batch {
    pub items: Vec<Item>,
    pub bytes: Vec<u8>,
    pub chunks: Vec<Chunk>,
    /// Payload bytes of the packets, wherever they lie.
    payload_bytes: usize,
    /// Entries this shard made that the sink did not keep, freed here with
    /// the batch (by the thread that allocated them).
    pub returned: Vec<Entry>,
}

impl Batch {
    pub(crate) fn with_capacity(packets: usize) -> Self {
        Batch {
            items: Vec::with_capacity(packets),
            // A typical packet's payload; a batch of jumbo frames grows once
            // and keeps its size when recycled.
            // Payloads of files stay in their chunks; what a live capture
            // copies here grows the buffer once, kept when recycled.
            bytes: Vec::new(),
            chunks: Vec::new(),
            payload_bytes: 0,
            returned: Vec::new(),
        }
    }

    /// `pkt`, whose frame was read into `chunk` if that is `Some`.
    pub(crate) fn push_packet(&mut self, pkt: &Packet<'_>, seq: u64, chunk: Option<&Chunk>) {
        let shared = chunk.and_then(|c| Some((c, c.range_of(pkt.payload)?)));
        let (source, payload) = match shared {
            Some((c, range)) => {
                if !self.chunks.last().is_some_and(|l| l.same(c)) {
                    self.chunks.push(c.clone());
                }
                ((self.chunks.len() - 1) as u32, range)
            }
            None => {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(pkt.payload);
                (OWN_BYTES, start..self.bytes.len())
            }
        };
        self.payload_bytes += pkt.payload.len();
        self.items.push(Item::Packet(PacketRec {
            seq,
            ts: pkt.ts,
            src: pkt.src,
            dst: pkt.dst,
            l4: pkt.l4,
            wire_len: pkt.wire_len,
            source,
            payload,
        }));
    }

    /// The bytes a packet's payload range refers to.
    fn source(&self, p: &PacketRec) -> &[u8] {
        match p.source {
            OWN_BYTES => &self.bytes,
            i => self.chunks[i as usize].as_slice(),
        }
    }

    /// Asks the CPU to start loading the payload of item `i`, if it is a
    /// packet. The reader wrote those bytes from another core: a shard
    /// thread that copies them cold waits out a cache miss per line (the
    /// copy into the stream buffer was a fifth of a remote shard's time on
    /// the HTTP/1 bench). Issued a few packets ahead, the loads overlap.
    pub(crate) fn prefetch(&self, i: usize) {
        let Some(Item::Packet(p)) = self.items.get(i) else {
            return;
        };
        let Some(payload) = self.source(p).get(p.payload.clone()) else {
            return;
        };
        // A full-size frame's payload; beyond it the hardware prefetcher
        // has caught on to the stream.
        for line in payload.chunks(64).take(24) {
            prefetch_line(line.as_ptr());
        }
    }

    /// Whether the batch should go: `packets` items, or payloads of
    /// `bytes` (large frames: what the queues hold stays bounded in bytes
    /// too, whether the payloads are copies or chunks of the file).
    pub(crate) fn full(&self, packets: usize, bytes: usize) -> bool {
        self.items.len() >= packets || self.payload_bytes >= bytes
    }

    /// Empty, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.bytes.clear();
        self.payload_bytes = 0;
        // Lets the reader write into them again.
        self.chunks.clear();
        self.returned = Vec::new();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Where a shard's finished entries go, keyed; each event's entries are
/// appended in key order.
pub(crate) type Out = Vec<(OrderKey, Entry)>;

/// Packets per batch window: the dissect stage's queued calls run when a
/// shard first sees a packet of a later window. Windows are cut by the
/// global packet sequence, so a flow's calls are batched alike whichever
/// shard it lands in, and the output is the same for any shard count.
const WINDOW_PACKETS: u64 = 64;

/// Phase of the entries a window's batch finished.
const PHASE_WINDOW: u8 = 3;

/// Reusable room for [`sort_from`].
#[derive(Default)]
struct SortScratch {
    order: Vec<(OrderKey, u32)>,
    held: Vec<Option<Entry>>,
}

impl SortScratch {
    /// What a scratch list keeps between sorts; a larger event's lists go.
    const KEEP: usize = 4096;
}

/// Sorts what was appended to `out` since `start` by key. An entry is a
/// few hundred bytes, and a sort of them moved each several times (a
/// visible share of the host's copying on the mixed capture), so the keys
/// are sorted with their positions and each entry then moves twice.
fn sort_from(out: &mut Out, start: usize, scratch: &mut SortScratch) {
    let tail = &out[start..];
    if tail.is_sorted_by_key(|(k, _)| *k) {
        return;
    }
    let SortScratch { order, held } = scratch;
    order.clear();
    order.extend(tail.iter().enumerate().map(|(i, (k, _))| (*k, i as u32)));
    // With the position as the tie-break this is the stable order.
    order.sort_unstable();
    held.clear();
    held.extend(out.drain(start..).map(|(_, e)| Some(e)));
    out.extend(order.iter().map(|&(k, i)| {
        let e = held[i as usize].take().expect("each position once");
        (k, e)
    }));
    held.clear();
    order.shrink_to(SortScratch::KEEP);
    held.shrink_to(SortScratch::KEEP);
}

/// Keys an entry that event (`seq`, `phase`) finished as its `n`-th.
fn push_keyed(out: &mut Out, seq: u64, phase: u8, n: &mut u64, e: Entry) {
    let key = OrderKey {
        seq,
        phase,
        flow: e.flow_id,
        n: *n,
    };
    out.push((key, e));
    *n += 1;
}

pub(crate) struct ShardWorker<B: Backend> {
    flows: FlowTable,
    dissect: DissectStage<B>,
    stop_after: Stage,
    /// Both present only when someone reads live stats.
    recent: Option<RecentFlows>,
    publisher: Option<ShardPublisher>,
    /// First sequence number of the next batch window.
    window_end: u64,
    sort: SortScratch,
}

impl<B: Backend> ShardWorker<B> {
    pub(crate) fn new(
        cfg: &PipelineConfig,
        make_backend: &dyn Fn() -> B,
        catalog: Arc<Catalog>,
        publisher: Option<ShardPublisher>,
    ) -> Self {
        ShardWorker {
            flows: FlowTable::new(cfg.flow.clone()),
            dissect: DissectStage::new(make_backend(), catalog, cfg.dissect.clone()),
            stop_after: cfg.stop_after,
            recent: publisher
                .as_ref()
                .map(|_| RecentFlows::new(RECENT_FLOWS_PER_SHARD)),
            publisher,
            window_end: 0,
            sort: SortScratch::default(),
        }
    }

    pub(crate) fn packet(&mut self, pkt: &Packet<'_>, seq: u64, out: &mut Out) {
        let mut n = 0u64;
        if self.stop_after < Stage::Dissect {
            match &mut self.recent {
                None => self.flows.process(pkt, seq, &mut |_| {}),
                Some(r) => {
                    self.flows.process(pkt, seq, &mut |ev| r.on_event(&ev));
                    r.on_packet(pkt);
                }
            }
            return;
        }
        if seq >= self.window_end {
            if self.window_end > 0 {
                self.flush_window(self.window_end - 1, PHASE_WINDOW, out);
            }
            self.window_end = (seq / WINDOW_PACKETS + 1) * WINDOW_PACKETS;
        }
        let dissect = &mut self.dissect;
        let recent = &mut self.recent;
        self.flows.process(pkt, seq, &mut |ev| {
            if let Some(r) = recent.as_mut() {
                r.on_event(&ev);
            }
            dissect.on_event(ev, &mut |e| {
                let key = OrderKey {
                    seq,
                    phase: 0,
                    flow: 0,
                    n,
                };
                out.push((key, e));
                n += 1;
            })
        });
        if let Some(r) = recent {
            r.on_packet(pkt);
        }
    }

    /// Run the dissect stage's queued calls; their entries leave sorted,
    /// keyed as finished by event (`seq`, `phase`).
    fn flush_window(&mut self, seq: u64, phase: u8, out: &mut Out) {
        let start = out.len();
        self.flush_into(out, seq, phase, 0);
        sort_from(out, start, &mut self.sort);
    }

    /// Appends the entries of the queued calls, keyed from `n`; returns the
    /// next `n`.
    fn flush_into(&mut self, out: &mut Out, seq: u64, phase: u8, mut n: u64) -> u64 {
        self.dissect
            .flush(&mut |e: Entry| push_keyed(out, seq, phase, &mut n, e));
        n
    }

    fn timed(&mut self, seq: u64, phase: u8, now: Option<Timestamp>, out: &mut Out) {
        let full = self.stop_after == Stage::Dissect;
        // Queued calls first: their bytes came before this event. Those of
        // a window already over are its batch, keyed as such (a shard that
        // saw every packet ran them at the window's end).
        let mut n = 0;
        if full && self.window_end > 0 && seq >= self.window_end {
            self.flush_window(self.window_end - 1, PHASE_WINDOW, out);
        }
        // The event's entries, sorted by key before they leave so that the
        // order never depends on how the flow table iterates.
        let start = out.len();
        if full {
            n = self.flush_into(out, seq, phase, 0);
        }
        let dissect = &mut self.dissect;
        let recent = &mut self.recent;
        let mut sink = |ev: FlowEvent<'_>| {
            if let Some(r) = recent.as_mut() {
                r.on_event(&ev);
            }
            if full {
                dissect.on_event(ev, &mut |e: Entry| push_keyed(out, seq, phase, &mut n, e))
            }
        };
        match now {
            Some(now) => self.flows.advance(now, &mut sink),
            None => self.flows.finish(&mut sink),
        }
        // What those events queued (ends and closes of idle flows; all of
        // them at the end) runs now, under the same event.
        if full {
            self.flush_into(out, seq, phase, n);
        }
        sort_from(out, start, &mut self.sort);
    }

    pub(crate) fn tick(&mut self, seq: u64, now: Timestamp, out: &mut Out) {
        self.timed(seq, 1, Some(now), out);
        self.publish();
    }

    pub(crate) fn finish(&mut self, out: &mut Out) {
        self.timed(u64::MAX, 2, None, out);
        self.publish();
    }

    fn publish(&mut self) {
        if let (Some(p), Some(r)) = (&self.publisher, &mut self.recent) {
            p.publish(self.flows.counters(), self.dissect.counters(), r);
        }
    }

    /// Process one item of `batch`; returns the watermark after it.
    pub(crate) fn item(&mut self, item: &Item, batch: &Batch, out: &mut Out) -> OrderKey {
        match item {
            Item::Packet(p) => {
                let pkt = Packet {
                    ts: p.ts,
                    src: p.src,
                    dst: p.dst,
                    l4: p.l4,
                    payload: &batch.source(p)[p.payload.clone()],
                    wire_len: p.wire_len,
                };
                self.packet(&pkt, p.seq, out);
                OrderKey::watermark(p.seq, 0)
            }
            Item::Tick { seq, now } => {
                self.tick(*seq, *now, out);
                OrderKey::watermark(*seq, 1)
            }
        }
    }

    pub(crate) fn counters(&self) -> (FlowCounters, DissectCounters) {
        (self.flows.counters(), self.dissect.counters())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn udp(payload: &[u8]) -> Packet<'_> {
        let ep = |port| Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        Packet {
            ts: Timestamp::default(),
            src: ep(40000),
            dst: ep(53),
            l4: L4::Udp,
            payload,
            wire_len: payload.len() as u32,
        }
    }

    #[test]
    fn a_batch_closes_by_packets_or_by_payload_bytes() {
        let mut small = Batch::with_capacity(4);
        for seq in 0..3 {
            small.push_packet(&udp(&[7; 100]), seq, None);
            assert!(!small.full(4, 1024), "{seq}");
        }
        small.push_packet(&udp(&[7; 100]), 3, None);
        assert!(small.full(4, 1024));

        let mut large = Batch::with_capacity(4);
        large.push_packet(&udp(&[7; 600]), 0, None);
        assert!(!large.full(4, 1024));
        large.push_packet(&udp(&[7; 600]), 1, None);
        assert!(large.full(4, 1024), "1200 payload bytes of 1024");
        // Recycled batches start counting again.
        large.clear();
        assert!(!large.full(4, 1024));
        large.push_packet(&udp(&[7; 600]), 2, None);
        assert!(!large.full(4, 1024));
    }

    #[test]
    fn sorting_a_tail_by_positions_is_the_stable_sort_of_it() {
        let entry = |id: u64| Entry {
            id,
            flow_id: 0,
            plugin: 0,
            protocol: 0,
            transport: remora_core::Transport::Tcp,
            client: Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1),
            server: Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2),
            request: None,
            response: None,
            standalone: true,
        };
        let mut scratch = SortScratch::default();
        // A pseudo-random sequence with repeated keys, so ties occur; the
        // entry id records each one's original position.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 2, 5, 20, 33, 200] {
            for start in [0usize, 3] {
                let mut out: Out = (0..start + len)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = OrderKey {
                            seq: x % 4,
                            phase: (x >> 8) as u8 % 2,
                            flow: (x >> 16) % 3,
                            n: 0,
                        };
                        (key, entry(i as u64))
                    })
                    .collect();
                let mut want = out.clone();
                want[start..].sort_by_key(|(k, _)| *k);
                sort_from(&mut out, start, &mut scratch);
                let ids = |o: &Out| o.iter().map(|(k, e)| (*k, e.id)).collect::<Vec<_>>();
                assert_eq!(ids(&out), ids(&want), "len {len} from {start}");
            }
        }
    }

    #[test]
    fn prefetching_any_index_is_harmless() {
        let mut b = Batch::with_capacity(4);
        b.push_packet(&udp(&[1; 3000]), 0, None);
        b.push_packet(&udp(&[]), 1, None);
        b.items.push(Item::Tick {
            seq: 2,
            now: Timestamp::default(),
        });
        for i in 0..8 {
            b.prefetch(i);
        }
        assert_eq!(b.items.len(), 3);
    }
}
