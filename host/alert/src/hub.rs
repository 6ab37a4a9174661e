//! Where accepted alerts go: ids, a bounded in-memory history (the API's
//! `alerts` query), a broadcast (its subscription), the log and webhooks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::config::AlertConfig;
use crate::webhook::Webhook;
use crate::{Alert, DetectorStats};

pub const DEFAULT_KEEP: usize = 1000;
/// Alerts a subscriber may fall behind by before it skips.
pub const BROADCAST_CAPACITY: usize = 1024;

pub struct AlertHub {
    next_id: AtomicU64,
    keep: usize,
    recent: Mutex<VecDeque<Arc<Alert>>>,
    by_rule: Mutex<BTreeMap<String, u64>>,
    tx: broadcast::Sender<Arc<Alert>>,
    webhooks: Vec<Webhook>,
    /// Entries the engine skipped because it fell behind the capture.
    pub skipped_entries: AtomicU64,
    /// The latest counters each detector published, by name.
    detectors: Mutex<BTreeMap<String, DetectorStats>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubCounters {
    pub raised_by_rule: BTreeMap<String, u64>,
    pub delivered: u64,
    pub retried: u64,
    pub dropped: u64,
    pub skipped_entries: u64,
    pub detectors: BTreeMap<String, DetectorStats>,
}

impl AlertHub {
    pub fn new(keep: usize, webhooks: Vec<Webhook>) -> AlertHub {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        AlertHub {
            next_id: AtomicU64::new(1),
            keep: keep.max(1),
            recent: Mutex::new(VecDeque::new()),
            by_rule: Mutex::default(),
            tx,
            webhooks,
            skipped_entries: AtomicU64::new(0),
            detectors: Mutex::default(),
        }
    }

    /// Starts the config's webhooks.
    pub fn from_config(cfg: &AlertConfig) -> Result<AlertHub, crate::config::ConfigError> {
        let webhooks = cfg
            .webhooks
            .iter()
            .map(|w| {
                Webhook::start(w, &cfg.allow_hosts).map_err(|message| {
                    crate::config::ConfigError::Webhook {
                        webhook: w.name.clone(),
                        message,
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AlertHub::new(cfg.keep.unwrap_or(DEFAULT_KEEP), webhooks))
    }

    /// Accepts an alert: gives it an id, keeps, logs, broadcasts, delivers.
    pub fn raise(&self, mut alert: Alert) -> Arc<Alert> {
        alert.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let alert = Arc::new(alert);
        tracing::warn!(target: "alert", id = alert.id, rule = %alert.rule, severity = ?alert.severity, "{}", alert.summary);
        *self
            .by_rule
            .lock()
            .expect("alert counters poisoned")
            .entry(alert.rule.clone())
            .or_default() += 1;
        {
            let mut r = self.recent.lock().expect("alert history poisoned");
            if r.len() == self.keep {
                r.pop_front();
            }
            r.push_back(alert.clone());
        }
        let _ = self.tx.send(alert.clone());
        for w in &self.webhooks {
            w.send(alert.clone());
        }
        alert
    }

    /// Replaces what `detector` published before (the engine calls this
    /// after each round of work).
    pub fn publish_stats(&self, detector: &str, stats: DetectorStats) {
        let mut d = self.detectors.lock().expect("detector stats poisoned");
        match d.get_mut(detector) {
            Some(old) => *old = stats,
            None => {
                d.insert(detector.to_owned(), stats);
            }
        }
    }

    /// Up to `limit` alerts with id > `after`, oldest first.
    pub fn list(&self, after: u64, limit: usize) -> Vec<Arc<Alert>> {
        let r = self.recent.lock().expect("alert history poisoned");
        r.iter()
            .filter(|a| a.id > after)
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Alert>> {
        self.tx.subscribe()
    }

    /// Every webhook has sent (or given up on) everything it was handed.
    pub fn idle(&self) -> bool {
        self.webhooks.iter().all(Webhook::idle)
    }

    pub fn counters(&self) -> HubCounters {
        let mut c = HubCounters {
            raised_by_rule: self
                .by_rule
                .lock()
                .expect("alert counters poisoned")
                .clone(),
            skipped_entries: self.skipped_entries.load(Ordering::Relaxed),
            detectors: self
                .detectors
                .lock()
                .expect("detector stats poisoned")
                .clone(),
            ..HubCounters::default()
        };
        for w in &self.webhooks {
            c.delivered += w.counters.delivered.load(Ordering::Relaxed);
            c.retried += w.counters.retried.load(Ordering::Relaxed);
            c.dropped += w.counters.dropped.load(Ordering::Relaxed);
        }
        c
    }
}
