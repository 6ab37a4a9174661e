//! Plugin output (a call's encoded messages, spans into the input) to owned
//! entry messages, in one pass over the encoding.

use std::borrow::Cow;

use remora_core::Direction;
use remora_entry::{Body, Fields, Message};
use remora_runtime::wire::{utf8, BodyRef, Head, TextRef, ValueRef, Visit};
use remora_runtime::wit::{self, MessageKind};

use crate::pairing::Pairing;
use crate::stream::Marks;

/// A span's text; bytes that are not UTF-8 are replaced, since the capture
/// decides what they are, not the plugin.
#[inline]
fn text<'a>(t: TextRef<'a>, input: &'a [u8]) -> Cow<'a, str> {
    match t {
        TextRef::Owned(s) => Cow::Borrowed(s),
        TextRef::Span(s) => {
            let start = (s.offset as usize).min(input.len());
            let end = start.saturating_add(s.len as usize).min(input.len());
            let bytes = &input[start..end];
            match utf8(bytes) {
                Some(s) => Cow::Borrowed(s),
                None => String::from_utf8_lossy(bytes),
            }
        }
    }
}

/// Encoded bytes a message's fields take per field, besides their texts:
/// what a message's buffer starts with, so that most never grow.
const FIELD_BYTES_GUESS: usize = 24;

/// Builds each message as the encoding is read and hands it to the pairing.
struct ToPairing<'c> {
    input: &'c [u8],
    marks: &'c Marks,
    dir: Direction,
    pairing: &'c mut Pairing,
    /// The message being read: its kind, transaction and what it has so far.
    current: Option<(MessageKind, u64, Message)>,
    /// What the message being read holds, for the pairing's bound.
    held: usize,
}

impl<'a> Visit<'a> for ToPairing<'_> {
    #[inline]
    fn message(&mut self, head: Head) {
        self.current = Some((
            head.kind,
            head.txn,
            Message {
                ts: self.marks.at(head.start),
                fields: Fields::with_capacity(
                    (head.fields * FIELD_BYTES_GUESS)
                        .max(self.pairing.fields_hint[self.dir.index()]),
                ),
                body: None,
            },
        ));
        self.held = 0;
    }

    #[inline]
    fn field(&mut self, id: u16, v: ValueRef<'a>) {
        let Some((_, _, m)) = &mut self.current else {
            return;
        };
        let input = self.input;
        let f = &mut m.fields;
        // One match both writes the field and counts what it holds (texts
        // and data, 8 per scalar) for the pairing's bound.
        self.held += match v {
            ValueRef::Boolean(b) => {
                f.push_bool(id, b);
                8
            }
            ValueRef::Int(i) => {
                f.push_int(id, i);
                8
            }
            ValueRef::Float(x) => {
                f.push_float(id, x);
                8
            }
            ValueRef::Str(t) => {
                let t = text(t, input);
                f.push_str(id, &t);
                t.len()
            }
            ValueRef::Bytes(b) => {
                f.push_bytes(id, b);
                b.len()
            }
            ValueRef::Pair(k, v) => {
                let (k, v) = (text(k, input), text(v, input));
                f.push_pair(id, &k, &v);
                k.len() + v.len()
            }
        };
    }

    #[inline]
    fn end(&mut self, body: Option<BodyRef<'a>>) {
        if let Some((kind, txn, mut m)) = self.current.take() {
            self.pairing.fields_hint[self.dir.index()] = m.fields.encoded_len();
            self.held += body.map_or(0, |b| b.data.len());
            m.body = body.map(|b| {
                Box::new(Body {
                    data: b.data.to_vec(),
                    original_len: b.original_len,
                    truncated: b.truncated,
                    decoded_from: b.decoded_from.map(str::to_owned),
                })
            });
            self.pairing.push(kind, txn, self.dir, m, self.held);
        }
    }
}

/// Convert a call's messages and hand them to the flow's pairing.
pub(crate) fn collect(
    msgs: &wit::Messages,
    input: &[u8],
    marks: &Marks,
    dir: Direction,
    pairing: &mut Pairing,
) {
    if msgs.is_empty() {
        return;
    }
    msgs.visit(&mut ToPairing {
        input,
        marks,
        dir,
        pairing,
        current: None,
        held: 0,
    });
}

#[cfg(test)]
mod tests {
    use remora_core::Timestamp;
    use remora_entry::{Entry, Field, Value};

    use super::*;
    use crate::DissectCounters;

    fn span(offset: usize, len: usize) -> wit::Text {
        wit::Text::Span(wit::Span {
            offset: offset as u32,
            len: len as u32,
        })
    }

    fn field(id: u16, value: wit::Value) -> wit::Field {
        wit::Field { id, value }
    }

    fn collected(msgs: &wit::Messages, input: &[u8]) -> Pairing {
        let mut pairing = Pairing::default();
        collect(
            msgs,
            input,
            &Marks::default(),
            Direction::ToServer,
            &mut pairing,
        );
        pairing
    }

    fn entries_of(msgs: &wit::Messages, input: &[u8]) -> Vec<Entry> {
        let mut pairing = collected(msgs, input);
        let template = crate::pairing::test_template(9);
        let mut out = Vec::new();
        pairing.flush(&template, &mut DissectCounters::default(), &mut |e| {
            out.push(e)
        });
        out
    }

    #[test]
    fn spans_resolve_against_the_input_and_invalid_utf8_is_replaced() {
        let long = "/a/path/longer/than/an/inline/text";
        let input = format!("GET {long} ").into_bytes();
        let mut input = input;
        let bad_at = input.len();
        input.extend_from_slice(b"\xff\xfe!");
        let mut msgs = wit::Messages::default();
        msgs.push(&wit::Message {
            kind: MessageKind::Request,
            txn: 4,
            start: 0,
            fields: vec![
                field(0, wit::Value::Str(span(0, 3))),
                field(1, wit::Value::Str(span(4, long.len()))),
                field(2, wit::Value::Str(span(bad_at, 3))),
                field(
                    3,
                    wit::Value::Pair((wit::Text::Owned("Host".into()), span(0, 3))),
                ),
                field(4, wit::Value::Bytes(vec![1, 2])),
            ],
            body: Some(wit::Body {
                data: b"xy".to_vec(),
                original_len: 9,
                truncated: true,
                decoded_from: Some("gzip".into()),
            }),
        });
        msgs.push(&wit::Message {
            kind: MessageKind::Response,
            txn: 4,
            start: 0,
            fields: vec![field(5, wit::Value::Int(-2))],
            body: None,
        });
        let got = entries_of(&msgs, &input);
        assert_eq!(got.len(), 1);
        let q = got[0].request.as_ref().expect("request");
        assert_eq!(
            q.fields.to_vec(),
            vec![
                Field {
                    id: 0,
                    value: Value::Str("GET".into())
                },
                Field {
                    id: 1,
                    value: Value::Str(long.into())
                },
                Field {
                    id: 2,
                    value: Value::Str("\u{fffd}\u{fffd}!".into())
                },
                Field {
                    id: 3,
                    value: Value::Pair("Host".into(), "GET".into())
                },
                Field {
                    id: 4,
                    value: Value::Bytes(vec![1, 2])
                },
            ]
        );
        assert_eq!(
            q.body.as_deref(),
            Some(&Body {
                data: b"xy".to_vec(),
                original_len: 9,
                truncated: true,
                decoded_from: Some("gzip".into()),
            })
        );
        assert_eq!(q.ts, Timestamp::default());
        let r = got[0].response.as_ref().expect("response");
        assert_eq!(
            r.fields.to_vec(),
            vec![Field {
                id: 5,
                value: Value::Int(-2)
            }]
        );
        assert_eq!(r.body, None);
    }

    #[test]
    fn unpaired_messages_count_what_they_hold_and_standalone_ones_stand_alone() {
        let input = b"0123456789";
        let mut msgs = wit::Messages::default();
        msgs.push(&wit::Message {
            kind: MessageKind::Request,
            txn: 1,
            start: 0,
            fields: vec![
                field(0, wit::Value::Str(span(0, 10))),
                field(1, wit::Value::Boolean(true)),
            ],
            body: Some(wit::Body {
                data: vec![0; 5],
                original_len: 5,
                truncated: false,
                decoded_from: None,
            }),
        });
        msgs.push(&wit::Message {
            kind: MessageKind::Standalone,
            txn: 0,
            start: 0,
            fields: vec![],
            body: None,
        });
        let pairing = collected(&msgs, input);
        // 10 text bytes, 8 for the boolean, 5 of body
        assert_eq!(pairing.unpaired_bytes(), 23);
        assert_eq!(entries_of(&msgs, input).len(), 2);
    }
}
