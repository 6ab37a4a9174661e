//! The entry store: embedded, crash-safe, size-bounded.
//!
//! Entries live in a segmented append-only log in the data directory. Each
//! segment is a summary file (checksummed frames of compactly encoded entry
//! summaries) and a body file (raw body bytes), so listing reads summaries
//! only. One [`Store::append`] is one batch, durable when it returns; on open
//! everything after the last complete batch is cut, so a crash loses at most
//! the batch that was being written. The size limit evicts whole oldest
//! segments. An in-memory sparse index (per segment and per frame: id range,
//! time range, offset) is rebuilt on open and serves cursor and time-range
//! scans in both orders.
//!
//! Entries reference plugin and field ids of a [`Catalog`]; each distinct
//! catalog is stored once and every frame names the one it was written with,
//! so old entries stay readable after the plugin set changes.
//!
//! Architecture invariant: nothing here knows a protocol; nothing read from
//! disk is trusted (lengths are capped, checksums checked) and damage is an
//! error or a counted cut, never a panic.

mod catalogs;
mod codec;
mod error;
mod frame_decoder;
mod segment;
mod store;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;

use remora_core::Timestamp;
use remora_entry::{Catalog, Entry};

pub use error::StoreError;
pub use store::Store;

/// Where entries go when `--data-dir` is not given:
/// `$XDG_DATA_HOME/remora`, else `~/.local/share/remora`, else `./remora-data`.
pub fn default_data_dir() -> PathBuf {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME").map(PathBuf::from) {
        // The XDG spec says relative values are invalid and must be ignored.
        if xdg.is_absolute() {
            return xdg.join("remora");
        }
    }
    match non_empty("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/remora"),
        None => PathBuf::from("remora-data"),
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// Summaries plus bodies of all segments stay at or under this.
    pub max_bytes: u64,
    /// A segment is sealed once it reaches this size; clamped to at most a
    /// quarter of `max_bytes` so eviction frees space in small steps.
    pub segment_bytes: u64,
    /// fdatasync every batch before `append` returns. Off only for tests and
    /// benchmarks that measure encoding, never for capture.
    pub sync: bool,
}

pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 << 20;
/// Below this a store could not hold even a few segments of one frame.
pub const MIN_MAX_BYTES: u64 = 256 << 10;

impl StoreConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sync: true,
        }
    }
}

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub entries: u64,
    pub segments: usize,
    pub catalogs: usize,
    /// Bytes after the last complete batch (torn writes, garbage) that were
    /// cut from segment, catalog and half-created files.
    pub torn_bytes_cut: u64,
    /// Whole segments evicted on open because `max_bytes` was lowered.
    pub evicted_segments: usize,
}

/// Ids `first_id..=last_id` were assigned and are durable. For an empty batch
/// `last_id == first_id - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendAck {
    pub first_id: u64,
    pub last_id: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

#[derive(Clone, Debug, Default)]
pub struct Scan {
    pub order: Order,
    /// Exclusive cursor in scan order: ids below it for `NewestFirst`, above
    /// it for `OldestFirst`.
    pub after_id: Option<u64>,
    /// `[from, to)` on [`Entry::timestamp`].
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Read body bytes too; otherwise bodies keep their metadata with empty
    /// `data`.
    pub with_bodies: bool,
}

/// An entry read back, with the catalog its plugin/field ids refer to.
#[derive(Clone, Debug)]
pub struct StoredEntry {
    pub catalog: Arc<Catalog>,
    pub entry: Entry,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub visited: u64,
    pub frames_read: u64,
    /// Frames the index ruled out without reading them.
    pub frames_skipped: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub bytes: u64,
    pub limit_bytes: u64,
    pub entries: u64,
    pub evicted_entries: u64,
    pub evicted_bytes: u64,
    pub segments: usize,
    pub catalogs: usize,
    pub oldest_id: Option<u64>,
    pub newest_id: Option<u64>,
    pub torn_bytes_cut: u64,
}
