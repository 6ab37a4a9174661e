//! Pairs requests with responses by transaction id within a flow.

use std::collections::VecDeque;

use remora_core::Direction;
use remora_entry::{Entry, Message};
use remora_runtime::wit::MessageKind;

use crate::{DissectCounters, EntrySink};

enum Ready {
    Pair(Message, Message),
    Alone {
        request: Option<Message>,
        response: Option<Message>,
        standalone: bool,
    },
}

/// A message waiting for its partner.
struct Waiting {
    is_request: bool,
    txn: u64,
    /// What `msg` holds (see [`Pairing::push`]).
    bytes: usize,
    msg: Message,
}

/// Runs of evicted txns remembered per flow (see `Pairing::evicted`).
const MAX_EVICTED_RUNS: usize = 1024;

#[derive(Default)]
pub(crate) struct Pairing {
    /// Messages waiting for their partner, oldest first.
    unpaired: VecDeque<Waiting>,
    /// What `unpaired` holds, in bytes.
    unpaired_bytes: usize,
    /// How many of `unpaired` are requests: a message looks for a partner
    /// only among those of the other kind, and pipelined requests wait in
    /// numbers (each scanned all the others for a response before).
    unpaired_requests: usize,
    /// Messages emitted incomplete because too many waited, as runs of
    /// txns (is request, first, last), oldest first, at most
    /// [`MAX_EVICTED_RUNS`]: their partners, when they come, go out at once
    /// instead of waiting in vain. Waiting, such a partner pushed out the
    /// oldest message still able to pair, whose partner then waited in vain
    /// in turn: past its first overflow a pipeline paired nothing. Runs,
    /// since pipelined txns count up: a whole overflow is one.
    evicted: VecDeque<(bool, u64, u64)>,
    /// Entries finished by the last calls, in the order they finished.
    ready: Vec<Ready>,
    /// Encoded size of the fields of each direction's last message: the
    /// next one's first guess, since a flow's messages tend to look alike
    /// (growing a message's fields was a fifth of the stage's reallocations).
    pub(crate) fields_hint: [usize; 2],
}

impl Pairing {
    /// Takes a converted message; `bytes`: what it holds (its texts and
    /// data, 8 per scalar field, and its body's data), counted while it was
    /// built.
    pub(crate) fn push(
        &mut self,
        kind: MessageKind,
        txn: u64,
        dir: Direction,
        msg: Message,
        bytes: usize,
    ) {
        let is_request = match kind {
            MessageKind::Request => true,
            MessageKind::Response => false,
            MessageKind::Standalone => {
                let (request, response) = match dir {
                    Direction::ToServer => (Some(msg), None),
                    Direction::ToClient => (None, Some(msg)),
                };
                self.ready.push(Ready::Alone {
                    request,
                    response,
                    standalone: true,
                });
                return;
            }
        };
        let others = if is_request {
            self.unpaired.len() - self.unpaired_requests
        } else {
            self.unpaired_requests
        };
        let partner = if others == 0 {
            None
        } else {
            self.unpaired
                .iter()
                .position(|w| w.is_request != is_request && w.txn == txn)
        };
        // A partner already emitted on its own: this one will find none.
        if partner.is_none() && self.forget_evicted(!is_request, txn) {
            self.ready.push(Self::alone(is_request, msg));
            return;
        }
        match partner {
            Some(i) => {
                let other = self.unpaired.remove(i).expect("index from position");
                self.unpaired_bytes -= other.bytes;
                self.unpaired_requests -= usize::from(other.is_request);
                self.ready.push(if is_request {
                    Ready::Pair(msg, other.msg)
                } else {
                    Ready::Pair(other.msg, msg)
                });
            }
            None => {
                self.unpaired_bytes += bytes;
                self.unpaired_requests += usize::from(is_request);
                self.unpaired.push_back(Waiting {
                    is_request,
                    txn,
                    bytes,
                    msg,
                });
            }
        }
    }

    fn remember_evicted(&mut self, is_request: bool, txn: u64) {
        match self.evicted.back_mut() {
            Some((r, _, last)) if *r == is_request && last.checked_add(1) == Some(txn) => {
                *last = txn
            }
            _ => {
                if self.evicted.len() >= MAX_EVICTED_RUNS {
                    self.evicted.pop_front();
                }
                self.evicted.push_back((is_request, txn, txn));
            }
        }
    }

    /// Whether a message of this kind and txn was emitted on its own (and
    /// forgets it: each partner comes once).
    fn forget_evicted(&mut self, is_request: bool, txn: u64) -> bool {
        let Some(i) = (self.evicted.iter())
            .position(|&(r, first, last)| r == is_request && (first..=last).contains(&txn))
        else {
            return false;
        };
        let (r, first, last) = self.evicted[i];
        match (txn == first, txn == last) {
            (true, true) => {
                self.evicted.remove(i);
            }
            (true, false) => self.evicted[i].1 = txn + 1,
            (false, true) => self.evicted[i].2 = txn - 1,
            (false, false) => {
                self.evicted[i].2 = txn - 1;
                self.evicted.insert(i + 1, (r, txn + 1, last));
            }
        }
        true
    }

    fn emit(
        ready: Ready,
        template: &Entry,
        counters: &mut DissectCounters,
        out: &mut EntrySink<'_>,
    ) {
        let mut e = template.clone();
        match ready {
            Ready::Pair(q, r) => {
                e.request = Some(q);
                e.response = Some(r);
            }
            Ready::Alone {
                request,
                response,
                standalone,
            } => {
                e.request = request;
                e.response = response;
                e.standalone = standalone;
            }
        }
        counters.entries += 1;
        if !e.complete() {
            counters.incomplete_entries += 1;
        }
        out(e);
    }

    /// A request or response that goes out without its partner.
    fn alone(is_request: bool, msg: Message) -> Ready {
        let (request, response) = if is_request {
            (Some(msg), None)
        } else {
            (None, Some(msg))
        };
        Ready::Alone {
            request,
            response,
            standalone: false,
        }
    }

    /// Emit finished entries; beyond `max_unpaired` messages or
    /// `max_unpaired_bytes`, the oldest waiting message is emitted as an
    /// incomplete entry.
    pub(crate) fn emit_ready(
        &mut self,
        template: &Entry,
        (max_unpaired, max_unpaired_bytes): (usize, usize),
        counters: &mut DissectCounters,
        out: &mut EntrySink<'_>,
    ) {
        for r in self.ready.drain(..) {
            Self::emit(r, template, counters, out);
        }
        while self.unpaired.len() > max_unpaired
            || (self.unpaired_bytes > max_unpaired_bytes && !self.unpaired.is_empty())
        {
            let oldest = self.unpaired.pop_front().expect("non-empty");
            self.unpaired_bytes -= oldest.bytes;
            self.unpaired_requests -= usize::from(oldest.is_request);
            self.remember_evicted(oldest.is_request, oldest.txn);
            Self::emit(
                Self::alone(oldest.is_request, oldest.msg),
                template,
                counters,
                out,
            );
        }
    }

    /// What the messages waiting for a partner hold, in bytes.
    #[cfg(test)]
    pub(crate) fn unpaired_bytes(&self) -> usize {
        self.unpaired_bytes
    }

    /// The flow is over: everything still waiting becomes an incomplete entry.
    pub(crate) fn flush(
        &mut self,
        template: &Entry,
        counters: &mut DissectCounters,
        out: &mut EntrySink<'_>,
    ) {
        self.emit_ready(template, (usize::MAX, usize::MAX), counters, out);
        self.unpaired_bytes = 0;
        self.unpaired_requests = 0;
        self.evicted.clear();
        while let Some(oldest) = self.unpaired.pop_front() {
            Self::emit(
                Self::alone(oldest.is_request, oldest.msg),
                template,
                counters,
                out,
            );
        }
    }
}

/// An entry of flow `flow_id` on loopback with nothing in it, for the
/// pairing to fill in tests.
#[cfg(test)]
pub(crate) fn test_template(flow_id: u64) -> Entry {
    let ep = remora_core::Endpoint::new(std::net::Ipv4Addr::LOCALHOST.into(), 1);
    Entry {
        id: 0,
        flow_id,
        plugin: 0,
        protocol: 0,
        transport: remora_core::Transport::Tcp,
        client: ep,
        server: ep,
        request: None,
        response: None,
        standalone: false,
    }
}

#[cfg(test)]
mod tests {
    use remora_core::Timestamp;
    use remora_entry::Fields;

    use super::*;

    fn message(id: i64) -> Message {
        Message {
            ts: Timestamp(id),
            fields: Fields::default(),
            body: None,
        }
    }

    /// Entries as (request id, response id), -1 for none.
    fn ids(e: &Entry) -> (i64, i64) {
        let id = |m: &Option<Message>| m.as_ref().map_or(-1, |m| m.ts.0);
        (id(&e.request), id(&e.response))
    }

    /// Pairing as it was before it counted requests: every message scans
    /// all the waiting ones; the oldest goes when more than `max` wait, and
    /// a message whose partner went that way goes out alone at once.
    #[derive(Default)]
    struct Model {
        waiting: Vec<(bool, u64, i64)>,
        evicted: Vec<(bool, u64)>,
        out: Vec<(i64, i64)>,
    }

    impl Model {
        fn alone(is_request: bool, id: i64) -> (i64, i64) {
            if is_request {
                (id, -1)
            } else {
                (-1, id)
            }
        }

        fn push(&mut self, is_request: bool, txn: u64, id: i64) {
            match (self.waiting.iter()).position(|w| w.0 != is_request && w.1 == txn) {
                Some(i) => {
                    let other = self.waiting.remove(i);
                    self.out.push(if is_request {
                        (id, other.2)
                    } else {
                        (other.2, id)
                    });
                }
                None => match (self.evicted.iter()).position(|e| e.0 != is_request && e.1 == txn) {
                    Some(i) => {
                        self.evicted.remove(i);
                        self.out.push(Self::alone(is_request, id));
                    }
                    None => self.waiting.push((is_request, txn, id)),
                },
            }
        }

        fn evict(&mut self, max: usize) {
            while self.waiting.len() > max {
                let (is_request, txn, id) = self.waiting.remove(0);
                self.evicted.push((is_request, txn));
                self.out.push(Self::alone(is_request, id));
            }
        }

        fn flush(&mut self) {
            for (is_request, _, id) in std::mem::take(&mut self.waiting) {
                self.out.push(Self::alone(is_request, id));
            }
        }
    }

    /// A pipeline deeper than the bound: the requests over it go out
    /// incomplete, their responses too, and every other pair still pairs
    /// (the orphaned responses used to push out the requests still able to
    /// pair, so nothing paired after the first overflow).
    #[test]
    fn a_pipeline_deeper_than_the_bound_loses_only_its_overflow() {
        let template = test_template(1);
        let (max, depth) = (8, 30u64);
        let mut pairing = Pairing::default();
        let mut out = Vec::new();
        let mut counters = DissectCounters::default();
        let mut step = |pairing: &mut Pairing, kind, txn: u64| {
            pairing.push(kind, txn, Direction::ToServer, message(txn as i64), 1);
            pairing.emit_ready(&template, (max, usize::MAX), &mut counters, &mut |e| {
                out.push(ids(&e))
            });
        };
        for txn in 0..depth {
            step(&mut pairing, MessageKind::Request, txn);
        }
        for txn in 0..depth {
            step(&mut pairing, MessageKind::Response, txn);
        }
        let paired = out.iter().filter(|(q, r)| *q >= 0 && *r >= 0).count();
        assert_eq!(paired, max, "{out:?}");
        assert_eq!(out.len(), 2 * depth as usize - max);
        assert!(pairing.unpaired.is_empty() && pairing.evicted.is_empty());
    }

    /// Requests and responses in any order, pipelined or not, with txns
    /// reused and the waiting bound hit: entries come out as before.
    #[test]
    fn pairs_like_a_scan_of_every_waiting_message() {
        let template = test_template(1);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for (round, max) in [(0, 4), (1, 16), (2, usize::MAX)] {
            let mut pairing = Pairing::default();
            let mut model = Model::default();
            let mut out = Vec::new();
            let mut counters = DissectCounters::default();
            for id in 0..5_000i64 {
                // Runs of one kind, as pipelining makes them.
                let is_request = (id / (1 + next(20) as i64)) % 2 == 0;
                let txn = next(12);
                pairing.push(
                    if is_request {
                        MessageKind::Request
                    } else {
                        MessageKind::Response
                    },
                    txn,
                    Direction::ToServer,
                    message(id),
                    1,
                );
                model.push(is_request, txn, id);
                pairing.emit_ready(&template, (max, usize::MAX), &mut counters, &mut |e| {
                    out.push(ids(&e))
                });
                model.evict(max);
                assert_eq!(
                    pairing.unpaired_requests,
                    model.waiting.iter().filter(|w| w.0).count(),
                    "round {round}, message {id}"
                );
                // The model remembers every eviction.
                assert!(pairing.evicted.len() < MAX_EVICTED_RUNS);
            }
            pairing.flush(&template, &mut counters, &mut |e| out.push(ids(&e)));
            model.flush();
            assert_eq!(out, model.out, "round {round}");
            assert_eq!(pairing.unpaired_requests, 0);
        }
    }
}
