//! A dissector whose `feed` recurses without bound (exercises the stack limit).
//!
//! Test fixture for the host runtime: claims TCP port 7005 only (probe says
//! `yes(100)` there and `no` everywhere else).

wit_bindgen::generate!({ path: "../../../wit", world: "dissector-plugin" });

use exports::remora::plugin::dissector::{Guest, GuestSession};
use remora::plugin::types::{
    Direction, FeedResult, FieldDecl, FieldType, FlowInfo, PluginInfo, ProbeResult, ProtocolDecl,
    Transport,
};

const PORT: u16 = 7005;

struct Plugin;
struct Session;

impl Guest for Plugin {
    type Session = Session;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "test-stack".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocols: vec![ProtocolDecl {
                name: "test-stack".to_uppercase(),
                flag: "test-stack".into(),
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
        let n = recurse(&data, 0);
        FeedResult {
            consumed: (n as usize % (data.len() + 1)) as u32,
            ..empty()
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

/// Not a tail call (the result is used after the call), so it cannot become a
/// loop; only scalars live in the frame, so it uses the wasm stack rather than
/// the shadow stack in linear memory.
#[inline(never)]
fn recurse(data: &[u8], depth: u32) -> u32 {
    if depth == u32::MAX {
        return 0;
    }
    let below = recurse(data, depth + 1);
    let b = data
        .get(depth as usize % data.len().max(1))
        .copied()
        .unwrap_or(1) as u32;
    below.wrapping_mul(31).wrapping_add(b ^ depth)
}
