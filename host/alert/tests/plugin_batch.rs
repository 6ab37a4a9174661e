//! The entry-batch the host sends alert plugins.

use remora_alert::plugin;

use std::sync::Arc;

use remora_core::{Endpoint, Timestamp, Transport};
use remora_entry::{Catalog, Entry, Field, FieldType, Message, Value};
use remora_runtime::alert::wit::EntryValue;
use remora_store::StoredEntry;

mod support;
use support::tcp_catalog;

fn catalog() -> Arc<Catalog> {
    tcp_catalog(
        "http1",
        ("HTTP", "http", 80),
        &[
            (1, "path", FieldType::Str),
            (2, "status_code", FieldType::Int),
            (3, "headers", FieldType::StrMap),
        ],
    )
}

fn entry(c: &Arc<Catalog>, id: u64, path: &str, status: i64) -> Arc<StoredEntry> {
    let ep = Endpoint::new("127.0.0.1".parse().unwrap(), 80);
    let msg = |fields| Message {
        ts: Timestamp(1_000 * id as i64),
        fields,
        body: None,
    };
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
            request: Some(msg(vec![
                Field {
                    id: 1,
                    value: Value::Str(path.into()),
                },
                Field {
                    id: 3,
                    value: Value::Pair("host".into(), "a".into()),
                },
                Field {
                    id: 3,
                    value: Value::Pair("accept".into(), "*/*".into()),
                },
            ]
            .into())),
            response: Some(msg(vec![Field {
                id: 2,
                value: Value::Int(status),
            }]
            .into())),
            standalone: false,
        },
    })
}

#[test]
fn a_batch_names_each_field_once_and_keeps_map_members_in_order() {
    let c = catalog();
    let b = plugin::entry_batch(&[entry(&c, 1, "/a", 200), entry(&c, 2, "/b", 403)]);
    assert_eq!(b.names, vec!["http", "path", "headers", "status_code"]);
    assert_eq!(b.entries.len(), 2);
    let e = &b.entries[1];
    assert_eq!(e.id, 2);
    assert_eq!(e.timestamp_us, 2_000);
    assert_eq!(b.names[e.protocol as usize], "http");
    let req = e.request.as_ref().unwrap();
    assert_eq!(req[0].value, EntryValue::Str("/b".into()));
    assert_eq!(req[1].value, EntryValue::Pair(("host".into(), "a".into())));
    assert_eq!(
        req[2].value,
        EntryValue::Pair(("accept".into(), "*/*".into()))
    );
    assert_eq!(req[1].name, req[2].name);
    assert_eq!(e.response.as_ref().unwrap()[0].value, EntryValue::Int(403));
}

#[test]
fn entries_of_different_catalogs_share_a_name_and_unnamed_fields_stay_out() {
    // Two catalogs with the same schema: the names table is keyed by text,
    // so a field named alike in both crosses once.
    let (c1, c2) = (catalog(), catalog());
    let mut odd = entry(&c2, 3, "/c", 500);
    Arc::get_mut(&mut odd)
        .unwrap()
        .entry
        .response
        .as_mut()
        .unwrap()
        .fields
        .push_field(&Field {
            id: 9,
            value: Value::Int(7),
        });
    let b = plugin::entry_batch(&[entry(&c1, 1, "/a", 200), entry(&c2, 2, "/b", 404), odd]);
    assert_eq!(b.names, vec!["http", "path", "headers", "status_code"]);
    let path_of = |i: usize| b.entries[i].request.as_ref().unwrap()[0].name;
    assert_eq!(path_of(0), path_of(1));
    assert_eq!(b.entries[1].protocol, b.entries[0].protocol);
    // Field 9 is not in the catalog: a plugin could not name it.
    let resp = b.entries[2].response.as_ref().unwrap();
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].value, EntryValue::Int(500));
    assert_eq!(b.entries[2].dst.ip, "127.0.0.1");
    assert_eq!(b.entries[2].dst.name, "127.0.0.1");
}
