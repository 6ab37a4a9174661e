//! The topology: source ─► decode ─► flows ─► reassembly ─► dissect ─► entries.
//!
//! One reader thread reads and decodes frames and shards packets by the
//! symmetric hash of their flow key; each shard thread owns its flow table,
//! reassembly buffers and plugin instances, so the hot path takes no locks.
//! A collector merges the shards' entries back into one deterministic order.
//!
//! Determinism: every packet gets a global sequence number; a flow's id is the
//! sequence number of its first packet; time-driven work (idle expiry, gap
//! timeouts) happens at "ticks" the reader inserts at the same points for all
//! shards. Entries are ordered by the key of the event that finished them, so
//! the output is the same for any number of threads (as long as no per-shard
//! limit is hit, since limits are split across shards).

mod merge;
mod shard;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remora_core::{Drops, Timestamp};
use remora_decode::{DecodeConfig, DecodeStats, Decoded, Decoder};
use remora_dissect::{Backend, DissectConfig, DissectCounters};
use remora_entry::{Catalog, Entry};
use remora_flow::{FlowConfig, FlowCounters};
use remora_source::{CaptureReader, SourceError};

pub use shard::OrderKey;
use shard::{Batch, Item, ShardWorker};

/// How far the pipeline runs; earlier stops exist for benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Source,
    Decode,
    Flows,
    Dissect,
}

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Shard threads; 1 runs everything on the calling thread.
    pub threads: usize,
    pub decode: DecodeConfig,
    /// Limits for the whole pipeline; each shard gets its share.
    pub flow: FlowConfig,
    pub dissect: DissectConfig,
    pub stop_after: Stage,
    /// Ticks happen every this much capture time ...
    pub tick_us: i64,
    /// ... or every this many packets, whichever comes first.
    pub tick_packets: u64,
    /// Set to stop reading early (the consumer went away, e.g. a closed
    /// pipe); what was read is still finished and counted.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            decode: DecodeConfig::default(),
            flow: FlowConfig::default(),
            dissect: DissectConfig::default(),
            stop_after: Stage::Dissect,
            tick_us: 1_000_000,
            tick_packets: 65_536,
            cancel: None,
        }
    }
}

/// Snapshot for a progress bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub bytes: u64,
    pub total_bytes: Option<u64>,
    pub packets: u64,
    pub entries: u64,
}

/// Everything counted in a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub packets: u64,
    pub bytes_read: u64,
    pub decode: DecodeStats,
    pub flows: FlowCounters,
    pub dissect: DissectCounters,
    pub entries: u64,
    /// The capture ended in damage; everything before it was processed.
    pub source_error: Option<SourceError>,
    pub elapsed: Duration,
}

impl Summary {
    /// Drops of every stage, by reason.
    pub fn drops(&self) -> Drops {
        let mut d = self.decode.drops;
        d.merge(&self.flows.drops);
        d.merge(&self.dissect.drops);
        d
    }
}

/// Calls the progress callback about ten times a second, checking the clock
/// only every few thousand packets.
struct Reporter {
    last: Instant,
}

impl Reporter {
    fn new() -> Self {
        Reporter {
            last: Instant::now(),
        }
    }

    fn maybe(
        &mut self,
        packets: u64,
        reader: &CaptureReader,
        entries: &AtomicU64,
        progress: &mut dyn FnMut(&Progress),
    ) {
        if packets.is_multiple_of(4096) && self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            progress(&Progress {
                bytes: reader.bytes_consumed(),
                total_bytes: reader.total_bytes(),
                packets,
                entries: entries.load(Ordering::Relaxed),
            });
        }
    }
}

/// Packets per batch sent to a shard: large enough to amortise channel
/// costs, small enough that a batch's payload stays in cache between the
/// reader copying it and the shard reading it (measured: 64 beats 32, 256
/// and 1024 on the HTTP/1 benchmark, with a third of the memory of 256).
const BATCH_PACKETS: usize = 64;
/// Batches in flight per shard before the reader waits (back-pressure).
const QUEUE_BATCHES: usize = 16;

struct Ticker {
    every_us: i64,
    every_packets: u64,
    next_ts: Option<i64>,
    next_seq: u64,
}

impl Ticker {
    fn new(cfg: &PipelineConfig) -> Self {
        Ticker {
            every_us: cfg.tick_us,
            every_packets: cfg.tick_packets,
            next_ts: None,
            next_seq: cfg.tick_packets,
        }
    }

    /// Is a tick due after the packet with this sequence number and time?
    fn due(&mut self, seq: u64, ts: Timestamp) -> bool {
        let next_ts = *self.next_ts.get_or_insert(ts.0 + self.every_us);
        if seq + 1 >= self.next_seq || ts.0 >= next_ts {
            self.next_seq = seq + 1 + self.every_packets;
            self.next_ts = Some(ts.0.max(next_ts) + self.every_us);
            true
        } else {
            false
        }
    }
}

/// Run the pipeline over a capture. `make_backend` is called once in each
/// shard thread. Entries reach `sink` in deterministic order, ids assigned.
pub fn run<B, F>(
    reader: &mut CaptureReader,
    cfg: &PipelineConfig,
    make_backend: F,
    catalog: Arc<Catalog>,
    sink: &mut (dyn FnMut(Entry) + Send),
    progress: &mut dyn FnMut(&Progress),
) -> Summary
where
    B: Backend,
    F: Fn() -> B + Sync,
{
    let started = Instant::now();
    let threads = cfg.threads.max(1);
    let mut shard_cfg = cfg.clone();
    shard_cfg.flow = split_limits(&cfg.flow, threads);
    let mut decoder = Decoder::new(cfg.decode);
    let entries = AtomicU64::new(0);
    let mut summary = Summary::default();
    let mut next_id = 1u64;
    let mut numbered = |mut e: Entry| {
        e.id = next_id;
        next_id += 1;
        entries.fetch_add(1, Ordering::Relaxed);
        sink(e)
    };

    if threads == 1 || cfg.stop_after < Stage::Flows {
        let mut worker = ShardWorker::new(&shard_cfg, &make_backend, catalog);
        let mut ticker = Ticker::new(cfg);
        let mut seq = 1u64;
        let mut reporter = Reporter::new();
        let mut out = |_: OrderKey, e: Entry| numbered(e);
        loop {
            if cancelled(cfg) {
                break;
            }
            let frame = match reader.next_frame() {
                None => break,
                Some(Err(e)) => {
                    summary.source_error = Some(e);
                    break;
                }
                Some(Ok(f)) => f,
            };
            if cfg.stop_after == Stage::Source {
                seq += 1;
                continue;
            }
            if let Decoded::Packet(pkt) = decoder.decode(&frame) {
                if cfg.stop_after >= Stage::Flows {
                    worker.packet(&pkt, seq, &mut out);
                    if ticker.due(seq, pkt.ts) {
                        worker.tick(seq, pkt.ts, &mut out);
                    }
                }
            }
            seq += 1;
            reporter.maybe(seq - 1, reader, &entries, progress);
        }
        worker.finish(&mut out);
        let (flows, dissect) = worker.counters();
        summary.flows = flows;
        summary.dissect = dissect;
        summary.packets = seq - 1;
    } else {
        let (flows, dissect, packets, err) = run_sharded(
            reader,
            &mut decoder,
            cfg,
            &shard_cfg,
            threads,
            &make_backend,
            catalog,
            &mut numbered,
            &entries,
            progress,
        );
        summary.flows = flows;
        summary.dissect = dissect;
        summary.packets = packets;
        summary.source_error = err;
    }
    summary.bytes_read = reader.bytes_consumed();
    summary.decode = decoder.stats();
    summary.entries = entries.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    progress(&Progress {
        bytes: summary.bytes_read,
        total_bytes: reader.total_bytes(),
        packets: summary.packets,
        entries: summary.entries,
    });
    summary
}

fn cancelled(cfg: &PipelineConfig) -> bool {
    cfg.cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::Relaxed))
}

/// Each shard gets an equal share of the table-wide limits.
fn split_limits(cfg: &FlowConfig, shards: usize) -> FlowConfig {
    let mut c = cfg.clone();
    c.max_flows = (cfg.max_flows / shards).max(1);
    c.max_buffered_total = (cfg.max_buffered_total / shards).max(1);
    c
}

#[allow(clippy::too_many_arguments)]
fn run_sharded<B, F>(
    reader: &mut CaptureReader,
    decoder: &mut Decoder,
    cfg: &PipelineConfig,
    shard_cfg: &PipelineConfig,
    threads: usize,
    make_backend: &F,
    catalog: Arc<Catalog>,
    sink: &mut (dyn FnMut(Entry) + Send),
    entries: &AtomicU64,
    progress: &mut dyn FnMut(&Progress),
) -> (FlowCounters, DissectCounters, u64, Option<SourceError>)
where
    B: Backend,
    F: Fn() -> B + Sync,
{
    use crossbeam_channel::bounded;
    let (out_tx, out_rx) = bounded::<merge::ShardOutput>(threads * QUEUE_BATCHES * 2);
    std::thread::scope(|scope| {
        let mut inputs = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for shard in 0..threads {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            inputs.push(tx);
            let out_tx = out_tx.clone();
            let catalog = catalog.clone();
            handles.push(scope.spawn(move || {
                let mut worker = ShardWorker::new(shard_cfg, make_backend, catalog);
                for batch in rx {
                    let mut produced = Vec::new();
                    let mut watermark = None;
                    for item in &batch.items {
                        watermark = Some(
                            worker.item(item, &batch.bytes, &mut |k, e| produced.push((k, e))),
                        );
                    }
                    let msg = merge::ShardOutput {
                        shard,
                        entries: produced,
                        watermark,
                    };
                    if out_tx.send(msg).is_err() {
                        break;
                    }
                }
                let mut produced = Vec::new();
                worker.finish(&mut |k, e| produced.push((k, e)));
                let _ = out_tx.send(merge::ShardOutput {
                    shard,
                    entries: produced,
                    watermark: Some(OrderKey::END),
                });
                worker.counters()
            }));
        }
        drop(out_tx);
        let collector = scope.spawn(move || {
            let mut merger = merge::Merger::new(threads);
            for msg in out_rx {
                merger.push(msg, &mut *sink);
            }
            merger.finish(&mut *sink);
        });

        let mut batches: Vec<Batch> = (0..threads)
            .map(|_| Batch::with_capacity(BATCH_PACKETS))
            .collect();
        let send = |batches: &mut Vec<Batch>, shard: usize| {
            let b = std::mem::replace(&mut batches[shard], Batch::with_capacity(BATCH_PACKETS));
            if !b.is_empty() {
                let _ = inputs[shard].send(b);
            }
        };
        let mut ticker = Ticker::new(cfg);
        let mut seq = 1u64;
        let mut err = None;
        let mut reporter = Reporter::new();
        loop {
            if cancelled(cfg) {
                break;
            }
            let frame = match reader.next_frame() {
                None => break,
                Some(Err(e)) => {
                    err = Some(e);
                    break;
                }
                Some(Ok(f)) => f,
            };
            if let Decoded::Packet(pkt) = decoder.decode(&frame) {
                let shard = (pkt.flow_key().symmetric_hash() % threads as u64) as usize;
                let ts = pkt.ts;
                batches[shard].push_packet(&pkt, seq);
                if batches[shard].len() >= BATCH_PACKETS {
                    send(&mut batches, shard);
                }
                if ticker.due(seq, ts) {
                    for s in 0..threads {
                        batches[s].items.push(Item::Tick { seq, now: ts });
                        send(&mut batches, s);
                    }
                }
            }
            seq += 1;
            reporter.maybe(seq - 1, reader, entries, progress);
        }
        for s in 0..threads {
            send(&mut batches, s);
        }
        drop(inputs);
        let mut flows = FlowCounters::default();
        let mut dissect = DissectCounters::default();
        for h in handles {
            let (f, d) = h.join().expect("shard thread panicked");
            flows.merge(&f);
            dissect.merge(&d);
        }
        collector.join().expect("collector thread panicked");
        (flows, dissect, seq - 1, err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_come_by_packet_count_or_capture_time() {
        let cfg = PipelineConfig {
            tick_us: 1000,
            tick_packets: 10,
            ..PipelineConfig::default()
        };
        let mut t = Ticker::new(&cfg);
        // by time
        assert!(!t.due(0, Timestamp(0)));
        assert!(!t.due(1, Timestamp(999)));
        assert!(t.due(2, Timestamp(1000)));
        // by count: next due at seq 12 (3 + ... ) regardless of time
        let due: Vec<u64> = (3..30).filter(|&s| t.due(s, Timestamp(1001))).collect();
        assert_eq!(due, vec![12, 22]);
    }
}
