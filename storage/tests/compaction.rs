//! Log compaction of a `PartitionLog` over `MemDisk`, against a model: the latest value of
//! every key survives with its offset, older values of a key go, tombstones stay until their
//! delete horizon has passed, offsets only increase, and every state a crash can leave in the
//! middle of a swap recovers to the log before or after it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use gregor_core::batch;
use gregor_core::disk::SharedDisk;
use gregor_core::records::decode_records;
use gregor_storage::{CleanOptions, FaultConfig, LogConfig, MemDisk, PartitionLog};
use proptest::prelude::*;

const DIR: &str = "/data/compacted-0";

fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 1_000, ..LogConfig::default() }
}

fn open(disk: &SharedDisk) -> PartitionLog {
    PartitionLog::open(disk.clone(), dir(), config(), 0).unwrap().0
}

const OPTS: CleanOptions = CleanOptions { dedupe_buffer_bytes: 1 << 20, delete_retention_ms: 10_000, decompressed_bytes_max: 1 << 20 };

/// One record written: its key and value (`None`: a tombstone).
type Write = (u8, Option<u32>);

/// Appends one single-record batch per write; returns `offset -> write`.
fn append_all(log: &mut PartitionLog, writes: &[Write]) -> BTreeMap<i64, Write> {
    let mut out = BTreeMap::new();
    for w in writes {
        let key = format!("key-{}", w.0);
        let value = w.1.map(|v| format!("value-{v}"));
        let mut b = batch::build_simple(0, 1_000, &[(Some(key.as_bytes()), value.as_deref().map(str::as_bytes))]);
        let info = log.append(&mut b, 0, 1_000).unwrap();
        out.insert(info.base_offset, *w);
    }
    log.flush().unwrap();
    out
}

/// Every record the log serves from its start: `(offset, key, value)`.
fn contents(log: &PartitionLog) -> Vec<(i64, u8, Option<u32>)> {
    let data = log.read(log.log_start_offset(), usize::MAX, i64::MAX).unwrap().data;
    let number = |b: &[u8], prefix: &str| std::str::from_utf8(b).unwrap().strip_prefix(prefix).unwrap().parse::<u32>().unwrap();
    let mut out = Vec::new();
    for (h, range) in batch::split(&data).unwrap() {
        batch::validate(&data[range.clone()]).unwrap();
        let d = decode_records(&data[range], &h, 1 << 20).unwrap();
        for r in &d.records {
            out.push((r.offset, number(d.key(r).unwrap(), "key-") as u8, d.value(r).map(|v| number(v, "value-"))));
        }
    }
    out
}

/// What compaction must leave of `written` when it cleaned below `cleaned_to` at `now_ms`, with
/// tombstones first stamped at `stamped_ms` (None: not yet cleaned before): checks `got`.
fn check(got: &[(i64, u8, Option<u32>)], written: &BTreeMap<i64, Write>, cleaned_to: i64) {
    // Offsets only increase, and each record is the one written at its offset.
    for w in got.windows(2) {
        assert!(w[0].0 < w[1].0, "offsets go back: {w:?}");
    }
    for &(o, k, v) in got {
        assert_eq!(written.get(&o), Some(&(k, v)), "offset {o} holds what was written there");
    }
    let latest: BTreeMap<u8, i64> = written.iter().map(|(&o, &(k, _))| (k, o)).collect();
    let present: std::collections::BTreeSet<i64> = got.iter().map(|r| r.0).collect();
    // The latest record of every key is there (tombstones too: their horizon has not passed).
    for (&k, &o) in &latest {
        assert!(present.contains(&o), "latest record of key {k} at {o} is gone");
    }
    // Below the cleaned point, nothing but the latest records of what lies below it (the map
    // covered exactly that).
    let latest_below = latest_below(written, cleaned_to);
    for &(o, k, _) in got.iter().filter(|r| r.0 < cleaned_to) {
        assert_eq!(latest_below[&k], o, "key {k}: an older record at {o} survived cleaning");
    }
    // Everything from the cleaned point on is as written.
    let tail: Vec<i64> = written.keys().copied().filter(|&o| o >= cleaned_to).collect();
    assert_eq!(got.iter().map(|r| r.0).filter(|&o| o >= cleaned_to).collect::<Vec<_>>(), tail);
}

/// Each key's latest offset among the writes below `end`.
fn latest_below(written: &BTreeMap<i64, Write>, end: i64) -> BTreeMap<u8, i64> {
    written.range(..end).map(|(&o, &(k, _))| (k, o)).collect()
}

fn workload(n: u32, keys: u8) -> Vec<Write> {
    (0..n).map(|i| ((i * 7 % u32::from(keys)) as u8, if i % 11 == 10 { None } else { Some(i) })).collect()
}

#[test]
fn the_latest_value_of_every_key_survives_with_its_offset() {
    let mem = MemDisk::new(1, FaultConfig::default());
    let disk: SharedDisk = Arc::new(mem.clone());
    let mut log = open(&disk);
    let written = append_all(&mut log, &workload(400, 12));
    let (segments, leo, size) = (log.segment_count(), log.log_end_offset(), log.size_bytes());
    assert!(segments > 10, "{segments} segments");
    let r = log.clean(leo, 2_000, &OPTS).unwrap().expect("something to clean");
    assert_eq!(r.first_dirty, 0);
    // Groups are made by the segments' sizes before cleaning, as Kafka's: full segments are
    // cleaned one by one the first time, and merged once they have shrunk.
    assert!(r.cleaned_to > 300 && r.segments_after == segments, "{r:?}");
    assert!(r.removed.records > 300, "{r:?}");
    assert!(log.size_bytes() < size / 3, "{} of {size} bytes left", log.size_bytes());
    assert_eq!(log.log_end_offset(), leo, "cleaning never changes the log end");
    check(&contents(&log), &written, r.cleaned_to);
    // Nothing dirty: a second pass does nothing.
    assert_eq!(log.clean(leo, 2_000, &OPTS).unwrap(), None);
    // More writes: the next pass merges the shrunk segments.
    let mut written = written;
    written.extend(append_all(&mut log, &workload(100, 12)));
    let leo = log.log_end_offset();
    let r2 = log.clean(leo, 2_000, &OPTS).unwrap().unwrap();
    assert_eq!(r2.first_dirty, r.cleaned_to);
    assert!(r2.segments_after < r2.segments_before / 3, "{r2:?}");
    check(&contents(&log), &written, r2.cleaned_to);
    // A reopen after a clean close and after a crash serves the same.
    let before = contents(&log);
    log.close().unwrap();
    let log = open(&disk);
    assert_eq!(contents(&log), before);
    drop(log);
    mem.crash();
    let log = open(&disk);
    assert_eq!(contents(&log), before);
}

#[test]
fn tombstones_go_only_after_their_delete_horizon_and_later_writes_are_cleaned_in_later_passes() {
    let mem = MemDisk::new(2, FaultConfig::default());
    let disk: SharedDisk = Arc::new(mem);
    let mut log = open(&disk);
    // Values for keys 0..5, tombstones for keys 0 and 1, then other keys so the tombstones fall
    // in cleaned segments.
    let mut writes: Vec<Write> = (0..100).map(|i| ((i % 5) as u8, Some(i))).collect();
    writes.extend([(0, None), (1, None)]);
    writes.extend((0..100).map(|i| (10 + (i % 4) as u8, Some(500 + i))));
    let mut written = append_all(&mut log, &writes);
    let first = log.clean(log.log_end_offset(), 2_000, &OPTS).unwrap().unwrap();
    let tombstones: Vec<i64> = written.iter().filter(|(_, w)| w.1.is_none()).map(|(&o, _)| o).collect();
    assert!(tombstones.iter().all(|&o| o < first.cleaned_to), "{tombstones:?} below {}", first.cleaned_to);
    let present = |log: &PartitionLog, o: i64| contents(log).iter().any(|r| r.0 == o);
    assert!(tombstones.iter().all(|&o| present(&log, o)), "tombstones stay after their first cleaning");
    assert!(!contents(&log).iter().any(|r| r.1 < 2 && r.2.is_some()), "the values they delete are gone");
    // More writes: a pass just before the horizon keeps them...
    written.extend(append_all(&mut log, &(0..150).map(|i| (50 + (i % 3) as u8, Some(1_000 + i))).collect::<Vec<_>>()));
    let second = log.clean(log.log_end_offset(), 2_000 + OPTS.delete_retention_ms - 1, &OPTS).unwrap().unwrap();
    assert_eq!(second.first_dirty, first.cleaned_to);
    assert_eq!(second.removed.tombstones, 0);
    assert!(tombstones.iter().all(|&o| present(&log, o)));
    check(&contents(&log), &written, second.cleaned_to);
    // ...and one at the horizon removes them.
    written.extend(append_all(&mut log, &(0..150).map(|i| (60 + (i % 3) as u8, Some(2_000 + i))).collect::<Vec<_>>()));
    let third = log.clean(log.log_end_offset(), 2_000 + OPTS.delete_retention_ms, &OPTS).unwrap().unwrap();
    assert_eq!(third.removed.tombstones, 2, "{third:?}");
    assert!(tombstones.iter().all(|&o| !present(&log, o)));
    assert!(!contents(&log).iter().any(|r| r.1 < 2), "nothing of keys 0 and 1 is left");
}

#[test]
fn a_small_dedupe_buffer_cleans_in_several_passes() {
    let mem = MemDisk::new(3, FaultConfig::default());
    let disk: SharedDisk = Arc::new(mem);
    let mut log = open(&disk);
    let written = append_all(&mut log, &workload(300, 40));
    let small = CleanOptions { dedupe_buffer_bytes: 10 * (gregor_storage::cleaner::offset_map::ENTRY_OVERHEAD_BYTES + 6), ..OPTS };
    let mut passes = 0;
    let mut cleaned_to = 0;
    while let Some(r) = log.clean(log.log_end_offset(), 2_000, &small).unwrap() {
        assert!(r.cleaned_to > cleaned_to, "every pass makes progress: {r:?}");
        cleaned_to = r.cleaned_to;
        passes += 1;
        assert!(passes < 100);
    }
    assert!(passes > 2, "{passes} passes");
    // Each pass only compacts its own keys against the clean part; what is certain is that no
    // latest record is lost and offsets only increase.
    let got = contents(&log);
    for w in got.windows(2) {
        assert!(w[0].0 < w[1].0);
    }
    let latest: BTreeMap<u8, i64> = written.iter().map(|(&o, &(k, _))| (k, o)).collect();
    for o in latest.values() {
        assert!(got.iter().any(|r| r.0 == *o));
    }
}

/// The log after the same writes, a first cleaning pass and more writes, on a fresh disk, for
/// comparing crash states (the second pass merges segments).
fn prepared(seed: u64, writes: &[Write]) -> (MemDisk, SharedDisk, BTreeMap<i64, Write>) {
    let mem = MemDisk::new(seed, FaultConfig::default());
    let disk: SharedDisk = Arc::new(mem.clone());
    let mut log = open(&disk);
    let mut written = append_all(&mut log, writes);
    log.clean(log.log_end_offset(), 2_000, &OPTS).unwrap().unwrap();
    written.extend(append_all(&mut log, &writes[..50]));
    log.close().unwrap();
    (mem, disk, written)
}

#[test]
fn every_state_a_crash_leaves_during_a_swap_recovers_to_before_or_after_it() {
    let writes = workload(250, 6);
    // The reference: cleaned to the end.
    let (_ref_mem, ref_disk, written) = prepared(4, &writes);
    let mut log = open(&ref_disk);
    let leo = log.log_end_offset();
    let before_segments: Vec<String> = _ref_mem.peek_dir(&dir()).into_iter().filter(|n| n.ends_with(".log")).collect();
    let r = log.clean(leo, 2_000, &OPTS).unwrap().unwrap();
    let after = contents(&log);
    let after_segments: Vec<String> = _ref_mem.peek_dir(&dir()).into_iter().filter(|n| n.ends_with(".log")).collect();
    drop(log);
    // The first cleaned segment's bytes, and the end of its group: the next segment after it.
    let first = &after_segments[0];
    let first_base: i64 = first.trim_end_matches(".log").parse().unwrap();
    let next_base: i64 = after_segments[1].trim_end_matches(".log").parse().unwrap();
    let first_len = _ref_mem.file_len(&dir().join(first)).unwrap();
    let cleaned_bytes = _ref_mem.peek(&dir().join(first), 0..first_len).unwrap().1;
    let replaced: Vec<&String> = before_segments.iter().filter(|n| {
        let b: i64 = n.trim_end_matches(".log").parse().unwrap();
        b >= first_base && b < next_base
    }).collect();
    assert!(replaced.len() > 1, "the first group replaces several segments: {replaced:?}");
    let staged = |ext: &str| dir().join(format!("{first_base:020}.{next_base:020}.{ext}"));
    let write_file = |disk: &SharedDisk, path: &PathBuf| {
        let f = disk.open(path, true).unwrap();
        f.write_all_at(&cleaned_bytes, 0).unwrap();
        f.sync().unwrap();
    };
    let original = {
        let (_m, d, _) = prepared(4, &writes);
        contents(&open(&d))
    };
    assert_ne!(original, after);
    check(&after, &written, r.cleaned_to);

    // 1. The cleaned file written, not committed: the old log, and the file is gone.
    let (m, d, _) = prepared(4, &writes);
    write_file(&d, &staged("cleaned"));
    let log = open(&d);
    assert_eq!(contents(&log), original);
    assert!(!m.peek_dir(&dir()).iter().any(|n| n.ends_with(".cleaned")));
    drop(log);
    // 2. Committed as a swap, the old segments all there: the swap completes.
    // 3. Some old segments removed already (each prefix of the removals).
    for removed in 0..replaced.len() {
        let (m, d, _) = prepared(4, &writes);
        write_file(&d, &staged("swap"));
        for name in replaced.iter().skip(1).take(removed) {
            d.remove_file(&dir().join(name)).unwrap();
        }
        let log = open(&d);
        let got = contents(&log);
        // The first group is cleaned, the rest as before.
        let expected: Vec<_> = after.iter().filter(|r| r.0 < next_base).chain(original.iter().filter(|r| r.0 >= next_base)).copied().collect();
        assert_eq!(got, expected, "{removed} old segments removed before the crash");
        assert!(!m.peek_dir(&dir()).iter().any(|n| n.ends_with(".swap")));
        // And reopening again changes nothing.
        drop(log);
        assert_eq!(contents(&open(&d)), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    // Random keyed writes and tombstones, cleaning passes at random times with random write and
    // sync failures (a failed pass leaves the log failed: it is reopened after a crash), more
    // writes in between: the model's invariants hold after every pass and every reopen.
    #[test]
    fn compaction_against_a_model_across_failures_and_crashes(
        seed in any::<u64>(),
        rounds in proptest::collection::vec((proptest::collection::vec((0u8..8, proptest::option::weighted(0.85, 0u32..1000)), 1..80), 0u64..30_000, any::<bool>()), 1..6),
    ) {
        let mem = MemDisk::new(seed, FaultConfig { lose_unsynced_on_crash: 0.5, torn_on_crash: 0.3, ..FaultConfig::default() });
        let disk: SharedDisk = Arc::new(mem.clone());
        let mut log = open(&disk);
        let mut written = BTreeMap::new();
        // The last successful pass: where it cleaned to, and each key's latest offset then.
        let mut cleaned_to = 0;
        let mut latest_at_pass: BTreeMap<u8, i64> = BTreeMap::new();
        for (writes, now, faulty) in rounds {
            written.extend(append_all(&mut log, &writes));
            if faulty {
                mem.set_faults(FaultConfig { write_error: 0.05, sync_error: 0.05, lose_unsynced_on_crash: 0.5, torn_on_crash: 0.3, ..FaultConfig::default() });
            }
            let outcome = log.clean(log.log_end_offset(), 1_000 + now as i64, &OPTS);
            mem.set_faults(FaultConfig { lose_unsynced_on_crash: 0.5, torn_on_crash: 0.3, ..FaultConfig::default() });
            match outcome {
                Ok(Some(r)) => {
                    cleaned_to = r.cleaned_to;
                    latest_at_pass = latest_below(&written, r.cleaned_to);
                }
                Ok(None) => {}
                Err(_) => {
                    // A failed pass: crash and reopen; what was flushed is all there.
                    drop(log);
                    mem.crash();
                    log = open(&disk);
                }
            }
            let got = contents(&log);
            for w in got.windows(2) {
                prop_assert!(w[0].0 < w[1].0, "offsets go back: {:?}", w);
            }
            for &(o, k, v) in &got {
                prop_assert_eq!(written.get(&o), Some(&(k, v)));
            }
            let latest: BTreeMap<u8, (i64, Option<u32>)> = written.iter().map(|(&o, &(k, v))| (k, (o, v))).collect();
            for (k, (o, v)) in &latest {
                // A latest tombstone may be gone once its horizon passed; a latest value never.
                if v.is_some() {
                    prop_assert!(got.iter().any(|r| r.0 == *o), "latest value of key {} at {} lost", k, o);
                }
            }
            for &(o, k, _) in got.iter().filter(|r| r.0 < cleaned_to) {
                prop_assert_eq!(latest_at_pass[&k], o, "older record of key {} at {} survived", k, o);
            }
            prop_assert_eq!(log.log_end_offset(), written.keys().next_back().map_or(0, |o| o + 1));
        }
    }
}

#[test]
fn a_pass_runs_step_by_step_with_appends_between_and_gives_up_when_the_log_changes_under_it() {
    use gregor_storage::CleanStep;
    let mem = MemDisk::new(3, FaultConfig::default());
    let disk: SharedDisk = Arc::new(mem.clone());
    let mut log = open(&disk);
    let mut written = append_all(&mut log, &workload(300, 10));
    let leo = log.log_end_offset();
    let mut pass = log.begin_clean(leo, 2_000, &OPTS).expect("dirty");
    let mut steps = 0;
    let report = loop {
        // Appends between steps land above the pass and stay dirty.
        written.extend(append_all(&mut log, &workload(3, 10)));
        match log.clean_step(&mut pass).unwrap() {
            CleanStep::Working { io_bytes } => {
                steps += 1;
                assert!(io_bytes <= 4 * config().segment_bytes, "one segment or one group per step: {io_bytes} bytes");
            }
            CleanStep::Done(r) => break r.expect("cleaned"),
            CleanStep::Abandoned(why) => panic!("abandoned: {why}"),
        }
    };
    assert!(steps > 10, "{steps} steps");
    assert!(report.cleaned_to <= leo);
    check(&contents(&log), &written, report.cleaned_to);
    assert_eq!(log.first_dirty_offset(), report.cleaned_to);

    // Truncation below the section a pass is mapping: the pass is abandoned and the checkpoint
    // stays where it was.
    let mut written = written;
    written.extend(append_all(&mut log, &workload(200, 10)));
    let leo = log.log_end_offset();
    let checkpoint = log.first_dirty_offset();
    let mut pass = log.begin_clean(leo, 3_000, &OPTS).expect("dirty");
    assert!(matches!(log.clean_step(&mut pass).unwrap(), CleanStep::Working { .. }));
    let cut = checkpoint + 40;
    log.truncate_to(cut).unwrap();
    written.retain(|&o, _| o < cut);
    let outcome = loop {
        match log.clean_step(&mut pass).unwrap() {
            CleanStep::Working { .. } => {}
            other => break other,
        }
    };
    assert!(matches!(outcome, CleanStep::Abandoned(_)), "{outcome:?}");
    assert!(log.first_dirty_offset() <= cut);
    check(&contents(&log), &written, checkpoint);
    // A new pass starts over and finishes.
    written.extend(append_all(&mut log, &workload(50, 10)));
    let r = log.clean(log.log_end_offset(), 3_000, &OPTS).unwrap().expect("dirty");
    check(&contents(&log), &written, r.cleaned_to);
}

#[test]
fn a_step_reads_about_eight_mib_even_inside_one_big_segment() {
    use gregor_storage::CleanStep;
    let mem = MemDisk::new(5, FaultConfig::default());
    let disk: SharedDisk = Arc::new(mem.clone());
    let config = LogConfig { segment_bytes: 32 << 20, ..LogConfig::default() };
    let mut log = PartitionLog::open(disk.clone(), dir(), config, 0).unwrap().0;
    // 36 MiB of 4 KiB values over 50 keys: one full 32 MiB segment, then the active one.
    let mut written = BTreeMap::new();
    let pad = "x".repeat(4096);
    for i in 0..9_000u32 {
        let key = format!("key-{}", i % 50);
        let value = format!("value-{i}-{pad}");
        let mut b = batch::build_simple(0, 1_000, &[(Some(key.as_bytes()), Some(value.as_bytes()))]);
        let info = log.append(&mut b, 0, 1_000).unwrap();
        written.insert(info.base_offset, (key, value));
    }
    log.flush().unwrap();
    assert!(log.segment_count() >= 2);
    let mut pass = log.begin_clean(log.log_end_offset(), 2_000, &OPTS).expect("dirty");
    let mut steps = 0;
    loop {
        // An append between steps (the partition is not held across them).
        let mut b = batch::build_simple(0, 1_000, &[(Some(b"key-late".as_slice()), Some(b"late".as_slice()))]);
        log.append(&mut b, 0, 1_000).unwrap();
        match log.clean_step(&mut pass).unwrap() {
            CleanStep::Working { io_bytes } => {
                steps += 1;
                assert!(io_bytes <= 2 * (8 << 20) + 8192, "a step did {io_bytes} bytes of I/O");
            }
            CleanStep::Done(r) => {
                let r = r.expect("cleaned");
                assert!(r.removed.records > 7_000, "{r:?}");
                break;
            }
            CleanStep::Abandoned(why) => panic!("abandoned: {why}"),
        }
    }
    assert!(steps >= 8, "a 32 MiB segment takes several steps to map and to rewrite: {steps}");
    // Every key's latest value is there at its offset.
    let data = log.read(log.log_start_offset(), usize::MAX, i64::MAX).unwrap().data;
    let mut seen: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for (h, range) in batch::split(&data).unwrap() {
        let d = decode_records(&data[range], &h, 1 << 24).unwrap();
        for r in &d.records {
            let k = String::from_utf8(d.key(r).unwrap().to_vec()).unwrap();
            seen.insert(k, (r.offset, String::from_utf8(d.value(r).unwrap().to_vec()).unwrap()));
        }
    }
    let mut latest: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    for (o, (k, v)) in &written {
        latest.insert(k, (*o, v));
    }
    for (k, (o, v)) in latest {
        assert_eq!(seen.get(k).map(|(o, v)| (*o, v.as_str())), Some((o, v)), "latest of {k}");
    }
}
