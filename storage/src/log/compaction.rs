//! Log compaction of a [`PartitionLog`]: one cleaning pass, and the crash-safe swap of cleaned
//! segments for the ones they replace.
//!
//! # A pass
//! [`PartitionLog::clean`] cleans below `upto` (the caller's first uncleanable offset: the high
//! watermark, `min.compaction.lag.ms`), and never into the active segment or above what the log
//! has synced. The dirty section starts at the cleaner checkpoint (`cleaner-offset-checkpoint`,
//! the end of the last pass's map; the log start if none) and ends at the last segment boundary
//! below that limit. Its keys go into an [`OffsetMap`] (bounded by the dedupe buffer; when it
//! fills, the pass covers what it holds). Then every segment from the log start to the map's end
//! is rewritten by [`crate::cleaner`]'s rules, in groups of consecutive segments whose sizes add
//! up to at most `segment.bytes`, each group into one segment named by its first base offset.
//! A group's last batch always stays (empty if need be), so the cleaned segment ends exactly
//! where the group ended and segments stay contiguous; holes are only inside segments.
//!
//! Segment recovery trusts holes in the offsets only below `cleaner-holes-below` (a batch's base
//! offset is outside its CRC, so elsewhere a hole is damage), which moves to the map's end before
//! the first swap of a pass; the cleaner checkpoint moves there after the last.
//!
//! # The swap, and recovery from a crash at any point
//! ```text
//! 1. write {first}.{end}.cleaned, sync it          crash: the .cleaned file is deleted at open
//! 2. rename it to {first}.{end}.swap, sync the dir  the commit point
//! 3. remove the old segments in (first, end) and the old indexes of `first`
//! 4. rename the swap over {first}.log, sync the dir
//! ```
//! At open, a `.cleaned` file is deleted (the old segments are intact), and a `.swap` file is
//! completed: steps 3 and 4 again (each is idempotent). `end` in the name says exactly which old
//! segments the swap replaces. Nothing is lost (the old segments go only after the swap is
//! durable) and nothing is doubled (the swap takes the first old segment's name, atomically).

use std::io;
use std::path::Path;

use gregor_core::batch::{self, BatchHeader};
use gregor_core::bugs::{self, Bug};
use gregor_core::disk::{write_atomic, SharedDisk};
use gregor_core::probe::{self, CrashPoint};
use tracing::{info, warn};

use super::{remove_if_exists, LogError, PartitionLog, CLEANER_CHECKPOINT, CLEANER_HOLES};
use crate::cleaner::{self, Cleaned, OffsetMap, Removed, Rules};
use crate::index;
use crate::segment;

/// The limits of one cleaning pass.
#[derive(Debug, Clone, Copy)]
pub struct CleanOptions {
    /// `log.cleaner.dedupe.buffer.size` (divided among the cleaner threads by the caller).
    pub dedupe_buffer_bytes: usize,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// Most bytes one batch's records may decompress to.
    pub decompressed_bytes_max: u64,
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanReport {
    /// The dirty section it covered: `[first_dirty, cleaned_to)`.
    pub first_dirty: i64,
    pub cleaned_to: i64,
    pub segments_before: usize,
    pub segments_after: usize,
    /// Log bytes read: the dirty section to build the map, then every cleaned segment.
    pub bytes_read: u64,
    /// Bytes of the dirty section.
    pub dirty_bytes: u64,
    pub bytes_written: u64,
    pub removed: Removed,
    /// How full the offset map got (0.0 to 1.0).
    pub map_utilization: f64,
}

/// `{first:020}.{end:020}.{ext}`, the name of a cleaned segment before it takes its place.
fn staged_name(first: i64, end: i64, ext: &str) -> String {
    format!("{first:020}.{end:020}.{ext}")
}

/// Parses [`staged_name`]: `(first, end)`.
pub(super) fn parse_staged_name(name: &str, ext: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    let (first, end) = stem.split_once('.')?;
    let num = |s: &str| (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten();
    let (first, end): (i64, i64) = (num(first)?, num(end)?);
    (first < end).then_some((first, end))
}

impl PartitionLog {
    /// Below this offset a segment may have holes (batches compaction removed): every cleaned
    /// segment lies below it (`cleaner-holes-below`, moved before a pass swaps anything in).
    /// Anywhere else a gap in the offsets is damage and recovery cuts the log there.
    pub(super) fn holes_below(&self) -> i64 {
        self.holes_below.unwrap_or(0).max(self.cleaner_checkpoint.unwrap_or(0))
    }

    /// Where the next pass's dirty section starts: the cleaner checkpoint, at least the log start.
    pub fn first_dirty_offset(&self) -> i64 {
        self.cleaner_checkpoint.unwrap_or(0).max(self.log_start_offset)
    }

    /// The offset below which a pass may clean now, given the caller's limit `upto`: the base of
    /// the segment that holds the limit (only whole segments are cleaned).
    pub fn cleanable_end(&self, upto: i64) -> i64 {
        let durable = if bugs::active(Bug::CleanPastHighWatermark) { i64::MAX } else { self.flushed_offset };
        let limit = upto.min(self.active().base_offset).min(durable);
        self.segments.values().take_while(|s| s.next_offset <= limit).last().map_or(self.log_start_offset, |s| s.next_offset)
    }

    /// The first offset `min.compaction.lag.ms` keeps from the cleaner: the base of the first
    /// dirty segment holding a record newer than `now_ms - lag_ms` (`i64::MAX` if none).
    pub fn compaction_lag_end(&self, now_ms: i64, lag_ms: i64) -> i64 {
        if lag_ms <= 0 {
            return i64::MAX;
        }
        let newest_allowed = now_ms.saturating_sub(lag_ms);
        let first_dirty = self.first_dirty_offset();
        self.segments
            .values()
            .filter(|s| s.next_offset > first_dirty)
            .find(|s| s.max_ts.is_some_and(|(ts, _)| ts > newest_allowed))
            .map_or(i64::MAX, |s| s.base_offset)
    }

    /// The timestamp of the first batch of the dirty section (Kafka's rule for
    /// `max.compaction.lag.ms`), `None` if the dirty section is empty or the batch unreadable.
    pub fn first_dirty_timestamp(&self) -> Option<i64> {
        let first_dirty = self.first_dirty_offset();
        let seg = self.segments.values().find(|s| s.next_offset > first_dirty && s.size > 0)?;
        seg.read_header(0).ok().map(|h| h.max_timestamp)
    }

    /// Bytes of the clean section (`[log start, first dirty)`) and of the dirty section
    /// (`[first dirty, cleanable end)`), counted by whole segments as Kafka does: the inputs of
    /// `min.cleanable.dirty.ratio`.
    pub fn clean_and_dirty_bytes(&self, upto: i64) -> (u64, u64) {
        let (first_dirty, end) = (self.first_dirty_offset(), self.cleanable_end(upto));
        let mut clean = 0;
        let mut dirty = 0;
        for s in self.segments.values().take_while(|s| s.next_offset <= end) {
            if s.next_offset <= first_dirty {
                clean += s.size;
            } else {
                dirty += s.size;
            }
        }
        (clean, dirty)
    }

    /// One whole cleaning pass below `upto` (see the module doc), run step by step; `None` when
    /// there is nothing dirty to clean (or the pass had to be abandoned). A batch that cannot be
    /// decoded stops the pass with [`LogError::Records`] and changes nothing that was not already
    /// swapped in.
    pub fn clean(&mut self, upto: i64, now_ms: i64, opts: &CleanOptions) -> Result<Option<CleanReport>, LogError> {
        self.ensure_ok()?;
        let Some(mut pass) = self.begin_clean(upto, now_ms, opts) else { return Ok(None) };
        loop {
            match self.clean_step(&mut pass)? {
                Step::Working { .. } => {}
                Step::Done(report) => return Ok(report),
                Step::Abandoned(_) => return Ok(None),
            }
        }
    }

    /// Plans a pass below `upto`; `None` when nothing is dirty. The pass then runs by
    /// [`PartitionLog::clean_step`], about [`STEP_BYTES`] read per step (building the map, then
    /// rewriting each group, and swapping it in at the step that finishes it), so that a caller
    /// can let go of the log between steps: appends, reads and retention go on meanwhile, and a
    /// step that finds its segments changed abandons the pass (a later pass starts over from the
    /// checkpoint).
    pub fn begin_clean(&self, upto: i64, now_ms: i64, opts: &CleanOptions) -> Option<CleanPass> {
        let first_dirty = self.first_dirty_offset();
        let end = self.cleanable_end(upto);
        if first_dirty >= end {
            return None;
        }
        let (_, dirty_bytes) = self.clean_and_dirty_bytes(upto);
        let to_map = self.segments.values().filter(|s| s.next_offset > first_dirty && s.base_offset < end).map(|s| (s.base_offset, s.next_offset)).collect();
        Some(CleanPass {
            now_ms,
            opts: *opts,
            first_dirty,
            end,
            map: OffsetMap::new(opts.dedupe_buffer_bytes),
            phase: Phase::Mapping { to_map, next: 0, at: Resume::default() },
            segments_before: self.segments.len(),
            dirty_bytes,
            bytes_read: 0,
            bytes_written: 0,
            removed: Removed::default(),
        })
    }

    /// Does the next step of `pass` (see [`PartitionLog::begin_clean`]).
    pub fn clean_step(&mut self, pass: &mut CleanPass) -> Result<Step, LogError> {
        self.ensure_ok()?;
        let read_before = pass.bytes_read;
        let holes_below = self.holes_below();
        match &mut pass.phase {
            Phase::Mapping { to_map, next, at } => {
                let Some(&(base, next_offset)) = to_map.get(*next) else {
                    return Ok(self.plan_groups(pass, pass.end));
                };
                let Some(seg) = self.segments.get(&base).filter(|s| s.next_offset == next_offset) else {
                    return Ok(Step::Abandoned("a segment of the dirty section changed"));
                };
                let mut batches = SegmentBatches::resume(seg, *at, holes_below);
                let mut stop = None;
                while pass.bytes_read - read_before < STEP_BYTES {
                    let Some(batch) = batches.next() else { break };
                    let (h, bytes) = batch?;
                    pass.bytes_read += bytes.len() as u64;
                    if h.last_offset() < pass.first_dirty {
                        continue;
                    }
                    stop = cleaner::add_to_map(&bytes, &h, &mut pass.map, pass.end, pass.opts.decompressed_bytes_max).map_err(corrupt)?;
                    if stop.is_some() {
                        break;
                    }
                }
                if batches.at_end() {
                    *next += 1;
                    *at = Resume::default();
                } else {
                    *at = batches.position();
                }
                if let Some(stop) = stop {
                    // The map is full: the pass covers what it holds.
                    let _ = self.plan_groups(pass, stop);
                }
                Ok(Step::Working { io_bytes: pass.bytes_read - read_before })
            }
            Phase::Rewriting { map_end, groups, next, writing } => {
                let map_end = *map_end;
                let Some(group) = groups.get(*next).cloned() else {
                    return self.finish_clean(pass, map_end);
                };
                // Checked at every step: retention or a truncation between two steps must not
                // see its segments come back in a cleaned one.
                if group.iter().any(|&(b, size, next_offset)| !self.segments.get(&b).is_some_and(|s| s.size == size && s.next_offset == next_offset)) {
                    if let Some(w) = writing.take() {
                        if let Err(e) = remove_if_exists(&self.disk, &w.path) {
                            return self.fatal(e);
                        }
                    }
                    return Ok(Step::Abandoned("a segment to rewrite changed"));
                }
                let (first, group_end) = (group[0].0, group.last().expect("a group is never empty").2);
                let mut w = match writing.take() {
                    Some(w) => w,
                    None => {
                        let path = self.dir.join(staged_name(first, group_end, "cleaned"));
                        match self.start_cleaned(&path) {
                            Ok(file) => GroupWrite { path, file, segment: 0, at: Resume::default(), written: 0, buf: Vec::with_capacity(WRITE_BUFFER_BYTES), changed: false },
                            Err(e) => return self.fatal(e),
                        }
                    }
                };
                let delete_retention_ms = if bugs::active(Bug::TombstoneEarly) { 0 } else { pass.opts.delete_retention_ms };
                let rules = Rules { map: &pass.map, map_end, now_ms: pass.now_ms, delete_retention_ms, decompressed_bytes_max: pass.opts.decompressed_bytes_max };
                let written_before = w.written + w.buf.len() as u64;
                let done = match self.write_cleaned(&mut w, &group, &rules, &mut pass.removed, &mut pass.bytes_read, read_before) {
                    Ok(done) => done,
                    Err(LogError::Io(e)) => return self.fatal(e),
                    Err(e) => {
                        // Undecodable data: this pass stops, the old segments stay as they are.
                        let _ = remove_if_exists(&self.disk, &w.path);
                        return Err(e);
                    }
                };
                let io_bytes = pass.bytes_read - read_before + (w.written + w.buf.len() as u64 - written_before);
                if !done {
                    *writing = Some(w);
                    return Ok(Step::Working { io_bytes });
                }
                *next += 1;
                if !w.changed && group.len() == 1 {
                    // Nothing to gain: the segment stays as it is.
                    if let Err(e) = remove_if_exists(&self.disk, &w.path) {
                        return self.fatal(e);
                    }
                } else {
                    pass.bytes_written += w.written;
                    let bases: Vec<i64> = group.iter().map(|g| g.0).collect();
                    self.swap_in(first, group_end, &bases, w.written, pass.now_ms)?;
                }
                Ok(Step::Working { io_bytes })
            }
        }
    }

    /// The end of a pass: the cleaner checkpoint moves to the map's end.
    fn finish_clean(&mut self, pass: &CleanPass, map_end: i64) -> Result<Step, LogError> {
        if map_end > self.log_end_offset() {
            // Truncated meanwhile: what is written there next is dirty.
            return Ok(Step::Abandoned("the log was truncated below the cleaned section"));
        }
        self.write_cleaner_checkpoint(map_end)?;
        self.check_invariants();
        let report = CleanReport {
            first_dirty: pass.first_dirty,
            cleaned_to: map_end,
            segments_before: pass.segments_before,
            segments_after: self.segments.len(),
            bytes_read: pass.bytes_read,
            dirty_bytes: pass.dirty_bytes,
            bytes_written: pass.bytes_written,
            removed: pass.removed,
            map_utilization: pass.map.utilization(),
        };
        info!(dir = %self.dir.display(), first_dirty = pass.first_dirty, cleaned_to = map_end, keys = pass.map.len(),
            removed = pass.removed.records, segments_before = pass.segments_before, segments_after = report.segments_after, "cleaned log");
        Ok(Step::Done(Some(report)))
    }

    /// With the map built up to `map_end`: groups the whole segments below it, each at most
    /// `segment.bytes` in all, and moves `cleaner-holes-below` up before anything is swapped in.
    fn plan_groups(&mut self, pass: &mut CleanPass, map_end: i64) -> Step {
        if map_end <= pass.first_dirty {
            warn!(dir = %self.dir.display(), first_dirty = pass.first_dirty, dedupe_buffer_bytes = pass.opts.dedupe_buffer_bytes,
                "log.cleaner.dedupe.buffer.size holds no key of the dirty section; not cleaning");
            return Step::Abandoned("the dedupe buffer holds no key");
        }
        let segs: Vec<(i64, u64, i64)> =
            self.segments.values().take_while(|s| s.base_offset < map_end && s.next_offset <= pass.end).map(|s| (s.base_offset, s.size, s.next_offset)).collect();
        let mut groups: Vec<Vec<(i64, u64, i64)>> = Vec::new();
        for s in segs {
            match groups.last_mut() {
                Some(g) if g.iter().map(|x| x.1).sum::<u64>() + s.1 <= self.config.segment_bytes => g.push(s),
                _ => groups.push(vec![s]),
            }
        }
        // Holes are trusted only below `holes_below`, so that bound moves to the map's end
        // before any cleaned segment is swapped in; the cleaner checkpoint follows after the
        // swaps, so a crash in between cleans the same dirty section again.
        if let Err(e) = self.write_holes_below(map_end) {
            // The log is failed now; the next step reports it.
            warn!(dir = %self.dir.display(), error = %e, "cannot move cleaner-holes-below");
        }
        pass.phase = Phase::Rewriting { map_end, groups, next: 0, writing: None };
        Step::Working { io_bytes: 0 }
    }

    /// Whether `h` is the last batch of a producer the producer state remembers.
    fn is_producers_last_batch(&self, h: &BatchHeader) -> bool {
        h.producer_id >= 0 && self.producers.get(h.producer_id).and_then(|e| e.batches.back()).is_some_and(|m| m.last_offset == h.last_offset())
    }

    /// Creates the `.cleaned` file of a group (step 1 of the swap begins).
    fn start_cleaned(&mut self, path: &Path) -> io::Result<gregor_core::disk::FileRef> {
        self.before_write_io()?;
        remove_if_exists(&self.disk, path)?;
        self.disk.open(path, true)
    }

    /// Goes on writing the cleaned batches of `group` into `w`'s file, streaming (memory is one
    /// batch and a write buffer, whatever the segments' size), until this step has read about
    /// [`STEP_BYTES`] or the group is done; at its end the file is written out and synced (the
    /// rest of step 1 of the swap). Returns whether the group is done.
    fn write_cleaned(
        &mut self,
        w: &mut GroupWrite,
        group: &[(i64, u64, i64)],
        rules: &Rules,
        removed: &mut Removed,
        bytes_read: &mut u64,
        read_before: u64,
    ) -> Result<bool, LogError> {
        let holes_below = self.holes_below();
        while w.segment < group.len() {
            let seg = &self.segments[&group[w.segment].0];
            let last_segment = w.segment + 1 == group.len();
            let mut batches = SegmentBatches::resume(seg, w.at, holes_below);
            while *bytes_read - read_before < STEP_BYTES {
                let Some(batch) = batches.next() else { break };
                let (h, bytes) = batch?;
                *bytes_read += bytes.len() as u64;
                let last_of_group = last_segment && batches.at_end();
                let must_stay = last_of_group || self.is_producers_last_batch(&h);
                let (cleaned, r) = cleaner::clean_batch(&bytes, &h, rules, must_stay).map_err(corrupt)?;
                removed.add(r);
                match cleaned {
                    Cleaned::Unchanged => w.buf.extend_from_slice(&bytes),
                    Cleaned::Removed => w.changed = true,
                    Cleaned::Rewritten(b) => {
                        w.changed = true;
                        w.buf.extend_from_slice(&b);
                    }
                }
                if w.buf.len() >= WRITE_BUFFER_BYTES {
                    w.file.write_all_at(&w.buf, w.written)?;
                    w.written += w.buf.len() as u64;
                    w.buf.clear();
                }
            }
            if !batches.at_end() {
                w.at = batches.position();
                return Ok(false);
            }
            w.segment += 1;
            w.at = Resume::default();
        }
        w.file.write_all_at(&w.buf, w.written)?;
        w.written += w.buf.len() as u64;
        w.buf.clear();
        w.file.sync()?;
        probe::crash_point(self.disk.as_ref(), CrashPoint::CleanedWritten);
        Ok(true)
    }

    /// Replaces the segments `bases` (consecutive, from `first` up to `end`) with the cleaned
    /// segment of `len` bytes already written (steps 2 to 4 of the swap).
    fn swap_in(&mut self, first: i64, end: i64, bases: &[i64], len: u64, now_ms: i64) -> Result<(), LogError> {
        debug_assert!(bases.first() == Some(&first) && bases.iter().all(|&b| b < end));
        let swap = || -> io::Result<()> {
            if bugs::active(Bug::SwapNotAtomic) {
                for &b in bases {
                    for ext in ["log", "index", "timeindex"] {
                        remove_if_exists(&self.disk, &Self::seg_path(&self.dir, b, ext))?;
                    }
                }
                self.disk.sync_dir(&self.dir)?;
                probe::crash_point(self.disk.as_ref(), CrashPoint::SwapOldRemoved);
                self.disk.rename(&self.dir.join(staged_name(first, end, "cleaned")), &Self::seg_path(&self.dir, first, "log"))?;
                return self.disk.sync_dir(&self.dir);
            }
            let swap = self.dir.join(staged_name(first, end, "swap"));
            self.disk.rename(&self.dir.join(staged_name(first, end, "cleaned")), &swap)?;
            self.disk.sync_dir(&self.dir)?;
            probe::crash_point(self.disk.as_ref(), CrashPoint::SwapCommitted);
            complete_swap(&self.disk, &self.dir, first, end)
        };
        if let Err(e) = swap() {
            return self.fatal(e);
        }
        for b in bases {
            self.segments.remove(b);
        }
        let path = Self::seg_path(&self.dir, first, "log");
        let file = match self.disk.open(&path, false) {
            Ok(f) => f,
            Err(e) => return self.fatal(e),
        };
        let scan = match segment::scan(file, first, len, self.config.index_interval_bytes, now_ms, self.holes_below()) {
            Ok(s) => s,
            Err(e) => return self.fatal(e),
        };
        // Every batch was valid and the group's last batch stayed, so the segment ends where the
        // group did; bytes that read back otherwise were damaged on the way to the disk.
        if scan.invalid_tail_bytes != 0 || scan.segment.next_offset != end {
            let why = format!("cleaned segment {first} reads back ending at {} with {} bad bytes, expected to end at {end}", scan.segment.next_offset, scan.invalid_tail_bytes);
            return self.fatal(io::Error::other(why));
        }
        let mut seg = scan.segment;
        if let Err(e) = self.write_index_files(&seg, false) {
            return self.fatal(e);
        }
        seg.index_persisted = true;
        self.segments.insert(first, seg);
        Ok(())
    }

    /// A truncation below the cleaner checkpoint brings it down to the new log end: what is
    /// written there next is dirty.
    pub(super) fn cap_cleaner_checkpoint(&mut self, log_end: i64) -> Result<(), LogError> {
        if self.cleaner_checkpoint.is_some_and(|c| c > log_end) {
            self.write_cleaner_checkpoint(log_end)?;
        }
        // What is written above the new end has no holes.
        if self.holes_below.is_some_and(|h| h > log_end) {
            if let Err(e) = write_atomic(self.disk.as_ref(), &self.path(CLEANER_HOLES), &index::encode_checkpoint(log_end)) {
                return self.fatal(e);
            }
            self.holes_below = Some(log_end);
        }
        Ok(())
    }

    pub(super) fn write_holes_below(&mut self, offset: i64) -> Result<(), LogError> {
        if self.holes_below.is_some_and(|h| h >= offset) {
            return Ok(());
        }
        if let Err(e) = self.before_write_io().and_then(|()| write_atomic(self.disk.as_ref(), &self.path(CLEANER_HOLES), &index::encode_checkpoint(offset))) {
            return self.fatal(e);
        }
        self.holes_below = Some(offset);
        Ok(())
    }

    fn write_cleaner_checkpoint(&mut self, offset: i64) -> Result<(), LogError> {
        if self.cleaner_checkpoint == Some(offset) {
            return Ok(());
        }
        if let Err(e) = self.before_write_io().and_then(|()| write_atomic(self.disk.as_ref(), &self.path(CLEANER_CHECKPOINT), &index::encode_checkpoint(offset))) {
            return self.fatal(e);
        }
        self.cleaner_checkpoint = Some(offset);
        Ok(())
    }
}

/// Steps 3 and 4 of the swap of `{first}.{end}.swap` in `dir` (also what `open` does with a
/// `.swap` file it finds): each step is idempotent, so a crash anywhere is finished by doing it
/// again.
pub(super) fn complete_swap(disk: &SharedDisk, dir: &Path, first: i64, end: i64) -> io::Result<()> {
    for name in disk.list_dir(dir)? {
        if let Some(b) = super::parse_segment_name(&name, "log").filter(|&b| b > first && b < end) {
            for ext in ["log", "index", "timeindex"] {
                remove_if_exists(disk, &PartitionLog::seg_path(dir, b, ext))?;
            }
        }
    }
    remove_if_exists(disk, &PartitionLog::seg_path(dir, first, "index"))?;
    remove_if_exists(disk, &PartitionLog::seg_path(dir, first, "timeindex"))?;
    probe::crash_point(disk.as_ref(), CrashPoint::SwapOldRemoved);
    disk.rename(&dir.join(staged_name(first, end, "swap")), &PartitionLog::seg_path(dir, first, "log"))?;
    disk.sync_dir(dir)
}

fn corrupt(e: gregor_core::records::RecordsError) -> LogError {
    LogError::Records(e.to_string())
}

/// A cleaning pass under way (see [`PartitionLog::begin_clean`]).
pub struct CleanPass {
    now_ms: i64,
    opts: CleanOptions,
    first_dirty: i64,
    /// The cleanable end when the pass began.
    end: i64,
    map: OffsetMap,
    phase: Phase,
    segments_before: usize,
    dirty_bytes: u64,
    bytes_read: u64,
    bytes_written: u64,
    removed: Removed,
}

enum Phase {
    /// Reading the dirty section's segments `(base, next offset)` into the map; `at` is where
    /// in `to_map[next]` the next step goes on.
    Mapping { to_map: Vec<(i64, i64)>, next: usize, at: Resume },
    /// Rewriting groups of segments `(base, size, next offset)` below `map_end`; `writing` is
    /// the cleaned file of `groups[next]` while it is being written.
    Rewriting { map_end: i64, groups: Vec<Vec<(i64, u64, i64)>>, next: usize, writing: Option<GroupWrite> },
}

/// Where reading a segment stopped: the position of the next batch and the offset it must start
/// at (`None`: the segment's start).
#[derive(Clone, Copy, Debug, Default)]
struct Resume {
    pos: u64,
    next_offset: Option<i64>,
}

/// A group's cleaned file while it is being written, over several steps.
struct GroupWrite {
    path: std::path::PathBuf,
    file: gregor_core::disk::FileRef,
    /// The group's segment being read, and where in it.
    segment: usize,
    at: Resume,
    /// Bytes written to the file, and the buffer of what comes after them.
    written: u64,
    buf: Vec<u8>,
    changed: bool,
}

/// About how many bytes one step reads (it finishes the batch it is in): the time a caller
/// holds the log for one step.
const STEP_BYTES: u64 = 8 << 20;

/// What a step of a pass did.
#[derive(Debug)]
pub enum Step {
    /// More to do; this step read and wrote so many bytes (for the caller's I/O throttle).
    Working { io_bytes: u64 },
    /// The pass is over (`None`: it found nothing to do).
    Done(Option<CleanReport>),
    /// The log changed under the pass (retention, truncation) or it cannot go on; the
    /// checkpoint did not move, and what was swapped in stays (it is correct on its own).
    Abandoned(&'static str),
}

/// The cleaned output is written in pieces of about this size.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// The batches of a segment, read one at a time, CRC-checked, and checked to continue the
/// segment's offsets (a batch's base offset is outside its CRC: a flipped bit there must stop
/// the cleaner, not be copied into a cleaned segment).
struct SegmentBatches<'a> {
    seg: &'a crate::segment::Segment,
    pos: u64,
    /// The offset the next batch must start at (or above, inside the region with holes).
    next: i64,
    holes_below: i64,
    failed: bool,
}

impl<'a> SegmentBatches<'a> {
    /// The batches of `seg` from `at`.
    fn resume(seg: &'a crate::segment::Segment, at: Resume, holes_below: i64) -> Self {
        SegmentBatches { seg, pos: at.pos, next: at.next_offset.unwrap_or(seg.base_offset), holes_below, failed: false }
    }

    /// Where the next batch is.
    fn position(&self) -> Resume {
        Resume { pos: self.pos, next_offset: Some(self.next) }
    }

    /// Whether every batch was read.
    fn at_end(&self) -> bool {
        !self.failed && self.pos >= self.seg.size
    }
}

impl Iterator for SegmentBatches<'_> {
    type Item = Result<(BatchHeader, Vec<u8>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.seg.size {
            return None;
        }
        let read = (|| {
            let h = self.seg.read_header(self.pos)?;
            let bytes = self.seg.read_batch(self.pos, h.total_len())?;
            batch::validate(&bytes)?;
            let in_place = h.base_offset == self.next || (h.base_offset > self.next && h.base_offset <= self.holes_below);
            if !in_place || h.next_offset() > self.seg.next_offset {
                return Err(LogError::Records(format!(
                    "batch at position {} of segment {} has offsets {}..{}, expected from {} up to {}",
                    self.pos,
                    self.seg.base_offset,
                    h.base_offset,
                    h.last_offset(),
                    self.next,
                    self.seg.next_offset
                )));
            }
            Ok((h, bytes))
        })();
        match &read {
            Ok((h, bytes)) => {
                self.pos += bytes.len() as u64;
                self.next = h.next_offset();
            }
            Err(_) => self.failed = true,
        }
        Some(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_names_round_trip_and_refuse_anything_else() {
        assert_eq!(parse_staged_name(&staged_name(0, 120, "swap"), "swap"), Some((0, 120)));
        assert_eq!(parse_staged_name(&staged_name(7, 9, "cleaned"), "swap"), None);
        assert_eq!(parse_staged_name("00000000000000000000.swap", "swap"), None);
        assert_eq!(parse_staged_name(&staged_name(9, 7, "swap"), "swap"), None, "end after first");
    }
}
