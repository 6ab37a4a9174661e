//! An alert plugin that traps is stopped, counted and replaced while the
//! entries around it keep flowing; its counters are what `/metrics` shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use remora_alert::plugin::PluginDetector;
use remora_alert::{AlertHub, Detector};
use remora_core::{Endpoint, Timestamp, Transport};
use remora_entry::{Catalog, Entry, Field, FieldType, Message, Value};
use remora_runtime::testing::plugin_path;
use remora_runtime::{Runtime, RuntimeConfig};
use remora_store::StoredEntry;

mod support;
use support::tcp_catalog;

fn catalog() -> Arc<Catalog> {
    tcp_catalog(
        "lines",
        ("LINES", "lines", 7777),
        &[(1, "fault", FieldType::Str)],
    )
}

/// An entry whose request asks the test plugin for `fault` ("" = none).
fn entry(c: &Arc<Catalog>, id: u64, fault: &str) -> Arc<StoredEntry> {
    let ep = Endpoint::new("127.0.0.1".parse().unwrap(), 7777);
    Arc::new(StoredEntry {
        catalog: c.clone(),
        entry: Entry {
            id,
            flow_id: 1,
            plugin: 0,
            protocol: 0,
            transport: Transport::Tcp,
            client: ep,
            server: ep,
            request: Some(Message {
                ts: Timestamp(1_000 * id as i64),
                fields: vec![Field {
                    id: 1,
                    value: Value::Str(fault.into()),
                }]
                .into(),
                body: None,
            }),
            response: None,
            standalone: false,
        },
    })
}

#[test]
fn a_trapping_alert_plugin_is_counted_and_the_next_entries_still_alert() {
    let rt = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let mut d = PluginDetector::load(rt, &plugin_path("remora-test-alert-faulty")).unwrap();
    let c = catalog();
    assert_eq!(d.on_entries(&[entry(&c, 1, ""), entry(&c, 2, "")]).len(), 2);
    assert!(d.on_entries(&[entry(&c, 3, "trap")]).is_empty());
    // Quarantined with back-off (1 s): refused, counted as lost.
    assert!(d.on_entries(&[entry(&c, 4, "")]).is_empty());
    let t0 = Instant::now();
    let mut raised = Vec::new();
    while raised.is_empty() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        raised = d.on_entries(&[entry(&c, 5, "")]);
    }
    assert_eq!(raised.len(), 1, "a fresh instance alerts again");
    assert_eq!(raised[0].entry_ids, vec![5]);

    let s = d.stats().expect("alert plugins publish stats");
    let fault = |k: &str| s.faults.iter().find(|(n, _)| *n == k).unwrap().1;
    assert_eq!(fault("trap"), 1, "{s:?}");
    assert_eq!(fault("deadline") + fault("memory") + fault("malformed"), 0);
    assert!(s.quarantined_calls >= 1, "{s:?}");
    assert_eq!(s.instances_created, 2, "{s:?}");
    // The trap's batch and at least the refused one are lost.
    assert!(s.entries_lost >= 2, "{s:?}");
    assert_eq!(s.entries_seen, s.entries_sent, "no prefilter");

    // What the engine publishes is what the hub reports.
    let hub = AlertHub::new(10, vec![]);
    hub.publish_stats(d.name(), s.clone());
    assert_eq!(hub.counters().detectors[d.name()], s);
}
