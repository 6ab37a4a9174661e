//! `remora`: the command line. Parses arguments and wires the crates; the
//! work happens in them.

/// `eprintln!` that never panics: with stderr closed (`remora tap 2>&1 |
/// head`, a log collector gone) the std macro panics, which stopped a
/// capture that was serving its API. A message nobody can read is no
/// reason to stop.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Writes a short answer (a count, the plugin list) to stdout. A reader
/// that went away (`remora plugins | head -1`) is not an error: the std
/// macro panicked there (exit 101). Any other write error is returned.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

mod alert_print;
mod alerts;
mod client;
mod plugin_test;
mod plugins;
mod query;
mod read;
mod tap;
mod telemetry;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Entries are many small allocations (fields, strings); mimalloc handles
// that pattern markedly faster than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "remora",
    version,
    about = "Wireshark for Kubernetes: capture traffic, reassemble TCP, dissect it with WebAssembly plugins",
    long_about = "Remora captures live interfaces or reads capture files, reassembles TCP streams and \
                  hands them to protocol dissectors that are sandboxed WebAssembly components. \
                  Every request/response pair becomes an entry you can print, filter (CEL), store, \
                  query over GraphQL and watch in the dashboard."
)]
struct Cli {
    /// Directory with plugin components (*.wasm) to load instead of the
    /// built-in ones shipped next to the binary. Repeatable.
    #[arg(
        long = "plugins",
        global = true,
        env = "REMORA_PLUGINS",
        value_name = "DIR",
        value_delimiter = ':'
    )]
    plugin_dirs: Vec<PathBuf>,

    /// Directory compiled plugins are cached in (default:
    /// $XDG_CACHE_HOME/remora/components or ~/.cache/remora/components).
    /// Only its `.cwasm` files are ever removed.
    #[arg(long, global = true, env = "REMORA_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile plugins on every start and keep them in memory only: the
    /// cache directory is neither read nor written (read-only file systems,
    /// throw-away containers). Wins over --cache-dir. REMORA_NO_CACHE: any
    /// value but 0, false, no, off and the empty one.
    #[arg(
        long,
        global = true,
        env = "REMORA_NO_CACHE",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    no_cache: bool,

    /// Most MiB of compiled plugins kept in the cache; the least recently
    /// used go first when a new one is written.
    #[arg(
        long,
        global = true,
        env = "REMORA_CACHE_MAX_MB",
        value_name = "MIB",
        default_value_t = 256
    )]
    cache_max_mb: u64,

    /// Log filter, e.g. `info`, `remora=debug` (also RUST_LOG).
    #[arg(
        long,
        global = true,
        env = "REMORA_LOG",
        default_value = "warn",
        value_name = "FILTER"
    )]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a capture file (pcap or pcapng, optionally gzip-compressed, `-` for
    /// stdin) and print its entries.
    Read(read::ReadArgs),
    /// Capture a live interface (or read capture files with -r), store the
    /// entries, and serve the dashboard and GraphQL API at
    /// http://localhost:8899 until Ctrl-C.
    Tap(tap::TapArgs),
    /// Print entries from a running `remora tap` (its GraphQL API), or
    /// follow them live with --follow.
    Query(query::QueryArgs),
    /// List the plugins that would be loaded, with their protocols and ports.
    Plugins,
    /// List the alerts a running `remora tap --alerts FILE` raised, or
    /// follow them live with --follow.
    Alerts(alerts::AlertsArgs),
    /// Work with one plugin file: `remora plugin test ALERT.wasm --capture FILE`.
    #[command(subcommand)]
    Plugin(plugin_test::PluginCommand),
}

/// `--threads`: 1 to [`remora_pipeline::MAX_THREADS`] shard threads.
fn threads_arg(s: &str) -> Result<usize, String> {
    count_arg(s, 1..=remora_pipeline::MAX_THREADS, "threads")
}

/// `--body-cap`: up to what the runtime takes in one message body.
fn body_cap_arg(s: &str) -> Result<usize, String> {
    count_arg(s, 0..=remora_runtime::MAX_BODY_BYTES, "bytes")
}

/// A whole number in `range`; clap puts the offending value before the error.
fn count_arg(s: &str, range: std::ops::RangeInclusive<usize>, what: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of {what} from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    unset_empty_env();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    // Colours only for a person at a terminal: escape codes would litter a
    // log file or `kubectl logs`.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .init();
    let result = match &cli.command {
        Command::Read(args) => read::run(&cli, args),
        Command::Tap(args) => tap::run(&cli, args),
        Command::Query(args) => query::run(args),
        Command::Alerts(args) => alerts::run(args),
        Command::Plugins => plugins::list(&cli),
        Command::Plugin(c) => plugin_test::run(&cli, c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            say!("remora: error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// Keeps the kernel from backing this process's memory with 2 MiB pages.
/// With transparent huge pages on (`always`, as many distributions ship),
/// the first touch of any 2 MiB range of the allocator's arenas or a
/// plugin's memory made all of it resident: `remora read` held ~55 MB for
/// a 76-packet capture and ~30 MB of that was never used. Without them the
/// peak halves (HTTP/1 bench 53 -> 28 MB, mixed 56 -> 28 MB one thread),
/// and the time does not move (measured on both bench captures, one and
/// two threads). A worker runs on every node: its footprint matters more.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integers and changes
    // only this process's (and its children's) page policy.
    unsafe {
        // Failure (an old kernel) leaves the default: nothing to report.
        let _ = libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// An empty `REMORA_*` variable counts as unset: `REMORA_PLUGINS= remora
/// ...` is how a shell resets one, and clap would otherwise reject the
/// empty value as if `--plugins ""` had been typed, naming an option the
/// user never gave. Runs while the process has one thread.
fn unset_empty_env() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| v.is_empty() && k.to_str().is_some_and(|k| k.starts_with("REMORA_")))
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        std::env::remove_var(k);
    }
}

/// The error and its causes, each said once: several of our errors already
/// quote their cause (`cannot open X: No such file`), so a cause whose text is
/// already in the message is not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}
