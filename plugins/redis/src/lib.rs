//! Redis (RESP2 and RESP3) dissector for Remora, written with `remora-sdk`.
//!
//! Requests and replies pair in order per connection: request *n* and reply
//! *n* share `txn = n`. Server pushes (RESP3 `>` messages, and RESP2
//! pub/sub `message` arrays once the client has subscribed) are `standalone`
//! and consume no txn. A `SUBSCRIBE` with *k* channels yields *k*
//! confirmations: the first pairs with the request, the rest stand alone.
//!
//! The parser is incremental: every complete RESP element is consumed at
//! once and what the message needs is kept (bounded) in the session, so a
//! frame may span any number of calls. Within a call it keeps where the
//! texts lie in the input, and they cross the boundary as spans; a frame
//! that outlives its call keeps owned texts instead. A command that lies
//! whole in the input (an array of bulk strings) is parsed in one go. Bulk
//! strings keep at most [`KEEP`] bytes; the remainder of a bulk not yet
//! received is dropped through `skip`, so large payloads never cross the
//! boundary. Nesting is bounded by [`MAX_DEPTH`], lines by [`MAX_LINE`].

use remora_sdk::prelude::*;
use std::borrow::Cow;
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

/// Whether a command's first argument is not a key; `verb` upper case.
/// A `match` (a switch on length, then a few comparisons), not a scan of
/// a table: it runs for every request, and the scan was a visible share.
fn keyless(verb: &[u8]) -> bool {
    matches!(
        verb,
        b"ACL"
            | b"ASKING"
            | b"AUTH"
            | b"BGREWRITEAOF"
            | b"BGSAVE"
            | b"BLMPOP"
            | b"BZMPOP"
            | b"CLIENT"
            | b"CLUSTER"
            | b"COMMAND"
            | b"CONFIG"
            | b"DBSIZE"
            | b"DEBUG"
            | b"DISCARD"
            | b"ECHO"
            | b"EVAL"
            | b"EVALSHA"
            | b"EVALSHA_RO"
            | b"EVAL_RO"
            | b"EXEC"
            | b"FAILOVER"
            | b"FCALL"
            | b"FCALL_RO"
            | b"FLUSHALL"
            | b"FLUSHDB"
            | b"FUNCTION"
            | b"HELLO"
            | b"INFO"
            | b"KEYS"
            | b"LASTSAVE"
            | b"LATENCY"
            | b"LMPOP"
            | b"LOLWUT"
            | b"MEMORY"
            | b"MODULE"
            | b"MONITOR"
            | b"MULTI"
            | b"OBJECT"
            | b"PING"
            | b"PSUBSCRIBE"
            | b"PSYNC"
            | b"PUBLISH"
            | b"PUBSUB"
            | b"PUNSUBSCRIBE"
            | b"QUIT"
            | b"READONLY"
            | b"READWRITE"
            | b"REPLCONF"
            | b"REPLICAOF"
            | b"RESET"
            | b"ROLE"
            | b"SAVE"
            | b"SCAN"
            | b"SCRIPT"
            | b"SELECT"
            | b"SHUTDOWN"
            | b"SINTERCARD"
            | b"SLAVEOF"
            | b"SLOWLOG"
            | b"SPUBLISH"
            | b"SSUBSCRIBE"
            | b"SUBSCRIBE"
            | b"SUNSUBSCRIBE"
            | b"SWAPDB"
            | b"SYNC"
            | b"TIME"
            | b"UNSUBSCRIBE"
            | b"WAIT"
            | b"WAITAOF"
            | b"XREAD"
            | b"XREADGROUP"
            | b"ZDIFF"
            | b"ZINTER"
            | b"ZINTERCARD"
            | b"ZMPOP"
            | b"ZUNION"
    )
}

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

/// The text kept of one element. While its frame is parsed within one call
/// it is where the raw bytes lie in that call's input, so what a message
/// shows of it can cross the boundary as a span; a frame that outlives its
/// call keeps the rendered text instead (`detach`).
#[derive(Debug)]
enum Kept {
    /// Raw bytes in the current input.
    At(Span),
    /// Raw bytes in the current input, known to be UTF-8: a command's
    /// arguments are validated once, for the command line, and their
    /// spans then go out as they are.
    Text(Span),
    Owned(String),
    /// An aggregate element of a command.
    Nested,
}

impl Kept {
    fn at(input: &Input<'_>, raw: &[u8]) -> Kept {
        Kept::At(input.span_of(raw))
    }

    /// Lossy UTF-8, at most [`KEEP`] bytes; borrowed from `data` (the
    /// current input) when the raw bytes are valid UTF-8.
    fn render<'a>(&'a self, data: &'a [u8]) -> Cow<'a, str> {
        match self {
            Kept::At(sp) | Kept::Text(sp) => {
                cut_cow(lossy(data.get(sp.range()).unwrap_or(&[])), KEEP)
            }
            Kept::Owned(s) => Cow::Borrowed(s),
            Kept::Nested => Cow::Borrowed("(nested)"),
        }
    }

    /// The text to emit, cut to `max` bytes: the span itself when it is
    /// known to be UTF-8 and short enough (the host reads spans as text).
    fn text(&self, input: &Input<'_>, max: usize) -> Text {
        match self {
            Kept::Text(sp) if sp.len as usize <= max => Text::Span(*sp),
            _ => input.text_of(cut(&self.render(input.data), max)),
        }
    }

    fn detach(&mut self, data: &[u8]) {
        if let Kept::At(_) | Kept::Text(_) = self {
            *self = Kept::Owned(self.render(data).into_owned());
        }
    }
}

/// A RESP value being parsed, possibly across calls. One per direction,
/// reset (allocations kept) for each new value.
#[derive(Debug, Default)]
struct Frame {
    start: u64,
    size: u64,
    stack: Vec<Agg>,
    /// How many entries of `stack` are attributes.
    attrs: usize,
    /// A reply: its arguments are counted but never rendered.
    reply: bool,
    /// Type byte of the top-level value (after attributes); 0 until seen.
    top_type: u8,
    top_null: bool,
    top_count: i64,
    /// A top-level scalar.
    top_text: Option<Kept>,
    /// Depth-1 elements (command arguments, reply children).
    argc: u64,
    /// Command arguments, the verb first (requests only).
    args: Vec<Kept>,
    /// Arguments joined by spaces, cut near [`MAX_COMMAND`] (requests only).
    command: String,
    first_child: Option<Kept>,
    last_int_child: Option<i64>,
}

enum Elem<'a> {
    Line(&'a [u8]),
    Bulk(&'a [u8]),
    Null,
    Agg(i64),
}

/// `String::from_utf8_lossy`, with the common valid case first (its chunk
/// iterator was a visible share of the plugin's time).
fn lossy(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

fn truncate(s: &mut String, max: usize) {
    let n = cut(s, max).len();
    s.truncate(n);
}

fn cut_cow(s: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(cut(b, max)),
        Cow::Owned(mut o) => {
            truncate(&mut o, max);
            Cow::Owned(o)
        }
    }
}

/// `s` upper-cased and cut to `max` bytes; a span when it already is upper case.
fn upper_text(input: &Input<'_>, s: &str, max: usize) -> Text {
    cased_text(input, s, max, true)
}

/// `s` lower-cased and cut to `max` bytes; a span when it already is lower case.
fn lower_text(input: &Input<'_>, s: &str, max: usize) -> Text {
    cased_text(input, s, max, false)
}

fn cased_text(input: &Input<'_>, s: &str, max: usize, upper: bool) -> Text {
    let wrong = |b: u8| {
        if upper {
            b.is_ascii_lowercase()
        } else {
            b.is_ascii_uppercase()
        }
    };
    if s.bytes().any(wrong) {
        let mut c = if upper {
            s.to_ascii_uppercase()
        } else {
            s.to_ascii_lowercase()
        };
        truncate(&mut c, max);
        Text::Owned(c)
    } else {
        input.text_of(cut(s, max))
    }
}

/// `prefix`, `s` and `suffix` into `r`, cut to [`MAX_REPLY`] bytes.
fn prefixed(r: &mut String, prefix: &str, s: &str, suffix: &str) {
    r.clear();
    r.push_str(prefix);
    r.push_str(s);
    r.push_str(suffix);
    truncate(r, MAX_REPLY);
}

/// `(<what> <n>)` into `r`, as a reply rendering.
fn counted(r: &mut String, what: &str, n: i64) {
    r.clear();
    r.push('(');
    r.push_str(what);
    r.push(' ');
    push_int(r, n);
    r.push(')');
    truncate(r, MAX_REPLY);
}

/// Decimal `n`, without the formatting machinery (one call per reply).
fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(d as char);
    }
}

/// What `str::parse::<i64>` accepts after an optional extra leading `+`,
/// straight from bytes.
fn parse_int(b: &[u8]) -> Option<i64> {
    // Every element header has one: plain short digit strings first.
    if !b.is_empty() && b.len() <= 18 {
        let mut v: i64 = 0;
        let mut digits = true;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            digits &= d <= 9;
            v = v.wrapping_mul(10).wrapping_add(i64::from(d));
        }
        if digits {
            return Some(v);
        }
    }
    let b = b.strip_prefix(b"+").unwrap_or(b);
    let (neg, digits) = match b.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 18 {
        // Cannot overflow: no checked (128-bit) arithmetic needed.
        let mut v: i64 = 0;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + i64::from(d);
        }
        return Some(if neg { -v } else { v });
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(i64::from(d))?
        } else {
            v.checked_add(i64::from(d))?
        };
    }
    Some(v)
}

impl Frame {
    /// Start a new value at stream offset `start`.
    fn reset(&mut self, start: u64, reply: bool) {
        self.start = start;
        self.size = 0;
        self.stack.clear();
        self.attrs = 0;
        self.reply = reply;
        self.top_type = 0;
        self.top_null = false;
        self.top_count = 0;
        self.top_text = None;
        self.argc = 0;
        self.args.clear();
        self.command.clear();
        self.first_child = None;
        self.last_int_child = None;
    }

    fn depth(&self) -> usize {
        self.stack.len() - self.attrs
    }

    /// Whether an element starting now is worth keeping.
    fn wanted(&self) -> bool {
        self.depth() <= 1 && self.attrs == 0
    }

    /// Record an element's value; `e`'s bytes lie in `input`.
    fn record(&mut self, input: &Input<'_>, t: u8, e: &Elem<'_>) {
        if self.attrs > 0 {
            return;
        }
        if let (b'=', Elem::Bulk(b)) = (t, e) {
            // Verbatim string: drop the "txt:" format prefix.
            let b = b.get(4..).unwrap_or(b"");
            return self.record(input, b'$', &Elem::Bulk(b));
        }
        match self.depth() {
            0 => {
                self.top_type = t;
                match e {
                    Elem::Null => self.top_null = true,
                    Elem::Agg(n) => self.top_count = *n,
                    Elem::Line(l) | Elem::Bulk(l) => {
                        self.top_text = Some(Kept::at(input, l));
                        if matches!(t, b'$' | b'+') {
                            self.add_arg(input, l);
                        }
                    }
                }
            }
            1 => match e {
                Elem::Line(l) | Elem::Bulk(l) => {
                    if self.argc == 0 && matches!(t, b'$' | b'+') {
                        self.first_child = Some(Kept::at(input, l));
                    }
                    if t == b':' {
                        self.last_int_child = parse_int(l);
                    }
                    self.add_arg(input, l);
                }
                Elem::Null => self.add_arg(input, b""),
                Elem::Agg(_) => self.push_arg("(nested)", Kept::Nested),
            },
            _ => {}
        }
    }

    /// One more argument, `l` (in `input`). Its kept bytes are validated
    /// as UTF-8 once, for both the command line and its own text.
    fn add_arg(&mut self, input: &Input<'_>, l: &[u8]) {
        self.argc += 1;
        let wanted = self.args_open();
        if self.reply || !(wanted || self.command_open()) {
            return;
        }
        let kept = &l[..l.len().min(KEEP)];
        let text = std::str::from_utf8(kept).ok();
        if self.command_open() {
            // `kept` is all of `l` unless `l` is a long simple string.
            let s = match text {
                Some(t) if kept.len() == l.len() => Cow::Borrowed(t),
                _ => lossy(&l[..l.len().min(MAX_COMMAND + 4)]),
            };
            self.extend_command(&s);
        }
        if wanted {
            let span = input.span_of(kept);
            self.args.push(match text {
                Some(_) => Kept::Text(span),
                None => Kept::At(span),
            });
        }
    }

    /// An argument shown as `raw`, kept as `kept`.
    fn push_arg(&mut self, raw: &str, kept: Kept) {
        self.argc += 1;
        if self.reply {
            return;
        }
        if self.command_open() {
            self.extend_command(raw);
        }
        if self.args_open() {
            self.args.push(kept);
        }
    }

    /// Whether the command line takes more arguments.
    fn command_open(&self) -> bool {
        self.command.len() < MAX_COMMAND + 4
    }

    /// Whether more arguments are kept on their own.
    fn args_open(&self) -> bool {
        self.args.len() < MAX_ARGS + 2
    }

    fn extend_command(&mut self, arg: &str) {
        if !self.command.is_empty() {
            self.command.push(' ');
        }
        self.command.push_str(arg);
    }

    /// The input of this call goes away: keep owned texts instead of spans.
    fn detach(&mut self, data: &[u8]) {
        let kept = self
            .args
            .iter_mut()
            .chain(self.top_text.as_mut())
            .chain(self.first_child.as_mut());
        for k in kept {
            k.detach(data);
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
            if self.stack.pop().is_some_and(|a| a.attr) {
                self.attrs -= 1;
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
    let mut i = from;
    loop {
        let cr = i + data.get(i..)?.iter().position(|&b| b == b'\r')?;
        if *data.get(cr + 1)? == b'\n' {
            return Some(cr);
        }
        i = cr + 1;
    }
}

/// Whether CRLF is at `at`: two byte compares, where comparing slices
/// was a call to the guest's `memcmp`.
#[inline(always)]
fn crlf_at(data: &[u8], at: usize) -> bool {
    data.get(at) == Some(&b'\r') && data.get(at + 1) == Some(&b'\n')
}

/// The common header line at `at`: a type byte, 1 to 18 digits and CRLF,
/// read in one pass; its value and where the line ends (after the CRLF).
/// `None` for anything else, which `find_crlf` and `parse_int` then read
/// (to the same end and value when this one has them).
#[inline(always)]
fn digits_line(data: &[u8], at: usize) -> Option<(i64, usize)> {
    let mut v: i64 = 0;
    let mut i = at + 1;
    loop {
        let c = *data.get(i)?;
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if i - at > 18 {
            return None; // a 19th digit
        }
        v = v * 10 + i64::from(d);
        i += 1;
    }
    (i > at + 1 && crlf_at(data, i)).then_some((v, i + 2))
}

/// Parse one element at `pos` of `input` into `frame`.
fn step(frame: &mut Frame, input: &Input<'_>, pos: usize) -> Step {
    let data = input.data;
    let avail = data.len() - pos;
    let quick = digits_line(data, pos);
    let int = |line: &[u8]| quick.map_or_else(|| parse_int(line), |(v, _)| Some(v));
    let Some(eol) = quick
        .map(|(_, end)| end - 2)
        .or_else(|| find_crlf(data, pos))
    else {
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
            if t == b':' && int(line).is_none() {
                return Step::Err("bad integer");
            }
            let e = if t == b'_' {
                Elem::Null
            } else {
                Elem::Line(line)
            };
            frame.record(input, t, &e);
            frame.size += hdr;
            let complete = frame.complete_element();
            Step::Done {
                pos: after,
                complete,
            }
        }
        b'$' | b'!' | b'=' => {
            let Some(n) = int(line) else {
                return Step::Err("bad bulk length");
            };
            if n == -1 {
                frame.record(input, t, &Elem::Null);
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
                if !crlf_at(data, end - 2) {
                    return Step::Err("bulk string not terminated by CRLF");
                }
                frame.record(input, t, &Elem::Bulk(&data[after..after + keep]));
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
            frame.record(input, t, &Elem::Bulk(&data[after..after + keep]));
            frame.size += hdr + n as u64 + 2;
            let complete = frame.complete_element();
            Step::Skip {
                pos: after + keep,
                skip: n as u64 - keep as u64 + 2,
                complete,
            }
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let Some(n) = int(line) else {
                return Step::Err("bad aggregate length");
            };
            frame.size += hdr;
            if n == -1 && t == b'*' {
                frame.record(input, t, &Elem::Null);
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
                frame.record(input, t, &Elem::Agg(n));
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
            frame.attrs += usize::from(attr);
            Step::Done {
                pos: after,
                complete: false,
            }
        }
        _ => Step::Err("not RESP: bad type byte"),
    }
}

/// The common request, an array of bulk strings that lies whole in the
/// input, parsed into `frame` in one go: what `step` would record for it,
/// without an element-by-element state machine. `None` for anything else
/// (then `frame` is left to be reset and `step` decides, errors included).
fn whole_command(frame: &mut Frame, input: &Input<'_>, pos: usize) -> Option<usize> {
    let data = input.data;
    let header = |at: usize, t: u8| -> Option<(i64, usize)> {
        if data.get(at) != Some(&t) {
            return None;
        }
        if let Some(quick) = digits_line(data, at) {
            return Some(quick);
        }
        let eol = find_crlf(data, at)?;
        if eol - at > MAX_LINE {
            return None;
        }
        Some((parse_int(&data[at + 1..eol])?, eol + 2))
    };
    let (n, mut at) = header(pos, b'*')?;
    if !(1..=MAX_ARGS as i64 * 4).contains(&n) {
        return None;
    }
    frame.reset(input.offset(pos), false);
    frame.size = (at - pos) as u64;
    for _ in 0..n {
        let (len, after) = header(at, b'$')?;
        let len = usize::try_from(len).ok()?;
        let end = after.checked_add(len)?.checked_add(2)?;
        if end > data.len() || !crlf_at(data, end - 2) {
            return None;
        }
        frame.add_arg(input, &data[after..after + len.min(KEEP)]);
        frame.size += (end - at) as u64;
        at = end;
    }
    Some(at)
}

// ---------------------------------------------------------------- session

#[derive(Default)]
struct DirState {
    frame: Frame,
    /// `frame` holds a value not yet complete.
    active: bool,
    opaque: bool,
}

#[derive(Debug)]
struct ReqInfo {
    /// Lower-case (un)subscribe verb, if it is one.
    sub: Option<&'static str>,
    channels: u64,
}

/// Transaction numbering and pub/sub state of one connection.
#[derive(Default)]
struct Pairing {
    req_txn: u64,
    resp_txn: u64,
    outstanding: VecDeque<ReqInfo>,
    /// The client has subscribed (RESP2 pub/sub mode).
    subscribed: bool,
    /// Further confirmations expected for the last paired (un)subscribe.
    confirm_kind: &'static str,
    confirm_left: u64,
    /// A reply's rendering, when it is not a span of the input: reused, so
    /// a reply allocates nothing.
    rendered: String,
}

/// One Redis connection, both directions.
pub struct RedisSession {
    dirs: [DirState; 2],
    pairing: Pairing,
}

impl Default for RedisSession {
    fn default() -> Self {
        Self::new()
    }
}

const SUB_VERBS: [&str; 6] = [
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
];

/// Pushes that are not replies to a subscription verb.
const MESSAGE_KINDS: [&str; 3] = ["message", "pmessage", "smessage"];

/// A push kind a subscribed client receives: a subscription verb's
/// confirmation or a message.
fn is_push_kind(k: &str) -> bool {
    find_ci(&SUB_VERBS, k).is_some() || find_ci(&MESSAGE_KINDS, k).is_some()
}

fn find_ci(table: &[&'static str], s: &str) -> Option<&'static str> {
    table.iter().copied().find(|v| v.eq_ignore_ascii_case(s))
}

impl Pairing {
    fn emit(&mut self, dir: Direction, f: &Frame, input: &Input<'_>, out: &mut Output) {
        match dir {
            Direction::ToServer => self.emit_request(f, input, out),
            Direction::ToClient => self.emit_reply(f, input, out),
        }
    }

    fn emit_request(&mut self, f: &Frame, input: &Input<'_>, out: &mut Output) {
        if f.args.is_empty() {
            return; // "*0" or an empty array: Redis ignores it
        }
        let data = input.data;
        let verb = f.args[0].render(data);
        let sub = find_ci(&SUB_VERBS, &verb);
        let mut upper = [0u8; 16]; // longer than every keyless verb
        let keyed = match verb.as_bytes() {
            v if v.len() <= upper.len() => {
                let upper = &mut upper[..v.len()];
                upper.copy_from_slice(v);
                upper.make_ascii_uppercase();
                !keyless(upper)
            }
            // Longer than any keyless verb.
            _ => true,
        };
        let txn = self.req_txn;
        self.req_txn += 1;
        // An exact-size copy: the frame's buffer stays for the next command.
        let command = cut(&f.command, MAX_COMMAND);
        let mut m = out.request(txn, f.start);
        m.field(F_TYPE, upper_text(input, &verb, MAX_ARG))
            .field(F_COMMAND, command)
            .int(F_ARGC, f.argc as i64)
            .int(F_REQUEST_SIZE, f.size as i64);
        if f.args.len() >= 2 && keyed {
            m.field(F_KEY, f.args[1].text(input, KEEP));
        }
        for a in f.args.iter().skip(1).take(MAX_ARGS) {
            m.field(F_ARGS, a.text(input, MAX_ARG));
        }
        if matches!(sub, Some("subscribe" | "psubscribe" | "ssubscribe")) {
            self.subscribed = true;
        }
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(ReqInfo {
            sub,
            channels: f.argc.saturating_sub(1),
        });
    }

    fn emit_reply(&mut self, f: &Frame, input: &Input<'_>, out: &mut Output) {
        let data = input.data;
        let t = f.top_type;
        let text = f
            .top_text
            .as_ref()
            .map_or(Cow::Borrowed(""), |k| k.render(data));
        /// Where the reply's text is.
        enum Reply {
            Text(Text),
            Fixed(&'static str),
            Rendered,
        }
        let r = &mut self.rendered;
        let (rtype, reply) = if f.top_null {
            ("null", Reply::Fixed("(nil)"))
        } else {
            match t {
                b'+' => ("simple", Reply::Text(input.text_of(cut(&text, MAX_REPLY)))),
                b'-' | b'!' => ("error", Reply::Text(input.text_of(cut(&text, MAX_REPLY)))),
                b':' => {
                    prefixed(r, "(integer) ", &text, "");
                    ("integer", Reply::Rendered)
                }
                b'$' => {
                    prefixed(r, "\"", cut(&text, MAX_REPLY), "\"");
                    ("bulk", Reply::Rendered)
                }
                b'*' | b'%' | b'~' | b'>' => {
                    let what = match t {
                        b'*' => "array",
                        b'%' => "map",
                        b'~' => "set",
                        _ => "push",
                    };
                    counted(r, what, f.top_count);
                    (what, Reply::Rendered)
                }
                b',' => {
                    prefixed(r, "(double) ", &text, "");
                    ("double", Reply::Rendered)
                }
                b'#' => (
                    "boolean",
                    Reply::Fixed(if text == "t" {
                        "(boolean) true"
                    } else {
                        "(boolean) false"
                    }),
                ),
                b'(' => {
                    prefixed(r, "(big number) ", &text, "");
                    ("big_number", Reply::Rendered)
                }
                _ => ("unknown", Reply::Fixed("")),
            }
        };
        let error = matches!(t, b'-' | b'!');

        // Push or reply?
        let kind = f.first_child.as_ref().map(|k| k.render(data));
        let pubsub = match t {
            b'>' => true,
            b'*' => {
                self.subscribed && f.top_count >= 3 && kind.as_deref().is_some_and(is_push_kind)
            }
            _ => false,
        };
        let mut standalone = pubsub;
        if pubsub {
            if let Some(k) = kind.as_deref().and_then(|k| find_ci(&SUB_VERBS, k)) {
                if (k.starts_with("punsub") || k.starts_with("unsub") || k.starts_with("sunsub"))
                    && f.last_int_child == Some(0)
                {
                    self.subscribed = false;
                }
                if self.confirm_left > 0 && self.confirm_kind == k {
                    self.confirm_left -= 1;
                } else if self.outstanding.front().is_some_and(|r| r.sub == Some(k)) {
                    let r = self.outstanding.pop_front();
                    self.confirm_left = r.map_or(0, |r| r.channels.saturating_sub(1));
                    self.confirm_kind = k;
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
        match reply {
            Reply::Text(t) => m.field(F_REPLY, t),
            Reply::Fixed(s) => m.field(F_REPLY, s),
            Reply::Rendered => m.field(F_REPLY, self.rendered.as_str()),
        };
        m.field(F_REPLY_TYPE, rtype)
            .field(F_ERROR, error)
            .int(F_RESPONSE_SIZE, f.size as i64);
        if let Some(k) = kind.filter(|_| pubsub) {
            m.field(F_PUSH_KIND, lower_text(input, &k, MAX_ARG));
        }
    }

    /// One inline command line at `pos` (to-server data not starting with
    /// '*'), parsed in `f` (not active).
    fn inline(
        &mut self,
        f: &mut Frame,
        input: &Input<'_>,
        pos: usize,
        out: &mut Output,
    ) -> Result<usize, Step> {
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
        f.reset(input.offset(pos), false);
        f.size = (end - pos) as u64;
        for w in line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty())
        {
            f.add_arg(input, &w[..w.len().min(KEEP)]);
        }
        self.emit_request(f, input, out);
        Ok(end)
    }
}

impl RedisSession {
    pub fn new() -> Self {
        RedisSession {
            dirs: Default::default(),
            pairing: Pairing::default(),
        }
    }
}

impl Session for RedisSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        if data.is_empty() {
            return Progress::need(0, 1);
        }
        let RedisSession { dirs, pairing } = self;
        let d = &mut dirs[dir.index()];
        if d.opaque {
            return Progress::consumed(data.len());
        }
        let mut pos = 0usize;
        let progress = loop {
            // Between elements: a frame in progress carries over.
            if pos >= data.len() || out.is_full() {
                break Progress::consumed(pos);
            }
            if !d.active {
                if dir == Direction::ToServer && data[pos] != b'*' {
                    match pairing.inline(&mut d.frame, input, pos, out) {
                        Ok(end) => {
                            pos = end;
                            continue;
                        }
                        Err(Step::Need(n)) => break Progress::need(pos, n),
                        Err(_) => {
                            out.error("inline command too long");
                            d.opaque = true;
                            break Progress::consumed(data.len());
                        }
                    }
                }
                if dir == Direction::ToServer {
                    if let Some(end) = whole_command(&mut d.frame, input, pos) {
                        pairing.emit_request(&d.frame, input, out);
                        pos = end;
                        continue;
                    }
                }
                d.frame.reset(input.offset(pos), dir == Direction::ToClient);
                d.active = true;
            }
            match step(&mut d.frame, input, pos) {
                Step::Done { pos: p, complete } => {
                    pos = p;
                    if complete {
                        d.active = false;
                        pairing.emit(dir, &d.frame, input, out);
                    }
                }
                Step::Skip {
                    pos: p,
                    skip,
                    complete,
                } => {
                    if complete {
                        d.active = false;
                        pairing.emit(dir, &d.frame, input, out);
                    }
                    break Progress::skip(p, skip);
                }
                Step::Need(n) => break Progress::need(pos, n),
                Step::Err(e) => {
                    out.error(e);
                    d.opaque = true;
                    d.active = false;
                    break Progress::consumed(data.len());
                }
            }
        };
        if d.active {
            d.frame.detach(data);
        }
        progress
    }

    fn gap(&mut self, _dir: Direction, _len: u64, out: &mut Output) {
        // Lost bytes break both framing and in-order pairing: give up on the
        // connection rather than pair the wrong messages.
        out.error("bytes lost: redis dissection stopped for this connection");
        for d in &mut self.dirs {
            d.opaque = true;
            d.active = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the integers of RESP mean: `str::parse` after one optional '+'.
    fn reference(b: &[u8]) -> Option<i64> {
        let s = std::str::from_utf8(b).ok()?;
        s.strip_prefix('+').unwrap_or(s).parse().ok()
    }

    #[test]
    fn parse_int_limits() {
        for s in [
            "",
            "+",
            "-",
            "++",
            "+-",
            "--1",
            "0",
            "-0",
            "+0",
            "007",
            "++5",
            "+-5",
            "12a",
            "999999999999999999",
            "-999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "00000000000000000000001",
            "1 ",
            " 1",
        ] {
            assert_eq!(parse_int(s.as_bytes()), reference(s.as_bytes()), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_int_is_str_parse(s in "[+-]{0,2}[0-9]{0,21}[x9]?") {
            prop_assert_eq!(parse_int(s.as_bytes()), reference(s.as_bytes()));
        }

        /// Where the quick path reads a line, the general one reads it alike.
        #[test]
        fn digits_line_is_find_crlf_and_parse_int(
            b in proptest::collection::vec(proptest::sample::select(b"0123456789\r\n+-$a".to_vec()), 0..28)
        ) {
            if let Some((v, end)) = digits_line(&b, 0) {
                let eol = find_crlf(&b, 0).expect("a line");
                prop_assert_eq!(end, eol + 2);
                prop_assert_eq!(parse_int(&b[1..eol]), Some(v));
            }
        }

        #[test]
        fn parse_int_on_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..24)) {
            prop_assert_eq!(parse_int(&b), reference(&b));
        }
    }

    #[test]
    fn digits_line_takes_up_to_18_digits() {
        let line = |d: &str| format!("${d}\r\n").into_bytes();
        let max = "9".repeat(18);
        assert_eq!(
            digits_line(&line(&max), 0),
            Some((999_999_999_999_999_999, 21))
        );
        assert_eq!(digits_line(&line(&"9".repeat(19)), 0), None);
        for other in ["", "-1", "+1", "1 ", "12\r", "1\n"] {
            assert_eq!(
                digits_line(format!("${other}").as_bytes(), 0),
                None,
                "{other:?}"
            );
        }
        assert_eq!(digits_line(b"$3\r\nabc", 0), Some((3, 4)));
    }

    #[test]
    fn keyless_takes_upper_case_verbs() {
        assert!(keyless(b"SELECT") && keyless(b"BGREWRITEAOF"));
        assert!(!keyless(b"GET") && !keyless(b"select") && !keyless(b"SELECTX"));
    }

    #[test]
    fn reply_renderings_count_in_decimal() {
        for n in [0, 7, -7, 10, i64::MAX, i64::MIN] {
            let mut s = String::new();
            push_int(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
