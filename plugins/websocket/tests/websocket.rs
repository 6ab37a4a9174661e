use proptest::prelude::*;
use remora_sdk::native::{self, Harness};
use remora_sdk::prelude::*;
use remora_websocket::*;

type H = Harness<WebSocket>;
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

/// A frame as a client (`mask` set) or server sends it.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = vec![(fin as u8) << 7 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => v.push(m | n as u8),
        n if n <= 0xffff => {
            v.push(m | 126);
            v.extend((n as u16).to_be_bytes());
        }
        n => {
            v.push(m | 127);
            v.extend((n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            v.extend(k);
            v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => v.extend(payload),
    }
    v
}

const K: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

#[test]
fn one_entry_per_frame_with_opcode_direction_mask_and_unmasked_text() {
    let mut h = H::tcp(18765);
    h.feed(S, &frame(true, 1, b"Hello", K));
    h.feed(C, &frame(true, 1, b"Hello", None));
    h.feed(S, &frame(true, 2, &[0, 1, 2, 255], K));
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 3);
    let m = &h.messages;
    assert!(m.iter().all(|m| m.kind == MessageKind::Standalone));
    assert_eq!(s(&m[0], F_OPCODE).as_deref(), Some("text"));
    assert_eq!(s(&m[0], F_REQUEST).as_deref(), Some("Hello"));
    assert_eq!(boolean(&m[0], F_MASKED), Some(true));
    assert_eq!(boolean(&m[0], F_FIN), Some(true));
    assert_eq!(int(&m[0], F_REQUEST_PAYLOAD_LENGTH), Some(5));
    assert_eq!(s(&m[1], F_RESPONSE).as_deref(), Some("Hello"));
    assert_eq!(boolean(&m[1], F_MASKED), Some(false));
    assert_eq!(int(&m[1], F_RESPONSE_PAYLOAD_LENGTH), Some(5));
    assert_eq!(s(&m[2], F_OPCODE).as_deref(), Some("binary"));
    assert_eq!(s(&m[2], F_REQUEST), None);
    assert_eq!(m[2].body.as_ref().unwrap().data, [0, 1, 2, 255]);
}

#[test]
fn fragments_are_one_entry_each_and_the_last_carries_the_joined_message() {
    let mut h = H::tcp(1);
    let wire = [
        frame(false, 1, b"Hello, ", K),
        frame(false, 0, b"World", K),
        frame(true, 9, b"ping", K), // control frames may interleave
        frame(true, 0, b"!", K),
    ]
    .concat();
    h.feed(S, &wire);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let m = &h.messages;
    assert_eq!(m.len(), 4);
    let ops: Vec<_> = m.iter().map(|m| s(m, F_OPCODE).unwrap()).collect();
    assert_eq!(ops, ["text", "continuation", "ping", "continuation"]);
    assert_eq!(s(&m[1], F_MESSAGE_OPCODE).as_deref(), Some("text"));
    assert_eq!(s(&m[1], F_REQUEST).as_deref(), Some("World"));
    assert_eq!(s(&m[3], F_MESSAGE).as_deref(), Some("Hello, World!"));
    assert_eq!(int(&m[3], F_MESSAGE_LENGTH), Some(13));
    assert_eq!(s(&m[0], F_MESSAGE), None);
}

#[test]
fn close_frames_carry_code_and_reason() {
    let mut h = H::tcp(1);
    h.feed(C, &frame(true, 8, b"\x03\xe8bye", None));
    let m = &h.messages[0];
    assert_eq!(s(m, F_OPCODE).as_deref(), Some("close"));
    assert_eq!(int(m, F_CLOSE_CODE), Some(1000));
    assert_eq!(s(m, F_RESPONSE).as_deref(), Some("bye"));
}

#[test]
fn payload_beyond_the_cap_is_skipped_not_passed() {
    native::set_config("body-cap", "100");
    let mut h = H::tcp(1);
    native::clear_config();
    let big = vec![b'a'; 70_000];
    let wire = [frame(true, 1, &big, K), frame(true, 10, b"x", K)].concat();
    h.feed_split(S, &wire, &[1000, 30_000, 69_000]);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let m = &h.messages[0];
    assert_eq!(int(m, F_PAYLOAD_LENGTH), Some(70_000));
    assert_eq!(s(m, F_REQUEST).unwrap(), "a".repeat(100));
    let b = m.body.as_ref().unwrap();
    assert!(b.truncated && b.data.len() == 100 && b.original_len == 70_000);
    assert!(h.bytes_skipped >= 69_000, "{}", h.bytes_skipped);
    assert_eq!(s(&h.messages[1], F_OPCODE).as_deref(), Some("pong"));
}

#[test]
fn compressed_frames_are_flagged_and_not_shown_as_text() {
    let mut h = H::tcp(1);
    let mut f = frame(true, 1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", None);
    f[0] |= 0x40;
    h.feed(C, &f);
    let m = &h.messages[0];
    assert_eq!(boolean(m, F_COMPRESSED), Some(true));
    assert_eq!(s(m, F_RESPONSE), None);
}

#[test]
fn reserved_opcode_is_an_error_and_stops_that_direction() {
    let mut h = H::tcp(1);
    h.feed(
        S,
        &[frame(true, 3, b"x", K), frame(true, 1, b"y", K)].concat(),
    );
    assert_eq!(h.errors.len(), 1);
    assert!(h.messages.is_empty());
    h.feed(C, &frame(true, 1, b"z", None));
    assert_eq!(h.messages.len(), 1);
}

#[test]
fn never_claims_a_flow_by_probing() {
    let flow = FlowInfo::tcp_test(1, 80);
    for data in [
        &frame(true, 1, b"hi", K)[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x00\x01",
    ] {
        assert_eq!(WebSocket::probe(&flow, S, data), Probe::No);
        assert_eq!(WebSocket::probe(&flow, C, data), Probe::No);
    }
}

proptest! {
    #[test]
    fn byte_by_byte_equals_one_shot(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6)) {
        let wire: Vec<u8> = payloads
            .iter()
            .enumerate()
            .flat_map(|(i, p)| frame(true, if i % 2 == 0 { 1 } else { 2 }, p, K))
            .collect();
        let mut one = H::tcp(1);
        one.feed(S, &wire);
        let mut each = H::tcp(1);
        for b in &wire {
            each.feed(S, std::slice::from_ref(b));
        }
        prop_assert_eq!(&one.messages, &each.messages);
        prop_assert_eq!(one.messages.len(), payloads.len());
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2000) {
        let mut h = H::tcp(1);
        h.feed_split(C, &data, &[cut]);
        h.end(C);
    }
}
