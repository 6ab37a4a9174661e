//! Merges the shards' entry streams into one deterministic order.

use std::collections::VecDeque;

use remora_entry::Entry;

use crate::OrderKey;

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
}

impl Merger {
    pub(crate) fn new(shards: usize) -> Self {
        Merger {
            queues: (0..shards).map(|_| VecDeque::new()).collect(),
            watermarks: vec![None; shards],
        }
    }

    pub(crate) fn push(&mut self, msg: ShardOutput, sink: &mut (dyn FnMut(Entry) + Send)) {
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
    fn release(&mut self, sink: &mut (dyn FnMut(Entry) + Send)) {
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
                    sink(e);
                }
                _ => return,
            }
        }
    }

    pub(crate) fn finish(&mut self, sink: &mut (dyn FnMut(Entry) + Send)) {
        for w in &mut self.watermarks {
            *w = Some(OrderKey::END);
        }
        self.release(sink);
    }
}
