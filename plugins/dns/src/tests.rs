use super::*;
use remora_sdk::native::Harness;

fn udp_flow() -> FlowInfo {
    FlowInfo {
        transport: Transport::Udp,
        ..FlowInfo::tcp_test(1, 53)
    }
}

fn udp() -> Harness<Dns> {
    Harness::new(&udp_flow())
}

fn qname(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn hdr(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [id, flags, qd, an, 0, 0] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut v = hdr(id, 0x0100, 1, 0);
    v.extend(qname(name));
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v
}

/// Response to `query(id, name, 1)` with A records using a pointer to the question name.
fn response_a(id: u16, name: &str, addrs: &[[u8; 4]], rcode: u16) -> Vec<u8> {
    let mut v = hdr(id, 0x8180 | rcode, 1, addrs.len() as u16);
    v.extend(qname(name));
    v.extend_from_slice(&[0, 1, 0, 1]);
    for a in addrs {
        v.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        v.extend_from_slice(&300u32.to_be_bytes());
        v.extend_from_slice(&[0, 4]);
        v.extend_from_slice(a);
    }
    v
}

fn tcp_frame(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

fn strs(m: &Message, id: u16) -> Vec<String> {
    m.values(id)
        .filter_map(|v| match v {
            Value::Str(Text::Owned(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn int(m: &Message, id: u16) -> Option<i64> {
    match m.value(id) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

#[test]
fn udp_query() {
    let mut h = udp();
    let q = query(0x1234, "example.com", 1);
    h.feed(Direction::ToServer, &q);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 1);
    let m = &h.messages[0];
    assert_eq!(m.kind, MessageKind::Request);
    assert_eq!(m.txn, 0x1234);
    assert_eq!(int(m, F_ID), Some(0x1234));
    assert_eq!(strs(m, F_QUESTIONS), vec!["example.com"]);
    assert_eq!(strs(m, F_QUESTION_TYPES), vec!["A"]);
    assert_eq!(strs(m, F_QUERY), vec!["A example.com"]);
    assert_eq!(m.value(F_REQUEST), Some(&Value::Boolean(true)));
    assert_eq!(int(m, F_REQUEST_LENGTH), Some(q.len() as i64));
    assert!(m.value(F_RCODE).is_none());
}

#[test]
fn udp_response_with_compression() {
    let mut h = udp();
    let r = response_a(7, "example.com", &[[1, 2, 3, 4], [5, 6, 7, 8]], 0);
    h.feed(Direction::ToClient, &r);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let m = &h.messages[0];
    assert_eq!(m.kind, MessageKind::Response);
    assert_eq!(m.txn, 7);
    assert_eq!(
        strs(m, F_ANSWERS),
        vec![
            "example.com A 1.2.3.4 ttl=300",
            "example.com A 5.6.7.8 ttl=300"
        ]
    );
    assert_eq!(int(m, F_RCODE), Some(0));
    assert_eq!(int(m, F_STATUS_CODE), Some(0));
    assert_eq!(strs(m, F_RCODE_NAME), vec!["NOERROR"]);
    assert_eq!(m.value(F_RESPONSE), Some(&Value::Boolean(true)));
    assert_eq!(int(m, F_RESPONSE_LENGTH), Some(r.len() as i64));
}

#[test]
fn nxdomain() {
    let mut h = udp();
    h.feed(Direction::ToClient, &response_a(9, "nope.test", &[], 3));
    let m = &h.messages[0];
    assert_eq!(int(m, F_RCODE), Some(3));
    assert_eq!(strs(m, F_RCODE_NAME), vec!["NXDOMAIN"]);
    assert!(strs(m, F_ANSWERS).is_empty());
}

#[test]
fn record_types() {
    // MX, CNAME, TXT, SRV, SOA, AAAA, PTR answers, names compressed.
    let mut v = hdr(1, 0x8180, 1, 7);
    v.extend(qname("a.test"));
    v.extend_from_slice(&[0, 255, 0, 1]);
    let rr = |v: &mut Vec<u8>, t: u16, rd: &[u8]| {
        v.extend_from_slice(&[0xc0, 12]);
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        v.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        v.extend_from_slice(rd);
    };
    let mut mx = vec![0, 10, 2, b'm', b'x', 0xc0, 12];
    rr(&mut v, 15, &mx);
    rr(&mut v, 5, &[3, b'w', b'w', b'w', 0xc0, 12]);
    rr(&mut v, 16, b"\x05hello\x02hi");
    rr(&mut v, 33, &[0, 1, 0, 2, 0x14, 0xeb, 0xc0, 12]);
    mx.clear();
    mx.extend_from_slice(&[2, b'n', b's', 0xc0, 12, 0xc0, 12]);
    for x in [1u32, 2, 3, 4, 5] {
        mx.extend_from_slice(&x.to_be_bytes());
    }
    rr(&mut v, 6, &mx);
    let mut six = [0u8; 16];
    six[0] = 0x20;
    six[1] = 0x01;
    six[15] = 1;
    rr(&mut v, 28, &six);
    rr(&mut v, 12, &[0xc0, 12]);
    let mut h = udp();
    h.feed(Direction::ToClient, &v);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(
        strs(&h.messages[0], F_ANSWERS),
        vec![
            "a.test MX 10 mx.a.test ttl=60",
            "a.test CNAME www.a.test ttl=60",
            "a.test TXT \"hello\" \"hi\" ttl=60",
            "a.test SRV 1 2 5355 a.test ttl=60",
            "a.test SOA ns.a.test a.test 1 2 3 4 5 ttl=60",
            "a.test AAAA 2001::1 ttl=60",
            "a.test PTR a.test ttl=60",
        ]
    );
    assert_eq!(strs(&h.messages[0], F_QUESTION_TYPES), vec!["ANY"]);
}

#[test]
fn pointer_loop_is_an_error() {
    let mut v = hdr(1, 0x0100, 1, 0);
    v.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut h = udp();
    h.feed(Direction::ToServer, &v);
    assert!(h.messages.is_empty());
    assert_eq!(h.errors.len(), 1);
    // A long chain of pointers, each one step back.
    let mut v = hdr(1, 0x0100, 1, 0);
    v.extend_from_slice(&[1, b'a', 0]);
    for i in 0..200u16 {
        let target = 12 + if i == 0 { 0 } else { 3 + 2 * (i - 1) };
        v.extend_from_slice(&(0xc000 | target).to_be_bytes());
    }
    assert!(parse::read_name(&v, v.len() - 2).is_err());
}

#[test]
fn truncated_and_garbage_are_errors() {
    let q = query(5, "example.com", 1);
    for cut in [1, 5, 11, 12, 15, q.len() - 1] {
        let mut h = udp();
        h.feed(Direction::ToServer, &q[..cut]);
        assert!(h.messages.is_empty(), "cut {cut}");
        assert!(!h.errors.is_empty(), "cut {cut}");
    }
    let mut h = udp();
    h.feed(Direction::ToServer, &[0xff; 40]);
    assert!(h.messages.is_empty());
    assert!(!h.errors.is_empty());
}

#[test]
fn tcp_two_messages_in_one_feed() {
    let mut h = Harness::<Dns>::tcp(53);
    let mut bytes = tcp_frame(&query(1, "a.test", 1));
    bytes.extend(tcp_frame(&query(2, "b.test", 28)));
    h.feed(Direction::ToServer, &bytes);
    let mut r = tcp_frame(&response_a(1, "a.test", &[[9, 9, 9, 9]], 0));
    r.extend(tcp_frame(&response_a(2, "b.test", &[], 3)));
    h.feed(Direction::ToClient, &r);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let kinds: Vec<_> = h.messages.iter().map(|m| (m.kind, m.txn)).collect();
    assert_eq!(
        kinds,
        vec![
            (MessageKind::Request, 1),
            (MessageKind::Request, 2),
            (MessageKind::Response, 1),
            (MessageKind::Response, 2)
        ]
    );
    assert_eq!(h.messages[0].start, 0);
    assert_eq!(
        h.messages[1].start,
        (2 + query(1, "a.test", 1).len()) as u64
    );
    assert_eq!(strs(&h.messages[1], F_QUESTION_TYPES), vec!["AAAA"]);
    assert_eq!(int(&h.messages[3], F_RCODE), Some(3));
}

#[test]
fn tcp_split_across_feeds() {
    let mut bytes = tcp_frame(&query(1, "a.test", 1));
    bytes.extend(tcp_frame(&query(2, "bb.example.org", 16)));
    let whole = {
        let mut h = Harness::<Dns>::tcp(53);
        h.feed(Direction::ToServer, &bytes);
        h.messages
    };
    assert_eq!(whole.len(), 2);
    for cut in 1..bytes.len() {
        let mut h = Harness::<Dns>::tcp(53);
        h.feed_split(Direction::ToServer, &bytes, &[cut]);
        assert_eq!(h.messages, whole, "cut {cut}");
        assert!(h.errors.is_empty());
    }
    // byte by byte
    let mut h = Harness::<Dns>::tcp(53);
    for b in &bytes {
        h.feed(Direction::ToServer, std::slice::from_ref(b));
    }
    assert_eq!(h.messages, whole);
}

#[test]
fn tcp_garbage_is_error() {
    let mut h = Harness::<Dns>::tcp(53);
    h.feed(Direction::ToServer, &[0, 3, 1, 2, 3, 4, 5, 6]);
    assert!(h.messages.is_empty());
    assert_eq!(h.errors.len(), 1);
    // further bytes are consumed silently
    h.feed(Direction::ToServer, &tcp_frame(&query(1, "a.test", 1)));
    assert!(h.messages.is_empty());
}

#[test]
fn probes() {
    let q = query(1, "example.com", 1);
    assert_eq!(
        Dns::probe(&udp_flow(), Direction::ToServer, &q),
        Probe::Yes(60)
    );
    let mut other = udp_flow();
    other.server_port = 9999;
    assert_eq!(Dns::probe(&other, Direction::ToServer, &q), Probe::Yes(30));
    assert_eq!(
        Dns::probe(&udp_flow(), Direction::ToServer, &q[..10]),
        Probe::No
    );
    assert_eq!(
        Dns::probe(&udp_flow(), Direction::ToServer, b"GET / HTTP/1.1\r\n\r\n"),
        Probe::No
    );
    let tcp = FlowInfo::tcp_test(1, 53);
    let f = tcp_frame(&q);
    assert_eq!(Dns::probe(&tcp, Direction::ToServer, &f), Probe::Yes(60));
    assert_eq!(
        Dns::probe(&tcp, Direction::ToServer, &f[..1]),
        Probe::NeedMore
    );
    assert_eq!(
        Dns::probe(&tcp, Direction::ToServer, &f[..8]),
        Probe::NeedMore
    );
    assert_eq!(
        Dns::probe(&tcp, Direction::ToServer, b"GET / HTTP/1.1\r\n\r\n"),
        Probe::No
    );
    // qdcount 0 is rejected
    let mut z = q.clone();
    z[5] = 0;
    assert_eq!(Dns::probe(&udp_flow(), Direction::ToServer, &z), Probe::No);
}

#[test]
fn info_declares_udp_and_tcp() {
    let i = Dns::info();
    assert_eq!(i.protocols.len(), 2);
    assert!(i
        .protocols
        .iter()
        .all(|p| p.name == "DNS" && p.flag == "dns"));
    assert!(i.field_named("dns_questions").is_some());
}
