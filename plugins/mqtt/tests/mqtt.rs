use proptest::prelude::*;
use remora_mqtt::*;
use remora_sdk::native::Harness;
use remora_sdk::prelude::*;

type H = Harness<Mqtt>;
const S: Direction = Direction::ToServer;
const C: Direction = Direction::ToClient;

fn s(m: &Message, id: u16) -> Option<String> {
    match m.value(id)? {
        Value::Str(Text::Owned(t)) => Some(t.clone()),
        _ => None,
    }
}

fn int(m: &Message, id: u16) -> Option<i64> {
    match m.value(id)? {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn boolean(m: &Message, id: u16) -> Option<bool> {
    match m.value(id)? {
        Value::Boolean(b) => Some(*b),
        _ => None,
    }
}

fn ints(m: &Message, id: u16) -> Vec<i64> {
    m.values(id)
        .filter_map(|v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
        .collect()
}

fn varint(mut n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        v.push(b);
        if n == 0 {
            return v;
        }
    }
}

fn pkt(b0: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![b0];
    v.extend(varint(body.len()));
    v.extend_from_slice(body);
    v
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn connect(level: u8, client: &str) -> Vec<u8> {
    let mut b = string(if level == 3 { "MQIsdp" } else { "MQTT" });
    b.extend([level, 0x02, 0, 60]);
    if level >= 5 {
        b.extend([3, 0x21, 0, 10]); // receive maximum
    }
    b.extend(string(client));
    pkt(0x10, &b)
}

fn connack(level: u8, rc: u8) -> Vec<u8> {
    if level >= 5 {
        pkt(0x20, &[0, rc, 0])
    } else {
        pkt(0x20, &[0, rc])
    }
}

fn publish(level: u8, qos: u8, retain: bool, topic: &str, pid: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = string(topic);
    if qos > 0 {
        b.extend(pid.to_be_bytes());
    }
    if level >= 5 {
        b.extend([2, 0x01, 1]); // payload format indicator
    }
    b.extend_from_slice(payload);
    pkt(0x30 | (qos << 1) | retain as u8, &b)
}

fn ack(ty: u8, pid: u16) -> Vec<u8> {
    let flags = if ty == 6 { 2 } else { 0 };
    pkt(ty << 4 | flags, &pid.to_be_bytes())
}

fn subscribe(level: u8, pid: u16, topics: &[&str]) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    if level >= 5 {
        b.push(0);
    }
    for t in topics {
        b.extend(string(t));
        b.push(1);
    }
    pkt(0x82, &b)
}

fn suback(level: u8, pid: u16, codes: &[u8]) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    if level >= 5 {
        b.push(0);
    }
    b.extend_from_slice(codes);
    pkt(0x90, &b)
}

/// A whole conversation: (direction, bytes) in the order sent.
fn conversation(level: u8) -> Vec<(Direction, Vec<u8>)> {
    let mut c = connect(level, "client-1");
    c.extend(subscribe(level, 1, &["a/b", "c/#"]));
    c.extend(publish(level, 1, false, "t/1", 7, b"hello"));
    c.extend(publish(level, 2, true, "t/2", 8, &[0u8; 300]));
    c.extend(ack(6, 8));
    let mut s = connack(level, 0);
    s.extend(suback(level, 1, &[1, 0x80]));
    s.extend(ack(4, 7));
    s.extend(ack(5, 8));
    s.extend(ack(7, 8));
    s.extend(publish(level, 1, false, "a/b", 7, b"pushed"));
    let mut c2 = ack(4, 7); // acknowledges the server's PUBLISH id 7
    c2.extend(pkt(0xc0, &[]));
    c2.extend(pkt(0xe0, &[]));
    vec![(S, c), (C, s), (S, c2), (C, pkt(0xd0, &[]))]
}

fn run(level: u8) -> H {
    let mut h = H::tcp(1883);
    for (d, b) in conversation(level) {
        h.feed(d, &b);
    }
    h
}

fn by_type<'a>(h: &'a H, ty: &str, dir: &str) -> Vec<&'a Message> {
    h.messages
        .iter()
        .filter(|m| {
            s(m, F_TYPE).as_deref() == Some(ty) && s(m, F_DIRECTION).as_deref() == Some(dir)
        })
        .collect()
}

#[test]
fn conversation_fields_and_pairing() {
    for level in [3u8, 4, 5] {
        let h = run(level);
        assert!(h.errors.is_empty(), "{:?}", h.errors);
        assert_eq!(h.messages.len(), 15, "level {level}");
        let con = by_type(&h, "CONNECT", "c2s")[0];
        assert_eq!(s(con, F_CLIENT_ID).as_deref(), Some("client-1"));
        assert_eq!(int(con, F_VERSION), Some(level.into()));
        let cack = by_type(&h, "CONNACK", "s2c")[0];
        assert_eq!(ints(cack, F_REASON_CODES), vec![0]);
        assert_eq!(
            (con.kind, cack.kind),
            (MessageKind::Request, MessageKind::Response)
        );
        assert_eq!(con.txn, cack.txn);

        let sub = by_type(&h, "SUBSCRIBE", "c2s")[0];
        let sack = by_type(&h, "SUBACK", "s2c")[0];
        assert_eq!(s(sub, F_TOPIC).as_deref(), Some("a/b"));
        assert_eq!(int(sub, F_PACKET_ID), Some(1));
        assert_eq!(ints(sack, F_REASON_CODES), vec![1, 0x80]);
        assert_eq!(sub.txn, sack.txn);

        let pubs = by_type(&h, "PUBLISH", "c2s");
        assert_eq!(pubs.len(), 2);
        assert_eq!(s(pubs[0], F_TOPIC).as_deref(), Some("t/1"));
        assert_eq!(int(pubs[0], F_QOS), Some(1));
        assert_eq!(int(pubs[0], F_PAYLOAD_SIZE), Some(5));
        assert_eq!(boolean(pubs[0], F_RETAIN), Some(false));
        assert_eq!(boolean(pubs[1], F_RETAIN), Some(true));
        assert_eq!(int(pubs[1], F_PAYLOAD_SIZE), Some(300));
        let puback = by_type(&h, "PUBACK", "s2c")[0];
        let pubrec = by_type(&h, "PUBREC", "s2c")[0];
        assert_eq!(puback.txn, pubs[0].txn);
        assert_eq!(pubrec.txn, pubs[1].txn);
        let rel = by_type(&h, "PUBREL", "c2s")[0];
        let comp = by_type(&h, "PUBCOMP", "s2c")[0];
        assert_eq!(
            (rel.kind, comp.kind),
            (MessageKind::Request, MessageKind::Response)
        );
        assert_eq!(rel.txn, comp.txn);

        // Server PUBLISH id 7 pairs with the client's PUBACK 7, not with the
        // client's PUBLISH id 7.
        let spub = by_type(&h, "PUBLISH", "s2c")[0];
        let cack7 = by_type(&h, "PUBACK", "c2s")[0];
        assert_eq!(spub.kind, MessageKind::Request);
        assert_eq!(cack7.kind, MessageKind::Response);
        assert_eq!(spub.txn, cack7.txn);
        assert_ne!(spub.txn, pubs[0].txn);

        let ping = by_type(&h, "PINGREQ", "c2s")[0];
        let pong = by_type(&h, "PINGRESP", "s2c")[0];
        assert_eq!(ping.txn, pong.txn);
        let disc = by_type(&h, "DISCONNECT", "c2s")[0];
        assert_eq!(disc.kind, MessageKind::Standalone);

        // Every request/response txn is used exactly twice.
        for m in &h.messages {
            if m.kind != MessageKind::Standalone {
                let n = h
                    .messages
                    .iter()
                    .filter(|o| o.kind != MessageKind::Standalone && o.txn == m.txn)
                    .count();
                assert_eq!(n, 2, "{m:?}");
            }
        }
    }
}

#[test]
fn qos0_publish_is_standalone() {
    let mut h = H::tcp(1883);
    h.feed(S, &connect(4, "x"));
    h.feed(S, &publish(4, 0, false, "news", 0, b"abc"));
    let m = &h.messages[1];
    assert_eq!(m.kind, MessageKind::Standalone);
    assert_eq!(int(m, F_QOS), Some(0));
    assert_eq!(m.value(F_PACKET_ID), None);
    assert_eq!(int(m, F_PAYLOAD_SIZE), Some(3));
}

#[test]
fn large_payload_is_skipped() {
    let mut h = H::tcp(1883);
    h.feed(S, &connect(4, "x"));
    let big = vec![7u8; 200_000];
    let p = publish(4, 1, false, "big", 3, &big);
    h.feed_split(S, &p, &[1, 2, 3, 1000, 50_000, 150_000]);
    h.feed(S, &pkt(0xc0, &[]));
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 3);
    assert_eq!(int(&h.messages[1], F_PAYLOAD_SIZE), Some(200_000));
    assert_eq!(s(&h.messages[2], F_TYPE).as_deref(), Some("PINGREQ"));
    assert!(h.bytes_skipped > 150_000, "skipped {}", h.bytes_skipped);
}

#[test]
fn split_at_every_byte_is_equivalent() {
    for level in [3u8, 4, 5] {
        let whole = run(level).messages;
        let conv = conversation(level);
        let longest = conv.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        for cut in 0..=longest {
            let mut h = H::tcp(1883);
            for (d, b) in &conv {
                h.feed_split(*d, b, &[cut]);
            }
            assert_eq!(h.messages, whole, "level {level} cut {cut}");
        }
        let mut h = H::tcp(1883);
        let all: Vec<usize> = (0..longest).collect();
        for (d, b) in &conv {
            h.feed_split(*d, b, &all);
        }
        assert_eq!(h.messages, whole, "level {level} byte by byte");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut h = H::tcp(1883);
    h.feed(S, &[0x00, 0x00, 1, 2, 3]);
    assert!(!h.errors.is_empty());
    let mut h = H::tcp(1883);
    h.feed(S, &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert!(!h.errors.is_empty());
    // Truncated fields inside a well-framed packet: no error, fewer fields.
    let mut h = H::tcp(1883);
    h.feed(S, &pkt(0x10, &[0, 4, b'M']));
    h.feed(S, &pkt(0x30, &[0, 9, b'a']));
    assert_eq!(h.messages.len(), 2);
    assert_eq!(h.messages[0].value(F_CLIENT_ID), None);
    // After a gap the connection is abandoned.
    let mut h = H::tcp(1883);
    h.gap(S, 10);
    h.feed(S, &pkt(0xc0, &[]));
    assert!(h.messages.is_empty());
    assert_eq!(h.errors.len(), 1);
}

#[test]
fn probe() {
    let f = FlowInfo::tcp_test(1, 1883);
    let other = FlowInfo::tcp_test(1, 80);
    let c = connect(4, "x");
    assert!(matches!(Mqtt::probe(&f, S, &c), Probe::Yes(_)));
    assert!(matches!(Mqtt::probe(&other, S, &c), Probe::Yes(_)));
    assert!(matches!(Mqtt::probe(&f, S, &c[..4]), Probe::NeedMore));
    assert!(matches!(
        Mqtt::probe(&other, S, &connect(3, "y")),
        Probe::Yes(_)
    ));
    assert_eq!(Mqtt::probe(&other, S, b"GET / HTTP/1.1\r\n"), Probe::No);
    assert_eq!(Mqtt::probe(&other, S, &pkt(0xc0, &[])), Probe::No);
    assert!(matches!(Mqtt::probe(&f, S, &pkt(0xc0, &[])), Probe::Yes(_)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn random_bytes_never_panic(
        a in proptest::collection::vec(any::<u8>(), 0..600),
        b in proptest::collection::vec(any::<u8>(), 0..600),
        cut in 0usize..600,
    ) {
        let f = FlowInfo::tcp_test(1, 1883);
        let _ = Mqtt::probe(&f, S, &a);
        let _ = Mqtt::probe(&f, C, &b);
        let mut h = H::tcp(1883);
        h.feed_split(S, &a, &[cut]);
        h.feed_split(C, &b, &[cut]);
        h.end(S);
        h.end(C);
    }

    #[test]
    fn mutated_conversation_never_panics(
        level in 3u8..6,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in 0usize..400,
    ) {
        let mut conv = conversation(level);
        for (i, x) in flips {
            let (_, b) = &mut conv[i % 4];
            let n = b.len();
            b[(i / 4) % n] ^= x;
        }
        let mut h = H::tcp(1883);
        for (d, b) in &conv {
            h.feed_split(*d, b, &[cut]);
        }
    }
}
