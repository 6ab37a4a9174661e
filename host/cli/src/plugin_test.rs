//! `remora plugin test ALERT.wasm --capture FILE`: runs a capture through the
//! dissectors and the pipeline, hands every entry to one alert plugin (with
//! its prefilter, in batches, under the runtime's limits) and prints the
//! alerts it raised, then its counters on stderr.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use remora_alert::plugin::PluginDetector;
use remora_alert::{Alert, Detector};
use remora_dissect::catalog_from_runtime;
use remora_pipeline::PipelineConfig;
use remora_runtime::Shard;
use remora_source::CaptureReader;
use remora_store::StoredEntry;

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

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum AlertFormat {
    Table,
    Jsonl,
}

pub(crate) fn run(cli: &Cli, cmd: &PluginCommand) -> anyhow::Result<ExitCode> {
    let PluginCommand::Test(args) = cmd;
    let mut reader = CaptureReader::open(&args.capture)?;
    let rt = plugins::load(cli, plugins::runtime_config(cli, None))?;
    let mut detector =
        PluginDetector::load(rt.clone(), &args.plugin).map_err(|e| anyhow::anyhow!(e))?;
    let catalog = Arc::new(catalog_from_runtime(&rt));
    let mut entries: Vec<Arc<StoredEntry>> = Vec::new();
    let sink_catalog = catalog.clone();
    let mut sink = |e: remora_entry::Entry| {
        entries.push(Arc::new(StoredEntry {
            catalog: sink_catalog.clone(),
            entry: e,
        }))
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
        eprintln!("remora: warning: {err}; entries before the damage were processed");
    }
    let mut alerts = detector.on_entries(&entries);
    if let Some(last) = entries.iter().map(|e| e.entry.timestamp()).max() {
        alerts.extend(detector.on_tick(last));
    }
    for (i, a) in alerts.iter_mut().enumerate() {
        a.id = i as u64 + 1;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        AlertFormat::Jsonl => {
            for a in &alerts {
                serde_json::to_writer(&mut out, a)?;
                out.write_all(b"\n")?;
            }
        }
        AlertFormat::Table => write_table(&mut out, &alerts)?,
    }
    out.flush()?;
    let c = detector.counters();
    let r = detector.runtime_counters();
    eprintln!(
        "remora: {}: {} entries, {} sent to `{}` in {} batches, {} alerts; faults: {} (deadline {}, memory {}, trap {}, malformed {}), {} entries lost",
        args.capture.display(),
        c.entries_seen,
        c.entries_sent,
        detector.name(),
        c.batches,
        alerts.len(),
        r.faults.total(),
        r.faults.deadline,
        r.faults.memory,
        r.faults.trap,
        r.faults.malformed,
        c.entries_lost,
    );
    Ok(ExitCode::SUCCESS)
}

fn write_table(out: &mut impl Write, alerts: &[Alert]) -> io::Result<()> {
    writeln!(
        out,
        "{:<4} {:<9} {:<24} {:<10} SUMMARY",
        "ID", "SEVERITY", "RULE", "ENTRIES"
    )?;
    for a in alerts {
        let sev = format!("{:?}", a.severity).to_lowercase();
        let ids: Vec<String> = a.entry_ids.iter().map(u64::to_string).collect();
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(
            out,
            "{:<4} {:<9} {:<24} {:<10} {} [{}]",
            a.id,
            sev,
            a.rule,
            ids.join(","),
            a.summary,
            labels.join(" ")
        )?;
    }
    Ok(())
}
