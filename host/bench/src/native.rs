//! A dissector compiled natively behind the same `Backend` the Wasm runtime
//! implements, so that the benchmark measures exactly the boundary's cost.

use remora_core::Direction;
use remora_dissect::{Backend, BackendFault};
use remora_runtime::wit;
use remora_sdk::{Dissector, Input, Output, Session};

pub struct Native<D: Dissector> {
    sessions: Vec<Option<D::Session>>,
    free: Vec<usize>,
    out: Output,
}

impl<D: Dissector> Default for Native<D> {
    fn default() -> Self {
        Native {
            sessions: Vec::new(),
            free: Vec::new(),
            out: Output::new(),
        }
    }
}

fn sdk_dir(d: Direction) -> remora_sdk::Direction {
    match d {
        Direction::ToServer => remora_sdk::Direction::ToServer,
        Direction::ToClient => remora_sdk::Direction::ToClient,
    }
}

fn flow(f: &wit::FlowInfo) -> remora_sdk::FlowInfo {
    remora_sdk::FlowInfo {
        id: f.id,
        transport: match f.transport {
            wit::Transport::Tcp => remora_sdk::Transport::Tcp,
            wit::Transport::Udp => remora_sdk::Transport::Udp,
        },
        client_ip: f.client_ip.into(),
        client_port: f.client_port,
        server_ip: f.server_ip.into(),
        server_port: f.server_port,
    }
}

fn text(t: remora_sdk::Text) -> wit::Text {
    match t {
        remora_sdk::Text::Span(s) => wit::Text::Span(wit::Span {
            offset: s.offset,
            len: s.len,
        }),
        remora_sdk::Text::Owned(s) => wit::Text::Owned(s),
    }
}

fn value(v: remora_sdk::Value) -> wit::Value {
    match v {
        remora_sdk::Value::Boolean(b) => wit::Value::Boolean(b),
        remora_sdk::Value::Int(i) => wit::Value::Int(i),
        remora_sdk::Value::Float(f) => wit::Value::Float(f),
        remora_sdk::Value::Str(t) => wit::Value::Str(text(t)),
        remora_sdk::Value::Bytes(b) => wit::Value::Bytes(b),
        remora_sdk::Value::Pair(k, v) => wit::Value::Pair((text(k), text(v))),
    }
}

/// The same conversion the component adapter does on the guest side.
fn result(r: remora_sdk::FeedResult) -> wit::FeedResult {
    wit::FeedResult {
        consumed: r.consumed,
        skip: r.skip,
        need: r.need,
        messages: r
            .messages
            .into_iter()
            .map(|m| wit::Message {
                kind: match m.kind {
                    remora_sdk::MessageKind::Request => wit::MessageKind::Request,
                    remora_sdk::MessageKind::Response => wit::MessageKind::Response,
                    remora_sdk::MessageKind::Standalone => wit::MessageKind::Standalone,
                },
                txn: m.txn,
                start: m.start,
                fields: m
                    .fields
                    .into_iter()
                    .map(|f| wit::Field {
                        id: f.id,
                        value: value(f.value),
                    })
                    .collect(),
                body: m.body.map(|b| wit::Body {
                    data: b.data,
                    original_len: b.original_len,
                    truncated: b.truncated,
                    decoded_from: b.decoded_from,
                }),
            })
            .collect(),
        error: r.error,
        switch: r.switch.map(|s| wit::ProtocolSwitch {
            protocol: s.protocol,
            to_server: s.offsets[0],
            to_client: s.offsets[1],
            params: s.params,
        }),
    }
}

impl<D: Dissector> Native<D> {
    fn session(&mut self, s: &usize) -> Result<&mut D::Session, BackendFault> {
        self.sessions
            .get_mut(*s)
            .and_then(|s| s.as_mut())
            .ok_or_else(|| BackendFault::new("stale session"))
    }
}

impl<D: Dissector> Backend for Native<D> {
    type Session = usize;

    fn probe(
        &mut self,
        _: u16,
        f: &wit::FlowInfo,
        dir: Direction,
        data: &[u8],
    ) -> Result<wit::ProbeResult, BackendFault> {
        Ok(match D::probe(&flow(f), sdk_dir(dir), data) {
            remora_sdk::Probe::No => wit::ProbeResult::No,
            remora_sdk::Probe::NeedMore => wit::ProbeResult::NeedMore,
            remora_sdk::Probe::Yes(c) => wit::ProbeResult::Yes(c),
        })
    }

    fn open(&mut self, _: u16, f: &wit::FlowInfo) -> Result<usize, BackendFault> {
        let s = D::session(&flow(f));
        Ok(match self.free.pop() {
            Some(i) => {
                self.sessions[i] = Some(s);
                i
            }
            None => {
                self.sessions.push(Some(s));
                self.sessions.len() - 1
            }
        })
    }

    fn takeover(
        &mut self,
        s: &usize,
        previous: &str,
        params: &[(String, String)],
    ) -> Result<(), BackendFault> {
        self.session(s)?.takeover(previous, params);
        Ok(())
    }

    fn feed(
        &mut self,
        s: &usize,
        dir: Direction,
        base: u64,
        data: &[u8],
    ) -> Result<wit::FeedResult, BackendFault> {
        let mut out = std::mem::take(&mut self.out);
        let progress = self
            .session(s)?
            .feed(sdk_dir(dir), &Input::new(base, data), &mut out);
        let r = out.finish(progress);
        self.out = out;
        Ok(result(r))
    }

    fn gap(
        &mut self,
        s: &usize,
        dir: Direction,
        len: u64,
    ) -> Result<wit::FeedResult, BackendFault> {
        let mut out = std::mem::take(&mut self.out);
        self.session(s)?.gap(sdk_dir(dir), len, &mut out);
        let r = out.finish(remora_sdk::Progress::consumed(0));
        self.out = out;
        Ok(result(r))
    }

    fn end(&mut self, s: &usize, dir: Direction) -> Result<wit::FeedResult, BackendFault> {
        let mut out = std::mem::take(&mut self.out);
        self.session(s)?.end(sdk_dir(dir), &mut out);
        let r = out.finish(remora_sdk::Progress::consumed(0));
        self.out = out;
        Ok(result(r))
    }

    fn close(&mut self, s: &usize) {
        let s = *s;
        if let Some(slot) = self.sessions.get_mut(s) {
            *slot = None;
            self.free.push(s);
        }
    }
}

/// The SDK's plugin description in the host's terms.
pub fn info<D: Dissector>() -> wit::PluginInfo {
    let i = D::info();
    wit::PluginInfo {
        name: i.name,
        version: i.version,
        protocols: i
            .protocols
            .into_iter()
            .map(|p| wit::ProtocolDecl {
                name: p.name,
                flag: p.flag,
                transport: match p.transport {
                    remora_sdk::Transport::Tcp => wit::Transport::Tcp,
                    remora_sdk::Transport::Udp => wit::Transport::Udp,
                },
                ports: p.ports,
                request_summary: p.request_summary,
                response_summary: p.response_summary,
            })
            .collect(),
        fields: i
            .fields
            .into_iter()
            .map(|f| wit::FieldDecl {
                id: f.id,
                name: f.name,
                type_: match f.ty {
                    remora_sdk::FieldType::Boolean => wit::FieldType::Boolean,
                    remora_sdk::FieldType::Int => wit::FieldType::Int,
                    remora_sdk::FieldType::Float => wit::FieldType::Float,
                    remora_sdk::FieldType::Str => wit::FieldType::Str,
                    remora_sdk::FieldType::Bytes => wit::FieldType::Bytes,
                    remora_sdk::FieldType::StrList => wit::FieldType::StrList,
                    remora_sdk::FieldType::IntList => wit::FieldType::IntList,
                    remora_sdk::FieldType::StrMap => wit::FieldType::StrMap,
                },
                top_level: f.top_level,
                doc: f.doc,
            })
            .collect(),
    }
}
