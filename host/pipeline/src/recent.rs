//! A bounded record of the flows a shard saw most recently, for a "flows"
//! query while the pipeline runs.

use std::collections::{HashMap, VecDeque};

use remora_core::{Endpoint, FlowKey, Packet, Timestamp, Transport};
use remora_flow::{CloseReason, FlowEvent, FlowId};

/// Flows remembered per shard; older ones are forgotten (and counted).
pub const RECENT_FLOWS_PER_SHARD: usize = 4096;

/// One flow as the "flows" query shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub id: FlowId,
    pub transport: Transport,
    pub client: Endpoint,
    pub server: Endpoint,
    /// Both directions; exact totals from the flow table once closed.
    pub packets: u64,
    /// Payload bytes, both directions, retransmissions included.
    pub bytes: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// `None` while the flow is open.
    pub closed: Option<CloseReason>,
}

/// The record a shard keeps, ordered by flow id (a shard opens flows in
/// increasing id order, so appending keeps it sorted).
#[derive(Debug)]
pub(crate) struct RecentFlows {
    capacity: usize,
    flows: VecDeque<FlowRecord>,
    /// Open flows among `flows` by key, so each packet can be counted on
    /// its flow; entries leave at `Close` or with their record, so this is
    /// bounded by `capacity` (a port scan's many open flows are not kept
    /// twice).
    open: HashMap<FlowKey, FlowId, ahash::RandomState>,
    /// Records pushed out by newer flows.
    pub forgotten: u64,
    /// Changed since last published.
    pub dirty: bool,
}

impl RecentFlows {
    pub(crate) fn new(capacity: usize) -> Self {
        RecentFlows {
            capacity: capacity.max(1),
            flows: VecDeque::new(),
            open: HashMap::default(),
            forgotten: 0,
            dirty: false,
        }
    }

    fn find(&mut self, id: FlowId) -> Option<&mut FlowRecord> {
        let i = self.flows.partition_point(|f| f.id < id);
        self.flows.get_mut(i).filter(|f| f.id == id)
    }

    pub(crate) fn on_event(&mut self, ev: &FlowEvent<'_>) {
        match ev {
            FlowEvent::Open { flow } => {
                if self.flows.len() == self.capacity {
                    if let Some(old) = self.flows.pop_front() {
                        if old.closed.is_none() {
                            self.open
                                .remove(&FlowKey::new(old.transport, old.client, old.server));
                        }
                    }
                    self.forgotten += 1;
                }
                self.open.insert(flow.key(), flow.id);
                self.flows.push_back(FlowRecord {
                    id: flow.id,
                    transport: flow.transport,
                    client: flow.client,
                    server: flow.server,
                    packets: 0,
                    bytes: 0,
                    first_seen: flow.first_seen,
                    last_seen: flow.first_seen,
                    closed: None,
                });
                self.dirty = true;
            }
            FlowEvent::Close {
                flow,
                reason,
                stats,
                ..
            } => {
                self.open.remove(&flow.key());
                if let Some(r) = self.find(flow.id) {
                    r.packets = stats.packets.iter().sum();
                    r.bytes = stats.bytes.iter().sum();
                    r.last_seen = stats.last_seen;
                    r.closed = Some(*reason);
                }
                self.dirty = true;
            }
            _ => {}
        }
    }

    /// Counts a packet on its open flow (after the flow table saw it, so a
    /// packet that closed its flow is already in the close totals).
    pub(crate) fn on_packet(&mut self, pkt: &Packet<'_>) {
        let Some(&id) = self.open.get(&pkt.flow_key()) else {
            return;
        };
        if let Some(r) = self.find(id) {
            r.packets += 1;
            r.bytes += pkt.payload.len() as u64;
            r.last_seen = r.last_seen.max(pkt.ts);
            self.dirty = true;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &FlowRecord> {
        self.flows.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remora_flow::{FlowInfo, FlowStats};

    fn info(id: u64, port: u16) -> FlowInfo {
        let client = Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        let server = Endpoint {
            ip: "10.0.0.2".parse().unwrap(),
            port: 80,
        };
        FlowInfo {
            id,
            transport: Transport::Tcp,
            client,
            server,
            first_seen: Timestamp(id as i64),
            syn_seen: true,
        }
    }

    #[test]
    fn keeps_the_newest_flows_and_counts_the_forgotten() {
        let mut r = RecentFlows::new(3);
        let flows: Vec<FlowInfo> = (1..=5).map(|i| info(i * 10, 1000 + i as u16)).collect();
        for f in &flows {
            r.on_event(&FlowEvent::Open { flow: f });
        }
        let ids: Vec<u64> = r.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![30, 40, 50]);
        assert_eq!(r.forgotten, 2);

        r.on_event(&FlowEvent::Close {
            flow: &flows[3],
            ts: Timestamp(99),
            reason: CloseReason::Fin,
            stats: FlowStats {
                packets: [3, 4],
                bytes: [100, 200],
                last_seen: Timestamp(98),
            },
        });
        let closed = r.iter().find(|f| f.id == 40).unwrap();
        assert_eq!(
            (closed.packets, closed.bytes, closed.closed),
            (7, 300, Some(CloseReason::Fin))
        );
        assert_eq!(closed.last_seen, Timestamp(98));
        // A forgotten flow closing is harmless.
        r.on_event(&FlowEvent::Close {
            flow: &flows[0],
            ts: Timestamp(99),
            reason: CloseReason::Rst,
            stats: FlowStats::default(),
        });
        assert_eq!(r.iter().count(), 3);
        // Only the kept flows still open (30 and 50) stay in the key index:
        // closed ones and the forgotten ones leave it.
        assert_eq!(r.open.len(), 2);
    }
}
