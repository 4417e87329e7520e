//! `PartitionLog`: the log of one partition — a directory of segments, their indexes, the
//! `log-start-offset`, `recovery-point` and `leader-epoch-checkpoint` checkpoints and the
//! producer state snapshot.
//!
//! # Guarantees
//! * Offsets are assigned consecutively with no holes; batches are stored byte for byte as given,
//!   except for the fields the broker owns (base offset, leader epoch, and for `LogAppendTime` the
//!   timestamp type and max timestamp, with the CRC recomputed). Follower appends store the
//!   leader's batches wholly as given, those fields included.
//! * Every batch returned by a read is CRC-checked; bytes from disk never cause a panic.
//! * After any crash, [`PartitionLog::open`] recovers a prefix of what was appended that contains
//!   everything below the flushed offset ([`PartitionLog::mark_flushed`]) at the time of the crash,
//!   unless data at rest was corrupted (then the log is cut at the first bad batch). It never
//!   invents a record.
//! * `delete_records_before`, retention and `truncate_to` are durable when they return.
//! * Any write or sync error is fatal for the log: it is marked failed and refuses every later call
//!   with [`LogError::Failed`] until reopened (no fsync retries: "fsyncgate").
//!
//! # Recovery
//! The `.clean-shutdown` marker (written last by `close`) is removed, durably, before the first
//! change to the partition after open, so a crash after that change is seen as unclean. While
//! nothing has changed, the files are exactly what the clean close left and the marker is still
//! true: opening and closing an untouched partition writes and syncs nothing, so a broker with
//! ten thousand idle partitions starts and stops without ten thousand fsyncs. A new partition's
//! directory entries (its own, in the topic's parent directory, and its first segment's) are made
//! durable the same way, before the first byte is written into it. After a clean shutdown each segment's indexes are loaded (and
//! rebuilt by scanning when missing or not matching the segment). After an unclean one, every
//! segment from the one holding the recovery point onwards (always the last one) and any segment
//! without a valid index is scanned, validating every batch; at the first torn, corrupt or
//! out-of-order batch the segment is truncated there and all later segments are deleted. Each
//! scanned segment is rewritten and synced before the next is scanned, and the recovery point is
//! then checkpointed at the log end.
//!
//! The recovery point only ever names offsets whose data was synced, which is why index files
//! written at roll time need not be synced: a segment is trusted from its index only when it lies
//! wholly below the recovery point, and its index must also match the segment's exact size and CRC.
//!
//! # Idempotent producers
//! The log owns the partition's [`ProducerStateMap`]: every append is checked against it and
//! updates it (see [`crate::producer_state`] for the rules), so deduplication is atomic with the
//! append. A duplicate appends nothing and returns the original batch's offsets
//! ([`AppendOutcome::Duplicate`]). `close` writes the state to a CRC'd snapshot file
//! (`producer-state.snapshot`, valid for the log end it names); `open` uses it only after a clean
//! shutdown and otherwise rebuilds the state by reading the batch headers from the log start
//! (headers only: producer id, epoch, base sequence, offsets). Truncation rebuilds it the same way;
//! moving the log start forgets producers whose batches are all gone, and retention passes expire
//! producers idle for [`PRODUCER_ID_EXPIRATION_MS`] (by their last batch timestamp, as Kafka).
//!
//! # Leader epoch cache
//! The log owns the partition's [`LeaderEpochCache`] (KIP-101/279/320; see
//! [`gregor_core::replica::epoch_cache`] for its rules): every append assigns each batch's
//! partition leader epoch at its base offset, `truncate_to` removes the entries at or after the
//! new log end, moving the log start (DeleteRecords, retention) moves the first entry up to it
//! (Kafka's `truncateFromStart`), and emptying the log (`truncate_fully_and_start_at`, or
//! `truncate_to` below the log start) clears it, as Kafka does. Its entries always lie within
//! `[log start, log end]`.
//!
//! `close` writes it to `leader-epoch-checkpoint` (Kafka's text format, atomically) and `open`
//! uses that file only after a clean shutdown, and only if every entry lies within the recovered
//! `[log start, log end]`: the format has no checksum, and a file written before a crash may
//! describe batches the crash took. In every other case (unclean shutdown, missing, corrupt or
//! inconsistent file) the cache is rebuilt from the batch headers by the same header scan that
//! rebuilds or replays the producer state, which then starts at the log start. The file is
//! therefore written only at clean close (not at rolls or truncations like the producer
//! snapshot): nothing else would ever read it. The one thing a rebuild cannot recover is the
//! entry of a log emptied by DeleteRecords or retention (no batch is left to read the epoch
//! from): after an unclean restart such a log has an empty cache until its next append.
//!
//! # Follower appends
//! [`PartitionLog::append_as_follower`] appends batches fetched from the partition leader as
//! they are, offsets, leader epochs and CRC included, after checking that each is a valid batch
//! (CRC) that continues the log exactly, and that leader epochs never go back. Producer state
//! is recorded from them without checking sequences (the leader did). Flushing, rolling and
//! recovery treat them like any other append.
//!
//! # Group commit
//! [`PartitionLog::take_unflushed`] hands out the files to sync; the caller syncs them without
//! holding the log and reports back with [`PartitionLog::mark_flushed`]. If `truncate_to` runs in
//! between, that report is ignored (the truncation already synced what it kept); callers should
//! not overlap a flush with a truncation otherwise.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use gregor_core::batch::{self, BatchError, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use gregor_core::bugs::{self, Bug};
use gregor_core::disk::{read_all, write_atomic, FileRef, SharedDisk};
use gregor_core::probe::{self, CrashPoint};
use gregor_core::replica::epoch_cache::LeaderEpochCache;
use tracing::{info, warn};

use crate::config::{LogConfig, TimestampType};
use crate::index;
use crate::producer_state::{BatchMeta, Check, ProducerError, ProducerStateMap, PRODUCER_ID_EXPIRATION_MS};
use crate::segment::{self, Segment};

mod compaction;
pub use compaction::{CleanOptions, CleanPass, CleanReport, Step as CleanStep};

const CLEAN_SHUTDOWN: &str = ".clean-shutdown";
const LOG_START_CHECKPOINT: &str = "log-start-offset";
const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point";
const PRODUCER_SNAPSHOT: &str = "producer-state.snapshot";
const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Where the last compaction pass's dirty section ended (see [`compaction`]).
const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";
/// Below this offset segments may have holes compaction left (see [`compaction`]).
const CLEANER_HOLES: &str = "cleaner-holes-below";

/// Result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The append time written into the batches, or -1 with `CreateTime`.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Result of an append that checks producer state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batches were written.
    Appended(AppendInfo),
    /// A batch repeats one already in the log (an idempotent producer's retry): nothing was
    /// written; the info describes the original batch.
    Duplicate(AppendInfo),
}

impl AppendOutcome {
    pub fn info(&self) -> &AppendInfo {
        match self {
            AppendOutcome::Appended(i) | AppendOutcome::Duplicate(i) => i,
        }
    }
}

/// Result of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, concatenated, exactly as stored.
    pub data: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// What `open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub clean_shutdown: bool,
    pub segments: usize,
    pub batches_scanned: u64,
    /// Bytes cut from segments plus the sizes of deleted later segments.
    pub truncated_bytes: u64,
    pub log_end_offset: i64,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

#[derive(thiserror::Error, Debug)]
pub enum LogError {
    #[error("record batch of {size} bytes is larger than max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("corrupt record batch: {0}")]
    Corrupt(#[from] BatchError),
    /// Records of a stored batch that compaction cannot decode or re-encode (damage the CRC
    /// cannot see, or a batch over the decompression limit).
    #[error("undecodable records: {0}")]
    Records(String),
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },
    #[error("storage I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("the log failed after an earlier storage error; it must be reopened")]
    Failed,
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// A follower append does not continue the log: the batch at `got` should have been at
    /// `expected` (the log end, or the end of the previous batch of the append).
    #[error("batch at offset {got} does not continue the log at offset {expected}")]
    NonContiguous { expected: i64, got: i64 },
    /// A follower append's batch at `offset` has leader epoch `epoch`, below `latest`, the latest
    /// epoch in the log or in the earlier batches of the append.
    #[error("batch at offset {offset} has leader epoch {epoch}, below the log's latest leader epoch {latest}")]
    EpochRegression { offset: i64, epoch: i32, latest: i32 },
}

/// One partition's log. Not internally synchronized: the server wraps it in a mutex.
pub struct PartitionLog {
    disk: SharedDisk,
    dir: PathBuf,
    config: LogConfig,
    /// By base offset. Never empty; the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    flushed_offset: i64,
    /// Rolled segments written since the last `take_unflushed`.
    unflushed: Vec<FileRef>,
    /// The active segment was written since the last `take_unflushed`.
    active_dirty: bool,
    truncated_since_take: bool,
    failed: bool,
    /// Idempotent producers' state, consistent with the batches in the log.
    producers: ProducerStateMap,
    /// The leader epoch cache, consistent with the batches in the log.
    epochs: LeaderEpochCache,
    /// The `leader-epoch-checkpoint` file holds exactly `epochs`.
    epochs_fresh: bool,
    /// The `.clean-shutdown` marker is on disk and still true: nothing changed since open.
    clean_marker: bool,
    /// Directory entries not yet durable: the partition directory's own in its parent (a new
    /// partition), and entries in the partition directory (its first segment).
    parent_entry_unsynced: bool,
    dir_entries_unsynced: bool,
    /// What the checkpoint files hold, so unchanged values are not written again.
    recovery_point_on_disk: Option<i64>,
    log_start_on_disk: Option<i64>,
    /// The producer snapshot file describes the current state at the current log end.
    snapshot_fresh: bool,
    /// What `cleaner-offset-checkpoint` holds (see [`compaction`]).
    cleaner_checkpoint: Option<i64>,
    /// What `cleaner-holes-below` holds.
    holes_below: Option<i64>,
    /// Offsets below this were found durable by the simulator's durability oracle; rolled
    /// segments never change, so they need not be asked about again (simulator builds only).
    #[cfg(madsim)]
    probe_verified: std::cell::Cell<i64>,
}

fn segment_file_name(base: i64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

/// Parses `{base:020}.{ext}`.
fn parse_segment_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn read_checkpoint(disk: &SharedDisk, path: &Path) -> Result<Option<i64>, LogError> {
    if !disk.exists(path) {
        return Ok(None);
    }
    let bytes = read_all(disk.as_ref(), path)?;
    let v = index::decode_checkpoint(&bytes);
    if v.is_none() {
        warn!(path = %path.display(), "ignoring corrupt checkpoint");
    }
    Ok(v)
}

fn remove_if_exists(disk: &SharedDisk, path: &Path) -> io::Result<()> {
    match disk.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl PartitionLog {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
        dir.join(segment_file_name(base, ext))
    }

    /// Opens (creating if missing) the partition directory and recovers it.
    pub fn open(
        disk: SharedDisk,
        dir: PathBuf,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        // A new directory's entry becomes durable before the first write into it (`before_write`),
        // not here: creating a thousand empty partitions costs no fsync.
        disk.create_dir_all(&dir)?;
        let names = Self::finish_compaction_swaps(&disk, &dir)?;
        let clean = names.iter().any(|n| n == CLEAN_SHUTDOWN);
        let bases: Vec<i64> = names.iter().filter_map(|n| parse_segment_name(n, "log")).collect();
        // Leftovers are garbage whether or not their removal survives a crash: no sync needed.
        for n in &names {
            let orphan_index = parse_segment_name(n, "index")
                .or_else(|| parse_segment_name(n, "timeindex"))
                .is_some_and(|b| !bases.contains(&b));
            if n.ends_with(".tmp") || orphan_index {
                disk.remove_file(&dir.join(n))?;
            }
        }
        let log_start_ckpt = read_checkpoint(&disk, &dir.join(LOG_START_CHECKPOINT))?;
        let recovery_point_ckpt = read_checkpoint(&disk, &dir.join(RECOVERY_POINT_CHECKPOINT))?;
        let recovery_point = recovery_point_ckpt.unwrap_or(0);
        // The producer snapshot (taken at a roll, a truncation or a clean close) is used only if
        // the recovered log still reaches the offset it was taken at: recovery cuts at the first
        // bad batch, so the log below that offset is then exactly what the snapshot describes.
        // A fresh snapshot is written once the log is open, so an older one is never paired
        // with a log that changed below it.
        let snapshot_path = dir.join(PRODUCER_SNAPSHOT);
        let snapshot = if disk.exists(&snapshot_path) { Some(read_all(disk.as_ref(), &snapshot_path)?) } else { None };
        let epochs_path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let epochs_file = if disk.exists(&epochs_path) { Some(read_all(disk.as_ref(), &epochs_path)?) } else { None };

        let mut log = PartitionLog {
            disk: disk.clone(),
            dir: dir.clone(),
            config,
            segments: BTreeMap::new(),
            log_start_offset: 0,
            flushed_offset: 0,
            unflushed: Vec::new(),
            active_dirty: false,
            truncated_since_take: false,
            failed: false,
            producers: ProducerStateMap::new(),
            epochs: LeaderEpochCache::new(),
            epochs_fresh: false,
            clean_marker: clean,
            // After anything but a clean shutdown, entries seen now may live only in the page
            // cache (a process killed before syncing them): sync them before the first write.
            parent_entry_unsynced: !clean,
            dir_entries_unsynced: !clean,
            recovery_point_on_disk: recovery_point_ckpt,
            log_start_on_disk: log_start_ckpt,
            snapshot_fresh: false,
            cleaner_checkpoint: read_checkpoint(&disk, &dir.join(CLEANER_CHECKPOINT))?,
            holes_below: read_checkpoint(&disk, &dir.join(CLEANER_HOLES))?,
            #[cfg(madsim)]
            probe_verified: std::cell::Cell::new(0),
        };
        let mut report = RecoveryReport {
            clean_shutdown: clean,
            segments: 0,
            batches_scanned: 0,
            truncated_bytes: 0,
            log_end_offset: 0,
        };
        let mut doomed: Vec<i64> = Vec::new();
        let mut expected_base: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            if expected_base.is_some_and(|e| e != base) || !doomed.is_empty() {
                // A gap or overlap after a crash (an earlier segment lost its unsynced tail), or
                // an earlier segment was cut: nothing after that point can be trusted.
                doomed.push(base);
                continue;
            }
            let is_last = i + 1 == bases.len();
            let file = disk.open(&Self::seg_path(&dir, base, "log"), false)?;
            let len = file.len()?;
            let loaded = log.load_index(base, len)?;
            let trust_index = match &loaded {
                None => false,
                Some(idx) => clean || (!is_last && idx.next_offset <= recovery_point),
            };
            let seg = match loaded {
                Some(idx) if trust_index => Segment::from_index(base, file, len, idx, now_ms),
                _ => {
                    let scan = segment::scan(file, base, len, log.config.index_interval_bytes, now_ms, log.holes_below())?;
                    report.batches_scanned += scan.batches;
                    let mut seg = scan.segment;
                    if scan.invalid_tail_bytes > 0 && bugs::active(Bug::KeepTornTail) {
                        seg.size = len;
                    } else if scan.invalid_tail_bytes > 0 {
                        warn!(dir = %dir.display(), base, why = ?scan.why_stopped, cut = scan.invalid_tail_bytes,
                            "truncating segment at the first invalid batch");
                        report.truncated_bytes += scan.invalid_tail_bytes;
                        seg.file.truncate(seg.size)?;
                        doomed.push(i64::MIN); // marker: drop every later segment
                    }
                    // The scanned bytes may be readable only from the page cache: if an earlier
                    // process's fsync failed, they are clean there but not on disk, and no later
                    // fsync would write them back. Rewriting them and syncing makes them durable.
                    // The sync comes at once, not after the other segments are scanned: if this
                    // open fails later (a read error), the rewritten pages would otherwise stay
                    // dirty after the process exits, and a power loss could tear bytes that were
                    // durable before (found by the simulator's crash points).
                    // A cut to nothing must be synced too: an unsynced truncation can be undone
                    // by a power loss, bringing back a batch this recovery dropped.
                    if seg.size > 0 {
                        rewrite(&seg.file, seg.size)?;
                    }
                    if seg.size > 0 || scan.invalid_tail_bytes > 0 {
                        seg.file.sync()?;
                    }
                    seg
                }
            };
            expected_base = Some(seg.next_offset);
            log.segments.insert(base, seg);
        }
        doomed.retain(|&b| b != i64::MIN);
        let mut dir_changed = !doomed.is_empty();
        for &base in &doomed {
            let path = Self::seg_path(&dir, base, "log");
            report.truncated_bytes += disk.open(&path, false)?.len()?;
            log.remove_segment_files(base)?;
        }
        if !doomed.is_empty() {
            warn!(dir = %dir.display(), deleted = doomed.len(), "deleted segments after the recovery cut");
        }

        // The log start offset: never below the first segment; if it lies beyond the recovered
        // end (the tail holding it was lost in a crash), start an empty log there so offsets are
        // never reused.
        let first_base = log.segments.keys().next().copied();
        let start = match (log_start_ckpt, first_base) {
            (Some(c), Some(f)) => c.max(f),
            (Some(c), None) => c,
            (None, Some(f)) => f,
            (None, None) => 0,
        };
        let leo = log.segments.values().next_back().map(|s| s.next_offset);
        if leo.is_none_or(|leo| start > leo) {
            if !log.segments.is_empty() {
                log.forget_clean_shutdown()?;
            }
            for base in log.segments.keys().copied().collect::<Vec<_>>() {
                log.remove_segment_files(base)?;
            }
            log.segments.clear();
            // The first segment's name becomes durable with the first write (`before_write`).
            let seg = log.create_segment_file_unsynced(start, now_ms)?;
            log.dir_entries_unsynced = true;
            log.segments.insert(start, seg);
        }
        log.log_start_offset = start;
        // Segments wholly below the log start (their deletion was interrupted) go now.
        while log.segments.len() > 1 {
            let (&b, s) = log.segments.iter().next().expect("non-empty");
            if s.next_offset > start {
                break;
            }
            log.forget_clean_shutdown()?;
            log.remove_segment_files(b)?;
            log.segments.remove(&b);
            dir_changed = true;
        }
        if dir_changed {
            disk.sync_dir(&dir)?;
        }
        let leo = log.log_end_offset();
        log.flushed_offset = leo;
        // An absent checkpoint means 0, so a new empty log needs none.
        if log.recovery_point_on_disk.unwrap_or(0) != leo {
            log.write_recovery_point(leo)?;
        }
        // The leader epoch checkpoint, only after a clean shutdown and only if it fits the log.
        let epochs_decoded = epochs_file.as_deref().and_then(LeaderEpochCache::decode);
        let epochs_trusted = epochs_decoded.clone().filter(|c| clean && log.epochs_fit(c));
        if clean && epochs_file.is_some() && epochs_trusted.is_none() {
            warn!(dir = %dir.display(), valid = epochs_decoded.is_some(), "ignoring leader epoch checkpoint; rebuilding from the log");
        }
        let rebuild_epochs = epochs_trusted.is_none();
        if let Some(c) = epochs_trusted {
            log.epochs = c;
            log.epochs_fresh = true;
        }
        // Where the producer state must be replayed from, if anywhere.
        let producers_from = match snapshot.as_deref().and_then(ProducerStateMap::decode_snapshot) {
            Some((state, at)) if at == leo => {
                log.producers = state;
                log.snapshot_fresh = true;
                None
            }
            Some((state, at)) if at < leo => {
                // Taken before a crash: replay the batches written since.
                log.producers = state;
                Some(at)
            }
            Some((mut state, _)) if !clean => {
                // Taken after the last durable batch: the crash took the batches the snapshot
                // still remembers at and above the recovered end; forget exactly those.
                state.forget_from(leo);
                log.producers = state;
                None
            }
            other => {
                if snapshot.is_some() {
                    warn!(dir = %dir.display(), valid = other.is_some(), "ignoring producer state snapshot; rebuilding from the log");
                }
                log.producers.clear();
                Some(log.log_start_offset)
            }
        };
        // One header scan serves both.
        log.replay_headers(producers_from, rebuild_epochs)?;
        if rebuild_epochs {
            // Kafka's order. Nothing lies beyond the end; the batch holding the log start may
            // begin below it.
            log.epochs.truncate_from_end(leo);
            log.epochs.truncate_from_start(log.log_start_offset);
            log.epochs_fresh = epochs_decoded.as_ref() == Some(&log.epochs);
        }
        // Without any snapshot file and with no producers there is nothing an old snapshot
        // could be confused with; otherwise the file must describe the state as opened.
        let nothing_to_snapshot = snapshot.is_none() && log.producers.is_empty();
        if !log.snapshot_fresh && !nothing_to_snapshot {
            log.write_producer_snapshot(leo)?;
        }
        log.check_invariants();
        report.segments = log.segments.len();
        report.log_end_offset = leo;
        info!(dir = %dir.display(), clean, segments = report.segments, log_end_offset = leo,
            log_start_offset = start, scanned = report.batches_scanned, truncated = report.truncated_bytes, "log opened");
        Ok((log, report))
    }

    /// A compaction pass interrupted by a crash (see [`compaction`]): an uncommitted cleaned
    /// segment is deleted, a committed swap is completed. Returns the directory's names after.
    fn finish_compaction_swaps(disk: &SharedDisk, dir: &Path) -> Result<Vec<String>, LogError> {
        let names = disk.list_dir(dir)?;
        let mut changed = false;
        for n in &names {
            if compaction::parse_staged_name(n, "cleaned").is_some() {
                disk.remove_file(&dir.join(n))?;
                changed = true;
            } else if let Some((first, end)) = compaction::parse_staged_name(n, "swap") {
                warn!(dir = %dir.display(), first, end, "completing a compaction swap interrupted by a crash");
                compaction::complete_swap(disk, dir, first, end)?;
                changed = true;
            }
        }
        Ok(if changed { disk.list_dir(dir)? } else { names })
    }

    /// Rebuilds the producer state from the headers of the batches from the log start on.
    fn rebuild_producer_state(&mut self) -> Result<(), LogError> {
        self.producers.clear();
        self.replay_headers(Some(self.log_start_offset), false)
    }

    /// The one scan of batch headers (headers only) that rebuilds derived state: records in the
    /// producer state every batch whose last offset is at or above `producers_from` (if given),
    /// and with `epochs`, assigns every batch's leader epoch in the epoch cache (then scanning
    /// from the log start; the caller normalizes the cache to the log's range). A batch header
    /// that cannot be read (data corrupted at rest) ends that segment's scan: reads of it report
    /// the corruption; the derived state just forgets what it cannot see.
    fn replay_headers(&mut self, producers_from: Option<i64>, epochs: bool) -> Result<(), LogError> {
        let producers_from = producers_from.map(|f| f.max(self.log_start_offset));
        let start = match (producers_from, epochs) {
            (_, true) => self.log_start_offset,
            (Some(from), false) => from,
            (None, false) => return Ok(()),
        };
        for seg in self.segments.values() {
            if seg.next_offset <= start {
                continue;
            }
            let mut pos = if seg.base_offset < start { seg.locate(start)? } else { 0 };
            while pos < seg.size {
                let h = match seg.read_header(pos) {
                    Ok(h) => h,
                    Err(LogError::Corrupt(e)) => {
                        warn!(dir = %self.dir.display(), base = seg.base_offset, pos, error = %e,
                            "unreadable batch header while rebuilding producer state and epoch cache");
                        break;
                    }
                    Err(e) => return Err(e),
                };
                if producers_from.is_some_and(|from| h.last_offset() >= from) {
                    self.producers.record(&h);
                }
                if epochs {
                    self.epochs.assign(h.partition_leader_epoch, h.base_offset);
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(())
    }

    /// Durably replaces the producer state snapshot with the current state, taken at `at` (the
    /// log end offset: the state covers every batch below it).
    fn write_producer_snapshot(&mut self, at: i64) -> io::Result<()> {
        self.before_write_io()?;
        write_atomic(self.disk.as_ref(), &self.path(PRODUCER_SNAPSHOT), &self.producers.encode_snapshot(at))?;
        self.snapshot_fresh = at == self.log_end_offset();
        Ok(())
    }

    /// Durably replaces the leader epoch checkpoint with the current cache (called only at
    /// clean close, the only time a later open trusts it).
    fn write_epoch_checkpoint(&mut self) -> io::Result<()> {
        write_atomic(self.disk.as_ref(), &self.path(LEADER_EPOCH_CHECKPOINT), &self.epochs.encode())?;
        self.epochs_fresh = true;
        Ok(())
    }

    /// Whether every entry of `cache` lies within `[log start, log end]`, as the cache of this
    /// log always does.
    fn epochs_fit(&self, cache: &LeaderEpochCache) -> bool {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        cache.entries().iter().all(|e| (start..=end).contains(&e.start_offset))
    }

    /// The log now starts at `offset`: moves the epoch cache's first entry up to it.
    fn epochs_truncate_from_start(&mut self, offset: i64) {
        if self.epochs.truncate_from_start(offset) {
            self.epochs_fresh = false;
        }
    }

    /// Durably replaces the recovery-point checkpoint.
    fn write_recovery_point(&mut self, offset: i64) -> io::Result<()> {
        self.before_write_io()?;
        write_atomic(self.disk.as_ref(), &self.path(RECOVERY_POINT_CHECKPOINT), &index::encode_checkpoint(offset))?;
        self.recovery_point_on_disk = Some(offset);
        Ok(())
    }

    /// Before the first change to the partition's files: remove the clean-shutdown marker and
    /// make the directory entries created without a sync durable, with one directory sync (and
    /// one of the parent for a new partition).
    fn before_write_io(&mut self) -> io::Result<()> {
        if !self.clean_marker && !self.dir_entries_unsynced && !self.parent_entry_unsynced {
            return Ok(());
        }
        if self.clean_marker {
            self.disk.remove_file(&self.path(CLEAN_SHUTDOWN))?;
        }
        self.disk.sync_dir(&self.dir)?;
        if self.parent_entry_unsynced {
            if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.disk.sync_dir(parent)?;
            }
        }
        self.clean_marker = false;
        self.dir_entries_unsynced = false;
        self.parent_entry_unsynced = false;
        Ok(())
    }

    /// The caller made this partition directory's entry in its parent durable (one sync of the
    /// parent for a whole batch of partitions, instead of one per partition at its first write).
    pub fn parent_entry_synced(&mut self) {
        self.parent_entry_unsynced = false;
    }

    /// [`Self::before_write_io`], failing the log on error.
    fn before_write(&mut self) -> Result<(), LogError> {
        if let Err(e) = self.before_write_io() {
            return self.fatal(e);
        }
        Ok(())
    }

    /// Durably forgets a clean shutdown (before open changes the files).
    fn forget_clean_shutdown(&mut self) -> io::Result<()> {
        if self.clean_marker {
            self.before_write_io()?;
        }
        Ok(())
    }

    /// The idempotent producers' state (for tests and tools).
    pub fn producer_state(&self) -> &ProducerStateMap {
        &self.producers
    }

    /// Kafka's `endOffsetForEpoch` (OffsetsForLeaderEpoch, a Fetch's diverging epoch): the
    /// largest epoch at or below `epoch` and where it ends, the log end for the latest epoch;
    /// `(-1, -1)` when unknown. See [`LeaderEpochCache::end_offset_for`] for the exact rules.
    pub fn epoch_end_offset(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// A new leadership at `epoch` begins at the log end (Kafka's `makeLeader`): the epoch is
    /// assigned there before any batch of it is written, so a follower holding batches of an
    /// older epoch that this log never had learns where its log diverges.
    pub fn assign_leader_epoch(&mut self, epoch: i32) {
        if self.epochs.assign(epoch, self.log_end_offset()) {
            self.epochs_fresh = false;
        }
    }

    /// The latest leader epoch of the log (of its batches, or begun by
    /// [`PartitionLog::assign_leader_epoch`]), if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// Where `epoch` starts in the log, if it wrote to it.
    pub fn epoch_start_offset(&self, epoch: i32) -> Option<i64> {
        self.epochs.epoch_start_offset(epoch)
    }

    /// The epoch cache's entries, `(epoch, start offset)`, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    /// The leader epoch cache itself (read only).
    pub fn leader_epoch_cache(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    fn load_index(&self, base: i64, len: u64) -> Result<Option<index::LoadedIndex>, LogError> {
        let ip = Self::seg_path(&self.dir, base, "index");
        let tp = Self::seg_path(&self.dir, base, "timeindex");
        if !self.disk.exists(&ip) || !self.disk.exists(&tp) {
            return Ok(None);
        }
        let i = read_all(self.disk.as_ref(), &ip)?;
        let t = read_all(self.disk.as_ref(), &tp)?;
        Ok(index::decode_indexes(&i, &t, base, len))
    }

    /// Creates an empty segment file (replacing any stale one) and makes its name durable.
    fn create_segment_file(&self, base: i64, now_ms: i64) -> Result<Segment, LogError> {
        let seg = self.create_segment_file_unsynced(base, now_ms)?;
        self.disk.sync_dir(&self.dir)?;
        Ok(seg)
    }

    /// Creates an empty segment file (replacing any stale one); its name is not durable yet.
    fn create_segment_file_unsynced(&self, base: i64, now_ms: i64) -> Result<Segment, LogError> {
        assert!(base >= 0, "negative segment base offset {base}");
        remove_if_exists(&self.disk, &Self::seg_path(&self.dir, base, "index"))?;
        remove_if_exists(&self.disk, &Self::seg_path(&self.dir, base, "timeindex"))?;
        let file = self.disk.open(&Self::seg_path(&self.dir, base, "log"), true)?;
        if file.len()? != 0 {
            file.truncate(0)?;
            file.sync()?;
        }
        Ok(Segment::new_empty(base, file, now_ms))
    }

    /// Removes a segment's files (the caller syncs the directory).
    fn remove_segment_files(&self, base: i64) -> io::Result<()> {
        for ext in ["log", "index", "timeindex"] {
            remove_if_exists(&self.disk, &Self::seg_path(&self.dir, base, ext))?;
        }
        Ok(())
    }

    /// Writes a segment's index files via temp + rename. With `sync`, the data is synced before
    /// the rename; without, a torn index is caught by its CRC and rebuilt. The caller syncs the
    /// directory.
    fn write_index_files(&self, seg: &Segment, sync: bool) -> io::Result<()> {
        for (ext, bytes) in [
            ("index", index::encode_offset_index(seg)),
            ("timeindex", index::encode_time_index(seg)),
        ] {
            let tmp = Self::seg_path(&self.dir, seg.base_offset, &format!("{ext}.tmp"));
            let f = self.disk.open(&tmp, true)?;
            f.truncate(0)?;
            f.write_all_at(&bytes, 0)?;
            if sync {
                f.sync()?;
            }
            drop(f);
            self.disk.rename(&tmp, &Self::seg_path(&self.dir, seg.base_offset, ext))?;
        }
        Ok(())
    }

    fn check_invariants(&self) {
        assert!(!self.segments.is_empty(), "a log always has an active segment");
        let mut prev: Option<&Segment> = None;
        for (&b, s) in &self.segments {
            assert_eq!(b, s.base_offset);
            assert!(s.next_offset >= s.base_offset);
            assert_eq!(s.size == 0, s.next_offset == s.base_offset);
            if let Some(p) = prev {
                assert_eq!(p.next_offset, s.base_offset, "segments must be contiguous");
                assert!(!p.is_empty(), "only the active segment may be empty");
            }
            prev = Some(s);
        }
        assert!(self.log_start_offset <= self.log_end_offset(), "log start beyond log end");
        assert!(self.flushed_offset <= self.log_end_offset(), "flushed beyond log end");
        assert!(self.epochs_fit(&self.epochs), "epoch cache {:?} outside the log [{}, {}]", self.epochs.entries(), self.log_start_offset, self.log_end_offset());
    }

    fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments.values_mut().next_back().expect("a log always has an active segment")
    }

    fn ensure_ok(&self) -> Result<(), LogError> {
        if self.failed {
            Err(LogError::Failed)
        } else {
            Ok(())
        }
    }

    /// Marks the log failed and passes the error on: used for every write-side I/O error.
    fn fatal<T>(&mut self, e: impl Into<LogError>) -> Result<T, LogError> {
        let e = e.into();
        if matches!(e, LogError::Io(_)) {
            warn!(dir = %self.dir.display(), error = %e, "fatal storage error; log marked failed");
            self.failed = true;
        }
        Err(e)
    }

    /// Starts a new active segment at the log end. The old active one's index files are written.
    fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        assert!(!self.active().is_empty(), "rolling an empty segment");
        let r = self.write_index_files(self.active(), false);
        if let Err(e) = r {
            return self.fatal(e);
        }
        let seg = match self.create_segment_file(leo, now_ms) {
            Ok(s) => s,
            Err(e) => return self.fatal(e),
        };
        self.active_mut().index_persisted = true;
        if self.active_dirty && !bugs::active(Bug::RollWithoutFsync) {
            let f = self.active().file.clone();
            self.unflushed.push(f);
        }
        self.active_dirty = false;
        self.segments.insert(leo, seg);
        info!(dir = %self.dir.display(), base_offset = leo, "rolled segment");
        // Producer state survives a crash even after retention deletes the batches it came from
        // (Kafka snapshots it at every roll for the same reason).
        if let Err(e) = self.write_producer_snapshot(leo) {
            return self.fatal(e);
        }
        probe::crash_point(self.disk.as_ref(), CrashPoint::SegmentRoll);
        Ok(())
    }

    /// Appends producer batches laid end to end in `batches` (see the crate API doc). A duplicate
    /// of an idempotent producer's batch appends nothing and returns the original's offsets; use
    /// [`PartitionLog::append_checked`] to tell the two apart.
    pub fn append(&mut self, batches: &mut [u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, LogError> {
        match self.append_checked(batches, leader_epoch, now_ms)? {
            AppendOutcome::Appended(i) | AppendOutcome::Duplicate(i) => Ok(i),
        }
    }

    /// Appends producer batches after checking them against the producer state. Producer
    /// sequence or epoch violations are [`LogError::Producer`] and write nothing.
    pub fn append_checked(&mut self, batches: &mut [u8], leader_epoch: i32, now_ms: i64) -> Result<AppendOutcome, LogError> {
        self.ensure_ok()?;
        // Check everything before writing anything.
        let mut spans = Vec::new();
        let mut produced = Vec::new();
        let mut pos = 0usize;
        while pos < batches.len() {
            let h = BatchHeader::parse(&batches[pos..])?;
            let len = h.total_len();
            if len > self.config.max_message_bytes {
                return Err(LogError::MessageTooLarge { size: len, max: self.config.max_message_bytes });
            }
            if len > batches.len() - pos {
                return Err(BatchError::Truncated { needed: len, have: batches.len() - pos }.into());
            }
            produced.push(batch::validate_produced(&batches[pos..pos + len])?);
            spans.push(pos..pos + len);
            pos += len;
        }
        let leo = self.log_end_offset();
        if spans.is_empty() {
            return Ok(AppendOutcome::Appended(AppendInfo {
                base_offset: leo,
                last_offset: leo - 1,
                log_append_time_ms: -1,
                log_start_offset: self.log_start_offset,
            }));
        }
        if let Check::Duplicate(m) = self.producers.check(&produced)? {
            return Ok(AppendOutcome::Duplicate(self.duplicate_info(&m)));
        }
        self.prepare_append(batches.len() as u64, now_ms)?;
        let append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        let mut next = leo;
        let mut headers = Vec::with_capacity(spans.len());
        for span in &spans {
            let b = &mut batches[span.clone()];
            batch::set_offset_and_epoch(b, next, leader_epoch);
            if append_time {
                batch::set_log_append_time(b, now_ms);
            }
            let h = BatchHeader::parse(b)?;
            assert_eq!(h.base_offset, next);
            next = h.next_offset();
            headers.push(h);
        }
        self.write_appended(batches, &headers)?;
        assert_eq!(self.log_end_offset(), next);
        Ok(AppendOutcome::Appended(AppendInfo {
            base_offset: leo,
            last_offset: next - 1,
            log_append_time_ms: if append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
        }))
    }

    /// Appends batches fetched from the partition leader (a follower's append, Kafka's
    /// `appendAsFollower`), exactly as they are: their base offsets, partition leader epochs,
    /// timestamps and CRCs are kept, so the follower's log is byte for byte the leader's.
    ///
    /// Checked before anything is written (any failure writes nothing):
    /// * every batch is a valid v2 batch with a matching CRC32C ([`batch::validate`], the check
    ///   the leader path applies to its input before its producer-only rules: a record count
    ///   that agrees with the offset delta and `max.message.bytes`, which the leader enforced
    ///   when it accepted the batch — Kafka's follower path skips the size check too);
    /// * the first batch starts at the log end offset and each next one where the previous one
    ///   ends, else [`LogError::NonContiguous`] (the caller truncates or resets the log first);
    /// * leader epochs never go back: none is below the cache's latest epoch nor below an
    ///   earlier batch's, else [`LogError::EpochRegression`].
    ///
    /// The producer state records the batches without checking their sequences (the leader did;
    /// Kafka's follower path does not check them either), so this replica deduplicates retries
    /// correctly once it leads. The epoch cache assigns each batch's epoch at its base offset.
    ///
    /// A fetch answer may end with a partial batch (Kafka cuts a partition's data at the fetch's
    /// byte limit): the whole batches before it are appended and the partial one is ignored, to
    /// be fetched again from the new log end. Input holding no whole batch (empty, or only a
    /// partial one) appends nothing and answers the log end as `base_offset` with `last_offset`
    /// one below it. `log_append_time_ms` is always -1: the batches carry the leader's times.
    pub fn append_as_follower(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        self.ensure_ok()?;
        let leo = self.log_end_offset();
        let mut headers = Vec::new();
        let mut end = 0usize;
        let mut expected = leo;
        let mut gapped = false;
        let mut latest_epoch = self.epochs.latest_epoch();
        while batches.len() - end >= LOG_OVERHEAD {
            let rest = &batches[end..];
            // The length field decides whether the batch is whole (as Kafka's batch iterator).
            let batch_length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
            if (batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
                return Err(BatchError::BadLength(batch_length).into());
            }
            let len = LOG_OVERHEAD + batch_length as usize;
            if len > rest.len() {
                break;
            }
            let h = batch::validate(&rest[..len])?;
            // A batch may start above the log end: the leader's cleaner removed what was
            // between (Kafka's followers accept that too). One starting below overlaps the log.
            if h.base_offset < expected {
                return Err(LogError::NonContiguous { expected, got: h.base_offset });
            }
            gapped |= h.base_offset > expected;
            if let Some(latest) = latest_epoch.filter(|&l| h.partition_leader_epoch < l) {
                return Err(LogError::EpochRegression { offset: h.base_offset, epoch: h.partition_leader_epoch, latest });
            }
            latest_epoch = Some(h.partition_leader_epoch);
            expected = h.next_offset();
            headers.push(h);
            end += len;
        }
        let info = AppendInfo { base_offset: leo, last_offset: expected - 1, log_append_time_ms: -1, log_start_offset: self.log_start_offset };
        if headers.is_empty() {
            return Ok(info);
        }
        self.prepare_append(end as u64, now_ms)?;
        if gapped {
            // Recovery trusts holes only below `cleaner-holes-below`: move it first.
            self.write_holes_below(expected)?;
        }
        self.write_appended(&batches[..end], &headers)?;
        if bugs::active(Bug::NoFollowerProducerState) {
            self.producers.forget_from(info.base_offset);
        }
        assert_eq!(self.log_end_offset(), expected);
        Ok(info)
    }

    /// Before appending `total` bytes: forgets a clean shutdown and rolls the active segment if
    /// it is full or old. A whole append goes into one segment.
    fn prepare_append(&mut self, total: u64, now_ms: i64) -> Result<(), LogError> {
        self.before_write()?;
        let active = self.active();
        let too_big = active.size + total > self.config.segment_bytes;
        let too_old = now_ms.saturating_sub(active.created_ms) > self.config.max_segment_ms();
        if !active.is_empty() && (too_big || too_old) {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Writes `batches`, whose final headers are `headers`, at the end of the active segment and
    /// records them in the segment's indexes, the producer state and the epoch cache.
    fn write_appended(&mut self, batches: &[u8], headers: &[BatchHeader]) -> Result<(), LogError> {
        let total = batches.len() as u64;
        let at = self.active().size;
        if let Err(e) = self.active().file.write_all_at(batches, at) {
            return self.fatal(e);
        }
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        for h in headers {
            active.note_batch(h, h.total_len() as u64, interval);
        }
        assert_eq!(active.size, at + total, "segment size must grow by exactly the appended bytes");
        self.active_dirty = true;
        self.producers.commit(headers);
        self.snapshot_fresh = false;
        for h in headers {
            if self.epochs.assign(h.partition_leader_epoch, h.base_offset) {
                self.epochs_fresh = false;
            }
        }
        Ok(())
    }

    fn duplicate_info(&self, m: &BatchMeta) -> AppendInfo {
        AppendInfo {
            base_offset: m.base_offset,
            last_offset: m.last_offset,
            log_append_time_ms: if m.log_append_time { m.max_timestamp } else { -1 },
            log_start_offset: self.log_start_offset,
        }
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (but at least one batch
    /// if any is available), only batches whose last offset is below `max_offset`.
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadResult, LogError> {
        self.ensure_ok()?;
        let leo = self.log_end_offset();
        if offset < self.log_start_offset || offset > leo {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        let mut out: Vec<u8> = Vec::new();
        let first_base = self.segments.range(..=offset).next_back().map_or(offset, |(&b, _)| b);
        'segments: for (&base, seg) in self.segments.range(first_base..) {
            let mut pos = if base == first_base { seg.locate(offset)? } else { 0 };
            while pos < seg.size {
                let budget = max_bytes.saturating_sub(out.len());
                if !out.is_empty() && budget < HEADER_LEN {
                    break 'segments;
                }
                let want = (seg.size - pos).min(budget.max(HEADER_LEN) as u64) as usize;
                let mut buf = vec![0u8; want];
                seg.file.read_exact_at(&mut buf, pos)?;
                // Whole, verified batches in buf[..at]; `done` once a limit is reached.
                let mut at = 0usize;
                let mut done = false;
                while at + HEADER_LEN <= buf.len() {
                    // A damaged batch fails the read only if it is the first one; otherwise the
                    // read ends before it, so the good batches in front of it stay readable.
                    let first = out.is_empty() && at == 0;
                    let h = match BatchHeader::parse(&buf[at..]) {
                        Ok(h) => h,
                        Err(e) if first => return Err(e.into()),
                        Err(_) => {
                            done = true;
                            break;
                        }
                    };
                    let len = h.total_len();
                    if pos + (at + len) as u64 > seg.size {
                        if first {
                            return Err(BatchError::Truncated { needed: len, have: (seg.size - pos) as usize - at }.into());
                        }
                        done = true;
                        break;
                    }
                    if h.last_offset() >= max_offset {
                        done = true;
                        break;
                    }
                    if at + len > buf.len() {
                        if out.is_empty() && at == 0 {
                            // The first batch is bigger than max_bytes: return it alone (KIP-74).
                            out = seg.read_batch(pos, len)?;
                        }
                        done = true;
                        break;
                    }
                    if let Err(e) = batch::validate(&buf[at..at + len]) {
                        if first {
                            return Err(e.into());
                        }
                        done = true;
                        break;
                    }
                    at += len;
                }
                if out.is_empty() {
                    // The common case, one chunk: hand the buffer over instead of copying it.
                    buf.truncate(at);
                    out = buf;
                } else {
                    out.extend_from_slice(&buf[..at]);
                }
                if done || at == 0 {
                    break 'segments;
                }
                pos += at as u64;
            }
        }
        if bugs::active(Bug::FetchOutOfOrder) || bugs::active(Bug::FetchSkipsBatch) {
            out = misorder_batches(out);
        }
        Ok(ReadResult { data: Bytes::from(out), log_start_offset: self.log_start_offset, log_end_offset: leo })
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Sum of segment sizes.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// Number of segments (including the active one).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The files written since the last call and the log end offset they cover. The caller syncs
    /// them without holding the log, then calls [`PartitionLog::mark_flushed`].
    pub fn take_unflushed(&mut self) -> (Vec<FileRef>, i64) {
        let mut files = std::mem::take(&mut self.unflushed);
        if self.active_dirty {
            files.push(self.active().file.clone());
        }
        self.active_dirty = false;
        self.truncated_since_take = false;
        (files, self.log_end_offset())
    }

    /// Records that everything below `offset` is durable. Monotonic; clamped to the log end;
    /// ignored if the log was truncated since the matching `take_unflushed`.
    pub fn mark_flushed(&mut self, offset: i64) {
        if self.truncated_since_take || self.failed {
            return;
        }
        self.flushed_offset = self.flushed_offset.max(offset.min(self.log_end_offset()));
        // Acknowledgements, the high watermark and the recovery point rely on this from now on.
        self.probe_durable_below("flushed offset advanced", self.flushed_offset);
    }

    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }

    /// Durability oracle (simulator builds; see [`gregor_core::probe`]): the caller relies on
    /// every record below `offset` being durable (it acknowledges them). Asks the disk about the
    /// bytes of the segments holding `[log start, offset)` and their names.
    pub fn probe_durable_below(&self, what: &str, offset: i64) {
        #[cfg(madsim)]
        {
            let from = self.probe_verified.get().max(self.log_start_offset);
            if from < offset && self.probe_range(what, from, offset) {
                self.probe_verified.set(offset);
            }
        }
        #[cfg(not(madsim))]
        let _ = (what, offset);
    }

    /// Durability oracle for a read (simulator builds): the caller serves `data` (whole batches
    /// as returned by [`PartitionLog::read`]) on the understanding that it is durable.
    pub fn probe_served(&self, what: &str, data: &[u8]) {
        if !probe::enabled() || data.len() < HEADER_LEN {
            return;
        }
        let Ok(first) = BatchHeader::parse(data) else { return };
        let mut at = 0usize;
        let mut end = first.base_offset;
        while at + HEADER_LEN <= data.len() {
            let Ok(h) = BatchHeader::parse(&data[at..]) else { break };
            end = end.max(h.next_offset());
            at += h.total_len();
        }
        self.probe_range(what, first.base_offset.max(self.log_start_offset), end);
    }

    /// Checks the bytes of offsets `[from, to)` with the durability oracle; true if the disk
    /// found nothing wrong (or the positions could not be read, which is not the oracle's call).
    fn probe_range(&self, what: &str, from: i64, to: i64) -> bool {
        if !probe::enabled() || from >= to {
            return true;
        }
        let first_base = self.segments.range(..=from).next_back().map_or(from, |(&b, _)| b);
        let mut clean = true;
        for (&base, seg) in self.segments.range(first_base..) {
            if base >= to {
                break;
            }
            let Ok((start, end)) = seg.probe_span(from.max(base), to) else { continue };
            let path = Self::seg_path(&self.dir, base, "log");
            clean &= probe::check_durable(self.disk.as_ref(), &format!("{what} of offsets {from}..{to}"), &path, start..end);
        }
        clean
    }

    /// Syncs everything written so far while holding the log (tests, tools and `close`).
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.ensure_ok()?;
        let (mut files, offset) = self.take_unflushed();
        // A background flusher may hold files it took but has not synced yet (it syncs outside
        // the log): every segment holding records above the flushed offset is synced here too,
        // or a close could write its clean marker over bytes no fsync has covered.
        for seg in self.segments.values().filter(|s| s.next_offset > self.flushed_offset) {
            if !files.iter().any(|f| std::sync::Arc::ptr_eq(f, &seg.file)) {
                files.push(seg.file.clone());
            }
        }
        for f in files {
            if let Err(e) = f.sync() {
                return self.fatal(e);
            }
        }
        self.mark_flushed(offset);
        Ok(())
    }

    /// Writes the recovery-point checkpoint at the flushed offset, so a later unclean open scans
    /// less. The server may call this periodically.
    pub fn checkpoint_recovery_point(&mut self) -> Result<(), LogError> {
        self.ensure_ok()?;
        // An absent checkpoint means 0, as in `open` and `close`.
        if self.recovery_point_on_disk.unwrap_or(0) == self.flushed_offset {
            return Ok(());
        }
        if let Err(e) = self.write_recovery_point(self.flushed_offset) {
            return self.fatal(e);
        }
        Ok(())
    }

    /// Marks the log failed (after a failed sync); every later call returns [`LogError::Failed`].
    pub fn mark_failed(&mut self) {
        self.failed = true;
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The first batch (CRC-checked) at or after the log start whose max timestamp >= `ts`.
    pub fn batch_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>, LogError> {
        self.ensure_ok()?;
        for seg in self.segments.values() {
            if seg.next_offset <= self.log_start_offset || seg.max_ts.is_none_or(|(m, _)| m < ts) {
                continue;
            }
            let mut pos = seg.locate_timestamp(ts);
            while pos < seg.size {
                let h = seg.read_header(pos)?;
                if h.max_timestamp >= ts && h.last_offset() >= self.log_start_offset {
                    return Ok(Some(Bytes::from(seg.read_batch(pos, h.total_len())?)));
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// The first batch holding the largest max timestamp in the log, or None if it is empty.
    pub fn batch_with_max_timestamp(&self) -> Result<Option<Bytes>, LogError> {
        self.ensure_ok()?;
        let mut best: Option<(&Segment, i64, u64)> = None;
        for seg in self.segments.values() {
            if seg.next_offset <= self.log_start_offset {
                continue;
            }
            if let Some((ts, pos)) = seg.max_ts {
                if best.is_none_or(|(_, b, _)| ts > b) {
                    best = Some((seg, ts, pos));
                }
            }
        }
        match best {
            None => Ok(None),
            Some((seg, _, pos)) => {
                let h = seg.read_header(pos)?;
                Ok(Some(Bytes::from(seg.read_batch(pos, h.total_len())?)))
            }
        }
    }

    fn write_log_start_checkpoint(&mut self) -> Result<(), LogError> {
        self.before_write()?;
        let bytes = index::encode_checkpoint(self.log_start_offset);
        if let Err(e) = write_atomic(self.disk.as_ref(), &self.path(LOG_START_CHECKPOINT), &bytes) {
            return self.fatal(e);
        }
        self.log_start_on_disk = Some(self.log_start_offset);
        Ok(())
    }

    /// Deletes the given (non-active) segments durably. Returns their total size.
    fn delete_segments(&mut self, bases: &[i64]) -> Result<u64, LogError> {
        if !bases.is_empty() {
            self.before_write()?;
        }
        let mut bytes = 0;
        for &b in bases {
            let seg = self.segments.remove(&b).expect("deleting a known segment");
            assert!(!self.segments.is_empty(), "deleted the active segment");
            bytes += seg.size;
            self.unflushed.retain(|f| !std::sync::Arc::ptr_eq(f, &seg.file));
            if let Err(e) = self.remove_segment_files(b) {
                return self.fatal(e);
            }
        }
        if !bases.is_empty() {
            if let Err(e) = self.disk.sync_dir(&self.dir) {
                return self.fatal(e);
            }
        }
        Ok(bytes)
    }

    /// DeleteRecords: raises the log start offset to `offset` durably and deletes the segments
    /// that end at or below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        self.ensure_ok()?;
        let leo = self.log_end_offset();
        if offset > leo {
            return Err(LogError::OffsetOutOfRange { offset, log_start_offset: self.log_start_offset, log_end_offset: leo });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        // Checkpoint first: a crash before the deletions finish is completed by the next open.
        self.write_log_start_checkpoint()?;
        self.epochs_truncate_from_start(offset);
        let active_base = self.active().base_offset;
        let doomed: Vec<i64> = self
            .segments
            .values()
            .filter(|s| {
                let end = if bugs::active(Bug::DeleteRecordsOffByOne) { offset + 1 } else { offset };
                s.base_offset != active_base && s.next_offset <= end
            })
            .map(|s| s.base_offset)
            .collect();
        self.delete_segments(&doomed)?;
        self.write_producer_snapshot(self.log_end_offset())?;
        self.check_invariants();
        Ok(self.log_start_offset)
    }

    /// Time and size retention (see the crate API doc).
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionReport, LogError> {
        self.apply_retention_below(now_ms, i64::MAX)
    }

    /// Retention that only deletes segments ending at or below `max_offset` (e.g. the high
    /// watermark, so unreplicated data is never deleted).
    pub fn apply_retention_below(&mut self, now_ms: i64, max_offset: i64) -> Result<RetentionReport, LogError> {
        self.ensure_ok()?;
        let expired = self.producers.expire(now_ms, PRODUCER_ID_EXPIRATION_MS);
        if expired > 0 {
            info!(dir = %self.dir.display(), expired, "expired idle producer ids");
            self.snapshot_fresh = false;
        }
        let mut doomed: Vec<i64> = Vec::new();
        let mut roll_active = false;
        let active_base = self.active().base_offset;
        // Under `cleanup.policy=compact` alone, segments are never deleted by age or size.
        let deletes = self.config.cleanup_policy.delete;
        if deletes && self.config.retention_ms >= 0 {
            let limit = now_ms.saturating_sub(self.config.retention_ms);
            for seg in self.segments.values() {
                // Segments without timestamps age from their creation (Kafka uses mtime).
                let newest = match seg.max_ts {
                    Some((ts, _)) if ts >= 0 => ts,
                    Some(_) => seg.created_ms,
                    None => break,
                };
                if newest >= limit || seg.next_offset > max_offset {
                    break;
                }
                if seg.base_offset == active_base {
                    roll_active = true;
                }
                doomed.push(seg.base_offset);
            }
        }
        if deletes && self.config.retention_bytes >= 0 && !roll_active {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            for seg in self.segments.values().filter(|s| s.base_offset != active_base) {
                if excess < seg.size as i64 || seg.next_offset > max_offset {
                    break;
                }
                excess -= seg.size as i64;
                if !doomed.contains(&seg.base_offset) {
                    doomed.push(seg.base_offset);
                }
            }
        }
        if doomed.is_empty() {
            return Ok(RetentionReport { segments_deleted: 0, bytes_deleted: 0, log_start_offset: self.log_start_offset });
        }
        self.before_write()?;
        if roll_active {
            self.roll(now_ms)?;
        }
        let keep_from = self
            .segments
            .keys()
            .copied()
            .find(|b| !doomed.contains(b))
            .expect("the active segment is never deleted");
        if keep_from > self.log_start_offset {
            self.log_start_offset = keep_from;
            self.write_log_start_checkpoint()?;
            self.epochs_truncate_from_start(keep_from);
            // The batches below the new start can no longer rebuild their producers' state.
            self.write_producer_snapshot(self.log_end_offset())?;
        }
        let bytes_deleted = self.delete_segments(&doomed)?;
        info!(dir = %self.dir.display(), segments = doomed.len(), bytes_deleted, log_start_offset = self.log_start_offset,
            "retention deleted segments");
        self.check_invariants();
        Ok(RetentionReport { segments_deleted: doomed.len(), bytes_deleted, log_start_offset: self.log_start_offset })
    }

    /// Removes every record at or after `offset`, durably. The cut is at a batch boundary, so the
    /// batch containing `offset` goes too; the new log end is that batch's base offset. An
    /// `offset` below the log start empties the log and restarts it at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.ensure_ok()?;
        let r = self.truncate_inner(offset);
        if let Err(LogError::Io(e)) = r {
            return self.fatal(e);
        }
        r
    }

    fn truncate_inner(&mut self, offset: i64) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        if offset >= leo {
            // No record goes, but an epoch begun at the log end without a batch yet (a
            // leadership that wrote nothing) does: a follower told its log diverges there
            // must fetch with the epoch before it.
            if offset == leo && self.epochs.truncate_from_end(offset) {
                self.epochs_fresh = false;
            }
            return Ok(());
        }
        self.before_write_io()?;
        self.truncated_since_take = true;
        #[cfg(madsim)]
        self.probe_verified.set(self.probe_verified.get().min(offset));
        if offset < self.log_start_offset {
            return self.restart_at(offset);
        }
        let (&base, seg) = self.segments.range(..=offset).next_back().expect("offset is at or above the first segment");
        let pos = seg.locate(offset)?;
        let new_leo = if pos < seg.size { seg.read_header(pos)?.base_offset } else { seg.next_offset };
        self.flushed_offset = self.flushed_offset.min(new_leo);
        self.write_recovery_point(self.flushed_offset)?;
        let later: Vec<i64> = self.segments.range(base + 1..).map(|(&b, _)| b).collect();
        for &b in &later {
            let s = self.segments.remove(&b).expect("known segment");
            self.unflushed.retain(|f| !std::sync::Arc::ptr_eq(f, &s.file));
            self.remove_segment_files(b)?;
        }
        let seg = self.segments.remove(&base).expect("known segment");
        seg.file.truncate(pos)?;
        seg.file.sync()?;
        remove_if_exists(&self.disk, &Self::seg_path(&self.dir, base, "index"))?;
        remove_if_exists(&self.disk, &Self::seg_path(&self.dir, base, "timeindex"))?;
        self.disk.sync_dir(&self.dir)?;
        // Rebuild the kept part's in-memory indexes (and re-check it) by scanning.
        let scan = segment::scan(seg.file, base, pos, self.config.index_interval_bytes, seg.created_ms, self.holes_below())?;
        let seg = scan.segment;
        if scan.invalid_tail_bytes > 0 {
            warn!(dir = %self.dir.display(), base, why = ?scan.why_stopped, "corrupt data found while truncating; cut earlier");
            seg.file.truncate(seg.size)?;
            seg.file.sync()?;
        }
        self.segments.insert(base, seg);
        // The file was synced above; only later appends need a new flush.
        self.active_dirty = false;
        let leo = self.log_end_offset();
        self.flushed_offset = self.flushed_offset.min(leo);
        if self.epochs.truncate_from_end(leo) {
            self.epochs_fresh = false;
        }
        if self.log_start_offset > leo {
            // The cut removed a batch straddling the log start.
            self.log_start_offset = leo;
            self.write_log_start_checkpoint()?;
            self.epochs_truncate_from_start(leo);
        }
        self.rebuild_producer_state()?;
        self.write_producer_snapshot(leo)?;
        self.cap_cleaner_checkpoint(leo)?;
        info!(dir = %self.dir.display(), offset, log_end_offset = leo, "truncated log");
        self.check_invariants();
        Ok(())
    }

    /// Empties the log and restarts it at `offset`, durably, whatever its current range (Kafka's
    /// `truncateFullyAndStartAt`): a replica that installed a snapshot ending at `offset` keeps
    /// nothing of its old log.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.ensure_ok()?;
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange { offset, log_start_offset: self.log_start_offset, log_end_offset: self.log_end_offset() });
        }
        self.before_write_io()?;
        self.truncated_since_take = true;
        #[cfg(madsim)]
        self.probe_verified.set(self.probe_verified.get().min(offset));
        let r = self.restart_at(offset);
        if let Err(LogError::Io(e)) = r {
            return self.fatal(e);
        }
        info!(dir = %self.dir.display(), offset, "log emptied and restarted");
        r
    }

    fn restart_at(&mut self, offset: i64) -> Result<(), LogError> {
        let now_ms = self.active().created_ms;
        // Lower the recovery point first: nothing at or after `offset` may be trusted.
        self.flushed_offset = self.flushed_offset.min(offset);
        self.write_recovery_point(self.flushed_offset)?;
        for b in self.segments.keys().copied().collect::<Vec<_>>() {
            self.remove_segment_files(b)?;
        }
        self.segments.clear();
        self.unflushed.clear();
        self.active_dirty = false;
        let seg = self.create_segment_file(offset, now_ms)?;
        self.segments.insert(offset, seg);
        self.log_start_offset = offset;
        self.write_log_start_checkpoint()?;
        self.flushed_offset = offset;
        self.write_recovery_point(offset)?;
        self.producers.clear();
        self.cap_cleaner_checkpoint(offset)?;
        // Kafka clears the cache of a log emptied this way: no epoch wrote the new log yet.
        self.epochs.clear();
        self.epochs_fresh = false;
        self.check_invariants();
        Ok(())
    }

    /// Clean shutdown: sync all data, write every index, then the clean-shutdown marker. A log
    /// untouched since a clean open needs none of it: its files are what that close left. An
    /// empty log that never held a record needs none either: opening it unclean scans nothing.
    pub fn close(mut self) -> Result<(), LogError> {
        self.ensure_ok()?;
        if self.clean_marker {
            // Indexes that open had to rebuild (lost, or not matching) are written back; they
            // are derived data, checked when loaded, so writing them leaves the marker true.
            let mut wrote = false;
            for seg in self.segments.values().filter(|s| !s.index_persisted && s.size > 0) {
                self.write_index_files(seg, false)?;
                wrote = true;
            }
            if wrote {
                self.disk.sync_dir(&self.dir)?;
            }
            // So is an epoch checkpoint that open had to rebuild; it is written durably before
            // the next open can trust it, so the marker stays true.
            if !self.epochs_fresh {
                self.write_epoch_checkpoint()?;
            }
            info!(dir = %self.dir.display(), log_end_offset = self.log_end_offset(), "log closed cleanly (unchanged since open)");
            return Ok(());
        }
        self.flush()?;
        let leo = self.log_end_offset();
        let never_written = self.segments.len() == 1
            && self.active().size == 0
            && self.log_start_offset == self.active().base_offset
            && self.log_start_on_disk.unwrap_or(0) <= self.log_start_offset
            && self.producers.is_empty()
            && self.epochs.is_empty()
            && !self.disk.exists(&self.path(PRODUCER_SNAPSHOT));
        if never_written && self.log_start_offset == 0 {
            info!(dir = %self.dir.display(), "empty log closed");
            return Ok(());
        }
        self.before_write_io()?;
        // Segments wholly below the log start go now (a truncation to the log start can leave
        // the active segment holding only batches below it, and it may roll later), or the next
        // open would delete them and so change a cleanly closed partition.
        let active_base = self.active().base_offset;
        let below: Vec<i64> =
            self.segments.values().filter(|s| s.base_offset != active_base && s.next_offset <= self.log_start_offset).map(|s| s.base_offset).collect();
        self.delete_segments(&below)?;
        let disk = self.disk.clone();
        // Index files are checked against their segment's size and CRC when loaded, so they
        // need no fsync: one lost to a power loss is rebuilt by a scan.
        for seg in self.segments.values().filter(|s| !s.index_persisted && s.size > 0) {
            self.write_index_files(seg, false)?;
        }
        if self.recovery_point_on_disk.unwrap_or(0) != leo {
            self.write_recovery_point(leo)?;
        }
        // Open takes the larger of the checkpoint and the first segment's base, so a start at
        // that base needs no checkpoint.
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        let start_known = self.log_start_on_disk == Some(self.log_start_offset)
            || (self.log_start_offset == first_base && self.log_start_on_disk.unwrap_or(0) <= first_base);
        if !start_known {
            write_atomic(disk.as_ref(), &self.path(LOG_START_CHECKPOINT), &index::encode_checkpoint(self.log_start_offset))?;
        }
        let snapshot_needed = !self.producers.is_empty() || disk.exists(&self.path(PRODUCER_SNAPSHOT));
        if !self.snapshot_fresh && snapshot_needed {
            self.write_producer_snapshot(leo)?;
        }
        if !self.epochs_fresh {
            self.write_epoch_checkpoint()?;
        }
        // Only the marker's existence counts, so creating it and syncing the directory is
        // enough; that one sync also makes the index files' renames above durable, no later
        // than the marker.
        drop(disk.open(&self.path(CLEAN_SHUTDOWN), true)?);
        disk.sync_dir(&self.dir)?;
        info!(dir = %self.dir.display(), log_end_offset = leo, "log closed cleanly");
        Ok(())
    }

    /// Deletes the whole partition directory.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let disk = self.disk.clone();
        drop(self);
        disk.remove_dir_all(&dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            disk.sync_dir(parent)?;
        }
        Ok(())
    }
}

/// The injected read bugs ([`Bug::FetchOutOfOrder`], [`Bug::FetchSkipsBatch`]): swaps the first
/// two of the whole batches in `out`, or leaves the second of three or more out.
fn misorder_batches(out: Vec<u8>) -> Vec<u8> {
    let mut spans = Vec::new();
    let mut at = 0;
    while at + HEADER_LEN <= out.len() {
        let Ok(h) = BatchHeader::parse(&out[at..]) else { break };
        let end = at + h.total_len();
        if end > out.len() {
            break;
        }
        spans.push(at..end);
        at = end;
    }
    let mut order: Vec<usize> = (0..spans.len()).collect();
    if bugs::active(Bug::FetchOutOfOrder) && spans.len() >= 2 {
        order.swap(0, 1);
    } else if bugs::active(Bug::FetchSkipsBatch) && spans.len() >= 3 {
        order.remove(1);
    } else {
        return out;
    }
    let mut v = Vec::with_capacity(out.len());
    for i in order {
        v.extend_from_slice(&out[spans[i].clone()]);
    }
    v.extend_from_slice(&out[at..]);
    v
}

/// Reads the first `len` bytes of `file` and writes them back in place, so that the next sync
/// makes them durable even if they were only in the page cache (see recovery).
fn rewrite(file: &FileRef, len: u64) -> io::Result<()> {
    const CHUNK_BYTES: u64 = 1 << 20;
    let mut buf = Vec::new();
    let mut at = 0;
    while at < len {
        let n = (len - at).min(CHUNK_BYTES);
        buf.resize(n as usize, 0);
        file.read_exact_at(&mut buf, at)?;
        file.write_all_at(&buf, at)?;
        at += n;
    }
    Ok(())
}

