//! The Python dissector example (examples/dissectors/python-memcached, built
//! by scripts/build-dissector-examples.sh) in `remora read`, against
//! tshark's memcache dissector on a capture of memcached 1.6 driven by
//! libmemcached's tools and a raw text-protocol client
//! (tests/fixtures/examples/memcached/record.sh).
//!
//! Agreement: every request and status reply tshark decodes is an entry
//! with the same time, command, key and reply word. Remora has 40 entries
//! more than tshark has request PDUs, each explained below and checked:
//! tshark decodes one memcache request per TCP segment (the first), so
//! the 39 later commands of the pipelined write are not in its view, nor
//! is the command memcached read after a bad data chunk. PDUs of verbs
//! its dissector does not know (`gat`, `touch`, `verbosity`, a bogus one)
//! it shows with an empty command: they match entries of those verbs.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/examples/memcached/memcached.pcap";

fn examples_dir() -> PathBuf {
    let dirs: Vec<PathBuf> = common::target_dirs()
        .into_iter()
        .map(|d| d.join("dissector-examples"))
        .collect();
    dirs.iter()
        .find(|d| d.join("python-memcached.wasm").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "python-memcached.wasm is in none of {dirs:?}; scripts/test.sh builds it \
                 (scripts/build-dissector-examples.sh)"
            )
        })
}

fn builtin_dir() -> PathBuf {
    let dir = common::remora_bin().parent().unwrap().join("plugins");
    assert!(dir.is_dir(), "no built-in plugins at {}", dir.display());
    dir
}

/// `remora read FILE --format jsonl --plugins DIR...`.
fn read(file: &str, dirs: &[PathBuf]) -> (Vec<Value>, common::Run) {
    let file = common::workspace_root().join(file);
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut extra = Vec::new();
    for d in &dirs {
        extra.extend(["--plugins", d.as_str()]);
    }
    common::read_jsonl(&file, &extra)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (as remora writes times) to µs since the
/// epoch.
fn micros(ts: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        ts.get(r)
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("not a remora time: {ts}"))
    };
    assert!(
        ts.len() == 27 && ts.ends_with('Z'),
        "not a remora time: {ts}"
    );
    // Days from the civil date (H. Hinnant's algorithm).
    let (m, d) = (n(5..7), n(8..10));
    let y = n(0..4) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    secs * 1_000_000 + n(20..26)
}

fn field<'a>(e: &'a Value, half: &str, name: &str) -> Option<&'a str> {
    e[half]["fields"][name].as_str()
}

/// One PDU as tshark decodes it: time (µs), source port, from the
/// client?, command, first key, reply word.
#[derive(Debug)]
struct Pdu {
    at: i64,
    port: u64,
    request: bool,
    command: String,
    key: String,
    response: String,
}

fn tshark(file: &str) -> Vec<Pdu> {
    let file = common::workspace_root().join(file);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-Y", "memcache", "-T", "fields", "-E", "separator=/t"])
        .args([
            "-E",
            "occurrence=f",
            "-e",
            "frame.time_epoch",
            "-e",
            "tcp.srcport",
        ])
        .args(["-e", "memcache.command", "-e", "memcache.key"])
        .args(["-e", "memcache.response"])
        .output()
        .expect("tshark (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (secs, frac) = f[0].split_once('.').unwrap();
            Pdu {
                at: secs.parse::<i64>().unwrap() * 1_000_000 + frac[..6].parse::<i64>().unwrap(),
                port: f[1].parse().unwrap(),
                request: f[1] != "11211",
                command: f[2].to_owned(),
                key: f[3].to_owned(),
                response: f[4].to_owned(),
            }
        })
        .collect()
}

/// The entry of `left` that a tshark PDU at `at` is: the one `same` picks
/// at that time, or, for a PDU tshark reassembled from several segments
/// (it reports the last), the latest before it (`true`).
fn take(
    left: &[&Value],
    at: i64,
    time: impl Fn(&Value) -> i64,
    same: impl Fn(&Value) -> bool,
) -> Option<(usize, bool)> {
    if let Some(i) = left.iter().position(|e| same(e) && time(e) == at) {
        return Some((i, false));
    }
    let (i, _) = left
        .iter()
        .enumerate()
        .filter(|(_, e)| same(e) && time(e) < at)
        .max_by_key(|(_, e)| time(e))?;
    Some((i, true))
}

#[test]
fn the_python_memcached_dissector_agrees_with_tshark() {
    let (entries, run) = read(FIXTURE, &[examples_dir()]);
    assert!(
        run.stderr.contains("0 plugin faults") && run.stderr.contains("no drops"),
        "{}",
        run.stderr
    );
    assert!(entries.iter().all(|e| e["protocol"] == "memcached"));
    let pdus = tshark(FIXTURE);

    // Each tshark request PDU takes one entry of its client port (`take`).
    let time = |e: &Value, half: &str| micros(e[half]["timestamp"].as_str().unwrap());
    let mut left: Vec<&Value> = entries.iter().collect();
    let requests: Vec<&Pdu> = pdus.iter().filter(|p| p.request).collect();
    let mut unknown_to_tshark = Vec::new();
    let mut reassembled = Vec::new();
    for p in &requests {
        let same = |e: &Value| {
            e["src"]["port"].as_u64() == Some(p.port)
                && if p.command.is_empty() {
                    !TSHARK_VERBS.contains(&field(e, "request", "command").unwrap())
                } else {
                    field(e, "request", "command") == Some(&p.command)
                        && (p.key.is_empty() || field(e, "request", "key") == Some(&p.key))
                }
        };
        let (i, late) = take(&left, p.at, |e| time(e, "request"), same)
            .unwrap_or_else(|| panic!("{p:?} matches no entry"));
        if late {
            reassembled.push(p.key.clone());
        }
        let e = left.remove(i);
        if p.command.is_empty() {
            unknown_to_tshark.push(field(e, "request", "command").unwrap().to_owned());
        }
    }
    assert_eq!(reassembled, ["big"], "PDUs over several segments");
    unknown_to_tshark.sort();
    assert_eq!(
        unknown_to_tshark,
        ["bogus", "gat", "touch", "touch", "verbosity"],
        "PDUs tshark shows without a command"
    );
    // What tshark did not show. `set bad 0 0 3` sent 7 bytes of data:
    // memcached read 3, found no line end, answered CLIENT_ERROR and read
    // the rest of the line from `ng` on as a command (ERROR); tshark reads
    // the segment as one `set`, remora as memcached did.
    let ng = left
        .iter()
        .position(|e| field(e, "request", "command") == Some("ng"))
        .expect("the `ng` command");
    assert_eq!(field(left[ng], "response", "response"), Some("ERROR"));
    left.remove(ng);
    // And the later commands of the segment that carried a pipelined
    // write, all at the time of its first.
    assert_eq!(left.len(), 39, "{left:#?}");
    let pipelined = time(left[0], "request");
    assert!(left.iter().all(|e| time(e, "request") == pipelined));
    assert_eq!(entries.len(), requests.len() + 40);

    // Replies: every status line tshark decodes is the reply of an entry
    // at that time (or, reassembled, the latest before), with the same
    // word; VALUE replies carry the key. (Reply PDUs with neither, such as
    // the lines of a `stats` reply in segments of their own, say nothing
    // to compare.)
    let mut left: Vec<&Value> = entries
        .iter()
        .filter(|e| e["response"].is_object())
        .collect();
    let (mut status_lines, mut values) = (0, 0);
    let mut reassembled = Vec::new();
    for p in pdus
        .iter()
        .filter(|p| !p.request && (!p.response.is_empty() || !p.key.is_empty()))
    {
        // tshark names the first key of a VALUE reply (and, when it ends
        // in the same PDU, `END` as its response word).
        let same = |e: &Value| {
            if p.key.is_empty() {
                field(e, "response", "response") == Some(&p.response)
            } else {
                field(e, "response", "response") == Some("VALUE")
                    && field(e, "response", "key") == Some(&p.key)
            }
        };
        let (i, late) = take(&left, p.at, |e| time(e, "response"), same)
            .unwrap_or_else(|| panic!("{p:?} is the reply of no entry"));
        if late {
            reassembled.push(p.key.clone());
        }
        left.remove(i);
        status_lines += usize::from(p.key.is_empty());
        values += usize::from(!p.key.is_empty());
    }
    assert_eq!(reassembled, ["big"], "replies over several segments");
    // Of remora's 208 status lines and 67 VALUE replies: the rest came
    // after another reply in the same segment (the pipelined write's 20
    // STORED came in one), where tshark shows the first only.
    assert_eq!(
        (status_lines, values),
        (178, 66),
        "status lines and VALUE replies compared"
    );

    // Pairing: every entry is complete but the requests that get no reply
    // (`quit`, `noreply`), which stand alone.
    let alone: Vec<&str> = entries
        .iter()
        .filter(|e| !e["response"].is_object())
        .map(|e| field(e, "request", "command").unwrap())
        .collect();
    assert_eq!(alone.iter().filter(|c| **c == "quit").count(), 14);
    assert_eq!(alone.len(), 15, "{alone:?}");
    assert!(entries.iter().all(|e| e["complete"] == true));
    let noreply: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"]["fields"]["noreply"] == true)
        .collect();
    assert_eq!(noreply.len(), 1);
    assert_eq!(field(noreply[0], "request", "command"), Some("delete"));

    // The 200,000-byte value: kept up to the body cap (4096), its size
    // recorded, the rest skipped; its retrieval likewise.
    let big = |half: &str, command: &str| {
        entries
            .iter()
            .find(|e| {
                field(e, "request", "command") == Some(command)
                    && field(e, "request", "key") == Some("big")
                    && e[half]["body"].is_object()
            })
            .map(|e| &e[half]["body"])
            .unwrap_or_else(|| panic!("no {command} big with a {half} body"))
    };
    for b in [big("request", "set"), big("response", "get")] {
        assert_eq!(b["size"], 200_000, "{b}");
        assert_eq!(b["captured"], 4096, "{b}");
        assert_eq!(b["truncated"], true, "{b}");
    }
    // Counters of incr/decr are the reply's first word: 5 + 37 - 2.
    let incr: Vec<&str> = entries
        .iter()
        .filter(|e| field(e, "request", "key") == Some("counter"))
        .filter_map(|e| field(e, "response", "response"))
        .collect();
    assert!(incr.starts_with(&["STORED", "42", "40"]), "{incr:?}");
}

/// The verbs tshark's memcache dissector names.
const TSHARK_VERBS: &[&str] = &[
    "set",
    "add",
    "replace",
    "append",
    "prepend",
    "cas",
    "get",
    "gets",
    "incr",
    "decr",
    "delete",
    "stats",
    "flush_all",
    "version",
    "quit",
];

/// Loaded with the built-in plugins, the example claims the memcached
/// flows (no built-in one does) and none of theirs: its probe wants a
/// lower-case verb or an upper-case reply word it knows.
#[test]
fn the_python_memcached_dissector_lives_beside_the_built_in_plugins() {
    let both = [builtin_dir(), examples_dir()];
    let (alone, _) = read(FIXTURE, &[examples_dir()]);
    let (with, _) = read(FIXTURE, &both);
    assert_eq!(with.len(), alone.len());
    assert!(with.iter().all(|e| e["protocol"] == "memcached"));
    for capture in [
        "tests/fixtures/redis/redis.pcap",
        "tests/fixtures/mqtt/mqtt.pcap",
        "tests/fixtures/alerts/burst.pcap",
    ] {
        let (builtin, _) = read(capture, &[builtin_dir()]);
        let (with, _) = read(capture, &both);
        assert!(!builtin.is_empty(), "{capture}");
        assert_eq!(with.len(), builtin.len(), "{capture}");
        assert!(
            with.iter().all(|e| e["protocol"] != "memcached"),
            "{capture}: memcached claimed a flow"
        );
    }
}

/// Random bytes, and requests and replies cut short or spliced with
/// noise, sent to the memcached port: the example reports parse errors
/// at worst, never faults (a Python exception would trap the instance).
#[test]
fn random_and_truncated_bytes_make_the_python_dissector_err_not_fault() {
    const PIECES: &[&[u8]] = &[
        b"set k 0 0 3\r\nabc\r\n",
        b"get a b c\r\n",
        b"VALUE a 0 3\r\nxyz\r\nEND\r\n",
        b"STORED\r\n",
        b"VALUE big 0 99999\r\n",
        b"set big 1 2 99999\r\n",
        b"incr x 99999999999999999999999\r\n",
        b"gat -1 a\r\n",
        b"delete x noreply\r\n",
        b"CLIENT_ERROR bad\r\n",
        b"\r\n",
        b"\n",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let noise = |rng: &mut fastrand::Rng| -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rng.usize(1..24) {
            if rng.bool() {
                let p = PIECES[rng.usize(..PIECES.len())];
                // Whole, or cut anywhere.
                out.extend_from_slice(&p[..rng.usize(1..=p.len())]);
            } else {
                out.extend((0..rng.usize(1..48)).map(|_| rng.u8(..)));
            }
        }
        out
    };
    let tmp = common::TempDir::new("memcached-noise");
    let dirs = [examples_dir()];
    for round in 0..12 {
        // A valid first line each way, so that the probe claims the flow.
        let q = [&b"get warm\r\n"[..], &noise(&mut rng)].concat();
        let r = [&b"END\r\n"[..], &noise(&mut rng)].concat();
        let file = tmp.path().join(format!("noise-{round}.pcap"));
        std::fs::write(&file, common::tcp_flows_pcap(3, 11211, &q, &r)).unwrap();
        let f = file.to_str().unwrap();
        let mut args = vec!["read", f, "--format", "count"];
        for d in &dirs {
            args.extend(["--plugins", d.to_str().unwrap()]);
        }
        let run = common::remora(&args, None);
        run.expect_ok();
        assert!(
            run.stderr.contains("(3 dissected, 0 raw)")
                && run.stderr.contains(" 0 plugin faults")
                && !run.stderr.contains("WARN"),
            "round {round}, request {:?}, reply {:?}:\n{}",
            String::from_utf8_lossy(&q),
            String::from_utf8_lossy(&r),
            run.stderr
        );
    }
}
