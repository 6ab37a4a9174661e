//! `remora read`: a capture file through the whole pipeline, entries out.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use remora_dissect::catalog_from_runtime;
use remora_entry::{write_jsonl, TableWriter};
use remora_filter::{Filter, Variables};
use remora_pipeline::{PipelineConfig, Progress, Summary};
use remora_runtime::Shard;
use remora_source::CaptureReader;

use crate::plugins;
use crate::Cli;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people (default when stdout is a terminal).
    Table,
    /// One JSON object per entry (default otherwise); schema in the README.
    Jsonl,
    /// No entries, only the summary: for measuring. With --filter, the
    /// number of matching entries is printed on stdout.
    Count,
}

#[derive(Args)]
pub(crate) struct ReadArgs {
    /// Capture file: pcap or pcapng, optionally gzip-compressed; `-` reads stdin.
    #[arg(value_name = "CAPTURE")]
    file: PathBuf,

    /// Output format.
    #[arg(long, short = 'f', value_enum)]
    format: Option<Format>,

    /// Shard threads for flows, reassembly and dissection. The output is the
    /// same for any value. Writing the table or JSONL (or counting --filter
    /// matches) runs on one more thread of its own, so the default is the
    /// number of cores minus one then, the number of cores for a plain
    /// `count` (at most 255).
    #[arg(long, short = 'j', value_name = "N", value_parser = crate::threads_arg)]
    threads: Option<usize>,

    /// Bytes of each message body kept for display, at most 1048576
    /// (default 16384; the original length is always recorded).
    #[arg(long, value_name = "BYTES", value_parser = crate::body_cap_arg)]
    body_cap: Option<usize>,

    /// Only entries matching this CEL filter, e.g. 'http && method == "POST"'
    /// (see the filter language in the README). Ids stay those of the
    /// whole capture.
    #[arg(long, value_name = "FILTER")]
    filter: Option<String>,

    /// No progress bar and no summary line.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn progress_bar(enabled: bool, total: Option<u64>) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let template = if total.is_some() {
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} (eta {eta})"
    } else {
        "{spinner} [{elapsed_precise}] {bytes} {msg}"
    };
    pb.set_style(ProgressStyle::with_template(template).expect("valid template"));
    pb
}

fn summary_line(path: &str, s: &Summary) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let flows = s.flows.flows_opened;
    let mut line = format!(
        "{path}: {} packets, {} flows ({} dissected, {} raw), {} entries ({} incomplete), {} plugin calls ({} crossings), {} parse errors, {} plugin faults in {:.2}s ({:.0} packets/s)",
        s.packets,
        flows,
        s.dissect.flows_dissected,
        s.dissect.flows_raw,
        s.entries,
        s.dissect.incomplete_entries,
        s.dissect.plugin_calls,
        s.dissect.plugin_batches,
        s.dissect.parse_errors,
        s.dissect.plugin_faults,
        secs,
        s.packets as f64 / secs
    );
    let drops: Vec<String> = s
        .drops()
        .nonzero()
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    if drops.is_empty() {
        line.push_str("; no drops");
    } else {
        line.push_str(&format!("; drops: {}", drops.join(" ")));
    }
    if s.dissect.plugin_renewals > 0 {
        line.push_str(&format!(
            "; {} plugin instances renewed",
            s.dissect.plugin_renewals
        ));
    }
    line
}

pub(crate) fn run(cli: &Cli, args: &ReadArgs) -> anyhow::Result<ExitCode> {
    let stdout_tty = io::stdout().is_terminal();
    let format = args.format.unwrap_or(if stdout_tty {
        Format::Table
    } else {
        Format::Jsonl
    });
    let mut reader = CaptureReader::open(&args.file)?;
    let broken_pipe = Arc::new(AtomicBool::new(false));
    let mut cfg = PipelineConfig {
        cancel: Some(broken_pipe.clone()),
        ..PipelineConfig::default()
    };
    let counting_matches = format == Format::Count && args.filter.is_some();
    let writes_entries = format != Format::Count || counting_matches;
    match args.threads {
        Some(n) => cfg.threads = n,
        // The writer thread keeps a core busy on its own (rendering JSONL
        // costs about as much as dissecting): the shards get the others.
        // With as many shards as cores the three-way contention made
        // writing slower with two threads than with one on two cores.
        None if writes_entries => cfg.threads = cfg.threads.saturating_sub(1).max(1),
        None => {}
    }
    let rt = plugins::load(
        cli,
        plugins::runtime_config(cli, args.body_cap, cfg.threads),
    )?;
    let catalog = Arc::new(catalog_from_runtime(&rt));
    let filter = match &args.filter {
        None => None,
        Some(src) => match Filter::compile(src, &Variables::new(&[&catalog])) {
            Ok(f) => Some(f),
            Err(e) => {
                say!("remora: error: bad --filter: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    tracing::info!(
        "threads: {} shard(s){}",
        cfg.threads,
        if writes_entries { " and a writer" } else { "" }
    );

    let show_progress = !args.quiet && io::stderr().is_terminal();
    let pb = progress_bar(show_progress, reader.total_bytes());
    let mut output = if writes_entries {
        Some(EntryWriter::spawn(
            format,
            catalog.clone(),
            filter,
            broken_pipe.clone(),
            TableWriter::new(
                BufWriter::with_capacity(OUT_BUFFER, io::stdout()),
                terminal_width(),
            ),
        )?)
    } else {
        None
    };
    // Only counting, an entry goes back to the pipeline to be freed.
    let mut sink = |e: remora_entry::Entry| match &mut output {
        Some(out) => {
            out.send(e);
            None
        }
        None => Some(e),
    };
    let pb2 = pb.clone();
    let started = std::time::Instant::now();
    let mut on_progress = move |p: &Progress| {
        let rate = p.packets as f64 / started.elapsed().as_secs_f64().max(1e-3);
        pb2.set_position(p.bytes);
        pb2.set_message(format!(
            "{} packets ({:.0}/s), {} entries",
            p.packets, rate, p.entries
        ));
    };
    let shard_rt = rt.clone();
    let summary = remora_pipeline::run(
        &mut reader,
        &cfg,
        || Shard::new(shard_rt.clone()),
        catalog,
        &mut sink,
        &mut on_progress,
    );
    let matched = output.map(EntryWriter::finish);
    pb.finish_and_clear();
    if counting_matches {
        crate::print_stdout(&format!("{}\n", matched.unwrap_or(0)))?;
    }
    io::stdout().flush().ok();
    let name = args.file.display().to_string();
    if let Some(err) = &summary.source_error {
        say!("remora: warning: {err}; entries before the damage were processed");
    }
    if !args.quiet {
        say!("{}", summary_line(&name, &summary));
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes of output gathered before a write to stdout.
const OUT_BUFFER: usize = 64 << 10;

/// Filters and renders entries on a thread of its own, so writing JSONL or
/// the table (as much CPU as the pipeline on an HTTP/1 capture) overlaps
/// the reading thread's work instead of adding to it. Entries arrive in
/// output order through a bounded channel: a slow reader of stdout slows
/// the pipeline down, nothing is dropped.
struct EntryWriter {
    tx: crossbeam_channel::Sender<remora_entry::Entry>,
    thread: std::thread::JoinHandle<u64>,
}

impl EntryWriter {
    fn spawn(
        format: Format,
        catalog: Arc<remora_entry::Catalog>,
        filter: Option<Filter>,
        broken_pipe: Arc<AtomicBool>,
        mut table: TableWriter<BufWriter<io::Stdout>>,
    ) -> io::Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded::<remora_entry::Entry>(1024);
        let thread = std::thread::Builder::new()
            .name("remora-output".into())
            .spawn(move || {
                // JSONL records gather here and leave in pieces of at least
                // the stdout buffer's size, which `BufWriter` hands to the
                // file as they are instead of copying them into its buffer.
                let mut lines = Vec::with_capacity(OUT_BUFFER + (16 << 10));
                let mut written = 0u64;
                let failed = |err: io::Error| {
                    // Nobody reads any more (`| head`): stop reading the
                    // capture; dropping the receiver ends the sends.
                    if err.kind() != io::ErrorKind::BrokenPipe {
                        tracing::error!("writing output: {err}");
                    }
                    broken_pipe.store(true, Ordering::Relaxed);
                };
                for e in rx {
                    if filter.as_ref().is_some_and(|f| !f.matches(&catalog, &e)) {
                        continue;
                    }
                    written += 1;
                    let res = match format {
                        Format::Count => Ok(()),
                        Format::Table => table.write(&catalog, &e),
                        Format::Jsonl => {
                            write_jsonl(&catalog, &e, &mut lines);
                            if lines.len() >= OUT_BUFFER {
                                let res = table.get_mut().write_all(&lines);
                                lines.clear();
                                res
                            } else {
                                Ok(())
                            }
                        }
                    };
                    if let Err(err) = res {
                        failed(err);
                        return written;
                    }
                }
                let out = table.get_mut();
                if let Err(err) = out.write_all(&lines).and_then(|()| out.flush()) {
                    failed(err);
                }
                written
            })?;
        Ok(EntryWriter { tx, thread })
    }

    fn send(&mut self, e: remora_entry::Entry) {
        // Fails only once the writer stopped on a closed stdout, when the
        // pipeline is being cancelled anyway.
        let _ = self.tx.send(e);
    }

    /// Waits until every entry sent is written; returns how many passed
    /// the filter.
    fn finish(self) -> u64 {
        drop(self.tx);
        self.thread.join().unwrap_or_else(|_| {
            tracing::error!("the output thread panicked");
            0
        })
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(160)
}
