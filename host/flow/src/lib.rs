//! Bidirectional flow table with TCP reassembly.
//!
//! [`FlowTable::process`] takes decoded packets and turns them into a stream of
//! [`FlowEvent`]s per flow: `Open`, then in-order `Data` (TCP) or `Datagram`
//! (UDP), `Gap` where bytes are known to be missing, `End` per direction and
//! finally `Close`. Each direction of a TCP connection is an explicit receive
//! state machine ([`RxState`]) with a bounded out-of-order buffer.
//!
//! Invariants:
//! - per flow: `Open` first, `End` for each direction exactly once, `Close` last;
//! - per direction, `Data`/`Gap` offsets are contiguous from 0 and never overlap
//!   (the first copy of a byte wins; retransmissions are de-duplicated);
//! - in-order segments are delivered straight from the packet payload, with no
//!   copy and no allocation;
//! - every limit that discards something is counted in [`FlowCounters`].

mod stream;
mod table;

pub use remora_core::{Direction, Endpoint, FlowKey, Timestamp, Transport};
pub use stream::RxState;
pub use table::FlowTable;

use remora_core::{Counter, Drops};

/// Identity of a flow: the global packet number of the packet that created it.
pub type FlowId = u64;

/// Limits and timeouts of a [`FlowTable`]. All times are capture time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// Flows tracked at once; when full, the least-recently-active flow is
    /// evicted (counted as `DropReason::FlowTableFull`, closed as `Evicted`).
    pub max_flows: usize,
    pub tcp_idle_timeout_us: i64,
    pub udp_idle_timeout_us: i64,
    /// Out-of-order bytes buffered per direction; beyond this, the oldest hole
    /// is declared a gap.
    pub max_buffered_per_direction: usize,
    /// Out-of-order bytes buffered across the table; beyond this, out-of-order
    /// data is dropped (counted as `DropReason::ReassemblyLimit`).
    pub max_buffered_total: usize,
    /// A hole not filled after this much capture time is declared a gap
    /// (checked by [`FlowTable::advance`]).
    pub gap_timeout_us: i64,
    /// Out-of-order segments buffered per direction; beyond this, the oldest
    /// hole is declared a gap.
    pub max_segments_per_direction: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 262_144,
            tcp_idle_timeout_us: 300_000_000,
            udp_idle_timeout_us: 60_000_000,
            max_buffered_per_direction: 1 << 20,
            max_buffered_total: 256 << 20,
            gap_timeout_us: 500_000,
            max_segments_per_direction: 1024,
        }
    }
}

/// What is known about a flow when it opens; borrowed by every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    pub id: FlowId,
    pub transport: Transport,
    pub client: Endpoint,
    pub server: Endpoint,
    pub first_seen: Timestamp,
    /// The roles come from a SYN or SYN-ACK (otherwise from the port heuristic).
    pub syn_seen: bool,
}

impl FlowInfo {
    /// The flow's key, made from its endpoints rather than kept: a copy of
    /// them in canonical order was a sixth of a dataless flow's memory.
    pub fn key(&self) -> FlowKey {
        FlowKey::new(self.transport, self.client, self.server)
    }

    /// Whether `key` is this flow's, without building its key.
    pub fn has_key(&self, key: &FlowKey) -> bool {
        self.transport == key.transport
            && ((self.client == key.lo && self.server == key.hi)
                || (self.client == key.hi && self.server == key.lo))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CloseReason {
    /// Both directions finished with FIN (or a new connection re-used the
    /// 4-tuple after a FIN).
    Fin,
    Rst,
    /// No packet for the idle timeout.
    Idle,
    /// Pushed out by a full table, or superseded by a new SYN on the 4-tuple.
    Evicted,
    /// The capture ended.
    EndOfInput,
}

impl CloseReason {
    pub const ALL: [CloseReason; 5] = [
        CloseReason::Fin,
        CloseReason::Rst,
        CloseReason::Idle,
        CloseReason::Evicted,
        CloseReason::EndOfInput,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CloseReason::Fin => "fin",
            CloseReason::Rst => "rst",
            CloseReason::Idle => "idle",
            CloseReason::Evicted => "evicted",
            CloseReason::EndOfInput => "end_of_input",
        }
    }
}

/// Per-flow totals, reported with `Close`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Packets per direction, indexed by [`Direction::index`].
    pub packets: [u64; 2],
    /// Payload bytes per direction as seen on the wire (retransmissions included).
    pub bytes: [u64; 2],
    pub last_seen: Timestamp,
}

/// What the flow table tells its consumer. Per flow: `Open` first, `End` for
/// each direction, `Close` last.
///
/// `ts` is the capture time of what caused the event: the packet being
/// processed, `now` given to [`FlowTable::advance`] (gap and idle timeouts),
/// or the flow's last activity at [`FlowTable::finish`]. Buffered data
/// delivered when a hole fills carries the time of the filling packet.
#[derive(Debug)]
pub enum FlowEvent<'a> {
    Open {
        flow: &'a FlowInfo,
    },
    /// TCP bytes, in order, without duplicates. `offset` is the stream offset of
    /// `data[0]`: 0 is the first byte after the ISN, or the first byte seen when
    /// the flow was picked up mid-stream. Gaps count in offsets.
    Data {
        flow: &'a FlowInfo,
        dir: Direction,
        ts: Timestamp,
        offset: u64,
        data: &'a [u8],
    },
    /// `len` bytes at `offset` are missing and will never be delivered.
    Gap {
        flow: &'a FlowInfo,
        dir: Direction,
        ts: Timestamp,
        offset: u64,
        len: u64,
    },
    /// One UDP datagram.
    Datagram {
        flow: &'a FlowInfo,
        dir: Direction,
        ts: Timestamp,
        data: &'a [u8],
    },
    /// That direction finished: FIN reached, RST, or the flow closes.
    End {
        flow: &'a FlowInfo,
        dir: Direction,
        ts: Timestamp,
    },
    Close {
        flow: &'a FlowInfo,
        ts: Timestamp,
        reason: CloseReason,
        stats: FlowStats,
    },
}

impl FlowEvent<'_> {
    pub fn flow(&self) -> &FlowInfo {
        match self {
            FlowEvent::Open { flow }
            | FlowEvent::Data { flow, .. }
            | FlowEvent::Gap { flow, .. }
            | FlowEvent::Datagram { flow, .. }
            | FlowEvent::End { flow, .. }
            | FlowEvent::Close { flow, .. } => flow,
        }
    }
}

/// Flows closed, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClosedCounts([Counter; CloseReason::ALL.len()]);

impl ClosedCounts {
    pub fn get(&self, reason: CloseReason) -> Counter {
        self.0[reason as usize]
    }
    pub fn add(&mut self, reason: CloseReason, n: Counter) {
        self.0[reason as usize] += n;
    }
    pub fn total(&self) -> Counter {
        self.0.iter().sum()
    }
}

/// Counters of a [`FlowTable`]; shards' counters can be summed with [`merge`](Self::merge).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub flows_opened: Counter,
    pub flows_active: Counter,
    pub flows_closed: ClosedCounts,
    /// Every packet given to `process`, including ones that opened no flow.
    pub packets: Counter,
    pub payload_bytes: Counter,
    /// Payload bytes already delivered or already buffered (first copy wins),
    /// or arriving after the direction ended.
    pub retransmitted_bytes: Counter,
    pub out_of_order_segments: Counter,
    pub gaps: Counter,
    pub gap_bytes: Counter,
    /// Out-of-order bytes held right now.
    pub buffered_bytes: Counter,
    /// Highest `buffered_bytes` seen (summed across shards by `merge`).
    pub buffered_bytes_peak: Counter,
    pub drops: Drops,
}

impl FlowCounters {
    pub fn merge(&mut self, o: &FlowCounters) {
        self.flows_opened += o.flows_opened;
        self.flows_active += o.flows_active;
        for r in CloseReason::ALL {
            self.flows_closed.add(r, o.flows_closed.get(r));
        }
        self.packets += o.packets;
        self.payload_bytes += o.payload_bytes;
        self.retransmitted_bytes += o.retransmitted_bytes;
        self.out_of_order_segments += o.out_of_order_segments;
        self.gaps += o.gaps;
        self.gap_bytes += o.gap_bytes;
        self.buffered_bytes += o.buffered_bytes;
        self.buffered_bytes_peak += o.buffered_bytes_peak;
        self.drops.merge(&o.drops);
    }
}
