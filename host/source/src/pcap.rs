//! Classic libpcap files: a 24-byte file header, then 16-byte record headers.

use crate::link::LinkType;
use remora_core::Timestamp;

pub(crate) const FILE_HEADER_LEN: usize = 24;
pub(crate) const RECORD_HEADER_LEN: usize = 16;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

#[derive(Clone, Copy, Debug)]
pub(crate) struct PcapFormat {
    pub big_endian: bool,
    pub nanos: bool,
    pub link: LinkType,
}

/// Recognises the magic in any of its four forms (byte order × resolution).
pub(crate) fn sniff(head: &[u8]) -> Option<(bool, bool)> {
    let m: [u8; 4] = head.get(..4)?.try_into().ok()?;
    let (le, be) = (u32::from_le_bytes(m), u32::from_be_bytes(m));
    match (le, be) {
        (MAGIC_MICROS, _) => Some((false, false)),
        (MAGIC_NANOS, _) => Some((false, true)),
        (_, MAGIC_MICROS) => Some((true, false)),
        (_, MAGIC_NANOS) => Some((true, true)),
        _ => None,
    }
}

pub(crate) fn parse_file_header(
    h: &[u8; FILE_HEADER_LEN],
    big_endian: bool,
    nanos: bool,
) -> PcapFormat {
    let network = read_u32(&h[20..24], big_endian);
    // Bits 16..31 carry FCS information in newer files; the link type is the low half.
    PcapFormat {
        big_endian,
        nanos,
        link: LinkType::from_dlt(network & 0xffff),
    }
}

pub(crate) struct RecordHeader {
    pub ts: Timestamp,
    pub caplen: u32,
    pub wire_len: u32,
}

#[inline]
pub(crate) fn parse_record_header(h: &[u8], f: &PcapFormat) -> RecordHeader {
    let sec = read_u32(&h[0..4], f.big_endian) as i64;
    let frac = read_u32(&h[4..8], f.big_endian) as i64;
    let micros = if f.nanos { frac / 1000 } else { frac };
    RecordHeader {
        ts: Timestamp::from_secs_frac(sec, micros),
        caplen: read_u32(&h[8..12], f.big_endian),
        wire_len: read_u32(&h[12..16], f.big_endian),
    }
}

#[inline]
pub(crate) fn read_u32(b: &[u8], big_endian: bool) -> u32 {
    let a: [u8; 4] = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[inline]
pub(crate) fn read_u16(b: &[u8], big_endian: bool) -> u16 {
    let a: [u8; 2] = [b[0], b[1]];
    if big_endian {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}
