//! Vocabulary shared by every stage of the pipeline.
//!
//! Architecture invariant: this crate knows nothing about protocols above L4,
//! nothing about files or sockets, and allocates nothing per packet.

use std::fmt;
use std::net::IpAddr;

mod counters;
pub mod fanout;
pub use counters::{Counter, DropReason, Drops};

/// Capture time in microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// 0000-01-01T00:00:00Z: the earliest time RFC 3339 writes.
    pub const EARLIEST: Timestamp = Timestamp(-62_167_219_200_000_000);
    /// 9999-12-31T23:59:59.999999Z: the latest.
    pub const LATEST: Timestamp = Timestamp(253_402_300_799_999_999);

    /// The wall clock (0 before the epoch).
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }

    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }
    pub const fn micros(self) -> i64 {
        self.0
    }
    pub fn from_secs_frac(secs: i64, micros: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
    }
    /// `self - earlier` in microseconds, never negative.
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0).max(0) as u64
    }
    pub fn add_micros(self, us: i64) -> Self {
        Timestamp(self.0.saturating_add(us))
    }
}

/// Which way bytes travel within a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the client (the side that opened the flow) to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::ToServer, Direction::ToClient];

    pub fn reverse(self) -> Self {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
    /// 0 for `ToServer`, 1 for `ToClient`: index into per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// An IP address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Endpoint { ip, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// Direction-free identity of an L4 flow: the two endpoints in canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub transport: Transport,
    /// The smaller endpoint.
    pub lo: Endpoint,
    /// The larger endpoint.
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key of the flow a packet from `src` to `dst` belongs to, whichever way it goes.
    pub fn new(transport: Transport, src: Endpoint, dst: Endpoint) -> Self {
        if src <= dst {
            FlowKey {
                transport,
                lo: src,
                hi: dst,
            }
        } else {
            FlowKey {
                transport,
                lo: dst,
                hi: src,
            }
        }
    }

    /// A hash that is the same for both directions and stable across runs and
    /// machines, used to shard flows across worker threads.
    pub fn symmetric_hash(&self) -> u64 {
        symmetric_hash(self.transport, &self.lo, &self.hi)
    }
}

/// [`FlowKey::symmetric_hash`] of the flow between `a` and `b`, either way
/// round. Each endpoint is hashed on its own and the two are added, so it
/// needs no canonical order: the reader runs it on every packet, where
/// ordering the endpoints (comparing addresses) cost as much as the hash.
pub fn symmetric_hash(transport: Transport, a: &Endpoint, b: &Endpoint) -> u64 {
    // Word-wise multiply-xorshift, then a 64-bit finaliser so the low bits
    // that pick a shard are well mixed. Stable, unlike std's RandomState;
    // it eats words, not bytes.
    #[inline]
    fn mix(h: u64, word: u64) -> u64 {
        let x = (h ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 32)
    }
    #[inline]
    fn endpoint(ep: &Endpoint) -> u64 {
        let h = match ep.ip {
            IpAddr::V4(ip) => mix(4, u64::from(u32::from(ip))),
            IpAddr::V6(ip) => {
                let v = u128::from(ip);
                mix(mix(6, v as u64), (v >> 64) as u64)
            }
        };
        mix(h, u64::from(ep.port))
    }
    let mut h = (transport as u64) ^ endpoint(a).wrapping_add(endpoint(b));
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 29)
}

/// TCP header bits the flow tracker needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

/// The L4 part of a decoded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        window: u16,
    },
    Udp,
}

impl L4 {
    pub fn transport(&self) -> Transport {
        match self {
            L4::Tcp { .. } => Transport::Tcp,
            L4::Udp => Transport::Udp,
        }
    }
}

/// A decoded TCP or UDP packet. `payload` borrows from the captured frame (or
/// from the defragmentation buffer); nothing is copied to build it.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub ts: Timestamp,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub l4: L4,
    pub payload: &'a [u8],
    /// Frame length on the wire (may exceed what was captured).
    pub wire_len: u32,
}

impl Packet<'_> {
    pub fn flow_key(&self) -> FlowKey {
        FlowKey::new(self.l4.transport(), self.src, self.dst)
    }

    /// `self.flow_key().symmetric_hash()`, without building the key.
    #[inline]
    pub fn flow_hash(&self) -> u64 {
        symmetric_hash(self.l4.transport(), &self.src, &self.dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(a: u8, port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)), port)
    }

    #[test]
    fn flow_key_is_the_same_both_ways() {
        let k1 = FlowKey::new(Transport::Tcp, ep(1, 40000), ep(2, 80));
        let k2 = FlowKey::new(Transport::Tcp, ep(2, 80), ep(1, 40000));
        assert_eq!(k1, k2);
        assert_eq!(k1.symmetric_hash(), k2.symmetric_hash());
    }

    #[test]
    fn symmetric_hash_spreads_similar_flows_evenly() {
        // Real captures are many clients on nearby ports to one server: the
        // shard picked from the hash's low bits must still spread them.
        for shards in 2..=8u64 {
            let mut count = vec![0u32; shards as usize];
            for i in 0..12_000u32 {
                let client = ep(1 + (i % 7) as u8, 32768 + (i as u16));
                let k = FlowKey::new(Transport::Tcp, client, ep(2, 80));
                count[(k.symmetric_hash() % shards) as usize] += 1;
            }
            let even = 12_000 / shards as u32;
            for c in &count {
                assert!(c.abs_diff(even) < even / 10, "{shards} shards: {count:?}");
            }
        }
    }

    #[test]
    fn a_packets_flow_hash_is_its_keys() {
        let (a, b) = (ep(1, 40000), ep(2, 80));
        for (src, dst) in [(a, b), (b, a)] {
            let pkt = Packet {
                ts: Timestamp::default(),
                src,
                dst,
                l4: L4::Udp,
                payload: &[],
                wire_len: 0,
            };
            assert_eq!(pkt.flow_hash(), pkt.flow_key().symmetric_hash());
        }
        let v6 = Endpoint::new("2001:db8::1".parse().unwrap(), 80);
        assert_ne!(
            FlowKey::new(Transport::Tcp, a, v6).symmetric_hash(),
            FlowKey::new(Transport::Tcp, a, b).symmetric_hash()
        );
    }

    #[test]
    fn transport_separates_flows() {
        let t = FlowKey::new(Transport::Tcp, ep(1, 53), ep(2, 53));
        let u = FlowKey::new(Transport::Udp, ep(1, 53), ep(2, 53));
        assert_ne!(t, u);
        assert_ne!(t.symmetric_hash(), u.symmetric_hash());
    }

    #[test]
    fn endpoint_display_brackets_ipv6() {
        let e = Endpoint::new("::1".parse().unwrap(), 6379);
        assert_eq!(e.to_string(), "[::1]:6379");
        assert_eq!(ep(1, 80).to_string(), "10.0.0.1:80");
    }
}
