//! MQTT (3.1, 3.1.1 and 5.0) dissector for Remora, written with `remora-sdk`.
//!
//! Every control packet is one message. The fixed header (type, flags,
//! remaining length: a varint of at most 4 bytes) frames it; at most
//! [`KEEP`] bytes of the rest are waited for and parsed, the remainder (a
//! PUBLISH payload, a large CONNECT will) is dropped through `skip`, so
//! payload never crosses the boundary. The protocol level comes from CONNECT
//! and is kept per session: version 5 adds properties to most packets.
//!
//! Pairing (`txn`): CONNECT↔CONNACK, SUBSCRIBE↔SUBACK, UNSUBSCRIBE↔UNSUBACK,
//! PUBLISH QoS1↔PUBACK, PUBLISH QoS2↔PUBREC and PUBREL↔PUBCOMP by packet id,
//! PINGREQ↔PINGRESP in order. The sender of the first packet of an exchange
//! emits the request: a server-to-client PUBLISH QoS1 is a request answered
//! by the client's PUBACK. Packet ids are looked up in a per-session table
//! keyed by (exchange kind, initiating direction, id), and every request gets
//! a fresh txn from one counter, so ids from the two directions (and reused
//! ids) never collide. PUBLISH QoS0, DISCONNECT and AUTH are standalone.
//! A response without its request gets a fresh txn (an incomplete entry).

use remora_sdk::prelude::*;
use std::collections::{HashMap, VecDeque};

pub const F_TYPE: u16 = 0;
pub const F_TOPIC: u16 = 1;
pub const F_QOS: u16 = 2;
pub const F_CLIENT_ID: u16 = 3;
pub const F_PACKET_ID: u16 = 4;
pub const F_PAYLOAD_SIZE: u16 = 5;
pub const F_REASON_CODES: u16 = 6;
pub const F_VERSION: u16 = 7;
pub const F_RETAIN: u16 = 8;
pub const F_DUP: u16 = 9;
pub const F_DIRECTION: u16 = 10;

pub const PORTS: [u16; 2] = [1883, 11883];

/// Bytes of a packet after the fixed header that are kept and parsed.
pub const KEEP: usize = 8 * 1024;
/// Largest remaining length MQTT allows (4-byte varint).
pub const MAX_REMAINING: usize = 268_435_455;
/// Reason codes reported per packet.
const MAX_REASON_CODES: usize = 64;
/// Outstanding packet ids / pings remembered per session.
const MAX_OUTSTANDING: usize = 4096;

pub const TYPE_NAMES: [&str; 16] = [
    "RESERVED",
    "CONNECT",
    "CONNACK",
    "PUBLISH",
    "PUBACK",
    "PUBREC",
    "PUBREL",
    "PUBCOMP",
    "SUBSCRIBE",
    "SUBACK",
    "UNSUBSCRIBE",
    "UNSUBACK",
    "PINGREQ",
    "PINGRESP",
    "DISCONNECT",
    "AUTH",
];

pub struct Mqtt;

impl Dissector for Mqtt {
    type Session = MqttSession;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("mqtt", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("MQTT", "mqtt")
                    .ports(&PORTS)
                    .summaries("{mqtt_type}", "{mqtt_type}"),
            )
            .field(f(
                F_TYPE,
                "mqtt_type",
                Str,
                true,
                "control packet type (\"CONNECT\", \"PUBLISH\", ...)",
            ))
            .field(f(
                F_TOPIC,
                "mqtt_topic",
                Str,
                true,
                "PUBLISH topic, or the first topic filter of (UN)SUBSCRIBE",
            ))
            .field(f(F_QOS, "mqtt_qos", Int, true, "PUBLISH QoS (0, 1, 2)"))
            .field(f(
                F_CLIENT_ID,
                "mqtt_client_id",
                Str,
                true,
                "CONNECT client identifier",
            ))
            .field(f(
                F_PACKET_ID,
                "mqtt_packet_id",
                Int,
                true,
                "packet identifier",
            ))
            .field(f(
                F_PAYLOAD_SIZE,
                "mqtt_payload_size",
                Int,
                true,
                "PUBLISH application payload bytes",
            ))
            .field(f(
                F_REASON_CODES,
                "mqtt_reason_codes",
                IntList,
                true,
                "return / reason codes (CONNACK, SUBACK, UNSUBACK, PUBACK, ...)",
            ))
            .field(f(
                F_VERSION,
                "mqtt_version",
                Int,
                false,
                "protocol level (3: 3.1, 4: 3.1.1, 5: 5.0)",
            ))
            .field(f(
                F_RETAIN,
                "mqtt_retain",
                Boolean,
                true,
                "PUBLISH retain flag",
            ))
            .field(f(
                F_DUP,
                "mqtt_dup",
                Boolean,
                false,
                "PUBLISH duplicate flag",
            ))
            .field(f(
                F_DIRECTION,
                "mqtt_direction",
                Str,
                false,
                "\"c2s\" or \"s2c\": who sent the packet",
            ))
    }

    fn probe(flow: &FlowInfo, dir: Direction, data: &[u8]) -> Probe {
        let hinted = PORTS.contains(&flow.server_port);
        probe_bytes(dir, data, hinted)
    }

    fn session(_flow: &FlowInfo) -> MqttSession {
        MqttSession::new()
    }
}

remora_sdk::export_dissector!(Mqtt);

/// Fixed header: `Ok(Some((type, flags, remaining, header_len)))`,
/// `Ok(None)` when more bytes are needed, `Err` when malformed.
pub fn fixed_header(data: &[u8]) -> Result<Option<(u8, u8, usize, usize)>, &'static str> {
    let Some(&b0) = data.first() else {
        return Ok(None);
    };
    let mut rem = 0usize;
    for i in 0..4 {
        let Some(&b) = data.get(1 + i) else {
            return Ok(None);
        };
        rem |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((b0 >> 4, b0 & 0x0f, rem, 2 + i)));
        }
    }
    Err("MQTT remaining length longer than 4 bytes")
}

/// Whether the fixed-header flags are the ones the type requires.
fn flags_valid(ty: u8, flags: u8) -> bool {
    match ty {
        3 => (flags >> 1) & 3 != 3,
        6 | 8 | 10 => flags == 2,
        1..=15 => flags == 0,
        _ => false,
    }
}

/// Probe: a CONNECT with protocol name "MQTT" / "MQIsdp" is certain; with
/// the port hint, any well-formed client packet is likely.
pub fn probe_bytes(dir: Direction, data: &[u8], hinted: bool) -> Probe {
    let (ty, flags, rem, hl) = match fixed_header(data) {
        Ok(Some(h)) => h,
        Ok(None) => {
            return if data.is_empty() || data[0] >> 4 != 0 {
                Probe::NeedMore
            } else {
                Probe::No
            }
        }
        Err(_) => return Probe::No,
    };
    if !flags_valid(ty, flags) {
        return Probe::No;
    }
    if dir == Direction::ToClient {
        return if hinted { Probe::NeedMore } else { Probe::No };
    }
    if ty == 1 {
        let body = &data[hl..];
        let names: [&[u8]; 2] = [b"\x00\x04MQTT", b"\x00\x06MQIsdp"];
        for name in names {
            let n = body.len().min(name.len());
            if body[..n] == name[..n] {
                if n < name.len() {
                    return Probe::NeedMore;
                }
                return Probe::Yes(if hinted { 80 } else { 60 });
            }
        }
        return Probe::No;
    }
    // Mid-stream: only trusted on the MQTT ports.
    let fixed_len_ok = match ty {
        12 | 14 => rem == 0 || ty == 14,
        4..=7 => rem >= 2,
        _ => true,
    };
    if hinted && fixed_len_ok && rem <= MAX_REMAINING {
        Probe::Yes(25)
    } else {
        Probe::No
    }
}

// ---------------------------------------------------------------- parsing

/// Reads the kept bytes of one packet; every read is checked.
struct Rd<'a> {
    d: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.d.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.d.get(self.pos..self.pos.checked_add(2)?)?;
        self.pos += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn varint(&mut self) -> Option<usize> {
        let mut v = 0usize;
        for i in 0..4 {
            let b = self.u8()?;
            v |= ((b & 0x7f) as usize) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// A length-prefixed string: its range in `d`.
    fn string(&mut self) -> Option<std::ops::Range<usize>> {
        let n = self.u16()? as usize;
        let start = self.pos;
        let end = start.checked_add(n)?;
        if end > self.d.len() {
            return None;
        }
        self.pos = end;
        Some(start..end)
    }
    /// v5 properties: skipped.
    fn props(&mut self) -> Option<()> {
        let n = self.varint()?;
        let end = self.pos.checked_add(n)?;
        if end > self.d.len() {
            return None;
        }
        self.pos = end;
        Some(())
    }
    fn left(&self) -> usize {
        self.d.len().saturating_sub(self.pos)
    }
}

/// What one packet says, ranges relative to the kept bytes (after the fixed
/// header).
#[derive(Default, Debug)]
struct Parsed {
    version: Option<u8>,
    client_id: Option<std::ops::Range<usize>>,
    topic: Option<std::ops::Range<usize>>,
    packet_id: Option<u16>,
    reason_codes: Vec<u8>,
    /// Bytes of the variable header (PUBLISH: payload starts after).
    var_header: Option<usize>,
}

fn parse(ty: u8, flags: u8, d: &[u8], rem: usize, version: u8) -> Parsed {
    let mut p = Parsed::default();
    let mut r = Rd { d, pos: 0 };
    let v5 = version >= 5;
    let _ = (|| -> Option<()> {
        match ty {
            1 => {
                r.string()?;
                let level = r.u8()?;
                p.version = Some(level);
                let _flags = r.u8()?;
                r.u16()?;
                if level >= 5 {
                    r.props()?;
                }
                p.client_id = Some(r.string()?);
            }
            2 => {
                r.u8()?;
                p.reason_codes.push(r.u8()?);
            }
            3 => {
                p.topic = Some(r.string()?);
                if (flags >> 1) & 3 > 0 {
                    p.packet_id = Some(r.u16()?);
                }
                if v5 {
                    r.props()?;
                }
                p.var_header = Some(r.pos);
            }
            4..=7 => {
                p.packet_id = Some(r.u16()?);
                if v5 && rem > 2 {
                    p.reason_codes.push(r.u8()?);
                }
            }
            8 | 10 => {
                p.packet_id = Some(r.u16()?);
                if v5 {
                    r.props()?;
                }
                p.topic = Some(r.string()?);
            }
            9 | 11 => {
                p.packet_id = Some(r.u16()?);
                if ty == 11 && !v5 {
                    return Some(());
                }
                if v5 {
                    r.props()?;
                }
                while r.left() > 0 && p.reason_codes.len() < MAX_REASON_CODES {
                    p.reason_codes.push(r.u8()?);
                }
            }
            14 | 15 if v5 && rem > 0 => {
                p.reason_codes.push(r.u8()?);
            }
            _ => {}
        }
        Some(())
    })();
    p
}

// ---------------------------------------------------------------- session

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Exchange {
    Subscribe,
    Unsubscribe,
    Publish,
    Release,
}

/// One MQTT connection.
pub struct MqttSession {
    version: u8,
    next_txn: u64,
    /// (exchange, initiator is the client, packet id) -> txn.
    pending: HashMap<(Exchange, bool, u16), u64>,
    connects: VecDeque<u64>,
    pings: VecDeque<u64>,
    /// Per direction: framing lost, consume everything.
    opaque: [bool; 2],
}

impl Default for MqttSession {
    fn default() -> Self {
        Self::new()
    }
}

enum Role {
    Request(u64),
    Response(u64),
    Standalone,
}

impl MqttSession {
    pub fn new() -> Self {
        MqttSession {
            version: 4,
            next_txn: 0,
            pending: HashMap::new(),
            connects: VecDeque::new(),
            pings: VecDeque::new(),
            opaque: [false; 2],
        }
    }

    fn fresh(&mut self) -> u64 {
        let t = self.next_txn;
        self.next_txn += 1;
        t
    }

    fn open(&mut self, key: (Exchange, bool, u16)) -> Role {
        if self.pending.len() >= MAX_OUTSTANDING {
            self.pending.clear();
        }
        let t = self.fresh();
        self.pending.insert(key, t);
        Role::Request(t)
    }

    fn close(&mut self, key: (Exchange, bool, u16)) -> Role {
        match self.pending.remove(&key) {
            Some(t) => Role::Response(t),
            None => Role::Response(self.fresh()),
        }
    }

    fn queue_open(q: &mut VecDeque<u64>, t: u64) -> Role {
        if q.len() >= MAX_OUTSTANDING {
            q.pop_front();
        }
        q.push_back(t);
        Role::Request(t)
    }

    fn role(&mut self, dir: Direction, ty: u8, qos: u8, pid: Option<u16>) -> Role {
        let from_client = dir == Direction::ToServer;
        let id = pid.unwrap_or(0);
        match ty {
            1 => {
                let t = self.fresh();
                Self::queue_open(&mut self.connects, t)
            }
            2 => match self.connects.pop_front() {
                Some(t) => Role::Response(t),
                None => Role::Response(self.fresh()),
            },
            3 if qos == 1 || qos == 2 => self.open((Exchange::Publish, from_client, id)),
            3 => Role::Standalone,
            4 | 5 => self.close((Exchange::Publish, !from_client, id)),
            6 => self.open((Exchange::Release, from_client, id)),
            7 => self.close((Exchange::Release, !from_client, id)),
            8 => self.open((Exchange::Subscribe, from_client, id)),
            9 => self.close((Exchange::Subscribe, !from_client, id)),
            10 => self.open((Exchange::Unsubscribe, from_client, id)),
            11 => self.close((Exchange::Unsubscribe, !from_client, id)),
            12 => {
                let t = self.fresh();
                Self::queue_open(&mut self.pings, t)
            }
            13 => match self.pings.pop_front() {
                Some(t) => Role::Response(t),
                None => Role::Response(self.fresh()),
            },
            _ => Role::Standalone,
        }
    }

    /// Emit one packet: `kept` is the input range of the kept bytes after
    /// the fixed header.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        dir: Direction,
        input: &Input<'_>,
        start: usize,
        ty: u8,
        flags: u8,
        kept: std::ops::Range<usize>,
        rem: usize,
        out: &mut Output,
    ) {
        let d = &input.data[kept.clone()];
        let p = parse(ty, flags, d, rem, self.version);
        if let Some(v) = p.version {
            self.version = v;
        }
        let qos = (flags >> 1) & 3;
        let role = self.role(dir, ty, qos, p.packet_id);
        let offset = input.offset(start);
        let mut b = match role {
            Role::Request(t) => out.request(t, offset),
            Role::Response(t) => out.response(t, offset),
            Role::Standalone => out.standalone(0, offset),
        };
        let abs = |r: &std::ops::Range<usize>| input.span(kept.start + r.start..kept.start + r.end);
        b.field(F_TYPE, TYPE_NAMES[(ty & 15) as usize]).field(
            F_DIRECTION,
            if dir == Direction::ToServer {
                "c2s"
            } else {
                "s2c"
            },
        );
        if ty == 1 {
            if let Some(v) = p.version {
                b.int(F_VERSION, v.into());
            }
        } else {
            b.int(F_VERSION, self.version.into());
        }
        if let Some(r) = &p.client_id {
            b.field(F_CLIENT_ID, abs(r));
        }
        if let Some(r) = &p.topic {
            b.field(F_TOPIC, abs(r));
        }
        if let Some(id) = p.packet_id {
            b.int(F_PACKET_ID, id.into());
        }
        if ty == 3 {
            b.int(F_QOS, qos.into())
                .field(F_RETAIN, flags & 1 != 0)
                .field(F_DUP, flags & 8 != 0);
            if let Some(h) = p.var_header {
                b.int(F_PAYLOAD_SIZE, rem.saturating_sub(h) as i64);
            }
        }
        for c in &p.reason_codes {
            b.int(F_REASON_CODES, (*c).into());
        }
    }
}

impl Session for MqttSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        let i = dir.index();
        if data.is_empty() {
            return Progress::need(0, 1);
        }
        if self.opaque[i] {
            return Progress::consumed(data.len());
        }
        let mut pos = 0usize;
        loop {
            if pos >= data.len() {
                return Progress::consumed(pos);
            }
            let rest = &data[pos..];
            let (ty, flags, rem, hl) = match fixed_header(rest) {
                Ok(Some(h)) => h,
                Ok(None) => return Progress::need(pos, rest.len() + 1),
                Err(e) => {
                    out.error(e);
                    self.opaque[i] = true;
                    return Progress::consumed(data.len());
                }
            };
            if ty == 0 {
                out.error("MQTT packet type 0 (reserved)");
                self.opaque[i] = true;
                return Progress::consumed(data.len());
            }
            let keep = rem.min(KEEP);
            if rest.len() < hl + keep {
                return Progress::need(pos, hl + keep);
            }
            self.emit(
                dir,
                input,
                pos,
                ty,
                flags,
                pos + hl..pos + hl + keep,
                rem,
                out,
            );
            pos += hl + keep;
            if rem > keep {
                return Progress::skip(pos, (rem - keep) as u64);
            }
            if out.is_full() && pos < data.len() {
                return Progress::consumed(pos);
            }
        }
    }

    fn gap(&mut self, _dir: Direction, _len: u64, out: &mut Output) {
        // Packet boundaries and packet ids are lost: stop rather than pair
        // the wrong packets.
        out.error("bytes lost: mqtt dissection stopped for this connection");
        self.opaque = [true; 2];
    }
}
