//! The flow table: a slab of flows indexed by a hash table, with one intrusive
//! LRU list per transport (idle expiry and eviction walk only from the head)
//! and an ordered set of flows holding holes (gap timeouts).

use std::collections::BTreeMap;

use hashbrown::HashTable;

use remora_core::{Direction, DropReason, Endpoint, FlowKey, Packet, Timestamp, Transport, L4};

use crate::stream::{Ctx, Out, RxState, Stream};
use crate::{CloseReason, FlowConfig, FlowCounters, FlowEvent, FlowId, FlowInfo, FlowStats};
use slab::Slab;

mod slab;

const NIL: u32 = u32::MAX;

struct Flow {
    info: FlowInfo,
    stats: FlowStats,
    /// Receive state per direction (TCP only), indexed by `Direction::index`.
    rx: [Stream; 2],
    /// Neighbours in the LRU list of its transport.
    prev: u32,
    next: u32,
    /// Listed in `FlowTable::holey`.
    holey: bool,
}

#[derive(Clone, Copy)]
struct Lru {
    head: u32,
    tail: u32,
}

/// Bidirectional flow table with TCP reassembly. Single-threaded; shard flows
/// across tables by `FlowKey::symmetric_hash` for parallelism.
pub struct FlowTable {
    cfg: FlowConfig,
    /// Slab indices by the hash of their flow's key. The keys are the
    /// flows' own endpoints, so a bucket is 4 bytes rather than a copy of
    /// the key (48): a port scan's table stays small enough to cache.
    map: HashTable<u32>,
    /// Keyed per table: a capture cannot choose flows that collide.
    hasher: ahash::RandomState,
    slab: Slab<Flow>,
    /// Least recently active first; index 0 TCP, 1 UDP.
    lru: [Lru; 2],
    /// Flows with a hole in some direction, by id.
    holey: BTreeMap<FlowId, u32>,
    counters: FlowCounters,
    scratch: Vec<(FlowId, u32)>,
}

fn lru_index(t: Transport) -> usize {
    match t {
        Transport::Tcp => 0,
        Transport::Udp => 1,
    }
}

/// Which endpoint serves, without a SYN: the only non-ephemeral port
/// (< 49152) if exactly one is, else the lower port (`dst` on a tie).
fn server_by_port(src: Endpoint, dst: Endpoint) -> bool {
    const EPHEMERAL: u16 = 49152;
    match (src.port < EPHEMERAL, dst.port < EPHEMERAL) {
        (true, false) => true,
        (false, true) => false,
        _ => src.port < dst.port,
    }
}

/// Which end of a UDP flow is the client, from its first datagram: a
/// well-known port (< 1024) on exactly one side serves (a reply seen first
/// when the capture started mid-exchange); otherwise the sender of the first
/// datagram is the client, so a server on a high port (a DNS server on
/// 15353 or 53535) is not mistaken for its client.
fn udp_client_is_src(src: Endpoint, dst: Endpoint) -> bool {
    const WELL_KNOWN: u16 = 1024;
    !(src.port < WELL_KNOWN && dst.port >= WELL_KNOWN)
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            map: HashTable::new(),
            hasher: ahash::RandomState::new(),
            slab: Slab::new(),
            lru: [Lru {
                head: NIL,
                tail: NIL,
            }; 2],
            holey: BTreeMap::new(),
            counters: FlowCounters::default(),
            scratch: Vec::new(),
        }
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// Flows tracked right now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn counters(&self) -> FlowCounters {
        FlowCounters {
            flows_active: self.map.len() as u64,
            ..self.counters
        }
    }

    fn flow(&self, idx: u32) -> &Flow {
        self.slab.get(idx)
    }

    fn flow_mut(&mut self, idx: u32) -> &mut Flow {
        self.slab.get_mut(idx)
    }

    // ---- LRU ----

    fn lru_unlink(&mut self, idx: u32) {
        let f = self.flow(idx);
        let (prev, next, l) = (f.prev, f.next, lru_index(f.info.transport));
        match prev {
            NIL => self.lru[l].head = next,
            p => self.flow_mut(p).next = next,
        }
        match next {
            NIL => self.lru[l].tail = prev,
            n => self.flow_mut(n).prev = prev,
        }
    }

    fn lru_push_back(&mut self, idx: u32) {
        let l = lru_index(self.flow(idx).info.transport);
        let tail = self.lru[l].tail;
        {
            let f = self.flow_mut(idx);
            f.prev = tail;
            f.next = NIL;
        }
        match tail {
            NIL => self.lru[l].head = idx,
            t => self.flow_mut(t).next = idx,
        }
        self.lru[l].tail = idx;
    }

    fn touch(&mut self, idx: u32) {
        let l = lru_index(self.flow(idx).info.transport);
        if self.lru[l].tail != idx {
            self.lru_unlink(idx);
            self.lru_push_back(idx);
        }
    }

    fn sync_holey(&mut self, idx: u32) {
        let f = self.slab.get_mut(idx);
        let holey = f.rx.iter().any(Stream::has_hole);
        if holey != f.holey {
            f.holey = holey;
            if holey {
                self.holey.insert(f.info.id, idx);
            } else {
                self.holey.remove(&f.info.id);
            }
        }
    }

    // ---- lifecycle ----

    /// The flow of `key` (whose hash is `hash`), if tracked.
    fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        self.map
            .find(hash, |&i| self.slab.get(i).info.has_key(key))
            .copied()
    }

    /// Opens the flow of `pkt`, whose key hashes to `hash`.
    fn open(
        &mut self,
        pkt: &Packet<'_>,
        seq: u64,
        hash: u64,
        sink: &mut dyn FnMut(FlowEvent<'_>),
    ) -> u32 {
        if self.map.len() >= self.cfg.max_flows.max(1) {
            self.evict_one(pkt.ts, sink);
        }
        let (client_is_src, syn_seen) = match pkt.l4 {
            L4::Tcp { flags, .. } if flags.syn => (!flags.ack, true),
            L4::Tcp { .. } => (!server_by_port(pkt.src, pkt.dst), false),
            _ => (udp_client_is_src(pkt.src, pkt.dst), false),
        };
        let (client, server) = if client_is_src {
            (pkt.src, pkt.dst)
        } else {
            (pkt.dst, pkt.src)
        };
        let flow = Flow {
            info: FlowInfo {
                id: seq,
                transport: pkt.l4.transport(),
                client,
                server,
                first_seen: pkt.ts,
                syn_seen,
            },
            stats: FlowStats {
                last_seen: pkt.ts,
                ..FlowStats::default()
            },
            rx: [Stream::new(), Stream::new()],
            prev: NIL,
            next: NIL,
            holey: false,
        };
        let idx = self.slab.insert(flow);
        self.lru_push_back(idx);
        self.map.insert_unique(hash, idx, |&i| {
            self.hasher.hash_one(self.slab.get(i).info.key())
        });
        self.counters.flows_opened += 1;
        sink(FlowEvent::Open {
            flow: &self.flow(idx).info,
        });
        idx
    }

    /// Remove a flow: deliver what is buffered, `End` open directions, `Close`.
    fn close(
        &mut self,
        idx: u32,
        reason: CloseReason,
        ts: Timestamp,
        sink: &mut dyn FnMut(FlowEvent<'_>),
    ) {
        self.lru_unlink(idx);
        let mut flow = self.slab.remove(idx);
        let hash = self.hasher.hash_one(flow.info.key());
        self.map
            .find_entry(hash, |&i| i == idx)
            .expect("a tracked flow is in the map")
            .remove();
        if flow.holey {
            self.holey.remove(&flow.info.id);
        }
        let mut ctx = Ctx {
            cfg: &self.cfg,
            c: &mut self.counters,
        };
        for dir in Direction::BOTH {
            let mut out = Out {
                info: &flow.info,
                dir,
                sink: &mut *sink,
            };
            flow.rx[dir.index()].close(ts, &mut ctx, &mut out);
        }
        self.counters.flows_closed.add(reason, 1);
        sink(FlowEvent::Close {
            flow: &flow.info,
            ts,
            reason,
            stats: flow.stats,
        });
    }

    /// Make room: close the least recently active flow of either transport.
    fn evict_one(&mut self, ts: Timestamp, sink: &mut dyn FnMut(FlowEvent<'_>)) {
        let age = |t: &Self, i: u32| (t.flow(i).stats.last_seen, t.flow(i).info.id);
        let victim = match (self.lru[0].head, self.lru[1].head) {
            (NIL, NIL) => return,
            (a, NIL) => a,
            (NIL, b) => b,
            (a, b) => {
                if age(self, a) <= age(self, b) {
                    a
                } else {
                    b
                }
            }
        };
        self.counters.drops.add(DropReason::FlowTableFull, 1);
        self.close(victim, CloseReason::Evicted, ts, sink);
    }

    /// A SYN (without ACK) on a live flow starts a new connection if the old
    /// one finished in that direction or used another ISN.
    fn is_new_connection(&self, idx: u32, dir: Direction, seq: u32) -> bool {
        let rx = &self.flow(idx).rx[dir.index()];
        match rx.state() {
            RxState::Unsynced => false,
            RxState::Ended => true,
            RxState::Open => rx.isn() != Some(seq),
        }
    }

    // ---- public API ----

    /// One decoded packet. `seq` is its global packet number in the capture; a
    /// flow created by it gets `id = seq`, so ids do not depend on sharding.
    ///
    /// A TCP packet with RST, or without payload and without SYN, does not
    /// open a flow (it is counted, but a late ACK or RST after a close must not
    /// resurrect the flow).
    pub fn process(&mut self, pkt: &Packet<'_>, seq: u64, sink: &mut dyn FnMut(FlowEvent<'_>)) {
        self.counters.packets += 1;
        self.counters.payload_bytes += pkt.payload.len() as u64;
        let key = pkt.flow_key();
        let hash = self.hasher.hash_one(key);
        let idx = match self.find(hash, &key) {
            Some(idx) => {
                let reuse = match pkt.l4 {
                    L4::Tcp { seq: s, flags, .. } if flags.syn && !flags.ack => {
                        let dir = self.direction(idx, pkt);
                        self.is_new_connection(idx, dir, s)
                    }
                    _ => false,
                };
                if reuse {
                    let f = self.flow(idx);
                    let fin_seen = f.rx.iter().any(|r| r.state() == RxState::Ended);
                    let reason = if fin_seen {
                        CloseReason::Fin
                    } else {
                        CloseReason::Evicted
                    };
                    self.close(idx, reason, pkt.ts, sink);
                    self.open(pkt, seq, hash, sink)
                } else {
                    self.touch(idx);
                    idx
                }
            }
            None => {
                if let L4::Tcp { flags, .. } = pkt.l4 {
                    if flags.rst || (!flags.syn && pkt.payload.is_empty()) {
                        return;
                    }
                }
                self.open(pkt, seq, hash, sink)
            }
        };
        let dir = self.direction(idx, pkt);
        {
            let st = &mut self.flow_mut(idx).stats;
            st.packets[dir.index()] += 1;
            st.bytes[dir.index()] += pkt.payload.len() as u64;
            st.last_seen = st.last_seen.max(pkt.ts);
        }
        match pkt.l4 {
            L4::Udp => {
                let f = self.flow(idx);
                sink(FlowEvent::Datagram {
                    flow: &f.info,
                    dir,
                    ts: pkt.ts,
                    data: pkt.payload,
                });
            }
            L4::Tcp { seq: s, flags, .. } => {
                if flags.rst {
                    self.counters.retransmitted_bytes += pkt.payload.len() as u64;
                    self.close(idx, CloseReason::Rst, pkt.ts, sink);
                    return;
                }
                let f = self.slab.get_mut(idx);
                let mut ctx = Ctx {
                    cfg: &self.cfg,
                    c: &mut self.counters,
                };
                let mut out = Out {
                    info: &f.info,
                    dir,
                    sink: &mut *sink,
                };
                f.rx[dir.index()].segment(
                    s,
                    flags.syn,
                    flags.fin,
                    pkt.payload,
                    pkt.ts,
                    &mut ctx,
                    &mut out,
                );
                if f.rx.iter().all(|r| r.state() == RxState::Ended) {
                    self.close(idx, CloseReason::Fin, pkt.ts, sink);
                } else {
                    self.sync_holey(idx);
                }
            }
        }
    }

    fn direction(&self, idx: u32, pkt: &Packet<'_>) -> Direction {
        if pkt.src == self.flow(idx).info.client {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }

    /// Capture time advanced to `now`: close idle flows, then declare holes
    /// older than the gap timeout. Both in ascending `FlowId` order.
    pub fn advance(&mut self, now: Timestamp, sink: &mut dyn FnMut(FlowEvent<'_>)) {
        let mut todo = std::mem::take(&mut self.scratch);
        todo.clear();
        for (l, timeout) in [
            (0, self.cfg.tcp_idle_timeout_us),
            (1, self.cfg.udp_idle_timeout_us),
        ] {
            let mut i = self.lru[l].head;
            while i != NIL {
                let f = self.flow(i);
                if now.micros().saturating_sub(f.stats.last_seen.micros()) < timeout {
                    break;
                }
                todo.push((f.info.id, i));
                i = f.next;
            }
        }
        todo.sort_unstable();
        for &(_, idx) in &todo {
            self.close(idx, CloseReason::Idle, now, sink);
        }

        todo.clear();
        todo.extend(self.holey.iter().map(|(&id, &idx)| (id, idx)));
        for &(_, idx) in &todo {
            let f = self.slab.get_mut(idx);
            let mut ctx = Ctx {
                cfg: &self.cfg,
                c: &mut self.counters,
            };
            for dir in Direction::BOTH {
                let mut out = Out {
                    info: &f.info,
                    dir,
                    sink: &mut *sink,
                };
                f.rx[dir.index()].expire_gaps(now, &mut ctx, &mut out);
            }
            if f.rx.iter().all(|r| r.state() == RxState::Ended) {
                self.close(idx, CloseReason::Fin, now, sink);
            } else {
                self.sync_holey(idx);
            }
        }
        self.scratch = todo;
    }

    /// End of input: deliver what can be delivered (gaps for holes), `End`
    /// both directions and `Close` every flow, in ascending `FlowId` order.
    pub fn finish(&mut self, sink: &mut dyn FnMut(FlowEvent<'_>)) {
        let mut todo: Vec<(FlowId, u32, Timestamp)> = self
            .slab
            .iter()
            .map(|(i, f)| (f.info.id, i, f.stats.last_seen))
            .collect();
        todo.sort_unstable();
        for (_, idx, ts) in todo {
            self.close(idx, CloseReason::EndOfInput, ts, sink);
        }
    }
}

#[cfg(test)]
mod tests;
