//! Newly stored entries, fanned out to subscriptions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use remora_core::fanout::{Fanout, Subscriber};
use remora_store::StoredEntry;

/// Entries a subscriber may fall behind by before it skips its oldest (and
/// the skip is counted): a slow client or alert plugin never makes the
/// capture wait or the server grow.
pub const FEED_CAPACITY: usize = 8192;

/// Bytes of entries (as [`crate::budget::entry_cost`] counts them) a
/// subscriber may fall behind by: entries with large bodies reach it long
/// before [`FEED_CAPACITY`] does. What lagging subscribers hold together is
/// at most this much, shared (see `remora_core::fanout`).
pub const FEED_BYTES: u64 = 64 << 20;

/// Cheap to clone; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct LiveFeed {
    tx: Fanout<Arc<StoredEntry>>,
    inner: Arc<FeedCounters>,
}

#[derive(Default)]
struct FeedCounters {
    published: AtomicU64,
    lagged: AtomicU64,
    unstorable: AtomicU64,
    per_protocol: Mutex<BTreeMap<String, u64>>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveFeed {
    pub fn new() -> Self {
        LiveFeed {
            tx: Fanout::new(FEED_CAPACITY, FEED_BYTES),
            inner: Arc::default(),
        }
    }

    /// Announce an entry that is now stored (it has its id).
    pub fn publish(&self, e: Arc<StoredEntry>) {
        let proto = e
            .catalog
            .protocol(e.entry.plugin, e.entry.protocol)
            .name
            .clone();
        *self
            .inner
            .per_protocol
            .lock()
            .expect("feed counters poisoned")
            .entry(proto)
            .or_default() += 1;
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        let bytes = crate::budget::entry_cost(&e);
        self.tx.publish(e, bytes);
    }

    pub fn subscribe(&self) -> Subscriber<Arc<StoredEntry>> {
        self.tx.subscribe()
    }

    pub(crate) fn count_lagged(&self, n: u64) {
        self.inner.lagged.fetch_add(n, Ordering::Relaxed);
    }

    /// Count an entry the store could not take (larger than its limit
    /// allows); it was dropped.
    pub fn count_unstorable(&self) {
        self.inner.unstorable.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unstorable(&self) -> u64 {
        self.inner.unstorable.load(Ordering::Relaxed)
    }

    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// Entries subscribers skipped because they fell behind.
    pub fn lagged(&self) -> u64 {
        self.inner.lagged.load(Ordering::Relaxed)
    }

    /// Entries published per protocol name since start.
    pub fn per_protocol(&self) -> Vec<(String, u64)> {
        self.inner
            .per_protocol
            .lock()
            .expect("feed counters poisoned")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}
