//! Link-layer headers: find where the IP header starts.
//!
//! Ethernet II, 802.1Q/802.1ad VLAN tags and Linux SLL come from etherparse.
//! Written by hand, because etherparse 0.21 has no parser for them: Linux SLL2,
//! BSD Null/Loop address-family headers, MPLS label stacks and PPPoE
//! sessions (and SLL for ARPHRD types etherparse refuses, e.g. loopback).

use etherparse::{
    err::linux_sll::HeaderSliceError as SllError, EtherType, Ethernet2Slice, LinuxSllProtocolType,
    LinuxSllSlice, SingleVlanSlice,
};
use remora_core::DropReason;
use remora_source::LinkType;

const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;

/// Enough tags for any sane stack; more means a loop of garbage.
const MAX_TAGS: usize = 8;

/// The bytes from the IP header on. Non-IP frames (ARP, LLDP, ...) are
/// `NotTcpUdp`: nothing is wrong with them, we just do not track them.
pub(crate) fn ip_bytes(link: LinkType, data: &[u8]) -> Result<&[u8], DropReason> {
    match link {
        LinkType::Ethernet => {
            let eth = Ethernet2Slice::from_slice_without_fcs(data)
                .map_err(|_| DropReason::Undecodable)?;
            by_ethertype(eth.ether_type(), eth.payload_slice())
        }
        LinkType::LinuxSll => match LinuxSllSlice::from_slice(data) {
            Ok(sll) => match sll.protocol_type() {
                LinuxSllProtocolType::EtherType(t) => by_ethertype(t, &data[16..]),
                // ARPHRD_IPGRE: the protocol is the GRE payload's ethertype.
                LinuxSllProtocolType::GenericRoutingEncapsulationProtocolType(t) => {
                    by_ethertype(EtherType(t), &data[16..])
                }
                _ => Err(DropReason::NotTcpUdp),
            },
            Err(SllError::Len(_)) => Err(DropReason::Undecodable),
            // etherparse only accepts a few ARPHRD types (not loopback, tun,
            // ...) and the documented packet types; the protocol field still
            // holds an ethertype for those, so read it directly.
            Err(SllError::Content(_)) => by_ethertype(EtherType(be16(&data[14..16])), &data[16..]),
        },
        LinkType::LinuxSll2 => {
            // SLL2: protocol (2), reserved (2), ifindex (4), ARPHRD (2),
            // packet type (1), address length (1), address (8).
            let h = data.get(..20).ok_or(DropReason::Undecodable)?;
            by_ethertype(EtherType(be16(&h[0..2])), &data[20..])
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => Ok(data),
        LinkType::Null => {
            let h = data.get(..4).ok_or(DropReason::Undecodable)?;
            // Written in the capturing host's byte order: a family number is
            // small, so a large value means the other order.
            let mut af = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            if af > 0xffff {
                af = af.swap_bytes();
            }
            by_address_family(af, &data[4..])
        }
        LinkType::Loop => {
            let h = data.get(..4).ok_or(DropReason::Undecodable)?;
            by_address_family(u32::from_be_bytes([h[0], h[1], h[2], h[3]]), &data[4..])
        }
        LinkType::Other(_) => Err(DropReason::UnsupportedLinkType),
    }
}

fn by_address_family(af: u32, rest: &[u8]) -> Result<&[u8], DropReason> {
    match af {
        // AF_INET everywhere; AF_INET6 differs between BSDs (24, 28, 30).
        2 | 24 | 28 | 30 => Ok(rest),
        _ => Err(DropReason::NotTcpUdp),
    }
}

fn by_ethertype(mut ethertype: EtherType, mut rest: &[u8]) -> Result<&[u8], DropReason> {
    for _ in 0..MAX_TAGS {
        match ethertype {
            EtherType::IPV4 | EtherType::IPV6 => return Ok(rest),
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                let tag = SingleVlanSlice::from_slice(rest).map_err(|_| DropReason::Undecodable)?;
                ethertype = tag.ether_type();
                rest = tag.payload_slice();
            }
            EtherType(ETH_MPLS | ETH_MPLS_MC) => return after_mpls(rest),
            EtherType(ETH_PPPOE_SESSION) => {
                // 6-byte PPPoE header, then the 2-byte PPP protocol.
                let h = rest.get(..8).ok_or(DropReason::Undecodable)?;
                return match be16(&h[6..8]) {
                    0x0021 | 0x0057 => Ok(&rest[8..]),
                    _ => Err(DropReason::NotTcpUdp),
                };
            }
            _ => return Err(DropReason::NotTcpUdp),
        }
    }
    Err(DropReason::Undecodable)
}

/// MPLS has no next-protocol field: after the bottom-of-stack label, guess
/// from the IP version nibble like every other tool does.
fn after_mpls(mut rest: &[u8]) -> Result<&[u8], DropReason> {
    for _ in 0..MAX_TAGS {
        let label = rest.get(..4).ok_or(DropReason::Undecodable)?;
        let bottom = label[2] & 1 == 1;
        rest = &rest[4..];
        if bottom {
            return match rest.first().map(|b| b >> 4) {
                Some(4 | 6) => Ok(rest),
                _ => Err(DropReason::NotTcpUdp),
            };
        }
    }
    Err(DropReason::Undecodable)
}

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
