//! Record-level validation of a produced v2 batch, the checks Kafka's log validator makes by
//! iterating the records (`DefaultRecord.readFrom` and the batch's record iterator), done as a
//! read-only scan: nothing is decoded into records, copied or re-encoded, and the batch is stored
//! byte for byte as it was sent.
//!
//! [`validate_records`] accepts a batch only if:
//! * exactly `recordCount` records follow the header (for compressed batches: in the decompressed
//!   data) and nothing follows the last one;
//! * every record frames as Kafka's: a varint length (at most 5 bytes, not negative, within the
//!   data), then attributes, a varlong timestamp delta, a varint offset delta, a key and a value
//!   (varint length, -1 or any negative length meaning null as in Kafka), a varint header count
//!   (not negative, not more than the bytes left) and the headers (each a non-negative key length
//!   and key, a value length and value), and these fields fill the record's length exactly;
//! * the offset deltas are 0, 1, …, n-1 in order. Kafka rebuilds a compressed batch whose inner
//!   offsets are not consecutive rather than refusing it; Gregor never rewrites a producer's
//!   batch, so such a batch is refused (no maintained client writes one: only pre-v2 producers
//!   did). For an uncompressed batch Kafka stores the deltas as sent, which would let a consumer
//!   see offsets the broker never assigned; that is refused too;
//! * a compressed batch decompresses cleanly with its codec (see [`crate::compression`]) to at
//!   most `decompressed_bytes_max` bytes.
//!
//! Errors: framing and offset violations are [`RecordsError::Invalid`] (Kafka's
//! `InvalidRecordException`, `INVALID_RECORD`); data that does not decompress is
//! [`RecordsError::Corrupt`] (`CORRUPT_MESSAGE`: Kafka itself lets the decompressor's exception
//! escape as `UNKNOWN_SERVER_ERROR`; the specific code tells the producer what is wrong); more
//! than the limit is [`RecordsError::TooLarge`] (`INVALID_RECORD`: a refusal by policy, and not
//! retriable, so a producer does not resend the same batch for its delivery timeout).
//!
//! The scan also yields the largest record timestamp as Kafka computes it (for a `LogAppendTime`
//! batch every record carries the batch's max timestamp), which the broker writes into the header
//! of `CreateTime` batches, as Kafka does. Memory use is bounded whatever the input: records are
//! skipped, never buffered, and decompression streams through a fixed buffer.

use std::io::{self, Read};

use crate::batch::{BatchHeader, ATTR_LOG_APPEND_TIME, HEADER_LEN};
use crate::compression;

/// Kafka's `RecordBatch.NO_TIMESTAMP`.
pub const NO_TIMESTAMP: i64 = -1;

/// Size of the buffer decompressed data streams through.
const STREAM_BUFFER_BYTES: usize = 16 * 1024;

/// Why the records of a batch are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The records do not frame as Kafka's v2 records (INVALID_RECORD).
    #[error("{0}")]
    Invalid(String),
    /// The compressed record data does not decompress (CORRUPT_MESSAGE).
    #[error("{0}")]
    Corrupt(String),
    /// The record data decompresses to more than the limit (INVALID_RECORD).
    #[error("the records of this batch decompress to more than {max} bytes, the most this broker accepts")]
    TooLarge { max: u64 },
}

/// What the scan learned about a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsSummary {
    /// The largest record timestamp, or [`NO_TIMESTAMP`] if none is larger than it (Kafka's rule).
    pub max_timestamp: i64,
    /// Bytes of record data after decompression (the stored size for uncompressed batches).
    pub uncompressed_bytes: u64,
    /// Records with a null key (a compacted topic refuses them).
    pub keyless: u32,
    /// The indexes in the batch of the first [`KEYLESS_LISTED_MAX`] of them.
    pub keyless_indexes: Vec<u32>,
}

/// Most keyless record indexes a [`RecordsSummary`] lists.
pub const KEYLESS_LISTED_MAX: usize = 1000;

/// Scans the records of `batch`, whose header `h` (from [`crate::batch::validate_produced`]) has
/// already been checked: CRC, codec, a record count of at least 1 matching the last offset delta.
pub fn validate_records(batch: &[u8], h: &BatchHeader, decompressed_bytes_max: u64) -> Result<RecordsSummary, RecordsError> {
    let data = batch.get(HEADER_LEN..).unwrap_or(&[]);
    let count = u32::try_from(h.record_count).map_err(|_| RecordsError::Invalid(format!("invalid record count {}", h.record_count)))?;
    let codec = h.compression();
    if codec == 0 {
        let mut src = SliceSource { buf: data, pos: 0 };
        scan(&mut src, h, count)
    } else {
        let reader = compression::decompressor(codec, data, decompressed_bytes_max)
            .map_err(|e| RecordsError::Corrupt(format!("compressed record data (codec {codec}) does not decompress: {e}")))?;
        let mut src = StreamSource::new(reader, decompressed_bytes_max);
        scan(&mut src, h, count).map_err(|e| match e {
            RecordsError::Corrupt(m) => RecordsError::Corrupt(format!("compressed record data (codec {codec}) does not decompress: {m}")),
            other => other,
        })
    }
}

/// One record of a stored batch, as [`decode_records`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    /// The record's timestamp (the batch's max timestamp for a `LogAppendTime` batch).
    pub timestamp: i64,
    /// A tombstone: the value is null.
    pub value_is_null: bool,
    key: Option<std::ops::Range<usize>>,
    value: Option<std::ops::Range<usize>>,
    /// The record's bytes in [`DecodedRecords::data`], its length prefix included.
    raw: std::ops::Range<usize>,
}

/// The records of one stored batch, decompressed.
#[derive(Debug, Clone)]
pub struct DecodedRecords {
    /// The batch's record data, decompressed.
    data: Vec<u8>,
    pub records: Vec<Record>,
}

impl DecodedRecords {
    pub fn key(&self, r: &Record) -> Option<&[u8]> {
        r.key.clone().map(|k| &self.data[k])
    }

    /// The value, `None` for a tombstone.
    pub fn value(&self, r: &Record) -> Option<&[u8]> {
        r.value.clone().map(|v| &self.data[v])
    }

    /// The record's bytes as stored (length prefix, attributes, deltas, key, value, headers).
    pub fn raw(&self, r: &Record) -> &[u8] {
        &self.data[r.raw.clone()]
    }
}

/// Decodes every record of a stored batch whose header (and CRC) [`crate::batch::validate`] has
/// checked. Unlike a produced batch, a stored one may have holes (compaction removed records):
/// offset deltas must only increase, within `0..=last_offset_delta`. Decompressed data is bounded
/// by `decompressed_bytes_max`; memory is the decompressed data plus one small entry per record.
pub fn decode_records(batch: &[u8], h: &BatchHeader, decompressed_bytes_max: u64) -> Result<DecodedRecords, RecordsError> {
    let stored = batch.get(HEADER_LEN..).unwrap_or(&[]);
    let codec = h.compression();
    let data = if codec == 0 {
        stored.to_vec()
    } else {
        let reader = compression::decompressor(codec, stored, decompressed_bytes_max)
            .map_err(|e| RecordsError::Corrupt(format!("compressed record data (codec {codec}) does not decompress: {e}")))?;
        let mut data = Vec::new();
        match reader.take(decompressed_bytes_max.saturating_add(1)).read_to_end(&mut data) {
            Ok(_) if data.len() as u64 > decompressed_bytes_max => return Err(RecordsError::TooLarge { max: decompressed_bytes_max }),
            Ok(_) => data,
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => return Err(RecordsError::TooLarge { max: decompressed_bytes_max }),
            Err(e) => return Err(RecordsError::Corrupt(format!("compressed record data (codec {codec}) does not decompress: {e}"))),
        }
    };
    let count = u32::try_from(h.record_count).map_err(|_| RecordsError::Invalid(format!("invalid record count {}", h.record_count)))?;
    let log_append_time = h.attributes & ATTR_LOG_APPEND_TIME != 0;
    let mut src = SliceSource { buf: &data, pos: 0 };
    // Each record takes at least 7 bytes, so the count cannot make this reserve more than the data.
    let mut records = Vec::with_capacity((count as usize).min(data.len() / 7 + 1));
    let mut last_delta = -1i64;
    for index in 0..count {
        let f = read_record(&mut src).map_err(|e| e.at(index))?;
        let delta = i64::from(f.offset_delta);
        if delta <= last_delta || delta > i64::from(h.last_offset_delta) {
            return Err(RecordsError::Invalid(format!("record {index}: offset delta {delta} after {last_delta}, last offset delta {}", h.last_offset_delta)));
        }
        last_delta = delta;
        records.push(Record {
            offset: h.base_offset + delta,
            timestamp: if log_append_time { h.max_timestamp } else { h.base_timestamp.wrapping_add(f.ts_delta) },
            value_is_null: f.value.is_none(),
            key: f.key.map(|(at, len)| at as usize..(at + len) as usize),
            value: f.value.map(|(at, len)| at as usize..(at + len) as usize),
            raw: f.start as usize..f.end as usize,
        });
    }
    if src.pos != data.len() {
        return Err(RecordsError::Invalid(format!("incorrect declared batch size: data remains after the {count} records the header declares")));
    }
    Ok(DecodedRecords { data, records })
}

/// The record `raw` (one record with its length prefix, as [`DecodedRecords::raw`] gives it,
/// so already read once) with its timestamp delta replaced by `ts_delta`: what a batch whose
/// base timestamp changes must do to keep each record's timestamp.
pub fn with_timestamp_delta(raw: &[u8], ts_delta: i64) -> Result<Vec<u8>, RecordsError> {
    let mut src = SliceSource { buf: raw, pos: 0 };
    let rest = (|| {
        varint(&mut src)?;
        let attributes = src.byte()?;
        varlong(&mut src)?;
        Ok::<_, Bad>((attributes, src.pos))
    })();
    let (attributes, rest) = rest.map_err(|e| e.at(0))?;
    let mut body = Vec::with_capacity(raw.len() + 8);
    body.push(attributes);
    crate::batch::put_varint(&mut body, ts_delta);
    body.extend_from_slice(&raw[rest..]);
    let mut out = Vec::with_capacity(body.len() + 5);
    crate::batch::put_varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    Ok(out)
}

fn scan<S: Source>(src: &mut S, h: &BatchHeader, count: u32) -> Result<RecordsSummary, RecordsError> {
    let log_append_time = h.attributes & ATTR_LOG_APPEND_TIME != 0;
    let mut max_timestamp = NO_TIMESTAMP;
    let (mut keyless, mut keyless_indexes) = (0u32, Vec::new());
    for index in 0..count {
        let (ts_delta, has_key) = scan_record(src, index).map_err(|e| e.at(index))?;
        if !has_key {
            keyless += 1;
            if keyless_indexes.len() < KEYLESS_LISTED_MAX {
                keyless_indexes.push(index);
            }
        }
        let ts = if log_append_time { h.max_timestamp } else { h.base_timestamp.wrapping_add(ts_delta) };
        if ts > max_timestamp {
            max_timestamp = ts;
        }
    }
    match src.at_end() {
        Ok(true) => {}
        Ok(false) => return Err(RecordsError::Invalid(format!("incorrect declared batch size: data remains after the {count} records the header declares"))),
        Err(e) => return Err(e.at(count)),
    }
    Ok(RecordsSummary { max_timestamp, uncompressed_bytes: src.pos(), keyless, keyless_indexes })
}

/// Where one record's parts are in its record data, and its deltas.
#[derive(Debug, Clone, Copy)]
struct RecordFields {
    /// The record's first byte (its length varint).
    start: u64,
    end: u64,
    ts_delta: i64,
    offset_delta: i32,
    /// The key's position and length, `None` for a null key.
    key: Option<(u64, u64)>,
    /// The value's position and length, `None` for a null value (a tombstone).
    value: Option<(u64, u64)>,
}

/// Reads one record; returns its timestamp delta and whether it has a key.
fn scan_record<S: Source>(src: &mut S, index: u32) -> Result<(i64, bool), Bad> {
    let r = read_record(src)?;
    if i64::from(r.offset_delta) != i64::from(index) {
        return Err(Bad::Invalid(format!("offset delta {}, expected {index} (deltas must be 0, 1, 2, ... in order)", r.offset_delta)));
    }
    Ok((r.ts_delta, r.key.is_some()))
}

/// Reads one record, checking that it frames as Kafka's.
fn read_record<S: Source>(src: &mut S) -> Result<RecordFields, Bad> {
    let record_start = src.pos();
    let len = varint(src)?;
    if len < 0 {
        return Err(Bad::Invalid(format!("negative record length {len}")));
    }
    let start = src.pos();
    let end = start + len as u64;
    if !src.has(len as u64) {
        return Err(Bad::Invalid(format!("record length {len} is longer than the data left")));
    }
    let _attributes = src.byte()?;
    let ts_delta = varlong(src)?;
    let offset_delta = varint(src)?;
    let key_len = varint(src)?;
    let key = (key_len >= 0).then(|| (src.pos(), key_len as u64));
    if key_len >= 0 {
        skip_within(src, key_len as u64, end, "key")?;
    }
    let value_len = varint(src)?;
    let value = (value_len >= 0).then(|| (src.pos(), value_len as u64));
    if value_len >= 0 {
        skip_within(src, value_len as u64, end, "value")?;
    }
    let headers = varint(src)?;
    if headers < 0 {
        return Err(Bad::Invalid(format!("invalid number of record headers {headers}")));
    }
    if headers as u64 > end.saturating_sub(src.pos()) {
        return Err(Bad::Invalid(format!("{headers} record headers do not fit in the record")));
    }
    for _ in 0..headers {
        let key_len = varint(src)?;
        if key_len < 0 {
            return Err(Bad::Invalid(format!("invalid negative header key size {key_len}")));
        }
        skip_within(src, key_len as u64, end, "header key")?;
        let value_len = varint(src)?;
        if value_len >= 0 {
            skip_within(src, value_len as u64, end, "header value")?;
        }
        if src.pos() > end {
            break;
        }
    }
    let read = src.pos() - start;
    if read != len as u64 {
        return Err(Bad::Invalid(format!("invalid record size: expected to read {len} bytes in record payload, but instead read {read}")));
    }
    Ok(RecordFields { start: record_start, end, ts_delta, offset_delta, key, value })
}

fn skip_within<S: Source>(src: &mut S, n: u64, end: u64, what: &str) -> Result<(), Bad> {
    if src.pos().saturating_add(n) > end {
        return Err(Bad::Invalid(format!("{what} of {n} bytes runs past the end of its record")));
    }
    src.skip(n)
}

/// Kafka's zigzag varint (`ByteUtils.readVarint`): at most 5 bytes; bits past 32 are dropped.
fn varint<S: Source>(src: &mut S) -> Result<i32, Bad> {
    let mut raw: u32 = 0;
    for i in 0..5 {
        let b = src.byte()?;
        raw |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err(Bad::Invalid("varint is longer than 5 bytes".into()))
}

/// Kafka's zigzag varlong (`ByteUtils.readVarlong`): at most 10 bytes.
fn varlong<S: Source>(src: &mut S) -> Result<i64, Bad> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = src.byte()?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(Bad::Invalid("varlong is longer than 10 bytes".into()))
}

/// A failure while reading one record.
enum Bad {
    /// The data ended inside a record.
    Eof,
    Invalid(String),
    Corrupt(String),
    TooLarge(u64),
}

impl Bad {
    fn at(self, index: u32) -> RecordsError {
        match self {
            Bad::Eof => RecordsError::Invalid(format!("record {index}: incorrect declared batch size, premature end of the record data")),
            Bad::Invalid(m) => RecordsError::Invalid(format!("record {index}: {m}")),
            Bad::Corrupt(m) => RecordsError::Corrupt(m),
            Bad::TooLarge(max) => RecordsError::TooLarge { max },
        }
    }
}

/// Sequential bytes of record data.
trait Source {
    fn byte(&mut self) -> Result<u8, Bad>;
    fn skip(&mut self, n: u64) -> Result<(), Bad>;
    /// Bytes consumed so far.
    fn pos(&self) -> u64;
    /// Whether `n` more bytes may exist (exact for slices; streams only know at the end).
    fn has(&self, n: u64) -> bool;
    fn at_end(&mut self) -> Result<bool, Bad>;
}

struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Source for SliceSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<u8, Bad> {
        let b = *self.buf.get(self.pos).ok_or(Bad::Eof)?;
        self.pos += 1;
        Ok(b)
    }
    #[inline]
    fn skip(&mut self, n: u64) -> Result<(), Bad> {
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(Bad::Eof);
        }
        self.pos += n as usize;
        Ok(())
    }
    #[inline]
    fn pos(&self) -> u64 {
        self.pos as u64
    }
    #[inline]
    fn has(&self, n: u64) -> bool {
        n <= (self.buf.len() - self.pos) as u64
    }
    fn at_end(&mut self) -> Result<bool, Bad> {
        Ok(self.pos == self.buf.len())
    }
}

/// Decompressed data read through a fixed buffer, counting every byte against the limit.
struct StreamSource<'a> {
    inner: Box<dyn Read + 'a>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes consumed before `buf[start]`.
    base: u64,
    /// Bytes read from `inner` so far.
    read: u64,
    limit: u64,
    done: bool,
}

impl<'a> StreamSource<'a> {
    fn new(inner: Box<dyn Read + 'a>, limit: u64) -> StreamSource<'a> {
        StreamSource { inner, buf: vec![0; STREAM_BUFFER_BYTES], start: 0, end: 0, base: 0, read: 0, limit, done: false }
    }

    /// Refills the empty buffer; `Ok(false)` at the end of the data.
    fn fill(&mut self) -> Result<bool, Bad> {
        debug_assert_eq!(self.start, self.end);
        if self.done {
            return Ok(false);
        }
        self.base += self.end as u64;
        self.start = 0;
        self.end = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.read += n as u64;
                    if self.read > self.limit {
                        return Err(Bad::TooLarge(self.limit));
                    }
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::FileTooLarge => return Err(Bad::TooLarge(self.limit)),
                Err(e) => return Err(Bad::Corrupt(e.to_string())),
            }
        }
    }
}

impl Source for StreamSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<u8, Bad> {
        if self.start == self.end && !self.fill()? {
            return Err(Bad::Eof);
        }
        let b = self.buf[self.start];
        self.start += 1;
        Ok(b)
    }
    fn skip(&mut self, mut n: u64) -> Result<(), Bad> {
        while n > 0 {
            if self.start == self.end && !self.fill()? {
                return Err(Bad::Eof);
            }
            let step = n.min((self.end - self.start) as u64);
            self.start += step as usize;
            n -= step;
        }
        Ok(())
    }
    fn pos(&self) -> u64 {
        self.base + self.start as u64
    }
    fn has(&self, _n: u64) -> bool {
        // Unknown until read; reading stops at the end of the data or at the limit.
        true
    }
    fn at_end(&mut self) -> Result<bool, Bad> {
        if self.start < self.end {
            return Ok(false);
        }
        Ok(!self.fill()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_simple, validate_produced, ATTR_COMPRESSION_MASK, LOG_OVERHEAD};
    use proptest::prelude::*;

    const MAX: u64 = 64 << 20;

    use crate::batch::put_varint;

    /// One record's bytes (with its length prefix).
    fn record(offset_delta: i64, ts_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut body = vec![0u8];
        put_varint(&mut body, ts_delta);
        put_varint(&mut body, offset_delta);
        for f in [key, value] {
            match f {
                Some(b) => {
                    put_varint(&mut body, b.len() as i64);
                    body.extend_from_slice(b);
                }
                None => put_varint(&mut body, -1),
            }
        }
        put_varint(&mut body, headers.len() as i64);
        for (k, v) in headers {
            put_varint(&mut body, k.len() as i64);
            body.extend_from_slice(k);
            match v {
                Some(v) => {
                    put_varint(&mut body, v.len() as i64);
                    body.extend_from_slice(v);
                }
                None => put_varint(&mut body, -1),
            }
        }
        let mut out = Vec::new();
        put_varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
        out
    }

    fn compress(codec: i16, plain: &[u8]) -> Vec<u8> {
        // The raw (unframed) snappy block is what some clients write; the library writes xerial.
        if codec == 2 {
            return snap::raw::Encoder::new().compress_vec(plain).unwrap();
        }
        crate::compression::compress(codec, plain).unwrap()
    }

    /// A batch around `payload` (already compressed if `codec` != 0) with a correct CRC.
    fn batch(codec: i16, count: i32, max_ts: i64, payload: &[u8]) -> Vec<u8> {
        let mut b = build_simple(0, 1_000, &[]);
        b.truncate(HEADER_LEN);
        b[21..23].copy_from_slice(&(codec & ATTR_COMPRESSION_MASK).to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[35..43].copy_from_slice(&max_ts.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        b.extend_from_slice(payload);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        recrc(&mut b);
        b
    }

    fn recrc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    fn check(b: &[u8]) -> Result<RecordsSummary, RecordsError> {
        let h = validate_produced(b).expect("header valid");
        validate_records(b, &h, MAX)
    }

    fn three_records() -> Vec<u8> {
        let mut plain = record(0, 0, Some(b"k0"), Some(b"v0"), &[]);
        plain.extend(record(1, 7, None, Some(b"value one"), &[(b"h", Some(b"x")), (b"n", None)]));
        plain.extend(record(2, 3, Some(b""), None, &[]));
        plain
    }

    #[test]
    fn valid_batches_of_every_codec_pass() {
        let plain = three_records();
        for codec in 0..=4 {
            let b = batch(codec, 3, 1_007, &compress(codec, &plain));
            let s = check(&b).unwrap_or_else(|e| panic!("codec {codec}: {e}"));
            assert_eq!(s.max_timestamp, 1_007, "codec {codec}");
            assert_eq!(s.uncompressed_bytes, plain.len() as u64, "codec {codec}");
        }
        let simple = build_simple(0, 5, &[(Some(b"a"), Some(b"b")), (None, None)]);
        assert_eq!(check(&simple).unwrap().max_timestamp, 5);
    }

    #[test]
    fn batches_from_kafka_protocol_encoder_pass() {
        use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
        for compression in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let records: Vec<Record> = (0..20)
                .map(|i| Record {
                    transactional: false,
                    control: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i,
                    sequence: -1,
                    timestamp: 1_700_000_000_000 + i * 3,
                    key: Some(bytes::Bytes::from(format!("key-{i}"))),
                    value: if i % 5 == 0 { None } else { Some(bytes::Bytes::from(vec![i as u8; 200])) },
                    headers: [(kafka_protocol::protocol::StrBytes::from_static_str("h"), Some(bytes::Bytes::from_static(b"v")))].into_iter().collect(),
                    delete_horizon: false,
                })
                .collect();
            let mut buf = bytes::BytesMut::new();
            RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression }).unwrap();
            // The encoder may split the records into several batches; each must validate.
            let mut records_seen = 0;
            let mut max = NO_TIMESTAMP;
            for (h, range) in crate::batch::split_validated(&buf).unwrap() {
                let s = validate_records(&buf[range], &h, MAX).unwrap_or_else(|e| panic!("{compression:?}: {e}"));
                records_seen += h.record_count;
                max = max.max(s.max_timestamp);
            }
            assert_eq!((records_seen, max), (20, 1_700_000_000_057), "{compression:?}");
        }
    }

    #[test]
    fn garbage_records_with_a_valid_crc_are_invalid() {
        let b = batch(0, 3, 1_000, b"\x01\x02garbage garbage garbage garbage");
        assert!(matches!(check(&b), Err(RecordsError::Invalid(_))), "{:?}", check(&b));
        // All zeros: a record of length 0 cannot hold its fields.
        let b = batch(0, 1, 1_000, &[0u8; 40]);
        assert!(matches!(check(&b), Err(RecordsError::Invalid(_))));
    }

    #[test]
    fn record_count_must_match_the_records() {
        let plain = three_records();
        for codec in 0..=4 {
            let fewer = batch(codec, 2, 1_007, &compress(codec, &plain));
            let e = check(&fewer).unwrap_err();
            assert!(matches!(&e, RecordsError::Invalid(m) if m.contains("remains")), "codec {codec}: {e}");
            let more = batch(codec, 4, 1_007, &compress(codec, &plain));
            let e = check(&more).unwrap_err();
            assert!(matches!(&e, RecordsError::Invalid(m) if m.contains("record 3")), "codec {codec}: {e}");
        }
    }

    #[test]
    fn offset_deltas_must_be_consecutive_from_zero() {
        for deltas in [[1, 2], [0, 0], [1, 0], [0, 5]] {
            let mut plain = record(deltas[0], 0, None, Some(b"a"), &[]);
            plain.extend(record(deltas[1], 0, None, Some(b"b"), &[]));
            for codec in [0, 1, 4] {
                let b = batch(codec, 2, 1_000, &compress(codec, &plain));
                let e = check(&b).unwrap_err();
                assert!(matches!(&e, RecordsError::Invalid(m) if m.contains("offset delta")), "{deltas:?} codec {codec}: {e}");
            }
        }
    }

    #[test]
    fn timestamps_follow_kafka() {
        let mut plain = record(0, 50, None, Some(b"a"), &[]);
        plain.extend(record(1, -20, None, Some(b"b"), &[]));
        let b = batch(0, 2, 0, &plain);
        assert_eq!(check(&b).unwrap().max_timestamp, 1_050);
        // LogAppendTime batches: every record carries the header's max timestamp.
        let mut b = batch(0, 2, 77, &plain);
        b[22] |= ATTR_LOG_APPEND_TIME as u8;
        recrc(&mut b);
        assert_eq!(check(&b).unwrap().max_timestamp, 77);
        // All timestamps below -1: Kafka's max starts at NO_TIMESTAMP.
        let mut b = batch(0, 2, 0, &plain);
        b[27..35].copy_from_slice(&(-5_000i64).to_be_bytes());
        recrc(&mut b);
        assert_eq!(check(&b).unwrap().max_timestamp, NO_TIMESTAMP);
    }

    #[test]
    fn framing_violations_are_invalid() {
        let good = record(0, 0, Some(b"key"), Some(b"value"), &[(b"hk", Some(b"hv"))]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated length varint", vec![0xff, 0xff]),
            ("6-byte length varint", vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
            ("negative length", {
                let mut v = Vec::new();
                put_varint(&mut v, -3);
                v.extend_from_slice(&good[1..]);
                v
            }),
            ("length past the data", {
                let mut v = Vec::new();
                put_varint(&mut v, good.len() as i64 + 10);
                v.extend_from_slice(&good[1..]);
                v
            }),
            ("length shorter than the fields", {
                let mut v = Vec::new();
                put_varint(&mut v, good.len() as i64 - 3);
                v.extend_from_slice(&good[1..]);
                v
            }),
            ("truncated varlong timestamp", {
                let mut v = vec![0x0c, 0x00];
                v.extend_from_slice(&[0xff; 6]);
                v
            }),
            ("11-byte varlong", {
                let mut body = vec![0u8];
                body.extend_from_slice(&[0x80; 10]);
                body.push(0x01);
                body.extend_from_slice(&[0, 1, 1, 0]);
                let mut v = Vec::new();
                put_varint(&mut v, body.len() as i64);
                v.extend(body);
                v
            }),
            ("negative header count", {
                let mut body = vec![0u8, 0, 0, 1, 1];
                put_varint(&mut body, -2);
                let mut v = Vec::new();
                put_varint(&mut v, body.len() as i64);
                v.extend(body);
                v
            }),
            ("negative header key length", {
                let mut body = vec![0u8, 0, 0, 1, 1, 2];
                put_varint(&mut body, -1);
                body.push(1);
                let mut v = Vec::new();
                put_varint(&mut v, body.len() as i64);
                v.extend(body);
                v
            }),
            ("too many headers", {
                let mut body = vec![0u8, 0, 0, 1, 1];
                put_varint(&mut body, 1_000);
                let mut v = Vec::new();
                put_varint(&mut v, body.len() as i64);
                v.extend(body);
                v
            }),
            ("key past the record", {
                let mut body = vec![0u8, 0, 0];
                put_varint(&mut body, 50);
                body.extend_from_slice(b"short");
                let mut v = Vec::new();
                put_varint(&mut v, body.len() as i64);
                v.extend(body);
                v
            }),
        ];
        for (name, payload) in cases {
            for codec in [0, 2, 3] {
                let b = batch(codec, 1, 1_000, &compress(codec, &payload));
                match check(&b) {
                    Err(RecordsError::Invalid(_)) => {}
                    other => panic!("{name} (codec {codec}): {other:?}"),
                }
            }
        }
    }

    #[test]
    fn undecodable_compressed_data_is_corrupt() {
        let garbage = b"\x1f\x8b this is not a gzip stream at all".to_vec();
        for codec in 1..=4 {
            let b = batch(codec, 1, 1_000, &garbage);
            assert!(matches!(check(&b), Err(RecordsError::Corrupt(_))), "codec {codec}: {:?}", check(&b));
        }
        // A valid gzip stream cut short, and one with a flipped CRC trailer.
        let gz = compress(1, &three_records());
        let b = batch(1, 3, 1_007, &gz[..gz.len() - 6]);
        assert!(check(&b).is_err());
        let mut bad_trailer = gz.clone();
        let n = bad_trailer.len();
        bad_trailer[n - 8] ^= 0xff;
        let b = batch(1, 3, 1_007, &bad_trailer);
        assert!(matches!(check(&b), Err(RecordsError::Corrupt(_))), "{:?}", check(&b));
    }

    #[test]
    fn decompression_is_bounded() {
        // One record with a 10 MB value of zeros compresses to a few KB with every codec.
        let value = vec![0u8; 10 << 20];
        let plain = record(0, 0, None, Some(&value), &[]);
        for codec in 1..=4 {
            let payload = compress(codec, &plain);
            assert!(payload.len() < 1 << 20, "codec {codec}: {} bytes", payload.len());
            let b = batch(codec, 1, 1_000, &payload);
            let h = validate_produced(&b).unwrap();
            assert_eq!(validate_records(&b, &h, 1 << 20), Err(RecordsError::TooLarge { max: 1 << 20 }), "codec {codec}");
            assert!(validate_records(&b, &h, 11 << 20).is_ok(), "codec {codec}");
        }
    }

    fn arbitrary_valid_batch() -> impl Strategy<Value = Vec<u8>> {
        (0i16..=4, proptest::collection::vec((any::<bool>(), 0usize..40, 0usize..3), 1..12)).prop_map(|(codec, recs)| {
            let mut plain = Vec::new();
            for (i, (has_key, vlen, nh)) in recs.iter().enumerate() {
                let value = vec![i as u8; *vlen];
                let headers: Vec<(&[u8], Option<&[u8]>)> = (0..*nh).map(|_| (&b"hk"[..], Some(&b"hv"[..]))).collect();
                plain.extend(record(i as i64, i as i64, if *has_key { Some(b"key") } else { None }, Some(&value), &headers));
            }
            batch(codec, recs.len() as i32, 1_000 + recs.len() as i64 - 1, &compress(codec, &plain))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        // Valid batches pass; the same batch with any bytes after the header changed (and the
        // CRC fixed up, so only the record scan can catch it) never panics the validator, and
        // whatever it accepts has records that frame.
        #[test]
        fn mutated_batches_never_panic(b in arbitrary_valid_batch(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
            prop_assert!(check(&b).is_ok());
            let mut m = b.clone();
            for (at, v) in &edits {
                let i = HEADER_LEN + at.index(m.len() - HEADER_LEN);
                m[i] = *v;
            }
            if truncate && m.len() > HEADER_LEN + 1 {
                let keep = HEADER_LEN + cut.index(m.len() - HEADER_LEN);
                m.truncate(keep);
                let len = (m.len() - LOG_OVERHEAD) as i32;
                m[8..12].copy_from_slice(&len.to_be_bytes());
            }
            recrc(&mut m);
            if let Ok(h) = validate_produced(&m) {
                let valid = validate_records(&m, &h, 1 << 20);
                let decoded = decode_records(&m, &h, 1 << 20);
                // What the produce path accepts, compaction's decoder reads the same way.
                if valid.is_ok() {
                    prop_assert_eq!(decoded.map(|d| d.records.len()).ok(), Some(h.record_count as usize));
                }
            }
        }

        // Arbitrary record bytes under every codec id never panic.
        #[test]
        fn arbitrary_record_data_never_panics(codec in 0i16..=4, count in 1i32..50, data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let b = batch(codec, count, 1_000, &data);
            let h = validate_produced(&b).unwrap();
            let _ = validate_records(&b, &h, 1 << 20);
        }
    }
}
