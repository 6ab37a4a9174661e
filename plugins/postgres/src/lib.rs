//! PostgreSQL wire protocol (v3) dissector for Remora, written with `remora-sdk`.
//!
//! One entry per client *unit*: a startup (SSLRequest / StartupMessage with
//! the server messages up to the first ReadyForQuery), a Simple Query
//! (`Q`), or an extended-protocol batch (Parse/Bind/Describe/Execute/Close
//! up to Sync). Units pair in order per connection: unit *n* is the request
//! and its server messages up to the *n*-th ReadyForQuery the response, both
//! with `txn = n`. A FATAL ErrorResponse also ends the current unit (a failed
//! login has no ReadyForQuery).
//!
//! Framing is incremental: each message's 5-byte head is read, at most a
//! small per-type prefix of its body is kept (query text, tags, error
//! fields, startup parameters) and the rest is dropped with `skip`, so rows
//! and COPY data never cross the boundary. Password / SASL messages (`p`)
//! are skipped unread. An SSLRequest / GSSENCRequest is answered by one byte
//! (`N` or `S`/`G`) which is handled before normal framing; an accepted
//! encryption request turns the connection opaque.

use remora_sdk::prelude::*;
use std::collections::VecDeque;

pub const F_QUERY: u16 = 0;
pub const F_COMMAND: u16 = 1;
pub const F_KIND: u16 = 2;
pub const F_STATEMENT: u16 = 3;
pub const F_PORTAL: u16 = 4;
pub const F_TAGS: u16 = 5;
pub const F_ROWS: u16 = 6;
pub const F_ERROR: u16 = 7;
pub const F_ERROR_CODE: u16 = 8;
pub const F_USER: u16 = 9;
pub const F_DATABASE: u16 = 10;

pub const PORTS: [u16; 2] = [5432, 15432];

/// Longest `sql_query`.
pub const MAX_QUERY: usize = 1024;
/// Longest name / tag / error message kept.
const MAX_NAME: usize = 256;
const MAX_ERROR: usize = 1024;
/// Tags kept per unit.
const MAX_TAGS: usize = 64;
/// Parse texts kept per unit.
const MAX_QUERIES: usize = 16;
/// Prepared statements remembered per connection.
const MAX_STATEMENTS: usize = 256;
/// Largest startup packet accepted (the server's own limit is 10000).
const MAX_STARTUP: usize = 10_000;

const PROTO_V3: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

pub struct Postgres;

impl Dissector for Postgres {
    type Session = PgSession;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("postgres", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("PostgreSQL", "postgresql")
                    .ports(&PORTS)
                    .summaries("{sql_query}", "{sql_tags}"),
            )
            .field(f(
                F_QUERY,
                "sql_query",
                Str,
                true,
                "query text (Parse texts of a batch joined by \"; \"), truncated to 1024 bytes",
            ))
            .field(f(
                F_COMMAND,
                "sql_command",
                Str,
                true,
                "first word of the query, upper case (\"SELECT\")",
            ))
            .field(f(
                F_KIND,
                "pg_kind",
                Str,
                false,
                "startup, simple, extended or cancel",
            ))
            .field(f(
                F_STATEMENT,
                "pg_statement",
                Str,
                false,
                "prepared statement name (first named one of the batch)",
            ))
            .field(f(
                F_PORTAL,
                "pg_portal",
                Str,
                false,
                "portal name (first named one of the batch)",
            ))
            .field(f(
                F_TAGS,
                "sql_tags",
                StrList,
                true,
                "CommandComplete tags (\"SELECT 5\", \"INSERT 0 1\")",
            ))
            .field(f(
                F_ROWS,
                "sql_rows",
                Int,
                true,
                "DataRow messages returned by the unit",
            ))
            .field(f(F_ERROR, "sql_error", Str, true, "ErrorResponse message"))
            .field(f(
                F_ERROR_CODE,
                "sql_error_code",
                Str,
                true,
                "ErrorResponse SQLSTATE",
            ))
            .field(f(F_USER, "pg_user", Str, true, "startup user"))
            .field(f(F_DATABASE, "pg_database", Str, true, "startup database"))
    }

    fn probe(flow: &FlowInfo, dir: Direction, data: &[u8]) -> Probe {
        let hinted = PORTS.contains(&flow.server_port);
        match probe_bytes(dir, data) {
            Probe::Yes(_) => Probe::Yes(if hinted { 80 } else { 50 }),
            p => p,
        }
    }

    fn session(_flow: &FlowInfo) -> PgSession {
        PgSession::new()
    }
}

remora_sdk::export_dissector!(Postgres);

/// Probe without the port hint: a connection's first client packet.
pub fn probe_bytes(dir: Direction, data: &[u8]) -> Probe {
    if dir == Direction::ToClient {
        // Server bytes alone never decide.
        return if data.is_empty() || matches!(data[0], b'N' | b'S' | b'R' | b'E') {
            Probe::NeedMore
        } else {
            Probe::No
        };
    }
    if data.len() < 8 {
        return Probe::NeedMore;
    }
    let len = be32(&data[0..4]) as usize;
    let code = be32(&data[4..8]);
    match code {
        SSL_REQUEST | GSSENC_REQUEST if len == 8 => Probe::Yes(80),
        CANCEL_REQUEST if len == 16 => Probe::Yes(80),
        PROTO_V3 if (9..=MAX_STARTUP).contains(&len) => {
            // Parameters are printable C strings.
            let body = &data[8..data.len().min(len)];
            if body
                .iter()
                .all(|&b| b == 0 || (0x20..0x7f).contains(&b) || b >= 0x80)
            {
                Probe::Yes(80)
            } else {
                Probe::No
            }
        }
        _ => Probe::No,
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        // Invalid bytes are rare: only then the replacing (slower) conversion.
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
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

/// The C string at `*pos` (possibly cut short by truncation), advancing past its NUL.
fn cstr<'a>(b: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let rest = b.get(*pos..).unwrap_or(b"");
    match rest.iter().position(|&c| c == 0) {
        Some(n) => {
            *pos += n + 1;
            &rest[..n]
        }
        None => {
            *pos = b.len();
            rest
        }
    }
}

/// First word of a query, upper case.
fn command_of(q: &str) -> Option<String> {
    let w: String = q
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '_')
        .take(32)
        .collect();
    (!w.is_empty()).then(|| w.to_ascii_uppercase())
}

/// Body bytes kept of a message of `typ` from `dir`.
fn keep_of(dir: Direction, typ: u8) -> usize {
    match (dir, typ) {
        (Direction::ToServer, b'Q') => MAX_QUERY + 4,
        (Direction::ToServer, b'P') => MAX_NAME + MAX_QUERY + 4,
        (Direction::ToServer, b'B') => 2 * MAX_NAME + 2,
        (Direction::ToClient, b'C') => MAX_NAME,
        (Direction::ToClient, b'E') => 4096,
        (Direction::ToClient, b'Z') => 1,
        _ => 0,
    }
}

// ---------------------------------------------------------------- state

#[derive(Default)]
struct ClientUnit {
    active: bool,
    start: u64,
    queries: Vec<String>,
    statement: Option<String>,
    portal: Option<String>,
    /// A statement without a Parse of its own in this batch (Bind by name).
    bound: Option<String>,
}

#[derive(Default)]
struct ServerUnit {
    active: bool,
    start: u64,
    tags: Vec<String>,
    rows: i64,
    error: Option<(String, String)>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    /// Waiting for the first (untyped) client packet.
    Startup,
    /// Typed messages.
    Normal,
    /// Encrypted or lost: consume everything.
    Opaque,
}

/// One PostgreSQL connection, both directions.
pub struct PgSession {
    client: Phase,
    server: Phase,
    /// The server's next byte is a one-byte SSL/GSSENC answer.
    expect_ssl_reply: u32,
    req_txn: u64,
    resp_txn: u64,
    unit: ClientUnit,
    resp: ServerUnit,
    /// Prepared statements: name -> text (bounded, oldest dropped).
    statements: VecDeque<(String, String)>,
}

impl Default for PgSession {
    fn default() -> Self {
        Self::new()
    }
}

enum Step {
    /// Consumed up to `pos`; drop `skip` more bytes.
    Next {
        pos: usize,
        skip: u64,
    },
    /// Need this many bytes from the message start.
    Need(usize),
    Err(&'static str),
}

impl PgSession {
    pub fn new() -> Self {
        PgSession {
            client: Phase::Startup,
            server: Phase::Normal,
            expect_ssl_reply: 0,
            req_txn: 0,
            resp_txn: 0,
            unit: ClientUnit::default(),
            resp: ServerUnit::default(),
            statements: VecDeque::new(),
        }
    }

    fn remember(&mut self, name: &str, text: &str) {
        self.statements.retain(|(n, _)| n != name);
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.pop_front();
        }
        self.statements
            .push_back((name.to_owned(), text.to_owned()));
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        self.statements
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    fn emit_request(&mut self, kind: &str, query: Option<String>, out: &mut Output, start: u64) {
        let txn = self.req_txn;
        self.req_txn += 1;
        let mut m = out.request(txn, start);
        m.field(F_KIND, kind);
        if let Some(q) = query {
            if let Some(c) = command_of(&q) {
                m.field(F_COMMAND, c);
            }
            m.field(F_QUERY, truncated(q, MAX_QUERY));
        }
        if let Some(s) = self.unit.statement.take() {
            m.field(F_STATEMENT, s);
        }
        if let Some(p) = self.unit.portal.take() {
            m.field(F_PORTAL, p);
        }
    }

    fn finish_extended(&mut self, out: &mut Output) {
        let u = std::mem::take(&mut self.unit);
        let query = if !u.queries.is_empty() {
            Some(u.queries.join("; "))
        } else {
            u.bound
        };
        self.unit.statement = u.statement;
        self.unit.portal = u.portal;
        self.emit_request("extended", query, out, u.start);
    }

    fn finish_response(&mut self, out: &mut Output) {
        let r = std::mem::take(&mut self.resp);
        let txn = self.resp_txn;
        self.resp_txn += 1;
        let mut m = out.response(txn, r.start);
        for t in r.tags {
            m.field(F_TAGS, t);
        }
        m.int(F_ROWS, r.rows);
        if let Some((code, msg)) = r.error {
            m.field(F_ERROR, msg).field(F_ERROR_CODE, code);
        }
    }

    /// The untyped first client packet at `pos`.
    fn client_startup(&mut self, input: &Input<'_>, pos: usize, out: &mut Output) -> Step {
        let data = &input.data[pos..];
        if data.len() < 8 {
            return Step::Need(8);
        }
        let len = be32(&data[0..4]) as usize;
        let code = be32(&data[4..8]);
        if !(8..=MAX_STARTUP).contains(&len) {
            return Step::Err("bad startup packet length");
        }
        if data.len() < len {
            return Step::Need(len);
        }
        let start = input.offset(pos);
        match code {
            SSL_REQUEST | GSSENC_REQUEST => {
                self.expect_ssl_reply = code;
                if !self.unit.active {
                    self.unit.active = true;
                    self.unit.start = start;
                }
            }
            CANCEL_REQUEST => {
                let mut m = out.standalone(0, start);
                m.field(F_KIND, "cancel");
                self.client = Phase::Opaque;
            }
            PROTO_V3 => {
                let body = &data[8..len];
                let (mut user, mut db) = (None, None);
                let mut p = 0;
                while p < body.len() {
                    let k = cstr(body, &mut p);
                    if k.is_empty() {
                        break;
                    }
                    let v = cstr(body, &mut p);
                    match k {
                        b"user" => user = Some(truncated(lossy(v), MAX_NAME)),
                        b"database" => db = Some(truncated(lossy(v), MAX_NAME)),
                        _ => {}
                    }
                }
                let start = if self.unit.active {
                    self.unit.start
                } else {
                    start
                };
                self.unit = ClientUnit::default();
                let txn = self.req_txn;
                self.req_txn += 1;
                let mut m = out.request(txn, start);
                m.field(F_KIND, "startup");
                if let Some(u) = user {
                    m.field(F_USER, u);
                }
                if let Some(d) = db {
                    m.field(F_DATABASE, d);
                }
                self.client = Phase::Normal;
            }
            _ => return Step::Err("unknown startup code"),
        }
        Step::Next {
            pos: pos + len,
            skip: 0,
        }
    }

    /// One typed message whose (possibly truncated) body is `body`.
    fn client_msg(&mut self, typ: u8, body: &[u8], start: u64, out: &mut Output) {
        let begin = |u: &mut ClientUnit| {
            if !u.active {
                u.active = true;
                u.start = start;
            }
        };
        match typ {
            b'Q' => {
                let mut p = 0;
                let q = lossy(cstr(body, &mut p));
                // Messages since the last Sync (a Flush, an unsynced batch)
                // get no ReadyForQuery of their own: they join this unit.
                let s = if self.unit.active {
                    self.unit.start
                } else {
                    start
                };
                self.unit = ClientUnit::default();
                self.emit_request("simple", Some(q), out, s);
            }
            b'P' => {
                begin(&mut self.unit);
                let mut p = 0;
                let name = truncated(lossy(cstr(body, &mut p)), MAX_NAME);
                let q = truncated(lossy(cstr(body, &mut p)), MAX_QUERY);
                self.remember(&name, &q);
                if !name.is_empty() && self.unit.statement.is_none() {
                    self.unit.statement = Some(name);
                }
                if self.unit.queries.len() < MAX_QUERIES {
                    self.unit.queries.push(q);
                }
            }
            b'B' => {
                begin(&mut self.unit);
                let mut p = 0;
                let portal = truncated(lossy(cstr(body, &mut p)), MAX_NAME);
                let stmt = truncated(lossy(cstr(body, &mut p)), MAX_NAME);
                if !portal.is_empty() && self.unit.portal.is_none() {
                    self.unit.portal = Some(portal);
                }
                if self.unit.queries.is_empty() && self.unit.bound.is_none() {
                    self.unit.bound = self.lookup(&stmt).map(str::to_owned);
                }
                if !stmt.is_empty() && self.unit.statement.is_none() {
                    self.unit.statement = Some(stmt);
                }
            }
            b'D' | b'E' | b'C' | b'H' => begin(&mut self.unit),
            b'S' => {
                begin(&mut self.unit);
                self.finish_extended(out);
                self.unit = ClientUnit::default();
            }
            _ => {} // p (password: never read), d/c/f (COPY), X, F
        }
    }

    fn server_msg(&mut self, typ: u8, body: &[u8], start: u64, out: &mut Output) {
        if !self.resp.active {
            self.resp.active = true;
            self.resp.start = start;
        }
        match typ {
            b'D' => self.resp.rows = self.resp.rows.saturating_add(1),
            b'C' if self.resp.tags.len() < MAX_TAGS => {
                let mut p = 0;
                self.resp
                    .tags
                    .push(truncated(lossy(cstr(body, &mut p)), MAX_NAME));
            }
            b'E' => {
                let (mut sev, mut code, mut msg) = (String::new(), String::new(), String::new());
                let mut p = 0;
                while p < body.len() && body[p] != 0 {
                    let f = body[p];
                    p += 1;
                    let v = cstr(body, &mut p);
                    match f {
                        b'V' => sev = truncated(lossy(v), 16),
                        b'S' if sev.is_empty() => sev = truncated(lossy(v), 16),
                        b'C' => code = truncated(lossy(v), 16),
                        b'M' => msg = truncated(lossy(v), MAX_ERROR),
                        _ => {}
                    }
                }
                if self.resp.error.is_none() {
                    self.resp.error = Some((code, msg));
                }
                if sev == "FATAL" || sev == "PANIC" {
                    self.finish_response(out);
                }
            }
            b'Z' => self.finish_response(out),
            _ => {}
        }
    }

    /// One typed message at `pos`.
    fn typed(&mut self, dir: Direction, input: &Input<'_>, pos: usize, out: &mut Output) -> Step {
        let data = &input.data[pos..];
        if data.len() < 5 {
            return Step::Need(5);
        }
        let typ = data[0];
        let len = be32(&data[1..5]);
        if len < 4 || len > i32::MAX as u32 || !typ.is_ascii_alphanumeric() {
            return Step::Err("not PostgreSQL: bad message header");
        }
        let blen = (len - 4) as usize;
        let keep = keep_of(dir, typ).min(blen);
        if data.len() < 5 + keep {
            return Step::Need(5 + keep);
        }
        let body = &data[5..5 + keep];
        let start = input.offset(pos);
        match dir {
            Direction::ToServer => self.client_msg(typ, body, start, out),
            Direction::ToClient => self.server_msg(typ, body, start, out),
        }
        let rest = blen - keep;
        let avail = data.len() - 5 - keep;
        if rest <= avail {
            Step::Next {
                pos: pos + 5 + blen,
                skip: 0,
            }
        } else {
            Step::Next {
                pos: input.data.len(),
                skip: (rest - avail) as u64,
            }
        }
    }
}

impl Session for PgSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        if data.is_empty() {
            return Progress::need(0, 1);
        }
        let mut pos = 0usize;
        loop {
            if pos >= data.len() || out.is_full() {
                return Progress::consumed(pos);
            }
            let phase = match dir {
                Direction::ToServer => self.client,
                Direction::ToClient => self.server,
            };
            let step = match (dir, phase) {
                (_, Phase::Opaque) => return Progress::consumed(data.len()),
                (Direction::ToClient, _) if self.expect_ssl_reply != 0 => {
                    let b = data[pos];
                    self.expect_ssl_reply = 0;
                    match b {
                        b'N' => Step::Next {
                            pos: pos + 1,
                            skip: 0,
                        },
                        b'S' | b'G' => {
                            self.client = Phase::Opaque;
                            self.server = Phase::Opaque;
                            return Progress::consumed(data.len());
                        }
                        // An old server's ErrorResponse: parse it as a message.
                        _ => continue,
                    }
                }
                (Direction::ToServer, Phase::Startup) => self.client_startup(input, pos, out),
                _ => self.typed(dir, input, pos, out),
            };
            match step {
                Step::Next { pos: p, skip } => {
                    pos = p;
                    if skip > 0 {
                        return Progress::skip(pos, skip);
                    }
                }
                Step::Need(n) => return Progress::need(pos, n),
                Step::Err(e) => {
                    out.error(e);
                    match dir {
                        Direction::ToServer => self.client = Phase::Opaque,
                        Direction::ToClient => self.server = Phase::Opaque,
                    }
                    return Progress::consumed(data.len());
                }
            }
        }
    }

    fn gap(&mut self, _dir: Direction, _len: u64, out: &mut Output) {
        // Lost bytes break framing and in-order pairing: stop this connection.
        out.error("bytes lost: postgres dissection stopped for this connection");
        self.client = Phase::Opaque;
        self.server = Phase::Opaque;
    }
}

#[cfg(test)]
mod tests;
