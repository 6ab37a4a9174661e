//! The adapter `export_dissector!` instantiates: implements the generated
//! `Guest` traits by delegating to a [`Dissector`], converting SDK types to the
//! binding types. Not a public API.

pub use wit_bindgen;

use crate::bindings::exports::remora::plugin::dissector as exp;
use crate::bindings::remora::plugin::types as w;
use crate::wire::{CallKind, RawCall, CALL_BYTES};
use crate::{Direction, Dissector, Input, Output, Session};
use core::cell::RefCell;
use core::marker::PhantomData;

pub struct Adapter<D>(PhantomData<D>);

/// Open sessions by id. Type-erased so that one instance-wide table serves
/// whatever `Dissector` the crate exports (statics cannot be generic).
#[derive(Default)]
struct Sessions {
    slots: Vec<Option<Box<dyn Session>>>,
    free: Vec<u32>,
}

impl Sessions {
    fn insert(&mut self, s: Box<dyn Session>) -> u32 {
        match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(s);
                id
            }
            None => {
                self.slots.push(Some(s));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// The host only names ids it was given: anything else is its bug, and
    /// trapping makes it visible there.
    fn get(&mut self, id: u32) -> &mut dyn Session {
        match self.slots.get_mut(id as usize) {
            Some(Some(s)) => s.as_mut(),
            _ => panic!("remora-sdk: no open session {id}"),
        }
    }

    fn remove(&mut self, id: u32) -> Option<Box<dyn Session>> {
        let gone = self.slots.get_mut(id as usize)?.take();
        if gone.is_some() {
            self.free.push(id);
        }
        gone
    }
}

thread_local! {
    // A component instance is single-threaded and never re-entered.
    static SESSIONS: RefCell<Sessions> = RefCell::new(Sessions::default());
    /// One output for every call: each call leaves it empty, so its
    /// allocations serve the next.
    static OUTPUT: RefCell<Output> = RefCell::new(Output::new());
}

/// Calls of one session's feed: the loop the host would otherwise make
/// across the boundary, bounded the same way.
const MAX_FEEDS_PER_CALL: usize = 64;

/// Feed `data` to `s`, and again on what is left while a call makes
/// progress and what is left reaches its `need`: one answer for all, its
/// spans relative to `data`. Out-of-range answers are passed on unchanged
/// for the host to reject.
fn feed_all(
    s: &mut dyn Session,
    dir: Direction,
    base: u64,
    data: &[u8],
    out: &mut Output,
) -> crate::Progress {
    let len = data.len();
    let mut off = 0usize;
    let mut p = crate::Progress::default();
    for _ in 0..MAX_FEEDS_PER_CALL {
        out.set_span_shift(off);
        p = s.feed(dir, &Input::new(base + off as u64, &data[off..]), out);
        let left = len - off;
        if p.consumed > left {
            p.consumed = p.consumed.saturating_add(off);
            return p;
        }
        let rest = left - p.consumed;
        let skipped = p.skip.min(rest as u64) as usize;
        let done = p.consumed + skipped;
        off += done;
        p.consumed = off;
        p.skip -= skipped as u64;
        // A full output goes to the host first; it calls again for the rest.
        let again = done > 0
            && off < len
            && len - off >= p.need
            && !out.has_error()
            && !out.has_switch()
            && !out.is_full();
        if !again {
            break;
        }
    }
    p
}

/// What a feed left of its input, for a `more` call on the same session
/// and direction later in the batch.
struct Carry {
    session: u32,
    dir: Direction,
    /// The input of that feed: a range of the batch's data, or owned when it
    /// was itself a carry followed by new bytes.
    input: CarryInput,
    /// Bytes at its front the session is done with.
    done: usize,
    /// Bytes still to drop from what follows.
    skip: u64,
    need: usize,
}

enum CarryInput {
    Data(core::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl CarryInput {
    /// The input's bytes (`data`: the batch's).
    fn bytes<'d>(&'d self, data: &'d [u8]) -> &'d [u8] {
        match self {
            CarryInput::Data(r) => &data[r.clone()],
            CarryInput::Owned(v) => v,
        }
    }
}

/// One `run`: walks the batch's data and keeps what each feed left.
struct Batch<'a> {
    data: &'a [u8],
    pos: usize,
    carries: Vec<Carry>,
}

impl<'a> Batch<'a> {
    fn new(data: &'a [u8]) -> Self {
        Batch {
            data,
            pos: 0,
            carries: Vec::new(),
        }
    }

    /// The next `len` bytes of the batch's data.
    fn take(&mut self, len: u64) -> core::ops::Range<usize> {
        let end = self
            .pos
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        assert!(
            end <= self.data.len(),
            "remora-sdk: call beyond the batch's data"
        );
        let r = self.pos..end;
        self.pos = end;
        r
    }

    fn call(&mut self, s: &mut dyn Session, c: &RawCall, out: &mut Output) -> crate::Progress {
        let dir = c.dir;
        match c.kind {
            CallKind::Feed => {
                let r = self.take(c.len);
                let p = feed_all(s, dir, c.base, &self.data[r.clone()], out);
                self.keep(c.session, dir, CarryInput::Data(r), p);
                p
            }
            CallKind::More => {
                let r = self.take(c.len);
                let Some(i) = self
                    .carries
                    .iter()
                    .position(|k| k.session == c.session && k.dir == dir)
                else {
                    panic!("remora-sdk: `more` without an earlier feed in the batch");
                };
                let k = self.carries.swap_remove(i);
                let data = self.data;
                let carried = k.input.bytes(data).get(k.done..).unwrap_or(&[]);
                let drop = k.skip.min(r.len() as u64) as usize;
                let fresh = r.start + drop..r.end;
                // With nothing carried (the earlier call consumed all it
                // had: the usual case) the input is the new bytes where they
                // lie; only a message cut across the two calls is copied
                // together.
                let input = if carried.is_empty() {
                    CarryInput::Data(fresh)
                } else {
                    let mut v = Vec::with_capacity(carried.len() + fresh.len());
                    v.extend_from_slice(carried);
                    v.extend_from_slice(&data[fresh]);
                    CarryInput::Owned(v)
                };
                let bytes = input.bytes(data);
                let skip = k.skip - drop as u64;
                // `base` is the stream offset of the new bytes; the input
                // starts with the carried ones before them.
                let base = c.base + drop as u64 - carried.len() as u64;
                let p = if skip > 0 || bytes.is_empty() || bytes.len() < k.need {
                    // Nothing to offer yet: the answer repeats the state.
                    crate::Progress {
                        consumed: 0,
                        skip,
                        need: k.need,
                    }
                } else {
                    feed_all(s, dir, base, bytes, out)
                };
                self.keep(c.session, dir, input, p);
                p
            }
            CallKind::Gap => {
                let _ = self.forget(c.session, dir);
                s.gap(dir, c.len, out);
                crate::Progress::default()
            }
            CallKind::End => {
                let _ = self.forget(c.session, dir);
                s.end(dir, out);
                crate::Progress::default()
            }
            // Handled by `run`, which owns the session table.
            CallKind::Close => crate::Progress::default(),
        }
    }

    fn forget(&mut self, session: u32, dir: Direction) -> Option<Carry> {
        let i = self
            .carries
            .iter()
            .position(|k| k.session == session && k.dir == dir)?;
        Some(self.carries.swap_remove(i))
    }

    fn keep(&mut self, session: u32, dir: Direction, input: CarryInput, p: crate::Progress) {
        let _ = self.forget(session, dir);
        let len = input.bytes(self.data).len();
        // Out-of-range answers reach the host, which rejects them; nothing
        // is carried past them.
        let done = p.consumed.min(len);
        self.carries.push(Carry {
            session,
            dir,
            input,
            done,
            skip: p.skip,
            need: p.need,
        });
    }
}

impl<D: Dissector> exp::Guest for Adapter<D> {
    fn describe() -> w::PluginInfo {
        plugin_info(D::info())
    }

    fn probe(flow: w::FlowInfo, dir: w::Direction, data: Vec<u8>) -> w::ProbeResult {
        let dir = match dir {
            w::Direction::ToServer => Direction::ToServer,
            w::Direction::ToClient => Direction::ToClient,
        };
        match D::probe(&flow_info(flow), dir, &data) {
            crate::Probe::No => w::ProbeResult::No,
            crate::Probe::NeedMore => w::ProbeResult::NeedMore,
            crate::Probe::Yes(c) => w::ProbeResult::Yes(c.clamp(1, 100)),
        }
    }

    fn open(flow: w::FlowInfo) -> u32 {
        let s: Box<dyn Session> = Box::new(D::session(&flow_info(flow)));
        SESSIONS.with(|t| t.borrow_mut().insert(s))
    }

    fn takeover(session: u32, previous: String, params: Vec<(String, String)>) {
        SESSIONS.with(|t| t.borrow_mut().get(session).takeover(&previous, &params));
    }

    fn run(calls: Vec<u8>, data: Vec<u8>) -> Vec<u8> {
        SESSIONS.with(|t| {
            OUTPUT.with(|out| {
                let mut t = t.borrow_mut();
                let mut out = out.borrow_mut();
                let mut batch = Batch::new(&data);
                let mut answers = Vec::with_capacity(ANSWER_GUESS * calls.len() / CALL_BYTES);
                for c in crate::wire::calls(&calls) {
                    let progress = if c.kind == CallKind::Close {
                        batch.forget(c.session, Direction::ToServer);
                        batch.forget(c.session, Direction::ToClient);
                        t.remove(c.session);
                        crate::Progress::default()
                    } else {
                        batch.call(t.get(c.session), &c, &mut out)
                    };
                    out.finish_into(progress, &mut answers);
                }
                answers
            })
        })
    }
}

/// Bytes reserved per call for the answers: one header and a message or
/// two of a few fields, so most batches never grow the list.
const ANSWER_GUESS: usize = 128;

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
        client_ip: ip_addr(f.client_ip),
        client_port: f.client_port,
        server_ip: ip_addr(f.server_ip),
        server_port: f.server_port,
    }
}

fn ip_addr(a: w::IpAddress) -> std::net::IpAddr {
    match a {
        w::IpAddress::V4(v) => std::net::Ipv4Addr::from_bits(v).into(),
        w::IpAddress::V6((hi, lo)) => {
            std::net::Ipv6Addr::from_bits((u128::from(hi) << 64) | u128::from(lo)).into()
        }
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
