//! AMQP 0-9-1 dissector for Remora, written with `remora-sdk`.
//!
//! The protocol header (`AMQP\0\0\x09\x01`) is a standalone message of its
//! own. Every method frame is one message named `class.method` in the spec's
//! spelling (`queue.declare-ok`). Synchronous methods are requests, paired
//! with their `-ok` reply on the same channel (from the other side):
//! `txn = channel << 32 | n`, `n` counting requests per channel. Either side
//! may send a request (the server sends `connection.start`,
//! `channel.close`, ...). A request sent with `no-wait`, and asynchronous
//! methods (`basic.publish`, `basic.deliver`, `basic.ack`, `channel.flow`,
//! ...) are standalone. A reply with no outstanding request stands alone.
//!
//! Content-carrying methods (`basic.publish`, `basic.deliver`,
//! `basic.return`, `basic.get-ok`) are held until their content header and
//! body frames are complete; the body size is recorded, at most [`BODY_KEEP`]
//! body bytes are kept and the rest is dropped through `skip`. Heartbeats
//! are not messages. Frames are bounded by [`MAX_FRAME`]; a bad frame is an
//! error and that direction is no longer parsed.

use remora_sdk::prelude::*;
use std::collections::{BTreeMap, VecDeque};

pub const F_METHOD: u16 = 0;
pub const F_CLASS: u16 = 1;
pub const F_CHANNEL: u16 = 2;
pub const F_EXCHANGE: u16 = 3;
pub const F_ROUTING_KEY: u16 = 4;
pub const F_QUEUE: u16 = 5;
pub const F_CONSUMER_TAG: u16 = 6;
pub const F_DELIVERY_TAG: u16 = 7;
pub const F_BODY_SIZE: u16 = 8;
pub const F_SUMMARY: u16 = 9;
pub const F_DIRECTION: u16 = 10;
pub const F_REPLY_CODE: u16 = 11;
pub const F_REPLY_TEXT: u16 = 12;

pub const PORTS: [u16; 2] = [5672, 35672];
/// The 0-9-1 protocol header.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// Largest method / content header frame payload accepted.
pub const MAX_FRAME: usize = 256 * 1024;
/// Body bytes kept per message.
pub const BODY_KEEP: usize = 256;
/// Longest string field sent.
const MAX_TEXT: usize = 256;
/// Requests remembered while waiting for replies.
const MAX_OUTSTANDING: usize = 1024;
/// Messages waiting for content, per direction.
const MAX_PENDING: usize = 64;
const FRAME_END: u8 = 0xCE;

pub struct Amqp;

impl Dissector for Amqp {
    type Session = AmqpSession;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("amqp", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("AMQP", "amqp")
                    .ports(&PORTS)
                    .summaries("{amqp_summary}", "{amqp_summary}"),
            )
            .field(f(
                F_METHOD,
                "amqp_method",
                Str,
                true,
                "class.method (\"basic.publish\", \"queue.declare-ok\", \"protocol-header\")",
            ))
            .field(f(F_CLASS, "amqp_class", Str, true, "class name"))
            .field(f(F_CHANNEL, "amqp_channel", Int, true, "channel number"))
            .field(f(F_EXCHANGE, "amqp_exchange", Str, true, "exchange"))
            .field(f(
                F_ROUTING_KEY,
                "amqp_routing_key",
                Str,
                true,
                "routing key",
            ))
            .field(f(F_QUEUE, "amqp_queue", Str, true, "queue"))
            .field(f(
                F_CONSUMER_TAG,
                "amqp_consumer_tag",
                Str,
                true,
                "consumer tag",
            ))
            .field(f(
                F_DELIVERY_TAG,
                "amqp_delivery_tag",
                Int,
                true,
                "delivery tag",
            ))
            .field(f(
                F_BODY_SIZE,
                "amqp_body_size",
                Int,
                true,
                "content body size (from the content header)",
            ))
            .field(f(F_SUMMARY, "amqp_summary", Str, true, "short description"))
            .field(f(
                F_DIRECTION,
                "amqp_direction",
                Str,
                false,
                "who sent the frame: \"c2s\" or \"s2c\"",
            ))
            .field(f(
                F_REPLY_CODE,
                "amqp_reply_code",
                Int,
                false,
                "reply code of close / return",
            ))
            .field(f(
                F_REPLY_TEXT,
                "amqp_reply_text",
                Str,
                false,
                "reply text of close / return",
            ))
    }

    fn probe(flow: &FlowInfo, _dir: Direction, data: &[u8]) -> Probe {
        let hinted = PORTS.contains(&flow.server_port);
        match probe_bytes(data) {
            Probe::Yes(n) => Probe::Yes(if hinted { n.saturating_add(10) } else { n }),
            p => p,
        }
    }

    fn session(_flow: &FlowInfo) -> AmqpSession {
        AmqpSession::new()
    }
}

remora_sdk::export_dissector!(Amqp);

/// Probe without the port hint: the protocol header, or a well-formed frame.
pub fn probe_bytes(data: &[u8]) -> Probe {
    let Some(&t) = data.first() else {
        return Probe::NeedMore;
    };
    if t == b'A' {
        let n = data.len().min(8);
        if data[..n.min(5)] != PROTOCOL_HEADER[..n.min(5)] {
            return Probe::No;
        }
        return if n < 8 {
            Probe::NeedMore
        } else {
            Probe::Yes(90)
        };
    }
    if !matches!(t, 1 | 2 | 3 | 8) {
        return Probe::No;
    }
    if data.len() < 7 {
        return Probe::NeedMore;
    }
    let chan = u16::from_be_bytes([data[1], data[2]]);
    let size = u32::from_be_bytes([data[3], data[4], data[5], data[6]]) as usize;
    if size > MAX_FRAME && t != 3 {
        return Probe::No;
    }
    match t {
        1 => {
            if size < 4 {
                return Probe::No;
            }
            if data.len() < 11 {
                return Probe::NeedMore;
            }
            let class = u16::from_be_bytes([data[7], data[8]]);
            let method = u16::from_be_bytes([data[9], data[10]]);
            if method_name(class, method).is_none() {
                return Probe::No;
            }
            match data.get(7 + size) {
                Some(&FRAME_END) => Probe::Yes(80),
                Some(_) => Probe::No,
                None => Probe::Yes(60),
            }
        }
        8 => {
            if chan != 0 || size != 0 {
                return Probe::No;
            }
            match data.get(7) {
                Some(&FRAME_END) => Probe::Yes(40),
                Some(_) => Probe::No,
                None => Probe::NeedMore,
            }
        }
        _ => match data.get(7 + size) {
            Some(&FRAME_END) => Probe::Yes(40),
            Some(_) => Probe::No,
            None if size <= 4096 => Probe::NeedMore,
            None => Probe::No,
        },
    }
}

// ------------------------------------------------------------ method table

/// Class name.
pub fn class_name(class: u16) -> Option<&'static str> {
    Some(match class {
        10 => "connection",
        20 => "channel",
        40 => "exchange",
        50 => "queue",
        60 => "basic",
        85 => "confirm",
        90 => "tx",
        _ => return None,
    })
}

/// `class.method` of every AMQP 0-9-1 method (RabbitMQ extensions included).
pub fn method_name(class: u16, method: u16) -> Option<&'static str> {
    Some(match (class, method) {
        (10, 10) => "connection.start",
        (10, 11) => "connection.start-ok",
        (10, 20) => "connection.secure",
        (10, 21) => "connection.secure-ok",
        (10, 30) => "connection.tune",
        (10, 31) => "connection.tune-ok",
        (10, 40) => "connection.open",
        (10, 41) => "connection.open-ok",
        (10, 50) => "connection.close",
        (10, 51) => "connection.close-ok",
        (10, 60) => "connection.blocked",
        (10, 61) => "connection.unblocked",
        (10, 70) => "connection.update-secret",
        (10, 71) => "connection.update-secret-ok",
        (20, 10) => "channel.open",
        (20, 11) => "channel.open-ok",
        (20, 20) => "channel.flow",
        (20, 21) => "channel.flow-ok",
        (20, 40) => "channel.close",
        (20, 41) => "channel.close-ok",
        (40, 10) => "exchange.declare",
        (40, 11) => "exchange.declare-ok",
        (40, 20) => "exchange.delete",
        (40, 21) => "exchange.delete-ok",
        (40, 30) => "exchange.bind",
        (40, 31) => "exchange.bind-ok",
        (40, 40) => "exchange.unbind",
        (40, 51) => "exchange.unbind-ok",
        (50, 10) => "queue.declare",
        (50, 11) => "queue.declare-ok",
        (50, 20) => "queue.bind",
        (50, 21) => "queue.bind-ok",
        (50, 30) => "queue.purge",
        (50, 31) => "queue.purge-ok",
        (50, 40) => "queue.delete",
        (50, 41) => "queue.delete-ok",
        (50, 50) => "queue.unbind",
        (50, 51) => "queue.unbind-ok",
        (60, 10) => "basic.qos",
        (60, 11) => "basic.qos-ok",
        (60, 20) => "basic.consume",
        (60, 21) => "basic.consume-ok",
        (60, 30) => "basic.cancel",
        (60, 31) => "basic.cancel-ok",
        (60, 40) => "basic.publish",
        (60, 50) => "basic.return",
        (60, 60) => "basic.deliver",
        (60, 70) => "basic.get",
        (60, 71) => "basic.get-ok",
        (60, 72) => "basic.get-empty",
        (60, 80) => "basic.ack",
        (60, 90) => "basic.reject",
        (60, 100) => "basic.recover-async",
        (60, 110) => "basic.recover",
        (60, 111) => "basic.recover-ok",
        (60, 120) => "basic.nack",
        (85, 10) => "confirm.select",
        (85, 11) => "confirm.select-ok",
        (90, 10) => "tx.select",
        (90, 11) => "tx.select-ok",
        (90, 20) => "tx.commit",
        (90, 21) => "tx.commit-ok",
        (90, 30) => "tx.rollback",
        (90, 31) => "tx.rollback-ok",
        _ => return None,
    })
}

/// Replies of a synchronous request method; `None` for everything else.
pub fn replies(class: u16, method: u16) -> Option<&'static [u16]> {
    Some(match (class, method) {
        (10, 10) => &[11],
        (10, 20) => &[21],
        (10, 30) => &[31],
        (10, 40) => &[41],
        (10, 50) => &[51],
        (10, 70) => &[71],
        (20, 10) => &[11],
        (20, 40) => &[41],
        (40, 10) => &[11],
        (40, 20) => &[21],
        (40, 30) => &[31],
        (40, 40) => &[51],
        (50, 10) => &[11],
        (50, 20) => &[21],
        (50, 30) => &[31],
        (50, 40) => &[41],
        (50, 50) => &[51],
        (60, 10) => &[11],
        (60, 20) => &[21],
        (60, 30) => &[31],
        (60, 70) => &[71, 72],
        (60, 110) => &[111],
        (85, 10) => &[11],
        (90, 10) => &[11],
        (90, 20) => &[21],
        (90, 30) => &[31],
        _ => return None,
    })
}

fn is_reply(class: u16, method: u16) -> bool {
    matches!(
        (class, method),
        (10, 11 | 21 | 31 | 41 | 51 | 71)
            | (20, 11 | 41)
            | (40, 11 | 21 | 31 | 51)
            | (50, 11 | 21 | 31 | 41 | 51)
            | (60, 11 | 21 | 31 | 71 | 72 | 111)
            | (85, 11)
            | (90, 11 | 21 | 31)
    )
}

fn carries_content(class: u16, method: u16) -> bool {
    matches!((class, method), (60, 40 | 50 | 60 | 71))
}

// ------------------------------------------------------------ arguments

/// Bounds-checked reader over method arguments.
struct Args<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Args<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.p.checked_add(n)?;
        let s = self.b.get(self.p..end)?;
        self.p = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_be_bytes([s[0], s[1]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(u64::from_be_bytes(a))
    }
    fn short(&mut self) -> Option<String> {
        let n = self.u8()? as usize;
        Some(text(self.take(n)?))
    }
}

fn text(b: &[u8]) -> String {
    let b = &b[..b.len().min(MAX_TEXT)];
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        // Invalid bytes are rare: only then the replacing (slower) conversion.
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// What the arguments of a method say.
#[derive(Default)]
struct Parsed {
    exchange: Option<String>,
    routing_key: Option<String>,
    queue: Option<String>,
    consumer_tag: Option<String>,
    delivery_tag: Option<u64>,
    reply_code: Option<u16>,
    reply_text: Option<String>,
    no_wait: bool,
}

/// Parse the arguments (best effort: what is truncated stays `None`).
fn parse_args(class: u16, method: u16, b: &[u8]) -> Parsed {
    let mut p = Parsed::default();
    let _ = parse_args_into(class, method, &mut Args { b, p: 0 }, &mut p);
    p
}

fn bit(a: &mut Args<'_>, n: u8) -> Option<bool> {
    Some(a.u8()? & (1 << n) != 0)
}

fn parse_args_into(class: u16, method: u16, a: &mut Args<'_>, p: &mut Parsed) -> Option<()> {
    match (class, method) {
        (10, 50) | (20, 40) | (60, 50) => {
            p.reply_code = Some(a.u16()?);
            p.reply_text = Some(a.short()?);
            if (class, method) == (60, 50) {
                p.exchange = Some(a.short()?);
                p.routing_key = Some(a.short()?);
            }
        }
        (40, 10) => {
            a.u16()?;
            p.exchange = Some(a.short()?);
            a.short()?; // type
            p.no_wait = bit(a, 4)?;
        }
        (40, 20) => {
            a.u16()?;
            p.exchange = Some(a.short()?);
            p.no_wait = bit(a, 1)?;
        }
        (40, 30) | (40, 40) => {
            a.u16()?;
            p.exchange = Some(a.short()?); // destination
            a.short()?; // source
            p.routing_key = Some(a.short()?);
            p.no_wait = bit(a, 0)?;
        }
        (50, 10) => {
            a.u16()?;
            p.queue = Some(a.short()?);
            p.no_wait = bit(a, 4)?;
        }
        (50, 11) => p.queue = Some(a.short()?),
        (50, 20) | (50, 50) => {
            a.u16()?;
            p.queue = Some(a.short()?);
            p.exchange = Some(a.short()?);
            p.routing_key = Some(a.short()?);
            if method == 20 {
                p.no_wait = bit(a, 0)?;
            }
        }
        (50, 30) => {
            a.u16()?;
            p.queue = Some(a.short()?);
            p.no_wait = bit(a, 0)?;
        }
        (50, 40) => {
            a.u16()?;
            p.queue = Some(a.short()?);
            p.no_wait = bit(a, 2)?;
        }
        (60, 20) => {
            a.u16()?;
            p.queue = Some(a.short()?);
            p.consumer_tag = Some(a.short()?);
            p.no_wait = bit(a, 3)?;
        }
        (60, 21) | (60, 31) => p.consumer_tag = Some(a.short()?),
        (60, 30) => {
            p.consumer_tag = Some(a.short()?);
            p.no_wait = bit(a, 0)?;
        }
        (60, 40) => {
            a.u16()?;
            p.exchange = Some(a.short()?);
            p.routing_key = Some(a.short()?);
        }
        (60, 60) => {
            p.consumer_tag = Some(a.short()?);
            p.delivery_tag = Some(a.u64()?);
            a.u8()?;
            p.exchange = Some(a.short()?);
            p.routing_key = Some(a.short()?);
        }
        (60, 70) => {
            a.u16()?;
            p.queue = Some(a.short()?);
        }
        (60, 71) => {
            p.delivery_tag = Some(a.u64()?);
            a.u8()?;
            p.exchange = Some(a.short()?);
            p.routing_key = Some(a.short()?);
        }
        (60, 80) | (60, 90) | (60, 120) => p.delivery_tag = Some(a.u64()?),
        _ => {}
    }
    Some(())
}

// ------------------------------------------------------------ session

/// A request waiting for its reply.
struct Outstanding {
    channel: u16,
    txn: u64,
    /// Direction the request was sent in.
    dir: Direction,
    class: u16,
    replies: &'static [u16],
}

/// A content-carrying message waiting for its header and body.
struct Pending {
    channel: u16,
    msg: Message,
    body_size: Option<u64>,
    got: u64,
    body: Vec<u8>,
}

impl Pending {
    /// Body bytes still to keep: at most `BODY_KEEP`, and never more than the
    /// content header declared, even when body frames carry more.
    fn keep_room(&self) -> usize {
        let declared = self.body_size.unwrap_or(0).min(BODY_KEEP as u64) as usize;
        declared.saturating_sub(self.body.len())
    }
}

/// One AMQP connection.
pub struct AmqpSession {
    /// Per direction: framing lost, consume everything.
    dead: [bool; 2],
    /// Requests counted per channel.
    counters: BTreeMap<u16, u32>,
    outstanding: VecDeque<Outstanding>,
    /// Per direction, oldest first.
    pending: [Vec<Pending>; 2],
}

impl Default for AmqpSession {
    fn default() -> Self {
        Self::new()
    }
}

fn owned(s: impl Into<String>) -> Value {
    Value::Str(Text::Owned(s.into()))
}

fn dir_name(dir: Direction) -> &'static str {
    match dir {
        Direction::ToServer => "c2s",
        Direction::ToClient => "s2c",
    }
}

impl AmqpSession {
    pub fn new() -> Self {
        AmqpSession {
            dead: [false; 2],
            counters: BTreeMap::new(),
            outstanding: VecDeque::new(),
            pending: [Vec::new(), Vec::new()],
        }
    }

    fn emit_pending(p: Pending, out: &mut Output) {
        let mut msg = p.msg;
        if let Some(size) = p.body_size {
            msg.fields.push(Field {
                id: F_BODY_SIZE,
                value: Value::Int(size.min(i64::MAX as u64) as i64),
            });
            if size > 0 {
                let truncated = (p.body.len() as u64) < size;
                msg.body = Some(Body {
                    data: p.body,
                    original_len: size,
                    truncated,
                    decoded_from: None,
                });
            }
        }
        out.push(msg);
    }

    /// Emit what waits for content on `channel` in `dir`.
    fn flush_channel(&mut self, dir: Direction, channel: u16, out: &mut Output) {
        let list = &mut self.pending[dir.index()];
        if let Some(i) = list.iter().position(|p| p.channel == channel) {
            let p = list.remove(i);
            Self::emit_pending(p, out);
        }
    }

    fn flush_all(&mut self, dir: Direction, out: &mut Output) {
        for p in std::mem::take(&mut self.pending[dir.index()]) {
            Self::emit_pending(p, out);
        }
    }

    /// Emit the pending message on `channel` if its content is complete.
    fn check_complete(&mut self, dir: Direction, channel: u16, out: &mut Output) {
        let list = &mut self.pending[dir.index()];
        if let Some(i) = list.iter().position(|p| p.channel == channel) {
            if list[i].body_size.is_some_and(|s| list[i].got >= s) {
                let p = list.remove(i);
                Self::emit_pending(p, out);
            }
        }
    }

    fn method(
        &mut self,
        dir: Direction,
        channel: u16,
        payload: &[u8],
        start: u64,
        out: &mut Output,
    ) -> Result<(), &'static str> {
        if payload.len() < 4 {
            return Err("method frame shorter than its ids");
        }
        let class = u16::from_be_bytes([payload[0], payload[1]]);
        let method = u16::from_be_bytes([payload[2], payload[3]]);
        self.flush_channel(dir, channel, out);
        let name = match method_name(class, method) {
            Some(n) => n.to_owned(),
            None => format!("{class}.{method}"),
        };
        let class_s = match class_name(class) {
            Some(c) => c.to_owned(),
            None => class.to_string(),
        };
        let p = parse_args(class, method, &payload[4..]);

        // Kind and txn.
        let (kind, txn) = if let Some(r) = replies(class, method).filter(|_| !p.no_wait) {
            let n = self.counters.entry(channel).or_insert(0);
            let txn = (u64::from(channel) << 32) | u64::from(*n);
            *n = n.wrapping_add(1);
            if self.outstanding.len() >= MAX_OUTSTANDING {
                self.outstanding.pop_front();
            }
            self.outstanding.push_back(Outstanding {
                channel,
                txn,
                dir,
                class,
                replies: r,
            });
            (MessageKind::Request, txn)
        } else if is_reply(class, method) {
            let found = self.outstanding.iter().position(|o| {
                o.channel == channel
                    && o.dir != dir
                    && o.class == class
                    && o.replies.contains(&method)
            });
            match found.and_then(|i| self.outstanding.remove(i)) {
                Some(o) => (MessageKind::Response, o.txn),
                None => (MessageKind::Standalone, u64::from(channel) << 32),
            }
        } else {
            (MessageKind::Standalone, u64::from(channel) << 32)
        };

        let mut summary = name.clone();
        if channel != 0 {
            summary.push_str(&format!(" ch={channel}"));
        }
        let mut fields = vec![
            Field {
                id: F_METHOD,
                value: owned(name),
            },
            Field {
                id: F_CLASS,
                value: owned(class_s),
            },
            Field {
                id: F_CHANNEL,
                value: Value::Int(channel.into()),
            },
            Field {
                id: F_DIRECTION,
                value: owned(dir_name(dir)),
            },
        ];
        let mut add = |id: u16, label: &str, v: Option<String>, fields: &mut Vec<Field>| {
            if let Some(v) = v {
                summary.push_str(&format!(" {label}={v}"));
                fields.push(Field {
                    id,
                    value: owned(v),
                });
            }
        };
        add(F_EXCHANGE, "exchange", p.exchange, &mut fields);
        add(F_ROUTING_KEY, "key", p.routing_key, &mut fields);
        add(F_QUEUE, "queue", p.queue, &mut fields);
        add(F_CONSUMER_TAG, "tag", p.consumer_tag, &mut fields);
        if let Some(t) = p.delivery_tag {
            fields.push(Field {
                id: F_DELIVERY_TAG,
                value: Value::Int(t.min(i64::MAX as u64) as i64),
            });
        }
        if let Some(c) = p.reply_code {
            summary.push_str(&format!(" {c}"));
            fields.push(Field {
                id: F_REPLY_CODE,
                value: Value::Int(c.into()),
            });
        }
        if let Some(t) = p.reply_text {
            summary.push_str(&format!(" {t}"));
            fields.push(Field {
                id: F_REPLY_TEXT,
                value: owned(t),
            });
        }
        let mut end = summary.len().min(MAX_TEXT);
        while !summary.is_char_boundary(end) {
            end -= 1;
        }
        summary.truncate(end);
        fields.push(Field {
            id: F_SUMMARY,
            value: owned(summary),
        });
        let msg = Message {
            kind,
            txn,
            start,
            fields,
            body: None,
        };
        if carries_content(class, method) {
            let list = &mut self.pending[dir.index()];
            if list.len() >= MAX_PENDING {
                let p = list.remove(0);
                Self::emit_pending(p, out);
            }
            self.pending[dir.index()].push(Pending {
                channel,
                msg,
                body_size: None,
                got: 0,
                body: Vec::new(),
            });
        } else {
            out.push(msg);
        }
        Ok(())
    }

    fn content_header(&mut self, dir: Direction, channel: u16, payload: &[u8], out: &mut Output) {
        if payload.len() < 12 {
            return;
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&payload[4..12]);
        let size = u64::from_be_bytes(a);
        let list = &mut self.pending[dir.index()];
        if let Some(p) = list
            .iter_mut()
            .find(|p| p.channel == channel && p.body_size.is_none())
        {
            p.body_size = Some(size);
            self.check_complete(dir, channel, out);
        }
    }

    /// A body frame of `len` bytes on `channel`, of which `kept` are here.
    fn body(&mut self, dir: Direction, channel: u16, len: u64, kept: &[u8], out: &mut Output) {
        let list = &mut self.pending[dir.index()];
        if let Some(p) = list
            .iter_mut()
            .find(|p| p.channel == channel && p.body_size.is_some())
        {
            let room = p.keep_room();
            p.body.extend_from_slice(&kept[..kept.len().min(room)]);
            p.got = p.got.saturating_add(len);
            self.check_complete(dir, channel, out);
        }
    }

    /// Body bytes still kept for the message waiting on `channel`.
    fn body_room(&self, dir: Direction, channel: u16) -> usize {
        self.pending[dir.index()]
            .iter()
            .find(|p| p.channel == channel && p.body_size.is_some())
            .map_or(0, Pending::keep_room)
    }

    fn fail(&mut self, dir: Direction, reason: &str, out: &mut Output) {
        self.flush_all(dir, out);
        out.error(reason);
        self.dead[dir.index()] = true;
    }
}

impl Session for AmqpSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        let i = dir.index();
        if self.dead[i] {
            return Progress::consumed(data.len());
        }
        let mut pos = 0usize;
        loop {
            let rest = &data[pos..];
            if rest.is_empty() {
                return Progress::need(pos, 1);
            }
            if out.is_full() {
                return Progress::consumed(pos);
            }
            if rest[0] == b'A' {
                if rest.len() < 8 {
                    return Progress::need(pos, 8);
                }
                if &rest[..4] != b"AMQP" {
                    self.fail(dir, "bad frame type", out);
                    return Progress::consumed(data.len());
                }
                let version = format!("{}-{}-{}", rest[5], rest[6], rest[7]);
                let summary = format!("AMQP {version}");
                out.standalone(0, input.offset(pos))
                    .field(F_METHOD, "protocol-header")
                    .field(F_DIRECTION, dir_name(dir))
                    .field(F_SUMMARY, summary);
                pos += 8;
                continue;
            }
            if rest.len() < 7 {
                return Progress::need(pos, 7);
            }
            let t = rest[0];
            let channel = u16::from_be_bytes([rest[1], rest[2]]);
            let size = u32::from_be_bytes([rest[3], rest[4], rest[5], rest[6]]) as usize;
            match t {
                3 => {
                    // Wait for the part of the frame that is kept, so the
                    // kept bytes do not depend on how the stream was cut.
                    let want = size.min(self.body_room(dir, channel));
                    if rest.len() < 7 + want {
                        return Progress::need(pos, 7 + want);
                    }
                    let avail = (rest.len() - 7).min(size);
                    let kept = &rest[7..7 + avail];
                    self.body(dir, channel, size as u64, kept, out);
                    if rest.len() > 7 + size {
                        if rest[7 + size] != FRAME_END {
                            self.fail(dir, "missing frame end octet", out);
                            return Progress::consumed(data.len());
                        }
                        pos += 8 + size;
                        continue;
                    }
                    // The rest of the body (and the end octet) is dropped.
                    return Progress::skip(pos + 7 + avail, (size - avail + 1) as u64);
                }
                1 | 2 | 8 => {
                    if size > MAX_FRAME {
                        self.fail(dir, "frame too large", out);
                        return Progress::consumed(data.len());
                    }
                    if rest.len() < 8 + size {
                        return Progress::need(pos, 8 + size);
                    }
                    if rest[7 + size] != FRAME_END {
                        self.fail(dir, "missing frame end octet", out);
                        return Progress::consumed(data.len());
                    }
                    let payload = &rest[7..7 + size];
                    match t {
                        1 => {
                            if let Err(e) =
                                self.method(dir, channel, payload, input.offset(pos), out)
                            {
                                self.fail(dir, e, out);
                                return Progress::consumed(data.len());
                            }
                        }
                        2 => self.content_header(dir, channel, payload, out),
                        _ => {}
                    }
                    pos += 8 + size;
                }
                _ => {
                    self.fail(dir, "bad frame type", out);
                    return Progress::consumed(data.len());
                }
            }
        }
    }

    fn gap(&mut self, dir: Direction, _len: u64, out: &mut Output) {
        self.fail(dir, "gap: bytes lost, AMQP framing lost", out);
    }

    fn end(&mut self, dir: Direction, out: &mut Output) {
        self.flush_all(dir, out);
    }
}
