//! A `run`'s calls and answers in the contract's flat encodings
//! (`wit/plugin.wit`, `run`): byte lists instead of lists of records,
//! because lowering and lifting records and strings field by field was the
//! largest cost of the boundary. The host's side is `remora_runtime::wire`.

use crate::types::{
    Body, Direction, Field, Message, MessageKind, ProtocolSwitch, Span, Text, Value,
};

const TEXT_SPAN: u8 = 0;
const TEXT_OWNED: u8 = 1;
const VALUE_BOOLEAN: u8 = 0;
const VALUE_INT: u8 = 1;
const VALUE_FLOAT: u8 = 2;
pub(crate) const VALUE_STR: u8 = 3;
const VALUE_BYTES: u8 = 4;
const VALUE_PAIR: u8 = 5;

// Messages are encoded as they are built (`Output`, `MessageBuilder`): no
// field list is materialised, walked for its size, walked again to write
// and dropped, which was most of what emitting a message cost a plugin.
// Span offsets get `shift` added: spans are made against a feed's input,
// which may start `shift` bytes into the call's data.

#[inline(always)]
fn put_len(out: &mut Vec<u8>, n: usize) {
    // Lengths beyond u32 cannot occur: a wasm32 plugin's memory is smaller.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

#[inline(always)]
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

#[inline(always)]
pub(crate) fn put_span(out: &mut Vec<u8>, s: Span, shift: u32) {
    let mut b = [TEXT_SPAN, 0, 0, 0, 0, 0, 0, 0, 0];
    b[1..5].copy_from_slice(&s.offset.saturating_add(shift).to_le_bytes());
    b[5..9].copy_from_slice(&s.len.to_le_bytes());
    out.extend_from_slice(&b);
}

#[inline(always)]
pub(crate) fn put_owned(out: &mut Vec<u8>, s: &str) {
    out.push(TEXT_OWNED);
    put_bytes(out, s.as_bytes());
}

#[inline(always)]
pub(crate) fn put_text(out: &mut Vec<u8>, t: &Text, shift: u32) {
    match t {
        Text::Span(s) => put_span(out, *s, shift),
        Text::Owned(s) => put_owned(out, s),
    }
}

/// A field's id and the tag of its value.
#[inline(always)]
pub(crate) fn put_field_head(out: &mut Vec<u8>, id: u16, tag: u8) {
    let [a, b] = id.to_le_bytes();
    out.extend_from_slice(&[a, b, tag]);
}

#[inline(always)]
pub(crate) fn put_bool_field(out: &mut Vec<u8>, id: u16, v: bool) {
    let [a, b] = id.to_le_bytes();
    out.extend_from_slice(&[a, b, VALUE_BOOLEAN, v as u8]);
}

#[inline(always)]
pub(crate) fn put_int_field(out: &mut Vec<u8>, id: u16, v: i64) {
    let mut b = [0u8; 11];
    b[..2].copy_from_slice(&id.to_le_bytes());
    b[2] = VALUE_INT;
    b[3..].copy_from_slice(&v.to_le_bytes());
    out.extend_from_slice(&b);
}

#[inline(always)]
pub(crate) fn put_float_field(out: &mut Vec<u8>, id: u16, v: f64) {
    put_field_head(out, id, VALUE_FLOAT);
    out.extend_from_slice(&v.to_le_bytes());
}

#[inline(always)]
pub(crate) fn put_span_field(out: &mut Vec<u8>, id: u16, s: Span, shift: u32) {
    let mut b = [0u8; 12];
    b[..2].copy_from_slice(&id.to_le_bytes());
    b[2] = VALUE_STR;
    b[3] = TEXT_SPAN;
    b[4..8].copy_from_slice(&s.offset.saturating_add(shift).to_le_bytes());
    b[8..12].copy_from_slice(&s.len.to_le_bytes());
    out.extend_from_slice(&b);
}

#[inline(always)]
pub(crate) fn put_str_field(out: &mut Vec<u8>, id: u16, s: &str) {
    put_field_head(out, id, VALUE_STR);
    put_owned(out, s);
}

#[inline(always)]
pub(crate) fn put_bytes_field(out: &mut Vec<u8>, id: u16, b: &[u8]) {
    put_field_head(out, id, VALUE_BYTES);
    put_bytes(out, b);
}

/// The tag of a map member; its name and value follow as texts.
#[inline(always)]
pub(crate) fn put_pair_head(out: &mut Vec<u8>, id: u16) {
    put_field_head(out, id, VALUE_PAIR);
}

pub(crate) fn put_value(out: &mut Vec<u8>, id: u16, v: &Value, shift: u32) {
    match v {
        Value::Boolean(b) => put_bool_field(out, id, *b),
        Value::Int(i) => put_int_field(out, id, *i),
        Value::Float(x) => put_float_field(out, id, *x),
        Value::Str(Text::Span(s)) => put_span_field(out, id, *s, shift),
        Value::Str(Text::Owned(s)) => put_str_field(out, id, s),
        Value::Bytes(b) => put_bytes_field(out, id, b),
        Value::Pair(k, v) => {
            put_pair_head(out, id);
            put_text(out, k, shift);
            put_text(out, v, shift);
        }
    }
}

/// A message's kind, txn, start and a field count of 0; returns where the
/// count is, for [`set_field_count`].
#[inline]
pub(crate) fn put_head(out: &mut Vec<u8>, kind: MessageKind, txn: u64, start: u64) -> usize {
    let mut b = [0u8; 21];
    b[0] = match kind {
        MessageKind::Request => 0,
        MessageKind::Response => 1,
        MessageKind::Standalone => 2,
    };
    b[1..9].copy_from_slice(&txn.to_le_bytes());
    b[9..17].copy_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&b);
    out.len() - 4
}

#[inline]
pub(crate) fn set_field_count(out: &mut [u8], at: usize, n: u32) {
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

/// A message's end: its body, if any.
pub(crate) fn put_body(out: &mut Vec<u8>, body: Option<&Body>) {
    let Some(b) = body else {
        out.push(0);
        return;
    };
    out.push(1);
    out.extend_from_slice(&b.original_len.to_le_bytes());
    out.push(b.truncated as u8);
    match &b.decoded_from {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            put_bytes(out, d.as_bytes());
        }
    }
    put_bytes(out, &b.data);
}

/// Appends `m` in the flat encoding.
pub(crate) fn put_message(out: &mut Vec<u8>, m: &Message, shift: u32) {
    let at = put_head(out, m.kind, m.txn, m.start);
    set_field_count(out, at, u32::try_from(m.fields.len()).unwrap_or(u32::MAX));
    for f in &m.fields {
        put_value(out, f.id, &f.value, shift);
    }
    put_body(out, m.body.as_ref());
}

/// `msgs` in the flat encoding; empty (no allocation) when there are none.
pub fn encode(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        put_message(&mut out, m, 0);
    }
    out
}

/// Messages back from their encoding (native harnesses and tests; the host
/// has its own, checking reader). Panics on what `encode` never writes.
#[cfg_attr(all(target_arch = "wasm32", feature = "dissector"), allow(dead_code))]
pub(crate) fn decode(bytes: &[u8]) -> Vec<Message> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> &'a [u8] {
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            a
        }
        fn u8(&mut self) -> u8 {
            self.take(1)[0]
        }
        fn u32(&mut self) -> u32 {
            u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
        }
        fn u64(&mut self) -> u64 {
            u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
        }
        fn bytes(&mut self) -> &'a [u8] {
            let n = self.u32() as usize;
            self.take(n)
        }
        fn string(&mut self) -> String {
            String::from_utf8(self.bytes().to_vec()).expect("encoded from a str")
        }
        fn text(&mut self) -> Text {
            match self.u8() {
                TEXT_SPAN => Text::Span(Span {
                    offset: self.u32(),
                    len: self.u32(),
                }),
                TEXT_OWNED => Text::Owned(self.string()),
                t => panic!("text tag {t}"),
            }
        }
    }
    let mut r = R(bytes);
    let mut msgs = Vec::new();
    while !r.0.is_empty() {
        let kind = match r.u8() {
            0 => MessageKind::Request,
            1 => MessageKind::Response,
            2 => MessageKind::Standalone,
            k => panic!("message kind {k}"),
        };
        let (txn, start) = (r.u64(), r.u64());
        let n = r.u32();
        let fields = (0..n)
            .map(|_| {
                let id = u16::from_le_bytes(r.take(2).try_into().expect("2 bytes"));
                let value = match r.u8() {
                    VALUE_BOOLEAN => Value::Boolean(r.u8() != 0),
                    VALUE_INT => Value::Int(r.u64() as i64),
                    VALUE_FLOAT => Value::Float(f64::from_bits(r.u64())),
                    VALUE_STR => Value::Str(r.text()),
                    VALUE_BYTES => Value::Bytes(r.bytes().to_vec()),
                    VALUE_PAIR => Value::Pair(r.text(), r.text()),
                    t => panic!("value tag {t}"),
                };
                Field { id, value }
            })
            .collect();
        let body = (r.u8() == 1).then(|| {
            let original_len = r.u64();
            let truncated = r.u8() != 0;
            let decoded_from = (r.u8() == 1).then(|| r.string());
            Body {
                data: r.bytes().to_vec(),
                original_len,
                truncated,
                decoded_from,
            }
        });
        msgs.push(Message {
            kind,
            txn,
            start,
            fields,
            body,
        });
    }
    msgs
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
/// messages, `msgs` already encoded.
pub fn put_answer(
    out: &mut Vec<u8>,
    consumed: u32,
    skip: u64,
    need: u32,
    error: Option<&str>,
    switch: Option<&ProtocolSwitch>,
    msgs: &[u8],
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
    put_bytes(out, msgs);
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
        assert_eq!(decode(&got), std::slice::from_ref(&m));

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
            &encode(std::slice::from_ref(&m)),
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
