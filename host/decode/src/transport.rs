//! TCP and UDP headers.

use remora_core::{DropReason, TcpFlags, L4};

use crate::ip::{PROTO_TCP, PROTO_UDP};
use crate::link::be16;

pub(crate) struct Segment<'a> {
    pub l4: L4,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// `truncated` says the snaplen cut the datagram, so a short header is a
/// capture artefact (`Truncated`) rather than garbage (`Undecodable`).
pub(crate) fn parse(proto: u8, data: &[u8], truncated: bool) -> Result<Segment<'_>, DropReason> {
    let cut = if truncated {
        DropReason::Truncated
    } else {
        DropReason::Undecodable
    };
    match proto {
        PROTO_TCP => {
            let h = data.get(..20).ok_or(cut)?;
            let header_len = (h[12] >> 4) as usize * 4;
            if header_len < 20 {
                return Err(DropReason::Undecodable);
            }
            let payload = data.get(header_len..).ok_or(cut)?;
            let f = h[13];
            Ok(Segment {
                l4: L4::Tcp {
                    seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
                    flags: TcpFlags {
                        fin: f & 0x01 != 0,
                        syn: f & 0x02 != 0,
                        rst: f & 0x04 != 0,
                        psh: f & 0x08 != 0,
                        ack: f & 0x10 != 0,
                    },
                    window: be16(&h[14..16]),
                },
                src_port: be16(&h[0..2]),
                dst_port: be16(&h[2..4]),
                payload,
            })
        }
        PROTO_UDP => {
            let h = data.get(..8).ok_or(cut)?;
            let len = be16(&h[4..6]) as usize;
            let payload = if len == 0 || len > data.len() {
                // 0: IPv6 jumbogram / GSO. Too long: the IP length already
                // bounded the datagram, so keep what is there.
                &data[8..]
            } else if len < 8 {
                return Err(DropReason::Undecodable);
            } else {
                &data[8..len]
            };
            Ok(Segment {
                l4: L4::Udp,
                src_port: be16(&h[0..2]),
                dst_port: be16(&h[2..4]),
                payload,
            })
        }
        _ => Err(DropReason::NotTcpUdp),
    }
}
