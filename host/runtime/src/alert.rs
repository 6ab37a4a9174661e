//! Alert plugins: components exporting `remora:plugin/alerter` (world
//! `alert-plugin`). They share the [`Runtime`]'s engine, linker, component
//! cache and limits with dissectors: every call runs under the same CPU
//! deadline, memory cap and stack cap, and a fault drops the instance, is
//! counted, and quarantines the plugin with exponential back-off.
//!
//! An alert plugin keeps state across calls (windows, counters), so it has
//! one instance, owned by one [`AlertInstance`]; the detector that drives it
//! runs on one thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};
use wasmtime::Store;

pub use crate::Fault;
use crate::{
    check_contract, classify, classify_bytes, describe_error, FaultCounts, HostState, PluginShared,
    Runtime,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "alert-plugin",
        // Same `host` interface as dissectors: the linker already provides it.
        with: { "remora:plugin/host": crate::bindings::remora::plugin::host },
        additional_derives: [PartialEq],
    });
}

use bindings::{AlertPlugin as Bindings, AlertPluginPre};

/// Host-side types of `remora:plugin/alert-types`.
pub mod wit {
    pub use super::bindings::remora::plugin::alert_types::{
        Alert, AlertEntry, AlertPluginInfo, Endpoint, EntryBatch, EntryField, EntryValue, Severity,
    };
}

/// Most alerts one call may return; more breaks the contract.
pub const MAX_ALERTS_PER_CALL: usize = 4096;
/// Bytes of strings (rule, summary, labels) one call may return.
pub const MAX_ALERT_OUTPUT_BYTES: usize = 4 << 20;
/// Longest prefilter accepted from `describe`.
const MAX_PREFILTER_BYTES: usize = 16 << 10;

/// A loaded, validated alert plugin. Instantiate it with [`AlertInstance::new`].
pub struct LoadedAlertPlugin {
    pub path: std::path::PathBuf,
    /// sha256 of the wasm file, hex.
    pub sha256: String,
    /// What `describe` returned at load time.
    pub info: wit::AlertPluginInfo,
    pub from_cache: bool,
    pre: AlertPluginPre<HostState>,
    shared: Arc<PluginShared>,
}

impl std::fmt::Debug for LoadedAlertPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedAlertPlugin")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn validate_info(info: &wit::AlertPluginInfo) -> anyhow::Result<()> {
    if info.name.trim().is_empty() {
        bail!("describe(): empty plugin name");
    }
    if let Some(p) = &info.prefilter {
        if p.len() > MAX_PREFILTER_BYTES {
            bail!(
                "describe(): prefilter of {} bytes (cap {MAX_PREFILTER_BYTES})",
                p.len()
            );
        }
    }
    Ok(())
}

impl Runtime {
    /// Compiles (or loads from the cache), links, instantiates once to call
    /// `describe`, and validates an alert plugin. Unlike dissectors, alert
    /// plugins are not registered in the runtime: the caller owns them.
    pub fn load_alert_file(&self, path: &std::path::Path) -> anyhow::Result<LoadedAlertPlugin> {
        self.load_alert_inner(path)
            .with_context(|| format!("alert plugin {}", path.display()))
    }

    fn load_alert_inner(&self, path: &std::path::Path) -> anyhow::Result<LoadedAlertPlugin> {
        let bytes = std::fs::read(path).context("reading the file")?;
        classify_bytes(&bytes)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let (component, from_cache) = self.compile(&bytes, &sha256)?;
        check_contract(&self.engine, &component, "alerter")?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("linking")?;
        let pre = AlertPluginPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("finding the alerter exports")?;

        let mut store = self.new_store(Arc::new(PluginShared {
            name: path.display().to_string(),
            config: Default::default(),
        }));
        let inst = pre
            .instantiate(&mut store)
            .map_err(|e| describe_error(e, &store))?;
        let info = inst
            .remora_plugin_alerter()
            .call_describe(&mut store)
            .map_err(|e| describe_error(e, &store))
            .context("calling describe()")?;
        drop(store);
        validate_info(&info)?;

        let mut config = self.cfg.plugin_config.get("*").cloned().unwrap_or_default();
        if let Some(own) = self.cfg.plugin_config.get(&info.name) {
            config.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        tracing::info!(
            plugin = %info.name,
            version = %info.version,
            path = %path.display(),
            from_cache,
            "loaded alert plugin"
        );
        Ok(LoadedAlertPlugin {
            path: path.to_path_buf(),
            sha256,
            shared: Arc::new(PluginShared {
                name: info.name.clone(),
                config,
            }),
            info,
            from_cache,
            pre,
        })
    }
}

/// Counters of one alert plugin instance.
#[derive(Clone, Debug, Default)]
pub struct AlertCounters {
    /// Calls that reached the plugin (describe excluded).
    pub calls: u64,
    /// Time spent inside those calls, in nanoseconds.
    pub call_ns: u64,
    pub faults: FaultCounts,
    /// Calls refused because the plugin was quarantined.
    pub quarantined_calls: u64,
    pub instances_created: u64,
    /// Instances replaced between calls because their memory kept growing
    /// (see [`RENEW_AT`]); each loses the plugin's state, not a call.
    pub renewals: u64,
    /// Alerts returned by successful calls.
    pub alerts: u64,
}

/// Share of the memory limit at which an instance whose memory has grown
/// since its first call is replaced after the call that took it there.
/// Some guest toolchains never free what the host lowers into them:
/// componentize-js 0.23 keeps every export's argument buffers (upstream
/// ComponentizeJS#350), ~350 bytes per entry delivered to the JavaScript
/// example, so any JS plugin reaches its limit in time. Faulting there
/// loses the batch in flight and quarantines the plugin (every entry
/// offered meanwhile is lost too); a fresh instance between calls loses
/// only the state the plugin built. An instance that starts big and stays
/// so is not replaced. The same mark as a dissector instance's
/// ([`crate::SESSION_HEADROOM`], `Runtime::full_mark`).
pub const RENEW_AT: f64 = crate::SESSION_HEADROOM;

/// Calls an instance serves before it may be replaced, so one whose first
/// calls grow it to the mark is not replaced over and over.
pub const RENEW_MIN_CALLS: u64 = 16;

/// The one live instance of an alert plugin, with its fault state.
pub struct AlertInstance {
    rt: Arc<Runtime>,
    plugin: Arc<LoadedAlertPlugin>,
    live: Option<(Store<HostState>, Bindings)>,
    /// Calls the live instance served, and its memory after the first.
    live_calls: u64,
    first_call_memory: usize,
    quarantined_until: Option<Instant>,
    backoff: Duration,
    reset_backoff_at: Option<Instant>,
    counters: AlertCounters,
}

impl std::fmt::Debug for AlertInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertInstance")
            .field("plugin", &self.plugin.info.name)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl AlertInstance {
    /// Instantiation is lazy: the first call creates the instance.
    pub fn new(rt: Arc<Runtime>, plugin: Arc<LoadedAlertPlugin>) -> Self {
        let backoff = rt.cfg.quarantine_base;
        AlertInstance {
            rt,
            plugin,
            live: None,
            live_calls: 0,
            first_call_memory: 0,
            quarantined_until: None,
            backoff,
            reset_backoff_at: None,
            counters: AlertCounters::default(),
        }
    }

    pub fn plugin(&self) -> &LoadedAlertPlugin {
        &self.plugin
    }

    pub fn counters(&self) -> &AlertCounters {
        &self.counters
    }

    /// Whether the plugin is in back-off right now.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined_until.is_some_and(|t| Instant::now() < t)
    }

    /// A batch of entries; returns the alerts it raised.
    pub fn on_entries(&mut self, batch: &wit::EntryBatch) -> Result<Vec<wit::Alert>, Fault> {
        let alerts =
            self.call(|store, b| b.remora_plugin_alerter().call_on_entries(store, batch))?;
        self.check(alerts)
    }

    /// The periodic call; `now_us` is capture time when reading a file.
    pub fn on_tick(&mut self, now_us: i64) -> Result<Vec<wit::Alert>, Fault> {
        let alerts = self.call(|store, b| b.remora_plugin_alerter().call_on_tick(store, now_us))?;
        self.check(alerts)
    }

    fn check(&mut self, alerts: Vec<wit::Alert>) -> Result<Vec<wit::Alert>, Fault> {
        match validate_alerts(&alerts) {
            Ok(()) => {
                self.counters.alerts += alerts.len() as u64;
                Ok(alerts)
            }
            Err(m) => Err(self.fault(Fault::Malformed(m))),
        }
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>, &Bindings) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        if let Some(until) = self.quarantined_until {
            if Instant::now() < until {
                self.counters.quarantined_calls += 1;
                return Err(Fault::Quarantined);
            }
            self.quarantined_until = None;
        }
        if self.live.is_none() {
            let mut store = self.rt.new_store(self.plugin.shared.clone());
            self.counters.instances_created += 1;
            match self.plugin.pre.instantiate(&mut store) {
                Ok(b) => {
                    self.live = Some((store, b));
                    self.live_calls = 0;
                }
                Err(e) => {
                    let fault = classify(&e, &store);
                    return Err(self.fault(fault));
                }
            }
        }
        let (store, bindings) = self.live.as_mut().expect("instantiated above");
        store.data_mut().limiter.hit = false;
        store.set_epoch_deadline(self.rt.deadline_ticks);
        let t0 = Instant::now();
        let r = f(store, bindings);
        self.counters.call_ns += t0.elapsed().as_nanos() as u64;
        self.counters.calls += 1;
        match r {
            Ok(v) => {
                if self.reset_backoff_at.is_some_and(|at| Instant::now() >= at) {
                    self.backoff = self.rt.cfg.quarantine_base;
                    self.reset_backoff_at = None;
                }
                let memory = store.data().limiter.size;
                self.live_calls += 1;
                if self.live_calls == 1 {
                    self.first_call_memory = memory;
                }
                self.renew_if_growing(memory);
                Ok(v)
            }
            Err(e) => {
                let fault = classify(&e, store);
                Err(self.fault(fault))
            }
        }
    }

    /// Replaces an instance whose memory grew to [`RENEW_AT`] of the limit.
    fn renew_if_growing(&mut self, memory: usize) {
        if memory < self.rt.full_mark()
            || memory <= self.first_call_memory
            || self.live_calls < RENEW_MIN_CALLS
        {
            return;
        }
        self.live = None;
        self.counters.renewals += 1;
        let n = self.counters.renewals;
        if n.is_power_of_two() {
            tracing::warn!(
                plugin = %self.plugin.info.name,
                memory_mib = memory >> 20,
                limit_mib = self.rt.cfg.memory_limit >> 20,
                calls = self.live_calls,
                renewals = n,
                "alert plugin instance kept growing (its memory was {} MiB after its first \
                 call): replaced by a fresh one before it reached the limit; the plugin's \
                 state starts over",
                self.first_call_memory >> 20
            );
        }
    }

    /// Drops the instance (its state is lost), counts, logs, quarantines.
    fn fault(&mut self, fault: Fault) -> Fault {
        self.live = None;
        self.counters.faults.record(&fault);
        let backoff = self.backoff;
        let now = Instant::now();
        self.quarantined_until = Some(now + backoff);
        self.reset_backoff_at = Some(now + backoff * 2);
        self.backoff = (backoff * 2)
            .min(self.rt.cfg.quarantine_max)
            .max(self.rt.cfg.quarantine_base);
        tracing::warn!(
            plugin = %self.plugin.info.name,
            kind = fault.kind(),
            quarantine_ms = backoff.as_millis() as u64,
            "alert plugin fault: {fault}"
        );
        fault
    }
}

/// Bounds what one call can make the host hold.
fn validate_alerts(alerts: &[wit::Alert]) -> Result<(), String> {
    if alerts.len() > MAX_ALERTS_PER_CALL {
        return Err(format!(
            "{} alerts in one call (cap {MAX_ALERTS_PER_CALL})",
            alerts.len()
        ));
    }
    let mut bytes = 0usize;
    for a in alerts {
        if a.rule.trim().is_empty() {
            return Err("an alert with an empty rule name".into());
        }
        bytes += a.rule.len()
            + a.summary.len()
            + a.entry_ids.len() * 8
            + a.labels
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
    }
    if bytes > MAX_ALERT_OUTPUT_BYTES {
        return Err(format!(
            "{bytes} bytes of alerts in one call (cap {MAX_ALERT_OUTPUT_BYTES})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str) -> wit::Alert {
        wit::Alert {
            rule: rule.into(),
            severity: wit::Severity::Warning,
            summary: "s".into(),
            entry_ids: vec![1],
            labels: vec![("k".into(), "v".into())],
        }
    }

    #[test]
    fn alert_output_is_bounded() {
        assert!(validate_alerts(&[alert("r")]).is_ok());
        assert!(validate_alerts(&[alert(" ")])
            .unwrap_err()
            .contains("empty rule"));
        let many = vec![alert("r"); MAX_ALERTS_PER_CALL + 1];
        assert!(validate_alerts(&many).unwrap_err().contains("4097 alerts"));
        let mut big = alert("r");
        big.summary = "x".repeat(MAX_ALERT_OUTPUT_BYTES);
        assert!(validate_alerts(&[big])
            .unwrap_err()
            .contains("bytes of alerts"));
    }
}
