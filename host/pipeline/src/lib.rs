//! The topology: source ─► decode ─► flows ─► reassembly ─► dissect ─► entries.
//!
//! One reader thread reads and decodes frames and shards packets by the
//! symmetric hash of their flow key; each shard thread owns its flow table,
//! reassembly buffers and plugin instances, so the hot path takes no locks.
//! Reading a file, the reader thread is also a shard, with a smaller share
//! of the flows (`Router`).
//! A collector merges the shards' entries back into one deterministic order.
//!
//! Determinism: every packet gets a global sequence number; a flow's id is the
//! sequence number of its first packet; time-driven work (idle expiry, gap
//! timeouts) happens at "ticks" the reader inserts at the same points for all
//! shards. Entries are ordered by the key of the event that finished them, so
//! the output is the same for any number of threads (as long as no per-shard
//! limit is hit, since limits are split across shards).
//!
//! Live mode (a live source, or [`PipelineConfig::live`]) trades that
//! determinism for latency: at least every [`PipelineConfig::flush_every`] of
//! wall time, and whenever the source is idle, the reader sends every shard
//! its partial batch and a tick whose time is the later of the last packet's
//! and the wall clock, so entries come out promptly at any traffic rate and
//! flows expire on a quiet interface. Such a tick takes a sequence number of
//! its own, so output keys stay strictly increasing per shard.

mod merge;
mod recent;
mod shard;
mod stats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use remora_core::{Drops, Timestamp};
use remora_decode::{DecodeConfig, DecodeStats, Decoded, Decoder};
use remora_dissect::{Backend, DissectConfig, DissectCounters};
use remora_entry::{Catalog, Entry};
use remora_flow::{FlowConfig, FlowCounters};
use remora_source::{FrameSource, Next, SourceError, SourceStats};

pub use recent::{FlowRecord, RECENT_FLOWS_PER_SHARD};
pub use shard::OrderKey;
use shard::{Batch, Item, Out, ShardWorker};
pub use stats::{LiveStats, ReaderStats, ShardStats, StatsSnapshot};

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
    /// pipe, or a shutdown); what was read is still finished and counted.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Live mode even for a file source (a live source always is).
    pub live: bool,
    /// In live mode, the longest wall time between flushes.
    pub flush_every: Duration,
    /// Counters published while running, for readers on other threads.
    pub stats: Option<Arc<LiveStats>>,
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
            live: false,
            flush_every: Duration::from_millis(100),
            stats: None,
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
    pub source: SourceStats,
    pub decode: DecodeStats,
    pub flows: FlowCounters,
    pub dissect: DissectCounters,
    pub entries: u64,
    /// The capture ended in damage (or the live capture failed); everything
    /// before it was processed.
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

    fn maybe<S: FrameSource + ?Sized>(
        &mut self,
        packets: u64,
        source: &S,
        entries: &AtomicU64,
        progress: &mut dyn FnMut(&Progress),
    ) {
        if packets.is_multiple_of(4096) && self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            progress(&Progress {
                bytes: source.bytes_consumed(),
                total_bytes: source.total_bytes(),
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

/// Live mode's wall-clock flushes.
struct Flusher {
    every: Duration,
    last: Instant,
}

impl Flusher {
    fn new(every: Duration) -> Self {
        Flusher {
            every,
            last: Instant::now(),
        }
    }

    /// Flush now? Once `every` passed, or when the source went idle (its
    /// ring drained, or nothing came for its timeout) and at least
    /// `IDLE_FLUSH_GAP` passed, so a moderately busy interface whose ring
    /// keeps draining does not flush after every packet.
    fn due(&mut self, idle: bool) -> bool {
        const IDLE_FLUSH_GAP: Duration = Duration::from_millis(10);
        let now = Instant::now();
        let since = now.duration_since(self.last);
        if since >= self.every || (idle && since >= IDLE_FLUSH_GAP) {
            self.last = now;
            true
        } else {
            false
        }
    }
}

/// The time of a live tick: the wall clock, unless the capture's clock is
/// ahead of ours, so time never runs backwards for the flow table.
fn live_now(last_ts: Timestamp) -> Timestamp {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    Timestamp(wall.max(last_ts.0))
}

/// What the reader loop saw from the source.
enum Read {
    Packet,
    Other,
    Idle,
    Stop,
}

/// Run the pipeline over a frame source (a capture file or a live
/// interface). `make_backend` is called once in each shard thread. Entries
/// reach `sink` in deterministic order (file mode), ids assigned.
pub fn run<S, B, F>(
    source: &mut S,
    cfg: &PipelineConfig,
    make_backend: F,
    catalog: Arc<Catalog>,
    sink: &mut (dyn FnMut(Entry) + Send),
    progress: &mut dyn FnMut(&Progress),
) -> Summary
where
    S: FrameSource + ?Sized,
    B: Backend,
    F: Fn() -> B + Sync,
{
    let started = Instant::now();
    let threads = cfg.threads.max(1);
    let live = cfg.live || source.is_live();
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
    let sharded = threads > 1 && cfg.stop_after >= Stage::Flows;
    let mut publishers: Vec<Option<stats::ShardPublisher>> = match &cfg.stats {
        Some(stats) => stats
            .start(if sharded { threads } else { 1 }, source.name(), live)
            .into_iter()
            .map(Some)
            .collect(),
        None => (0..if sharded { threads } else { 1 })
            .map(|_| None)
            .collect(),
    };
    let mut reader = Reader {
        decoder: &mut decoder,
        cfg,
        live,
        ticker: Ticker::new(cfg),
        flusher: Flusher::new(cfg.flush_every),
        seq: 1,
        packets: 0,
        last_ts: Timestamp::default(),
        error: None,
        reporter: Reporter::new(),
    };

    if !sharded {
        let publisher = publishers.pop().flatten();
        let mut worker = ShardWorker::new(cfg, &make_backend, catalog, publisher);
        let mut out = |_: OrderKey, e: Entry| numbered(e);
        let flows = cfg.stop_after >= Stage::Flows;
        loop {
            let read = reader.read(source, &entries, progress, |pkt, seq| {
                if flows {
                    worker.packet(pkt, seq, &mut out);
                }
            });
            match read {
                Read::Stop => break,
                Read::Packet => {
                    let (seq, ts) = (reader.seq - 1, reader.last_ts);
                    if flows && reader.ticker.due(seq, ts) {
                        worker.tick(seq, ts, &mut out);
                        reader.publish(source);
                    }
                }
                Read::Other | Read::Idle => {}
            }
            if let Some((tick_seq, now)) = reader.live_flush_due(matches!(read, Read::Idle)) {
                if flows {
                    worker.tick(tick_seq, now, &mut out);
                }
                reader.publish(source);
            }
        }
        worker.finish(&mut out);
        let (flows, dissect) = worker.counters();
        summary.flows = flows;
        summary.dissect = dissect;
    } else {
        let (flows, dissect) = run_sharded(
            source,
            &mut reader,
            cfg,
            threads,
            &make_backend,
            catalog,
            &mut numbered,
            &entries,
            progress,
            publishers,
        );
        summary.flows = flows;
        summary.dissect = dissect;
    }
    summary.packets = reader.packets;
    summary.source_error = reader.error.take();
    reader.publish_final(source);
    summary.source = source.stats();
    summary.bytes_read = source.bytes_consumed();
    summary.decode = decoder.stats();
    summary.entries = entries.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    progress(&Progress {
        bytes: summary.bytes_read,
        total_bytes: source.total_bytes(),
        packets: summary.packets,
        entries: summary.entries,
    });
    summary
}

/// The reader thread's state: numbering, ticks, flushes, errors.
struct Reader<'a> {
    decoder: &'a mut Decoder,
    cfg: &'a PipelineConfig,
    live: bool,
    ticker: Ticker,
    flusher: Flusher,
    /// Next sequence number: one per frame, plus one per live tick.
    seq: u64,
    /// Frames read.
    packets: u64,
    /// Time of the last decoded packet.
    last_ts: Timestamp,
    error: Option<SourceError>,
    reporter: Reporter,
}

impl Reader<'_> {
    /// Reads one frame and hands a decoded packet to `packet` with its
    /// sequence number. `Read::Packet` means a packet was handed over (its
    /// number is `self.seq - 1`).
    #[inline]
    fn read<S: FrameSource + ?Sized>(
        &mut self,
        source: &mut S,
        entries: &AtomicU64,
        progress: &mut dyn FnMut(&Progress),
        mut packet: impl FnMut(&remora_core::Packet<'_>, u64),
    ) -> Read {
        if cancelled(self.cfg) {
            return Read::Stop;
        }
        let frame = match source.next() {
            Next::Frame(f) => f,
            Next::Idle => return Read::Idle,
            Next::End => return Read::Stop,
            Next::Error(e) => {
                self.error = Some(e);
                return Read::Stop;
            }
        };
        let seq = self.seq;
        self.seq += 1;
        self.packets += 1;
        let mut read = Read::Other;
        if self.cfg.stop_after > Stage::Source {
            if let Decoded::Packet(pkt) = self.decoder.decode(&frame) {
                self.last_ts = pkt.ts;
                packet(&pkt, seq);
                read = Read::Packet;
            }
        }
        self.reporter.maybe(self.packets, source, entries, progress);
        read
    }

    /// In live mode, is a flush due? Returns the tick to send: a sequence
    /// number of its own and the time.
    fn live_flush_due(&mut self, idle: bool) -> Option<(u64, Timestamp)> {
        if !self.live || !self.flusher.due(idle) {
            return None;
        }
        let seq = self.seq;
        self.seq += 1;
        Some((seq, live_now(self.last_ts)))
    }

    fn publish<S: FrameSource + ?Sized>(&mut self, source: &mut S) {
        if let Some(stats) = &self.cfg.stats {
            stats.publish_reader(source.stats(), self.decoder.stats(), self.packets, true);
        }
    }

    fn publish_final<S: FrameSource + ?Sized>(&mut self, source: &mut S) {
        if let Some(stats) = &self.cfg.stats {
            stats.publish_reader(source.stats(), self.decoder.stats(), self.packets, false);
        }
    }
}

fn cancelled(cfg: &PipelineConfig) -> bool {
    cfg.cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::Relaxed))
}

/// A shard's part of the table-wide limits: its share of the flows'.
fn shard_limits(cfg: &FlowConfig, share: f64) -> FlowConfig {
    let part = |n: usize| ((n as f64 * share).round() as usize).max(1);
    let mut c = cfg.clone();
    c.max_flows = part(cfg.max_flows);
    c.max_buffered_total = part(cfg.max_buffered_total);
    c
}

/// Which shard a flow belongs to.
///
/// With a capture file the reading thread is also shard 0 ("local"): it
/// dissects its flows as it reads them, with no copy and no hand-over, and
/// owns a smaller share of the flows because reading and decoding take part
/// of its time. Live captures keep a reader that does nothing else, so the
/// kernel ring is drained promptly.
struct Router {
    threads: u64,
    /// Buckets of [`Router::BUCKETS`] that go to the local shard (0: none).
    local_buckets: u64,
}

impl Router {
    const BUCKETS: u64 = 1024;
    /// Reading and decoding's share of a packet's work on one thread
    /// (measured: a quarter on the HTTP/1 benchmark, an eighth on the
    /// mixed one): the local shard takes an even share of the rest.
    const READER_SHARE: f64 = 0.2;

    fn new(threads: usize, local: bool) -> Self {
        let threads = threads as u64;
        let local_buckets = if local {
            let share = (1.0 - Self::READER_SHARE) / threads as f64;
            ((share * Self::BUCKETS as f64).round() as u64).clamp(1, Self::BUCKETS - 1)
        } else {
            0
        };
        Router {
            threads,
            local_buckets,
        }
    }

    /// The fraction of flows shard `s` gets.
    fn share(&self, s: usize) -> f64 {
        let local = self.local_buckets as f64 / Self::BUCKETS as f64;
        match (self.local_buckets, s) {
            (0, _) => 1.0 / self.threads as f64,
            (_, 0) => local,
            _ => (1.0 - local) / (self.threads - 1) as f64,
        }
    }

    fn shard(&self, hash: u64) -> usize {
        if self.local_buckets == 0 {
            return (hash % self.threads) as usize;
        }
        if hash % Self::BUCKETS < self.local_buckets {
            0
        } else {
            1 + ((hash / Self::BUCKETS) % (self.threads - 1)) as usize
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_sharded<S, B, F>(
    source: &mut S,
    reader: &mut Reader<'_>,
    cfg: &PipelineConfig,
    threads: usize,
    make_backend: &F,
    catalog: Arc<Catalog>,
    sink: &mut (dyn FnMut(Entry) + Send),
    entries: &AtomicU64,
    progress: &mut dyn FnMut(&Progress),
    publishers: Vec<Option<stats::ShardPublisher>>,
) -> (FlowCounters, DissectCounters)
where
    S: FrameSource + ?Sized,
    B: Backend,
    F: Fn() -> B + Sync,
{
    use crossbeam_channel::bounded;
    let router = Router::new(threads, !reader.live);
    // Limits are table-wide; each shard gets its share of the flows'.
    let shard_cfgs: Vec<PipelineConfig> = (0..threads)
        .map(|s| PipelineConfig {
            flow: shard_limits(&cfg.flow, router.share(s)),
            ..cfg.clone()
        })
        .collect();
    let (out_tx, out_rx) = bounded::<merge::ShardOutput>(threads * QUEUE_BATCHES * 2);
    // Emptied batches go back to the reader: their buffers stay warm and
    // are freed by the thread that allocated them, which is what the
    // allocator is fastest at.
    let (spare_tx, spare_rx) = bounded::<Batch>(threads * (QUEUE_BATCHES + 2));
    std::thread::scope(|scope| {
        let mut publishers = publishers.into_iter();
        let mut local = (router.local_buckets > 0).then(|| {
            let publisher = publishers.next().flatten();
            LocalShard {
                worker: ShardWorker::new(&shard_cfgs[0], make_backend, catalog.clone(), publisher),
                produced: Vec::new(),
                items: 0,
                watermark: None,
            }
        });
        let first_remote = usize::from(local.is_some());
        let mut inputs = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for (shard, publisher) in (first_remote..).zip(publishers) {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            inputs.push(tx);
            let out_tx = out_tx.clone();
            let spare_tx = spare_tx.clone();
            let catalog = catalog.clone();
            let shard_cfg = &shard_cfgs[shard];
            handles.push(scope.spawn(move || {
                let mut worker = ShardWorker::new(shard_cfg, make_backend, catalog, publisher);
                for mut batch in rx {
                    let mut produced = Vec::new();
                    let mut watermark = None;
                    for item in &batch.items {
                        watermark = Some(
                            worker.item(item, &batch.bytes, &mut |k, e| produced.push((k, e))),
                        );
                    }
                    batch.clear();
                    // Full: the reader has spares enough; this one is freed.
                    let _ = spare_tx.try_send(batch);
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
        drop(spare_tx);
        let collector = scope.spawn(move || {
            let mut merger = merge::Merger::new(threads);
            for msg in out_rx {
                merger.push(msg, &mut *sink);
            }
            merger.finish(&mut *sink);
        });

        // Remote shard `s` is `inputs[s - first_remote]`.
        let mut batches: Vec<Batch> = (0..threads)
            .map(|_| Batch::with_capacity(BATCH_PACKETS))
            .collect();
        let send = |batches: &mut Vec<Batch>, shard: usize| {
            let spare = spare_rx
                .try_recv()
                .unwrap_or_else(|_| Batch::with_capacity(BATCH_PACKETS));
            let b = std::mem::replace(&mut batches[shard], spare);
            if !b.is_empty() {
                let _ = inputs[shard - first_remote].send(b);
            }
        };
        let tick_all =
            |batches: &mut Vec<Batch>, local: &mut Option<LocalShard<B>>, seq: u64, now| {
                if let Some(l) = local {
                    l.tick(seq, now, &out_tx);
                }
                for s in first_remote..threads {
                    batches[s].items.push(Item::Tick { seq, now });
                    send(batches, s);
                }
            };
        loop {
            let mut last = None;
            let read = reader.read(source, entries, progress, |pkt, seq| {
                let shard = router.shard(pkt.flow_key().symmetric_hash());
                match &mut local {
                    Some(l) if shard == 0 => l.packet(pkt, seq, &out_tx),
                    _ => {
                        batches[shard].push_packet(pkt, seq);
                        if batches[shard].len() >= BATCH_PACKETS {
                            send(&mut batches, shard);
                        }
                    }
                }
                last = Some((seq, pkt.ts));
            });
            match read {
                Read::Stop => break,
                Read::Packet => {
                    let (seq, ts) = last.expect("a packet was handed over");
                    if reader.ticker.due(seq, ts) {
                        tick_all(&mut batches, &mut local, seq, ts);
                        reader.publish(source);
                    }
                }
                Read::Other | Read::Idle => {}
            }
            if let Some((seq, now)) = reader.live_flush_due(matches!(read, Read::Idle)) {
                tick_all(&mut batches, &mut local, seq, now);
                reader.publish(source);
            }
        }
        for s in first_remote..threads {
            send(&mut batches, s);
        }
        drop(inputs);
        let mut flows = FlowCounters::default();
        let mut dissect = DissectCounters::default();
        if let Some(l) = local {
            let (f, d) = l.finish(&out_tx);
            flows.merge(&f);
            dissect.merge(&d);
        }
        drop(out_tx);
        for h in handles {
            let (f, d) = h.join().expect("shard thread panicked");
            flows.merge(&f);
            dissect.merge(&d);
        }
        collector.join().expect("collector thread panicked");
        (flows, dissect)
    })
}

/// Shard 0 run by the reading thread: its entries go to the collector like
/// another shard's, every [`BATCH_PACKETS`] of its items and at ticks.
struct LocalShard<B: Backend> {
    worker: ShardWorker<B>,
    produced: Vec<(OrderKey, Entry)>,
    items: usize,
    watermark: Option<OrderKey>,
}

impl<B: Backend> LocalShard<B> {
    fn packet(&mut self, pkt: &remora_core::Packet<'_>, seq: u64, out: &ShardSender) {
        self.step(OrderKey::watermark(seq, 0), |w, o| w.packet(pkt, seq, o));
        self.items += 1;
        if self.items >= BATCH_PACKETS {
            self.send(out);
        }
    }

    fn tick(&mut self, seq: u64, now: Timestamp, out: &ShardSender) {
        self.step(OrderKey::watermark(seq, 1), |w, o| w.tick(seq, now, o));
        self.send(out);
    }

    fn finish(mut self, out: &ShardSender) -> (FlowCounters, DissectCounters) {
        self.step(OrderKey::END, |w, o| w.finish(o));
        self.send(out);
        self.worker.counters()
    }

    /// Runs one event on the worker, keeping what it finished; afterwards
    /// the shard has got as far as `watermark`.
    fn step(&mut self, watermark: OrderKey, event: impl FnOnce(&mut ShardWorker<B>, &mut Out<'_>)) {
        let produced = &mut self.produced;
        event(&mut self.worker, &mut |k, e| produced.push((k, e)));
        self.watermark = Some(watermark);
    }

    fn send(&mut self, out: &ShardSender) {
        self.items = 0;
        let _ = out.send(merge::ShardOutput {
            shard: 0,
            entries: std::mem::take(&mut self.produced),
            watermark: self.watermark,
        });
    }
}

type ShardSender = crossbeam_channel::Sender<merge::ShardOutput>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reading_shard_takes_a_smaller_share_of_flows() {
        let flows = 20_000u64;
        for threads in 2..=4usize {
            for local in [false, true] {
                let router = Router::new(threads, local);
                let mut count = vec![0u64; threads];
                for i in 0..flows {
                    let client = remora_core::Endpoint::new([10, 0, 0, 1].into(), i as u16);
                    let server = remora_core::Endpoint::new([10, 0, 0, 2].into(), 80);
                    let key =
                        remora_core::FlowKey::new(remora_core::Transport::Tcp, client, server);
                    count[router.shard(key.symmetric_hash())] += 1;
                }
                let local_share = (1.0 - Router::READER_SHARE) / threads as f64;
                let expect: Vec<f64> = (0..threads)
                    .map(|s| match (local, s) {
                        (false, _) => 1.0 / threads as f64,
                        (true, 0) => local_share,
                        (true, _) => (1.0 - local_share) / (threads - 1) as f64,
                    })
                    .collect();
                for (s, e) in expect.iter().enumerate() {
                    assert!((router.share(s) - e).abs() < 0.001, "share of shard {s}");
                }
                for (s, (&c, e)) in count.iter().zip(&expect).enumerate() {
                    let got = c as f64 / flows as f64;
                    assert!(
                        (got - e).abs() < 0.02,
                        "{threads} threads, local {local}: shard {s} got {got:.3}, expected {e:.3}"
                    );
                }
            }
        }
    }

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
