//! Compact binary encoding of entry summaries and catalogs: LEB128 varints,
//! length-prefixed strings, timestamps as deltas from the record's base.
//!
//! Decoding never trusts a length: every count and size is checked against
//! the bytes that remain, so a damaged record yields an error, not a panic or
//! an oversized allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use remora_core::{Endpoint, Timestamp, Transport};
use remora_entry::{
    Catalog, Entry, FieldSchema, FieldType, Fields, Message, PluginSchema, ProtocolSchema, ValueRef,
};

/// Why a record could not be decoded, and where inside it.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub pos: usize,
    pub reason: &'static str,
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_zigzag(buf: &mut Vec<u8>, v: i64) {
    put_varint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Reads a record front to back. Holds what is left rather than a position,
/// so each read is one bounds check and one slice update.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    len: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            rest: buf,
            len: buf.len(),
        }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.len - self.rest.len()
    }

    fn err<T>(&self, reason: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError {
            pos: self.pos(),
            reason,
        })
    }

    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // Ids, tags, lengths and small ints are mostly one byte.
        if let Some((&b, rest)) = self.rest.split_first() {
            if b < 0x80 {
                self.rest = rest;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&b, rest)) = self.rest.split_first() else {
                return self.err("record ends inside a varint");
            };
            self.rest = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        self.err("varint longer than 10 bytes")
    }

    #[inline]
    fn zigzag(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    #[inline]
    fn u16v(&mut self) -> Result<u16, DecodeError> {
        let v = self.varint()?;
        u16::try_from(v).or_else(|_| self.err("value does not fit 16 bits"))
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let Some((s, rest)) = self.rest.split_at_checked(n) else {
            return self.err("length runs past the end of the record");
        };
        self.rest = rest;
        Ok(s)
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let Some((&b, rest)) = self.rest.split_first() else {
            return self.err("length runs past the end of the record");
        };
        self.rest = rest;
        Ok(b)
    }

    #[inline]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    #[inline]
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.take(n)
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.bytes()?;
        if b.is_ascii() {
            // SAFETY: ASCII bytes are valid UTF-8. Most strings (methods,
            // paths, header names) are ASCII, and this check is several
            // times cheaper per short string than general validation.
            return Ok(unsafe { std::str::from_utf8_unchecked(b) });
        }
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// A count of items that each take at least `min_size` bytes, bounded by
    /// what remains, so a forged count cannot make us allocate.
    fn count(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > (self.remaining() / min_size.max(1)) as u64 {
            return self.err("item count exceeds the bytes that remain");
        }
        Ok(n as usize)
    }
}

/// Where a body's bytes are in the segment's body file, relative to the
/// frame's first body byte.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyRef {
    pub rel_off: u64,
    pub len: u64,
    pub crc: u32,
}

const FLAG_UDP: u8 = 1;
const FLAG_STANDALONE: u8 = 2;
const FLAG_REQUEST: u8 = 4;
const FLAG_RESPONSE: u8 = 8;

/// Appends one entry's summary to `out` and its body bytes to `bodies`.
/// Body offsets are stored relative to `body_base`, the frame's first body
/// byte in `bodies`.
pub(crate) fn encode_entry(
    out: &mut Vec<u8>,
    bodies: &mut Vec<u8>,
    body_base: usize,
    base_ts: i64,
    e: &Entry,
) {
    put_varint(out, e.flow_id);
    put_varint(out, u64::from(e.plugin));
    put_varint(out, u64::from(e.protocol));
    let mut flags = 0;
    if e.transport == Transport::Udp {
        flags |= FLAG_UDP;
    }
    if e.standalone {
        flags |= FLAG_STANDALONE;
    }
    if e.request.is_some() {
        flags |= FLAG_REQUEST;
    }
    if e.response.is_some() {
        flags |= FLAG_RESPONSE;
    }
    out.push(flags);
    encode_endpoint(out, &e.client);
    encode_endpoint(out, &e.server);
    for m in [&e.request, &e.response].into_iter().flatten() {
        encode_message(out, bodies, body_base, base_ts, m);
    }
}

fn encode_endpoint(out: &mut Vec<u8>, ep: &Endpoint) {
    match ep.ip {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&ep.port.to_le_bytes());
}

fn encode_message(
    out: &mut Vec<u8>,
    bodies: &mut Vec<u8>,
    body_base: usize,
    base_ts: i64,
    m: &Message,
) {
    put_zigzag(out, m.ts.0.wrapping_sub(base_ts));
    put_varint(out, m.fields.len() as u64);
    for f in &m.fields {
        put_varint(out, u64::from(f.id));
        match f.value {
            ValueRef::Bool(b) => {
                out.push(0);
                out.push(u8::from(b));
            }
            ValueRef::Int(i) => {
                out.push(1);
                put_zigzag(out, i);
            }
            ValueRef::Float(x) => {
                out.push(2);
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            ValueRef::Str(s) => {
                out.push(3);
                put_bytes(out, s.as_bytes());
            }
            ValueRef::Bytes(b) => {
                out.push(4);
                put_bytes(out, b);
            }
            ValueRef::Pair(k, v) => {
                out.push(5);
                put_bytes(out, k.as_bytes());
                put_bytes(out, v.as_bytes());
            }
        }
    }
    match &m.body {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_varint(out, b.original_len);
            out.push(u8::from(b.truncated));
            match &b.decoded_from {
                None => out.push(0),
                Some(s) => {
                    out.push(1);
                    put_bytes(out, s.as_bytes());
                }
            }
            put_varint(out, (bodies.len() - body_base) as u64);
            put_varint(out, b.data.len() as u64);
            out.extend_from_slice(&crc32fast::hash(&b.data).to_le_bytes());
            bodies.extend_from_slice(&b.data);
        }
    }
}

/// An entry with nothing in it, for [`decode_entry_into`] to fill.
pub(crate) fn blank_entry() -> Entry {
    let unspecified = Endpoint::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    Entry {
        id: 0,
        flow_id: 0,
        plugin: 0,
        protocol: 0,
        transport: Transport::Tcp,
        client: unspecified,
        server: unspecified,
        request: None,
        response: None,
        standalone: false,
    }
}

/// Messages a decoder took out of an entry when the next record had fewer,
/// kept so a later record reuses their buffers instead of allocating.
/// Bounded: at most a request and a response.
#[derive(Default)]
pub(crate) struct Spares {
    messages: Vec<Message>,
}

/// Decodes one entry summary into `e`, overwriting all of it. `bodies`, when
/// given, holds the frame's body bytes (from its first body byte); otherwise
/// bodies come back with empty `data`.
///
/// Scans decode every record into the same few entries, so this reuses the
/// field buffers, messages and body buffers `e` already has: a record no
/// larger than the one before it allocates nothing. On error `e` holds a mix
/// of old and new values and must not be shown to anyone.
pub(crate) fn decode_entry_into(
    r: &mut Reader<'_>,
    id: u64,
    base_ts: i64,
    bodies: Option<&[u8]>,
    e: &mut Entry,
    spares: &mut Spares,
) -> Result<(), DecodeError> {
    e.id = id;
    e.flow_id = r.varint()?;
    e.plugin = r.u16v()?;
    e.protocol = r.u16v()?;
    let flags = r.u8()?;
    e.client = decode_endpoint(r)?;
    e.server = decode_endpoint(r)?;
    e.transport = if flags & FLAG_UDP != 0 {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    e.standalone = flags & FLAG_STANDALONE != 0;
    for (slot, present) in [
        (&mut e.request, flags & FLAG_REQUEST != 0),
        (&mut e.response, flags & FLAG_RESPONSE != 0),
    ] {
        if present {
            let m = slot.get_or_insert_with(|| {
                spares.messages.pop().unwrap_or(Message {
                    ts: Timestamp(0),
                    fields: Fields::new(),
                    body: None,
                })
            });
            decode_message_into(r, base_ts, bodies, m)?;
        } else if let Some(m) = slot.take() {
            // At most one per message slot: request and response.
            if spares.messages.len() < 2 {
                spares.messages.push(m);
            }
        }
    }
    Ok(())
}

/// Decodes one entry summary into a new entry.
#[cfg(test)]
fn decode_entry(
    r: &mut Reader<'_>,
    id: u64,
    base_ts: i64,
    bodies: Option<&[u8]>,
) -> Result<Entry, DecodeError> {
    let mut e = blank_entry();
    decode_entry_into(r, id, base_ts, bodies, &mut e, &mut Spares::default())?;
    Ok(e)
}

fn decode_endpoint(r: &mut Reader<'_>) -> Result<Endpoint, DecodeError> {
    let ip = match r.u8()? {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(r.take(4)?).unwrap())),
        6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(r.take(16)?).unwrap())),
        _ => return r.err("unknown address family"),
    };
    let port = u16::from_le_bytes(r.take(2)?.try_into().unwrap());
    Ok(Endpoint { ip, port })
}

fn decode_message_into(
    r: &mut Reader<'_>,
    base_ts: i64,
    bodies: Option<&[u8]>,
    m: &mut Message,
) -> Result<(), DecodeError> {
    m.ts = Timestamp(base_ts.wrapping_add(r.zigzag()?));
    // A field takes at least 3 bytes: id, tag, one byte of value.
    let n = r.count(3)?;
    m.fields.clear();
    for _ in 0..n {
        let id = r.u16v()?;
        let tag = r.u8()?;
        let v = decode_value(r, tag)?;
        m.fields.push(id, v);
    }
    match r.u8()? {
        0 => m.body = None,
        1 => {
            let original_len = r.varint()?;
            let truncated = r.u8()? != 0;
            let b = m.body.get_or_insert_default();
            b.original_len = original_len;
            b.truncated = truncated;
            match r.u8()? {
                0 => b.decoded_from = None,
                1 => {
                    let s = r.str()?;
                    match &mut b.decoded_from {
                        Some(old) => {
                            old.clear();
                            old.push_str(s);
                        }
                        None => b.decoded_from = Some(s.to_owned()),
                    }
                }
                _ => return r.err("bad decoded_from tag"),
            }
            let body_ref = BodyRef {
                rel_off: r.varint()?,
                len: r.varint()?,
                crc: r.u32()?,
            };
            b.data.clear();
            if let Some(all) = bodies {
                let data = body_slice(all, body_ref).ok_or(DecodeError {
                    pos: r.pos(),
                    reason: "body is outside the frame's body range or fails its checksum",
                })?;
                b.data.extend_from_slice(data);
            }
        }
        _ => return r.err("bad body tag"),
    }
    Ok(())
}

/// The value of type `tag`, borrowed from the record.
fn decode_value<'a>(r: &mut Reader<'a>, tag: u8) -> Result<ValueRef<'a>, DecodeError> {
    Ok(match tag {
        0 => ValueRef::Bool(r.u8()? != 0),
        1 => ValueRef::Int(r.zigzag()?),
        2 => ValueRef::Float(f64::from_bits(r.u64()?)),
        3 => ValueRef::Str(r.str()?),
        4 => ValueRef::Bytes(r.bytes()?),
        5 => ValueRef::Pair(r.str()?, r.str()?),
        _ => return r.err("unknown value tag"),
    })
}

/// The body's bytes, if they lie inside the frame's body range and match
/// their checksum.
fn body_slice(all: &[u8], b: BodyRef) -> Option<&[u8]> {
    let start = usize::try_from(b.rel_off).ok()?;
    let end = start.checked_add(usize::try_from(b.len).ok()?)?;
    let data = all.get(start..end)?;
    (crc32fast::hash(data) == b.crc).then_some(data)
}

pub(crate) fn encode_catalog(c: &Catalog) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, c.plugins.len() as u64);
    for p in &c.plugins {
        put_bytes(&mut out, p.name.as_bytes());
        put_bytes(&mut out, p.version.as_bytes());
        put_varint(&mut out, p.protocols.len() as u64);
        for pr in &p.protocols {
            put_bytes(&mut out, pr.name.as_bytes());
            put_bytes(&mut out, pr.flag.as_bytes());
            out.push(u8::from(pr.transport == Transport::Udp));
            put_varint(&mut out, pr.ports.len() as u64);
            for port in &pr.ports {
                put_varint(&mut out, u64::from(*port));
            }
            put_bytes(&mut out, pr.request_summary.as_bytes());
            put_bytes(&mut out, pr.response_summary.as_bytes());
        }
        put_varint(&mut out, p.fields.len() as u64);
        for f in &p.fields {
            put_varint(&mut out, u64::from(f.id));
            put_bytes(&mut out, f.name.as_bytes());
            out.push(field_type_tag(f.ty));
            out.push(u8::from(f.top_level));
            put_bytes(&mut out, f.doc.as_bytes());
        }
    }
    out
}

pub(crate) fn decode_catalog(buf: &[u8]) -> Result<Catalog, DecodeError> {
    let mut r = Reader::new(buf);
    let n = r.count(3)?;
    let mut plugins = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string()?;
        let version = r.string()?;
        let np = r.count(7)?;
        let mut protocols = Vec::with_capacity(np);
        for _ in 0..np {
            let name = r.string()?;
            let flag = r.string()?;
            let transport = match r.u8()? {
                0 => Transport::Tcp,
                1 => Transport::Udp,
                _ => return r.err("bad transport tag"),
            };
            let nports = r.count(1)?;
            let mut ports = Vec::with_capacity(nports);
            for _ in 0..nports {
                ports.push(r.u16v()?);
            }
            protocols.push(ProtocolSchema {
                name,
                flag,
                transport,
                ports,
                request_summary: r.string()?,
                response_summary: r.string()?,
            });
        }
        let nf = r.count(5)?;
        let mut fields = Vec::with_capacity(nf);
        for _ in 0..nf {
            let id = r.u16v()?;
            let name = r.string()?;
            let Some(ty) = field_type_from_tag(r.u8()?) else {
                return r.err("unknown field type");
            };
            let top_level = r.u8()? != 0;
            fields.push(FieldSchema {
                id,
                name,
                ty,
                top_level,
                doc: r.string()?,
            });
        }
        plugins.push(PluginSchema::new(name, version, protocols, fields));
    }
    if r.remaining() != 0 {
        return r.err("trailing bytes after the catalog");
    }
    Ok(Catalog { plugins })
}

fn field_type_tag(t: FieldType) -> u8 {
    match t {
        FieldType::Bool => 0,
        FieldType::Int => 1,
        FieldType::Float => 2,
        FieldType::Str => 3,
        FieldType::Bytes => 4,
        FieldType::StrList => 5,
        FieldType::IntList => 6,
        FieldType::StrMap => 7,
    }
}

fn field_type_from_tag(t: u8) -> Option<FieldType> {
    Some(match t {
        0 => FieldType::Bool,
        1 => FieldType::Int,
        2 => FieldType::Float,
        3 => FieldType::Str,
        4 => FieldType::Bytes,
        5 => FieldType::StrList,
        6 => FieldType::IntList,
        7 => FieldType::StrMap,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use remora_entry::{Body, Field, Value};

    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX - 1, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Reader::new(&b).varint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            put_zigzag(&mut b, v);
            assert_eq!(Reader::new(&b).zigzag().unwrap(), v);
        }
    }

    #[test]
    fn forged_field_count_is_rejected_without_allocating() {
        // ts delta 0, then a field count of 2^62.
        let mut b = vec![0u8];
        put_varint(&mut b, 1 << 62);
        let mut m = Message {
            ts: Timestamp(0),
            fields: Fields::new(),
            body: None,
        };
        let err = decode_message_into(&mut Reader::new(&b), 0, None, &mut m).unwrap_err();
        assert_eq!(err.reason, "item count exceeds the bytes that remain");
    }

    #[test]
    fn truncated_record_is_an_error_at_every_cut() {
        let e = Entry {
            id: 0,
            flow_id: 9,
            plugin: 0,
            protocol: 0,
            transport: Transport::Tcp,
            client: Endpoint::new("10.0.0.1".parse().unwrap(), 1234),
            server: Endpoint::new("::1".parse().unwrap(), 80),
            request: Some(Message {
                ts: Timestamp(5),
                fields: vec![Field {
                    id: 1,
                    value: Value::Pair("k".into(), "v".into()),
                }]
                .into(),
                body: Some(Box::new(Body {
                    data: b"hello".to_vec(),
                    original_len: 5,
                    truncated: false,
                    decoded_from: Some("gzip".into()),
                })),
            }),
            response: None,
            standalone: true,
        };
        let (mut out, mut bodies) = (Vec::new(), Vec::new());
        encode_entry(&mut out, &mut bodies, 0, 0, &e);
        for cut in 0..out.len() {
            assert!(decode_entry(&mut Reader::new(&out[..cut]), 1, 0, Some(&bodies)).is_err());
        }
        let back = decode_entry(&mut Reader::new(&out), 0, 0, Some(&bodies)).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn invalid_utf8_in_a_string_is_an_error_not_a_str() {
        let mut m = Message {
            ts: Timestamp(0),
            fields: vec![Field {
                id: 0,
                value: Value::Str("ab".into()),
            }]
            .into(),
            body: None,
        };
        let (mut out, mut bodies) = (Vec::new(), Vec::new());
        encode_message(&mut out, &mut bodies, 0, 0, &m);
        let at = out.windows(2).position(|w| w == b"ab").unwrap();
        out[at] = 0xff;
        let err = decode_message_into(&mut Reader::new(&out), 0, None, &mut m).unwrap_err();
        assert_eq!(err.reason, "string is not UTF-8");
        assert_eq!(err.pos, at + 2, "position after the string");
    }
}
