//! Alerts over GraphQL: the hub's bounded history and its broadcast.

use std::sync::Arc;

use async_graphql::{SimpleObject, ID};
use futures_util::{Stream, StreamExt};
use remora_alert::Alert;
use tokio_stream::wrappers::BroadcastStream;

use crate::ApiState;

/// One alert as raised.
#[derive(SimpleObject)]
#[graphql(name = "Alert")]
pub struct AlertObject {
    pub id: ID,
    pub rule: String,
    /// "rules" or the alert plugin's name.
    pub source: String,
    /// "info", "warning" or "critical".
    pub severity: String,
    pub summary: String,
    pub entry_ids: Vec<ID>,
    pub labels: Vec<AlertLabel>,
    /// Capture time, RFC 3339 UTC.
    pub at: String,
}

#[derive(SimpleObject)]
pub struct AlertLabel {
    pub key: String,
    pub value: String,
}

impl From<&Alert> for AlertObject {
    fn from(a: &Alert) -> Self {
        let severity = serde_json::to_value(a.severity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        AlertObject {
            id: ID(a.id.to_string()),
            rule: a.rule.clone(),
            source: a.source.clone(),
            severity,
            summary: a.summary.clone(),
            entry_ids: a.entry_ids.iter().map(|i| ID(i.to_string())).collect(),
            labels: a
                .labels
                .iter()
                .map(|(k, v)| AlertLabel {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            at: remora_entry::rfc3339_micros(a.at),
        }
    }
}

/// Alerts with id greater than `after`, oldest first; empty when alerting
/// is not configured.
pub fn list(
    state: &ApiState,
    limit: i32,
    after: Option<ID>,
) -> async_graphql::Result<Vec<AlertObject>> {
    let after = match after {
        Some(id) => id.parse::<u64>().map_err(|_| {
            async_graphql::Error::new(format!("{:?} is not an alert id", id.as_str()))
        })?,
        None => 0,
    };
    let limit = crate::checked_limit(limit, crate::MAX_LIMIT)?;
    Ok(state
        .alerts
        .as_ref()
        .map(|h| {
            h.list(after, limit)
                .iter()
                .map(|a| AlertObject::from(&**a))
                .collect()
        })
        .unwrap_or_default())
}

/// New alerts as raised. A subscriber that falls behind skips the oldest.
pub fn subscribe(state: &Arc<ApiState>) -> impl Stream<Item = AlertObject> {
    let rx = state
        .alerts
        .as_ref()
        .map(|h| BroadcastStream::new(h.subscribe()));
    futures_util::stream::iter(rx)
        .flatten()
        .filter_map(|item| std::future::ready(item.ok().map(|a| AlertObject::from(&*a))))
}
