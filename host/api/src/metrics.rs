//! `/metrics` in the Prometheus text exposition format.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::ApiState;

pub(crate) fn routes(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let escaped = val
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{escaped}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

pub fn render(state: &ApiState) -> String {
    let c = state.telemetry.stats();
    let s = state.store.stats();
    let mut o = Out(String::with_capacity(4096));
    o.one(
        "remora_packets_total",
        "counter",
        "Packets read from all sources.",
        c.packets,
    );
    o.one(
        "remora_bytes_total",
        "counter",
        "Bytes of packets read from all sources.",
        c.bytes,
    );
    o.family(
        "remora_drops_total",
        "counter",
        "Packets, bytes, flows or entries dropped, by reason.",
    );
    for d in &c.drops {
        o.sample("remora_drops_total", &[("reason", &d.name)], d.value.0);
    }
    o.family(
        "remora_source_kernel_drops_total",
        "counter",
        "Packets the kernel dropped (libpcap ps_drop), by source.",
    );
    for src in &c.sources {
        o.sample(
            "remora_source_kernel_drops_total",
            &[("source", &src.name)],
            src.kernel_drops.0,
        );
    }
    o.family(
        "remora_source_interface_drops_total",
        "counter",
        "Packets the interface dropped (libpcap ps_ifdrop), by source.",
    );
    for src in &c.sources {
        o.sample(
            "remora_source_interface_drops_total",
            &[("source", &src.name)],
            src.interface_drops.0,
        );
    }
    o.one(
        "remora_flows",
        "gauge",
        "Flows tracked now.",
        c.flows_tracked,
    );
    o.one(
        "remora_entries_total",
        "counter",
        "Entries produced by the dissectors.",
        c.entries,
    );
    o.family(
        "remora_entries_stored_total",
        "counter",
        "Entries stored, by protocol.",
    );
    for (p, n) in state.feed.per_protocol() {
        o.sample("remora_entries_stored_total", &[("protocol", &p)], n);
    }
    o.one(
        "remora_subscription_skipped_total",
        "counter",
        "Entries live subscribers skipped because they fell behind.",
        state.feed.lagged(),
    );
    o.one(
        "remora_subscriptions_open",
        "gauge",
        "Subscription (WebSocket) connections open now.",
        state.sockets.open(),
    );
    o.one(
        "remora_http_connections_open",
        "gauge",
        "HTTP connections open now (at most MAX_CONNECTIONS).",
        state.connections.open(),
    );
    o.one(
        "remora_http_connections_waited_total",
        "counter",
        "Connections accepted only after another closed, MAX_CONNECTIONS being open.",
        state.connections.at_cap(),
    );
    o.one(
        "remora_queries_waited_total",
        "counter",
        "Queries reading the store that waited to execute because MAX_EXECUTING were executing.",
        state.queries.executing.at_cap(),
    );
    o.one(
        "remora_query_answers_cut_total",
        "counter",
        "Requests whose answer ran past MAX_RESPONSE_BYTES (the rest were errors).",
        state.queries.cut(),
    );
    o.one(
        "remora_websocket_operations_refused_total",
        "counter",
        "Operations refused on a WebSocket connection that ran MAX_OPERATIONS already.",
        state
            .ws_operations_refused
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    o.one(
        "remora_subscriptions_refused_total",
        "counter",
        "Subscription connections refused because MAX_SUBSCRIBERS were open.",
        state.sockets.at_cap(),
    );
    o.one(
        "remora_entries_unstorable_total",
        "counter",
        "Entries dropped because they are larger than the store's limit allows.",
        state.feed.unstorable(),
    );
    o.one(
        "remora_plugin_calls_total",
        "counter",
        "Calls into plugins.",
        c.plugin_calls,
    );
    o.one(
        "remora_plugin_errors_total",
        "counter",
        "Parse errors plugins reported.",
        c.plugin_errors,
    );
    o.one(
        "remora_plugin_faults_total",
        "counter",
        "Plugin traps, deadlines and limit hits.",
        c.plugin_faults,
    );
    o.one(
        "remora_plugin_renewals_total",
        "counter",
        "Dissector instances replaced at three quarters of their memory limit.",
        c.plugin_renewals,
    );
    let h = &c.plugin_latency;
    o.family(
        "remora_plugin_call_seconds",
        "histogram",
        "Time per plugin call.",
    );
    for (b, n) in h.bounds.iter().zip(&h.cumulative) {
        o.sample(
            "remora_plugin_call_seconds_bucket",
            &[("le", &b.to_string())],
            n,
        );
    }
    o.sample(
        "remora_plugin_call_seconds_bucket",
        &[("le", "+Inf")],
        h.count,
    );
    o.sample("remora_plugin_call_seconds_sum", &[], h.sum_seconds);
    o.sample("remora_plugin_call_seconds_count", &[], h.count);
    o.one(
        "remora_store_bytes",
        "gauge",
        "Bytes the entry store uses on disk.",
        s.bytes,
    );
    o.one(
        "remora_store_limit_bytes",
        "gauge",
        "The entry store's size limit.",
        s.limit_bytes,
    );
    o.one(
        "remora_store_entries",
        "gauge",
        "Entries in the store.",
        s.entries,
    );
    o.one(
        "remora_store_evicted_entries_total",
        "counter",
        "Entries evicted (oldest first) to stay under the size limit.",
        s.evicted_entries,
    );
    if let Some(hub) = &state.alerts {
        alert_metrics(&mut o, &hub.counters());
    }
    o.0
}

/// A counter family with one sample per alert plugin, labelled `plugin`.
fn per_plugin<V: std::fmt::Display>(
    o: &mut Out,
    a: &remora_alert::hub::HubCounters,
    name: &str,
    help: &str,
    value: impl Fn(&remora_alert::DetectorStats) -> V,
) {
    o.family(name, "counter", help);
    for (plugin, d) in &a.detectors {
        o.sample(name, &[("plugin", plugin)], value(d));
    }
}

fn alert_metrics(o: &mut Out, a: &remora_alert::hub::HubCounters) {
    o.family(
        "remora_alerts_raised_total",
        "counter",
        "Alerts raised, by rule.",
    );
    for (rule, n) in &a.raised_by_rule {
        o.sample("remora_alerts_raised_total", &[("rule", rule)], n);
    }
    o.one(
        "remora_alerts_delivered_total",
        "counter",
        "Webhook deliveries that succeeded.",
        a.delivered,
    );
    o.one(
        "remora_alerts_retried_total",
        "counter",
        "Webhook delivery attempts retried after a failure.",
        a.retried,
    );
    o.one(
        "remora_alerts_dropped_total",
        "counter",
        "Webhook deliveries dropped: queue full or every attempt failed.",
        a.dropped,
    );
    o.one(
        "remora_alert_skipped_entries_total",
        "counter",
        "Entries the alert engine skipped because it fell behind.",
        a.skipped_entries,
    );
    if a.detectors.is_empty() {
        return;
    }
    o.family(
        "remora_alert_plugin_entries_total",
        "counter",
        "Entries per alert plugin: seen (offered), sent (passed its prefilter), lost (in a faulted or refused call).",
    );
    for (name, d) in &a.detectors {
        for (outcome, n) in [
            ("seen", d.entries_seen),
            ("sent", d.entries_sent),
            ("lost", d.entries_lost),
        ] {
            o.sample(
                "remora_alert_plugin_entries_total",
                &[("plugin", name), ("outcome", outcome)],
                n,
            );
        }
    }
    o.family(
        "remora_alert_plugin_calls_total",
        "counter",
        "Calls into each alert plugin, and calls refused while it was quarantined.",
    );
    for (name, d) in &a.detectors {
        for (state, n) in [("made", d.calls), ("quarantined", d.quarantined_calls)] {
            o.sample(
                "remora_alert_plugin_calls_total",
                &[("plugin", name), ("state", state)],
                n,
            );
        }
    }
    per_plugin(
        o,
        a,
        "remora_alert_plugin_call_seconds_total",
        "Time spent inside each alert plugin's calls.",
        |d| d.call_ns as f64 / 1e9,
    );
    per_plugin(
        o,
        a,
        "remora_alert_plugin_renewals_total",
        "Instances of each alert plugin replaced because their memory kept growing \
         (the plugin's state started over; no call was lost).",
        |d| d.renewals,
    );
    per_plugin(
        o,
        a,
        "remora_alert_plugin_alerts_withheld_total",
        "Alerts of each alert plugin withheld by its rate_limit or dedupe.",
        |d| d.alerts_withheld,
    );
    o.family(
        "remora_alert_plugin_faults_total",
        "counter",
        "Alert plugin faults by kind; each drops the instance and quarantines the plugin with back-off.",
    );
    for (name, d) in &a.detectors {
        for (kind, n) in &d.faults {
            o.sample(
                "remora_alert_plugin_faults_total",
                &[("plugin", name), ("kind", kind)],
                n,
            );
        }
    }
}
