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

#[derive(Default)]
pub(crate) struct Pairing {
    /// Messages waiting for their partner, oldest first.
    unpaired: VecDeque<Waiting>,
    /// What `unpaired` holds, in bytes.
    unpaired_bytes: usize,
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
        let partner = self
            .unpaired
            .iter()
            .position(|w| w.is_request != is_request && w.txn == txn);
        match partner {
            Some(i) => {
                let other = self.unpaired.remove(i).expect("index from position");
                self.unpaired_bytes -= other.bytes;
                self.ready.push(if is_request {
                    Ready::Pair(msg, other.msg)
                } else {
                    Ready::Pair(other.msg, msg)
                });
            }
            None => {
                self.unpaired_bytes += bytes;
                self.unpaired.push_back(Waiting {
                    is_request,
                    txn,
                    bytes,
                    msg,
                });
            }
        }
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

    fn unpaired_entry(oldest: Waiting) -> Ready {
        let (request, response) = if oldest.is_request {
            (Some(oldest.msg), None)
        } else {
            (None, Some(oldest.msg))
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
            Self::emit(Self::unpaired_entry(oldest), template, counters, out);
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
        while let Some(oldest) = self.unpaired.pop_front() {
            Self::emit(Self::unpaired_entry(oldest), template, counters, out);
        }
    }
}
