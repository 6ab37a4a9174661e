//! What the capture side reports to the API: counters, recent flows,
//! plugins. The API only reads these; the wiring (`remora tap`) fills them.

use async_graphql::SimpleObject;

use crate::Int64;

#[derive(Clone, Debug, SimpleObject)]
pub struct Counter {
    pub name: String,
    pub value: Int64,
}

impl Counter {
    pub fn new(name: impl Into<String>, value: u64) -> Self {
        Counter {
            name: name.into(),
            value: value.into(),
        }
    }
}

#[derive(Clone, Debug, SimpleObject)]
pub struct SourceStats {
    /// Interface or file.
    pub name: String,
    pub packets: Int64,
    pub bytes: Int64,
    /// libpcap's ps_drop: no room in the kernel buffer.
    pub kernel_drops: Int64,
    /// libpcap's ps_ifdrop: dropped by the interface or its driver.
    pub interface_drops: Int64,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct ShardStats {
    pub shard: i32,
    pub packets: Int64,
    pub bytes: Int64,
    /// Flows tracked now.
    pub flows: Int64,
    pub entries: Int64,
    pub plugin_errors: Int64,
    /// By reason, only non-zero.
    pub drops: Vec<Counter>,
}

/// Plugin call latencies, for `/metrics` (cumulative buckets as Prometheus
/// wants them).
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    /// Upper bounds in seconds, ascending; `+Inf` is implied.
    pub bounds: Vec<f64>,
    /// Calls at or below each bound (cumulative), then the total.
    pub cumulative: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

/// The capture side's counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct CaptureStats {
    pub packets: u64,
    pub bytes: u64,
    pub entries: u64,
    /// Every stage's and source's drops by reason.
    pub drops: Vec<Counter>,
    pub sources: Vec<SourceStats>,
    pub shards: Vec<ShardStats>,
    pub flows_tracked: u64,
    pub plugin_calls: u64,
    pub plugin_errors: u64,
    pub plugin_faults: u64,
    pub plugin_renewals: u64,
    pub plugin_latency: LatencyHistogram,
}

#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "Endpoint")]
pub struct EndpointRecord {
    pub ip: String,
    pub port: i32,
    /// Best name: service, else pod, else IP.
    pub name: String,
}

impl From<remora_core::Endpoint> for EndpointRecord {
    fn from(e: remora_core::Endpoint) -> Self {
        let ip = e.ip.to_string();
        EndpointRecord {
            name: ip.clone(),
            ip,
            port: i32::from(e.port),
        }
    }
}

/// One L4 flow the capture saw recently.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "Flow")]
pub struct FlowRecord {
    pub id: Int64,
    pub transport: String,
    pub src: EndpointRecord,
    pub dst: EndpointRecord,
    /// Both directions.
    pub packets: Int64,
    /// Payload bytes, both directions, retransmissions included.
    pub bytes: Int64,
    pub first_seen: String,
    pub last_seen: String,
    pub closed: bool,
}

#[derive(Clone, Debug, SimpleObject)]
pub struct PluginProtocol {
    pub name: String,
    pub flag: String,
    pub transport: String,
    pub ports: Vec<i32>,
}

#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "Plugin")]
pub struct PluginRecord {
    pub name: String,
    pub version: String,
    /// "dissector" (later "alert").
    pub kind: String,
    pub protocols: Vec<PluginProtocol>,
    /// "active", "quarantined" or "disabled".
    pub state: String,
    pub calls: Int64,
    pub errors: Int64,
    pub faults: Int64,
}

/// Implemented by whoever runs the capture.
pub trait Telemetry: Send + Sync {
    fn stats(&self) -> CaptureStats;
    /// Newest first, at most `limit`.
    fn flows(&self, limit: usize) -> Vec<FlowRecord>;
    fn plugins(&self) -> Vec<PluginRecord>;
}
