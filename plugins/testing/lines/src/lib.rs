//! A trivial, well-behaved dissector used by the host's tests and benches.
//!
//! Protocol `LINES` on TCP port 7777: every `\n`-terminated line sent to the
//! server is a request, every line sent to the client a response; the n-th
//! line of each direction has `txn` n, so request n pairs with response n.

use std::cell::Cell;

wit_bindgen::generate!({ path: "../../../wit", world: "dissector-plugin" });

use exports::remora::plugin::dissector::{Guest, GuestSession};
use remora::plugin::types::{
    Direction, FeedResult, Field, FieldDecl, FieldType, FlowInfo, Message, MessageKind, PluginInfo,
    ProbeResult, ProtocolDecl, Span, Text, Transport, Value,
};

const PORT: u16 = 7777;
const FIELD_LINE: u16 = 1;

struct Plugin;

struct Session {
    /// Next txn per direction (index 0: to-server, 1: to-client).
    next_txn: [Cell<u64>; 2],
}

impl Guest for Plugin {
    type Session = Session;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "test-lines".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocols: vec![ProtocolDecl {
                name: "LINES".into(),
                flag: "lines".into(),
                transport: Transport::Tcp,
                ports: vec![PORT],
                request_summary: "{line}".into(),
                response_summary: "{line}".into(),
            }],
            fields: vec![FieldDecl {
                id: FIELD_LINE,
                name: "line".into(),
                type_: FieldType::Str,
                top_level: true,
                doc: "The line, without its terminating newline.".into(),
            }],
        }
    }

    fn probe(flow: FlowInfo, _dir: Direction, data: Vec<u8>) -> ProbeResult {
        if flow.transport != Transport::Tcp || flow.server_port != PORT {
            return ProbeResult::No;
        }
        match data.first() {
            None => ProbeResult::NeedMore,
            Some(b) if b.is_ascii_alphabetic() => ProbeResult::Yes(50),
            Some(_) => ProbeResult::No,
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
        Session {
            next_txn: [Cell::new(0), Cell::new(0)],
        }
    }

    fn feed(&self, dir: Direction, base: u64, data: Vec<u8>) -> FeedResult {
        let (kind, counter) = match dir {
            Direction::ToServer => (MessageKind::Request, &self.next_txn[0]),
            Direction::ToClient => (MessageKind::Response, &self.next_txn[1]),
        };
        let mut messages = Vec::new();
        let mut start = 0usize;
        while let Some(pos) = data[start..].iter().position(|&b| b == b'\n') {
            let txn = counter.get();
            counter.set(txn + 1);
            messages.push(Message {
                kind,
                txn,
                start: base + start as u64,
                fields: vec![Field {
                    id: FIELD_LINE,
                    value: Value::Str(Text::Span(Span {
                        offset: start as u32,
                        len: pos as u32,
                    })),
                }],
                body: None,
            });
            start += pos + 1;
        }
        FeedResult {
            consumed: start as u32,
            messages,
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
