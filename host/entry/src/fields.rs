//! A message's fields, all in one buffer.
//!
//! Entries are built on shard threads by the hundred thousand per second
//! and dropped elsewhere (the output thread, a store's eviction, the reading
//! thread when only counting). A `Vec` of enum fields cost one block per
//! message, a 56-byte slot per field and a block per longer text, each
//! written when the entry was made and freed, often across threads, when it
//! went. Here a message's fields are one byte buffer written front to back:
//! one block, and about as many bytes as the texts themselves.
//!
//! Readers walk it in order ([`Fields::iter`]) and get borrowed values
//! ([`ValueRef`]); [`Value`] and [`Field`] stay the owned forms for building
//! messages by hand (tests, the store's decoder).

use std::fmt;

use crate::{Field, Value};

/// A field's value, borrowed from the message that holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Pair(&'a str, &'a str),
}

impl ValueRef<'_> {
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(s) => Value::Str(s.into()),
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::Pair(k, v) => Value::Pair(k.into(), v.into()),
        }
    }
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Str(s) => ValueRef::Str(s),
            Value::Bytes(b) => ValueRef::Bytes(b),
            Value::Pair(k, v) => ValueRef::Pair(k, v),
        }
    }
}

/// One field of a message, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FieldRef<'a> {
    pub id: u16,
    pub value: ValueRef<'a>,
}

impl FieldRef<'_> {
    pub fn to_field(self) -> Field {
        Field {
            id: self.id,
            value: self.value.to_value(),
        }
    }
}

const BOOL: u8 = 0;
const INT: u8 = 1;
const FLOAT: u8 = 2;
const STR: u8 = 3;
const BYTES: u8 = 4;
const PAIR: u8 = 5;

/// The fields of one message, in the order the plugin emitted them.
///
/// Each field is its id (u16), a tag byte and the value: one byte for a
/// boolean, eight for an integer or float, a u32 length and the bytes for
/// text or data, two of those for a pair; integers little-endian. Only the
/// methods here write the buffer, and they copy text from `&str`, so every
/// text in it is UTF-8 (which [`Fields::iter`] relies on).
#[derive(Clone, Default, PartialEq)]
pub struct Fields {
    buf: Vec<u8>,
    len: u32,
}

impl Fields {
    pub fn new() -> Self {
        Fields::default()
    }

    /// Room for about `bytes` of encoded fields.
    pub fn with_capacity(bytes: usize) -> Self {
        Fields {
            buf: Vec::with_capacity(bytes),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Bytes the encoded fields take (what [`Fields::with_capacity`] asks).
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.len = 0;
    }

    #[inline]
    fn head(&mut self, id: u16, tag: u8) {
        self.len += 1;
        let [a, b] = id.to_le_bytes();
        self.buf.extend_from_slice(&[a, b, tag]);
    }

    #[inline]
    fn put_bytes(&mut self, b: &[u8]) {
        // A text or data longer than 4 GiB cannot reach here: plugin
        // output is bounded far below that.
        let len = u32::try_from(b.len()).expect("field shorter than 4 GiB");
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(b);
    }

    pub fn push_bool(&mut self, id: u16, v: bool) {
        self.head(id, BOOL);
        self.buf.push(u8::from(v));
    }

    pub fn push_int(&mut self, id: u16, v: i64) {
        self.head(id, INT);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn push_float(&mut self, id: u16, v: f64) {
        self.head(id, FLOAT);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    #[inline]
    pub fn push_str(&mut self, id: u16, v: &str) {
        self.head(id, STR);
        self.put_bytes(v.as_bytes());
    }

    pub fn push_bytes(&mut self, id: u16, v: &[u8]) {
        self.head(id, BYTES);
        self.put_bytes(v);
    }

    #[inline]
    pub fn push_pair(&mut self, id: u16, k: &str, v: &str) {
        self.head(id, PAIR);
        self.put_bytes(k.as_bytes());
        self.put_bytes(v.as_bytes());
    }

    pub fn push(&mut self, id: u16, v: ValueRef<'_>) {
        match v {
            ValueRef::Bool(b) => self.push_bool(id, b),
            ValueRef::Int(i) => self.push_int(id, i),
            ValueRef::Float(f) => self.push_float(id, f),
            ValueRef::Str(s) => self.push_str(id, s),
            ValueRef::Bytes(b) => self.push_bytes(id, b),
            ValueRef::Pair(k, v) => self.push_pair(id, k, v),
        }
    }

    pub fn push_field(&mut self, f: &Field) {
        self.push(f.id, f.value.as_ref());
    }

    /// The fields in emission order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            buf: &self.buf,
            left: self.len,
        }
    }

    /// The first value of field `id`.
    pub fn get(&self, id: u16) -> Option<ValueRef<'_>> {
        self.iter().find(|f| f.id == id).map(|f| f.value)
    }

    /// The last value of field `id` (a repeated scalar's value).
    pub fn last(&self, id: u16) -> Option<ValueRef<'_>> {
        self.iter().filter(|f| f.id == id).last().map(|f| f.value)
    }

    /// Keeps the first `n` fields.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        let mut it = self.iter();
        for _ in 0..n {
            it.next();
        }
        let cut = self.buf.len() - it.buf.len();
        self.buf.truncate(cut);
        self.len = n as u32;
    }

    /// Owned copies (tests, tools).
    pub fn to_vec(&self) -> Vec<Field> {
        self.iter().map(FieldRef::to_field).collect()
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Field>> for Fields {
    fn from(v: Vec<Field>) -> Self {
        v.iter().collect()
    }
}

impl<'a> FromIterator<&'a Field> for Fields {
    fn from_iter<I: IntoIterator<Item = &'a Field>>(iter: I) -> Self {
        let mut out = Fields::new();
        for f in iter {
            out.push_field(f);
        }
        out
    }
}

impl FromIterator<Field> for Fields {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        let mut out = Fields::new();
        for f in iter {
            out.push_field(&f);
        }
        out
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = FieldRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// [`Fields::iter`].
#[derive(Clone)]
pub struct Iter<'a> {
    buf: &'a [u8],
    left: u32,
}

impl<'a> Iter<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        head
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.buf.split_first_chunk::<N>().expect("well-formed");
        self.buf = rest;
        *head
    }

    #[inline]
    fn bytes(&mut self) -> &'a [u8] {
        let n = u32::from_le_bytes(self.array()) as usize;
        self.take(n)
    }

    #[inline]
    fn str(&mut self) -> &'a str {
        let b = self.bytes();
        debug_assert!(std::str::from_utf8(b).is_ok());
        // SAFETY: texts are written only from `&str` (see `Fields`).
        unsafe { std::str::from_utf8_unchecked(b) }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = FieldRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<FieldRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let [a, b, tag] = self.array();
        let value = match tag {
            BOOL => ValueRef::Bool(self.array::<1>()[0] != 0),
            INT => ValueRef::Int(i64::from_le_bytes(self.array())),
            FLOAT => ValueRef::Float(f64::from_le_bytes(self.array())),
            STR => ValueRef::Str(self.str()),
            BYTES => ValueRef::Bytes(self.bytes()),
            PAIR => ValueRef::Pair(self.str(), self.str()),
            _ => unreachable!("only Fields writes its buffer"),
        };
        Some(FieldRef {
            id: u16::from_le_bytes([a, b]),
            value,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Field> {
        vec![
            Field {
                id: 0,
                value: Value::Bool(true),
            },
            Field {
                id: 7,
                value: Value::Int(-3),
            },
            Field {
                id: 300,
                value: Value::Float(2.5),
            },
            Field {
                id: 1,
                value: Value::Str("a text longer than twenty-four bytes, é".into()),
            },
            Field {
                id: 2,
                value: Value::Bytes(vec![0, 255, 10]),
            },
            Field {
                id: 3,
                value: Value::Pair("Host".into(), "".into()),
            },
            Field {
                id: 7,
                value: Value::Int(9),
            },
        ]
    }

    #[test]
    fn every_value_reads_back_in_order() {
        let fields = Fields::from(sample());
        assert_eq!(fields.len(), 7);
        assert_eq!(fields.iter().len(), 7);
        assert_eq!(fields.to_vec(), sample());
    }

    #[test]
    fn first_and_last_values_of_a_repeated_id() {
        let fields = Fields::from(sample());
        assert_eq!(fields.get(7), Some(ValueRef::Int(-3)));
        assert_eq!(fields.last(7), Some(ValueRef::Int(9)));
        assert_eq!(fields.get(3), Some(ValueRef::Pair("Host", "")));
        assert_eq!(fields.get(99), None);
    }

    #[test]
    fn truncate_keeps_a_prefix_that_still_reads() {
        for n in 0..=8 {
            let mut fields = Fields::from(sample());
            fields.truncate(n);
            let want: Vec<Field> = sample().into_iter().take(n).collect();
            assert_eq!(fields.to_vec(), want, "truncate({n})");
            fields.push_str(5, "after");
            assert_eq!(fields.len(), n.min(7) + 1);
            assert_eq!(fields.last(5), Some(ValueRef::Str("after")));
        }
    }

    #[test]
    fn equal_fields_compare_equal_and_debug_lists_them() {
        let a = Fields::from(sample());
        let mut b = Fields::new();
        for f in sample() {
            b.push(f.id, f.value.as_ref());
        }
        assert_eq!(a, b);
        b.push_bool(1, false);
        assert_ne!(a, b);
        assert!(format!("{a:?}").contains("Pair(\"Host\", \"\")"));
    }
}
