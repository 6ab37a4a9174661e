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

/// One step of the Huffman decoder: where 4 more bits lead from a state
/// (a position in the code tree: the bits since the last symbol).
#[derive(Clone, Copy, Default)]
struct Step {
    next: u16,
    sym: u8,
    flags: u8,
}

/// The 4 bits complete a symbol, `sym`.
const EMIT: u8 = 1;
/// The 4 bits complete EOS, which must not appear in a string.
const FAIL: u8 = 2;

/// The decoder's tables: 16 steps per state, and whether a string may end
/// in a state (the bits since the last symbol are padding: fewer than 8,
/// all ones, a prefix of EOS).
struct Fsm {
    steps: Vec<Step>,
    accept: Vec<bool>,
}

#[derive(Clone, Copy)]
enum Child {
    None,
    Node(u16),
    Leaf(u16),
}

fn fsm() -> &'static Fsm {
    static F: OnceLock<Fsm> = OnceLock::new();
    F.get_or_init(|| {
        // The code tree: internal nodes, the root first.
        let mut tree: Vec<[Child; 2]> = vec![[Child::None; 2]];
        let mut depth = vec![0u8];
        let mut ones = vec![true];
        for (sym, &(code, len)) in HUFFMAN.iter().enumerate() {
            let mut node = 0usize;
            for i in (0..len).rev() {
                let bit = ((code >> i) & 1) as usize;
                if i == 0 {
                    tree[node][bit] = Child::Leaf(sym as u16);
                    break;
                }
                node = match tree[node][bit] {
                    Child::Node(n) => n as usize,
                    _ => {
                        let n = tree.len();
                        tree.push([Child::None; 2]);
                        depth.push(depth[node] + 1);
                        ones.push(ones[node] && bit == 1);
                        tree[node][bit] = Child::Node(n as u16);
                        n
                    }
                };
            }
        }
        let mut steps = vec![Step::default(); tree.len() * 16];
        for state in 0..tree.len() {
            for nibble in 0..16u8 {
                let mut node = state;
                let mut step = Step::default();
                for i in (0..4).rev() {
                    match tree[node][usize::from((nibble >> i) & 1)] {
                        Child::Node(n) => node = n as usize,
                        Child::Leaf(256) => {
                            step.flags |= FAIL;
                            break;
                        }
                        Child::Leaf(sym) => {
                            // Codes are at least 5 bits: one symbol per nibble.
                            step.flags |= EMIT;
                            step.sym = sym as u8;
                            node = 0;
                        }
                        // Not reached: the code is complete (every path
                        // ends in a leaf); were it not, such bits are invalid.
                        Child::None => {
                            step.flags |= FAIL;
                            break;
                        }
                    }
                }
                step.next = node as u16;
                steps[state * 16 + usize::from(nibble)] = step;
            }
        }
        let accept = (0..tree.len()).map(|n| ones[n] && depth[n] < 8).collect();
        Fsm { steps, accept }
    })
}

/// Decode a Huffman-coded string (RFC 7541 §5.2, Appendix B), 4 bits per
/// step through a table built once from the code.
pub fn huffman(src: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let f = fsm();
    let mut state = 0usize;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = f.steps[state * 16 + usize::from(nibble)];
            if step.flags & FAIL != 0 {
                return Err(Error::Huffman);
            }
            if step.flags & EMIT != 0 {
                if out.len() >= MAX_STRING {
                    return Err(Error::TooLong);
                }
                out.push(step.sym);
            }
            state = usize::from(step.next);
        }
    }
    if f.accept[state] {
        Ok(())
    } else {
        Err(Error::Huffman)
    }
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

    /// The name of entry `idx` alone (a literal with an indexed name): no
    /// copy of a value that would be dropped.
    fn get_name(&self, idx: u64) -> Result<Vec<u8>, Error> {
        if idx == 0 {
            return Err(Error::Index);
        }
        if idx <= 61 {
            return Ok(STATIC_TABLE[(idx - 1) as usize].0.to_vec());
        }
        let i = usize::try_from(idx - 62).map_err(|_| Error::Index)?;
        match self.table.get(i) {
            Some((n, _)) => Ok(n.clone()),
            None if !self.synced => Ok(UNKNOWN.as_bytes().to_vec()),
            None => Err(Error::Index),
        }
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
                    self.get_name(idx)?
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
