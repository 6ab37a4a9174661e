//! The Wasm runtime: loads dissector plugins (WebAssembly components speaking
//! `remora:plugin@0.7.x`) and alert plugins (see [`alert`]), and runs them with limits and fault containment.
//!
//! * [`Runtime`] owns the wasmtime `Engine`, the `Linker` and the loaded plugins
//!   (compiled once, cached on disk, validated). It is `Send + Sync` and shared
//!   as `Arc<Runtime>` by every shard thread.
//! * [`Shard`] is owned by one thread: one `Store` + instance per plugin,
//!   created lazily from the plugin's `InstancePre`.
//!
//! Every call runs under a CPU deadline (epoch interruption), a memory cap
//! (a `ResourceLimiter`) and a wasm stack cap. A trap, a limit hit or output that
//! breaks the contract drops that plugin's instance in that shard (its sessions
//! become [`Fault::Stale`]), is counted and logged, and quarantines the plugin in
//! that shard with exponential back-off. Capture never stops because of a plugin.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log_budget::LogBudget;

use anyhow::{anyhow, bail, Context as _};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub mod alert;
mod cache;
mod log_budget;
mod stderr;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
pub mod wire;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "dissector-plugin",
        additional_derives: [PartialEq],
    });
}

use bindings::{DissectorPlugin, DissectorPluginPre};

/// Host-side types of the plugin contract (`remora:plugin/types`); a call's
/// messages arrive in their flat encoding, checked ([`wire`]).
pub mod wit {
    pub use crate::bindings::exports::remora::plugin::dissector::CallKind;
    pub use crate::bindings::remora::plugin::host::Level;
    pub use crate::bindings::remora::plugin::types::{
        Direction, FieldDecl, FieldType, FlowInfo, IpAddress, PluginInfo, ProbeResult,
        ProtocolDecl, ProtocolSwitch, Transport,
    };
    pub use crate::wire::{
        Body, FeedResult, Field, Message, MessageKind, Messages, Span, Text, Value,
    };
}

impl From<std::net::IpAddr> for wit::IpAddress {
    fn from(a: std::net::IpAddr) -> Self {
        match a {
            std::net::IpAddr::V4(v) => wit::IpAddress::V4(v.to_bits()),
            std::net::IpAddr::V6(v) => {
                let bits = v.to_bits();
                wit::IpAddress::V6(((bits >> 64) as u64, bits as u64))
            }
        }
    }
}

impl From<wit::IpAddress> for std::net::IpAddr {
    fn from(a: wit::IpAddress) -> Self {
        match a {
            wit::IpAddress::V4(v) => std::net::Ipv4Addr::from_bits(v).into(),
            wit::IpAddress::V6((hi, lo)) => {
                std::net::Ipv6Addr::from_bits((u128::from(hi) << 64) | u128::from(lo)).into()
            }
        }
    }
}

/// The contract version this host speaks (major.minor; any patch is accepted).
pub const WIT_PACKAGE: &str = "remora:plugin";
const HOST_WIT_MAJOR: u64 = 0;
const HOST_WIT_MINOR: u64 = 7;

/// Period of the epoch ticker: the granularity of the CPU deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Compiled components are cached here, keyed by sha256 of the wasm and an
    /// engine fingerprint. `None`: the default (`$XDG_CACHE_HOME/remora/components`
    /// or `~/.cache/remora/components`); an empty path disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Most bytes of compiled components the cache keeps; least recently
    /// used entries go first.
    pub cache_max_bytes: u64,
    /// CPU time allowed per call (epoch based, granularity [`EPOCH_TICK`]).
    pub call_deadline: Duration,
    /// Linear memory per instance, bytes.
    pub memory_limit: usize,
    /// Wasm stack, bytes.
    pub stack_limit: usize,
    /// Total instances (pooling allocator slots) across all shards: size it
    /// with [`instance_slots`] when the shards and plugins are known.
    pub max_instances: u32,
    /// Per plugin name: key -> value, served by `host.config`. The section
    /// named "*" applies to every plugin unless the plugin's own overrides it.
    pub plugin_config: HashMap<String, HashMap<String, String>>,
    /// First quarantine after a fault; doubles per consecutive fault.
    pub quarantine_base: Duration,
    /// Cap of the quarantine back-off.
    pub quarantine_max: Duration,
    /// Most messages one call may return.
    pub max_messages_per_call: usize,
    /// Most body bytes one message may carry.
    pub max_body_bytes: usize,
    /// Bytes of fields and bodies one call may return.
    pub max_output_bytes: usize,
}

/// Most body bytes one message may carry by default: what the SDK's
/// `body_cap` keeps at most, and what `--body-cap` accepts.
pub const MAX_BODY_BYTES: usize = 1 << 20;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            cache_max_bytes: 256 << 20,
            call_deadline: Duration::from_millis(200),
            memory_limit: 64 << 20,
            stack_limit: 512 << 10,
            max_instances: DEFAULT_MAX_INSTANCES,
            plugin_config: HashMap::new(),
            quarantine_base: Duration::from_secs(1),
            quarantine_max: Duration::from_secs(60),
            max_messages_per_call: 4096,
            max_body_bytes: MAX_BODY_BYTES,
            max_output_bytes: 8 << 20,
        }
    }
}

/// Index of a loaded plugin in its [`Runtime`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginId(pub u16);

/// A loaded, validated plugin.
#[derive(Debug)]
pub struct Plugin {
    pub id: PluginId,
    pub path: PathBuf,
    /// sha256 of the wasm file, hex.
    pub sha256: String,
    /// What `describe` returned.
    pub info: wit::PluginInfo,
    /// Time to compile, or to load from the cache.
    pub compile_time: Duration,
    pub from_cache: bool,
}

/// What went wrong in a plugin call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call ran past its CPU deadline.
    Deadline,
    /// The instance hit its memory limit.
    Memory,
    /// The wasm stack overflowed.
    Stack,
    /// Any other trap: panic, `unreachable`, out-of-bounds access, ...
    Trap(String),
    /// The plugin returned output that breaks the contract.
    Malformed(String),
    /// No instance could be made: every slot of the pooling allocator
    /// (`RuntimeConfig::max_instances` across shards) is taken. Not the
    /// plugin's doing, so it is not counted as a trap.
    Capacity(String),
    /// The session belonged to an instance that has since been dropped.
    Stale,
    /// The instance holds as many sessions as fit in its memory (see
    /// [`SESSION_HEADROOM`]): a new one is refused before it could exhaust
    /// the memory and lose every session of the instance. Not a fault.
    SessionLimit {
        /// Sessions open when the limit was learnt (the limit itself).
        limit: u64,
        /// The instance's linear memory, in bytes.
        memory: usize,
    },
    /// The plugin faulted recently and is in back-off in this shard.
    Quarantined,
}

impl Fault {
    /// Short name, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Deadline => "deadline",
            Fault::Memory => "memory",
            Fault::Stack => "stack",
            Fault::Trap(_) => "trap",
            Fault::Malformed(_) => "malformed",
            Fault::Capacity(_) => "capacity",
            Fault::Stale => "stale",
            Fault::SessionLimit { .. } => "session_limit",
            Fault::Quarantined => "quarantined",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Deadline => f.write_str("CPU deadline exceeded"),
            Fault::Memory => f.write_str("memory limit exceeded"),
            Fault::Stack => f.write_str("wasm stack overflow"),
            Fault::Trap(m) => write!(f, "trap: {m}"),
            Fault::Malformed(m) => write!(f, "malformed output: {m}"),
            Fault::Capacity(m) => write!(f, "no instance slot free: {m}"),
            Fault::Stale => f.write_str("stale session (its instance was dropped)"),
            Fault::SessionLimit { limit, memory } => write!(
                f,
                "session refused: the instance holds {limit} sessions in {} MiB of its memory limit",
                memory >> 20
            ),
            Fault::Quarantined => f.write_str("plugin quarantined in this shard"),
        }
    }
}

impl std::error::Error for Fault {}

// ---------------------------------------------------------------------------
// Store data

struct Limiter {
    memory_limit: usize,
    /// Set when a memory grow was refused; read after a trap.
    hit: bool,
    /// The largest linear memory granted so far, in bytes (memories never
    /// shrink, so this is what the instance holds).
    size: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit || maximum.is_some_and(|m| desired > m) {
            self.hit = true;
            return Ok(false);
        }
        self.size = self.size.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = true;
        Ok(())
    }
}

struct PluginShared {
    name: String,
    config: HashMap<String, String>,
}

struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    plugin: Arc<PluginShared>,
    stderr: stderr::TracingStderr,
    /// For the `log` import (stderr has its own).
    log_budget: LogBudget,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::remora::plugin::types::Host for HostState {}

impl bindings::remora::plugin::host::Host for HostState {
    fn log(&mut self, level: wit::Level, message: String) {
        let plugin = self.plugin.name.as_str();
        if !self.log_budget.pass(plugin, "log") {
            return;
        }
        let message = log_budget::clip(&message);
        match level {
            wit::Level::Trace => tracing::trace!(plugin, "{message}"),
            wit::Level::Debug => tracing::debug!(plugin, "{message}"),
            wit::Level::Info => tracing::info!(plugin, "{message}"),
            wit::Level::Warn => tracing::warn!(plugin, "{message}"),
            wit::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.plugin.config.get(&key).cloned()
    }
}

// ---------------------------------------------------------------------------
// Runtime

/// The clock plugins see through WASI: always the epoch.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A plugin loaded and described, not yet registered (its `id` unset).
struct Prepared {
    plugin: Plugin,
    pre: DissectorPluginPre<HostState>,
    fields: Box<[u64; 1024]>,
}

struct Loaded {
    pre: DissectorPluginPre<HostState>,
    shared: Arc<PluginShared>,
    /// Bitset of declared field ids.
    fields: Box<[u64; 1024]>,
}

struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Engine, linker and loaded plugins. Load plugins first, then share it as
/// `Arc<Runtime>` between [`Shard`]s.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cfg: RuntimeConfig,
    cache: Option<cache::ComponentCache>,
    engine_fingerprint: String,
    deadline_ticks: u64,
    pooling: bool,
    plugins: Vec<Plugin>,
    loaded: Vec<Loaded>,
    _ticker: Ticker,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cfg", &self.cfg)
            .field("cache", &self.cache)
            .field("pooling", &self.pooling)
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

/// The plugin files `Runtime::load_dir` loads from `dir`: its `*.wasm`
/// files, sorted.
pub fn plugin_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)
        .with_context(|| format!("reading plugin directory {}", dir.display()))?
    {
        let p = e
            .with_context(|| format!("reading plugin directory {}", dir.display()))?
            .path();
        if p.extension().is_some_and(|x| x == "wasm") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Pool slots when nothing sizes them ([`RuntimeConfig::max_instances`]).
pub const DEFAULT_MAX_INSTANCES: u32 = 1024;

/// Pool slots for `plugins` plugins in `shards` shard threads: each shard
/// holds an instance of every plugin it uses, twice that while one is
/// replaced (`Shard::renew_when_full`), and a margin for alert plugins;
/// never fewer than the default. A slot costs only address space until it
/// is used (about 250 bytes of resident memory: 20,000 slots add 5 MB).
/// A pool smaller than plugins × shards failed instances as `capacity`
/// faults: `--threads 255` with the ten built-in plugins lost a fifth of
/// its entries.
pub fn instance_slots(shards: usize, plugins: usize) -> u32 {
    let want = shards
        .saturating_mul(plugins)
        .saturating_mul(2)
        .saturating_add(64);
    u32::try_from(want)
        .unwrap_or(u32::MAX)
        .max(DEFAULT_MAX_INSTANCES)
}

fn base_config(cfg: &RuntimeConfig) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(cfg.stack_limit)
        .parallel_compilation(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    // `REMORA_WASM_PROFILE=perfmap` lets `perf` name plugin functions.
    if std::env::var_os("REMORA_WASM_PROFILE").is_some_and(|v| v == "perfmap") {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    c
}

fn pooling(cfg: &RuntimeConfig) -> PoolingAllocationConfig {
    let n = cfg.max_instances.max(1);
    let mut p = PoolingAllocationConfig::new();
    // A wasm32-wasip2 component holds one memory but a few core instances
    // (main module plus wit-component's shim and fixup modules) and up to two
    // tables (main + shim), hence the factors.
    p.total_component_instances(n)
        .total_memories(n)
        .total_tables(n.saturating_mul(2))
        .total_core_instances(n.saturating_mul(4))
        .total_gc_heaps(n)
        .max_memory_size(cfg.memory_limit)
        // Stacks of the pool are for async calls, which the host never
        // makes; the default 1000 cost one `mprotect` each at start-up.
        .total_stacks(0);
    p
}

fn build_engine(cfg: &RuntimeConfig) -> anyhow::Result<(Engine, bool)> {
    // 1. Pooling with the default 4 GiB reservations (no bounds checks).
    let mut c = base_config(cfg);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(cfg)));
    match Engine::new(&c) {
        Ok(e) => return Ok((e, true)),
        Err(e) => tracing::warn!(
            "pooling allocator with 4 GiB reservations failed ({e:#}); trying small reservations"
        ),
    }
    // 2. Pooling with reservations sized to the memory limit (bounds-checked).
    let mut c = base_config(cfg);
    c.memory_reservation(cfg.memory_limit as u64)
        .memory_guard_size(2 << 20)
        .memory_reservation_for_growth(0)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(cfg)));
    match Engine::new(&c) {
        Ok(e) => return Ok((e, true)),
        Err(e) => {
            tracing::warn!("pooling allocator failed ({e:#}); falling back to on-demand allocation")
        }
    }
    // 3. On demand.
    let c = base_config(cfg);
    Ok((
        Engine::new(&c)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?,
        false,
    ))
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("remora").join("components"))
}

/// A `Hasher` that feeds sha256, to turn wasmtime's compatibility hash into a
/// stable fingerprint.
struct ShaHasher(Sha256);
impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn engine_fingerprint(engine: &Engine) -> String {
    use std::hash::Hash;
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..8])
}

/// Checks the `remora:plugin` interfaces a component imports and exports
/// against the version this host speaks, and that it exports `required`
/// (`dissector` or `alerter`).
fn check_contract(engine: &Engine, component: &Component, required: &str) -> anyhow::Result<()> {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(n, _)| n.to_string())
        .chain(ty.exports(engine).map(|(n, _)| n.to_string()))
        .collect();
    let host = format!("{WIT_PACKAGE}@{HOST_WIT_MAJOR}.{HOST_WIT_MINOR}.x");
    let mut exports_required = false;
    for name in &names {
        let Some(rest) = name.strip_prefix(&format!("{WIT_PACKAGE}/")) else {
            continue;
        };
        let (iface, version) = match rest.split_once('@') {
            Some((i, v)) => (i, Some(v)),
            None => (rest, None),
        };
        let Some(version) = version else {
            bail!("it targets an unversioned {WIT_PACKAGE} (`{name}`), host speaks {host}");
        };
        let mut parts = version.split(['.', '-', '+']);
        let major: Option<u64> = parts.next().and_then(|p| p.parse().ok());
        let minor: Option<u64> = parts.next().and_then(|p| p.parse().ok());
        let compatible = match (major, minor) {
            (Some(0), Some(m)) => HOST_WIT_MAJOR == 0 && m == HOST_WIT_MINOR,
            (Some(ma), Some(_)) => ma == HOST_WIT_MAJOR && HOST_WIT_MAJOR != 0,
            _ => false,
        };
        if !compatible {
            bail!("it targets {WIT_PACKAGE}@{version}, host speaks {host}");
        }
        if iface == required {
            exports_required = true;
        }
    }
    if !exports_required {
        let kind = if required == "alerter" {
            "alert"
        } else {
            required
        };
        bail!("it does not export {WIT_PACKAGE}/{required} (not a Remora {kind} plugin?)");
    }
    Ok(())
}

fn classify_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!("not a WebAssembly file");
    }
    // Bytes 4..8: version (2 bytes) and layer (2 bytes): layer 0 is a core module.
    if bytes[6..8] == [0, 0] {
        bail!(
            "a core WebAssembly module, not a component (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)"
        );
    }
    Ok(())
}

fn validate_info(info: &wit::PluginInfo) -> anyhow::Result<Box<[u64; 1024]>> {
    if info.name.trim().is_empty() {
        bail!("describe(): empty plugin name");
    }
    for p in &info.protocols {
        if p.name.trim().is_empty() || p.flag.trim().is_empty() {
            bail!("describe(): a protocol has an empty name or flag");
        }
    }
    let mut bits = Box::new([0u64; 1024]);
    let mut names = std::collections::HashSet::new();
    for f in &info.fields {
        if f.name.trim().is_empty() {
            bail!("describe(): field id {} has an empty name", f.id);
        }
        let (w, b) = ((f.id >> 6) as usize, 1u64 << (f.id & 63));
        if bits[w] & b != 0 {
            bail!("describe(): field id {} declared twice", f.id);
        }
        bits[w] |= b;
        if !names.insert(f.name.as_str()) {
            bail!("describe(): field name `{}` declared twice", f.name);
        }
    }
    Ok(bits)
}

impl Runtime {
    /// Creates the engine (pooling allocator when possible) and starts the
    /// epoch ticker thread, which stops when the `Runtime` drops.
    pub fn new(cfg: RuntimeConfig) -> anyhow::Result<Self> {
        let (engine, pooling) = build_engine(&cfg)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        DissectorPlugin::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking remora:plugin/host")?;

        let cache = match &cfg.cache_dir {
            Some(d) if d.as_os_str().is_empty() => None,
            Some(d) => Some(d.clone()),
            None => default_cache_dir(),
        }
        .map(|d| cache::ComponentCache::new(d, cfg.cache_max_bytes));
        let engine_fingerprint = engine_fingerprint(&engine);
        let tick_ns = EPOCH_TICK.as_nanos();
        let deadline_ticks = (cfg.call_deadline.as_nanos().div_ceil(tick_ns) as u64).max(1) + 1;

        let (tx, rx) = mpsc::channel::<()>();
        let ticking = engine.clone();
        let thread = std::thread::Builder::new()
            .name("remora-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(EPOCH_TICK) {
                    ticking.increment_epoch();
                }
            })
            .context("starting the epoch ticker")?;

        Ok(Runtime {
            engine,
            linker,
            cfg,
            cache,
            engine_fingerprint,
            deadline_ticks,
            pooling,
            plugins: Vec::new(),
            loaded: Vec::new(),
            _ticker: Ticker {
                stop: Some(tx),
                thread: Some(thread),
            },
        })
    }

    /// Whether the pooling allocator is in use (else on-demand allocation).
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// Memory at which an instance counts as full, dissector or alert
    /// plugin: [`SESSION_HEADROOM`] of the limit. Past it an instance is
    /// replaced rather than left to run out and trap.
    pub(crate) fn full_mark(&self) -> usize {
        (self.cfg.memory_limit as f64 * SESSION_HEADROOM) as usize
    }

    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    pub fn plugin(&self, id: PluginId) -> &Plugin {
        &self.plugins[id.0 as usize]
    }

    /// Loads every `*.wasm` in `dir`, sorted by file name.
    pub fn load_dir(&mut self, dir: &Path) -> anyhow::Result<Vec<PluginId>> {
        let files = plugin_files(dir)?;
        // Reading, hashing, loading from the cache and describing are each
        // plugin's own work, done side by side: they were most of the
        // start-up of every command. Registration stays in file order, so
        // ids and the first error reported do not depend on timing.
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(files.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let this = &*self;
        let mut prepared = std::thread::scope(|scope| {
            let take = || {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break mine };
                    mine.push((i, this.prepare(f)));
                }
            };
            // A helper the system refuses leaves its share to the others.
            let helpers: Vec<_> = (1..workers)
                .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, take).ok())
                .collect();
            let mut done = take();
            for h in helpers {
                done.extend(h.join().expect("plugin loading thread panicked"));
            }
            done
        });
        prepared.sort_unstable_by_key(|(i, _)| *i);
        // Every file that fails is named, not only the first: a directory
        // with several bad files is fixed in one go.
        let mut ids = Vec::with_capacity(files.len());
        let mut failed: Vec<anyhow::Error> = Vec::new();
        for (i, p) in prepared {
            match self.register_prepared(&files[i], p) {
                Ok(id) => ids.push(id),
                Err(e) => failed.push(e),
            }
        }
        if failed.len() > 1 {
            let each: Vec<String> = failed.iter().map(|e| format!("{e:#}")).collect();
            bail!(
                "{} of {} plugin files failed: {}",
                each.len(),
                files.len(),
                each.join("; ")
            );
        }
        match failed.pop() {
            Some(e) => Err(e),
            None => Ok(ids),
        }
    }

    /// Compiles (or loads from the cache), links, instantiates once to call
    /// `describe`, and validates a plugin.
    pub fn load_file(&mut self, path: &Path) -> anyhow::Result<PluginId> {
        let prepared = self.prepare(path);
        self.register_prepared(path, prepared)
    }

    /// Registers what preparing `path` gave; an error names the file.
    fn register_prepared(
        &mut self,
        path: &Path,
        prepared: anyhow::Result<Prepared>,
    ) -> anyhow::Result<PluginId> {
        prepared
            .and_then(|p| self.register(p))
            .with_context(|| format!("plugin {}", path.display()))
    }

    /// Everything of loading a plugin that needs no other plugin: read,
    /// compile (or load from the cache), link, describe, validate.
    fn prepare(&self, path: &Path) -> anyhow::Result<Prepared> {
        let bytes = std::fs::read(path).context("reading the file")?;
        classify_bytes(&bytes)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));

        let t0 = Instant::now();
        let (component, from_cache) = self.compile(&bytes, &sha256)?;
        let compile_time = t0.elapsed();

        check_contract(&self.engine, &component, "dissector")?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("linking")?;
        let pre = DissectorPluginPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("finding the dissector exports")?;

        // Describe, in a throwaway store with the usual limits.
        let probe_shared = Arc::new(PluginShared {
            name: path.display().to_string(),
            config: HashMap::new(),
        });
        let mut store = self.new_store(probe_shared);
        let inst = pre
            .instantiate(&mut store)
            .map_err(|e| describe_error(e, &store))?;
        let info = inst
            .remora_plugin_dissector()
            .call_describe(&mut store)
            .map_err(|e| describe_error(e, &store))
            .context("calling describe()")?;
        drop(store);
        let fields = validate_info(&info)?;
        Ok(Prepared {
            plugin: Plugin {
                // Given by `register`.
                id: PluginId(u16::MAX),
                path: path.to_path_buf(),
                sha256,
                info,
                compile_time,
                from_cache,
            },
            pre,
            fields,
        })
    }

    /// Gives a prepared plugin its id, unless its name is taken.
    fn register(&mut self, p: Prepared) -> anyhow::Result<PluginId> {
        let Prepared {
            mut plugin,
            pre,
            fields,
        } = p;
        let info = &plugin.info;
        if self.plugins.len() >= u16::MAX as usize {
            bail!("too many plugins");
        }
        if let Some(other) = self.plugins.iter().find(|p| p.info.name == info.name) {
            bail!(
                "plugin name `{}` is already taken by {}",
                info.name,
                other.path.display()
            );
        }

        plugin.id = PluginId(self.plugins.len() as u16);
        // "*" holds defaults for every plugin; its own section overrides them.
        let mut config = self.cfg.plugin_config.get("*").cloned().unwrap_or_default();
        if let Some(own) = self.cfg.plugin_config.get(&info.name) {
            config.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let shared = Arc::new(PluginShared {
            name: info.name.clone(),
            config,
        });
        tracing::info!(
            plugin = %info.name,
            version = %info.version,
            path = %plugin.path.display(),
            from_cache = plugin.from_cache,
            compile_ms = plugin.compile_time.as_secs_f64() * 1e3,
            "loaded plugin"
        );
        self.loaded.push(Loaded {
            pre,
            shared,
            fields,
        });
        let id = plugin.id;
        self.plugins.push(plugin);
        Ok(id)
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> anyhow::Result<(Component, bool)> {
        let key = format!("{sha256}-{}", self.engine_fingerprint);
        let cache = self.cache.as_ref();
        match cache.and_then(|c| c.get(&key)) {
            // SAFETY: the entry was written by `precompile_component` of an
            // engine with the same compatibility fingerprint, into a directory
            // we own; `deserialize` still checks the header and the engine's
            // compatibility.
            Some(Ok(bytes)) => match unsafe { Component::deserialize(&self.engine, &bytes) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => tracing::warn!(%key, "ignoring unusable cache entry: {e:#}"),
            },
            Some(Err(e)) => tracing::warn!(%key, "cannot read cache entry: {e:#}"),
            None => {}
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| anyhow!("{e:#}"))
            .context("not a valid WebAssembly component")?;
        if let Some(cache) = cache {
            match cache.put(&key, &compiled) {
                Ok(p) if p.files > 0 => tracing::info!(
                    dir = %cache.dir().display(),
                    "component cache over its budget: removed {} least recently used entries ({} bytes)",
                    p.files,
                    p.bytes
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    "cannot write the component cache in {}: {e:#}; compiled plugins are \
                     not kept, so every start compiles them again (choose a writable \
                     --cache-dir, or --no-cache)",
                    cache.dir().display()
                ),
            }
        }
        // SAFETY: `compiled` was just produced by this engine.
        let c = unsafe { Component::deserialize(&self.engine, &compiled) }?;
        Ok((c, false))
    }

    fn new_store(&self, plugin: Arc<PluginShared>) -> Store<HostState> {
        let stderr = stderr::TracingStderr::new(&plugin.name);
        // No clock beyond what the host gives: a dissector that reads WASI
        // clocks sees a frozen epoch, so its output depends only on its input.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limiter: Limiter {
                    memory_limit: self.cfg.memory_limit,
                    hit: false,
                    size: 0,
                },
                plugin,
                stderr,
                log_budget: LogBudget::default(),
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks);
        store
    }
}

fn classify(e: &wasmtime::Error, store: &Store<HostState>) -> Fault {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::Deadline,
        Some(Trap::StackOverflow) => Fault::Stack,
        _ if store.data().limiter.hit => Fault::Memory,
        _ if e
            .chain()
            .any(|c| c.is::<wasmtime::PoolConcurrencyLimitError>()) =>
        {
            Fault::Capacity(format!("{:#}", e.root_cause()))
        }
        trap => {
            let mut msg = match trap {
                Some(t) => t.to_string(),
                None => format!("{:#}", e.root_cause()),
            };
            let frame = e.downcast_ref::<wasmtime::WasmBacktrace>().and_then(|bt| {
                // The innermost frame of the plugin's own code, not std's abort path.
                bt.frames().iter().find_map(|f| {
                    let name = format!("{:#}", rustc_demangle::demangle(f.func_name()?));
                    (!is_runtime_frame(&name)).then_some(name)
                })
            });
            if let Some(frame) = frame {
                msg.push_str(" in ");
                msg.push_str(&frame);
            }
            if let Some(tail) = store.data().stderr.tail() {
                msg.push_str("; stderr: ");
                msg.push_str(&tail);
            }
            Fault::Trap(msg)
        }
    }
}

/// Frames of std's panic/abort machinery, skipped when naming where a trap happened.
fn is_runtime_frame(name: &str) -> bool {
    name == "abort"
        || ["std::", "core::", "alloc::", "__rustc::", "__rust_"]
            .iter()
            .any(|p| name.starts_with(p))
}

fn describe_error(e: wasmtime::Error, store: &Store<HostState>) -> anyhow::Error {
    let f = classify(&e, store);
    anyhow!("{f} ({e:#})")
}

// ---------------------------------------------------------------------------
// Shard

static NEXT_SHARD: AtomicU32 = AtomicU32::new(0);

/// A live dissection session of one flow, created by [`Shard::open`].
///
/// Pass it back to [`Shard::close`]; dropping it without closing leaks the
/// guest-side state until the instance is dropped.
#[derive(Debug)]
pub struct SessionId {
    plugin: PluginId,
    shard: u32,
    generation: u32,
    /// The id the plugin's `open` returned.
    handle: u32,
}

impl SessionId {
    pub fn plugin(&self) -> PluginId {
        self.plugin
    }
}

/// One call of a [`Shard::run`] batch.
#[derive(Debug)]
pub struct Call<'a> {
    pub session: &'a SessionId,
    pub kind: wit::CallKind,
    pub dir: wit::Direction,
    /// Feed: stream offset of its first byte.
    pub base: u64,
    /// Feed: bytes of the batch's data it takes (back to back, in order);
    /// gap: bytes lost; end: 0.
    pub len: u64,
}

/// Fault counts by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub deadline: u64,
    pub memory: u64,
    pub stack: u64,
    pub trap: u64,
    pub malformed: u64,
    pub capacity: u64,
}

impl FaultCounts {
    /// Counts `fault` under its kind (stale and quarantined calls are not
    /// faults of their own).
    pub(crate) fn record(&mut self, fault: &Fault) {
        match fault {
            Fault::Deadline => self.deadline += 1,
            Fault::Memory => self.memory += 1,
            Fault::Stack => self.stack += 1,
            Fault::Trap(_) => self.trap += 1,
            Fault::Malformed(_) => self.malformed += 1,
            Fault::Capacity(_) => self.capacity += 1,
            Fault::Stale | Fault::Quarantined | Fault::SessionLimit { .. } => {}
        }
    }

    pub fn total(&self) -> u64 {
        self.deadline + self.memory + self.stack + self.trap + self.malformed + self.capacity
    }
}

/// Per-plugin counters of one shard.
#[derive(Clone, Debug)]
pub struct PluginCounters {
    pub plugin: PluginId,
    pub name: String,
    /// Calls that reached the plugin (describe excluded).
    pub calls: u64,
    pub faults: FaultCounts,
    /// Calls refused because the plugin was quarantined.
    pub quarantined_calls: u64,
    pub instances_created: u64,
    /// Instances replaced at [`SESSION_HEADROOM`] of their memory limit
    /// (the old one finishing its sessions).
    pub renewals: u64,
    /// Sessions refused because the instance's memory was nearly full.
    pub sessions_refused: u64,
    /// Set while the plugin is quarantined in this shard.
    pub quarantined_until: Option<Instant>,
    /// Open sessions, the retiring instances' included.
    pub sessions_open: u64,
}

struct Live {
    store: Store<HostState>,
    bindings: DissectorPlugin,
}

/// An instance replaced at its memory's headroom that still serves the
/// sessions it had then, and is dropped when the last of them closes.
struct Retiring {
    live: Live,
    generation: u32,
    sessions_open: u64,
}

struct Slot {
    live: Option<Live>,
    generation: u32,
    /// The live instance's memory when it was created.
    born: usize,
    /// Oldest first; at most [`MAX_RETIRING`].
    retiring: Vec<Retiring>,
    renewals: u64,
    quarantined_until: Option<Instant>,
    /// Back-off of the next quarantine.
    backoff: Duration,
    /// After a fault: a success at or after this instant resets `backoff`
    /// (the plugin then ran without fault for as long as it was quarantined).
    reset_backoff_at: Option<Instant>,
    calls: u64,
    faults: FaultCounts,
    quarantined_calls: u64,
    instances_created: u64,
    sessions_open: u64,
    /// How many sessions the live instance may hold, learnt when its memory
    /// first reached [`SESSION_HEADROOM`] of the limit; `None` until then.
    session_limit: Option<u64>,
    sessions_refused: u64,
}

impl Slot {
    fn retiring_index(&self, generation: u32) -> Option<usize> {
        self.retiring
            .iter()
            .position(|r| r.generation == generation)
    }
}

/// The per-thread side of the runtime: one store and instance per plugin,
/// created on first use. Not `Sync`; owned by one shard thread.
pub struct Shard {
    rt: Arc<Runtime>,
    id: u32,
    slots: Vec<Slot>,
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Share of its memory limit at which an instance stops taking sessions
/// (`Shard::admit`).
pub const SESSION_HEADROOM: f64 = 0.75;
/// Fewest open sessions for which a full memory limits the sessions.
pub const SESSION_LIMIT_MIN: u64 = 64;
/// Most replaced instances of one plugin in one shard that still serve
/// their sessions (`Shard::renew_when_full`): with the live one, a plugin
/// holds at most this many plus one times its memory limit per shard.
pub const MAX_RETIRING: usize = 3;

/// A protocol switch's name and parameters are small handshake facts; this
/// bounds what one switch can make the host hold.
const MAX_SWITCH_BYTES: usize = 64 * 1024;
const MAX_SWITCH_PARAMS: usize = 64;

fn validate_switch(s: &wit::ProtocolSwitch) -> Result<(), String> {
    if s.protocol.is_empty() {
        return Err("protocol switch to an empty protocol name".into());
    }
    if s.params.len() > MAX_SWITCH_PARAMS {
        return Err(format!(
            "protocol switch with {} params (cap {MAX_SWITCH_PARAMS})",
            s.params.len()
        ));
    }
    let bytes = s.protocol.len()
        + s.params
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if bytes > MAX_SWITCH_BYTES {
        return Err(format!(
            "protocol switch of {bytes} bytes (cap {MAX_SWITCH_BYTES})"
        ));
    }
    Ok(())
}

/// What a result says beyond its messages (checked by
/// [`wire::Messages::check`]): how much it consumed, where it switches to.
fn validate_result(r: &wit::FeedResult, data_len: usize) -> Result<(), String> {
    if r.consumed as usize > data_len {
        return Err(format!("consumed {} of {} bytes", r.consumed, data_len));
    }
    if let Some(s) = &r.switch {
        validate_switch(s)?;
    }
    Ok(())
}

/// Bytes of a batch's data a call takes.
fn feed_len(kind: wit::CallKind, len: u64) -> usize {
    match kind {
        wit::CallKind::Feed | wit::CallKind::More => usize::try_from(len).unwrap_or(usize::MAX),
        wit::CallKind::Gap | wit::CallKind::End | wit::CallKind::Close => 0,
    }
}

/// Records a fault of the live instance: drops it (its sessions become
/// stale), quarantines the plugin in this shard, counts and logs. A
/// retiring instance is a store of its own and goes on serving its sessions.
fn record_fault(rt: &Runtime, shard: u32, slot: &mut Slot, p: PluginId, fault: Fault) -> Fault {
    slot.live = None;
    slot.generation = slot.generation.wrapping_add(1);
    slot.sessions_open = 0;
    slot.session_limit = None;
    slot.faults.record(&fault);
    let backoff = slot.backoff;
    let now = Instant::now();
    slot.quarantined_until = Some(now + backoff);
    slot.reset_backoff_at = Some(now + backoff * 2);
    slot.backoff = (backoff * 2)
        .min(rt.cfg.quarantine_max)
        .max(rt.cfg.quarantine_base);
    tracing::warn!(
        plugin = %rt.plugins[p.0 as usize].info.name,
        shard,
        kind = fault.kind(),
        quarantine_ms = backoff.as_millis() as u64,
        "plugin fault: {fault}"
    );
    fault
}

/// Records a fault of retiring instance `i`: drops it (its sessions become
/// stale), counts and logs. No quarantine: the live instance is another
/// store, and a retiring one is never replaced.
fn retiring_fault(
    rt: &Runtime,
    shard: u32,
    slot: &mut Slot,
    i: usize,
    p: PluginId,
    fault: Fault,
) -> Fault {
    let sessions = slot.retiring.remove(i).sessions_open;
    slot.faults.record(&fault);
    tracing::warn!(
        plugin = %rt.plugins[p.0 as usize].info.name,
        shard,
        kind = fault.kind(),
        sessions,
        "plugin fault in a retiring instance (its sessions end, the current instance goes on): {fault}"
    );
    fault
}

/// Runs `f` on the slot's retiring instance `i`.
fn call_retiring<R>(
    rt: &Runtime,
    shard: u32,
    slot: &mut Slot,
    i: usize,
    p: PluginId,
    f: impl FnOnce(&mut Store<HostState>, &DissectorPlugin) -> wasmtime::Result<R>,
) -> Result<R, Fault> {
    let live = &mut slot.retiring[i].live;
    live.store.data_mut().limiter.hit = false;
    live.store.set_epoch_deadline(rt.deadline_ticks);
    let r = f(&mut live.store, &live.bindings);
    let r = r.map_err(|e| classify(&e, &live.store));
    slot.calls += 1;
    r.map_err(|fault| retiring_fault(rt, shard, slot, i, p, fault))
}

/// A whole-batch fault of one instance as per-call answers of the calls
/// `mine` picks: the first carries the fault, the rest are stale by its
/// consequence. Calls not `mine` are stale (another instance answers them).
fn answers_of(
    r: Result<Vec<Result<wit::FeedResult, Fault>>, Fault>,
    calls: &[Call<'_>],
    mine: impl Fn(&Call<'_>) -> bool,
) -> Vec<Result<wit::FeedResult, Fault>> {
    match r {
        Ok(answers) => answers,
        Err(fault) => {
            let mut fault = Some(fault);
            calls
                .iter()
                .map(|c| match fault.take_if(|_| mine(c)) {
                    Some(f) => Err(f),
                    None => Err(Fault::Stale),
                })
                .collect()
        }
    }
}

impl Shard {
    pub fn new(rt: Arc<Runtime>) -> Self {
        let base = rt.cfg.quarantine_base;
        let slots = (0..rt.plugins.len())
            .map(|_| Slot {
                live: None,
                generation: 0,
                born: 0,
                retiring: Vec::new(),
                renewals: 0,
                quarantined_until: None,
                backoff: base,
                reset_backoff_at: None,
                calls: 0,
                faults: FaultCounts::default(),
                quarantined_calls: 0,
                instances_created: 0,
                sessions_open: 0,
                session_limit: None,
                sessions_refused: 0,
            })
            .collect();
        Shard {
            rt,
            id: NEXT_SHARD.fetch_add(1, Ordering::Relaxed),
            slots,
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.rt
    }

    fn fault(&mut self, p: PluginId, fault: Fault) -> Fault {
        record_fault(&self.rt, self.id, &mut self.slots[p.0 as usize], p, fault)
    }

    /// A fault of the instance that serves sessions of `generation`.
    fn fault_in(&mut self, p: PluginId, generation: u32, fault: Fault) -> Fault {
        let slot = &mut self.slots[p.0 as usize];
        if let Some(i) = slot.retiring_index(generation) {
            retiring_fault(&self.rt, self.id, slot, i, p, fault)
        } else {
            record_fault(&self.rt, self.id, slot, p, fault)
        }
    }

    /// Runs `f` on the plugin's instance (creating it if needed) under the
    /// per-call limits. `generation`: the session's, checked for staleness.
    #[inline]
    fn call<R>(
        &mut self,
        p: PluginId,
        generation: Option<u32>,
        f: impl FnOnce(&mut Store<HostState>, &DissectorPlugin) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let rt = &*self.rt;
        let slot = &mut self.slots[p.0 as usize];
        if let Some(g) = generation {
            if let Some(i) = slot.retiring_index(g) {
                return call_retiring(rt, self.id, slot, i, p, f);
            }
            if g != slot.generation || slot.live.is_none() {
                return Err(Fault::Stale);
            }
        }
        if let Some(until) = slot.quarantined_until {
            if Instant::now() < until {
                slot.quarantined_calls += 1;
                return Err(Fault::Quarantined);
            }
            slot.quarantined_until = None;
        }
        if slot.live.is_none() {
            let loaded = &rt.loaded[p.0 as usize];
            let mut store = rt.new_store(loaded.shared.clone());
            slot.instances_created += 1;
            match loaded.pre.instantiate(&mut store) {
                Ok(bindings) => {
                    slot.born = store.data().limiter.size;
                    slot.live = Some(Live { store, bindings });
                }
                Err(e) => {
                    let fault = classify(&e, &store);
                    return Err(record_fault(rt, self.id, slot, p, fault));
                }
            }
        }
        let live = slot.live.as_mut().expect("instantiated above");
        live.store.data_mut().limiter.hit = false;
        live.store.set_epoch_deadline(rt.deadline_ticks);
        // Not timed: two clock reads per call were 1% of the mixed
        // capture, and `Metered` samples call latency where it is shown.
        let r = f(&mut live.store, &live.bindings);
        slot.calls += 1;
        match r {
            Ok(v) => {
                if let Some(at) = slot.reset_backoff_at {
                    if Instant::now() >= at {
                        slot.backoff = rt.cfg.quarantine_base;
                        slot.reset_backoff_at = None;
                    }
                }
                Ok(v)
            }
            Err(e) => {
                let fault = classify(&e, &live.store);
                Err(record_fault(rt, self.id, slot, p, fault))
            }
        }
    }

    fn check(
        &mut self,
        p: PluginId,
        generation: u32,
        raw: wire::RawAnswer,
        data_len: usize,
    ) -> Result<wit::FeedResult, Fault> {
        let limits = wire::Limits {
            data_len,
            fields: &self.rt.loaded[p.0 as usize].fields,
            max_messages: self.rt.cfg.max_messages_per_call,
            max_body: self.rt.cfg.max_body_bytes,
            max_output: self.rt.cfg.max_output_bytes,
        };
        let messages = match wire::Messages::check(raw.messages, &limits) {
            Ok(m) => m,
            Err(m) => return Err(self.fault_in(p, generation, Fault::Malformed(m))),
        };
        let r = wit::FeedResult {
            consumed: raw.consumed,
            skip: raw.skip,
            need: raw.need,
            messages,
            error: raw.error,
            switch: raw.switch.map(Box::new),
        };
        match validate_result(&r, data_len) {
            Ok(()) => Ok(r),
            Err(m) => Err(self.fault_in(p, generation, Fault::Malformed(m))),
        }
    }

    fn session_gen(&self, s: &SessionId) -> Result<u32, Fault> {
        if s.shard != self.id {
            return Err(Fault::Stale);
        }
        Ok(s.generation)
    }

    /// Does this flow speak the plugin's protocol?
    pub fn probe(
        &mut self,
        p: PluginId,
        flow: &wit::FlowInfo,
        dir: wit::Direction,
        data: &[u8],
    ) -> Result<wit::ProbeResult, Fault> {
        self.renew_when_full(p);
        let r = self.call(p, None, |store, b| {
            b.remora_plugin_dissector()
                .call_probe(store, *flow, dir, data)
        })?;
        if let wit::ProbeResult::Yes(c) = r {
            if !(1..=100).contains(&c) {
                return Err(self.fault(p, Fault::Malformed(format!("probe confidence {c}"))));
            }
        }
        Ok(r)
    }

    /// Creates a session (one per flow), unless the instance is full (see
    /// `Shard::admit`).
    pub fn open(&mut self, p: PluginId, flow: &wit::FlowInfo) -> Result<SessionId, Fault> {
        self.admit(p)?;
        let handle = self.call(p, None, |store, b| {
            b.remora_plugin_dissector().call_open(store, *flow)
        })?;
        let slot = &mut self.slots[p.0 as usize];
        slot.sessions_open += 1;
        Ok(SessionId {
            plugin: p,
            shard: self.id,
            generation: slot.generation,
            handle,
        })
    }

    /// Replaces the plugin's instance once its memory has grown to
    /// [`SESSION_HEADROOM`] of the limit, unless [`MAX_RETIRING`] earlier
    /// ones still retire: the new instance takes new flows, the old one
    /// keeps serving the sessions it holds and is dropped when the last
    /// closes. (Several may retire at once: one long flow keeps its
    /// instance, and a guest that never frees would otherwise fill the
    /// next one without a way out.)
    ///
    /// Memory never shrinks, so it fills by what sessions hold at their
    /// peak (a flood of flows) or by what the guest never frees (some
    /// toolchains' bindings do not free a call's arguments, a whole
    /// payload per call): either way the instance would at last run out
    /// and trap, losing every session it holds. An instance born that
    /// full gains nothing from a successor and is not replaced.
    fn renew_when_full(&mut self, p: PluginId) {
        let headroom = self.rt.full_mark();
        let slot = &mut self.slots[p.0 as usize];
        let Some(live) = &slot.live else {
            return;
        };
        let memory = live.store.data().limiter.size;
        if memory < headroom || slot.born >= headroom || slot.retiring.len() >= MAX_RETIRING {
            return;
        }
        let live = slot.live.take().expect("checked above");
        let sessions = slot.sessions_open;
        if sessions > 0 {
            slot.retiring.push(Retiring {
                live,
                generation: slot.generation,
                sessions_open: sessions,
            });
        }
        slot.generation = slot.generation.wrapping_add(1);
        slot.sessions_open = 0;
        slot.session_limit = None;
        slot.renewals += 1;
        if slot.renewals.is_power_of_two() {
            tracing::info!(
                plugin = %self.rt.plugins[p.0 as usize].info.name,
                shard = self.id,
                renewals = slot.renewals,
                sessions,
                memory_mib = memory >> 20,
                "plugin instance replaced at three quarters of its memory limit; \
                 the old one serves its open sessions until they end"
            );
        }
    }

    /// Whether the plugin's instance has room for another session, after
    /// [`Shard::renew_when_full`]. Sessions live in the instance's memory,
    /// and an instance that runs out of it traps and loses every session it
    /// holds: a flood of connections to one protocol would blind its
    /// dissection of all of them. So when the memory reaches
    /// [`SESSION_HEADROOM`] of the limit and the instance cannot be
    /// replaced ([`MAX_RETIRING`] predecessors still serve sessions), the
    /// sessions open
    /// then are as many as the instance may hold, until it is replaced; the
    /// rest of the memory is left to what the open sessions still grow by.
    /// Below [`SESSION_LIMIT_MIN`] sessions the memory is not theirs to
    /// blame and nothing is refused.
    fn admit(&mut self, p: PluginId) -> Result<(), Fault> {
        self.renew_when_full(p);
        let headroom = self.rt.full_mark();
        let slot = &mut self.slots[p.0 as usize];
        let Some(live) = &slot.live else {
            return Ok(());
        };
        let memory = live.store.data().limiter.size;
        let limit = match slot.session_limit {
            Some(l) => l,
            None if memory >= headroom && slot.sessions_open >= SESSION_LIMIT_MIN => {
                tracing::warn!(
                    plugin = %self.rt.plugins[p.0 as usize].info.name,
                    shard = self.id,
                    sessions = slot.sessions_open,
                    memory_mib = memory >> 20,
                    "plugin instance nearly out of memory: further sessions are refused \
                     (their flows are counted raw, drop reason plugin_session_limit) \
                     until some of these end"
                );
                *slot.session_limit.insert(slot.sessions_open)
            }
            None => return Ok(()),
        };
        if slot.sessions_open < limit {
            return Ok(());
        }
        slot.sessions_refused += 1;
        Err(Fault::SessionLimit { limit, memory })
    }

    /// Tells a new session it takes a flow over from protocol `previous`
    /// (a `protocol-switch` of another session); call before any `feed`.
    pub fn takeover(
        &mut self,
        s: &SessionId,
        previous: &str,
        params: &[(String, String)],
    ) -> Result<(), Fault> {
        let g = self.session_gen(s)?;
        let h = s.handle;
        self.call(s.plugin, Some(g), |store, b| {
            b.remora_plugin_dissector()
                .call_takeover(store, h, previous, params)
        })
    }

    /// Runs a batch of calls on sessions of plugin `p` in one crossing of
    /// the boundary. Feeds take `data` in order, back to back. Answers each
    /// call: a call on a stale session gets `Fault::Stale` (and is not
    /// sent); a fault of the whole batch (trap, deadline, malformed output)
    /// is the `Err`, and every session of the instance is stale after it.
    ///
    /// While an instance retires (`Shard::renew_when_full`) the calls on
    /// its sessions cross into it, the others into the live instance, and
    /// a fault of either comes back as its calls' answers: the other
    /// instance's sessions are not touched by it.
    pub fn run(
        &mut self,
        p: PluginId,
        calls: &[Call<'_>],
        data: &[u8],
    ) -> Result<Vec<Result<wit::FeedResult, Fault>>, Fault> {
        let slot = &self.slots[p.0 as usize];
        let live = slot.generation;
        let shard = self.id;
        let of = |g: u32| {
            move |c: &Call<'_>| {
                let s = c.session;
                s.generation == g && s.shard == shard && s.plugin == p
            }
        };
        let mut generations: Vec<u32> = slot
            .retiring
            .iter()
            .map(|r| r.generation)
            .filter(|&g| calls.iter().any(of(g)))
            .collect();
        if generations.is_empty() {
            return self.run_instance(p, live, calls, data);
        }
        generations.push(live);
        let mut answers: Vec<Result<wit::FeedResult, Fault>> =
            calls.iter().map(|_| Err(Fault::Stale)).collect();
        for g in generations {
            let got = answers_of(self.run_instance(p, g, calls, data), calls, of(g));
            for ((a, got), c) in answers.iter_mut().zip(got).zip(calls) {
                if of(g)(c) {
                    *a = got;
                }
            }
        }
        Ok(answers)
    }

    /// [`Shard::run`] on the instance that serves sessions of
    /// `generation`; calls on other sessions are answered stale.
    fn run_instance(
        &mut self,
        p: PluginId,
        generation: u32,
        calls: &[Call<'_>],
        data: &[u8],
    ) -> Result<Vec<Result<wit::FeedResult, Fault>>, Fault> {
        let mut answers: Vec<Result<wit::FeedResult, Fault>> = Vec::with_capacity(calls.len());
        // The calls sent, encoded, and what checking their answers needs.
        let mut encoded = Vec::with_capacity(calls.len() * wire::CALL_BYTES);
        let mut sent = Vec::with_capacity(calls.len());
        // The data of the calls sent; copied only when a stale call's bytes
        // must be cut out.
        let mut compact: Option<Vec<u8>> = None;
        let mut pos = 0usize;
        for c in calls {
            let len = feed_len(c.kind, c.len);
            let Some(bytes) = data.get(pos..pos.saturating_add(len)) else {
                return Err(Fault::Malformed(format!(
                    "batch feeds {len} bytes at offset {pos} of {} bytes of data",
                    data.len()
                )));
            };
            let start = pos;
            pos += len;
            let s = c.session;
            if s.plugin != p || s.shard != self.id || s.generation != generation {
                answers.push(Err(Fault::Stale));
                compact.get_or_insert_with(|| data[..start].to_vec());
                continue;
            }
            if let Some(kept) = &mut compact {
                kept.extend_from_slice(bytes);
            }
            answers.push(Ok(wit::FeedResult::default()));
            wire::put_call(&mut encoded, s.handle, c.kind, c.dir, c.base, c.len);
            sent.push((s.handle, c.kind, c.dir, len));
        }
        if sent.is_empty() {
            return Ok(answers);
        }
        let payload: &[u8] = compact.as_deref().unwrap_or(&data[..pos]);
        let raw = self.call(p, Some(generation), |store, b| {
            b.remora_plugin_dissector()
                .call_run(store, &encoded, payload)
        })?;
        let mut raw = wire::Answers::new(raw.into());
        // A `more` call's input is what the direction's earlier call left
        // plus its own bytes: bounded by every byte offered to the
        // direction in this batch.
        let mut offered: Vec<(u32, wit::Direction, usize)> = Vec::new();
        let batch = sent.len();
        let mut sent = sent.iter();
        for answer in answers.iter_mut().filter(|a| a.is_ok()) {
            let &(session, kind, dir, own) = sent.next().expect("one answer per call sent");
            let r = match raw.next_answer() {
                Ok(r) => r,
                Err(m) => return Err(self.fault_in(p, generation, Fault::Malformed(m))),
            };
            let prior = offered
                .iter_mut()
                .find(|(s, d, _)| *s == session && *d == dir);
            let bound = match (kind, prior) {
                (wit::CallKind::More, Some(p)) => {
                    p.2 = p.2.saturating_add(own);
                    p.2
                }
                (wit::CallKind::Feed, Some(p)) => {
                    p.2 = own;
                    own
                }
                (wit::CallKind::Feed | wit::CallKind::More, None) => {
                    offered.push((session, dir, own));
                    own
                }
                (_, _) => own,
            };
            if kind == wit::CallKind::Close {
                let slot = &mut self.slots[p.0 as usize];
                match slot.retiring_index(generation) {
                    Some(i) => {
                        let r = &mut slot.retiring[i];
                        r.sessions_open = r.sessions_open.saturating_sub(1);
                    }
                    None => slot.sessions_open = slot.sessions_open.saturating_sub(1),
                }
            }
            *answer = Ok(self.check(p, generation, r, bound)?);
        }
        if raw.left() > 0 {
            return Err(self.fault_in(
                p,
                generation,
                Fault::Malformed(format!(
                    "{} bytes after the answers of a batch of {batch} calls",
                    raw.left(),
                )),
            ));
        }
        // A retiring instance whose last session closed is done.
        let slot = &mut self.slots[p.0 as usize];
        if let Some(i) = slot.retiring_index(generation) {
            if slot.retiring[i].sessions_open == 0 {
                slot.retiring.remove(i);
            }
        }
        Ok(answers)
    }

    /// One call on its own: a batch of one.
    fn run_one(
        &mut self,
        s: &SessionId,
        kind: wit::CallKind,
        dir: wit::Direction,
        base: u64,
        len: u64,
        data: &[u8],
    ) -> Result<wit::FeedResult, Fault> {
        let call = Call {
            session: s,
            kind,
            dir,
            base,
            len,
        };
        self.run(s.plugin, std::slice::from_ref(&call), data)?
            .pop()
            .expect("one answer per call")
    }

    /// New bytes of `dir` at stream offset `base`.
    pub fn feed(
        &mut self,
        s: &SessionId,
        dir: wit::Direction,
        base: u64,
        data: &[u8],
    ) -> Result<wit::FeedResult, Fault> {
        self.run_one(s, wit::CallKind::Feed, dir, base, data.len() as u64, data)
    }

    /// `len` bytes of `dir` were lost.
    pub fn gap(
        &mut self,
        s: &SessionId,
        dir: wit::Direction,
        len: u64,
    ) -> Result<wit::FeedResult, Fault> {
        self.run_one(s, wit::CallKind::Gap, dir, 0, len, &[])
    }

    /// `dir` ended.
    pub fn end(&mut self, s: &SessionId, dir: wit::Direction) -> Result<wit::FeedResult, Fault> {
        self.run_one(s, wit::CallKind::End, dir, 0, 0, &[])
    }

    /// Ends the session. Stale ids and errors are ignored (a trap in the
    /// plugin is still counted as a fault).
    pub fn close(&mut self, s: &SessionId) {
        let _ = self.run_one(s, wit::CallKind::Close, wit::Direction::ToServer, 0, 0, &[]);
    }

    /// Whether the plugin is quarantined in this shard right now.
    pub fn is_quarantined(&self, p: PluginId) -> bool {
        self.slots[p.0 as usize]
            .quarantined_until
            .is_some_and(|t| Instant::now() < t)
    }

    /// Instances replaced, all plugins.
    pub fn renewals(&self) -> u64 {
        self.slots.iter().map(|s| s.renewals).sum()
    }

    pub fn counters(&self) -> Vec<PluginCounters> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| PluginCounters {
                plugin: PluginId(i as u16),
                name: self.rt.plugins[i].info.name.clone(),
                calls: s.calls,
                faults: s.faults,
                quarantined_calls: s.quarantined_calls,
                instances_created: s.instances_created,
                renewals: s.renewals,
                sessions_refused: s.sessions_refused,
                quarantined_until: s.quarantined_until.filter(|t| Instant::now() < *t),
                sessions_open: s.sessions_open
                    + s.retiring.iter().map(|r| r.sessions_open).sum::<u64>(),
            })
            .collect()
    }
}

// `Runtime` is shared by shard threads; a `Shard` moves into its thread.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Runtime>();
    send::<Shard>();
    send::<SessionId>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use wit::*;

    /// Plugins cap bodies at the SDK's limit; the host must take that much.
    #[test]
    fn the_default_body_limit_is_what_the_sdk_keeps_at_most() {
        assert_eq!(RuntimeConfig::default().max_body_bytes, MAX_BODY_BYTES);
        assert_eq!(MAX_BODY_BYTES, remora_sdk::MAX_BODY_BYTES);
    }

    #[test]
    fn addresses_cross_as_big_endian_numbers_and_come_back_the_same() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(IpAddress::from(v4), IpAddress::V4(0x0a00_0001));
        let v6: IpAddr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().into();
        assert_eq!(
            IpAddress::from(v6),
            IpAddress::V6((0x2001_0db8_0000_0000, 1))
        );
        for a in [
            v4,
            v6,
            Ipv6Addr::UNSPECIFIED.into(),
            Ipv6Addr::from_bits(u128::MAX).into(),
        ] {
            assert_eq!(IpAddr::from(IpAddress::from(a)), a);
        }
    }

    fn info(fields: &[(u16, &str)]) -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            version: "1".into(),
            protocols: vec![ProtocolDecl {
                name: "P".into(),
                flag: "p".into(),
                transport: Transport::Tcp,
                ports: vec![],
                request_summary: String::new(),
                response_summary: String::new(),
            }],
            fields: fields
                .iter()
                .map(|&(id, name)| FieldDecl {
                    id,
                    name: name.into(),
                    type_: FieldType::Str,
                    top_level: false,
                    doc: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn describe_validation() {
        let bits = validate_info(&info(&[(1, "a"), (65535, "b")])).unwrap();
        assert_eq!(bits[0], 2);
        assert_eq!(bits[1023], 1 << 63);
        let e = |i: PluginInfo| validate_info(&i).unwrap_err().to_string();
        assert!(e(info(&[(1, "a"), (1, "b")])).contains("field id 1 declared twice"));
        assert!(e(info(&[(1, "a"), (2, "a")])).contains("`a` declared twice"));
        assert!(e(info(&[(1, " ")])).contains("empty name"));
        let mut i = info(&[]);
        i.name.clear();
        assert!(e(i).contains("empty plugin name"));
        let mut i = info(&[]);
        i.protocols[0].flag.clear();
        assert!(e(i).contains("empty name or flag"));
    }

    #[test]
    fn result_validation() {
        let res = |consumed, switch| FeedResult {
            consumed,
            skip: 0,
            need: 0,
            messages: Messages::default(),
            error: None,
            switch,
        };
        assert!(validate_result(&res(10, None), 10).is_ok());
        assert_eq!(
            validate_result(&res(11, None), 10).unwrap_err(),
            "consumed 11 of 10 bytes"
        );
        let empty = ProtocolSwitch {
            protocol: String::new(),
            to_server: 0,
            to_client: 0,
            params: vec![],
        };
        assert!(validate_result(&res(0, Some(Box::new(empty))), 10)
            .unwrap_err()
            .contains("empty protocol"));
    }

    #[test]
    fn switch_validation() {
        let switch = |protocol: &str, params: Vec<(String, String)>| ProtocolSwitch {
            protocol: protocol.into(),
            to_server: 1,
            to_client: 2,
            params,
        };
        assert!(validate_switch(&switch("WebSocket", vec![("a".into(), "b".into())])).is_ok());
        assert!(validate_switch(&switch("", vec![]))
            .unwrap_err()
            .contains("empty protocol"));
        let many = vec![("k".to_string(), "v".to_string()); MAX_SWITCH_PARAMS + 1];
        assert!(validate_switch(&switch("x", many))
            .unwrap_err()
            .contains("65 params"));
        let big = vec![("k".to_string(), "v".repeat(MAX_SWITCH_BYTES))];
        assert!(validate_switch(&switch("x", big))
            .unwrap_err()
            .contains("bytes (cap"));
    }

    #[test]
    fn file_classification() {
        assert!(classify_bytes(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(classify_bytes(b"\0asm\x01\0\0\0")
            .unwrap_err()
            .to_string()
            .contains("core"));
        assert!(classify_bytes(b"MZ").is_err());
    }
}
