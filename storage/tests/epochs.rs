//! The partition log's leader epoch cache and follower appends: the cache follows appends,
//! truncation, DeleteRecords, retention and log resets; it survives clean and unclean restarts
//! with identical entries (from the `leader-epoch-checkpoint` file, or rebuilt from the batches);
//! a corrupt or inconsistent checkpoint is ignored. `append_as_follower` stores the leader's
//! batches byte for byte, refuses what does not continue the log, and leaves producer state from
//! which the follower, once leader, deduplicates retries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_core::batch::{self, BatchError, BatchHeader};
use gregor_core::disk::{read_all, write_atomic, Disk, SharedDisk};
use gregor_storage::{AppendOutcome, FaultConfig, LogConfig, LogError, MemDisk, PartitionLog};

const LEADER: &str = "/data/leader/t-0";
const FOLLOWER: &str = "/data/follower/t-0";
const CHECKPOINT: &str = "leader-epoch-checkpoint";

fn new_disk() -> (MemDisk, SharedDisk) {
    let d = MemDisk::new(11, FaultConfig::default());
    (d.clone(), Arc::new(d))
}

fn open_at(disk: &SharedDisk, dir: &str, config: &LogConfig) -> (PartitionLog, gregor_storage::RecoveryReport) {
    PartitionLog::open(disk.clone(), PathBuf::from(dir), config.clone(), 1_000).unwrap()
}

fn open(disk: &SharedDisk, config: &LogConfig) -> PartitionLog {
    open_at(disk, LEADER, config).0
}

type Rec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn small() -> LogConfig {
    LogConfig { segment_bytes: 300, ..LogConfig::default() }
}

/// A plain batch of `records` records with 40-byte values.
fn plain(records: usize, tag: u8) -> Vec<u8> {
    let value = [tag; 40];
    let recs: Vec<Rec> = (0..records).map(|_| (None, Some(&value[..]))).collect();
    batch::build_simple(0, 5_000, &recs)
}

/// A batch of `n` records from idempotent producer `pid` at `epoch` from sequence `seq`.
fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let vals: Vec<Vec<u8>> = (0..n).map(|i| format!("p{pid}e{epoch}s{}", seq as usize + i).into_bytes()).collect();
    let recs: Vec<Rec> = vals.iter().map(|v| (None, Some(&v[..]))).collect();
    let mut b = batch::build_simple(0, 5_000, &recs);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn all_bytes(log: &PartitionLog) -> Vec<u8> {
    log.read(log.log_start_offset(), usize::MAX, i64::MAX).unwrap().data.to_vec()
}

/// The byte ranges of the whole batches in `data`.
fn spans(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let len = BatchHeader::parse(&data[pos..]).unwrap().total_len();
        out.push(pos..pos + len);
        pos += len;
    }
    out
}

/// Appends `(records, leader epoch)` batches through the leader path; returns the log end.
fn append_epochs(log: &mut PartitionLog, batches: &[(usize, i32)]) -> i64 {
    for (i, &(records, epoch)) in batches.iter().enumerate() {
        log.append(&mut plain(records, i as u8), epoch, 2_000).unwrap();
    }
    log.log_end_offset()
}

fn checkpoint_path(dir: &str) -> PathBuf {
    Path::new(dir).join(CHECKPOINT)
}

fn checkpoint_text(mem: &MemDisk, dir: &str) -> String {
    String::from_utf8(read_all(mem, &checkpoint_path(dir)).unwrap()).unwrap()
}

#[test]
fn appends_assign_each_new_epoch_at_its_first_offset() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, &small());
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.epoch_end_offset(0), (-1, -1));
    // Epoch 0 at 0..3, epoch 2 at 3..6, epoch 5 at 6..8.
    let leo = append_epochs(&mut log, &[(2, 0), (1, 0), (3, 2), (2, 5)]);
    assert_eq!(leo, 8);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 3), (5, 6)]);
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.epoch_start_offset(2), Some(3));
    assert_eq!(log.epoch_start_offset(1), None);
    // Kafka's endOffsetFor, with the log end for the latest epoch.
    assert_eq!(log.epoch_end_offset(5), (5, 8));
    assert_eq!(log.epoch_end_offset(0), (0, 3));
    assert_eq!(log.epoch_end_offset(1), (0, 3));
    assert_eq!(log.epoch_end_offset(4), (2, 6));
    assert_eq!(log.epoch_end_offset(6), (-1, -1));
    assert_eq!(log.epoch_end_offset(-1), (-1, -1));
    // A leader append with an older epoch is stamped as asked but starts no epoch.
    log.append(&mut plain(1, 9), 3, 2_000).unwrap();
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 3), (5, 6)]);
    // Several batches of one append: one entry, at the first one.
    let mut two = [plain(1, 1), plain(2, 2)].concat();
    log.append(&mut two, 7, 2_000).unwrap();
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 3), (5, 6), (7, 9)]);
}

#[test]
fn truncation_and_log_start_moves_follow_kafka() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, &small());
    // Epoch 1 at 0..4, epoch 2 at 4..6, epoch 3 at 6..10.
    append_epochs(&mut log, &[(2, 1), (2, 1), (2, 2), (2, 3), (2, 3)]);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 4), (3, 6)]);
    // Cut inside epoch 3's first batch: its entry goes with it.
    log.truncate_to(7).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 4)]);
    assert_eq!(log.epoch_end_offset(2), (2, 6));
    // A new leader's epoch starts at the new end.
    append_epochs(&mut log, &[(2, 4)]);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 4), (4, 6)]);
    // DeleteRecords inside a batch: the epoch that wrote that offset now starts there.
    log.delete_records_before(3).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 3), (2, 4), (4, 6)]);
    log.delete_records_before(5).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 5), (4, 6)]);
    // Emptied by DeleteRecords: the latest epoch is kept at the log end (Kafka).
    log.delete_records_before(8).unwrap();
    assert_eq!(log.epoch_entries(), vec![(4, 8)]);
    assert_eq!(log.epoch_end_offset(4), (4, 8));
    // Truncating below the log start empties the log: Kafka clears the cache.
    log.truncate_to(2).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert_eq!(log.epoch_entries(), vec![]);
    append_epochs(&mut log, &[(1, 6)]);
    assert_eq!(log.epoch_entries(), vec![(6, 2)]);
    log.truncate_fully_and_start_at(50).unwrap();
    assert_eq!(log.epoch_entries(), vec![]);
    assert_eq!(log.latest_epoch(), None);
}

#[test]
fn retention_moves_the_first_entry_to_the_new_log_start() {
    let (_m, disk) = new_disk();
    let mut log = open(&disk, &small());
    for (i, epoch) in [0, 0, 1, 1, 1, 2, 2, 2].into_iter().enumerate() {
        log.append(&mut plain(1, i as u8), epoch, 2_000).unwrap();
    }
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 2), (2, 5)]);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "segments {bases:?}");
    log.set_config(LogConfig { retention_bytes: (log.size_bytes() / 2) as i64, ..small() });
    let rep = log.apply_retention(3_000).unwrap();
    assert!(rep.segments_deleted > 0);
    let start = log.log_start_offset();
    let want: Vec<(i32, i64)> = [(0, 0), (1, 2), (2, 5)]
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| [2i64, 5, i64::MAX][i] > start)
        .map(|(_, (e, o))| (e, i64::max(o, start)))
        .collect();
    assert_eq!(log.epoch_entries(), want);
    assert_eq!(log.epoch_entries()[0].1, start);
}

#[test]
fn clean_restart_uses_the_checkpoint_and_unclean_restart_rebuilds_the_same_entries() {
    let (mem, disk) = new_disk();
    let cfg = small();
    let mut log = open(&disk, &cfg);
    append_epochs(&mut log, &[(2, 0), (2, 0), (2, 3), (2, 3), (1, 4), (3, 7)]);
    log.delete_records_before(1).unwrap();
    let want = vec![(0, 1), (3, 4), (4, 8), (7, 9)];
    assert_eq!(log.epoch_entries(), want);
    log.close().unwrap();
    // Kafka's text format.
    assert_eq!(checkpoint_text(&mem, LEADER), "0\n4\n0 1\n3 4\n4 8\n7 9\n");
    let (log, rep) = open_at(&disk, LEADER, &cfg);
    assert!(rep.clean_shutdown);
    assert_eq!(rep.batches_scanned, 0);
    assert_eq!(log.epoch_entries(), want);
    // Untouched: closing writes nothing, and the next open is clean again.
    log.close().unwrap();
    let (mut log, rep) = open_at(&disk, LEADER, &cfg);
    assert!(rep.clean_shutdown);
    assert_eq!(log.epoch_entries(), want);

    // Change the log after the checkpoint was written, then lose power: the file is stale and
    // ignored; the header scan rebuilds the truth.
    log.truncate_to(8).unwrap();
    append_epochs(&mut log, &[(2, 9)]);
    log.flush().unwrap();
    let want = vec![(0, 1), (3, 4), (9, 8)];
    assert_eq!(log.epoch_entries(), want);
    drop(log);
    mem.crash();
    let (log, rep) = open_at(&disk, LEADER, &cfg);
    assert!(!rep.clean_shutdown);
    assert_eq!(log.epoch_entries(), want);
    log.close().unwrap();
    assert_eq!(checkpoint_text(&mem, LEADER), "0\n3\n0 1\n3 4\n9 8\n");

    // A process kill (page cache kept) is unclean too.
    let (mut log, _) = open_at(&disk, LEADER, &cfg);
    append_epochs(&mut log, &[(1, 12)]);
    drop(log);
    mem.kill_process();
    let (log, rep) = open_at(&disk, LEADER, &cfg);
    assert!(!rep.clean_shutdown);
    assert_eq!(log.epoch_entries(), vec![(0, 1), (3, 4), (9, 8), (12, 10)]);
}

#[test]
fn entries_beyond_the_recovered_end_are_dropped_after_a_crash() {
    let (mem, disk) = new_disk();
    let cfg = small();
    let mut log = open(&disk, &cfg);
    append_epochs(&mut log, &[(2, 1), (2, 2)]);
    log.flush().unwrap();
    // Never flushed: lost with the power.
    append_epochs(&mut log, &[(2, 3), (2, 4)]);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 2), (3, 4), (4, 6)]);
    drop(log);
    mem.set_faults(FaultConfig { lose_unsynced_on_crash: 1.0, ..FaultConfig::default() });
    mem.crash();
    let (log, rep) = open_at(&disk, LEADER, &cfg);
    assert!(!rep.clean_shutdown);
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 2)]);
    assert_eq!(log.epoch_end_offset(2), (2, 4));
    assert_eq!(log.epoch_end_offset(3), (-1, -1), "above the latest epoch");
}

#[test]
fn a_corrupt_or_inconsistent_checkpoint_is_ignored() {
    let cfg = small();
    let bad: &[&[u8]] = &[
        b"",
        b"garbage",
        b"0\n2\n0 0\n",
        b"0\n2\n3 4\n1 9\n",
        b"0\n2\n1 4\n2 4\n",
        b"1\n1\n0 0\n",
        b"0\n1\n0 0",
        // Well formed but not this log: beyond its end, below its start.
        b"0\n2\n0 0\n5 9999\n",
        b"0\n1\n0 0\n",
        &[0xff, 0xfe, 0x00, b'\n'],
    ];
    for (i, contents) in bad.iter().enumerate() {
        let (mem, disk) = new_disk();
        let mut log = open(&disk, &cfg);
        append_epochs(&mut log, &[(2, 0), (2, 1), (2, 3)]);
        log.delete_records_before(1).unwrap();
        let want = log.epoch_entries();
        assert_eq!(want, vec![(0, 1), (1, 2), (3, 4)]);
        log.close().unwrap();
        write_atomic(&mem, &checkpoint_path(LEADER), contents).unwrap();
        let (log, rep) = open_at(&disk, LEADER, &cfg);
        assert!(rep.clean_shutdown, "case {i}");
        assert_eq!(log.epoch_entries(), want, "case {i}: {:?}", String::from_utf8_lossy(contents));
        // Closing the untouched log writes the rebuilt checkpoint back.
        log.close().unwrap();
        assert_eq!(checkpoint_text(&mem, LEADER), "0\n3\n0 1\n1 2\n3 4\n", "case {i}");
        let (log, rep) = open_at(&disk, LEADER, &cfg);
        assert!(rep.clean_shutdown);
        assert_eq!(log.epoch_entries(), want);
    }
    // A missing file (a log written before the cache existed) is rebuilt the same way.
    let (mem, disk) = new_disk();
    let mut log = open(&disk, &cfg);
    append_epochs(&mut log, &[(2, 0), (2, 5)]);
    log.close().unwrap();
    mem.remove_file(&checkpoint_path(LEADER)).unwrap();
    let (log, _) = open_at(&disk, LEADER, &cfg);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (5, 2)]);
    // Every bit flip of the file is either caught or decodes to something this log rejects
    // or that happens to fit; whatever it is, open never panics and keeps the entries valid.
    log.close().unwrap();
    let good = read_all(&mem, &checkpoint_path(LEADER)).unwrap();
    for at in 0..good.len() as u64 {
        for bit in 0..8 {
            mem.flip_bit(&checkpoint_path(LEADER), at, bit).unwrap();
            let (log, _) = open_at(&disk, LEADER, &cfg);
            let e = log.epoch_entries();
            assert!(e.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{e:?}");
            assert!(e.iter().all(|&(_, o)| (0..=4).contains(&o)), "{e:?}");
            drop(log);
            mem.flip_bit(&checkpoint_path(LEADER), at, bit).unwrap();
        }
    }
}

/// A leader log with several epochs, idempotent producers and plain batches; returns it and
/// all of its bytes.
fn leader_log(disk: &SharedDisk) -> (PartitionLog, Vec<u8>) {
    let mut leader = PartitionLog::open(disk.clone(), PathBuf::from(LEADER), small(), 1_000).unwrap().0;
    leader.append(&mut plain(2, 1), 0, 2_000).unwrap();
    leader.append_checked(&mut idem(7, 0, 0, 3), 0, 2_000).unwrap();
    leader.append_checked(&mut idem(7, 0, 3, 1), 2, 2_000).unwrap();
    leader.append(&mut plain(1, 2), 2, 2_000).unwrap();
    leader.append_checked(&mut idem(8, 4, 0, 2), 5, 2_000).unwrap();
    leader.append_checked(&mut idem(7, 0, 4, 2), 5, 2_000).unwrap();
    let bytes = all_bytes(&leader);
    (leader, bytes)
}

#[test]
fn follower_appends_keep_the_leaders_bytes_offsets_and_epochs() {
    let (_m, disk) = new_disk();
    let (leader, bytes) = leader_log(&disk);
    let mut follower = open_at(&disk, FOLLOWER, &small()).0;
    // Fetched in pieces, each ending with part of the next batch, as a byte-limited fetch does.
    let s = spans(&bytes);
    assert!(s.len() >= 5);
    let mut at = 0;
    for piece in [1usize, 2, s.len() - 3] {
        let first = at;
        let end = s[first + piece - 1].end;
        let cut = (end + 30).min(bytes.len());
        let info = follower.append_as_follower(&bytes[s[first].start..cut], 3_000).unwrap();
        let h = BatchHeader::parse(&bytes[s[first].start..]).unwrap();
        let last = BatchHeader::parse(&bytes[s[first + piece - 1].start..]).unwrap();
        assert_eq!((info.base_offset, info.last_offset, info.log_append_time_ms), (h.base_offset, last.last_offset(), -1));
        assert_eq!(follower.log_end_offset(), last.next_offset());
        at += piece;
    }
    assert_eq!(at, s.len());
    assert_eq!(all_bytes(&follower), bytes, "the follower's log is the leader's, byte for byte");
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.epoch_entries(), vec![(0, 0), (2, 5), (5, 7)]);
    assert_eq!(follower.producer_state(), leader.producer_state());
    // The small segments rolled on the follower too.
    assert!(follower.segment_count() > 1);
}

#[test]
fn follower_appends_refuse_what_does_not_continue_the_log() {
    let (_m, disk) = new_disk();
    let (_leader, bytes) = leader_log(&disk);
    let s = spans(&bytes);
    let mut follower = open_at(&disk, FOLLOWER, &small()).0;
    // A batch starting below the log end overlaps it; within one answer too: nothing is written.
    let mut other = open_at(&disk, "/data/other/t-0", &small()).0;
    other.append_as_follower(&bytes[s[0].clone()], 0).unwrap();
    let r = other.append_as_follower(&bytes[s[0].start..s[1].end], 0);
    assert!(matches!(r, Err(LogError::NonContiguous { expected: 2, got: 0 })), "{r:?}");
    let twice = [&bytes[s[1].clone()], &bytes[s[1].clone()]].concat();
    let r = other.append_as_follower(&twice, 0);
    assert!(matches!(r, Err(LogError::NonContiguous { expected: 5, got: 2 })), "{r:?}");
    assert_eq!(other.log_end_offset(), 2);
    // A bad CRC anywhere refuses the whole answer.
    let mut flipped = bytes[s[0].start..s[1].end].to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(follower.append_as_follower(&flipped, 0), Err(LogError::Corrupt(BatchError::BadCrc { .. }))));
    // A length field too small to be a batch.
    let mut short = bytes[s[0].clone()].to_vec();
    short[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(follower.append_as_follower(&short, 0), Err(LogError::Corrupt(BatchError::BadLength(10)))));
    assert_eq!(follower.log_end_offset(), 0);
    assert!(all_bytes(&follower).is_empty());
    // Empty input and a lone partial batch append nothing.
    for partial in [&bytes[..0], &bytes[..5], &bytes[..40], &bytes[..s[0].end - 1]] {
        let info = follower.append_as_follower(partial, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, -1));
    }
    assert_eq!(follower.log_end_offset(), 0);
    // Leader epochs never go back: within one answer, nor below the log's latest epoch.
    follower.append_as_follower(&bytes[s[0].start..s[2].end], 0).unwrap();
    assert_eq!(follower.latest_epoch(), Some(2));
    let mut old = bytes[s[3].clone()].to_vec();
    old[12..16].copy_from_slice(&1i32.to_be_bytes());
    let r = follower.append_as_follower(&old, 0);
    assert!(matches!(r, Err(LogError::EpochRegression { offset: 6, epoch: 1, latest: 2 })), "{r:?}");
    let mut down = bytes[s[3].start..s[5].end].to_vec();
    let second = s[4].start - s[3].start;
    down[second + 12..second + 16].copy_from_slice(&2i32.to_be_bytes());
    down[12..16].copy_from_slice(&3i32.to_be_bytes());
    let r = follower.append_as_follower(&down, 0);
    assert!(matches!(r, Err(LogError::EpochRegression { epoch: 2, latest: 3, .. })), "{r:?}");
    assert_eq!(follower.log_end_offset(), 6);
    // The right continuation is accepted.
    follower.append_as_follower(&bytes[s[3].start..], 0).unwrap();
    assert_eq!(all_bytes(&follower), bytes);
}

#[test]
fn a_follower_that_becomes_leader_deduplicates_retries_with_the_original_offsets() {
    let (mem, disk) = new_disk();
    let (_leader, bytes) = leader_log(&disk);
    let mut follower = open_at(&disk, FOLLOWER, &small()).0;
    follower.append_as_follower(&bytes, 0).unwrap();
    let check = |log: &mut PartitionLog| {
        // Producer 7's retry of its batch at sequences 3..=3 (offset 5), then 4..=5 (offsets 9..=10).
        match log.append_checked(&mut idem(7, 0, 3, 1), 6, 9_000).unwrap() {
            AppendOutcome::Duplicate(i) => assert_eq!((i.base_offset, i.last_offset), (5, 5)),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        match log.append_checked(&mut idem(7, 0, 4, 2), 6, 9_000).unwrap() {
            AppendOutcome::Duplicate(i) => assert_eq!((i.base_offset, i.last_offset), (9, 10)),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        match log.append_checked(&mut idem(8, 4, 0, 2), 6, 9_000).unwrap() {
            AppendOutcome::Duplicate(i) => assert_eq!((i.base_offset, i.last_offset), (7, 8)),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        // Out of order for a known producer, as on the old leader.
        assert!(matches!(log.append_checked(&mut idem(7, 0, 9, 1), 6, 9_000), Err(LogError::Producer(_))));
    };
    check(&mut follower);
    // Also after the follower's state is rebuilt from its log after a crash.
    follower.flush().unwrap();
    drop(follower);
    mem.crash();
    let (mut follower, rep) = open_at(&disk, FOLLOWER, &small());
    assert!(!rep.clean_shutdown);
    check(&mut follower);
    // The new leader's first append starts its epoch.
    follower.append_checked(&mut idem(7, 0, 6, 1), 6, 9_000).unwrap();
    assert_eq!(follower.epoch_entries(), vec![(0, 0), (2, 5), (5, 7), (6, 11)]);
}

#[test]
fn follower_appends_accept_the_gaps_compaction_leaves_and_recovery_keeps_them() {
    let (mem, disk) = new_disk();
    let (_leader, bytes) = leader_log(&disk);
    let s = spans(&bytes);
    let mut follower = open_at(&disk, FOLLOWER, &small()).0;
    // The leader's cleaner removed offsets 0-1 and 5: a fetch from 0 starts at 2.
    let gapped = [&bytes[s[1].clone()], &bytes[s[3].clone()]].concat();
    follower.append_as_follower(&gapped, 0).unwrap();
    let end = BatchHeader::parse(&bytes[s[3].clone()]).unwrap().next_offset();
    assert_eq!(follower.log_end_offset(), end);
    let read = follower.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(read.data, gapped, "reads from inside a hole start at the next batch");
    // Contiguous appends after the gap need nothing special.
    follower.append_as_follower(&bytes[s[4].clone()], 0).unwrap();
    let end = follower.log_end_offset();
    follower.flush().unwrap();
    drop(follower);
    mem.crash();
    let (follower, rep) = open_at(&disk, FOLLOWER, &small());
    assert!(!rep.clean_shutdown);
    assert_eq!(follower.log_end_offset(), end, "recovery trusts the holes the follower was sent");
    assert_eq!(follower.read(0, 1 << 20, i64::MAX).unwrap().data, [&gapped[..], &bytes[s[4].clone()]].concat());
}

#[test]
fn follower_appends_are_flushed_like_any_other() {
    let (mem, disk) = new_disk();
    let (_leader, bytes) = leader_log(&disk);
    let s = spans(&bytes);
    let mut follower = open_at(&disk, FOLLOWER, &small()).0;
    follower.append_as_follower(&bytes[..s[3].end], 0).unwrap();
    let (files, offset) = follower.take_unflushed();
    assert!(!files.is_empty());
    assert_eq!(offset, follower.log_end_offset());
    for f in files {
        f.sync().unwrap();
    }
    follower.mark_flushed(offset);
    assert_eq!(follower.flushed_offset(), 7);
    // Unflushed and lost with the power.
    follower.append_as_follower(&bytes[s[4].start..], 0).unwrap();
    drop(follower);
    mem.set_faults(FaultConfig { lose_unsynced_on_crash: 1.0, ..FaultConfig::default() });
    mem.crash();
    let (follower, _) = open_at(&disk, FOLLOWER, &small());
    assert_eq!(follower.log_end_offset(), 7);
    assert_eq!(all_bytes(&follower), bytes[..s[3].end]);
    assert_eq!(follower.epoch_entries(), vec![(0, 0), (2, 5)]);
}

#[test]
fn the_checkpoint_is_trusted_only_after_a_clean_shutdown() {
    let (mem, disk) = new_disk();
    let cfg = small();
    let mut log = open(&disk, &cfg);
    append_epochs(&mut log, &[(2, 0), (2, 1), (2, 3)]);
    log.close().unwrap();
    // A file that fits the log but is not what its batches say: after a clean shutdown it is
    // used as it is (no scan)...
    write_atomic(&mem, &checkpoint_path(LEADER), b"0\n1\n0 0\n").unwrap();
    let (log, rep) = open_at(&disk, LEADER, &cfg);
    assert!(rep.clean_shutdown);
    assert_eq!(log.epoch_entries(), vec![(0, 0)]);
    // ...after an unclean one it is ignored and the batches decide.
    let mut log = log;
    log.flush().unwrap();
    append_epochs(&mut log, &[(1, 3)]);
    log.flush().unwrap();
    drop(log);
    write_atomic(&mem, &checkpoint_path(LEADER), b"0\n1\n0 0\n").unwrap();
    mem.crash();
    let (log, rep) = open_at(&disk, LEADER, &cfg);
    assert!(!rep.clean_shutdown);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 2), (3, 4)]);
}

#[test]
fn an_epoch_begun_without_batches_goes_with_a_truncation_to_the_log_end() {
    let (_mem, disk) = new_disk();
    let mut log = open(&disk, &small());
    let end = append_epochs(&mut log, &[(2, 1), (2, 1)]);
    // A leadership at epoch 3 that wrote nothing, then a diverging answer at the log end.
    log.assign_leader_epoch(3);
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(log.epoch_end_offset(1), (1, end));
    log.truncate_to(end).unwrap();
    assert_eq!(log.log_end_offset(), end, "no record goes");
    assert_eq!(log.latest_epoch(), Some(1), "the empty epoch goes");
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
}
