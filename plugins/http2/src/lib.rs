//! HTTP/2 (prior knowledge) and gRPC dissector for Remora, written with
//! `remora-sdk`.
//!
//! Each direction is a sequence of frames (9-byte header, payload). Header
//! blocks (HEADERS / PUSH_PROMISE + CONTINUATION) are decoded with one HPACK
//! decoder per direction ([`hpack`]). One entry per stream: the request
//! (`txn` = stream id) is emitted when the client's END_STREAM is seen, the
//! response at the server's END_STREAM (trailers included); RST_STREAM ends
//! both halves. DATA payload is streamed: up to `body-cap` (default 16384)
//! bytes are kept per body, gRPC length prefixes are counted, and the rest is
//! dropped through `skip`.
//!
//! A connection picked up mid-stream (no client preface) is decoded as far
//! as possible: the HPACK dynamic table is unknown, so references into it
//! show as `<unknown>`. Framing that makes no sense is an error and that
//! direction is given up. Flow control is ignored.

use remora_sdk::prelude::*;
use std::collections::BTreeMap;

pub mod hpack;
pub mod tables;

pub const F_METHOD: u16 = 0;
pub const F_URL: u16 = 1;
pub const F_PATH: u16 = 2;
pub const F_AUTHORITY: u16 = 3;
pub const F_HTTP_VERSION: u16 = 4;
pub const F_HEADERS: u16 = 5;
pub const F_STATUS_CODE: u16 = 6;
pub const F_REQUEST_BODY_SIZE: u16 = 7;
pub const F_RESPONSE_BODY_SIZE: u16 = 8;
pub const F_TRAILERS: u16 = 9;
pub const F_STREAM_ID: u16 = 10;
pub const F_GRPC: u16 = 11;
pub const F_GRPC_SERVICE: u16 = 12;
pub const F_GRPC_METHOD: u16 = 13;
pub const F_GRPC_STATUS: u16 = 14;
pub const F_GRPC_MESSAGE: u16 = 15;
pub const F_GRPC_REQUEST_MESSAGES: u16 = 16;
pub const F_GRPC_RESPONSE_MESSAGES: u16 = 17;
pub const F_GRPC_REQUEST_MESSAGE_BYTES: u16 = 18;
pub const F_GRPC_RESPONSE_MESSAGE_BYTES: u16 = 19;
pub const F_GRPC_COMPRESSED: u16 = 20;
pub const F_RST_ERROR: u16 = 21;
pub const F_HEADERS_UNKNOWN: u16 = 22;

pub const PORTS: [u16; 5] = [8081, 18081, 50051, 15051, 30035];
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Default for the `body-cap` configuration value.
pub const DEFAULT_BODY_CAP: usize = 16 * 1024;
/// Largest header block (all HEADERS/CONTINUATION fragments) decoded.
pub const MAX_BLOCK: usize = 256 * 1024;
/// Header fields kept per header list, and their total bytes.
pub const MAX_FIELDS: usize = 256;
pub const MAX_LIST_BYTES: usize = 64 * 1024;
/// Streams tracked at once; beyond, the oldest is flushed.
pub const MAX_STREAMS: usize = 256;
/// Control frame payloads larger than this are skipped unread.
const MAX_CONTROL: usize = 64 * 1024;
/// Frames handled per feed call before returning.
const MAX_FRAMES_PER_CALL: usize = 4096;

const T_DATA: u8 = 0;
const T_HEADERS: u8 = 1;
const T_PRIORITY: u8 = 2;
const T_RST: u8 = 3;
const T_SETTINGS: u8 = 4;
const T_PUSH: u8 = 5;
const T_PING: u8 = 6;
const T_GOAWAY: u8 = 7;
const T_WINDOW: u8 = 8;
const T_CONT: u8 = 9;

const FL_END_STREAM: u8 = 0x1;
const FL_ACK: u8 = 0x1;
const FL_END_HEADERS: u8 = 0x4;
const FL_PADDED: u8 = 0x8;
const FL_PRIORITY: u8 = 0x20;

pub struct Http2;

impl Dissector for Http2 {
    type Session = Http2Session;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("http2", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("HTTP/2", "http")
                    .ports(&PORTS)
                    .summaries("{method} {url}", "{status_code}"),
            )
            .field(f(F_METHOD, "method", Str, true, ":method"))
            .field(f(F_URL, "url", Str, true, ":path as sent (path and query)"))
            .field(f(F_PATH, "path", Str, true, ":path before '?'"))
            .field(f(F_AUTHORITY, "authority", Str, true, ":authority"))
            .field(f(F_HTTP_VERSION, "http_version", Str, true, "\"2\""))
            .field(f(
                F_HEADERS,
                "headers",
                StrMap,
                false,
                "header list in order, names lower-case as on the wire (pseudo-headers included)",
            ))
            .field(f(F_STATUS_CODE, "status_code", Int, true, ":status"))
            .field(f(
                F_REQUEST_BODY_SIZE,
                "request_body_size",
                Int,
                true,
                "request DATA bytes (padding excluded)",
            ))
            .field(f(
                F_RESPONSE_BODY_SIZE,
                "response_body_size",
                Int,
                true,
                "response DATA bytes (padding excluded)",
            ))
            .field(f(
                F_TRAILERS,
                "trailers",
                StrMap,
                false,
                "trailing header list",
            ))
            .field(f(
                F_STREAM_ID,
                "h2_stream_id",
                Int,
                false,
                "HTTP/2 stream id",
            ))
            .field(f(
                F_GRPC,
                "grpc",
                Boolean,
                true,
                "content-type application/grpc*",
            ))
            .field(f(
                F_GRPC_SERVICE,
                "grpc_service",
                Str,
                true,
                "package.Service of :path",
            ))
            .field(f(
                F_GRPC_METHOD,
                "grpc_method",
                Str,
                true,
                "method of :path",
            ))
            .field(f(
                F_GRPC_STATUS,
                "grpc_status",
                Int,
                true,
                "grpc-status of the trailers (or a trailers-only response)",
            ))
            .field(f(F_GRPC_MESSAGE, "grpc_message", Str, true, "grpc-message"))
            .field(f(
                F_GRPC_REQUEST_MESSAGES,
                "grpc_request_messages",
                Int,
                true,
                "length-prefixed messages sent by the client",
            ))
            .field(f(
                F_GRPC_RESPONSE_MESSAGES,
                "grpc_response_messages",
                Int,
                true,
                "length-prefixed messages sent by the server",
            ))
            .field(f(
                F_GRPC_REQUEST_MESSAGE_BYTES,
                "grpc_request_message_bytes",
                Int,
                false,
                "sum of request message lengths (prefixes excluded)",
            ))
            .field(f(
                F_GRPC_RESPONSE_MESSAGE_BYTES,
                "grpc_response_message_bytes",
                Int,
                false,
                "sum of response message lengths (prefixes excluded)",
            ))
            .field(f(
                F_GRPC_COMPRESSED,
                "grpc_compressed",
                Boolean,
                false,
                "some message had the compressed flag",
            ))
            .field(f(
                F_RST_ERROR,
                "h2_rst_error",
                Int,
                false,
                "RST_STREAM error code that ended the stream",
            ))
            .field(f(
                F_HEADERS_UNKNOWN,
                "h2_hpack_unknown",
                Boolean,
                false,
                "some header referenced an HPACK dynamic entry not seen (mid-stream pickup)",
            ))
    }

    fn probe(flow: &FlowInfo, dir: Direction, data: &[u8]) -> Probe {
        probe_bytes(PORTS.contains(&flow.server_port), dir, data)
    }

    fn session(_flow: &FlowInfo) -> Http2Session {
        let cap = body_cap(DEFAULT_BODY_CAP);
        Http2Session::with_cap(cap)
    }
}

remora_sdk::export_dissector!(Http2);

/// Probe: the client preface (100, certain); a server's opening SETTINGS frame (90),
/// which servers such as gRPC's may send before the client has spoken; on a
/// hinted port without either, a plausible sequence of frame headers (20).
pub fn probe_bytes(hinted: bool, dir: Direction, data: &[u8]) -> Probe {
    if dir == Direction::ToServer {
        let n = data.len().min(PREFACE.len());
        if data[..n] == PREFACE[..n] {
            return if n == PREFACE.len() {
                Probe::Yes(100)
            } else {
                Probe::NeedMore
            };
        }
    } else {
        match server_settings(data) {
            Probe::No => {}
            // Not enough to tell yet: the client preface may still decide.
            Probe::NeedMore if !hinted => return Probe::NeedMore,
            Probe::NeedMore => {}
            yes => return yes,
        }
    }
    if !hinted {
        return Probe::No;
    }
    // Walk whole frames; at least one frame header must be plausible.
    let mut pos = 0usize;
    let mut frames = 0;
    while frames < 8 {
        let Some(h) = data.get(pos..pos + 9) else {
            break;
        };
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let sid = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if !plausible(h[3], len, sid) {
            return Probe::No;
        }
        frames += 1;
        pos += 9 + len;
    }
    if frames == 0 {
        Probe::NeedMore
    } else {
        Probe::Yes(20)
    }
}

/// Settings a server's opening SETTINGS frame is accepted with: RFC 9113
/// §6.5.2 (1-6), RFC 8441 (8), RFC 9218 (9), and gRPC's own
/// GRPC_ALLOW_TRUE_BINARY_METADATA (0xfe03) and
/// GRPC_PREFERRED_RECEIVE_CRYPTO_FRAME_SIZE (0xfe04).
const KNOWN_SETTINGS: [u16; 10] = [1, 2, 3, 4, 5, 6, 8, 9, 0xfe03, 0xfe04];
/// More settings than this in the opening frame is not a real server.
const MAX_OPENING_SETTINGS: usize = 32;

/// Whether `data` starts with the SETTINGS frame a server opens with (RFC
/// 9113 §3.4): type 4, no flags, stream 0, whole known settings with legal
/// values. Strict because any server-first binary protocol reaches here: an
/// empty SETTINGS frame is not enough (the client preface decides then).
fn server_settings(data: &[u8]) -> Probe {
    // Byte 2 is the length (at most MAX_OPENING_SETTINGS * 6 < 256, so the
    // length's high bytes are 0); every other header byte is fixed.
    const HEAD: [u8; 9] = [0, 0, 0, T_SETTINGS, 0, 0, 0, 0, 0];
    let fixed_ok = data
        .iter()
        .take(9)
        .enumerate()
        .all(|(i, b)| i == 2 || *b == HEAD[i]);
    if !fixed_ok {
        return Probe::No;
    }
    let Some(&len) = data.get(2) else {
        return Probe::NeedMore;
    };
    let len = usize::from(len);
    if len == 0 {
        return Probe::NeedMore;
    }
    if !len.is_multiple_of(6) || len / 6 > MAX_OPENING_SETTINGS {
        return Probe::No;
    }
    let payload = data.get(9..).unwrap_or_default();
    for s in payload.chunks_exact(6).take(len / 6) {
        let id = u16::from_be_bytes([s[0], s[1]]);
        let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
        let legal = match id {
            2 | 8 | 9 => v <= 1,
            4 => v <= 0x7fff_ffff,
            5 => (1 << 14..1 << 24).contains(&v),
            _ => KNOWN_SETTINGS.contains(&id),
        };
        if !legal {
            return Probe::No;
        }
    }
    if payload.len() < len {
        Probe::NeedMore
    } else {
        Probe::Yes(90)
    }
}

/// A frame header that makes sense (used strictly when picked up mid-stream).
fn plausible(ty: u8, len: usize, sid: u32) -> bool {
    if len > 1 << 20 {
        return false;
    }
    match ty {
        T_DATA | T_HEADERS | T_CONT | T_PUSH => sid != 0,
        T_PRIORITY => sid != 0 && len == 5,
        T_RST => sid != 0 && len == 4,
        T_SETTINGS => sid == 0 && len.is_multiple_of(6),
        T_PING => sid == 0 && len == 8,
        T_GOAWAY => sid == 0 && len >= 8,
        T_WINDOW => len == 4,
        _ => false,
    }
}

// ---------------------------------------------------------------- streams

/// Counts gRPC length-prefixed messages across DATA chunks.
#[derive(Debug, Default, Clone)]
pub struct GrpcCounter {
    prefix: [u8; 5],
    have: usize,
    /// Bytes of the current message still to come.
    left: u64,
    pub messages: u64,
    pub bytes: u64,
    pub compressed: bool,
}

impl GrpcCounter {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left > 0 {
                let n = (data.len() as u64).min(self.left);
                self.left -= n;
                data = &data[n as usize..];
                continue;
            }
            self.prefix[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have == 5 {
                self.have = 0;
                self.messages += 1;
                self.compressed |= self.prefix[0] & 1 != 0;
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.bytes += u64::from(len);
                self.left = u64::from(len);
            }
        }
    }
    /// Bytes that can be dropped unseen (inside a message).
    fn skippable(&self) -> u64 {
        self.left
    }
    fn skipped(&mut self, n: u64) {
        self.left = self.left.saturating_sub(n);
    }
}

/// One side (request or response) of a stream.
#[derive(Debug, Default)]
struct Half {
    start: Option<u64>,
    headers: Vec<(String, String)>,
    trailers: Vec<(String, String)>,
    list_bytes: usize,
    unknown: bool,
    body: Vec<u8>,
    body_len: u64,
    grpc: GrpcCounter,
    ended: bool,
    emitted: bool,
}

impl Half {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn is_grpc(&self) -> bool {
        self.get("content-type")
            .is_some_and(|c| c.starts_with("application/grpc"))
    }
}

#[derive(Debug, Default)]
struct Stream {
    req: Half,
    resp: Half,
    rst: Option<u32>,
}

impl Stream {
    fn grpc(&self) -> bool {
        self.req.is_grpc() || self.resp.is_grpc()
    }
}

/// A header block being assembled from HEADERS / PUSH_PROMISE + CONTINUATION.
struct Block {
    stream: u32,
    /// Stream id promised by a PUSH_PROMISE.
    promised: Option<u32>,
    end_stream: bool,
    start: u64,
    buf: Vec<u8>,
    overflow: bool,
}

/// DATA payload still arriving.
struct DataRun {
    stream: u32,
    data_left: u64,
    pad_left: u64,
    end_stream: bool,
}

struct Dir {
    /// Client preface still expected (client direction only).
    preface: bool,
    /// The first frame has not been seen yet.
    first: bool,
    hpack: hpack::Decoder,
    block: Option<Block>,
    run: Option<DataRun>,
    dead: bool,
}

impl Dir {
    fn new(client: bool) -> Self {
        Dir {
            preface: client,
            first: true,
            hpack: hpack::Decoder::new(),
            block: None,
            run: None,
            dead: false,
        }
    }
}

/// One HTTP/2 connection, both directions.
pub struct Http2Session {
    cap: usize,
    streams: BTreeMap<u32, Stream>,
    dirs: [Dir; 2],
}

/// Whether an emitted half is still read afterwards (its stream stays) or
/// its header lists and body can move into the message (the stream is
/// dropped right after).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Emit {
    Kept,
    Last,
}

/// One map field member per `(name, value)` of `list`, moved into the
/// message. A half that stays (`Emit::Kept`) keeps copies of only what is
/// read of an emitted list: whether it is empty (which block is a trailer),
/// and `Half::get` of `content-type` (`Stream::grpc`) and `:status`; that
/// is the first entry and the first entry of each of those names.
fn pairs(m: &mut MessageBuilder<'_>, id: u16, list: &mut Vec<(String, String)>, how: Emit) {
    let mut kept = Vec::new();
    let (mut content_type, mut status) = (false, false);
    for (i, (n, v)) in list.drain(..).enumerate() {
        if how == Emit::Kept {
            let first_ct = !content_type && n == "content-type";
            let first_status = !status && n == ":status";
            content_type |= first_ct;
            status |= first_status;
            if i == 0 || first_ct || first_status {
                kept.push((n.clone(), v.clone()));
            }
        }
        m.pair(id, n, v);
    }
    *list = kept;
}

fn lossy(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn frame_header(d: &[u8]) -> Option<(usize, u8, u8, u32)> {
    let h = d.get(..9)?;
    let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
    let sid = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
    Some((len, h[3], h[4], sid))
}

/// Strip padding (and priority) from a HEADERS / PUSH_PROMISE / DATA payload.
fn unpad(p: &[u8], flags: u8, priority: bool) -> Option<&[u8]> {
    let (pad, mut p) = if flags & FL_PADDED != 0 {
        (usize::from(*p.first()?), p.get(1..)?)
    } else {
        (0, p)
    };
    if priority && flags & FL_PRIORITY != 0 {
        p = p.get(5..)?;
    }
    let end = p.len().checked_sub(pad)?;
    p.get(..end)
}

impl Http2Session {
    pub fn with_cap(cap: usize) -> Self {
        Http2Session {
            cap,
            streams: BTreeMap::new(),
            dirs: [Dir::new(true), Dir::new(false)],
        }
    }

    fn fail(&mut self, dir: Direction, out: &mut Output, reason: &str) {
        out.error(reason);
        let d = &mut self.dirs[dir.index()];
        d.dead = true;
        d.block = None;
        d.run = None;
    }

    fn stream(&mut self, id: u32, out: &mut Output) -> &mut Stream {
        if !self.streams.contains_key(&id) && self.streams.len() >= MAX_STREAMS {
            if let Some((&old, _)) = self.streams.iter().next() {
                if let Some(s) = self.streams.remove(&old) {
                    self.flush(old, s, out);
                }
            }
        }
        self.streams.entry(id).or_default()
    }

    /// Emit what a stream has not emitted yet (it ends or is evicted).
    fn flush(&self, id: u32, mut s: Stream, out: &mut Output) {
        let grpc = s.grpc();
        if !s.req.emitted && (s.req.start.is_some() || s.resp.start.is_some()) {
            self.emit_request(id, &mut s, grpc, Emit::Last, out);
        }
        if !s.resp.emitted && s.resp.start.is_some() {
            self.emit_response(id, &mut s, grpc, Emit::Last, out);
        }
    }

    fn body(&self, h: &mut Half, how: Emit) -> Option<Body> {
        if h.body_len == 0 {
            return None;
        }
        let truncated = (h.body.len() as u64) < h.body_len;
        Some(Body {
            data: match how {
                Emit::Last => std::mem::take(&mut h.body),
                Emit::Kept => h.body.clone(),
            },
            original_len: h.body_len,
            truncated,
            decoded_from: None,
        })
    }

    /// `grpc`: the stream's `Stream::grpc`, taken before anything moves out.
    fn emit_request(&self, id: u32, s: &mut Stream, grpc: bool, how: Emit, out: &mut Output) {
        s.req.emitted = true;
        let start = s.req.start.or(s.resp.start).unwrap_or(0);
        let body = self.body(&mut s.req, how);
        let h = &mut s.req;
        let mut m = out.request(u64::from(id), start);
        m.int(F_STREAM_ID, id.into()).field(F_HTTP_VERSION, "2");
        if let Some(v) = h.get(":method") {
            m.field(F_METHOD, v);
        }
        if let Some(v) = h.get(":path") {
            m.field(F_URL, v);
            let path = v.split('?').next().unwrap_or(v);
            m.field(F_PATH, path);
            if grpc {
                let mut parts = path.trim_start_matches('/').splitn(2, '/');
                if let (Some(svc), Some(meth)) = (parts.next(), parts.next()) {
                    m.field(F_GRPC_SERVICE, svc).field(F_GRPC_METHOD, meth);
                }
            }
        }
        if let Some(v) = h.get(":authority").or_else(|| h.get("host")) {
            m.field(F_AUTHORITY, v);
        }
        pairs(&mut m, F_HEADERS, &mut h.headers, how);
        pairs(&mut m, F_TRAILERS, &mut h.trailers, how);
        m.int(F_REQUEST_BODY_SIZE, h.body_len as i64);
        if grpc {
            m.field(F_GRPC, true)
                .int(F_GRPC_REQUEST_MESSAGES, h.grpc.messages as i64)
                .int(F_GRPC_REQUEST_MESSAGE_BYTES, h.grpc.bytes as i64)
                .field(F_GRPC_COMPRESSED, h.grpc.compressed);
        }
        if h.unknown {
            m.field(F_HEADERS_UNKNOWN, true);
        }
        if let Some(code) = s.rst {
            m.int(F_RST_ERROR, code.into());
        }
        if let Some(b) = body {
            m.body(b);
        }
    }

    /// `grpc`: the stream's `Stream::grpc`, taken before anything moves out.
    fn emit_response(&self, id: u32, s: &mut Stream, grpc: bool, how: Emit, out: &mut Output) {
        s.resp.emitted = true;
        let start = s.resp.start.unwrap_or(0);
        let body = self.body(&mut s.resp, how);
        let h = &mut s.resp;
        // Read before the header lists may move into the message.
        let (grpc_status, grpc_message) = if grpc {
            let find = |name: &str| {
                h.trailers
                    .iter()
                    .chain(h.headers.iter())
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            (
                find("grpc-status").and_then(|v| v.trim().parse::<i64>().ok()),
                find("grpc-message").map(str::to_owned),
            )
        } else {
            (None, None)
        };
        let mut m = out.response(u64::from(id), start);
        m.int(F_STREAM_ID, id.into()).field(F_HTTP_VERSION, "2");
        if let Some(code) = h.get(":status").and_then(|v| v.trim().parse::<i64>().ok()) {
            m.int(F_STATUS_CODE, code);
        }
        pairs(&mut m, F_HEADERS, &mut h.headers, how);
        pairs(&mut m, F_TRAILERS, &mut h.trailers, how);
        m.int(F_RESPONSE_BODY_SIZE, h.body_len as i64);
        if grpc {
            m.field(F_GRPC, true)
                .int(F_GRPC_RESPONSE_MESSAGES, h.grpc.messages as i64)
                .int(F_GRPC_RESPONSE_MESSAGE_BYTES, h.grpc.bytes as i64)
                .field(F_GRPC_COMPRESSED, h.grpc.compressed);
            if let Some(st) = grpc_status {
                m.int(F_GRPC_STATUS, st);
            }
            if let Some(msg) = grpc_message {
                m.field(F_GRPC_MESSAGE, msg);
            }
        }
        if h.unknown {
            m.field(F_HEADERS_UNKNOWN, true);
        }
        if let Some(code) = s.rst {
            m.int(F_RST_ERROR, code.into());
        }
        if let Some(b) = body {
            m.body(b);
        }
    }

    /// A half of stream `id` received END_STREAM (or the stream was reset).
    fn end_half(&mut self, dir: Direction, id: u32, out: &mut Output) {
        let Some(mut s) = self.streams.remove(&id) else {
            return;
        };
        let grpc = s.grpc();
        match dir {
            Direction::ToServer => {
                s.req.ended = true;
                // The stream is dropped below once both halves are out.
                let how = if s.resp.ended || s.resp.emitted {
                    Emit::Last
                } else {
                    Emit::Kept
                };
                if !s.req.emitted {
                    self.emit_request(id, &mut s, grpc, how, out);
                }
                // A response that ended first waited for the whole request.
                if s.resp.ended && !s.resp.emitted {
                    self.emit_response(id, &mut s, grpc, Emit::Last, out);
                }
            }
            Direction::ToClient => {
                s.resp.ended = true;
                if !s.req.ended {
                    // The server answered before the request body ended
                    // (e.g. an early 201/413): wait, so its size is right.
                    self.streams.insert(id, s);
                    return;
                }
                if !s.req.emitted {
                    self.emit_request(id, &mut s, grpc, Emit::Last, out);
                }
                if !s.resp.emitted {
                    self.emit_response(id, &mut s, grpc, Emit::Last, out);
                }
            }
        }
        if !(s.req.emitted && s.resp.emitted) {
            self.streams.insert(id, s);
        }
    }

    fn reset(&mut self, id: u32, code: u32, out: &mut Output) {
        if let Some(mut s) = self.streams.remove(&id) {
            s.rst = Some(code);
            if code == 0 && s.resp.ended && !s.req.ended {
                // The server answered and asks the client to stop (RFC 9113
                // §8.1): request bytes already in flight still arrive, so
                // wait for the client's END_STREAM (or the end).
                self.streams.insert(id, s);
                return;
            }
            self.flush(id, s, out);
        }
    }

    /// Decode a complete header block, `encoded` (`b.buf` or, when it came
    /// in one frame, that frame's payload), and apply it.
    fn header_block(&mut self, dir: Direction, b: &Block, encoded: &[u8], out: &mut Output) {
        let i = dir.index();
        if b.overflow {
            // The dynamic table can no longer be trusted.
            self.dirs[i].hpack.synced = false;
        }
        // Most blocks have a few to a dozen fields: one allocation, not a
        // growth sequence.
        let mut fields: Vec<(String, String)> = Vec::with_capacity(16);
        let mut bytes = 0usize;
        let mut unknown = false;
        let res = if b.overflow {
            Ok(())
        } else {
            self.dirs[i].hpack.decode(encoded, |n, v| {
                if n == hpack::UNKNOWN.as_bytes() {
                    unknown = true;
                }
                bytes += n.len() + v.len();
                if fields.len() < MAX_FIELDS && bytes <= MAX_LIST_BYTES {
                    fields.push((lossy(n), lossy(v)));
                }
            })
        };
        if let Err(e) = res {
            // The HPACK state is lost: the rest of this direction cannot be decoded.
            self.fail(dir, out, e.reason());
            return;
        }
        let (target, is_req) = match b.promised {
            Some(p) => (p, true),
            None => (b.stream, dir == Direction::ToServer),
        };
        let s = self.stream(target, out);
        let h = if is_req { &mut s.req } else { &mut s.resp };
        h.unknown |= unknown || b.overflow;
        let informational = !is_req
            && fields
                .iter()
                .find(|(n, _)| n == ":status")
                .is_some_and(|(_, v)| v.starts_with('1'));
        if h.start.is_none() || (h.trailers.is_empty() && h.headers.is_empty()) {
            h.start = Some(b.start);
            h.list_bytes = bytes;
            h.headers = fields;
        } else if informational || h.get(":status").is_some_and(|v| v.starts_with('1')) {
            // A final response after 1xx interim ones replaces them.
            h.start = Some(b.start);
            h.headers = fields;
        } else {
            h.trailers = fields;
        }
        if b.promised.is_some() {
            // A promised request has no body and is complete.
            h.ended = true;
        }
        if b.end_stream && b.promised.is_none() {
            self.end_half(dir, b.stream, out);
        }
    }

    /// Account DATA bytes of the current run.
    fn data_bytes(&mut self, dir: Direction, id: u32, chunk: &[u8]) {
        let cap = self.cap;
        if let Some(s) = self.streams.get_mut(&id) {
            let h = match dir {
                Direction::ToServer => &mut s.req,
                Direction::ToClient => &mut s.resp,
            };
            h.body_len += chunk.len() as u64;
            let room = cap.saturating_sub(h.body.len()).min(chunk.len());
            h.body.extend_from_slice(&chunk[..room]);
            h.grpc.feed(chunk);
        }
    }

    /// How many of the next `n` DATA bytes of stream `id` nobody needs.
    fn skippable(&self, dir: Direction, id: u32, n: u64) -> u64 {
        let Some(s) = self.streams.get(&id) else {
            return n;
        };
        let h = match dir {
            Direction::ToServer => &s.req,
            Direction::ToClient => &s.resp,
        };
        if h.body.len() < self.cap {
            return 0;
        }
        if s.grpc() || h.grpc.skippable() > 0 {
            h.grpc.skippable().min(n)
        } else {
            n
        }
    }

    fn skipped(&mut self, dir: Direction, id: u32, n: u64) {
        if let Some(s) = self.streams.get_mut(&id) {
            let h = match dir {
                Direction::ToServer => &mut s.req,
                Direction::ToClient => &mut s.resp,
            };
            h.body_len += n;
            h.grpc.skipped(n);
        }
    }

    fn run_done(&mut self, dir: Direction, out: &mut Output) {
        if let Some(r) = self.dirs[dir.index()].run.take() {
            if r.end_stream {
                self.end_half(dir, r.stream, out);
            }
        }
    }

    /// Handle one complete non-DATA frame. `false`: the direction failed.
    fn frame(
        &mut self,
        dir: Direction,
        (ty, flags, sid): (u8, u8, u32),
        payload: &[u8],
        start: u64,
        out: &mut Output,
    ) -> bool {
        let i = dir.index();
        if self.dirs[i].block.is_some() && ty != T_CONT {
            self.fail(dir, out, "http2: frame interleaved with a header block");
            return false;
        }
        match ty {
            T_HEADERS | T_PUSH => {
                let Some(mut p) = unpad(payload, flags, ty == T_HEADERS) else {
                    self.fail(dir, out, "http2: bad padding");
                    return false;
                };
                let mut promised = None;
                if ty == T_PUSH {
                    let Some(id) = p.get(..4) else {
                        self.fail(dir, out, "http2: short PUSH_PROMISE");
                        return false;
                    };
                    promised = Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff);
                    p = &p[4..];
                }
                let mut b = Block {
                    stream: sid,
                    promised,
                    end_stream: ty == T_HEADERS && flags & FL_END_STREAM != 0,
                    start,
                    buf: Vec::new(),
                    overflow: false,
                };
                if flags & FL_END_HEADERS != 0 {
                    self.header_block(dir, &b, p, out);
                } else {
                    b.buf = p.to_vec();
                    self.dirs[i].block = Some(b);
                }
            }
            T_CONT => {
                let Some(mut b) = self.dirs[i].block.take() else {
                    if self.dirs[i].hpack.synced {
                        self.fail(dir, out, "http2: CONTINUATION without a header block");
                        return false;
                    }
                    return true;
                };
                if b.stream != sid {
                    self.fail(dir, out, "http2: CONTINUATION on another stream");
                    return false;
                }
                if b.buf.len() + payload.len() > MAX_BLOCK {
                    b.overflow = true;
                    b.buf = Vec::new();
                } else if !b.overflow {
                    b.buf.extend_from_slice(payload);
                }
                if flags & FL_END_HEADERS != 0 {
                    self.header_block(dir, &b, &b.buf, out);
                } else {
                    self.dirs[i].block = Some(b);
                }
            }
            T_RST => {
                let code = payload
                    .get(..4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(0);
                self.reset(sid, code, out);
            }
            T_SETTINGS if flags & FL_ACK == 0 => {
                // HEADER_TABLE_SIZE only bounds what the peer may use; the
                // encoder announces its size with an HPACK size update.
            }
            _ => {} // PRIORITY, SETTINGS ack, PING, GOAWAY, WINDOW_UPDATE, unknown
        }
        true
    }
}

impl Session for Http2Session {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        let i = dir.index();
        if self.dirs[i].dead {
            return Progress::consumed(data.len());
        }
        let mut pos = 0usize;
        if self.dirs[i].preface {
            let n = data.len().min(PREFACE.len());
            if data[..n] == PREFACE[..n] {
                if n < PREFACE.len() {
                    return Progress::need(0, PREFACE.len());
                }
                pos = PREFACE.len();
                self.dirs[i].first = false;
            } else {
                // Picked up mid-stream: the client's HPACK table is unknown.
                self.dirs[i].hpack.synced = false;
            }
            self.dirs[i].preface = false;
        }
        let mut frames = 0usize;
        loop {
            // DATA payload still arriving.
            if let Some(r) = self.dirs[i].run.as_ref() {
                let (sid, data_left, pad_left) = (r.stream, r.data_left, r.pad_left);
                if data_left > 0 {
                    let skip = self.skippable(dir, sid, data_left);
                    if skip > 0 {
                        self.skipped(dir, sid, skip);
                        let mut total = skip;
                        if let Some(r) = self.dirs[i].run.as_mut() {
                            r.data_left -= skip;
                            if r.data_left == 0 {
                                total += r.pad_left;
                                r.pad_left = 0;
                            }
                        }
                        if self.dirs[i].run.as_ref().is_some_and(|r| r.data_left == 0) {
                            self.run_done(dir, out);
                        }
                        return Progress::skip(pos, total);
                    }
                    let avail = data.len() - pos;
                    if avail == 0 {
                        return Progress::consumed(pos);
                    }
                    let n = (avail as u64).min(data_left) as usize;
                    self.data_bytes(dir, sid, &data[pos..pos + n]);
                    pos += n;
                    if let Some(r) = self.dirs[i].run.as_mut() {
                        r.data_left -= n as u64;
                    }
                    continue;
                }
                if pad_left > 0 {
                    self.run_done(dir, out);
                    return Progress::skip(pos, pad_left);
                }
                self.run_done(dir, out);
                continue;
            }
            if pos >= data.len() {
                return Progress::consumed(pos);
            }
            if frames >= MAX_FRAMES_PER_CALL || out.is_full() {
                return Progress::consumed(pos);
            }
            let rest = &data[pos..];
            let Some((len, ty, flags, sid)) = frame_header(rest) else {
                return Progress::need(pos, 9);
            };
            let strict = !self.dirs[i].hpack.synced || self.dirs[i].first;
            if self.dirs[i].first {
                // A server's first frame is SETTINGS: otherwise we joined mid-stream.
                if dir == Direction::ToClient && !(ty == T_SETTINGS && flags & FL_ACK == 0) {
                    self.dirs[i].hpack.synced = false;
                }
                self.dirs[i].first = false;
            }
            if (strict && !plausible(ty, len, sid))
                || (ty <= T_CONT && !plausible(ty, len, sid) && ty != T_GOAWAY)
            {
                self.fail(dir, out, "http2: implausible frame header: framing lost");
                return Progress::consumed(data.len());
            }
            let start = input.offset(pos);
            frames += 1;
            if ty == T_DATA {
                let padded = flags & FL_PADDED != 0;
                let hl = if padded { 10 } else { 9 };
                if rest.len() < hl {
                    return Progress::need(pos, hl);
                }
                let pad = if padded { u64::from(rest[9]) } else { 0 };
                let body = (len as u64).checked_sub(pad + u64::from(padded));
                let Some(body) = body else {
                    self.fail(dir, out, "http2: bad DATA padding");
                    return Progress::consumed(data.len());
                };
                pos += hl;
                self.dirs[i].run = Some(DataRun {
                    stream: sid,
                    data_left: body,
                    pad_left: pad,
                    end_stream: flags & FL_END_STREAM != 0,
                });
                continue;
            }
            let big = if matches!(ty, T_HEADERS | T_PUSH | T_CONT) {
                MAX_BLOCK
            } else {
                MAX_CONTROL
            };
            if len > big {
                // Skip it unread; a header block lost here desyncs HPACK.
                if matches!(ty, T_HEADERS | T_PUSH | T_CONT) {
                    self.dirs[i].hpack.synced = false;
                    self.dirs[i].block = None;
                }
                return Progress::skip(pos + 9, len as u64);
            }
            if rest.len() < 9 + len {
                return Progress::need(pos, 9 + len);
            }
            let payload = &rest[9..9 + len];
            if !self.frame(dir, (ty, flags, sid), payload, start, out) {
                return Progress::consumed(data.len());
            }
            pos += 9 + len;
        }
    }

    fn gap(&mut self, dir: Direction, _len: u64, out: &mut Output) {
        // Frame boundaries and HPACK state are lost for this direction.
        self.fail(
            dir,
            out,
            "bytes lost: http2 framing lost for this direction",
        );
    }

    /// After an HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2) the upgrade request
    /// is stream 1, complete already: its response arrives here as HTTP/2.
    /// The request itself was reported by the HTTP/1 plugin (as an `http`
    /// entry with status 101), so stream 1's request half carries only the
    /// stream id and an empty body, as tshark shows the stream.
    fn takeover(&mut self, _previous: &str, params: &[(String, String)]) {
        let h2c = params
            .iter()
            .any(|(k, v)| k == "upgrade" && v.eq_ignore_ascii_case("h2c"));
        if h2c {
            self.streams.entry(1).or_default().req.ended = true;
        }
    }

    fn end(&mut self, dir: Direction, out: &mut Output) {
        let i = dir.index();
        self.dirs[i].dead = true;
        self.run_done(dir, out);
        let other_dead = self.dirs[dir.reverse().index()].dead;
        if other_dead {
            let streams = std::mem::take(&mut self.streams);
            for (id, s) in streams {
                self.flush(id, s, out);
            }
        }
    }
}

#[cfg(test)]
mod tests;
