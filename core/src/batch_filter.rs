//! A stored batch rewritten without some of its records: what log compaction writes.
//!
//! Guarantees: the rewritten batch keeps the original's base offset, last offset delta (so the
//! producer's sequence range and the offsets after the batch are unchanged), base timestamp,
//! partition leader epoch, producer id, epoch and base sequence, and attributes; the records it
//! keeps are byte for byte the original's, in order, with their original offset and timestamp
//! deltas (so every kept record keeps its offset and timestamp). What changes is the record
//! count, the batch length, the max timestamp of a `CreateTime` batch (the largest kept one,
//! as Kafka's rebuilt batch has), the record data's compression (re-encoded with the same
//! codec; an empty batch has none) and the CRC. The result passes [`crate::batch::validate`].
//!
//! With a delete horizon (KIP-534: the first cleaning that keeps a tombstone stamps its batch
//! with the time after which a later cleaning may remove it), the batch's base timestamp becomes
//! the horizon, the [`ATTR_DELETE_HORIZON`] attribute is set, and each kept record's timestamp
//! delta is re-encoded against it, so every record still has its own timestamp.

use std::io;

use crate::batch::{self, BatchHeader, ATTR_COMPRESSION_MASK, ATTR_DELETE_HORIZON, ATTR_LOG_APPEND_TIME, HEADER_LEN, LOG_OVERHEAD};
use crate::compression;
use crate::records::{with_timestamp_delta, DecodedRecords, NO_TIMESTAMP};

/// `batch` (with header `h`, whose records are `decoded`) keeping record `i` exactly when
/// `keep[i]`. Keeping none gives an empty batch: the header alone, record count 0, which Kafka
/// keeps where a producer's last batch must survive for its sequence numbers. `delete_horizon`
/// stamps a batch that has no horizon yet (see the module doc; ignored if it has one).
pub fn filter(batch: &[u8], h: &BatchHeader, decoded: &DecodedRecords, keep: &[bool], delete_horizon: Option<i64>) -> io::Result<Vec<u8>> {
    assert_eq!(keep.len(), decoded.records.len(), "one keep flag per record");
    let kept: Vec<_> = decoded.records.iter().zip(keep).filter(|(_, k)| **k).map(|(r, _)| r).collect();
    let log_append_time = h.attributes & ATTR_LOG_APPEND_TIME != 0;
    let horizon = delete_horizon.filter(|_| h.attributes & ATTR_DELETE_HORIZON == 0);
    let mut plain = Vec::with_capacity(kept.iter().map(|r| decoded.raw(r).len()).sum());
    for r in &kept {
        match horizon {
            // A LogAppendTime record's timestamp is the batch's, whatever its delta says.
            Some(hz) if !log_append_time => {
                let raw = with_timestamp_delta(decoded.raw(r), r.timestamp.wrapping_sub(hz)).map_err(io::Error::other)?;
                plain.extend_from_slice(&raw);
            }
            _ => plain.extend_from_slice(decoded.raw(r)),
        }
    }
    let codec = if kept.is_empty() { 0 } else { h.compression() };
    let payload = compression::compress(codec, &plain)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&payload);
    let length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| io::Error::other("rewritten batch too large"))?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let mut attributes = (h.attributes & !ATTR_COMPRESSION_MASK) | codec;
    if let Some(hz) = horizon {
        attributes |= ATTR_DELETE_HORIZON;
        out[27..35].copy_from_slice(&hz.to_be_bytes());
    }
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    if !log_append_time {
        let max = kept.iter().map(|r| r.timestamp).max().unwrap_or(NO_TIMESTAMP);
        out[35..43].copy_from_slice(&max.to_be_bytes());
    }
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::validate(&out).is_ok(), "a rewritten batch is a valid batch");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_simple, validate};
    use crate::records::decode_records;

    const MAX: u64 = 1 << 20;

    /// A batch of `n` records at `base`, record i keyed `k{i % 3}`, tombstones where `i % 4 == 3`,
    /// compressed with `codec`.
    fn batch_of(base: i64, n: usize, codec: i16) -> Vec<u8> {
        let keys: Vec<String> = (0..n).map(|i| format!("k{}", i % 3)).collect();
        let values: Vec<String> = (0..n).map(|i| format!("value-{i}")).collect();
        let records: Vec<(Option<&[u8]>, Option<&[u8]>)> =
            (0..n).map(|i| (Some(keys[i].as_bytes()), (i % 4 != 3).then(|| values[i].as_bytes()))).collect();
        let plain = build_simple(base, 1_000, &records);
        if codec == 0 {
            return plain;
        }
        // The same records, compressed: rebuild through the filter with every record kept.
        let h = validate(&plain).unwrap();
        let d = decode_records(&plain, &h, MAX).unwrap();
        let mut b = plain.clone();
        b[21..23].copy_from_slice(&codec.to_be_bytes());
        let h = BatchHeader { attributes: codec, ..h };
        filter(&b, &h, &d, &vec![true; n], None).unwrap()
    }

    #[test]
    fn kept_records_keep_their_offsets_timestamps_and_bytes_in_every_codec() {
        for codec in 0..=4i16 {
            let b = batch_of(100, 8, codec);
            let h = validate(&b).unwrap();
            assert_eq!(h.compression(), codec);
            let d = decode_records(&b, &h, MAX).unwrap();
            assert_eq!(d.records.len(), 8);
            assert_eq!(d.key(&d.records[4]), Some(&b"k1"[..]));
            assert!(d.records[3].value_is_null && !d.records[2].value_is_null);
            let keep: Vec<bool> = (0..8).map(|i| i % 2 == 1).collect();
            let out = filter(&b, &h, &d, &keep, None).unwrap();
            let oh = validate(&out).unwrap();
            assert_eq!((oh.base_offset, oh.last_offset_delta, oh.record_count, oh.compression()), (100, 7, 4, codec), "codec {codec}");
            assert_eq!((oh.base_timestamp, oh.producer_id, oh.base_sequence), (h.base_timestamp, h.producer_id, h.base_sequence));
            let od = decode_records(&out, &oh, MAX).unwrap();
            let kept: Vec<_> = d.records.iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r.clone()).collect();
            assert_eq!(od.records.iter().map(|r| (r.offset, r.timestamp, r.value_is_null)).collect::<Vec<_>>(),
                kept.iter().map(|r| (r.offset, r.timestamp, r.value_is_null)).collect::<Vec<_>>());
            for (a, b) in od.records.iter().zip(&kept) {
                assert_eq!(od.raw(a), d.raw(b));
            }
            assert_eq!(oh.max_timestamp, kept.iter().map(|r| r.timestamp).max().unwrap());
            // A batch with holes decodes and filters again.
            let again = filter(&out, &oh, &od, &[false, true, true, false], None).unwrap();
            let ah = validate(&again).unwrap();
            assert_eq!(decode_records(&again, &ah, MAX).unwrap().records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![103, 105]);
        }
    }

    #[test]
    fn keeping_nothing_leaves_an_empty_uncompressed_batch() {
        let b = batch_of(7, 3, 3);
        let h = validate(&b).unwrap();
        let d = decode_records(&b, &h, MAX).unwrap();
        let out = filter(&b, &h, &d, &[false, false, false], None).unwrap();
        let oh = validate(&out).unwrap();
        assert_eq!((out.len(), oh.record_count, oh.last_offset_delta, oh.compression()), (HEADER_LEN, 0, 2, 0));
        assert!(decode_records(&out, &oh, MAX).unwrap().records.is_empty());
    }

    #[test]
    fn a_delete_horizon_becomes_the_base_timestamp_and_every_record_keeps_its_timestamp() {
        for codec in [0i16, 4] {
            let b = batch_of(50, 6, codec);
            let h = validate(&b).unwrap();
            let d = decode_records(&b, &h, MAX).unwrap();
            let keep = [true, false, true, true, true, true];
            let out = filter(&b, &h, &d, &keep, Some(987_654_321)).unwrap();
            let oh = validate(&out).unwrap();
            assert_ne!(oh.attributes & ATTR_DELETE_HORIZON, 0);
            assert_eq!(oh.base_timestamp, 987_654_321);
            let od = decode_records(&out, &oh, MAX).unwrap();
            let want: Vec<_> = d.records.iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| (r.offset, r.timestamp, d.key(r).map(<[u8]>::to_vec), r.value_is_null)).collect();
            let got: Vec<_> = od.records.iter().map(|r| (r.offset, r.timestamp, od.key(r).map(<[u8]>::to_vec), r.value_is_null)).collect();
            assert_eq!(got, want, "codec {codec}");
            // A batch with a horizon keeps it: a later horizon does not move it.
            let again = filter(&out, &oh, &od, &[true, true, false, true, true], Some(5)).unwrap();
            assert_eq!(validate(&again).unwrap().base_timestamp, 987_654_321);
        }
    }

    #[test]
    fn decoding_refuses_offsets_that_go_back_or_past_the_last_delta_and_bounds_decompression() {
        let b = batch_of(0, 4, 0);
        let h = validate(&b).unwrap();
        // Claim fewer offsets than the records use: the last record's delta (3) is past it.
        let short = BatchHeader { last_offset_delta: 2, ..h };
        assert!(decode_records(&b, &short, MAX).is_err());
        let z = batch_of(0, 64, 4);
        let zh = validate(&z).unwrap();
        assert!(matches!(decode_records(&z, &zh, 100), Err(crate::records::RecordsError::TooLarge { max: 100 })));
    }
}
