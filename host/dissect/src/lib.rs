//! The dissect stage: turns reassembled byte streams into entries.
//!
//! Per flow it picks a plugin (port hints first, then each candidate's
//! `probe`), opens one session in that plugin's instance of this shard, and
//! feeds it the stream. The host owns buffering: bytes a plugin did not
//! consume are kept and passed again with the next ones; bytes it asked to
//! `skip` never cross the boundary. Messages come back tagged
//! request/response with a transaction id and are paired here into entries.
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

pub use backend::{Backend, BackendFault};
pub use catalog::{catalog_from_runtime, schema_from_info};
pub use metered::{CallLatency, Metered, Meters, PluginMeter, LATENCY_BOUNDS_US, TIME_EVERY};

use std::sync::Arc;

use ahash::AHashMap;
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
            max_unpaired: 1024,
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
    pub messages: u64,
    pub entries: u64,
    pub incomplete_entries: u64,
    pub parse_errors: u64,
    pub plugin_faults: u64,
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
        self.messages += o.messages;
        self.entries += o.entries;
        self.incomplete_entries += o.incomplete_entries;
        self.parse_errors += o.parse_errors;
        self.plugin_faults += o.plugin_faults;
        self.protocol_switches += o.protocol_switches;
        self.switches_unclaimed += o.switches_unclaimed;
        self.drops.merge(&o.drops);
        self.meters.merge(&o.meters);
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
}

/// Switches one flow may go through; a chain longer than this (a plugin that
/// keeps switching) makes the rest of the flow raw.
const MAX_SWITCHES_PER_FLOW: u8 = 4;

/// One shard's dissect stage. Owned by one thread; takes no locks.
pub struct DissectStage<B: Backend> {
    backend: B,
    catalog: Arc<Catalog>,
    cfg: DissectConfig,
    flows: AHashMap<u64, FlowDissect<B::Session>>,
    counters: DissectCounters,
}

/// Receives each finished entry, in the order the stage finished them.
pub type EntrySink<'a> = dyn FnMut(Entry) + 'a;

impl<B: Backend> DissectStage<B> {
    pub fn new(backend: B, catalog: Arc<Catalog>, cfg: DissectConfig) -> Self {
        DissectStage {
            backend,
            catalog,
            cfg,
            flows: AHashMap::new(),
            counters: DissectCounters::default(),
        }
    }

    /// What this stage counted, with the backend's meters.
    pub fn counters(&self) -> DissectCounters {
        let mut c = self.counters.clone();
        if let Some(m) = self.backend.meters() {
            c.meters = m.clone();
        }
        c
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn on_event(&mut self, ev: FlowEvent<'_>, out: &mut EntrySink<'_>) {
        match ev {
            FlowEvent::Open { flow } => self.open(flow),
            FlowEvent::Data {
                flow,
                dir,
                ts,
                offset,
                data,
            } => self.data(flow.id, dir, ts, Some(offset), data, out),
            FlowEvent::Datagram {
                flow,
                dir,
                ts,
                data,
            } => self.data(flow.id, dir, ts, None, data, out),
            FlowEvent::Gap { flow, dir, len, .. } => self.gap(flow.id, dir, len, out),
            FlowEvent::End { flow, dir, .. } => self.end(flow.id, dir, out),
            FlowEvent::Close { flow, .. } => self.close(flow.id, out),
        }
    }

    fn open(&mut self, flow: &FlowInfo) {
        let info = wit::FlowInfo {
            id: flow.id,
            transport: match flow.transport {
                Transport::Tcp => wit::Transport::Tcp,
                Transport::Udp => wit::Transport::Udp,
            },
            client_ip: flow.client.ip.to_string(),
            client_port: flow.client.port,
            server_ip: flow.server.ip.to_string(),
            server_port: flow.server.port,
        };
        let selection = Selection::new(&self.catalog, flow);
        let state = if selection.is_empty() {
            self.counters.flows_raw += 1;
            FlowState::Raw
        } else {
            FlowState::Probing(selection)
        };
        self.flows.insert(
            flow.id,
            FlowDissect {
                info,
                flow: flow.clone(),
                state,
                dirs: Default::default(),
                pairing: Pairing::default(),
                errors: 0,
                switches: 0,
            },
        );
    }

    /// New bytes of a flow: stream bytes at `offset` (TCP), or one datagram
    /// when `offset` is `None` (UDP).
    fn data(
        &mut self,
        id: u64,
        dir: Direction,
        ts: Timestamp,
        offset: Option<u64>,
        data: &[u8],
        out: &mut EntrySink<'_>,
    ) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
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
            (FlowState::Dissecting { .. }, None) => {
                self.call(id, dir, out, |st, backend, session, collect| {
                    st.datagram(backend, session, dir, ts, data, collect)
                })
            }
        }
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
                    }
                }
            }
        }
    }

    fn fault(&mut self, plugin: u16, fault: &BackendFault) {
        if !fault.consequence {
            self.counters.plugin_faults += 1;
            self.counters.drops.add(DropReason::PluginFault, 1);
        }
        tracing::debug!(plugin = %self.catalog.plugin(plugin).name, %fault, "plugin call failed; flow falls back to raw");
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
        self.call(id, dir, out, |st, backend, session, collect| {
            st.data(
                backend,
                session,
                dir,
                ts,
                offset,
                data,
                max_pending,
                collect,
            )
        });
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
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        self.counters.plugin_calls += outcome.calls;
        self.counters.messages += outcome.messages;
        self.counters.parse_errors += outcome.errors as u64;
        f.errors += outcome.errors;
        let too_many_errors = f.errors >= self.cfg.max_errors;
        let cfg_max_unpaired = (self.cfg.max_unpaired, self.cfg.max_unpaired_bytes);
        let mut give_up = too_many_errors;
        if let Some(fault) = &outcome.fault {
            self.fault(plugin, fault);
            give_up = true;
        }
        if outcome.over_limit {
            self.counters.drops.add(DropReason::DissectBufferLimit, 1);
            give_up = true;
        }
        let template = self.entry_template(id);
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        f.pairing
            .emit_ready(&template, cfg_max_unpaired, &mut self.counters, out);
        if give_up {
            self.fall_back(id, out);
        } else if let Some(switch) = outcome.switch {
            self.switch_protocol(id, switch, out);
        }
    }

    /// The flow's plugin handed the rest of the flow to another protocol:
    /// end its session, open the declaring plugin's at the switch offsets,
    /// and offer it the bytes already held in each direction.
    fn switch_protocol(&mut self, id: u64, switch: wit::ProtocolSwitch, out: &mut EntrySink<'_>) {
        let template = self.entry_template(id);
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        // What the old session left unpaired cannot pair any more.
        f.pairing.flush(&template, &mut self.counters, out);
        let FlowState::Dissecting {
            plugin,
            protocol,
            session,
        } = std::mem::replace(&mut f.state, FlowState::Raw)
        else {
            return;
        };
        self.backend.close(session);
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
                    self.backend.close(session);
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

    fn entry_template(&self, id: u64) -> Entry {
        let f = &self.flows[&id];
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

    /// Drop the plugin for this flow: flush what was paired so far, count it raw.
    fn fall_back(&mut self, id: u64, out: &mut EntrySink<'_>) {
        let template = self.entry_template(id);
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        f.pairing.flush(&template, &mut self.counters, out);
        if let FlowState::Dissecting { session, .. } =
            std::mem::replace(&mut f.state, FlowState::Raw)
        {
            self.backend.close(session);
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
        self.call(id, dir, out, |st, backend, session, collect| {
            st.end(backend, session, dir, collect)
        });
    }

    fn close(&mut self, id: u64, out: &mut EntrySink<'_>) {
        for dir in Direction::BOTH {
            let ended = self
                .flows
                .get(&id)
                .is_none_or(|f| f.dirs[dir.index()].ended);
            if !ended {
                self.end(id, dir, out);
            }
        }
        let template = match self.flows.get(&id) {
            Some(_) => self.entry_template(id),
            None => return,
        };
        let Some(mut f) = self.flows.remove(&id) else {
            return;
        };
        f.pairing.flush(&template, &mut self.counters, out);
        match f.state {
            FlowState::Dissecting { session, .. } => self.backend.close(session),
            FlowState::Probing(sel) => {
                self.counters.flows_raw += 1;
                self.counters.raw_bytes += sel.buffered_bytes();
            }
            FlowState::Raw => {}
        }
    }
}
