//! Pairs requests with responses by transaction id within a flow.

use std::collections::VecDeque;

use remora_core::Direction;
use remora_entry::{Entry, Message, Value};
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

/// Bytes a message holds, for the bound on what waits unpaired.
fn held_bytes(m: &Message) -> usize {
    let fields: usize = m
        .fields
        .iter()
        .map(|f| match &f.value {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Pair(k, v) => k.len() + v.len(),
            _ => 8,
        })
        .sum();
    fields + m.body.as_ref().map_or(0, |b| b.data.len())
}

#[derive(Default)]
pub(crate) struct Pairing {
    /// Messages waiting for their partner, oldest first.
    unpaired: VecDeque<(bool, u64, Message)>,
    /// What `unpaired` holds, in bytes.
    unpaired_bytes: usize,
    /// Entries finished by the last calls, in the order they finished.
    ready: Vec<Ready>,
}

impl Pairing {
    pub(crate) fn push(&mut self, kind: MessageKind, txn: u64, dir: Direction, msg: Message) {
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
            .position(|(req, t, _)| *req != is_request && *t == txn);
        match partner {
            Some(i) => {
                let (_, _, other) = self.unpaired.remove(i).expect("index from position");
                self.unpaired_bytes -= held_bytes(&other);
                self.ready.push(if is_request {
                    Ready::Pair(msg, other)
                } else {
                    Ready::Pair(other, msg)
                });
            }
            None => {
                self.unpaired_bytes += held_bytes(&msg);
                self.unpaired.push_back((is_request, txn, msg));
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

    fn unpaired_entry(oldest: (bool, u64, Message)) -> Ready {
        let (is_request, _, m) = oldest;
        let (request, response) = if is_request {
            (Some(m), None)
        } else {
            (None, Some(m))
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
            self.unpaired_bytes -= held_bytes(&oldest.2);
            Self::emit(Self::unpaired_entry(oldest), template, counters, out);
        }
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
