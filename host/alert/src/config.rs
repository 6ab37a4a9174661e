//! The `--alerts` TOML file: rules, webhooks and the webhook host allow-list.
//!
//! ```toml
//! allow_hosts = ["127.0.0.1", "hooks.slack.com"]
//!
//! [[webhook]]
//! name = "ops"
//! url = "http://127.0.0.1:9000/hook"
//! format = "json"        # or "slack": {"text": "..."}
//!
//! [[rule]]
//! name = "server-errors"
//! filter = "http && status_code >= 500"
//! severity = "critical"
//! labels = { team = "web" }
//! threshold = "count > 3 within 1m"   # optional
//! group_by = "dst.name"               # optional, threshold rules only
//! rate_limit = "30s"                  # optional: at most one alert per interval
//! dedupe = "5m"                       # optional: same rule+group+summary once per window
//!
//! [[plugin]]                                # a Wasm alert plugin (remora:plugin/alerter)
//! path = "metadata.wasm"                    # relative to this file
//! rate_limit = "1m"                         # optional, per rule the plugin raises
//! dedupe = "10m"                            # optional: same rule+summary once per window
//!
//! [plugin_config.http-5xx-burst]            # config the plugin reads, by its declared name
//! window-ms = "10000"
//! ```
//!
//! Relative paths (`path`, a webhook's `ca_file`) are taken from the
//! directory of the file, so a config and its plugins can move together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Severity;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read alert config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("alert config {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("alert rule {rule:?}: {message}")]
    Rule { rule: String, message: String },
    #[error("webhook {webhook:?}: {message}")]
    Webhook { webhook: String, message: String },
    #[error("alert plugin {path}: {message}")]
    Plugin { path: String, message: String },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Hosts webhooks may post to; a webhook elsewhere is a config error.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginConfig>,
    /// Per alert plugin (by the name it declares): key/value config it reads
    /// through the host's `config` import.
    #[serde(default)]
    pub plugin_config: BTreeMap<String, BTreeMap<String, String>>,
    /// Alerts kept in memory for the API.
    pub keep: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub filter: String,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub threshold: Option<String>,
    pub group_by: Option<String>,
    pub rate_limit: Option<String>,
    pub dedupe: Option<String>,
}

/// A Wasm alert plugin to load.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub path: PathBuf,
    /// At most one alert per rule the plugin raises per interval.
    pub rate_limit: Option<String>,
    /// The same rule and summary at most once per window.
    pub dedupe: Option<String>,
}

impl PluginConfig {
    /// `(rate_limit, dedupe)`, parsed.
    pub fn limits(&self) -> Result<(Option<Duration>, Option<Duration>), String> {
        let parse = |what: &str, v: &Option<String>| {
            v.as_deref().map(|s| parse_duration(what, s)).transpose()
        };
        Ok((
            parse("rate_limit", &self.rate_limit)?,
            parse("dedupe", &self.dedupe)?,
        ))
    }
}

fn default_severity() -> Severity {
    Severity::Warning
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The alert as JSON.
    #[default]
    Json,
    /// Slack-compatible: `{"text": "..."}`.
    Slack,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Alerts waiting for this webhook before new ones are dropped.
    pub queue: Option<usize>,
    /// Attempts per alert (first try included).
    pub attempts: Option<u32>,
    /// First back-off; doubles per retry.
    pub backoff: Option<String>,
    /// PEM file of extra roots to trust for an `https://` url (a private CA,
    /// a self-signed receiver); the system's roots are trusted as well.
    pub ca_file: Option<PathBuf>,
}

/// `count > N within DURATION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub count: u64,
    pub within: Duration,
}

impl AlertConfig {
    pub fn load(path: &Path) -> Result<AlertConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg = Self::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in &mut cfg.plugins {
            p.path = base.join(&p.path);
        }
        for w in &mut cfg.webhooks {
            if let Some(ca) = &mut w.ca_file {
                *ca = base.join(&*ca);
            }
        }
        Ok(cfg)
    }

    pub fn parse(text: &str, path: &str) -> Result<AlertConfig, ConfigError> {
        let cfg: AlertConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_string(),
            source: Box::new(source),
        })?;
        for w in &cfg.webhooks {
            crate::webhook::Target::parse(&w.url, &cfg.allow_hosts).map_err(|message| {
                ConfigError::Webhook {
                    webhook: w.name.clone(),
                    message,
                }
            })?;
        }
        for p in &cfg.plugins {
            p.limits().map_err(|message| ConfigError::Plugin {
                path: p.path.display().to_string(),
                message,
            })?;
        }
        let mut seen = std::collections::HashSet::new();
        for r in &cfg.rules {
            if !seen.insert(&r.name) {
                return Err(ConfigError::Rule {
                    rule: r.name.clone(),
                    message: "defined twice".into(),
                });
            }
        }
        Ok(cfg)
    }
}

pub fn parse_duration(what: &str, s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{what} {s:?} is not a duration ({e}); try \"30s\" or \"5m\""))?;
    if d.is_zero() {
        return Err(format!("{what} {s:?} must be longer than zero"));
    }
    Ok(d)
}

impl Threshold {
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let bad = || format!("threshold {s:?} must look like \"count > 10 within 1m\"");
        let words: Vec<&str> = s.split_whitespace().collect();
        match words.as_slice() {
            ["count", ">", n, "within", rest @ ..] if !rest.is_empty() => {
                let count = n.parse::<u64>().map_err(|_| bad())?;
                let within = parse_duration("threshold window", &rest.join(" "))?;
                Ok(Threshold { count, within })
            }
            _ => Err(bad()),
        }
    }
}
