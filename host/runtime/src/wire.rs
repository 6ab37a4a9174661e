//! A `run`'s calls and answers in the contract's flat encodings
//! (`wit/plugin.wit`, `run`).
//!
//! Calls go out as 24-byte records ([`put_call`]) and answers come back as
//! one byte list for the whole batch ([`Answers`]), each with its messages
//! in a flat encoding too, rather than nested WIT records: lifting and
//! lowering records and lists field by field was the largest cost of the
//! boundary. The host keeps an answer's messages as they came, a slice of
//! the batch's list ([`Messages`]): [`Messages::check`] walks them once, checking the structure
//! (tags, lengths, UTF-8 of owned text) and what the values may hold
//! (declared ids, spans within the input, sizes) without allocating;
//! consumers then read it with [`Messages::visit`] straight into their own
//! values, resolving spans against the input they hold, with no owned copy
//! in between. [`Message`] and its parts are the owned form, for [`encode`]
//! (host-side tests, native benchmarks) and tests.

use bytes::Bytes;

use crate::wit::{CallKind, Direction, ProtocolSwitch};

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

/// What a `feed`, `gap` or `end` call did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeedResult {
    pub consumed: u32,
    pub skip: u64,
    pub need: u32,
    pub messages: Messages,
    pub error: Option<String>,
    /// Boxed: rare, and a result is moved for every call (unboxed, the
    /// switch was most of its 144 bytes).
    pub switch: Option<Box<crate::wit::ProtocolSwitch>>,
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
/// field count may make a reader reserve.
const MIN_FIELD_BYTES: usize = 4;

/// What a call's messages may hold: checked by [`Messages::check`].
#[derive(Clone, Copy, Debug)]
pub struct Limits<'a> {
    /// Input bytes the call's spans may point into.
    pub data_len: usize,
    /// Bitset of declared field ids.
    pub fields: &'a [u64; 1024],
    pub max_messages: usize,
    pub max_body: usize,
    /// Bytes of fields and bodies the host will hold once spans are resolved.
    pub max_output: usize,
}

/// A call's messages, still in the contract's encoding. Made by
/// [`Messages::check`] from a plugin's output (or by encoding owned
/// [`Message`]s), so reading them cannot fail.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Messages {
    /// A slice of the answers of a whole `run`, shared by its answers.
    bytes: Bytes,
    count: usize,
}

/// Text, either located in the current input (`Span`) or carried in the
/// encoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TextRef<'a> {
    Span(Span),
    Owned(&'a str),
}

/// A field's value as [`Messages::visit`] hands it out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Boolean(bool),
    Int(i64),
    Float(f64),
    Str(TextRef<'a>),
    Bytes(&'a [u8]),
    Pair(TextRef<'a>, TextRef<'a>),
}

/// A message body as [`Messages::visit`] hands it out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BodyRef<'a> {
    pub data: &'a [u8],
    pub original_len: u64,
    pub truncated: bool,
    pub decoded_from: Option<&'a str>,
}

/// What precedes a message's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub kind: MessageKind,
    pub txn: u64,
    /// Stream offset of the message's first byte.
    pub start: u64,
    /// How many fields follow; bounded by the bytes that carry them.
    pub fields: usize,
}

/// Receives a call's messages in order: for each, `message`, then one
/// `field` per field, then `end`.
pub trait Visit<'a> {
    fn message(&mut self, head: Head);
    fn field(&mut self, id: u16, value: ValueRef<'a>);
    /// The message is complete; `body` is what it kept of its body.
    fn end(&mut self, body: Option<BodyRef<'a>>);
}

/// Why an encoding could not be read or breaks a [`Limits`]; formatted only
/// when it happens, so the hot path carries a small value instead of a
/// `String`.
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
        what: &'static str,
        count: usize,
        at: usize,
        left: usize,
    },
    TooMany {
        cap: usize,
    },
    Undeclared {
        id: u16,
    },
    Span {
        span: Span,
        data_len: usize,
    },
    Body {
        len: usize,
        cap: usize,
    },
    Output {
        bytes: usize,
        cap: usize,
    },
}

impl Bad {
    fn message(self, total: usize) -> String {
        self.message_in("messages encoding", total)
    }

    fn message_in(self, scope: &str, total: usize) -> String {
        match self {
            Bad::Truncated { what, len, at } => {
                format!("{scope} truncated: {what} of {len} bytes at offset {at} of {total}")
            }
            Bad::Tag { what, value, at } => {
                format!("{scope}: {what} {value} at offset {at}")
            }
            Bad::Utf8 { what, at } => {
                format!("{scope}: {what} at offset {at} is not UTF-8")
            }
            Bad::Fields {
                what,
                count,
                at,
                left,
            } => format!(
                "{scope}: {count} {what} at offset {at} cannot fit in the {left} bytes left"
            ),
            Bad::TooMany { cap } => {
                format!("more than {cap} messages in one call (cap {cap})")
            }
            Bad::Undeclared { id } => format!("undeclared field id {id}"),
            Bad::Span { span, data_len } => format!(
                "span {}+{} outside the {data_len} bytes of input",
                span.offset, span.len
            ),
            Bad::Body { len, cap } => format!("body of {len} bytes (cap {cap})"),
            Bad::Output { bytes, cap } => {
                format!("{bytes} bytes of output in one call (cap {cap})")
            }
        }
    }
}

/// `b` as text if it is UTF-8. Plugin texts are short and almost always
/// ASCII, where one ASCII test costs several times less than general
/// validation.
#[inline]
pub fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(b) });
    }
    std::str::from_utf8(b).ok()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The bytes were read through once already ([`Messages::check`]), so
    /// their owned texts are known to be UTF-8 and are not validated again.
    checked: bool,
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
        match self
            .bytes
            .get(self.pos..)
            .and_then(|r| r.first_chunk::<N>())
        {
            Some(s) => {
                self.pos += N;
                Ok(*s)
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
    #[inline]
    fn str(&mut self, what: &'static str) -> Result<&'a str, Bad> {
        let at = self.pos;
        let b = self.bytes(what)?;
        if self.checked {
            // SAFETY: `checked` is set only for a `Messages`' bytes, made
            // by `check` (which validated this very text) or encoded from
            // `&str`s; they are immutable since.
            return Ok(unsafe { std::str::from_utf8_unchecked(b) });
        }
        utf8(b).ok_or(Bad::Utf8 { what, at })
    }
    #[inline]
    fn text(&mut self) -> Result<TextRef<'a>, Bad> {
        match self.u8("text tag")? {
            TEXT_SPAN => {
                let [a, b, c, d, e, f, g, h] = self.array::<8>("span")?;
                Ok(TextRef::Span(Span {
                    offset: u32::from_le_bytes([a, b, c, d]),
                    len: u32::from_le_bytes([e, f, g, h]),
                }))
            }
            TEXT_OWNED => Ok(TextRef::Owned(self.str("owned text")?)),
            value => Err(Bad::Tag {
                what: "text tag",
                value,
                at: self.pos - 1,
            }),
        }
    }
    #[inline]
    fn value(&mut self) -> Result<ValueRef<'a>, Bad> {
        Ok(match self.u8("value tag")? {
            VALUE_BOOLEAN => ValueRef::Boolean(self.flag("boolean")?),
            VALUE_INT => ValueRef::Int(i64::from_le_bytes(self.array("int")?)),
            VALUE_FLOAT => ValueRef::Float(f64::from_le_bytes(self.array("float")?)),
            VALUE_STR => ValueRef::Str(self.text()?),
            VALUE_BYTES => ValueRef::Bytes(self.bytes("bytes value")?),
            VALUE_PAIR => ValueRef::Pair(self.text()?, self.text()?),
            value => {
                return Err(Bad::Tag {
                    what: "value tag",
                    value,
                    at: self.pos - 1,
                })
            }
        })
    }
    #[inline]
    fn head(&mut self) -> Result<Head, Bad> {
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
            return Err(Bad::Fields {
                what: "fields",
                count,
                at,
                left,
            });
        }
        Ok(Head {
            kind,
            txn,
            start,
            fields: count,
        })
    }
    #[inline]
    fn body(&mut self) -> Result<Option<BodyRef<'a>>, Bad> {
        if !self.flag("has-body")? {
            return Ok(None);
        }
        let original_len = self.u64("body original length")?;
        let truncated = self.flag("body truncated")?;
        let decoded_from = if self.flag("has-decoded-from")? {
            Some(self.str("body decoded-from")?)
        } else {
            None
        };
        Ok(Some(BodyRef {
            data: self.bytes("body data")?,
            original_len,
            truncated,
            decoded_from,
        }))
    }
}

/// What a walk over the encoding does with each part; `Err` stops it.
trait Step<'a> {
    fn message(&mut self, head: Head) -> Result<(), Bad>;
    fn field(&mut self, id: u16, value: ValueRef<'a>) -> Result<(), Bad>;
    fn end(&mut self, body: Option<BodyRef<'a>>) -> Result<(), Bad>;
}

/// Reads every message of `bytes` in order into `step`; `checked` as on
/// [`Reader`].
#[inline]
fn walk<'a>(bytes: &'a [u8], checked: bool, step: &mut impl Step<'a>) -> Result<(), Bad> {
    let mut r = Reader {
        bytes,
        pos: 0,
        checked,
    };
    while r.pos < bytes.len() {
        let head = r.head()?;
        step.message(head)?;
        for _ in 0..head.fields {
            let id = u16::from_le_bytes(r.array("field id")?);
            step.field(id, r.value()?)?;
        }
        step.end(r.body()?)?;
    }
    Ok(())
}

/// The [`Limits`] as a walk's step: counts what the host would hold.
struct Checker<'l> {
    limits: &'l Limits<'l>,
    count: usize,
    output: usize,
}

impl Checker<'_> {
    #[inline]
    fn text(&self, t: TextRef<'_>) -> Result<usize, Bad> {
        match t {
            TextRef::Span(span) => {
                if span.offset as u64 + span.len as u64 > self.limits.data_len as u64 {
                    return Err(Bad::Span {
                        span,
                        data_len: self.limits.data_len,
                    });
                }
                Ok(span.len as usize)
            }
            TextRef::Owned(s) => Ok(s.len()),
        }
    }
}

impl<'a> Step<'a> for Checker<'_> {
    #[inline]
    fn message(&mut self, _: Head) -> Result<(), Bad> {
        if self.count == self.limits.max_messages {
            return Err(Bad::TooMany {
                cap: self.limits.max_messages,
            });
        }
        self.count += 1;
        Ok(())
    }
    #[inline]
    fn field(&mut self, id: u16, value: ValueRef<'a>) -> Result<(), Bad> {
        if self.limits.fields[(id >> 6) as usize] & (1 << (id & 63)) == 0 {
            return Err(Bad::Undeclared { id });
        }
        let held = match value {
            ValueRef::Str(t) => self.text(t)?,
            ValueRef::Pair(k, v) => self.text(k)? + self.text(v)?,
            ValueRef::Bytes(b) => b.len(),
            ValueRef::Boolean(_) | ValueRef::Int(_) | ValueRef::Float(_) => 8,
        };
        self.output = self.output.saturating_add(held);
        Ok(())
    }
    #[inline]
    fn end(&mut self, body: Option<BodyRef<'a>>) -> Result<(), Bad> {
        if let Some(b) = body {
            if b.data.len() > self.limits.max_body {
                return Err(Bad::Body {
                    len: b.data.len(),
                    cap: self.limits.max_body,
                });
            }
            self.output = self.output.saturating_add(b.data.len());
        }
        Ok(())
    }
}

/// A [`Visit`] as a walk's step that never stops it.
struct Visiting<'v, V>(&'v mut V);

impl<'a, V: Visit<'a>> Step<'a> for Visiting<'_, V> {
    #[inline(always)]
    fn message(&mut self, head: Head) -> Result<(), Bad> {
        self.0.message(head);
        Ok(())
    }
    #[inline(always)]
    fn field(&mut self, id: u16, value: ValueRef<'a>) -> Result<(), Bad> {
        self.0.field(id, value);
        Ok(())
    }
    #[inline(always)]
    fn end(&mut self, body: Option<BodyRef<'a>>) -> Result<(), Bad> {
        self.0.end(body);
        Ok(())
    }
}

/// Collects owned messages ([`Messages::to_vec`]).
#[derive(Default)]
struct Owned(Vec<Message>);

fn owned_text(t: TextRef<'_>) -> Text {
    match t {
        TextRef::Span(s) => Text::Span(s),
        TextRef::Owned(s) => Text::Owned(s.to_owned()),
    }
}

impl<'a> Visit<'a> for Owned {
    fn message(&mut self, head: Head) {
        self.0.push(Message {
            kind: head.kind,
            txn: head.txn,
            start: head.start,
            fields: Vec::with_capacity(head.fields),
            body: None,
        });
    }
    fn field(&mut self, id: u16, value: ValueRef<'a>) {
        let value = match value {
            ValueRef::Boolean(b) => Value::Boolean(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(t) => Value::Str(owned_text(t)),
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::Pair(k, v) => Value::Pair((owned_text(k), owned_text(v))),
        };
        if let Some(m) = self.0.last_mut() {
            m.fields.push(Field { id, value });
        }
    }
    fn end(&mut self, body: Option<BodyRef<'a>>) {
        if let Some(m) = self.0.last_mut() {
            m.body = body.map(|b| Body {
                data: b.data.to_vec(),
                original_len: b.original_len,
                truncated: b.truncated,
                decoded_from: b.decoded_from.map(str::to_owned),
            });
        }
    }
}

impl Messages {
    /// Takes a plugin's encoded messages if they are well-formed and within
    /// `limits`; otherwise says what is wrong and where.
    pub fn check(bytes: Bytes, limits: &Limits<'_>) -> Result<Messages, String> {
        let mut checker = Checker {
            limits,
            count: 0,
            output: 0,
        };
        if let Err(bad) = walk(&bytes, false, &mut checker) {
            return Err(bad.message(bytes.len()));
        }
        if checker.output > limits.max_output {
            return Err(Bad::Output {
                bytes: checker.output,
                cap: limits.max_output,
            }
            .message(bytes.len()));
        }
        Ok(Messages {
            count: checker.count,
            bytes,
        })
    }

    /// Hands every message to `v`, in order.
    pub fn visit<'a>(&'a self, v: &mut impl Visit<'a>) {
        let read = walk(&self.bytes, true, &mut Visiting(v));
        // Only well-formed encodings are ever held (checked or encoded here).
        debug_assert!(
            read.is_ok(),
            "{}",
            read.err()
                .map(|b| b.message(self.bytes.len()))
                .unwrap_or_default()
        );
    }

    /// Appends `m`, encoded (for tests and native backends).
    pub fn push(&mut self, m: &Message) {
        let mut bytes = Vec::from(std::mem::take(&mut self.bytes));
        encode(std::slice::from_ref(m), &mut bytes);
        self.bytes = bytes.into();
        self.count += 1;
    }

    /// Owned copies of the messages (for tests and tools).
    pub fn to_vec(&self) -> Vec<Message> {
        let mut out = Owned(Vec::with_capacity(self.count));
        self.visit(&mut out);
        out.0
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl FromIterator<Message> for Messages {
    fn from_iter<I: IntoIterator<Item = Message>>(iter: I) -> Self {
        let mut bytes = Vec::new();
        let mut count = 0;
        for m in iter {
            encode(std::slice::from_ref(&m), &mut bytes);
            count += 1;
        }
        Messages {
            bytes: bytes.into(),
            count,
        }
    }
}

/// Bytes of one call in `run`'s `calls`.
pub const CALL_BYTES: usize = 24;

/// Appends one call to `run`'s `calls`, in the contract's encoding.
pub fn put_call(
    out: &mut Vec<u8>,
    session: u32,
    kind: CallKind,
    dir: Direction,
    base: u64,
    len: u64,
) {
    let kind = match kind {
        CallKind::Feed => 0u8,
        CallKind::More => 1,
        CallKind::Gap => 2,
        CallKind::End => 3,
        CallKind::Close => 4,
    };
    let dir = match dir {
        Direction::ToServer => 0u8,
        Direction::ToClient => 1,
    };
    let mut rec = [0u8; CALL_BYTES];
    rec[..4].copy_from_slice(&session.to_le_bytes());
    rec[4] = kind;
    rec[5] = dir;
    rec[8..16].copy_from_slice(&base.to_le_bytes());
    rec[16..].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&rec);
}

/// One answer of a `run`, read from the batch's answers; its messages are
/// still to be checked against the call's limits ([`Messages::check`]).
#[derive(Debug)]
pub struct RawAnswer {
    pub consumed: u32,
    pub skip: u64,
    pub need: u32,
    pub error: Option<String>,
    pub switch: Option<ProtocolSwitch>,
    pub messages: Bytes,
}

const ANSWER_ERROR: u8 = 1;
const ANSWER_SWITCH: u8 = 2;

/// Reads the answers of a `run`, one per call, in order.
pub struct Answers {
    bytes: Bytes,
    pos: usize,
}

impl Answers {
    pub fn new(bytes: Bytes) -> Self {
        Answers { bytes, pos: 0 }
    }

    /// The next answer, or what is wrong with the encoding where.
    pub fn next_answer(&mut self) -> Result<RawAnswer, String> {
        let mut r = Reader {
            bytes: &self.bytes,
            pos: self.pos,
            checked: false,
        };
        let answer = read_answer(&mut r, &self.bytes)
            .map_err(|b| b.message_in("answers encoding", self.bytes.len()))?;
        self.pos = r.pos;
        Ok(answer)
    }

    /// Bytes after the answers read so far.
    pub fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

/// Reads one answer from `r`, which reads `answers`: the answer's messages
/// are a slice of that list.
fn read_answer(r: &mut Reader<'_>, answers: &Bytes) -> Result<RawAnswer, Bad> {
    let consumed = r.u32("consumed")?;
    let skip = r.u64("skip")?;
    let need = r.u32("need")?;
    let at = r.pos;
    let flags = r.u8("answer flags")?;
    if flags & !(ANSWER_ERROR | ANSWER_SWITCH) != 0 {
        return Err(Bad::Tag {
            what: "answer flags",
            value: flags,
            at,
        });
    }
    let error = if flags & ANSWER_ERROR != 0 {
        Some(r.str("error")?.to_owned())
    } else {
        None
    };
    let switch = if flags & ANSWER_SWITCH != 0 {
        let protocol = r.str("switch protocol")?.to_owned();
        let to_server = r.u64("switch offset")?;
        let to_client = r.u64("switch offset")?;
        let count = r.u32("switch parameter count")? as usize;
        let left = r.bytes.len() - r.pos;
        // Each parameter is two lengths at least.
        if count > left / 8 {
            return Err(Bad::Fields {
                what: "switch parameters",
                count,
                at,
                left,
            });
        }
        let mut params = Vec::with_capacity(count);
        for _ in 0..count {
            let k = r.str("switch parameter")?.to_owned();
            let v = r.str("switch parameter")?.to_owned();
            params.push((k, v));
        }
        Some(ProtocolSwitch {
            protocol,
            to_server,
            to_client,
            params,
        })
    } else {
        None
    };
    let len = r.u32("messages length")? as usize;
    let start = r.pos;
    r.take(len, "messages")?;
    Ok(RawAnswer {
        consumed,
        skip,
        need,
        error,
        switch,
        messages: answers.slice(start..start + len),
    })
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

    const ALL_DECLARED: [u64; 1024] = [u64::MAX; 1024];

    /// Checks with only a message cap, and reads the messages back owned.
    fn decode(bytes: &[u8], max_messages: usize) -> Result<Vec<Message>, String> {
        let limits = Limits {
            data_len: 1 << 20,
            fields: &ALL_DECLARED,
            max_messages,
            max_body: 1 << 20,
            max_output: 1 << 30,
        };
        Messages::check(Bytes::copy_from_slice(bytes), &limits).map(|m| m.to_vec())
    }

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

    #[test]
    fn whatever_check_accepts_reads_back_whole() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf);
        let limits = Limits {
            data_len: 1 << 20,
            fields: &ALL_DECLARED,
            max_messages: 16,
            max_body: 1 << 20,
            max_output: 1 << 30,
        };
        let mut accepted = 0;
        for at in 0..buf.len() {
            for b in [0, 1, 2, 5, 7, 0x80, 0xff] {
                let mut bad = buf.clone();
                bad[at] = b;
                if let Ok(m) = Messages::check(bad.clone().into(), &limits) {
                    accepted += 1;
                    // A visit of checked bytes reads all of them.
                    let read = m.to_vec();
                    assert_eq!(read.len(), m.len(), "byte {at} set to {b}");
                    let mut again = Vec::new();
                    encode(&read, &mut again);
                    assert_eq!(again, bad, "byte {at} set to {b}");
                }
            }
        }
        assert!(accepted > 0);
    }

    fn one(id: u16, value: Value) -> Message {
        Message {
            kind: MessageKind::Request,
            txn: 0,
            start: 0,
            fields: vec![Field { id, value }],
            body: None,
        }
    }

    fn span(offset: u32, len: u32) -> Text {
        Text::Span(Span { offset, len })
    }

    /// Checks `msgs` against 10 bytes of input, field 3 declared, bodies up
    /// to 4 bytes and 40 bytes of output.
    fn check_limits(msgs: &[Message], max_messages: usize) -> Result<usize, String> {
        let mut fields = [0u64; 1024];
        fields[0] = 1 << 3;
        let limits = Limits {
            data_len: 10,
            fields: &fields,
            max_messages,
            max_body: 4,
            max_output: 40,
        };
        let mut buf = Vec::new();
        encode(msgs, &mut buf);
        Messages::check(buf.into(), &limits).map(|m| m.len())
    }

    #[test]
    fn values_are_checked_against_the_limits() {
        assert_eq!(check_limits(&[one(3, Value::Str(span(2, 8)))], 9), Ok(1));
        assert_eq!(
            check_limits(&[one(3, Value::Str(span(u32::MAX, 2)))], 9).unwrap_err(),
            "span 4294967295+2 outside the 10 bytes of input"
        );
        assert_eq!(
            check_limits(&[one(3, Value::Pair((span(0, 1), span(9, 2))))], 9).unwrap_err(),
            "span 9+2 outside the 10 bytes of input"
        );
        assert_eq!(
            check_limits(&[one(4, Value::Int(1))], 9).unwrap_err(),
            "undeclared field id 4"
        );
        assert_eq!(
            check_limits(&vec![one(3, Value::Int(1)); 3], 2).unwrap_err(),
            "more than 2 messages in one call (cap 2)"
        );
        let mut m = one(3, Value::Boolean(true));
        m.body = Some(Body {
            data: vec![0; 5],
            original_len: 5,
            truncated: false,
            decoded_from: None,
        });
        assert_eq!(
            check_limits(&[m], 9).unwrap_err(),
            "body of 5 bytes (cap 4)"
        );
        // many small messages add up past the per-call output cap
        let owned = one(3, Value::Str(Text::Owned("0123456789".into())));
        assert_eq!(check_limits(&vec![owned.clone(); 4], 9), Ok(4));
        assert_eq!(
            check_limits(&vec![owned; 5], 9).unwrap_err(),
            "50 bytes of output in one call (cap 40)"
        );
    }

    /// Records what a visit hands out, borrowed.
    #[derive(Default)]
    struct Record<'a> {
        heads: Vec<Head>,
        fields: Vec<(u16, ValueRef<'a>)>,
        bodies: Vec<Option<BodyRef<'a>>>,
    }

    impl<'a> Visit<'a> for Record<'a> {
        fn message(&mut self, head: Head) {
            self.heads.push(head);
        }
        fn field(&mut self, id: u16, value: ValueRef<'a>) {
            self.fields.push((id, value));
        }
        fn end(&mut self, body: Option<BodyRef<'a>>) {
            self.bodies.push(body);
        }
    }

    #[test]
    fn a_visit_borrows_texts_and_bodies_from_the_encoding() {
        let msgs: Messages = sample().into_iter().collect();
        assert_eq!(msgs.len(), 2);
        let mut rec = Record::default();
        msgs.visit(&mut rec);
        assert_eq!(
            rec.heads,
            vec![
                Head {
                    kind: MessageKind::Request,
                    txn: 7,
                    start: 1 << 40,
                    fields: 6,
                },
                Head {
                    kind: MessageKind::Standalone,
                    txn: 0,
                    start: 0,
                    fields: 0,
                },
            ]
        );
        assert_eq!(
            rec.fields[1],
            (
                513,
                ValueRef::Pair(
                    TextRef::Owned("Content-Type"),
                    TextRef::Span(Span { offset: 9, len: 0 })
                )
            )
        );
        assert_eq!(rec.fields[5], (5, ValueRef::Bytes(&[0, 255, 7])));
        assert_eq!(
            rec.bodies,
            vec![
                Some(BodyRef {
                    data: b"{\"a\":1}",
                    original_len: 99,
                    truncated: true,
                    decoded_from: Some("gzip"),
                }),
                None
            ]
        );
        assert_eq!(msgs.to_vec(), sample());
    }

    /// The switch below as the host reads it.
    fn switch() -> ProtocolSwitch {
        ProtocolSwitch {
            protocol: "WebSocket".into(),
            to_server: 10,
            to_client: 1 << 33,
            params: vec![
                ("upgrade".into(), "websocket".into()),
                (String::new(), "é".into()),
            ],
        }
    }

    fn sdk_switch() -> remora_sdk::ProtocolSwitch {
        remora_sdk::ProtocolSwitch::new("WebSocket", 10, 1 << 33)
            .param("upgrade", "websocket")
            .param("", "é")
    }

    /// An answer as a plugin built with the SDK writes it.
    fn put_answer(
        out: &mut Vec<u8>,
        (consumed, skip, need): (u32, u64, u32),
        error: Option<&str>,
        switch: Option<&remora_sdk::ProtocolSwitch>,
        msgs: &[remora_sdk::Message],
    ) {
        remora_sdk::wire::put_answer(
            out,
            consumed,
            skip,
            need,
            error,
            switch,
            &remora_sdk::wire::encode(msgs),
        );
    }

    /// Three answers, written by the SDK: a message, an error and a
    /// switch, nothing.
    fn answers() -> (Vec<u8>, Vec<u8>) {
        let m = remora_sdk::Message {
            kind: remora_sdk::MessageKind::Response,
            txn: 7,
            start: 1 << 40,
            fields: vec![remora_sdk::Field {
                id: 513,
                value: remora_sdk::Value::Pair(
                    "k".into(),
                    remora_sdk::Span { offset: 1, len: 2 }.into(),
                ),
            }],
            body: None,
        };
        let msgs = remora_sdk::wire::encode(std::slice::from_ref(&m));
        let mut buf = Vec::new();
        put_answer(&mut buf, (5, 1 << 40, 9), None, None, &[m]);
        put_answer(
            &mut buf,
            (0, 0, 0),
            Some("bad frame"),
            Some(&sdk_switch()),
            &[],
        );
        put_answer(&mut buf, (u32::MAX, 0, 1), None, None, &[]);
        (buf, msgs)
    }

    #[test]
    fn answers_read_back_as_written() {
        let (buf, msgs) = answers();
        let mut a = Answers::new(buf.into());
        let first = a.next_answer().unwrap();
        assert_eq!((first.consumed, first.skip, first.need), (5, 1 << 40, 9));
        assert_eq!((first.error, first.switch), (None, None));
        assert_eq!(first.messages, msgs);
        // What the SDK wrote is what the host reads back.
        let limits = Limits {
            data_len: 3,
            fields: &ALL_DECLARED,
            max_messages: 1,
            max_body: 0,
            max_output: 1 << 10,
        };
        let read = Messages::check(first.messages, &limits).unwrap().to_vec();
        assert_eq!(read.len(), 1);
        assert_eq!(
            (read[0].kind, read[0].txn, read[0].start),
            (MessageKind::Response, 7, 1 << 40)
        );
        assert_eq!(
            read[0].fields[0].value,
            Value::Pair((
                Text::Owned("k".into()),
                Text::Span(Span { offset: 1, len: 2 })
            ))
        );
        let second = a.next_answer().unwrap();
        assert_eq!(second.error.as_deref(), Some("bad frame"));
        assert_eq!(second.switch, Some(switch()));
        assert!(second.messages.is_empty());
        let third = a.next_answer().unwrap();
        assert_eq!((third.consumed, third.need), (u32::MAX, 1));
        assert_eq!(a.left(), 0);
        let e = a.next_answer().unwrap_err();
        assert!(e.starts_with("answers encoding truncated: consumed"), "{e}");
    }

    #[test]
    fn damaged_answers_are_errors_never_panics() {
        let (buf, _) = answers();
        // Every truncation: an error at the answer it cuts, the answers
        // before it whole.
        for cut in 0..buf.len() {
            let mut a = Answers::new(Bytes::copy_from_slice(&buf[..cut]));
            let read = std::iter::from_fn(|| a.next_answer().ok()).count();
            assert!(read < 3, "cut at {cut}: {read} answers");
        }
        // Every byte set to a few values: read or refused, never a panic
        // or a read beyond the list.
        for at in 0..buf.len() {
            for b in [0, 2, 3, 0x7f, 0x80, 0xff] {
                let mut bad = buf.clone();
                bad[at] = b;
                let mut a = Answers::new(bad.into());
                for _ in 0..4 {
                    if a.next_answer().is_err() {
                        break;
                    }
                }
            }
        }
        // Flags beyond error and switch, a parameter count no list could
        // hold, and text that is not UTF-8 are named.
        let mut bad = Vec::new();
        put_answer(&mut bad, (0, 0, 0), None, None, &[]);
        bad[16] = 4;
        let e = Answers::new(bad.into()).next_answer().unwrap_err();
        assert_eq!(e, "answers encoding: answer flags 4 at offset 16");
        let mut bad = Vec::new();
        put_answer(&mut bad, (0, 0, 0), None, Some(&sdk_switch()), &[]);
        let count_at = 17 + 4 + "WebSocket".len() + 16;
        bad[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = Answers::new(bad.into()).next_answer().unwrap_err();
        assert!(
            e.contains("4294967295 switch parameters at offset 16 cannot fit"),
            "{e}"
        );
        let mut bad = Vec::new();
        put_answer(&mut bad, (0, 0, 0), Some("ok"), None, &[]);
        bad[21] = 0xff;
        let e = Answers::new(bad.into()).next_answer().unwrap_err();
        assert_eq!(e, "answers encoding: error at offset 17 is not UTF-8");
    }

    #[test]
    fn calls_are_24_bytes_little_endian() {
        let mut out = Vec::new();
        put_call(
            &mut out,
            7,
            CallKind::More,
            Direction::ToClient,
            1 << 40,
            300,
        );
        put_call(
            &mut out,
            u32::MAX,
            CallKind::Close,
            Direction::ToServer,
            0,
            0,
        );
        assert_eq!(out.len(), 2 * CALL_BYTES);
        let mut want = vec![
            7, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 44, 1, 0, 0, 0, 0, 0, 0,
        ];
        want.extend_from_slice(&[255, 255, 255, 255, 4, 0, 0, 0]);
        want.extend_from_slice(&[0; 16]);
        assert_eq!(out, want);
    }
}
