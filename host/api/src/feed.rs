//! Newly stored entries, fanned out to subscriptions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use remora_store::StoredEntry;
use tokio::sync::broadcast;

/// Entries a subscriber may fall behind by before it skips (and the skip is
/// counted): a slow client never makes the capture wait or the server grow.
pub const FEED_CAPACITY: usize = 8192;

/// Cheap to clone; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<StoredEntry>>,
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
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        LiveFeed {
            tx,
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
        // No subscribers is fine.
        let _ = self.tx.send(e);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEntry>> {
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
