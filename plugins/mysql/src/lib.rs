//! MySQL / MariaDB client/server protocol dissector for Remora, written with
//! `remora-sdk`.
//!
//! Every packet is a 3-byte little-endian length, a sequence id and the
//! payload. The server speaks first (initial handshake v10: server version,
//! capabilities); the client's HandshakeResponse (user, database — auth data
//! is never kept) and the server's final OK/ERR (after any auth switch /
//! more-data exchange) form one `LOGIN` entry. Then each client command
//! (sequence id 0) is a request, paired in order with the server's response:
//! OK, ERR, a result set (column count, column definitions, rows until
//! EOF/OK — rows are counted, their bytes skipped), the COM_STMT_PREPARE OK
//! (statement id, then parameter and column definitions) or an EOF.
//! Commands the server never answers (COM_QUIT, COM_STMT_CLOSE,
//! COM_STMT_SEND_LONG_DATA) are standalone.
//!
//! `txn` numbers the client units of a connection (login and commands) in
//! order; the server side pairs its responses FIFO with them. Only a bounded
//! prefix of each packet crosses the boundary ([`CLIENT_KEEP`] /
//! [`SERVER_KEEP`] bytes, [`ROW_KEEP`] inside result sets); the rest is
//! dropped through `skip`. Packets of 2^24-1 bytes continue in the next one;
//! continuations are skipped whole.

use remora_sdk::prelude::*;
use std::collections::VecDeque;

pub const F_QUERY: u16 = 0;
pub const F_SQL_COMMAND: u16 = 1;
pub const F_COMMAND: u16 = 2;
pub const F_ROWS: u16 = 3;
pub const F_ERROR_CODE: u16 = 4;
pub const F_ERROR: u16 = 5;
pub const F_SERVER_VERSION: u16 = 6;
pub const F_USER: u16 = 7;
pub const F_DATABASE: u16 = 8;
pub const F_RESPONSE: u16 = 9;

pub const PORTS: [u16; 2] = [3306, 13306];

/// Longest `sql_query`.
pub const MAX_QUERY: usize = 1024;
/// Longest user, database, version, error message.
pub const MAX_NAME: usize = 256;
pub const MAX_ERROR: usize = 512;
/// Payload bytes of a client packet passed to the parser.
pub const CLIENT_KEEP: usize = 4096;
/// Payload bytes of a server packet outside result-set bodies.
pub const SERVER_KEEP: usize = 1024;
/// Payload bytes of a column definition / row packet (enough to tell EOF/OK).
pub const ROW_KEEP: usize = 16;
/// Commands remembered while waiting for responses.
const MAX_OUTSTANDING: usize = 1024;
/// Prepared statements remembered (id -> query).
const MAX_STATEMENTS: usize = 256;
/// Payload length that means "continued in the next packet".
const MAX_PACKET: usize = 0xFF_FFFF;

/// Set by MySQL peers; clear on MariaDB ones, whose extended capabilities
/// then fill reserved bytes of the handshake packets.
const CLIENT_MYSQL: u32 = 0x1;
const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x20_0000;
const CLIENT_DEPRECATE_EOF: u32 = 0x100_0000;
const CLIENT_QUERY_ATTRIBUTES: u32 = 0x800_0000;
/// MariaDB extended capability (bit 36 overall): a column count packet
/// carries a "metadata follows" byte and may skip the column definitions.
const MARIADB_CLIENT_CACHE_METADATA: u32 = 0x10;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x0040;

/// Pseudo command code of the login exchange.
const LOGIN: u8 = 0xFF;
const COM_QUIT: u8 = 0x01;
const COM_INIT_DB: u8 = 0x02;
const COM_QUERY: u8 = 0x03;
const COM_FIELD_LIST: u8 = 0x04;
const COM_STATISTICS: u8 = 0x09;
const COM_CHANGE_USER: u8 = 0x11;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;
const COM_STMT_RESET: u8 = 0x1A;
const COM_STMT_FETCH: u8 = 0x1C;

/// Command name ("COM_QUERY"), "LOGIN" for the login exchange.
pub fn command_name(code: u8) -> &'static str {
    match code {
        0x00 => "COM_SLEEP",
        0x01 => "COM_QUIT",
        0x02 => "COM_INIT_DB",
        0x03 => "COM_QUERY",
        0x04 => "COM_FIELD_LIST",
        0x05 => "COM_CREATE_DB",
        0x06 => "COM_DROP_DB",
        0x07 => "COM_REFRESH",
        0x08 => "COM_SHUTDOWN",
        0x09 => "COM_STATISTICS",
        0x0A => "COM_PROCESS_INFO",
        0x0B => "COM_CONNECT",
        0x0C => "COM_PROCESS_KILL",
        0x0D => "COM_DEBUG",
        0x0E => "COM_PING",
        0x0F => "COM_TIME",
        0x10 => "COM_DELAYED_INSERT",
        0x11 => "COM_CHANGE_USER",
        0x12 => "COM_BINLOG_DUMP",
        0x13 => "COM_TABLE_DUMP",
        0x14 => "COM_CONNECT_OUT",
        0x15 => "COM_REGISTER_SLAVE",
        0x16 => "COM_STMT_PREPARE",
        0x17 => "COM_STMT_EXECUTE",
        0x18 => "COM_STMT_SEND_LONG_DATA",
        0x19 => "COM_STMT_CLOSE",
        0x1A => "COM_STMT_RESET",
        0x1B => "COM_SET_OPTION",
        0x1C => "COM_STMT_FETCH",
        0x1D => "COM_DAEMON",
        0x1E => "COM_BINLOG_DUMP_GTID",
        0x1F => "COM_RESET_CONNECTION",
        0xFA => "COM_STMT_BULK_EXECUTE",
        LOGIN => "LOGIN",
        _ => "COM_UNKNOWN",
    }
}

pub struct Mysql;

impl Dissector for Mysql {
    type Session = MysqlSession;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("mysql", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("MySQL", "mysql")
                    .ports(&PORTS)
                    .summaries("{sql_command}", "{mysql_response}"),
            )
            .field(f(
                F_QUERY,
                "sql_query",
                Str,
                true,
                "SQL text (COM_QUERY, COM_STMT_PREPARE; the prepared text for other COM_STMT_*), truncated to 1024 bytes",
            ))
            .field(f(
                F_SQL_COMMAND,
                "sql_command",
                Str,
                true,
                "first word of the query, upper case, else the command name (\"COM_PING\", \"LOGIN\")",
            ))
            .field(f(
                F_COMMAND,
                "mysql_command",
                Str,
                false,
                "command name (\"COM_QUERY\", \"COM_STMT_EXECUTE\", \"LOGIN\")",
            ))
            .field(f(
                F_ROWS,
                "sql_rows",
                Int,
                true,
                "rows in the result set(s), else affected rows of an OK",
            ))
            .field(f(
                F_ERROR_CODE,
                "sql_error_code",
                Int,
                true,
                "error code of an ERR packet",
            ))
            .field(f(
                F_ERROR,
                "sql_error",
                Str,
                true,
                "error message of an ERR packet",
            ))
            .field(f(
                F_SERVER_VERSION,
                "mysql_server_version",
                Str,
                true,
                "server version from the initial handshake (login response)",
            ))
            .field(f(F_USER, "mysql_user", Str, true, "login user"))
            .field(f(
                F_DATABASE,
                "mysql_database",
                Str,
                true,
                "database of the login or COM_INIT_DB",
            ))
            .field(f(
                F_RESPONSE,
                "mysql_response",
                Str,
                false,
                "response kind: ok, error, resultset, eof",
            ))
    }

    fn probe(flow: &FlowInfo, dir: Direction, data: &[u8]) -> Probe {
        let hinted = PORTS.contains(&flow.server_port);
        probe_bytes(dir, data, hinted)
    }

    fn session(_flow: &FlowInfo) -> MysqlSession {
        MysqlSession::new()
    }
}

remora_sdk::export_dissector!(Mysql);

/// Probe: a server greeting anywhere is a strong yes; other plausible
/// packets only on a hinted port.
pub fn probe_bytes(dir: Direction, data: &[u8], hinted: bool) -> Probe {
    if data.len() < 5 {
        return Probe::NeedMore;
    }
    let len = usize::from(data[0]) | usize::from(data[1]) << 8 | usize::from(data[2]) << 16;
    let seq = data[3];
    let p = &data[4..];
    if len == 0 {
        return Probe::No;
    }
    match dir {
        Direction::ToClient => {
            if seq == 0 && (p[0] == 10 || p[0] == 9) && len < 1024 {
                // Server version: printable up to NUL.
                let v = &p[1..];
                match v.iter().position(|&b| b == 0) {
                    Some(0) => Probe::No,
                    Some(n) if v[..n].iter().all(|b| (0x20..0x7F).contains(b)) => Probe::Yes(80),
                    Some(_) => Probe::No,
                    None if v.len() < 64 && v.iter().all(|b| (0x20..0x7F).contains(b)) => {
                        Probe::NeedMore
                    }
                    None => Probe::No,
                }
            } else if hinted && seq == 0 && p[0] == 0xFF && len < 1024 {
                Probe::Yes(60) // "Host ... is not allowed to connect"
            } else if hinted && seq >= 1 && matches!(p[0], 0x00 | 0xFF | 0xFE) {
                Probe::Yes(40)
            } else {
                Probe::No
            }
        }
        Direction::ToServer => {
            let known = command_name(p[0]) != "COM_UNKNOWN" && p[0] != LOGIN;
            if hinted && ((seq == 0 && known) || (seq == 1 && len >= 32)) {
                Probe::Yes(50)
            } else {
                Probe::No
            }
        }
    }
}

// ---------------------------------------------------------------- helpers

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Length-encoded integer at `at`: (value, bytes used).
fn lenenc(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    let n = match first {
        0..=0xFA => return Some((u64::from(first), 1)),
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return None,
    };
    let s = b.get(at + 1..at + 1 + n)?;
    let mut v = 0u64;
    for (i, &x) in s.iter().enumerate() {
        v |= u64::from(x) << (8 * i);
    }
    Some((v, 1 + n))
}

/// At most `max` bytes of `b` as text, cut at a character boundary.
fn text(b: &[u8], max: usize) -> String {
    let b = &b[..b.len().min(max)];
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        // Cut inside a character: keep the whole ones before it.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&b[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// NUL-terminated string at `at` (to the end if unterminated): (text, next).
fn cstr(b: &[u8], at: usize, max: usize) -> (String, usize) {
    let rest = b.get(at..).unwrap_or(b"");
    match rest.iter().position(|&x| x == 0) {
        Some(n) => (text(&rest[..n], max), at + n + 1),
        None => (text(rest, max), b.len()),
    }
}

/// First word of a query, upper case ("SELECT"); empty when none.
pub fn first_word(q: &str) -> String {
    let q = q.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    q.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect::<String>()
        .to_ascii_uppercase()
}

// ---------------------------------------------------------------- session

/// A client unit waiting for the server's answer.
#[derive(Debug)]
struct Pending {
    txn: u64,
    cmd: u8,
    /// Query of a COM_STMT_PREPARE (remembered under its statement id).
    query: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// The first packet of a (further) result.
    Next,
    /// Column definitions still to come.
    Columns(u64),
    /// After the column definitions: an EOF, unless CLIENT_DEPRECATE_EOF.
    ColumnsEnd,
    /// Rows until EOF / OK / ERR.
    Rows,
    /// Packets to pass over (COM_STMT_PREPARE definitions).
    Skip(u64),
    /// COM_FIELD_LIST column definitions until EOF.
    FieldList,
    /// LOCAL INFILE: the client sends the file, then OK / ERR.
    Infile,
}

/// The response being assembled.
#[derive(Debug)]
struct Current {
    pending: Pending,
    start: u64,
    phase: Phase,
    rows: u64,
    resultset: bool,
}

/// One MySQL connection, both directions.
pub struct MysqlSession {
    /// Bytes of a continued (2^24-1) packet still to come, per direction.
    cont: [bool; 2],
    opaque: bool,
    next_txn: u64,
    login_seen: bool,
    commands_seen: bool,
    server_version: Option<String>,
    server_caps: Option<u32>,
    client_caps: Option<u32>,
    /// MariaDB extended capabilities (upper 32 bits), when the peer sent them.
    server_ext_caps: Option<u32>,
    client_ext_caps: Option<u32>,
    outstanding: VecDeque<Pending>,
    current: Option<Current>,
    statements: VecDeque<(u32, String)>,
}

impl Default for MysqlSession {
    fn default() -> Self {
        Self::new()
    }
}

/// Outcome of parsing one packet.
enum Parsed {
    Ok,
    /// Stop dissecting the connection (TLS, desynchronised).
    Opaque,
}

impl MysqlSession {
    pub fn new() -> Self {
        MysqlSession {
            cont: [false; 2],
            opaque: false,
            next_txn: 0,
            login_seen: false,
            commands_seen: false,
            server_version: None,
            server_caps: None,
            client_caps: None,
            server_ext_caps: None,
            client_ext_caps: None,
            outstanding: VecDeque::new(),
            current: None,
            statements: VecDeque::new(),
        }
    }

    /// CLIENT_DEPRECATE_EOF when both sides' capabilities are known.
    fn deprecate_eof(&self) -> Option<bool> {
        match (self.server_caps, self.client_caps) {
            (Some(s), Some(c)) => Some(s & c & CLIENT_DEPRECATE_EOF != 0),
            _ => None,
        }
    }

    /// MARIADB_CLIENT_CACHE_METADATA negotiated by both sides.
    fn cache_metadata(&self) -> bool {
        matches!((self.server_ext_caps, self.client_ext_caps),
            (Some(s), Some(c)) if s & c & MARIADB_CLIENT_CACHE_METADATA != 0)
    }

    fn query_attributes(&self) -> bool {
        matches!((self.server_caps, self.client_caps),
            (Some(s), Some(c)) if s & c & CLIENT_QUERY_ATTRIBUTES != 0)
    }

    /// How much of a packet's payload the parser wants, given its first byte.
    fn keep(&self, dir: Direction, first: Option<u8>) -> usize {
        match dir {
            Direction::ToServer => CLIENT_KEEP,
            Direction::ToClient => match self.current.as_ref().map(|c| c.phase) {
                Some(
                    Phase::Columns(_)
                    | Phase::ColumnsEnd
                    | Phase::Rows
                    | Phase::Skip(_)
                    | Phase::FieldList,
                ) if first != Some(0xFF) => ROW_KEEP,
                _ => SERVER_KEEP,
            },
        }
    }

    fn take_txn(&mut self) -> u64 {
        let t = self.next_txn;
        self.next_txn += 1;
        t
    }

    fn expect(&mut self, p: Pending) {
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(p);
    }

    fn statement(&self, id: u32) -> Option<&str> {
        self.statements
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, q)| q.as_str())
    }

    // ------------------------------------------------------------ client

    fn client_packet(
        &mut self,
        seq: u8,
        p: &[u8],
        plen: usize,
        start: u64,
        out: &mut Output,
    ) -> Parsed {
        if seq == 1 && !self.login_seen && !self.commands_seen {
            return self.handshake_response(p, plen, start, out);
        }
        if seq != 0 || p.is_empty() {
            // Auth continuation, LOCAL INFILE data, ...: not a command.
            return Parsed::Ok;
        }
        self.commands_seen = true;
        let cmd = p[0];
        let name = command_name(cmd);
        let mut query: Option<String> = None;
        let mut database: Option<String> = None;
        match cmd {
            COM_QUERY => {
                let mut at = 1;
                if self.query_attributes() {
                    // parameter_count, parameter_set_count; only a query
                    // without attributes is located.
                    match (lenenc(p, 1), lenenc(p, 2)) {
                        (Some((0, 1)), Some((1, 1))) => at = 3,
                        _ => at = p.len(),
                    }
                }
                query = Some(text(p.get(at..).unwrap_or(b""), MAX_QUERY));
            }
            COM_STMT_PREPARE => query = Some(text(&p[1..], MAX_QUERY)),
            COM_STMT_EXECUTE
            | COM_STMT_CLOSE
            | COM_STMT_RESET
            | COM_STMT_FETCH
            | COM_STMT_SEND_LONG_DATA => {
                if let Some(id) = u32_le(p, 1) {
                    query = self.statement(id).map(str::to_owned);
                }
            }
            COM_INIT_DB => database = Some(text(&p[1..], MAX_NAME)),
            _ => {}
        }
        let sql_command = match (cmd, query.as_deref()) {
            (COM_QUERY, Some(q)) if !first_word(q).is_empty() => first_word(q),
            _ => name.to_owned(),
        };
        let no_reply = matches!(cmd, COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA);
        let txn = if no_reply { 0 } else { self.take_txn() };
        let mut m = if no_reply {
            out.standalone(0, start)
        } else {
            out.request(txn, start)
        };
        m.field(F_COMMAND, name).field(F_SQL_COMMAND, sql_command);
        if let Some(q) = &query {
            m.field(F_QUERY, q.clone());
        }
        if let Some(d) = database {
            m.field(F_DATABASE, d);
        }
        if !no_reply {
            self.expect(Pending {
                txn,
                cmd,
                query: (cmd == COM_STMT_PREPARE).then(|| query.unwrap_or_default()),
            });
        }
        Parsed::Ok
    }

    fn handshake_response(
        &mut self,
        p: &[u8],
        plen: usize,
        start: u64,
        out: &mut Output,
    ) -> Parsed {
        let caps = if plen >= 4 {
            u32_le(p, 0).unwrap_or(0)
        } else {
            u32::from(u16_le(p, 0).unwrap_or(0))
        };
        if caps & CLIENT_SSL != 0 && plen == 32 {
            // SSLRequest: TLS follows.
            return Parsed::Opaque;
        }
        self.login_seen = true;
        let mut user = String::new();
        let mut database = None;
        if caps & CLIENT_PROTOCOL_41 != 0 {
            self.client_caps = Some(caps);
            // caps(4), max packet(4), charset(1), filler(19), of which a
            // MariaDB client uses the last 4 for its extended capabilities.
            if caps & CLIENT_MYSQL == 0 {
                self.client_ext_caps = u32_le(p, 28);
            }
            let (u, mut at) = cstr(p, 32, MAX_NAME);
            user = u;
            // Auth data: never kept, only stepped over.
            if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
                match lenenc(p, at) {
                    Some((n, used)) => at = at.saturating_add(used).saturating_add(n as usize),
                    None => at = p.len(),
                }
            } else if caps & CLIENT_SECURE_CONNECTION != 0 {
                at = at.saturating_add(1 + usize::from(p.get(at).copied().unwrap_or(0)));
            } else {
                at = cstr(p, at, 0).1;
            }
            if caps & CLIENT_CONNECT_WITH_DB != 0 && at < p.len() {
                let (d, _) = cstr(p, at, MAX_NAME);
                if !d.is_empty() {
                    database = Some(d);
                }
            }
        } else if plen >= 5 {
            // HandshakeResponse320: caps(2), max packet(3), user.
            self.client_caps = Some(caps & 0xFFFF);
            user = cstr(p, 5, MAX_NAME).0;
        }
        let txn = self.take_txn();
        let mut m = out.request(txn, start);
        m.field(F_COMMAND, "LOGIN")
            .field(F_SQL_COMMAND, "LOGIN")
            .field(F_USER, user);
        if let Some(d) = database {
            m.field(F_DATABASE, d);
        }
        self.expect(Pending {
            txn,
            cmd: LOGIN,
            query: None,
        });
        Parsed::Ok
    }

    // ------------------------------------------------------------ server

    fn server_packet(
        &mut self,
        seq: u8,
        p: &[u8],
        plen: usize,
        start: u64,
        out: &mut Output,
    ) -> Parsed {
        if p.is_empty() {
            return Parsed::Ok;
        }
        if self.current.is_none() {
            if seq == 0 && p[0] == 10 && self.server_version.is_none() && !self.login_seen {
                self.greeting(p);
                return Parsed::Ok;
            }
            let Some(pending) = self.outstanding.pop_front() else {
                if p[0] == 0xFF {
                    // Unsolicited error (e.g. "Host is not allowed to connect").
                    let mut m = out.standalone(0, start);
                    m.field(F_RESPONSE, "error");
                    err_fields(&mut m, p);
                }
                return Parsed::Ok;
            };
            self.current = Some(Current {
                pending,
                start,
                phase: Phase::Next,
                rows: 0,
                resultset: false,
            });
        }
        let deprecate = self.deprecate_eof();
        let cache_metadata = self.cache_metadata();
        let Some(cur) = self.current.as_mut() else {
            return Parsed::Ok;
        };
        let first = p[0];
        let is_eof = first == 0xFE && plen < 9;
        let is_end = first == 0xFE && plen < MAX_PACKET;
        match cur.phase {
            Phase::Next => {
                let cmd = cur.pending.cmd;
                if matches!(cmd, LOGIN | COM_CHANGE_USER) {
                    match first {
                        0x00 => self.finish_ok(p, out),
                        0xFF => self.finish_err(p, out),
                        _ => {} // auth switch / more data: wait for OK / ERR
                    }
                    return Parsed::Ok;
                }
                if first == 0xFF {
                    self.finish_err(p, out);
                } else if cmd == COM_STMT_PREPARE && first == 0x00 {
                    let id = u32_le(p, 1).unwrap_or(0);
                    let cols = u64::from(u16_le(p, 5).unwrap_or(0));
                    let params = u64::from(u16_le(p, 7).unwrap_or(0));
                    let eofs = if deprecate == Some(true) {
                        0
                    } else {
                        u64::from(cols > 0) + u64::from(params > 0)
                    };
                    if let Some(q) = cur.pending.query.take() {
                        if self.statements.len() >= MAX_STATEMENTS {
                            self.statements.pop_front();
                        }
                        self.statements.push_back((id, q));
                    }
                    let skip = cols + params + eofs;
                    self.emit(out, "ok", None, None);
                    if skip > 0 {
                        // Definitions follow: pass over them with a bare
                        // placeholder that emits nothing.
                        self.current = Some(Current {
                            pending: Pending {
                                txn: 0,
                                cmd: COM_STMT_PREPARE,
                                query: None,
                            },
                            start,
                            phase: Phase::Skip(skip),
                            rows: 0,
                            resultset: false,
                        });
                    }
                } else if first == 0x00 && cmd != COM_STMT_FETCH {
                    self.finish_ok(p, out);
                } else if is_eof {
                    let kind = if cur.resultset { "resultset" } else { "eof" };
                    let rows = cur.resultset.then_some(cur.rows);
                    self.emit(out, kind, rows, None);
                } else if cmd == COM_STATISTICS {
                    self.emit(out, "ok", None, None);
                } else if cmd == COM_FIELD_LIST {
                    cur.phase = Phase::FieldList;
                } else if cmd == COM_STMT_FETCH {
                    cur.resultset = true;
                    cur.phase = Phase::Rows;
                    return self.server_packet(seq, p, plen, start, out);
                } else if first == 0xFB {
                    cur.phase = Phase::Infile;
                } else {
                    match lenenc(p, 0) {
                        // With cached metadata the server may leave the
                        // column definitions out ("metadata follows" 0):
                        // the client reuses those of the prepared statement.
                        // The EOF that ends them is still sent.
                        Some((n, used)) if n > 0 && cache_metadata && p.get(used) == Some(&0) => {
                            cur.resultset = true;
                            cur.phase = Phase::ColumnsEnd;
                        }
                        Some((n, _)) if n > 0 => {
                            cur.resultset = true;
                            cur.phase = Phase::Columns(n);
                        }
                        _ => {
                            out.error("mysql: unexpected response packet");
                            return Parsed::Opaque;
                        }
                    }
                }
            }
            Phase::Columns(n) => {
                if first == 0xFF {
                    self.finish_err(p, out);
                } else if n <= 1 {
                    cur.phase = Phase::ColumnsEnd;
                } else {
                    cur.phase = Phase::Columns(n - 1);
                }
            }
            Phase::ColumnsEnd => {
                let separator = match deprecate {
                    Some(d) => !d && is_eof,
                    None => is_eof && plen <= 5,
                };
                if first == 0xFF {
                    self.finish_err(p, out);
                } else if separator {
                    let status = u16_le(p, 3).unwrap_or(0);
                    if status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                        self.end_result(status, out);
                    } else {
                        cur.phase = Phase::Rows;
                    }
                } else if is_end {
                    let status = ok_status(p).unwrap_or(0);
                    self.end_result(status, out);
                } else {
                    cur.rows += 1;
                    cur.phase = Phase::Rows;
                }
            }
            Phase::Rows => {
                if first == 0xFF {
                    self.finish_err(p, out);
                } else if is_end {
                    let status = if is_eof && deprecate != Some(true) {
                        u16_le(p, 3).unwrap_or(0)
                    } else {
                        ok_status(p).unwrap_or(0)
                    };
                    self.end_result(status, out);
                } else {
                    cur.rows += 1;
                }
            }
            Phase::Skip(n) => {
                if n <= 1 {
                    self.current = None;
                } else {
                    cur.phase = Phase::Skip(n - 1);
                }
            }
            Phase::FieldList => {
                if first == 0xFF {
                    self.finish_err(p, out);
                } else if is_end {
                    self.emit(out, "eof", None, None);
                }
            }
            Phase::Infile => match first {
                0x00 => self.finish_ok(p, out),
                0xFF => self.finish_err(p, out),
                _ => {}
            },
        }
        Parsed::Ok
    }

    fn greeting(&mut self, p: &[u8]) {
        let (version, at) = cstr(p, 1, MAX_NAME);
        self.server_version = Some(version);
        // conn id(4), auth part 1 (8), filler(1), caps low(2), charset(1),
        // status(2), caps high(2).
        let low = u16_le(p, at + 13).map(u32::from);
        let high = u16_le(p, at + 18).map(u32::from).unwrap_or(0);
        self.server_caps = low.map(|l| l | high << 16);
        // Then auth data length(1), reserved(6), and in the last 4 reserved
        // bytes a MariaDB server's extended capabilities.
        if self.server_caps.is_some_and(|c| c & CLIENT_MYSQL == 0) {
            self.server_ext_caps = u32_le(p, at + 27);
        }
    }

    /// A result set ended with this status: another result follows, or the
    /// response is complete.
    fn end_result(&mut self, status: u16, out: &mut Output) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if status & SERVER_MORE_RESULTS_EXISTS != 0 {
            cur.phase = Phase::Next;
        } else {
            let rows = cur.rows;
            self.emit(out, "resultset", Some(rows), None);
        }
    }

    fn finish_ok(&mut self, p: &[u8], out: &mut Output) {
        let affected = lenenc(p, 1).map_or(0, |(v, _)| v);
        let status = ok_status(p).unwrap_or(0);
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if !cur.resultset {
            cur.rows = cur.rows.saturating_add(affected);
        }
        if status & SERVER_MORE_RESULTS_EXISTS != 0 && cur.pending.cmd != LOGIN {
            cur.phase = Phase::Next;
            return;
        }
        let kind = if cur.resultset { "resultset" } else { "ok" };
        let rows = cur.rows;
        self.emit(out, kind, Some(rows), None);
    }

    fn finish_err(&mut self, p: &[u8], out: &mut Output) {
        self.emit(out, "error", None, Some(p));
    }

    /// Emit the response of the current unit and clear it.
    fn emit(&mut self, out: &mut Output, kind: &str, rows: Option<u64>, err: Option<&[u8]>) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let mut m = out.response(cur.pending.txn, cur.start);
        m.field(F_RESPONSE, kind);
        if let Some(r) = rows {
            m.int(F_ROWS, i64::try_from(r).unwrap_or(i64::MAX));
        }
        if let Some(p) = err {
            err_fields(&mut m, p);
        }
        if cur.pending.cmd == LOGIN {
            if let Some(v) = &self.server_version {
                m.field(F_SERVER_VERSION, v.clone());
            }
        }
    }
}

/// Status flags of an OK packet (header, affected rows, last insert id).
fn ok_status(p: &[u8]) -> Option<u16> {
    let (_, a) = lenenc(p, 1)?;
    let (_, b) = lenenc(p, 1 + a)?;
    u16_le(p, 1 + a + b)
}

/// `sql_error_code` and `sql_error` of an ERR packet.
fn err_fields(m: &mut MessageBuilder<'_>, p: &[u8]) {
    if let Some(code) = u16_le(p, 1) {
        m.int(F_ERROR_CODE, i64::from(code));
    }
    let mut at = 3;
    if p.get(3) == Some(&b'#') {
        at = 9; // '#' + SQL state
    }
    m.field(F_ERROR, text(p.get(at..).unwrap_or(b""), MAX_ERROR));
}

impl Session for MysqlSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        if self.opaque {
            return Progress::consumed(data.len());
        }
        let i = dir.index();
        let mut pos = 0usize;
        loop {
            if out.is_full() {
                return Progress::consumed(pos);
            }
            let avail = data.len() - pos;
            if avail < 4 {
                return Progress::need(pos, 4);
            }
            let h = &data[pos..];
            let plen = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
            let seq = h[3];
            let continued = self.cont[i];
            self.cont[i] = plen == MAX_PACKET;
            let want = if continued {
                0
            } else {
                if plen > 0 && avail < 5 {
                    self.cont[i] = continued;
                    return Progress::need(pos, 5);
                }
                let first = (plen > 0).then(|| h[4]);
                plen.min(self.keep(dir, first))
            };
            if avail < 4 + want {
                self.cont[i] = continued;
                return Progress::need(pos, 4 + want);
            }
            if !continued {
                let payload = &h[4..4 + want];
                let start = input.offset(pos);
                let r = match dir {
                    Direction::ToServer => self.client_packet(seq, payload, plen, start, out),
                    Direction::ToClient => self.server_packet(seq, payload, plen, start, out),
                };
                if let Parsed::Opaque = r {
                    self.opaque = true;
                    return Progress::consumed(data.len());
                }
            }
            if avail >= 4 + plen {
                pos += 4 + plen;
            } else {
                return Progress::skip(pos + 4 + want, (plen - want) as u64);
            }
        }
    }

    fn gap(&mut self, _dir: Direction, _len: u64, out: &mut Output) {
        // Lost bytes break framing and in-order pairing: give up.
        out.error("bytes lost: mysql dissection stopped for this connection");
        self.opaque = true;
    }
}
