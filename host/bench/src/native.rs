//! A dissector compiled natively behind the same `Backend` the Wasm runtime
//! implements, so that the benchmark measures exactly the boundary's cost.

use remora_core::Direction;
use remora_dissect::{Backend, BackendFault};
use remora_runtime::{wire, wit, RuntimeConfig};
use remora_sdk::{Dissector, Input, Output, Session};

use bytes::Bytes;

pub struct Native<D: Dissector> {
    sessions: Vec<Option<D::Session>>,
    free: Vec<usize>,
    out: Output,
    /// A call's encoded messages, between the SDK and the host's check.
    encoded: Vec<u8>,
    /// Bitset of declared field ids, as the runtime keeps it per plugin.
    fields: Box<[u64; 1024]>,
    limits: RuntimeConfig,
}

impl<D: Dissector> Default for Native<D> {
    fn default() -> Self {
        let mut fields = Box::new([0u64; 1024]);
        for f in D::info().fields {
            fields[usize::from(f.id) / 64] |= 1 << (f.id % 64);
        }
        Native {
            sessions: Vec::new(),
            free: Vec::new(),
            out: Output::new(),
            encoded: Vec::new(),
            fields,
            limits: RuntimeConfig::default(),
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

impl<D: Dissector> Native<D> {
    fn session(&mut self, s: &usize) -> Result<&mut D::Session, BackendFault> {
        self.sessions
            .get_mut(*s)
            .and_then(|s| s.as_mut())
            .ok_or_else(|| BackendFault::new("stale session"))
    }

    /// The call's answer as the runtime makes it from a plugin's: the
    /// encoded messages checked against the same limits (only the crossing
    /// of the boundary is left out).
    fn answer(
        &mut self,
        progress: remora_sdk::Progress,
        data_len: usize,
    ) -> Result<wit::FeedResult, BackendFault> {
        self.out.take_encoded(&mut self.encoded);
        let limits = wire::Limits {
            data_len,
            fields: &self.fields,
            max_messages: self.limits.max_messages_per_call,
            max_body: self.limits.max_body_bytes,
            max_output: self.limits.max_output_bytes,
        };
        let messages = wire::Messages::check(Bytes::copy_from_slice(&self.encoded), &limits)
            .map_err(BackendFault::new)?;
        Ok(wit::FeedResult {
            consumed: u32::try_from(progress.consumed).unwrap_or(u32::MAX),
            skip: progress.skip,
            need: u32::try_from(progress.need).unwrap_or(u32::MAX),
            messages,
            error: self.out.take_error(),
            switch: self.out.take_switch().map(|s| {
                Box::new(wit::ProtocolSwitch {
                    protocol: s.protocol,
                    to_server: s.offsets[0],
                    to_client: s.offsets[1],
                    params: s.params,
                })
            }),
        })
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
        self.out = out;
        self.answer(progress, data.len())
    }

    fn gap(
        &mut self,
        s: &usize,
        dir: Direction,
        len: u64,
    ) -> Result<wit::FeedResult, BackendFault> {
        let mut out = std::mem::take(&mut self.out);
        self.session(s)?.gap(sdk_dir(dir), len, &mut out);
        self.out = out;
        self.answer(remora_sdk::Progress::consumed(0), 0)
    }

    fn end(&mut self, s: &usize, dir: Direction) -> Result<wit::FeedResult, BackendFault> {
        let mut out = std::mem::take(&mut self.out);
        self.session(s)?.end(sdk_dir(dir), &mut out);
        self.out = out;
        self.answer(remora_sdk::Progress::consumed(0), 0)
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
