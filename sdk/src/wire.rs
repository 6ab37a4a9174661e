//! A `run`'s calls and answers in the contract's flat encodings
//! (`wit/plugin.wit`, `run`): byte lists instead of lists of records,
//! because lowering and lifting records and strings field by field was the
//! largest cost of the boundary. The host's side is `remora_runtime::wire`.

use crate::types::{Direction, Message, MessageKind, ProtocolSwitch, Text, Value};

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
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
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
    let mut out = Vec::with_capacity(len);
    write_messages(msgs, len, &mut out);
    out
}

/// Appends `msgs`, whose encoding is `len` bytes, to `out`.
fn write_messages(msgs: &[Message], len: usize, out: &mut Vec<u8>) {
    let at = out.len();
    out.resize(at + len, 0);
    let mut w = Writer {
        buf: &mut out[at..],
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
}

/// Bytes of one call in `run`'s `calls`.
pub const CALL_BYTES: usize = 24;

/// What one call of a `run` batch does (the WIT `call-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    Feed,
    More,
    Gap,
    End,
    Close,
}

/// One call of a `run` batch, as the host encoded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawCall {
    pub session: u32,
    pub kind: CallKind,
    pub dir: Direction,
    pub base: u64,
    pub len: u64,
}

/// The calls of a `run`. The host encodes them; a malformed list is its
/// bug, and trapping (the panic) makes it visible there.
pub fn calls(bytes: &[u8]) -> impl Iterator<Item = RawCall> + '_ {
    assert!(
        bytes.len().is_multiple_of(CALL_BYTES),
        "remora-sdk: calls of {} bytes",
        bytes.len()
    );
    bytes.chunks_exact(CALL_BYTES).map(|c| {
        let u64_at = |i: usize| u64::from_le_bytes(c[i..i + 8].try_into().expect("8 bytes"));
        RawCall {
            session: u32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
            // By position in the WIT enums.
            kind: match c[4] {
                0 => CallKind::Feed,
                1 => CallKind::More,
                2 => CallKind::Gap,
                3 => CallKind::End,
                4 => CallKind::Close,
                k => panic!("remora-sdk: call kind {k}"),
            },
            dir: match c[5] {
                0 => Direction::ToServer,
                1 => Direction::ToClient,
                d => panic!("remora-sdk: direction {d}"),
            },
            base: u64_at(8),
            len: u64_at(16),
        }
    })
}

/// Appends `s` as a length and its bytes.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends one answer of a `run` to `out`: what the call did and its
/// messages.
pub fn put_answer(
    out: &mut Vec<u8>,
    consumed: u32,
    skip: u64,
    need: u32,
    error: Option<&str>,
    switch: Option<&ProtocolSwitch>,
    msgs: &[Message],
) {
    out.extend_from_slice(&consumed.to_le_bytes());
    out.extend_from_slice(&skip.to_le_bytes());
    out.extend_from_slice(&need.to_le_bytes());
    out.push(u8::from(error.is_some()) | (u8::from(switch.is_some()) << 1));
    if let Some(e) = error {
        put_str(out, e);
    }
    if let Some(sw) = switch {
        put_str(out, &sw.protocol);
        out.extend_from_slice(&sw.offsets[0].to_le_bytes());
        out.extend_from_slice(&sw.offsets[1].to_le_bytes());
        out.extend_from_slice(
            &u32::try_from(sw.params.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for (k, v) in &sw.params {
            put_str(out, k);
            put_str(out, v);
        }
    }
    let len = encoded_len(msgs);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    if len > 0 {
        write_messages(msgs, len, out);
    }
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

    #[test]
    fn answers_and_calls_are_laid_out_as_the_contract_says() {
        let m = Message {
            kind: MessageKind::Standalone,
            txn: 1,
            start: 2,
            fields: Vec::new(),
            body: None,
        };
        let switch = ProtocolSwitch::new("ws", 3, 4).param("a", "");
        let mut out = Vec::new();
        put_answer(
            &mut out,
            5,
            6,
            7,
            Some("e"),
            Some(&switch),
            std::slice::from_ref(&m),
        );
        let mut want = vec![5, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 3];
        want.extend_from_slice(&[1, 0, 0, 0, b'e']);
        want.extend_from_slice(&[2, 0, 0, 0, b'w', b's']);
        want.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0, b'a', 0, 0, 0, 0]);
        want.extend_from_slice(&[22, 0, 0, 0]);
        want.extend_from_slice(&encode(std::slice::from_ref(&m)));
        assert_eq!(out, want);
        // Nothing to say: a bare header and an empty message list.
        let mut bare = Vec::new();
        put_answer(&mut bare, 0, 0, 0, None, None, &[]);
        assert_eq!(bare, [0; 21]);

        let mut raw = vec![9, 0, 0, 0, 1, 1, 0, 0];
        raw.extend_from_slice(&(1u64 << 40).to_le_bytes());
        raw.extend_from_slice(&300u64.to_le_bytes());
        let got: Vec<RawCall> = calls(&raw).collect();
        assert_eq!(
            got,
            [RawCall {
                session: 9,
                kind: CallKind::More,
                dir: Direction::ToClient,
                base: 1 << 40,
                len: 300
            }]
        );
    }
}
