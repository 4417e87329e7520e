//! Model-based property test of `PartitionLog` over a crashing `MemDisk`.
//!
//! Random sequences of append / read / flush / crash+reopen / clean close+reopen / delete_records
//! / retention / truncate run against a log with tiny segments, and are checked against a model:
//! the list of batches appended (with the offsets the log assigned), the log start, and the flushed
//! offset. After every step the whole log must read back byte for byte as the model says, and its
//! leader epoch cache must be what the batches in `[log start, log end)` imply. After a crash the
//! log must be a prefix of the model that still holds every batch flushed before it. Appends are
//! leader appends (the log assigns offsets) or follower appends (batches stamped with offsets and
//! an epoch beforehand, stored as given); either may start a new leader epoch.

use std::path::PathBuf;
use std::sync::Arc;

use gregor_core::batch::{self, BatchHeader};
use gregor_core::disk::SharedDisk;
use gregor_storage::{FaultConfig, LogConfig, MemDisk, PartitionLog};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Batches (records, value length); whether a new leader epoch starts; whether the batches
    /// come from a leader (a follower append).
    Append(Vec<(usize, usize)>, bool, bool),
    Read { at: u8, max_bytes: u16, hw: u8 },
    Flush,
    Crash,
    CloseReopen,
    DeleteRecords(u8),
    RetainBytes(u16),
    RetainMs(u16),
    Truncate(u8),
    Checkpoint,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec((1usize..4, 0usize..150), 1..4), prop::bool::weighted(0.3), any::<bool>())
            .prop_map(|(spec, new_epoch, follower)| Op::Append(spec, new_epoch, follower)),
        3 => (any::<u8>(), 0u16..2000, any::<u8>()).prop_map(|(at, max_bytes, hw)| Op::Read { at, max_bytes, hw }),
        3 => Just(Op::Flush),
        2 => Just(Op::Crash),
        1 => Just(Op::CloseReopen),
        1 => any::<u8>().prop_map(Op::DeleteRecords),
        1 => (0u16..3000).prop_map(Op::RetainBytes),
        1 => (0u16..3000).prop_map(Op::RetainMs),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => Just(Op::Checkpoint),
    ]
}

type Rec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

struct Stored {
    base: i64,
    next: i64,
    epoch: i32,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Model {
    batches: Vec<Stored>,
    start: i64,
    leo: i64,
    flushed: i64,
    /// Nothing changed since the last clean close: a crash now must still be a clean start.
    pristine: bool,
    /// The current leader epoch.
    epoch: i32,
}

impl Model {
    /// What a read should return.
    fn expect_read(&self, offset: i64, max_bytes: usize, hw: i64) -> Vec<u8> {
        let mut out = Vec::new();
        for b in self.batches.iter().filter(|b| b.next > offset) {
            if b.next > hw || (!out.is_empty() && out.len() + b.bytes.len() > max_bytes) {
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        out
    }

    /// The epoch cache the batches in `[start, leo)` imply: the first batch of every epoch,
    /// the first one starting at the log start.
    fn expect_epochs(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = Vec::new();
        for b in self.batches.iter().filter(|b| b.next > self.start) {
            if out.last().is_none_or(|&(e, _)| b.epoch > e) {
                out.push((b.epoch, b.base.max(self.start)));
            }
        }
        out
    }
}

fn pick(lo: i64, hi: i64, frac: u8) -> i64 {
    lo + (hi - lo) * i64::from(frac) / 255
}

fn dir() -> PathBuf {
    PathBuf::from("/d/t-0")
}

fn check_whole(log: &PartitionLog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset(), model.leo);
    prop_assert_eq!(log.log_start_offset(), model.start);
    let r = log.read(model.start, usize::MAX, i64::MAX).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let want = model.expect_read(model.start, usize::MAX, i64::MAX);
    prop_assert!(r.data[..] == want[..], "log content differs from model ({} vs {} bytes)", r.data.len(), want.len());
    let epochs = log.epoch_entries();
    if model.start == model.leo {
        // An emptied log keeps the epoch of its last batch at its end until a crash, when no
        // batch is left to rebuild it from (documented in the log's module doc).
        prop_assert!(epochs.is_empty() || (epochs.len() == 1 && epochs[0].1 == model.leo), "epochs {:?} of an empty log", epochs);
    } else {
        prop_assert_eq!(epochs, model.expect_epochs());
    }
    Ok(())
}

fn run(seed: u64, segment_bytes: u64, index_interval_bytes: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mem = MemDisk::new(seed, FaultConfig { torn_on_crash: 0.5, lose_unsynced_on_crash: 0.2, ..Default::default() });
    let disk: SharedDisk = Arc::new(mem.clone());
    let cfg = LogConfig { segment_bytes, index_interval_bytes, retention_ms: -1, ..LogConfig::default() };
    let mut now = 1_000_000i64;
    let mut log = Some(PartitionLog::open(disk.clone(), dir(), cfg.clone(), now).unwrap().0);
    let mut model = Model::default();
    for op in ops {
        now += 100;
        let l = log.as_mut().expect("log is open");
        match op {
            Op::Append(spec, new_epoch, follower) => {
                model.epoch += i32::from(new_epoch);
                let mut buf = Vec::new();
                let mut next = model.leo;
                for (i, (records, value_len)) in spec.iter().enumerate() {
                    let value = vec![i as u8; *value_len];
                    let recs: Vec<Rec> = (0..*records).map(|_| (None, Some(&value[..]))).collect();
                    let mut b = batch::build_simple(0, now, &recs);
                    if follower {
                        batch::set_offset_and_epoch(&mut b, next, model.epoch);
                    }
                    next += *records as i64;
                    buf.extend_from_slice(&b);
                }
                let info = if follower {
                    let sent = buf.clone();
                    let info = l.append_as_follower(&buf, now).unwrap();
                    prop_assert!(buf == sent);
                    info
                } else {
                    l.append(&mut buf, model.epoch, now).unwrap()
                };
                model.pristine &= buf.is_empty();
                prop_assert_eq!(info.base_offset, model.leo);
                let mut pos = 0;
                while pos < buf.len() {
                    let h = BatchHeader::parse(&buf[pos..]).unwrap();
                    let len = h.total_len();
                    prop_assert_eq!(h.partition_leader_epoch, model.epoch);
                    model.batches.push(Stored {
                        base: h.base_offset,
                        next: h.next_offset(),
                        epoch: h.partition_leader_epoch,
                        bytes: buf[pos..pos + len].to_vec(),
                    });
                    pos += len;
                }
                model.leo = info.last_offset + 1;
            }
            Op::Read { at, max_bytes, hw } => {
                let offset = pick(model.start, model.leo, at);
                let hw = pick(offset, model.leo, hw);
                let r = l.read(offset, max_bytes as usize, hw).unwrap();
                prop_assert!(r.data[..] == model.expect_read(offset, max_bytes as usize, hw)[..], "read({offset}, {max_bytes}, {hw})");
                prop_assert!(l.read(model.leo + 1, 10, i64::MAX).is_err());
                if model.start > 0 {
                    prop_assert!(l.read(model.start - 1, 10, i64::MAX).is_err());
                }
            }
            Op::Flush => {
                let (files, offset) = l.take_unflushed();
                for f in files {
                    f.sync().unwrap();
                }
                l.mark_flushed(offset);
                prop_assert_eq!(offset, model.leo);
                model.flushed = offset;
                prop_assert_eq!(l.flushed_offset(), offset);
            }
            Op::Checkpoint => l.checkpoint_recovery_point().unwrap(),
            Op::Crash => {
                drop(log.take());
                mem.crash();
                let (l, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), now).unwrap();
                // Clean exactly when nothing changed since the last clean close.
                prop_assert_eq!(rep.clean_shutdown, model.pristine);
                let leo = l.log_end_offset();
                let start = l.log_start_offset();
                prop_assert!(leo >= model.flushed, "lost flushed data: end {leo} < flushed {}", model.flushed);
                prop_assert!(start >= model.start, "log start went back: {start} < {}", model.start);
                // The recovered log is the model cut at a batch boundary (or empty at `start`).
                prop_assert!(
                    leo == start || model.batches.iter().any(|b| b.next == leo),
                    "end {leo} is not a batch boundary"
                );
                model.batches.retain(|b| b.next <= leo);
                model.start = start;
                model.leo = leo;
                model.flushed = leo;
                check_whole(&l, &model)?;
                log = Some(l);
            }
            Op::CloseReopen => {
                log.take().unwrap().close().unwrap();
                let (l, rep) = PartitionLog::open(disk.clone(), dir(), cfg.clone(), now).unwrap();
                // An empty log at offset 0 is closed without a marker: there is nothing to recover.
                prop_assert!(rep.clean_shutdown || (model.leo == 0 && model.start == 0));
                prop_assert_eq!(rep.batches_scanned, 0);
                model.flushed = model.leo;
                model.pristine = rep.clean_shutdown;
                log = Some(l);
            }
            Op::DeleteRecords(frac) => {
                let offset = pick(model.start, model.leo, frac);
                let start = l.delete_records_before(offset).unwrap();
                model.pristine &= offset <= model.start;
                model.start = model.start.max(offset);
                prop_assert_eq!(start, model.start);
            }
            Op::RetainBytes(bytes) => {
                let before = l.size_bytes();
                l.set_config(LogConfig { retention_bytes: i64::from(bytes), ..cfg.clone() });
                let rep = l.apply_retention(now).unwrap();
                l.set_config(cfg.clone());
                model.pristine &= rep.segments_deleted == 0;
                prop_assert_eq!(l.size_bytes(), before - rep.bytes_deleted);
                prop_assert!(rep.log_start_offset >= model.start && rep.log_start_offset <= model.leo);
                if rep.segments_deleted > 0 {
                    prop_assert!(l.size_bytes() as i64 >= i64::from(bytes) || l.segment_count() == 1);
                }
                model.start = rep.log_start_offset;
            }
            Op::RetainMs(ms) => {
                l.set_config(LogConfig { retention_ms: i64::from(ms), ..cfg.clone() });
                let rep = l.apply_retention(now).unwrap();
                l.set_config(cfg.clone());
                model.pristine &= rep.segments_deleted == 0;
                prop_assert!(rep.log_start_offset >= model.start && rep.log_start_offset <= model.leo);
                model.start = rep.log_start_offset;
                // Every remaining batch from the start on is younger than the cut, bar the active
                // segment's (which only goes when it has expired entirely).
            }
            Op::Truncate(frac) => {
                let offset = pick(model.start, model.leo, frac);
                l.truncate_to(offset).unwrap();
                model.pristine &= offset >= model.leo;
                if offset < model.leo {
                    let cut = model.batches.iter().position(|b| b.next > offset).unwrap();
                    model.leo = model.batches[cut].base;
                    model.batches.truncate(cut);
                    model.flushed = model.flushed.min(model.leo);
                    model.start = model.start.min(model.leo);
                }
            }
        }
        check_whole(log.as_ref().unwrap(), &model)?;
    }
    // A final crash must keep everything flushed.
    let l = log.as_mut().unwrap();
    l.flush().unwrap();
    let leo = l.log_end_offset();
    drop(log.take());
    mem.crash();
    let (l, _) = PartitionLog::open(disk.clone(), dir(), cfg, now).unwrap();
    prop_assert_eq!(l.log_end_offset(), leo);
    check_whole(&l, &model)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_across_crashes(
        seed in any::<u64>(),
        segment_bytes in prop_oneof![Just(300u64), Just(700), Just(5000)],
        index_interval_bytes in prop_oneof![Just(1usize), Just(200), Just(4096)],
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(seed, segment_bytes, index_interval_bytes, ops)?;
    }
}
