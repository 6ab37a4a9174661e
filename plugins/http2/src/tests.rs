use super::hpack::encode;
use super::*;
use proptest::prelude::*;
use remora_sdk::native::Harness;

const C: Direction = Direction::ToServer;
const S: Direction = Direction::ToClient;

fn frame(ty: u8, flags: u8, sid: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut v = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, ty, flags];
    v.extend_from_slice(&sid.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn settings() -> Vec<u8> {
    frame(T_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])
}

fn client_start() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(settings());
    v
}

fn req_block(method: &str, path: &str, extra: &[(&str, &str)], huff: bool) -> Vec<u8> {
    let mut b = Vec::new();
    encode::literal(&mut b, ":method", method, huff);
    encode::literal(&mut b, ":path", path, huff);
    encode::indexed(&mut b, 6); // :scheme http
    encode::literal(&mut b, ":authority", "example.com", huff);
    for (n, v) in extra {
        encode::literal(&mut b, n, v, huff);
    }
    b
}

fn status_block(status: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    encode::literal_plain(&mut b, ":status", status);
    for (n, v) in extra {
        encode::literal_plain(&mut b, n, v);
    }
    b
}

fn field(m: &Message, id: u16) -> Option<Value> {
    m.value(id).cloned()
}

fn s(m: &Message, id: u16) -> Option<String> {
    match m.value(id)? {
        Value::Str(Text::Owned(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(m: &Message, id: u16) -> Option<i64> {
    match m.value(id)? {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn get_exchange() -> (Vec<u8>, Vec<u8>) {
    let mut c = client_start();
    c.extend(frame(
        T_HEADERS,
        0x5,
        1,
        &req_block("GET", "/a?x=1", &[], false),
    ));
    let mut sv = settings();
    sv.extend(frame(T_SETTINGS, 1, 0, &[]));
    sv.extend(frame(
        T_HEADERS,
        0x4,
        1,
        &status_block("200", &[("content-type", "text/plain")]),
    ));
    sv.extend(frame(T_DATA, 0, 1, b"hello "));
    sv.extend(frame(T_DATA, 1, 1, b"world"));
    (c, sv)
}

#[test]
fn huffman_roundtrip() {
    for s in [
        "",
        "www.example.com",
        "no-cache",
        "custom-key",
        "Mon, 21 Oct 2013 20:13:21 GMT",
        "\u{0}\u{ff}",
    ] {
        let enc = encode::huffman(s.as_bytes());
        let mut out = Vec::new();
        hpack::huffman(&enc, &mut out).unwrap();
        assert_eq!(out, s.as_bytes());
    }
    // RFC 7541 C.4.1: "www.example.com"
    let rfc = [
        0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
    ];
    let mut out = Vec::new();
    hpack::huffman(&rfc, &mut out).unwrap();
    assert_eq!(out, b"www.example.com");
    // Bad padding (a zero bit) is an error.
    assert!(hpack::huffman(&[0xf1, 0x00], &mut Vec::new()).is_err());
}

/// The RFC's decoding, one bit at a time: the reference the table-driven
/// `hpack::huffman` must agree with, result and error alike.
fn huffman_bitwise(src: &[u8], out: &mut Vec<u8>) -> Result<(), hpack::Error> {
    use crate::tables::HUFFMAN;
    let mut code = 0u32;
    let mut len = 0u8;
    for &byte in src {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > 30 {
                return Err(hpack::Error::Huffman);
            }
            if let Some(sym) = (0..257).find(|&s| HUFFMAN[s] == (code, len)) {
                if sym == 256 {
                    return Err(hpack::Error::Huffman);
                }
                if out.len() >= hpack::MAX_STRING {
                    return Err(hpack::Error::TooLong);
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            }
        }
    }
    if len >= 8 || code != (1u32 << len) - 1 {
        return Err(hpack::Error::Huffman);
    }
    Ok(())
}

fn huffman_agrees(src: &[u8]) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let ra = hpack::huffman(src, &mut a);
    let rb = huffman_bitwise(src, &mut b);
    assert_eq!((ra, &a), (rb, &b), "{src:02x?}");
}

#[test]
fn huffman_every_symbol_and_the_limits() {
    // Every symbol, alone and after each other symbol (all code lengths and
    // alignments), then EOS inside a string, long and bad padding, the cap.
    for x in 0..=255u8 {
        huffman_agrees(&encode::huffman(&[x]));
        for y in (0..=255u8).step_by(7) {
            huffman_agrees(&encode::huffman(&[y, x, y]));
        }
    }
    let mut eos = encode::huffman(b"a");
    eos.extend([0xff, 0xff, 0xff, 0xff]);
    huffman_agrees(&eos);
    huffman_agrees(&[0xff; 4]);
    huffman_agrees(&[0xfe]);
    huffman_agrees(&[0x00, 0xff]);
    let long = encode::huffman(&vec![b'0'; hpack::MAX_STRING + 1]);
    huffman_agrees(&long);
    assert_eq!(
        hpack::huffman(&long, &mut Vec::new()),
        Err(hpack::Error::TooLong)
    );
}

#[test]
fn hpack_rfc_c3_dynamic_table() {
    // RFC 7541 C.3.1 and C.3.2 (requests without Huffman).
    let r1 = hex("828684410f7777772e6578616d706c652e636f6d");
    let r2 = hex("828684be58086e6f2d6361636865");
    let mut d = hpack::Decoder::new();
    let mut got = Vec::new();
    d.decode(&r1, |n, v| got.push((n, v))).unwrap();
    assert_eq!(
        got[3],
        (b":authority".to_vec(), b"www.example.com".to_vec())
    );
    got.clear();
    d.decode(&r2, |n, v| got.push((n, v))).unwrap();
    assert_eq!(
        got[3],
        (b":authority".to_vec(), b"www.example.com".to_vec())
    );
    assert_eq!(got[4], (b"cache-control".to_vec(), b"no-cache".to_vec()));
    assert_eq!(d.len(), 2);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn get_with_response() {
    let (c, sv) = get_exchange();
    let mut h = Harness::<Http2>::tcp(18081);
    h.feed(C, &c);
    h.feed(S, &sv);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let (q, r) = (&h.messages[0], &h.messages[1]);
    assert_eq!(q.kind, MessageKind::Request);
    assert_eq!(q.txn, 1);
    assert_eq!(s(q, F_METHOD).as_deref(), Some("GET"));
    assert_eq!(s(q, F_URL).as_deref(), Some("/a?x=1"));
    assert_eq!(s(q, F_PATH).as_deref(), Some("/a"));
    assert_eq!(s(q, F_AUTHORITY).as_deref(), Some("example.com"));
    assert_eq!(s(q, F_HTTP_VERSION).as_deref(), Some("2"));
    assert_eq!(r.kind, MessageKind::Response);
    assert_eq!(int(r, F_STATUS_CODE), Some(200));
    assert_eq!(int(r, F_RESPONSE_BODY_SIZE), Some(11));
    assert_eq!(r.body.as_ref().unwrap().data, b"hello world");
    assert!(field(q, F_GRPC).is_none());
}

#[test]
fn split_at_every_byte_is_equivalent() {
    let (c, sv) = get_exchange();
    let mut whole = Harness::<Http2>::tcp(18081);
    whole.feed(C, &c);
    whole.feed(S, &sv);
    let mut split = Harness::<Http2>::tcp(18081);
    let cuts: Vec<usize> = (1..c.len()).collect();
    split.feed_split(C, &c, &cuts);
    let cuts: Vec<usize> = (1..sv.len()).collect();
    split.feed_split(S, &sv, &cuts);
    assert_eq!(whole.messages, split.messages);
    assert!(split.errors.is_empty());
}

#[test]
fn post_with_padded_data_and_cap() {
    remora_sdk::native::set_config("body-cap", "4");
    let mut c = client_start();
    c.extend(frame(
        T_HEADERS,
        0x4,
        3,
        &req_block("POST", "/up", &[], true),
    ));
    let mut padded = vec![3u8];
    padded.extend_from_slice(b"abcdef");
    padded.extend_from_slice(&[0, 0, 0]);
    c.extend(frame(T_DATA, FL_PADDED, 3, &padded));
    c.extend(frame(T_DATA, 1, 3, &[b'x'; 1000]));
    let mut h = Harness::<Http2>::tcp(18081);
    h.feed(C, &c);
    h.feed(S, &settings());
    h.feed(S, &frame(T_HEADERS, 0x5, 3, &status_block("201", &[])));
    remora_sdk::native::clear_config();
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let q = &h.messages[0];
    assert_eq!(s(q, F_METHOD).as_deref(), Some("POST"));
    assert_eq!(int(q, F_REQUEST_BODY_SIZE), Some(1006));
    let b = q.body.as_ref().unwrap();
    assert_eq!(
        (b.data.as_slice(), b.original_len, b.truncated),
        (&b"abcd"[..], 1006, true)
    );
    assert!(h.bytes_skipped > 0);
    assert_eq!(int(&h.messages[1], F_STATUS_CODE), Some(201));
}

#[test]
fn continuation_and_priority() {
    let block = req_block("GET", "/cont", &[("x-long", &"v".repeat(300))], false);
    let (a, b) = block.split_at(10);
    let mut payload = vec![0, 0, 0, 0, 16]; // priority
    payload.extend_from_slice(a);
    let mut c = client_start();
    c.extend(frame(T_HEADERS, FL_PRIORITY | FL_END_STREAM, 5, &payload));
    let (b1, b2) = b.split_at(100);
    c.extend(frame(T_CONT, 0, 5, b1));
    c.extend(frame(T_CONT, FL_END_HEADERS, 5, b2));
    let mut h = Harness::<Http2>::tcp(18081);
    h.feed(C, &c);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 1);
    let q = &h.messages[0];
    assert_eq!(s(q, F_PATH).as_deref(), Some("/cont"));
    assert!(q
        .values(F_HEADERS)
        .any(|v| matches!(v, Value::Pair(Text::Owned(n), Text::Owned(v)) if n == "x-long" && v.len() == 300)));
}

#[test]
fn dynamic_table_reused_across_requests() {
    let mut c = client_start();
    c.extend(frame(
        T_HEADERS,
        0x5,
        1,
        &req_block("GET", "/one", &[("x-token", "abc")], true),
    ));
    // Second request: indexed references to the dynamic table entries
    // (newest first: x-token=62, :authority=63, :path=64, :method=65).
    let mut b = Vec::new();
    encode::indexed(&mut b, 65);
    encode::indexed(&mut b, 64);
    encode::indexed(&mut b, 63);
    encode::indexed(&mut b, 62);
    c.extend(frame(T_HEADERS, 0x5, 3, &b));
    let mut h = Harness::<Http2>::tcp(18081);
    h.feed(C, &c);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let q = &h.messages[1];
    assert_eq!(q.txn, 3);
    assert_eq!(s(q, F_METHOD).as_deref(), Some("GET"));
    assert_eq!(s(q, F_PATH).as_deref(), Some("/one"));
    assert_eq!(s(q, F_AUTHORITY).as_deref(), Some("example.com"));
}

fn grpc_request(sid: u32) -> Vec<u8> {
    let mut c = frame(
        T_HEADERS,
        0x4,
        sid,
        &req_block(
            "POST",
            "/pkg.Greeter/SayHello",
            &[("content-type", "application/grpc"), ("te", "trailers")],
            true,
        ),
    );
    let mut msg = vec![0, 0, 0, 0, 3];
    msg.extend_from_slice(b"abc");
    c.extend(frame(T_DATA, 1, sid, &msg));
    c
}

#[test]
fn grpc_unary_with_trailers() {
    let mut c = client_start();
    c.extend(grpc_request(1));
    let mut sv = settings();
    sv.extend(frame(
        T_HEADERS,
        0x4,
        1,
        &status_block("200", &[("content-type", "application/grpc")]),
    ));
    let mut msgs = vec![0, 0, 0, 0, 2, b'h', b'i', 1, 0, 0, 0, 1];
    msgs.push(b'z');
    let (m1, m2) = msgs.split_at(6);
    sv.extend(frame(T_DATA, 0, 1, m1));
    sv.extend(frame(T_DATA, 0, 1, m2));
    sv.extend(frame(
        T_HEADERS,
        0x5,
        1,
        &status_block_trailers(&[("grpc-status", "0"), ("grpc-message", "")]),
    ));
    let mut h = Harness::<Http2>::tcp(50051);
    h.feed(C, &c);
    h.feed(S, &sv);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let (q, r) = (&h.messages[0], &h.messages[1]);
    assert_eq!(field(q, F_GRPC), Some(Value::Boolean(true)));
    assert_eq!(s(q, F_GRPC_SERVICE).as_deref(), Some("pkg.Greeter"));
    assert_eq!(s(q, F_GRPC_METHOD).as_deref(), Some("SayHello"));
    assert_eq!(int(q, F_GRPC_REQUEST_MESSAGES), Some(1));
    assert_eq!(int(q, F_GRPC_REQUEST_MESSAGE_BYTES), Some(3));
    assert_eq!(int(r, F_GRPC_STATUS), Some(0));
    assert_eq!(int(r, F_GRPC_RESPONSE_MESSAGES), Some(2));
    assert_eq!(int(r, F_GRPC_RESPONSE_MESSAGE_BYTES), Some(3));
    assert_eq!(field(r, F_GRPC_COMPRESSED), Some(Value::Boolean(true)));
    assert_eq!(int(r, F_RESPONSE_BODY_SIZE), Some(13));
    assert!(r.values(F_TRAILERS).count() == 2);
}

fn status_block_trailers(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        encode::literal_plain(&mut b, n, v);
    }
    b
}

#[test]
fn grpc_trailers_only_error() {
    let mut c = client_start();
    c.extend(grpc_request(1));
    let mut sv = settings();
    sv.extend(frame(
        T_HEADERS,
        0x5,
        1,
        &status_block(
            "200",
            &[
                ("content-type", "application/grpc"),
                ("grpc-status", "5"),
                ("grpc-message", "not found"),
            ],
        ),
    ));
    let mut h = Harness::<Http2>::tcp(50051);
    h.feed(C, &c);
    h.feed(S, &sv);
    assert_eq!(h.messages.len(), 2);
    let r = &h.messages[1];
    assert_eq!(int(r, F_GRPC_STATUS), Some(5));
    assert_eq!(s(r, F_GRPC_MESSAGE).as_deref(), Some("not found"));
    assert_eq!(int(r, F_GRPC_RESPONSE_MESSAGES), Some(0));
}

#[test]
fn rst_stream_ends_stream() {
    let mut c = client_start();
    c.extend(frame(
        T_HEADERS,
        0x4,
        1,
        &req_block("POST", "/x", &[], false),
    ));
    c.extend(frame(T_DATA, 0, 1, b"partial"));
    c.extend(frame(T_RST, 0, 1, &8u32.to_be_bytes()));
    let mut h = Harness::<Http2>::tcp(18081);
    h.feed(C, &c);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 1);
    assert_eq!(int(&h.messages[0], F_RST_ERROR), Some(8));
    assert_eq!(int(&h.messages[0], F_REQUEST_BODY_SIZE), Some(7));
}

#[test]
fn streams_flushed_at_end() {
    let mut c = client_start();
    c.extend(frame(
        T_HEADERS,
        0x5,
        1,
        &req_block("GET", "/slow", &[], false),
    ));
    let mut h = Harness::<Http2>::tcp(18081);
    h.feed(C, &c);
    h.feed(S, &settings());
    h.feed(S, &frame(T_HEADERS, 0x4, 1, &status_block("200", &[])));
    h.end(C);
    h.end(S);
    assert_eq!(h.messages.len(), 2);
    assert_eq!(int(&h.messages[1], F_STATUS_CODE), Some(200));
}

#[test]
fn midstream_pickup_marks_unknown() {
    // No preface; indexed reference to a dynamic entry we never saw.
    let mut b = Vec::new();
    encode::indexed(&mut b, 3); // :method POST
    encode::indexed(&mut b, 70);
    encode::literal_plain(&mut b, ":path", "/svc.S/M");
    let c = frame(T_HEADERS, 0x5, 7, &b);
    assert_eq!(probe_bytes(true, C, &c), Probe::Yes(20));
    assert_eq!(probe_bytes(false, C, &c), Probe::No);
    let mut h = Harness::<Http2>::tcp(30035);
    h.feed(C, &c);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 1);
    let q = &h.messages[0];
    assert_eq!(s(q, F_METHOD).as_deref(), Some("POST"));
    assert_eq!(s(q, F_PATH).as_deref(), Some("/svc.S/M"));
    assert_eq!(field(q, F_HEADERS_UNKNOWN), Some(Value::Boolean(true)));
}

#[test]
fn probe_preface() {
    assert_eq!(probe_bytes(false, C, PREFACE), Probe::Yes(100));
    assert_eq!(probe_bytes(false, C, &PREFACE[..5]), Probe::NeedMore);
    assert_eq!(probe_bytes(false, C, b"GET / HTTP/1.1\r\n"), Probe::No);
    assert_eq!(probe_bytes(true, C, b"GET / HTTP/1.1\r\n"), Probe::No);
}

/// The python grpcio server's opening frames, sent on accept before the
/// client's preface (tests/fixtures/grpc/grpc-python.pcap frame 4): SETTINGS
/// (4, 5, 6 and gRPC's 0xfe03) then a connection WINDOW_UPDATE.
const GRPCIO_SERVER_OPENING: &str = concat!(
    "0000180400000000000004003fffff0005003fffff000600002000fe0300000001",
    "000004080000000000003f0000",
);

#[test]
fn probe_server_settings_first() {
    let sv = hex(GRPCIO_SERVER_OPENING);
    // Unhinted port (the fixture's server is on 25051).
    assert_eq!(probe_bytes(false, S, &sv), Probe::Yes(90));
    assert_eq!(probe_bytes(true, S, &sv), Probe::Yes(90));
    assert_eq!(probe_bytes(false, S, &sv[..9 + 24]), Probe::Yes(90));
    // Cut anywhere inside the SETTINGS frame: undecided, not refused.
    for n in 0..9 + 24 {
        assert_eq!(
            probe_bytes(false, S, &sv[..n]),
            Probe::NeedMore,
            "{n} bytes"
        );
    }
    // An empty SETTINGS is too little to claim a flow; the preface decides.
    assert_eq!(
        probe_bytes(false, S, &frame(T_SETTINGS, 0, 0, &[])),
        Probe::NeedMore
    );
    // The same bytes from the client are not the preface.
    assert_eq!(probe_bytes(false, C, &sv), Probe::No);
}

#[test]
fn probe_server_settings_is_strict() {
    let ok = [0, 4, 0, 0, 0xff, 0xff];
    let cases: [(&str, Vec<u8>); 9] = [
        ("SETTINGS ack", frame(T_SETTINGS, FL_ACK, 0, &ok)),
        ("on a stream", frame(T_SETTINGS, 0, 1, &ok)),
        ("not SETTINGS", frame(T_WINDOW, 0, 0, &[0, 0, 0, 1, 0, 0])),
        (
            "length not a multiple of 6",
            frame(T_SETTINGS, 0, 0, &ok[..5]),
        ),
        (
            "unknown setting id",
            frame(T_SETTINGS, 0, 0, &[0x12, 0x34, 0, 0, 0, 1]),
        ),
        (
            "ENABLE_PUSH 2",
            frame(T_SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]),
        ),
        (
            "MAX_FRAME_SIZE too small",
            frame(T_SETTINGS, 0, 0, &[0, 5, 0, 0, 0x10, 0]),
        ),
        (
            "too many settings",
            frame(T_SETTINGS, 0, 0, &ok.repeat(MAX_OPENING_SETTINGS + 1)),
        ),
        // A MySQL server greeting: length 0x4a, sequence 0, protocol 10.
        (
            "mysql greeting",
            hex("4a0000000a31302e31312e3131004c000000"),
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(probe_bytes(false, S, &bytes), Probe::No, "{what}");
    }
    // A bad setting already seen in a partial frame refuses at once.
    let mut partial = frame(
        T_SETTINGS,
        0,
        0,
        &[0x12, 0x34, 0, 0, 0, 1, 0, 4, 0, 0, 0, 1],
    );
    partial.truncate(9 + 6);
    assert_eq!(probe_bytes(false, S, &partial), Probe::No);
}

#[test]
fn server_settings_before_client_preface() {
    // The server speaks first (gRPC C-core does on accept); the dissect stage
    // replays its bytes before any of the client's.
    let mut sv = hex(GRPCIO_SERVER_OPENING);
    let mut h = Harness::<Http2>::tcp(25051);
    h.feed(S, &sv);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert!(h.messages.is_empty());
    let mut c = client_start();
    c.extend(frame(
        T_HEADERS,
        0x4,
        1,
        &req_block(
            "POST",
            "/remora.fixture.Greeter/Hello",
            &[("content-type", "application/grpc")],
            true,
        ),
    ));
    c.extend(frame(T_DATA, FL_END_STREAM, 1, &[0, 0, 0, 0, 2, 0x0a, 0]));
    h.feed(C, &c);
    sv.clear();
    sv.extend(frame(T_SETTINGS, FL_ACK, 0, &[]));
    sv.extend(frame(
        T_HEADERS,
        0x4,
        1,
        &status_block("200", &[("content-type", "application/grpc")]),
    ));
    sv.extend(frame(T_DATA, 0, 1, &[0, 0, 0, 0, 3, 1, 2, 3]));
    sv.extend(frame(
        T_HEADERS,
        0x5,
        1,
        &status_block_trailers(&[("grpc-status", "0")]),
    ));
    h.feed(S, &sv);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let (q, r) = (&h.messages[0], &h.messages[1]);
    assert_eq!(q.kind, MessageKind::Request);
    assert_eq!(
        s(q, F_GRPC_SERVICE).as_deref(),
        Some("remora.fixture.Greeter")
    );
    assert_eq!(s(q, F_GRPC_METHOD).as_deref(), Some("Hello"));
    assert_eq!(int(q, F_GRPC_REQUEST_MESSAGE_BYTES), Some(2));
    assert!(field(q, F_HEADERS_UNKNOWN).is_none());
    assert_eq!(r.kind, MessageKind::Response);
    assert_eq!(int(r, F_STATUS_CODE), Some(200));
    assert_eq!(int(r, F_GRPC_STATUS), Some(0));
    assert_eq!(int(r, F_GRPC_RESPONSE_MESSAGES), Some(1));
    // The server's HPACK state was followed from its first frame.
    assert!(field(r, F_HEADERS_UNKNOWN).is_none());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut h = Harness::<Http2>::tcp(18081);
    h.feed(C, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!h.errors.is_empty());
    let mut h = Harness::<Http2>::tcp(18081);
    let mut c = client_start();
    c.extend(frame(
        T_HEADERS,
        0x5,
        1,
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    ));
    h.feed(C, &c);
    assert!(!h.errors.is_empty());
    assert!(h.messages.is_empty());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(a in proptest::collection::vec(any::<u8>(), 0..2048),
                                b in proptest::collection::vec(any::<u8>(), 0..2048),
                                preface in any::<bool>()) {
        let mut h = Harness::<Http2>::tcp(18081);
        let mut c = if preface { client_start() } else { Vec::new() };
        c.extend_from_slice(&a);
        h.feed(C, &c);
        h.feed(S, &b);
        h.end(C);
        h.end(S);
        let _ = probe_bytes(true, C, &a);
        let _ = hpack::Decoder::new().decode(&b, |_, _| {});
        let _ = hpack::huffman(&a, &mut Vec::new());
    }

    #[test]
    fn huffman_agrees_with_the_bitwise_decoding(
        text in proptest::collection::vec(any::<u8>(), 0..64),
        tail in proptest::collection::vec(any::<u8>(), 0..3),
        raw in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut enc = encode::huffman(&text);
        huffman_agrees(&enc);
        enc.extend(&tail);
        huffman_agrees(&enc);
        huffman_agrees(&raw);
    }

    #[test]
    fn random_frames_never_panic(frames in proptest::collection::vec(
        (0u8..12, any::<u8>(), 0u32..8, proptest::collection::vec(any::<u8>(), 0..64)), 0..24)) {
        let mut c = client_start();
        for (ty, fl, sid, p) in &frames {
            c.extend(frame(*ty, *fl, *sid, p));
        }
        let mut h = Harness::<Http2>::tcp(18081);
        h.feed(C, &c);
        h.feed(S, &c[24..]);
        h.end(C);
        h.end(S);
    }
}

#[test]
fn repeated_large_references_are_bounded() {
    let mut b = Vec::new();
    encode::literal(&mut b, "x-big", &"a".repeat(3000), false);
    for _ in 0..2000 {
        encode::indexed(&mut b, 62);
    }
    let mut d = hpack::Decoder::new();
    assert_eq!(d.decode(&b, |_, _| {}), Err(hpack::Error::TooLong));
}

#[test]
fn h2c_takeover_makes_the_upgrade_request_stream_1() {
    let params = vec![("upgrade".to_owned(), "h2c".to_owned())];
    let mut h = Harness::<Http2>::takeover(&FlowInfo::tcp_test(1, 8080), "HTTP", &params);
    h.feed(C, &client_start());
    h.feed(S, &settings());
    let mut resp = frame(T_HEADERS, FL_END_HEADERS, 1, &status_block("206", &[]));
    resp.extend(frame(T_DATA, FL_END_STREAM, 1, b"hello world"));
    h.feed(S, &resp);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2, "{:?}", h.messages);
    let (req, res) = (&h.messages[0], &h.messages[1]);
    assert_eq!((req.kind, req.txn), (MessageKind::Request, 1));
    assert_eq!(int(req, F_STREAM_ID), Some(1));
    assert_eq!(int(req, F_REQUEST_BODY_SIZE), Some(0));
    assert_eq!(s(req, F_METHOD), None);
    assert_eq!((res.kind, res.txn), (MessageKind::Response, 1));
    assert_eq!(int(res, F_STATUS_CODE), Some(206));
    assert_eq!(int(res, F_RESPONSE_BODY_SIZE), Some(11));
}

#[test]
fn a_takeover_that_is_not_h2c_leaves_stream_1_to_the_client() {
    // Without `upgrade=h2c` stream 1 is not half-closed: a response that
    // ends first waits for the client's END_STREAM, as on any stream.
    let params = vec![("upgrade".to_owned(), "something".to_owned())];
    let mut h = Harness::<Http2>::takeover(&FlowInfo::tcp_test(1, 8080), "HTTP", &params);
    h.feed(C, &client_start());
    h.feed(S, &settings());
    h.feed(
        S,
        &frame(
            T_HEADERS,
            FL_END_HEADERS | FL_END_STREAM,
            1,
            &status_block("206", &[]),
        ),
    );
    assert!(h.messages.is_empty(), "{:?}", h.messages);
}
