//! The adapter `export_dissector!` instantiates: implements the generated
//! `Guest` traits by delegating to a [`Dissector`], converting SDK types to the
//! binding types. Not a public API.

pub use wit_bindgen;

use crate::bindings::exports::remora::plugin::dissector as exp;
use crate::bindings::remora::plugin::types as w;
use crate::{Direction, Dissector, Input, Output, Session};
use core::cell::RefCell;
use core::marker::PhantomData;

pub struct Adapter<D>(PhantomData<D>);

pub struct SessionAdapter<D: Dissector> {
    inner: RefCell<D::Session>,
}

thread_local! {
    /// One output for every session of the instance: calls never overlap
    /// (a component instance is single-threaded and not reentrant) and each
    /// call leaves it empty, so its message list and spare field lists are
    /// reused across flows instead of kept per session.
    static OUTPUT: RefCell<Output> = RefCell::new(Output::new());
}

/// Run `f` on a session with the shared output and encode what it emitted.
fn call<S>(
    session: &RefCell<S>,
    f: impl FnOnce(&mut S, &mut Output) -> crate::Progress,
) -> w::FeedResult {
    let mut s = session.borrow_mut();
    OUTPUT.with(|out| {
        let mut out = out.borrow_mut();
        let p = f(&mut s, &mut out);
        feed_result(out.finish_encoded(p))
    })
}

impl<D: Dissector> exp::Guest for Adapter<D> {
    type Session = SessionAdapter<D>;

    fn describe() -> w::PluginInfo {
        plugin_info(D::info())
    }

    fn probe(flow: w::FlowInfo, dir: w::Direction, data: Vec<u8>) -> w::ProbeResult {
        match D::probe(&flow_info(flow), direction(dir), &data) {
            crate::Probe::No => w::ProbeResult::No,
            crate::Probe::NeedMore => w::ProbeResult::NeedMore,
            crate::Probe::Yes(c) => w::ProbeResult::Yes(c.clamp(1, 100)),
        }
    }
}

impl<D: Dissector> exp::GuestSession for SessionAdapter<D> {
    fn new(flow: w::FlowInfo) -> Self {
        SessionAdapter {
            inner: RefCell::new(D::session(&flow_info(flow))),
        }
    }

    fn takeover(&self, previous: String, params: Vec<(String, String)>) {
        self.inner.borrow_mut().takeover(&previous, &params);
    }

    fn feed(&self, dir: w::Direction, base: u64, data: Vec<u8>) -> w::FeedResult {
        call(&self.inner, |s, out| {
            s.feed(direction(dir), &Input::new(base, &data), out)
        })
    }

    fn gap(&self, dir: w::Direction, len: u64) -> w::FeedResult {
        call(&self.inner, |s, out| {
            s.gap(direction(dir), len, out);
            crate::Progress::default()
        })
    }

    fn end(&self, dir: w::Direction) -> w::FeedResult {
        call(&self.inner, |s, out| {
            s.end(direction(dir), out);
            crate::Progress::default()
        })
    }
}

fn direction(d: w::Direction) -> Direction {
    match d {
        w::Direction::ToServer => Direction::ToServer,
        w::Direction::ToClient => Direction::ToClient,
    }
}

fn transport(t: crate::Transport) -> w::Transport {
    match t {
        crate::Transport::Tcp => w::Transport::Tcp,
        crate::Transport::Udp => w::Transport::Udp,
    }
}

fn flow_info(f: w::FlowInfo) -> crate::FlowInfo {
    crate::FlowInfo {
        id: f.id,
        transport: match f.transport {
            w::Transport::Tcp => crate::Transport::Tcp,
            w::Transport::Udp => crate::Transport::Udp,
        },
        client_ip: f.client_ip,
        client_port: f.client_port,
        server_ip: f.server_ip,
        server_port: f.server_port,
    }
}

fn plugin_info(i: crate::PluginInfo) -> w::PluginInfo {
    w::PluginInfo {
        name: i.name,
        version: i.version,
        protocols: i
            .protocols
            .into_iter()
            .map(|p| w::ProtocolDecl {
                name: p.name,
                flag: p.flag,
                transport: transport(p.transport),
                ports: p.ports,
                request_summary: p.request_summary,
                response_summary: p.response_summary,
            })
            .collect(),
        fields: i
            .fields
            .into_iter()
            .map(|f| w::FieldDecl {
                id: f.id,
                name: f.name,
                type_: match f.ty {
                    crate::FieldType::Boolean => w::FieldType::Boolean,
                    crate::FieldType::Int => w::FieldType::Int,
                    crate::FieldType::Float => w::FieldType::Float,
                    crate::FieldType::Str => w::FieldType::Str,
                    crate::FieldType::Bytes => w::FieldType::Bytes,
                    crate::FieldType::StrList => w::FieldType::StrList,
                    crate::FieldType::IntList => w::FieldType::IntList,
                    crate::FieldType::StrMap => w::FieldType::StrMap,
                },
                top_level: f.top_level,
                doc: f.doc,
            })
            .collect(),
    }
}

/// `r` has no messages of its own: `finish_encoded` took them as `messages`.
fn feed_result((r, messages): (crate::FeedResult, Vec<u8>)) -> w::FeedResult {
    w::FeedResult {
        consumed: r.consumed,
        skip: r.skip,
        need: r.need,
        messages,
        error: r.error,
        switch: r.switch.map(|s| w::ProtocolSwitch {
            protocol: s.protocol,
            to_server: s.offsets[0],
            to_client: s.offsets[1],
            params: s.params,
        }),
    }
}
