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

/// Writes the encoding into a buffer of its exact final size, keeping the
/// position in a register: growing a `Vec` a few bytes at a time (a length
/// and capacity check per field) was most of the encoding's cost.
struct Writer {
    buf: Vec<u8>,
    pos: usize,
}

impl Writer {
    #[inline(always)]
    fn array<const N: usize>(&mut self, b: [u8; N]) {
        self.buf[self.pos..self.pos + N].copy_from_slice(&b);
        self.pos += N;
    }
    #[inline(always)]
    fn u8(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }
    #[inline(always)]
    fn len(&mut self, n: usize) {
        // Lengths beyond u32 cannot occur: a wasm32 plugin's memory is smaller.
        self.array(u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }
    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    #[inline(always)]
    fn text(&mut self, t: &Text) {
        match t {
            Text::Span(s) => {
                self.u8(TEXT_SPAN);
                self.array(s.offset.to_le_bytes());
                self.array(s.len.to_le_bytes());
            }
            Text::Owned(s) => {
                self.u8(TEXT_OWNED);
                self.bytes(s.as_bytes());
            }
        }
    }
}

/// `msgs` in the flat encoding; empty (no allocation) when there are none.
pub fn encode(msgs: &[Message]) -> Vec<u8> {
    if msgs.is_empty() {
        return Vec::new();
    }
    let len = encoded_len(msgs);
    let mut w = Writer {
        buf: vec![0; len],
        pos: 0,
    };
    for m in msgs {
        w.u8(match m.kind {
            MessageKind::Request => 0,
            MessageKind::Response => 1,
            MessageKind::Standalone => 2,
        });
        w.array(m.txn.to_le_bytes());
        w.array(m.start.to_le_bytes());
        w.len(m.fields.len());
        for f in &m.fields {
            w.array(f.id.to_le_bytes());
            match &f.value {
                Value::Boolean(b) => w.array([0, *b as u8]),
                Value::Int(i) => {
                    w.u8(1);
                    w.array(i.to_le_bytes());
                }
                Value::Float(x) => {
                    w.u8(2);
                    w.array(x.to_le_bytes());
                }
                Value::Str(t) => {
                    w.u8(3);
                    w.text(t);
                }
                Value::Bytes(b) => {
                    w.u8(4);
                    w.bytes(b);
                }
                Value::Pair(k, v) => {
                    w.u8(5);
                    w.text(k);
                    w.text(v);
                }
            }
        }
        match &m.body {
            None => w.u8(0),
            Some(b) => {
                w.u8(1);
                w.array(b.original_len.to_le_bytes());
                w.u8(b.truncated as u8);
                match &b.decoded_from {
                    None => w.u8(0),
                    Some(d) => {
                        w.u8(1);
                        w.bytes(d.as_bytes());
                    }
                }
                w.bytes(&b.data);
            }
        }
    }
    debug_assert_eq!(w.pos, len);
    w.buf
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
