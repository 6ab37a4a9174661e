//! Alerts in the CLI: what `remora tap --alerts FILE` runs (rules, Wasm alert
//! plugins, delivery) and `remora alerts`, which lists or follows the alerts
//! of a running server.

use std::io::{self, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use clap::Args;
use remora_alert::engine::Clock;
use remora_alert::plugin::PluginDetector;
use remora_alert::{AlertConfig, AlertHub, Detector, RuleSet};
use remora_api::LiveFeed;
use remora_entry::Catalog;
use remora_runtime::{Runtime, RuntimeConfig};
use serde_json::json;

use crate::alert_print::{severity_rank, AlertFormat, AlertPrinter, AlertRow};
use crate::client::{run_until_interrupted, Client, ServerArgs};

/// Reads the `--alerts` file; `None` without one.
pub(crate) fn load_config(path: Option<&Path>) -> Result<Option<AlertConfig>> {
    path.map(|p| AlertConfig::load(p).map_err(anyhow::Error::from))
        .transpose()
}

/// Hands the file's `[plugin_config.NAME]` tables to the runtime, which
/// serves them to the plugin of that name through the `config` import.
pub(crate) fn add_plugin_config(cfg: &AlertConfig, rt: &mut RuntimeConfig) {
    for (name, kv) in &cfg.plugin_config {
        let own = rt.plugin_config.entry(name.clone()).or_default();
        own.extend(kv.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// The rules and alert plugins of an `--alerts` file, and the hub that
/// delivers what they raise.
pub(crate) struct Alerting {
    pub detectors: Vec<Box<dyn Detector>>,
    pub hub: Arc<AlertHub>,
}

pub(crate) fn detectors(
    cfg: &AlertConfig,
    path: &Path,
    rt: &Arc<Runtime>,
    catalog: &Catalog,
) -> Result<Alerting> {
    let mut detectors: Vec<Box<dyn Detector>> = Vec::new();
    if !cfg.rules.is_empty() {
        let rules = RuleSet::compile(&cfg.rules, catalog)
            .with_context(|| format!("--alerts {}", path.display()))?;
        detectors.push(Box::new(rules));
    }
    for p in &cfg.plugins {
        let (rate_limit, dedupe) = p
            .limits()
            .map_err(|e| anyhow::anyhow!("--alerts {}: {e}", path.display()))?;
        let d = PluginDetector::load(rt.clone(), &p.path)
            .map_err(|e| anyhow::anyhow!("--alerts {}: alert plugin: {e}", path.display()))?
            .with_limits(rate_limit, dedupe);
        tracing::info!(
            plugin = d.name(),
            prefilter = d.prefilter().unwrap_or(""),
            "alert plugin loaded from {}",
            p.path.display()
        );
        detectors.push(Box::new(d));
    }
    let hub = AlertHub::from_config(cfg).with_context(|| format!("--alerts {}", path.display()))?;
    Ok(Alerting {
        detectors,
        hub: Arc::new(hub),
    })
}

/// Subscribes before the writer starts so no stored entry is missed.
pub(crate) fn start_engine(
    detectors: Vec<Box<dyn Detector>>,
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
    remora_alert::engine::spawn(detectors, hub, feed.subscribe(), clock, stop)
        .context("cannot start the alert engine")
}

#[derive(Args)]
pub(crate) struct AlertsArgs {
    /// The newest this many alerts, printed oldest first.
    #[arg(long, short = 'n', default_value_t = 50, value_name = "N")]
    limit: usize,

    /// After the alerts raised so far, keep printing new ones as they are
    /// raised; Ctrl-C stops.
    #[arg(long, short = 'F')]
    follow: bool,

    /// Only alerts of this rule (or plugin rule) name.
    #[arg(long, value_name = "NAME")]
    rule: Option<String>,

    /// Only alerts at least this severe.
    #[arg(long, value_name = "LEVEL", value_parser = ["info", "warning", "critical"])]
    min_severity: Option<String>,

    /// Output format (default: table on a terminal, jsonl otherwise).
    #[arg(long, short = 'f', value_enum)]
    format: Option<AlertFormat>,

    #[command(flatten)]
    server: ServerArgs,
}

/// Alerts per request while paging through what the server keeps.
const PAGE: usize = 1000;

pub(crate) fn run(args: &AlertsArgs) -> Result<ExitCode> {
    let format = args.format.unwrap_or(if io::stdout().is_terminal() {
        AlertFormat::Table
    } else {
        AlertFormat::Jsonl
    });
    let client = args.server.client()?;
    let mut out = AlertPrinter::new(format, io::BufWriter::new(io::stdout()));
    let result = run_until_interrupted(list_and_follow(&client, args, &mut out));
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write to stdout")
        }
        _ => {}
    }
    result.map(|()| ExitCode::SUCCESS)
}

const ALERT_FIELDS: &str = "id rule source severity summary entryIds labels { key value } at";

fn wanted(args: &AlertsArgs, a: &AlertRow) -> bool {
    args.rule.as_ref().is_none_or(|r| *r == a.rule)
        && args
            .min_severity
            .as_deref()
            .is_none_or(|s| a.severity_rank() >= severity_rank(s))
}

fn emit(out: &mut AlertPrinter<impl io::Write>, a: &AlertRow) -> Result<()> {
    match out.print(a).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.context("cannot write to stdout"),
    }
}

async fn list_and_follow(
    client: &Client,
    args: &AlertsArgs,
    out: &mut AlertPrinter<impl io::Write>,
) -> Result<()> {
    // Subscribe first so an alert raised while the history is read is not
    // missed; duplicates are dropped by id.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AlertRow>(4096);
    let follower = if args.follow {
        let sub = format!("subscription {{ alerts {{ {ALERT_FIELDS} }} }}");
        let client = args.server.client()?;
        Some(tokio::spawn(async move {
            client
                .subscribe(&sub, json!({}), |data| {
                    tx.try_send(AlertRow::from_api(&data["alerts"]))
                        .map_err(|_| anyhow::anyhow!("output is not keeping up with the alerts"))
                })
                .await
        }))
    } else {
        None
    };

    // The server keeps a bounded history, oldest first: page through it and
    // keep the newest `limit` that pass the local filters.
    let q = format!(
        "query($after: ID, $limit: Int!) {{ alerts(after: $after, limit: $limit) {{ {ALERT_FIELDS} }} }}"
    );
    let mut newest = std::collections::VecDeque::with_capacity(args.limit.min(PAGE));
    let mut last_id = 0u64;
    loop {
        let after = (last_id > 0).then(|| last_id.to_string());
        let data = client
            .query(&q, json!({ "after": after, "limit": PAGE }))
            .await?;
        let page = data["alerts"].as_array().cloned().unwrap_or_default();
        for v in &page {
            let a = AlertRow::from_api(v);
            last_id = last_id.max(a.id);
            if wanted(args, &a) {
                if newest.len() == args.limit {
                    newest.pop_front();
                }
                if args.limit > 0 {
                    newest.push_back(a);
                }
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    for a in &newest {
        emit(out, a)?;
    }
    if newest.is_empty() && !args.follow {
        say!(
            "remora: no alerts on {} (is `remora tap` running with --alerts FILE?)",
            args.server.url()
        );
    }
    let Some(follower) = follower else {
        return Ok(());
    };
    while let Some(a) = rx.recv().await {
        if a.id > last_id {
            last_id = a.id;
            if wanted(args, &a) {
                emit(out, &a)?;
            }
        }
    }
    follower.await.context("subscription task failed")?
}
