//! Alerts: what fires them (detectors: rule alerts, alert plugins) and
//! where they go (delivery). CONTRACT SKELETON — the types and the
//! `Detector` trait below are shared by the rule engine, the Wasm alert
//! plugin adapter and delivery; extend, don't break.

pub mod config;
pub mod engine;
pub mod hub;
pub mod plugin;
pub mod rules;
pub mod throttle;
pub mod webhook;

use std::sync::Arc;

use remora_core::Timestamp;
use remora_store::StoredEntry;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One alert as a detector raised it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Alert {
    /// Assigned when the alert is accepted (1, 2, ...); 0 before.
    pub id: u64,
    /// Rule (or plugin rule) name, e.g. "failed-secret-read".
    pub rule: String,
    /// Which detector raised it: "rules" or the alert plugin's name.
    pub source: String,
    pub severity: Severity,
    pub summary: String,
    pub entry_ids: Vec<u64>,
    pub labels: Vec<(String, String)>,
    /// Capture time of the newest entry involved (or of the tick).
    pub at: Timestamp,
}

/// What a detector says about its own work, for `/metrics`: an alert
/// plugin's entries, calls and faults (a rule set reports nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectorStats {
    /// Entries offered (before the prefilter).
    pub entries_seen: u64,
    /// Entries that passed the prefilter and were sent.
    pub entries_sent: u64,
    /// Sent entries whose call faulted or was refused (quarantine).
    pub entries_lost: u64,
    pub ticks_lost: u64,
    /// Calls that reached the plugin.
    pub calls: u64,
    /// Time spent inside those calls, in nanoseconds: which plugin costs
    /// the alert engine its time.
    pub call_ns: u64,
    /// Faults by kind: deadline, memory, stack, trap, malformed, capacity.
    pub faults: [(&'static str, u64); 6],
    /// Calls refused while the plugin was quarantined.
    pub quarantined_calls: u64,
    pub instances_created: u64,
    /// Instances replaced because their memory kept growing (the plugin's
    /// state started over; no call was lost).
    pub renewals: u64,
    /// Alerts withheld by the plugin's `rate_limit` or `dedupe`.
    pub alerts_withheld: u64,
}

/// Something that raises alerts from entries and the passage of time.
/// Called from one thread; keeps its own state.
pub trait Detector: Send {
    fn name(&self) -> &str;
    /// Counters to publish, if the detector keeps any.
    fn stats(&self) -> Option<DetectorStats> {
        None
    }
    /// Entries in id order (already stored).
    fn on_entries(&mut self, entries: &[Arc<StoredEntry>]) -> Vec<Alert>;
    /// Periodic, with the current time (capture time when reading a file).
    fn on_tick(&mut self, now: Timestamp) -> Vec<Alert>;
}

pub use config::{AlertConfig, ConfigError};
pub use hub::AlertHub;
pub use hub::HubCounters;
pub use rules::RuleSet;

#[cfg(test)]
mod tests;
