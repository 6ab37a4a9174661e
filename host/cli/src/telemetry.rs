//! What `remora tap` reports to the API: the pipeline's live counters and
//! recent flows, and the loaded plugins.

use std::sync::Arc;

use remora_api::{
    CaptureStats, Counter, FlowRecord, Int64, LatencyHistogram, PluginProtocol, PluginRecord,
    ShardStats, SourceStats, Telemetry,
};
use remora_core::Drops;
use remora_dissect::{CallLatency, LATENCY_BOUNDS_US};
use remora_entry::{rfc3339_micros, Catalog};
use remora_pipeline::LiveStats;

pub(crate) struct TapTelemetry {
    stats: Arc<LiveStats>,
    catalog: Arc<Catalog>,
}

impl TapTelemetry {
    pub(crate) fn new(stats: Arc<LiveStats>, catalog: Arc<Catalog>) -> Self {
        TapTelemetry { stats, catalog }
    }
}

/// The dissect stage's buckets as Prometheus wants them: cumulative, in
/// seconds.
fn latency(l: &CallLatency) -> LatencyHistogram {
    let mut running = 0;
    let cumulative = l.buckets[..LATENCY_BOUNDS_US.len()]
        .iter()
        .map(|n| {
            running += n;
            running
        })
        .collect();
    LatencyHistogram {
        bounds: LATENCY_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .collect(),
        cumulative,
        sum_seconds: l.sum_ns as f64 / 1e9,
        count: l.count,
    }
}

fn counters(d: &Drops) -> Vec<Counter> {
    d.nonzero()
        .map(|(r, n)| Counter::new(r.to_string(), n))
        .collect()
}

impl Telemetry for TapTelemetry {
    fn stats(&self) -> CaptureStats {
        let snap = self.stats.snapshot();
        let flows = snap.flows();
        let dissect = snap.dissect();
        let src = &snap.reader.source;
        let mut drops = counters(&snap.drops());
        for (name, n) in [
            ("kernel", src.kernel_drops),
            ("interface", src.interface_drops),
        ] {
            if n > 0 {
                drops.push(Counter::new(name, n));
            }
        }
        CaptureStats {
            packets: snap.reader.packets,
            bytes: src.bytes,
            entries: dissect.entries,
            drops,
            sources: vec![SourceStats {
                name: snap.reader.source_name.clone(),
                packets: src.frames.into(),
                bytes: src.bytes.into(),
                kernel_drops: src.kernel_drops.into(),
                interface_drops: src.interface_drops.into(),
            }],
            shards: snap
                .shards
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut d = s.flows.drops;
                    d.merge(&s.dissect.drops);
                    ShardStats {
                        shard: i as i32,
                        packets: s.flows.packets.into(),
                        bytes: s.flows.payload_bytes.into(),
                        flows: s.flows.flows_active.into(),
                        entries: s.dissect.entries.into(),
                        plugin_errors: (s.dissect.parse_errors + s.dissect.plugin_faults).into(),
                        drops: counters(&d),
                    }
                })
                .collect(),
            flows_tracked: flows.flows_active,
            plugin_calls: dissect.plugin_calls,
            plugin_errors: dissect.parse_errors,
            plugin_faults: dissect.plugin_faults,
            plugin_renewals: dissect.plugin_renewals,
            plugin_latency: latency(&dissect.meters.latency),
        }
    }

    fn flows(&self, limit: usize) -> Vec<FlowRecord> {
        let mut all = self.stats.recent_flows();
        all.sort_by_key(|f| std::cmp::Reverse(f.id));
        all.truncate(limit);
        all.into_iter()
            .map(|f| FlowRecord {
                id: Int64::from(f.id),
                transport: f.transport.to_string(),
                src: f.client.into(),
                dst: f.server.into(),
                packets: f.packets.into(),
                bytes: f.bytes.into(),
                first_seen: rfc3339_micros(f.first_seen),
                last_seen: rfc3339_micros(f.last_seen),
                closed: f.closed.is_some(),
            })
            .collect()
    }

    fn plugins(&self) -> Vec<PluginRecord> {
        let meters = self.stats.snapshot().dissect().meters;
        self.catalog
            .plugins
            .iter()
            .enumerate()
            .map(|(i, p)| (p, meters.plugins.get(i).cloned().unwrap_or_default()))
            .map(|(p, m)| PluginRecord {
                name: p.name.clone(),
                version: p.version.clone(),
                kind: "dissector".into(),
                protocols: p
                    .protocols
                    .iter()
                    .map(|q| PluginProtocol {
                        name: q.name.clone(),
                        flag: q.flag.clone(),
                        transport: q.transport.to_string(),
                        ports: q.ports.iter().map(|&x| i32::from(x)).collect(),
                    })
                    .collect(),
                // Quarantine is per shard and brief (back-off); a plugin
                // with faults is reported as such.
                state: if m.faults > 0 { "faulted" } else { "active" }.into(),
                calls: m.calls.into(),
                errors: m.errors.into(),
                faults: m.faults.into(),
            })
            .collect()
    }
}
