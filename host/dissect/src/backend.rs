//! What the dissect stage needs from a plugin engine. The Wasm runtime is the
//! real one; benches also drive the same dissector compiled natively.

use std::fmt;

use remora_core::Direction;
use remora_runtime::{wit, Fault, PluginId, SessionId, Shard};

/// A plugin call failed: the flow's plugin is dropped, the flow goes raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFault {
    pub message: String,
    /// The call did not run because of an earlier fault (the plugin is
    /// quarantined, or the session died with its instance). Counted once,
    /// where it happened, not again for every flow it touches.
    pub consequence: bool,
}

impl BackendFault {
    pub fn new(message: impl Into<String>) -> Self {
        BackendFault {
            message: message.into(),
            consequence: false,
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
    fn close(&mut self, s: Self::Session);
    /// Call counts and latencies, when this backend measures them
    /// ([`Metered`](crate::Metered)).
    fn meters(&self) -> Option<&crate::Meters> {
        None
    }
}

fn fault(f: Fault) -> BackendFault {
    BackendFault {
        message: f.to_string(),
        consequence: matches!(f, Fault::Stale | Fault::Quarantined),
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

    fn close(&mut self, s: SessionId) {
        Shard::close(self, s)
    }
}
