//! Unit-level behaviour of `PartitionLog` over `MemDisk`: offsets, reads, rolling, retention,
//! checkpoints, timestamps, shutdown and crash recovery.

use std::path::PathBuf;
use std::sync::Arc;

use gregor_core::batch::{self, BatchHeader};
use gregor_core::disk::SharedDisk;
use gregor_storage::{FaultConfig, LogConfig, LogError, MemDisk, PartitionLog, TimestampType};

const DIR: &str = "/data/topic-0";

fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

fn new_disk() -> (MemDisk, SharedDisk) {
    let d = MemDisk::new(42, FaultConfig::default());
    (d.clone(), Arc::new(d))
}

fn open(disk: &SharedDisk, config: LogConfig, now_ms: i64) -> PartitionLog {
    PartitionLog::open(disk.clone(), dir(), config, now_ms).unwrap().0
}

/// A batch of `records` records with `value_len`-byte values and timestamp `ts`.
fn make_batch(records: usize, value_len: usize, ts: i64, tag: u8) -> Vec<u8> {
    let value = vec![tag; value_len];
    type Rec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
    let recs: Vec<Rec> = (0..records).map(|_| (None, Some(&value[..]))).collect();
    batch::build_simple(0, ts, &recs)
}

fn batches_of(data: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let h = batch::validate(&data[pos..pos + BatchHeader::parse(&data[pos..]).unwrap().total_len()]).unwrap();
        out.push((h, data[pos..pos + h.total_len()].to_vec()));
        pos += h.total_len();
    }
    out
}

fn read_all_batches(log: &PartitionLog) -> Vec<(BatchHeader, Vec<u8>)> {
    let r = log.read(log.log_start_offset(), usize::MAX, i64::MAX).unwrap();
    batches_of(&r.data)
}

fn seg_path(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.log"))
}

#[test]
fn append_read_round_trip_assigns_offsets() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, LogConfig::default(), 1000);
    let mut stored = Vec::new();
    for i in 0..5u8 {
        let mut b = make_batch(1 + i as usize, 10, 1000 + i as i64, i);
        let info = log.append(&mut b, 3, 2000).unwrap();
        assert_eq!(info.log_append_time_ms, -1);
        assert_eq!(info.last_offset - info.base_offset, i as i64);
        let h = batch::validate(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (info.base_offset, 3));
        stored.push(b);
    }
    assert_eq!(log.log_end_offset(), 15);
    let r = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(&r.data[..], &stored.concat()[..], "bytes differ from what was appended");
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 15));
    // Two batches in one append call get consecutive offsets.
    let mut two = [make_batch(2, 5, 1, 9), make_batch(3, 5, 1, 9)].concat();
    let info = log.append(&mut two, 4, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (15, 19));
    let bs = batches_of(&two);
    assert_eq!((bs[0].0.base_offset, bs[1].0.base_offset), (15, 17));
}

#[test]
fn read_from_middle_of_batch_limits_and_high_watermark() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, LogConfig::default(), 0);
    let mut stored = Vec::new();
    for i in 0..4 {
        let mut b = make_batch(3, 100, 0, i);
        log.append(&mut b, 0, 0).unwrap();
        stored.push(b);
    }
    // Offset 4 is inside the second batch (3..=5): that whole batch comes first.
    let r = log.read(4, usize::MAX, i64::MAX).unwrap();
    assert_eq!(&r.data[..], &stored[1..].concat()[..]);
    // max_bytes smaller than one batch still returns exactly one batch (KIP-74).
    let r = log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(&r.data[..], &stored[0][..]);
    let r = log.read(0, 0, i64::MAX).unwrap();
    assert_eq!(&r.data[..], &stored[0][..]);
    // max_bytes of two and a half batches returns two.
    let r = log.read(0, stored[0].len() * 5 / 2, i64::MAX).unwrap();
    assert_eq!(&r.data[..], &stored[..2].concat()[..]);
    // High watermark 8 (exclusive): batches ending at 2 and 5 qualify; 6..=8 does not.
    let r = log.read(0, usize::MAX, 8).unwrap();
    assert_eq!(&r.data[..], &stored[..2].concat()[..]);
    let r = log.read(6, usize::MAX, 8).unwrap();
    assert!(r.data.is_empty());
    // End of log is empty; beyond is out of range.
    assert!(log.read(12, 100, i64::MAX).unwrap().data.is_empty());
    assert!(matches!(log.read(13, 100, i64::MAX), Err(LogError::OffsetOutOfRange { offset: 13, .. })));
}

#[test]
fn rolls_by_size_and_time_and_reads_across_segments() {
    let (_m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 500, segment_ms: 10_000, index_interval_bytes: 100, ..LogConfig::default() };
    let mut log = open(&disk, cfg, 0);
    let mut stored = Vec::new();
    for i in 0..10 {
        let mut b = make_batch(2, 50, i, i as u8);
        log.append(&mut b, 0, 0).unwrap();
        stored.push(b);
    }
    // 175-byte batches, two per 500-byte segment.
    assert_eq!(log.segment_count(), 5, "{:?}", log.segment_base_offsets());
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8, 12, 16]);
    assert_eq!(&log.read(0, usize::MAX, i64::MAX).unwrap().data[..], &stored.concat()[..]);
    for off in 0..20 {
        let r = log.read(off, 1, i64::MAX).unwrap();
        assert_eq!(&r.data[..], &stored[off as usize / 2][..], "read at {off}");
    }
    // Time roll: the active segment is older than segment.ms.
    let mut b = make_batch(1, 10, 0, 0);
    log.append(&mut b, 0, 5_000).unwrap();
    assert_eq!(log.segment_count(), 5, "young and not full: no roll");
    let mut b = make_batch(1, 10, 0, 0);
    log.append(&mut b, 0, 10_001).unwrap();
    assert_eq!(log.segment_count(), 6, "time roll");
    assert_eq!(log.segment_base_offsets().last(), Some(&21));
}

#[test]
fn message_too_large_writes_nothing() {
    let (m, disk) = new_disk();
    let cfg = LogConfig { max_message_bytes: 200, ..LogConfig::default() };
    let mut log = open(&disk, cfg, 0);
    let mut ok = make_batch(1, 10, 0, 1);
    let big = make_batch(1, 300, 0, 2);
    let mut both = [ok.clone(), big].concat();
    assert!(matches!(log.append(&mut both, 0, 0), Err(LogError::MessageTooLarge { max: 200, .. })));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(m.file_len(&seg_path(0)).unwrap(), 0);
    log.append(&mut ok, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    // A corrupt input batch is refused too.
    let mut bad = make_batch(1, 10, 0, 1);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(matches!(log.append(&mut bad, 0, 0), Err(LogError::Corrupt(_))));
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn log_append_time_patches_timestamps() {
    let (_m, disk) = new_disk();
    let cfg = LogConfig { timestamp_type: TimestampType::LogAppendTime, ..LogConfig::default() };
    let mut log = open(&disk, cfg, 0);
    let mut b = make_batch(2, 10, 111, 1);
    let info = log.append(&mut b, 0, 777_000).unwrap();
    assert_eq!(info.log_append_time_ms, 777_000);
    let got = read_all_batches(&log);
    assert_eq!(got[0].0.max_timestamp, 777_000);
    assert_ne!(got[0].0.attributes & batch::ATTR_LOG_APPEND_TIME, 0);
}

#[test]
fn timestamp_lookups() {
    let (_m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 300, index_interval_bytes: 1, ..LogConfig::default() };
    let mut log = open(&disk, cfg, 0);
    assert_eq!(log.batch_for_timestamp(0).unwrap(), None);
    assert_eq!(log.batch_with_max_timestamp().unwrap(), None);
    let ts = [100, 300, 200, 300, 250, 50];
    let mut stored = Vec::new();
    for (i, &t) in ts.iter().enumerate() {
        let mut b = make_batch(1, 40, t, i as u8);
        log.append(&mut b, 0, 0).unwrap();
        stored.push(b);
    }
    assert!(log.segment_count() > 1);
    let find = |log: &PartitionLog, t: i64| {
        log.batch_for_timestamp(t).unwrap().map(|b| batch::validate(&b).unwrap().base_offset)
    };
    assert_eq!(find(&log, 0), Some(0));
    assert_eq!(find(&log, 100), Some(0));
    assert_eq!(find(&log, 101), Some(1));
    assert_eq!(find(&log, 300), Some(1));
    assert_eq!(find(&log, 301), None);
    let max = log.batch_with_max_timestamp().unwrap().unwrap();
    assert_eq!(&max[..], &stored[1][..], "first batch with the largest timestamp");
    // Lookups skip batches below the log start.
    log.delete_records_before(2).unwrap();
    assert_eq!(find(&log, 101), Some(2));
    assert_eq!(find(&log, 201), Some(3));
}

#[test]
fn retention_by_time_and_size() {
    let (_m, disk) = new_disk();
    // 170-byte batches, two per segment.
    let cfg = LogConfig { segment_bytes: 400, retention_ms: 1000, ..LogConfig::default() };
    let mut log = open(&disk, cfg.clone(), 0);
    for i in 0..6 {
        let mut b = make_batch(1, 100, i * 100, i as u8);
        log.append(&mut b, 0, 0).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
    // Segment newest timestamps are 100, 300, 500; now - retention = 200.
    let r = log.apply_retention(1_200).unwrap();
    assert_eq!(r.segments_deleted, 1, "only the segment whose newest record (100) is older than 200");
    assert_eq!(log.log_start_offset(), 2);
    assert!(matches!(log.read(1, 100, i64::MAX), Err(LogError::OffsetOutOfRange { .. })));
    assert!(log.read(2, 100, i64::MAX).is_ok());
    // Everything expired: the active segment is rolled and deleted too.
    let r = log.apply_retention(100_000).unwrap();
    assert_eq!(r.segments_deleted, 2);
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (6, 6, 0));
    // Size retention.
    log.set_config(LogConfig { retention_ms: -1, retention_bytes: 500, ..cfg });
    for i in 0..8 {
        let mut b = make_batch(1, 100, i, i as u8);
        log.append(&mut b, 0, 0).unwrap();
    }
    assert_eq!(log.size_bytes(), 8 * 170);
    let r = log.apply_retention(0).unwrap();
    assert_eq!(r.segments_deleted, 2, "1360 bytes: two 340-byte segments go, a third would undershoot 500");
    assert_eq!(log.size_bytes(), 4 * 170);
    assert_eq!(log.log_start_offset(), 10);
    // Restart keeps the log start.
    log.close().unwrap();
    let log = open(&disk, LogConfig::default(), 0);
    assert_eq!(log.log_start_offset(), 10);
}

#[test]
fn delete_records_persists_across_reopen() {
    let (_m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 300, ..LogConfig::default() };
    let mut log = open(&disk, cfg.clone(), 0);
    for i in 0..6 {
        let mut b = make_batch(2, 50, 0, i);
        log.append(&mut b, 0, 0).unwrap();
    }
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    assert!(matches!(log.read(4, 10, i64::MAX), Err(LogError::OffsetOutOfRange { .. })));
    // The batch holding offset 5 (4..=5) is still returned whole.
    let r = log.read(5, 1, i64::MAX).unwrap();
    assert_eq!(batches_of(&r.data)[0].0.base_offset, 4);
    assert!(log.segment_base_offsets()[0] > 0, "segments below the start were deleted");
    assert!(matches!(log.delete_records_before(100), Err(LogError::OffsetOutOfRange { .. })));
    drop(log); // unclean
    let (log, rep) = PartitionLog::open(disk.clone(), dir(), cfg, 0).unwrap();
    assert!(!rep.clean_shutdown);
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(log.log_end_offset(), 12);
}

#[test]
fn clean_close_loads_indexes_and_unclean_rescans() {
    let (_m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 1000, index_interval_bytes: 200, ..LogConfig::default() };
    let mut log = open(&disk, cfg.clone(), 0);
    for i in 0..20 {
        let mut b = make_batch(1, 100, i, i as u8);
        log.append(&mut b, 0, 0).unwrap();
    }
    let before = read_all_batches(&log);
    log.close().unwrap();
    let (log, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), 0).unwrap();
    assert!(rep.clean_shutdown);
    assert_eq!(rep.batches_scanned, 0, "clean shutdown must not scan");
    assert_eq!(rep.log_end_offset, 20);
    assert_eq!(read_all_batches(&log), before);
    for off in 0..20 {
        assert_eq!(batches_of(&log.read(off, 1, i64::MAX).unwrap().data)[0].0.base_offset, off);
    }
    // Untouched since that clean open, the files are still what the close left: dropping the
    // log without a close keeps the shutdown clean.
    drop(log);
    let (mut log, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), 0).unwrap();
    assert!(rep.clean_shutdown, "an untouched log stays clean");
    assert_eq!(rep.batches_scanned, 0);
    // The first change makes it unclean until the next close.
    let mut b = make_batch(1, 100, 20, 20);
    log.append(&mut b, 0, 0).unwrap();
    log.flush().unwrap();
    let before = read_all_batches(&log);
    drop(log); // no close: unclean
    let (log, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), 0).unwrap();
    assert!(!rep.clean_shutdown);
    assert!(rep.batches_scanned > 0, "unclean open scans at least the last segment");
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(read_all_batches(&log), before);
    drop(log);
    // After an unclean open the recovery point is at the end: only the last segment is rescanned.
    let (_log, rep) = PartitionLog::open(disk.clone(), dir(), cfg, 0).unwrap();
    assert!(rep.batches_scanned < 20, "scanned {}", rep.batches_scanned);
}

#[test]
fn truncate_to_removes_records_and_survives_crash() {
    let (m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 300, ..LogConfig::default() };
    let mut log = open(&disk, cfg.clone(), 0);
    let mut stored = Vec::new();
    for i in 0..8 {
        let mut b = make_batch(2, 50, 0, i);
        log.append(&mut b, 0, 0).unwrap();
        stored.push(b);
    }
    log.flush().unwrap();
    // Offset 7 is inside batch 6..=7: it goes, the end becomes 6.
    log.truncate_to(7).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(&log.read(0, usize::MAX, i64::MAX).unwrap().data[..], &stored[..3].concat()[..]);
    let mut b = make_batch(1, 7, 0, 99);
    log.append(&mut b, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 7);
    log.flush().unwrap();
    drop(log);
    m.crash();
    let log = open(&disk, cfg.clone(), 0);
    assert_eq!(&log.read(0, usize::MAX, i64::MAX).unwrap().data[..], &[stored[..3].concat(), b].concat()[..]);
    // Truncating below the log start restarts the log there.
    let mut log = log;
    log.delete_records_before(4).unwrap();
    log.truncate_to(2).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
}

#[test]
fn truncate_fully_and_start_at_restarts_past_the_end_and_survives_crash() {
    let (m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 300, ..LogConfig::default() };
    let mut log = open(&disk, cfg.clone(), 0);
    for i in 0..6 {
        log.append(&mut make_batch(2, 50, 0, i), 0, 0).unwrap();
    }
    log.flush().unwrap();
    // Past the end (a replica installing a snapshot that ends beyond its log).
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert!(log.read(100, usize::MAX, i64::MAX).unwrap().data.is_empty());
    let mut b = make_batch(1, 7, 0, 42);
    log.append(&mut b, 3, 0).unwrap();
    log.flush().unwrap();
    drop(log);
    m.crash();
    let mut log = open(&disk, cfg.clone(), 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 101));
    assert_eq!(&log.read(100, usize::MAX, i64::MAX).unwrap().data[..], &b[..]);
    // Inside the range, too: nothing of the old log is kept.
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert!(log.truncate_fully_and_start_at(-1).is_err());
}

/// Appends `n` batches, syncs them all, closes nothing, and returns what was stored.
fn filled_log(disk: &SharedDisk, cfg: &LogConfig, n: u8) -> Vec<Vec<u8>> {
    let mut log = open(disk, cfg.clone(), 0);
    let mut stored = Vec::new();
    for i in 0..n {
        let mut b = make_batch(2, 60, 0, i);
        log.append(&mut b, 0, 0).unwrap();
        stored.push(b);
    }
    log.flush().unwrap();
    drop(log);
    stored
}

fn recovered(disk: &SharedDisk, cfg: &LogConfig) -> (Vec<(BatchHeader, Vec<u8>)>, gregor_storage::RecoveryReport) {
    let (log, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), 0).unwrap();
    (read_all_batches(&log), rep)
}

fn assert_prefix(got: &[(BatchHeader, Vec<u8>)], stored: &[Vec<u8>], len: usize) {
    assert_eq!(got.len(), len, "recovered {} batches, expected {len}", got.len());
    for (g, s) in got.iter().zip(stored) {
        assert_eq!(&g.1, s, "recovery changed a batch");
    }
}

#[test]
fn torn_tail_is_truncated() {
    let (m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 1000, ..LogConfig::default() };
    let stored = filled_log(&disk, &cfg, 12);
    // 197-byte batches, five per 1000-byte segment: bases 0, 10, 20.
    let path = seg_path(20);
    let len = m.file_len(&path).unwrap();
    let f = disk.open(&path, false).unwrap();
    f.truncate(len - 30).unwrap();
    f.sync().unwrap();
    drop(f);
    let (got, rep) = recovered(&disk, &cfg);
    assert!(rep.truncated_bytes > 0);
    assert_prefix(&got, &stored, 11);
    // Recovery is idempotent and does not invent anything.
    let (got, rep) = recovered(&disk, &cfg);
    assert_eq!(rep.truncated_bytes, 0);
    assert_prefix(&got, &stored, 11);
}

#[test]
fn flipped_bit_in_last_batch_is_truncated() {
    let (m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 1000, ..LogConfig::default() };
    let stored = filled_log(&disk, &cfg, 12);
    let len = m.file_len(&seg_path(20)).unwrap();
    m.flip_bit(&seg_path(20), len - 5, 3).unwrap();
    let (got, _) = recovered(&disk, &cfg);
    assert_prefix(&got, &stored, 11);
}

#[test]
fn flipped_bit_in_middle_batch_truncates_from_there() {
    let (m, disk) = new_disk();
    let cfg = LogConfig { segment_bytes: 1000, ..LogConfig::default() };
    let stored = filled_log(&disk, &cfg, 12);
    // Batch 2 of the first segment (offsets 4..=5), inside its CRC-covered records.
    let pos = stored[0].len() as u64 * 2 + 70;
    m.flip_bit(&seg_path(0), pos, 0).unwrap();
    // The recovery point is at the end, so only a rescan from zero would notice: force it by
    // removing the recovery point checkpoint (as after a crash before it was ever written).
    let _ = disk.remove_file(&dir().join("recovery-point"));
    let (got, rep) = recovered(&disk, &cfg);
    assert_prefix(&got, &stored, 2);
    assert!(rep.truncated_bytes > 0);
    assert_eq!(rep.segments, 1);
}

#[test]
fn corrupt_data_at_rest_is_reported_on_read() {
    let (m, disk) = new_disk();
    let cfg = LogConfig::default();
    let mut log = open(&disk, cfg.clone(), 0);
    let mut stored = Vec::new();
    for i in 0..3 {
        let mut b = make_batch(1, 60, 0, i);
        log.append(&mut b, 0, 0).unwrap();
        stored.push(b);
    }
    log.close().unwrap();
    m.flip_bit(&seg_path(0), stored[0].len() as u64 + 65, 1).unwrap();
    let log = open(&disk, cfg, 0); // clean: indexes loaded, no scan
    assert!(log.read(0, 1, i64::MAX).is_ok());
    assert!(matches!(log.read(1, 1, i64::MAX), Err(LogError::Corrupt(_))));
    // A read that starts before the damaged batch ends in front of it.
    let r = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(&r.data[..], &stored[0][..]);
}

#[test]
fn failed_sync_fails_the_log() {
    let m = MemDisk::new(1, FaultConfig::default());
    let disk: SharedDisk = Arc::new(m.clone());
    let mut log = open(&disk, LogConfig::default(), 0);
    let mut b = make_batch(1, 10, 0, 0);
    log.append(&mut b, 0, 0).unwrap();
    m.set_faults(FaultConfig { sync_error: 1.0, ..Default::default() });
    assert!(matches!(log.flush(), Err(LogError::Io(_))));
    assert!(matches!(log.read(0, 10, i64::MAX), Err(LogError::Failed)));
    let mut b = make_batch(1, 10, 0, 0);
    assert!(matches!(log.append(&mut b, 0, 0), Err(LogError::Failed)));
    m.set_faults(FaultConfig::default());
    let mut log = open(&disk, LogConfig::default(), 0);
    log.mark_failed();
    assert!(matches!(log.delete_records_before(0), Err(LogError::Failed)));
}

#[test]
fn delete_removes_directory() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, LogConfig::default(), 0);
    let mut b = make_batch(1, 10, 0, 0);
    log.append(&mut b, 0, 0).unwrap();
    log.delete().unwrap();
    assert!(!disk.exists(&dir()));
}

/// A new partition costs no sync until its first write; that write makes the segment's name
/// (and the partition directory's) durable before any byte of it counts as flushed. An untouched
/// clean open and close writes nothing at all, and an empty log closes without writing.
#[test]
fn new_partitions_defer_directory_syncs_to_their_first_write() {
    let (m, disk) = new_disk();
    let cfg = LogConfig::default();
    let mut log = open(&disk, cfg.clone(), 0);
    assert!(m.has_unsynced(), "creating the partition synced its directory entries");
    let mut b = make_batch(1, 10, 0, 1);
    log.append(&mut b, 0, 0).unwrap();
    log.flush().unwrap();
    let len = m.file_len(&seg_path(0)).unwrap();
    assert_eq!(m.durability_gap(&seg_path(0), 0..len), None);
    log.close().unwrap();
    // Only the index files may be unsynced after a close (they are checked when loaded): a
    // power loss that takes them still leaves a clean start, which rebuilds and rewrites them.
    m.crash();
    let (log, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), 0).unwrap();
    assert!(rep.clean_shutdown);
    assert_eq!(rep.log_end_offset, 1);
    log.close().unwrap();
    let (log, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), 0).unwrap();
    assert!(rep.clean_shutdown);
    assert_eq!(rep.batches_scanned, 0, "the rebuilt index was not written back");
    // Untouched after a clean open: after a power loss the start is still clean.
    log.close().unwrap();
    m.crash();
    let (_log, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), 0).unwrap();
    assert!(rep.clean_shutdown);
    assert_eq!(rep.log_end_offset, 1);

    // An empty partition that never held a record: closing it writes nothing.
    let (m, disk) = new_disk();
    let log = open(&disk, cfg.clone(), 0);
    log.close().unwrap();
    m.crash();
    let (log, rep) = PartitionLog::open(disk.clone(), dir(), cfg, 0).unwrap();
    assert_eq!((rep.log_end_offset, rep.batches_scanned), (0, 0));
    drop(log);
}
