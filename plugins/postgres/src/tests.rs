use super::*;
use proptest::prelude::*;
use remora_sdk::native::Harness;

const C: Direction = Direction::ToServer;
const S: Direction = Direction::ToClient;

fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cs(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}

fn startup(user: &str, db: &str) -> Vec<u8> {
    let mut body = PROTO_V3.to_be_bytes().to_vec();
    body.extend(cs(&["user", user, "database", db, ""]));
    let mut v = (body.len() as u32 + 4).to_be_bytes().to_vec();
    v.extend(body);
    v
}

fn ssl_request() -> Vec<u8> {
    let mut v = 8u32.to_be_bytes().to_vec();
    v.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    v
}

fn error(sev: &str, code: &str, m: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (f, v) in [(b'S', sev), (b'V', sev), (b'C', code), (b'M', m)] {
        b.push(f);
        b.extend(cs(&[v]));
    }
    b.push(0);
    msg(b'E', &b)
}

fn client_stream() -> Vec<u8> {
    let mut c = ssl_request();
    c.extend(startup("alice", "shop"));
    c.extend(msg(b'p', b"secret-password\0"));
    c.extend(msg(b'Q', &cs(&["SELECT 1;"])));
    c.extend(msg(b'Q', &cs(&["SELEC oops"])));
    c.extend(msg(b'P', &cs(&["s1", "SELECT $1::int"])));
    c.extend(msg(b'P', &[0, 0, 0, 0][..2]));
    c.extend(msg(
        b'B',
        &[&cs(&["", "s1"])[..], &[0, 0, 0, 0, 0, 0]].concat(),
    ));
    c.extend(msg(b'D', b"P\0"));
    c.extend(msg(b'E', b"\0\0\0\0\0"));
    c.extend(msg(b'S', b""));
    c.extend(msg(
        b'B',
        &[&cs(&["", "s1"])[..], &[0, 0, 0, 0, 0, 0]].concat(),
    ));
    c.extend(msg(b'E', b"\0\0\0\0\0"));
    c.extend(msg(b'S', b""));
    c.extend(msg(b'X', b""));
    c
}

fn server_stream() -> Vec<u8> {
    let mut s = b"N".to_vec();
    s.extend(msg(b'R', &[0, 0, 0, 0]));
    s.extend(msg(b'S', &cs(&["server_version", "15"])));
    s.extend(msg(b'K', &[0; 8]));
    s.extend(msg(b'Z', b"I"));
    // SELECT 1
    s.extend(msg(b'T', &[0; 30]));
    s.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'1']));
    s.extend(msg(b'C', &cs(&["SELECT 1"])));
    s.extend(msg(b'Z', b"I"));
    // error
    s.extend(error("ERROR", "42601", "syntax error at or near \"SELEC\""));
    s.extend(msg(b'Z', b"I"));
    // extended
    s.extend(msg(b'1', b""));
    s.extend(msg(b'2', b""));
    s.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'7']));
    s.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'8']));
    s.extend(msg(b'C', &cs(&["SELECT 2"])));
    s.extend(msg(b'Z', b"I"));
    s.extend(msg(b'2', b""));
    s.extend(msg(b'C', &cs(&["SELECT 1"])));
    s.extend(msg(b'Z', b"I"));
    s
}

fn run(cuts_c: &[usize], cuts_s: &[usize]) -> Harness<Postgres> {
    let mut h = Harness::<Postgres>::tcp(5432);
    h.feed_split(C, &client_stream(), cuts_c);
    h.feed_split(S, &server_stream(), cuts_s);
    h
}

fn s(m: &Message, id: u16) -> Option<String> {
    match m.value(id)? {
        Value::Str(t) => Some(match t {
            Text::Owned(s) => s.clone(),
            Text::Span(_) => panic!("span left in harness output"),
        }),
        _ => None,
    }
}

fn i(m: &Message, id: u16) -> Option<i64> {
    match m.value(id)? {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

#[test]
fn whole_conversation() {
    let h = run(&[], &[]);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let reqs: Vec<&Message> = h
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Request)
        .collect();
    let resps: Vec<&Message> = h
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Response)
        .collect();
    assert_eq!(reqs.len(), 5);
    assert_eq!(resps.len(), 5);
    assert_eq!(s(reqs[0], F_KIND).as_deref(), Some("startup"));
    assert_eq!(s(reqs[0], F_USER).as_deref(), Some("alice"));
    assert_eq!(s(reqs[0], F_DATABASE).as_deref(), Some("shop"));
    assert_eq!(reqs[0].start, 0, "the unit starts at the SSLRequest");
    assert_eq!(s(reqs[1], F_QUERY).as_deref(), Some("SELECT 1;"));
    assert_eq!(s(reqs[1], F_COMMAND).as_deref(), Some("SELECT"));
    assert_eq!(s(reqs[2], F_COMMAND).as_deref(), Some("SELEC"));
    assert_eq!(s(reqs[3], F_KIND).as_deref(), Some("extended"));
    assert_eq!(s(reqs[3], F_STATEMENT).as_deref(), Some("s1"));
    assert_eq!(s(reqs[3], F_QUERY).as_deref(), Some("SELECT $1::int; "));
    assert_eq!(i(resps[1], F_ROWS), Some(1));
    assert_eq!(s(resps[1], F_TAGS).as_deref(), Some("SELECT 1"));
    assert_eq!(s(resps[2], F_ERROR_CODE).as_deref(), Some("42601"));
    assert_eq!(i(resps[3], F_ROWS), Some(2));
    // A Bind-only batch takes the text of the statement it binds.
    assert_eq!(s(reqs[4], F_QUERY).as_deref(), Some("SELECT $1::int"));
    assert_eq!(s(reqs[4], F_STATEMENT).as_deref(), Some("s1"));
    for (n, r) in resps.iter().enumerate() {
        assert_eq!(r.txn, n as u64);
    }
    // The password is never emitted.
    let dbg = format!("{:?}", h.messages);
    assert!(!dbg.contains("secret"));
}

#[test]
fn bind_only_batch_uses_prepared_text() {
    let mut h = Harness::<Postgres>::tcp(5432);
    let mut c = startup("u", "d");
    c.extend(msg(b'P', &cs(&["st", "SELECT 42"])));
    c.extend(msg(b'S', b""));
    c.extend(msg(
        b'B',
        &[&cs(&["", "st"])[..], &[0, 0, 0, 0, 0, 0]].concat(),
    ));
    c.extend(msg(b'S', b""));
    h.feed(C, &c);
    let reqs: Vec<&Message> = h
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Request)
        .collect();
    assert_eq!(reqs.len(), 3);
    assert_eq!(s(reqs[2], F_QUERY).as_deref(), Some("SELECT 42"));
}

#[test]
fn failed_login_fatal_ends_unit() {
    let mut h = Harness::<Postgres>::tcp(5432);
    h.feed(C, &startup("u", "nosuchdb"));
    h.feed(
        S,
        &error("FATAL", "3D000", "database \"nosuchdb\" does not exist"),
    );
    assert_eq!(h.messages.len(), 2);
    assert_eq!(s(&h.messages[1], F_ERROR_CODE).as_deref(), Some("3D000"));
}

#[test]
fn big_rows_are_skipped() {
    let mut h = Harness::<Postgres>::tcp(5432);
    h.feed(C, &startup("u", "d"));
    h.feed(C, &msg(b'Q', &cs(&["SELECT big"])));
    let mut sv = msg(b'Z', b"I");
    sv.extend(msg(b'D', &vec![7u8; 100_000]));
    sv.extend(msg(b'C', &cs(&["SELECT 1"])));
    sv.extend(msg(b'Z', b"I"));
    h.feed_split(S, &sv, &[10, 50, 1000]);
    assert!(h.errors.is_empty());
    assert_eq!(i(h.messages.last().unwrap(), F_ROWS), Some(1));
    assert!(h.bytes_skipped > 90_000);
}

#[test]
fn ssl_accepted_goes_opaque() {
    let mut h = Harness::<Postgres>::tcp(5432);
    h.feed(C, &ssl_request());
    h.feed(S, b"S\x16\x03\x01\x00\x05hello");
    h.feed(C, b"\x16\x03\x01\x00\x05hello");
    assert!(h.messages.is_empty());
    assert!(h.errors.is_empty());
}

#[test]
fn split_at_every_byte() {
    let whole = run(&[], &[]).messages;
    let cn = client_stream().len();
    let sn = server_stream().len();
    for k in 1..cn.max(sn) {
        let h = run(&[k.min(cn - 1)], &[k.min(sn - 1)]);
        assert_eq!(h.messages, whole, "cut at {k}");
    }
    let all_c: Vec<usize> = (1..cn).collect();
    let all_s: Vec<usize> = (1..sn).collect();
    assert_eq!(run(&all_c, &all_s).messages, whole);
}

#[test]
fn garbage_is_an_error() {
    let mut h = Harness::<Postgres>::tcp(5432);
    h.feed(C, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!h.errors.is_empty());
    let mut h = Harness::<Postgres>::tcp(5432);
    h.feed(C, &startup("u", "d"));
    h.feed(C, b"\x01\xff\xff\xff\xffjunk");
    assert!(!h.errors.is_empty());
}

#[test]
fn probe_startup() {
    assert!(matches!(probe_bytes(C, &ssl_request()), Probe::Yes(_)));
    assert!(matches!(probe_bytes(C, &startup("u", "d")), Probe::Yes(_)));
    assert!(matches!(probe_bytes(C, b"GET / HTTP/1.1\r\n"), Probe::No));
    assert!(matches!(probe_bytes(C, b"\0\0"), Probe::NeedMore));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(a in proptest::collection::vec(any::<u8>(), 0..512),
                                b in proptest::collection::vec(any::<u8>(), 0..512),
                                cut in 0usize..512) {
        let mut h = Harness::<Postgres>::tcp(5432);
        let _ = probe_bytes(C, &a);
        let _ = probe_bytes(S, &b);
        h.feed_split(C, &a, &[cut.min(a.len())]);
        h.feed_split(S, &b, &[cut.min(b.len())]);
        let mut h = Harness::<Postgres>::tcp(5432);
        let mut c = startup("u", "d");
        c.extend_from_slice(&a);
        h.feed(C, &c);
        h.feed(S, &b);
    }
}
