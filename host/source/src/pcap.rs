//! Classic libpcap files: recognising the magic. Headers and records are
//! parsed by pcap-parser.

pub(crate) const FILE_HEADER_LEN: usize = 24;
pub(crate) const RECORD_HEADER_LEN: usize = 16;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// Recognises the magic in any of its four forms (byte order × resolution);
/// returns whether the file is big-endian. The modified (Kuznetzov) format
/// is deliberately not accepted.
pub(crate) fn sniff(head: &[u8]) -> Option<bool> {
    let m: [u8; 4] = head.get(..4)?.try_into().ok()?;
    let (le, be) = (u32::from_le_bytes(m), u32::from_be_bytes(m));
    match (le, be) {
        (MAGIC_MICROS | MAGIC_NANOS, _) => Some(false),
        (_, MAGIC_MICROS | MAGIC_NANOS) => Some(true),
        _ => None,
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
