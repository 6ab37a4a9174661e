//! `remora-bench --stage STAGE FILE`: run the pipeline up to a stage (or with
//! the HTTP/1 dissector compiled natively) and print how fast it went, so
//! `tests/bench/http1.sh` can put every stage and baseline in one table.
//!
//! `--render` instead keeps the entries of a `--stage wasm` run and times
//! writing them as JSONL records (what `remora read --format jsonl` prints)
//! both ways in the same run: written straight to bytes, and through the
//! `serde_json::Value` form that is the reference.

mod native;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use remora_dissect::{catalog_from_runtime, schema_from_info};
use remora_entry::{entry_to_json, write_jsonl, Catalog, Entry};
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
    /// Keep the entries and time rendering them as JSONL, this many rounds
    /// of each way, alternating (with `--stage wasm` or `native`).
    #[arg(long, value_name = "ROUNDS")]
    render: Option<u32>,
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
    let mut kept = Vec::new();
    let keep = args.render.is_some();
    let mut sink = |e| {
        if keep {
            kept.push(e);
            return None;
        }
        Some(e)
    };
    let (summary, catalog) = match args.stage {
        BenchStage::Native => {
            let catalog = Arc::new(Catalog {
                plugins: vec![schema_from_info(&native::info::<remora_http1::Http1>())],
            });
            let summary = remora_pipeline::run(
                &mut reader,
                &cfg,
                native::Native::<remora_http1::Http1>::default,
                catalog.clone(),
                &mut sink,
                &mut |_| {},
            );
            (summary, catalog)
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
            let summary = remora_pipeline::run(
                &mut reader,
                &cfg,
                || Shard::new(rt.clone()),
                catalog.clone(),
                &mut sink,
                &mut |_| {},
            );
            (summary, catalog)
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
    if let Some(rounds) = args.render {
        render(&catalog, &kept, rounds);
    }
    Ok(())
}

/// Times both ways of writing `entries` as JSONL, alternating, and prints
/// each round and the median rates.
fn render(catalog: &Catalog, entries: &[Entry], rounds: u32) {
    let mut line = Vec::with_capacity(64 << 10);
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (way, name) in ["written", "value"].iter().enumerate() {
            let start = Instant::now();
            let mut bytes = 0usize;
            for e in entries {
                line.clear();
                if way == 0 {
                    write_jsonl(catalog, e, &mut line);
                } else {
                    let _ = serde_json::to_writer(&mut line, &entry_to_json(catalog, e));
                    line.push(b'\n');
                }
                bytes += line.len();
            }
            let secs = start.elapsed().as_secs_f64();
            rates[way].push(entries.len() as f64 / secs);
            println!(
                "render round={round} way={name} entries={} bytes={bytes} seconds={secs:.4} MB_per_second={:.0}",
                entries.len(),
                bytes as f64 / secs / 1e6
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (written, value) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "render written_entries_per_second={written:.0} value_entries_per_second={value:.0} ratio={:.2}",
        written / value
    );
}
