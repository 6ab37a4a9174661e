//! `remora plugin test ALERT.wasm --capture FILE`: runs a capture through the
//! dissectors and the pipeline, hands every entry to one alert plugin (with
//! its prefilter, in batches, under the runtime's limits) and prints the
//! alerts it raised, then its counters on stderr.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use remora_alert::plugin::PluginDetector;
use remora_alert::Detector;
use remora_dissect::catalog_from_runtime;
use remora_pipeline::PipelineConfig;
use remora_runtime::Shard;
use remora_source::CaptureReader;
use remora_store::StoredEntry;

use crate::alert_print::{AlertFormat, AlertPrinter, AlertRow};
use crate::{plugins, Cli};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum PluginCommand {
    /// Run an alert plugin over a capture file and print the alerts it raises.
    Test(TestArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct TestArgs {
    /// The alert plugin (a wasm32-wasip2 component exporting remora:plugin/alerter).
    pub plugin: PathBuf,
    /// Capture file (pcap or pcapng).
    #[arg(long)]
    pub capture: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AlertFormat::Table)]
    pub format: AlertFormat,
}

pub(crate) fn run(cli: &Cli, cmd: &PluginCommand) -> anyhow::Result<ExitCode> {
    let PluginCommand::Test(args) = cmd;
    let mut reader = CaptureReader::open(&args.capture)?;
    let rt = plugins::load(cli, plugins::runtime_config(cli, None, 1))?;
    let mut detector =
        PluginDetector::load(rt.clone(), &args.plugin).map_err(|e| anyhow::anyhow!(e))?;
    let catalog = Arc::new(catalog_from_runtime(&rt));
    let mut entries: Vec<Arc<StoredEntry>> = Vec::new();
    let sink_catalog = catalog.clone();
    let mut sink = |e: remora_entry::Entry| {
        entries.push(Arc::new(StoredEntry {
            catalog: sink_catalog.clone(),
            entry: e,
        }));
        None
    };
    let shard_rt = rt.clone();
    let summary = remora_pipeline::run(
        &mut reader,
        &PipelineConfig::default(),
        || Shard::new(shard_rt.clone()),
        catalog,
        &mut sink,
        &mut |_| {},
    );
    if let Some(err) = &summary.source_error {
        say!("remora: warning: {err}; entries before the damage were processed");
    }
    let mut alerts = detector.on_entries(&entries);
    if let Some(last) = entries.iter().map(|e| e.entry.timestamp()).max() {
        alerts.extend(detector.on_tick(last));
    }
    for (i, a) in alerts.iter_mut().enumerate() {
        a.id = i as u64 + 1;
    }
    let mut out = AlertPrinter::new(args.format, io::BufWriter::new(io::stdout().lock()));
    for a in &alerts {
        out.print(&AlertRow::from_alert(a))?;
    }
    out.flush()?;
    let c = detector.counters();
    let r = detector.runtime_counters();
    say!(
        "remora: {}: {} entries, {} sent to `{}` in {} batches ({:.3} s inside it), {} alerts; faults: {} (deadline {}, memory {}, trap {}, malformed {}, no instance slot {}), {} entries lost; instances renewed as their memory grew: {}",
        args.capture.display(),
        c.entries_seen,
        c.entries_sent,
        detector.name(),
        c.batches,
        r.call_ns as f64 / 1e9,
        alerts.len(),
        r.faults.total(),
        r.faults.deadline,
        r.faults.memory,
        r.faults.trap,
        r.faults.malformed,
        r.faults.capacity,
        c.entries_lost,
        r.renewals,
    );
    Ok(ExitCode::SUCCESS)
}
