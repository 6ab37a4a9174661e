//! Example alert plugin: a failed read of a Kubernetes secret through the API
//! server (`GET /api/v1/namespaces/NS/secrets/NAME` answered >= 400) raises
//! one `failed-secret-read` alert per entry: `critical` for 401/403 (someone
//! tried and was refused), `warning` for any other failure.

use remora_sdk::alert::*;

const PREFIX: &str = "/api/v1/namespaces/";

pub struct Secrets;

/// `(namespace, secret)` of a secrets URL path; the secret is "" for a list.
pub fn secret_of(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (ns, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("secrets")?;
    let name = match rest {
        "" => "",
        r => r.strip_prefix('/')?.split(['/', '?']).next().unwrap_or(""),
    };
    (!ns.is_empty()).then_some((ns, name))
}

impl AlertPlugin for Secrets {
    fn info() -> AlertPluginInfo {
        AlertPluginInfo {
            name: "secrets".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            prefilter: Some(
                r#"http && path.matches("/api/v1/namespaces/[^/]+/secrets") && status_code >= 400"#
                    .into(),
            ),
            tick_ms: 0,
        }
    }

    fn new() -> Self {
        Secrets
    }

    fn on_entries(&mut self, batch: &EntryBatch) -> Vec<Alert> {
        let mut out = Vec::new();
        for e in &batch.entries {
            let req = e.request.as_deref();
            let Some(path) = batch.str(req, "path") else {
                continue;
            };
            let Some((ns, name)) = secret_of(path) else {
                continue;
            };
            let Some(status) = batch.int(e.response.as_deref(), "status_code") else {
                continue;
            };
            // The host prefilters; checking again keeps the plugin correct
            // when run without one.
            if status < 400 {
                continue;
            }
            let severity = if status == 401 || status == 403 {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let method = batch.str(req, "method").unwrap_or("?");
            out.push(Alert {
                rule: "failed-secret-read".into(),
                severity,
                summary: format!(
                    "{method} secret {ns}/{name} from {} refused with {status}",
                    e.src.name
                ),
                entry_ids: vec![e.id],
                labels: vec![
                    ("namespace".into(), ns.into()),
                    ("secret".into(), name.into()),
                    ("status".into(), status.to_string()),
                    ("client".into(), e.src.name.clone()),
                ],
            });
        }
        out
    }
}

remora_sdk::export_alert_plugin!(Secrets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths() {
        assert_eq!(
            secret_of("/api/v1/namespaces/x/secrets/y"),
            Some(("x", "y"))
        );
        assert_eq!(
            secret_of("/api/v1/namespaces/x/secrets/y?watch=1"),
            Some(("x", "y"))
        );
        assert_eq!(secret_of("/api/v1/namespaces/x/secrets"), Some(("x", "")));
        assert_eq!(secret_of("/api/v1/namespaces/x/secretsfoo"), None);
        assert_eq!(secret_of("/api/v1/namespaces/x/pods/y"), None);
    }

    fn entry(batch: &mut EntryBatch, id: u64, path: &str, status: i64) {
        let mut name = |n: &str| {
            if let Some(i) = batch.names.iter().position(|x| x == n) {
                return i as u32;
            }
            batch.names.push(n.into());
            batch.names.len() as u32 - 1
        };
        let (p, s, h) = (name("path"), name("status_code"), name("http"));
        let ep = Endpoint {
            ip: "127.0.0.1".into(),
            port: 1,
            name: "127.0.0.1".into(),
        };
        batch.entries.push(AlertEntry {
            id,
            timestamp_us: 0,
            elapsed_us: 0,
            protocol: h,
            src: ep.clone(),
            dst: ep,
            request: Some(vec![EntryField {
                name: p,
                value: EntryValue::Str(path.into()),
            }]),
            response: Some(vec![EntryField {
                name: s,
                value: EntryValue::Int(status),
            }]),
        });
    }

    #[test]
    fn one_alert_per_failed_read_with_severity_by_status() {
        let mut b = EntryBatch::default();
        entry(&mut b, 1, "/api/v1/namespaces/x/secrets/y", 403);
        entry(&mut b, 2, "/api/v1/namespaces/x/secrets/y", 200);
        entry(&mut b, 3, "/api/v1/namespaces/p/secrets/q", 500);
        let alerts = Secrets.on_entries(&b);
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].severity, Severity::Critical);
        assert_eq!(alerts[0].entry_ids, vec![1]);
        assert_eq!(alerts[1].severity, Severity::Warning);
        assert!(alerts[1].labels.contains(&("namespace".into(), "p".into())));
        assert!(alerts[1].labels.contains(&("secret".into(), "q".into())));
    }
}
