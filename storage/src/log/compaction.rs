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
        let limit = upto.min(self.active().base_offset).min(self.flushed_offset);
        self.segments.values().take_while(|s| s.next_offset <= limit).last().map_or(self.log_start_offset, |s| s.next_offset)
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

    /// One cleaning pass below `upto` (see the module doc); `None` when there is nothing dirty to
    /// clean. A batch that cannot be decoded stops the pass with [`LogError::Corrupt`] and
    /// changes nothing that was not already swapped in.
    pub fn clean(&mut self, upto: i64, now_ms: i64, opts: &CleanOptions) -> Result<Option<CleanReport>, LogError> {
        self.ensure_ok()?;
        let first_dirty = self.first_dirty_offset();
        let end = self.cleanable_end(upto);
        if first_dirty >= end {
            return Ok(None);
        }
        // The map of the dirty section.
        let mut map = OffsetMap::new(opts.dedupe_buffer_bytes);
        let mut map_end = end;
        let mut bytes_read = 0u64;
        let (_, dirty_bytes) = self.clean_and_dirty_bytes(upto);
        'build: for seg in self.segments.values().filter(|s| s.next_offset > first_dirty && s.base_offset < end) {
            for batch in SegmentBatches::new(seg) {
                let (h, bytes) = batch?;
                bytes_read += bytes.len() as u64;
                if h.last_offset() < first_dirty {
                    continue;
                }
                if let Some(stop) = cleaner::add_to_map(&bytes, &h, &mut map, end, opts.decompressed_bytes_max).map_err(corrupt)? {
                    map_end = stop;
                    break 'build;
                }
            }
        }
        if map_end <= first_dirty {
            warn!(dir = %self.dir.display(), first_dirty, dedupe_buffer_bytes = opts.dedupe_buffer_bytes,
                "log.cleaner.dedupe.buffer.size holds no key of the dirty section; not cleaning");
            return Ok(None);
        }
        let rules = Rules { map: &map, map_end, now_ms, delete_retention_ms: opts.delete_retention_ms, decompressed_bytes_max: opts.decompressed_bytes_max };
        let segments_before = self.segments.len();
        // Groups of whole segments below the map's end, each at most segment.bytes in all.
        let bases: Vec<(i64, u64, i64)> = self.segments.values().take_while(|s| s.base_offset < map_end && s.next_offset <= end).map(|s| (s.base_offset, s.size, s.next_offset)).collect();
        let mut groups: Vec<Vec<(i64, u64, i64)>> = Vec::new();
        for s in bases {
            match groups.last_mut() {
                Some(g) if g.iter().map(|x| x.1).sum::<u64>() + s.1 <= self.config.segment_bytes => g.push(s),
                _ => groups.push(vec![s]),
            }
        }
        // Holes are trusted only below `holes_below`, so that bound moves to the map's end
        // before any cleaned segment is swapped in; the cleaner checkpoint follows after the
        // swaps, so a crash in between cleans the same dirty section again.
        self.write_holes_below(map_end)?;
        let mut removed = Removed::default();
        let mut bytes_written = 0u64;
        for group in groups {
            let (first, group_end) = (group[0].0, group.last().expect("a group is never empty").2);
            let bases: Vec<i64> = group.iter().map(|g| g.0).collect();
            let cleaned = self.dir.join(staged_name(first, group_end, "cleaned"));
            let (written, changed) = match self.write_cleaned(&cleaned, &bases, &rules, &mut removed, &mut bytes_read) {
                Ok(r) => r,
                Err(LogError::Io(e)) => return self.fatal(e),
                Err(e) => {
                    // Undecodable data: this pass stops, the old segments stay as they are.
                    let _ = remove_if_exists(&self.disk, &cleaned);
                    return Err(e);
                }
            };
            if !changed && group.len() == 1 {
                // Nothing to gain: the segment stays as it is.
                if let Err(e) = remove_if_exists(&self.disk, &cleaned) {
                    return self.fatal(e);
                }
                continue;
            }
            bytes_written += written;
            self.swap_in(first, group_end, &bases, written, now_ms)?;
        }
        self.write_cleaner_checkpoint(map_end)?;
        self.check_invariants();
        let report = CleanReport {
            first_dirty,
            cleaned_to: map_end,
            segments_before,
            segments_after: self.segments.len(),
            bytes_read,
            dirty_bytes,
            bytes_written,
            removed,
            map_utilization: map.utilization(),
        };
        info!(dir = %self.dir.display(), first_dirty, cleaned_to = map_end, keys = map.len(), removed = removed.records,
            segments_before, segments_after = report.segments_after, "cleaned log");
        Ok(Some(report))
    }

    /// Whether `h` is the last batch of a producer the producer state remembers.
    fn is_producers_last_batch(&self, h: &BatchHeader) -> bool {
        h.producer_id >= 0 && self.producers.get(h.producer_id).and_then(|e| e.batches.back()).is_some_and(|m| m.last_offset == h.last_offset())
    }

    /// Writes the cleaned batches of the segments `bases` into `path` (step 1 of the swap),
    /// streaming: memory is one batch and a write buffer, whatever the segments' size. Returns
    /// the bytes written and whether cleaning changed anything.
    fn write_cleaned(&mut self, path: &Path, bases: &[i64], rules: &Rules, removed: &mut Removed, bytes_read: &mut u64) -> Result<(u64, bool), LogError> {
        self.before_write_io()?;
        remove_if_exists(&self.disk, path)?;
        let f = self.disk.open(path, true)?;
        let mut buf = Vec::with_capacity(WRITE_BUFFER_BYTES);
        let mut written = 0u64;
        let mut changed = false;
        for (gi, base) in bases.iter().enumerate() {
            let seg = &self.segments[base];
            let mut batches = SegmentBatches::new(seg).peekable();
            while let Some(batch) = batches.next() {
                let (h, bytes) = batch?;
                *bytes_read += bytes.len() as u64;
                let last_of_group = gi + 1 == bases.len() && batches.peek().is_none();
                let must_stay = last_of_group || self.is_producers_last_batch(&h);
                let (cleaned, r) = cleaner::clean_batch(&bytes, &h, rules, must_stay).map_err(corrupt)?;
                removed.add(r);
                match cleaned {
                    Cleaned::Unchanged => buf.extend_from_slice(&bytes),
                    Cleaned::Removed => changed = true,
                    Cleaned::Rewritten(b) => {
                        changed = true;
                        buf.extend_from_slice(&b);
                    }
                }
                if buf.len() >= WRITE_BUFFER_BYTES {
                    f.write_all_at(&buf, written)?;
                    written += buf.len() as u64;
                    buf.clear();
                }
            }
        }
        f.write_all_at(&buf, written)?;
        written += buf.len() as u64;
        f.sync()?;
        probe::crash_point(self.disk.as_ref(), CrashPoint::CleanedWritten);
        Ok((written, changed))
    }

    /// Replaces the segments `bases` (consecutive, from `first` up to `end`) with the cleaned
    /// segment of `len` bytes already written (steps 2 to 4 of the swap).
    fn swap_in(&mut self, first: i64, end: i64, bases: &[i64], len: u64, now_ms: i64) -> Result<(), LogError> {
        debug_assert!(bases.first() == Some(&first) && bases.iter().all(|&b| b < end));
        let swap = || -> io::Result<()> {
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

    fn write_holes_below(&mut self, offset: i64) -> Result<(), LogError> {
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

/// The cleaned output is written in pieces of about this size.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// The batches of a segment, read one at a time and CRC-checked.
struct SegmentBatches<'a> {
    seg: &'a crate::segment::Segment,
    pos: u64,
    failed: bool,
}

impl<'a> SegmentBatches<'a> {
    fn new(seg: &'a crate::segment::Segment) -> Self {
        SegmentBatches { seg, pos: 0, failed: false }
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
            Ok((h, bytes))
        })();
        match &read {
            Ok((_, bytes)) => self.pos += bytes.len() as u64,
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
