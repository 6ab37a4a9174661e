//! The service map: who calls whom, over stored entries.
//!
//! What counts as an error is itself a filter (`ERROR_TERMS`), so the host
//! stays free of protocol knowledge: terms whose variables no loaded plugin
//! declares are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use async_graphql::{Enum, SimpleObject};
use remora_core::Timestamp;
use remora_filter::Filter;
use remora_store::{Order, Scan, StoredEntry};

use crate::budget::{RequestBudget, Scanner};
use crate::{ApiState, Int64};

/// Entries one map examines at most (the newest).
pub const MAP_MAX_SCAN: u64 = 500_000;
/// Latency samples kept per edge (a reservoir), for the percentiles.
const SAMPLES_PER_EDGE: usize = 2048;

/// An entry is an error when any of these holds.
pub const ERROR_TERMS: &[&str] = &[
    "http && status_code >= 500",
    "grpc && grpc_status != 0",
    "dns && dns_rcode != 0",
    "redis && redis_error",
    "kafka && kafka_error_code != 0",
    "(postgresql || mysql) && sql_error_code != \"\"",
];

#[derive(Enum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// Best name: service, else pod, else IP.
    #[default]
    Name,
    Ip,
    Namespace,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ServiceNode {
    pub id: String,
    pub label: String,
    pub namespace: Option<String>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ServiceEdge {
    pub source: String,
    pub target: String,
    pub protocol: String,
    /// The protocol's filter flag ("http"), for building filters.
    pub flag: String,
    pub count: Int64,
    /// Entries matching the error terms (5xx, DNS rcode ≠ 0, Redis errors, ...).
    pub errors: Int64,
    /// count / the window's length (from..to, else the span of the entries).
    pub rate_per_second: f64,
    pub p50_us: Int64,
    pub p95_us: Int64,
}

#[derive(SimpleObject, Clone, Debug, Default)]
pub struct ServiceMap {
    pub nodes: Vec<ServiceNode>,
    pub edges: Vec<ServiceEdge>,
    /// Entries examined.
    pub scanned: Int64,
}

#[derive(Default)]
struct EdgeAcc {
    count: u64,
    errors: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    samples: Vec<u64>,
    seen_complete: u64,
}

impl EdgeAcc {
    /// Reservoir sampling with a fixed-seed generator: bounded and
    /// deterministic for the same entries.
    fn sample(&mut self, us: u64) {
        self.seen_complete += 1;
        if self.samples.len() < SAMPLES_PER_EDGE {
            self.samples.push(us);
        } else {
            let r = splitmix(self.seen_complete) % self.seen_complete;
            if let Some(slot) = self.samples.get_mut(r as usize) {
                *slot = us;
            }
        }
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn node_key(se: &StoredEntry, client: bool, by: GroupBy) -> String {
    let ep = if client {
        se.entry.client
    } else {
        se.entry.server
    };
    match by {
        // Until Kubernetes enrichment, the best name is the IP.
        GroupBy::Name | GroupBy::Ip => ep.ip.to_string(),
        GroupBy::Namespace => "(no namespace)".to_owned(),
    }
}

/// The error terms that compile against the loaded plugins' variables.
pub fn error_filters(state: &ApiState) -> Vec<Filter> {
    ERROR_TERMS
        .iter()
        .filter_map(|t| Filter::compile(t, &state.variables).ok())
        .collect()
}

pub fn build(
    state: &ApiState,
    filter: &Filter,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    by: GroupBy,
    budget: &RequestBudget,
) -> async_graphql::Result<ServiceMap> {
    let errors = error_filters(state);
    let mut scanner = Scanner::new(budget);
    let mut edges: BTreeMap<(String, String, String, String), EdgeAcc> = BTreeMap::new();
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut scanned = 0u64;
    let scan = Scan {
        order: Order::NewestFirst,
        after_id: None,
        from,
        to,
        with_bodies: false,
    };
    state
        .store
        .scan(&scan, &mut |se: &StoredEntry| {
            if !scanner.next() {
                return ControlFlow::Break(());
            }
            scanned += 1;
            if filter.matches(&se.catalog, &se.entry) {
                let src = node_key(se, true, by);
                let dst = node_key(se, false, by);
                let p = se.catalog.protocol(se.entry.plugin, se.entry.protocol);
                let (proto, flag) = (p.name.clone(), p.flag.clone());
                nodes.insert(src.clone());
                nodes.insert(dst.clone());
                let acc = edges.entry((src, dst, proto, flag)).or_default();
                acc.count += 1;
                if errors.iter().any(|f| f.matches(&se.catalog, &se.entry)) {
                    acc.errors += 1;
                }
                let ts = se.entry.timestamp();
                acc.first = Some(acc.first.map_or(ts, |t| t.min(ts)));
                acc.last = Some(acc.last.map_or(ts, |t| t.max(ts)));
                if se.entry.request.is_some() && se.entry.response.is_some() {
                    acc.sample(se.entry.elapsed_us());
                }
            }
            if scanned >= MAP_MAX_SCAN {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .map_err(|e| async_graphql::Error::new(format!("store: {e}")))?;
    let window = match (from, to) {
        (Some(f), Some(t)) => Some(t.since(f)),
        _ => None,
    };
    let edges = edges
        .into_iter()
        .map(|((source, target, protocol, flag), mut acc)| {
            acc.samples.sort_unstable();
            let span_us = window.unwrap_or_else(|| match (acc.first, acc.last) {
                (Some(f), Some(l)) => l.since(f),
                _ => 0,
            });
            ServiceEdge {
                source,
                target,
                protocol,
                flag,
                count: acc.count.into(),
                errors: acc.errors.into(),
                rate_per_second: acc.count as f64 / (span_us as f64 / 1e6).max(1.0),
                p50_us: percentile(&acc.samples, 0.50).into(),
                p95_us: percentile(&acc.samples, 0.95).into(),
            }
        })
        .collect();
    let nodes = nodes
        .into_iter()
        .map(|id| ServiceNode {
            label: id.clone(),
            id,
            namespace: None,
        })
        .collect();
    Ok(ServiceMap {
        nodes,
        edges,
        scanned: scanned.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.95), 95);
        assert_eq!(percentile(&[7], 0.95), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn reservoir_stays_bounded() {
        let mut acc = EdgeAcc::default();
        for i in 0..(SAMPLES_PER_EDGE as u64 * 5) {
            acc.sample(i);
        }
        assert_eq!(acc.samples.len(), SAMPLES_PER_EDGE);
        // Later values got in: the reservoir is not just the first samples.
        assert!(acc.samples.iter().any(|&s| s >= SAMPLES_PER_EDGE as u64));
    }
}
