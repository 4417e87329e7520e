//! Record-level lookups inside one stored batch (ListOffsets needs exact record offsets).
//!
//! Batches are decoded with kafka-protocol's decoder, which handles every compression codec.
//! A batch that cannot be decoded yields `None`; the caller falls back to batch granularity.

use bytes::Bytes;
use gregor_core::batch::{BatchHeader, ATTR_LOG_APPEND_TIME};
use kafka_protocol::records::RecordBatchDecoder;

/// `(offset, timestamp)` of every record in the batch, in offset order.
fn record_times(batch: &Bytes) -> Option<Vec<(i64, i64)>> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.attributes & ATTR_LOG_APPEND_TIME != 0 {
        // Every record carries the broker's append time (the batch's max timestamp).
        return Some(vec![(header.base_offset, header.max_timestamp)]);
    }
    let mut buf = batch.clone();
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || RecordBatchDecoder::decode(&mut buf))).ok()?.ok()?;
    Some(decoded.records.iter().map(|r| (r.offset, r.timestamp)).collect())
}

/// The first record with timestamp >= `ts`, as `(offset, timestamp)`.
pub fn first_at_or_after(batch: &Bytes, ts: i64) -> Option<(i64, i64)> {
    match record_times(batch) {
        Some(times) => times.into_iter().find(|&(_, t)| t >= ts),
        None => BatchHeader::parse(batch).ok().map(|h| (h.base_offset, h.max_timestamp)),
    }
}

/// The first record holding the batch's largest timestamp, as `(offset, timestamp)`.
pub fn max_timestamp_record(batch: &Bytes) -> Option<(i64, i64)> {
    match record_times(batch) {
        Some(times) => {
            let max = times.iter().map(|&(_, t)| t).max()?;
            times.into_iter().find(|&(_, t)| t == max)
        }
        None => BatchHeader::parse(batch).ok().map(|h| (h.base_offset, h.max_timestamp)),
    }
}
