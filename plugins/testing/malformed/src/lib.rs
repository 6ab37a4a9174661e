//! A dissector whose `feed` returns output that breaks the contract: the first input byte modulo 3 picks `consumed` past the input, a span out of range, or an undeclared field id.
//!
//! Test fixture for the host runtime: claims TCP port 7004 only (probe says
//! `yes(100)` there and `no` everywhere else).

wit_bindgen::generate!({ path: "../../../wit", world: "dissector-plugin" });

use exports::remora::plugin::dissector::{Guest, GuestSession};
use remora::plugin::types::{
    Direction, FeedResult, Field, FieldDecl, FieldType, FlowInfo, Message, MessageKind, PluginInfo,
    ProbeResult, ProtocolDecl, Span, Text, Transport, Value,
};

const PORT: u16 = 7004;

struct Plugin;
struct Session;

impl Guest for Plugin {
    type Session = Session;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "test-malformed".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocols: vec![ProtocolDecl {
                name: "test-malformed".to_uppercase(),
                flag: "test-malformed".into(),
                transport: Transport::Tcp,
                ports: vec![PORT],
                request_summary: String::new(),
                response_summary: String::new(),
            }],
            fields: vec![FieldDecl {
                id: 1,
                name: "x".into(),
                type_: FieldType::Str,
                top_level: false,
                doc: String::new(),
            }],
        }
    }

    fn probe(flow: FlowInfo, _dir: Direction, _data: Vec<u8>) -> ProbeResult {
        if flow.transport == Transport::Tcp && flow.server_port == PORT {
            ProbeResult::Yes(100)
        } else {
            ProbeResult::No
        }
    }
}

fn empty() -> FeedResult {
    FeedResult {
        consumed: 0,
        skip: 0,
        need: 0,
        messages: Vec::new(),
        error: None,
    }
}

impl GuestSession for Session {
    fn new(_flow: FlowInfo) -> Self {
        Session
    }

    fn feed(&self, _dir: Direction, _base: u64, data: Vec<u8>) -> FeedResult {
        let mk = |value| Message {
            kind: MessageKind::Request,
            txn: 0,
            start: 0,
            fields: vec![Field { id: 1, value }],
            body: None,
        };
        let len = data.len() as u32;
        match data.first().copied().unwrap_or(0) % 3 {
            0 => FeedResult {
                consumed: len + 1,
                ..empty()
            },
            1 => FeedResult {
                consumed: 0,
                messages: vec![mk(Value::Str(Text::Span(Span {
                    offset: len,
                    len: 1,
                })))],
                ..empty()
            },
            _ => {
                let mut m = mk(Value::Int(1));
                m.fields[0].id = 999;
                FeedResult {
                    consumed: 0,
                    messages: vec![m],
                    ..empty()
                }
            }
        }
    }

    fn gap(&self, _dir: Direction, _len: u64) -> FeedResult {
        empty()
    }

    fn end(&self, _dir: Direction) -> FeedResult {
        empty()
    }
}

export!(Plugin);
