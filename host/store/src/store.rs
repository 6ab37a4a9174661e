//! The store: opening and recovery, appending batches, eviction, reads.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use remora_entry::{Catalog, Entry};

use crate::catalogs::CatalogLog;
use crate::codec::encode_entry;
use crate::error::{io, StoreError};
use crate::frame_decoder::{FrameDecoder, Pick};
use crate::segment::{parse_summary_name, segment_paths, FrameRef, Segment};
use crate::wire::{
    seal_record, FrameHeader, FILE_HEADER_LEN, FRAME_BATCH_END, FRAME_HEADER_LEN, MAX_RECORD_LEN,
    RECORD_PREFIX_LEN,
};
use crate::{
    AppendAck, Order, Recovery, Scan, ScanStats, StoreConfig, StoreStats, StoredEntry,
    MIN_MAX_BYTES,
};

/// Entries per frame: the granularity of the sparse index and of reads.
const FRAME_MAX_ENTRIES: usize = 512;
/// A frame is closed once its summaries reach this many bytes.
const FRAME_TARGET_BYTES: usize = 256 << 10;
/// One entry's summary may not exceed this, so a frame stays under
/// `MAX_RECORD_LEN` (bodies are not part of the summary).
const ENTRY_MAX_BYTES: usize = (MAX_RECORD_LEN as usize - FRAME_TARGET_BYTES) / 2;

/// Encoding buffers kept between appends.
const KEEP_BUFFER_BYTES: usize = 8 << 20;

/// Thread-safe: `append` serialises on a writer lock; readers take a
/// snapshot of the segment list and read files without blocking the writer.
pub struct Store {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    sync: bool,
    /// Held (flock) for the store's lifetime: one process per data dir.
    _lock: File,
    writer: Mutex<Writer>,
    shared: RwLock<Shared>,
    evicted_entries: AtomicU64,
    evicted_bytes: AtomicU64,
    torn_bytes_cut: u64,
}

struct Shared {
    /// Oldest first; the last one is the active segment.
    segments: VecDeque<Arc<Segment>>,
    catalogs: Vec<Arc<Catalog>>,
}

struct Writer {
    next_id: u64,
    next_seq: u64,
    catalogs: CatalogLog,
    sum_buf: Vec<u8>,
    body_buf: Vec<u8>,
    frames: Vec<PendingFrame>,
    /// Set when a failed write could not be undone: the files may hold bytes
    /// the index does not know, and appending after them would bury them.
    poisoned: Option<String>,
}

/// A frame encoded into `sum_buf` whose body offsets are still relative to
/// the batch.
struct PendingFrame {
    start: usize,
    header: FrameHeader,
}

/// How long a busy data-dir lock is retried, and how often.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);
const LOCK_RETRY: Duration = Duration::from_millis(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}
fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    pub fn open(cfg: StoreConfig) -> Result<(Store, Recovery), StoreError> {
        if cfg.max_bytes < MIN_MAX_BYTES {
            return Err(StoreError::Config(format!(
                "max_bytes {} is below the minimum of {MIN_MAX_BYTES}",
                cfg.max_bytes
            )));
        }
        let segment_bytes = cfg
            .segment_bytes
            .clamp(FILE_HEADER_LEN * 2 + 1, cfg.max_bytes / 4);
        let dir = cfg.dir.clone();
        let not_writable = |source| StoreError::DirNotWritable {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(not_writable)?;
        let lock_path = dir.join("LOCK");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(not_writable)?;
        // A lock that a store just dropped can still be held for an instant:
        // flock belongs to the open file, and a child that this (threaded)
        // process forks shares it until its exec closes it. So a busy lock
        // is retried briefly before it means another process.
        let mut waited = Duration::ZERO;
        loop {
            match lock_file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if waited < LOCK_PATIENCE => {
                    std::thread::sleep(LOCK_RETRY);
                    waited += LOCK_RETRY;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Locked { path: dir.clone() })
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
            }
        }

        let (catalog_log, catalogs, mut torn) = CatalogLog::open(&dir)?;
        let (seqs, half_created) = list_segments(&dir)?;
        torn += half_created;

        let mut segments = VecDeque::with_capacity(seqs.len());
        let mut end_id = 1u64;
        for seq in &seqs {
            let (seg, rec) = Segment::open(&dir, *seq, catalogs.len() as u32)?;
            torn += rec.torn_bytes;
            if seg.base_id < end_id {
                return Err(StoreError::Corrupt {
                    path: seg.sum_path.clone(),
                    offset: 24,
                    reason: format!(
                        "segment starts at id {} but the segment before it reaches id {}",
                        seg.base_id,
                        end_id - 1
                    ),
                });
            }
            end_id = read(&seg.index)
                .id_range()
                .map_or(seg.base_id, |(_, end)| end);
            segments.push_back(Arc::new(seg));
        }
        let next_seq = seqs.last().map_or(1, |s| s + 1);
        let mut writer = Writer {
            next_id: end_id,
            next_seq,
            catalogs: catalog_log,
            sum_buf: Vec::new(),
            body_buf: Vec::new(),
            frames: Vec::new(),
            poisoned: None,
        };
        if segments.is_empty() {
            segments.push_back(Arc::new(Segment::create(&dir, writer.next_seq, end_id)?));
            writer.next_seq += 1;
        }
        let catalog_count = catalogs.len();
        let store = Store {
            dir,
            max_bytes: cfg.max_bytes,
            segment_bytes,
            sync: cfg.sync,
            _lock: lock_file,
            writer: Mutex::new(writer),
            shared: RwLock::new(Shared { segments, catalogs }),
            evicted_entries: AtomicU64::new(0),
            evicted_bytes: AtomicU64::new(0),
            torn_bytes_cut: torn,
        };
        // The limit may have been lowered since the store was written.
        let evicted_segments = store.evict_for(0)?;
        let stats = store.stats();
        let recovery = Recovery {
            entries: stats.entries,
            segments: stats.segments,
            catalogs: catalog_count,
            torn_bytes_cut: torn,
            evicted_segments,
        };
        tracing::info!(
            dir = %store.dir.display(),
            entries = recovery.entries,
            segments = recovery.segments,
            torn_bytes_cut = recovery.torn_bytes_cut,
            next_id = stats.newest_id.map_or(1, |n| n + 1),
            "entry store opened"
        );
        Ok((store, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `entries` as one batch, writing their assigned ids into them.
    /// Durable when it returns (with `sync`); after a crash the batch is
    /// either whole or absent.
    pub fn append(
        &self,
        catalog: &Arc<Catalog>,
        entries: &mut [Entry],
    ) -> Result<AppendAck, StoreError> {
        let mut w = lock(&self.writer);
        if let Some(reason) = &w.poisoned {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        let first_id = w.next_id;
        if entries.is_empty() {
            return Ok(AppendAck {
                first_id,
                last_id: first_id - 1,
            });
        }
        for (index, e) in entries.iter().enumerate() {
            let known = catalog
                .plugins
                .get(e.plugin as usize)
                .is_some_and(|p| (e.protocol as usize) < p.protocols.len());
            if !known {
                return Err(StoreError::UnknownProtocol {
                    index,
                    plugin: e.plugin,
                    protocol: e.protocol,
                });
            }
        }
        let (catalog_no, new_catalog) = w.catalogs.number_of(catalog)?;
        if new_catalog {
            write(&self.shared).catalogs.push(catalog.clone());
        }
        let w = &mut *w;
        encode_batch(w, first_id, catalog_no, entries)?;
        let batch_bytes = (w.sum_buf.len() + w.body_buf.len()) as u64;
        if batch_bytes > self.max_bytes / 2 {
            return Err(StoreError::BatchTooLarge {
                bytes: batch_bytes,
                limit: self.max_bytes / 2,
            });
        }

        let active = self.make_room(w, first_id, batch_bytes)?;
        let (sum_at, body_at) = {
            let idx = read(&active.index);
            (idx.sum_len, idx.body_len)
        };
        let mut refs = Vec::with_capacity(w.frames.len());
        let frame_count = w.frames.len();
        for i in 0..frame_count {
            let end = w.frames_end(i);
            let f = &mut w.frames[i];
            f.header.body_start += body_at;
            f.header.body_end += body_at;
            if i + 1 == frame_count {
                f.header.flags |= FRAME_BATCH_END;
            }
            let payload_at = f.start + RECORD_PREFIX_LEN as usize;
            f.header
                .encode_into(&mut w.sum_buf[payload_at..payload_at + FRAME_HEADER_LEN]);
            seal_record(&mut w.sum_buf[..end], f.start);
            refs.push(FrameRef {
                offset: sum_at + f.start as u64,
                len: (end - payload_at) as u32,
                header: f.header,
            });
        }
        if let Err(e) = active.write_batch(sum_at, &w.sum_buf, body_at, &w.body_buf, self.sync) {
            if let Err(undo) = active.truncate_to(sum_at, body_at) {
                w.poisoned = Some(format!("{e}; undoing it failed: {undo}"));
            }
            return Err(e);
        }
        {
            let mut idx = write(&active.index);
            for r in refs {
                idx.push(r);
            }
        }
        for (i, e) in entries.iter_mut().enumerate() {
            e.id = first_id + i as u64;
        }
        w.next_id = first_id + entries.len() as u64;
        // One huge batch must not pin its buffers for the store's lifetime.
        for buf in [&mut w.sum_buf, &mut w.body_buf] {
            buf.shrink_to(KEEP_BUFFER_BYTES);
        }
        Ok(AppendAck {
            first_id,
            last_id: w.next_id - 1,
        })
    }

    /// Seals the active segment when the batch would overflow it, then evicts
    /// oldest segments until the batch fits under the limit. Returns the
    /// segment to write to.
    fn make_room(
        &self,
        w: &mut Writer,
        first_id: u64,
        batch_bytes: u64,
    ) -> Result<Arc<Segment>, StoreError> {
        let active = read(&self.shared)
            .segments
            .back()
            .cloned()
            .expect("always one segment");
        let (active_bytes, active_entries) = {
            let idx = read(&active.index);
            (idx.bytes(), idx.entries)
        };
        let active = if active_entries > 0 && active_bytes + batch_bytes > self.segment_bytes {
            let seg = Arc::new(Segment::create(&self.dir, w.next_seq, first_id)?);
            w.next_seq += 1;
            write(&self.shared).segments.push_back(seg.clone());
            seg
        } else {
            active
        };
        self.evict_for(batch_bytes)?;
        Ok(active)
    }

    /// Evicts whole oldest segments (never the active one) until `extra`
    /// more bytes fit under the limit. Returns how many were evicted.
    fn evict_for(&self, extra: u64) -> Result<usize, StoreError> {
        let mut evicted = 0;
        loop {
            let mut shared = write(&self.shared);
            let total: u64 = shared.segments.iter().map(|s| read(&s.index).bytes()).sum();
            if total + extra <= self.max_bytes || shared.segments.len() < 2 {
                return Ok(evicted);
            }
            let oldest = shared.segments.pop_front().expect("checked above");
            drop(shared);
            let (bytes, entries) = {
                let idx = read(&oldest.index);
                (idx.bytes(), idx.entries)
            };
            // Readers holding the segment keep reading the unlinked files.
            oldest.remove_files()?;
            self.evicted_entries.fetch_add(entries, Relaxed);
            self.evicted_bytes.fetch_add(bytes, Relaxed);
            evicted += 1;
            tracing::debug!(
                segment = oldest.seq,
                entries,
                bytes,
                "evicted oldest segment"
            );
        }
    }

    /// Visits matching entries in order until `visit` breaks.
    ///
    /// The entry `visit` sees lives in a buffer the scan decodes the next
    /// record into, so a visitor that keeps an entry clones it; that is what
    /// lets a scan run without allocating per entry.
    pub fn scan(
        &self,
        q: &Scan,
        visit: &mut dyn FnMut(&StoredEntry) -> ControlFlow<()>,
    ) -> Result<ScanStats, StoreError> {
        let mut segments: Vec<Arc<Segment>> = read(&self.shared).segments.iter().cloned().collect();
        if q.order == Order::NewestFirst {
            segments.reverse();
        }
        let from = q.from.map_or(i64::MIN, |t| t.0);
        let to = q.to.map_or(i64::MAX, |t| t.0);
        let id_wanted = |id: u64| match (q.order, q.after_id) {
            (_, None) => true,
            (Order::OldestFirst, Some(a)) => id > a,
            (Order::NewestFirst, Some(a)) => id < a,
        };
        let mut stats = ScanStats::default();
        let mut catalogs = CatalogSnapshot::default();
        let mut decoder = FrameDecoder::new();
        for seg in &segments {
            let frames: Vec<FrameRef> = {
                let idx = read(&seg.index);
                let Some((lo, hi)) = idx.id_range() else {
                    continue;
                };
                if idx.max_ts < from || idx.min_ts >= to || !id_wanted(lo) && !id_wanted(hi - 1) {
                    stats.frames_skipped += idx.frames.len() as u64;
                    continue;
                }
                let mut v: Vec<FrameRef> = idx
                    .frames
                    .iter()
                    .filter(|f| {
                        let h = &f.header;
                        h.max_ts >= from
                            && h.min_ts < to
                            && (id_wanted(h.first_id) || id_wanted(h.end_id() - 1))
                    })
                    .copied()
                    .collect();
                stats.frames_skipped += (idx.frames.len() - v.len()) as u64;
                if q.order == Order::NewestFirst {
                    v.reverse();
                }
                v
            };
            let pick = match q.order {
                Order::NewestFirst => Pick::Backward,
                Order::OldestFirst => Pick::Forward,
            };
            for f in &frames {
                stats.frames_read += 1;
                let catalog = catalogs.get(self, f.header.catalog, seg)?;
                // Frames the index kept may still hold entries outside the
                // range: their ids straddle the cursor or times overlap it.
                let whole_frame = f.header.min_ts >= from
                    && f.header.max_ts < to
                    && id_wanted(f.header.first_id)
                    && id_wanted(f.header.end_id() - 1);
                let mut visit_one = |e: &StoredEntry| -> ControlFlow<()> {
                    if !whole_frame {
                        let ts = e.entry.timestamp().0;
                        if ts < from || ts >= to || !id_wanted(e.entry.id) {
                            return ControlFlow::Continue(());
                        }
                    }
                    stats.visited += 1;
                    visit(e)
                };
                let flow = decoder.visit(seg, f, &catalog, q.with_bodies, pick, &mut visit_one)?;
                if flow.is_break() {
                    return Ok(stats);
                }
            }
        }
        Ok(stats)
    }

    /// One entry with its body bytes.
    pub fn get(&self, id: u64) -> Result<Option<StoredEntry>, StoreError> {
        let segments: Vec<Arc<Segment>> = read(&self.shared).segments.iter().cloned().collect();
        let i = segments.partition_point(|s| s.base_id <= id);
        let Some(seg) = i.checked_sub(1).map(|i| &segments[i]) else {
            return Ok(None);
        };
        let frame = {
            let idx = read(&seg.index);
            let k = idx.frames.partition_point(|f| f.header.end_id() <= id);
            match idx.frames.get(k) {
                Some(f) if f.header.first_id <= id => *f,
                _ => return Ok(None),
            }
        };
        let catalog = CatalogSnapshot::default().get(self, frame.header.catalog, seg)?;
        let mut found = None;
        // Whether the visitor broke or not, `found` says if `id` was there.
        let _ =
            FrameDecoder::new().visit(seg, &frame, &catalog, true, Pick::One(id), &mut |e| {
                found = Some(e.clone());
                ControlFlow::Break(())
            })?;
        Ok(found)
    }

    pub fn stats(&self) -> StoreStats {
        let shared = read(&self.shared);
        let mut s = StoreStats {
            limit_bytes: self.max_bytes,
            evicted_entries: self.evicted_entries.load(Relaxed),
            evicted_bytes: self.evicted_bytes.load(Relaxed),
            segments: shared.segments.len(),
            catalogs: shared.catalogs.len(),
            torn_bytes_cut: self.torn_bytes_cut,
            ..StoreStats::default()
        };
        for seg in &shared.segments {
            let idx = read(&seg.index);
            s.bytes += idx.bytes();
            s.entries += idx.entries;
            if let Some((lo, hi)) = idx.id_range() {
                s.oldest_id.get_or_insert(lo);
                s.newest_id = Some(hi - 1);
            }
        }
        s
    }
}

impl Writer {
    /// Where frame `i` ends in `sum_buf`.
    fn frames_end(&self, i: usize) -> usize {
        self.frames
            .get(i + 1)
            .map_or(self.sum_buf.len(), |f| f.start)
    }
}

/// Encodes a batch into the writer's buffers as frames of at most
/// `FRAME_MAX_ENTRIES` entries; headers get body offsets relative to the
/// batch and are sealed once the target segment is known.
fn encode_batch(
    w: &mut Writer,
    first_id: u64,
    catalog: u32,
    entries: &[Entry],
) -> Result<(), StoreError> {
    w.sum_buf.clear();
    w.body_buf.clear();
    w.frames.clear();
    let mut i = 0;
    while i < entries.len() {
        let planned = &entries[i..(i + FRAME_MAX_ENTRIES).min(entries.len())];
        // The base for time deltas; a frame that closes early on size keeps
        // it, which only makes its index lower bound looser.
        let min_ts = planned.iter().map(|e| e.timestamp().0).min().unwrap_or(0);
        let start = w.sum_buf.len();
        w.sum_buf
            .resize(start + RECORD_PREFIX_LEN as usize + FRAME_HEADER_LEN, 0);
        let body_start = w.body_buf.len();
        let mut max_ts = i64::MIN;
        let mut count = 0;
        for e in planned {
            let before = w.sum_buf.len();
            encode_entry(&mut w.sum_buf, &mut w.body_buf, body_start, min_ts, e);
            let size = w.sum_buf.len() - before;
            if size > ENTRY_MAX_BYTES {
                return Err(StoreError::EntryTooLarge {
                    index: i + count,
                    bytes: size as u64,
                    limit: ENTRY_MAX_BYTES as u64,
                });
            }
            max_ts = max_ts.max(e.timestamp().0);
            count += 1;
            if w.sum_buf.len() - start >= FRAME_TARGET_BYTES {
                break;
            }
        }
        w.frames.push(PendingFrame {
            start,
            header: FrameHeader {
                flags: 0,
                catalog,
                first_id: first_id + i as u64,
                count: count as u32,
                min_ts,
                max_ts,
                body_start: body_start as u64,
                body_end: w.body_buf.len() as u64,
            },
        });
        i += count;
    }
    Ok(())
}

/// The catalogs a reader has seen, refreshed when a frame names a newer one
/// (appended after the reader's snapshot).
#[derive(Default)]
struct CatalogSnapshot(Vec<Arc<Catalog>>);

impl CatalogSnapshot {
    fn get(&mut self, store: &Store, n: u32, seg: &Segment) -> Result<Arc<Catalog>, StoreError> {
        if n as usize >= self.0.len() {
            self.0 = read(&store.shared).catalogs.clone();
        }
        self.0
            .get(n as usize)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt {
                path: seg.sum_path.clone(),
                offset: 0,
                reason: format!("frame names catalog {n}, which the catalog log does not hold"),
            })
    }
}

/// Segment sequence numbers present in `dir`, oldest first, after removing
/// the files of a segment whose creation was interrupted (a lone body file,
/// or a newest summary file shorter than its header). Returns the bytes
/// removed that way.
fn list_segments(dir: &Path) -> Result<(Vec<u64>, u64), StoreError> {
    let mut seqs = Vec::new();
    let mut bodies = Vec::new();
    for ent in std::fs::read_dir(dir).map_err(io(dir))? {
        let ent = ent.map_err(io(dir))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse_summary_name(name) {
            seqs.push(seq);
        } else if let Some(seq) = name
            .strip_suffix(".body")
            .and_then(|n| parse_summary_name(&format!("{n}.sum")))
        {
            bodies.push(seq);
        }
    }
    seqs.sort_unstable();
    let mut removed = 0;
    let newest = seqs.last().copied();
    for seq in bodies {
        if !seqs.contains(&seq) && newest.is_none_or(|n| seq > n) {
            let (_, body) = segment_paths(dir, seq);
            removed += std::fs::metadata(&body).map_err(io(&body))?.len();
            tracing::warn!(path = %body.display(), "removing body file of a segment whose creation was interrupted");
            std::fs::remove_file(&body).map_err(io(&body))?;
        }
    }
    if let Some(n) = newest {
        let (sum, body) = segment_paths(dir, n);
        let len = std::fs::metadata(&sum).map_err(io(&sum))?.len();
        if len < FILE_HEADER_LEN {
            tracing::warn!(path = %sum.display(), "removing a segment whose creation was interrupted");
            removed += len;
            std::fs::remove_file(&sum).map_err(io(&sum))?;
            if let Ok(m) = std::fs::metadata(&body) {
                removed += m.len();
                std::fs::remove_file(&body).map_err(io(&body))?;
            }
            seqs.pop();
        }
    }
    Ok((seqs, removed))
}
