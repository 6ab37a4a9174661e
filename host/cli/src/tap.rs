//! `remora tap`: capture (a live interface, or capture files), dissect,
//! store, and serve the API and dashboard until Ctrl-C / SIGTERM.
//!
//! Threads: the pipeline (reader + shard threads) hands entries over a
//! bounded channel to the store writer, which appends them in batches
//! (durable on return) and only then publishes them to subscribers; the
//! API runs on a small tokio runtime. Shutdown cancels the pipeline, which
//! drains and finishes its flows; the writer stores everything it got;
//! then the server stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use remora_api::{ApiConfig, ApiState, LiveFeed};
use remora_dissect::{catalog_from_runtime, Metered};
use remora_entry::{Catalog, Entry};
use remora_pipeline::{LiveStats, PipelineConfig};
use remora_runtime::Shard;
use remora_source::{CaptureReader, FrameSource, LiveCapture, LiveConfig};
use remora_store::{Store, StoreConfig, StoreError, StoredEntry};

use crate::plugins;
use crate::telemetry::TapTelemetry;
use crate::Cli;

#[derive(Args)]
pub(crate) struct TapArgs {
    /// Interface to capture on; `any` captures every interface.
    #[arg(short = 'i', long, default_value = "any", value_name = "IFACE")]
    interface: String,

    /// Read these capture files (in order) instead of an interface, then
    /// keep serving what was stored. Repeatable.
    #[arg(short = 'r', long = "read", value_name = "CAPTURE")]
    read: Vec<PathBuf>,

    /// Capture filter in pcap-filter(7) syntax, applied in the kernel,
    /// e.g. 'tcp port 6379'.
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,

    /// Bytes kept of each packet (live capture). Below the interface's
    /// MTU the payload of large packets is cut: their streams get gaps
    /// and their entries can be incomplete.
    #[arg(
        long,
        default_value_t = 262_144,
        value_name = "BYTES",
        conflicts_with = "read"
    )]
    snaplen: u32,

    /// Kernel capture buffer: what absorbs bursts (e.g. 64MiB; live
    /// capture).
    #[arg(long, default_value = "64MiB", value_parser = parse_size, value_name = "SIZE", conflicts_with = "read")]
    buffer_size: u64,

    /// Do not put the interface into promiscuous mode (live capture).
    #[arg(long, conflicts_with = "read")]
    no_promisc: bool,

    /// Shard threads for flows, reassembly and dissection (default: cores;
    /// at most 255).
    #[arg(long, short = 'j', value_name = "N", value_parser = crate::threads_arg)]
    threads: Option<usize>,

    /// Bytes of each message body kept, at most 1048576 (default 16384).
    #[arg(long, value_name = "BYTES", value_parser = crate::body_cap_arg)]
    body_cap: Option<usize>,

    /// Address the API and dashboard listen on. Anything but loopback
    /// requires --token.
    #[arg(long, default_value = "127.0.0.1:8899", value_name = "ADDR:PORT")]
    listen: SocketAddr,

    /// Bearer token clients must send (`Authorization: Bearer TOKEN`). The
    /// dashboard takes it once in its address: http://ADDR:PORT/?token=TOKEN.
    #[arg(
        long,
        env = "REMORA_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// Where entries are stored (default: $XDG_DATA_HOME/remora or
    /// ~/.local/share/remora). What is there is kept and served.
    #[arg(long, env = "REMORA_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Size limit of the entry store; the oldest entries are evicted
    /// beyond it (e.g. 512MiB, 2GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size, value_name = "SIZE")]
    store_size: u64,

    /// Serve the dashboard from this directory (e.g. web/dist) instead of
    /// the copy built into the binary.
    #[arg(long, value_name = "DIR")]
    web_dir: Option<PathBuf>,

    /// Alerts: rules, Wasm alert plugins and webhooks (TOML; see the
    /// README's "Alerts" section).
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
}

/// Loopback's MTU is 65,536 bytes and offloads hand the capture larger
/// segments still: a snaplen below that cuts payload, which the user may
/// want (headers only) but should know costs entries.
const FULL_PACKET: u32 = 65_535;

fn snaplen_warning(snaplen: u32) -> Option<String> {
    (snaplen < FULL_PACKET).then(|| {
        format!(
            "--snaplen {snaplen} cuts packets longer than {snaplen} bytes: their payload is lost, \
             streams get gaps and entries can be incomplete (counted as truncated frames)"
        )
    })
}

/// The store evicts at its size limit, but a full disk stops the writer
/// and with it the capture: a limit the disk cannot hold is said at start.
fn warn_if_disk_is_smaller(dir: &std::path::Path, limit: u64, held: u64) {
    let Some(free) = free_bytes(dir) else { return };
    if limit > free.saturating_add(held) {
        use indicatif::HumanBytes;
        say!(
            "remora: warning: --store-size {} is more than the store holds ({}) plus what is \
             free in {} ({}); the capture stops if the disk fills",
            HumanBytes(limit),
            HumanBytes(held),
            dir.display(),
            HumanBytes(free)
        );
    }
}

/// Bytes an unprivileged writer may still use on the file system of `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `st` is written by
    // statvfs before it is read (only on success).
    let st = unsafe {
        if libc::statvfs(path.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    // Narrower than u64 on some targets.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

/// "64MiB", "1GiB", "500MB", "4096" → bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 512MiB, 2GiB or 4096)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    let v = n * mult as f64;
    if !(0.0..1.8e19).contains(&v) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(v as u64)
}

/// Entries waiting between the pipeline and the store writer. When the
/// writer falls behind, the pipeline waits (and the kernel buffer, then
/// the kernel's drop counter, absorbs it): nothing grows without bound.
const WRITER_QUEUE: usize = 65_536;
/// A batch is appended when it has this many entries ...
const BATCH_ENTRIES: usize = 4096;
/// ... or its oldest entry waited this long (the subscription latency).
const BATCH_WAIT: Duration = Duration::from_millis(100);

pub(crate) fn run(cli: &Cli, args: &TapArgs) -> Result<ExitCode> {
    // Fail fast on what needs no capture: the address and token.
    let api_cfg = ApiConfig {
        bind: args.listen,
        token: args.token.clone().filter(|t| !t.is_empty()),
        web_dir: args.web_dir.clone(),
    };
    remora_api::check_bind(&api_cfg)?;
    if let Some(d) = &args.web_dir {
        if !d.join("index.html").is_file() {
            bail!(
                "--web-dir {}: no index.html there (build the dashboard with scripts/build-web.sh)",
                d.display()
            );
        }
    }

    // Open the source before anything slow, so a wrong interface or filter
    // is reported at once.
    let mut sources: Vec<Box<dyn FrameSource + Send>> = Vec::new();
    if args.read.is_empty() {
        let cfg = LiveConfig {
            interface: args.interface.clone(),
            bpf: args.bpf.clone(),
            snaplen: args.snaplen,
            buffer_bytes: u32::try_from(args.buffer_size)
                .with_context(|| format!("--buffer-size {} is too large", args.buffer_size))?,
            promisc: !args.no_promisc,
            ..LiveConfig::default()
        };
        sources.push(Box::new(LiveCapture::open(&cfg)?));
        if let Some(warning) = snaplen_warning(args.snaplen) {
            say!("remora: warning: {warning}");
        }
    } else {
        if args.bpf.is_some() {
            bail!("--bpf applies to live capture only; it cannot be used with --read");
        }
        for f in &args.read {
            sources.push(Box::new(CaptureReader::open(f)?));
        }
    }

    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(remora_store::default_data_dir);
    let (store, recovery) = Store::open(StoreConfig {
        max_bytes: args.store_size,
        ..StoreConfig::new(&data_dir)
    })
    .with_context(|| format!("opening the entry store in {}", data_dir.display()))?;
    let store = Arc::new(store);
    warn_if_disk_is_smaller(&data_dir, args.store_size, store.stats().bytes);
    if recovery.torn_bytes_cut > 0 {
        say!(
            "remora: the store in {} ended in an unfinished batch ({} bytes); it was cut, every acknowledged entry is kept",
            data_dir.display(),
            recovery.torn_bytes_cut
        );
    }

    let alert_cfg = crate::alerts::load_config(args.alerts.as_deref())?;
    let shards = args
        .threads
        .unwrap_or_else(|| PipelineConfig::default().threads);
    let mut rt_cfg = plugins::runtime_config(cli, args.body_cap, shards);
    if let Some(cfg) = &alert_cfg {
        crate::alerts::add_plugin_config(cfg, &mut rt_cfg);
    }
    let rt = plugins::load(cli, rt_cfg)?;
    let catalog = Arc::new(catalog_from_runtime(&rt));
    let (detectors, alert_hub) = match (&alert_cfg, &args.alerts) {
        (Some(cfg), Some(path)) => {
            let a = crate::alerts::detectors(cfg, path, &rt, &catalog)?;
            (a.detectors, Some(a.hub))
        }
        _ => (Vec::new(), None),
    };
    let stats = LiveStats::new();
    let feed = LiveFeed::new();
    let telemetry = Arc::new(TapTelemetry::new(stats.clone(), catalog.clone()));
    let state = Arc::new(
        ApiState::new(store.clone(), catalog.clone(), feed.clone(), telemetry)
            .with_alerts(alert_hub.clone()),
    );

    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("remora-api")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listener = tokio_rt.block_on(remora_api::bind(&api_cfg))?;
    // What the system chose for port 0.
    let listening = listener.local_addr().unwrap_or(args.listen);
    let router = remora_api::router(state.clone(), &api_cfg);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio_rt.spawn(remora_api::serve(listener, router, &state, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));

    let cancel = Arc::new(AtomicBool::new(false));
    let signal_cancel = cancel.clone();
    tokio_rt.spawn(async move {
        shutdown_signal().await;
        say!("remora: stopping: finishing open flows and flushing the store");
        signal_cancel.store(true, Ordering::Relaxed);
    });

    let what = if args.read.is_empty() {
        format!("capturing on {}", args.interface)
    } else {
        format!("reading {} file(s)", args.read.len())
    };
    say!(
        "remora: {what}; dashboard and API at http://{listening} (store: {}, {} entries kept); Ctrl-C stops",
        data_dir.display(),
        recovery.entries
    );
    if api_cfg.token.is_some() {
        // The token itself is not printed: logs are read by others.
        say!("remora: the API needs the token: open the dashboard once as http://{listening}/?token=TOKEN");
    }

    let alert_stop = Arc::new(AtomicBool::new(false));
    let alert_engine = match &alert_hub {
        Some(hub) => Some(crate::alerts::start_engine(
            detectors,
            hub.clone(),
            &feed,
            !args.read.is_empty(),
            alert_stop.clone(),
        )?),
        _ => None,
    };

    let (tx, rx) = bounded::<Entry>(WRITER_QUEUE);
    let writer = {
        let (store, catalog, feed) = (store.clone(), catalog.clone(), feed.clone());
        std::thread::Builder::new()
            .name("remora-store".into())
            .spawn(move || write_entries(&store, &catalog, &feed, &rx))
            .context("cannot start the store writer")?
    };

    let cfg = PipelineConfig {
        cancel: Some(cancel.clone()),
        stats: Some(stats.clone()),
        threads: shards,
        ..PipelineConfig::default()
    };
    let started = Instant::now();
    for mut source in sources {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let name = source.name().to_owned();
        let shard_rt = rt.clone();
        let tx = tx.clone();
        let writer_gone = cancel.clone();
        let mut sink = move |e: Entry| {
            // The writer only goes away on a store error (reported below):
            // stop capturing what could not be stored.
            if tx.send(e).is_err() {
                writer_gone.store(true, Ordering::Relaxed);
            }
            None
        };
        let summary = remora_pipeline::run(
            source.as_mut(),
            &cfg,
            || Metered::new(Shard::new(shard_rt.clone())),
            catalog.clone(),
            &mut sink,
            &mut |_| {},
        );
        if let Some(err) = &summary.source_error {
            say!("remora: {name}: {err}; entries before it were processed");
        }
        say!(
            "remora: {name}: {} packets, {} entries",
            summary.packets,
            summary.entries
        );
    }
    drop(tx);
    let written = writer.join().expect("store writer panicked");

    // Files are read: keep serving until asked to stop.
    if !args.read.is_empty() && !cancel.load(Ordering::Relaxed) {
        say!("remora: done reading; serving at http://{listening} until Ctrl-C");
        while !cancel.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    alert_stop.store(true, Ordering::Relaxed);
    if let Some(engine) = alert_engine {
        let _ = engine.join();
    }
    if let Some(hub) = &alert_hub {
        remora_alert::engine::wait_for_delivery(hub, Duration::from_secs(5));
    }
    let _ = stop_tx.send(true);
    let _ = tokio_rt.block_on(server);
    let s = store.stats();
    match written {
        Ok(n) => {
            say!(
                "remora: stored {n} entries in {:.1}s; the store holds {} entries ({} bytes of {})",
                started.elapsed().as_secs_f64(),
                s.entries,
                s.bytes,
                s.limit_bytes
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Appends entries in batches and publishes each stored batch; returns how
/// many were stored. A store error stops the writer (and so the capture,
/// through the closed channel) with the error.
fn write_entries(
    store: &Store,
    catalog: &Arc<Catalog>,
    feed: &LiveFeed,
    rx: &Receiver<Entry>,
) -> Result<u64> {
    let mut batch: Vec<Entry> = Vec::with_capacity(BATCH_ENTRIES);
    let mut first_at = Instant::now();
    let mut stored = 0u64;
    loop {
        let wait = if batch.is_empty() {
            BATCH_WAIT
        } else {
            BATCH_WAIT.saturating_sub(first_at.elapsed())
        };
        let done = match rx.recv_timeout(wait) {
            Ok(e) => {
                if batch.is_empty() {
                    first_at = Instant::now();
                }
                batch.push(e);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = batch.len() >= BATCH_ENTRIES
            || (!batch.is_empty() && first_at.elapsed() >= BATCH_WAIT)
            || done;
        if due && !batch.is_empty() {
            let mut pending = std::mem::take(&mut batch);
            stored += append_split(store, catalog, feed, &mut pending)?;
        }
        if done {
            return Ok(stored);
        }
    }
}

/// Appends `entries` and publishes them; a batch the store finds too large
/// for its size limit is split in halves until it fits. An entry that fits
/// in no batch (larger than the limit allows) is dropped with a warning.
fn append_split(
    store: &Store,
    catalog: &Arc<Catalog>,
    feed: &LiveFeed,
    entries: &mut Vec<Entry>,
) -> Result<u64> {
    match store.append(catalog, entries) {
        Ok(_) => {
            let n = entries.len() as u64;
            for e in entries.drain(..) {
                feed.publish(Arc::new(StoredEntry {
                    catalog: catalog.clone(),
                    entry: e,
                }));
            }
            Ok(n)
        }
        Err(StoreError::BatchTooLarge { .. }) if entries.len() > 1 => {
            let mut tail = entries.split_off(entries.len() / 2);
            let n = append_split(store, catalog, feed, entries)?;
            Ok(n + append_split(store, catalog, feed, &mut tail)?)
        }
        Err(e @ (StoreError::BatchTooLarge { .. } | StoreError::EntryTooLarge { .. })) => {
            tracing::warn!("entry dropped, it does not fit in the store: {e}");
            for _ in entries.drain(..) {
                feed.count_unstorable();
            }
            Ok(0)
        }
        Err(e) => Err(anyhow::Error::new(e).context("storing entries")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_with_units_and_name_bad_values() {
        assert_eq!(super::parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(super::parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(super::parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(super::parse_size("4096").unwrap(), 4096);
        assert_eq!(super::parse_size("1.5 KiB").unwrap(), 1536);
        assert!(super::parse_size("lots").unwrap_err().contains("\"lots\""));
        assert!(super::parse_size("3 parsecs")
            .unwrap_err()
            .contains("parsecs"));
    }

    #[test]
    fn a_snaplen_that_cuts_payload_is_warned_about() {
        let w = super::snaplen_warning(96).expect("96 bytes cut payload");
        assert!(w.contains("--snaplen 96"), "{w}");
        assert!(super::snaplen_warning(65_534).is_some());
        assert_eq!(super::snaplen_warning(65_535), None);
        assert_eq!(super::snaplen_warning(262_144), None);
    }
}
