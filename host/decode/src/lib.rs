//! L2–L4 decoding: from a captured frame to a TCP/UDP [`Packet`].
//!
//! Header parsing is etherparse's: Ethernet II, VLAN/QinQ tags and Linux SLL
//! link headers (`link`), IPv4 (with AH) and IPv6 with their length fields
//! trimming the payload (`ip`), and TCP/UDP (`transport`).
//!
//! Hand-written, because etherparse 0.21 lacks it or we need other
//! semantics:
//! - link headers etherparse has no parser for: Linux SLL2, BSD Null/Loop
//!   address families, MPLS label stacks, PPPoE sessions (and SLL with ARPHRD
//!   types etherparse refuses, such as loopback);
//! - the IPv6 extension-header walk (over etherparse's per-header slices),
//!   which must stop at a fragment header and skip Mobility/HIP/Shim6;
//! - IP fragment reassembly (`defrag`): bounded in memory, datagram count
//!   and time, and counting every fragment it gives up on. It is fed from
//!   etherparse's fragment fields (identification, offset, more-fragments).
//!
//! The normal path allocates nothing: etherparse slices borrow the frame and
//! the payload borrows from it too. Only IP fragments are copied, into the
//! bounded reassembly table.

mod defrag;
mod ip;
mod link;
mod transport;

use remora_core::{DropReason, Drops, Endpoint, Packet};
use remora_source::Frame;

use defrag::{Defrag, FragKey, Limits, Outcome};

#[derive(Clone, Copy, Debug)]
pub struct DecodeConfig {
    /// Memory for fragments waiting for the rest of their datagram.
    pub max_pending_fragments_bytes: usize,
    /// Datagrams being reassembled at once.
    pub max_fragment_datagrams: usize,
    /// A datagram not complete after this long (packet time) is dropped.
    pub fragment_timeout_us: i64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_pending_fragments_bytes: 4 << 20,
            max_fragment_datagrams: 1024,
            fragment_timeout_us: 30_000_000,
        }
    }
}

#[derive(Debug)]
pub enum Decoded<'a> {
    Packet(Packet<'a>),
    /// An IP fragment was stored; the packet comes out with its last fragment.
    Held,
    Skipped(DropReason),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames given to the decoder.
    pub packets: u64,
    /// Packets returned (a reassembled datagram counts once).
    pub decoded: u64,
    /// Frames skipped, plus held fragments later given up on.
    pub drops: Drops,
    pub fragments_reassembled: u64,
    /// Packets delivered with less payload than the IP header announced
    /// because the capture's snaplen cut them.
    pub truncated_frames: u64,
}

pub struct Decoder {
    stats: DecodeStats,
    defrag: Defrag,
}

impl Decoder {
    pub fn new(config: DecodeConfig) -> Self {
        Decoder {
            stats: DecodeStats::default(),
            defrag: Defrag::new(Limits {
                max_bytes: config.max_pending_fragments_bytes,
                max_datagrams: config.max_fragment_datagrams,
                timeout_us: config.fragment_timeout_us,
            }),
        }
    }

    pub fn stats(&self) -> DecodeStats {
        let mut s = self.stats;
        s.drops.merge(&self.defrag.dropped);
        s.fragments_reassembled = self.defrag.reassembled;
        s
    }

    /// Datagrams currently waiting for fragments, and the bytes they hold.
    pub fn pending_fragments(&self) -> (usize, usize) {
        (self.defrag.pending_datagrams(), self.defrag.pending_bytes())
    }

    pub fn decode<'a>(&'a mut self, frame: &Frame<'a>) -> Decoded<'a> {
        self.stats.packets += 1;
        match decode_frame(frame, &mut self.defrag, &mut self.stats.truncated_frames) {
            Ok(Some(p)) => {
                self.stats.decoded += 1;
                Decoded::Packet(p)
            }
            Ok(None) => Decoded::Held,
            Err(reason) => {
                self.stats.drops.add(reason, 1);
                Decoded::Skipped(reason)
            }
        }
    }
}

/// Split from [`Decoder::decode`] so the returned packet borrows only the
/// reassembly buffer, leaving the counters free to update.
fn decode_frame<'a>(
    frame: &Frame<'a>,
    defrag: &'a mut Defrag,
    truncated_frames: &mut u64,
) -> Result<Option<Packet<'a>>, DropReason> {
    let ip_bytes = link::ip_bytes(frame.link, frame.data)?;
    let ip = ip::parse(ip_bytes)?;

    let Some(frag) = ip.fragment else {
        let seg = transport::parse(ip.proto, ip.payload, ip.truncated)?;
        if ip.truncated {
            *truncated_frames += 1;
        }
        return Ok(Some(Packet {
            ts: frame.ts,
            src: Endpoint::new(ip.src, seg.src_port),
            dst: Endpoint::new(ip.dst, seg.dst_port),
            l4: seg.l4,
            payload: seg.payload,
            wire_len: frame.wire_len,
        }));
    };

    // Only hold fragments that can become TCP/UDP: ICMP fragments would
    // just use up the table.
    let wanted = matches!(ip.proto, ip::PROTO_TCP | ip::PROTO_UDP)
        || (ip.is_v6 && ip::is_v6_extension(ip.proto));
    if !wanted {
        return Err(DropReason::NotTcpUdp);
    }
    if ip.truncated {
        // A hole we can never fill: the datagram is lost either way.
        return Err(DropReason::Truncated);
    }
    let key = FragKey {
        src: ip.src,
        dst: ip.dst,
        proto: ip.proto,
        id: frag.id,
    };
    let wire_len = match defrag.insert(key, frag, ip.payload, frame.ts.micros(), frame.wire_len) {
        Outcome::Held => return Ok(None),
        Outcome::Dropped(reason) => return Err(reason),
        Outcome::Complete { wire_len } => wire_len,
    };
    let datagram = defrag.datagram();
    let (proto, payload) = if ip.is_v6 {
        match ip::skip_v6_extensions(ip.proto, datagram, false)? {
            (proto, payload, None) => (proto, payload),
            (_, _, Some(_)) => return Err(DropReason::Undecodable),
        }
    } else {
        (ip.proto, datagram)
    };
    let seg = transport::parse(proto, payload, false)?;
    Ok(Some(Packet {
        ts: frame.ts,
        src: Endpoint::new(ip.src, seg.src_port),
        dst: Endpoint::new(ip.dst, seg.dst_port),
        l4: seg.l4,
        payload: seg.payload,
        wire_len,
    }))
}
