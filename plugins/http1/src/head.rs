//! Start lines and headers: probing, finding the end of a head, parsing it
//! with httparse and turning it into fields.

use crate::body::{self, Chunk, Coding, Framing, Pending};
use crate::*;
use std::mem::MaybeUninit;

/// Most headers a head may carry before it is an error.
const MAX_HEADERS: usize = 128;
/// Longest method token accepted by the parser.
const MAX_METHOD: usize = 32;

const METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKACTIVITY",
    b"MKCALENDAR",
    b"CHECKOUT",
    b"MERGE",
    b"M-SEARCH",
    b"NOTIFY",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PURGE",
    b"LINK",
    b"UNLINK",
    b"ACL",
    b"BIND",
    b"REBIND",
    b"UNBIND",
    b"QUERY",
];

/// The probe: a known method and a space to the server, `HTTP/1.` to the
/// client (90); certain (100) once the whole request line with its
/// `HTTP/1.x` version, or a status line's version and code, is there.
pub fn probe_bytes(dir: Direction, data: &[u8]) -> Probe {
    match dir {
        Direction::ToServer => {
            let mut maybe = false;
            for m in METHODS {
                if data.len() > m.len() {
                    if data.starts_with(m) && data[m.len()] == b' ' {
                        return Probe::Yes(if request_line_complete(data) { 100 } else { 90 });
                    }
                } else if m.starts_with(data) {
                    // `data` is a proper prefix of "METHOD ".
                    maybe = true;
                }
            }
            if maybe {
                Probe::NeedMore
            } else {
                Probe::No
            }
        }
        Direction::ToClient => {
            const P: &[u8] = b"HTTP/1.";
            if data.len() >= P.len() {
                if data.starts_with(P) {
                    Probe::Yes(if status_line_start(data) { 100 } else { 90 })
                } else {
                    Probe::No
                }
            } else if P.starts_with(data) {
                Probe::NeedMore
            } else {
                Probe::No
            }
        }
    }
}

/// `data` (starting with a method and a space) holds a request line ending
/// in ` HTTP/1.<digit>`.
fn request_line_complete(data: &[u8]) -> bool {
    let Some(nl) = memchr::memchr(b'\n', &data[..data.len().min(MAX_PROBE_LINE)]) else {
        return false;
    };
    let line = &data[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    matches!(line.len().checked_sub(9).map(|i| &line[i..]),
        Some([b' ', b'H', b'T', b'T', b'P', b'/', b'1', b'.', d]) if d.is_ascii_digit())
}

/// `data` (starting with `HTTP/1.`) goes on with a version digit, a space
/// and a three-digit status code.
fn status_line_start(data: &[u8]) -> bool {
    matches!(data.get(7..12), Some([d, b' ', a, b, c])
        if [d, a, b, c].iter().all(|x| x.is_ascii_digit()))
}

/// Request lines longer than this are not searched for their version by
/// the probe (they still count as HTTP/1 at 90).
const MAX_PROBE_LINE: usize = 8192;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

enum Plausible {
    Yes,
    Maybe,
    No,
}

/// Cheap check of the first bytes of a head, so garbage is an error at once
/// instead of after 64 KiB.
fn plausible(dir: Direction, rest: &[u8]) -> Plausible {
    match dir {
        Direction::ToServer => {
            for (i, &b) in rest.iter().enumerate().take(MAX_METHOD + 1) {
                if b == b' ' {
                    return if i > 0 { Plausible::Yes } else { Plausible::No };
                }
                if !is_tchar(b) {
                    return Plausible::No;
                }
            }
            if rest.len() > MAX_METHOD {
                Plausible::No
            } else {
                Plausible::Maybe
            }
        }
        Direction::ToClient => {
            let n = rest.len().min(5);
            if rest[..n] != b"HTTP/"[..n] {
                Plausible::No
            } else if n < 5 {
                Plausible::Maybe
            } else {
                Plausible::Yes
            }
        }
    }
}

/// Offset just past the blank line ending the head, searching from `from`.
fn find_head_end(rest: &[u8], from: usize) -> Option<usize> {
    let mut i = from.min(rest.len());
    while let Some(off) = memchr::memchr(b'\n', &rest[i..]) {
        let nl = i + off;
        match rest.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') => match rest.get(nl + 2) {
                Some(b'\n') => return Some(nl + 3),
                Some(_) => {}
                None => return None,
            },
            Some(_) => {}
            None => return None,
        }
        i = nl + 1;
    }
    None
}

/// After lost bytes: the offset of the next line that starts a message.
fn find_resync(dir: Direction, rest: &[u8]) -> Option<usize> {
    (0..rest.len())
        .filter(|&i| i == 0 || rest[i - 1] == b'\n')
        .find(|&i| matches!(probe_bytes(dir, &rest[i..]), Probe::Yes(_)))
}

pub(crate) enum HeadStep {
    /// Go on with the loop (a message or a body started).
    Continue,
    /// Incomplete: wait until `need` bytes are pending after the consumed ones.
    Wait { need: usize },
    /// The direction stopped parsing (error, upgrade); consume everything.
    Stop,
    /// A message ended with the cap reached: drop `skip` bytes after the input.
    Skip { skip: u64 },
    /// Input ended inside a body, now kept in the direction's state.
    Kept { skip: u64, need: usize },
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let z = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(a, |z| z + 1);
    &s[a..z.max(a)]
}

fn push(m: &mut Message, id: u16, value: impl Into<Value>) {
    m.fields.push(Field {
        id,
        value: value.into(),
    });
}

fn pair(m: &mut Message, id: u16, input: &Input<'_>, name: &[u8], value: &[u8]) {
    m.fields.push(Field {
        id,
        value: Value::Pair(
            Text::Span(input.span_of(name)),
            Text::Span(input.span_of(value)),
        ),
    });
}

/// `a=1; b=2` (Cookie) or `a=1; Path=/` (Set-Cookie, first pair only).
fn cookies(m: &mut Message, input: &Input<'_>, v: &[u8], first_only: bool) {
    for part in v.split(|&b| b == b';') {
        let part = trim(part);
        if !part.is_empty() {
            let (n, val) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (trim(&part[..i]), trim(&part[i + 1..])),
                None => (part, &part[part.len()..]),
            };
            pair(m, F_COOKIES, input, n, val);
        }
        if first_only {
            break;
        }
    }
}

#[derive(Default)]
struct HeaderInfo<'a> {
    content_length: Option<u64>,
    chunked: bool,
    other_te: bool,
    coding: Option<Coding>,
    upgrade: Option<&'a [u8]>,
}

/// Adds `headers`, `cookies` and `host` fields; collects what framing needs.
fn scan_headers<'a>(
    m: &mut Message,
    input: &Input<'_>,
    headers: &[httparse::Header<'a>],
    request: bool,
) -> Result<HeaderInfo<'a>, &'static str> {
    let mut info = HeaderInfo::default();
    for h in headers {
        let name = h.name;
        let value = h.value;
        pair(m, F_HEADERS, input, name.as_bytes(), value);
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(trim(value))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("bad Content-Length")?;
            if info.content_length.is_some_and(|c| c != n) {
                return Err("conflicting Content-Length");
            }
            info.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().map(trim).unwrap_or(b"");
            if last.eq_ignore_ascii_case(b"chunked") {
                info.chunked = true;
                info.other_te = false;
            } else if !trim(value).is_empty() {
                info.chunked = false;
                info.other_te = true;
            }
        } else if name.eq_ignore_ascii_case("content-encoding") {
            let v = trim(value);
            info.coding = if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
                Some(Coding::Gzip)
            } else if v.eq_ignore_ascii_case(b"deflate") {
                Some(Coding::Deflate)
            } else {
                None
            };
        } else if name.eq_ignore_ascii_case("upgrade") {
            info.upgrade = Some(value);
        } else if request && name.eq_ignore_ascii_case("cookie") {
            cookies(m, input, value, false);
        } else if !request && name.eq_ignore_ascii_case("set-cookie") {
            cookies(m, input, value, true);
        } else if request && name.eq_ignore_ascii_case("host") {
            push(m, F_HOST, input.span_of(trim(value)));
        }
    }
    Ok(info)
}

/// The first protocol of an Upgrade header value (`websocket`, `h2c`).
fn first_token(v: &[u8]) -> String {
    let first = v.split(|&b| b == b',').next().unwrap_or(b"");
    String::from_utf8_lossy(trim(first)).into_owned()
}

fn parse_error(e: httparse::Error, request: bool) -> &'static str {
    match e {
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "not HTTP/1.0 or HTTP/1.1",
        httparse::Error::Status => "bad status code",
        httparse::Error::HeaderName | httparse::Error::HeaderValue => "bad header",
        _ if request => "bad request line",
        _ => "bad status line",
    }
}

impl Http1Session {
    pub(crate) fn head(
        &mut self,
        dir: Direction,
        input: &Input<'_>,
        pos: &mut usize,
        out: &mut Output,
    ) -> HeadStep {
        let data = input.data;
        if dir == Direction::ToServer
            && self
                .upgrade
                .as_ref()
                .is_some_and(|u| input.offset(*pos) >= u.at)
        {
            // Bytes after an upgrade request are the new protocol if the
            // server agrees (101) and HTTP again if not: keep them unconsumed
            // until the response tells which.
            return HeadStep::Wait {
                need: data.len() - *pos + 1,
            };
        }
        // Empty lines before a start line are ignored (RFC 9112 §2.2).
        while *pos < data.len() && (data[*pos] == b'\r' || data[*pos] == b'\n') {
            *pos += 1;
        }
        if *pos >= data.len() {
            return HeadStep::Continue;
        }
        let d = &mut self.dirs[dir.index()];
        if d.resync {
            let rest = &data[*pos..];
            match find_resync(dir, rest) {
                Some(off) => {
                    *pos += off;
                    d.resync = false;
                    d.scan_from = 0;
                }
                None => {
                    // Keep a tail that may be the start of a start line.
                    let keep = rest.len().min(12);
                    *pos = data.len() - keep;
                    return HeadStep::Wait { need: keep + 1 };
                }
            }
        }
        let rest = &data[*pos..];
        match plausible(dir, rest) {
            Plausible::Yes => {}
            Plausible::Maybe => {
                return HeadStep::Wait {
                    need: rest.len() + 1,
                }
            }
            Plausible::No => {
                if dir == Direction::ToServer && d.upgrade_requested {
                    // The upgrade went through; the bytes are the new protocol.
                    d.mode = Mode::Opaque;
                    return HeadStep::Stop;
                }
                self.fail(
                    dir,
                    out,
                    match dir {
                        Direction::ToServer => "not an HTTP/1 request line",
                        Direction::ToClient => "not an HTTP/1 status line",
                    },
                );
                return HeadStep::Stop;
            }
        }
        let end = match find_head_end(rest, d.scan_from) {
            Some(e) if e <= MAX_HEAD => e,
            Some(_) => {
                self.fail(dir, out, "head larger than 64 KiB");
                return HeadStep::Stop;
            }
            None if rest.len() > MAX_HEAD => {
                self.fail(dir, out, "head larger than 64 KiB");
                return HeadStep::Stop;
            }
            None => {
                d.scan_from = rest.len().saturating_sub(3);
                return HeadStep::Wait {
                    need: rest.len() + 1,
                };
            }
        };
        d.scan_from = 0;
        let start = *pos;
        let head = &data[start..start + end];
        let r = match dir {
            Direction::ToServer => self.request(input, start, head, out),
            Direction::ToClient => self.response(input, start, head, out),
        };
        match r {
            Ok(None) => {
                *pos = start + end;
                HeadStep::Continue
            }
            Ok(Some(mut p)) => {
                *pos = start + end;
                // Most bodies are complete in the same input: no state kept.
                match body::advance(&mut p, input, pos, self.cap) {
                    body::Step::Done { skip } => {
                        self.finish(p, out);
                        if skip > 0 {
                            return HeadStep::Skip { skip };
                        }
                        HeadStep::Continue
                    }
                    body::Step::More { skip, need } => {
                        p.msg.make_owned(input.data);
                        self.dirs[dir.index()].mode = Mode::Body(Box::new(p));
                        HeadStep::Kept { skip, need }
                    }
                    body::Step::Error(e) => {
                        p.lost = true;
                        self.finish(p, out);
                        self.fail(dir, out, e);
                        HeadStep::Stop
                    }
                }
            }
            Err(e) => {
                self.fail(dir, out, e);
                HeadStep::Stop
            }
        }
    }

    fn request(
        &mut self,
        input: &Input<'_>,
        start: usize,
        head: &[u8],
        out: &mut Output,
    ) -> Result<Option<Pending>, &'static str> {
        let mut hbuf = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(head, &mut hbuf) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err("bad request head"),
            Err(e) => return Err(parse_error(e, true)),
        }
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            return Err("bad request line");
        };
        let txn = self.req_txn;
        self.req_txn += 1;
        let mut m = out.detached(MessageKind::Request, txn, input.offset(start));
        m.fields.reserve(8 + 2 * req.headers.len());
        push(&mut m, F_METHOD, input.span_of_str(method));
        push(&mut m, F_URL, input.span_of_str(target));
        let (path, query) = match target.find('?') {
            Some(i) => (&target[..i], Some(&target[i + 1..])),
            None => (target, None),
        };
        push(&mut m, F_PATH, input.span_of_str(path));
        if let Some(q) = query {
            for part in q.as_bytes().split(|&b| b == b'&').filter(|p| !p.is_empty()) {
                let (n, v) = match part.iter().position(|&b| b == b'=') {
                    Some(i) => (&part[..i], &part[i + 1..]),
                    None => (part, &part[part.len()..]),
                };
                pair(&mut m, F_QUERY_STRING, input, n, v);
            }
        }
        // The version follows the target and one space (httparse checked).
        let after = target.as_ptr() as usize - head.as_ptr() as usize + target.len() + 1;
        let v = version_text(input, head, version, Some(after));
        push(&mut m, F_HTTP_VERSION, v);
        let info = scan_headers(&mut m, input, req.headers, true)?;
        push(&mut m, F_REQUEST_HEADERS_SIZE, head.len());

        let is_head = method == "HEAD";
        let connect = method == "CONNECT";
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(ReqInfo {
            head: is_head,
            connect,
        });
        if info.upgrade.is_some() || connect {
            self.dirs[Direction::ToServer.index()].upgrade_requested = true;
        }
        if let (Some(up), false, false, false) =
            (info.upgrade, connect, info.chunked, info.other_te)
        {
            // A chunked upgrade request has no offset known here; such a
            // flow stays opaque after a 101, as before switches existed.
            let token = first_token(up);
            let at = input.offset(start + head.len()) + info.content_length.unwrap_or(0);
            let mut params = vec![
                ("upgrade".to_owned(), token.clone()),
                ("method".to_owned(), method.to_owned()),
                ("url".to_owned(), target.to_owned()),
            ];
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("host")
                    || h.name.eq_ignore_ascii_case("http2-settings")
                    || h.name.eq_ignore_ascii_case("sec-websocket-protocol")
                    || h.name.eq_ignore_ascii_case("sec-websocket-extensions")
                {
                    params.push((
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(trim(h.value)).into_owned(),
                    ));
                }
            }
            self.upgrade = Some(PendingUpgrade { at, params, token });
        }
        let framing = if info.other_te {
            return Err("request Transfer-Encoding is not chunked");
        } else if info.chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            match info.content_length {
                Some(n) if n > 0 => Framing::Length(n),
                _ => Framing::None,
            }
        };
        Ok(self.start_body(Direction::ToServer, m, framing, info.coding, out))
    }

    fn response(
        &mut self,
        input: &Input<'_>,
        start: usize,
        head: &[u8],
        out: &mut Output,
    ) -> Result<Option<Pending>, &'static str> {
        let mut hbuf = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, head, &mut hbuf)
        {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err("bad response head"),
            Err(e) => return Err(parse_error(e, false)),
        }
        let (Some(version), Some(code)) = (res.version, res.code) else {
            return Err("bad status line");
        };
        let client = &mut self.dirs[Direction::ToClient.index()];
        if (100..200).contains(&code) && code != 101 {
            // Interim response: no transaction of its own.
            if client.interim.len() < 16 {
                client.interim.push(code);
            }
            return Ok(None);
        }
        let interim = std::mem::take(&mut client.interim);
        let req = self.outstanding.pop_front().unwrap_or(ReqInfo {
            head: false,
            connect: false,
        });
        let txn = self.resp_txn;
        self.resp_txn += 1;
        let mut m = out.detached(MessageKind::Response, txn, input.offset(start));
        m.fields.reserve(8 + 2 * res.headers.len());
        push(&mut m, F_STATUS_CODE, code);
        if let Some(reason) = res.reason {
            push(&mut m, F_STATUS_TEXT, input.span_of_str(reason));
        }
        push(
            &mut m,
            F_HTTP_VERSION,
            version_text(input, head, version, None),
        );
        let info = scan_headers(&mut m, input, res.headers, false)?;
        push(&mut m, F_RESPONSE_HEADERS_SIZE, head.len());
        for s in interim {
            push(&mut m, F_INTERIM_STATUS, s);
        }
        let tunnel = code == 101 || (req.connect && (200..300).contains(&code));
        if code == 101 {
            if let Some(u) = info.upgrade {
                push(&mut m, F_UPGRADE, input.span_of(trim(u)));
            }
        }
        let framing = if tunnel || req.head || code < 200 || code == 204 || code == 304 {
            Framing::None
        } else if info.chunked {
            Framing::Chunked(Chunk::Size)
        } else if info.other_te {
            Framing::Close
        } else {
            match info.content_length {
                Some(0) => Framing::None,
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        };
        let p = self.start_body(Direction::ToClient, m, framing, info.coding, out);
        if code == 101 {
            if let Some(up) = self.upgrade.take() {
                // The server's Upgrade names what it switched to; fall back
                // to what the client asked for.
                let token = info.upgrade.map(first_token).unwrap_or(up.token);
                let mut params = up.params;
                if let Some(e) = res
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
                {
                    params.retain(|(k, _)| k != "sec-websocket-extensions");
                    params.push((
                        "sec-websocket-extensions".to_owned(),
                        String::from_utf8_lossy(trim(e.value)).into_owned(),
                    ));
                }
                let mut switch = ProtocolSwitch::new(
                    &upgrade_protocol(&token),
                    up.at,
                    input.offset(start + head.len()),
                );
                switch.params = params;
                out.switch_protocol(switch);
                self.switched = true;
            }
        } else if code >= 200 && !req.connect {
            // Refused (or ignored): what the client sent next is HTTP again.
            self.upgrade = None;
        }
        if tunnel {
            // Whatever follows is another protocol, in both directions.
            self.dirs[0].mode = Mode::Opaque;
            self.dirs[1].mode = Mode::Opaque;
        } else if !req.connect {
            self.dirs[Direction::ToServer.index()].upgrade_requested = false;
        }
        Ok(p)
    }

    fn start_body(
        &mut self,
        dir: Direction,
        msg: Message,
        framing: Framing,
        coding: Option<Coding>,
        out: &mut Output,
    ) -> Option<Pending> {
        let size_field = match dir {
            Direction::ToServer => F_REQUEST_BODY_SIZE,
            Direction::ToClient => F_RESPONSE_BODY_SIZE,
        };
        let original_len = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let p = Pending {
            msg,
            framing,
            buf: Vec::new(),
            original_len,
            lost: false,
            coding,
            size_field,
            trailer_bytes: 0,
        };
        if matches!(p.framing, Framing::None) {
            self.finish(p, out);
            None
        } else {
            Some(p)
        }
    }
}

/// "1.0" / "1.1" as a span of the start line when it is there, else owned.
/// `after` is where the version starts for a request (just past the target
/// and one space); responses start with it.
fn version_text(input: &Input<'_>, head: &[u8], minor: u8, after: Option<usize>) -> Text {
    let a = after.unwrap_or(0);
    if head
        .get(a..a + 8)
        .is_some_and(|v| v.starts_with(b"HTTP/1."))
    {
        return Text::Span(input.span_of(&head[a + 5..a + 8]));
    }
    Text::Owned(format!("1.{minor}"))
}
