use proptest::prelude::*;
use remora_mysql::*;
use remora_sdk::native::Harness;
use remora_sdk::prelude::*;

type H = Harness<Mysql>;
const S: Direction = Direction::ToServer;
const C: Direction = Direction::ToClient;

const DEPRECATE_EOF: u32 = 0x100_0000;

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

fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut v = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
    v.extend_from_slice(payload);
    v
}

fn greeting(caps: u32) -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(b"10.11.6-MariaDB\0");
    p.extend_from_slice(&7u32.to_le_bytes()); // connection id
    p.extend_from_slice(b"abcdefgh\0"); // auth part 1 + filler
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(45); // charset
    p.extend_from_slice(&2u16.to_le_bytes()); // status
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    pkt(0, &p)
}

fn base_caps() -> u32 {
    0x8 | 0x200 | 0x8000 | 0x8_0000 // db, 4.1, secure connection, plugin auth
}

fn handshake_response(caps: u32, user: &str, db: Option<&str>) -> Vec<u8> {
    let caps = if db.is_some() {
        caps | 0x8
    } else {
        caps & !0x8
    };
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&(1u32 << 24).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    p.push(20);
    p.extend_from_slice(&[0xAA; 20]); // auth data: never surfaces
    if let Some(d) = db {
        p.extend_from_slice(d.as_bytes());
        p.push(0);
    }
    p.extend_from_slice(b"mysql_native_password\0");
    pkt(1, &p)
}

fn ok(seq: u8, affected: u8) -> Vec<u8> {
    pkt(seq, &[0, affected, 0, 2, 0, 0, 0])
}

fn err(seq: u8, code: u16, msg: &str) -> Vec<u8> {
    let mut p = vec![0xFF];
    p.extend_from_slice(&code.to_le_bytes());
    p.extend_from_slice(b"#42S02");
    p.extend_from_slice(msg.as_bytes());
    pkt(seq, &p)
}

fn command(cmd: u8, arg: &[u8]) -> Vec<u8> {
    let mut p = vec![cmd];
    p.extend_from_slice(arg);
    pkt(0, &p)
}

/// A text result set: `cols` columns, `rows` rows, EOF packets or (with
/// CLIENT_DEPRECATE_EOF) a final OK with the 0xFE header.
fn resultset(cols: u8, rows: usize, deprecate: bool) -> Vec<u8> {
    let mut v = pkt(1, &[cols]);
    let mut seq = 2u8;
    for i in 0..cols {
        let mut d = b"\x03def\x06evaldb\x05items\x05items".to_vec();
        d.push(4);
        d.extend_from_slice(format!("col{i}").as_bytes());
        d.extend_from_slice(&[0; 13]);
        v.extend(pkt(seq, &d));
        seq = seq.wrapping_add(1);
    }
    if !deprecate {
        v.extend(pkt(seq, &[0xFE, 0, 0, 2, 0]));
        seq = seq.wrapping_add(1);
    }
    for r in 0..rows {
        let val = format!("value-{r}");
        let mut row = Vec::new();
        for _ in 0..cols {
            row.push(val.len() as u8);
            row.extend_from_slice(val.as_bytes());
        }
        v.extend(pkt(seq, &row));
        seq = seq.wrapping_add(1);
    }
    if deprecate {
        v.extend(pkt(seq, &[0xFE, 0, 0, 2, 0, 0, 0]));
    } else {
        v.extend(pkt(seq, &[0xFE, 0, 0, 2, 0]));
    }
    v
}

/// A whole conversation: (direction, bytes) in wire order.
fn conversation(deprecate: bool) -> Vec<(Direction, Vec<u8>)> {
    let caps = base_caps() | if deprecate { DEPRECATE_EOF } else { 0 };
    let mut prepare_ok = vec![0];
    prepare_ok.extend_from_slice(&9u32.to_le_bytes());
    prepare_ok.extend_from_slice(&2u16.to_le_bytes()); // columns
    prepare_ok.extend_from_slice(&1u16.to_le_bytes()); // params
    prepare_ok.extend_from_slice(&[0, 0, 0]);
    let mut prep = pkt(1, &prepare_ok);
    let def = b"\x03def\x00\x00\x00\x01?\x00\x0c\x3f\x00\x00\x00\x00\x00\x08\x80\x00\x00\x00\x00";
    let mut seq = 2;
    for _ in 0..3 {
        prep.extend(pkt(seq, def));
        seq += 1;
        if !deprecate && seq == 3 {
            prep.extend(pkt(seq, &[0xFE, 0, 0, 2, 0]));
            seq += 1;
        }
    }
    if !deprecate {
        prep.extend(pkt(seq, &[0xFE, 0, 0, 2, 0]));
    }
    let mut exec = 9u32.to_le_bytes().to_vec();
    exec.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 8, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    // Binary rows begin with 0x00: rows, not OK packets.
    let mut exec_resp = pkt(1, &[2]);
    exec_resp.extend(pkt(2, def));
    exec_resp.extend(pkt(3, def));
    let mut seq = 4;
    if !deprecate {
        exec_resp.extend(pkt(seq, &[0xFE, 0, 0, 2, 0]));
        seq += 1;
    }
    exec_resp.extend(pkt(seq, &[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, b'x']));
    exec_resp.extend(pkt(
        seq + 1,
        if deprecate {
            &[0xFE, 0, 0, 2, 0, 0, 0][..]
        } else {
            &[0xFE, 0, 0, 2, 0][..]
        },
    ));
    vec![
        (C, greeting(0xF7FF | 0x80_0000 | 0x8_0000 | DEPRECATE_EOF)),
        (S, handshake_response(caps, "alice", Some("shop"))),
        (C, ok(2, 0)),
        (S, command(0x03, b"select id, name from items")),
        (C, resultset(2, 3, deprecate)),
        (S, command(0x03, b"SELECT * FROM nope")),
        (C, err(1, 1146, "Table 'shop.nope' doesn't exist")),
        (S, command(0x03, b"  insert into items values (1), (2)")),
        (C, ok(1, 2)),
        (S, command(0x03, b"SELECT 1 WHERE 0")),
        (C, resultset(1, 0, deprecate)),
        (S, command(0x16, b"SELECT a, b FROM t WHERE id = ?")),
        (C, prep),
        (S, pkt(0, &[&[0x17][..], &exec].concat())),
        (C, exec_resp),
        (S, command(0x19, &9u32.to_le_bytes())),
        (S, command(0x02, b"other")),
        (C, ok(1, 0)),
        (S, command(0x0E, b"")),
        (C, ok(1, 0)),
        (S, command(0x01, b"")),
    ]
}

fn run(conv: &[(Direction, Vec<u8>)]) -> H {
    let mut h = H::tcp(3306);
    for (d, b) in conv {
        h.feed(*d, b);
    }
    h.end(S);
    h.end(C);
    h
}

fn check_conversation(h: &H) {
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let m = &h.messages;
    let req = |i: usize| &m[i];
    // login
    assert_eq!(m[0].kind, MessageKind::Request);
    assert_eq!(s(req(0), F_COMMAND).as_deref(), Some("LOGIN"));
    assert_eq!(s(req(0), F_USER).as_deref(), Some("alice"));
    assert_eq!(s(req(0), F_DATABASE).as_deref(), Some("shop"));
    assert_eq!(m[1].kind, MessageKind::Response);
    assert_eq!(m[1].txn, m[0].txn);
    assert_eq!(s(&m[1], F_RESPONSE).as_deref(), Some("ok"));
    assert_eq!(
        s(&m[1], F_SERVER_VERSION).as_deref(),
        Some("10.11.6-MariaDB")
    );
    // no auth data anywhere
    for msg in m {
        for f in &msg.fields {
            if let Value::Str(Text::Owned(t)) = &f.value {
                assert!(!t.contains('\u{AA}') && !t.contains('\u{FFFD}'), "{t}");
            }
        }
    }
    // select: 3 rows
    assert_eq!(s(&m[2], F_SQL_COMMAND).as_deref(), Some("SELECT"));
    assert_eq!(s(&m[2], F_COMMAND).as_deref(), Some("COM_QUERY"));
    assert_eq!(
        s(&m[2], F_QUERY).as_deref(),
        Some("select id, name from items")
    );
    assert_eq!(s(&m[3], F_RESPONSE).as_deref(), Some("resultset"));
    assert_eq!(int(&m[3], F_ROWS), Some(3));
    // error
    assert_eq!(s(&m[5], F_RESPONSE).as_deref(), Some("error"));
    assert_eq!(int(&m[5], F_ERROR_CODE), Some(1146));
    assert_eq!(
        s(&m[5], F_ERROR).as_deref(),
        Some("Table 'shop.nope' doesn't exist")
    );
    // insert: affected rows
    assert_eq!(s(&m[6], F_SQL_COMMAND).as_deref(), Some("INSERT"));
    assert_eq!(s(&m[7], F_RESPONSE).as_deref(), Some("ok"));
    assert_eq!(int(&m[7], F_ROWS), Some(2));
    // empty result set
    assert_eq!(s(&m[9], F_RESPONSE).as_deref(), Some("resultset"));
    assert_eq!(int(&m[9], F_ROWS), Some(0));
    // prepare / execute / close
    assert_eq!(
        s(&m[10], F_SQL_COMMAND).as_deref(),
        Some("COM_STMT_PREPARE")
    );
    assert_eq!(s(&m[11], F_RESPONSE).as_deref(), Some("ok"));
    assert_eq!(s(&m[12], F_COMMAND).as_deref(), Some("COM_STMT_EXECUTE"));
    assert_eq!(
        s(&m[12], F_QUERY).as_deref(),
        Some("SELECT a, b FROM t WHERE id = ?")
    );
    assert_eq!(s(&m[13], F_RESPONSE).as_deref(), Some("resultset"));
    assert_eq!(int(&m[13], F_ROWS), Some(1));
    assert_eq!(m[14].kind, MessageKind::Standalone);
    assert_eq!(s(&m[14], F_COMMAND).as_deref(), Some("COM_STMT_CLOSE"));
    // init db, ping, quit
    assert_eq!(s(&m[15], F_DATABASE).as_deref(), Some("other"));
    assert_eq!(s(&m[16], F_RESPONSE).as_deref(), Some("ok"));
    assert_eq!(s(&m[17], F_SQL_COMMAND).as_deref(), Some("COM_PING"));
    assert_eq!(m[19].kind, MessageKind::Standalone);
    assert_eq!(s(&m[19], F_COMMAND).as_deref(), Some("COM_QUIT"));
    assert_eq!(m.len(), 20);
    // requests and responses pair in order
    for (i, msg) in m.iter().enumerate() {
        if msg.kind == MessageKind::Response {
            assert_eq!(m[i - 1].kind, MessageKind::Request);
            assert_eq!(m[i - 1].txn, msg.txn);
        }
    }
}

#[test]
fn conversation_with_eof_packets() {
    check_conversation(&run(&conversation(false)));
}

#[test]
fn conversation_with_deprecate_eof() {
    check_conversation(&run(&conversation(true)));
}

#[test]
fn split_at_every_byte_is_equivalent() {
    for deprecate in [false, true] {
        let conv = conversation(deprecate);
        let whole = run(&conv);
        let longest = conv.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        for cut in 0..=longest {
            let mut h = H::tcp(3306);
            for (d, b) in &conv {
                h.feed_split(*d, b, &[cut]);
            }
            h.end(S);
            h.end(C);
            assert_eq!(h.errors, whole.errors, "cut {cut}");
            assert_eq!(h.messages, whole.messages, "cut {cut}");
        }
        // and byte by byte
        let mut h = H::tcp(3306);
        for (d, b) in &conv {
            let cuts: Vec<usize> = (1..b.len()).collect();
            h.feed_split(*d, b, &cuts);
        }
        assert_eq!(h.messages, whole.messages);
    }
}

#[test]
fn auth_switch_then_error() {
    let mut h = H::tcp(3306);
    h.feed(C, &greeting(0xF7FF));
    h.feed(S, &handshake_response(base_caps(), "bob", None));
    let mut sw = vec![0xFE];
    sw.extend_from_slice(b"caching_sha2_password\0saltsaltsaltsaltsalt\0");
    h.feed(C, &pkt(2, &sw));
    h.feed(S, &pkt(3, &[0x55; 32]));
    h.feed(C, &pkt(4, &[0x01, 0x04])); // more data: perform full auth
    h.feed(S, &pkt(5, b"secret\0"));
    h.feed(C, &err(6, 1045, "Access denied for user 'bob'"));
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2, "{:?}", h.messages);
    let r = &h.messages[1];
    assert_eq!(s(r, F_RESPONSE).as_deref(), Some("error"));
    assert_eq!(int(r, F_ERROR_CODE), Some(1045));
    assert_eq!(s(&h.messages[0], F_USER).as_deref(), Some("bob"));
    assert_eq!(s(&h.messages[0], F_DATABASE), None);
}

#[test]
fn long_query_is_truncated_and_rows_are_skipped() {
    let mut h = H::tcp(3306);
    let q = format!("SELECT '{}'", "x".repeat(20_000));
    h.feed_split(S, &command(0x03, q.as_bytes()), &[100, 5000]);
    h.feed(C, &resultset(1, 300, false));
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let sent = s(&h.messages[0], F_QUERY).unwrap_or_default();
    assert_eq!(sent.len(), MAX_QUERY);
    assert_eq!(int(&h.messages[1], F_ROWS), Some(300));
    assert!(h.bytes_skipped > 10_000, "skipped {}", h.bytes_skipped);
}

#[test]
fn multi_byte_query_is_cut_at_a_char_boundary() {
    let mut h = H::tcp(3306);
    let q = format!("SELECT '{}'", "é".repeat(1000));
    h.feed(S, &command(0x03, q.as_bytes()));
    let sent = s(&h.messages[0], F_QUERY).unwrap_or_default();
    assert!(sent.len() <= MAX_QUERY && sent.len() >= MAX_QUERY - 1);
    assert!(!sent.contains('\u{FFFD}'));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut h = H::tcp(3306);
    h.feed(S, &command(0x03, b"SELECT 1"));
    h.feed(C, &pkt(1, &[0xFC])); // column count cut short
    assert_eq!(h.errors.len(), 1, "{:?}", h.errors);
    // the direction is given up: later bytes are ignored
    h.feed(C, b"\xff\xff\xff\xff\x00\x01");
    h.feed(S, &command(0x03, b"SELECT 2"));
    assert_eq!(h.messages.len(), 1);

    let mut h = H::tcp(3306);
    h.gap(C, 10);
    assert_eq!(h.errors.len(), 1);
}

#[test]
fn ssl_request_stops_dissection() {
    let mut h = H::tcp(3306);
    h.feed(C, &greeting(0xFFFF));
    let mut p = (0x200u32 | 0x800 | 0x8000).to_le_bytes().to_vec();
    p.extend_from_slice(&[0; 28]);
    h.feed(S, &pkt(1, &p));
    h.feed(S, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    assert!(h.messages.is_empty());
    assert!(h.errors.is_empty());
}

#[test]
fn probe() {
    let f = FlowInfo::tcp_test(1, 3306);
    let other = FlowInfo::tcp_test(1, 8080);
    let g = greeting(0xFFFF);
    assert_eq!(Mysql::probe(&other, C, &g), Probe::Yes(80));
    assert_eq!(Mysql::probe(&f, C, &g[..4]), Probe::NeedMore);
    assert_eq!(Mysql::probe(&other, C, &g[..12]), Probe::NeedMore);
    assert_eq!(
        Mysql::probe(&f, S, &command(0x03, b"SELECT 1")),
        Probe::Yes(50)
    );
    assert_eq!(
        Mysql::probe(&other, S, &command(0x03, b"SELECT 1")),
        Probe::No
    );
    assert_eq!(Mysql::probe(&other, S, b"GET / HTTP/1.1\r\n"), Probe::No);
    assert_eq!(Mysql::probe(&other, C, b"HTTP/1.1 200 OK\r\n"), Probe::No);
    assert_eq!(first_word(" \n(select 1)"), "SELECT");
    assert_eq!(command_name(0x17), "COM_STMT_EXECUTE");
}

proptest! {
    #[test]
    fn random_bytes_never_panic(a in proptest::collection::vec(any::<u8>(), 0..512),
                                b in proptest::collection::vec(any::<u8>(), 0..512),
                                cut in 0usize..512) {
        let f = FlowInfo::tcp_test(1, 3306);
        let _ = Mysql::probe(&f, S, &a);
        let _ = Mysql::probe(&f, C, &b);
        let mut h = H::tcp(3306);
        h.feed_split(S, &a, &[cut]);
        h.feed_split(C, &b, &[cut]);
        h.gap(C, 3);
        h.end(S);
        h.end(C);
    }

    #[test]
    fn packet_shaped_bytes_never_panic(
        pkts in proptest::collection::vec(
            (any::<bool>(), 0u8..4, prop_oneof![
                Just(vec![0u8, 1, 0, 2, 0, 0, 0]), Just(vec![0xFE, 0, 0, 2, 0]),
                Just(vec![0xFF, 1, 2, b'#']), Just(vec![3, b'd', b'e', b'f']),
                Just(vec![0x03, b'S']), Just(vec![0x16]), Just(vec![0x17, 9, 0, 0, 0]),
                Just(vec![0xFB]), Just(vec![0xFC]), Just(vec![2]), Just(vec![10, b'5', 0]),
                proptest::collection::vec(any::<u8>(), 0..24)]),
            0..60),
        cut in 0usize..64) {
        let mut h = H::tcp(3306);
        let mut whole = H::tcp(3306);
        for (to_server, seq, p) in &pkts {
            let d = if *to_server { S } else { C };
            let bytes = pkt(*seq, p);
            h.feed_split(d, &bytes, &[cut]);
            whole.feed(d, &bytes);
        }
        prop_assert_eq!(h.messages, whole.messages);
        prop_assert_eq!(h.errors, whole.errors);
    }
}

/// MariaDB's MARIADB_CLIENT_CACHE_METADATA (extended capability bit 4).
const CACHE_METADATA: u32 = 0x10;
/// The other extended capabilities MariaDB 10.11 and Connector/C agree on:
/// progress, bulk operations, extended type info.
const OTHER_EXT_CAPS: u32 = 0x0d;

/// A MariaDB greeting (CLIENT_MYSQL clear) whose last 4 reserved bytes carry
/// the extended capabilities `ext`.
fn mariadb_greeting(caps: u32, ext: u32) -> Vec<u8> {
    let mut g = greeting(caps & !1);
    // header(4) + protocol(1) + "10.11.6-MariaDB\0"(16) + conn id(4) + auth(8)
    // + filler(1) + caps(2) + charset(1) + status(2) + caps(2) + auth len(1)
    // + reserved(6)
    let at = 4 + 1 + 16 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6;
    g[at..at + 4].copy_from_slice(&ext.to_le_bytes());
    g
}

/// A MariaDB HandshakeResponse41: the last 4 filler bytes carry `ext`.
fn mariadb_handshake_response(caps: u32, ext: u32) -> Vec<u8> {
    let mut r = handshake_response(caps & !1, "app", Some("shop"));
    let at = 4 + 4 + 4 + 1 + 19;
    r[at..at + 4].copy_from_slice(&ext.to_le_bytes());
    r
}

/// COM_STMT_EXECUTE of statement 1 under MARIADB_CLIENT_CACHE_METADATA: the
/// first execute sends the column definitions ("metadata follows" 1), the
/// second does not (0) — as MariaDB 10.11 answers DBD::MariaDB in
/// tests/fixtures/mysql/mysql.pcap frames 178 and 180.
fn cached_metadata_conversation(deprecate: bool, ext: u32) -> Vec<(Direction, Vec<u8>)> {
    let caps = base_caps() | if deprecate { DEPRECATE_EOF } else { 0 };
    let eof = |seq: u8| pkt(seq, &[0xFE, 0, 0, 2, 0]);
    let end = |seq: u8| {
        if deprecate {
            pkt(seq, &[0xFE, 0, 0, 2, 0, 0, 0])
        } else {
            eof(seq)
        }
    };
    let def = b"\x03def\x04shop\x05items\x05items\x02id\x02id\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x03\x50\x00\x00\x00";
    // Binary row: header 0x00, NULL bitmap, id (int32), name.
    let row = |i: u8| [0, 0, i, 0, 0, 0, 5, b'a', b'p', b'p', b'l', b'e'];
    let mut prepare_ok = vec![0];
    prepare_ok.extend_from_slice(&1u32.to_le_bytes());
    prepare_ok.extend_from_slice(&3u16.to_le_bytes()); // columns
    prepare_ok.extend_from_slice(&1u16.to_le_bytes()); // params
    prepare_ok.extend_from_slice(&[0, 0, 0]);
    let mut prep = pkt(1, &prepare_ok);
    let mut seq = 2;
    for i in 0..4 {
        prep.extend(pkt(seq, def));
        seq += 1;
        if !deprecate && (i == 0 || i == 3) {
            prep.extend(eof(seq));
            seq += 1;
        }
    }
    let mut exec = 1u32.to_le_bytes().to_vec();
    exec.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0xfe, 0, 1, b'1']);
    let execute = pkt(0, &[&[0x17][..], &exec].concat());
    // First execute: metadata follows.
    let mut first = pkt(1, &[3, 1]);
    let mut seq = 2;
    for _ in 0..3 {
        first.extend(pkt(seq, def));
        seq += 1;
    }
    if !deprecate {
        first.extend(eof(seq));
        seq += 1;
    }
    first.extend(pkt(seq, &row(1)));
    first.extend(end(seq + 1));
    // Second execute: the client has the metadata cached, none is sent.
    let mut second = pkt(1, &[3, 0]);
    let mut seq = 2;
    if !deprecate {
        second.extend(eof(seq));
        seq += 1;
    }
    for i in 1..=3 {
        second.extend(pkt(seq, &row(i)));
        seq += 1;
    }
    second.extend(end(seq));
    vec![
        (
            C,
            mariadb_greeting(
                0xF7FE | 0x80_0000 | 0x8_0000 | DEPRECATE_EOF,
                OTHER_EXT_CAPS | CACHE_METADATA,
            ),
        ),
        (S, mariadb_handshake_response(caps, ext)),
        (C, ok(2, 0)),
        (
            S,
            command(0x16, b"select id, name, price from items where id <= ?"),
        ),
        (C, prep),
        (S, execute.clone()),
        (C, first),
        (S, execute),
        (C, second),
        (S, command(0x03, b"select 1")),
        (C, resultset(1, 2, deprecate)),
    ]
}

/// (command, response kind, rows) of each request, in order.
fn outcomes(h: &H) -> Vec<(String, String, Option<i64>)> {
    h.messages
        .iter()
        .filter(|m| m.kind == MessageKind::Request)
        .map(|q| {
            let r = h
                .messages
                .iter()
                .find(|r| r.kind == MessageKind::Response && r.txn == q.txn)
                .unwrap_or_else(|| panic!("no response to {q:?}"));
            (
                s(q, F_COMMAND).unwrap_or_default(),
                s(r, F_RESPONSE).unwrap_or_default(),
                int(r, F_ROWS),
            )
        })
        .collect()
}

#[test]
fn mariadb_cached_metadata_skips_column_definitions() {
    for deprecate in [false, true] {
        let h = run(&cached_metadata_conversation(
            deprecate,
            OTHER_EXT_CAPS | CACHE_METADATA,
        ));
        assert!(h.errors.is_empty(), "deprecate {deprecate}: {:?}", h.errors);
        let got = outcomes(&h);
        let want = [
            ("LOGIN", "ok", Some(0)),
            ("COM_STMT_PREPARE", "ok", None),
            ("COM_STMT_EXECUTE", "resultset", Some(1)),
            ("COM_STMT_EXECUTE", "resultset", Some(3)),
            ("COM_QUERY", "resultset", Some(2)),
        ]
        .map(|(c, k, n)| (c.to_owned(), k.to_owned(), n));
        assert_eq!(got, want, "deprecate {deprecate}");
        // Each response starts at its own first packet, none shares one.
        let starts: Vec<u64> = h
            .messages
            .iter()
            .filter(|m| m.kind == MessageKind::Response)
            .map(|m| m.start)
            .collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    }
}

#[test]
fn metadata_follows_byte_needs_both_sides() {
    // The server offers MARIADB_CLIENT_CACHE_METADATA, this client does not:
    // column count packets then have no "metadata follows" byte, so a 0 after the count must not skip the definitions.
    // The second execute's packets are then read as definitions (what such
    // a client would expect), and its rows go uncounted.
    let h = run(&cached_metadata_conversation(false, OTHER_EXT_CAPS));
    let got = outcomes(&h);
    assert_eq!(got[2].2, Some(1), "{got:?}");
    assert_ne!(
        got[3],
        ("COM_STMT_EXECUTE".into(), "resultset".into(), Some(3))
    );
}
