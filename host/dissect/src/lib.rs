//! The dissect stage: turns reassembled byte streams into entries.
//!
//! Per flow it picks a plugin (port hints first, then each candidate's
//! `probe`), opens one session in that plugin's instance of this shard, and
//! feeds it the stream. The host owns buffering: bytes a plugin did not
//! consume are kept and passed again with the next ones; bytes it asked to
//! `skip` never cross the boundary. Messages come back tagged
//! request/response with a transaction id and are paired here into entries.
//!
//! Stream bytes are not offered at once: a flow direction with enough
//! bytes pending gets a queued call, and [`DissectStage::flush`] runs every
//! queued call in a single batch per plugin, because crossing into Wasm has
//! a fixed cost that dwarfs a small call's work. The pipeline flushes at
//! points that depend only on the packet sequence (so the output is the
//! same for any number of shards). Within a flow the calls keep the order
//! in which its bytes arrived: bytes of a direction that follow the other
//! direction's queued call get a call of their own after it (`more`: the
//! plugin continues from what the earlier call left). Each UDP datagram is
//! queued the same way, as a call of its own.
//!
//! A plugin may end its part of a flow with a protocol switch (an HTTP
//! Upgrade, say): the stage pairs and emits what that session produced,
//! closes it, and opens a session of the plugin declaring the named protocol
//! at the switch's stream offsets, handing over the bytes it still holds.
//!
//! Architecture invariant: no protocol knowledge. A flow no plugin claims is
//! counted as raw TCP/UDP; a plugin that traps or keeps failing on a flow is
//! dropped for that flow, which falls back to raw, and capture goes on.

mod backend;
mod catalog;
mod convert;
mod metered;
mod pairing;
mod select;
mod stream;

#[cfg(test)]
mod tests;

pub use backend::{Backend, BackendFault, Job};
pub use catalog::{catalog_from_runtime, schema_from_info};
pub use metered::{CallLatency, Metered, Meters, PluginMeter, LATENCY_BOUNDS_US, TIME_EVERY};

use std::sync::Arc;

use ahash::{AHashMap, AHashSet};
use remora_core::{Direction, DropReason, Drops, Timestamp, Transport};
use remora_entry::{Catalog, Entry};
use remora_flow::{FlowEvent, FlowInfo};
use remora_runtime::wit;

use pairing::Pairing;
use select::Selection;
use stream::DirStream;

#[derive(Clone, Debug)]
pub struct DissectConfig {
    /// Bytes per direction buffered while plugins probe a flow; a flow still
    /// undecided after this many bytes is raw.
    pub probe_bytes: usize,
    /// Bytes per direction a plugin may leave unconsumed before the flow falls
    /// back to raw (counted as `dissect_buffer_limit`).
    pub max_pending: usize,
    /// Parse errors on one flow before its plugin is dropped for that flow.
    pub max_errors: u32,
    /// Unpaired messages kept per flow; the oldest is emitted incomplete beyond.
    pub max_unpaired: usize,
    /// Bytes of unpaired messages kept per flow, likewise.
    pub max_unpaired_bytes: usize,
}

impl Default for DissectConfig {
    fn default() -> Self {
        DissectConfig {
            probe_bytes: 8192,
            max_pending: 1 << 20,
            max_errors: 3,
            // Deep pipelines wait in thousands (`redis-cli --pipe` runs
            // ~5,000 commands ahead of their replies); the bytes bound is
            // what holds memory.
            max_unpaired: 8192,
            max_unpaired_bytes: 4 << 20,
        }
    }
}

/// What happened in this stage, summed over flows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DissectCounters {
    /// Flows a plugin claimed.
    pub flows_dissected: u64,
    /// Flows no plugin claimed (or that fell back): plain TCP/UDP.
    pub flows_raw: u64,
    /// Flows whose plugin was dropped after faults or errors.
    pub flows_fallen_back: u64,
    pub raw_bytes: u64,
    pub plugin_calls: u64,
    /// Crossings into plugins that carried those calls (a batch is one).
    pub plugin_batches: u64,
    pub messages: u64,
    pub entries: u64,
    pub incomplete_entries: u64,
    pub parse_errors: u64,
    pub plugin_faults: u64,
    /// Plugin instances replaced when their memory was nearly full (the
    /// old one serves its open sessions to their end).
    pub plugin_renewals: u64,
    /// Flows handed from one plugin's session to another's (HTTP Upgrade).
    pub protocol_switches: u64,
    /// Switches to a protocol no loaded plugin declares, or beyond
    /// `MAX_SWITCHES_PER_FLOW`: the rest of those flows is raw.
    pub switches_unclaimed: u64,
    pub drops: Drops,
    /// Per plugin calls/errors/faults and call latency, when the backend is
    /// [`Metered`].
    pub meters: Meters,
}

impl DissectCounters {
    pub fn merge(&mut self, o: &DissectCounters) {
        self.flows_dissected += o.flows_dissected;
        self.flows_raw += o.flows_raw;
        self.flows_fallen_back += o.flows_fallen_back;
        self.raw_bytes += o.raw_bytes;
        self.plugin_calls += o.plugin_calls;
        self.plugin_batches += o.plugin_batches;
        self.messages += o.messages;
        self.entries += o.entries;
        self.incomplete_entries += o.incomplete_entries;
        self.parse_errors += o.parse_errors;
        self.plugin_faults += o.plugin_faults;
        self.plugin_renewals += o.plugin_renewals;
        self.protocol_switches += o.protocol_switches;
        self.switches_unclaimed += o.switches_unclaimed;
        self.drops.merge(&o.drops);
        self.meters.merge(&o.meters);
    }
}

/// An entry of flow `f` with no messages yet: what its entries share.
fn template_of<S>(f: &FlowDissect<S>) -> Entry {
    let (plugin, protocol) = match &f.state {
        FlowState::Dissecting {
            plugin, protocol, ..
        } => (*plugin, *protocol),
        _ => (0, 0),
    };
    Entry {
        id: 0,
        flow_id: f.flow.id,
        plugin,
        protocol,
        transport: f.flow.transport,
        client: f.flow.client,
        server: f.flow.server,
        request: None,
        response: None,
        standalone: false,
    }
}

/// The plugin and protocol index declaring `protocol` for this transport: by
/// display name first (exact), else by filter flag.
fn find_protocol(catalog: &Catalog, transport: Transport, protocol: &str) -> Option<(u16, u16)> {
    let mut by_flag = None;
    for (pi, plugin) in catalog.plugins.iter().enumerate() {
        for (qi, p) in plugin.protocols.iter().enumerate() {
            if p.transport != transport {
                continue;
            }
            if p.name == protocol {
                return Some((pi as u16, qi as u16));
            }
            if by_flag.is_none() && p.flag == protocol {
                by_flag = Some((pi as u16, qi as u16));
            }
        }
    }
    by_flag
}

enum FlowState<S> {
    Probing(Selection),
    Dissecting {
        plugin: u16,
        protocol: u16,
        session: S,
    },
    Raw,
}

struct FlowDissect<S> {
    info: wit::FlowInfo,
    flow: FlowInfo,
    state: FlowState<S>,
    dirs: [DirStream; 2],
    pairing: Pairing,
    errors: u32,
    /// Protocol switches this flow went through.
    switches: u8,
    /// Position in the stage's queue of each direction's latest call.
    queued: [Option<u32>; 2],
    /// Position of the flow's latest call (either direction).
    last: Option<u32>,
    /// Bumped whenever the session changes (switch, fall-back): queued
    /// calls of an earlier epoch are void.
    epoch: u32,
}

/// A call waiting for the next batch.
#[derive(Clone, Copy)]
struct Queued {
    flow: u64,
    dir: Direction,
    epoch: u32,
    /// Data: the direction's bytes up to this stream offset.
    end: u64,
    op: Op,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Stream bytes up to `end`.
    Data,
    /// One datagram, ending at `end` (its bytes follow the previous
    /// datagram's): a call of its own, whatever the plugin consumes.
    Datagram,
    /// The direction ended.
    End,
    /// The flow closed: its session ends and what it left unpaired is
    /// emitted, after its earlier calls.
    Close,
}

/// Bytes a queued direction may hold before its flow's calls run early.
const EARLY_FLUSH_BYTES: usize = 8 << 10;

/// Calls queued before the stage flushes on its own; the pipeline flushes
/// far earlier (every batch window), this only bounds a caller that does not.
const MAX_QUEUED: usize = 4096;

/// Switches one flow may go through; a chain longer than this (a plugin that
/// keeps switching) makes the rest of the flow raw.
const MAX_SWITCHES_PER_FLOW: u8 = 4;

/// One shard's dissect stage. Owned by one thread; takes no locks.
pub struct DissectStage<B: Backend> {
    backend: B,
    catalog: Arc<Catalog>,
    cfg: DissectConfig,
    /// Boxed: a bucket is then 16 bytes, not the ~530 of the state, so a
    /// look-up reads a small table (a UDP flood's 200,000 flows made it
    /// 105 MB, every probe of it a cache miss) and growing it moves no
    /// states.
    flows: AHashMap<u64, Box<FlowDissect<B::Session>>>,
    /// Flows no plugin claimed, by id, until they close: all a raw flow
    /// needs is to be known as raw (its bytes are counted, never held),
    /// so it keeps no state (unclaimed traffic such as TLS, or a flood of
    /// datagrams nothing recognises, would otherwise hold ~600 bytes
    /// each). A flow that fell back after dissecting keeps its state: its
    /// pairing still holds what it paired.
    raw: AHashSet<u64>,
    counters: DissectCounters,
    /// Calls waiting for the next batch, in arrival order; `None` once a
    /// flow-local flush ran it early.
    queue: Vec<Option<Queued>>,
    /// A batch's data, kept to reuse its allocation.
    scratch: Vec<u8>,
    /// Emptied call lists (rounds, per-plugin batches), kept to reuse their
    /// allocations: a window of a mixed capture makes a handful of them, and
    /// grown from empty each time they were a quarter of the stage's
    /// reallocations.
    spare_calls: Vec<Vec<Queued>>,
    /// A batch's calls sent, kept for the same reason.
    spare_sent: Vec<(Queued, bool)>,
    /// Ends of a flow without state, waiting to see whether its close
    /// follows: the table closes a flow (an RST, the end of the capture)
    /// with its ends and its close in a row, and a flow that carried
    /// nothing needs no state for them. Anything else releases them first.
    held_end: Option<HeldEnd>,
}

struct HeldEnd {
    flow: FlowInfo,
    /// By `Direction::index`.
    dirs: [bool; 2],
}

/// Spare call lists kept at most (more are freed): rounds nest only when a
/// full queue flushes from inside a flush.
const SPARE_CALL_LISTS: usize = 32;

/// Receives each finished entry, in the order the stage finished them.
pub type EntrySink<'a> = dyn FnMut(Entry) + 'a;

impl<B: Backend> DissectStage<B> {
    pub fn new(backend: B, catalog: Arc<Catalog>, cfg: DissectConfig) -> Self {
        DissectStage {
            backend,
            catalog,
            cfg,
            flows: AHashMap::new(),
            raw: AHashSet::new(),
            counters: DissectCounters::default(),
            queue: Vec::new(),
            scratch: Vec::new(),
            spare_calls: Vec::new(),
            spare_sent: Vec::new(),
            held_end: None,
        }
    }

    /// What this stage counted, with the backend's meters.
    pub fn counters(&self) -> DissectCounters {
        let mut c = self.counters.clone();
        if let Some(m) = self.backend.meters() {
            c.meters = m.clone();
        }
        c.plugin_renewals = self.backend.renewals();
        c
    }

    /// Flows this stage holds state for: those that carried bytes or a gap
    /// (or an end another event came after), are not known raw, and have
    /// not closed.
    pub fn flows_tracked(&self) -> usize {
        self.flows.len()
    }

    /// Raw flows this stage remembers as raw (by id only) until they close.
    pub fn flows_known_raw(&self) -> usize {
        self.raw.len()
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn on_event(&mut self, ev: FlowEvent<'_>, out: &mut EntrySink<'_>) {
        if let Some(held) = &self.held_end {
            let closing = matches!(ev, FlowEvent::End { .. } | FlowEvent::Close { .. });
            if !(closing && ev.flow().id == held.flow.id) {
                self.release_held_end(out);
            }
        }
        match ev {
            // A flow's state is made at its first bytes or gap (its ends
            // wait, `held_end`): a flow that never carries any (a port
            // scan, a SYN flood) then costs this stage nothing. Such a flow
            // would have ended raw without a call, which `Close` accounts
            // for.
            FlowEvent::Open { .. } => {}
            FlowEvent::Data {
                flow,
                dir,
                ts,
                offset,
                data,
            } => {
                if !self.data(flow.id, dir, ts, Some(offset), data, out) {
                    self.untracked_data(flow, dir, ts, Some(offset), data, out);
                }
            }
            FlowEvent::Datagram {
                flow,
                dir,
                ts,
                data,
            } => {
                if !self.data(flow.id, dir, ts, None, data, out) {
                    self.untracked_data(flow, dir, ts, None, data, out);
                }
            }
            FlowEvent::Gap { flow, dir, len, .. } => {
                if !self.raw.contains(&flow.id) {
                    self.track(flow);
                    self.gap(flow.id, dir, len, out)
                }
            }
            FlowEvent::End { flow, dir, .. } => {
                if self.flows.contains_key(&flow.id) {
                    self.end(flow.id, dir, out)
                } else if !self.raw.contains(&flow.id) {
                    let held = self.held_end.get_or_insert_with(|| HeldEnd {
                        flow: flow.clone(),
                        dirs: [false; 2],
                    });
                    held.dirs[dir.index()] = true;
                }
            }
            FlowEvent::Close { flow, .. } => {
                if self.flows.contains_key(&flow.id) {
                    self.close(flow.id, out)
                } else if !self.raw.remove(&flow.id) {
                    // Its ends, if held, go with it: they would have
                    // settled the probing of a flow without bytes.
                    self.held_end = None;
                    self.counters.flows_raw += 1;
                }
            }
        }
    }

    /// Bytes of a flow without state: a known raw flow's are counted; a new
    /// flow gets its state and then its bytes.
    fn untracked_data(
        &mut self,
        flow: &FlowInfo,
        dir: Direction,
        ts: Timestamp,
        offset: Option<u64>,
        data: &[u8],
        out: &mut EntrySink<'_>,
    ) {
        if !self.raw.contains(&flow.id) {
            self.track(flow);
            if self.data(flow.id, dir, ts, offset, data, out) {
                return;
            }
        }
        self.counters.raw_bytes += data.len() as u64;
    }

    /// Keeps a flow that went raw before any session as its id only.
    fn forget_raw(&mut self, id: u64) {
        let Some(f) = self.flows.get(&id) else {
            return;
        };
        // Only probing leads here: no session ran, so nothing is queued or
        // paired that the state would still be needed for.
        if matches!(f.state, FlowState::Raw) && f.last.is_none() {
            self.flows.remove(&id);
            self.raw.insert(id);
        }
    }

    /// The held ends of a flow without state, applied now that something
    /// else comes first: its state is made and each end runs as it would
    /// have when it came.
    fn release_held_end(&mut self, out: &mut EntrySink<'_>) {
        if let Some(HeldEnd { flow, dirs }) = self.held_end.take() {
            self.track(&flow);
            for dir in Direction::BOTH {
                if dirs[dir.index()] {
                    self.end(flow.id, dir, out);
                }
            }
        }
    }

    /// Makes the flow's state, once.
    fn track(&mut self, flow: &FlowInfo) {
        if self.flows.contains_key(&flow.id) || self.raw.contains(&flow.id) {
            return;
        }
        let info = wit::FlowInfo {
            id: flow.id,
            transport: match flow.transport {
                Transport::Tcp => wit::Transport::Tcp,
                Transport::Udp => wit::Transport::Udp,
            },
            client_ip: flow.client.ip.into(),
            client_port: flow.client.port,
            server_ip: flow.server.ip.into(),
            server_port: flow.server.port,
        };
        let selection = Selection::new(&self.catalog, flow);
        if selection.is_empty() {
            self.counters.flows_raw += 1;
            self.raw.insert(flow.id);
            return;
        }
        let state = FlowState::Probing(selection);
        self.flows.insert(
            flow.id,
            Box::new(FlowDissect {
                info,
                flow: flow.clone(),
                state,
                dirs: Default::default(),
                pairing: Pairing::default(),
                errors: 0,
                switches: 0,
                queued: [None; 2],
                last: None,
                epoch: 0,
            }),
        );
    }

    /// New bytes of a flow: stream bytes at `offset` (TCP), or one datagram
    /// when `offset` is `None` (UDP). False if the flow has no state (its
    /// first bytes, or a flow known raw): the caller sees to it
    /// (`untracked_data`), so the common case looks the flow up once.
    fn data(
        &mut self,
        id: u64,
        dir: Direction,
        ts: Timestamp,
        offset: Option<u64>,
        data: &[u8],
        out: &mut EntrySink<'_>,
    ) -> bool {
        let Some(f) = self.flows.get_mut(&id) else {
            return false;
        };
        match (&mut f.state, offset) {
            (FlowState::Raw, _) => self.counters.raw_bytes += data.len() as u64,
            (FlowState::Probing(sel), _) => {
                let offset = offset.unwrap_or_else(|| sel.next_offset(dir));
                sel.push(dir, offset, ts, data, self.cfg.probe_bytes);
                self.decide(id, out);
            }
            (FlowState::Dissecting { .. }, Some(offset)) => {
                self.stream(id, dir, ts, offset, data, out)
            }
            (FlowState::Dissecting { .. }, None) => self.datagram(id, dir, ts, data, out),
        }
        true
    }

    /// Run the probes; on a verdict, open a session and replay what was buffered.
    fn decide(&mut self, id: u64, out: &mut EntrySink<'_>) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let FlowState::Probing(sel) = &mut f.state else {
            return;
        };
        let verdict = sel.run(
            &mut self.backend,
            &f.info,
            self.cfg.probe_bytes,
            &mut self.counters,
        );
        match verdict {
            select::Verdict::Undecided => {}
            select::Verdict::Raw => {
                self.counters.raw_bytes += sel.buffered_bytes();
                f.state = FlowState::Raw;
                self.counters.flows_raw += 1;
                self.forget_raw(id);
            }
            select::Verdict::Chosen { plugin, protocol } => {
                let FlowState::Probing(sel) = std::mem::replace(&mut f.state, FlowState::Raw)
                else {
                    unreachable!()
                };
                match self.backend.open(plugin, &f.info) {
                    Ok(session) => {
                        self.counters.flows_dissected += 1;
                        f.state = FlowState::Dissecting {
                            plugin,
                            protocol,
                            session,
                        };
                        let udp = f.flow.transport == Transport::Udp;
                        for chunk in sel.into_chunks() {
                            let offset = (!udp).then_some(chunk.offset);
                            self.data(id, chunk.dir, chunk.ts, offset, &chunk.data, out);
                        }
                    }
                    Err(fault) => {
                        self.fault(plugin, &fault);
                        self.counters.flows_raw += 1;
                        self.forget_raw(id);
                    }
                }
            }
        }
    }

    fn fault(&mut self, plugin: u16, fault: &BackendFault) {
        if fault.refused {
            self.counters.drops.add(DropReason::PluginSessionLimit, 1);
        } else if !fault.consequence {
            self.counters.plugin_faults += 1;
            self.counters.drops.add(DropReason::PluginFault, 1);
        }
        tracing::debug!(plugin = %self.catalog.plugin(plugin).name, %fault, "plugin call failed; flow falls back to raw");
    }

    /// Queue one datagram for the next batch, like stream bytes: a flow of
    /// many small datagrams (DNS) would otherwise cross into its plugin
    /// once per packet.
    fn datagram(
        &mut self,
        id: u64,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
        out: &mut EntrySink<'_>,
    ) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let st = &mut f.dirs[dir.index()];
        let Some(end) = st.push_datagram(ts, data) else {
            return;
        };
        // Bounded like a stream's bytes: a flow whose datagrams pile up
        // within one window has its calls run early.
        let early = st.held().len() > EARLY_FLUSH_BYTES;
        self.enqueue(id, dir, end, Op::Datagram, out);
        if early {
            self.flush_flow(id, out);
        }
    }

    fn stream(
        &mut self,
        id: u64,
        dir: Direction,
        ts: Timestamp,
        offset: u64,
        data: &[u8],
        out: &mut EntrySink<'_>,
    ) {
        let max_pending = self.cfg.max_pending;
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let d = dir.index();
        let appended = f.dirs[d].append(ts, offset, data, max_pending);
        if appended.over_limit {
            self.counters.drops.add(DropReason::DissectBufferLimit, 1);
            self.flush_flow(id, out);
            self.fall_back(id, out);
            return;
        }
        let end = f.dirs[d].end_offset();
        // A flow that brings much within one window (a large body on
        // loopback) has its calls run early, so that what the plugin skips
        // is not held: bounded by the flow's own bytes, so deterministic.
        let early = f.dirs[d].held().len() > EARLY_FLUSH_BYTES;
        let queued = match (f.queued[d], f.last) {
            // This direction's call is the flow's latest: it takes the bytes.
            (Some(mine), Some(last)) if mine == last => {
                if let Some(Some(q)) = self.queue.get_mut(mine as usize) {
                    q.end = end;
                }
                true
            }
            // The other direction's call came after this one's: these bytes
            // follow it, in a call that continues this one.
            (Some(mine), _) => {
                let covered = self
                    .queue
                    .get(mine as usize)
                    .copied()
                    .flatten()
                    .map_or(end, |q| q.end);
                if end > covered {
                    self.enqueue(id, dir, end, Op::Data, out);
                }
                true
            }
            (None, _) if appended.ready => {
                self.enqueue(id, dir, end, Op::Data, out);
                true
            }
            (None, _) => false,
        };
        if queued && early {
            self.flush_flow(id, out);
        }
    }

    fn enqueue(&mut self, id: u64, dir: Direction, end: u64, op: Op, out: &mut EntrySink<'_>) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let at = Some(self.queue.len() as u32);
        f.queued[dir.index()] = at;
        f.last = at;
        self.queue.push(Some(Queued {
            flow: id,
            dir,
            epoch: f.epoch,
            end,
            op,
        }));
        if self.queue.len() >= MAX_QUEUED {
            self.flush(out);
        }
    }

    /// Run every queued call: one batch per plugin. A direction whose last
    /// call made progress and left enough for another goes again in a next
    /// round (bounded).
    pub fn flush(&mut self, out: &mut EntrySink<'_>) {
        let mut round = self.calls_list();
        round.extend(self.queue.drain(..).flatten());
        self.run_queued(round, out);
    }

    /// An empty call list, reusing a spare allocation when there is one.
    fn calls_list(&mut self) -> Vec<Queued> {
        self.spare_calls.pop().unwrap_or_default()
    }

    /// Keeps an emptied call list's allocation for [`Self::calls_list`].
    fn recycle(&mut self, mut calls: Vec<Queued>) {
        if calls.capacity() > 0 && self.spare_calls.len() < SPARE_CALL_LISTS {
            calls.clear();
            self.spare_calls.push(calls);
        }
    }

    /// Run the calls queued for one flow now (before an event that must
    /// come after them).
    fn flush_flow(&mut self, id: u64, out: &mut EntrySink<'_>) {
        let Some(f) = self.flows.get(&id) else {
            return;
        };
        let Some(last) = f.last else {
            return;
        };
        // The flow's calls all sit at or before `last`.
        let mut mine = self.calls_list();
        mine.extend(
            self.queue[..=last as usize]
                .iter_mut()
                .filter(|q| q.is_some_and(|q| q.flow == id))
                .filter_map(Option::take),
        );
        self.run_queued(mine, out);
    }

    fn run_queued(&mut self, mut round: Vec<Queued>, out: &mut EntrySink<'_>) {
        for _ in 0..stream::MAX_CALLS_PER_EVENT {
            if round.is_empty() {
                self.recycle(round);
                return;
            }
            let mut next = self.calls_list();
            // The round's calls by plugin, in the order each plugin first
            // comes: one look-up per call here, and each batch goes over
            // its own calls only (a window of a mixed capture has calls of
            // several plugins).
            let mut batches: Vec<(u16, Vec<Queued>)> = Vec::new();
            // Ends and closes whose flow lost its session (or got another,
            // by a switch) since they were queued: done without a batch.
            let mut orphans = Vec::new();
            for q in &round {
                let Some(f) = self.flows.get_mut(&q.flow) else {
                    continue;
                };
                f.queued[q.dir.index()] = None;
                f.last = None;
                match &f.state {
                    FlowState::Dissecting { plugin, .. } if f.epoch == q.epoch => {
                        match batches.iter_mut().find(|(p, _)| p == plugin) {
                            Some((_, calls)) => calls.push(*q),
                            None => {
                                // `calls_list` would borrow all of self; `f` is held.
                                let mut calls = self.spare_calls.pop().unwrap_or_default();
                                calls.push(*q);
                                batches.push((*plugin, calls));
                            }
                        }
                    }
                    _ if matches!(q.op, Op::End | Op::Close) => orphans.push(*q),
                    _ => {}
                }
            }
            for (plugin, calls) in batches {
                self.run_batch(plugin, &calls, &mut next, out);
                self.recycle(calls);
            }
            for q in orphans {
                match q.op {
                    Op::End => self.end_now(q.flow, q.dir, out),
                    Op::Close => self.close_now(q.flow, out),
                    Op::Data | Op::Datagram => {}
                }
            }
            self.recycle(std::mem::replace(&mut round, next));
        }
        // Calls still due after the bound wait for the next flush.
        for &q in &round {
            if let Some(f) = self.flows.get(&q.flow) {
                if f.epoch == q.epoch && f.queued[q.dir.index()].is_none() {
                    let end = f.dirs[q.dir.index()].end_offset();
                    self.enqueue(q.flow, q.dir, end, Op::Data, out);
                }
            }
        }
        self.recycle(round);
    }

    /// One batch: `calls`, queued on sessions of `plugin`.
    fn run_batch(
        &mut self,
        plugin: u16,
        calls: &[Queued],
        next: &mut Vec<Queued>,
        out: &mut EntrySink<'_>,
    ) {
        let mut data = std::mem::take(&mut self.scratch);
        data.clear();
        // The calls sent, and whether each is its direction's last.
        let mut sent = std::mem::take(&mut self.spare_sent);
        sent.clear();
        let answers = {
            let flows = &self.flows;
            let mut jobs = Vec::with_capacity(calls.len());
            // Where each direction's bytes sent so far end.
            let mut sent_until: Vec<(u64, Direction, u64)> = Vec::with_capacity(calls.len());
            for q in calls {
                let Some(f) = flows.get(&q.flow) else {
                    continue;
                };
                let FlowState::Dissecting {
                    plugin: p, session, ..
                } = &f.state
                else {
                    continue;
                };
                if *p != plugin || f.epoch != q.epoch {
                    continue;
                }
                if matches!(q.op, Op::End | Op::Close) {
                    let kind = match q.op {
                        Op::End => wit::CallKind::End,
                        _ => wit::CallKind::Close,
                    };
                    jobs.push(Job {
                        session,
                        kind,
                        dir: q.dir,
                        base: 0,
                        len: 0,
                    });
                    sent.push((*q, true));
                    continue;
                }
                let st = &f.dirs[q.dir.index()];
                // A direction's first call in the batch offers all it holds;
                // a later one only the bytes after the earlier call's, which
                // the plugin continues from where that call left.
                let prior = sent_until
                    .iter()
                    .find(|(flow, dir, _)| *flow == q.flow && *dir == q.dir)
                    .map(|e| e.2);
                let (kind, from) = match (prior, q.op) {
                    // Each datagram is an input of its own.
                    (prior, Op::Datagram) => (wit::CallKind::Feed, prior.unwrap_or(st.base())),
                    (None, _) if !st.ready() => continue,
                    (None, _) => (wit::CallKind::Feed, st.base()),
                    (Some(until), _) => (wit::CallKind::More, until),
                };
                let held = st.held();
                let lo = from.saturating_sub(st.base()).min(held.len() as u64) as usize;
                let hi = q.end.saturating_sub(st.base()).min(held.len() as u64) as usize;
                let hi = hi.max(lo);
                data.extend_from_slice(&held[lo..hi]);
                jobs.push(Job {
                    session,
                    kind,
                    dir: q.dir,
                    base: st.base() + lo as u64,
                    len: (hi - lo) as u64,
                });
                let end = st.base() + hi as u64;
                match sent_until
                    .iter_mut()
                    .find(|(flow, dir, _)| *flow == q.flow && *dir == q.dir)
                {
                    Some(e) => e.2 = end,
                    None => sent_until.push((q.flow, q.dir, end)),
                }
                sent.push((Queued { end, ..*q }, true));
            }
            // Only a direction's last call may ask for another round (an
            // end or close after it ends the direction anyway).
            for i in 0..sent.len() {
                let (q, _) = sent[i];
                let later = sent[i + 1..]
                    .iter()
                    .any(|(o, _)| o.flow == q.flow && (o.dir == q.dir || o.op == Op::Close));
                sent[i].1 = !later;
            }
            if jobs.is_empty() {
                Vec::new()
            } else {
                self.counters.plugin_batches += 1;
                self.backend.run(plugin, &jobs, &data)
            }
        };
        let max_pending = self.cfg.max_pending;
        for (&(q, last), answer) in sent.iter().zip(answers) {
            let Some(f) = self.flows.get_mut(&q.flow) else {
                continue;
            };
            // An earlier answer in this batch switched or dropped the plugin.
            if f.epoch != q.epoch || !matches!(f.state, FlowState::Dissecting { .. }) {
                match q.op {
                    Op::End => self.end_now(q.flow, q.dir, out),
                    Op::Close => self.close_now(q.flow, out),
                    Op::Data | Op::Datagram => {}
                }
                continue;
            }
            let mut outcome = stream::Outcome::default();
            match answer {
                Err(fault) => outcome.fault = Some(fault),
                Ok(res) => {
                    outcome.calls = 1;
                    outcome.messages = res.messages.len() as u64;
                    outcome.errors = res.error.is_some() as u32;
                    let st = &mut f.dirs[q.dir.index()];
                    // The call's input: the bytes held up to its end (the
                    // datagram at the front: earlier ones of this batch are
                    // gone), nothing for an end or close.
                    let len = match q.op {
                        Op::Data => st.input_until(q.end),
                        Op::Datagram => st.datagram_len(q.end),
                        Op::End | Op::Close => 0,
                    };
                    let input = &st.held()[..len];
                    convert::collect(&res.messages, input, st.marks(), q.dir, &mut f.pairing);
                    match q.op {
                        Op::Data => {
                            let again = st.consume(&res, len);
                            outcome.over_limit = st.over_limit(max_pending);
                            outcome.switch = res.switch;
                            if again && last {
                                next.push(Queued {
                                    end: st.end_offset(),
                                    ..q
                                });
                            }
                        }
                        Op::Datagram => {
                            outcome.switch = res.switch;
                            st.drop_datagram(len);
                        }
                        Op::End => st.ended = true,
                        Op::Close => {}
                    }
                }
            }
            if q.op == Op::Close {
                // The plugin ended the session, or its instance is gone
                // (counted where that happened): nothing left to close.
                if let Some(fault) = &outcome.fault {
                    self.fault(plugin, fault);
                } else {
                    self.after_call(q.flow, plugin, outcome, out);
                }
                self.close_tail(q.flow, false, out);
                continue;
            }
            self.after_call(q.flow, plugin, outcome, out);
        }
        self.scratch = data;
        self.spare_sent = sent;
    }

    /// Run one operation on a dissected flow's direction, hand the messages
    /// to its pairing, and account for the outcome.
    fn call(
        &mut self,
        id: u64,
        dir: Direction,
        out: &mut EntrySink<'_>,
        op: impl FnOnce(
            &mut DirStream,
            &mut B,
            &B::Session,
            &mut stream::Collect<'_>,
        ) -> stream::Outcome,
    ) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let FlowState::Dissecting {
            plugin, session, ..
        } = &f.state
        else {
            return;
        };
        let plugin = *plugin;
        let pairing = &mut f.pairing;
        let outcome = op(
            &mut f.dirs[dir.index()],
            &mut self.backend,
            session,
            &mut |msgs, input, marks| convert::collect(msgs, input, marks, dir, pairing),
        );
        self.counters.plugin_batches += outcome.calls;
        self.after_call(id, plugin, outcome, out);
    }

    /// Account a call's outcome: errors, faults, limits; emit paired entries.
    fn after_call(
        &mut self,
        id: u64,
        plugin: u16,
        outcome: stream::Outcome,
        out: &mut EntrySink<'_>,
    ) {
        // One look-up per call: this runs for every call of every batch.
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        self.counters.plugin_calls += outcome.calls;
        self.counters.messages += outcome.messages;
        self.counters.parse_errors += outcome.errors as u64;
        f.errors += outcome.errors;
        let max_unpaired = (self.cfg.max_unpaired, self.cfg.max_unpaired_bytes);
        f.pairing
            .emit_ready(&template_of(f), max_unpaired, &mut self.counters, out);
        let mut give_up = f.errors >= self.cfg.max_errors;
        if let Some(fault) = &outcome.fault {
            self.fault(plugin, fault);
            give_up = true;
        }
        if outcome.over_limit {
            self.counters.drops.add(DropReason::DissectBufferLimit, 1);
            give_up = true;
        }
        if give_up {
            self.fall_back(id, out);
        } else if let Some(switch) = outcome.switch {
            self.switch_protocol(id, *switch, out);
        }
    }

    /// The flow's plugin handed the rest of the flow to another protocol:
    /// end its session, open the declaring plugin's at the switch offsets,
    /// and offer it the bytes already held in each direction.
    fn switch_protocol(&mut self, id: u64, switch: wit::ProtocolSwitch, out: &mut EntrySink<'_>) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        // What the old session left unpaired cannot pair any more.
        f.pairing.flush(&template_of(f), &mut self.counters, out);
        f.epoch = f.epoch.wrapping_add(1);
        f.queued = [None; 2];
        f.last = None;
        let FlowState::Dissecting {
            plugin,
            protocol,
            session,
        } = std::mem::replace(&mut f.state, FlowState::Raw)
        else {
            return;
        };
        self.backend.close(&session);
        let previous = self
            .catalog
            .plugin(plugin)
            .protocols
            .get(protocol as usize)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        f.switches = f.switches.saturating_add(1);
        let target = (f.switches <= MAX_SWITCHES_PER_FLOW)
            .then(|| find_protocol(&self.catalog, f.flow.transport, &switch.protocol))
            .flatten();
        let Some((plugin, protocol)) = target else {
            tracing::debug!(flow = id, protocol = %switch.protocol, "protocol switch to no loaded plugin; flow is raw from here");
            self.counters.switches_unclaimed += 1;
            self.counters.flows_raw += 1;
            return;
        };
        let opened = self.backend.open(plugin, &f.info).and_then(|session| {
            match self.backend.takeover(&session, &previous, &switch.params) {
                Ok(()) => Ok(session),
                Err(fault) => {
                    self.backend.close(&session);
                    Err(fault)
                }
            }
        });
        let session = match opened {
            Ok(s) => s,
            Err(fault) => {
                self.fault(plugin, &fault);
                self.counters.flows_raw += 1;
                return;
            }
        };
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        self.counters.protocol_switches += 1;
        f.errors = 0;
        f.state = FlowState::Dissecting {
            plugin,
            protocol,
            session,
        };
        let max_pending = self.cfg.max_pending;
        for (dir, offset) in [
            (Direction::ToServer, switch.to_server),
            (Direction::ToClient, switch.to_client),
        ] {
            let Some(f) = self.flows.get_mut(&id) else {
                return;
            };
            if !matches!(f.state, FlowState::Dissecting { .. }) {
                return;
            }
            let lost = f.dirs[dir.index()].hand_over(offset);
            if lost > 0 {
                self.call(id, dir, out, |st, backend, session, collect| {
                    st.gap(backend, session, dir, lost, collect)
                });
            }
            self.call(id, dir, out, |st, backend, session, collect| {
                st.resume(backend, session, dir, max_pending, collect)
            });
        }
    }

    /// Drop the plugin for this flow: flush what was paired so far, count it raw.
    fn fall_back(&mut self, id: u64, out: &mut EntrySink<'_>) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        f.pairing.flush(&template_of(f), &mut self.counters, out);
        f.epoch = f.epoch.wrapping_add(1);
        f.queued = [None; 2];
        f.last = None;
        if let FlowState::Dissecting { session, .. } =
            std::mem::replace(&mut f.state, FlowState::Raw)
        {
            self.backend.close(&session);
        }
        self.counters.flows_fallen_back += 1;
        self.counters.flows_raw += 1;
    }

    fn gap(&mut self, id: u64, dir: Direction, len: u64, out: &mut EntrySink<'_>) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        match &mut f.state {
            FlowState::Raw => {}
            FlowState::Probing(sel) => sel.gap(dir, len),
            FlowState::Dissecting { .. } => {
                self.flush_flow(id, out);
                self.call(id, dir, out, |st, backend, session, collect| {
                    st.gap(backend, session, dir, len, collect)
                })
            }
        }
    }

    fn end(&mut self, id: u64, dir: Direction, out: &mut EntrySink<'_>) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if let FlowState::Probing(sel) = &mut f.state {
            // The direction ended before any plugin was sure: decide on what we have.
            sel.finish_dir(dir);
            self.decide(id, out);
        }
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let st = &mut f.dirs[dir.index()];
        if !matches!(f.state, FlowState::Dissecting { .. }) || st.ended || st.end_queued {
            return;
        }
        // Runs in the batch, after the direction's last bytes.
        st.end_queued = true;
        let end = st.end_offset();
        self.enqueue(id, dir, end, Op::End, out);
    }

    /// A direction's end, at once (its flow's session changed since the
    /// end was queued).
    fn end_now(&mut self, id: u64, dir: Direction, out: &mut EntrySink<'_>) {
        self.flush_flow(id, out);
        self.call(id, dir, out, |st, backend, session, collect| {
            st.end(backend, session, dir, collect)
        });
    }

    fn close(&mut self, id: u64, out: &mut EntrySink<'_>) {
        for dir in Direction::BOTH {
            self.end(id, dir, out);
        }
        match self.flows.get(&id) {
            // The ends settled its probing: it went raw, and closes now.
            None => {
                self.raw.remove(&id);
            }
            // The session ends in the batch, after the flow's ends.
            Some(f) if matches!(f.state, FlowState::Dissecting { .. }) => {
                self.enqueue(id, Direction::ToServer, 0, Op::Close, out)
            }
            Some(_) => self.close_tail(id, true, out),
        }
    }

    /// A flow's close, at once.
    fn close_now(&mut self, id: u64, out: &mut EntrySink<'_>) {
        self.flush_flow(id, out);
        for dir in Direction::BOTH {
            let pending = self
                .flows
                .get(&id)
                .is_some_and(|f| !f.dirs[dir.index()].ended);
            if pending {
                self.end_now(id, dir, out);
            }
        }
        self.close_tail(id, true, out);
    }

    /// Emit what the flow left unpaired and forget it; `close_session`:
    /// its session, if any, still has to be ended.
    fn close_tail(&mut self, id: u64, close_session: bool, out: &mut EntrySink<'_>) {
        let Some(mut f) = self.flows.remove(&id) else {
            return;
        };
        f.pairing.flush(&template_of(&f), &mut self.counters, out);
        match f.state {
            FlowState::Dissecting { session, .. } if close_session => self.backend.close(&session),
            FlowState::Dissecting { .. } => {}
            FlowState::Probing(sel) => {
                self.counters.flows_raw += 1;
                self.counters.raw_bytes += sel.buffered_bytes();
            }
            FlowState::Raw => {}
        }
    }
}
