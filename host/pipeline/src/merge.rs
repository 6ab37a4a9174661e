//! Merges the shards' entry streams into one deterministic order.

use std::collections::VecDeque;

use remora_entry::Entry;

use crate::{OrderKey, Sink};

/// Entries held for a shard to free (see [`Merger::take_returned`]); past
/// this they are freed where they are, so a shard that gets no batch for a
/// while does not make them pile up.
const MAX_RETURNED: usize = 4096;

/// What a shard sends after each batch: the entries it finished, in key
/// order, and how far it has got.
pub(crate) struct ShardOutput {
    pub shard: usize,
    pub entries: Vec<(OrderKey, Entry)>,
    pub watermark: Option<OrderKey>,
}

pub(crate) struct Merger {
    /// Per shard, what it sent and is not out yet: its messages' entry
    /// lists as they came (none empty), so an entry moves once, when it
    /// leaves, rather than into a queue and out again.
    queues: Vec<VecDeque<std::vec::IntoIter<(OrderKey, Entry)>>>,
    watermarks: Vec<Option<OrderKey>>,
    /// Per shard, entries the sink handed back, to be freed by the shard's
    /// own thread; empty (and unused) for shards that free nothing back.
    returned: Vec<Vec<Entry>>,
    /// Shards from this one on get their entries back.
    return_from: usize,
}

impl Merger {
    /// Entries of shards `return_from..` that the sink hands back are kept
    /// for [`Merger::take_returned`].
    pub(crate) fn new(shards: usize, return_from: usize) -> Self {
        Merger {
            queues: (0..shards).map(|_| VecDeque::new()).collect(),
            watermarks: vec![None; shards],
            returned: (0..shards).map(|_| Vec::new()).collect(),
            return_from,
        }
    }

    /// What the sink handed back of shard `shard`'s entries since the last
    /// call, for that shard's thread to free.
    pub(crate) fn take_returned(&mut self, shard: usize) -> Vec<Entry> {
        std::mem::take(&mut self.returned[shard])
    }

    pub(crate) fn push(&mut self, msg: ShardOutput, sink: &mut Sink<'_>) {
        if !msg.entries.is_empty() {
            self.queues[msg.shard].push_back(msg.entries.into_iter());
        }
        if msg.watermark.is_some() {
            self.watermarks[msg.shard] = msg.watermark;
        }
        self.release(sink);
    }

    /// Emit the smallest queued entry while no shard can still produce a
    /// smaller one (every shard's watermark is at or past it).
    fn release(&mut self, sink: &mut Sink<'_>) {
        let Some(low) = self.watermarks.iter().copied().min().flatten() else {
            return;
        };
        loop {
            let next = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| Some((q.front()?.as_slice().first()?.0, i)))
                .min();
            match next {
                Some((k, i)) if k <= low => {
                    let q = &mut self.queues[i];
                    let list = q.front_mut().expect("front exists");
                    let (_, e) = list.next().expect("lists in the queue are not empty");
                    if list.as_slice().is_empty() {
                        q.pop_front();
                    }
                    if let Some(e) = sink(e) {
                        let back = &mut self.returned[i];
                        if i >= self.return_from && back.len() < MAX_RETURNED {
                            back.push(e);
                        }
                    }
                }
                _ => return,
            }
        }
    }

    pub(crate) fn finish(&mut self, sink: &mut Sink<'_>) {
        for w in &mut self.watermarks {
            *w = Some(OrderKey::END);
        }
        self.release(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remora_core::{Endpoint, Transport};

    fn keyed(seq: u64, flow: u64) -> (OrderKey, Entry) {
        let ep = Endpoint::new([127, 0, 0, 1].into(), 80);
        let e = Entry {
            id: 0,
            flow_id: flow,
            plugin: 0,
            protocol: 0,
            transport: Transport::Tcp,
            client: ep,
            server: ep,
            request: None,
            response: None,
            standalone: true,
        };
        let key = OrderKey {
            seq,
            phase: 0,
            flow,
            n: 0,
        };
        (key, e)
    }

    fn output(shard: usize, seqs: &[u64]) -> ShardOutput {
        ShardOutput {
            shard,
            entries: seqs.iter().map(|&s| keyed(s, shard as u64)).collect(),
            watermark: seqs.last().map(|&s| OrderKey::watermark(s, 9)),
        }
    }

    #[test]
    fn entries_the_sink_hands_back_wait_for_their_own_remote_shard() {
        let mut m = Merger::new(3, 1);
        let mut order = Vec::new();
        // Keeps shard 2's entries, hands back the others.
        let mut sink = |e: Entry| {
            order.push(e.flow_id);
            (e.flow_id != 2).then_some(e)
        };
        m.push(output(0, &[1, 4]), &mut sink);
        m.push(output(1, &[2, 5]), &mut sink);
        m.push(output(2, &[3, 6]), &mut sink);
        m.finish(&mut sink);
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
        // Shard 0 (the reading thread's own) frees in place; shard 1 gets
        // both of its entries back; shard 2's were kept by the sink.
        assert!(m.take_returned(0).is_empty());
        let back = m.take_returned(1);
        assert_eq!(back.iter().map(|e| e.flow_id).collect::<Vec<_>>(), [1, 1]);
        assert!(m.take_returned(1).is_empty(), "taken once");
        assert!(m.take_returned(2).is_empty());
    }

    #[test]
    fn entries_handed_back_are_bounded_per_shard() {
        let mut m = Merger::new(2, 1);
        let seqs: Vec<u64> = (1..=(MAX_RETURNED as u64 + 100)).collect();
        let mut sink = Some;
        m.push(output(1, &seqs), &mut sink);
        m.push(output(0, &[u64::MAX - 1]), &mut sink);
        assert_eq!(m.take_returned(1).len(), MAX_RETURNED);
    }
}
