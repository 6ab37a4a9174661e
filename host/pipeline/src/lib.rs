//! The topology: source ─► decode ─► flows ─► reassembly ─► dissect ─► entries.
//!
//! One reader thread reads and decodes frames and shards packets by the
//! symmetric hash of their flow key; each shard thread owns its flow table,
//! reassembly buffers and plugin instances, so the hot path takes no locks.
//! Reading a file, the reader thread is also a shard, with a smaller share
//! of the flows, learnt as it reads (`Router`).
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
use std::time::{Duration, Instant};

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

/// Most shard threads a pipeline runs (shard ids are bytes); more asked
/// for run as this many.
pub const MAX_THREADS: usize = 255;

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Shard threads; 1 runs everything on the calling thread. At most
    /// [`MAX_THREADS`]; a system that refuses threads gets fewer (logged).
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
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS)),
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
/// Payload bytes that also close a batch: with [`QUEUE_BATCHES`], what a
/// shard's queue holds stays near 16 MiB even for 64 KiB frames (a batch of
/// the bench captures carries 40-100 KiB and closes by count).
const BATCH_BYTES: usize = 256 * 1024;
/// Batches in flight per shard before the reader waits (back-pressure):
/// 4,096 packets, a few milliseconds of a shard's work. The reader and the
/// shards each stall for a while now and then (a tick's expiry pass, a
/// window of heavy flows, the other vCPU taken away), and a queue shorter
/// than those stalls makes both sides wait in turn: with 16, two threads
/// waited ~17% of the HTTP/1 run each (~25% of the mixed one); with 64,
/// 2-3%: 5% less wall time on HTTP/1 and 15-25% on the mix.
const QUEUE_BATCHES: usize = 64;
/// How many packets ahead a remote shard prefetches payloads (see
/// `Batch::prefetch`).
const PREFETCH_AHEAD: usize = 4;

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
    /// A deadline past the end of `i64` saturates and then never falls
    /// due, leaving the packet count to tick: overflowing, it panicked in
    /// debug builds and, wrapped into the past, ticked on every packet
    /// (a pcapng `if_tsoffset` of 2^63 µs did it before the source held
    /// times within RFC 3339's years).
    fn due(&mut self, seq: u64, ts: Timestamp) -> bool {
        let next_ts = *self
            .next_ts
            .get_or_insert(ts.0.saturating_add(self.every_us));
        if seq + 1 >= self.next_seq || (ts.0 >= next_ts && next_ts < i64::MAX) {
            self.next_seq = seq + 1 + self.every_packets;
            self.next_ts = Some(ts.0.max(next_ts).saturating_add(self.every_us));
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
    Timestamp(Timestamp::now().0.max(last_ts.0))
}

/// Where the pipeline's entries go, in order. It returns an entry it did
/// not keep (only counted, or filtered out), and the pipeline frees that
/// where the entry was made: with shards, a free on another thread than the
/// allocating one is the allocator's slow path, and freeing every remote
/// shard's entries on the reading thread was a visible share of a run.
pub type Sink<'a> = dyn FnMut(Entry) -> Option<Entry> + Send + 'a;

/// What the reader loop saw from the source.
enum Read {
    Packet,
    Other,
    Idle,
    Stop,
}

/// Run the pipeline over a frame source (a capture file or a live
/// interface). `make_backend` is called once in each shard thread. Entries
/// reach `sink` in deterministic order (file mode), ids assigned; what it
/// hands back is freed (see [`Sink`]).
pub fn run<S, B, F>(
    source: &mut S,
    cfg: &PipelineConfig,
    make_backend: F,
    catalog: Arc<Catalog>,
    sink: &mut Sink<'_>,
    progress: &mut dyn FnMut(&Progress),
) -> Summary
where
    S: FrameSource + ?Sized,
    B: Backend,
    F: Fn() -> B + Sync,
{
    let started = Instant::now();
    let threads = cfg.threads.clamp(1, MAX_THREADS);
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
        let mut out: shard::Out = Vec::new();
        // Entries leave as soon as the worker call that finished them
        // returns; what the sink hands back is freed here, on their thread.
        let mut emit = |out: &mut shard::Out| {
            out.drain(..).for_each(|(_, e)| drop(numbered(e)));
        };
        let flows = cfg.stop_after >= Stage::Flows;
        loop {
            let read = reader.read(source, &entries, progress, |pkt, seq, _| {
                if flows {
                    worker.packet(pkt, seq, &mut out);
                    emit(&mut out);
                }
            });
            match read {
                Read::Stop => break,
                Read::Packet => {
                    let (seq, ts) = (reader.seq - 1, reader.last_ts);
                    if flows && reader.ticker.due(seq, ts) {
                        worker.tick(seq, ts, &mut out);
                        emit(&mut out);
                        reader.publish(source);
                    }
                }
                Read::Other | Read::Idle => {}
            }
            if let Some((tick_seq, now)) = reader.live_flush_due(matches!(read, Read::Idle)) {
                if flows {
                    worker.tick(tick_seq, now, &mut out);
                    emit(&mut out);
                }
                reader.publish(source);
            }
        }
        worker.finish(&mut out);
        emit(&mut out);
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
        mut packet: impl FnMut(&remora_core::Packet<'_>, u64, Option<&remora_source::Chunk>),
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
                packet(&pkt, seq, frame.chunk);
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
/// dissects its flows as it reads them, with no copy and no hand-over.
/// How many flows it can take besides reading depends on the traffic
/// (reading and decoding were a quarter of a thread's work on the HTTP/1
/// benchmark and an eighth on the mixed one), so the split is learnt while
/// reading. Flows hash into [`Router::SLOTS`] slots, and a slot is given a
/// shard when its first flow arrives, for good (a flow's packets must all
/// reach the shard that holds its state): the local shard with probability
/// `local`, else a remote one by hash. Every [`Router::PERIOD`] packets,
/// [`Router::rebalance`] compares who waited for whom: remote shards idle
/// on an empty queue mean the reading thread is the bottleneck, so fewer
/// new flows stay local; the reading thread blocked on a full queue means
/// the opposite. Live captures keep a reader that does nothing else, so
/// the kernel ring is drained promptly, and shard by hash.
///
/// Which shard dissects a flow changes no entry: the output is ordered by
/// the events that finished entries, whatever thread ran them.
struct Router {
    threads: u64,
    /// Whether the reading thread is shard 0.
    local: bool,
    /// Share of new slots that go to the local shard, in 1/65536ths.
    local_share: u32,
    /// Shard of each slot, [`Router::UNASSIGNED`] before its first flow
    /// (empty without a local shard). Its look-up is the reading loop's
    /// one visible cache miss with two threads (~1% of the run); 4 and
    /// 16 KiB tables measured no faster and adapt for fewer flows.
    slots: Box<[u8]>,
}

impl Router {
    const SLOT_BITS: u32 = 16;
    const SLOTS: usize = 1 << Self::SLOT_BITS;
    const UNASSIGNED: u8 = u8::MAX;
    /// Reading and decoding's share of a thread's work assumed at the
    /// start; the local shard starts with an even share of the rest.
    const READER_SHARE: f64 = 0.2;
    /// Packets between rebalances.
    const PERIOD: u64 = 8192;
    /// How far one rebalance moves the local share (of 65536).
    const STEP: u32 = 65536 / 32;
    /// Waiting below this fraction of a period (1/N) is noise.
    const QUIET: u64 = 50;

    fn new(threads: usize, local: bool) -> Self {
        // Shard ids are stored in a byte, below `UNASSIGNED`.
        const _: () = assert!(MAX_THREADS <= Router::UNASSIGNED as usize);
        let threads = threads.clamp(1, MAX_THREADS) as u64;
        // A reading shard alone takes every flow: nothing to learn.
        let local = local && threads > 1;
        let share = (1.0 - Self::READER_SHARE) / threads as f64;
        Router {
            threads,
            local,
            local_share: (share * 65536.0) as u32,
            slots: if local {
                vec![Self::UNASSIGNED; Self::SLOTS].into_boxed_slice()
            } else {
                Box::default()
            },
        }
    }

    /// The shard of a flow with this symmetric hash.
    #[inline]
    fn shard(&mut self, hash: u64) -> usize {
        if !self.local {
            return (hash % self.threads) as usize;
        }
        let mixed = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = (mixed >> (64 - Self::SLOT_BITS)) as usize;
        let assigned = self.slots[slot];
        if assigned != Self::UNASSIGNED {
            return usize::from(assigned);
        }
        // Bits of the hash the slot index did not use pick the shard.
        let chosen = if ((mixed >> 16) & 0xFFFF) < u64::from(self.local_share) {
            0
        } else {
            1 + ((mixed >> 32) % (self.threads - 1)) as usize
        };
        self.slots[slot] = chosen as u8;
        chosen
    }

    /// After a period of `period` wall time in which the remote shards
    /// waited `remote_idle` on empty queues (their mean) and the reading
    /// thread `reader_blocked` on full ones: moves the local share of new
    /// flows toward the side that waited less.
    fn rebalance(&mut self, period: Duration, remote_idle: Duration, reader_blocked: Duration) {
        let quiet = period / Self::QUIET as u32;
        if remote_idle > reader_blocked + quiet {
            self.local_share = self.local_share.saturating_sub(Self::STEP);
        } else if reader_blocked > remote_idle + quiet {
            self.local_share = (self.local_share + Self::STEP).min(65536);
        }
    }
}

/// Time spent waiting on a queue, in nanoseconds, summed over the threads
/// that share the clock: remote shards waiting for packets, or the reading
/// thread waiting for room. What [`Router::rebalance`] compares.
#[derive(Default)]
struct IdleClock(AtomicU64);

impl IdleClock {
    /// The next batch from `rx`, timing the wait when there is none yet.
    fn recv<T>(&self, rx: &crossbeam_channel::Receiver<T>) -> Option<T> {
        match rx.try_recv() {
            Ok(v) => Some(v),
            Err(crossbeam_channel::TryRecvError::Disconnected) => None,
            Err(crossbeam_channel::TryRecvError::Empty) => {
                let t0 = Instant::now();
                let v = rx.recv().ok();
                self.add(t0.elapsed());
                v
            }
        }
    }

    /// `v` into `tx`, timing the wait when the queue is full.
    fn send<T>(&self, tx: &crossbeam_channel::Sender<T>, v: T) {
        match tx.try_send(v) {
            Ok(()) | Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
            Err(crossbeam_channel::TrySendError::Full(v)) => {
                let t0 = Instant::now();
                let _ = tx.send(v);
                self.add(t0.elapsed());
            }
        }
    }

    fn add(&self, d: Duration) {
        self.0.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    fn total(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

/// Starts a named thread of `scope`; an error when the system refuses one.
fn spawn_thread<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: String,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::io::Result<std::thread::ScopedJoinHandle<'scope, T>> {
    let allowed = THREADS_ALLOWED.get();
    if allowed == Some(0) {
        return Err(std::io::Error::other("refused for a test"));
    }
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn_scoped(scope, f)?;
    THREADS_ALLOWED.set(allowed.map(|n| n - 1));
    Ok(handle)
}

thread_local! {
    /// See [`allow_threads_for_tests`].
    static THREADS_ALLOWED: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// For tests: pipelines run from the calling thread may start only `n`
/// more threads (`None`: as many as the system gives), as on a system at
/// its process limit.
#[doc(hidden)]
pub fn allow_threads_for_tests(n: Option<usize>) {
    THREADS_ALLOWED.set(n);
}

#[allow(clippy::too_many_arguments)]
fn run_sharded<S, B, F>(
    source: &mut S,
    reader: &mut Reader<'_>,
    cfg: &PipelineConfig,
    threads: usize,
    make_backend: &F,
    catalog: Arc<Catalog>,
    sink: &mut Sink<'_>,
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
    // Limits are table-wide; each shard gets an even part of them (with a
    // local shard the split of the flows is learnt, so an even part is
    // what keeps the table-wide bound whatever it turns out to be).
    let shard_cfgs: Vec<PipelineConfig> = (0..threads)
        .map(|_| PipelineConfig {
            flow: shard_limits(&cfg.flow, 1.0 / threads as f64),
            ..cfg.clone()
        })
        .collect();
    let (out_tx, out_rx) = bounded::<merge::ShardOutput>(threads * QUEUE_BATCHES * 2);
    // Emptied batches go back to the reader: their buffers stay warm and
    // are freed by the thread that allocated them, which is what the
    // allocator is fastest at.
    let (spare_tx, spare_rx) = bounded::<Batch>(threads * (QUEUE_BATCHES + 2));
    // What the router balances on: remote shards waiting for packets, the
    // reading thread waiting for room in their queues.
    let remote_idle = IdleClock::default();
    let reader_blocked = IdleClock::default();
    std::thread::scope(|scope| {
        // Reading a file, the reading thread is shard 0; live, every shard
        // is a thread of its own.
        let reading_shard = !reader.live;
        let mut first_remote = usize::from(reading_shard);
        let mut inputs = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for (shard, shard_cfg) in shard_cfgs.iter().enumerate().skip(first_remote) {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            let out_tx = out_tx.clone();
            let spare_tx = spare_tx.clone();
            let catalog = catalog.clone();
            let idle = &remote_idle;
            // A copy: if the thread cannot start, shard 0 may take it.
            let publisher = publishers.get(shard).cloned().flatten();
            let started = spawn_thread(scope, format!("remora-shard-{shard}"), move || {
                let mut worker = ShardWorker::new(shard_cfg, make_backend, catalog, publisher);
                // Entries of the last batch: the next one's first guess, so
                // that `produced` seldom grows (each growth moves every entry).
                let mut last_produced = 0;
                while let Some(mut batch) = idle.recv(&rx) {
                    let mut produced = Vec::with_capacity(last_produced);
                    let mut watermark = None;
                    for i in 0..PREFETCH_AHEAD {
                        batch.prefetch(i);
                    }
                    for (i, item) in batch.items.iter().enumerate() {
                        batch.prefetch(i + PREFETCH_AHEAD);
                        watermark = Some(worker.item(item, &batch, &mut produced));
                    }
                    last_produced = produced.len();
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
                worker.finish(&mut produced);
                let _ = out_tx.send(merge::ShardOutput {
                    shard,
                    entries: produced,
                    watermark: Some(OrderKey::END),
                });
                worker.counters()
            });
            match started {
                Ok(handle) => {
                    inputs.push(tx);
                    handles.push(handle);
                }
                // The system refused a thread (a process or cgroup limit):
                // the shards already running take all the flows.
                Err(e) => {
                    tracing::warn!(
                        "cannot start shard thread {} of {threads} ({e}); running with {}",
                        shard + 1,
                        shard.max(1)
                    );
                    break;
                }
            }
        }
        // Without any remote shard, even live, the reading thread dissects.
        let local_shard = reading_shard || handles.is_empty();
        if local_shard {
            first_remote = 1;
        }
        let threads = first_remote + handles.len();
        if let Some(stats) = &cfg.stats {
            stats.keep_shards(threads);
        }
        let mut router = Router::new(threads, local_shard);
        let mut local = local_shard.then(|| {
            let publisher = publishers.first().cloned().flatten();
            LocalShard {
                worker: ShardWorker::new(&shard_cfgs[0], make_backend, catalog.clone(), publisher),
                produced: Vec::new(),
                items: 0,
                watermark: None,
            }
        });
        drop(spare_tx);
        drop(out_tx);
        // Where the shards' entries meet. Reading a file, the reading thread
        // merges them between packets and while it waits for room in a
        // queue: a merging thread of its own was a third busy thread on the
        // cores the shards use, and woke for every batch. Live, a collector
        // thread merges, so that the capture thread only reads.
        // Merging on the reading thread, it sends the remote shards their
        // batches, and with them the entries of theirs the sink dropped.
        let return_from = if local.is_some() {
            first_remote
        } else {
            threads
        };
        let merging = Merging::new(threads, return_from, out_rx, sink);
        let (mut merging, collector) = if local.is_some() {
            (Some(merging), None)
        } else {
            // Handed over through a channel, so that it comes back if the
            // thread cannot start: then the reading thread merges, between
            // the batches it sends.
            let (hand_tx, hand_rx) = bounded::<Merging>(1);
            let _ = hand_tx.send(merging);
            let handed = hand_rx.clone();
            let started = spawn_thread(scope, "remora-merge".into(), move || {
                if let Ok(m) = handed.recv() {
                    m.finish();
                }
            });
            match started {
                Ok(handle) => (None, Some(handle)),
                Err(e) => {
                    tracing::warn!("cannot start the merging thread ({e}); the reader merges");
                    (hand_rx.try_recv().ok(), None)
                }
            }
        };

        // Remote shard `s` is `inputs[s - first_remote]`.
        let mut batches: Vec<Batch> = (0..threads)
            .map(|_| Batch::with_capacity(BATCH_PACKETS))
            .collect();
        let send = |batches: &mut Vec<Batch>, shard: usize, merging: &mut Option<Merging>| {
            let spare = spare_rx
                .try_recv()
                .unwrap_or_else(|_| Batch::with_capacity(BATCH_PACKETS));
            let b = std::mem::replace(&mut batches[shard], spare);
            if !b.is_empty() {
                let tx = &inputs[shard - first_remote];
                match merging {
                    Some(m) => m.send(tx, shard, b, &reader_blocked),
                    None => reader_blocked.send(tx, b),
                }
            }
        };
        let remotes = (threads - first_remote) as u32;
        let mut period = (Instant::now(), Duration::ZERO, Duration::ZERO);
        loop {
            if router.local && reader.packets.is_multiple_of(Router::PERIOD) {
                let (idle, blocked) = (remote_idle.total() / remotes, reader_blocked.total());
                router.rebalance(
                    period.0.elapsed(),
                    idle.saturating_sub(period.1),
                    blocked.saturating_sub(period.2),
                );
                period = (Instant::now(), idle, blocked);
            }
            let mut last = None;
            let read = reader.read(source, entries, progress, |pkt, seq, chunk| {
                let shard = router.shard(pkt.flow_hash());
                match (&mut local, &mut merging) {
                    (Some(l), Some(m)) if shard == 0 => l.packet(pkt, seq, m),
                    _ => {
                        batches[shard].push_packet(pkt, seq, chunk);
                        if batches[shard].full(BATCH_PACKETS, BATCH_BYTES) {
                            send(&mut batches, shard, &mut merging);
                        }
                    }
                }
                last = Some((seq, pkt.ts));
            });
            let tick = match read {
                Read::Stop => break,
                Read::Packet => {
                    let (seq, ts) = last.expect("a packet was handed over");
                    reader.ticker.due(seq, ts).then_some((seq, ts))
                }
                Read::Other | Read::Idle => None,
            };
            for (seq, now) in tick
                .into_iter()
                .chain(reader.live_flush_due(matches!(read, Read::Idle)))
            {
                if let (Some(l), Some(m)) = (&mut local, &mut merging) {
                    l.tick(seq, now, m);
                }
                for s in first_remote..threads {
                    batches[s].items.push(Item::Tick { seq, now });
                    send(&mut batches, s, &mut merging);
                }
                reader.publish(source);
            }
        }
        for s in first_remote..threads {
            send(&mut batches, s, &mut merging);
        }
        drop(inputs);
        let mut flows = FlowCounters::default();
        let mut dissect = DissectCounters::default();
        if let (Some(l), Some(m)) = (local, &mut merging) {
            let (f, d) = l.finish(m);
            flows.merge(&f);
            dissect.merge(&d);
        }
        // Every shard's entries are taken before any is joined: a shard
        // blocked on a full output queue only finishes once they are.
        if let Some(m) = merging {
            m.finish();
        }
        for h in handles {
            let (f, d) = h.join().expect("shard thread panicked");
            flows.merge(&f);
            dissect.merge(&d);
        }
        if let Some(c) = collector {
            c.join().expect("collector thread panicked");
        }
        // What the router learnt and what waiting was left, for tuning it
        // (`RUST_LOG=remora_pipeline=debug`).
        if router.local {
            let assigned = router.slots.iter().filter(|&&s| s != Router::UNASSIGNED);
            let local = router.slots.iter().filter(|&&s| s == 0).count();
            tracing::debug!(
                "shards: remote idle {:?} (mean), reader blocked {:?}; \
                 local share of new flows {:.3}, hash slots local {} of {}",
                remote_idle.total() / remotes,
                reader_blocked.total(),
                f64::from(router.local_share) / 65536.0,
                local,
                assigned.count()
            );
        }
        (flows, dissect)
    })
}

/// Merges the shards' entries into the sink: on the reading thread when it
/// reads a file, on a collector thread live (see `run_sharded`).
struct Merging<'s> {
    merger: merge::Merger,
    rx: crossbeam_channel::Receiver<merge::ShardOutput>,
    sink: &'s mut Sink<'s>,
}

impl<'s> Merging<'s> {
    /// Entries of shards `return_from..` that the sink does not keep go
    /// back to them with their next batch.
    fn new(
        threads: usize,
        return_from: usize,
        rx: crossbeam_channel::Receiver<merge::ShardOutput>,
        sink: &'s mut Sink<'s>,
    ) -> Self {
        Merging {
            merger: merge::Merger::new(threads, return_from),
            rx,
            sink,
        }
    }

    fn push(&mut self, msg: merge::ShardOutput) {
        self.merger.push(msg, &mut *self.sink);
    }

    /// Merges what the remote shards have sent so far.
    fn drain(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.push(msg);
        }
    }

    /// `batch` into `tx`, merging while the queue is full: the shard it
    /// waits for may itself be waiting for room in the output queue. Only
    /// the waits count on `blocked`, not the merging between them.
    fn send(
        &mut self,
        tx: &crossbeam_channel::Sender<Batch>,
        shard: usize,
        mut batch: Batch,
        blocked: &IdleClock,
    ) {
        batch.returned = self.merger.take_returned(shard);
        loop {
            batch = match tx.try_send(batch) {
                Ok(()) | Err(crossbeam_channel::TrySendError::Disconnected(_)) => break,
                Err(crossbeam_channel::TrySendError::Full(b)) => b,
            };
            let mut select = crossbeam_channel::Select::new();
            let send = select.send(tx);
            select.recv(&self.rx);
            let t0 = Instant::now();
            let op = select.select();
            blocked.add(t0.elapsed());
            if op.index() == send {
                let _ = op.send(tx, batch);
                break;
            }
            match op.recv(&self.rx) {
                Ok(msg) => self.push(msg),
                // Every shard is gone: nothing will take the batch.
                Err(_) => break,
            }
        }
        self.drain();
    }

    /// Merges until every remote shard has finished, then the rest.
    fn finish(mut self) {
        while let Ok(msg) = self.rx.recv() {
            self.push(msg);
        }
        self.merger.finish(&mut *self.sink);
    }
}

/// Shard 0 run by the reading thread: its entries go to the merge like
/// another shard's, every [`BATCH_PACKETS`] of its items and at ticks.
struct LocalShard<B: Backend> {
    worker: ShardWorker<B>,
    produced: Vec<(OrderKey, Entry)>,
    items: usize,
    watermark: Option<OrderKey>,
}

impl<B: Backend> LocalShard<B> {
    fn packet(&mut self, pkt: &remora_core::Packet<'_>, seq: u64, out: &mut Merging) {
        self.step(OrderKey::watermark(seq, 0), |w, o| w.packet(pkt, seq, o));
        self.items += 1;
        if self.items >= BATCH_PACKETS {
            self.send(out);
        }
    }

    fn tick(&mut self, seq: u64, now: Timestamp, out: &mut Merging) {
        self.step(OrderKey::watermark(seq, 1), |w, o| w.tick(seq, now, o));
        self.send(out);
    }

    fn finish(mut self, out: &mut Merging) -> (FlowCounters, DissectCounters) {
        self.step(OrderKey::END, |w, o| w.finish(o));
        self.send(out);
        self.worker.counters()
    }

    /// Runs one event on the worker, keeping what it finished; afterwards
    /// the shard has got as far as `watermark`.
    fn step(&mut self, watermark: OrderKey, event: impl FnOnce(&mut ShardWorker<B>, &mut Out)) {
        event(&mut self.worker, &mut self.produced);
        self.watermark = Some(watermark);
    }

    /// Hands what it finished to the merge, with what the other shards sent.
    fn send(&mut self, out: &mut Merging) {
        self.items = 0;
        // Sized like this one: see `last_produced` of the remote shards.
        let next = Vec::with_capacity(self.produced.len());
        out.push(merge::ShardOutput {
            shard: 0,
            entries: std::mem::replace(&mut self.produced, next),
            watermark: self.watermark,
        });
        out.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(|i| {
            let client = remora_core::Endpoint::new([10, 0, 0, 1].into(), i as u16);
            let server = remora_core::Endpoint::new([10, 0, (i >> 16) as u8, 2].into(), 80);
            remora_core::FlowKey::new(remora_core::Transport::Tcp, client, server).symmetric_hash()
        })
    }

    #[test]
    fn without_a_reading_shard_flows_spread_evenly_by_hash() {
        let flows = 20_000u64;
        for threads in 2..=4usize {
            let mut router = Router::new(threads, false);
            let mut count = vec![0u64; threads];
            for h in hashes(flows) {
                count[router.shard(h)] += 1;
            }
            for (s, &c) in count.iter().enumerate() {
                let got = c as f64 / flows as f64;
                let want = 1.0 / threads as f64;
                assert!(
                    (got - want).abs() < 0.02,
                    "{threads} threads: shard {s} got {got:.3}"
                );
            }
        }
    }

    /// Shares of flows `hashes` got, with `router` as it is.
    fn shares(router: &mut Router, hashes: impl Iterator<Item = u64>) -> Vec<f64> {
        let mut count = vec![0u64; router.threads as usize];
        for h in hashes {
            count[router.shard(h)] += 1;
        }
        let n: u64 = count.iter().sum();
        count.iter().map(|&c| c as f64 / n as f64).collect()
    }

    #[test]
    fn the_local_share_follows_who_waited_and_placed_flows_stay() {
        let second = Duration::from_secs(1);
        let (none, long) = (Duration::ZERO, Duration::from_millis(100));
        for threads in 2..=4usize {
            let mut router = Router::new(threads, true);
            // At first the reading shard takes an even share of what
            // reading leaves.
            let first = shares(&mut router, hashes(4_000));
            let want = (1.0 - Router::READER_SHARE) / threads as f64;
            assert!((first[0] - want).abs() < 0.03, "{threads}: {first:?}");
            let placed: Vec<usize> = hashes(4_000).map(|h| router.shard(h)).collect();

            // Remote shards idle: new flows leave the reading shard.
            for _ in 0..64 {
                router.rebalance(second, long, none);
            }
            assert_eq!(router.local_share, 0);
            let fresh = (1u64 << 20..).step_by(7919).take(20_000);
            let away = shares(&mut router, fresh);
            // (a few share a slot with a flow placed earlier)
            assert!(away[0] < 0.03, "{threads}: {away:?}");
            for (s, share) in away.iter().enumerate().skip(1) {
                let even = 1.0 / (threads - 1) as f64;
                assert!((share - even).abs() < 0.05, "{threads}: shard {s} {away:?}");
            }
            // Waiting below a fiftieth of the period changes nothing.
            router.rebalance(second, Duration::from_millis(5), Duration::from_millis(1));
            assert_eq!(router.local_share, 0);

            // The reading thread blocked: new flows stay with it.
            for _ in 0..64 {
                router.rebalance(second, none, long);
            }
            assert_eq!(router.local_share, 65536);
            let fresh = (1u64 << 40..).step_by(104_729).take(20_000);
            let stay = shares(&mut router, fresh);
            assert!(stay[0] > 0.6, "{threads}: {stay:?}");

            // Whatever the share, a flow's packets go where its first did.
            let again: Vec<usize> = hashes(4_000).map(|h| router.shard(h)).collect();
            assert_eq!(placed, again, "{threads} threads");
        }
    }

    /// A tick every 1,000 µs of capture time or 10 packets.
    fn ticker() -> Ticker {
        Ticker::new(&PipelineConfig {
            tick_us: 1000,
            tick_packets: 10,
            ..PipelineConfig::default()
        })
    }

    #[test]
    fn ticks_come_by_packet_count_or_capture_time() {
        let mut t = ticker();
        // by time
        assert!(!t.due(0, Timestamp(0)));
        assert!(!t.due(1, Timestamp(999)));
        assert!(t.due(2, Timestamp(1000)));
        // by count: next due at seq 12 (3 + ... ) regardless of time
        let due: Vec<u64> = (3..30).filter(|&s| t.due(s, Timestamp(1001))).collect();
        assert_eq!(due, vec![12, 22]);
    }

    /// Times at the end of the range (an adding overflow panicked in debug
    /// builds and wrapped the deadline into the past in release, a tick per
    /// packet) leave the ticking to the packet count.
    #[test]
    fn ticks_at_the_end_of_time_come_by_packet_count() {
        let mut t = ticker();
        let due: Vec<u64> = (0..30)
            .filter(|&s| t.due(s, Timestamp(i64::MAX - s as i64)))
            .collect();
        assert_eq!(due, vec![9, 19, 29]);
    }
}
