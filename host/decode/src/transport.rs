//! TCP and UDP headers, sliced by etherparse.

use etherparse::{err::tcp::HeaderSliceError as TcpError, TcpSlice, UdpSlice};
use remora_core::{DropReason, TcpFlags, L4};

use crate::ip::{PROTO_TCP, PROTO_UDP};

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
            let t = TcpSlice::from_slice(data).map_err(|e| match e {
                TcpError::Len(_) => cut,
                // data offset below 5 words
                TcpError::Content(_) => DropReason::Undecodable,
            })?;
            Ok(Segment {
                l4: L4::Tcp {
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    flags: TcpFlags {
                        fin: t.fin(),
                        syn: t.syn(),
                        rst: t.rst(),
                        psh: t.psh(),
                        ack: t.ack(),
                    },
                    window: t.window_size(),
                },
                src_port: t.source_port(),
                dst_port: t.destination_port(),
                payload: t.payload(),
            })
        }
        PROTO_UDP => {
            // Lax: a length of 0 (IPv6 jumbogram / GSO) or beyond the data
            // (the IP length already bounded the datagram) keeps what is there.
            let u = UdpSlice::from_slice_lax(data).map_err(|_| cut)?;
            let len = u.length();
            if len != 0 && len < 8 {
                return Err(DropReason::Undecodable);
            }
            Ok(Segment {
                l4: L4::Udp,
                src_port: u.source_port(),
                dst_port: u.destination_port(),
                payload: u.payload(),
            })
        }
        _ => Err(DropReason::NotTcpUdp),
    }
}
