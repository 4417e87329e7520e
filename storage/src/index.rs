//! On-disk formats of the per-segment index files and the partition checkpoints.
//!
//! Guarantees: every file written here ends with a CRC32C of all its preceding bytes, and every
//! decoder returns `None` (never panics) on any byte content that is not exactly a file we wrote
//! for this segment and this segment size. A `None` index is simply rebuilt by scanning the
//! segment, so index files need not be synced before use: a torn one is detected, not trusted.
//!
//! Formats (big-endian):
//! ```text
//! {base:020}.index      "GIDX" v:u8=1 base:i64 segment_size:u64 next_offset:i64 n:u32
//!                        n x (batch_base_offset:i64 position:u64) crc32c:u32
//! {base:020}.timeindex  "GTIX" v:u8=1 base:i64 segment_size:u64 has_max:u8 max_ts:i64 max_ts_pos:u64 n:u32
//!                        n x (max_ts_before:i64 position:u64) crc32c:u32
//! log-start-offset, recovery-point   "GCKP" v:u8=1 value:i64 crc32c:u32
//! ```
//! An index entry points at the start of a batch; `max_ts_before` is the largest batch max
//! timestamp among the batches before that position in the segment (i64::MIN if none), so the
//! time index is non-decreasing and a lookup can start at the last entry below the target.

use gregor_core::be_reader::BeReader;
use crate::segment::{IndexEntry, Segment};

const INDEX_MAGIC: &[u8; 4] = b"GIDX";
const TIME_MAGIC: &[u8; 4] = b"GTIX";
const CKPT_MAGIC: &[u8; 4] = b"GCKP";
const VERSION: u8 = 1;

fn finish(mut b: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

/// Strips and checks the trailing CRC and the magic/version prefix.
fn open_body<'a>(bytes: &'a [u8], magic: &[u8; 4]) -> Option<BeReader<'a>> {
    if bytes.len() < 9 {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_be_bytes() != crc {
        return None;
    }
    let mut r = BeReader::new(body);
    if r.take(4)? != magic || r.u8()? != VERSION {
        return None;
    }
    Some(r)
}

pub(crate) fn encode_offset_index(seg: &Segment) -> Vec<u8> {
    let mut b = Vec::with_capacity(37 + seg.entries.len() * 16);
    b.extend_from_slice(INDEX_MAGIC);
    b.push(VERSION);
    b.extend_from_slice(&seg.base_offset.to_be_bytes());
    b.extend_from_slice(&seg.size.to_be_bytes());
    b.extend_from_slice(&seg.next_offset.to_be_bytes());
    b.extend_from_slice(&(seg.entries.len() as u32).to_be_bytes());
    for e in &seg.entries {
        b.extend_from_slice(&e.offset.to_be_bytes());
        b.extend_from_slice(&e.pos.to_be_bytes());
    }
    finish(b)
}

pub(crate) fn encode_time_index(seg: &Segment) -> Vec<u8> {
    let mut b = Vec::with_capacity(46 + seg.entries.len() * 16);
    b.extend_from_slice(TIME_MAGIC);
    b.push(VERSION);
    b.extend_from_slice(&seg.base_offset.to_be_bytes());
    b.extend_from_slice(&seg.size.to_be_bytes());
    let (has, ts, pos) = match seg.max_ts {
        Some((ts, pos)) => (1u8, ts, pos),
        None => (0u8, 0, 0),
    };
    b.push(has);
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&pos.to_be_bytes());
    b.extend_from_slice(&(seg.entries.len() as u32).to_be_bytes());
    for e in &seg.entries {
        b.extend_from_slice(&e.ts_before.to_be_bytes());
        b.extend_from_slice(&e.pos.to_be_bytes());
    }
    finish(b)
}

/// What the two index files of a segment say about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadedIndex {
    pub next_offset: i64,
    pub entries: Vec<IndexEntry>,
    pub max_ts: Option<(i64, u64)>,
}

/// Decodes a segment's index pair, accepting it only if it describes exactly this segment at its
/// current length `segment_size`, and is internally consistent.
pub(crate) fn decode_indexes(index: &[u8], time: &[u8], base: i64, segment_size: u64) -> Option<LoadedIndex> {
    let mut r = open_body(index, INDEX_MAGIC)?;
    let mut t = open_body(time, TIME_MAGIC)?;
    if r.i64()? != base || r.u64()? != segment_size || t.i64()? != base || t.u64()? != segment_size {
        return None;
    }
    let next_offset = r.i64()?;
    let has_max = t.u8()?;
    let max_ts = t.i64()?;
    let max_ts_pos = t.u64()?;
    let n = r.u32()?;
    if t.u32()? != n || r.remaining() != n as usize * 16 || t.remaining() != n as usize * 16 {
        return None;
    }
    let mut entries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let offset = r.i64()?;
        let pos = r.u64()?;
        let ts_before = t.i64()?;
        if t.u64()? != pos {
            return None;
        }
        if let Some(prev) = entries.last() {
            let prev: &IndexEntry = prev;
            if pos <= prev.pos || offset <= prev.offset || ts_before < prev.ts_before {
                return None;
            }
        } else if pos != 0 || offset != base {
            return None;
        }
        if pos >= segment_size || offset >= next_offset {
            return None;
        }
        entries.push(IndexEntry { offset, pos, ts_before });
    }
    let empty = segment_size == 0;
    if empty != entries.is_empty() || empty != (next_offset == base) || next_offset < base {
        return None;
    }
    let max_ts = match has_max {
        0 if empty => None,
        1 if !empty && max_ts_pos < segment_size => Some((max_ts, max_ts_pos)),
        _ => return None,
    };
    Some(LoadedIndex { next_offset, entries, max_ts })
}

pub(crate) fn encode_checkpoint(value: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(17);
    b.extend_from_slice(CKPT_MAGIC);
    b.push(VERSION);
    b.extend_from_slice(&value.to_be_bytes());
    finish(b)
}

pub(crate) fn decode_checkpoint(bytes: &[u8]) -> Option<i64> {
    let mut r = open_body(bytes, CKPT_MAGIC)?;
    let v = r.i64()?;
    if r.remaining() != 0 || v < 0 {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip_and_corruption() {
        let b = encode_checkpoint(1234);
        assert_eq!(decode_checkpoint(&b), Some(1234));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 4;
            assert_eq!(decode_checkpoint(&c), None, "flip at {i} accepted");
        }
        assert_eq!(decode_checkpoint(&b[..10]), None);
        assert_eq!(decode_checkpoint(&[]), None);
    }

    #[test]
    fn garbage_indexes_never_panic() {
        let mut x: u64 = 99;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (x >> 33) as u8
                })
                .collect();
            assert!(decode_indexes(&bytes, &bytes, 0, len as u64).is_none());
        }
    }
}
