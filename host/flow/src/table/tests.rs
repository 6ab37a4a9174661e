use super::*;
use proptest::prelude::*;
use proptest::sample::Index;
use remora_core::TcpFlags;
use std::collections::HashMap as StdMap;
use std::net::{IpAddr, Ipv4Addr};

fn ep(a: u8, port: u16) -> Endpoint {
    Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)), port)
}

const CLI: (u8, u16) = (1, 40000);
const SRV: (u8, u16) = (2, 80);

fn e(x: (u8, u16)) -> Endpoint {
    ep(x.0, x.1)
}

/// Owned copy of a `FlowEvent`, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Open {
        id: FlowId,
        client: Endpoint,
        server: Endpoint,
        syn_seen: bool,
    },
    Data(FlowId, Direction, u64, Vec<u8>),
    Gap(FlowId, Direction, u64, u64),
    Dgram(FlowId, Direction, Vec<u8>),
    End(FlowId, Direction),
    Close(FlowId, CloseReason, FlowStats),
}

impl Ev {
    fn of(e: &FlowEvent<'_>) -> Ev {
        match *e {
            FlowEvent::Open { flow } => Ev::Open {
                id: flow.id,
                client: flow.client,
                server: flow.server,
                syn_seen: flow.syn_seen,
            },
            FlowEvent::Data {
                flow,
                dir,
                offset,
                data,
                ..
            } => Ev::Data(flow.id, dir, offset, data.to_vec()),
            FlowEvent::Gap {
                flow,
                dir,
                offset,
                len,
                ..
            } => Ev::Gap(flow.id, dir, offset, len),
            FlowEvent::Datagram {
                flow, dir, data, ..
            } => Ev::Dgram(flow.id, dir, data.to_vec()),
            FlowEvent::End { flow, dir, .. } => Ev::End(flow.id, dir),
            FlowEvent::Close {
                flow,
                reason,
                stats,
                ..
            } => Ev::Close(flow.id, reason, stats),
        }
    }
    fn id(&self) -> FlowId {
        match *self {
            Ev::Open { id, .. } => id,
            Ev::Data(id, ..)
            | Ev::Gap(id, ..)
            | Ev::Dgram(id, ..)
            | Ev::End(id, ..)
            | Ev::Close(id, ..) => id,
        }
    }
}

/// Per-flow lifecycle state, checked on every event.
#[derive(Default)]
struct Life {
    closed: bool,
    ended: [bool; 2],
    next_off: [u64; 2],
}

/// Checks the event-order invariants across everything a table emitted.
#[derive(Default)]
struct Checker {
    flows: StdMap<FlowId, Life>,
}

impl Checker {
    fn check(&mut self, ev: &Ev) {
        if let Ev::Open { id, .. } = ev {
            let prev = self.flows.insert(*id, Life::default());
            assert!(prev.is_none_or(|l| l.closed), "flow {id} opened twice");
            return;
        }
        let id = ev.id();
        let life = self
            .flows
            .get_mut(&id)
            .unwrap_or_else(|| panic!("{ev:?} before Open"));
        assert!(!life.closed, "{ev:?} after Close");
        match *ev {
            Ev::Data(_, dir, off, ref data) => {
                let d = dir.index();
                assert!(!life.ended[d], "{ev:?} after End");
                assert!(!data.is_empty(), "empty Data");
                assert_eq!(off, life.next_off[d], "Data offsets not contiguous");
                life.next_off[d] += data.len() as u64;
            }
            Ev::Gap(_, dir, off, len) => {
                let d = dir.index();
                assert!(!life.ended[d], "{ev:?} after End");
                assert!(len > 0);
                assert_eq!(off, life.next_off[d], "Gap offsets not contiguous");
                life.next_off[d] += len;
            }
            Ev::Dgram(_, dir, _) => assert!(!life.ended[dir.index()]),
            Ev::End(_, dir) => {
                assert!(!life.ended[dir.index()], "End twice");
                life.ended[dir.index()] = true;
            }
            Ev::Close(..) => {
                assert!(life.ended.iter().all(|&x| x), "Close before End");
                life.closed = true;
            }
            Ev::Open { .. } => unreachable!(),
        }
    }
}

struct T {
    t: FlowTable,
    evs: Vec<Ev>,
    checker: Checker,
    n: u64,
}

fn flags(f: &str) -> TcpFlags {
    TcpFlags {
        syn: f.contains('S'),
        ack: f.contains('A'),
        fin: f.contains('F'),
        rst: f.contains('R'),
        psh: f.contains('P'),
    }
}

impl T {
    fn new(cfg: FlowConfig) -> Self {
        T {
            t: FlowTable::new(cfg),
            evs: Vec::new(),
            checker: Checker::default(),
            n: 0,
        }
    }

    fn sink<'a>(evs: &'a mut Vec<Ev>, ck: &'a mut Checker) -> impl FnMut(FlowEvent<'_>) + 'a {
        move |ev| {
            let ev = Ev::of(&ev);
            ck.check(&ev);
            evs.push(ev);
        }
    }

    fn pkt(&mut self, ts: i64, src: Endpoint, dst: Endpoint, l4: L4, data: &[u8]) {
        let p = Packet {
            ts: Timestamp(ts),
            src,
            dst,
            l4,
            payload: data,
            wire_len: 54 + data.len() as u32,
        };
        self.n += 1;
        let mut sink = Self::sink(&mut self.evs, &mut self.checker);
        self.t.process(&p, self.n, &mut sink);
    }

    fn tcp(&mut self, ts: i64, src: (u8, u16), dst: (u8, u16), seq: u32, f: &str, data: &[u8]) {
        let l4 = L4::Tcp {
            seq,
            ack: 0,
            flags: flags(f),
            window: 65535,
        };
        self.pkt(ts, e(src), e(dst), l4, data);
    }

    fn udp(&mut self, ts: i64, src: (u8, u16), dst: (u8, u16), data: &[u8]) {
        self.pkt(ts, e(src), e(dst), L4::Udp, data);
    }

    fn advance(&mut self, now: i64) {
        let mut sink = Self::sink(&mut self.evs, &mut self.checker);
        self.t.advance(Timestamp(now), &mut sink);
    }

    fn finish(&mut self) {
        let mut sink = Self::sink(&mut self.evs, &mut self.checker);
        self.t.finish(&mut sink);
        assert!(self.t.is_empty());
        assert!(self.t.holey.is_empty());
        assert_eq!(self.t.counters().buffered_bytes, 0);
    }

    fn take(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.evs)
    }

    /// Client SYN with ISN 1000, server SYN-ACK with ISN 5000, as packet 1 and 2.
    fn handshake(&mut self) {
        self.tcp(0, CLI, SRV, 1000, "S", b"");
        self.tcp(1, SRV, CLI, 5000, "SA", b"");
        self.tcp(2, CLI, SRV, 1001, "A", b"");
    }
}

use Direction::{ToClient as TC, ToServer as TS};

fn data(id: FlowId, dir: Direction, off: u64, s: &str) -> Ev {
    Ev::Data(id, dir, off, s.as_bytes().to_vec())
}

fn closes(evs: &[Ev]) -> Vec<(FlowId, CloseReason)> {
    evs.iter()
        .filter_map(|e| match *e {
            Ev::Close(id, r, _) => Some((id, r)),
            _ => None,
        })
        .collect()
}

#[test]
fn syn_sender_is_the_client_and_open_comes_first() {
    let mut t = T::new(FlowConfig::default());
    t.handshake();
    t.tcp(3, CLI, SRV, 1001, "PA", b"GET /");
    assert_eq!(
        t.take(),
        vec![
            Ev::Open {
                id: 1,
                client: e(CLI),
                server: e(SRV),
                syn_seen: true
            },
            data(1, TS, 0, "GET /"),
        ]
    );
}

#[test]
fn syn_ack_seen_first_makes_its_destination_the_client() {
    let mut t = T::new(FlowConfig::default());
    // A server on a high port answering a client on a low one: only the
    // SYN-ACK can tell.
    t.tcp(0, (2, 50000), (1, 80), 9, "SA", b"");
    t.tcp(1, (1, 80), (2, 50000), 101, "A", b"hi");
    assert_eq!(
        t.take(),
        vec![
            Ev::Open {
                id: 1,
                client: ep(1, 80),
                server: ep(2, 50000),
                syn_seen: true
            },
            data(1, TS, 0, "hi"),
        ]
    );
}

/// The server of each flow the table opened, in order.
fn servers(t: &mut T) -> Vec<u16> {
    t.take()
        .into_iter()
        .filter_map(|ev| match ev {
            Ev::Open {
                server, syn_seen, ..
            } => {
                assert!(!syn_seen);
                Some(server.port)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn port_heuristic_picks_the_tcp_server_without_a_syn() {
    let cases = [
        // (src port, dst port, server port)
        (40000, 80, 80),
        (80, 40000, 80),
        (55000, 8080, 8080), // only 8080 is non-ephemeral
        (8080, 55000, 8080),
        (30000, 6379, 6379), // both non-ephemeral: the lower
        (6379, 30000, 6379),
        (60001, 50000, 50000), // both ephemeral: the lower
    ];
    for (sp, dp, server) in cases {
        let mut t = T::new(FlowConfig::default());
        t.tcp(0, (1, sp), (2, dp), 7, "PA", b"x");
        assert_eq!(servers(&mut t), vec![server], "{sp} -> {dp}");
    }
}

#[test]
fn the_first_datagram_names_the_udp_client_unless_it_comes_from_a_well_known_port() {
    let cases = [
        // (first datagram's src port, dst port, server port)
        (40000, 53, 53),
        (53, 40000, 53),       // a reply seen first: 53 is well known
        (40000, 15353, 15353), // dnsmasq on a high port
        (40000, 53535, 53535), // a server above the client's port
        (53535, 40000, 40000), // the sender asks first
        (5353, 5353, 5353),    // mDNS: both ends alike
    ];
    for (sp, dp, server) in cases {
        let mut t = T::new(FlowConfig::default());
        t.udp(0, (3, sp), (4, dp), b"y");
        assert_eq!(servers(&mut t), vec![server], "{sp} -> {dp}");
    }
}

#[test]
fn mid_stream_pickup_starts_each_direction_at_offset_zero() {
    let mut t = T::new(FlowConfig::default());
    t.tcp(0, SRV, CLI, 3_000_000, "PA", b"HTTP/1.1 200");
    t.tcp(1, CLI, SRV, 123_456, "PA", b"GET /next");
    t.tcp(2, SRV, CLI, 3_000_012, "PA", b" OK");
    let evs = t.take();
    assert_eq!(
        evs[0],
        Ev::Open {
            id: 1,
            client: e(CLI),
            server: e(SRV),
            syn_seen: false
        }
    );
    assert_eq!(
        evs[1..],
        [
            data(1, TC, 0, "HTTP/1.1 200"),
            data(1, TS, 0, "GET /next"),
            data(1, TC, 12, " OK"),
        ]
    );
}

#[test]
fn both_directions_interleave_independently() {
    let mut t = T::new(FlowConfig::default());
    t.handshake();
    t.tcp(3, CLI, SRV, 1001, "PA", b"req1");
    t.tcp(4, SRV, CLI, 5005, "PA", b"sp1"); // out of order
    t.tcp(5, CLI, SRV, 1005, "PA", b"req2");
    t.tcp(6, SRV, CLI, 5001, "PA", b"resp");
    let evs: Vec<_> = t.take().into_iter().skip(1).collect();
    assert_eq!(
        evs,
        vec![
            data(1, TS, 0, "req1"),
            data(1, TS, 4, "req2"),
            data(1, TC, 0, "resp"),
            data(1, TC, 4, "sp1"),
        ]
    );
}

#[test]
fn retransmitted_segment_is_ignored() {
    let mut t = T::new(FlowConfig::default());
    t.handshake();
    t.tcp(3, CLI, SRV, 1001, "PA", b"abc");
    t.tcp(4, CLI, SRV, 1001, "PA", b"abc");
    t.tcp(5, CLI, SRV, 1004, "PA", b"d");
    let evs: Vec<_> = t.take().into_iter().skip(1).collect();
    assert_eq!(evs, vec![data(1, TS, 0, "abc"), data(1, TS, 3, "d")]);
    let c = t.t.counters();
    assert_eq!(c.retransmitted_bytes, 3);
    assert_eq!(c.payload_bytes, 7);
}

#[test]
fn out_of_order_data_waits_for_the_hole_and_is_tracked_as_holey() {
    let mut t = T::new(FlowConfig::default());
    t.handshake();
    t.tcp(3, CLI, SRV, 1004, "PA", b"def");
    assert_eq!(t.t.holey.len(), 1);
    assert_eq!(t.t.counters().buffered_bytes, 3);
    t.tcp(4, CLI, SRV, 1001, "PA", b"abc");
    assert!(t.t.holey.is_empty());
    let evs: Vec<_> = t.take().into_iter().skip(1).collect();
    assert_eq!(evs, vec![data(1, TS, 0, "abc"), data(1, TS, 3, "def")]);
    let c = t.t.counters();
    assert_eq!(
        (
            c.out_of_order_segments,
            c.buffered_bytes,
            c.buffered_bytes_peak
        ),
        (1, 0, 3)
    );
}

#[test]
fn hole_is_declared_a_gap_when_advance_passes_the_timeout() {
    let mut t = T::new(FlowConfig {
        gap_timeout_us: 500,
        ..FlowConfig::default()
    });
    t.handshake();
    t.tcp(10, CLI, SRV, 1001, "PA", b"ab");
    t.tcp(20, CLI, SRV, 1005, "PA", b"ef");
    t.take();
    t.advance(519);
    assert_eq!(t.take(), vec![]);
    t.advance(520);
    assert_eq!(t.take(), vec![Ev::Gap(1, TS, 2, 2), data(1, TS, 4, "ef")]);
    assert!(t.t.holey.is_empty());
    // The late bytes of the hole are old news now.
    t.tcp(600, CLI, SRV, 1003, "PA", b"cdEF");
    t.tcp(601, CLI, SRV, 1007, "PA", b"g");
    assert_eq!(t.take(), vec![data(1, TS, 6, "g")]);
    let c = t.t.counters();
    assert_eq!((c.gaps, c.gap_bytes), (1, 2));
}

#[test]
fn buffer_limit_per_direction_forces_a_gap() {
    let mut t = T::new(FlowConfig {
        max_buffered_per_direction: 10,
        ..FlowConfig::default()
    });
    t.handshake();
    t.tcp(3, CLI, SRV, 1002, "PA", b"bcdefgh"); // 7 buffered behind a 1-byte hole
    t.tcp(4, CLI, SRV, 1010, "PA", b"jklm"); // 11 > 10
    let evs: Vec<_> = t.take().into_iter().skip(1).collect();
    assert_eq!(evs, vec![Ev::Gap(1, TS, 0, 1), data(1, TS, 1, "bcdefgh")]);
    assert_eq!(t.t.counters().buffered_bytes, 4);
    t.finish();
    assert_eq!(
        t.take()[..2],
        [Ev::Gap(1, TS, 8, 1), data(1, TS, 9, "jklm")]
    );
}

#[test]
fn table_wide_buffer_limit_drops_out_of_order_bytes_and_counts_them() {
    let mut t = T::new(FlowConfig {
        max_buffered_total: 5,
        ..FlowConfig::default()
    });
    t.tcp(0, CLI, SRV, 1000, "S", b"");
    t.tcp(1, (3, 40001), SRV, 1000, "S", b"");
    t.tcp(2, CLI, SRV, 1005, "PA", b"efgh"); // flow 1 buffers 4
    t.tcp(3, (3, 40001), SRV, 1005, "PA", b"EFGH"); // flow 2 would exceed 5
    let c = t.t.counters();
    assert_eq!(c.buffered_bytes, 4);
    assert_eq!(c.drops.get(DropReason::ReassemblyLimit), 4);
}

#[test]
fn fin_in_both_directions_closes_the_flow() {
    let mut t = T::new(FlowConfig::default());
    t.handshake();
    t.tcp(3, CLI, SRV, 1001, "PA", b"bye");
    t.tcp(4, CLI, SRV, 1004, "FA", b"");
    t.tcp(5, SRV, CLI, 5001, "PFA", b"ok");
    t.tcp(6, CLI, SRV, 1005, "A", b""); // last ACK: must not open a new flow
    let evs: Vec<_> = t.take().into_iter().skip(1).collect();
    let stats = FlowStats {
        packets: [4, 2],
        bytes: [3, 2],
        last_seen: Timestamp(5),
    };
    assert_eq!(
        evs,
        vec![
            data(1, TS, 0, "bye"),
            Ev::End(1, TS),
            data(1, TC, 0, "ok"),
            Ev::End(1, TC),
            Ev::Close(1, CloseReason::Fin, stats),
        ]
    );
    let c = t.t.counters();
    assert_eq!(
        (c.flows_active, c.flows_closed.get(CloseReason::Fin)),
        (0, 1)
    );
    assert_eq!(c.packets, 7);
}

#[test]
fn new_syn_on_a_reused_four_tuple_starts_a_new_flow() {
    let mut t = T::new(FlowConfig::default());
    t.handshake();
    t.tcp(3, CLI, SRV, 1001, "FA", b"");
    // Server never finishes; the client reconnects from the same port.
    t.tcp(4, CLI, SRV, 777, "S", b"");
    t.tcp(5, CLI, SRV, 778, "PA", b"again");
    let evs = t.take();
    let opens: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, Ev::Open { .. }))
        .map(Ev::id)
        .collect();
    assert_eq!(opens, vec![1, 5]);
    assert_eq!(closes(&evs), vec![(1, CloseReason::Fin)]);
    assert_eq!(evs.last(), Some(&data(5, TS, 0, "again")));
    // After a full close the 4-tuple is free too.
    t.tcp(6, CLI, SRV, 783, "RA", b"");
    t.tcp(7, CLI, SRV, 9000, "S", b"");
    let evs = t.take();
    assert_eq!(closes(&evs), vec![(5, CloseReason::Rst)]);
    assert!(matches!(evs.last(), Some(Ev::Open { id: 8, .. })));
}

#[test]
fn rst_ends_both_directions_and_closes() {
    let mut t = T::new(FlowConfig::default());
    t.handshake();
    t.tcp(3, CLI, SRV, 1001, "PA", b"x");
    t.tcp(4, SRV, CLI, 5001, "RA", b"");
    let evs: Vec<_> = t.take().into_iter().skip(1).collect();
    assert_eq!(evs[0], data(1, TS, 0, "x"));
    assert_eq!(evs[1..3], [Ev::End(1, TS), Ev::End(1, TC)]);
    assert!(matches!(evs[3], Ev::Close(1, CloseReason::Rst, _)));
    assert_eq!(evs.len(), 4);
    assert!(t.t.is_empty());
    // A stray RST afterwards opens nothing.
    t.tcp(5, CLI, SRV, 1002, "R", b"");
    assert_eq!(t.take(), vec![]);
}

#[test]
fn idle_flows_expire_on_advance_in_id_order() {
    let mut t = T::new(FlowConfig {
        tcp_idle_timeout_us: 1000,
        udp_idle_timeout_us: 100,
        ..FlowConfig::default()
    });
    t.tcp(0, (5, 40000), SRV, 1, "PA", b"a"); // id 1
    t.udp(10, (6, 40000), (2, 53), b"q"); // id 2
    t.tcp(20, (4, 40000), SRV, 1, "PA", b"b"); // id 3
    t.tcp(30, (5, 40000), SRV, 2, "PA", b"c"); // id 1 active again
    t.take();
    t.advance(109);
    assert_eq!(t.take(), vec![]);
    t.advance(110);
    assert_eq!(closes(&t.take()), vec![(2, CloseReason::Idle)]);
    t.advance(1030);
    assert_eq!(
        closes(&t.take()),
        vec![(1, CloseReason::Idle), (3, CloseReason::Idle)]
    );
    assert_eq!(t.t.counters().flows_closed.get(CloseReason::Idle), 3);
}

#[test]
fn full_table_evicts_the_least_recently_active_flow_and_counts_it() {
    let mut t = T::new(FlowConfig {
        max_flows: 2,
        ..FlowConfig::default()
    });
    t.tcp(0, (1, 40000), SRV, 1, "PA", b"a"); // id 1
    t.udp(1, (1, 40001), (2, 53), b"q"); // id 2
    t.tcp(2, (1, 40000), SRV, 2, "PA", b"b"); // id 1 touched
    t.take();
    t.tcp(3, (3, 40000), SRV, 1, "PA", b"c"); // id 4 evicts id 2
    let evs = t.take();
    assert_eq!(closes(&evs), vec![(2, CloseReason::Evicted)]);
    assert!(matches!(evs.last(), Some(Ev::Data(4, ..))));
    let c = t.t.counters();
    assert_eq!(c.drops.get(DropReason::FlowTableFull), 1);
    assert_eq!((c.flows_opened, c.flows_active), (3, 2));
    assert_eq!(c.flows_closed.get(CloseReason::Evicted), 1);
}

#[test]
fn udp_packets_become_one_datagram_each() {
    let mut t = T::new(FlowConfig::default());
    t.udp(0, (1, 40000), (2, 53), b"query");
    t.udp(1, (2, 53), (1, 40000), b"answer");
    t.udp(2, (1, 40000), (2, 53), b"");
    t.finish();
    let stats = FlowStats {
        packets: [2, 1],
        bytes: [5, 6],
        last_seen: Timestamp(2),
    };
    assert_eq!(
        t.take(),
        vec![
            Ev::Open {
                id: 1,
                client: ep(1, 40000),
                server: ep(2, 53),
                syn_seen: false
            },
            Ev::Dgram(1, TS, b"query".to_vec()),
            Ev::Dgram(1, TC, b"answer".to_vec()),
            Ev::Dgram(1, TS, vec![]),
            Ev::End(1, TS),
            Ev::End(1, TC),
            Ev::Close(1, CloseReason::EndOfInput, stats),
        ]
    );
}

#[test]
fn syn_payload_is_delivered_first() {
    let mut t = T::new(FlowConfig::default());
    t.tcp(0, CLI, SRV, u32::MAX, "S", b"TFO"); // data starts at seq 0
    t.tcp(1, CLI, SRV, 3, "PA", b"!");
    let evs: Vec<_> = t.take().into_iter().skip(1).collect();
    assert_eq!(evs, vec![data(1, TS, 0, "TFO"), data(1, TS, 3, "!")]);
}

#[test]
fn finish_closes_every_flow_in_id_order_whatever_the_activity_order() {
    let run = |order: &[u8]| {
        let mut t = T::new(FlowConfig::default());
        for &h in order {
            t.tcp(h as i64, (h, 40000), SRV, 1, "PA", b"z");
        }
        // Touch them in reverse so the LRU order differs from the id order.
        for &h in order.iter().rev() {
            t.tcp(100 + h as i64, (h, 40000), SRV, 2, "PA", b"y");
        }
        t.tcp(200, (order[0], 40000), SRV, 10, "PA", b"later"); // leaves a hole
        t.take();
        t.finish();
        let evs = t.take();
        (closes(&evs), evs)
    };
    let (c1, e1) = run(&[7, 3, 9, 5]);
    assert_eq!(c1.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(c1.iter().all(|c| c.1 == CloseReason::EndOfInput));
    assert_eq!(e1[..2], [Ev::Gap(1, TS, 2, 7), data(1, TS, 9, "later")]);
    let (_, e2) = run(&[7, 3, 9, 5]);
    assert_eq!(e1, e2);
}

// ---- property: any segmentation reassembles to the original ----

fn segments(len: usize, cuts: &[Index], retx: &[(Index, Index)]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
    points.extend([0, len]);
    points.sort_unstable();
    points.dedup();
    let mut segs: Vec<(usize, usize)> = points.windows(2).map(|w| (w[0], w[1])).collect();
    for (a, b) in retx {
        let (a, b) = (a.index(len + 1), b.index(len + 1));
        let (a, b) = (a.min(b), a.max(b));
        if a < b {
            segs.push((a, b));
        }
    }
    segs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_segmentation_reassembles_to_the_original_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        isn in prop_oneof![any::<u32>(), (u32::MAX - 4000)..=u32::MAX],
        cuts in proptest::collection::vec(any::<Index>(), 0..40),
        retx in proptest::collection::vec((any::<Index>(), any::<Index>()), 0..12),
        jitter in proptest::collection::vec(0usize..8, 64),
        syn in any::<bool>(),
        fin in any::<bool>(),
    ) {
        let syn = syn || bytes.is_empty();
        let segs = segments(bytes.len(), &cuts, &retx);
        // Reorder within a window of 8; without a SYN the first segment seen
        // defines offset 0, so it must come first.
        let mut order: Vec<(usize, usize)> = (0..segs.len()).map(|i| (i + jitter[i % 64], i)).collect();
        order.sort_unstable();
        if !syn {
            order.retain(|&(_, i)| i != 0);
            order.insert(0, (0, 0));
        }
        let mut t = T::new(FlowConfig::default());
        let data_seq = |off: usize| isn.wrapping_add(1).wrapping_add(off as u32);
        if syn {
            t.tcp(0, CLI, SRV, isn, "S", b"");
        }
        for (k, &(_, i)) in order.iter().enumerate() {
            let (a, b) = segs[i];
            let f = if fin && b == bytes.len() { "PAF" } else { "PA" };
            t.tcp(1 + k as i64, CLI, SRV, data_seq(a), f, &bytes[a..b]);
        }
        if fin && bytes.is_empty() {
            t.tcp(1000, CLI, SRV, data_seq(0), "FA", b"");
        }
        let before_finish = t.take();
        t.finish();
        let all: Vec<Ev> = before_finish.iter().cloned().chain(t.take()).collect();
        let mut got = Vec::new();
        for ev in &all {
            match ev {
                Ev::Data(_, TS, off, d) => {
                    prop_assert_eq!(*off, got.len() as u64);
                    got.extend_from_slice(d);
                }
                Ev::Gap(..) => prop_assert!(false, "unexpected gap {:?}", ev),
                _ => {}
            }
        }
        prop_assert_eq!(&got, &bytes);
        if fin {
            prop_assert!(before_finish.contains(&Ev::End(1, TS)), "FIN did not end the direction");
        }
        prop_assert_eq!(t.t.counters().drops, remora_core::Drops::default());
    }
}

#[test]
fn pure_acks_update_activity_and_stats_but_deliver_nothing() {
    let mut t = T::new(FlowConfig {
        tcp_idle_timeout_us: 100,
        ..FlowConfig::default()
    });
    t.handshake();
    t.take();
    t.tcp(90, SRV, CLI, 5001, "A", b"");
    t.tcp(150, CLI, SRV, 1001, "A", b"");
    t.advance(200);
    assert_eq!(t.take(), vec![]);
    t.advance(250);
    let evs = t.take();
    let stats = FlowStats {
        packets: [3, 2],
        bytes: [0, 0],
        last_seen: Timestamp(150),
    };
    assert_eq!(
        evs,
        vec![
            Ev::End(1, TS),
            Ev::End(1, TC),
            Ev::Close(1, CloseReason::Idle, stats)
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Under tiny limits and gap timeouts, whatever is delivered is the right
    /// bytes at the right offsets, and Data + Gap cover the stream up to the FIN.
    #[test]
    fn under_pressure_delivered_bytes_are_correct_and_gaps_cover_the_rest(
        bytes in proptest::collection::vec(any::<u8>(), 1..2000),
        isn in prop_oneof![any::<u32>(), (u32::MAX - 3000)..=u32::MAX],
        cuts in proptest::collection::vec(any::<Index>(), 0..40),
        retx in proptest::collection::vec((any::<Index>(), any::<Index>()), 0..12),
        jitter in proptest::collection::vec(0usize..16, 64),
        lost in proptest::collection::vec(any::<bool>(), 64),
        max_buf in 1usize..400,
        max_segs in 1usize..6,
        gap_timeout in 1i64..10,
    ) {
        let segs = segments(bytes.len(), &cuts, &retx);
        let mut order: Vec<(usize, usize)> = (0..segs.len()).map(|i| (i + jitter[i % 64], i)).collect();
        order.sort_unstable();
        let mut t = T::new(FlowConfig {
            max_buffered_per_direction: max_buf,
            max_segments_per_direction: max_segs,
            gap_timeout_us: gap_timeout,
            ..FlowConfig::default()
        });
        let data_seq = |off: usize| isn.wrapping_add(1).wrapping_add(off as u32);
        t.tcp(0, CLI, SRV, isn, "S", b"");
        for (k, &(_, i)) in order.iter().enumerate() {
            let (a, b) = segs[i];
            let fin = b == bytes.len();
            // Some segments are lost, but never the FIN.
            if lost[k % 64] && k % 3 == 0 && !fin {
                continue;
            }
            let f = if fin { "PAF" } else { "PA" };
            t.tcp(1 + k as i64, CLI, SRV, data_seq(a), f, &bytes[a..b]);
            t.advance(1 + k as i64);
        }
        t.finish();
        let mut covered = 0u64;
        for ev in t.take() {
            match ev {
                Ev::Data(_, _, off, d) => {
                    let off = off as usize;
                    prop_assert_eq!(&d[..], &bytes[off..off + d.len()]);
                    covered += d.len() as u64;
                }
                Ev::Gap(_, _, _, len) => covered += len,
                _ => {}
            }
        }
        prop_assert_eq!(covered, bytes.len() as u64);
        prop_assert_eq!(t.t.counters().buffered_bytes, 0);
    }
}

#[test]
fn many_flows_are_found_from_either_side_after_others_closed() {
    // 3,000 flows across several slab chunks and table growths; every
    // other one is reset, then each survivor's server answers: it must
    // land in the survivor (no new flow), and the reset ones stay gone.
    let mut t = T::new(FlowConfig::default());
    let client = |i: u16| ((i % 200) as u8 + 1, 10_000 + i);
    let server = |i: u16| (250, 1 + i % 7);
    for i in 0..3000u16 {
        t.tcp(i.into(), client(i), server(i), 100, "S", b"");
    }
    for i in (0..3000u16).step_by(2) {
        t.tcp(3000, client(i), server(i), 101, "R", b"");
    }
    t.take();
    assert_eq!(t.t.len(), 1500);
    for i in (1..3000u16).step_by(2) {
        t.tcp(4000, server(i), client(i), 500, "SA", b"");
    }
    let evs = t.take();
    assert!(evs.iter().all(|e| !matches!(e, Ev::Open { .. })), "{evs:?}");
    let c = t.t.counters();
    assert_eq!((c.flows_opened, c.flows_active), (3000, 1500));
    t.finish();
    let closed: Vec<FlowId> = closes(&t.take()).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        closed,
        (1..3000u64).step_by(2).map(|i| i + 1).collect::<Vec<_>>()
    );
}
