use remora_kafka::*;
use remora_sdk::native::Harness;
use remora_sdk::prelude::*;

type H = Harness<Kafka>;
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

fn strs(m: &Message, id: u16) -> Vec<String> {
    m.values(id)
        .filter_map(|v| match v {
            Value::Str(Text::Owned(t)) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn ints(m: &Message, id: u16) -> Vec<i64> {
    m.values(id)
        .filter_map(|v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
        .collect()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn header(key: i16, ver: i16, corr: i32, client: &str, flex: bool) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(key.to_be_bytes());
    v.extend(ver.to_be_bytes());
    v.extend(corr.to_be_bytes());
    v.extend((client.len() as i16).to_be_bytes());
    v.extend(client.as_bytes());
    if flex {
        v.push(0); // no tagged fields
    }
    v
}

fn str16(v: &mut Vec<u8>, s: &str) {
    v.extend((s.len() as i16).to_be_bytes());
    v.extend(s.as_bytes());
}

fn cstr(v: &mut Vec<u8>, s: &str) {
    v.push(s.len() as u8 + 1);
    v.extend(s.as_bytes());
}

/// Metadata v1 request for two topics.
fn metadata_v1(corr: i32) -> Vec<u8> {
    let mut p = header(3, 1, corr, "cli", false);
    p.extend(2i32.to_be_bytes());
    str16(&mut p, "orders");
    str16(&mut p, "payments");
    frame(&p)
}

/// Produce v9 (flexible) with one topic, two partitions and record bytes.
fn produce_v9(corr: i32) -> Vec<u8> {
    let mut p = header(0, 9, corr, "producer", true);
    p.push(0); // null transactional id
    p.extend(1i16.to_be_bytes()); // acks
    p.extend(30000i32.to_be_bytes());
    p.push(2); // 1 topic
    cstr(&mut p, "events");
    p.push(3); // 2 partitions
    for part in [0i32, 3] {
        p.extend(part.to_be_bytes());
        p.push(6); // 5 record bytes
        p.extend(b"abcde");
        p.push(0);
    }
    p.push(0);
    p.push(0);
    frame(&p)
}

/// Produce v9 response: header with tagged fields, then a body.
fn produce_v9_resp(corr: i32) -> Vec<u8> {
    let mut p = corr.to_be_bytes().to_vec();
    p.push(0);
    p.extend([1, 0, 0, 0]);
    frame(&p)
}

/// ApiVersions v3 response: header v0 (no tagged fields), error code first.
fn api_versions_resp(corr: i32, err: i16) -> Vec<u8> {
    let mut p = corr.to_be_bytes().to_vec();
    p.extend(err.to_be_bytes());
    p.push(1); // empty compact array
    p.extend(0i32.to_be_bytes());
    p.push(0);
    frame(&p)
}

#[test]
fn names_and_flexible_table() {
    assert_eq!(api_name(0), Some("PRODUCE"));
    assert_eq!(api_name(2), Some("LIST_OFFSETS"));
    assert_eq!(api_name(18), Some("API_VERSIONS"));
    assert_eq!(api_name(74), Some("LIST_CLIENT_METRICS_RESOURCES"));
    assert_eq!(api_name(75), None);
    assert_eq!(api_name(-1), None);
    assert!(is_flexible(0, 9) && !is_flexible(0, 8));
    assert!(is_flexible(1, 12) && !is_flexible(1, 11));
    assert!(is_flexible(3, 9) && !is_flexible(3, 8));
    assert!(is_flexible(18, 3) && !is_flexible(18, 2));
    assert!(!is_flexible(17, 1));
}

#[test]
fn metadata_request_and_response() {
    let mut h = H::tcp(9092);
    let req = metadata_v1(7);
    h.feed(S, &req);
    let mut resp = 7i32.to_be_bytes().to_vec();
    resp.extend(0i32.to_be_bytes());
    h.feed(C, &frame(&resp));
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let (q, r) = (&h.messages[0], &h.messages[1]);
    assert_eq!(q.kind, MessageKind::Request);
    assert_eq!(r.kind, MessageKind::Response);
    assert_eq!((q.txn, r.txn), (7, 7));
    assert_eq!(int(q, F_API_KEY), Some(3));
    assert_eq!(s(q, F_API_KEY_NAME).as_deref(), Some("METADATA"));
    assert_eq!(int(q, F_API_VERSION), Some(1));
    assert_eq!(int(q, F_CORRELATION_ID), Some(7));
    assert_eq!(s(q, F_CLIENT_ID).as_deref(), Some("cli"));
    assert_eq!(strs(q, F_TOPICS), vec!["orders", "payments"]);
    assert_eq!(
        s(q, F_REQUEST_SUMMARY).as_deref(),
        Some("METADATA v1 orders,payments")
    );
    assert_eq!(int(q, F_REQUEST_SIZE), Some(req.len() as i64));
    assert_eq!(int(r, F_RESPONSE_SIZE), Some(12));
    assert_eq!(s(r, F_API_KEY_NAME).as_deref(), Some("METADATA"));
}

#[test]
fn flexible_produce_and_api_versions() {
    let mut h = H::tcp(9092);
    let mut reqs = produce_v9(1);
    let mut av = header(18, 3, 2, "producer", true);
    cstr(&mut av, "x");
    cstr(&mut av, "1");
    av.push(0);
    reqs.extend(frame(&av));
    h.feed(S, &reqs);
    let mut resps = api_versions_resp(2, 35);
    resps.extend(produce_v9_resp(1));
    h.feed(C, &resps);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 4);
    let q = &h.messages[0];
    assert_eq!(s(q, F_API_KEY_NAME).as_deref(), Some("PRODUCE"));
    assert_eq!(strs(q, F_TOPICS), vec!["events"]);
    assert_eq!(ints(q, F_PARTITIONS), vec![0, 3]);
    let av_resp = &h.messages[2];
    assert_eq!(av_resp.txn, 2);
    assert_eq!(int(av_resp, F_ERROR_CODE), Some(35));
    assert_eq!(s(av_resp, F_API_KEY_NAME).as_deref(), Some("API_VERSIONS"));
    let p_resp = &h.messages[3];
    assert_eq!(p_resp.txn, 1);
    assert_eq!(int(p_resp, F_API_KEY), Some(0));
}

#[test]
fn fetch_and_list_offsets_and_offset_fetch() {
    // Fetch v4: replica, wait, min, max, isolation, topics.
    let mut f = header(1, 4, 10, "c", false);
    f.extend((-1i32).to_be_bytes());
    f.extend(500i32.to_be_bytes());
    f.extend(1i32.to_be_bytes());
    f.extend(1024i32.to_be_bytes());
    f.push(0);
    f.extend(1i32.to_be_bytes());
    str16(&mut f, "logs");
    f.extend(1i32.to_be_bytes());
    f.extend(5i32.to_be_bytes());
    f.extend(100i64.to_be_bytes());
    f.extend(1024i32.to_be_bytes());
    // ListOffsets v1.
    let mut l = header(2, 1, 11, "c", false);
    l.extend((-1i32).to_be_bytes());
    l.extend(1i32.to_be_bytes());
    str16(&mut l, "logs2");
    l.extend(1i32.to_be_bytes());
    l.extend(2i32.to_be_bytes());
    l.extend((-1i64).to_be_bytes());
    // OffsetFetch v1.
    let mut o = header(9, 1, 12, "c", false);
    str16(&mut o, "group");
    o.extend(1i32.to_be_bytes());
    str16(&mut o, "logs3");
    o.extend(2i32.to_be_bytes());
    o.extend(0i32.to_be_bytes());
    o.extend(1i32.to_be_bytes());
    let mut data = frame(&f);
    data.extend(frame(&l));
    data.extend(frame(&o));
    let mut h = H::tcp(9092);
    h.feed(S, &data);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 3);
    assert_eq!(strs(&h.messages[0], F_TOPICS), vec!["logs"]);
    assert_eq!(ints(&h.messages[0], F_PARTITIONS), vec![5]);
    assert_eq!(strs(&h.messages[1], F_TOPICS), vec!["logs2"]);
    assert_eq!(ints(&h.messages[1], F_PARTITIONS), vec![2]);
    assert_eq!(strs(&h.messages[2], F_TOPICS), vec!["logs3"]);
    assert_eq!(ints(&h.messages[2], F_PARTITIONS), vec![0, 1]);
    assert_eq!(h.messages[1].start, frame(&f).len() as u64);
}

#[test]
fn unknown_correlation_id_is_a_lone_response() {
    let mut h = H::tcp(9092);
    let mut resp = 99i32.to_be_bytes().to_vec();
    resp.extend([0u8; 10]);
    h.feed(C, &frame(&resp));
    assert!(h.errors.is_empty());
    assert_eq!(h.messages.len(), 1);
    let r = &h.messages[0];
    assert_eq!(r.kind, MessageKind::Response);
    assert_eq!(int(r, F_CORRELATION_ID), Some(99));
    assert_eq!(int(r, F_API_KEY), None);
}

#[test]
fn large_frame_is_skipped() {
    let mut p = header(0, 3, 5, "c", false);
    p.extend((-1i16).to_be_bytes());
    p.extend(1i16.to_be_bytes());
    p.extend(1000i32.to_be_bytes());
    p.extend(1i32.to_be_bytes());
    str16(&mut p, "big");
    p.extend(1i32.to_be_bytes());
    p.extend(0i32.to_be_bytes());
    let rec = 200_000usize;
    p.extend((rec as i32).to_be_bytes());
    p.extend(vec![0xAB; rec]);
    let mut data = frame(&p);
    data.extend(metadata_v1(6));
    let mut h = H::tcp(9092);
    h.feed(S, &data);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    assert_eq!(strs(&h.messages[0], F_TOPICS), vec!["big"]);
    assert!(h.bytes_skipped > 0);
    assert_eq!(int(&h.messages[1], F_CORRELATION_ID), Some(6));
}

#[test]
fn split_at_every_byte_position() {
    let mut req = metadata_v1(1);
    req.extend(produce_v9(2));
    let mut rep = produce_v9_resp(2);
    let mut m = 1i32.to_be_bytes().to_vec();
    m.extend(0i32.to_be_bytes());
    rep.extend(frame(&m));
    let mut whole = H::tcp(9092);
    whole.feed(S, &req);
    whole.feed(C, &rep);
    let want = whole.messages.clone();
    assert_eq!(want.len(), 4);
    for cut in 0..=req.len().max(rep.len()) {
        let mut h = H::tcp(9092);
        h.feed_split(S, &req, &[cut]);
        h.feed_split(C, &rep, &[cut]);
        assert!(h.errors.is_empty(), "cut {cut}: {:?}", h.errors);
        assert_eq!(h.messages, want, "cut {cut}");
    }
    let mut h = H::tcp(9092);
    let cuts: Vec<usize> = (0..req.len()).collect();
    h.feed_split(S, &req, &cuts);
    let cuts: Vec<usize> = (0..rep.len()).collect();
    h.feed_split(C, &rep, &cuts);
    assert_eq!(h.messages, want);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut h = H::tcp(9092);
    h.feed(S, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!h.errors.is_empty());
    assert!(h.messages.is_empty());
    // Further bytes on a dead direction are consumed quietly.
    h.feed(S, &metadata_v1(1));
    assert!(h.messages.is_empty());
    // Mid-frame start on the response side: negative size.
    let mut h = H::tcp(9092);
    h.feed(C, &[0xff, 0xff, 0xff, 0xf0, 1, 2, 3]);
    assert!(!h.errors.is_empty());
    // Unknown api key.
    let mut h = H::tcp(9092);
    h.feed(S, &frame(&header(200, 0, 1, "c", false)));
    assert!(!h.errors.is_empty());
    // Gap gives up on that direction.
    let mut h = H::tcp(9092);
    h.gap(S, 10);
    assert!(!h.errors.is_empty());
}

#[test]
fn probe() {
    let f = FlowInfo::tcp_test(1, 9092);
    assert!(matches!(
        Kafka::probe(&f, S, &metadata_v1(1)),
        Probe::Yes(_)
    ));
    assert_eq!(Kafka::probe(&f, S, &[0, 0]), Probe::NeedMore);
    assert_eq!(Kafka::probe(&f, S, b"GET / HTTP/1.1\r\n"), Probe::No);
    let other = FlowInfo::tcp_test(1, 80);
    assert_eq!(
        Kafka::probe(&other, C, &produce_v9_resp(1)),
        Probe::NeedMore
    );
}
