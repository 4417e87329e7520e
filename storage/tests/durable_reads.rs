//! Fsync-before-ack reads: a read bounded by the flushed offset (what the broker's high
//! watermark is under `flush.messages=1`) never returns an offset at or above the flushed offset,
//! and everything it returns survives any later power loss byte for byte (unless DeleteRecords
//! removed it). Flushes are split as the broker's group commit does them (take the files, append
//! more, sync, report), and crashes may land while one is in flight.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use gregor_core::batch::{self, BatchHeader};
use gregor_core::disk::{FileRef, SharedDisk};
use gregor_storage::{FaultConfig, LogConfig, MemDisk, PartitionLog};
use proptest::prelude::*;

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

#[derive(Clone, Debug)]
enum Op {
    Append { records: usize, value_len: usize },
    /// The flusher takes the files to sync (group commit: appends may follow before it syncs).
    TakeFlush,
    /// The flusher's sync finished; it reports the offset it took.
    FinishFlush,
    /// A read from a point between the log start and the flushed offset.
    Read { frac: u8 },
    DeleteRecords { frac: u8 },
    PowerLoss,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..5, 1usize..300).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        2 => Just(Op::TakeFlush),
        2 => Just(Op::FinishFlush),
        3 => any::<u8>().prop_map(|frac| Op::Read { frac }),
        1 => any::<u8>().prop_map(|frac| Op::DeleteRecords { frac }),
        1 => Just(Op::PowerLoss),
    ]
}

fn batches_of(data: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let h = BatchHeader::parse(&data[pos..]).unwrap();
        let b = &data[pos..pos + h.total_len()];
        batch::validate(b).unwrap();
        out.push((h, b.to_vec()));
        pos += h.total_len();
    }
    out
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, flush_messages: 1, ..LogConfig::default() }
}

fn pick(lo: i64, hi: i64, frac: u8) -> i64 {
    lo + (hi - lo) * i64::from(frac) / 255
}

fn run(seed: u64, segment_bytes: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let faults = FaultConfig { torn_on_crash: 0.5, lose_unsynced_on_crash: 0.3, ..FaultConfig::default() };
    let mem = MemDisk::new(seed, faults);
    let disk: SharedDisk = Arc::new(mem.clone());
    let now = 1_000;
    let mut log = PartitionLog::open(disk.clone(), dir(), config(segment_bytes), now).unwrap().0;
    let mut pending: Option<(Vec<FileRef>, i64)> = None;
    // Every batch a read returned, by base offset: it must never change or disappear.
    let mut served: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Append { records, value_len } => {
                let value = vec![b'v'; value_len];
                type Rec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
                let recs: Vec<Rec> = (0..records).map(|_| (None, Some(&value[..]))).collect();
                let mut b = batch::build_simple(0, now, &recs);
                log.append(&mut b, 0, now).unwrap();
            }
            Op::TakeFlush => {
                if pending.is_none() {
                    pending = Some(log.take_unflushed());
                }
            }
            Op::FinishFlush => {
                if let Some((files, target)) = pending.take() {
                    for f in &files {
                        f.sync().unwrap();
                    }
                    log.mark_flushed(target);
                }
            }
            Op::Read { frac } => {
                let flushed = log.flushed_offset();
                let from = pick(log.log_start_offset(), flushed, frac);
                let r = log.read(from, 4096, flushed).unwrap();
                for (h, bytes) in batches_of(&r.data) {
                    prop_assert!(
                        h.last_offset() < flushed,
                        "read from {from} returned offsets {}..={} at or above the flushed offset {flushed}",
                        h.base_offset,
                        h.last_offset()
                    );
                    served.insert(h.base_offset, bytes);
                }
            }
            Op::DeleteRecords { frac } => {
                let to = pick(log.log_start_offset(), log.flushed_offset(), frac);
                log.delete_records_before(to).unwrap();
            }
            Op::PowerLoss => {
                pending = None;
                drop(log);
                mem.crash();
                log = PartitionLog::open(disk.clone(), dir(), config(segment_bytes), now).unwrap().0;
                let start = log.log_start_offset();
                for (&base, bytes) in served.range(start..) {
                    let got = match log.read(base, bytes.len(), i64::MAX) {
                        Ok(r) => batches_of(&r.data),
                        Err(e) => return Err(TestCaseError::fail(format!("batch at {base} was served before the power loss; now: {e}"))),
                    };
                    prop_assert!(
                        got.first().is_some_and(|(_, b)| b == bytes),
                        "batch at {base} was served before the power loss and is gone or changed after it"
                    );
                }
                // Batches wholly below the log start may legitimately be gone.
                served.retain(|&base, _| base >= start);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn fsync_before_ack_reads_stay_below_the_flushed_offset_and_survive_power_loss(
        seed in any::<u64>(),
        segment_bytes in prop_oneof![Just(400u64), Just(1500), Just(1 << 20)],
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(seed, segment_bytes, ops)?;
    }
}

/// A clean close while the flusher holds files it took but has not synced (it syncs outside the
/// log) still syncs every byte, across a segment roll, before its clean marker goes down: a power
/// loss right after the close takes nothing back.
#[test]
fn close_syncs_what_an_in_flight_flush_took() {
    let mem = MemDisk::new(7, FaultConfig { lose_unsynced_on_crash: 1.0, ..FaultConfig::default() });
    let disk: SharedDisk = Arc::new(mem.clone());
    let mut log = PartitionLog::open(disk.clone(), dir(), config(2048), 1_000).unwrap().0;
    let value = vec![b'v'; 300];
    for _ in 0..12 {
        let mut b = batch::build_simple(0, 1_000, &[(None, Some(&value[..]))]);
        log.append(&mut b, 0, 1_000).unwrap();
    }
    let (_in_flight, target) = log.take_unflushed();
    assert_eq!(target, 12);
    log.close().unwrap();
    mem.crash();
    mem.power_on();
    let (log, report) = PartitionLog::open(disk, dir(), config(2048), 1_000).unwrap();
    assert_eq!((log.log_end_offset(), report.truncated_bytes), (12, 0), "{report:?}");
}
