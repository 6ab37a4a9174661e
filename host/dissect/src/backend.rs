//! What the dissect stage needs from a plugin engine. The Wasm runtime is the
//! real one; benches also drive the same dissector compiled natively.

use std::fmt;

use remora_core::Direction;
use remora_runtime::{wit, Call, Fault, PluginId, SessionId, Shard};

/// A plugin call failed: the flow's plugin is dropped, the flow goes raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFault {
    pub message: String,
    /// The call did not run because of an earlier fault (the plugin is
    /// quarantined, or the session died with its instance). Counted once,
    /// where it happened, not again for every flow it touches.
    pub consequence: bool,
    /// Nothing failed: the plugin's instance had no room for another
    /// session, so the flow is raw (counted as `plugin_session_limit`).
    pub refused: bool,
}

impl BackendFault {
    pub fn new(message: impl Into<String>) -> Self {
        BackendFault {
            message: message.into(),
            consequence: false,
            refused: false,
        }
    }
}

impl fmt::Display for BackendFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub fn wit_dir(d: Direction) -> wit::Direction {
    match d {
        Direction::ToServer => wit::Direction::ToServer,
        Direction::ToClient => wit::Direction::ToClient,
    }
}

/// One call of a batch: [`Backend::run`].
pub struct Job<'a, S> {
    pub session: &'a S,
    pub kind: wit::CallKind,
    pub dir: Direction,
    /// Feed: stream offset of its first byte.
    pub base: u64,
    /// Feed: bytes of the batch's data it takes (back to back, in order);
    /// gap: bytes lost; end: 0.
    pub len: u64,
}

/// Bytes of a batch's data a job takes.
pub(crate) fn job_bytes<S>(j: &Job<'_, S>) -> usize {
    match j.kind {
        wit::CallKind::Feed | wit::CallKind::More => usize::try_from(j.len).unwrap_or(usize::MAX),
        wit::CallKind::Gap | wit::CallKind::End | wit::CallKind::Close => 0,
    }
}

/// What a direction's last feed in a batch left, for a `more` call after it
/// (see [`Backend::run`]'s default).
struct Carry<'s, S> {
    session: &'s S,
    dir: Direction,
    /// That call's input: where it lies in the batch's data, or (a message
    /// cut across two calls) the carried bytes joined with the new ones.
    input: CarryInput,
    /// Bytes at its front the plugin is done with (consumed, skipped).
    done: usize,
    /// Still to drop from what follows.
    skip: u64,
    need: u32,
}

/// The SDK's guest-side twin is `remora_sdk::__private::CarryInput`.
enum CarryInput {
    Data(std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl CarryInput {
    fn bytes<'d>(&'d self, data: &'d [u8]) -> &'d [u8] {
        match self {
            CarryInput::Data(r) => data.get(r.clone()).unwrap_or(&[]),
            CarryInput::Owned(v) => v,
        }
    }
}

impl<S> Carry<'_, S> {
    fn after(&mut self, r: &Result<wit::FeedResult, BackendFault>, input_len: usize) {
        if let Ok(r) = r {
            let consumed = (r.consumed as usize).min(input_len);
            let skipped = r.skip.min((input_len - consumed) as u64) as usize;
            self.done = consumed + skipped;
            self.skip = r.skip - skipped as u64;
            self.need = r.need;
        }
    }
}

/// One call at a time, with `more` calls continuing from the carry: the
/// default [`Backend::run`].
pub(crate) fn run_one_by_one<'s, B: Backend + ?Sized>(
    b: &mut B,
    jobs: &[Job<'s, B::Session>],
    data: &[u8],
) -> Vec<Result<wit::FeedResult, BackendFault>> {
    let mut pos = 0usize;
    let mut carries: Vec<Carry<'s, B::Session>> = Vec::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for j in jobs {
        let n = job_bytes(j);
        let end = pos.saturating_add(n);
        let range = if end <= data.len() { pos..end } else { 0..0 };
        pos = end;
        let found = carries
            .iter()
            .position(|c| std::ptr::eq(c.session, j.session) && c.dir == j.dir);
        let answer = match j.kind {
            wit::CallKind::Feed => {
                let bytes = &data[range.clone()];
                let r = b.feed(j.session, j.dir, j.base, bytes);
                let mut c = Carry {
                    session: j.session,
                    dir: j.dir,
                    input: CarryInput::Data(range),
                    done: 0,
                    skip: 0,
                    need: 0,
                };
                c.after(&r, bytes.len());
                match found {
                    Some(i) => carries[i] = c,
                    None => carries.push(c),
                }
                r
            }
            wit::CallKind::More => {
                let Some(i) = found else {
                    answers.push(Err(BackendFault::new("`more` without an earlier feed")));
                    continue;
                };
                let c = &mut carries[i];
                let carried = c.input.bytes(data).get(c.done..).unwrap_or(&[]);
                let kept = carried.len();
                let drop = c.skip.min(range.len() as u64) as usize;
                let fresh = range.start + drop..range.end;
                // Nothing carried (the usual case): the new bytes where they lie.
                let input = if carried.is_empty() {
                    CarryInput::Data(fresh)
                } else {
                    let mut v = Vec::with_capacity(kept + fresh.len());
                    v.extend_from_slice(carried);
                    v.extend_from_slice(&data[fresh]);
                    CarryInput::Owned(v)
                };
                c.skip -= drop as u64;
                let base = j.base + drop as u64 - kept as u64;
                let bytes = input.bytes(data);
                let r = if c.skip > 0 || bytes.is_empty() || bytes.len() < c.need as usize {
                    Ok(wit::FeedResult {
                        skip: c.skip,
                        need: c.need,
                        ..wit::FeedResult::default()
                    })
                } else {
                    b.feed(j.session, j.dir, base, bytes)
                };
                let input_len = bytes.len();
                c.input = input;
                c.done = 0;
                c.after(&r, input_len);
                r
            }
            wit::CallKind::Gap => {
                if let Some(i) = found {
                    carries.swap_remove(i);
                }
                b.gap(j.session, j.dir, j.len)
            }
            wit::CallKind::End => {
                if let Some(i) = found {
                    carries.swap_remove(i);
                }
                b.end(j.session, j.dir)
            }
            wit::CallKind::Close => {
                carries.retain(|c| !std::ptr::eq(c.session, j.session));
                b.close(j.session);
                Ok(wit::FeedResult::default())
            }
        };
        answers.push(answer);
    }
    answers
}

/// Every job of a batch that faulted as a whole gets the fault: the first
/// counts it, the others are its consequence.
pub(crate) fn batch_fault<T>(n: usize, f: BackendFault) -> Vec<Result<T, BackendFault>> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let mut f = f.clone();
        f.consequence |= i > 0;
        v.push(Err(f));
    }
    v
}

/// One shard's view of the loaded plugins. `plugin` is the catalog index.
pub trait Backend {
    type Session;
    fn probe(
        &mut self,
        plugin: u16,
        flow: &wit::FlowInfo,
        dir: Direction,
        data: &[u8],
    ) -> Result<wit::ProbeResult, BackendFault>;
    fn open(&mut self, plugin: u16, flow: &wit::FlowInfo) -> Result<Self::Session, BackendFault>;
    /// The new session `s` takes the flow over from protocol `previous`.
    fn takeover(
        &mut self,
        s: &Self::Session,
        previous: &str,
        params: &[(String, String)],
    ) -> Result<(), BackendFault>;
    fn feed(
        &mut self,
        s: &Self::Session,
        dir: Direction,
        base: u64,
        data: &[u8],
    ) -> Result<wit::FeedResult, BackendFault>;
    fn gap(
        &mut self,
        s: &Self::Session,
        dir: Direction,
        len: u64,
    ) -> Result<wit::FeedResult, BackendFault>;
    fn end(&mut self, s: &Self::Session, dir: Direction) -> Result<wit::FeedResult, BackendFault>;
    /// Runs `jobs` (all on sessions of `plugin`) in order and answers each;
    /// feeds take `data` back to back, and a `more` continues from what
    /// the direction's earlier call in the batch left. An engine with a
    /// costly boundary crosses it once for the batch; this default makes
    /// one call per job.
    fn run(
        &mut self,
        plugin: u16,
        jobs: &[Job<'_, Self::Session>],
        data: &[u8],
    ) -> Vec<Result<wit::FeedResult, BackendFault>> {
        let _ = plugin;
        run_one_by_one(self, jobs, data)
    }
    /// Ends a session (after the calls that ran on it).
    fn close(&mut self, s: &Self::Session);
    /// Call counts and latencies, when this backend measures them
    /// ([`Metered`](crate::Metered)).
    fn meters(&self) -> Option<&crate::Meters> {
        None
    }
    /// Plugin instances replaced so far, when this backend replaces them.
    fn renewals(&self) -> u64 {
        0
    }
}

fn fault(f: Fault) -> BackendFault {
    BackendFault {
        message: f.to_string(),
        consequence: matches!(f, Fault::Stale | Fault::Quarantined),
        refused: matches!(f, Fault::SessionLimit { .. }),
    }
}

impl Backend for Shard {
    type Session = SessionId;

    fn probe(
        &mut self,
        plugin: u16,
        flow: &wit::FlowInfo,
        dir: Direction,
        data: &[u8],
    ) -> Result<wit::ProbeResult, BackendFault> {
        Shard::probe(self, PluginId(plugin), flow, wit_dir(dir), data).map_err(fault)
    }

    fn open(&mut self, plugin: u16, flow: &wit::FlowInfo) -> Result<SessionId, BackendFault> {
        Shard::open(self, PluginId(plugin), flow).map_err(fault)
    }

    fn takeover(
        &mut self,
        s: &SessionId,
        previous: &str,
        params: &[(String, String)],
    ) -> Result<(), BackendFault> {
        Shard::takeover(self, s, previous, params).map_err(fault)
    }

    fn feed(
        &mut self,
        s: &SessionId,
        dir: Direction,
        base: u64,
        data: &[u8],
    ) -> Result<wit::FeedResult, BackendFault> {
        Shard::feed(self, s, wit_dir(dir), base, data).map_err(fault)
    }

    fn gap(
        &mut self,
        s: &SessionId,
        dir: Direction,
        len: u64,
    ) -> Result<wit::FeedResult, BackendFault> {
        Shard::gap(self, s, wit_dir(dir), len).map_err(fault)
    }

    fn end(&mut self, s: &SessionId, dir: Direction) -> Result<wit::FeedResult, BackendFault> {
        Shard::end(self, s, wit_dir(dir)).map_err(fault)
    }

    fn run(
        &mut self,
        plugin: u16,
        jobs: &[Job<'_, SessionId>],
        data: &[u8],
    ) -> Vec<Result<wit::FeedResult, BackendFault>> {
        let calls: Vec<Call<'_>> = jobs
            .iter()
            .map(|j| Call {
                session: j.session,
                kind: j.kind,
                dir: wit_dir(j.dir),
                base: j.base,
                len: j.len,
            })
            .collect();
        match Shard::run(self, PluginId(plugin), &calls, data) {
            Ok(answers) => answers.into_iter().map(|a| a.map_err(fault)).collect(),
            Err(f) => batch_fault(jobs.len(), fault(f)),
        }
    }

    fn close(&mut self, s: &SessionId) {
        Shard::close(self, s)
    }

    fn renewals(&self) -> u64 {
        Shard::renewals(self)
    }
}
