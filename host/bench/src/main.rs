//! `remora-bench --stage STAGE FILE`: run the pipeline up to a stage (or with
//! the HTTP/1 dissector compiled natively) and print how fast it went, so
//! `tests/bench/http1.sh` can put every stage and baseline in one table.

mod native;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use remora_dissect::{catalog_from_runtime, schema_from_info};
use remora_entry::Catalog;
use remora_pipeline::{PipelineConfig, Stage};
use remora_runtime::{Runtime, RuntimeConfig, Shard};
use remora_source::CaptureReader;

// The same allocator as the `remora` binary, so the stages compare fairly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BenchStage {
    /// (a) iterate packets only
    Source,
    /// (b) + L2-L4 decode
    Decode,
    /// (c) + flows and TCP reassembly
    Flows,
    /// (d) the full pipeline with the Wasm plugins
    Wasm,
    /// (e) the full pipeline with the HTTP/1 dissector compiled natively
    Native,
}

#[derive(Parser)]
#[command(about = "Run the Remora pipeline up to a stage and report packets/s")]
struct Args {
    #[arg(long, value_enum)]
    stage: BenchStage,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Plugin directory for `--stage wasm` (default: plugins/ next to this binary).
    #[arg(long)]
    plugins: Option<PathBuf>,
    file: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cfg = PipelineConfig {
        threads: args.threads,
        ..PipelineConfig::default()
    };
    cfg.stop_after = match args.stage {
        BenchStage::Source => Stage::Source,
        BenchStage::Decode => Stage::Decode,
        BenchStage::Flows => Stage::Flows,
        BenchStage::Wasm | BenchStage::Native => Stage::Dissect,
    };
    let mut reader = CaptureReader::open(&args.file)?;
    let mut entries = 0u64;
    let mut sink = |_| entries += 1;
    let summary = match args.stage {
        BenchStage::Native => {
            let catalog = Arc::new(Catalog {
                plugins: vec![schema_from_info(&native::info::<remora_http1::Http1>())],
            });
            remora_pipeline::run(
                &mut reader,
                &cfg,
                native::Native::<remora_http1::Http1>::default,
                catalog,
                &mut sink,
                &mut |_| {},
            )
        }
        _ => {
            let dir = match &args.plugins {
                Some(d) => d.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .context("binary has no directory")?
                    .join("plugins"),
            };
            let mut rt = Runtime::new(RuntimeConfig::default())?;
            rt.load_dir(&dir)
                .with_context(|| format!("loading plugins from {}", dir.display()))?;
            let rt = Arc::new(rt);
            let catalog = Arc::new(catalog_from_runtime(&rt));
            remora_pipeline::run(
                &mut reader,
                &cfg,
                || Shard::new(rt.clone()),
                catalog,
                &mut sink,
                &mut |_| {},
            )
        }
    };
    let secs = summary.elapsed.as_secs_f64();
    // A benchmark whose plugins faulted (e.g. a call past its CPU deadline on
    // a starved machine) measured less work: say so next to the rate.
    let drops: Vec<String> = summary
        .drops()
        .nonzero()
        .map(|(r, n)| format!("{r}:{n}"))
        .collect();
    println!(
        "packets={} seconds={:.4} packets_per_second={:.0} entries={} flows={} plugin_calls={} plugin_faults={} drops={} {}",
        summary.packets,
        secs,
        summary.packets as f64 / secs.max(1e-9),
        summary.entries,
        summary.flows.flows_opened,
        summary.dissect.plugin_calls,
        summary.dissect.plugin_faults,
        summary.drops().nonzero().map(|(_, n)| n).sum::<u64>(),
        drops.join(",")
    );
    Ok(())
}
