//! WebSocket (RFC 6455) dissector for Remora, written with `remora-sdk`.
//!
//! A flow becomes WebSocket only through a protocol switch: the HTTP/1
//! plugin sees `101 Switching Protocols` with `Upgrade: websocket` and hands
//! the flow over at the first byte after the handshake in each direction.
//! `probe` always says no, so random bytes on any port are never taken for
//! WebSocket.
//!
//! One standalone entry per frame (as tshark counts them): opcode, FIN,
//! mask bit, RSV1 (permessage-deflate), payload length, and the payload
//! unmasked up to the cap (`body-cap`, default 16384) as the body and, for
//! text and close frames, as text. The final frame of a fragmented message
//! also carries the whole message joined (up to the cap) and its length.
//! Payload beyond the cap never crosses the boundary (`skip`).

use remora_sdk::prelude::*;

pub const F_OPCODE: u16 = 0;
pub const F_FIN: u16 = 1;
pub const F_MASKED: u16 = 2;
pub const F_COMPRESSED: u16 = 3;
pub const F_PAYLOAD_LENGTH: u16 = 4;
pub const F_REQUEST_PAYLOAD_LENGTH: u16 = 5;
pub const F_RESPONSE_PAYLOAD_LENGTH: u16 = 6;
pub const F_REQUEST: u16 = 7;
pub const F_RESPONSE: u16 = 8;
pub const F_CLOSE_CODE: u16 = 9;
pub const F_MESSAGE: u16 = 10;
pub const F_MESSAGE_LENGTH: u16 = 11;
pub const F_MESSAGE_OPCODE: u16 = 12;

/// Default for the `body-cap` configuration value (payload bytes kept per frame).
pub const DEFAULT_BODY_CAP: usize = 16 * 1024;
/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask key.
const MAX_HEADER: usize = 14;

pub struct WebSocket;

impl Dissector for WebSocket {
    type Session = WsSession;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("websocket", env!("CARGO_PKG_VERSION"))
            .protocol(
                // No ports: a WebSocket is only ever reached through an Upgrade.
                ProtocolDecl::tcp("WebSocket", "ws").summaries(
                    "{ws_opcode} {ws_request_payload_length} B",
                    "{ws_opcode} {ws_response_payload_length} B",
                ),
            )
            .field(f(
                F_OPCODE,
                "ws_opcode",
                Str,
                true,
                "\"text\", \"binary\", \"close\", \"ping\", \"pong\", \"continuation\"",
            ))
            .field(f(F_FIN, "fin", Boolean, false, "last frame of its message"))
            .field(f(
                F_MASKED,
                "masked",
                Boolean,
                false,
                "payload was masked (clients must mask)",
            ))
            .field(f(
                F_COMPRESSED,
                "compressed",
                Boolean,
                false,
                "RSV1: the message is permessage-deflate compressed",
            ))
            .field(f(
                F_PAYLOAD_LENGTH,
                "payload_length",
                Int,
                false,
                "payload bytes of this frame",
            ))
            .field(f(
                F_REQUEST_PAYLOAD_LENGTH,
                "ws_request_payload_length",
                Int,
                true,
                "payload bytes of a client frame",
            ))
            .field(f(
                F_RESPONSE_PAYLOAD_LENGTH,
                "ws_response_payload_length",
                Int,
                true,
                "payload bytes of a server frame",
            ))
            .field(f(
                F_REQUEST,
                "ws_request",
                Str,
                true,
                "text of a client frame (text, its continuations, close reason), up to the cap",
            ))
            .field(f(
                F_RESPONSE,
                "ws_response",
                Str,
                true,
                "text of a server frame, up to the cap",
            ))
            .field(f(
                F_CLOSE_CODE,
                "close_code",
                Int,
                false,
                "status code of a close frame",
            ))
            .field(f(
                F_MESSAGE,
                "message",
                Str,
                false,
                "final frame of a fragmented text message: the whole message, up to the cap",
            ))
            .field(f(
                F_MESSAGE_LENGTH,
                "message_length",
                Int,
                false,
                "final frame of a fragmented message: payload bytes of all its frames",
            ))
            .field(f(
                F_MESSAGE_OPCODE,
                "message_opcode",
                Str,
                false,
                "continuation frame: the opcode of the message it continues",
            ))
    }

    fn probe(_flow: &FlowInfo, _dir: Direction, _data: &[u8]) -> Probe {
        // Frames have no magic: only an HTTP Upgrade says a flow is WebSocket.
        Probe::No
    }

    fn session(_flow: &FlowInfo) -> WsSession {
        WsSession::with_cap(body_cap(DEFAULT_BODY_CAP))
    }
}

remora_sdk::export_dissector!(WebSocket);

/// Name of an opcode (RFC 6455 §5.2); `None` for reserved ones.
pub fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        0 => "continuation",
        1 => "text",
        2 => "binary",
        8 => "close",
        9 => "ping",
        10 => "pong",
        _ => return None,
    })
}

/// A frame header: what precedes the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes of the header itself (2 to 14).
    pub len: usize,
}

pub enum Parsed {
    Frame(Header),
    /// Not enough bytes yet: at least this many are needed for the header.
    Need(usize),
}

/// Parse a frame header at the start of `d`.
pub fn parse_header(d: &[u8]) -> Parsed {
    let mut c = Cursor::new(d);
    let (Some(b0), Some(b1)) = (c.u8(), c.u8()) else {
        return Parsed::Need(2);
    };
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let len = 2 + ext + if masked { 4 } else { 0 };
    if d.len() < len {
        return Parsed::Need(len);
    }
    let payload_len = match len7 {
        126 => c.u16_be().map(u64::from).unwrap_or(0),
        127 => c.u64_be().unwrap_or(0),
        n => u64::from(n),
    };
    let mask = if masked {
        c.take(4).map(|k| [k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Parsed::Frame(Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode: b0 & 0x0f,
        mask,
        payload_len,
        len,
    })
}

/// A fragmented message in progress in one direction.
#[derive(Default)]
struct Assembly {
    opcode: u8,
    compressed: bool,
    len: u64,
    text: Vec<u8>,
}

#[derive(Default)]
struct WsDir {
    message: Option<Assembly>,
    /// Framing lost (a bad header or a gap): consume the rest unparsed.
    dead: bool,
}

/// One WebSocket connection, both directions.
pub struct WsSession {
    cap: usize,
    txn: u64,
    dirs: [WsDir; 2],
}

impl WsSession {
    /// A session keeping at most `cap` payload bytes per frame.
    pub fn with_cap(cap: usize) -> Self {
        WsSession {
            cap,
            txn: 0,
            dirs: Default::default(),
        }
    }

    fn fail(&mut self, dir: Direction, out: &mut Output, reason: &str) {
        out.error(reason);
        self.dirs[dir.index()].dead = true;
        self.dirs[dir.index()].message = None;
    }

    /// Emit one frame whose kept payload (`kept`, already unmasked) is whole.
    fn frame(&mut self, dir: Direction, h: &Header, start: u64, kept: Vec<u8>, out: &mut Output) {
        let cap = self.cap;
        let d = &mut self.dirs[dir.index()];
        let control = h.opcode >= 8;
        // The message a data frame belongs to: continuations take the opcode
        // (and RSV1) of the frame that began it.
        let (msg_opcode, compressed) = match (h.opcode, &d.message) {
            (0, Some(a)) => (a.opcode, a.compressed),
            _ => (h.opcode, h.rsv1),
        };
        let texty = !compressed && (msg_opcode == 1 || h.opcode == 8);
        let mut joined = None;
        if !control {
            if h.opcode != 0 && !h.fin {
                d.message = Some(Assembly {
                    opcode: h.opcode,
                    compressed: h.rsv1,
                    ..Assembly::default()
                });
            }
            if let Some(a) = d.message.as_mut() {
                a.len = a.len.saturating_add(h.payload_len);
                if a.opcode == 1 && !a.compressed {
                    let room = cap.saturating_sub(a.text.len());
                    a.text.extend_from_slice(&kept[..kept.len().min(room)]);
                }
            }
            if h.fin && h.opcode == 0 {
                joined = d.message.take();
            }
        }
        let txn = self.txn;
        self.txn += 1;
        let mut m = out.standalone(txn, start);
        m.field(F_OPCODE, opcode_name(h.opcode).unwrap_or("reserved"))
            .field(F_FIN, h.fin)
            .field(F_MASKED, h.mask.is_some())
            .field(F_COMPRESSED, compressed)
            .field(F_PAYLOAD_LENGTH, h.payload_len);
        let (len_field, text_field) = match dir {
            Direction::ToServer => (F_REQUEST_PAYLOAD_LENGTH, F_REQUEST),
            Direction::ToClient => (F_RESPONSE_PAYLOAD_LENGTH, F_RESPONSE),
        };
        m.field(len_field, h.payload_len);
        if h.opcode == 0 {
            if let Some(name) = opcode_name(msg_opcode) {
                m.field(F_MESSAGE_OPCODE, name);
            }
        }
        let mut text = &kept[..];
        if h.opcode == 8 && kept.len() >= 2 {
            m.int(
                F_CLOSE_CODE,
                i64::from(u16::from_be_bytes([kept[0], kept[1]])),
            );
            text = &kept[2..];
        }
        if texty && !(h.opcode == 8 && text.is_empty()) {
            m.field(text_field, lossy(text));
        }
        if let Some(a) = joined {
            m.field(F_MESSAGE_LENGTH, a.len);
            if a.opcode == 1 && !a.compressed {
                m.field(F_MESSAGE, lossy(&a.text));
            }
        }
        if !kept.is_empty() {
            m.body(Body {
                truncated: (kept.len() as u64) < h.payload_len,
                original_len: h.payload_len,
                data: kept,
                decoded_from: None,
            });
        }
    }
}

fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        // Invalid bytes are rare: only then the replacing (slower) conversion.
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Reserved opcodes, and control frames that are fragmented or longer than
/// 125 bytes, cannot be framed reliably after them.
fn check(h: &Header) -> Result<(), &'static str> {
    if opcode_name(h.opcode).is_none() {
        return Err("reserved WebSocket opcode");
    }
    if h.opcode >= 8 && (!h.fin || h.payload_len > 125) {
        return Err("bad WebSocket control frame");
    }
    if h.payload_len >> 63 != 0 {
        return Err("WebSocket payload length with the top bit set");
    }
    Ok(())
}

impl Session for WsSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        let mut pos = 0usize;
        loop {
            if self.dirs[dir.index()].dead {
                return Progress::consumed(data.len());
            }
            if pos >= data.len() || out.is_full() {
                return Progress::consumed(pos);
            }
            let h = match parse_header(&data[pos..]) {
                Parsed::Need(n) => return Progress::need(pos, n.min(MAX_HEADER)),
                Parsed::Frame(h) => h,
            };
            if let Err(e) = check(&h) {
                self.fail(dir, out, e);
                return Progress::consumed(data.len());
            }
            let keep = usize::try_from(h.payload_len)
                .unwrap_or(usize::MAX)
                .min(self.cap);
            let avail = data.len() - pos - h.len;
            if avail < keep {
                return Progress::need(pos, h.len + keep);
            }
            let payload = pos + h.len;
            let mut kept = data[payload..payload + keep].to_vec();
            if let Some(k) = h.mask {
                for (i, b) in kept.iter_mut().enumerate() {
                    *b ^= k[i & 3];
                }
            }
            self.frame(dir, &h, input.offset(pos), kept, out);
            pos = payload + keep;
            let rest = h.payload_len - keep as u64;
            if rest > 0 {
                return Progress::skip(pos, rest);
            }
        }
    }

    fn gap(&mut self, dir: Direction, _len: u64, out: &mut Output) {
        // Frame boundaries are lost for this direction.
        self.fail(
            dir,
            out,
            "bytes lost: WebSocket framing lost for this direction",
        );
    }
}
