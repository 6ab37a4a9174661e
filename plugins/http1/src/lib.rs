//! HTTP/1.0 and HTTP/1.1 dissector for Remora, written with `remora-sdk`.
//!
//! Requests and responses are paired FIFO per connection: request *n* and
//! response *n* share `txn = n`. Heads are parsed with `httparse`; fields are
//! sent as spans into the input whenever a whole message arrives in one call,
//! and as owned strings when a body spans several calls. Body bytes beyond the
//! cap (`body-cap`, default 16384) are skipped through `skip` when they have
//! not crossed the boundary yet.

use remora_sdk::prelude::*;
use std::collections::VecDeque;

mod body;
mod head;

pub use head::probe_bytes;

// Field ids (shared by requests and responses; the host exposes them under
// `request.<name>` / `response.<name>`).
pub const F_METHOD: u16 = 0;
pub const F_URL: u16 = 1;
pub const F_PATH: u16 = 2;
pub const F_QUERY_STRING: u16 = 3;
pub const F_HTTP_VERSION: u16 = 4;
pub const F_HEADERS: u16 = 5;
pub const F_COOKIES: u16 = 6;
pub const F_HOST: u16 = 7;
pub const F_REQUEST_HEADERS_SIZE: u16 = 8;
pub const F_REQUEST_BODY_SIZE: u16 = 9;
pub const F_STATUS_CODE: u16 = 10;
pub const F_STATUS_TEXT: u16 = 11;
pub const F_RESPONSE_HEADERS_SIZE: u16 = 12;
pub const F_RESPONSE_BODY_SIZE: u16 = 13;
pub const F_UPGRADE: u16 = 14;
pub const F_INTERIM_STATUS: u16 = 15;
pub const F_TRAILERS: u16 = 16;

/// Default for the `body-cap` configuration value (bytes kept per body).
pub const DEFAULT_BODY_CAP: usize = 16 * 1024;
/// A head (start line + headers) larger than this is an error.
pub const MAX_HEAD: usize = 64 * 1024;
/// Requests remembered while waiting for their responses.
const MAX_OUTSTANDING: usize = 1024;

pub struct Http1;

impl Dissector for Http1 {
    type Session = Http1Session;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("http1", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("HTTP", "http")
                    .ports(&[80, 8080, 8000, 3000, 5000, 8081, 18080, 18082])
                    .summaries("{method} {url}", "{status_code}"),
            )
            .field(f(F_METHOD, "method", Str, true, "request method"))
            .field(f(
                F_URL,
                "url",
                Str,
                true,
                "request target as sent (path and query)",
            ))
            .field(f(F_PATH, "path", Str, true, "request target before '?'"))
            .field(f(
                F_QUERY_STRING,
                "query_string",
                StrMap,
                true,
                "query parameters, not percent-decoded",
            ))
            .field(f(
                F_HTTP_VERSION,
                "http_version",
                Str,
                true,
                "\"1.0\" or \"1.1\"",
            ))
            .field(f(
                F_HEADERS,
                "headers",
                StrMap,
                false,
                "headers in order, names as sent, duplicates kept",
            ))
            .field(f(
                F_COOKIES,
                "cookies",
                StrMap,
                false,
                "Cookie (request) or Set-Cookie name=value (response)",
            ))
            .field(f(F_HOST, "host", Str, false, "Host header"))
            .field(f(
                F_REQUEST_HEADERS_SIZE,
                "request_headers_size",
                Int,
                true,
                "bytes of the request head",
            ))
            .field(f(
                F_REQUEST_BODY_SIZE,
                "request_body_size",
                Int,
                true,
                "request body length on the wire, de-chunked",
            ))
            .field(f(
                F_STATUS_CODE,
                "status_code",
                Int,
                true,
                "response status code",
            ))
            .field(f(
                F_STATUS_TEXT,
                "status_text",
                Str,
                false,
                "response reason phrase",
            ))
            .field(f(
                F_RESPONSE_HEADERS_SIZE,
                "response_headers_size",
                Int,
                true,
                "bytes of the response head",
            ))
            .field(f(
                F_RESPONSE_BODY_SIZE,
                "response_body_size",
                Int,
                true,
                "response body length on the wire, de-chunked",
            ))
            .field(f(
                F_UPGRADE,
                "upgrade",
                Str,
                false,
                "Upgrade header of a 101 response",
            ))
            .field(f(
                F_INTERIM_STATUS,
                "interim_status",
                IntList,
                false,
                "1xx interim responses before this one",
            ))
            .field(f(
                F_TRAILERS,
                "trailers",
                StrMap,
                false,
                "chunked trailer fields",
            ))
    }

    fn probe(_flow: &FlowInfo, dir: Direction, data: &[u8]) -> Probe {
        probe_bytes(dir, data)
    }

    fn session(_flow: &FlowInfo) -> Http1Session {
        let cap = body_cap(DEFAULT_BODY_CAP);
        Http1Session::with_cap(cap)
    }
}

remora_sdk::export_dissector!(Http1);

/// What a response needs to know about its request.
#[derive(Clone, Copy, Debug)]
struct ReqInfo {
    head: bool,
    connect: bool,
}

pub(crate) enum Mode {
    /// Expecting a start line (or leading empty lines).
    Head,
    /// Inside a body whose message is kept across calls.
    Body(Box<body::Pending>),
    /// Not HTTP any more (after an error, an upgrade or the end): consume all.
    Opaque,
}

pub(crate) struct DirState {
    pub(crate) mode: Mode,
    /// Where to resume looking for the end of an incomplete head, relative
    /// to the head's first byte.
    pub(crate) scan_from: usize,
    /// Bytes were lost: look for the next start line.
    pub(crate) resync: bool,
    /// The client asked for an upgrade: non-HTTP bytes after it are not an error.
    pub(crate) upgrade_requested: bool,
    /// 1xx interim statuses seen since the last final response.
    pub(crate) interim: Vec<u16>,
}

impl DirState {
    fn new() -> Self {
        DirState {
            mode: Mode::Head,
            scan_from: 0,
            resync: false,
            upgrade_requested: false,
            interim: Vec::new(),
        }
    }
}

/// An upgrade request waiting for its response (RFC 9110 §7.8).
#[derive(Clone, Debug)]
pub(crate) struct PendingUpgrade {
    /// Stream offset (to-server) just after the request: where the new
    /// protocol starts if the server agrees.
    pub(crate) at: u64,
    /// Handed to the next protocol's session (`takeover`).
    pub(crate) params: Vec<(String, String)>,
    /// First token of the request's Upgrade header.
    pub(crate) token: String,
}

/// One HTTP/1 connection, both directions.
pub struct Http1Session {
    cap: usize,
    req_txn: u64,
    resp_txn: u64,
    outstanding: VecDeque<ReqInfo>,
    dirs: [DirState; 2],
    /// The client asked to upgrade; its later bytes wait for the answer.
    pub(crate) upgrade: Option<PendingUpgrade>,
    /// A 101 handed the flow to another protocol at the end of this call's
    /// consumed bytes.
    pub(crate) switched: bool,
}

/// The Remora protocol name (a `ProtocolDecl::name`) for an HTTP Upgrade
/// token (IANA "HTTP Upgrade Token" registry); unknown tokens pass as sent.
pub fn upgrade_protocol(token: &str) -> String {
    if token.eq_ignore_ascii_case("websocket") {
        "WebSocket".into()
    } else if token.eq_ignore_ascii_case("h2c") {
        "HTTP/2".into()
    } else {
        token.to_owned()
    }
}

impl Http1Session {
    /// A session keeping at most `cap` body bytes per message.
    pub fn with_cap(cap: usize) -> Self {
        Http1Session {
            cap,
            req_txn: 0,
            resp_txn: 0,
            outstanding: VecDeque::new(),
            dirs: [DirState::new(), DirState::new()],
            upgrade: None,
            switched: false,
        }
    }

    fn fail(&mut self, dir: Direction, out: &mut Output, reason: &str) {
        out.error(reason);
        self.dirs[dir.index()].mode = Mode::Opaque;
    }
}

impl Session for Http1Session {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        if data.is_empty() {
            return Progress::need(0, 1);
        }
        let mut pos = 0usize;
        let i = dir.index();
        loop {
            if self.switched {
                // The rest belongs to the next protocol; the host hands it over.
                return Progress::consumed(pos);
            }
            if pos >= data.len() {
                if let Mode::Body(p) = &mut self.dirs[i].mode {
                    // Kept past this call: its spans must become owned text.
                    p.msg.make_owned(data);
                }
                return Progress::consumed(pos);
            }
            if matches!(self.dirs[i].mode, Mode::Head) && out.is_full() {
                return Progress::consumed(pos);
            }
            match std::mem::replace(&mut self.dirs[i].mode, Mode::Head) {
                Mode::Opaque => {
                    self.dirs[i].mode = Mode::Opaque;
                    return Progress::consumed(data.len());
                }
                Mode::Body(mut p) => match body::advance(&mut p, input, &mut pos, self.cap) {
                    body::Step::Done { skip } => {
                        self.finish(*p, out);
                        if skip > 0 {
                            return Progress::skip(pos, skip);
                        }
                    }
                    body::Step::More { skip, need } => {
                        // Its spans point into this input: own them before keeping it.
                        p.msg.make_owned(data);
                        self.dirs[i].mode = Mode::Body(p);
                        return Progress {
                            consumed: pos,
                            skip,
                            need,
                        };
                    }
                    body::Step::Error(e) => {
                        p.lost = true;
                        self.finish(*p, out);
                        self.fail(dir, out, e);
                        return Progress::consumed(data.len());
                    }
                },
                Mode::Head => match self.head(dir, input, &mut pos, out) {
                    head::HeadStep::Continue => {}
                    head::HeadStep::Wait { need } => return Progress::need(pos, need),
                    head::HeadStep::Stop => return Progress::consumed(data.len()),
                    head::HeadStep::Skip { skip } => return Progress::skip(pos, skip),
                    head::HeadStep::Kept { skip, need } => {
                        return Progress {
                            consumed: pos,
                            skip,
                            need,
                        }
                    }
                },
            }
        }
    }

    fn gap(&mut self, dir: Direction, len: u64, out: &mut Output) {
        let d = &mut self.dirs[dir.index()];
        match std::mem::replace(&mut d.mode, Mode::Head) {
            Mode::Opaque => d.mode = Mode::Opaque,
            Mode::Head => d.resync = true,
            Mode::Body(mut p) => {
                if body::gap(&mut p, len) {
                    d.mode = Mode::Body(p);
                } else {
                    d.resync = true;
                    self.finish(*p, out);
                }
            }
        }
    }

    fn end(&mut self, dir: Direction, out: &mut Output) {
        let d = &mut self.dirs[dir.index()];
        if let Mode::Body(mut p) = std::mem::replace(&mut d.mode, Mode::Opaque) {
            p.ended();
            self.finish(*p, out);
        }
    }
}
