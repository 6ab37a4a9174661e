//! Webhook delivery: one thread per webhook with a bounded queue, HTTP POST
//! of JSON (or a Slack-style `{"text": ...}`), retries with exponential
//! back-off. `https://` goes through rustls, trusting the system's roots
//! (`/etc/ssl/certs`) plus an optional per-webhook `ca_file`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender, TrySendError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::config::{parse_duration, WebhookConfig, WebhookFormat};
use crate::Alert;

pub const DEFAULT_QUEUE: usize = 256;
pub const DEFAULT_ATTEMPTS: u32 = 8;
const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a webhook posts: scheme, host, port, path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str, allow_hosts: &[String]) -> Result<Target, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("url {url:?} must start with https:// or http://"));
        };
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
            _ => (authority, if tls { 443 } else { 80 }),
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
            tls,
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
        let tls = match (target.tls, &cfg.ca_file) {
            (true, ca_file) => Some(tls_config(ca_file.as_deref())?),
            (false, Some(_)) => {
                return Err(format!(
                    "ca_file is set but url {:?} is not https://",
                    cfg.url
                ))
            }
            (false, None) => None,
        };
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
                        match post(&target, tls.as_ref(), &body) {
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

/// The roots a webhook's TLS connections trust: the system's, plus `ca_file`
/// (PEM) for a private CA or a self-signed receiver.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    // A system store with a few unreadable certificates still yields the
    // rest; only an empty result is an error (below).
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "ca_file {} holds no PEM certificate",
                path.display()
            ));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted root certificates: none in the system store (install \
             ca-certificates) and no ca_file is set"
                .into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn post(t: &Target, tls: Option<&Arc<ClientConfig>>, body: &[u8]) -> Result<(), String> {
    let addr = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", t.host))?;
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    match tls {
        None => exchange(s, t, body),
        Some(cfg) => {
            let name = ServerName::try_from(t.host.clone())
                .map_err(|e| format!("{:?} is not a TLS server name: {e}", t.host))?;
            let conn = ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
            exchange(StreamOwned::new(conn, s), t, body)
        }
    }
}

/// One request, one status line: the receiver's 2xx is the only success.
fn exchange(mut s: impl Read + Write, t: &Target, body: &[u8]) -> Result<(), String> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: remora\r\n\r\n",
        t.path, t.host, t.port, body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    s.flush().map_err(|e| e.to_string())?;
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
