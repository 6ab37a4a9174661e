//! Counters of a running pipeline, readable from other threads (the API,
//! /metrics) without stopping it.
//!
//! Nothing here is touched per packet: the reader publishes at every flush
//! or tick, each shard at every tick and at the end, each into its own
//! mutex, so readers contend with one writer at a time and only briefly.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use remora_core::Drops;
use remora_decode::DecodeStats;
use remora_dissect::DissectCounters;
use remora_flow::FlowCounters;
use remora_source::SourceStats;

use crate::recent::{FlowRecord, RecentFlows};

/// What the reader thread publishes.
#[derive(Clone, Debug, Default)]
pub struct ReaderStats {
    /// The file or interface read.
    pub source_name: String,
    pub live: bool,
    /// False once the run ended.
    pub running: bool,
    pub source: SourceStats,
    pub decode: DecodeStats,
    /// Frames read (decoded or not).
    pub packets: u64,
    pub updated: Option<SystemTime>,
}

/// What one shard publishes.
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    /// `packets`, `payload_bytes`, `flows_active` (tracked now) and drops.
    pub flows: FlowCounters,
    /// `entries`, `plugin_calls`, `parse_errors`, `plugin_faults` and drops.
    pub dissect: DissectCounters,
    /// Flow records pushed out of the bounded recent-flows record.
    pub recent_flows_forgotten: u64,
    pub updated: Option<SystemTime>,
}

/// A consistent-per-part copy of the counters.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    pub reader: ReaderStats,
    pub shards: Vec<ShardStats>,
}

impl StatsSnapshot {
    pub fn flows(&self) -> FlowCounters {
        let mut f = FlowCounters::default();
        for s in &self.shards {
            f.merge(&s.flows);
        }
        f
    }

    pub fn dissect(&self) -> DissectCounters {
        let mut d = DissectCounters::default();
        for s in &self.shards {
            d.merge(&s.dissect);
        }
        d
    }

    /// Our own drops, every stage, by reason (the kernel's are in
    /// `reader.source`).
    pub fn drops(&self) -> Drops {
        let mut d = self.reader.decode.drops;
        for s in &self.shards {
            d.merge(&s.flows.drops);
            d.merge(&s.dissect.drops);
        }
        d
    }
}

struct ShardSlot {
    stats: ShardStats,
    recent: Vec<FlowRecord>,
}

/// Shared between the pipeline and whoever reports on it; pass it in
/// [`PipelineConfig::stats`](crate::PipelineConfig::stats).
#[derive(Default)]
pub struct LiveStats {
    reader: Mutex<ReaderStats>,
    /// One slot per shard, replaced at the start of each run.
    shards: Mutex<Vec<Arc<Mutex<ShardSlot>>>>,
}

impl std::fmt::Debug for LiveStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStats").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking shard must not take the stats endpoint down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveStats {
    pub fn new() -> Arc<Self> {
        Arc::new(LiveStats::default())
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let slots = lock(&self.shards).clone();
        StatsSnapshot {
            reader: lock(&self.reader).clone(),
            shards: slots.iter().map(|s| lock(s).stats.clone()).collect(),
        }
    }

    /// The recently seen flows of every shard, by flow id.
    pub fn recent_flows(&self) -> Vec<FlowRecord> {
        let slots = lock(&self.shards).clone();
        let mut out: Vec<FlowRecord> = Vec::new();
        for s in &slots {
            out.extend(lock(s).recent.iter().cloned());
        }
        out.sort_unstable_by_key(|f| f.id);
        out
    }

    pub(crate) fn start(
        &self,
        shards: usize,
        source_name: &str,
        live: bool,
    ) -> Vec<ShardPublisher> {
        *lock(&self.reader) = ReaderStats {
            source_name: source_name.to_string(),
            live,
            running: true,
            updated: Some(SystemTime::now()),
            ..ReaderStats::default()
        };
        let slots: Vec<Arc<Mutex<ShardSlot>>> = (0..shards)
            .map(|_| {
                Arc::new(Mutex::new(ShardSlot {
                    stats: ShardStats::default(),
                    recent: Vec::new(),
                }))
            })
            .collect();
        *lock(&self.shards) = slots.clone();
        slots
            .into_iter()
            .map(|slot| ShardPublisher { slot })
            .collect()
    }

    /// Only the first `n` shards run (the system refused threads for the
    /// others): the rest are not reported.
    pub(crate) fn keep_shards(&self, n: usize) {
        lock(&self.shards).truncate(n);
    }

    pub(crate) fn publish_reader(
        &self,
        source: SourceStats,
        decode: DecodeStats,
        packets: u64,
        running: bool,
    ) {
        let mut r = lock(&self.reader);
        r.source = source;
        r.decode = decode;
        r.packets = packets;
        r.running = running;
        r.updated = Some(SystemTime::now());
    }
}

/// A shard's handle on its slot.
#[derive(Clone)]
pub(crate) struct ShardPublisher {
    slot: Arc<Mutex<ShardSlot>>,
}

impl ShardPublisher {
    pub(crate) fn publish(
        &self,
        flows: FlowCounters,
        dissect: DissectCounters,
        recent: &mut RecentFlows,
    ) {
        let mut slot = lock(&self.slot);
        slot.stats = ShardStats {
            flows,
            dissect,
            recent_flows_forgotten: recent.forgotten,
            updated: Some(SystemTime::now()),
        };
        if recent.dirty {
            slot.recent.clear();
            slot.recent.extend(recent.iter().cloned());
            recent.dirty = false;
        }
    }
}
