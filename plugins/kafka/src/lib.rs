//! Kafka wire-protocol dissector for Remora, written with `remora-sdk`.
//!
//! Every Kafka message is a frame: a big-endian `int32` size and that many
//! bytes. A request starts with header v0/v1/v2 (api key, api version,
//! correlation id, nullable client id, and — in flexible versions — tagged
//! fields); a response carries only the correlation id (plus tagged fields for
//! flexible versions, except ApiVersions responses which always use header
//! v0). The session remembers correlation id → (api key, version) from the
//! requests to read the responses, and `txn` = correlation id pairs them.
//!
//! At most [`HEAD`] bytes of a frame are examined; the rest (record batches)
//! is dropped through `skip`. A response whose correlation id is unknown
//! (capture started mid-connection) is still emitted with what can be read.
//! A frame size or request header that makes no sense (capture starting
//! mid-frame) is reported as an error and that direction is given up.

use remora_sdk::prelude::*;
use std::collections::VecDeque;

pub const F_API_KEY: u16 = 0;
pub const F_API_KEY_NAME: u16 = 1;
pub const F_API_VERSION: u16 = 2;
pub const F_CORRELATION_ID: u16 = 3;
pub const F_CLIENT_ID: u16 = 4;
pub const F_TOPICS: u16 = 5;
pub const F_PARTITIONS: u16 = 6;
pub const F_REQUEST_SUMMARY: u16 = 7;
pub const F_ERROR_CODE: u16 = 8;
pub const F_REQUEST_SIZE: u16 = 9;
pub const F_RESPONSE_SIZE: u16 = 10;

pub const PORTS: [u16; 2] = [9092, 19092];
/// Bytes of a frame examined (header and the start of the body).
pub const HEAD: usize = 64 * 1024;
/// Largest frame size accepted (Kafka's default socket.request.max.bytes is 100 MiB).
pub const MAX_FRAME: i32 = 128 * 1024 * 1024;
/// Topics / partitions kept per message.
pub const MAX_TOPICS: usize = 64;
pub const MAX_PARTITIONS: usize = 256;
/// Longest string kept (client id, topic).
pub const MAX_STR: usize = 256;
/// Requests remembered while waiting for responses.
const MAX_OUTSTANDING: usize = 4096;
/// Frames handled per feed call before returning (the host calls again).
const MAX_FRAMES_PER_CALL: usize = 1024;
/// Highest api version believed plausible.
const MAX_VERSION: i16 = 30;
/// Array elements walked at most while parsing one array.
const MAX_WALK: usize = 4096;

/// (name, first flexible request/response-header version; `None`: never).
pub const API_KEYS: [(&str, Option<i16>); 75] = [
    ("PRODUCE", Some(9)),
    ("FETCH", Some(12)),
    ("LIST_OFFSETS", Some(6)),
    ("METADATA", Some(9)),
    ("LEADER_AND_ISR", Some(4)),
    ("STOP_REPLICA", Some(2)),
    ("UPDATE_METADATA", Some(6)),
    ("CONTROLLED_SHUTDOWN", Some(3)),
    ("OFFSET_COMMIT", Some(8)),
    ("OFFSET_FETCH", Some(6)),
    ("FIND_COORDINATOR", Some(3)),
    ("JOIN_GROUP", Some(6)),
    ("HEARTBEAT", Some(4)),
    ("LEAVE_GROUP", Some(4)),
    ("SYNC_GROUP", Some(4)),
    ("DESCRIBE_GROUPS", Some(5)),
    ("LIST_GROUPS", Some(3)),
    ("SASL_HANDSHAKE", None),
    ("API_VERSIONS", Some(3)),
    ("CREATE_TOPICS", Some(5)),
    ("DELETE_TOPICS", Some(4)),
    ("DELETE_RECORDS", Some(2)),
    ("INIT_PRODUCER_ID", Some(2)),
    ("OFFSET_FOR_LEADER_EPOCH", Some(4)),
    ("ADD_PARTITIONS_TO_TXN", Some(3)),
    ("ADD_OFFSETS_TO_TXN", Some(3)),
    ("END_TXN", Some(3)),
    ("WRITE_TXN_MARKERS", Some(1)),
    ("TXN_OFFSET_COMMIT", Some(3)),
    ("DESCRIBE_ACLS", Some(2)),
    ("CREATE_ACLS", Some(2)),
    ("DELETE_ACLS", Some(2)),
    ("DESCRIBE_CONFIGS", Some(4)),
    ("ALTER_CONFIGS", Some(2)),
    ("ALTER_REPLICA_LOG_DIRS", Some(2)),
    ("DESCRIBE_LOG_DIRS", Some(2)),
    ("SASL_AUTHENTICATE", Some(2)),
    ("CREATE_PARTITIONS", Some(2)),
    ("CREATE_DELEGATION_TOKEN", Some(2)),
    ("RENEW_DELEGATION_TOKEN", Some(2)),
    ("EXPIRE_DELEGATION_TOKEN", Some(2)),
    ("DESCRIBE_DELEGATION_TOKEN", Some(2)),
    ("DELETE_GROUPS", Some(2)),
    ("ELECT_LEADERS", Some(2)),
    ("INCREMENTAL_ALTER_CONFIGS", Some(1)),
    ("ALTER_PARTITION_REASSIGNMENTS", Some(0)),
    ("LIST_PARTITION_REASSIGNMENTS", Some(0)),
    ("OFFSET_DELETE", None),
    ("DESCRIBE_CLIENT_QUOTAS", Some(1)),
    ("ALTER_CLIENT_QUOTAS", Some(1)),
    ("DESCRIBE_USER_SCRAM_CREDENTIALS", Some(0)),
    ("ALTER_USER_SCRAM_CREDENTIALS", Some(0)),
    ("VOTE", Some(0)),
    ("BEGIN_QUORUM_EPOCH", Some(1)),
    ("END_QUORUM_EPOCH", Some(1)),
    ("DESCRIBE_QUORUM", Some(0)),
    ("ALTER_PARTITION", Some(0)),
    ("UPDATE_FEATURES", Some(0)),
    ("ENVELOPE", Some(0)),
    ("FETCH_SNAPSHOT", Some(0)),
    ("DESCRIBE_CLUSTER", Some(0)),
    ("DESCRIBE_PRODUCERS", Some(0)),
    ("BROKER_REGISTRATION", Some(0)),
    ("BROKER_HEARTBEAT", Some(0)),
    ("UNREGISTER_BROKER", Some(0)),
    ("DESCRIBE_TRANSACTIONS", Some(0)),
    ("LIST_TRANSACTIONS", Some(0)),
    ("ALLOCATE_PRODUCER_IDS", Some(0)),
    ("CONSUMER_GROUP_HEARTBEAT", Some(0)),
    ("CONSUMER_GROUP_DESCRIBE", Some(0)),
    ("CONTROLLER_REGISTRATION", Some(0)),
    ("GET_TELEMETRY_SUBSCRIPTIONS", Some(0)),
    ("PUSH_TELEMETRY", Some(0)),
    ("ASSIGN_REPLICAS_TO_DIRS", Some(0)),
    ("LIST_CLIENT_METRICS_RESOURCES", Some(0)),
];

/// Upper-snake name of an api key, `None` when unknown.
pub fn api_name(key: i16) -> Option<&'static str> {
    usize::try_from(key)
        .ok()
        .and_then(|k| API_KEYS.get(k))
        .map(|e| e.0)
}

/// Whether (key, version) uses the flexible (compact, tagged) encoding.
pub fn is_flexible(key: i16, version: i16) -> bool {
    usize::try_from(key)
        .ok()
        .and_then(|k| API_KEYS.get(k))
        .and_then(|e| e.1)
        .is_some_and(|f| version >= f)
}

pub struct Kafka;

impl Dissector for Kafka {
    type Session = KafkaSession;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = FieldDecl::declare;
        PluginInfo::new("kafka", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::tcp("Kafka", "kafka")
                    .ports(&PORTS)
                    .summaries("{kafka_request_summary}", "{kafka_error_code}"),
            )
            .field(f(F_API_KEY, "kafka_api_key", Int, true, "api key"))
            .field(f(
                F_API_KEY_NAME,
                "kafka_api_key_name",
                Str,
                true,
                "api key name (\"PRODUCE\", \"FETCH\", ...)",
            ))
            .field(f(
                F_API_VERSION,
                "kafka_api_version",
                Int,
                true,
                "api version",
            ))
            .field(f(
                F_CORRELATION_ID,
                "kafka_correlation_id",
                Int,
                false,
                "correlation id (pairs request and response)",
            ))
            .field(f(
                F_CLIENT_ID,
                "kafka_client_id",
                Str,
                true,
                "client id of the request header",
            ))
            .field(f(
                F_TOPICS,
                "kafka_topics",
                StrList,
                true,
                "topics named by a Produce/Fetch/Metadata/ListOffsets/OffsetCommit/OffsetFetch request (at most 64)",
            ))
            .field(f(
                F_PARTITIONS,
                "kafka_partitions",
                IntList,
                false,
                "partition indexes named by the request (at most 256)",
            ))
            .field(f(
                F_REQUEST_SUMMARY,
                "kafka_request_summary",
                Str,
                true,
                "\"API_NAME vN topic,topic\"",
            ))
            .field(f(
                F_ERROR_CODE,
                "kafka_error_code",
                Int,
                true,
                "top-level error code of the response, where simple to find",
            ))
            .field(f(
                F_REQUEST_SIZE,
                "kafka_request_size",
                Int,
                true,
                "request bytes on the wire (with the size prefix)",
            ))
            .field(f(
                F_RESPONSE_SIZE,
                "kafka_response_size",
                Int,
                true,
                "response bytes on the wire (with the size prefix)",
            ))
    }

    fn probe(flow: &FlowInfo, dir: Direction, data: &[u8]) -> Probe {
        let hinted = PORTS.contains(&flow.server_port);
        probe_bytes(hinted, dir, data)
    }

    fn session(_flow: &FlowInfo) -> KafkaSession {
        KafkaSession::new()
    }
}

remora_sdk::export_dissector!(Kafka);

fn frame_size(data: &[u8]) -> Option<i32> {
    let b = data.get(..4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Probe: a plausible request header; a response only with the port hint.
pub fn probe_bytes(hinted: bool, dir: Direction, data: &[u8]) -> Probe {
    let Some(size) = frame_size(data) else {
        return Probe::NeedMore;
    };
    match dir {
        Direction::ToServer => {
            if !(10..=MAX_FRAME).contains(&size) {
                return Probe::No;
            }
            if data.len() < 14 {
                return Probe::NeedMore;
            }
            let key = i16::from_be_bytes([data[4], data[5]]);
            let ver = i16::from_be_bytes([data[6], data[7]]);
            let cid = i16::from_be_bytes([data[12], data[13]]);
            if api_name(key).is_none() || !(0..=MAX_VERSION).contains(&ver) {
                return Probe::No;
            }
            if cid < -1 || i32::from(cid) > size - 10 {
                return Probe::No;
            }
            Probe::Yes(if hinted { 70 } else { 35 })
        }
        Direction::ToClient => {
            if hinted && (4..=MAX_FRAME).contains(&size) {
                Probe::Yes(30)
            } else if (4..=MAX_FRAME).contains(&size) {
                Probe::NeedMore
            } else {
                Probe::No
            }
        }
    }
}

// ---------------------------------------------------------------- reader

/// A bounds-checked big-endian reader; every method returns `None` past the end.
pub struct Reader<'a> {
    data: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn i8(&mut self) -> Option<i8> {
        self.take(1).map(|b| b[0] as i8)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// Classic nullable string (int16 length, -1 = null).
    fn string(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.i16()?;
        if n < 0 {
            return Some(None);
        }
        self.take(n as usize).map(Some)
    }
    /// Compact nullable string (uvarint length + 1, 0 = null).
    fn compact_string(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Some(None);
        }
        self.take(usize::try_from(n - 1).ok()?).map(Some)
    }
    fn str_v(&mut self, flex: bool) -> Option<Option<&'a [u8]>> {
        if flex {
            self.compact_string()
        } else {
            self.string()
        }
    }
    /// Bytes / records: int32 or compact length; skipped.
    fn skip_bytes(&mut self, flex: bool) -> Option<()> {
        let n: i64 = if flex {
            self.uvarint()? as i64 - 1
        } else {
            i64::from(self.i32()?)
        };
        if n > 0 {
            self.take(usize::try_from(n).ok()?)?;
        }
        Some(())
    }
    /// Array length (`None` element count for a null array).
    fn array(&mut self, flex: bool) -> Option<Option<usize>> {
        if flex {
            let n = self.uvarint()?;
            if n == 0 {
                return Some(None);
            }
            usize::try_from(n - 1).ok().map(Some)
        } else {
            let n = self.i32()?;
            if n < 0 {
                return Some(None);
            }
            Some(Some(n as usize))
        }
    }
    fn tagged(&mut self, flex: bool) -> Option<()> {
        if !flex {
            return Some(());
        }
        let n = self.uvarint()?;
        for _ in 0..n.min(MAX_WALK as u64) {
            self.uvarint()?;
            let len = self.uvarint()?;
            self.take(usize::try_from(len).ok()?)?;
        }
        Some(())
    }
}

fn text(b: &[u8]) -> String {
    let b = &b[..b.len().min(MAX_STR)];
    let mut s = match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        // Invalid bytes are rare: only then the replacing (slower) conversion.
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    };
    if s.len() > MAX_STR {
        let mut i = MAX_STR;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
    s
}

// ---------------------------------------------------------------- requests

/// What a request names.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Request {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub topics: Vec<String>,
    pub partitions: Vec<i64>,
}

impl Request {
    fn topic(&mut self, t: Option<&[u8]>) {
        if let Some(t) = t {
            if self.topics.len() < MAX_TOPICS {
                self.topics.push(text(t));
            }
        }
    }
    fn partition(&mut self, p: i32) {
        if self.partitions.len() < MAX_PARTITIONS {
            self.partitions.push(p.into());
        }
    }
}

/// Parse a request frame payload (without the size prefix). Only the header
/// is required; the body is read as far as it goes (it may be cut at [`HEAD`]).
pub fn parse_request(payload: &[u8]) -> Result<Request, &'static str> {
    let mut r = Reader::new(payload);
    let (Some(key), Some(ver), Some(corr)) = (r.i16(), r.i16(), r.i32()) else {
        return Err("kafka request shorter than its header");
    };
    if api_name(key).is_none() {
        return Err("unknown kafka api key");
    }
    if !(0..=MAX_VERSION).contains(&ver) {
        return Err("implausible kafka api version");
    }
    let Some(cid) = r.string() else {
        return Err("kafka request client id truncated");
    };
    let mut req = Request {
        api_key: key,
        api_version: ver,
        correlation_id: corr,
        client_id: cid.map(text),
        ..Default::default()
    };
    let flex = is_flexible(key, ver);
    // Best effort: a truncated or unexpected body keeps what was read.
    let _ = r.tagged(flex).and_then(|_| body(&mut r, &mut req, flex));
    Ok(req)
}

fn body(r: &mut Reader<'_>, q: &mut Request, flex: bool) -> Option<()> {
    let v = q.api_version;
    match q.api_key {
        0 => {
            // Produce
            if v >= 3 {
                r.str_v(flex)?;
            }
            r.i16()?;
            r.i32()?;
            let n = r.array(flex)?.unwrap_or(0);
            for _ in 0..n.min(MAX_WALK) {
                let t = r.str_v(flex)?;
                q.topic(t);
                let np = r.array(flex)?.unwrap_or(0);
                for _ in 0..np.min(MAX_WALK) {
                    let p = r.i32()?;
                    q.partition(p);
                    r.skip_bytes(flex)?;
                    r.tagged(flex)?;
                }
                r.tagged(flex)?;
            }
        }
        1 => {
            // Fetch
            if v <= 14 {
                r.i32()?;
            }
            r.i32()?;
            r.i32()?;
            if v >= 3 {
                r.i32()?;
            }
            if v >= 4 {
                r.i8()?;
            }
            if v >= 7 {
                r.i32()?;
                r.i32()?;
            }
            let n = r.array(flex)?.unwrap_or(0);
            for _ in 0..n.min(MAX_WALK) {
                if v >= 13 {
                    r.take(16)?; // topic id, no name
                } else {
                    let t = r.str_v(flex)?;
                    q.topic(t);
                }
                let np = r.array(flex)?.unwrap_or(0);
                for _ in 0..np.min(MAX_WALK) {
                    let p = r.i32()?;
                    q.partition(p);
                    if v >= 9 {
                        r.i32()?;
                    }
                    r.take(8)?;
                    if v >= 12 {
                        r.i32()?;
                    }
                    if v >= 5 {
                        r.take(8)?;
                    }
                    r.i32()?;
                    r.tagged(flex)?;
                }
                r.tagged(flex)?;
            }
        }
        2 => {
            // ListOffsets
            r.i32()?;
            if v >= 2 {
                r.i8()?;
            }
            let n = r.array(flex)?.unwrap_or(0);
            for _ in 0..n.min(MAX_WALK) {
                let t = r.str_v(flex)?;
                q.topic(t);
                let np = r.array(flex)?.unwrap_or(0);
                for _ in 0..np.min(MAX_WALK) {
                    let p = r.i32()?;
                    q.partition(p);
                    if v >= 4 {
                        r.i32()?;
                    }
                    r.take(8)?;
                    if v == 0 {
                        r.i32()?;
                    }
                    r.tagged(flex)?;
                }
                r.tagged(flex)?;
            }
        }
        3 => {
            // Metadata
            let n = r.array(flex)?.unwrap_or(0);
            for _ in 0..n.min(MAX_WALK) {
                if v >= 10 {
                    r.take(16)?;
                }
                let t = r.str_v(flex)?;
                q.topic(t);
                r.tagged(flex)?;
            }
        }
        8 => {
            // OffsetCommit
            r.str_v(flex)?;
            if v >= 1 {
                r.i32()?;
                r.str_v(flex)?;
            }
            if v >= 7 {
                r.str_v(flex)?;
            }
            if (2..=4).contains(&v) {
                r.take(8)?;
            }
            let n = r.array(flex)?.unwrap_or(0);
            for _ in 0..n.min(MAX_WALK) {
                let t = r.str_v(flex)?;
                q.topic(t);
                let np = r.array(flex)?.unwrap_or(0);
                for _ in 0..np.min(MAX_WALK) {
                    let p = r.i32()?;
                    q.partition(p);
                    r.take(8)?;
                    if v == 1 {
                        r.take(8)?;
                    }
                    if v >= 6 {
                        r.i32()?;
                    }
                    r.str_v(flex)?;
                    r.tagged(flex)?;
                }
                r.tagged(flex)?;
            }
        }
        9 => {
            // OffsetFetch
            let topics = |r: &mut Reader<'_>, q: &mut Request| -> Option<()> {
                let n = r.array(flex)?.unwrap_or(0);
                for _ in 0..n.min(MAX_WALK) {
                    let t = r.str_v(flex)?;
                    q.topic(t);
                    let np = r.array(flex)?.unwrap_or(0);
                    for _ in 0..np.min(MAX_WALK) {
                        let p = r.i32()?;
                        q.partition(p);
                    }
                    r.tagged(flex)?;
                }
                Some(())
            };
            if v <= 7 {
                r.str_v(flex)?;
                topics(r, q)?;
            } else {
                let ng = r.array(flex)?.unwrap_or(0);
                for _ in 0..ng.min(MAX_WALK) {
                    r.str_v(flex)?;
                    if v >= 9 {
                        r.str_v(flex)?;
                        r.i32()?;
                    }
                    topics(r, q)?;
                    r.tagged(flex)?;
                }
            }
        }
        _ => {}
    }
    Some(())
}

// ---------------------------------------------------------------- responses

/// Top-level error code of a response body, for the api keys where it is at
/// a fixed place (`r` positioned after the response header).
pub fn response_error(key: i16, ver: i16, r: &mut Reader<'_>) -> Option<i16> {
    let throttle_first = match key {
        18 | 17 | 36 => false, // ApiVersions, SaslHandshake, SaslAuthenticate
        22 | 25 | 26 => true,  // InitProducerId, AddOffsetsToTxn, EndTxn
        1 => {
            // Fetch v7+: throttle, error_code
            if ver < 7 {
                return None;
            }
            true
        }
        10 => {
            if ver >= 4 {
                return None; // per-coordinator errors
            }
            ver >= 1
        }
        11 => ver >= 2,      // JoinGroup
        12..=14 => ver >= 1, // Heartbeat, LeaveGroup, SyncGroup
        16 => ver >= 1,      // ListGroups
        _ => return None,
    };
    if throttle_first {
        r.i32()?;
    }
    r.i16()
}

// ---------------------------------------------------------------- session

#[derive(Clone, Copy, Debug)]
struct Pending {
    corr: i32,
    key: i16,
    ver: i16,
}

/// One Kafka connection, both directions.
pub struct KafkaSession {
    /// Per direction: framing lost, consume everything.
    dead: [bool; 2],
    outstanding: VecDeque<Pending>,
}

impl Default for KafkaSession {
    fn default() -> Self {
        Self::new()
    }
}

impl KafkaSession {
    pub fn new() -> Self {
        KafkaSession {
            dead: [false; 2],
            outstanding: VecDeque::new(),
        }
    }

    fn emit_request(&mut self, payload: &[u8], size: u64, start: u64, out: &mut Output) -> bool {
        let q = match parse_request(payload) {
            Ok(q) => q,
            Err(e) => {
                out.error(e);
                return false;
            }
        };
        let name = api_name(q.api_key).unwrap_or("UNKNOWN");
        let mut summary = format!("{name} v{}", q.api_version);
        if !q.topics.is_empty() {
            summary.push(' ');
            let mut joined = q.topics.join(",");
            if joined.len() > MAX_STR {
                joined = text(joined.as_bytes());
            }
            summary.push_str(&joined);
        }
        let mut m = out.request(u64::from(q.correlation_id as u32), start);
        m.int(F_API_KEY, q.api_key.into())
            .field(F_API_KEY_NAME, name)
            .int(F_API_VERSION, q.api_version.into())
            .int(F_CORRELATION_ID, q.correlation_id.into())
            .field(F_REQUEST_SUMMARY, summary)
            .int(F_REQUEST_SIZE, size as i64);
        if let Some(c) = q.client_id {
            m.field(F_CLIENT_ID, c);
        }
        for t in q.topics {
            m.field(F_TOPICS, t);
        }
        for p in q.partitions {
            m.int(F_PARTITIONS, p);
        }
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(Pending {
            corr: q.correlation_id,
            key: q.api_key,
            ver: q.api_version,
        });
        true
    }

    fn emit_response(&mut self, payload: &[u8], size: u64, start: u64, out: &mut Output) -> bool {
        let mut r = Reader::new(payload);
        let Some(corr) = r.i32() else {
            out.error("kafka response shorter than a correlation id");
            return false;
        };
        let known = self
            .outstanding
            .iter()
            .position(|p| p.corr == corr)
            .and_then(|i| self.outstanding.remove(i));
        let mut m = out.response(u64::from(corr as u32), start);
        m.int(F_CORRELATION_ID, corr.into())
            .int(F_RESPONSE_SIZE, size as i64);
        if let Some(p) = known {
            m.int(F_API_KEY, p.key.into())
                .field(F_API_KEY_NAME, api_name(p.key).unwrap_or("UNKNOWN"))
                .int(F_API_VERSION, p.ver.into());
            let flex = p.key != 18 && is_flexible(p.key, p.ver);
            let err = r
                .tagged(flex)
                .and_then(|_| response_error(p.key, p.ver, &mut r));
            if let Some(e) = err {
                m.int(F_ERROR_CODE, e.into());
            }
        }
        true
    }
}

impl Session for KafkaSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        let i = dir.index();
        if self.dead[i] {
            return Progress::consumed(data.len());
        }
        let mut pos = 0usize;
        let mut frames = 0usize;
        loop {
            if pos >= data.len() || out.is_full() {
                return Progress::consumed(pos);
            }
            let rest = &data[pos..];
            let Some(size) = frame_size(rest) else {
                return Progress::need(pos, 4);
            };
            let min = if dir == Direction::ToServer { 10 } else { 4 };
            if !(min..=MAX_FRAME).contains(&size) {
                out.error("implausible kafka frame size: framing lost");
                self.dead[i] = true;
                return Progress::consumed(data.len());
            }
            let size_us = size as usize;
            let total = 4 + size_us;
            let head = total.min(4 + HEAD);
            if rest.len() < head {
                return Progress::need(pos, head);
            }
            let payload = &rest[4..head];
            let start = input.offset(pos);
            let ok = match dir {
                Direction::ToServer => self.emit_request(payload, total as u64, start, out),
                Direction::ToClient => self.emit_response(payload, total as u64, start, out),
            };
            if !ok {
                self.dead[i] = true;
                return Progress::consumed(data.len());
            }
            pos += head;
            if head < total {
                return Progress::skip(pos, (total - head) as u64);
            }
            frames += 1;
            if frames >= MAX_FRAMES_PER_CALL && pos < data.len() {
                return Progress::consumed(pos);
            }
        }
    }

    fn gap(&mut self, dir: Direction, _len: u64, out: &mut Output) {
        // No reliable way to find the next size prefix.
        self.dead[dir.index()] = true;
        out.error("bytes lost: kafka framing lost for this direction");
    }
}
