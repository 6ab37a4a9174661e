//! Running a dissector natively: a host-like driver for tests and benchmarks,
//! and the thread-local stand-ins for the host imports.

use crate::host::log::Level;
use crate::{
    Direction, Dissector, FeedResult, FlowInfo, Input, Message, Output, ProtocolSwitch, Session,
};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static CONFIG: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

/// Set a configuration value `config(key)` returns on this thread (native only).
pub fn set_config(key: &str, value: &str) {
    CONFIG.with(|c| c.borrow_mut().insert(key.to_owned(), value.to_owned()));
}

/// Forget every configuration value set on this thread.
pub fn clear_config() {
    CONFIG.with(|c| c.borrow_mut().clear());
}

#[cfg_attr(
    all(target_arch = "wasm32", any(feature = "dissector", feature = "alert")),
    allow(dead_code)
)]
pub(crate) fn get_config(key: &str) -> Option<String> {
    CONFIG.with(|c| c.borrow().get(key).cloned())
}

#[cfg_attr(
    all(target_arch = "wasm32", any(feature = "dissector", feature = "alert")),
    allow(dead_code)
)]
pub(crate) fn push_log(level: Level, message: &str) {
    LOGS.with(|l| {
        let mut l = l.borrow_mut();
        if l.len() < 10_000 {
            l.push((level, message.to_owned()));
        }
    });
}

/// Log lines written on this thread since the last call (native only).
pub fn take_logs() -> Vec<(Level, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

#[derive(Default)]
struct DirBuf {
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    base: u64,
    /// Bytes still to drop from what arrives next.
    skip: u64,
    need: usize,
}

/// Drives one session the way the host does: keeps unconsumed bytes, honours
/// `consumed` / `skip` / `need`, tracks stream offsets. Messages are collected
/// with their spans resolved to owned strings (the input they pointed into is
/// gone after the call).
///
/// Host behaviour it models, for the parts the WIT leaves open:
/// - After a call that consumed or skipped something, it calls again while
///   bytes remain and `need` is met; after a call that did neither it waits
///   for new bytes.
/// - `gap` discards the unconsumed bytes of that direction (they count in the
///   stream offset) and the lost bytes first pay off an outstanding `skip`.
/// - After a `feed` that asked for a protocol switch, the session gets no
///   more calls: the switch is kept in `switch`, and bytes that arrive later
///   stay pending (`pending`, `pending_bytes`), as the host would hand them
///   to the next protocol's session.
pub struct Harness<D: Dissector> {
    session: D::Session,
    dirs: [DirBuf; 2],
    out: Output,
    /// Every message emitted so far, in order, with owned texts.
    pub messages: Vec<Message>,
    /// Every error reported so far.
    pub errors: Vec<String>,
    /// Number of `feed` calls made.
    pub calls: usize,
    /// Total bytes passed to `feed` (counting re-passed unconsumed bytes).
    pub bytes_passed: u64,
    /// Total bytes dropped through `skip`.
    pub bytes_skipped: u64,
    /// The protocol switch the session asked for; it gets no calls after it.
    pub switch: Option<ProtocolSwitch>,
}

impl<D: Dissector> Harness<D> {
    pub fn new(flow: &FlowInfo) -> Self {
        Harness {
            session: D::session(flow),
            dirs: Default::default(),
            out: Output::new(),
            messages: Vec::new(),
            errors: Vec::new(),
            calls: 0,
            bytes_passed: 0,
            bytes_skipped: 0,
            switch: None,
        }
    }

    /// A harness whose session took the flow over from `previous` with `params`.
    pub fn takeover(flow: &FlowInfo, previous: &str, params: &[(String, String)]) -> Self {
        let mut h = Self::new(flow);
        h.session.takeover(previous, params);
        h
    }

    /// A harness on `FlowInfo::tcp_test(1, port)`.
    pub fn tcp(port: u16) -> Self {
        Self::new(&FlowInfo::tcp_test(1, port))
    }

    pub fn session_mut(&mut self) -> &mut D::Session {
        &mut self.session
    }

    /// Unconsumed bytes the harness holds for `dir`.
    pub fn pending(&self, dir: Direction) -> usize {
        self.dirs[dir.index()].pending.len()
    }

    /// The unconsumed bytes of `dir` and the stream offset of the first.
    pub fn pending_bytes(&self, dir: Direction) -> (u64, &[u8]) {
        let d = &self.dirs[dir.index()];
        (d.base, &d.pending)
    }

    /// New bytes arrive in `dir`. Returns how many messages this produced.
    pub fn feed(&mut self, dir: Direction, mut bytes: &[u8]) -> usize {
        let before = self.messages.len();
        let d = &mut self.dirs[dir.index()];
        if d.skip > 0 {
            let n = d.skip.min(bytes.len() as u64);
            d.skip -= n;
            d.base += n;
            self.bytes_skipped += n;
            bytes = &bytes[n as usize..];
        }
        d.pending.extend_from_slice(bytes);
        self.pump(dir);
        self.messages.len() - before
    }

    fn pump(&mut self, dir: Direction) {
        loop {
            if self.switch.is_some() {
                return;
            }
            let d = &mut self.dirs[dir.index()];
            if d.pending.is_empty() || d.pending.len() < d.need {
                return;
            }
            let input = Input::new(d.base, &d.pending);
            let p = self.session.feed(dir, &input, &mut self.out);
            self.calls += 1;
            self.bytes_passed += d.pending.len() as u64;
            let (msgs, err) = self.out.take();
            for mut m in msgs {
                m.make_owned(&d.pending);
                self.messages.push(m);
            }
            self.errors.extend(err);
            self.switch = self.out.take_switch();
            let consumed = p.consumed.min(d.pending.len());
            d.pending.drain(..consumed);
            d.base += consumed as u64;
            let s = p.skip.min(d.pending.len() as u64);
            d.pending.drain(..s as usize);
            d.base += s;
            self.bytes_skipped += s;
            d.skip = p.skip - s;
            d.need = p.need;
            if consumed == 0 && p.skip == 0 {
                return;
            }
        }
    }

    /// `len` bytes of `dir` were lost.
    pub fn gap(&mut self, dir: Direction, len: u64) {
        if self.switch.is_some() {
            return;
        }
        let d = &mut self.dirs[dir.index()];
        d.base += d.pending.len() as u64 + len;
        d.pending.clear();
        d.need = 0;
        d.skip = d.skip.saturating_sub(len);
        self.session.gap(dir, len, &mut self.out);
        self.collect_owned_only();
    }

    /// `dir` ended.
    pub fn end(&mut self, dir: Direction) {
        if self.switch.is_some() {
            return;
        }
        self.session.end(dir, &mut self.out);
        self.collect_owned_only();
    }

    fn collect_owned_only(&mut self) {
        let (msgs, err) = self.out.take();
        for mut m in msgs {
            // gap/end have no input: any span is a dissector bug; resolve to "".
            m.make_owned(&[]);
            self.messages.push(m);
        }
        self.errors.extend(err);
        // Only `feed` may switch protocols.
        self.out.take_switch();
    }

    /// Feed `data` in `dir` in pieces cut at `cuts` (positions, any order).
    pub fn feed_split(&mut self, dir: Direction, data: &[u8], cuts: &[usize]) {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(data.len())).collect();
        cuts.sort_unstable();
        let mut prev = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            if c > prev {
                self.feed(dir, &data[prev..c]);
                prev = c;
            }
        }
    }
}

/// One raw `feed` call on a session, as the host makes it: returns the
/// WIT-shaped result (spans left as spans). For benchmarks and contract tests.
pub fn feed_once<S: Session>(
    session: &mut S,
    dir: Direction,
    base: u64,
    data: &[u8],
    out: &mut Output,
) -> FeedResult {
    let p = session.feed(dir, &Input::new(base, data), out);
    out.finish(p)
}
