use proptest::prelude::*;
use remora_amqp::*;
use remora_sdk::native::Harness;
use remora_sdk::prelude::*;

type H = Harness<Amqp>;
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

fn frame(t: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![t];
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(0xCE);
    v
}

fn short(v: &mut Vec<u8>, s: &str) {
    v.push(s.len() as u8);
    v.extend_from_slice(s.as_bytes());
}

fn method(channel: u16, class: u16, m: u16, args: &[u8]) -> Vec<u8> {
    let mut p = class.to_be_bytes().to_vec();
    p.extend_from_slice(&m.to_be_bytes());
    p.extend_from_slice(args);
    frame(1, channel, &p)
}

fn queue_declare(channel: u16, q: &str, no_wait: bool) -> Vec<u8> {
    let mut a = vec![0, 0];
    short(&mut a, q);
    a.push(if no_wait { 0x10 } else { 0 });
    a.extend_from_slice(&0u32.to_be_bytes()); // empty table
    method(channel, 50, 10, &a)
}

fn queue_declare_ok(channel: u16, q: &str) -> Vec<u8> {
    let mut a = Vec::new();
    short(&mut a, q);
    a.extend_from_slice(&3u32.to_be_bytes());
    a.extend_from_slice(&1u32.to_be_bytes());
    method(channel, 50, 11, &a)
}

fn publish(channel: u16, ex: &str, rk: &str, body: &[u8], chunk: usize) -> Vec<u8> {
    let mut a = vec![0, 0];
    short(&mut a, ex);
    short(&mut a, rk);
    a.push(0);
    let mut v = method(channel, 60, 40, &a);
    let mut h = 60u16.to_be_bytes().to_vec();
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&(body.len() as u64).to_be_bytes());
    h.extend_from_slice(&[0, 0]); // no properties
    v.extend(frame(2, channel, &h));
    for c in body.chunks(chunk.max(1)) {
        v.extend(frame(3, channel, c));
    }
    v
}

fn deliver(channel: u16, tag: &str, dtag: u64, ex: &str, rk: &str, body: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    short(&mut a, tag);
    a.extend_from_slice(&dtag.to_be_bytes());
    a.push(0);
    short(&mut a, ex);
    short(&mut a, rk);
    let mut v = method(channel, 60, 60, &a);
    let mut h = 60u16.to_be_bytes().to_vec();
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&(body.len() as u64).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    v.extend(frame(2, channel, &h));
    if !body.is_empty() {
        v.extend(frame(3, channel, body));
    }
    v
}

fn ack(channel: u16, dtag: u64) -> Vec<u8> {
    let mut a = dtag.to_be_bytes().to_vec();
    a.push(0);
    method(channel, 60, 80, &a)
}

/// A client conversation: header, connection.start-ok, channel.open,
/// queue.declare, publish, ack, heartbeat.
fn client_bytes() -> Vec<u8> {
    let mut v = PROTOCOL_HEADER.to_vec();
    v.extend(method(
        0,
        10,
        11,
        &[0, 0, 0, 0, 5, b'P', b'L', b'A', b'I', b'N'],
    ));
    v.extend(method(1, 20, 10, &[0]));
    v.extend(queue_declare(1, "jobs", false));
    v.extend(publish(1, "", "jobs", b"hello world", 4));
    v.extend(ack(1, 7));
    v.extend(frame(8, 0, &[]));
    v
}

fn server_bytes() -> Vec<u8> {
    let mut v = method(0, 10, 10, &[0, 9, 0, 0, 0, 0]);
    v.extend(method(1, 20, 11, &[0, 0, 0, 0]));
    v.extend(queue_declare_ok(1, "jobs"));
    v.extend(deliver(1, "ctag-1", 7, "", "jobs", b"payload"));
    v.extend(frame(8, 0, &[]));
    v
}

fn run(cut_c: &[usize], cut_s: &[usize]) -> H {
    let mut h = H::tcp(5672);
    // Interleave as on the wire: start, start-ok, then the rest.
    let s = server_bytes();
    let c = client_bytes();
    h.feed_split(C, &s, cut_s);
    h.feed_split(S, &c, cut_c);
    h.end(S);
    h.end(C);
    h
}

#[test]
fn conversation() {
    let h = run(&[], &[]);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let m = &h.messages;
    let names: Vec<String> = m.iter().map(|x| s(x, F_METHOD).unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "connection.start",
            "channel.open-ok",
            "queue.declare-ok",
            "basic.deliver",
            "protocol-header",
            "connection.start-ok",
            "channel.open",
            "queue.declare",
            "basic.publish",
            "basic.ack",
        ]
    );
    // connection.start (server) is a request; start-ok its response.
    assert_eq!(m[0].kind, MessageKind::Request);
    assert_eq!(m[5].kind, MessageKind::Response);
    assert_eq!(m[0].txn, m[5].txn);
    // channel.open-ok arrived first: no request yet, standalone.
    assert_eq!(m[1].kind, MessageKind::Standalone);
    assert_eq!(m[6].kind, MessageKind::Request);
    assert_eq!(m[6].txn, 1u64 << 32);
    let d = &m[3];
    assert_eq!(d.kind, MessageKind::Standalone);
    assert_eq!(s(d, F_CONSUMER_TAG).as_deref(), Some("ctag-1"));
    assert_eq!(int(d, F_DELIVERY_TAG), Some(7));
    assert_eq!(s(d, F_EXCHANGE).as_deref(), Some(""));
    assert_eq!(s(d, F_ROUTING_KEY).as_deref(), Some("jobs"));
    assert_eq!(int(d, F_BODY_SIZE), Some(7));
    assert_eq!(d.body.as_ref().unwrap().data, b"payload");
    let p = &m[8];
    assert_eq!(int(p, F_BODY_SIZE), Some(11));
    assert_eq!(int(p, F_CHANNEL), Some(1));
    assert_eq!(s(p, F_CLASS).as_deref(), Some("basic"));
    assert_eq!(s(p, F_DIRECTION).as_deref(), Some("c2s"));
    assert_eq!(p.body.as_ref().unwrap().data, b"hello world");
    assert_eq!(int(&m[9], F_DELIVERY_TAG), Some(7));
}

#[test]
fn declare_pairs_with_declare_ok() {
    let mut h = H::tcp(5672);
    h.feed(S, &queue_declare(2, "a", false));
    h.feed(S, &queue_declare(2, "b", false));
    h.feed(C, &queue_declare_ok(2, "a"));
    h.feed(C, &queue_declare_ok(2, "b"));
    assert!(h.errors.is_empty());
    let m = &h.messages;
    assert_eq!(m.len(), 4);
    assert_eq!(m[0].txn, 2u64 << 32);
    assert_eq!(m[1].txn, (2u64 << 32) | 1);
    assert_eq!(m[2].kind, MessageKind::Response);
    assert_eq!(m[2].txn, m[0].txn);
    assert_eq!(m[3].txn, m[1].txn);
    assert_eq!(s(&m[2], F_QUEUE).as_deref(), Some("a"));
}

#[test]
fn no_wait_is_standalone() {
    let mut h = H::tcp(5672);
    h.feed(S, &queue_declare(1, "q", true));
    assert_eq!(h.messages[0].kind, MessageKind::Standalone);
}

#[test]
fn content_waits_for_body_and_big_body_is_skipped() {
    let mut h = H::tcp(5672);
    let body = vec![b'x'; 100_000];
    let bytes = publish(1, "ex", "rk", &body, 40_000);
    // Method and header alone: not emitted yet.
    let head_len = bytes.len() - (body.len() + 3 * 8);
    h.feed(S, &bytes[..head_len]);
    assert!(h.messages.is_empty());
    h.feed_split(S, &bytes[head_len..], &[10, 5000, 50_000]);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 1);
    let m = &h.messages[0];
    assert_eq!(int(m, F_BODY_SIZE), Some(100_000));
    let b = m.body.as_ref().unwrap();
    assert_eq!(b.data.len(), BODY_KEEP);
    assert!(b.truncated);
    assert!(h.bytes_skipped > 0);
}

/// Found by fuzzing: a body frame longer than the size the content header
/// declared made the kept body longer than the body itself.
#[test]
fn body_frame_beyond_declared_size_keeps_only_declared_bytes() {
    let mut bytes = publish(1, "ex", "rk", b"0123456789", 10);
    // Replace the 10-byte body frame by one of 300 bytes.
    bytes.truncate(bytes.len() - (10 + 8));
    bytes.extend(frame(3, 1, &[b'y'; 300]));
    let mut h = H::tcp(5672);
    h.feed(S, &bytes);
    assert_eq!(h.messages.len(), 1, "{:?}", h.errors);
    let b = h.messages[0].body.as_ref().expect("body");
    assert_eq!(b.original_len, 10);
    assert_eq!(b.data, vec![b'y'; 10]);
    assert!(!b.truncated);
}

#[test]
fn split_at_every_byte_is_equivalent() {
    let want = run(&[], &[]).messages;
    let c = client_bytes();
    let s = server_bytes();
    for cut in 0..c.len().max(s.len()) {
        let h = run(&[cut.min(c.len())], &[cut.min(s.len())]);
        assert!(h.errors.is_empty(), "cut {cut}: {:?}", h.errors);
        assert_eq!(h.messages, want, "cut {cut}");
    }
    let h = run(
        &(0..c.len()).collect::<Vec<_>>(),
        &(0..s.len()).collect::<Vec<_>>(),
    );
    assert_eq!(h.messages, want);
}

#[test]
fn garbage_is_an_error() {
    let mut h = H::tcp(5672);
    h.feed(S, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(h.errors.len(), 1);
    h.feed(S, &ack(1, 1));
    assert!(h.messages.is_empty());
    // Bad end octet.
    let mut h = H::tcp(5672);
    let mut f = ack(1, 1);
    *f.last_mut().unwrap() = 0;
    h.feed(S, &f);
    assert_eq!(h.errors.len(), 1);
    // Oversized method frame.
    let mut h = H::tcp(5672);
    h.feed(S, &[1, 0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 60, 0, 40]);
    assert_eq!(h.errors.len(), 1);
}

#[test]
fn gap_flushes_and_stops() {
    let mut h = H::tcp(5672);
    let bytes = publish(1, "ex", "rk", b"abcdef", 10);
    h.feed(S, &bytes[..bytes.len() - 5]);
    h.gap(S, 100);
    assert_eq!(h.errors.len(), 1);
    assert_eq!(h.messages.len(), 1);
    assert_eq!(int(&h.messages[0], F_BODY_SIZE), Some(6));
}

#[test]
fn all_methods_named() {
    let mut n = 0;
    for class in [10u16, 20, 40, 50, 60, 85, 90] {
        for m in 0..=130u16 {
            if let Some(name) = method_name(class, m) {
                n += 1;
                assert!(name.starts_with(class_name(class).unwrap()));
            }
        }
    }
    assert_eq!(n, 64);
}

#[test]
fn probe() {
    assert_eq!(probe_bytes(PROTOCOL_HEADER), Probe::Yes(90));
    assert_eq!(probe_bytes(b"AMQ"), Probe::NeedMore);
    assert_eq!(probe_bytes(b"GET / "), Probe::No);
    assert!(matches!(probe_bytes(&ack(1, 1)), Probe::Yes(_)));
    assert!(matches!(probe_bytes(&server_bytes()), Probe::Yes(_)));
    assert_eq!(probe_bytes(&[1, 0]), Probe::NeedMore);
    assert_eq!(probe_bytes(&[0x16, 3, 1]), Probe::No);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(
        a in proptest::collection::vec(any::<u8>(), 0..512),
        b in proptest::collection::vec(any::<u8>(), 0..512),
        cut in 0usize..512,
    ) {
        let mut h = H::tcp(5672);
        h.feed_split(S, &a, &[cut.min(a.len())]);
        h.feed(C, &b);
        h.end(S);
        h.end(C);
        let _ = probe_bytes(&a);
    }

    #[test]
    fn random_frames_never_panic(
        frames in proptest::collection::vec(
            (0u8..10, 0u16..3, 0u16..100, 0u16..130,
             proptest::collection::vec(any::<u8>(), 0..40)), 0..20),
    ) {
        let mut bytes = PROTOCOL_HEADER.to_vec();
        for (t, ch, class, m, args) in frames {
            if t == 1 {
                bytes.extend(method(ch, class, m, &args));
            } else {
                bytes.extend(frame(t, ch, &args));
            }
        }
        let mut h = H::tcp(5672);
        let cuts: Vec<usize> = (0..bytes.len()).step_by(7).collect();
        h.feed_split(S, &bytes, &cuts);
        h.end(S);
    }
}
