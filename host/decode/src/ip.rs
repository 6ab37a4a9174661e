//! IPv4 / IPv6 headers, parsed by hand: it is the hot path and we need exactly
//! addresses, protocol, the length-trimmed payload and fragment info.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use remora_core::DropReason;

use crate::link::be16;

pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
const PROTO_AH: u8 = 51;
const V6_HOP_BY_HOP: u8 = 0;
const V6_ROUTING: u8 = 43;
const V6_FRAGMENT: u8 = 44;
const V6_NO_NEXT: u8 = 59;
const V6_DEST_OPTS: u8 = 60;
const V6_MOBILITY: u8 = 135;
const V6_HIP: u8 = 139;
const V6_SHIM6: u8 = 140;

/// More extension headers than this is an attack or garbage.
const MAX_EXT_HEADERS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fragment {
    pub id: u32,
    /// Byte offset of this fragment's data within the reassembled payload.
    pub offset: u32,
    pub more: bool,
}

#[derive(Debug)]
pub(crate) struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Trimmed to the IP length field (so Ethernet padding is gone), or what
    /// was captured if the snaplen cut the datagram.
    pub payload: &'a [u8],
    /// The snaplen cut this datagram short.
    pub truncated: bool,
    pub fragment: Option<Fragment>,
    pub is_v6: bool,
}

pub(crate) fn parse(data: &[u8]) -> Result<IpPacket<'_>, DropReason> {
    match data.first().map(|b| b >> 4) {
        Some(4) => parse_v4(data),
        Some(6) => parse_v6(data),
        _ => Err(DropReason::Undecodable),
    }
}

fn parse_v4(data: &[u8]) -> Result<IpPacket<'_>, DropReason> {
    let h = data.get(..20).ok_or(DropReason::Undecodable)?;
    let ihl = (h[0] & 0x0f) as usize * 4;
    if ihl < 20 || ihl > data.len() {
        return Err(DropReason::Undecodable);
    }
    let total = be16(&h[2..4]) as usize;
    // total == 0 happens for TSO/GSO super-packets captured before segmentation.
    let (end, truncated) = if total == 0 {
        (data.len(), false)
    } else if total < ihl {
        return Err(DropReason::Undecodable);
    } else if total > data.len() {
        (data.len(), true)
    } else {
        (total, false)
    };
    let flags_off = be16(&h[6..8]);
    let offset = (flags_off & 0x1fff) as u32 * 8;
    let more = flags_off & 0x2000 != 0;
    let fragment = (more || offset != 0).then(|| Fragment {
        id: be16(&h[4..6]) as u32,
        offset,
        more,
    });
    let mut proto = h[9];
    let mut payload = &data[ihl..end];
    if proto == PROTO_AH && fragment.is_none() {
        let (next, rest) = skip_ah(payload, truncated)?;
        proto = next;
        payload = rest;
    }
    Ok(IpPacket {
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        proto,
        payload,
        truncated,
        fragment,
        is_v6: false,
    })
}

fn skip_ah(data: &[u8], truncated: bool) -> Result<(u8, &[u8]), DropReason> {
    let cut = if truncated {
        DropReason::Truncated
    } else {
        DropReason::Undecodable
    };
    let h = data.get(..2).ok_or(cut)?;
    let len = (h[1] as usize + 2) * 4;
    let rest = data.get(len..).ok_or(cut)?;
    Ok((h[0], rest))
}

fn parse_v6(data: &[u8]) -> Result<IpPacket<'_>, DropReason> {
    let h = data.get(..40).ok_or(DropReason::Undecodable)?;
    let plen = be16(&h[4..6]) as usize;
    // payload length 0: jumbogram or a GSO packet; take what was captured.
    let (end, truncated) = if plen == 0 {
        (data.len(), false)
    } else if 40 + plen > data.len() {
        (data.len(), true)
    } else {
        (40 + plen, false)
    };
    let src: [u8; 16] = h[8..24].try_into().expect("16 bytes");
    let dst: [u8; 16] = h[24..40].try_into().expect("16 bytes");
    let (proto, payload, fragment) = skip_v6_extensions(h[6], &data[40..end], truncated)?;
    Ok(IpPacket {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        proto,
        payload,
        truncated,
        fragment,
        is_v6: true,
    })
}

/// Whether `proto` is an IPv6 extension header we know how to skip.
pub(crate) fn is_v6_extension(proto: u8) -> bool {
    matches!(
        proto,
        V6_HOP_BY_HOP | V6_ROUTING | V6_DEST_OPTS | V6_MOBILITY | V6_HIP | V6_SHIM6 | PROTO_AH
    )
}

/// Walks extension headers to the upper-layer protocol. Stops at a fragment
/// header that really fragments (the rest is only meaningful after
/// reassembly); atomic fragments (offset 0, no more) are walked through.
pub(crate) fn skip_v6_extensions(
    mut next: u8,
    mut data: &[u8],
    truncated: bool,
) -> Result<(u8, &[u8], Option<Fragment>), DropReason> {
    let cut = if truncated {
        DropReason::Truncated
    } else {
        DropReason::Undecodable
    };
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            V6_FRAGMENT => {
                let h = data.get(..8).ok_or(cut)?;
                let off_flags = be16(&h[2..4]);
                let offset = (off_flags >> 3) as u32 * 8;
                let more = off_flags & 1 != 0;
                next = h[0];
                data = &data[8..];
                if offset != 0 || more {
                    let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                    return Ok((next, data, Some(Fragment { id, offset, more })));
                }
            }
            PROTO_AH => {
                let (n, rest) = skip_ah(data, truncated)?;
                next = n;
                data = rest;
            }
            V6_NO_NEXT => return Err(DropReason::NotTcpUdp),
            p if is_v6_extension(p) => {
                let h = data.get(..2).ok_or(cut)?;
                let len = (h[1] as usize + 1) * 8;
                next = h[0];
                data = data.get(len..).ok_or(cut)?;
            }
            _ => return Ok((next, data, None)),
        }
    }
    Err(DropReason::Undecodable)
}
