//! Redis (RESP2 and RESP3) dissector for Remora, written with `remora-sdk`.
//!
//! Requests and replies pair in order per connection: request *n* and reply
//! *n* share `txn = n`. Server pushes (RESP3 `>` messages, and RESP2
//! pub/sub `message` arrays once the client has subscribed) are `standalone`
//! and consume no txn. A `SUBSCRIBE` with *k* channels yields *k*
//! confirmations: the first pairs with the request, the rest stand alone.
//!
//! The parser is incremental: every complete RESP element is consumed at
//! once and what the message needs is kept (owned, bounded) in the session,
//! so a frame may span any number of calls. Bulk strings keep at most
//! [`KEEP`] bytes; the remainder of a bulk not yet received is dropped through
//! `skip`, so large payloads never cross the boundary. Nesting is bounded by
//! [`MAX_DEPTH`], lines by [`MAX_LINE`].

use remora_sdk::prelude::*;
use std::collections::VecDeque;

pub const F_TYPE: u16 = 0;
pub const F_COMMAND: u16 = 1;
pub const F_KEY: u16 = 2;
pub const F_ARGS: u16 = 3;
pub const F_ARGC: u16 = 4;
pub const F_REQUEST_SIZE: u16 = 5;
pub const F_RESPONSE_SIZE: u16 = 6;
pub const F_REPLY: u16 = 7;
pub const F_REPLY_TYPE: u16 = 8;
pub const F_ERROR: u16 = 9;
pub const F_PUSH_KIND: u16 = 10;

/// Bytes kept of one bulk string / argument.
pub const KEEP: usize = 256;
/// Longest `redis_command`.
pub const MAX_COMMAND: usize = 256;
/// Longest `redis_reply`.
pub const MAX_REPLY: usize = 128;
/// Longest element of `redis_args`, and how many are sent.
pub const MAX_ARG: usize = 64;
pub const MAX_ARGS: usize = 16;
/// Deepest aggregate nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest header / inline line.
pub const MAX_LINE: usize = 64 * 1024;
/// Largest aggregate count accepted.
const MAX_COUNT: i64 = i32::MAX as i64;
/// Requests remembered while waiting for replies.
const MAX_OUTSTANDING: usize = 4096;
/// Bulk strings longer than this are never waited for: what is beyond the
/// kept prefix is skipped.
const BIG_BULK: i64 = 4096;

pub const PORTS: [u16; 2] = [6379, 16379];

/// Verbs recognised for inline commands in `probe`.
const INLINE_VERBS: &[&str] = &[
    "PING",
    "GET",
    "SET",
    "DEL",
    "INFO",
    "AUTH",
    "SELECT",
    "KEYS",
    "EXISTS",
    "INCR",
    "DECR",
    "MGET",
    "MSET",
    "HGET",
    "HSET",
    "HGETALL",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "LRANGE",
    "SADD",
    "SMEMBERS",
    "ZADD",
    "ZRANGE",
    "EXPIRE",
    "TTL",
    "TYPE",
    "ECHO",
    "QUIT",
    "MULTI",
    "EXEC",
    "FLUSHDB",
    "FLUSHALL",
    "DBSIZE",
    "CONFIG",
    "CLIENT",
    "COMMAND",
    "SUBSCRIBE",
    "PUBLISH",
    "PSUBSCRIBE",
    "HELLO",
    "SCAN",
    "MONITOR",
    "APPEND",
    "SETEX",
    "INCRBY",
];

/// Commands whose first argument is not a key.
const NO_KEY: &[&str] = &[
    "PING",
    "ECHO",
    "AUTH",
    "SELECT",
    "INFO",
    "CONFIG",
    "COMMAND",
    "CLIENT",
    "HELLO",
    "MULTI",
    "EXEC",
    "DISCARD",
    "QUIT",
    "RESET",
    "FLUSHDB",
    "FLUSHALL",
    "DBSIZE",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "LASTSAVE",
    "TIME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SSUBSCRIBE",
    "SUNSUBSCRIBE",
    "PUBLISH",
    "SPUBLISH",
    "PUBSUB",
    "SCAN",
    "KEYS",
    "SCRIPT",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "FUNCTION",
    "SLOWLOG",
    "MONITOR",
    "CLUSTER",
    "ROLE",
    "MEMORY",
    "OBJECT",
    "DEBUG",
    "SHUTDOWN",
    "REPLICAOF",
    "SLAVEOF",
    "SYNC",
    "PSYNC",
    "REPLCONF",
    "WAIT",
    "WAITAOF",
    "ACL",
    "LATENCY",
    "LOLWUT",
    "MODULE",
    "SWAPDB",
    "READONLY",
    "READWRITE",
    "ASKING",
    "XREAD",
    "XREADGROUP",
    "BLMPOP",
    "LMPOP",
    "ZMPOP",
    "BZMPOP",
    "ZUNION",
    "ZINTER",
    "ZDIFF",
    "SINTERCARD",
    "ZINTERCARD",
    "FAILOVER",
];

pub struct Redis;

impl Dissector for Redis {
    type Session = RedisSession;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("redis", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("Redis", "redis")
                    .ports(&PORTS)
                    .summaries("{redis_command}", "{redis_reply}"),
            )
            .field(f(
                F_TYPE,
                "redis_type",
                Str,
                true,
                "command verb, upper case",
            ))
            .field(f(
                F_COMMAND,
                "redis_command",
                Str,
                true,
                "command line, arguments joined by spaces, truncated to 256 bytes",
            ))
            .field(f(
                F_KEY,
                "redis_key",
                Str,
                true,
                "first argument of a keyed command",
            ))
            .field(f(
                F_ARGS,
                "redis_args",
                StrList,
                false,
                "arguments after the verb (at most 16, each truncated to 64 bytes)",
            ))
            .field(f(
                F_ARGC,
                "redis_argc",
                Int,
                false,
                "number of arguments including the verb",
            ))
            .field(f(
                F_REQUEST_SIZE,
                "redis_request_size",
                Int,
                true,
                "request bytes on the wire",
            ))
            .field(f(
                F_RESPONSE_SIZE,
                "redis_response_size",
                Int,
                true,
                "reply bytes on the wire",
            ))
            .field(f(
                F_REPLY,
                "redis_reply",
                Str,
                true,
                "short rendering of the reply",
            ))
            .field(f(
                F_REPLY_TYPE,
                "redis_reply_type",
                Str,
                true,
                "simple, error, integer, bulk, array, null, map, set, push, ...",
            ))
            .field(f(
                F_ERROR,
                "redis_error",
                Boolean,
                true,
                "the reply is an error",
            ))
            .field(f(
                F_PUSH_KIND,
                "redis_push_kind",
                Str,
                false,
                "first element of a server push (message, subscribe, ...)",
            ))
    }

    fn probe(flow: &FlowInfo, dir: Direction, data: &[u8]) -> Probe {
        let hinted = PORTS.contains(&flow.server_port);
        match probe_bytes(dir, data) {
            Probe::Yes(_) => Probe::Yes(if hinted { 70 } else { 40 }),
            p => p,
        }
    }

    fn session(_flow: &FlowInfo) -> RedisSession {
        RedisSession::new()
    }
}

remora_sdk::export_dissector!(Redis);

/// Probe without the port hint: `Yes(70)` for a recognised request.
pub fn probe_bytes(dir: Direction, data: &[u8]) -> Probe {
    if data.is_empty() {
        return Probe::NeedMore;
    }
    match dir {
        Direction::ToServer => probe_request(data),
        Direction::ToClient => probe_reply(data),
    }
}

fn probe_request(data: &[u8]) -> Probe {
    if data[0] == b'*' {
        let mut i = 1;
        while i < data.len() && data[i].is_ascii_digit() && i < 12 {
            i += 1;
        }
        if i == data.len() {
            return Probe::NeedMore;
        }
        if i == 1 {
            return Probe::No;
        }
        let rest = &data[i..];
        let want = b"\r\n$";
        let n = rest.len().min(3);
        if rest[..n] != want[..n] {
            return Probe::No;
        }
        return if n < 3 {
            Probe::NeedMore
        } else {
            Probe::Yes(70)
        };
    }
    let end = data
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n');
    let Some(end) = end else {
        return if data.len() < 16 && data.iter().all(u8::is_ascii_alphabetic) {
            Probe::NeedMore
        } else {
            Probe::No
        };
    };
    let verb = &data[..end];
    if verb.is_empty()
        || !INLINE_VERBS
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(verb))
    {
        return Probe::No;
    }
    // "GET / HTTP/1.1" is HTTP, not an inline GET.
    let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    if data[..line_end].windows(5).any(|w| w == b"HTTP/") {
        return Probe::No;
    }
    if data[end] == b' ' && line_end == data.len() && data.len() < 64 {
        return Probe::NeedMore;
    }
    match data[end] {
        b' ' | b'\n' => Probe::Yes(70),
        _ => match data.get(end + 1) {
            None => Probe::NeedMore,
            Some(b'\n') => Probe::Yes(70),
            Some(_) => Probe::No,
        },
    }
}

fn probe_reply(data: &[u8]) -> Probe {
    let t = data[0];
    if !b"+-:$*%~>_,#(".contains(&t) {
        return Probe::No;
    }
    let body = &data[1..];
    let (line, complete) = match body.windows(2).position(|w| w == b"\r\n") {
        Some(e) => (&body[..e], true),
        None => {
            if body.len() > 512 {
                return Probe::No;
            }
            // A trailing '\r' is the start of the terminator.
            (body.strip_suffix(b"\r").unwrap_or(body), false)
        }
    };
    let digits = |l: &[u8], neg: bool| {
        let l = if neg {
            l.strip_prefix(b"-").unwrap_or(l)
        } else {
            l
        };
        l.iter().all(u8::is_ascii_digit) && (!complete || !l.is_empty())
    };
    let ok = match t {
        b'+' | b'-' => line.iter().all(|&b| b >= 0x20 || b == b'\t'),
        b':' | b'(' => digits(line.strip_prefix(b"+").unwrap_or(line), true),
        b'$' | b'*' => digits(line, true),
        b'%' | b'~' | b'>' => digits(line, false),
        b'_' => line.is_empty(),
        b',' => line
            .iter()
            .all(|b| b.is_ascii_digit() || b"+-.eEinfa".contains(b)),
        b'#' => matches!(line, b"" | b"t" | b"f") && (!complete || !line.is_empty()),
        _ => false,
    };
    // Replies alone never decide: wait for the request direction.
    if ok {
        Probe::NeedMore
    } else {
        Probe::No
    }
}

// ---------------------------------------------------------------- frames

#[derive(Clone, Copy, Debug)]
struct Agg {
    remaining: u64,
    attr: bool,
}

/// A RESP value being parsed, possibly across calls.
#[derive(Debug, Default)]
struct Frame {
    start: u64,
    size: u64,
    stack: Vec<Agg>,
    /// Type byte of the top-level value (after attributes); 0 until seen.
    top_type: u8,
    top_null: bool,
    top_count: i64,
    /// Rendered text of a top-level scalar.
    top_text: String,
    /// Depth-1 elements (command arguments, reply children).
    argc: u64,
    args: Vec<String>,
    command: String,
    first_child: Option<String>,
    last_int_child: Option<i64>,
}

enum Elem<'a> {
    Line(&'a [u8]),
    Bulk(&'a [u8]),
    Null,
    Agg(i64),
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
}

fn truncated(mut s: String, max: usize) -> String {
    truncate(&mut s, max);
    s
}

fn parse_int(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let s = s.strip_prefix('+').unwrap_or(s);
    s.parse().ok()
}

impl Frame {
    fn new(start: u64) -> Self {
        Frame {
            start,
            ..Default::default()
        }
    }

    fn depth(&self) -> usize {
        self.stack.iter().filter(|a| !a.attr).count()
    }

    fn in_attr(&self) -> bool {
        self.stack.iter().any(|a| a.attr)
    }

    /// Whether an element starting now is worth keeping.
    fn wanted(&self) -> bool {
        self.depth() <= 1 && !self.in_attr()
    }

    /// Record an element's value.
    fn record(&mut self, t: u8, e: &Elem<'_>) {
        if self.in_attr() {
            return;
        }
        if let (b'=', Elem::Bulk(b)) = (t, e) {
            // Verbatim string: drop the "txt:" format prefix.
            let b = b.get(4..).unwrap_or(b"");
            return self.record(b'$', &Elem::Bulk(b));
        }
        match self.depth() {
            0 => {
                self.top_type = t;
                match e {
                    Elem::Null => self.top_null = true,
                    Elem::Agg(n) => self.top_count = *n,
                    Elem::Line(l) | Elem::Bulk(l) => {
                        self.top_text = truncated(lossy(l), KEEP);
                        if matches!(t, b'$' | b'+') {
                            self.add_arg(l);
                        }
                    }
                }
            }
            1 => match e {
                Elem::Line(l) | Elem::Bulk(l) => {
                    if self.argc == 0 && matches!(t, b'$' | b'+') {
                        self.first_child = Some(truncated(lossy(l), KEEP));
                    }
                    if t == b':' {
                        self.last_int_child = parse_int(l);
                    }
                    self.add_arg(l);
                }
                Elem::Null => self.add_arg(b""),
                Elem::Agg(_) => self.add_arg(b"(nested)"),
            },
            _ => {}
        }
    }

    fn add_arg(&mut self, l: &[u8]) {
        self.argc += 1;
        if self.command.len() < MAX_COMMAND + 4 {
            let s = lossy(&l[..l.len().min(MAX_COMMAND + 4)]);
            if !self.command.is_empty() {
                self.command.push(' ');
            }
            self.command.push_str(&s);
        }
        if self.args.len() < MAX_ARGS + 2 {
            self.args
                .push(truncated(lossy(&l[..l.len().min(KEEP)]), KEEP));
        }
    }

    /// An element finished; true when the whole frame is complete.
    fn complete_element(&mut self) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return true;
            };
            top.remaining = top.remaining.saturating_sub(1);
            if top.remaining > 0 {
                return false;
            }
            let done = self.stack.pop();
            if done.is_some_and(|a| a.attr) {
                // The value the attribute annotates follows.
                return false;
            }
        }
    }
}

enum Step {
    /// An element was consumed up to `pos`; `complete` when the frame ended.
    Done {
        pos: usize,
        complete: bool,
    },
    /// Consumed up to `pos`, then drop `skip` bytes.
    Skip {
        pos: usize,
        skip: u64,
        complete: bool,
    },
    /// Need this many bytes from `pos` (the current element's start).
    Need(usize),
    Err(&'static str),
}

fn find_crlf(data: &[u8], from: usize) -> Option<usize> {
    let hay = data.get(from..)?;
    hay.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

/// Parse one element at `pos` into `frame`.
fn step(frame: &mut Frame, data: &[u8], pos: usize) -> Step {
    let avail = data.len() - pos;
    let Some(eol) = find_crlf(data, pos) else {
        return if avail > MAX_LINE {
            Step::Err("line too long")
        } else {
            Step::Need(avail + 1)
        };
    };
    if eol - pos > MAX_LINE {
        return Step::Err("line too long");
    }
    if eol == pos {
        return Step::Err("not RESP: empty line");
    }
    let t = data[pos];
    let line = &data[pos + 1..eol];
    let after = eol + 2;
    let hdr = (after - pos) as u64;
    match t {
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
            if t == b':' && parse_int(line).is_none() {
                return Step::Err("bad integer");
            }
            let e = if t == b'_' {
                Elem::Null
            } else {
                Elem::Line(line)
            };
            frame.record(t, &e);
            frame.size += hdr;
            let complete = frame.complete_element();
            Step::Done {
                pos: after,
                complete,
            }
        }
        b'$' | b'!' | b'=' => {
            let Some(n) = parse_int(line) else {
                return Step::Err("bad bulk length");
            };
            if n == -1 {
                frame.record(t, &Elem::Null);
                frame.size += hdr;
                let complete = frame.complete_element();
                return Step::Done {
                    pos: after,
                    complete,
                };
            }
            if n < 0 {
                return Step::Err("bad bulk length");
            }
            let n_us = usize::try_from(n).unwrap_or(usize::MAX);
            let keep = if frame.wanted() { n_us.min(KEEP) } else { 0 };
            let full_end = after.checked_add(n_us).and_then(|e| e.checked_add(2));
            if let Some(end) = full_end.filter(|&e| e <= data.len()) {
                if &data[end - 2..end] != b"\r\n" {
                    return Step::Err("bulk string not terminated by CRLF");
                }
                frame.record(t, &Elem::Bulk(&data[after..after + keep]));
                frame.size += hdr + n as u64 + 2;
                let complete = frame.complete_element();
                return Step::Done { pos: end, complete };
            }
            let small = n <= BIG_BULK && keep == n_us;
            if small {
                // Wait for the whole (short) string and its CRLF.
                return Step::Need(after - pos + n_us + 2);
            }
            if data.len() < after + keep {
                return Step::Need(after - pos + keep);
            }
            frame.record(t, &Elem::Bulk(&data[after..after + keep]));
            frame.size += hdr + n as u64 + 2;
            let complete = frame.complete_element();
            Step::Skip {
                pos: after + keep,
                skip: n as u64 - keep as u64 + 2,
                complete,
            }
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let Some(n) = parse_int(line) else {
                return Step::Err("bad aggregate length");
            };
            frame.size += hdr;
            if n == -1 && t == b'*' {
                frame.record(t, &Elem::Null);
                let complete = frame.complete_element();
                return Step::Done {
                    pos: after,
                    complete,
                };
            }
            if !(0..=MAX_COUNT).contains(&n) {
                return Step::Err("bad aggregate length");
            }
            let attr = t == b'|';
            if !attr {
                frame.record(t, &Elem::Agg(n));
            }
            let elems = if matches!(t, b'%' | b'|') {
                n as u64 * 2
            } else {
                n as u64
            };
            if elems == 0 {
                let complete = !attr && frame.complete_element();
                return Step::Done {
                    pos: after,
                    complete,
                };
            }
            if frame.stack.len() >= MAX_DEPTH {
                return Step::Err("nesting too deep");
            }
            frame.stack.push(Agg {
                remaining: elems,
                attr,
            });
            Step::Done {
                pos: after,
                complete: false,
            }
        }
        _ => Step::Err("not RESP: bad type byte"),
    }
}

// ---------------------------------------------------------------- session

#[derive(Default)]
struct DirState {
    frame: Option<Frame>,
    opaque: bool,
}

#[derive(Debug)]
struct ReqInfo {
    /// Lower-case (un)subscribe verb, if it is one.
    sub: Option<String>,
    channels: u64,
}

/// One Redis connection, both directions.
pub struct RedisSession {
    dirs: [DirState; 2],
    req_txn: u64,
    resp_txn: u64,
    outstanding: VecDeque<ReqInfo>,
    /// The client has subscribed (RESP2 pub/sub mode).
    subscribed: bool,
    /// Further confirmations expected for the last paired (un)subscribe.
    confirm_kind: String,
    confirm_left: u64,
}

impl Default for RedisSession {
    fn default() -> Self {
        Self::new()
    }
}

fn is_sub_verb(v: &str) -> bool {
    matches!(
        v,
        "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ssubscribe" | "sunsubscribe"
    )
}

fn is_push_kind(v: &str) -> bool {
    is_sub_verb(v) || matches!(v, "message" | "pmessage" | "smessage")
}

impl RedisSession {
    pub fn new() -> Self {
        RedisSession {
            dirs: Default::default(),
            req_txn: 0,
            resp_txn: 0,
            outstanding: VecDeque::new(),
            subscribed: false,
            confirm_kind: String::new(),
            confirm_left: 0,
        }
    }

    fn emit(&mut self, dir: Direction, f: Frame, out: &mut Output) {
        match dir {
            Direction::ToServer => self.emit_request(f, out),
            Direction::ToClient => self.emit_reply(f, out),
        }
    }

    fn emit_request(&mut self, f: Frame, out: &mut Output) {
        if f.args.is_empty() {
            return; // "*0" or an empty array: Redis ignores it
        }
        let verb = f.args[0].to_ascii_uppercase();
        let lower = verb.to_ascii_lowercase();
        let txn = self.req_txn;
        self.req_txn += 1;
        let mut command = f.command;
        truncate(&mut command, MAX_COMMAND);
        let mut m = out.request(txn, f.start);
        m.field(F_TYPE, truncated(verb.clone(), MAX_ARG))
            .field(F_COMMAND, command)
            .int(F_ARGC, f.argc as i64)
            .int(F_REQUEST_SIZE, f.size as i64);
        if f.args.len() >= 2 && !NO_KEY.contains(&verb.as_str()) {
            m.field(F_KEY, f.args[1].clone());
        }
        for a in f.args.iter().skip(1).take(MAX_ARGS) {
            m.field(F_ARGS, truncated(a.clone(), MAX_ARG));
        }
        if matches!(lower.as_str(), "subscribe" | "psubscribe" | "ssubscribe") {
            self.subscribed = true;
        }
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(ReqInfo {
            sub: is_sub_verb(&lower).then_some(lower),
            channels: f.argc.saturating_sub(1),
        });
    }

    fn emit_reply(&mut self, f: Frame, out: &mut Output) {
        let t = f.top_type;
        let (rtype, reply) = if f.top_null {
            ("null", "(nil)".to_owned())
        } else {
            match t {
                b'+' => ("simple", f.top_text.clone()),
                b'-' => ("error", f.top_text.clone()),
                b'!' => ("error", f.top_text.clone()),
                b':' => ("integer", format!("(integer) {}", f.top_text)),
                b'$' => (
                    "bulk",
                    format!("\"{}\"", truncated(f.top_text.clone(), MAX_REPLY)),
                ),
                b'*' => ("array", format!("(array {})", f.top_count)),
                b'%' => ("map", format!("(map {})", f.top_count)),
                b'~' => ("set", format!("(set {})", f.top_count)),
                b'>' => ("push", format!("(push {})", f.top_count)),
                b',' => ("double", format!("(double) {}", f.top_text)),
                b'#' => (
                    "boolean",
                    format!(
                        "(boolean) {}",
                        if f.top_text == "t" { "true" } else { "false" }
                    ),
                ),
                b'(' => ("big_number", format!("(big number) {}", f.top_text)),
                _ => ("unknown", String::new()),
            }
        };
        let reply = truncated(reply, MAX_REPLY);
        let error = matches!(t, b'-' | b'!');

        // Push or reply?
        let kind = f.first_child.as_deref().map(str::to_ascii_lowercase);
        let pubsub = match (t, kind.as_deref()) {
            (b'>', _) => true,
            (b'*', Some(k)) => self.subscribed && f.top_count >= 3 && is_push_kind(k),
            _ => false,
        };
        let mut standalone = pubsub;
        if pubsub {
            if let Some(k) = kind.as_deref().filter(|k| is_sub_verb(k)) {
                if (k.starts_with("punsub") || k.starts_with("unsub") || k.starts_with("sunsub"))
                    && f.last_int_child == Some(0)
                {
                    self.subscribed = false;
                }
                if self.confirm_left > 0 && self.confirm_kind == k {
                    self.confirm_left -= 1;
                } else if self
                    .outstanding
                    .front()
                    .is_some_and(|r| r.sub.as_deref() == Some(k))
                {
                    let r = self.outstanding.pop_front();
                    self.confirm_left = r.map_or(0, |r| r.channels.saturating_sub(1));
                    self.confirm_kind = k.to_owned();
                    standalone = false;
                }
            }
        }
        let mut m = if standalone {
            out.standalone(0, f.start)
        } else {
            if !pubsub {
                self.outstanding.pop_front();
            }
            let txn = self.resp_txn;
            self.resp_txn += 1;
            out.response(txn, f.start)
        };
        m.field(F_REPLY, reply)
            .field(F_REPLY_TYPE, rtype)
            .field(F_ERROR, error)
            .int(F_RESPONSE_SIZE, f.size as i64);
        if let Some(k) = kind.filter(|_| pubsub) {
            m.field(F_PUSH_KIND, truncated(k, MAX_ARG));
        }
    }

    /// One inline command line at `pos` (to-server data not starting with '*').
    fn inline(&mut self, input: &Input<'_>, pos: usize, out: &mut Output) -> Result<usize, Step> {
        let data = input.data;
        let Some(nl) = data[pos..].iter().position(|&b| b == b'\n') else {
            let avail = data.len() - pos;
            return Err(if avail > MAX_LINE {
                Step::Err("inline command too long")
            } else {
                Step::Need(avail + 1)
            });
        };
        let end = pos + nl + 1;
        let mut line = &data[pos..pos + nl];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let mut f = Frame::new(input.offset(pos));
        f.size = (end - pos) as u64;
        for w in line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty())
        {
            f.add_arg(&w[..w.len().min(KEEP)]);
        }
        self.emit_request(f, out);
        Ok(end)
    }
}

impl Session for RedisSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        if data.is_empty() {
            return Progress::need(0, 1);
        }
        let i = dir.index();
        if self.dirs[i].opaque {
            return Progress::consumed(data.len());
        }
        let mut pos = 0usize;
        loop {
            if pos >= data.len() {
                return Progress::consumed(pos);
            }
            let mut frame = match self.dirs[i].frame.take() {
                Some(f) => f,
                None => {
                    if dir == Direction::ToServer && data[pos] != b'*' {
                        match self.inline(input, pos, out) {
                            Ok(end) => {
                                pos = end;
                                continue;
                            }
                            Err(Step::Need(n)) => return Progress::need(pos, n),
                            Err(_) => {
                                out.error("inline command too long");
                                self.dirs[i].opaque = true;
                                return Progress::consumed(data.len());
                            }
                        }
                    }
                    Frame::new(input.offset(pos))
                }
            };
            match step(&mut frame, data, pos) {
                Step::Done { pos: p, complete } => {
                    pos = p;
                    if complete {
                        self.emit(dir, frame, out);
                    } else {
                        self.dirs[i].frame = Some(frame);
                    }
                }
                Step::Skip {
                    pos: p,
                    skip,
                    complete,
                } => {
                    if complete {
                        self.emit(dir, frame, out);
                    } else {
                        self.dirs[i].frame = Some(frame);
                    }
                    return Progress::skip(p, skip);
                }
                Step::Need(n) => {
                    self.dirs[i].frame = Some(frame);
                    return Progress::need(pos, n);
                }
                Step::Err(e) => {
                    out.error(e);
                    self.dirs[i].opaque = true;
                    return Progress::consumed(data.len());
                }
            }
        }
    }

    fn gap(&mut self, _dir: Direction, _len: u64, out: &mut Output) {
        // Lost bytes break both framing and in-order pairing: give up on the
        // connection rather than pair the wrong messages.
        out.error("bytes lost: redis dissection stopped for this connection");
        for d in &mut self.dirs {
            d.opaque = true;
            d.frame = None;
        }
    }
}
