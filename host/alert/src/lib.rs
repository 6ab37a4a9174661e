//! Alerts: what fires them (detectors: rule alerts, alert plugins) and
//! where they go (delivery). CONTRACT SKELETON — the types and the
//! `Detector` trait below are shared by the rule engine, the Wasm alert
//! plugin adapter and delivery; extend, don't break.

pub mod config;
pub mod engine;
pub mod hub;
pub mod plugin;
pub mod rules;
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

/// Something that raises alerts from entries and the passage of time.
/// Called from one thread; keeps its own state.
pub trait Detector: Send {
    fn name(&self) -> &str;
    /// Entries in id order (already stored).
    fn on_entries(&mut self, entries: &[Arc<StoredEntry>]) -> Vec<Alert>;
    /// Periodic, with the current time (capture time when reading a file).
    fn on_tick(&mut self, now: Timestamp) -> Vec<Alert>;
}

pub use config::{AlertConfig, ConfigError};
pub use hub::AlertHub;
pub use rules::RuleSet;

#[cfg(test)]
mod tests;
