//! A dissector whose `feed` panics.
//!
//! Test fixture for the host runtime: claims TCP port 7003 only (probe says
//! `yes(100)` there and `no` everywhere else).

wit_bindgen::generate!({ path: "../../../wit", world: "dissector-plugin" });

use exports::remora::plugin::dissector::{Guest, GuestSession};
use remora::plugin::types::{
    Direction, FeedResult, FieldDecl, FieldType, FlowInfo, PluginInfo, ProbeResult, ProtocolDecl,
    Transport,
};

const PORT: u16 = 7003;

struct Plugin;
struct Session;

impl Guest for Plugin {
    type Session = Session;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "test-panic".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocols: vec![ProtocolDecl {
                name: "test-panic".to_uppercase(),
                flag: "test-panic".into(),
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
        panic!("test-panic: feed called with {} bytes", data.len())
    }

    fn gap(&self, _dir: Direction, _len: u64) -> FeedResult {
        empty()
    }

    fn end(&self, _dir: Direction) -> FeedResult {
        empty()
    }
}

export!(Plugin);
