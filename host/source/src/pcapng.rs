//! pcapng: self-describing blocks; each interface has its own link type and
//! timestamp resolution, so both are resolved per packet.

use crate::link::LinkType;
use crate::pcap::{read_u16, read_u32};
use remora_core::Timestamp;

pub(crate) const SHB: u32 = 0x0a0d_0d0a;
pub(crate) const IDB: u32 = 1;
pub(crate) const OBSOLETE_PB: u32 = 2;
pub(crate) const SPB: u32 = 3;
pub(crate) const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

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
    /// Parses an IDB body (after type and length). Malformed options are ignored
    /// rather than fatal: the packets are still usable with default timing.
    pub fn parse(body: &[u8], be: bool) -> Option<Interface> {
        if body.len() < 8 {
            return None;
        }
        let link = LinkType::from_dlt(read_u16(&body[0..2], be) as u32);
        let mut scale = Scale::Mul(1);
        let mut offset_us = 0i64;
        let mut opts = &body[8..];
        while opts.len() >= 4 {
            let code = read_u16(&opts[0..2], be);
            let len = read_u16(&opts[2..4], be) as usize;
            if code == OPT_END {
                break;
            }
            let Some(value) = opts.get(4..4 + len) else {
                break;
            };
            match code {
                OPT_IF_TSRESOL if len >= 1 => scale = scale_for(value[0]),
                OPT_IF_TSOFFSET if len >= 8 => {
                    let secs = if be {
                        i64::from_be_bytes(value[..8].try_into().unwrap_or_default())
                    } else {
                        i64::from_le_bytes(value[..8].try_into().unwrap_or_default())
                    };
                    offset_us = secs.saturating_mul(1_000_000);
                }
                _ => {}
            }
            let padded = (len + 3) & !3;
            opts = opts.get(4 + padded..).unwrap_or(&[]);
        }
        Some(Interface {
            link,
            scale,
            offset_us,
        })
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
        Timestamp(
            i64::try_from(us)
                .unwrap_or(i64::MAX)
                .saturating_add(self.offset_us),
        )
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

/// Where the packet bytes sit inside a packet block's body.
pub(crate) struct PacketRef {
    pub iface: u32,
    pub ts_hi: u32,
    pub ts_lo: u32,
    /// Offset of the data within the body.
    pub data_off: usize,
    pub caplen: usize,
    pub wire_len: u32,
}

/// Parses a packet-carrying block body; `Err` explains a caplen that does not
/// fit the block, which means the file is corrupt.
pub(crate) fn packet_ref(btype: u32, body: &[u8], be: bool) -> Result<Option<PacketRef>, String> {
    match btype {
        EPB | OBSOLETE_PB => {
            if body.len() < 20 {
                return Err(format!(
                    "packet block body of {} bytes is too short",
                    body.len()
                ));
            }
            let iface = if btype == EPB {
                read_u32(&body[0..4], be)
            } else {
                read_u16(&body[0..2], be) as u32
            };
            let caplen = read_u32(&body[12..16], be) as usize;
            if caplen > body.len() - 20 {
                return Err(format!(
                    "captured length {caplen} exceeds the {}-byte packet block",
                    body.len() - 20
                ));
            }
            Ok(Some(PacketRef {
                iface,
                ts_hi: read_u32(&body[4..8], be),
                ts_lo: read_u32(&body[8..12], be),
                data_off: 20,
                caplen,
                wire_len: read_u32(&body[16..20], be),
            }))
        }
        SPB => {
            if body.len() < 4 {
                return Err("simple packet block too short".to_string());
            }
            let wire_len = read_u32(&body[0..4], be);
            // SPBs have no caplen: the data is the original length, capped by the block.
            let caplen = (wire_len as usize).min(body.len() - 4);
            Ok(Some(PacketRef {
                iface: 0,
                ts_hi: 0,
                ts_lo: 0,
                data_off: 4,
                caplen,
                wire_len,
            }))
        }
        _ => Ok(None),
    }
}
