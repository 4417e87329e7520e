//! Per-partition idempotent-producer state: for each producer id, its epoch and the metadata of
//! its last [`BATCHES_RETAINED`] batches. Sans-IO; [`crate::PartitionLog`] owns one and keeps it
//! consistent with the log (snapshotted at every segment roll and at clean close, replayed from
//! batch headers on open and after truncation). Entries outlive the batches they came from:
//! retention and DeleteRecords do not remove them, only `producer.id.expiration.ms` does
//! (KIP-360), so a retry that arrives after its batch was deleted is still recognised.
//!
//! # Rules (Kafka's `ProducerAppendInfo` / `UnifiedLog.analyzeAndValidateProducerState`)
//! Only batches with a producer id (>= 0) are checked; others pass untouched.
//! * **Duplicate**: a batch with the producer's current epoch whose (first, last) sequence equals
//!   one of the retained batches is a retry of an appended batch. The whole append is then
//!   skipped and answered with the original batch's offsets (Kafka checks duplicates against the
//!   state before the request, and the first duplicate decides).
//! * **Epoch**: a batch epoch below the producer's current epoch is INVALID_PRODUCER_EPOCH (47;
//!   Kafka replaced PRODUCER_FENCED by it for produce responses in 2.7).
//! * **New epoch** (higher than the current one): its first sequence must be 0, else
//!   OUT_OF_ORDER_SEQUENCE_NUMBER (45). A new epoch forgets the old epoch's batches.
//! * **Same epoch**: the first sequence must follow the last one (`last + 1`, wrapping from
//!   i32::MAX to 0), else OUT_OF_ORDER_SEQUENCE_NUMBER (45). A retry older than the retained
//!   window therefore fails with 45, as in Kafka.
//! * **Unknown producer**: any sequence is accepted (KIP-360, Kafka 2.5+: the producer's state may
//!   expired, or been lost with a crashed tail; UNKNOWN_PRODUCER_ID is no longer
//!   returned).
//!
//! Several batches in one append are checked in order, each against the state that includes the
//! earlier ones; the state changes only when the whole append is written
//! ([`ProducerStateMap::commit`]).

use gregor_core::be_reader::BeReader;
use std::collections::{BTreeMap, VecDeque};

use gregor_core::batch::{BatchHeader, ATTR_LOG_APPEND_TIME};

/// Batches remembered per producer for duplicate detection (Kafka's `NUM_BATCHES_TO_RETAIN`, which
/// is also the client's `max.in.flight.requests.per.connection` limit with idempotence).
pub const BATCHES_RETAINED: usize = 5;

/// Kafka's default `producer.id.expiration.ms` (1 day).
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

/// Most producers remembered in one snapshot file (bounds decoding work on corrupt input).
const SNAPSHOT_PRODUCERS_MAX: u32 = 10_000_000;

/// What is kept about one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp (its append time under `LogAppendTime`).
    pub max_timestamp: i64,
    /// Whether the timestamp is the broker's append time (then it is the produce response's
    /// `log_append_time_ms`; otherwise that is -1).
    pub log_append_time: bool,
}

impl BatchMeta {
    /// The metadata of a batch whose offsets (and, if any, append time) are final.
    pub fn of(h: &BatchHeader) -> BatchMeta {
        BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
            log_append_time: h.attributes & ATTR_LOG_APPEND_TIME != 0,
        }
    }
}

/// One producer's state in this partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; never more than [`BATCHES_RETAINED`], never empty.
    pub batches: VecDeque<BatchMeta>,
}

impl ProducerEntry {
    fn last(&self) -> Option<&BatchMeta> {
        self.batches.back()
    }
}

/// Why a producer's batch was refused (a Kafka error code for the partition).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("epoch {epoch} of producer {producer_id} is older than its current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("out of order sequence for producer {producer_id} epoch {epoch}: first sequence {first_seq}, expected {expected}")]
    OutOfOrderSequence { producer_id: i64, epoch: i16, first_seq: i32, expected: i32 },
}

impl ProducerError {
    /// The Kafka error code.
    pub fn code(&self) -> i16 {
        match self {
            ProducerError::InvalidProducerEpoch { .. } => 47,
            ProducerError::OutOfOrderSequence { .. } => 45,
        }
    }
}

/// The last sequence of a batch: first sequence plus the offset delta, wrapping past i32::MAX
/// to 0 as producers do. A batch without a sequence (-1) has last sequence -1.
pub fn last_sequence(h: &BatchHeader) -> i32 {
    if h.base_sequence < 0 {
        return h.base_sequence;
    }
    let wrapped = (h.base_sequence as i64 + h.last_offset_delta.max(0) as i64) % (i32::MAX as i64 + 1);
    wrapped as i32
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq as i64 == last_seq as i64 + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// The result of checking one append (all of its batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Every batch may be appended; pass the staged entries to [`ProducerStateMap::commit`]
    /// together with the batches' final headers.
    Append,
    /// A batch is a retry of this already appended one: append nothing.
    Duplicate(BatchMeta),
}

/// All producers' state in one partition, ordered by producer id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateMap {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks the headers of the batches of one append, in order, without changing anything.
    pub fn check(&self, headers: &[BatchHeader]) -> Result<Check, ProducerError> {
        if gregor_core::bugs::active(gregor_core::bugs::Bug::NoDedupWindow) {
            return Ok(Check::Append);
        }
        // Entries as they would be after the earlier batches of this append.
        let mut staged: BTreeMap<i64, (i16, Option<i32>)> = BTreeMap::new();
        for h in headers.iter().filter(|h| h.producer_id >= 0) {
            let pid = h.producer_id;
            let current = self.producers.get(&pid);
            if let Some(dup) = current.and_then(|e| find_duplicate(e, h)) {
                return Ok(Check::Duplicate(*dup));
            }
            let state = staged.get(&pid).copied().or_else(|| current.map(|e| (e.epoch, e.last().map(|b| b.last_seq))));
            if let Some((epoch, last_seq)) = state {
                if h.producer_epoch < epoch {
                    return Err(ProducerError::InvalidProducerEpoch { producer_id: pid, epoch: h.producer_epoch, current: epoch });
                }
                if h.producer_epoch != epoch {
                    if h.base_sequence != 0 {
                        return Err(ProducerError::OutOfOrderSequence {
                            producer_id: pid,
                            epoch: h.producer_epoch,
                            first_seq: h.base_sequence,
                            expected: 0,
                        });
                    }
                } else if let Some(last) = last_seq {
                    if !in_sequence(last, h.base_sequence) {
                        let expected = if last == i32::MAX { 0 } else { last.saturating_add(1) };
                        return Err(ProducerError::OutOfOrderSequence {
                            producer_id: pid,
                            epoch: h.producer_epoch,
                            first_seq: h.base_sequence,
                            expected,
                        });
                    }
                }
            }
            staged.insert(pid, (h.producer_epoch, Some(last_sequence(h))));
        }
        Ok(Check::Append)
    }

    /// Records appended batches (final headers: offsets assigned). Call only after a successful
    /// [`ProducerStateMap::check`] and write, or when replaying the log.
    pub fn commit<'a>(&mut self, headers: impl IntoIterator<Item = &'a BatchHeader>) {
        for h in headers {
            self.record(h);
        }
    }

    /// Records one batch found in or written to the log (no validation: the log is the truth).
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.is_control() {
            return;
        }
        let meta = BatchMeta::of(h);
        let e = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry { epoch: h.producer_epoch, batches: VecDeque::new() });
        if e.epoch != h.producer_epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if e.batches.len() == BATCHES_RETAINED {
            e.batches.pop_front();
        }
        e.batches.push_back(meta);
    }

    /// Forgets every batch at or above `offset` (the log was cut there), and producers left
    /// with none.
    pub fn forget_from(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// Forgets producers whose last batch timestamp is `expiration_ms` or more before `now_ms`
    /// (`producer.id.expiration.ms`). Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.last().is_some_and(|b| now_ms.saturating_sub(b.max_timestamp) < expiration_ms));
        before - self.producers.len()
    }

    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Snapshot file contents, valid for a log whose end offset is `log_end_offset`:
    /// `"GPST" v:u8=1 log_end:i64 n:u32 n x (pid:i64 epoch:i16 k:u8 k x (first_seq:i32
    /// last_seq:i32 base:i64 last:i64 max_ts:i64 append_time:u8)) crc32c:u32`, big-endian.
    pub fn encode_snapshot(&self, log_end_offset: i64) -> Vec<u8> {
        let mut b = Vec::with_capacity(21 + self.producers.len() * 48);
        b.extend_from_slice(SNAPSHOT_MAGIC);
        b.push(SNAPSHOT_VERSION);
        b.extend_from_slice(&log_end_offset.to_be_bytes());
        b.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, e) in &self.producers {
            b.extend_from_slice(&pid.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.push(e.batches.len() as u8);
            for m in &e.batches {
                b.extend_from_slice(&m.first_seq.to_be_bytes());
                b.extend_from_slice(&m.last_seq.to_be_bytes());
                b.extend_from_slice(&m.base_offset.to_be_bytes());
                b.extend_from_slice(&m.last_offset.to_be_bytes());
                b.extend_from_slice(&m.max_timestamp.to_be_bytes());
                b.push(m.log_append_time as u8);
            }
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes a snapshot; returns the state and the log end offset it is valid for, or `None`
    /// for anything that is not exactly a snapshot we wrote (never panics).
    pub fn decode_snapshot(bytes: &[u8]) -> Option<(ProducerStateMap, i64)> {
        if bytes.len() < 4 {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = BeReader::new(body);
        if r.take(4)? != SNAPSHOT_MAGIC || r.take(1)?[0] != SNAPSHOT_VERSION {
            return None;
        }
        let log_end = r.i64()?;
        let n = r.u32()?;
        if n > SNAPSHOT_PRODUCERS_MAX {
            return None;
        }
        let mut map = ProducerStateMap::new();
        for _ in 0..n {
            let pid = r.i64()?;
            let epoch = i16::from_be_bytes(r.take(2)?.try_into().ok()?);
            let k = r.take(1)?[0] as usize;
            if pid < 0 || k == 0 || k > BATCHES_RETAINED {
                return None;
            }
            let mut batches = VecDeque::with_capacity(k);
            for _ in 0..k {
                let first_seq = r.i32()?;
                let last_seq = r.i32()?;
                let base_offset = r.i64()?;
                let last_offset = r.i64()?;
                let max_timestamp = r.i64()?;
                let log_append_time = match r.take(1)?[0] {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                if last_offset < base_offset || base_offset < 0 || last_offset >= log_end {
                    return None;
                }
                batches.push_back(BatchMeta { first_seq, last_seq, base_offset, last_offset, max_timestamp, log_append_time });
            }
            if map.producers.insert(pid, ProducerEntry { epoch, batches }).is_some() {
                return None;
            }
        }
        if r.remaining() != 0 {
            return None;
        }
        Some((map, log_end))
    }
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"GPST";
const SNAPSHOT_VERSION: u8 = 1;

fn find_duplicate<'e>(e: &'e ProducerEntry, h: &BatchHeader) -> Option<&'e BatchMeta> {
    if e.epoch != h.producer_epoch {
        return None;
    }
    let last = last_sequence(h);
    e.batches.iter().find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pid: i64, epoch: i16, seq: i32, records: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 1000,
            max_timestamp: 1000 + base_offset,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    /// Checks and commits one batch at offset `next`, returning the next offset.
    fn append(m: &mut ProducerStateMap, b: BatchHeader) -> Result<Check, ProducerError> {
        let c = m.check(&[b])?;
        if c == Check::Append {
            m.commit([&b]);
        }
        Ok(c)
    }

    #[test]
    fn in_order_batches_and_duplicates_within_the_window() {
        let mut m = ProducerStateMap::new();
        let mut off = 0;
        for i in 0..7 {
            assert_eq!(append(&mut m, h(1, 0, i * 2, 2, off)), Ok(Check::Append));
            off += 2;
        }
        assert_eq!(m.get(1).unwrap().batches.len(), BATCHES_RETAINED);
        // The last five batches (seq 4..13) are recognised with their original offsets.
        for i in 2..7 {
            match m.check(&[h(1, 0, i * 2, 2, 999)]) {
                Ok(Check::Duplicate(d)) => assert_eq!((d.base_offset, d.last_offset, d.first_seq), (i as i64 * 2, i as i64 * 2 + 1, i * 2)),
                other => panic!("batch {i}: {other:?}"),
            }
        }
        // Older than the window: out of order, as in Kafka.
        assert!(matches!(m.check(&[h(1, 0, 2, 2, 999)]), Err(ProducerError::OutOfOrderSequence { expected: 14, .. })));
        // Same first sequence, different last sequence: not a duplicate.
        assert!(matches!(m.check(&[h(1, 0, 12, 1, 999)]), Err(ProducerError::OutOfOrderSequence { .. })));
    }

    #[test]
    fn gaps_and_epochs() {
        let mut m = ProducerStateMap::new();
        append(&mut m, h(5, 3, 0, 1, 0)).unwrap();
        let gap = m.check(&[h(5, 3, 2, 1, 1)]).unwrap_err();
        assert_eq!(gap.code(), 45);
        let fenced = m.check(&[h(5, 2, 1, 1, 1)]).unwrap_err();
        assert_eq!(fenced.code(), 47);
        // A new epoch must start at sequence 0.
        assert_eq!(m.check(&[h(5, 4, 1, 1, 1)]).unwrap_err().code(), 45);
        assert_eq!(append(&mut m, h(5, 4, 0, 1, 1)), Ok(Check::Append));
        // The old epoch is gone: its batches are no longer duplicates but fenced.
        assert_eq!(m.check(&[h(5, 3, 0, 1, 9)]).unwrap_err().code(), 47);
        assert_eq!(m.get(5).unwrap().batches.len(), 1);
        // A duplicate of the new epoch's batch.
        assert!(matches!(m.check(&[h(5, 4, 0, 1, 9)]), Ok(Check::Duplicate(BatchMeta { base_offset: 1, .. }))));
    }

    #[test]
    fn unknown_producers_accept_any_sequence() {
        let mut m = ProducerStateMap::new();
        assert_eq!(append(&mut m, h(9, 0, 42, 3, 0)), Ok(Check::Append));
        assert_eq!(append(&mut m, h(9, 0, 45, 1, 3)), Ok(Check::Append));
        // Batches without a producer id are never checked.
        assert_eq!(m.check(&[h(-1, -1, -1, 1, 4), h(-1, -1, -1, 1, 5)]), Ok(Check::Append));
    }

    #[test]
    fn batches_of_one_append_are_checked_in_order() {
        let mut m = ProducerStateMap::new();
        append(&mut m, h(1, 0, 0, 1, 0)).unwrap();
        assert_eq!(m.check(&[h(1, 0, 1, 2, 1), h(1, 0, 3, 1, 3)]), Ok(Check::Append));
        assert_eq!(m.check(&[h(1, 0, 1, 2, 1), h(1, 0, 4, 1, 3)]).unwrap_err().code(), 45);
        assert_eq!(m.check(&[h(1, 0, 1, 2, 1), h(1, 0, 1, 2, 3)]).unwrap_err().code(), 45);
        // Nothing was committed by the checks.
        assert_eq!(m.get(1).unwrap().batches.len(), 1);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut m = ProducerStateMap::new();
        let b = h(1, 0, i32::MAX - 1, 3, 0);
        assert_eq!(last_sequence(&b), 0);
        append(&mut m, b).unwrap();
        assert_eq!(append(&mut m, h(1, 0, 1, 1, 3)), Ok(Check::Append));
        let mut m = ProducerStateMap::new();
        append(&mut m, h(1, 0, i32::MAX, 1, 0)).unwrap();
        assert_eq!(append(&mut m, h(1, 0, 0, 1, 1)), Ok(Check::Append));
    }

    #[test]
    fn expire() {
        let mut m = ProducerStateMap::new();
        append(&mut m, h(2, 0, 0, 10, 10)).unwrap();
        // Max timestamp of producer 2's batch is 1010.
        assert_eq!(m.expire(1010 + PRODUCER_ID_EXPIRATION_MS - 1, PRODUCER_ID_EXPIRATION_MS), 0);
        assert_eq!(m.expire(1010 + PRODUCER_ID_EXPIRATION_MS, PRODUCER_ID_EXPIRATION_MS), 1);
        assert!(m.is_empty());
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut m = ProducerStateMap::new();
        for i in 0..7 {
            append(&mut m, h(1, 2, i, 1, i as i64)).unwrap();
        }
        let mut la = h(7, 0, 0, 2, 7);
        la.attributes = ATTR_LOG_APPEND_TIME;
        append(&mut m, la).unwrap();
        let bytes = m.encode_snapshot(9);
        assert_eq!(ProducerStateMap::decode_snapshot(&bytes), Some((m.clone(), 9)));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(ProducerStateMap::decode_snapshot(&b).is_none_or(|(d, _)| d != m), "flip at {i} undetected");
        }
        for n in 0..bytes.len() {
            assert!(ProducerStateMap::decode_snapshot(&bytes[..n]).is_none());
        }
        // A snapshot that names offsets at or past its own log end is refused.
        assert!(ProducerStateMap::decode_snapshot(&m.encode_snapshot(5)).is_none());
    }
}
