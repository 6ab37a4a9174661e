//! pcapng: self-describing blocks; each interface has its own link type and
//! timestamp resolution, so both are resolved per packet. Blocks are parsed
//! by pcap-parser; kept here are the timestamp conversion, the block framing
//! checks that give exact errors (pcap-parser reports a packet block whose
//! captured length overruns it as "incomplete" forever), and the obsolete
//! packet block, which pcap-parser does not know.

use pcap_parser::{InterfaceDescriptionBlock, OptionCode};

use crate::link::LinkType;
use crate::pcap::{read_u16, read_u32};
use crate::MAX_RECORD_LEN;
use remora_core::Timestamp;

pub(crate) const SHB: u32 = 0x0a0d_0d0a;
pub(crate) const OBSOLETE_PB: u32 = 2;
pub(crate) const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

pub(crate) fn is_shb(head: &[u8]) -> bool {
    head.get(..4) == Some(&SHB.to_le_bytes()[..])
}

/// Byte order of a section, from the SHB's byte-order magic (offset 8).
pub(crate) fn section_big_endian(shb_head: &[u8]) -> Option<bool> {
    let m: [u8; 4] = shb_head.get(8..12)?.try_into().ok()?;
    if u32::from_le_bytes(m) == BYTE_ORDER_MAGIC {
        Some(false)
    } else if u32::from_be_bytes(m) == BYTE_ORDER_MAGIC {
        Some(true)
    } else {
        None
    }
}

/// What the next block's framing says, before pcap-parser looks at it.
pub(crate) enum Framing {
    /// Not enough bytes buffered to tell; `need` is the least that would do.
    Short {
        need: usize,
    },
    /// Type and total length (in the block's own byte order).
    Block {
        btype: u32,
        len: usize,
        be: bool,
    },
    Corrupt(String),
}

/// Reads the block header at the start of `head`; `be` is the current
/// section's byte order (an SHB carries its own).
pub(crate) fn framing(head: &[u8], be: bool) -> Framing {
    if head.len() < 12 {
        return Framing::Short { need: 12 };
    }
    let be = if is_shb(head) {
        match section_big_endian(head) {
            Some(be) => be,
            None => return Framing::Corrupt("section header with a bad byte-order magic".into()),
        }
    } else {
        be
    };
    let btype = read_u32(&head[0..4], be);
    let len = read_u32(&head[4..8], be) as usize;
    if len < 12 || !len.is_multiple_of(4) || len > MAX_RECORD_LEN {
        return Framing::Corrupt(format!("invalid block length {len}"));
    }
    if let Some(trailer) = head.get(len - 4..len) {
        if read_u32(trailer, be) as usize != len {
            return Framing::Corrupt("block trailer length does not match header".into());
        }
    }
    Framing::Block { btype, len, be }
}

/// Why a complete block that pcap-parser would not parse is corrupt.
pub(crate) fn explain_bad_block(block: &[u8], btype: u32, be: bool) -> String {
    if btype == EPB && block.len() >= 32 {
        let caplen = read_u32(&block[20..24], be) as usize;
        if caplen > block.len() - 32 {
            return format!(
                "captured length {caplen} exceeds the {}-byte packet block",
                block.len() - 32
            );
        }
    }
    let what = match btype {
        SHB => "section header block",
        1 => "interface description block",
        EPB => "enhanced packet block",
        3 => "simple packet block",
        _ => "block",
    };
    format!(
        "malformed {what} of {} bytes (type {btype:#x})",
        block.len()
    )
}

/// How to turn an interface's timestamp units into microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    Mul(u64),
    Div(u64),
    /// Units of 2^-n seconds.
    Pow2(u32),
    /// Resolution too fine to represent in microseconds: every stamp is 0 µs.
    Zero,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Interface {
    pub link: LinkType,
    scale: Scale,
    offset_us: i64,
}

impl Interface {
    /// From pcap-parser's IDB. `if_tsresol` is taken from it; `if_tsoffset`
    /// is read from the option here because pcap-parser decodes it as
    /// little-endian even in big-endian sections.
    pub fn from_idb(idb: &InterfaceDescriptionBlock<'_>, be: bool) -> Interface {
        let link = LinkType::from_dlt(idb.linktype.0 as u32 & 0xffff);
        let mut offset_us = 0i64;
        for opt in &idb.options {
            if opt.code == OptionCode::IfTsoffset && opt.len >= 8 && opt.value.len() >= 8 {
                let v: [u8; 8] = opt.value[..8].try_into().unwrap_or_default();
                let secs = if be {
                    i64::from_be_bytes(v)
                } else {
                    i64::from_le_bytes(v)
                };
                offset_us = secs.saturating_mul(1_000_000);
            }
        }
        Interface {
            link,
            scale: scale_for(idb.if_tsresol),
            offset_us,
        }
    }

    #[inline]
    pub fn timestamp(&self, hi: u32, lo: u32) -> Timestamp {
        let units = ((hi as u64) << 32) | lo as u64;
        let us: u64 = match self.scale {
            Scale::Mul(1) => units,
            Scale::Mul(m) => units.saturating_mul(m),
            Scale::Div(d) => units / d,
            Scale::Pow2(n) => ((units as u128 * 1_000_000) >> n).min(u64::MAX as u128) as u64,
            Scale::Zero => 0,
        };
        let us = i64::try_from(us)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset_us);
        // The times an entry can carry: RFC 3339 writes years 0000 to 9999,
        // and pcapng's 64-bit units and offsets reach far beyond (an
        // `if_tsoffset` of 2^63 µs is year 292,277). A time outside is held
        // at the nearest end, so entries stay printable and ordered.
        Timestamp(us.clamp(Timestamp::EARLIEST.0, Timestamp::LATEST.0))
    }
}

fn scale_for(tsresol: u8) -> Scale {
    let n = (tsresol & 0x7f) as u32;
    if tsresol & 0x80 != 0 {
        return if n < 128 { Scale::Pow2(n) } else { Scale::Zero };
    }
    if n <= 6 {
        Scale::Mul(10u64.pow(6 - n))
    } else {
        match 10u64.checked_pow(n - 6) {
            Some(d) => Scale::Div(d),
            None => Scale::Zero,
        }
    }
}

/// The obsolete packet block (type 2), which pcap-parser hands over as an
/// unknown block: `body` is what lies between the length fields.
pub(crate) struct ObsoletePacket {
    pub iface: u32,
    pub ts_hi: u32,
    pub ts_lo: u32,
    pub data_off: usize,
    pub caplen: usize,
    pub wire_len: u32,
}

pub(crate) fn obsolete_packet(body: &[u8], be: bool) -> Result<ObsoletePacket, String> {
    if body.len() < 20 {
        return Err(format!(
            "packet block body of {} bytes is too short",
            body.len()
        ));
    }
    let caplen = read_u32(&body[12..16], be) as usize;
    if caplen > body.len() - 20 {
        return Err(format!(
            "captured length {caplen} exceeds the {}-byte packet block",
            body.len() - 20
        ));
    }
    Ok(ObsoletePacket {
        iface: read_u16(&body[0..2], be) as u32,
        ts_hi: read_u32(&body[4..8], be),
        ts_lo: read_u32(&body[8..12], be),
        data_off: 20,
        caplen,
        wire_len: read_u32(&body[16..20], be),
    })
}
