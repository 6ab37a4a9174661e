//! `remora tap --alerts FILE` (rules, hub, engine) and `remora alerts`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use remora_alert::engine::Clock;
use remora_alert::{AlertConfig, AlertHub, RuleSet};
use remora_api::LiveFeed;
use remora_entry::Catalog;

/// The rules and hub of an `--alerts` file; both `None` without one.
pub(crate) fn load_rules(
    path: Option<&Path>,
    catalog: &Catalog,
) -> Result<(Option<RuleSet>, Option<Arc<AlertHub>>)> {
    let Some(path) = path else {
        return Ok((None, None));
    };
    let cfg = AlertConfig::load(path)?;
    let rules = RuleSet::compile(&cfg.rules, catalog)
        .with_context(|| format!("--alerts {}", path.display()))?;
    let hub =
        AlertHub::from_config(&cfg).with_context(|| format!("--alerts {}", path.display()))?;
    Ok((Some(rules), Some(Arc::new(hub))))
}

/// Subscribes before the writer starts so no stored entry is missed.
pub(crate) fn start_engine(
    rules: RuleSet,
    hub: Arc<AlertHub>,
    feed: &LiveFeed,
    reading_files: bool,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let clock = if reading_files {
        Clock::Capture
    } else {
        Clock::Wall
    };
    remora_alert::engine::spawn(vec![Box::new(rules)], hub, feed.subscribe(), clock, stop)
        .context("cannot start the alert engine")
}
