use proptest::prelude::*;
use remora_redis::*;
use remora_sdk::native::Harness;
use remora_sdk::prelude::*;

type H = Harness<Redis>;
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

fn list(m: &Message, id: u16) -> Vec<String> {
    m.values(id)
        .filter_map(|v| match v {
            Value::Str(Text::Owned(t)) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn cmd(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
    }
    v
}

#[test]
fn simple_command_and_reply() {
    let mut h = H::tcp(6379);
    let req = cmd(&["SET", "session:1", "hello"]);
    h.feed(S, &req);
    h.feed(C, b"+OK\r\n");
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let (q, r) = (&h.messages[0], &h.messages[1]);
    assert_eq!(q.kind, MessageKind::Request);
    assert_eq!(r.kind, MessageKind::Response);
    assert_eq!(q.txn, 0);
    assert_eq!(r.txn, 0);
    assert_eq!(s(q, F_TYPE).as_deref(), Some("SET"));
    assert_eq!(s(q, F_COMMAND).as_deref(), Some("SET session:1 hello"));
    assert_eq!(s(q, F_KEY).as_deref(), Some("session:1"));
    assert_eq!(list(q, F_ARGS), vec!["session:1", "hello"]);
    assert_eq!(int(q, F_ARGC), Some(3));
    assert_eq!(int(q, F_REQUEST_SIZE), Some(req.len() as i64));
    assert_eq!(s(r, F_REPLY).as_deref(), Some("OK"));
    assert_eq!(s(r, F_REPLY_TYPE).as_deref(), Some("simple"));
    assert_eq!(boolean(r, F_ERROR), Some(false));
    assert_eq!(int(r, F_RESPONSE_SIZE), Some(5));
}

fn pipelined() -> (Vec<u8>, Vec<u8>) {
    let mut req = cmd(&["SET", "k", "v"]);
    req.extend(cmd(&["GET", "k"]));
    req.extend(cmd(&["INCR", "n"]));
    let rep = b"+OK\r\n$1\r\nv\r\n:5\r\n".to_vec();
    (req, rep)
}

fn summary(h: &H) -> Vec<(MessageKind, u64, Option<String>, Option<String>)> {
    h.messages
        .iter()
        .map(|m| (m.kind, m.txn, s(m, F_COMMAND), s(m, F_REPLY)))
        .collect()
}

#[test]
fn pipelined_three_in_one_feed() {
    let (req, rep) = pipelined();
    let mut h = H::tcp(6379);
    h.feed(S, &req);
    h.feed(C, &rep);
    assert!(h.errors.is_empty());
    let got = summary(&h);
    assert_eq!(got.len(), 6);
    assert_eq!(
        got[0],
        (MessageKind::Request, 0, Some("SET k v".into()), None)
    );
    assert_eq!(
        got[1],
        (MessageKind::Request, 1, Some("GET k".into()), None)
    );
    assert_eq!(
        got[2],
        (MessageKind::Request, 2, Some("INCR n".into()), None)
    );
    assert_eq!(got[3], (MessageKind::Response, 0, None, Some("OK".into())));
    assert_eq!(
        got[4],
        (MessageKind::Response, 1, None, Some("\"v\"".into()))
    );
    assert_eq!(
        got[5],
        (MessageKind::Response, 2, None, Some("(integer) 5".into()))
    );
    assert_eq!(int(&h.messages[4], F_RESPONSE_SIZE), Some(7));
    assert_eq!(h.messages[1].start, 27); // stream offset of GET
}

#[test]
fn split_at_every_byte_position() {
    let (req, rep) = pipelined();
    let mut whole = H::tcp(6379);
    whole.feed(S, &req);
    whole.feed(C, &rep);
    let want: Vec<Message> = whole.messages.clone();
    for cut in 0..=req.len().max(rep.len()) {
        let mut h = H::tcp(6379);
        h.feed_split(S, &req, &[cut]);
        h.feed_split(C, &rep, &[cut]);
        assert!(h.errors.is_empty(), "cut {cut}: {:?}", h.errors);
        assert_eq!(h.messages, want, "cut {cut}");
    }
    // Byte by byte.
    let mut h = H::tcp(6379);
    let cuts: Vec<usize> = (0..req.len()).collect();
    h.feed_split(S, &req, &cuts);
    let cuts: Vec<usize> = (0..rep.len()).collect();
    h.feed_split(C, &rep, &cuts);
    assert_eq!(h.messages, want);
}

#[test]
fn keyless_verbs_have_no_key_in_any_case() {
    let mut h = H::tcp(6379);
    let cmd = |args: &[&str]| {
        let mut b = format!("*{}\r\n", args.len());
        for a in args {
            b += &format!("${}\r\n{a}\r\n", a.len());
        }
        b
    };
    let verbs = [
        (["select", "1"], None),
        (["AuTh", "secret"], None),
        (["BGREWRITEAOF", "x"], None),
        (["get", "k1"], Some("k1")),
        (["SELECTX", "k2"], Some("k2")),
        (["AVERYLONGVERBINDEED", "k3"], Some("k3")),
    ];
    for (args, _) in &verbs {
        h.feed(S, cmd(args).as_bytes());
    }
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), verbs.len());
    for (m, (args, key)) in h.messages.iter().zip(&verbs) {
        assert_eq!(s(m, F_KEY).as_deref(), *key, "{args:?}");
    }
}

#[test]
fn inline_command() {
    let mut h = H::tcp(6379);
    h.feed(S, b"PING\r\nget  mykey\r\n");
    h.feed(C, b"+PONG\r\n$-1\r\n");
    assert!(h.errors.is_empty());
    let m = &h.messages;
    assert_eq!(m.len(), 4);
    assert_eq!(s(&m[0], F_TYPE).as_deref(), Some("PING"));
    assert_eq!(s(&m[0], F_KEY), None);
    assert_eq!(s(&m[1], F_TYPE).as_deref(), Some("GET"));
    assert_eq!(s(&m[1], F_KEY).as_deref(), Some("mykey"));
    assert_eq!(s(&m[1], F_COMMAND).as_deref(), Some("get mykey"));
    assert_eq!(s(&m[3], F_REPLY).as_deref(), Some("(nil)"));
    assert_eq!(s(&m[3], F_REPLY_TYPE).as_deref(), Some("null"));
    assert_eq!(m[3].txn, 1);
}

#[test]
fn nested_arrays() {
    let mut h = H::tcp(6379);
    h.feed(S, &cmd(&["EXEC"]));
    let rep = b"*3\r\n*2\r\n:1\r\n*1\r\n$3\r\nabc\r\n*-1\r\n*0\r\n";
    h.feed_split(C, rep, &[3, 9, 20]);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 2);
    let r = &h.messages[1];
    assert_eq!(s(r, F_REPLY).as_deref(), Some("(array 3)"));
    assert_eq!(s(r, F_REPLY_TYPE).as_deref(), Some("array"));
    assert_eq!(int(r, F_RESPONSE_SIZE), Some(rep.len() as i64));
}

#[test]
fn too_deep_is_an_error() {
    let mut h = H::tcp(6379);
    h.feed(S, &cmd(&["GET", "x"]));
    let deep = "*1\r\n".repeat(100);
    h.feed(C, deep.as_bytes());
    assert_eq!(h.errors.len(), 1);
    assert_eq!(h.messages.len(), 1);
}

#[test]
fn resp3_map_set_push() {
    let mut h = H::tcp(6379);
    h.feed(S, &cmd(&["HELLO", "3"]));
    h.feed(S, &cmd(&["SMEMBERS", "s"]));
    h.feed(S, &cmd(&["CLIENT", "TRACKING", "on"]));
    h.feed(S, &cmd(&["GET", "k"]));
    let mut rep = b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n".to_vec();
    rep.extend_from_slice(b"~2\r\n$1\r\na\r\n$1\r\nb\r\n");
    rep.extend_from_slice(b"+OK\r\n");
    // An invalidation push arrives before the GET reply; an attribute precedes it.
    rep.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
    rep.extend_from_slice(b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n");
    h.feed(C, &rep);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let replies: Vec<&Message> = h
        .messages
        .iter()
        .filter(|m| m.kind != MessageKind::Request)
        .collect();
    assert_eq!(replies.len(), 5);
    assert_eq!(s(replies[0], F_REPLY_TYPE).as_deref(), Some("map"));
    assert_eq!(s(replies[0], F_REPLY).as_deref(), Some("(map 2)"));
    assert_eq!(replies[0].txn, 0);
    assert_eq!(s(replies[1], F_REPLY_TYPE).as_deref(), Some("set"));
    assert_eq!(replies[1].txn, 1);
    assert_eq!(replies[2].txn, 2);
    assert_eq!(replies[3].kind, MessageKind::Standalone);
    assert_eq!(s(replies[3], F_REPLY_TYPE).as_deref(), Some("push"));
    assert_eq!(s(replies[3], F_PUSH_KIND).as_deref(), Some("invalidate"));
    assert_eq!(replies[4].kind, MessageKind::Response);
    assert_eq!(replies[4].txn, 3);
    assert_eq!(s(replies[4], F_REPLY).as_deref(), Some("\"v\""));
}

#[test]
fn resp2_pubsub() {
    let mut h = H::tcp(6379);
    h.feed(S, &cmd(&["SUBSCRIBE", "a", "b"]));
    let mut rep = Vec::new();
    for ch in ["a", "b"] {
        rep.extend_from_slice(format!("*3\r\n$9\r\nsubscribe\r\n$1\r\n{ch}\r\n:1\r\n").as_bytes());
    }
    rep.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n");
    h.feed(C, &rep);
    h.feed(S, &cmd(&["PING"]));
    h.feed(C, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert!(h.errors.is_empty());
    let kinds: Vec<(MessageKind, u64)> = h.messages.iter().map(|m| (m.kind, m.txn)).collect();
    assert_eq!(
        kinds,
        vec![
            (MessageKind::Request, 0),
            (MessageKind::Response, 0),
            (MessageKind::Standalone, 0),
            (MessageKind::Standalone, 0),
            (MessageKind::Request, 1),
            (MessageKind::Response, 1),
        ]
    );
    assert_eq!(s(&h.messages[3], F_PUSH_KIND).as_deref(), Some("message"));
}

#[test]
fn error_reply() {
    let mut h = H::tcp(6379);
    h.feed(S, &cmd(&["INCR", "k"]));
    h.feed(C, b"-ERR value is not an integer or out of range\r\n");
    let r = &h.messages[1];
    assert_eq!(boolean(r, F_ERROR), Some(true));
    assert_eq!(s(r, F_REPLY_TYPE).as_deref(), Some("error"));
    assert_eq!(
        s(r, F_REPLY).as_deref(),
        Some("ERR value is not an integer or out of range")
    );
}

#[test]
fn big_bulk_string_is_skipped() {
    let mut h = H::tcp(6379);
    let big = vec![b'x'; 1_000_000];
    let mut req = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$1000000\r\n".to_vec();
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n");
    let cuts: Vec<usize> = (1..req.len()).step_by(1460).collect();
    h.feed_split(S, &req, &cuts);
    h.feed(S, &cmd(&["GET", "big"]));
    let mut rep = b"+OK\r\n$1000000\r\n".to_vec();
    rep.extend_from_slice(&big);
    rep.extend_from_slice(b"\r\n");
    let cuts: Vec<usize> = (1..rep.len()).step_by(1460).collect();
    h.feed_split(C, &rep, &cuts);
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.messages.len(), 4);
    assert!(h.bytes_skipped > 1_900_000, "skipped {}", h.bytes_skipped);
    let set = &h.messages[0];
    assert_eq!(int(set, F_REQUEST_SIZE), Some(req.len() as i64));
    assert_eq!(s(set, F_COMMAND).unwrap().len(), 256);
    assert_eq!(list(set, F_ARGS)[1].len(), 64);
    let get = h
        .messages
        .iter()
        .find(|m| m.kind == MessageKind::Response && m.txn == 1)
        .unwrap();
    assert_eq!(int(get, F_RESPONSE_SIZE), Some(rep.len() as i64 - 5));
    assert_eq!(s(get, F_REPLY).unwrap().len(), 128);
}

#[test]
fn garbage_is_an_error() {
    let mut h = H::tcp(6379);
    h.feed(S, &cmd(&["GET", "k"]));
    h.feed(C, b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(h.errors.len(), 1);
    let mut h = H::tcp(6379);
    h.feed(S, b"*x\r\n");
    assert_eq!(h.errors.len(), 1);
    let mut h = H::tcp(6379);
    h.feed(S, b"*1\r\n$3\r\nGETXX\r\n");
    assert_eq!(h.errors.len(), 1);
}

#[test]
fn probe() {
    let f = FlowInfo::tcp_test(1, 6379);
    let g = FlowInfo::tcp_test(1, 7000);
    assert_eq!(Redis::probe(&f, S, b"*2\r\n$3\r\nGET"), Probe::Yes(70));
    assert_eq!(Redis::probe(&g, S, b"*2\r\n$3\r\nGET"), Probe::Yes(40));
    assert_eq!(Redis::probe(&f, S, b"*2\r"), Probe::NeedMore);
    assert_eq!(Redis::probe(&f, S, b"PING\r\n"), Probe::Yes(70));
    assert_eq!(Redis::probe(&f, S, b"get k\r\n"), Probe::Yes(70));
    assert_eq!(Redis::probe(&f, S, b"PIN"), Probe::NeedMore);
    assert_eq!(Redis::probe(&f, S, b"GET / HTTP/1.1\r\n"), Probe::No);
    assert_eq!(Redis::probe(&f, S, b"GET / HT"), Probe::NeedMore);
    assert_eq!(Redis::probe(&f, S, b"POST / HTTP/1.1\r\n"), Probe::No);
    assert_eq!(Redis::probe(&f, S, b"\x16\x03\x01"), Probe::No);
    assert_eq!(Redis::probe(&f, C, b"+OK\r\n"), Probe::NeedMore);
    assert_eq!(Redis::probe(&f, C, b":12"), Probe::NeedMore);
    assert_eq!(Redis::probe(&f, C, b":x\r\n"), Probe::No);
    assert_eq!(Redis::probe(&f, C, b"HTTP/1.1"), Probe::No);
}

/// Texts lying in the call's input cross the boundary as spans, upper-case
/// verbs included; what is rewritten (case, quotes) or no longer in the input
/// (a frame split across calls) is owned.
#[test]
fn texts_in_the_input_are_spans() {
    use remora_sdk::native::feed_once;
    let mut session = RedisSession::new();
    let mut out = Output::new();
    let req = cmd(&["SET", "k1", "v1"]);
    let r = feed_once(&mut session, S, 0, &req, &mut out);
    let m = &r.messages[0];
    let span = |id| matches!(m.value(id), Some(Value::Str(Text::Span(_))));
    assert!(span(F_TYPE) && span(F_KEY));
    assert!(m
        .values(F_ARGS)
        .all(|v| matches!(v, Value::Str(Text::Span(_)))));
    assert!(matches!(m.value(F_COMMAND), Some(Value::Str(Text::Owned(c))) if c == "SET k1 v1"));

    let lower = cmd(&["get", "k1"]);
    let r = feed_once(&mut session, S, 0, &lower, &mut out);
    let m = &r.messages[0];
    assert!(matches!(m.value(F_TYPE), Some(Value::Str(Text::Owned(v))) if v == "GET"));
    assert!(matches!(m.value(F_KEY), Some(Value::Str(Text::Span(_)))));

    let r = feed_once(&mut session, C, 0, b"+OK\r\n$2\r\nv1\r\n", &mut out);
    assert!(matches!(
        r.messages[0].value(F_REPLY),
        Some(Value::Str(Text::Span(_)))
    ));
    assert!(
        matches!(r.messages[1].value(F_REPLY), Some(Value::Str(Text::Owned(v))) if v == "\"v1\"")
    );

    // Split after the key: the key was consumed in the first call.
    let req = cmd(&["SET", "k2", "v2"]);
    let cut = req.len() - 4;
    let r = feed_once(&mut session, S, 0, &req[..cut], &mut out);
    assert!(r.messages.is_empty());
    let rest = &req[r.consumed as usize..];
    let r = feed_once(&mut session, S, cut as u64, rest, &mut out);
    let m = &r.messages[0];
    assert!(matches!(m.value(F_KEY), Some(Value::Str(Text::Owned(k))) if k == "k2"));
    assert!(matches!(m.value(F_TYPE), Some(Value::Str(Text::Owned(v))) if v == "SET"));
}

/// Invalid UTF-8 is replaced, and cuts never split a character: a kept
/// argument is at most 256 bytes and a listed one at most 64.
#[test]
fn lossy_and_cut_texts() {
    let mut h = H::tcp(6379);
    let euro = "€".repeat(100); // 300 bytes: the kept 256 end inside a character
    let mut req = b"*3\r\n$3\r\nset\r\n$3\r\nk\xff\xfe\r\n".to_vec();
    req.extend(format!("${}\r\n{euro}\r\n", euro.len()).as_bytes());
    h.feed(S, &req);
    h.feed(C, b"+\xc3\r\n");
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    let (q, r) = (&h.messages[0], &h.messages[1]);
    assert_eq!(s(q, F_TYPE).as_deref(), Some("SET"));
    assert_eq!(s(q, F_KEY).as_deref(), Some("k\u{fffd}\u{fffd}"));
    let args = list(q, F_ARGS);
    assert_eq!(args[1], "€".repeat(21)); // 63 bytes
    let command = s(q, F_COMMAND).unwrap();
    assert_eq!(command.len(), 255);
    assert!(command.starts_with("set k\u{fffd}\u{fffd} €€"));
    assert_eq!(s(r, F_REPLY).as_deref(), Some("\u{fffd}"));
}

#[test]
fn integer_replies_at_the_limits() {
    let mut h = H::tcp(6379);
    for _ in 0..5 {
        h.feed(S, &cmd(&["INCR", "n"]));
    }
    h.feed(
        C,
        b":-9223372036854775808\r\n:9223372036854775807\r\n:+12\r\n:0\r\n:9223372036854775808\r\n",
    );
    let replies: Vec<_> = h.messages[5..].iter().map(|m| s(m, F_REPLY)).collect();
    assert_eq!(
        replies,
        [
            Some("(integer) -9223372036854775808".to_owned()),
            Some("(integer) 9223372036854775807".to_owned()),
            Some("(integer) +12".to_owned()),
            Some("(integer) 0".to_owned()),
        ]
    );
    assert_eq!(h.errors, ["bad integer"]);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(a in proptest::collection::vec(any::<u8>(), 0..512),
                                b in proptest::collection::vec(any::<u8>(), 0..512),
                                cut in 0usize..512) {
        let f = FlowInfo::tcp_test(1, 6379);
        let _ = Redis::probe(&f, S, &a);
        let _ = Redis::probe(&f, C, &b);
        let mut h = H::tcp(6379);
        h.feed_split(S, &a, &[cut]);
        h.feed_split(C, &b, &[cut]);
        h.gap(C, 3);
        h.end(S);
        h.end(C);
    }

    #[test]
    fn resp_like_bytes_never_panic(parts in proptest::collection::vec(
        prop_oneof![Just(&b"*"[..]), Just(&b"$"[..]), Just(&b"%"[..]), Just(&b">"[..]),
                    Just(&b"|"[..]), Just(&b"\r\n"[..]), Just(&b"1"[..]), Just(&b"3"[..]),
                    Just(&b"-1"[..]), Just(&b"abc"[..]), Just(&b"+"[..]), Just(&b":"[..])], 0..200),
        cut in 0usize..400) {
        let data: Vec<u8> = parts.concat();
        let mut h = H::tcp(6379);
        h.feed_split(S, &data, &[cut]);
        h.feed_split(C, &data, &[cut]);
        let mut whole = H::tcp(6379);
        whole.feed(S, &data);
        whole.feed(C, &data);
        // Splitting never changes the result when no error occurs.
        if h.errors.is_empty() && whole.errors.is_empty() {
            prop_assert_eq!(h.messages, whole.messages);
        }
    }
}
