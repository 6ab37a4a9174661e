//! The adapter `export_alert_plugin!` instantiates: keeps the plugin's state
//! in a thread-local (a component instance is single-threaded) and converts
//! between binding and SDK types. Not a public API.

pub use wit_bindgen;

use crate::alert as a;
use crate::bindings::exports::remora::plugin::alerter as exp;
use crate::bindings::remora::plugin::alert_types as w;
use core::cell::RefCell;
use core::marker::PhantomData;
use std::any::Any;

pub struct Adapter<P>(PhantomData<P>);

thread_local! {
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn with_state<P: a::AlertPlugin, R>(f: impl FnOnce(&mut P) -> R) -> R {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let state = s.get_or_insert_with(|| Box::new(P::new()));
        f(state
            .downcast_mut::<P>()
            .expect("one plugin type per component"))
    })
}

impl<P: a::AlertPlugin> exp::Guest for Adapter<P> {
    fn describe() -> w::AlertPluginInfo {
        let i = P::info();
        w::AlertPluginInfo {
            name: i.name,
            version: i.version,
            prefilter: i.prefilter,
            tick_ms: i.tick_ms,
        }
    }

    fn on_entries(batch: w::EntryBatch) -> Vec<w::Alert> {
        let batch = entry_batch(batch);
        with_state::<P, _>(|p| p.on_entries(&batch))
            .into_iter()
            .map(alert)
            .collect()
    }

    fn on_tick(now_us: i64) -> Vec<w::Alert> {
        with_state::<P, _>(|p| p.on_tick(now_us))
            .into_iter()
            .map(alert)
            .collect()
    }
}

fn endpoint(e: w::Endpoint) -> a::Endpoint {
    a::Endpoint {
        ip: e.ip,
        port: e.port,
        name: e.name,
    }
}

fn fields(f: Vec<w::EntryField>) -> Vec<a::EntryField> {
    f.into_iter()
        .map(|f| a::EntryField {
            name: f.name,
            value: match f.value {
                w::EntryValue::Boolean(b) => a::EntryValue::Boolean(b),
                w::EntryValue::Int(i) => a::EntryValue::Int(i),
                w::EntryValue::Float(x) => a::EntryValue::Float(x),
                w::EntryValue::Str(s) => a::EntryValue::Str(s),
                w::EntryValue::Bytes(b) => a::EntryValue::Bytes(b),
                w::EntryValue::Pair((k, v)) => a::EntryValue::Pair(k, v),
            },
        })
        .collect()
}

fn entry_batch(b: w::EntryBatch) -> a::EntryBatch {
    a::EntryBatch {
        names: b.names,
        entries: b
            .entries
            .into_iter()
            .map(|e| a::AlertEntry {
                id: e.id,
                timestamp_us: e.timestamp_us,
                elapsed_us: e.elapsed_us,
                protocol: e.protocol,
                src: endpoint(e.src),
                dst: endpoint(e.dst),
                request: e.request.map(fields),
                response: e.response.map(fields),
            })
            .collect(),
    }
}

fn alert(x: a::Alert) -> w::Alert {
    w::Alert {
        rule: x.rule,
        severity: match x.severity {
            a::Severity::Info => w::Severity::Info,
            a::Severity::Warning => w::Severity::Warning,
            a::Severity::Critical => w::Severity::Critical,
        },
        summary: x.summary,
        entry_ids: x.entry_ids,
        labels: x.labels,
    }
}
