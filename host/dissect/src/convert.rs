//! Plugin output (WIT values, spans into the input) to owned entry messages.

use remora_core::Direction;
use remora_entry::{Body, Field, Message, Text, Value};
use remora_runtime::wit;

use crate::pairing::Pairing;
use crate::stream::Marks;

fn text(t: wit::Text, input: &[u8]) -> Text {
    match t {
        wit::Text::Owned(s) => Text::from(s),
        wit::Text::Span(s) => {
            let start = (s.offset as usize).min(input.len());
            let end = start.saturating_add(s.len as usize).min(input.len());
            let bytes = &input[start..end];
            match std::str::from_utf8(bytes) {
                Ok(s) => Text::from(s),
                Err(_) => Text::from(String::from_utf8_lossy(bytes).as_ref()),
            }
        }
    }
}

fn value(v: wit::Value, input: &[u8]) -> Value {
    match v {
        wit::Value::Boolean(b) => Value::Bool(b),
        wit::Value::Int(i) => Value::Int(i),
        wit::Value::Float(f) => Value::Float(f),
        wit::Value::Str(t) => Value::Str(text(t, input)),
        wit::Value::Bytes(b) => Value::Bytes(b),
        wit::Value::Pair((k, v)) => Value::Pair(text(k, input), text(v, input)),
    }
}

pub(crate) fn message(m: wit::Message, input: &[u8], marks: &Marks) -> Message {
    Message {
        ts: marks.at(m.start),
        fields: m
            .fields
            .into_iter()
            .map(|f| Field {
                id: f.id,
                value: value(f.value, input),
            })
            .collect(),
        body: m.body.map(|b| Body {
            data: b.data,
            original_len: b.original_len,
            truncated: b.truncated,
            decoded_from: b.decoded_from,
        }),
    }
}

/// Convert a call's messages and hand them to the flow's pairing.
pub(crate) fn collect(
    msgs: Vec<wit::Message>,
    input: &[u8],
    marks: &Marks,
    dir: Direction,
    pairing: &mut Pairing,
) {
    for m in msgs {
        let kind = m.kind;
        let txn = m.txn;
        pairing.push(kind, txn, dir, message(m, input, marks));
    }
}
