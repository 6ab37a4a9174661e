//! Throughput of `FlowTable::process` on in-order TCP traffic: many flows,
//! ~450-byte payloads, round-robin across flows (the zero-copy fast path).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use remora_core::{Endpoint, Packet, TcpFlags, Timestamp, L4};
use remora_flow::{FlowConfig, FlowEvent, FlowTable};

const PAYLOAD: usize = 450;
const BATCH: u64 = 100_000;

struct Gen {
    flows: u32,
    next_seq: Vec<u32>,
    n: u64,
    payload: Vec<u8>,
}

impl Gen {
    fn new(flows: u32) -> Self {
        Gen {
            flows,
            next_seq: vec![1; flows as usize],
            n: 0,
            payload: (0..PAYLOAD).map(|i| i as u8).collect(),
        }
    }

    /// Run one batch through the table; returns bytes delivered.
    fn batch(&mut self, table: &mut FlowTable) -> u64 {
        let mut delivered = 0u64;
        let mut sink = |ev: FlowEvent<'_>| {
            if let FlowEvent::Data { data, .. } = ev {
                delivered += data.len() as u64;
            }
        };
        for _ in 0..BATCH {
            let f = (self.n % self.flows as u64) as u32;
            let client = Endpoint::new(
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (f >> 8))),
                40000 + (f & 0xff) as u16,
            );
            let server = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)), 80);
            let seq = self.next_seq[f as usize];
            self.next_seq[f as usize] = seq.wrapping_add(PAYLOAD as u32);
            let pkt = Packet {
                ts: Timestamp(self.n as i64),
                src: client,
                dst: server,
                l4: L4::Tcp {
                    seq,
                    ack: 1,
                    flags: TcpFlags {
                        ack: true,
                        psh: true,
                        ..TcpFlags::default()
                    },
                    window: 65535,
                },
                payload: &self.payload,
                wire_len: 54 + PAYLOAD as u32,
            };
            table.process(black_box(&pkt), self.n, &mut sink);
            self.n += 1;
        }
        delivered
    }
}

fn in_order(c: &mut Criterion) {
    let mut g = c.benchmark_group("process_in_order");
    g.throughput(Throughput::Elements(BATCH));
    for flows in [1_000u32, 100_000] {
        g.bench_function(format!("{flows}_flows"), |b| {
            let mut table = FlowTable::new(FlowConfig::default());
            let mut gen = Gen::new(flows);
            gen.batch(&mut table); // open every flow first
            b.iter(|| black_box(gen.batch(&mut table)));
        });
    }
    g.finish();
}

criterion_group!(benches, in_order);
criterion_main!(benches);
