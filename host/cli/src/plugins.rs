//! Finding, loading and listing plugins.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use remora_entry::printable;
use remora_runtime::{Runtime, RuntimeConfig};

use crate::Cli;

/// Built-in plugins ship in `plugins/` next to the binary (the build copies
/// them there); user-installed ones live in the data directory.
fn default_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.join("plugins"));
        }
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")));
    if let Some(d) = data {
        dirs.push(d.join("remora/plugins"));
    }
    dirs
}

/// The directories plugins load from, and whether the user named them.
fn plugin_dirs(cli: &Cli) -> (Vec<PathBuf>, bool) {
    if cli.plugin_dirs.is_empty() {
        (default_dirs(), false)
    } else {
        (cli.plugin_dirs.clone(), true)
    }
}

/// The runtime's settings for `shards` shard threads (the instance pool
/// is sized by them and by the plugin files found).
pub(crate) fn runtime_config(cli: &Cli, body_cap: Option<usize>, shards: usize) -> RuntimeConfig {
    let mut cfg = RuntimeConfig::default();
    // Unreadable directories count nothing here; loading reports them.
    let plugins: usize = plugin_dirs(cli)
        .0
        .iter()
        .filter_map(|d| remora_runtime::plugin_files(d).ok())
        .map(|f| f.len())
        .sum();
    cfg.max_instances = remora_runtime::instance_slots(shards, plugins);
    if cli.no_cache {
        // The runtime's way to say "no cache": an empty directory.
        cfg.cache_dir = Some(PathBuf::new());
    } else if let Some(dir) = &cli.cache_dir {
        cfg.cache_dir = Some(dir.clone());
    }
    cfg.cache_max_bytes = cli.cache_max_mb.saturating_mul(1 << 20);
    if let Some(cap) = body_cap {
        // "*" applies to every plugin unless its own section overrides it.
        cfg.plugin_config
            .entry("*".to_owned())
            .or_default()
            .insert("body-cap".to_owned(), cap.to_string());
    }
    cfg
}

/// Load every plugin from the chosen directories into a runtime.
pub(crate) fn load(cli: &Cli, cfg: RuntimeConfig) -> anyhow::Result<Arc<Runtime>> {
    let (dirs, explicit) = plugin_dirs(cli);
    let mut rt = Runtime::new(cfg).context("starting the plugin runtime")?;
    let mut looked = Vec::new();
    for dir in &dirs {
        if !dir.is_dir() {
            if explicit {
                bail!("plugin directory {} does not exist", dir.display());
            }
            looked.push(dir.display().to_string());
            continue;
        }
        rt.load_dir(dir)
            .with_context(|| format!("loading plugins from {}", dir.display()))?;
        looked.push(dir.display().to_string());
    }
    if rt.plugins().is_empty() {
        bail!(
            "no plugins found (looked in: {}). Built-in plugins are built by `scripts/build-plugins.sh` \
             and copied next to the binary; or pass --plugins DIR",
            looked.join(", ")
        );
    }
    Ok(Arc::new(rt))
}

pub(crate) fn list(cli: &Cli) -> anyhow::Result<ExitCode> {
    let rt = load(cli, runtime_config(cli, None, 1))?;
    let mut text = format!(
        "{:<16} {:<9} {:<10} {:<6} {:<28} FILE\n",
        "PLUGIN", "VERSION", "PROTOCOL", "L4", "PORTS"
    );
    for p in rt.plugins() {
        for proto in &p.info.protocols {
            let ports: Vec<String> = proto.ports.iter().map(|p| p.to_string()).collect();
            text += &format!(
                "{:<16} {:<9} {:<10} {:<6} {:<28} {}{}\n",
                printable(&p.info.name),
                printable(&p.info.version),
                printable(&proto.name),
                match proto.transport {
                    remora_runtime::wit::Transport::Tcp => "tcp",
                    remora_runtime::wit::Transport::Udp => "udp",
                },
                ports.join(","),
                p.path.display(),
                if p.from_cache { "" } else { " (compiled now)" }
            );
        }
    }
    crate::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}
