//! Encoding one partition's records as exactly one v2 record batch, as a Kafka producer does:
//! Produce v3+ allows one batch per partition, and the broker refuses more (INVALID_RECORD).
//!
//! The `kafka-protocol` encoder starts a new batch wherever `offset - sequence` changes, so
//! records without a producer id (sequence -1) would each become a batch of their own. They are
//! encoded with sequences equal to their offsets, and the batch's base sequence is then set back
//! to -1 ("no sequence"), as Kafka's producer writes it.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

/// Encodes `records` (their offsets are set to 0, 1, …) as one batch. Records of an idempotent
/// producer must carry consecutive sequences and one producer id and epoch.
pub fn encode_one_batch(records: &mut [Record], compression: Compression) -> Result<Bytes, String> {
    let no_sequence = records.iter().all(|r| r.producer_id < 0);
    for (i, r) in records.iter_mut().enumerate() {
        r.offset = i as i64;
        if no_sequence {
            r.sequence = i as i32;
        }
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression })
        .map_err(|e| e.to_string())?;
    let header = gregor_core::batch::BatchHeader::parse(&buf).map_err(|e| e.to_string())?;
    if header.total_len() != buf.len() {
        return Err(format!("records of {} bytes did not encode as one batch", buf.len()));
    }
    if no_sequence {
        gregor_core::batch::set_base_sequence(&mut buf, -1);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use kafka_protocol::records::TimestampType;

    fn record(producer_id: i64, sequence: i32, value: &'static [u8]) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: if producer_id < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from_static(value)),
            headers: IndexMap::new(),
        }
    }

    #[test]
    fn plain_and_idempotent_records_make_one_valid_batch() {
        for compression in [Compression::None, Compression::Gzip, Compression::Lz4, Compression::Snappy, Compression::Zstd] {
            let mut plain = vec![record(-1, -1, b"a"), record(-1, -1, b"b"), record(-1, -1, b"c")];
            let b = encode_one_batch(&mut plain, compression).unwrap();
            let h = gregor_core::batch::validate(&b).unwrap();
            assert_eq!((h.total_len(), h.record_count, h.base_sequence, h.producer_id), (b.len(), 3, -1, -1));
            let mut idem = vec![record(7, 40, b"a"), record(7, 41, b"b")];
            let b = encode_one_batch(&mut idem, compression).unwrap();
            let h = gregor_core::batch::validate(&b).unwrap();
            assert_eq!((h.total_len(), h.record_count, h.base_sequence, h.producer_id), (b.len(), 2, 40, 7));
        }
    }
}
