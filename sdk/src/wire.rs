//! A call's messages in the contract's flat encoding (`wit/plugin.wit`,
//! `feed-result.messages`): one byte list instead of nested records, because
//! lowering and lifting nested lists of records and strings was the largest
//! cost of the boundary. The host's decoder is `remora_runtime::wire`.

use crate::types::{Message, MessageKind, Text, Value};

const TEXT_SPAN: u8 = 0;
const TEXT_OWNED: u8 = 1;

fn text_len(t: &Text) -> usize {
    match t {
        Text::Span(_) => 9,
        Text::Owned(s) => 5 + s.len(),
    }
}

/// Exact size of the encoding, so the buffer handed to the host is
/// allocated once at its final size.
fn encoded_len(msgs: &[Message]) -> usize {
    msgs.iter()
        .map(|m| {
            let fields: usize = m
                .fields
                .iter()
                .map(|f| {
                    3 + match &f.value {
                        Value::Boolean(_) => 1,
                        Value::Int(_) | Value::Float(_) => 8,
                        Value::Str(t) => text_len(t),
                        Value::Bytes(b) => 4 + b.len(),
                        Value::Pair(k, v) => text_len(k) + text_len(v),
                    }
                })
                .sum();
            let body = m.body.as_ref().map_or(0, |b| {
                8 + 1 + 1 + b.decoded_from.as_ref().map_or(0, |d| 4 + d.len()) + 4 + b.data.len()
            });
            1 + 8 + 8 + 4 + fields + 1 + body
        })
        .sum()
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Lengths beyond u32 cannot occur: a wasm32 plugin's memory is smaller.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_text(out: &mut Vec<u8>, t: &Text) {
    match t {
        Text::Span(s) => {
            out.push(TEXT_SPAN);
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&s.len.to_le_bytes());
        }
        Text::Owned(s) => {
            out.push(TEXT_OWNED);
            put_bytes(out, s.as_bytes());
        }
    }
}

/// `msgs` in the flat encoding; empty (no allocation) when there are none.
pub fn encode(msgs: &[Message]) -> Vec<u8> {
    if msgs.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(encoded_len(msgs));
    for m in msgs {
        out.push(match m.kind {
            MessageKind::Request => 0,
            MessageKind::Response => 1,
            MessageKind::Standalone => 2,
        });
        out.extend_from_slice(&m.txn.to_le_bytes());
        out.extend_from_slice(&m.start.to_le_bytes());
        put_len(&mut out, m.fields.len());
        for f in &m.fields {
            out.extend_from_slice(&f.id.to_le_bytes());
            match &f.value {
                Value::Boolean(b) => out.extend_from_slice(&[0, *b as u8]),
                Value::Int(i) => {
                    out.push(1);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                Value::Float(x) => {
                    out.push(2);
                    out.extend_from_slice(&x.to_le_bytes());
                }
                Value::Str(t) => {
                    out.push(3);
                    put_text(&mut out, t);
                }
                Value::Bytes(b) => {
                    out.push(4);
                    put_bytes(&mut out, b);
                }
                Value::Pair(k, v) => {
                    out.push(5);
                    put_text(&mut out, k);
                    put_text(&mut out, v);
                }
            }
        }
        match &m.body {
            None => out.push(0),
            Some(b) => {
                out.push(1);
                out.extend_from_slice(&b.original_len.to_le_bytes());
                out.push(b.truncated as u8);
                match &b.decoded_from {
                    None => out.push(0),
                    Some(d) => {
                        out.push(1);
                        put_bytes(&mut out, d.as_bytes());
                    }
                }
                put_bytes(&mut out, &b.data);
            }
        }
    }
    debug_assert_eq!(out.len(), out.capacity());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Body, Field, Span};

    #[test]
    fn layout_is_the_contracts() {
        let m = Message {
            kind: MessageKind::Response,
            txn: 2,
            start: 0x0102,
            fields: vec![
                Field {
                    id: 0x0304,
                    value: Value::Str(Text::Span(Span { offset: 5, len: 6 })),
                },
                Field {
                    id: 1,
                    value: Value::Pair(Text::Owned("ab".into()), Text::Owned(String::new())),
                },
                Field {
                    id: 2,
                    value: Value::Boolean(true),
                },
                Field {
                    id: 3,
                    value: Value::Int(-1),
                },
            ],
            body: Some(Body {
                data: vec![9],
                original_len: 4,
                truncated: true,
                decoded_from: Some("gz".into()),
            }),
        };
        let mut want = vec![1];
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[4, 0, 0, 0]);
        want.extend_from_slice(&[4, 3, 3, 0, 5, 0, 0, 0, 6, 0, 0, 0]);
        want.extend_from_slice(&[1, 0, 5, 1, 2, 0, 0, 0, b'a', b'b', 1, 0, 0, 0, 0]);
        want.extend_from_slice(&[2, 0, 0, 1]);
        want.extend_from_slice(&[3, 0, 1, 255, 255, 255, 255, 255, 255, 255, 255]);
        want.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, b'g', b'z']);
        want.extend_from_slice(&[1, 0, 0, 0, 9]);
        let got = encode(std::slice::from_ref(&m));
        assert_eq!(got, want);
        assert_eq!(got.capacity(), got.len());

        let two = encode(&[m.clone(), m]);
        assert_eq!(two.len(), 2 * want.len());
        assert!(encode(&[]).is_empty());
    }
}
