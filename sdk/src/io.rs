//! What a session sees (`Input`), returns (`Progress`) and emits (`Output`).

use crate::types::*;
use core::ops::Range;
use std::borrow::Cow;

/// The bytes of one `feed` call: `data[0]` is at stream offset `base`.
///
/// `data` starts with the bytes the previous call did not consume, followed by
/// the new ones.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub base: u64,
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(base: u64, data: &'a [u8]) -> Self {
        Input { base, data }
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Stream offset of `data[pos]`.
    pub fn offset(&self, pos: usize) -> u64 {
        self.base + pos as u64
    }
    /// A span naming `data[range]`. The range is clamped to the input.
    pub fn span(&self, range: Range<usize>) -> Span {
        let end = range.end.min(self.data.len());
        let start = range.start.min(end);
        Span {
            offset: start as u32,
            len: (end - start) as u32,
        }
    }
    /// The span of `sub`, a subslice of `data` (e.g. a `&str` httparse returned).
    /// Returns an empty span at 0 when `sub` does not lie inside `data`.
    pub fn span_of(&self, sub: &[u8]) -> Span {
        if self.contains(sub) {
            Span {
                offset: (sub.as_ptr() as usize - self.data.as_ptr() as usize) as u32,
                len: sub.len() as u32,
            }
        } else {
            Span::default()
        }
    }
    /// Same as [`Input::span_of`] for a `&str`.
    pub fn span_of_str(&self, sub: &str) -> Span {
        self.span_of(sub.as_bytes())
    }
    /// `text` as a [`Text`]: a span when it lies inside `data` (no copy
    /// crosses the boundary), else an owned copy. Lets a dissector render
    /// into a `Cow<str>` and emit whichever it got.
    pub fn text_of(&self, text: &str) -> Text {
        if text.is_empty() || self.contains(text.as_bytes()) {
            Text::Span(self.span_of_str(text))
        } else {
            Text::Owned(text.to_owned())
        }
    }
    fn contains(&self, sub: &[u8]) -> bool {
        let base = self.data.as_ptr() as usize;
        let p = sub.as_ptr() as usize;
        p >= base && p + sub.len() <= base + self.data.len()
    }
    /// The bytes a span names (empty when out of range).
    pub fn bytes(&self, span: Span) -> &'a [u8] {
        self.data.get(span.range()).unwrap_or(&[])
    }
    /// A cursor over `data[pos..]`.
    pub fn cursor(&self, pos: usize) -> Cursor<'a> {
        let mut c = Cursor::new(self.data);
        c.set_pos(pos.min(self.data.len()));
        c
    }
}

/// What a `feed` call did with its input; see the README for the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes at the front of the input the session is done with.
    pub consumed: usize,
    /// Bytes after `consumed` the host drops without passing them (bodies not kept).
    pub skip: u64,
    /// Do not call again until at least this many bytes are pending after
    /// `consumed` (0: call on any new bytes).
    pub need: usize,
}

impl Progress {
    /// Consumed `n` bytes; call again on any new bytes.
    pub fn consumed(n: usize) -> Self {
        Progress {
            consumed: n,
            skip: 0,
            need: 0,
        }
    }
    /// Consumed `n` bytes; call again once `need` bytes are pending.
    pub fn need(n: usize, need: usize) -> Self {
        Progress {
            consumed: n,
            skip: 0,
            need,
        }
    }
    /// Consumed `n` bytes and drop the `skip` bytes after them.
    pub fn skip(n: usize, skip: u64) -> Self {
        Progress {
            consumed: n,
            skip,
            need: 0,
        }
    }
}

/// Messages a call emits before it should return and let the host call
/// again with the rest: the host refuses more than 4096 in one call (as
/// malformed output, which faults the plugin), and a call that checks
/// [`Output::is_full`] only between records must not overshoot it.
pub const MESSAGES_PER_CALL: usize = 1024;
/// Encoded output a call holds before it should return, likewise: the host
/// takes 8 MiB, and one more message adds at most a 1 MiB body.
pub const OUTPUT_BYTES_PER_CALL: usize = 4 << 20;

/// Spare field lists an `Output` keeps for detached messages: enough for a
/// call's worth of them, so a steady stream allocates none.
const SPARE_FIELD_LISTS: usize = 64;
/// A field list that grew beyond this many fields is freed, not kept.
const SPARE_FIELDS_MAX: usize = 64;
/// Capacity of a new field list: most messages have fewer fields.
const FIELDS_INITIAL: usize = 8;

/// Collects the messages and the error of one call.
///
/// Messages are encoded as they are built, in the contract's flat encoding
/// (see `wire`), so a field costs a few bytes written and nothing else.
#[derive(Debug, Default)]
pub struct Output {
    /// This call's messages, encoded.
    encoded: Vec<u8>,
    count: usize,
    /// Added to span offsets as they are encoded: the input of the current
    /// feed starts this many bytes into the call's data.
    shift: u32,
    error: Option<String>,
    switch: Option<ProtocolSwitch>,
    /// Cleared field lists of detached messages already encoded.
    spare_fields: Vec<Vec<Field>>,
}

impl Output {
    pub fn new() -> Self {
        Self::default()
    }
    /// Start a request message; add fields through the returned builder.
    pub fn request(&mut self, txn: u64, start: u64) -> MessageBuilder<'_> {
        self.message(MessageKind::Request, txn, start)
    }
    pub fn response(&mut self, txn: u64, start: u64) -> MessageBuilder<'_> {
        self.message(MessageKind::Response, txn, start)
    }
    pub fn standalone(&mut self, txn: u64, start: u64) -> MessageBuilder<'_> {
        self.message(MessageKind::Standalone, txn, start)
    }
    /// Start a message; it is complete when the builder is dropped.
    pub fn message(&mut self, kind: MessageKind, txn: u64, start: u64) -> MessageBuilder<'_> {
        let count_at = crate::wire::put_head(&mut self.encoded, kind, txn, start);
        self.count += 1;
        MessageBuilder {
            out: self,
            count_at,
            fields: 0,
            body: None,
        }
    }
    /// A message to fill in and hand over later with [`Output::push`] (e.g.
    /// kept across calls while its body arrives). Its field list is one the
    /// output already allocated when there is a spare one.
    pub fn detached(&mut self, kind: MessageKind, txn: u64, start: u64) -> Message {
        let fields = self
            .spare_fields
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(FIELDS_INITIAL));
        Message {
            kind,
            txn,
            start,
            fields,
            body: None,
        }
    }
    /// Emit a message built elsewhere (e.g. kept across calls, with owned
    /// texts); its spans name the current input.
    pub fn push(&mut self, msg: Message) {
        crate::wire::put_message(&mut self.encoded, &msg, self.shift);
        self.count += 1;
        let mut fields = msg.fields;
        if self.spare_fields.len() < SPARE_FIELD_LISTS && fields.capacity() <= SPARE_FIELDS_MAX {
            fields.clear();
            self.spare_fields.push(fields);
        }
    }
    /// Report a parse error for this call. The first error of a call wins.
    pub fn error(&mut self, reason: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(reason.into());
        }
    }
    /// Hand the flow to another protocol's plugin after this call (see
    /// `ProtocolSwitch`). Do not consume bytes at or beyond its offsets: the
    /// host passes what it still holds from there to the new session. The
    /// last switch of a call wins; only `feed` may switch.
    pub fn switch_protocol(&mut self, switch: ProtocolSwitch) {
        self.switch = Some(switch);
    }
    pub fn has_error(&self) -> bool {
        self.error.is_some()
    }
    /// Whether this call asked for a protocol switch.
    pub fn has_switch(&self) -> bool {
        self.switch.is_some()
    }
    /// Messages emitted so far in this call.
    pub fn message_count(&self) -> usize {
        self.count
    }
    /// Whether this call has emitted enough: a `feed` that sees it between
    /// records returns what it consumed, and the host calls again with the
    /// rest (see [`MESSAGES_PER_CALL`]). A burst of tiny messages (13,000
    /// MQTT publishes in 91 KB) otherwise overflowed the host's per-call
    /// limit and faulted the plugin.
    pub fn is_full(&self) -> bool {
        self.count >= MESSAGES_PER_CALL || self.encoded.len() >= OUTPUT_BYTES_PER_CALL
    }
    /// Spans of messages from now on were made against an input that
    /// started `by` bytes into the call's data.
    #[cfg_attr(
        not(all(target_arch = "wasm32", feature = "dissector")),
        allow(dead_code)
    )]
    pub(crate) fn set_span_shift(&mut self, by: usize) {
        self.shift = u32::try_from(by).unwrap_or(u32::MAX);
    }
    /// Take what was collected, decoded, leaving the output empty (its
    /// allocations kept). For native harnesses and tests.
    pub fn take(&mut self) -> (Vec<Message>, Option<String>) {
        let messages = crate::wire::decode(&self.encoded);
        self.encoded.clear();
        self.count = 0;
        (messages, self.error.take())
    }
    /// Take the protocol switch requested by this call, if any.
    pub fn take_switch(&mut self) -> Option<ProtocolSwitch> {
        self.switch.take()
    }
    /// Appends the call's answer to `out` in the contract's encoding (a
    /// `run`'s answers) and leaves the output empty for the next call.
    pub fn finish_into(&mut self, progress: Progress, out: &mut Vec<u8>) {
        crate::wire::put_answer(
            out,
            u32::try_from(progress.consumed).unwrap_or(u32::MAX),
            progress.skip,
            u32::try_from(progress.need).unwrap_or(u32::MAX),
            self.error.as_deref(),
            self.switch.as_ref(),
            &self.encoded,
        );
        self.encoded.clear();
        self.count = 0;
        self.shift = 0;
        self.error = None;
        self.switch = None;
    }
    /// The call's messages still encoded (into `into`), and how many there
    /// are, leaving the output empty; with [`Output::take_error`] and
    /// [`Output::take_switch`], what a native backend hands the host
    /// without decoding.
    pub fn take_encoded(&mut self, into: &mut Vec<u8>) -> usize {
        // The buffers trade places: neither is copied nor freed.
        into.clear();
        core::mem::swap(&mut self.encoded, into);
        core::mem::take(&mut self.count)
    }
    /// Take the error reported by this call, if any.
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }
    /// Take what was collected as a WIT-shaped result with `progress`.
    pub fn finish(&mut self, progress: Progress) -> FeedResult {
        let (messages, error) = self.take();
        FeedResult {
            consumed: u32::try_from(progress.consumed).unwrap_or(u32::MAX),
            skip: progress.skip,
            need: u32::try_from(progress.need).unwrap_or(u32::MAX),
            messages,
            error,
            switch: self.switch.take(),
        }
    }
}

/// Adds fields and a body to a message `Output` is encoding; the message
/// is complete when the builder is dropped.
pub struct MessageBuilder<'a> {
    out: &'a mut Output,
    count_at: usize,
    fields: u32,
    body: Option<Body>,
}

impl MessageBuilder<'_> {
    /// Add a field value (`Span`, `Text`, `&str`, `String`, ints, bool, f64,
    /// bytes, `Value`).
    pub fn field(&mut self, id: u16, value: impl FieldValue) -> &mut Self {
        value.put(&mut self.out.encoded, id, self.out.shift);
        self.fields += 1;
        self
    }
    /// Add one member of a map field.
    pub fn pair(&mut self, id: u16, name: impl TextValue, value: impl TextValue) -> &mut Self {
        let (out, shift) = (&mut self.out.encoded, self.out.shift);
        crate::wire::put_pair_head(out, id);
        name.put(out, shift);
        value.put(out, shift);
        self.fields += 1;
        self
    }
    pub fn int(&mut self, id: u16, v: i64) -> &mut Self {
        crate::wire::put_int_field(&mut self.out.encoded, id, v);
        self.fields += 1;
        self
    }
    /// The message's body (the last one given counts).
    pub fn body(&mut self, body: Body) -> &mut Self {
        self.body = Some(body);
        self
    }
}

impl Drop for MessageBuilder<'_> {
    fn drop(&mut self) {
        let out = &mut self.out.encoded;
        crate::wire::set_field_count(out, self.count_at, self.fields);
        crate::wire::put_body(out, self.body.as_ref());
    }
}

mod sealed {
    pub trait Sealed {}
}

/// What [`MessageBuilder::field`] takes: encoded on the spot, so a `&str`
/// is copied once into the output and never allocated.
pub trait FieldValue: sealed::Sealed {
    #[doc(hidden)]
    fn put(self, out: &mut Vec<u8>, id: u16, shift: u32);
}

/// What [`MessageBuilder::pair`] takes for a name or a value.
pub trait TextValue: sealed::Sealed {
    #[doc(hidden)]
    fn put(self, out: &mut Vec<u8>, shift: u32);
}

macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl FieldValue for $t {
            #[inline]
            fn put(self, out: &mut Vec<u8>, id: u16, _: u32) {
                crate::wire::put_int_field(out, id, i64::try_from(self).unwrap_or(i64::MAX));
            }
        }
    )*};
}
int_values!(i64, u64, u32, u16, usize);

/// `FieldValue` for types whose field is one `wire::put_*_field` call on
/// the value as `$as` gives it.
macro_rules! field_values {
    ($put:ident, $as:expr, $($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl FieldValue for $t {
            #[inline]
            fn put(self, out: &mut Vec<u8>, id: u16, _: u32) {
                crate::wire::$put(out, id, $as(&self));
            }
        }
    )*};
}
field_values!(put_bool_field, |v: &bool| *v, bool);
field_values!(put_float_field, |v: &f64| *v, f64);
field_values!(put_bytes_field, <[u8]>::as_ref, Vec<u8>, &[u8]);

impl sealed::Sealed for Value {}
impl FieldValue for Value {
    #[inline]
    fn put(self, out: &mut Vec<u8>, id: u16, shift: u32) {
        crate::wire::put_value(out, id, &self, shift);
    }
}
impl sealed::Sealed for &Value {}
impl FieldValue for &Value {
    #[inline]
    fn put(self, out: &mut Vec<u8>, id: u16, shift: u32) {
        crate::wire::put_value(out, id, self, shift);
    }
}

/// Texts are values too: a string field.
macro_rules! text_values {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl FieldValue for $t {
            #[inline]
            fn put(self, out: &mut Vec<u8>, id: u16, shift: u32) {
                crate::wire::put_field_head(out, id, crate::wire::VALUE_STR);
                TextValue::put(self, out, shift);
            }
        }
    )*};
}
text_values!(Span, Text, &Text, String, &String, &str, Cow<'_, str>);

impl TextValue for Span {
    #[inline]
    fn put(self, out: &mut Vec<u8>, shift: u32) {
        crate::wire::put_span(out, self, shift);
    }
}
impl TextValue for Text {
    #[inline]
    fn put(self, out: &mut Vec<u8>, shift: u32) {
        crate::wire::put_text(out, &self, shift);
    }
}
impl TextValue for &Text {
    #[inline]
    fn put(self, out: &mut Vec<u8>, shift: u32) {
        crate::wire::put_text(out, self, shift);
    }
}

/// Owned texts: whatever the type, its `str` is copied into the encoding.
macro_rules! owned_texts {
    ($($t:ty),*) => {$(
        impl TextValue for $t {
            #[inline]
            fn put(self, out: &mut Vec<u8>, _: u32) {
                crate::wire::put_owned(out, AsRef::<str>::as_ref(&self));
            }
        }
    )*};
}
owned_texts!(String, &String, &str, Cow<'_, str>);

/// A small forward cursor over bytes: the usual helpers for text and binary
/// protocols. Never panics; reads past the end return `None`.
#[derive(Clone, Copy, Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.data.len());
    }
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }
    pub fn starts_with(&self, prefix: &[u8]) -> bool {
        self.rest().starts_with(prefix)
    }
    pub fn advance(&mut self, n: usize) -> bool {
        if n <= self.remaining() {
            self.pos += n;
            true
        } else {
            false
        }
    }
    /// `n` bytes, or `None` (cursor unchanged) when fewer remain.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    pub fn u8(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }
    pub fn u16_be(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32_be(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64_be(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    pub fn u16_le(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32_le(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Index (absolute) of the next `byte` at or after the cursor.
    pub fn find(&self, byte: u8) -> Option<usize> {
        self.rest()
            .iter()
            .position(|&b| b == byte)
            .map(|i| self.pos + i)
    }
    /// Index (absolute) of the next occurrence of `needle` at or after the cursor.
    pub fn find_seq(&self, needle: &[u8]) -> Option<usize> {
        if needle.is_empty() {
            return Some(self.pos);
        }
        self.rest()
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| self.pos + i)
    }
    /// A line without its `\n` / `\r\n` terminator, as an absolute range, and
    /// move past the terminator; `None` (cursor unchanged) when no `\n` yet.
    pub fn line(&mut self) -> Option<Range<usize>> {
        let nl = self.find(b'\n')?;
        let start = self.pos;
        let end = if nl > start && self.data[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        self.pos = nl + 1;
        Some(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Body {
        Body {
            data: b"xy".to_vec(),
            original_len: 9,
            truncated: true,
            decoded_from: Some("gzip".into()),
        }
    }

    #[test]
    fn built_and_pushed_messages_encode_alike_with_spans_shifted() {
        let span = Span { offset: 4, len: 5 };
        let mut out = Output::new();
        out.set_span_shift(10);
        out.request(1, 2)
            .field(3, span)
            .pair(6, "k", span)
            .int(7, -1)
            .field(8, true)
            .field(9, 2.5)
            .field(10, b"\x00\x01".as_slice())
            .field(11, String::from("owned"))
            .body(body());
        let mut m = out.detached(MessageKind::Request, 1, 2);
        let values = [
            (3, Value::Str(Text::Span(span))),
            (6, Value::Pair(Text::Owned("k".into()), Text::Span(span))),
            (7, Value::Int(-1)),
            (8, Value::Boolean(true)),
            (9, Value::Float(2.5)),
            (10, Value::Bytes(vec![0, 1])),
            (11, Value::Str(Text::Owned("owned".into()))),
        ];
        for (id, value) in values {
            m.fields.push(Field { id, value });
        }
        m.body = Some(body());
        out.push(m);
        out.set_span_shift(0);
        out.standalone(5, 6);
        assert_eq!(out.message_count(), 3);
        let (msgs, _) = out.take();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0], msgs[1]);
        let shifted = Text::Span(Span { offset: 14, len: 5 });
        assert_eq!(msgs[0].value(3), Some(&Value::Str(shifted)));
        assert_eq!(msgs[0].body, Some(body()));
        assert_eq!(
            (msgs[2].kind, msgs[2].txn, msgs[2].start),
            (MessageKind::Standalone, 5, 6)
        );
        assert!(msgs[2].fields.is_empty() && msgs[2].body.is_none());
        assert_eq!(out.message_count(), 0);
    }

    #[test]
    fn detached_field_lists_are_reused_and_bounded() {
        let mut out = Output::new();
        let mut m = out.detached(MessageKind::Request, 0, 0);
        m.fields.extend((0..20).map(|id| Field {
            id,
            value: Value::Int(1),
        }));
        out.push(m);
        let mut encoded = Vec::new();
        out.finish_into(Progress::default(), &mut encoded);
        assert!(encoded.len() > 21, "an answer with a message");
        assert_eq!(out.spare_fields.len(), 1);
        let m = out.detached(MessageKind::Response, 1, 2);
        assert!(m.fields.is_empty() && m.fields.capacity() >= 20);
        assert!(out.spare_fields.is_empty());
        out.push(m);

        // Only SPARE_FIELD_LISTS lists are kept, none above SPARE_FIELDS_MAX.
        let lists: Vec<Message> = (0..SPARE_FIELD_LISTS + 10)
            .map(|_| out.detached(MessageKind::Request, 0, 0))
            .collect();
        for m in lists {
            out.push(m);
        }
        out.push(Message {
            kind: MessageKind::Request,
            txn: 0,
            start: 0,
            fields: Vec::with_capacity(SPARE_FIELDS_MAX + 1),
            body: None,
        });
        let mut answer = Vec::new();
        out.finish_into(Progress::consumed(7), &mut answer);
        assert_eq!(answer[..4], 7u32.to_le_bytes());
        assert_eq!(out.message_count(), 0);
        assert_eq!(out.spare_fields.len(), SPARE_FIELD_LISTS);
        assert!(out
            .spare_fields
            .iter()
            .all(|f| f.is_empty() && f.capacity() <= SPARE_FIELDS_MAX));
    }

    #[test]
    fn text_of_is_a_span_only_inside_the_input() {
        let data = b"GET /x";
        let input = Input::new(100, data);
        let inside = std::str::from_utf8(&data[4..6]).unwrap();
        assert_eq!(
            input.text_of(inside),
            Text::Span(Span { offset: 4, len: 2 })
        );
        let elsewhere = String::from("/x");
        assert_eq!(input.text_of(&elsewhere), Text::Owned("/x".into()));
        assert_eq!(input.text_of("").resolve(data), "");
    }
}
