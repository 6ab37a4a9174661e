use std::net::IpAddr;

use etherparse::PacketBuilder;
use proptest::prelude::*;
use remora_core::{DropReason, TcpFlags, Timestamp, L4};
use remora_decode::{DecodeConfig, Decoded, Decoder};
use remora_source::{CaptureReader, Frame, LinkType};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const V4_A: [u8; 4] = [10, 0, 0, 1];
const V4_B: [u8; 4] = [10, 0, 0, 2];
const V6_A: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_B: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn frame(link: LinkType, data: &[u8]) -> Frame<'_> {
    frame_at(link, data, 1_000_000)
}

fn frame_at(link: LinkType, data: &[u8], ts: i64) -> Frame<'_> {
    Frame {
        ts: Timestamp::from_micros(ts),
        link,
        data,
        chunk: None,
        wire_len: data.len() as u32,
        file_offset: 0,
    }
}

fn decoder() -> Decoder {
    Decoder::new(DecodeConfig::default())
}

/// What a decoded packet says, owned, for easy comparison.
#[derive(Debug, PartialEq)]
struct Got {
    src: String,
    dst: String,
    l4: L4,
    payload: Vec<u8>,
}

fn decode_one(link: LinkType, data: &[u8]) -> Result<Got, Option<DropReason>> {
    let mut d = decoder();
    let f = frame(link, data);
    owned(d.decode(&f))
}

fn owned(d: Decoded<'_>) -> Result<Got, Option<DropReason>> {
    match d {
        Decoded::Packet(p) => Ok(Got {
            src: p.src.to_string(),
            dst: p.dst.to_string(),
            l4: p.l4,
            payload: p.payload.to_vec(),
        }),
        Decoded::Held => Err(None),
        Decoded::Skipped(r) => Err(Some(r)),
    }
}

/// IPv4 + TCP, no link header.
fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(V4_A, V4_B, 64)
        .tcp(40000, 80, 1000, 512)
        .ack(77)
        .psh()
        .write(&mut v, payload)
        .unwrap();
    v
}

fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(V4_A, V4_B, 64)
        .udp(5353, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn ipv6_udp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(V6_A, V6_B, 64)
        .udp(5353, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn ipv6_tcp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(V6_A, V6_B, 64)
        .tcp(40000, 443, 5, 100)
        .syn()
        .write(&mut v, payload)
        .unwrap();
    v
}

fn ethernet(ethertype: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(MAC_B);
    v.extend(MAC_A);
    v.extend(ethertype.to_be_bytes());
    v.extend(inner);
    v
}

fn tcp_expect(payload: &[u8]) -> Got {
    Got {
        src: "10.0.0.1:40000".into(),
        dst: "10.0.0.2:80".into(),
        l4: L4::Tcp {
            seq: 1000,
            ack: 77,
            flags: TcpFlags {
                ack: true,
                psh: true,
                ..TcpFlags::default()
            },
            window: 512,
        },
        payload: payload.to_vec(),
    }
}

// ---------- link types ----------

#[test]
fn ethernet_ipv4_tcp() {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .tcp(40000, 80, 1000, 512)
        .ack(77)
        .psh()
        .write(&mut v, b"hello")
        .unwrap();
    assert_eq!(decode_one(LinkType::Ethernet, &v), Ok(tcp_expect(b"hello")));
}

#[test]
fn ethernet_padding_is_trimmed() {
    let mut v = ethernet(0x0800, &ipv4_udp(b"hi"));
    v.resize(60, 0xee);
    let got = decode_one(LinkType::Ethernet, &v).unwrap();
    assert_eq!(got.payload, b"hi");
    assert_eq!(got.l4, L4::Udp);
    assert_eq!(got.src, "10.0.0.1:5353");

    let mut v = ethernet(0x0800, &ipv4_tcp(b""));
    v.resize(60, 0xee);
    assert_eq!(decode_one(LinkType::Ethernet, &v).unwrap().payload, b"");

    let mut v = ethernet(0x86dd, &ipv6_udp(b"x"));
    v.extend([0xee; 8]);
    assert_eq!(decode_one(LinkType::Ethernet, &v).unwrap().payload, b"x");
}

#[test]
fn vlan_and_qinq() {
    let ip = ipv4_tcp(b"tagged");
    for tags in [
        vec![0x8100u16],
        vec![0x88a8, 0x8100],
        vec![0x9100, 0x8100],
        vec![0x8100, 0x8100, 0x8100],
    ] {
        let mut v = Vec::new();
        v.extend(MAC_B);
        v.extend(MAC_A);
        for t in &tags {
            v.extend(t.to_be_bytes());
            v.extend(42u16.to_be_bytes()); // TCI
        }
        v.extend(0x0800u16.to_be_bytes());
        v.extend(&ip);
        assert_eq!(
            decode_one(LinkType::Ethernet, &v),
            Ok(tcp_expect(b"tagged")),
            "{tags:x?}"
        );
    }
    // etherparse's own VLAN builder agrees.
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(
            etherparse::VlanId::try_new(1).unwrap(),
            etherparse::VlanId::try_new(2).unwrap(),
        )
        .ipv4(V4_A, V4_B, 64)
        .tcp(40000, 80, 1000, 512)
        .ack(77)
        .psh()
        .write(&mut v, b"q")
        .unwrap();
    assert_eq!(decode_one(LinkType::Ethernet, &v), Ok(tcp_expect(b"q")));
}

#[test]
fn linux_sll_and_sll2() {
    let ip = ipv4_tcp(b"cooked");
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
    sll.extend(0x0800u16.to_be_bytes());
    sll.extend(&ip);
    assert_eq!(
        decode_one(LinkType::LinuxSll, &sll),
        Ok(tcp_expect(b"cooked"))
    );

    let mut sll2 = Vec::new();
    sll2.extend(0x0800u16.to_be_bytes());
    sll2.extend([0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
    sll2.extend(&ip);
    assert_eq!(sll2.len(), 20 + ip.len());
    assert_eq!(
        decode_one(LinkType::LinuxSll2, &sll2),
        Ok(tcp_expect(b"cooked"))
    );

    // etherparse's SLL builder agrees.
    let mut v = Vec::new();
    PacketBuilder::linux_sll(
        etherparse::LinuxSllPacketType::OUTGOING,
        6,
        [1, 2, 3, 4, 5, 6, 0, 0],
    )
    .ipv4(V4_A, V4_B, 64)
    .tcp(40000, 80, 1000, 512)
    .ack(77)
    .psh()
    .write(&mut v, b"e")
    .unwrap();
    assert_eq!(decode_one(LinkType::LinuxSll, &v), Ok(tcp_expect(b"e")));

    // SLL carrying ARP is not TCP/UDP.
    let mut arp = sll.clone();
    arp[14..16].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(
        decode_one(LinkType::LinuxSll, &arp),
        Err(Some(DropReason::NotTcpUdp))
    );
}

#[test]
fn raw_ip_links() {
    let v4 = ipv4_tcp(b"raw");
    let v6 = ipv6_udp(b"raw6");
    assert_eq!(decode_one(LinkType::RawIp, &v4), Ok(tcp_expect(b"raw")));
    assert_eq!(decode_one(LinkType::Ipv4, &v4), Ok(tcp_expect(b"raw")));
    let got = decode_one(LinkType::RawIp, &v6).unwrap();
    assert_eq!(got.src, "[fd00::1]:5353");
    assert_eq!(got.payload, b"raw6");
    assert_eq!(decode_one(LinkType::Ipv6, &v6).unwrap().payload, b"raw6");
}

#[test]
fn null_and_loop_address_families() {
    let v4 = ipv4_tcp(b"lo");
    let v6 = ipv6_tcp(b"lo6");
    let with = |hdr: [u8; 4], ip: &[u8]| {
        let mut v = hdr.to_vec();
        v.extend(ip);
        v
    };
    // Null: host byte order, either way round.
    assert_eq!(
        decode_one(LinkType::Null, &with(2u32.to_le_bytes(), &v4)),
        Ok(tcp_expect(b"lo"))
    );
    assert_eq!(
        decode_one(LinkType::Null, &with(2u32.to_be_bytes(), &v4)),
        Ok(tcp_expect(b"lo"))
    );
    for af in [24u32, 28, 30] {
        for hdr in [af.to_le_bytes(), af.to_be_bytes()] {
            let got = decode_one(LinkType::Null, &with(hdr, &v6)).unwrap();
            assert_eq!(got.payload, b"lo6");
        }
        let got = decode_one(LinkType::Loop, &with(af.to_be_bytes(), &v6)).unwrap();
        assert_eq!(got.dst, "[fd00::2]:443");
    }
    assert_eq!(
        decode_one(LinkType::Loop, &with(2u32.to_be_bytes(), &v4)),
        Ok(tcp_expect(b"lo"))
    );
    assert_eq!(
        decode_one(LinkType::Null, &with(7u32.to_le_bytes(), &v4)),
        Err(Some(DropReason::NotTcpUdp))
    );
}

#[test]
fn unsupported_non_ip_and_garbage() {
    let v4 = ipv4_tcp(b"x");
    assert_eq!(
        decode_one(LinkType::Other(147), &v4),
        Err(Some(DropReason::UnsupportedLinkType))
    );
    assert_eq!(
        decode_one(LinkType::Ethernet, &ethernet(0x0806, &[0; 28])),
        Err(Some(DropReason::NotTcpUdp))
    );
    assert_eq!(
        decode_one(LinkType::Ethernet, &[0; 10]),
        Err(Some(DropReason::Undecodable))
    );
    assert_eq!(
        decode_one(LinkType::Ethernet, &ethernet(0x0800, &[0x45, 0, 0])),
        Err(Some(DropReason::Undecodable))
    );
    assert_eq!(
        decode_one(LinkType::RawIp, &[0x75; 40]),
        Err(Some(DropReason::Undecodable))
    );
    // ICMP echo.
    let mut icmp = Vec::new();
    PacketBuilder::ipv4(V4_A, V4_B, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut icmp, b"ping")
        .unwrap();
    assert_eq!(
        decode_one(LinkType::RawIp, &icmp),
        Err(Some(DropReason::NotTcpUdp))
    );
}

#[test]
fn mpls_and_pppoe() {
    let ip = ipv4_tcp(b"m");
    let mut mpls = vec![0, 1, 0x10, 64, 0, 2, 0x11, 64]; // two labels, S on the second
    mpls.extend(&ip);
    assert_eq!(
        decode_one(LinkType::Ethernet, &ethernet(0x8847, &mpls)),
        Ok(tcp_expect(b"m"))
    );
    let mut pppoe = vec![0x11, 0, 0, 1, 0, 0, 0x00, 0x21];
    pppoe.extend(&ip);
    assert_eq!(
        decode_one(LinkType::Ethernet, &ethernet(0x8864, &pppoe)),
        Ok(tcp_expect(b"m"))
    );
}

/// Inserts raw IPv6 extension headers (each given as (type, bytes)) after the fixed header.
fn with_v6_extensions(packet: &[u8], exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = packet[..40].to_vec();
    let upper = packet[6];
    let mut chain = Vec::new();
    for (i, (_, body)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map(|e| e.0).unwrap_or(upper);
        let mut b = body.clone();
        b[0] = next;
        chain.extend(b);
    }
    out[6] = exts[0].0;
    let plen = (packet.len() - 40 + chain.len()) as u16;
    out[4..6].copy_from_slice(&plen.to_be_bytes());
    out.extend(chain);
    out.extend(&packet[40..]);
    out
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let base = ipv6_tcp(b"ext");
    let hop = vec![0, 0, 1, 4, 0, 0, 0, 0]; // 8 bytes, PadN
    let dst = {
        let mut b = vec![0, 1]; // 16 bytes
        b.resize(16, 0);
        b[2] = 1;
        b[3] = 12;
        b
    };
    let routing = vec![0, 0, 0, 0, 0, 0, 0, 0]; // type 0, segments left 0
    let atomic_frag = vec![0, 0, 0, 0, 0, 0, 0, 9]; // offset 0, M=0
    let ah = {
        let mut b = vec![0, 2]; // (2+2)*4 = 16 bytes
        b.resize(16, 0);
        b
    };
    let pkt = with_v6_extensions(
        &base,
        &[
            (0, hop),
            (60, dst),
            (43, routing),
            (44, atomic_frag),
            (51, ah),
        ],
    );
    let got = decode_one(LinkType::RawIp, &pkt).unwrap();
    assert_eq!(got.payload, b"ext");
    assert!(matches!(
        got.l4,
        L4::Tcp {
            flags: TcpFlags { syn: true, .. },
            seq: 5,
            ..
        }
    ));

    // "No next header" is not TCP/UDP.
    let mut none = base[..40].to_vec();
    none[6] = 59;
    none[4..6].copy_from_slice(&0u16.to_be_bytes());
    assert_eq!(
        decode_one(LinkType::RawIp, &none),
        Err(Some(DropReason::NotTcpUdp))
    );
}

#[test]
fn snaplen_cut_delivers_what_was_captured() {
    let full = ethernet(0x0800, &ipv4_tcp(&[7; 100]));
    let cut = &full[..full.len() - 40];
    let mut d = decoder();
    let mut f = frame(LinkType::Ethernet, cut);
    f.wire_len = full.len() as u32;
    match d.decode(&f) {
        Decoded::Packet(p) => {
            assert_eq!(p.payload, &[7; 60][..]);
            assert_eq!(p.wire_len, full.len() as u32);
        }
        other => panic!("{other:?}"),
    }
    // Cut inside the TCP header: nothing usable.
    let f = frame(LinkType::Ethernet, &full[..14 + 20 + 10]);
    assert!(matches!(
        d.decode(&f),
        Decoded::Skipped(DropReason::Truncated)
    ));
    let s = d.stats();
    assert_eq!(s.truncated_frames, 1);
    assert_eq!(s.packets, 2);
    assert_eq!(s.decoded, 1);
    assert_eq!(s.drops.get(DropReason::Truncated), 1);
}

// ---------- fragments ----------

/// Splits an IPv4 packet (20-byte header) into fragments at the given payload offsets
/// (multiples of 8).
fn fragment_v4(packet: &[u8], id: u16, cuts: &[usize]) -> Vec<Vec<u8>> {
    let payload = &packet[20..];
    let mut bounds = vec![0];
    bounds.extend(cuts);
    bounds.push(payload.len());
    bounds
        .windows(2)
        .map(|w| fragment_v4_piece(packet, id, w[0], &payload[w[0]..w[1]], w[1] < payload.len()))
        .collect()
}

fn fragment_v4_piece(packet: &[u8], id: u16, offset: usize, data: &[u8], more: bool) -> Vec<u8> {
    let mut h = packet[..20].to_vec();
    h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let flags = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    h.extend(data);
    h
}

fn fragment_v6(packet: &[u8], id: u32, cuts: &[usize]) -> Vec<Vec<u8>> {
    let payload = &packet[40..];
    let upper = packet[6];
    let mut bounds = vec![0];
    bounds.extend(cuts);
    bounds.push(payload.len());
    bounds
        .windows(2)
        .map(|w| {
            let data = &payload[w[0]..w[1]];
            let more = w[1] < payload.len();
            let mut h = packet[..40].to_vec();
            h[6] = 44;
            h[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
            h.push(upper);
            h.push(0);
            let off = ((w[0] / 8) as u16) << 3 | more as u16;
            h.extend(off.to_be_bytes());
            h.extend(id.to_be_bytes());
            h.extend(data);
            h
        })
        .collect()
}

fn payload_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// Feeds frames, returning what came out of each.
fn feed(d: &mut Decoder, frames: &[Vec<u8>], ts: i64) -> Vec<Result<Got, Option<DropReason>>> {
    frames
        .iter()
        .map(|f| owned(d.decode(&frame_at(LinkType::RawIp, f, ts))))
        .collect()
}

#[test]
fn fragments_in_order() {
    let data = payload_bytes(3000);
    let frags = fragment_v4(&ipv4_udp(&data), 7, &[1480, 2960]);
    let mut d = decoder();
    let out = feed(&mut d, &frags, 1);
    assert_eq!(out[0], Err(None));
    assert_eq!(out[1], Err(None));
    let got = out[2].as_ref().unwrap();
    assert_eq!(got.payload, data);
    assert_eq!(got.src, "10.0.0.1:5353");
    let s = d.stats();
    assert_eq!(s.fragments_reassembled, 1);
    assert_eq!((s.packets, s.decoded), (3, 1));
    assert_eq!(d.pending_fragments(), (0, 0));
}

#[test]
fn fragments_out_of_order_and_tcp() {
    let data = payload_bytes(2000);
    let frags = fragment_v4(&ipv4_tcp(&data), 9, &[800, 1600]);
    let mut d = decoder();
    let order = [frags[2].clone(), frags[0].clone(), frags[1].clone()];
    let out = feed(&mut d, &order, 1);
    assert_eq!(out[..2], [Err(None), Err(None)]);
    assert_eq!(out[2], Ok(tcp_expect(&data)));
}

#[test]
fn overlapping_fragments_first_copy_wins() {
    let data = payload_bytes(64);
    let packet = ipv4_udp(&data);
    let udp = &packet[20..]; // 8-byte UDP header + 64 bytes
    let mut d = decoder();
    let a = fragment_v4_piece(&packet, 3, 0, &udp[..40], true);
    // Overlaps [24, 56) with different bytes: the first copy of [24, 40) must win.
    let mut conflicting = udp[24..56].to_vec();
    for b in &mut conflicting[..16] {
        *b ^= 0xff;
    }
    let b = fragment_v4_piece(&packet, 3, 24, &conflicting, true);
    let c = fragment_v4_piece(&packet, 3, 48, &udp[48..], false);
    let out = feed(&mut d, &[a, b, c], 1);
    assert_eq!(out[2].as_ref().unwrap().payload, data);
}

#[test]
fn duplicate_fragments_are_harmless() {
    let data = payload_bytes(100);
    let frags = fragment_v4(&ipv4_udp(&data), 5, &[56]);
    let mut d = decoder();
    let out = feed(
        &mut d,
        &[frags[0].clone(), frags[0].clone(), frags[1].clone()],
        1,
    );
    assert_eq!(out[2].as_ref().unwrap().payload, data);
    // A duplicate after completion starts a new datagram that times out later.
    let out = feed(&mut d, &[frags[1].clone()], 2);
    assert_eq!(out[0], Err(None));
}

#[test]
fn fragments_time_out() {
    let cfg = DecodeConfig {
        fragment_timeout_us: 1_000,
        ..DecodeConfig::default()
    };
    let mut d = Decoder::new(cfg);
    let data = payload_bytes(100);
    let frags = fragment_v4(&ipv4_udp(&data), 5, &[56]);
    assert_eq!(feed(&mut d, &frags[..1], 10_000), vec![Err(None)]);
    // The rest arrives too late: the first part is gone, so the second is held alone.
    assert_eq!(feed(&mut d, &frags[1..], 20_000), vec![Err(None)]);
    let s = d.stats();
    assert_eq!(s.drops.get(DropReason::FragmentLimit), 1);
    assert_eq!(s.fragments_reassembled, 0);
    assert_eq!(d.pending_fragments().0, 1);
}

#[test]
fn fragment_datagram_limit_evicts_oldest() {
    let cfg = DecodeConfig {
        max_fragment_datagrams: 2,
        ..DecodeConfig::default()
    };
    let mut d = Decoder::new(cfg);
    let data = payload_bytes(100);
    let packet = ipv4_udp(&data);
    let firsts: Vec<_> = (0..3u16)
        .map(|id| fragment_v4(&packet, id, &[56]))
        .collect();
    for (i, f) in firsts.iter().enumerate() {
        assert_eq!(feed(&mut d, &f[..1], i as i64), vec![Err(None)]);
    }
    assert_eq!(d.pending_fragments().0, 2);
    assert_eq!(d.stats().drops.get(DropReason::FragmentLimit), 1);
    // id 0 was evicted; ids 1 and 2 still complete.
    assert_eq!(feed(&mut d, &firsts[0][1..], 5), vec![Err(None)]);
    assert!(feed(&mut d, &firsts[2][1..], 5)[0].is_ok());
}

#[test]
fn fragment_byte_limit() {
    let cfg = DecodeConfig {
        max_pending_fragments_bytes: 1000,
        ..DecodeConfig::default()
    };
    let mut d = Decoder::new(cfg);
    let data = payload_bytes(3000);
    let frags = fragment_v4(&ipv4_udp(&data), 1, &[800, 1600]);
    let out = feed(&mut d, &frags, 1);
    assert_eq!(out[0], Err(None));
    // Second fragment would need 1600 bytes: the datagram is given up.
    assert_eq!(out[1], Err(Some(DropReason::FragmentLimit)));
    // The last one alone would need 3008 bytes of buffer.
    assert_eq!(out[2], Err(Some(DropReason::FragmentLimit)));
    assert!(d.pending_fragments().1 <= 1000);
    let s = d.stats();
    assert_eq!(s.drops.get(DropReason::FragmentLimit), 3);
    assert_eq!(s.fragments_reassembled, 0);

    // Many small datagrams never exceed the budget.
    let small = ipv4_udp(&payload_bytes(200));
    for id in 0..100u16 {
        let f = fragment_v4(&small, 100 + id, &[104]);
        feed(&mut d, &f[..1], 2);
        assert!(d.pending_fragments().1 <= 1000);
    }
}

#[test]
fn icmp_fragments_are_not_held() {
    let mut icmp = Vec::new();
    PacketBuilder::ipv4(V4_A, V4_B, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut icmp, &[0; 100])
        .unwrap();
    let frags = fragment_v4(&icmp, 1, &[56]);
    let mut d = decoder();
    assert_eq!(
        feed(&mut d, &frags[..1], 1),
        vec![Err(Some(DropReason::NotTcpUdp))]
    );
    assert_eq!(d.pending_fragments(), (0, 0));
}

#[test]
fn ipv6_fragments() {
    let data = payload_bytes(3000);
    let frags = fragment_v6(&ipv6_udp(&data), 0xdead_beef, &[1232, 2464]);
    let mut d = decoder();
    let order = [frags[1].clone(), frags[2].clone(), frags[0].clone()];
    let out = feed(&mut d, &order, 1);
    assert_eq!(out[..2], [Err(None), Err(None)]);
    let got = out[2].as_ref().unwrap();
    assert_eq!(got.payload, data);
    assert_eq!(got.src, "[fd00::1]:5353");
}

#[test]
fn inconsistent_fragment_lengths_are_undecodable() {
    let data = payload_bytes(200);
    let packet = ipv4_udp(&data);
    let frags = fragment_v4(&packet, 2, &[104]);
    let mut d = decoder();
    feed(&mut d, &frags[1..], 1); // last fragment: total = 208
    let beyond = fragment_v4_piece(&packet, 2, 208, &[0; 16], true);
    assert_eq!(
        feed(&mut d, &[beyond], 1),
        vec![Err(Some(DropReason::Undecodable))]
    );
    assert_eq!(d.pending_fragments(), (0, 0));
}

// ---------- robustness ----------

const LINKS: [LinkType; 9] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Other(9),
];

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn random_bytes_never_panic(link in 0usize..LINKS.len(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut d = decoder();
        let f = frame(LINKS[link], &bytes);
        let _ = d.decode(&f);
    }

    #[test]
    fn mutated_ip_never_panics(
        v6 in any::<bool>(),
        flips in proptest::collection::vec((0usize..120, any::<u8>()), 1..6),
        cut in 0usize..200,
    ) {
        let mut d = Decoder::new(DecodeConfig { max_pending_fragments_bytes: 4096, max_fragment_datagrams: 4, fragment_timeout_us: 100 });
        let base = if v6 { ipv6_tcp(&payload_bytes(80)) } else { ipv4_udp(&payload_bytes(80)) };
        for round in 0..8i64 {
            let mut p = base.clone();
            for &(at, v) in &flips {
                let at = (at + round as usize * 13) % p.len();
                p[at] ^= v;
            }
            p.truncate(cut.max(1).min(p.len()));
            let f = frame_at(LinkType::RawIp, &p, round * 60);
            let _ = d.decode(&f);
            let (_, bytes) = d.pending_fragments();
            prop_assert!(bytes <= 4096);
        }
    }

    #[test]
    fn random_fragments_reassemble_any_order(seed in any::<u64>(), n in 1usize..12) {
        let data = payload_bytes(n * 64 + 5);
        let packet = ipv4_udp(&data);
        let cuts: Vec<usize> = (1..n).map(|i| i * 64).collect();
        let mut frags = fragment_v4(&packet, 77, &cuts);
        // Fisher-Yates with a small LCG.
        let mut s = seed;
        for i in (1..frags.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            frags.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut d = decoder();
        let out = feed(&mut d, &frags, 1);
        prop_assert_eq!(&out.last().unwrap().as_ref().unwrap().payload, &data);
        prop_assert!(out[..out.len() - 1].iter().all(|o| *o == Err(None)));
    }
}

// ---------- real captures ----------

#[test]
fn real_captures_decode_without_undecodable_frames() {
    for dir in [
        "/work/shared/captures/generated",
        "/work/shared/captures/public",
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let mut r = CaptureReader::open(&path).unwrap();
            let mut d = decoder();
            let mut tcp_udp = 0;
            while let Some(f) = r.next_frame() {
                let f = f.unwrap();
                if let Decoded::Packet(p) = d.decode(&f) {
                    assert!(matches!(p.src.ip, IpAddr::V4(_) | IpAddr::V6(_)));
                    tcp_udp += 1;
                }
            }
            let s = d.stats();
            eprintln!("{}: {s:?}", path.display());
            assert_eq!(
                s.drops.get(DropReason::Undecodable),
                0,
                "{}",
                path.display()
            );
            assert_eq!(
                s.drops.get(DropReason::UnsupportedLinkType),
                0,
                "{}",
                path.display()
            );
            assert!(tcp_udp > 0, "{}", path.display());
            assert_eq!(s.packets, r.frames());
        }
    }
}

/// Our hand-written header parsing agrees with etherparse on every real frame.
#[test]
fn real_captures_agree_with_etherparse() {
    use etherparse::{SlicedPacket, TransportSlice};
    for dir in [
        "/work/shared/captures/generated",
        "/work/shared/captures/public",
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let mut r = CaptureReader::open(&path).unwrap();
            let mut d = decoder();
            let mut compared = 0;
            while let Some(f) = r.next_frame() {
                let f = f.unwrap();
                let theirs = match f.link {
                    LinkType::Ethernet => SlicedPacket::from_ethernet(f.data),
                    LinkType::Null | LinkType::Loop => SlicedPacket::from_ip(&f.data[4..]),
                    LinkType::LinuxSll => SlicedPacket::from_linux_sll(f.data),
                    _ => SlicedPacket::from_ip(f.data),
                };
                let Ok(theirs) = theirs else { continue };
                let expected = match theirs.transport {
                    Some(TransportSlice::Tcp(t)) => Some((
                        t.source_port(),
                        t.destination_port(),
                        t.sequence_number(),
                        t.payload(),
                    )),
                    Some(TransportSlice::Udp(u)) => {
                        Some((u.source_port(), u.destination_port(), 0, u.payload()))
                    }
                    _ => None,
                };
                match (d.decode(&f), expected) {
                    (Decoded::Packet(p), Some((sp, dp, seq, payload))) => {
                        assert_eq!((p.src.port, p.dst.port), (sp, dp), "{}", path.display());
                        if let L4::Tcp { seq: s, .. } = p.l4 {
                            assert_eq!(s, seq);
                        }
                        assert_eq!(p.payload, payload, "{}", path.display());
                        compared += 1;
                    }
                    (Decoded::Skipped(DropReason::NotTcpUdp), None) => {}
                    (ours, theirs) => panic!("{}: {ours:?} vs {theirs:?}", path.display()),
                }
            }
            assert!(compared > 0, "{}", path.display());
        }
    }
}

#[test]
fn decoder_can_move_to_another_thread() {
    fn is_send<T: Send>() {}
    is_send::<Decoder>();
}
