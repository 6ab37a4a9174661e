//! Webhook delivery: one thread per webhook with a bounded queue, HTTP POST
//! of JSON (or a Slack-style `{"text": ...}`), retries with exponential
//! back-off. Plain `http://` only: the workspace carries no TLS stack yet.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender, TrySendError};

use crate::config::{parse_duration, WebhookConfig, WebhookFormat};
use crate::Alert;

pub const DEFAULT_QUEUE: usize = 256;
pub const DEFAULT_ATTEMPTS: u32 = 8;
const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a webhook posts: host, port, path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str, allow_hosts: &[String]) -> Result<Target, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("url {url:?} must start with http:// (https is not supported yet)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("url {url:?} has a bad port {p:?}"))?,
            ),
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("url {url:?} has no host"));
        }
        if !allow_hosts.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return Err(format!(
                "host {host:?} is not in allow_hosts {allow_hosts:?}; add it there to allow delivery"
            ));
        }
        Ok(Target {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    /// Queue full, or every attempt failed.
    pub dropped: AtomicU64,
    /// Queued for sending.
    pub accepted: AtomicU64,
    /// Queued, then every attempt failed (also in `dropped`).
    pub failed: AtomicU64,
}

/// A running webhook: a queue and its sender thread.
pub struct Webhook {
    pub name: String,
    tx: Sender<Arc<Alert>>,
    pub counters: Arc<DeliveryCounters>,
}

impl Webhook {
    pub fn start(cfg: &WebhookConfig, allow_hosts: &[String]) -> Result<Webhook, String> {
        let target = Target::parse(&cfg.url, allow_hosts)?;
        let backoff = match &cfg.backoff {
            Some(b) => parse_duration("backoff", b)?,
            None => DEFAULT_BACKOFF,
        };
        let attempts = cfg.attempts.unwrap_or(DEFAULT_ATTEMPTS).max(1);
        let (tx, rx) = bounded::<Arc<Alert>>(cfg.queue.unwrap_or(DEFAULT_QUEUE).max(1));
        let counters = Arc::new(DeliveryCounters::default());
        let (c, name, format) = (counters.clone(), cfg.name.clone(), cfg.format);
        std::thread::Builder::new()
            .name(format!("webhook-{}", cfg.name))
            .spawn(move || {
                for alert in rx {
                    let body = payload(format, &alert);
                    let mut wait = backoff;
                    let mut ok = false;
                    for attempt in 1..=attempts {
                        match post(&target, &body) {
                            Ok(()) => {
                                ok = true;
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(target: "alert", webhook = %name, attempt, "delivery failed: {e}");
                                if attempt < attempts {
                                    c.retried.fetch_add(1, Ordering::Relaxed);
                                    std::thread::sleep(wait);
                                    wait = (wait * 2).min(MAX_BACKOFF);
                                }
                            }
                        }
                    }
                    if !ok {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    let n = if ok { &c.delivered } else { &c.failed };
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| format!("cannot start its thread: {e}"))?;
        Ok(Webhook {
            name: cfg.name.clone(),
            tx,
            counters,
        })
    }

    pub fn idle(&self) -> bool {
        let c = &self.counters;
        let done = c.delivered.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed);
        done >= c.accepted.load(Ordering::Relaxed)
    }

    /// Never blocks: a full queue drops the alert for this webhook (counted).
    pub fn send(&self, alert: Arc<Alert>) {
        match self.tx.try_send(alert) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

pub fn payload(format: WebhookFormat, a: &Alert) -> Vec<u8> {
    let v = match format {
        WebhookFormat::Json => serde_json::to_value(a).unwrap_or_default(),
        WebhookFormat::Slack => serde_json::json!({
            "text": format!("[{:?}] {} ({})", a.severity, a.summary, a.rule)
        }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

fn post(t: &Target, body: &[u8]) -> Result<(), String> {
    let addr = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", t.host))?;
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: remora\r\n\r\n",
        t.path, t.host, t.port, body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut status = [0u8; 12];
    s.read_exact(&mut status)
        .map_err(|e| format!("no response: {e}"))?;
    let line = String::from_utf8_lossy(&status);
    match line.get(9..12).and_then(|c| c.parse::<u16>().ok()) {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(code) => Err(format!("HTTP {code}")),
        None => Err(format!("not an HTTP response: {line:?}")),
    }
}
