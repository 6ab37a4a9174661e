//! Every built-in plugin, fed random bytes and truncated real traffic through
//! the real Wasm runtime: no trap, no limit hit, no malformed output, on every
//! call. (Parsers are also property-tested natively in their own crates; this
//! checks the component as shipped, under the host's limits.)

use std::sync::Arc;
use std::time::Duration;

use remora_runtime::testing::builtin_plugins;
use remora_runtime::wit::{Direction, FlowInfo, Transport};
use remora_runtime::{Runtime, RuntimeConfig, Shard};

/// xorshift: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Inputs that look a little like each protocol, so parsers get past their
/// first checks, then go wrong: random bytes after a plausible prefix.
const PREFIXES: &[&[u8]] = &[
    b"",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n",
    b"*3\r\n$3\r\nSET\r\n$999999999\r\n",
    b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
    b"\x00\x00\x00\x10\x00\x12\x00\x03\x00\x00\x00\x01\x00\x03abc",
    b"AMQP\x00\x00\x09\x01\x01\x00\x00\xff\xff\xff\xff",
    b"\x10\xff\xff\xff\x7f\x00\x04MQTT\x05",
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c",
    b"\xff\xff\xff\x00\x0a8.0.0\x00",
    // WebSocket: a masked text frame claiming 64 KiB, a fragment, a long close.
    b"\x81\xfe\xff\xff\x37\xfa\x21\x3d",
    b"\x01\x83\x37\xfa\x21\x3dabc\x80\x7f",
];

#[test]
fn random_and_truncated_input_never_faults_a_builtin_plugin() {
    let cfg = RuntimeConfig {
        call_deadline: Duration::from_secs(2),
        ..RuntimeConfig::default()
    };
    let mut rt = Runtime::new(cfg).unwrap();
    let plugins = builtin_plugins();
    assert!(plugins.len() >= 2, "found {plugins:?}");
    for (_, path) in &plugins {
        rt.load_file(path).unwrap();
    }
    let rt = Arc::new(rt);
    let mut shard = Shard::new(rt.clone());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for plugin in rt.plugins() {
        for proto in &plugin.info.protocols {
            let port = proto.ports.first().copied().unwrap_or(1);
            for (case, prefix) in PREFIXES.iter().enumerate() {
                for round in 0..24 {
                    let flow = FlowInfo {
                        id: (case * 100 + round) as u64,
                        transport: proto.transport,
                        client_ip: std::net::IpAddr::from([10, 0, 0, 1]).into(),
                        client_port: 40000,
                        server_ip: std::net::IpAddr::from([10, 0, 0, 2]).into(),
                        server_port: port,
                    };
                    let mut data = prefix.to_vec();
                    let extra = rng.below(3000) as usize;
                    data.extend((0..extra).map(|_| rng.next() as u8));
                    let ctx = format!("{} case {case} round {round}", plugin.info.name);
                    let dir = if round % 2 == 0 {
                        Direction::ToServer
                    } else {
                        Direction::ToClient
                    };
                    shard
                        .probe(plugin.id, &flow, dir, &data)
                        .unwrap_or_else(|f| panic!("{ctx}: probe: {f}"));
                    let s = shard
                        .open(plugin.id, &flow)
                        .unwrap_or_else(|f| panic!("{ctx}: open: {f}"));
                    // Half the sessions take their flow over from another
                    // protocol, as after an HTTP Upgrade.
                    if round % 4 < 2 {
                        let params = [("upgrade".to_owned(), "h2c".to_owned())];
                        shard
                            .takeover(&s, "HTTP", &params)
                            .unwrap_or_else(|f| panic!("{ctx}: takeover: {f}"));
                    }
                    // Feed in random pieces, keeping what was not consumed,
                    // as the host does; truncation = the stream just ends.
                    let mut base = 0u64;
                    let mut pending: Vec<u8> = Vec::new();
                    let mut rest = &data[..];
                    while !rest.is_empty() {
                        let n = (1 + rng.below(700) as usize).min(rest.len());
                        pending.extend_from_slice(&rest[..n]);
                        rest = &rest[n..];
                        let input = if proto.transport == Transport::Udp {
                            std::mem::take(&mut pending)
                        } else {
                            pending.clone()
                        };
                        let r = shard
                            .feed(&s, dir, base, &input)
                            .unwrap_or_else(|f| panic!("{ctx}: feed: {f}"));
                        if proto.transport == Transport::Tcp {
                            let used = (r.consumed as usize).min(pending.len());
                            pending.drain(..used);
                            base += used as u64;
                        }
                    }
                    shard
                        .gap(&s, dir, 10)
                        .unwrap_or_else(|f| panic!("{ctx}: gap: {f}"));
                    for d in [Direction::ToServer, Direction::ToClient] {
                        shard
                            .end(&s, d)
                            .unwrap_or_else(|f| panic!("{ctx}: end: {f}"));
                    }
                    shard.close(&s);
                }
            }
        }
    }
    for c in shard.counters() {
        eprintln!("{}: {} calls, {:?}", c.name, c.calls, c.faults);
        assert_eq!(c.faults.total(), 0, "{}: {:?}", c.name, c.faults);
        assert!(c.calls > 0, "{} was never called", c.name);
    }
}

/// A burst of tiny messages in one input (13,000 MQTT publishes fit in
/// 91 KB) is more than the host takes from one call (4,096 messages): the
/// plugins return what they consumed once their output is full and are
/// called again for the rest. The MQTT burst faulted its plugin ("more than
/// 4096 messages in one call") and the flow was lost.
#[test]
fn a_burst_of_tiny_messages_is_taken_over_several_calls() {
    let mut rt = Runtime::new(RuntimeConfig::default()).unwrap();
    for (_, path) in builtin_plugins() {
        rt.load_file(&path).unwrap();
    }
    let rt = Arc::new(rt);
    let mut shard = Shard::new(rt.clone());
    const N: usize = 13_000;
    let mqtt = {
        let mut b = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00".to_vec();
        b.extend(b"\x30\x05\x00\x01txy".repeat(N));
        b
    };
    let bursts: [(&str, u16, Vec<u8>, usize); 3] = [
        ("mqtt", 1883, mqtt, N + 1),
        ("http1", 80, b"GET / HTTP/1.1\r\n\r\n".repeat(N), N),
        ("redis", 6379, b"*1\r\n$4\r\nPING\r\n".repeat(N), N),
    ];
    for (name, port, data, want) in bursts {
        let plugin = rt
            .plugins()
            .iter()
            .find(|p| p.info.name == name)
            .unwrap_or_else(|| panic!("no {name} plugin"));
        let flow = FlowInfo {
            id: u64::from(port),
            transport: Transport::Tcp,
            client_ip: std::net::IpAddr::from([10, 0, 0, 1]).into(),
            client_port: 40000,
            server_ip: std::net::IpAddr::from([10, 0, 0, 2]).into(),
            server_port: port,
        };
        let s = shard.open(plugin.id, &flow).unwrap();
        let (mut base, mut messages, mut calls) = (0usize, 0usize, 0);
        while base < data.len() {
            calls += 1;
            assert!(calls < 1000, "{name}: no progress at {base}");
            let r = shard
                .feed(&s, Direction::ToServer, base as u64, &data[base..])
                .unwrap_or_else(|f| panic!("{name}: call {calls}: {f}"));
            assert!(
                r.messages.len() <= 4096,
                "{name}: {} messages",
                r.messages.len()
            );
            messages += r.messages.len();
            base += r.consumed as usize;
        }
        assert_eq!(messages, want, "{name}");
        assert!(calls > 3, "{name}: {calls} calls");
        shard.close(&s);
    }
    for c in shard.counters() {
        assert_eq!(c.faults.total(), 0, "{}: {:?}", c.name, c.faults);
    }
}
