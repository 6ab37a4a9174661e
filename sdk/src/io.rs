//! What a session sees (`Input`), returns (`Progress`) and emits (`Output`).

use crate::types::*;
use core::ops::Range;

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

/// Spare field lists an `Output` keeps for its next messages: enough for a
/// call's worth of pipelined messages, so a steady stream allocates none.
const SPARE_FIELD_LISTS: usize = 64;
/// A field list that grew beyond this many fields is freed, not kept.
const SPARE_FIELDS_MAX: usize = 64;
/// Capacity of a new field list: most messages have fewer fields.
const FIELDS_INITIAL: usize = 8;

/// Collects the messages and the error of one call.
#[derive(Debug, Default)]
pub struct Output {
    messages: Vec<Message>,
    error: Option<String>,
    switch: Option<ProtocolSwitch>,
    /// Cleared field lists of messages already encoded; the guest allocator
    /// was a visible share of every call before they were reused.
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
    pub fn message(&mut self, kind: MessageKind, txn: u64, start: u64) -> MessageBuilder<'_> {
        let msg = self.detached(kind, txn, start);
        self.messages.push(msg);
        MessageBuilder {
            msg: self.messages.last_mut().expect("just pushed"),
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
    /// Emit a message built elsewhere (e.g. kept across calls, with owned texts).
    pub fn push(&mut self, msg: Message) {
        self.messages.push(msg);
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
    /// Move the spans of messages `from..` by `by` bytes: they were made
    /// against an input that started `by` bytes into the call's data.
    #[cfg_attr(
        not(all(target_arch = "wasm32", feature = "dissector")),
        allow(dead_code)
    )]
    pub(crate) fn shift_spans(&mut self, from: usize, by: usize) {
        if by == 0 {
            return;
        }
        let by = u32::try_from(by).unwrap_or(u32::MAX);
        let shift = |t: &mut Text| {
            if let Text::Span(s) = t {
                s.offset = s.offset.saturating_add(by);
            }
        };
        for m in self.messages.iter_mut().skip(from) {
            for f in &mut m.fields {
                match &mut f.value {
                    Value::Str(t) => shift(t),
                    Value::Pair(k, v) => {
                        shift(k);
                        shift(v);
                    }
                    _ => {}
                }
            }
        }
    }
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }
    /// Take what was collected, leaving the output empty (allocation kept).
    pub fn take(&mut self) -> (Vec<Message>, Option<String>) {
        let messages = if self.messages.is_empty() {
            Vec::new()
        } else {
            core::mem::take(&mut self.messages)
        };
        (messages, self.error.take())
    }
    /// Take the protocol switch requested by this call, if any.
    pub fn take_switch(&mut self) -> Option<ProtocolSwitch> {
        self.switch.take()
    }
    /// Like [`Output::finish`], but appends the call's answer to `out` in
    /// the contract's encoding (a `run`'s answers), and the message list
    /// keeps its allocation for the next call.
    #[cfg_attr(
        not(all(target_arch = "wasm32", feature = "dissector")),
        allow(dead_code)
    )]
    pub(crate) fn finish_into(&mut self, progress: Progress, out: &mut Vec<u8>) {
        crate::wire::put_answer(
            out,
            u32::try_from(progress.consumed).unwrap_or(u32::MAX),
            progress.skip,
            u32::try_from(progress.need).unwrap_or(u32::MAX),
            self.error.as_deref(),
            self.switch.as_ref(),
            &self.messages,
        );
        self.recycle();
        self.error = None;
        self.switch = None;
    }
    /// Drop the collected messages, keeping their field lists (bounded) for
    /// the next ones.
    #[cfg_attr(
        not(all(target_arch = "wasm32", feature = "dissector")),
        allow(dead_code)
    )]
    fn recycle(&mut self) {
        for m in self.messages.drain(..) {
            let mut fields = m.fields;
            if self.spare_fields.len() < SPARE_FIELD_LISTS && fields.capacity() <= SPARE_FIELDS_MAX
            {
                fields.clear();
                self.spare_fields.push(fields);
            }
        }
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

/// Adds fields and a body to a message that `Output` already holds.
pub struct MessageBuilder<'a> {
    msg: &'a mut Message,
}

impl MessageBuilder<'_> {
    /// Add a field value (`Span`, `Text`, `&str`, `String`, ints, bool, f64, bytes).
    pub fn field(&mut self, id: u16, value: impl Into<Value>) -> &mut Self {
        self.msg.fields.push(Field {
            id,
            value: value.into(),
        });
        self
    }
    /// Add one member of a map field.
    pub fn pair(&mut self, id: u16, name: impl Into<Text>, value: impl Into<Text>) -> &mut Self {
        self.msg.fields.push(Field {
            id,
            value: Value::Pair(name.into(), value.into()),
        });
        self
    }
    pub fn int(&mut self, id: u16, v: i64) -> &mut Self {
        self.field(id, Value::Int(v))
    }
    pub fn body(&mut self, body: Body) -> &mut Self {
        self.msg.body = Some(body);
        self
    }
    /// The message being built.
    pub fn message(&mut self) -> &mut Message {
        self.msg
    }
}

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

    fn emit(out: &mut Output, fields: usize) {
        let mut m = out.request(0, 0);
        for i in 0..fields {
            m.int(i as u16, 1);
        }
    }

    #[test]
    fn field_lists_are_reused_and_bounded() {
        let mut out = Output::new();
        emit(&mut out, 20);
        let mut encoded = Vec::new();
        out.finish_into(Progress::default(), &mut encoded);
        assert!(encoded.len() > 21, "an answer with a message");
        assert_eq!(out.spare_fields.len(), 1);
        let m = out.detached(MessageKind::Response, 1, 2);
        assert!(m.fields.is_empty() && m.fields.capacity() >= 20);
        assert!(out.spare_fields.is_empty());
        out.push(m);

        // Only SPARE_FIELD_LISTS lists are kept, none above SPARE_FIELDS_MAX.
        for _ in 0..SPARE_FIELD_LISTS + 10 {
            emit(&mut out, 3);
        }
        emit(&mut out, SPARE_FIELDS_MAX + 1);
        let mut answer = Vec::new();
        out.finish_into(Progress::consumed(7), &mut answer);
        assert_eq!(answer[..4], 7u32.to_le_bytes());
        assert!(out.messages().is_empty());
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
