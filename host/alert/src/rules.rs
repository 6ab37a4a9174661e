//! Rule alerts: a CEL filter per rule, optionally a threshold (`count > N
//! within D`, per group), rate limit and de-duplication.
//!
//! Threshold windows are tumbling and anchored at the first matching entry
//! of a group: the window `[first, first + D)` counts matches; the match that
//! makes the count exceed N fires once, later matches in that window are
//! only counted, and the first match at or after `first + D` opens the next
//! window. So a group fires at most once per window, never once per entry.
//! Time is capture time (entry timestamps; ticks carry capture time when
//! reading files).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use remora_core::Timestamp;
use remora_entry::Catalog;
use remora_filter::{Filter, Variables};
use remora_store::StoredEntry;

use crate::config::{parse_duration, ConfigError, RuleConfig, Threshold};
use crate::throttle::{Throttle, Verdict};
use crate::{Alert, Detector, Severity};

/// Groups one threshold rule tracks; a new group beyond this is not counted
/// (and the drop is counted) so a flood of distinct keys cannot grow memory.
pub const MAX_GROUPS: usize = 10_000;
/// Entry ids an alert lists (the newest ones).
const MAX_ENTRY_IDS: usize = 20;

pub struct Rule {
    pub name: String,
    filter: Filter,
    severity: Severity,
    labels: Vec<(String, String)>,
    threshold: Option<Threshold>,
    group_by: Option<String>,
    throttle: Throttle,
    windows: HashMap<String, Window>,
    pub counters: RuleCounters,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounters {
    pub matched: u64,
    pub fired: u64,
    /// Alerts withheld by the rate limit.
    pub rate_limited: u64,
    /// Alerts withheld as duplicates.
    pub deduplicated: u64,
    /// Matches not counted because the group table was full.
    pub groups_dropped: u64,
}

struct Window {
    start: Timestamp,
    count: u64,
    fired: bool,
    entry_ids: Vec<u64>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Rule {
    pub fn compile(cfg: &RuleConfig, vars: &Variables) -> Result<Rule, ConfigError> {
        let err = |message: String| ConfigError::Rule {
            rule: cfg.name.clone(),
            message,
        };
        if cfg.name.trim().is_empty() {
            return Err(err("a rule needs a non-empty name".into()));
        }
        let filter = Filter::compile(&cfg.filter, vars).map_err(|e| err(format!("filter: {e}")))?;
        let threshold = cfg
            .threshold
            .as_deref()
            .map(Threshold::parse)
            .transpose()
            .map_err(err)?;
        if let Some(g) = &cfg.group_by {
            if threshold.is_none() {
                return Err(err(format!("group_by {g:?} needs a threshold")));
            }
            if vars.get(g).is_none() {
                return Err(err(format!("group_by {g:?} is not a filter variable")));
            }
        }
        let dur = |what: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| parse_duration(what, s))
                .transpose()
                .map_err(err)
        };
        Ok(Rule {
            name: cfg.name.clone(),
            filter,
            severity: cfg.severity,
            labels: cfg
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            threshold,
            group_by: cfg.group_by.clone(),
            throttle: Throttle::new(
                dur("rate_limit", &cfg.rate_limit)?,
                dur("dedupe", &cfg.dedupe)?,
            ),
            windows: HashMap::new(),
            counters: RuleCounters::default(),
        })
    }

    fn group_key(&self, catalog: &Catalog, e: &remora_entry::Entry) -> String {
        let Some(name) = &self.group_by else {
            return String::new();
        };
        match remora_entry::entry_var(catalog, e, name) {
            Some(serde_json::Value::String(s)) => s,
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }

    fn on_entry(&mut self, se: &StoredEntry) -> Option<Alert> {
        if !self.filter.matches(&se.catalog, &se.entry) {
            return None;
        }
        self.counters.matched += 1;
        let at = se.entry.timestamp();
        let group = self.group_key(&se.catalog, &se.entry);
        let (summary, entry_ids) = match self.threshold {
            None => (
                format!(
                    "{}: entry {} matched {}",
                    self.name,
                    se.entry.id,
                    self.filter.source()
                ),
                vec![se.entry.id],
            ),
            Some(t) => {
                let span = micros(t.within);
                if !self.windows.contains_key(&group) && self.windows.len() >= MAX_GROUPS {
                    self.counters.groups_dropped += 1;
                    return None;
                }
                let w = self.windows.entry(group.clone()).or_insert(Window {
                    start: at,
                    count: 0,
                    fired: false,
                    entry_ids: Vec::new(),
                });
                if at.micros() >= w.start.micros().saturating_add(span) {
                    *w = Window {
                        start: at,
                        count: 0,
                        fired: false,
                        entry_ids: Vec::new(),
                    };
                }
                w.count += 1;
                if w.entry_ids.len() == MAX_ENTRY_IDS {
                    w.entry_ids.remove(0);
                }
                w.entry_ids.push(se.entry.id);
                if w.fired || w.count <= t.count {
                    return None;
                }
                w.fired = true;
                let within = humantime::format_duration(t.within);
                let of = if group.is_empty() {
                    String::new()
                } else {
                    format!(" for {}={group}", self.group_by.as_deref().unwrap_or(""))
                };
                (
                    format!(
                        "{}: {} entries within {within}{of} matched {} (threshold {})",
                        self.name,
                        w.count,
                        self.filter.source(),
                        t.count
                    ),
                    w.entry_ids.clone(),
                )
            }
        };
        self.admit(at, &group, &summary)?;
        let mut labels = self.labels.clone();
        if let Some(g) = &self.group_by {
            labels.push((g.clone(), group));
        }
        self.counters.fired += 1;
        Some(Alert {
            id: 0,
            rule: self.name.clone(),
            source: "rules".into(),
            severity: self.severity,
            summary,
            entry_ids,
            labels,
            at,
        })
    }

    /// Rate limit and de-duplication. Per-entry summaries name the entry,
    /// so dedupe keys on rule + group instead of the text.
    fn admit(&mut self, at: Timestamp, group: &str, _summary: &str) -> Option<()> {
        let c = &mut self.counters;
        match self.throttle.admit(at, group) {
            Verdict::Admit => return Some(()),
            Verdict::RateLimited => c.rate_limited += 1,
            Verdict::Duplicate => c.deduplicated += 1,
            Verdict::Full => c.groups_dropped += 1,
        }
        None
    }

    /// Forget windows and dedupe marks that can no longer matter.
    fn expire(&mut self, now: Timestamp) {
        if let Some(t) = self.threshold {
            let span = micros(t.within);
            self.windows
                .retain(|_, w| now.micros() < w.start.micros().saturating_add(span));
        }
        self.throttle.expire(now);
    }
}

/// Every rule of a config, as one detector.
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Compiles every rule against the variables of `catalog`; the first bad
    /// rule is the error, naming it.
    pub fn compile(rules: &[RuleConfig], catalog: &Catalog) -> Result<RuleSet, ConfigError> {
        let vars = Variables::new(&[catalog]);
        let rules = rules
            .iter()
            .map(|r| Rule::compile(r, &vars))
            .collect::<Result<_, _>>()?;
        Ok(RuleSet { rules })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl Detector for RuleSet {
    fn name(&self) -> &str {
        "rules"
    }

    fn on_entries(&mut self, entries: &[Arc<StoredEntry>]) -> Vec<Alert> {
        let mut out = Vec::new();
        for e in entries {
            for r in &mut self.rules {
                out.extend(r.on_entry(e));
            }
        }
        out
    }

    fn on_tick(&mut self, now: Timestamp) -> Vec<Alert> {
        for r in &mut self.rules {
            r.expire(now);
        }
        Vec::new()
    }
}
