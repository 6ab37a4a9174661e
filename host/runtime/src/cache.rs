//! The on-disk cache of compiled components: one file per (wasm sha256,
//! engine fingerprint), bounded in total size.
//!
//! Every rebuilt plugin and every new wasmtime makes new entries and no
//! entry is ever asked for again once its plugin changed, so an unbounded
//! cache only grows (a developer's rebuilds reached a gigabyte). After each
//! write the least recently used entries go until the cache fits its
//! budget; a hit marks its entry used (its modification time, refreshed at
//! most once an hour so that a start-up does not write to every file).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

/// Entries end in this; nothing else in the directory is ever removed.
const SUFFIX: &str = ".cwasm";
/// A hit older than this is marked used again.
const REFRESH_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    max_bytes: u64,
    /// A write failed: the next ones would fail alike (a read-only or
    /// missing directory), so they are not tried and not warned about again.
    write_failed: AtomicBool,
}

/// What [`ComponentCache::prune`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub files: usize,
    pub bytes: u64,
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf, max_bytes: u64) -> Self {
        ComponentCache {
            dir,
            max_bytes,
            write_failed: AtomicBool::new(false),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}{SUFFIX}"))
    }

    /// The entry of `key`, marked used; `None` if there is none. Read into
    /// memory rather than mapped: an entry truncated or rewritten by
    /// someone else would otherwise SIGBUS the whole capture.
    pub(crate) fn get(&self, key: &str) -> Option<std::io::Result<Vec<u8>>> {
        let path = self.path(key);
        // One open serves the check and the read.
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return Some(Err(e)),
        };
        let meta = file.metadata().ok().filter(|m| m.is_file())?;
        let stale = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age > REFRESH_AFTER);
        if stale {
            // Only the eviction order depends on it: a failure is harmless.
            let _ = std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(SystemTime::now()));
        }
        let mut data = Vec::with_capacity(meta.len() as usize);
        Some(std::io::Read::read_to_end(&mut file, &mut data).map(|_| data))
    }

    /// Stores `data` under `key` (atomically: readers see the old entry or
    /// the whole new one), then evicts least recently used entries until
    /// the cache fits its budget; the new entry itself is kept.
    ///
    /// Only the first failed write is an error: after it nothing is written
    /// (nor pruned) any more, so that plugins loading on several threads
    /// report one failure between them.
    pub(crate) fn put(&self, key: &str, data: &[u8]) -> std::io::Result<Pruned> {
        if self.write_failed.load(Ordering::Relaxed) {
            return Ok(Pruned::default());
        }
        let file = self.path(key);
        match write_atomic(&file, data) {
            Ok(()) => Ok(self.prune(&file)),
            Err(_) if self.write_failed.swap(true, Ordering::Relaxed) => Ok(Pruned::default()),
            Err(e) => Err(e),
        }
    }

    /// Removes the least recently used entries but `keep` while the entries
    /// together exceed the budget.
    fn prune(&self, keep: &Path) -> Pruned {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Pruned::default();
        };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = dir
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name();
                let name = name.to_str()?;
                if !name.ends_with(SUFFIX) || name.starts_with('.') {
                    return None;
                }
                let meta = e.metadata().ok().filter(|m| m.is_file())?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        let mut pruned = Pruned::default();
        if total <= self.max_bytes {
            return pruned;
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            // Gone already (another process pruning) counts as removed.
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    pruned.files += 1;
                    pruned.bytes += len;
                    total -= len;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "cannot prune the component cache: {e}")
                }
            }
        }
        pruned
    }
}

fn write_atomic(file: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Unique per process and call: concurrent writers never share a temp file.
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        file.file_name().and_then(|n| n.to_str()).unwrap_or("c"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path, secs_ago: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs_ago);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn a_write_evicts_least_recently_used_entries_down_to_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let roomy = ComponentCache::new(dir.path().to_path_buf(), u64::MAX);
        let cache = ComponentCache::new(dir.path().to_path_buf(), 2500);
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(roomy.put(key, &[0; 1000]).unwrap(), Pruned::default());
            // a is the oldest, c the newest
            aged(&cache.path(key), 10_000 - i as u64 * 1000);
        }
        std::fs::write(dir.path().join("notes.txt"), [0; 5000]).unwrap();
        // a hit makes `a` the most recently used
        assert_eq!(cache.get("a").unwrap().unwrap().len(), 1000);
        assert!(cache.get("zzz").is_none());

        let pruned = cache.put("d", &[0; 1000]).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                files: 2,
                bytes: 2000
            }
        );
        let left = |k: &str| cache.path(k).exists();
        assert!(left("a") && left("d"), "used and new entries stay");
        assert!(!left("b") && !left("c"));
        assert!(dir.path().join("notes.txt").exists(), "only entries go");
    }

    #[test]
    fn the_new_entry_stays_even_past_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(dir.path().to_path_buf(), 100);
        cache.put("old", &[0; 50]).unwrap();
        aged(&cache.path("old"), 100_000);
        let pruned = cache.put("big", &[0; 500]).unwrap();
        assert_eq!(pruned.files, 1);
        assert!(cache.path("big").exists());
        assert_eq!(cache.get("big").unwrap().unwrap().len(), 500);
    }
}
