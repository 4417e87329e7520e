//! Kafka v2 record batches ("magic 2"), read and patched without decoding the records.
//!
//! Gregor stores batches exactly as producers sent them. The broker only ever touches the fields
//! the format lets it own: the base offset and the partition leader epoch (both outside the CRC),
//! and the timestamp type bit and the max timestamp (inside the CRC, which is then recomputed):
//! for `message.timestamp.type=LogAppendTime` the append time, and for `CreateTime` the largest
//! record timestamp when the producer's header disagrees with its records, as Kafka's log
//! validator does. Everything else, including compressed record data and headers, is kept byte
//! for byte. The records themselves are checked by [`crate::records`].
//!
//! Layout (big-endian), offsets from the start of the batch:
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records
//! ```
//! `batchLength` counts the bytes after itself; the CRC32C covers attributes to the end.

/// Size of the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s payload begins (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const BASE_SEQUENCE_OFFSET: usize = 53;

/// Attribute bit: timestamps are the broker's append time.
pub const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
/// Attribute bit: part of a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit: control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 1 << 5;
/// Attribute bit: the batch's base timestamp is its delete horizon (KIP-534): log compaction
/// may remove its tombstones once the horizon has passed.
pub const ATTR_DELETE_HORIZON: i16 = 1 << 6;
/// Attribute bits 0-2: compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;

/// Why bytes are not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("truncated batch: need {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
    #[error("batch length {0} is invalid")]
    BadLength(i32),
    #[error("unsupported message format magic {0} (only v2 is accepted)")]
    BadMagic(i8),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    BadCount { count: i32, last_offset_delta: i32 },
    #[error("unknown compression codec {0}")]
    BadCompression(i16),
}

/// The header fields of one batch, read from its first [`HEADER_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (only the header; the body is not checked).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated { needed: HEADER_LEN, have: buf.len() });
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            record_count: be_i32(buf, 57),
        };
        if h.magic != 2 {
            return Err(BatchError::BadMagic(h.magic));
        }
        if (h.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::BadLength(h.batch_length));
        }
        Ok(h)
    }

    /// Total size of the batch on the wire and on disk.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }
}

/// Checks one complete stored batch: header sanity, exact length, CRC32C and codec.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.total_len() != batch.len() {
        return Err(BatchError::Truncated { needed: h.total_len(), have: batch.len() });
    }
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    if computed != h.crc {
        return Err(BatchError::BadCrc { stored: h.crc, computed });
    }
    if h.compression() > 4 {
        return Err(BatchError::BadCompression(h.compression()));
    }
    if h.last_offset_delta < 0 || h.record_count < 0 {
        return Err(BatchError::BadCount { count: h.record_count, last_offset_delta: h.last_offset_delta });
    }
    Ok(h)
}

/// Checks a batch as a producer sent it: everything [`validate`] checks, plus at least one record
/// and a record count that agrees with the offset delta (only compaction may leave holes).
pub fn validate_produced(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = validate(batch)?;
    if h.record_count < 1 || h.record_count - 1 != h.last_offset_delta {
        return Err(BatchError::BadCount { count: h.record_count, last_offset_delta: h.last_offset_delta });
    }
    Ok(h)
}

/// Splits a buffer holding consecutive batches into their headers and byte ranges, reading only
/// the headers (no CRC). A trailing partial batch is an error.
pub fn split(mut buf: &[u8]) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while !buf.is_empty() {
        let h = BatchHeader::parse(buf)?;
        let len = h.total_len();
        if len > buf.len() {
            return Err(BatchError::Truncated { needed: len, have: buf.len() });
        }
        out.push((h, pos..pos + len));
        pos += len;
        buf = &buf[len..];
    }
    Ok(out)
}

/// Splits a buffer holding consecutive batches (a produce request's record set) into batches
/// checked with [`validate_produced`]. Any trailing partial batch is an error: producers never
/// send one.
pub fn split_validated(buf: &[u8]) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    split(buf)?.into_iter().map(|(_, range)| Ok((validate_produced(&buf[range.clone()])?, range))).collect()
}

/// Writes the broker-owned fields that lie outside the CRC.
pub fn set_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    assert!(batch.len() >= HEADER_LEN, "set_offset_and_epoch on a truncated batch");
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Sets the base sequence (a CRC-covered field) and recomputes the CRC.
pub fn set_base_sequence(batch: &mut [u8], base_sequence: i32) {
    assert!(batch.len() >= HEADER_LEN, "set_base_sequence on a truncated batch");
    batch[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Marks the batch as `LogAppendTime` with `now_ms` as its max timestamp and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    assert!(batch.len() >= HEADER_LEN, "set_log_append_time on a truncated batch");
    let attrs = be_i16(batch, ATTRIBUTES_OFFSET) | ATTR_LOG_APPEND_TIME;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Marks the batch as `CreateTime` with `max_timestamp` as its max timestamp and recomputes the
/// CRC, only if either differs (Kafka's `setMaxTimestamp`): a batch whose header already agrees is
/// left byte for byte as it was.
pub fn set_create_time_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    assert!(batch.len() >= HEADER_LEN, "set_create_time_max_timestamp on a truncated batch");
    let attrs = be_i16(batch, ATTRIBUTES_OFFSET);
    if attrs & ATTR_LOG_APPEND_TIME == 0 && be_i64(batch, MAX_TIMESTAMP_OFFSET) == max_timestamp {
        return;
    }
    let attrs = attrs & !ATTR_LOG_APPEND_TIME;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Builds an uncompressed batch from `(key, value, timestamp_delta)` records with no headers.
/// Used by tests and tools that need well-formed batches without a client library.
pub fn build_simple(base_offset: i64, base_timestamp: i64, records: &[(Option<&[u8]>, Option<&[u8]>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0u8); // attributes
        put_varint(&mut rec, 0); // timestamp delta
        put_varint(&mut rec, i as i64); // offset delta
        match key {
            Some(k) => {
                put_varint(&mut rec, k.len() as i64);
                rec.extend_from_slice(k);
            }
            None => put_varint(&mut rec, -1),
        }
        match value {
            Some(v) => {
                put_varint(&mut rec, v.len() as i64);
                rec.extend_from_slice(v);
            }
            None => put_varint(&mut rec, -1),
        }
        put_varint(&mut rec, 0); // header count
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let count = records.len() as i32;
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc placeholder
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(count - 1).max(0).to_be_bytes()); // last offset delta
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Kafka's zigzag varint/varlong encoding (the two agree on every value in `i32` range).
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn built_batch_validates_and_patches() {
        let mut b = build_simple(0, 1000, &[(Some(b"k"), Some(b"v")), (None, Some(b"w"))]);
        let h = validate(&b).unwrap();
        assert_eq!(h.record_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        set_offset_and_epoch(&mut b, 42, 7);
        let h = validate(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch, h.last_offset()), (42, 7, 43));
        set_log_append_time(&mut b, 5555);
        let h = validate(&b).unwrap();
        assert_eq!(h.max_timestamp, 5555);
        assert_ne!(h.attributes & ATTR_LOG_APPEND_TIME, 0);
    }

    #[test]
    fn create_time_max_timestamp_is_rewritten_only_when_it_differs() {
        let b = build_simple(0, 1000, &[(Some(b"k"), Some(b"v"))]);
        let mut same = b.clone();
        set_create_time_max_timestamp(&mut same, 1000);
        assert_eq!(same, b);
        let mut fixed = b.clone();
        set_create_time_max_timestamp(&mut fixed, 1234);
        let h = validate(&fixed).unwrap();
        assert_eq!((h.max_timestamp, h.attributes & ATTR_LOG_APPEND_TIME), (1234, 0));
        let mut lat = b.clone();
        set_log_append_time(&mut lat, 1000);
        set_create_time_max_timestamp(&mut lat, 1000);
        assert_eq!(lat, b, "the LogAppendTime bit is cleared");
    }

    #[test]
    fn corruption_is_detected() {
        let b = build_simple(0, 1000, &[(Some(b"key"), Some(b"value"))]);
        for i in ATTRIBUTES_OFFSET..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(validate(&c).is_err(), "flip at {i} not detected");
        }
        assert!(matches!(validate(&b[..b.len() - 1]), Err(BatchError::Truncated { .. })));
    }

    proptest! {
        // Arbitrary bytes never panic the validator, and anything it accepts re-validates.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(batches) = split_validated(&data) {
                for (_, r) in batches {
                    prop_assert!(validate(&data[r]).is_ok());
                }
            }
        }

        // A valid batch with a mutated header still never panics.
        #[test]
        fn mutated_headers_never_panic(pos in 0usize..61, val in any::<u8>()) {
            let mut b = build_simple(0, 1, &[(Some(b"a"), Some(b"b"))]);
            b[pos] = val;
            let _ = split_validated(&b);
        }
    }
}
