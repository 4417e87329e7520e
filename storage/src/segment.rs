//! One segment of a partition log: a file of consecutive record batches plus its in-memory
//! sparse offset index, time index and timestamp summary.
//!
//! Guarantees: `size` describes exactly the batches written through this segment (or found
//! valid by [`scan`]) and `next_offset` is at or past the end of the last one; every index entry
//! points at the start of a batch inside `[0, size)`. Reads of bytes from
//! the file are bounds-checked against `size` and CRC-checked, so corrupt bytes surface as
//! `LogError::Corrupt`, never as a panic.
//!
//! Offsets increase batch by batch from `base_offset`; they are consecutive except where log
//! compaction removed whole batches (a hole), which happens only below the cleaner checkpoint.

use std::io;

use gregor_core::batch::{self, BatchError, BatchHeader, HEADER_LEN};
use gregor_core::bugs::{self, Bug};
use gregor_core::disk::FileRef;

use crate::index::LoadedIndex;
use crate::log::LogError;

/// A sparse index point: the batch starting at `pos` has base offset `offset`, and the largest
/// batch max timestamp before it in this segment is `ts_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub offset: i64,
    pub pos: u64,
    pub ts_before: i64,
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub file: FileRef,
    pub size: u64,
    pub next_offset: i64,
    pub entries: Vec<IndexEntry>,
    /// Largest batch max timestamp and the position of the first batch holding it.
    pub max_ts: Option<(i64, u64)>,
    /// Wall-clock ms when this segment was created or opened (for `segment.ms`).
    pub created_ms: i64,
    pub bytes_since_index: u64,
    /// Whether the index files on disk describe the segment as it is now.
    pub index_persisted: bool,
    /// Every batch's (base offset, position), for the simulator's durability oracle, so that it
    /// finds byte ranges without reading the disk (which would perturb the run); `None` for a
    /// segment loaded from its index. Simulator builds only.
    #[cfg(madsim)]
    pub probe_batches: Option<Vec<(i64, u64)>>,
}

/// Recovery scans read the file in chunks of this size.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

impl Segment {
    pub fn new_empty(base_offset: i64, file: FileRef, created_ms: i64) -> Segment {
        Segment {
            base_offset,
            file,
            size: 0,
            next_offset: base_offset,
            entries: Vec::new(),
            max_ts: None,
            created_ms,
            bytes_since_index: 0,
            index_persisted: false,
            #[cfg(madsim)]
            probe_batches: Some(Vec::new()),
        }
    }

    pub fn from_index(base_offset: i64, file: FileRef, size: u64, idx: LoadedIndex, created_ms: i64) -> Segment {
        let bytes_since_index = idx.entries.last().map_or(0, |e| size - e.pos);
        Segment {
            base_offset,
            file,
            size,
            next_offset: idx.next_offset,
            entries: idx.entries,
            max_ts: idx.max_ts,
            created_ms,
            bytes_since_index,
            index_persisted: true,
            #[cfg(madsim)]
            probe_batches: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Records a batch of `len` bytes just written (or found) at the end of the segment.
    pub fn note_batch(&mut self, h: &BatchHeader, len: u64, index_interval_bytes: usize) {
        assert!(h.base_offset >= self.next_offset, "offsets in a segment only increase (batch at {}, segment at {})", h.base_offset, self.next_offset);
        assert_eq!(h.total_len() as u64, len, "batch length disagrees with its header");
        let pos = self.size;
        if self.entries.is_empty() || self.bytes_since_index >= index_interval_bytes as u64 {
            let ts_before = self.max_ts.map_or(i64::MIN, |m| m.0);
            self.entries.push(IndexEntry { offset: h.base_offset, pos, ts_before });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len;
        #[cfg(madsim)]
        if let Some(b) = self.probe_batches.as_mut() {
            b.push((h.base_offset, pos));
        }
        if self.max_ts.is_none_or(|(m, _)| h.max_timestamp > m) {
            self.max_ts = Some((h.max_timestamp, pos));
        }
        self.size += len;
        self.next_offset = h.next_offset();
        self.index_persisted = false;
    }

    /// Reads and parses the header of the batch at `pos`, checking it lies inside the segment.
    pub fn read_header(&self, pos: u64) -> Result<BatchHeader, LogError> {
        let end = pos.checked_add(HEADER_LEN as u64).filter(|&e| e <= self.size);
        if end.is_none() {
            return Err(LogError::Corrupt(BatchError::Truncated {
                needed: HEADER_LEN,
                have: self.size.saturating_sub(pos) as usize,
            }));
        }
        let mut buf = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut buf, pos)?;
        let h = BatchHeader::parse(&buf)?;
        if pos + h.total_len() as u64 > self.size {
            return Err(LogError::Corrupt(BatchError::Truncated {
                needed: h.total_len(),
                have: (self.size - pos) as usize,
            }));
        }
        Ok(h)
    }

    /// Reads the whole batch at `pos` (header already known) and checks its CRC.
    pub fn read_batch(&self, pos: u64, len: usize) -> Result<Vec<u8>, LogError> {
        assert!(pos + len as u64 <= self.size, "read_batch beyond segment end");
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, pos)?;
        batch::validate(&buf)?;
        Ok(buf)
    }

    /// Position of the batch containing `offset`, or `size` if the segment ends before it.
    pub fn locate(&self, offset: i64) -> Result<u64, LogError> {
        let i = self.entries.partition_point(|e| e.offset <= offset);
        let mut pos = if i == 0 { 0 } else { self.entries[i - 1].pos };
        while pos < self.size {
            let h = self.read_header(pos)?;
            if h.last_offset() >= offset {
                return Ok(pos);
            }
            pos += h.total_len() as u64;
        }
        Ok(self.size)
    }

    /// For the simulator's durability oracle: where the batch holding `offset` starts, and where
    /// the first batch at or after `end` starts (`size` if none), without reading the disk
    /// when the segment knows its batches.
    pub fn probe_span(&self, offset: i64, end: i64) -> Result<(u64, u64), LogError> {
        #[cfg(madsim)]
        if let Some(b) = &self.probe_batches {
            let i = b.partition_point(|x| x.0 <= offset);
            let start = if i == 0 { 0 } else { b[i - 1].1 };
            let j = b.partition_point(|x| x.0 < end);
            return Ok((start, b.get(j).map_or(self.size, |x| x.1)));
        }
        let start = self.locate(offset)?;
        let stop = if end >= self.next_offset {
            self.size
        } else {
            let p = self.locate(end - 1)?;
            p + self.read_header(p)?.total_len() as u64
        };
        Ok((start, stop))
    }

    /// Position from which to scan for the first batch with max timestamp >= `ts`: every batch
    /// before it has a smaller max timestamp.
    pub fn locate_timestamp(&self, ts: i64) -> u64 {
        let i = self.entries.partition_point(|e| e.ts_before < ts);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].pos
        }
    }
}

/// The outcome of scanning a segment file.
pub(crate) struct Scan {
    pub segment: Segment,
    pub batches: u64,
    /// Bytes at the end of the file that are not valid batches (to be truncated away).
    pub invalid_tail_bytes: u64,
    pub why_stopped: Option<String>,
}

/// Rebuilds a segment by reading the first `len` bytes of `file`, validating every batch (CRC,
/// length, offsets consecutive from `base_offset`, with holes where compaction removed batches
/// only up to `holes_below`). Stops at the first torn, corrupt or out-of-order batch; everything
/// from there on is reported as the invalid tail.
pub(crate) fn scan(
    file: FileRef,
    base_offset: i64,
    len: u64,
    index_interval_bytes: usize,
    created_ms: i64,
    holes_below: i64,
) -> io::Result<Scan> {
    let mut seg = Segment::new_empty(base_offset, file, created_ms);
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start: u64 = 0;
    let mut batches = 0u64;
    let mut why = None;
    loop {
        let pos = seg.size;
        if pos == len {
            break;
        }
        if len - pos < HEADER_LEN as u64 {
            why = Some(format!("torn header at {pos}"));
            break;
        }
        // Make sure the buffer holds the header.
        if pos < buf_start || pos + HEADER_LEN as u64 > buf_start + buf.len() as u64 {
            let n = (len - pos).min(SCAN_CHUNK_BYTES as u64) as usize;
            buf.resize(n, 0);
            seg.file.read_exact_at(&mut buf, pos)?;
            buf_start = pos;
        }
        let at = (pos - buf_start) as usize;
        let h = match BatchHeader::parse(&buf[at..]) {
            Ok(h) => h,
            Err(e) => {
                why = Some(format!("bad header at {pos}: {e}"));
                break;
            }
        };
        let blen = h.total_len() as u64;
        if pos + blen > len {
            why = Some(format!("torn batch at {pos}: {blen} bytes, {} left", len - pos));
            break;
        }
        if pos + blen > buf_start + buf.len() as u64 {
            let n = (len - pos).min((SCAN_CHUNK_BYTES as u64).max(blen)) as usize;
            buf.resize(n, 0);
            seg.file.read_exact_at(&mut buf, pos)?;
            buf_start = pos;
        }
        let at = (pos - buf_start) as usize;
        let checked = if bugs::active(Bug::SkipRecoveryCrc) {
            BatchHeader::parse(&buf[at..at + blen as usize])
        } else {
            batch::validate(&buf[at..at + blen as usize])
        };
        let h = match checked {
            Ok(h) => h,
            Err(e) => {
                why = Some(format!("invalid batch at {pos}: {e}"));
                break;
            }
        };
        // Offsets are consecutive, except for a hole compaction left (only below `holes_below`,
        // the cleaner checkpoint): the base offset is outside the CRC, so a hole anywhere else
        // is damage (a flipped bit), not data.
        let hole_ok = h.base_offset > seg.next_offset && h.base_offset <= holes_below;
        if h.base_offset != seg.next_offset && !hole_ok {
            why = Some(format!("batch at {pos} has base offset {}, expected {}", h.base_offset, seg.next_offset));
            break;
        }
        seg.note_batch(&h, blen, index_interval_bytes);
        batches += 1;
    }
    let invalid_tail_bytes = len - seg.size;
    Ok(Scan { segment: seg, batches, invalid_tail_bytes, why_stopped: why })
}
