//! Idempotent-producer deduplication in `PartitionLog`: duplicates append nothing and return the
//! original offsets, sequence and epoch violations write nothing, and the producer state survives
//! clean and unclean restarts and stays consistent with truncation and DeleteRecords.

use std::path::PathBuf;
use std::sync::Arc;

use gregor_core::batch::{self, BatchHeader};
use gregor_core::disk::SharedDisk;
use gregor_storage::{AppendOutcome, FaultConfig, LogConfig, LogError, MemDisk, PartitionLog, TimestampType};

const DIR: &str = "/data/idem-0";

fn open(disk: &SharedDisk, config: LogConfig) -> PartitionLog {
    PartitionLog::open(disk.clone(), PathBuf::from(DIR), config, 1_000).unwrap().0
}

fn new_disk() -> (MemDisk, SharedDisk) {
    let d = MemDisk::new(7, FaultConfig::default());
    (d.clone(), Arc::new(d))
}

/// A batch of `n` records from producer `pid` at `epoch` starting at sequence `seq`.
fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let vals: Vec<Vec<u8>> = (0..n).map(|i| format!("p{pid}e{epoch}s{}", seq as usize + i).into_bytes()).collect();
    let recs: Vec<(Option<&[u8]>, Option<&[u8]>)> = vals.iter().map(|v| (None, Some(&v[..]))).collect();
    let mut b = batch::build_simple(0, 5_000, &recs);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn append(log: &mut PartitionLog, mut b: Vec<u8>) -> Result<AppendOutcome, LogError> {
    log.append_checked(&mut b, 0, 5_000)
}

fn appended_at(log: &mut PartitionLog, b: Vec<u8>) -> i64 {
    match append(log, b).unwrap() {
        AppendOutcome::Appended(i) => i.base_offset,
        d => panic!("expected an append, got {d:?}"),
    }
}

fn duplicate_of(log: &mut PartitionLog, b: Vec<u8>) -> i64 {
    match append(log, b).unwrap() {
        AppendOutcome::Duplicate(i) => i.base_offset,
        a => panic!("expected a duplicate, got {a:?}"),
    }
}

fn code(r: Result<AppendOutcome, LogError>) -> i16 {
    match r {
        Err(LogError::Producer(e)) => e.code(),
        other => panic!("expected a producer error, got {other:?}"),
    }
}

fn batch_count(log: &PartitionLog) -> usize {
    let data = log.read(log.log_start_offset(), usize::MAX, i64::MAX).unwrap().data;
    let mut pos = 0;
    let mut n = 0;
    while pos < data.len() {
        pos += BatchHeader::parse(&data[pos..]).unwrap().total_len();
        n += 1;
    }
    n
}

#[test]
fn duplicates_return_the_original_offsets_and_append_nothing() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, LogConfig::default());
    // Interleave with a non-idempotent batch so offsets differ from sequences.
    log.append(&mut batch::build_simple(0, 1, &[(None, Some(b"plain"))]), 0, 1).unwrap();
    assert_eq!(appended_at(&mut log, idem(1, 0, 0, 3)), 1);
    assert_eq!(appended_at(&mut log, idem(1, 0, 3, 2)), 4);
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 0, 3)), 1);
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 3, 2)), 4);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(batch_count(&log), 3);
    // `append` reports the duplicate's original offsets too.
    let info = log.append(&mut idem(1, 0, 3, 2), 0, 9).unwrap();
    assert_eq!((info.base_offset, info.last_offset, info.log_append_time_ms), (4, 5, -1));
    // Window of five: the sixth batch pushes the first out; retrying it is then out of order.
    for i in 0..5 {
        appended_at(&mut log, idem(1, 0, 5 + i, 1));
    }
    assert_eq!(code(append(&mut log, idem(1, 0, 0, 3))), 45);
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 5, 1)), 6);
}

#[test]
fn gaps_and_old_epochs_are_refused_without_writing() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, LogConfig::default());
    appended_at(&mut log, idem(3, 2, 0, 1));
    assert_eq!(code(append(&mut log, idem(3, 2, 2, 1))), 45);
    assert_eq!(code(append(&mut log, idem(3, 1, 1, 1))), 47);
    assert_eq!(code(append(&mut log, idem(3, 3, 5, 1))), 45);
    // A multi-batch append is all or nothing: the second batch has a gap.
    let mut both = idem(3, 2, 1, 1);
    both.extend(idem(3, 2, 3, 1));
    assert_eq!(code(log.append_checked(&mut both, 0, 1)), 45);
    assert_eq!(log.log_end_offset(), 1);
    // In order within one append.
    let mut both = idem(3, 2, 1, 1);
    both.extend(idem(3, 2, 2, 1));
    assert!(matches!(log.append_checked(&mut both, 0, 1).unwrap(), AppendOutcome::Appended(_)));
    // A new epoch starting at 0 is accepted and fences the old one.
    assert_eq!(appended_at(&mut log, idem(3, 3, 0, 1)), 3);
    assert_eq!(code(append(&mut log, idem(3, 2, 3, 1))), 47);
    // An unknown producer may start at any sequence (KIP-360).
    appended_at(&mut log, idem(4, 0, 17, 1));
}

#[test]
fn log_append_time_duplicates_report_the_original_append_time() {
    let (_m, disk) = new_disk();
    let config = LogConfig { timestamp_type: TimestampType::LogAppendTime, ..LogConfig::default() };
    let mut log = open(&disk, config);
    let first = log.append(&mut idem(1, 0, 0, 1), 0, 7_000).unwrap();
    assert_eq!(first.log_append_time_ms, 7_000);
    let dup = log.append(&mut idem(1, 0, 0, 1), 0, 9_000).unwrap();
    assert_eq!((dup.base_offset, dup.log_append_time_ms), (0, 7_000));
}

#[test]
fn state_survives_clean_and_unclean_restarts() {
    let (mem, disk) = new_disk();
    let mut log = open(&disk, LogConfig { segment_bytes: 300, ..LogConfig::default() });
    for i in 0..8 {
        appended_at(&mut log, idem(1, 0, i, 1));
        appended_at(&mut log, idem(2, 5, i * 2, 2));
    }
    assert!(log.segment_count() > 2);
    let before = log.producer_state().clone();
    log.close().unwrap();

    // Clean: from the snapshot.
    let mut log = open(&disk, LogConfig { segment_bytes: 300, ..LogConfig::default() });
    assert_eq!(log.producer_state(), &before);
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 7, 1)), 21);
    appended_at(&mut log, idem(1, 0, 8, 1));
    log.flush().unwrap();
    let before = log.producer_state().clone();

    // Unclean: the snapshot is gone (removed at open), the state is rebuilt from the log.
    drop(log);
    mem.crash();
    let mut log = open(&disk, LogConfig { segment_bytes: 300, ..LogConfig::default() });
    assert_eq!(log.producer_state(), &before);
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 8, 1)), 24);
    assert_eq!(duplicate_of(&mut log, idem(2, 5, 14, 2)), 22);
    assert_eq!(code(append(&mut log, idem(2, 4, 0, 1))), 47);
    log.close().unwrap();

    // A damaged snapshot after a clean shutdown is ignored and the state rebuilt.
    let snap = PathBuf::from(DIR).join("producer-state.snapshot");
    mem.flip_bit(&snap, 10, 1).unwrap();
    let mut log = open(&disk, LogConfig { segment_bytes: 300, ..LogConfig::default() });
    assert_eq!(log.producer_state(), &before);
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 8, 1)), 24);
}

#[test]
fn truncation_and_delete_records_keep_the_state_consistent() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, LogConfig { segment_bytes: 300, ..LogConfig::default() });
    for i in 0..6 {
        assert_eq!(appended_at(&mut log, idem(1, 0, i, 1)), i as i64);
    }
    // Cut batches 4 and 5: their retries are new appends again, not duplicates.
    log.truncate_to(4).unwrap();
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 3, 1)), 3);
    assert_eq!(code(append(&mut log, idem(1, 0, 5, 1))), 45);
    assert_eq!(appended_at(&mut log, idem(1, 0, 4, 1)), 4);
    assert_eq!(appended_at(&mut log, idem(1, 0, 5, 1)), 5);
    appended_at(&mut log, idem(2, 0, 0, 1));

    // DeleteRecords past producer 1's batches keeps its state (KIP-360): a late retry is still
    // recognised as a duplicate and a gap is still refused.
    log.delete_records_before(6).unwrap();
    assert!(log.producer_state().get(1).is_some());
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 5, 1)), 5);
    assert_eq!(code(append(&mut log, idem(1, 0, 42, 1))), 45);
    assert_eq!(duplicate_of(&mut log, idem(2, 0, 0, 1)), 6);

    // Truncating below the log start empties the state.
    log.truncate_to(2).unwrap();
    assert!(log.producer_state().is_empty());
}

#[test]
fn state_of_deleted_batches_survives_a_crash() {
    let (mem, disk) = new_disk();
    let mut log = open(&disk, LogConfig { segment_bytes: 300, ..LogConfig::default() });
    for i in 0..6 {
        assert_eq!(appended_at(&mut log, idem(1, 0, i, 1)), i as i64);
    }
    appended_at(&mut log, idem(2, 0, 0, 1));
    log.delete_records_before(6).unwrap();
    let (files, target) = log.take_unflushed();
    files.iter().for_each(|f| f.sync().unwrap());
    log.mark_flushed(target);
    drop(log);
    mem.crash();
    // Rebuilt from the snapshot taken at the last roll plus the batches after it, not from the
    // log alone (which no longer holds producer 1's batches).
    let mut log = open(&disk, LogConfig { segment_bytes: 300, ..LogConfig::default() });
    assert_eq!(duplicate_of(&mut log, idem(1, 0, 5, 1)), 5);
    assert_eq!(code(append(&mut log, idem(1, 0, 42, 1))), 45);
}
