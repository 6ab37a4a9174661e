//! Counters every stage keeps. A limit that drops something always says so here.

use std::fmt;

/// A plain counter; stages own theirs and the pipeline sums them.
pub type Counter = u64;

/// Why something was dropped. Every limit in the pipeline has a reason here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Frame could not be decoded (bad or unsupported headers).
    Undecodable,
    /// Link type the decoder does not support.
    UnsupportedLinkType,
    /// Not TCP or UDP (ICMP, ARP, ...): not dropped data, just not tracked.
    NotTcpUdp,
    /// IP fragment table full or fragment timed out.
    FragmentLimit,
    /// Flow table full: a flow was evicted (or a new one refused).
    FlowTableFull,
    /// Out-of-order buffer of a flow or of the shard full: bytes discarded.
    ReassemblyLimit,
    /// Snap length cut the payload: bytes missing from the stream.
    Truncated,
    /// A plugin trapped or exceeded a limit; the flow fell back to raw TCP/UDP.
    PluginFault,
    /// The plugin's instance held as many sessions as its memory allows; the
    /// new flow is raw TCP/UDP (the sessions it holds go on).
    PluginSessionLimit,
    /// A dissector's pending-bytes buffer exceeded its cap.
    DissectBufferLimit,
    /// A queue between stages was full.
    QueueFull,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        DropReason::Undecodable,
        DropReason::UnsupportedLinkType,
        DropReason::NotTcpUdp,
        DropReason::FragmentLimit,
        DropReason::FlowTableFull,
        DropReason::ReassemblyLimit,
        DropReason::Truncated,
        DropReason::PluginFault,
        DropReason::PluginSessionLimit,
        DropReason::DissectBufferLimit,
        DropReason::QueueFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Undecodable => "undecodable",
            DropReason::UnsupportedLinkType => "unsupported_link_type",
            DropReason::NotTcpUdp => "not_tcp_udp",
            DropReason::FragmentLimit => "fragment_limit",
            DropReason::FlowTableFull => "flow_table_full",
            DropReason::ReassemblyLimit => "reassembly_limit",
            DropReason::Truncated => "truncated",
            DropReason::PluginFault => "plugin_fault",
            DropReason::PluginSessionLimit => "plugin_session_limit",
            DropReason::DissectBufferLimit => "dissect_buffer_limit",
            DropReason::QueueFull => "queue_full",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Drop counts by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops([Counter; DropReason::ALL.len()]);

impl Drops {
    pub fn add(&mut self, reason: DropReason, n: Counter) {
        self.0[reason as usize] += n;
    }
    pub fn get(&self, reason: DropReason) -> Counter {
        self.0[reason as usize]
    }
    pub fn merge(&mut self, other: &Drops) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += *b;
        }
    }
    /// Non-zero reasons, in declaration order.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, Counter)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_merge_and_list_nonzero_reasons() {
        let mut a = Drops::default();
        a.add(DropReason::FlowTableFull, 2);
        let mut b = Drops::default();
        b.add(DropReason::FlowTableFull, 1);
        b.add(DropReason::Truncated, 5);
        a.merge(&b);
        let v: Vec<_> = a.nonzero().collect();
        assert_eq!(
            v,
            vec![(DropReason::FlowTableFull, 3), (DropReason::Truncated, 5)]
        );
    }
}
