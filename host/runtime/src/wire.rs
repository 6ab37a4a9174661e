//! The messages of a `feed-result`, decoded from the contract's flat encoding
//! (`wit/plugin.wit`, `feed-result.messages`) into host values.
//!
//! Plugins return a call's messages as one byte list rather than nested WIT
//! records: lifting nested lists of records and strings field by field was
//! the largest cost of the boundary. Decoding checks the structure only (tags,
//! lengths, UTF-8 of owned text); what the values mean (declared ids, spans
//! within the input, sizes) is checked afterwards like any other output.
//! [`encode`] is the inverse, for host-side tests and native benchmarks.

/// A range of the `data` passed to the current `feed` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: u32,
    pub len: u32,
}

/// Text, either located in the current input (`Span`) or owned.
#[derive(Clone, Debug, PartialEq)]
pub enum Text {
    Span(Span),
    Owned(String),
}

/// A field's value; maps arrive as one `Pair` per member, lists as one
/// scalar per element.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Boolean(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    Bytes(Vec<u8>),
    Pair((Text, Text)),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub id: u16,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// Pairs with the `Response` of the same `txn`.
    Request,
    /// Pairs with the `Request` of the same `txn`.
    Response,
    /// An entry on its own.
    Standalone,
}

/// What the plugin kept of a message body.
#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    pub data: Vec<u8>,
    pub original_len: u64,
    pub truncated: bool,
    pub decoded_from: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: MessageKind,
    pub txn: u64,
    /// Stream offset of the message's first byte.
    pub start: u64,
    pub fields: Vec<Field>,
    pub body: Option<Body>,
}

/// What a `feed`, `gap` or `end` call did, with its messages decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeedResult {
    pub consumed: u32,
    pub skip: u64,
    pub need: u32,
    pub messages: Vec<Message>,
    pub error: Option<String>,
    pub switch: Option<crate::wit::ProtocolSwitch>,
}

const KIND_REQUEST: u8 = 0;
const KIND_RESPONSE: u8 = 1;
const KIND_STANDALONE: u8 = 2;
const VALUE_BOOLEAN: u8 = 0;
const VALUE_INT: u8 = 1;
const VALUE_FLOAT: u8 = 2;
const VALUE_STR: u8 = 3;
const VALUE_BYTES: u8 = 4;
const VALUE_PAIR: u8 = 5;
const TEXT_SPAN: u8 = 0;
const TEXT_OWNED: u8 = 1;

/// The smallest encoded field (id and a boolean): bounds what a declared
/// field count may make the decoder reserve.
const MIN_FIELD_BYTES: usize = 4;

/// Why an encoding could not be read; formatted only when it happens, so
/// the hot path carries a small value instead of a `String`.
#[derive(Clone, Copy, Debug)]
enum Bad {
    Truncated {
        what: &'static str,
        len: usize,
        at: usize,
    },
    Tag {
        what: &'static str,
        value: u8,
        at: usize,
    },
    Utf8 {
        what: &'static str,
        at: usize,
    },
    Fields {
        count: usize,
        at: usize,
        left: usize,
    },
}

impl Bad {
    fn message(self, total: usize) -> String {
        match self {
            Bad::Truncated { what, len, at } => format!(
                "messages encoding truncated: {what} of {len} bytes at offset {at} of {total}"
            ),
            Bad::Tag { what, value, at } => {
                format!("messages encoding: {what} {value} at offset {at}")
            }
            Bad::Utf8 { what, at } => {
                format!("messages encoding: {what} at offset {at} is not UTF-8")
            }
            Bad::Fields { count, at, left } => format!(
                "messages encoding: {count} fields at offset {at} cannot fit in the {left} bytes left"
            ),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Bad> {
        match self.bytes.get(self.pos..).and_then(|r| r.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(Bad::Truncated {
                what,
                len: n,
                at: self.pos,
            }),
        }
    }
    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Bad> {
        match self.bytes.get(self.pos..self.pos + N) {
            Some(s) => {
                self.pos += N;
                Ok(s.try_into().expect("N bytes"))
            }
            None => Err(Bad::Truncated {
                what,
                len: N,
                at: self.pos,
            }),
        }
    }
    #[inline]
    fn u8(&mut self, what: &'static str) -> Result<u8, Bad> {
        match self.bytes.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(Bad::Truncated {
                what,
                len: 1,
                at: self.pos,
            }),
        }
    }
    #[inline]
    fn flag(&mut self, what: &'static str) -> Result<bool, Bad> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(Bad::Tag {
                what,
                value,
                at: self.pos - 1,
            }),
        }
    }
    #[inline]
    fn u32(&mut self, what: &'static str) -> Result<u32, Bad> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    #[inline]
    fn u64(&mut self, what: &'static str) -> Result<u64, Bad> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    #[inline]
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], Bad> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn string(&mut self, what: &'static str) -> Result<String, Bad> {
        let at = self.pos;
        let b = self.bytes(what)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Bad::Utf8 { what, at }),
        }
    }
    #[inline]
    fn text(&mut self) -> Result<Text, Bad> {
        match self.u8("text tag")? {
            TEXT_SPAN => {
                let [a, b, c, d, e, f, g, h] = self.array::<8>("span")?;
                Ok(Text::Span(Span {
                    offset: u32::from_le_bytes([a, b, c, d]),
                    len: u32::from_le_bytes([e, f, g, h]),
                }))
            }
            TEXT_OWNED => Ok(Text::Owned(self.string("owned text")?)),
            value => Err(Bad::Tag {
                what: "text tag",
                value,
                at: self.pos - 1,
            }),
        }
    }
    fn value(&mut self) -> Result<Value, Bad> {
        Ok(match self.u8("value tag")? {
            VALUE_BOOLEAN => Value::Boolean(self.flag("boolean")?),
            VALUE_INT => Value::Int(i64::from_le_bytes(self.array("int")?)),
            VALUE_FLOAT => Value::Float(f64::from_le_bytes(self.array("float")?)),
            VALUE_STR => Value::Str(self.text()?),
            VALUE_BYTES => Value::Bytes(self.bytes("bytes value")?.to_vec()),
            VALUE_PAIR => Value::Pair((self.text()?, self.text()?)),
            value => {
                return Err(Bad::Tag {
                    what: "value tag",
                    value,
                    at: self.pos - 1,
                })
            }
        })
    }
    fn message(&mut self) -> Result<Message, Bad> {
        let at = self.pos;
        let kind = match self.u8("message kind")? {
            KIND_REQUEST => MessageKind::Request,
            KIND_RESPONSE => MessageKind::Response,
            KIND_STANDALONE => MessageKind::Standalone,
            value => {
                return Err(Bad::Tag {
                    what: "message kind",
                    value,
                    at,
                })
            }
        };
        let txn = self.u64("txn")?;
        let start = self.u64("start")?;
        let count = self.u32("field count")? as usize;
        let left = self.bytes.len() - self.pos;
        if count > left / MIN_FIELD_BYTES {
            return Err(Bad::Fields { count, at, left });
        }
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let id = u16::from_le_bytes(self.array("field id")?);
            fields.push(Field {
                id,
                value: self.value()?,
            });
        }
        let body = if self.flag("has-body")? {
            let original_len = self.u64("body original length")?;
            let truncated = self.flag("body truncated")?;
            let decoded_from = if self.flag("has-decoded-from")? {
                Some(self.string("body decoded-from")?)
            } else {
                None
            };
            Some(Body {
                data: self.bytes("body data")?.to_vec(),
                original_len,
                truncated,
                decoded_from,
            })
        } else {
            None
        };
        Ok(Message {
            kind,
            txn,
            start,
            fields,
            body,
        })
    }
}

/// Decodes a call's messages. At most `max_messages` are accepted, so a
/// plugin cannot make the host build an unbounded list from tiny messages.
pub fn decode(bytes: &[u8], max_messages: usize) -> Result<Vec<Message>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader { bytes, pos: 0 };
    let mut out = Vec::new();
    while r.pos < bytes.len() {
        if out.len() == max_messages {
            return Err(format!(
                "more than {max_messages} messages in one call (cap {max_messages})"
            ));
        }
        match r.message() {
            Ok(m) => out.push(m),
            Err(bad) => return Err(bad.message(bytes.len())),
        }
    }
    Ok(out)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
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

/// Appends `msgs` to `out` in the contract's encoding (what a plugin sends).
pub fn encode(msgs: &[Message], out: &mut Vec<u8>) {
    for m in msgs {
        out.push(match m.kind {
            MessageKind::Request => KIND_REQUEST,
            MessageKind::Response => KIND_RESPONSE,
            MessageKind::Standalone => KIND_STANDALONE,
        });
        out.extend_from_slice(&m.txn.to_le_bytes());
        out.extend_from_slice(&m.start.to_le_bytes());
        out.extend_from_slice(&(m.fields.len() as u32).to_le_bytes());
        for f in &m.fields {
            out.extend_from_slice(&f.id.to_le_bytes());
            match &f.value {
                Value::Boolean(b) => out.extend_from_slice(&[VALUE_BOOLEAN, *b as u8]),
                Value::Int(i) => {
                    out.push(VALUE_INT);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                Value::Float(x) => {
                    out.push(VALUE_FLOAT);
                    out.extend_from_slice(&x.to_le_bytes());
                }
                Value::Str(t) => {
                    out.push(VALUE_STR);
                    put_text(out, t);
                }
                Value::Bytes(b) => {
                    out.push(VALUE_BYTES);
                    put_bytes(out, b);
                }
                Value::Pair((k, v)) => {
                    out.push(VALUE_PAIR);
                    put_text(out, k);
                    put_text(out, v);
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
                        put_bytes(out, d.as_bytes());
                    }
                }
                put_bytes(out, &b.data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Message> {
        vec![
            Message {
                kind: MessageKind::Request,
                txn: 7,
                start: 1 << 40,
                fields: vec![
                    Field {
                        id: 0,
                        value: Value::Str(Text::Span(Span { offset: 3, len: 4 })),
                    },
                    Field {
                        id: 513,
                        value: Value::Pair((
                            Text::Owned("Content-Type".into()),
                            Text::Span(Span { offset: 9, len: 0 }),
                        )),
                    },
                    Field {
                        id: 2,
                        value: Value::Int(-5),
                    },
                    Field {
                        id: 3,
                        value: Value::Float(0.25),
                    },
                    Field {
                        id: 4,
                        value: Value::Boolean(true),
                    },
                    Field {
                        id: 5,
                        value: Value::Bytes(vec![0, 255, 7]),
                    },
                ],
                body: Some(Body {
                    data: b"{\"a\":1}".to_vec(),
                    original_len: 99,
                    truncated: true,
                    decoded_from: Some("gzip".into()),
                }),
            },
            Message {
                kind: MessageKind::Standalone,
                txn: 0,
                start: 0,
                fields: vec![],
                body: None,
            },
        ]
    }

    #[test]
    fn round_trip() {
        let msgs = sample();
        let mut buf = Vec::new();
        encode(&msgs, &mut buf);
        assert_eq!(decode(&buf, 16).unwrap(), msgs);
        assert_eq!(decode(&[], 16).unwrap(), vec![]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut buf = Vec::new();
        encode(&sample()[..1], &mut buf);
        for n in 1..buf.len() {
            let e = decode(&buf[..n], 16).unwrap_err();
            assert!(
                e.contains("truncated") || e.contains("cannot fit"),
                "{n}: {e}"
            );
        }
    }

    #[test]
    fn bad_tags_and_text_are_named() {
        let mut buf = Vec::new();
        encode(&sample()[1..], &mut buf);
        let mut bad = buf.clone();
        bad[0] = 9;
        assert_eq!(
            decode(&bad, 16).unwrap_err(),
            "messages encoding: message kind 9 at offset 0"
        );

        // one field: id 1, value tag 7
        let mut m = vec![KIND_REQUEST];
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&1u16.to_le_bytes());
        let mut bad = m.clone();
        bad.extend_from_slice(&[7, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode(&bad, 16).unwrap_err(),
            "messages encoding: value tag 7 at offset 23"
        );

        let mut bad = m.clone();
        bad.extend_from_slice(&[VALUE_STR, TEXT_OWNED, 2, 0, 0, 0, 0xff, 0xfe, 0]);
        let e = decode(&bad, 16).unwrap_err();
        assert!(
            e == "messages encoding: owned text at offset 25 is not UTF-8",
            "{e}"
        );

        let mut bad = m;
        bad.extend_from_slice(&[VALUE_BOOLEAN, 2, 0]);
        assert_eq!(
            decode(&bad, 16).unwrap_err(),
            "messages encoding: boolean 2 at offset 24"
        );
    }

    #[test]
    fn counts_are_bounded() {
        let mut buf = Vec::new();
        encode(&sample()[1..], &mut buf);
        let one = buf.clone();
        for _ in 0..3 {
            buf.extend_from_slice(&one);
        }
        assert_eq!(decode(&buf, 4).unwrap().len(), 4);
        assert_eq!(
            decode(&buf, 3).unwrap_err(),
            "more than 3 messages in one call (cap 3)"
        );

        // a field count far beyond the bytes that follow is refused before
        // anything is reserved for it
        let mut huge = vec![KIND_REQUEST];
        huge.extend_from_slice(&[0; 16]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.push(0);
        let e = decode(&huge, 16).unwrap_err();
        assert!(
            e.contains("4294967295 fields at offset 0 cannot fit"),
            "{e}"
        );
    }
}
