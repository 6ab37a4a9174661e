//! One shard: a flow table and a dissect stage, fed packets and ticks.

use std::sync::Arc;

use remora_core::{Endpoint, Packet, Timestamp, L4};
use remora_dissect::{Backend, DissectCounters, DissectStage};
use remora_entry::{Catalog, Entry};
use remora_flow::{FlowCounters, FlowEvent, FlowTable};

use crate::{PipelineConfig, Stage};

/// Position of an entry in the deterministic output order: the event that
/// finished it (a packet, a tick or the end of input), then the flow, then
/// the order of emission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    pub seq: u64,
    /// 0: packet, 1: tick, 2: end of input.
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
    fn watermark(seq: u64, phase: u8) -> Self {
        OrderKey {
            seq,
            phase,
            flow: u64::MAX,
            n: u64::MAX,
        }
    }
}

/// A decoded packet travelling to a shard; its payload is in the batch's bytes.
pub(crate) struct PacketRec {
    seq: u64,
    ts: Timestamp,
    src: Endpoint,
    dst: Endpoint,
    l4: L4,
    wire_len: u32,
    payload: std::ops::Range<usize>,
}

pub(crate) enum Item {
    Packet(PacketRec),
    Tick { seq: u64, now: Timestamp },
}

/// Packets and ticks for one shard, payloads packed into one buffer so that
/// sending a packet across threads allocates nothing per packet.
#[derive(Default)]
pub(crate) struct Batch {
    pub items: Vec<Item>,
    pub bytes: Vec<u8>,
}

impl Batch {
    pub(crate) fn with_capacity(packets: usize) -> Self {
        Batch {
            items: Vec::with_capacity(packets),
            bytes: Vec::with_capacity(packets * 512),
        }
    }

    pub(crate) fn push_packet(&mut self, pkt: &Packet<'_>, seq: u64) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(pkt.payload);
        self.items.push(Item::Packet(PacketRec {
            seq,
            ts: pkt.ts,
            src: pkt.src,
            dst: pkt.dst,
            l4: pkt.l4,
            wire_len: pkt.wire_len,
            payload: start..self.bytes.len(),
        }));
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

pub(crate) type Out<'a> = dyn FnMut(OrderKey, Entry) + 'a;

pub(crate) struct ShardWorker<B: Backend> {
    flows: FlowTable,
    dissect: DissectStage<B>,
    stop_after: Stage,
    /// Entries of one tick or of the end, sorted by key before they leave so
    /// that the order never depends on how the flow table iterates.
    sorted: Vec<(OrderKey, Entry)>,
}

impl<B: Backend> ShardWorker<B> {
    pub(crate) fn new(
        cfg: &PipelineConfig,
        make_backend: &dyn Fn() -> B,
        catalog: Arc<Catalog>,
    ) -> Self {
        ShardWorker {
            flows: FlowTable::new(cfg.flow.clone()),
            dissect: DissectStage::new(make_backend(), catalog, cfg.dissect.clone()),
            stop_after: cfg.stop_after,
            sorted: Vec::new(),
        }
    }

    pub(crate) fn packet(&mut self, pkt: &Packet<'_>, seq: u64, out: &mut Out<'_>) {
        let mut n = 0u64;
        let dissect = &mut self.dissect;
        if self.stop_after < Stage::Dissect {
            self.flows.process(pkt, seq, &mut |_| {});
            return;
        }
        self.flows.process(pkt, seq, &mut |ev| {
            dissect.on_event(ev, &mut |e| {
                out(
                    OrderKey {
                        seq,
                        phase: 0,
                        flow: 0,
                        n,
                    },
                    e,
                );
                n += 1;
            })
        });
    }

    fn timed(&mut self, seq: u64, phase: u8, now: Option<Timestamp>, out: &mut Out<'_>) {
        let full = self.stop_after == Stage::Dissect;
        let dissect = &mut self.dissect;
        let sorted = &mut self.sorted;
        let mut n = 0u64;
        let mut sink = |ev: FlowEvent<'_>| {
            if full {
                dissect.on_event(ev, &mut |e: Entry| {
                    sorted.push((
                        OrderKey {
                            seq,
                            phase,
                            flow: e.flow_id,
                            n,
                        },
                        e,
                    ));
                    n += 1;
                })
            }
        };
        match now {
            Some(now) => self.flows.advance(now, &mut sink),
            None => self.flows.finish(&mut sink),
        }
        self.sorted.sort_by_key(|(k, _)| *k);
        for (k, e) in self.sorted.drain(..) {
            out(k, e);
        }
    }

    pub(crate) fn tick(&mut self, seq: u64, now: Timestamp, out: &mut Out<'_>) {
        self.timed(seq, 1, Some(now), out)
    }

    pub(crate) fn finish(&mut self, out: &mut Out<'_>) {
        self.timed(u64::MAX, 2, None, out)
    }

    /// Process one item from the reader; returns the watermark after it.
    pub(crate) fn item(&mut self, item: &Item, bytes: &[u8], out: &mut Out<'_>) -> OrderKey {
        match item {
            Item::Packet(p) => {
                let pkt = Packet {
                    ts: p.ts,
                    src: p.src,
                    dst: p.dst,
                    l4: p.l4,
                    payload: &bytes[p.payload.clone()],
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
        (self.flows.counters(), self.dissect.counters().clone())
    }
}
