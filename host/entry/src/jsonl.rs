//! The JSONL record of an entry, written straight to bytes.
//!
//! The bytes are exactly those of `serde_json::to_writer(&entry_to_json(..))`:
//! compact, object keys in sorted order, the same escapes and number forms.
//! [`entry_to_json`](crate::entry_to_json) stays the reference (the tests hold
//! the two equal on every kind of value); this path exists because building
//! that `Value` tree (a map node and an owned string per key and value, then
//! a second walk to print it) cost three times the rest of `remora read` on
//! the HTTP/1 benchmark. Here keys are compared as borrowed bytes, values
//! are written where they lie, and an object's keys are sorted once.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;

use base64::Engine as _;
use remora_core::Timestamp;

use crate::grouping::{group, Grouped};
use crate::vars::{settings, HostTexts, VarValue};
use crate::{Body, Catalog, Entry, FieldSchema, Message, PluginSchema, ValueRef};

/// Appends `e`'s JSONL record and a newline to `out`.
pub fn write_jsonl(catalog: &Catalog, e: &Entry, out: &mut Vec<u8>) {
    let schema = catalog.plugin(e.plugin);
    let proto = &schema.protocols[e.protocol as usize];
    let request = e.request.as_ref().map(|m| (m, group(schema, m)));
    let response = e.response.as_ref().map(|m| (m, group(schema, m)));
    let texts = HostTexts::of(e);

    out.extend_from_slice(b"{\"complete\":");
    bool(out, e.complete());
    out.extend_from_slice(b",\"dst\":");
    endpoint(out, &texts.dst_ip, e.server.port);
    out.extend_from_slice(b",\"elapsed_time\":");
    uint(out, e.elapsed_us());
    out.extend_from_slice(b",\"flow_id\":");
    uint(out, e.flow_id);
    out.extend_from_slice(b",\"id\":");
    uint(out, e.id);
    out.extend_from_slice(b",\"protocol\":");
    string(out, &proto.name);
    out.extend_from_slice(b",\"request\":");
    message(out, request.as_ref());
    out.extend_from_slice(b",\"response\":");
    message(out, response.as_ref());
    out.extend_from_slice(b",\"src\":");
    endpoint(out, &texts.src_ip, e.client.port);
    out.extend_from_slice(b",\"timestamp\":");
    timestamp(out, e.timestamp());
    out.extend_from_slice(b",\"transport\":");
    string(out, &texts.transport);
    out.extend_from_slice(b",\"vars\":");
    vars(out, schema, e, &texts, request.as_ref(), response.as_ref());
    out.extend_from_slice(b"}\n");
}

type Grouping<'a> = (&'a Message, Vec<(&'a FieldSchema, Grouped<'a>)>);

fn message(out: &mut Vec<u8>, m: Option<&Grouping<'_>>) {
    let Some((m, groups)) = m else {
        out.extend_from_slice(b"null");
        return;
    };
    out.extend_from_slice(b"{\"body\":");
    match &m.body {
        Some(b) => body(out, b),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"fields\":");
    // Sorted by name; a name declared twice keeps its last value, as a map
    // insert would.
    let mut fields: Vec<&(&FieldSchema, Grouped)> = groups.iter().collect();
    fields.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out.push(b'{');
    let mut first = true;
    for (i, (decl, g)) in fields.iter().map(|f| (f.0, &f.1)).enumerate() {
        if fields
            .get(i + 1)
            .is_some_and(|next| next.0.name == decl.name)
        {
            continue;
        }
        comma(out, &mut first);
        string(out, &decl.name);
        out.push(b':');
        grouped(out, g, MapForm::Pairs);
    }
    out.extend_from_slice(b"},\"timestamp\":");
    timestamp(out, m.ts);
    out.push(b'}');
}

fn body(out: &mut Vec<u8>, b: &Body) {
    let text = std::str::from_utf8(&b.data).ok();
    out.push(b'{');
    if text.is_none() {
        out.extend_from_slice(b"\"base64\":\"");
        base64(out, &b.data);
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"captured\":");
    uint(out, b.data.len() as u64);
    out.extend_from_slice(b",\"decoded_from\":");
    match &b.decoded_from {
        Some(d) => string(out, d),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"size\":");
    uint(out, b.original_len);
    if let Some(t) = text {
        out.extend_from_slice(b",\"text\":");
        string(out, t);
    }
    out.extend_from_slice(b",\"truncated\":");
    bool(out, b.truncated);
    out.push(b'}');
}

fn endpoint(out: &mut Vec<u8>, ip: &str, port: u16) {
    out.extend_from_slice(b"{\"ip\":");
    string(out, ip);
    out.extend_from_slice(b",\"port\":");
    uint(out, port.into());
    out.push(b'}');
}

/// How a string map is written: the record keeps a message's members as
/// `[name, value]` pairs in wire order; variables are an object keyed by the
/// lower-cased name, repeated names joined with ", " (as HTTP joins headers).
#[derive(Clone, Copy)]
enum MapForm {
    Pairs,
    Object,
}

fn grouped(out: &mut Vec<u8>, g: &Grouped<'_>, form: MapForm) {
    match g {
        Grouped::Scalar(v) => value(out, *v),
        Grouped::List(l) => {
            out.push(b'[');
            let mut first = true;
            for v in l {
                comma(out, &mut first);
                value(out, *v);
            }
            out.push(b']');
        }
        Grouped::Map(m) => match form {
            MapForm::Pairs => {
                out.push(b'[');
                let mut first = true;
                for (k, v) in m {
                    comma(out, &mut first);
                    pair(out, k, v);
                }
                out.push(b']');
            }
            MapForm::Object => lowercased_object(out, m),
        },
    }
}

fn lowercased_object(out: &mut Vec<u8>, members: &[(&str, &str)]) {
    let mut m: Vec<(Cow<str>, &str)> = members
        .iter()
        .map(|&(k, v)| {
            let k = if k.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(k.to_ascii_lowercase())
            } else {
                Cow::Borrowed(k)
            };
            (k, v)
        })
        .collect();
    // Stable: repeated names join in wire order.
    m.sort_by(|a, b| a.0.cmp(&b.0));
    out.push(b'{');
    let mut first = true;
    let mut i = 0;
    while i < m.len() {
        let run = m[i..].iter().take_while(|(k, _)| *k == m[i].0).count();
        comma(out, &mut first);
        string(out, &m[i].0);
        out.extend_from_slice(b":\"");
        for (j, (_, v)) in m[i..i + run].iter().enumerate() {
            if j > 0 {
                out.extend_from_slice(b", ");
            }
            escaped(out, v);
        }
        out.push(b'"');
        i += run;
    }
    out.push(b'}');
}

fn value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Bool(b) => bool(out, b),
        ValueRef::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        // Rare; serde_json's own float form (and null when not finite),
        // whichever formatter it uses. Writing to a Vec cannot fail.
        ValueRef::Float(f) => {
            let _ = serde_json::to_writer(&mut *out, &f);
        }
        ValueRef::Str(s) => string(out, s),
        ValueRef::Bytes(b) => {
            out.push(b'"');
            base64(out, b);
            out.push(b'"');
        }
        ValueRef::Pair(k, v) => pair(out, k, v),
    }
}

fn pair(out: &mut Vec<u8>, k: &str, v: &str) {
    out.push(b'[');
    string(out, k);
    out.push(b',');
    string(out, v);
    out.push(b']');
}

/// One variable, before the object's keys are sorted.
struct Var<'a> {
    /// Into the key arena.
    key: Range<usize>,
    /// The key's first 16 bytes, big-endian and zero-padded: ordered like
    /// the key itself up to ties, and compared without a call.
    head: u128,
    /// A variable the host sets overwrites; a protocol's bare field name and
    /// an absent collection's default only fill a name nobody set (see
    /// `vars::entry_vars`).
    only_if_absent: bool,
    value: VarValue<'a>,
}

/// Variables in the order they are set, keys in one arena.
struct Vars<'a> {
    keys: Vec<u8>,
    list: Vec<Var<'a>>,
}

impl<'a> Vars<'a> {
    fn add(&mut self, prefix: &str, name: &str, only_if_absent: bool, value: VarValue<'a>) {
        let start = self.keys.len();
        if !prefix.is_empty() {
            self.keys.extend_from_slice(prefix.as_bytes());
            self.keys.push(b'.');
        }
        self.keys.extend_from_slice(name.as_bytes());
        let key = &self.keys[start..];
        let mut head = [0u8; 16];
        let n = key.len().min(16);
        head[..n].copy_from_slice(&key[..n]);
        self.list.push(Var {
            key: start..self.keys.len(),
            head: u128::from_be_bytes(head),
            only_if_absent,
            value,
        });
    }
}

/// The variables object: [`settings`] written in key order, each name's
/// winning setting (what `vars::entry_vars` builds).
fn vars(
    out: &mut Vec<u8>,
    schema: &PluginSchema,
    e: &Entry,
    texts: &HostTexts,
    request: Option<&Grouping<'_>>,
    response: Option<&Grouping<'_>>,
) {
    let mut vars = Vars {
        keys: Vec::with_capacity(512),
        list: Vec::with_capacity(48),
    };
    settings(
        schema,
        e,
        texts,
        [request.map(|g| &g.1[..]), response.map(|g| &g.1[..])],
        |prefix, name, only_if_absent, value| vars.add(prefix, name, only_if_absent, value),
    );

    let Vars { keys, list } = vars;
    ORDERS.with_borrow_mut(|orders| {
        let order = orders.of(&keys, &list);
        write_vars(out, &keys, &list, order);
    });
}

/// How many variable sets [`Orders`] remembers.
const ORDERS_KEPT: usize = 32;

thread_local! {
    static ORDERS: RefCell<Orders> = const { RefCell::new(Orders(Vec::new())) };
}

/// The orders the variable sets of recent entries sorted into. Entries of
/// one kind set the same variables in the same order, so their sorted
/// order is worth keeping: sorting ~40 keys per entry was a sixth of the
/// JSONL writer's time, comparing a set with a kept one is a few `memcmp`s.
struct Orders(Vec<Order>);

struct Order {
    fingerprint: u64,
    /// The key arena and where each key ends: the whole set, in the order
    /// the variables were set.
    keys: Vec<u8>,
    ends: Vec<usize>,
    /// Positions into the set, sorted by key; stable, so each name's
    /// settings stay in the order they were made.
    sorted: Vec<u32>,
}

impl Orders {
    fn of(&mut self, keys: &[u8], list: &[Var<'_>]) -> &[u32] {
        let fingerprint = list.iter().fold(list.len() as u64, |h, v| {
            (h.rotate_left(7) ^ (v.head >> 64) as u64 ^ v.head as u64 ^ v.key.end as u64)
                .wrapping_mul(0x0100_0000_01b3)
        });
        let same = |o: &Order| {
            o.fingerprint == fingerprint
                && o.keys == keys
                && o.ends.len() == list.len()
                && o.ends.iter().zip(list).all(|(&end, v)| end == v.key.end)
        };
        let at = match self.0.iter().position(same) {
            Some(at) => at,
            None => {
                let key = |i: u32| {
                    let v = &list[i as usize];
                    (v.head, &keys[v.key.clone()])
                };
                let mut sorted: Vec<u32> = (0..list.len() as u32).collect();
                sorted.sort_by(|&a, &b| key(a).cmp(&key(b)));
                if self.0.len() == ORDERS_KEPT {
                    self.0.remove(0);
                }
                self.0.push(Order {
                    fingerprint,
                    keys: keys.to_vec(),
                    ends: list.iter().map(|v| v.key.end).collect(),
                    sorted,
                });
                self.0.len() - 1
            }
        };
        &self.0[at].sorted
    }
}

/// The variables object, `list` written in the `sorted` order, each name
/// once with its winning setting.
fn write_vars(out: &mut Vec<u8>, keys: &[u8], list: &[Var<'_>], sorted: &[u32]) {
    let key = |v: &Var| &keys[v.key.clone()];
    let var = |i: usize| &list[sorted[i] as usize];
    out.push(b'{');
    let mut first = true;
    let mut i = 0;
    while i < sorted.len() {
        let this = var(i);
        let run = (i..sorted.len())
            .take_while(|&j| {
                let v = var(j);
                v.head == this.head && key(v) == key(this)
            })
            .count();
        let mut winner: Option<&Var> = None;
        for v in (i..i + run).map(var) {
            if !v.only_if_absent || winner.is_none() {
                winner = Some(v);
            }
        }
        let winner = winner.expect("a run holds at least one variable");
        comma(out, &mut first);
        // Keys were built from `&str`s and a '.', so they are UTF-8.
        string(out, std::str::from_utf8(key(this)).unwrap_or_default());
        out.push(b':');
        match &winner.value {
            VarValue::Bool(b) => bool(out, *b),
            VarValue::Uint(n) => uint(out, *n),
            VarValue::Str(s) => string(out, s),
            VarValue::Time(t) => timestamp(out, *t),
            VarValue::Field(g) => grouped(out, g, MapForm::Object),
            VarValue::EmptyObject => out.extend_from_slice(b"{}"),
            VarValue::EmptyArray => out.extend_from_slice(b"[]"),
        }
        i += run;
    }
    out.push(b'}');
}

fn comma(out: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}

fn bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn uint(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn timestamp(out: &mut Vec<u8>, ts: Timestamp) {
    out.push(b'"');
    crate::json::write_rfc3339_micros(out, ts);
    out.push(b'"');
}

fn base64(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    let len = base64::encoded_len(data.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(data, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escaped(out, s);
    out.push(b'"');
}

/// serde_json's escapes: the short forms for \b \t \n \f \r, `\u00XX` for
/// the other control characters, and `\"` `\\`; everything else verbatim.
///
/// The bytes that need escaping are found a word (eight bytes) at a time,
/// and the clean run before each is copied in one piece: a long clean text
/// is a handful of copies, a JSON body with a quote every few bytes one
/// short copy per quote. (Writing every word out and cutting it back, as
/// this did before, cost a copy per word even when nothing needed escaping:
/// the JSONL writer spent half its time here.)
fn escaped(out: &mut Vec<u8>, s: &str) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Per byte, exactly (no borrows cross bytes: 7-bit values plus at most
    // 0x7f stay below 0x100): the high bit is set where the byte is zero.
    let zero = |x: u64| !(((x & LOW7) + LOW7) | x) & HIGHS;
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 8);
    // Bytes before `run` are written.
    let mut run = 0;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let control = !(((word & LOW7) + ONES * 0x60) | word) & HIGHS;
        let mut specials =
            control | zero(word ^ (ONES * b'"' as u64)) | zero(word ^ (ONES * b'\\' as u64));
        while specials != 0 {
            let i = at + specials.trailing_zeros() as usize / 8;
            out.extend_from_slice(&bytes[run..i]);
            escape_byte(out, bytes[i]);
            run = i + 1;
            specials &= specials - 1;
        }
        at += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b < 0x20 || b == b'"' || b == b'\\' {
            out.extend_from_slice(&bytes[run..at + i]);
            escape_byte(out, b);
            run = at + i + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

fn escape_byte(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        b'\t' => b't',
        b'\n' => b'n',
        0x0c => b'f',
        b'\r' => b'r',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_escape_as_serde_json_does_at_every_alignment() {
        // Each special byte at each position of strings up to 40 bytes, in
        // plain ASCII and among multi-byte characters.
        let specials = [
            "\"", "\\", "\n", "\u{0}", "\u{1f}", "\u{8}", "\u{7f}", " ", "é",
        ];
        for fill in ["a", "ж"] {
            for len in 0..40 {
                for pos in 0..len {
                    for sp in specials {
                        for second in [None, Some((pos * 7 + 3) % len)] {
                            let mut chars: Vec<&str> = vec![fill; len];
                            chars[pos] = sp;
                            if let Some(p) = second {
                                chars[p] = "\"";
                            }
                            let s: String = chars.concat();
                            let mut out = Vec::new();
                            super::string(&mut out, &s);
                            assert_eq!(
                                String::from_utf8(out).unwrap(),
                                serde_json::to_string(&s).unwrap(),
                                "{s:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
