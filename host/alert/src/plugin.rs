//! [`PluginDetector`]: a [`Detector`] backed by a Wasm alert plugin
//! (`remora:plugin/alerter`). The host applies the plugin's prefilter, turns
//! stored entries into `entry-batch`es of at most [`BATCH_MAX`] entries, and
//! turns the plugin's alerts into [`Alert`]s. A plugin fault (deadline,
//! memory, trap, malformed output) is contained by the runtime: the batch is
//! lost (counted), the plugin is quarantined, and later batches go to a fresh
//! instance once the back-off is over.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use remora_core::Timestamp;
use remora_entry::{Catalog, Entry, Message, ValueRef};
use remora_filter::{Filter, Variables};
use remora_runtime::alert::{wit, AlertCounters, AlertInstance, LoadedAlertPlugin};
use remora_runtime::Runtime;
use remora_store::StoredEntry;

use crate::throttle::{Throttle, Verdict};
use crate::{Alert, Detector, DetectorStats, Severity};

/// Distinct rule names of one plugin that get their own throttle.
pub const MAX_THROTTLED_RULES: usize = 1024;

/// A prefilter compiled for one catalog, or why it did not compile.
type CompiledPrefilter = Result<Arc<Filter>, String>;

/// Most entries sent in one `on-entries` call.
pub const BATCH_MAX: usize = 256;
/// Compiled prefilters kept, one per catalog (catalogs change rarely).
const FILTER_CACHE: usize = 8;

/// Host-side counters of a [`PluginDetector`] (the runtime's are in
/// [`PluginDetector::runtime_counters`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginDetectorCounters {
    /// Entries offered to the detector.
    pub entries_seen: u64,
    /// Entries the prefilter let through and were sent.
    pub entries_sent: u64,
    pub batches: u64,
    /// Entries in batches lost to a fault or a quarantine.
    pub entries_lost: u64,
    /// Ticks lost to a fault or a quarantine.
    pub ticks_lost: u64,
    /// Entries dropped because the prefilter does not compile against their catalog.
    pub prefilter_errors: u64,
    /// Alerts withheld by the plugin's `rate_limit` or `dedupe`.
    pub alerts_withheld: u64,
}

pub struct PluginDetector {
    name: String,
    instance: AlertInstance,
    prefilter: Option<String>,
    /// By catalog identity: the compiled prefilter, or why it does not compile.
    filters: Vec<(Arc<Catalog>, CompiledPrefilter)>,
    tick_us: i64,
    last_tick: Option<Timestamp>,
    counters: PluginDetectorCounters,
    /// `rate_limit` and `dedupe` from the alert config, applied per rule
    /// name the plugin raises (de-duplicating on the summary).
    limits: (Option<Duration>, Option<Duration>),
    throttles: HashMap<String, Throttle>,
}

impl std::fmt::Debug for PluginDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDetector")
            .field("name", &self.name)
            .field("prefilter", &self.prefilter)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl PluginDetector {
    /// Loads the plugin at `path` in `rt` (same engine, cache and limits as
    /// dissectors).
    /// The error names the file and says why (with its causes).
    pub fn load(rt: Arc<Runtime>, path: &std::path::Path) -> Result<Self, String> {
        let plugin = Arc::new(rt.load_alert_file(path).map_err(|e| format!("{e:#}"))?);
        Ok(Self::new(rt, plugin))
    }

    pub fn new(rt: Arc<Runtime>, plugin: Arc<LoadedAlertPlugin>) -> Self {
        let info = &plugin.info;
        PluginDetector {
            name: info.name.clone(),
            prefilter: info.prefilter.clone().filter(|p| !p.trim().is_empty()),
            tick_us: i64::from(info.tick_ms) * 1000,
            filters: Vec::new(),
            last_tick: None,
            counters: PluginDetectorCounters::default(),
            instance: AlertInstance::new(rt, plugin),
            limits: (None, None),
            throttles: HashMap::new(),
        }
    }

    /// At most one alert per rule per `rate_limit`; the same rule and
    /// summary once per `dedupe` (capture time, like rule alerts).
    pub fn with_limits(mut self, rate_limit: Option<Duration>, dedupe: Option<Duration>) -> Self {
        self.limits = (rate_limit, dedupe);
        self
    }

    /// Withholds (and counts) what the limits say; rule names beyond
    /// [`MAX_THROTTLED_RULES`] pass unthrottled rather than grow the table.
    fn throttle(&mut self, alerts: Vec<Alert>) -> Vec<Alert> {
        let (rate_limit, dedupe) = self.limits;
        if rate_limit.is_none() && dedupe.is_none() {
            return alerts;
        }
        let mut out = Vec::with_capacity(alerts.len());
        for a in alerts {
            let known = self.throttles.contains_key(&a.rule);
            if !known && self.throttles.len() >= MAX_THROTTLED_RULES {
                out.push(a);
                continue;
            }
            let t = self
                .throttles
                .entry(a.rule.clone())
                .or_insert_with(|| Throttle::new(rate_limit, dedupe));
            match t.admit(a.at, &a.summary) {
                Verdict::Admit => out.push(a),
                _ => self.counters.alerts_withheld += 1,
            }
        }
        out
    }

    pub fn counters(&self) -> &PluginDetectorCounters {
        &self.counters
    }

    /// Calls, faults by kind, quarantined calls, instances created.
    pub fn runtime_counters(&self) -> &AlertCounters {
        self.instance.counters()
    }

    pub fn prefilter(&self) -> Option<&str> {
        self.prefilter.as_deref()
    }

    fn filter_for(&mut self, catalog: &Arc<Catalog>) -> Result<Option<Arc<Filter>>, String> {
        let Some(src) = &self.prefilter else {
            return Ok(None);
        };
        if let Some((_, f)) = self.filters.iter().find(|(c, _)| Arc::ptr_eq(c, catalog)) {
            return f.clone().map(Some);
        }
        let compiled = Filter::compile(src, &Variables::new(&[catalog]))
            .map(Arc::new)
            .map_err(|e| format!("prefilter of alert plugin `{}`: {e}", self.name));
        if let Err(e) = &compiled {
            tracing::warn!(plugin = %self.name, "{e}");
        }
        if self.filters.len() >= FILTER_CACHE {
            let _evicted = self.filters.remove(0);
        }
        self.filters.push((catalog.clone(), compiled.clone()));
        compiled.map(Some)
    }

    fn send(&mut self, batch: &[Arc<StoredEntry>]) -> Vec<Alert> {
        if batch.is_empty() {
            return Vec::new();
        }
        let wit_batch = entry_batch(batch);
        self.counters.batches += 1;
        self.counters.entries_sent += batch.len() as u64;
        match self.instance.on_entries(&wit_batch) {
            // Most calls raise nothing; index the batch only when one did.
            Ok(alerts) if alerts.is_empty() => Vec::new(),
            Ok(alerts) => {
                let at: HashMap<u64, Timestamp> = batch
                    .iter()
                    .map(|e| (e.entry.id, e.entry.timestamp()))
                    .collect();
                let newest = batch
                    .iter()
                    .map(|e| e.entry.timestamp())
                    .max()
                    .unwrap_or_default();
                alerts
                    .into_iter()
                    .map(|a| {
                        let ts = a
                            .entry_ids
                            .iter()
                            .filter_map(|id| at.get(id).copied())
                            .max()
                            .unwrap_or(newest);
                        self.alert(a, ts)
                    })
                    .collect()
            }
            Err(_fault) => {
                // The runtime counted and logged the fault.
                self.counters.entries_lost += batch.len() as u64;
                Vec::new()
            }
        }
    }

    fn alert(&self, a: wit::Alert, at: Timestamp) -> Alert {
        Alert {
            id: 0,
            rule: a.rule,
            source: self.name.clone(),
            severity: match a.severity {
                wit::Severity::Info => Severity::Info,
                wit::Severity::Warning => Severity::Warning,
                wit::Severity::Critical => Severity::Critical,
            },
            summary: a.summary,
            entry_ids: a.entry_ids,
            labels: a.labels,
            at,
        }
    }
}

impl Detector for PluginDetector {
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> Option<DetectorStats> {
        let (c, r) = (&self.counters, self.instance.counters());
        let f = &r.faults;
        Some(DetectorStats {
            entries_seen: c.entries_seen,
            entries_sent: c.entries_sent,
            entries_lost: c.entries_lost,
            ticks_lost: c.ticks_lost,
            calls: r.calls,
            call_ns: r.call_ns,
            faults: [
                ("deadline", f.deadline),
                ("memory", f.memory),
                ("stack", f.stack),
                ("trap", f.trap),
                ("malformed", f.malformed),
                ("capacity", f.capacity),
            ],
            quarantined_calls: r.quarantined_calls,
            instances_created: r.instances_created,
            renewals: r.renewals,
            alerts_withheld: c.alerts_withheld,
        })
    }

    fn on_entries(&mut self, entries: &[Arc<StoredEntry>]) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut batch: Vec<Arc<StoredEntry>> = Vec::with_capacity(BATCH_MAX.min(entries.len()));
        for e in entries {
            self.counters.entries_seen += 1;
            let pass = match self.filter_for(&e.catalog) {
                Ok(None) => true,
                Ok(Some(f)) => f.matches(&e.catalog, &e.entry),
                Err(_) => {
                    self.counters.prefilter_errors += 1;
                    false
                }
            };
            if !pass {
                continue;
            }
            batch.push(e.clone());
            if batch.len() == BATCH_MAX {
                out.extend(self.send(&batch));
                batch.clear();
            }
        }
        out.extend(self.send(&batch));
        // Plugins without ticks still let old de-duplication marks go.
        if !self.throttles.is_empty() {
            if let Some(newest) = entries.iter().map(|e| e.entry.timestamp()).max() {
                for t in self.throttles.values_mut() {
                    t.expire(newest);
                }
            }
        }
        self.throttle(out)
    }

    fn on_tick(&mut self, now: Timestamp) -> Vec<Alert> {
        if self.tick_us <= 0 {
            return Vec::new();
        }
        match self.last_tick {
            Some(t) if now.0 - t.0 < self.tick_us => return Vec::new(),
            _ => self.last_tick = Some(now),
        }
        for t in self.throttles.values_mut() {
            t.expire(now);
        }
        match self.instance.on_tick(now.0) {
            Ok(alerts) => {
                let alerts = alerts.into_iter().map(|a| self.alert(a, now)).collect();
                self.throttle(alerts)
            }
            Err(_) => {
                self.counters.ticks_lost += 1;
                Vec::new()
            }
        }
    }
}

/// Where a name comes from: a field id or a protocol index of one plugin in
/// one catalog (by address: every entry of a catalog shares its `Arc`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum NameKey {
    Field(usize, u16, u16),
    Protocol(usize, u16, u16),
}

/// Interns names so each crosses the boundary once per batch. Entries of a
/// batch mostly share a few fields, so the index is looked up by where the
/// name comes from (integers), and a name's text is hashed once per batch.
#[derive(Default)]
struct Names {
    list: Vec<String>,
    by_text: ahash::AHashMap<String, u32>,
    /// `None`: a field the catalog does not name.
    by_key: ahash::AHashMap<NameKey, Option<u32>>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.by_text.get(name) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(name.to_owned());
        self.by_text.insert(name.to_owned(), i);
        i
    }

    fn field(&mut self, catalog: &Catalog, plugin: u16, id: u16) -> Option<u32> {
        let key = NameKey::Field(catalog as *const Catalog as usize, plugin, id);
        if let Some(&i) = self.by_key.get(&key) {
            return i;
        }
        let name = catalog
            .plugins
            .get(plugin as usize)
            .and_then(|p| p.field(id))
            .map(|f| f.name.as_str());
        let i = name.map(|n| self.intern(n));
        self.by_key.insert(key, i);
        i
    }

    /// The protocol's filter flag ("" when the catalog does not have it).
    fn protocol(&mut self, catalog: &Catalog, plugin: u16, protocol: u16) -> u32 {
        let key = NameKey::Protocol(catalog as *const Catalog as usize, plugin, protocol);
        if let Some(&Some(i)) = self.by_key.get(&key) {
            return i;
        }
        let flag = catalog
            .plugins
            .get(plugin as usize)
            .and_then(|p| p.protocols.get(protocol as usize))
            .map_or("", |p| p.flag.as_str());
        let i = self.intern(flag);
        self.by_key.insert(key, Some(i));
        i
    }
}

/// Endpoint addresses as text, formatted once per address per batch.
#[derive(Default)]
struct Addresses(ahash::AHashMap<std::net::IpAddr, String>);

impl Addresses {
    fn endpoint(&mut self, e: &remora_core::Endpoint) -> wit::Endpoint {
        let ip = self.0.entry(e.ip).or_insert_with(|| e.ip.to_string());
        wit::Endpoint {
            name: ip.clone(),
            ip: ip.clone(),
            port: e.port,
        }
    }
}

fn fields(
    catalog: &Catalog,
    entry: &Entry,
    m: &Message,
    names: &mut Names,
) -> Vec<wit::EntryField> {
    m.fields
        .iter()
        .filter_map(|f| {
            // Fields the catalog does not name cannot be addressed by a plugin.
            let name = names.field(catalog, entry.plugin, f.id)?;
            Some(wit::EntryField {
                name,
                value: match f.value {
                    ValueRef::Bool(b) => wit::EntryValue::Boolean(b),
                    ValueRef::Int(i) => wit::EntryValue::Int(i),
                    ValueRef::Float(x) => wit::EntryValue::Float(x),
                    ValueRef::Str(s) => wit::EntryValue::Str(s.to_owned()),
                    ValueRef::Bytes(b) => wit::EntryValue::Bytes(b.to_vec()),
                    ValueRef::Pair(k, v) => wit::EntryValue::Pair((k.to_owned(), v.to_owned())),
                },
            })
        })
        .collect()
}

/// Builds the `entry-batch` of `entries` (one names table for the batch).
pub fn entry_batch(entries: &[Arc<StoredEntry>]) -> wit::EntryBatch {
    let mut names = Names::default();
    let mut addresses = Addresses::default();
    let entries = entries
        .iter()
        .map(|s| {
            let (c, e) = (&*s.catalog, &s.entry);
            wit::AlertEntry {
                id: e.id,
                timestamp_us: e.timestamp().0,
                elapsed_us: e.elapsed_us(),
                protocol: names.protocol(c, e.plugin, e.protocol),
                src: addresses.endpoint(&e.client),
                dst: addresses.endpoint(&e.server),
                request: e.request.as_ref().map(|m| fields(c, e, m, &mut names)),
                response: e.response.as_ref().map(|m| fields(c, e, m, &mut names)),
            }
        })
        .collect();
    wit::EntryBatch {
        names: names.list,
        entries,
    }
}
