//! Damaged captures never crash `remora read`: every fixture capture, mutated
//! the ways real damage and hostile files look (flipped bytes, lengths set to
//! extremes, cut or repeated ranges, truncation), must end in exit code 0 or
//! 2 with a message, within the run bound, never a panic.
//!
//! The mutations are seeded: the same cases run every time, and a failing
//! case is kept under tests/out/mutations/ to reproduce with `remora read`.

mod common;

use std::fs;
use std::path::PathBuf;

use common::*;

/// Cases per run: about 15 s of `remora read` processes.
const CASES: u64 = 600;

fn mutate(data: &mut Vec<u8>, rng: &mut fastrand::Rng) {
    const EXTREMES: [[u8; 4]; 4] = [
        [0xff, 0xff, 0xff, 0xff],
        [0, 0, 0, 0],
        [0x7f, 0xff, 0xff, 0xff],
        [0, 0, 1, 0],
    ];
    let edits = [1, 2, 4, 16, 64][rng.usize(..5)];
    for _ in 0..edits {
        if data.is_empty() {
            return;
        }
        let at = rng.usize(..data.len());
        match rng.u8(..20) {
            0..=9 => data[at] = rng.u8(..),
            10..=12 => {
                let end = (at + 4).min(data.len());
                let with = EXTREMES[rng.usize(..4)];
                data[at..end].copy_from_slice(&with[..end - at]);
            }
            13..=14 => {
                let end = (at + 1 + rng.usize(..64)).min(data.len());
                data.drain(at..end);
            }
            15..=17 => {
                let from = rng.usize(..data.len());
                let end = (from + 1 + rng.usize(..512)).min(data.len());
                let copy = data[from..end].to_vec();
                data.splice(at..at, copy);
            }
            _ => data.truncate(at),
        }
    }
}

#[test]
fn mutated_captures_end_in_a_message_never_a_panic() {
    // The project's fixtures and the shared captures (pcap and pcapng).
    let roots = [
        workspace_root().join("tests/fixtures"),
        shared_dir().join("captures"),
    ];
    let mut seeds: Vec<PathBuf> = roots
        .iter()
        .flat_map(|r| fs::read_dir(r).into_iter().flatten().flatten())
        .filter(|d| d.path().is_dir())
        .flat_map(|d| fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.len() < 3 << 20))
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 20
            && seeds
                .iter()
                .any(|p| p.extension().is_some_and(|x| x == "pcapng")),
        "expected the fixture and shared captures under {roots:?}, found {seeds:?}"
    );
    let originals: Vec<Vec<u8>> = seeds
        .iter()
        .map(|p| fs::read(p).expect("read fixture"))
        .collect();
    let keep = workspace_root().join("tests/out/mutations");
    let tmp = TempDir::new("mutations");
    let case_file = tmp.path().join("case.pcap");
    let case_path = case_file.to_str().expect("utf-8 path");
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let (mut clean, mut refused, mut failures) = (0, 0, Vec::new());
    for case in 0..CASES {
        let pick = rng.usize(..seeds.len());
        let mut data = originals[pick].clone();
        mutate(&mut data, &mut rng);
        fs::write(&case_file, &data).expect("write case");
        let threads = ["1", "2"][rng.usize(..2)];
        let run = remora(
            &[
                "read",
                case_path,
                "--format",
                "jsonl",
                "-q",
                "--threads",
                threads,
            ],
            None,
        );
        match run.code {
            Some(0) if !run.stderr.contains("panicked") => clean += 1,
            Some(2) if run.stderr.contains("remora: error:") => refused += 1,
            _ => {
                fs::create_dir_all(&keep).expect("mutations dir");
                let kept = keep.join(format!("case-{case}.pcap"));
                fs::copy(&case_file, &kept).expect("keep case");
                failures.push(format!(
                    "case {case} (from {}, --threads {threads}) exited {:?}, kept as {}:\n{}",
                    seeds[pick].display(),
                    run.code,
                    kept.display(),
                    tail(&run.stderr, 600)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Both outcomes occur: the mutations reach past the file header, and
    // some break it.
    assert!(clean > 0 && refused > 0, "{clean} read, {refused} refused");
}
