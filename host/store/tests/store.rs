mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{batch, catalog, expected, ts_of};
use remora_core::Timestamp;
use remora_store::{Order, Scan, Store, StoreConfig, StoreError};

fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
}

fn open(dir: &Path) -> Store {
    Store::open(config(dir)).unwrap().0
}

fn collect(store: &Store, q: &Scan) -> Vec<remora_entry::Entry> {
    let mut out = Vec::new();
    store
        .scan(q, &mut |e| {
            out.push(e.entry.clone());
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

fn ids(store: &Store, q: &Scan) -> Vec<u64> {
    collect(store, q).iter().map(|e| e.id).collect()
}

fn summary_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sum"))
        .collect();
    v.sort();
    v
}

#[test]
fn entries_round_trip_with_every_value_variant_and_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cat = catalog("http");
    let mut entries = batch(1, 600);
    let ack = store.append(&cat, &mut entries).unwrap();
    assert_eq!((ack.first_id, ack.last_id), (1, 600));
    assert_eq!(entries[599].id, 600, "append writes the assigned ids");

    for id in [1, 2, 3, 5, 7, 14, 511, 512, 513, 600] {
        let got = store.get(id).unwrap().expect("stored");
        assert_eq!(got.entry, expected(id, true), "entry {id}");
        assert_eq!(got.catalog.plugins[0].name, "http");
    }
    assert!(store.get(0).unwrap().is_none());
    assert!(store.get(601).unwrap().is_none());

    let summaries = collect(
        &store,
        &Scan {
            order: Order::OldestFirst,
            ..Scan::default()
        },
    );
    let want: Vec<_> = (1..=600).map(|id| expected(id, false)).collect();
    assert_eq!(summaries, want, "summaries keep body metadata, not data");
    let full = collect(
        &store,
        &Scan {
            order: Order::OldestFirst,
            with_bodies: true,
            ..Scan::default()
        },
    );
    let want: Vec<_> = (1..=600).map(|id| expected(id, true)).collect();
    assert_eq!(full, want);
}

#[test]
fn ids_continue_after_reopen_and_old_entries_keep_their_catalog() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.append(&catalog("http"), &mut batch(1, 10)).unwrap();
    }
    let (store, recovery) = Store::open(config(dir.path())).unwrap();
    assert_eq!(recovery.entries, 10);
    assert_eq!(recovery.torn_bytes_cut, 0);
    assert_eq!(recovery.catalogs, 1);
    // A different plugin set from now on.
    let ack = store
        .append(&catalog("http-v2"), &mut batch(11, 5))
        .unwrap();
    assert_eq!((ack.first_id, ack.last_id), (11, 15));
    assert_eq!(
        store.get(3).unwrap().unwrap().catalog.plugins[0].name,
        "http"
    );
    assert_eq!(
        store.get(12).unwrap().unwrap().catalog.plugins[0].name,
        "http-v2"
    );
    // The same catalog content in a new Arc is stored once.
    store.append(&catalog("http"), &mut batch(16, 1)).unwrap();
    assert_eq!(store.stats().catalogs, 2);
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.stats().newest_id, Some(16));
    assert_eq!(
        store.get(16).unwrap().unwrap().catalog.plugins[0].name,
        "http"
    );
    assert_eq!(store.get(13).unwrap().unwrap().entry, expected(13, true));
    let ack = store.append(&catalog("http"), &mut batch(17, 1)).unwrap();
    assert_eq!(ack.first_id, 17);
}

#[test]
fn torn_tail_mid_record_loses_only_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for first in [1, 101, 201] {
            store
                .append(&catalog("http"), &mut batch(first, 100))
                .unwrap();
        }
    }
    let sum = &summary_files(dir.path())[0];
    let len = std::fs::metadata(sum).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(sum)
        .unwrap()
        .set_len(len - 10)
        .unwrap();

    let (store, recovery) = Store::open(config(dir.path())).unwrap();
    assert_eq!(recovery.entries, 200, "the first two batches survive whole");
    assert!(recovery.torn_bytes_cut > 0);
    assert_eq!(store.stats().torn_bytes_cut, recovery.torn_bytes_cut);
    assert_eq!(
        ids(&store, &Scan::default()),
        (1..=200).rev().collect::<Vec<_>>()
    );
    assert_eq!(store.get(200).unwrap().unwrap().entry, expected(200, true));
    // The store keeps working: the cut batch's ids were never durable.
    let ack = store.append(&catalog("http"), &mut batch(201, 3)).unwrap();
    assert_eq!(ack.first_id, 201);
    assert_eq!(store.get(203).unwrap().unwrap().entry, expected(203, true));
    drop(store);
    let (_, recovery) = Store::open(config(dir.path())).unwrap();
    assert_eq!((recovery.entries, recovery.torn_bytes_cut), (203, 0));
}

#[test]
fn multi_frame_batch_is_dropped_whole_when_its_last_frame_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.append(&catalog("http"), &mut batch(1, 10)).unwrap();
        // Three frames (512 entries each at most).
        store
            .append(&catalog("http"), &mut batch(11, 1200))
            .unwrap();
    }
    let sum = &summary_files(dir.path())[0];
    let len = std::fs::metadata(sum).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(sum)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let (store, recovery) = Store::open(config(dir.path())).unwrap();
    assert_eq!(recovery.entries, 10, "no part of the torn batch survives");
    assert!(store.get(11).unwrap().is_none());
}

#[test]
fn garbage_after_the_tail_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.append(&catalog("http"), &mut batch(1, 50)).unwrap();
    }
    let sum = summary_files(dir.path())[0].clone();
    let body = sum.with_extension("body");
    let garbage: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
    for p in [&sum, &body] {
        OpenOptions::new()
            .append(true)
            .open(p)
            .unwrap()
            .write_all(&garbage)
            .unwrap();
    }
    // A plausible-looking prefix: huge length.
    OpenOptions::new()
        .append(true)
        .open(&sum)
        .unwrap()
        .write_all(&u32::MAX.to_le_bytes())
        .unwrap();
    let (store, recovery) = Store::open(config(dir.path())).unwrap();
    assert_eq!(recovery.entries, 50);
    assert_eq!(recovery.torn_bytes_cut, 2004);
    assert_eq!(store.get(50).unwrap().unwrap().entry, expected(50, true));
    store.append(&catalog("http"), &mut batch(51, 1)).unwrap();
    assert_eq!(store.get(51).unwrap().unwrap().entry, expected(51, true));
}

#[test]
fn bit_flip_in_a_frame_is_cut_on_open_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for first in [1, 21, 41] {
            store
                .append(&catalog("http"), &mut batch(first, 20))
                .unwrap();
        }
    }
    let sum = summary_files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&sum).unwrap();
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x40;
    std::fs::write(&sum, &bytes).unwrap();
    let (store, recovery) = Store::open(config(dir.path())).unwrap();
    assert!(
        recovery.entries < 60 && recovery.entries % 20 == 0,
        "{recovery:?}"
    );
    assert!(recovery.torn_bytes_cut > 0);
    let n = ids(&store, &Scan::default()).len() as u64;
    assert_eq!(n, recovery.entries);
}

#[test]
fn size_limit_evicts_oldest_segments_first() {
    let dir = tempfile::tempdir().unwrap();
    let max = 1 << 20;
    let cfg = StoreConfig {
        max_bytes: max,
        segment_bytes: 64 << 10,
        sync: false,
        ..config(dir.path())
    };
    let (store, _) = Store::open(cfg.clone()).unwrap();
    let mut next = 1;
    for _ in 0..600 {
        let ack = store
            .append(&catalog("http"), &mut batch(next, 20))
            .unwrap();
        next = ack.last_id + 1;
        let s = store.stats();
        assert!(s.bytes <= max, "{} > {max}", s.bytes);
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sum" || e == "body"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(on_disk, s.bytes, "stats match the files");
    }
    let s = store.stats();
    assert!(s.evicted_entries > 0 && s.evicted_bytes > 0, "{s:?}");
    assert_eq!(
        s.oldest_id,
        Some(s.evicted_entries + 1),
        "the oldest ids went first"
    );
    assert_eq!(s.newest_id, Some(12_000));
    assert_eq!(s.entries + s.evicted_entries, 12_000);
    assert!(store.get(1).unwrap().is_none());
    let oldest = s.oldest_id.unwrap();
    assert_eq!(
        store.get(oldest).unwrap().unwrap().entry,
        expected(oldest, true)
    );
    let all = ids(
        &store,
        &Scan {
            order: Order::OldestFirst,
            ..Scan::default()
        },
    );
    assert_eq!(all, (oldest..=12_000).collect::<Vec<_>>());
    drop(store);

    // A lower limit on reopen evicts down to it.
    let (store, recovery) = Store::open(StoreConfig {
        max_bytes: 512 << 10,
        ..cfg
    })
    .unwrap();
    assert!(recovery.evicted_segments > 0);
    assert!(store.stats().bytes <= 512 << 10);
    assert_eq!(store.stats().newest_id, Some(12_000));
}

#[test]
fn batch_larger_than_half_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_bytes: 256 << 10,
        sync: false,
        ..config(dir.path())
    };
    let (store, _) = Store::open(cfg).unwrap();
    let mut big = batch(1, 1);
    big[0]
        .response
        .as_mut()
        .unwrap()
        .body
        .as_mut()
        .unwrap()
        .data = vec![0; 200 << 10];
    let err = store.append(&catalog("http"), &mut big).unwrap_err();
    assert!(matches!(err, StoreError::BatchTooLarge { .. }), "{err}");
    assert_eq!(big[0].id, 0, "a refused batch gets no ids");
    assert_eq!(
        store
            .append(&catalog("http"), &mut batch(1, 1))
            .unwrap()
            .first_id,
        1
    );
}

#[test]
fn unknown_protocol_is_refused_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut b = batch(1, 3);
    b[2].protocol = 9;
    let err = store
        .append(&catalog("http"), &mut b)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("entry 2") && err.contains("protocol 9"),
        "{err}"
    );
}

fn in_range(id: u64, from: i64, to: i64) -> bool {
    (from..to).contains(&ts_of(id))
}

#[test]
fn time_range_and_cursor_scans_in_both_orders() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 64 << 10,
        max_bytes: 64 << 20,
        sync: false,
        ..config(dir.path())
    };
    let (store, _) = Store::open(cfg).unwrap();
    let mut next = 1;
    for n in [1, 700, 3, 1500, 40] {
        next = store
            .append(&catalog("http"), &mut batch(next, n))
            .unwrap()
            .last_id
            + 1;
    }
    let total = next - 1;
    assert!(store.stats().segments > 2, "the range crosses segments");

    // Late entries (every 7th) have earlier times than their neighbours;
    // the range must still return exactly the entries inside it.
    let (from, to) = (ts_of(1000) - 3_000, ts_of(1900));
    for order in [Order::OldestFirst, Order::NewestFirst] {
        let q = Scan {
            order,
            from: Some(Timestamp(from)),
            to: Some(Timestamp(to)),
            ..Scan::default()
        };
        let got = ids(&store, &q);
        let mut want: Vec<u64> = (1..=total).filter(|&id| in_range(id, from, to)).collect();
        if order == Order::NewestFirst {
            want.reverse();
        }
        assert!(want.iter().any(|id| id % 7 == 0));
        assert_eq!(got, want, "{order:?}");
    }

    // Paging with the cursor visits every entry exactly once, in order.
    for order in [Order::OldestFirst, Order::NewestFirst] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let mut page = Vec::new();
            let q = Scan {
                order,
                after_id: cursor,
                ..Scan::default()
            };
            store
                .scan(&q, &mut |e| {
                    page.push(e.entry.id);
                    if page.len() == 97 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .unwrap();
            let Some(&last) = page.last() else { break };
            cursor = Some(last);
            seen.extend(page);
        }
        let mut want: Vec<u64> = (1..=total).collect();
        if order == Order::NewestFirst {
            want.reverse();
        }
        assert_eq!(seen, want, "{order:?}");
    }

    // The index skips frames that cannot match.
    let q = Scan {
        after_id: Some(20),
        ..Scan::default()
    };
    let stats = store.scan(&q, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(stats.visited, 19);
    assert!(
        stats.frames_skipped > 0 && stats.frames_read <= 2,
        "{stats:?}"
    );
}

#[test]
fn reader_sees_consistent_entries_while_the_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_bytes: 64 << 10,
        max_bytes: 1 << 20,
        ..config(dir.path())
    };
    let store = Arc::new(Store::open(cfg).unwrap().0);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut next = 1;
            for _ in 0..400 {
                next = store
                    .append(&catalog("http"), &mut batch(next, 25))
                    .unwrap()
                    .last_id
                    + 1;
            }
        })
    };
    let mut scans = 0;
    while !writer.is_finished() || scans == 0 {
        let mut prev = u64::MAX;
        store
            .scan(
                &Scan {
                    with_bodies: true,
                    ..Scan::default()
                },
                &mut |e| {
                    assert!(e.entry.id < prev, "newest first, no repeats");
                    prev = e.entry.id;
                    assert_eq!(e.entry, expected(e.entry.id, true));
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        if let Some(newest) = store.stats().newest_id {
            // Evicted between stats and get is fine; a wrong entry is not.
            if let Some(got) = store.get(newest).unwrap() {
                assert_eq!(got.entry, expected(newest, true));
            }
        }
        scans += 1;
    }
    writer.join().unwrap();
    assert!(scans > 1);
    assert_eq!(store.stats().newest_id, Some(10_000));
}

#[test]
fn crash_with_sigkill_keeps_every_acknowledged_batch() {
    const CHILD: &str = "REMORA_STORE_CRASH_CHILD";
    if let Some(dir) = std::env::var_os(CHILD) {
        // Child: append until killed, announcing each durable batch.
        let store = open(Path::new(&dir));
        let mut next = store.stats().newest_id.unwrap_or(0) + 1;
        let mut out = std::io::stdout().lock();
        for _ in 0..20_000 {
            let ack = store
                .append(&catalog("http"), &mut batch(next, 37))
                .unwrap();
            writeln!(out, "acked {}", ack.last_id).unwrap();
            out.flush().unwrap();
            next = ack.last_id + 1;
        }
        return;
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_with_sigkill_keeps_every_acknowledged_batch",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = 0u64;
    let mut batches = 0;
    while batches < 60 {
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().unwrap();
            batches += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acks already in the pipe were durable too.
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("acked ") {
            acked = n.parse().unwrap();
        }
    }
    let (store, recovery) = Store::open(config(dir.path())).unwrap();
    assert!(recovery.entries >= acked, "{recovery:?} acked {acked}");
    assert_eq!(recovery.entries % 37, 0, "only whole batches survive");
    for id in (1..=acked).step_by(13).chain([acked]) {
        assert_eq!(
            store.get(id).unwrap().expect("acked id present").entry,
            expected(id, true)
        );
    }
    let all = ids(
        &store,
        &Scan {
            order: Order::OldestFirst,
            ..Scan::default()
        },
    );
    assert_eq!(all, (1..=recovery.entries).collect::<Vec<_>>());
    let ack = store
        .append(&catalog("http"), &mut batch(recovery.entries + 1, 2))
        .unwrap();
    assert_eq!(ack.first_id, recovery.entries + 1);
}

#[test]
fn foreign_file_future_version_and_unusable_dir_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let cat_path = dir.path().join("catalogs.rmc");
    let original = std::fs::read(&cat_path).unwrap();

    std::fs::write(&cat_path, b"SQLite format 3\0 and more bytes here....").unwrap();
    let err = Store::open(config(dir.path())).err().unwrap();
    assert!(matches!(err, StoreError::NotOurs { .. }), "{err}");
    assert!(err.to_string().contains("catalogs.rmc"), "{err}");

    let mut future = original.clone();
    future[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&cat_path, &future).unwrap();
    let err = Store::open(config(dir.path())).err().unwrap();
    assert!(
        matches!(err, StoreError::FutureVersion { found: 7, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("catalogs.rmc"), "{err}");
    std::fs::write(&cat_path, &original).unwrap();

    let sum = summary_files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&sum).unwrap();
    bytes[..8].copy_from_slice(b"NOTOURS!");
    std::fs::write(&sum, &bytes).unwrap();
    let err = Store::open(config(dir.path())).err().unwrap().to_string();
    assert!(
        err.contains(sum.to_str().unwrap()) && err.contains("NOTOURS!"),
        "{err}"
    );

    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(config(&file.join("store"))).err().unwrap();
    assert!(matches!(err, StoreError::DirNotWritable { .. }), "{err}");
    assert!(err.to_string().contains("plain-file/store"), "{err}");
}

#[test]
fn second_open_of_the_same_dir_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = Store::open(config(dir.path())).err().unwrap();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    drop(first);
    open(dir.path());
}

#[test]
fn interrupted_segment_creation_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.append(&catalog("http"), &mut batch(1, 5)).unwrap();
    }
    // A crash between creating the next segment's body and summary files.
    std::fs::write(dir.path().join("seg-00000000000000ff.body"), b"REMORAST").unwrap();
    std::fs::write(dir.path().join("seg-00000000000000ff.sum"), b"REMO").unwrap();
    let (store, recovery) = Store::open(config(dir.path())).unwrap();
    assert_eq!(recovery.entries, 5);
    assert_eq!(recovery.torn_bytes_cut, 12);
    assert_eq!(
        store
            .append(&catalog("http"), &mut batch(6, 1))
            .unwrap()
            .first_id,
        6
    );
}

#[test]
fn default_data_dir_follows_xdg() {
    let d = remora_store::default_data_dir();
    assert!(d.ends_with("remora"), "{}", d.display());
}

/// Entry `n` of a sequence whose neighbours differ in shape: long then short
/// values in the same field position, a `Str` where the record before had a
/// `Pair` (and back), more fields then fewer, request or response missing,
/// bodies with and without data or `decoded_from`. A decoder that reuses
/// the previous record's buffers and forgets to clear one shows it here.
fn shifting_shape(n: u64) -> remora_entry::Entry {
    use remora_entry::{Body, Field, Message, Value};
    let mut e = common::entry(n);
    let long = "x".repeat(300 + (n % 5) as usize * 100);
    let str_or_pair = |n: u64, s: &str| {
        if n.is_multiple_of(2) {
            Value::Str(s.to_owned())
        } else {
            Value::Pair(format!("{s}-key"), s.chars().rev().collect())
        }
    };
    if let Some(m) = &mut e.request {
        let first = if n.is_multiple_of(3) {
            long.clone()
        } else {
            "g".into()
        };
        let mut fields = m.fields.to_vec();
        fields[0].value = Value::Str(first);
        fields.truncate(1 + (n % 4) as usize);
        m.fields = fields.into();
        for k in 0..(n % 7) {
            m.fields.push_field(&Field {
                id: 5,
                value: str_or_pair(
                    n + k,
                    if (n + k).is_multiple_of(4) {
                        &long
                    } else {
                        "v"
                    },
                ),
            });
        }
    }
    if let Some(m) = &mut e.response {
        m.fields.truncate((n % 4) as usize);
        m.body = match n % 5 {
            0 => None,
            // Two bodies in a row, so the second overwrites the first's
            // long `decoded_from` and data.
            1 | 2 => Some(Box::new(Body {
                data: if n % 5 == 1 {
                    long.clone().into_bytes()
                } else {
                    b"ok".to_vec()
                },
                original_len: 9_000 + n,
                truncated: n % 5 == 1,
                decoded_from: Some(if n % 5 == 1 {
                    long.clone()
                } else {
                    "br".into()
                }),
            })),
            _ => m.body.take(),
        };
    }
    if n % 13 == 4 {
        e.response = Some(Message {
            ts: Timestamp(ts_of(n) + 7),
            fields: vec![].into(),
            body: None,
        });
        e.standalone = e.request.is_none();
    }
    e
}

#[test]
fn scan_with_reused_buffers_returns_what_get_and_the_writer_have() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cat = catalog("http");
    let mut written: Vec<_> = (1..=1200).map(shifting_shape).collect();
    // Several batches, so frames of different sizes follow each other.
    for chunk in written.chunks_mut(450) {
        store.append(&cat, chunk).unwrap();
    }
    let without_data = |e: &remora_entry::Entry| {
        let mut e = e.clone();
        for m in [&mut e.request, &mut e.response].into_iter().flatten() {
            if let Some(b) = &mut m.body {
                b.data.clear();
            }
        }
        e
    };
    for order in [Order::OldestFirst, Order::NewestFirst] {
        for with_bodies in [false, true] {
            let q = Scan {
                order,
                with_bodies,
                ..Scan::default()
            };
            let mut scanned = collect(&store, &q);
            if order == Order::NewestFirst {
                scanned.reverse();
            }
            assert_eq!(scanned.len(), written.len(), "{order:?}");
            for (got, want) in scanned.iter().zip(&written) {
                let want = if with_bodies {
                    want.clone()
                } else {
                    without_data(want)
                };
                assert_eq!(
                    got, &want,
                    "{order:?} with_bodies={with_bodies} id {}",
                    want.id
                );
            }
        }
    }
    for want in &written {
        let got = store.get(want.id).unwrap().expect("stored");
        assert_eq!(&got.entry, want, "get({})", want.id);
    }
}
