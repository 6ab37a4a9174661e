//! DNS dissector for Remora, written with `remora-sdk`.
//!
//! UDP: each datagram is one message. TCP: messages carry a 2-byte length
//! prefix (RFC 1035 4.2.2); several may arrive in one feed, or one across
//! several. A query (QR=0) is a request and a response (QR=1) a response,
//! both with `txn` = the DNS id, so the host pairs them within the flow.
//! Names are decompressed (at most 128 pointers, 255 bytes) and sent as owned
//! strings.

use remora_sdk::prelude::*;

pub mod parse;

pub const F_ID: u16 = 0;
pub const F_QUESTIONS: u16 = 1;
pub const F_QUESTION_TYPES: u16 = 2;
pub const F_ANSWERS: u16 = 3;
pub const F_RCODE: u16 = 4;
pub const F_STATUS_CODE: u16 = 5;
pub const F_RCODE_NAME: u16 = 6;
pub const F_REQUEST: u16 = 7;
pub const F_RESPONSE: u16 = 8;
pub const F_REQUEST_LENGTH: u16 = 9;
pub const F_RESPONSE_LENGTH: u16 = 10;
pub const F_QUERY: u16 = 11;

/// Ports hinted to the host (53: DNS, 5353: mDNS, 15353: test servers).
pub const DNS_PORTS: [u16; 3] = [53, 5353, 15353];

pub struct Dns;

impl Dissector for Dns {
    type Session = DnsSession;

    fn info() -> PluginInfo {
        use FieldType::*;
        let f = |id, name, ty, doc| FieldDecl::new(id, name, ty).top_level().doc(doc);
        PluginInfo::new("dns", env!("CARGO_PKG_VERSION"))
            .protocol(
                ProtocolDecl::udp("DNS", "dns")
                    .ports(&DNS_PORTS)
                    .summaries("{dns_query}", "{dns_rcode_name}"),
            )
            .protocol(
                ProtocolDecl::tcp("DNS", "dns")
                    .ports(&DNS_PORTS)
                    .summaries("{dns_query}", "{dns_rcode_name}"),
            )
            .field(f(F_ID, "dns_id", Int, "message id"))
            .field(f(F_QUESTIONS, "dns_questions", StrList, "question names"))
            .field(f(
                F_QUESTION_TYPES,
                "dns_question_types",
                StrList,
                "question types (\"A\", \"AAAA\", ...)",
            ))
            .field(f(
                F_ANSWERS,
                "dns_answers",
                StrList,
                "answer records as \"name TYPE data ttl=N\"",
            ))
            .field(f(F_RCODE, "dns_rcode", Int, "response code"))
            .field(f(
                F_STATUS_CODE,
                "status_code",
                Int,
                "response code (same as dns_rcode)",
            ))
            .field(f(
                F_RCODE_NAME,
                "dns_rcode_name",
                Str,
                "response code name (\"NOERROR\", \"NXDOMAIN\", ...)",
            ))
            .field(f(F_REQUEST, "dns_request", Boolean, "true on queries"))
            .field(f(F_RESPONSE, "dns_response", Boolean, "true on responses"))
            .field(f(
                F_REQUEST_LENGTH,
                "dns_request_length",
                Int,
                "query message bytes (without the TCP length prefix)",
            ))
            .field(f(
                F_RESPONSE_LENGTH,
                "dns_response_length",
                Int,
                "response message bytes (without the TCP length prefix)",
            ))
            .field(
                FieldDecl::new(F_QUERY, "dns_query", Str)
                    .doc("first question as \"TYPE name\" (summary)"),
            )
    }

    fn probe(flow: &FlowInfo, _dir: Direction, data: &[u8]) -> Probe {
        probe_bytes(flow, data)
    }

    fn session(flow: &FlowInfo) -> DnsSession {
        DnsSession::new(flow.transport)
    }
}

remora_sdk::export_dissector!(Dns);

/// Probe logic: a strictly parsed header and first question.
pub fn probe_bytes(flow: &FlowInfo, data: &[u8]) -> Probe {
    let port_hit = DNS_PORTS.contains(&flow.server_port) || DNS_PORTS.contains(&flow.client_port);
    let yes = Probe::Yes(if port_hit { 60 } else { 30 });
    match flow.transport {
        Transport::Udp => {
            if parse::plausible(data) {
                yes
            } else {
                Probe::No
            }
        }
        Transport::Tcp => {
            if data.len() < 2 {
                return Probe::NeedMore;
            }
            let len = u16::from_be_bytes([data[0], data[1]]) as usize;
            if len < parse::HEADER_LEN {
                return Probe::No;
            }
            let msg = &data[2..data.len().min(2 + len)];
            match parse::check_start(msg) {
                Some(true) => yes,
                Some(false) => Probe::No,
                None if msg.len() < len => Probe::NeedMore,
                None => Probe::No,
            }
        }
    }
}

/// One DNS flow (a UDP 5-tuple or a TCP connection).
pub struct DnsSession {
    tcp: bool,
    /// Per direction: framing lost (TCP), consume everything.
    dead: [bool; 2],
}

impl DnsSession {
    pub fn new(transport: Transport) -> Self {
        DnsSession {
            tcp: transport == Transport::Tcp,
            dead: [false; 2],
        }
    }
}

/// Emit one message (`msg` is the DNS message without a length prefix,
/// starting at stream offset `start`).
fn emit(msg: &[u8], start: u64, out: &mut Output) -> Result<(), &'static str> {
    let p = parse::parse(msg)?;
    let h = p.header;
    let mut b = if h.qr {
        out.response(h.id.into(), start)
    } else {
        out.request(h.id.into(), start)
    };
    b.int(F_ID, h.id.into());
    if let Some((name, qtype)) = p.questions.first() {
        b.field(F_QUERY, format!("{} {name}", parse::type_name(*qtype)));
    }
    for (name, _) in &p.questions {
        b.field(F_QUESTIONS, name.as_str());
    }
    for (_, qtype) in &p.questions {
        b.field(F_QUESTION_TYPES, parse::type_name(*qtype));
    }
    if h.qr {
        for a in p.answers {
            b.field(F_ANSWERS, a);
        }
        b.int(F_RCODE, h.rcode.into())
            .int(F_STATUS_CODE, h.rcode.into())
            .field(F_RCODE_NAME, parse::rcode_name(h.rcode))
            .field(F_RESPONSE, true)
            .field(F_RESPONSE_LENGTH, msg.len());
    } else {
        b.field(F_REQUEST, true).field(F_REQUEST_LENGTH, msg.len());
    }
    Ok(())
}

impl Session for DnsSession {
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress {
        let data = input.data;
        let i = dir.index();
        if !self.tcp {
            // One datagram per call.
            if let Err(e) = emit(data, input.offset(0), out) {
                out.error(e);
            }
            return Progress::consumed(data.len());
        }
        if self.dead[i] {
            return Progress::consumed(data.len());
        }
        let mut pos = 0usize;
        loop {
            let rest = &data[pos..];
            if rest.len() < 2 {
                return Progress::need(pos, 2);
            }
            let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            if len < parse::HEADER_LEN {
                out.error("TCP DNS message shorter than a header");
                self.dead[i] = true;
                return Progress::consumed(data.len());
            }
            if rest.len() < 2 + len {
                return Progress::need(pos, 2 + len);
            }
            if let Err(e) = emit(&rest[2..2 + len], input.offset(pos), out) {
                out.error(e);
                self.dead[i] = true;
                return Progress::consumed(data.len());
            }
            pos += 2 + len;
            if out.is_full() && pos < data.len() {
                return Progress::consumed(pos);
            }
        }
    }

    fn gap(&mut self, dir: Direction, _len: u64, out: &mut Output) {
        if self.tcp {
            // No way to find the next length prefix reliably.
            self.dead[dir.index()] = true;
            out.error("gap: bytes lost, DNS framing lost");
        }
    }
}

#[cfg(test)]
mod tests;
