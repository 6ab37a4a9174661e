//! Alert plugins in the runtime: loading, the contract check, and fault
//! containment (deadline, memory, trap) with quarantine and recovery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use remora_runtime::alert::{wit, AlertInstance, Fault};
use remora_runtime::testing::{plugin_path, secrets_alert_example};
use remora_runtime::{Runtime, RuntimeConfig};

fn config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(std::env::temp_dir().join("remora-runtime-tests-cache")),
        call_deadline: Duration::from_millis(300),
        memory_limit: 32 << 20,
        max_instances: 8,
        quarantine_base: Duration::from_millis(30),
        ..RuntimeConfig::default()
    }
}

fn ep() -> wit::Endpoint {
    wit::Endpoint {
        ip: "127.0.0.1".into(),
        port: 80,
        name: "127.0.0.1".into(),
    }
}

/// Entries 1.. with request field `fault` = each of `faults` ("" for none).
fn batch(first_id: u64, faults: &[&str]) -> wit::EntryBatch {
    wit::EntryBatch {
        names: vec!["test".into(), "fault".into()],
        entries: faults
            .iter()
            .enumerate()
            .map(|(i, f)| wit::AlertEntry {
                id: first_id + i as u64,
                timestamp_us: 0,
                elapsed_us: 0,
                protocol: 0,
                src: ep(),
                dst: ep(),
                request: Some(vec![wit::EntryField {
                    name: 1,
                    value: wit::EntryValue::Str(f.to_string()),
                }]),
                response: None,
            })
            .collect(),
    }
}

fn seen_label(alerts: &[wit::Alert]) -> String {
    alerts[0].labels[0].1.clone()
}

/// An instance of the test plugin that misbehaves on demand.
fn faulty_instance() -> AlertInstance {
    let rt = Arc::new(Runtime::new(config()).unwrap());
    let plugin = rt
        .load_alert_file(&plugin_path("remora-test-alert-faulty"))
        .unwrap();
    AlertInstance::new(rt, Arc::new(plugin))
}

fn wait_out_quarantine(i: &mut AlertInstance) {
    let t0 = Instant::now();
    while i.is_quarantined() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "quarantine never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn faulty_alert_plugins_are_stopped_counted_and_recover() {
    let mut i = faulty_instance();
    assert_eq!(i.plugin().info.name, "test-alert-faulty");
    assert_eq!(i.plugin().info.tick_ms, 1000);

    let ok = i.on_entries(&batch(1, &["", ""])).unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[1].entry_ids, vec![2]);
    assert_eq!(seen_label(&i.on_tick(5).unwrap()), "2");

    let t0 = Instant::now();
    assert_eq!(i.on_entries(&batch(3, &["", "loop"])), Err(Fault::Deadline));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(i.on_entries(&batch(5, &[""])), Err(Fault::Quarantined));
    wait_out_quarantine(&mut i);
    // A fresh instance: the state built before the fault is gone.
    assert_eq!(seen_label(&i.on_tick(6).unwrap()), "0");

    assert_eq!(i.on_entries(&batch(6, &["alloc"])), Err(Fault::Memory));
    wait_out_quarantine(&mut i);
    match i.on_entries(&batch(7, &["trap"])) {
        Err(Fault::Trap(m)) => assert!(m.contains("asked to trap on entry 7"), "{m}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    wait_out_quarantine(&mut i);
    assert_eq!(i.on_entries(&batch(8, &["", "", ""])).unwrap().len(), 3);

    let c = i.counters();
    assert_eq!(c.faults.deadline, 1);
    assert_eq!(c.faults.memory, 1);
    assert_eq!(c.faults.trap, 1);
    assert_eq!(c.quarantined_calls, 1);
    assert_eq!(c.instances_created, 4);
    // two entries, two ticks, three entries
    assert_eq!(c.alerts, 2 + 1 + 1 + 3);
}

/// A guest that never frees (componentize-js keeps every export's argument
/// buffers) reaches its memory limit in time. Its instance is replaced
/// between calls once its memory has grown to three quarters of the limit:
/// no call faults, none is refused, only the plugin's state starts over.
/// Without the renewal, the 124th call here faulted and quarantined it.
#[test]
fn a_leaking_alert_plugin_is_renewed_before_its_limit() {
    let mut i = faulty_instance();
    // 256 KiB kept per call against a 32 MiB limit: 400 calls keep 100 MiB.
    let mut ticks = Vec::new();
    for n in 0..400u64 {
        let alerts = i
            .on_entries(&batch(n + 1, &["leak"]))
            .unwrap_or_else(|f| panic!("call {n} faulted: {f}"));
        assert_eq!(alerts.len(), 1);
        if n % 20 == 19 {
            ticks.push(seen_label(&i.on_tick(0).unwrap()).parse::<u64>().unwrap());
        }
    }
    let c = i.counters();
    assert_eq!(c.faults.total(), 0, "{c:?}");
    assert_eq!(c.quarantined_calls, 0);
    // Renewed at 24 MiB: after 16 calls and at most every ~96.
    assert!((4..=6).contains(&c.renewals), "{c:?}");
    assert_eq!(c.instances_created, c.renewals + 1);
    // The state started over with each renewal: what a tick reports never
    // reaches what an instance could hold before its limit.
    assert!(ticks.iter().all(|&t| t <= 96), "{ticks:?}");
    assert!(ticks.windows(2).any(|w| w[1] < w[0]), "{ticks:?}");
}

/// An instance that is big from its first call and stays so is left alone:
/// renewing it would only throw its state away.
#[test]
fn an_alert_plugin_that_stays_big_is_not_renewed() {
    let mut i = faulty_instance();
    // 100 leaks in the first call: 25 MiB, past the mark at once.
    i.on_entries(&batch(1, &["leak"; 100])).unwrap();
    for n in 0..40u64 {
        i.on_entries(&batch(200 + n, &[""])).unwrap();
    }
    let c = i.counters();
    assert_eq!((c.renewals, c.instances_created), (0, 1), "{c:?}");
}

#[test]
fn a_dissector_is_not_an_alert_plugin() {
    let rt = Runtime::new(config()).unwrap();
    let path = plugin_path("remora-test-lines");
    let err = format!("{:#}", rt.load_alert_file(&path).unwrap_err());
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains("does not export remora:plugin/alerter"),
        "{err}"
    );
}

#[test]
fn the_secrets_example_loads_with_its_prefilter() {
    let rt = Runtime::new(config()).unwrap();
    let p = rt.load_alert_file(&secrets_alert_example()).unwrap();
    assert_eq!(p.info.name, "secrets");
    assert!(p
        .info
        .prefilter
        .as_deref()
        .unwrap()
        .contains("status_code >= 400"));
}
