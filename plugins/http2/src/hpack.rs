//! HPACK (RFC 7541) decoding: integers, strings, Huffman, static and dynamic
//! tables with size updates. Bounded: the dynamic table never exceeds
//! [`MAX_TABLE`] bytes, one decoded string never exceeds [`MAX_STRING`].
//!
//! A decoder that started mid-connection (`synced == false`) does not know
//! the dynamic table: references into it yield [`UNKNOWN`] instead of an
//! error, and literals are still decoded.

use crate::tables::{HUFFMAN, STATIC_TABLE};
use std::collections::VecDeque;
use std::sync::OnceLock;

/// Largest dynamic table accepted (bytes, RFC 7541 §4.1 sizes).
pub const MAX_TABLE: usize = 64 * 1024;
/// Longest header name or value decoded.
pub const MAX_STRING: usize = 64 * 1024;
/// Bytes of names and values one header block may expand to (bounds the
/// work of repeated references to large entries).
pub const MAX_DECODED: usize = 1024 * 1024;
/// Shown for a dynamic-table reference a mid-stream decoder cannot resolve.
pub const UNKNOWN: &str = "<unknown>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    Integer,
    Huffman,
    Index,
    TooLong,
    SizeUpdate,
}

impl Error {
    pub fn reason(self) -> &'static str {
        match self {
            Error::Truncated => "hpack: header block truncated",
            Error::Integer => "hpack: integer overflow",
            Error::Huffman => "hpack: invalid huffman string",
            Error::Index => "hpack: index out of range",
            Error::TooLong => "hpack: string or header list too long",
            Error::SizeUpdate => "hpack: table size update too large",
        }
    }
}

/// Decode an integer with an `n`-bit prefix at `buf[*pos]`.
pub fn integer(buf: &[u8], pos: &mut usize, n: u8) -> Result<u64, Error> {
    let first = *buf.get(*pos).ok_or(Error::Truncated)?;
    *pos += 1;
    let max = (1u64 << n) - 1;
    let mut v = u64::from(first) & max;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or(Error::Truncated)?;
        *pos += 1;
        if shift > 56 {
            return Err(Error::Integer);
        }
        v = v
            .checked_add(u64::from(b & 0x7f) << shift)
            .ok_or(Error::Integer)?;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// Canonical-code decoding tables: per bit length, first code, count and
/// the offset of its symbols in `symbols`.
struct Canon {
    first: [u32; 31],
    count: [u32; 31],
    offset: [u32; 31],
    symbols: Vec<u16>,
}

fn canon() -> &'static Canon {
    static C: OnceLock<Canon> = OnceLock::new();
    C.get_or_init(|| {
        let mut symbols: Vec<u16> = (0..257u16).collect();
        symbols.sort_by_key(|&s| {
            let (code, len) = HUFFMAN[s as usize];
            (len, code)
        });
        let mut c = Canon {
            first: [0; 31],
            count: [0; 31],
            offset: [0; 31],
            symbols,
        };
        for (i, &s) in c.symbols.iter().enumerate() {
            let (code, len) = HUFFMAN[s as usize];
            let l = len as usize;
            if c.count[l] == 0 {
                c.first[l] = code;
                c.offset[l] = i as u32;
            }
            c.count[l] += 1;
        }
        c
    })
}

/// Decode a Huffman-coded string (RFC 7541 §5.2, Appendix B).
pub fn huffman(src: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let c = canon();
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in src {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > 30 {
                return Err(Error::Huffman);
            }
            let n = c.count[len];
            if n > 0 && code >= c.first[len] && code - c.first[len] < n {
                let sym = c.symbols[(c.offset[len] + code - c.first[len]) as usize];
                if sym == 256 {
                    return Err(Error::Huffman);
                }
                if out.len() >= MAX_STRING {
                    return Err(Error::TooLong);
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if len >= 8 || code != (1u32 << len) - 1 {
        return Err(Error::Huffman);
    }
    Ok(())
}

fn string(buf: &[u8], pos: &mut usize) -> Result<Vec<u8>, Error> {
    let huff = buf.get(*pos).ok_or(Error::Truncated)? & 0x80 != 0;
    let n = integer(buf, pos, 7)?;
    let n = usize::try_from(n).map_err(|_| Error::TooLong)?;
    if n > MAX_STRING {
        return Err(Error::TooLong);
    }
    let end = pos.checked_add(n).ok_or(Error::Truncated)?;
    let raw = buf.get(*pos..end).ok_or(Error::Truncated)?;
    *pos = end;
    if huff {
        let mut v = Vec::with_capacity(n + n / 2);
        huffman(raw, &mut v)?;
        Ok(v)
    } else {
        Ok(raw.to_vec())
    }
}

/// One direction's HPACK decoder.
pub struct Decoder {
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max: usize,
    /// The dynamic table is known (the connection was seen from its start).
    pub synced: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: 4096,
            synced: true,
        }
    }

    /// Entries in the dynamic table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let sz = name.len() + value.len() + 32;
        if sz > self.max {
            self.table.clear();
            self.size = 0;
            return;
        }
        self.size += sz;
        self.table.push_front((name, value));
        self.evict();
    }

    fn get(&self, idx: u64) -> Result<(Vec<u8>, Vec<u8>), Error> {
        if idx == 0 {
            return Err(Error::Index);
        }
        if idx <= 61 {
            let (n, v) = STATIC_TABLE[(idx - 1) as usize];
            return Ok((n.to_vec(), v.to_vec()));
        }
        let i = usize::try_from(idx - 62).map_err(|_| Error::Index)?;
        match self.table.get(i) {
            Some((n, v)) => Ok((n.clone(), v.clone())),
            None if !self.synced => Ok((UNKNOWN.as_bytes().to_vec(), UNKNOWN.as_bytes().to_vec())),
            None => Err(Error::Index),
        }
    }

    /// Decode a whole header block, calling `emit(name, value)` per field.
    /// The dynamic table is updated even when `emit` drops fields.
    pub fn decode(
        &mut self,
        buf: &[u8],
        mut emit: impl FnMut(Vec<u8>, Vec<u8>),
    ) -> Result<(), Error> {
        let mut pos = 0usize;
        let mut total = 0usize;
        let mut budget = |n: &[u8], v: &[u8]| {
            total += n.len() + v.len();
            if total > MAX_DECODED {
                Err(Error::TooLong)
            } else {
                Ok(())
            }
        };
        while pos < buf.len() {
            let b = buf[pos];
            if b & 0x80 != 0 {
                let idx = integer(buf, &mut pos, 7)?;
                let (n, v) = self.get(idx)?;
                budget(&n, &v)?;
                emit(n, v);
            } else if b & 0xe0 == 0x20 {
                let sz = integer(buf, &mut pos, 5)?;
                if sz > MAX_TABLE as u64 {
                    return Err(Error::SizeUpdate);
                }
                self.max = sz as usize;
                self.evict();
            } else {
                // 01: incremental indexing (6-bit); 0000 / 0001: not indexed (4-bit).
                let incremental = b & 0xc0 == 0x40;
                let prefix = if incremental { 6 } else { 4 };
                let idx = integer(buf, &mut pos, prefix)?;
                let name = if idx == 0 {
                    string(buf, &mut pos)?
                } else {
                    self.get(idx)?.0
                };
                let value = string(buf, &mut pos)?;
                budget(&name, &value)?;
                if incremental {
                    self.insert(name.clone(), value.clone());
                }
                emit(name, value);
            }
        }
        Ok(())
    }
}

/// A minimal encoder for tests: literals (optionally Huffman-coded) with
/// incremental indexing, and indexed references.
pub mod encode {
    use crate::tables::HUFFMAN;

    pub fn integer(out: &mut Vec<u8>, flags: u8, n: u8, mut v: u64) {
        let max = (1u64 << n) - 1;
        if v < max {
            out.push(flags | v as u8);
            return;
        }
        out.push(flags | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }

    pub fn huffman(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc = 0u64;
        let mut bits = 0u32;
        for &c in s {
            let (code, len) = HUFFMAN[c as usize];
            acc = (acc << len) | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
            acc &= (1u64 << bits) - 1;
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) | ((1u64 << (8 - bits)) - 1)) as u8);
        }
        out
    }

    pub fn string(out: &mut Vec<u8>, s: &[u8], huff: bool) {
        if huff {
            let h = huffman(s);
            integer(out, 0x80, 7, h.len() as u64);
            out.extend_from_slice(&h);
        } else {
            integer(out, 0, 7, s.len() as u64);
            out.extend_from_slice(s);
        }
    }

    /// Literal with incremental indexing, new name.
    pub fn literal(out: &mut Vec<u8>, name: &str, value: &str, huff: bool) {
        out.push(0x40);
        string(out, name.as_bytes(), huff);
        string(out, value.as_bytes(), huff);
    }

    /// Literal without indexing, new name.
    pub fn literal_plain(out: &mut Vec<u8>, name: &str, value: &str) {
        out.push(0x00);
        string(out, name.as_bytes(), false);
        string(out, value.as_bytes(), false);
    }

    pub fn indexed(out: &mut Vec<u8>, idx: u64) {
        integer(out, 0x80, 7, idx);
    }
}
