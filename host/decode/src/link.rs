//! Link-layer headers: find where the IP header starts.

use remora_core::DropReason;
use remora_source::LinkType;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
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
            let h = data.get(..14).ok_or(DropReason::Undecodable)?;
            by_ethertype(be16(&h[12..14]), &data[14..])
        }
        LinkType::LinuxSll => {
            let h = data.get(..16).ok_or(DropReason::Undecodable)?;
            by_ethertype(be16(&h[14..16]), &data[16..])
        }
        LinkType::LinuxSll2 => {
            let h = data.get(..20).ok_or(DropReason::Undecodable)?;
            by_ethertype(be16(&h[0..2]), &data[20..])
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

fn by_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Result<&[u8], DropReason> {
    for _ in 0..MAX_TAGS {
        match ethertype {
            ETH_IPV4 | ETH_IPV6 => return Ok(rest),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
                let tag = rest.get(..4).ok_or(DropReason::Undecodable)?;
                ethertype = be16(&tag[2..4]);
                rest = &rest[4..];
            }
            ETH_MPLS | ETH_MPLS_MC => return after_mpls(rest),
            ETH_PPPOE_SESSION => {
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
pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
