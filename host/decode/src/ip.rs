//! IPv4 / IPv6 headers via etherparse's lax slices: they give addresses,
//! protocol, the payload trimmed to the IP length field (so Ethernet padding
//! is gone) and whether the snaplen cut it. What stays ours is policy: which
//! malformed lengths count as undecodable, and the IPv6 extension walk that
//! stops at a fragment header (etherparse walks on into fragment data) and
//! also skips Mobility/HIP/Shim6 headers (etherparse stops at them).

use std::net::IpAddr;

use etherparse::{
    err::ip_auth::HeaderSliceError as AuthError, ip_number, IpAuthHeaderSlice, IpNumber,
    Ipv6FragmentHeaderSlice, Ipv6RawExtHeaderSlice, LaxIpv4Slice, LaxIpv6Slice,
};
use remora_core::DropReason;

pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
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

#[inline]
fn cut_reason(truncated: bool) -> DropReason {
    if truncated {
        DropReason::Truncated
    } else {
        DropReason::Undecodable
    }
}

fn parse_v4(data: &[u8]) -> Result<IpPacket<'_>, DropReason> {
    let (ip, auth_err) = LaxIpv4Slice::from_slice(data).map_err(|_| DropReason::Undecodable)?;
    let h = ip.header();
    // etherparse falls back to the captured length when total length is
    // smaller than the header; only 0 (TSO/GSO super-packets captured before
    // segmentation) is legitimate, anything else is garbage.
    let total = h.total_len() as usize;
    if total != 0 && total < h.slice().len() {
        return Err(DropReason::Undecodable);
    }
    let payload = ip.payload();
    let fragment = h.is_fragmenting_payload().then(|| Fragment {
        id: h.identification() as u32,
        offset: h.fragments_offset().value() as u32 * 8,
        more: h.more_fragments(),
    });
    let proto = if fragment.is_some() {
        // etherparse reads an authentication header even in fragments; it
        // only means something after reassembly, so report the IP protocol.
        h.protocol().0
    } else {
        match auth_err {
            None => payload.ip_number.0,
            Some(AuthError::Len(_)) => return Err(cut_reason(payload.incomplete)),
            Some(AuthError::Content(_)) => return Err(DropReason::Undecodable),
        }
    };
    let payload_bytes = if fragment.is_some() && h.protocol() == ip_number::AUTH {
        &data[h.slice().len()..h.slice().len() + ext_and_payload_len(&ip)]
    } else {
        payload.payload
    };
    Ok(IpPacket {
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        proto,
        payload: payload_bytes,
        truncated: payload.incomplete,
        fragment,
        is_v6: false,
    })
}

/// Length of the IPv4 payload including an authentication header etherparse
/// already stripped.
fn ext_and_payload_len(ip: &LaxIpv4Slice<'_>) -> usize {
    ip.extensions().auth.map_or(0, |a| a.slice().len()) + ip.payload().payload.len()
}

fn parse_v6(data: &[u8]) -> Result<IpPacket<'_>, DropReason> {
    let (ip, ext_err) = LaxIpv6Slice::from_slice(data).map_err(|_| DropReason::Undecodable)?;
    let h = ip.header();
    let payload = ip.payload();
    let truncated = payload.incomplete;
    let (proto, payload_bytes, fragment) = if ip.extensions().is_empty() && ext_err.is_none() {
        // The common case: TCP/UDP right after the fixed header.
        (payload.ip_number.0, payload.payload, None)
    } else {
        // Extension headers: walk them ourselves from the length-trimmed
        // payload (extensions and upper layer are contiguous after the
        // 40-byte header).
        let end = 40 + ip.extensions().slice().len() + payload.payload.len();
        skip_v6_extensions(h.next_header().0, &data[40..end], truncated)?
    };
    Ok(IpPacket {
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        proto,
        payload: payload_bytes,
        truncated,
        fragment,
        is_v6: true,
    })
}

/// Whether `proto` is an IPv6 extension header we know how to skip.
pub(crate) fn is_v6_extension(proto: u8) -> bool {
    let p = IpNumber(proto);
    p == ip_number::IPV6_HOP_BY_HOP
        || p == ip_number::IPV6_ROUTE
        || p == ip_number::IPV6_DEST_OPTIONS
        || p == ip_number::AUTH
        || matches!(proto, V6_MOBILITY | V6_HIP | V6_SHIM6)
}

/// Walks extension headers to the upper-layer protocol. Stops at a fragment
/// header that really fragments (the rest is only meaningful after
/// reassembly); atomic fragments (offset 0, no more) are walked through.
/// Each header is sliced by etherparse; Mobility, HIP and Shim6 use the
/// generic extension header layout, so they are sliced as raw headers.
pub(crate) fn skip_v6_extensions(
    mut next: u8,
    mut data: &[u8],
    truncated: bool,
) -> Result<(u8, &[u8], Option<Fragment>), DropReason> {
    let cut = cut_reason(truncated);
    for _ in 0..MAX_EXT_HEADERS {
        let p = IpNumber(next);
        if p == ip_number::IPV6_FRAG {
            let f = Ipv6FragmentHeaderSlice::from_slice(data).map_err(|_| cut)?;
            next = f.next_header().0;
            data = &data[f.slice().len()..];
            if f.is_fragmenting_payload() {
                let frag = Fragment {
                    id: f.identification(),
                    offset: f.fragment_offset().value() as u32 * 8,
                    more: f.more_fragments(),
                };
                return Ok((next, data, Some(frag)));
            }
        } else if p == ip_number::AUTH {
            let a = IpAuthHeaderSlice::from_slice(data).map_err(|e| match e {
                AuthError::Len(_) => cut,
                AuthError::Content(_) => DropReason::Undecodable,
            })?;
            next = a.next_header().0;
            data = &data[a.slice().len()..];
        } else if p == ip_number::IPV6_NO_NEXT_HEADER {
            return Err(DropReason::NotTcpUdp);
        } else if is_v6_extension(next) {
            let e = Ipv6RawExtHeaderSlice::from_slice(data).map_err(|_| cut)?;
            next = e.next_header().0;
            data = &data[e.slice().len()..];
        } else {
            return Ok((next, data, None));
        }
    }
    Err(DropReason::Undecodable)
}
