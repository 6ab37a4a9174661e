//! Test fixture: an alert plugin that misbehaves on demand. An entry whose
//! request has a field `fault` = "loop" spins forever, "alloc" allocates
//! without bound, "trap" panics, "leak" keeps 256 KiB for good and is
//! otherwise seen (a guest that never frees, as some toolchains' bindings
//! do); every other entry raises one `seen` alert,
//! and each tick raises one `tick` alert carrying the number of entries seen
//! since the instance started (so a test can tell a fresh instance).
//!
//! Uses wit-bindgen directly rather than the SDK so that building it with the
//! dissector test plugins does not unify SDK features across them.

wit_bindgen::generate!({ path: "../../../wit", world: "alert-plugin" });

use exports::remora::plugin::alerter::Guest;
use remora::plugin::alert_types::{Alert, AlertPluginInfo, EntryBatch, EntryValue, Severity};
use std::sync::atomic::{AtomicU64, Ordering};

static SEEN: AtomicU64 = AtomicU64::new(0);

struct Faulty;

fn fault_of(
    batch: &EntryBatch,
    fields: &[remora::plugin::alert_types::EntryField],
) -> Option<String> {
    fields.iter().find_map(|f| match &f.value {
        EntryValue::Str(s)
            if batch.names.get(f.name as usize).map(String::as_str) == Some("fault") =>
        {
            Some(s.clone())
        }
        _ => None,
    })
}

impl Guest for Faulty {
    fn describe() -> AlertPluginInfo {
        AlertPluginInfo {
            name: "test-alert-faulty".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            prefilter: None,
            tick_ms: 1000,
        }
    }

    fn on_entries(batch: EntryBatch) -> Vec<Alert> {
        let mut out = Vec::new();
        for e in &batch.entries {
            match e
                .request
                .as_deref()
                .and_then(|f| fault_of(&batch, f))
                .as_deref()
            {
                Some("loop") => {
                    let mut x = e.id;
                    loop {
                        x = core::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
                Some("alloc") => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 1 << 20]);
                        core::hint::black_box(&hoard);
                    }
                }
                Some("trap") => panic!("asked to trap on entry {}", e.id),
                other => {
                    if other == Some("leak") {
                        core::hint::black_box(Vec::leak(vec![1u8; 256 << 10]));
                    }
                    SEEN.fetch_add(1, Ordering::Relaxed);
                    out.push(Alert {
                        rule: "seen".into(),
                        severity: Severity::Info,
                        summary: format!("entry {}", e.id),
                        entry_ids: vec![e.id],
                        labels: vec![],
                    });
                }
            }
        }
        out
    }

    fn on_tick(now_us: i64) -> Vec<Alert> {
        vec![Alert {
            rule: "tick".into(),
            severity: Severity::Info,
            summary: format!("{now_us}"),
            entry_ids: vec![],
            labels: vec![("seen".into(), SEEN.load(Ordering::Relaxed).to_string())],
        }]
    }
}

export!(Faulty);
