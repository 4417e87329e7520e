//! This node's copy of the `__cluster_metadata` log: metadata records stored as Kafka v2 record
//! batches (one metadata record per record value) in an ordinary partition log at
//! `<log dir>/__cluster_metadata-0`, as KRaft stores it.
//!
//! Guarantees:
//! * [`MetadataLog::append`] returns only once the batch is fsynced: with the embedded one-voter
//!   quorum, a durable record is a committed record, and nothing is applied to the image before
//!   that.
//! * Recovery is the partition log's: a torn or corrupt tail is truncated by CRC. A batch that
//!   passes its CRC but holds a record this version cannot decode refuses start-up with the
//!   offset and the reason — a metadata log is never skipped over silently.
//! * A data directory written by an earlier Gregor (the `__gregor_metadata` file) is converted
//!   once into records, written to the log before the old file is removed.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use gregor_core::batch::{self, BatchHeader};
use gregor_core::disk::SharedDisk;
use gregor_core::metadata::MetadataRecord;
use gregor_storage::{LogConfig, PartitionLog};
use kafka_protocol::records::RecordBatchDecoder;

/// Directory name of the metadata log inside the metadata log dir.
pub const DIR_NAME: &str = "__cluster_metadata-0";

/// Most bytes read from the log at once while replaying it.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// Most records in one appended batch (a CreateTopics of many partitions is split).
pub const RECORDS_PER_BATCH_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error("metadata log {dir}: {reason}")]
    Storage { dir: String, reason: String },
    #[error("metadata log {dir}: record at offset {offset} cannot be read: {reason}")]
    Undecodable { dir: String, offset: i64, reason: String },
}

pub struct MetadataLog {
    log: PartitionLog,
    dir: PathBuf,
    /// The epoch written into appended batches (the quorum's leader epoch).
    epoch: i32,
}

fn log_config() -> LogConfig {
    LogConfig { retention_ms: -1, retention_bytes: -1, flush_messages: 1, ..LogConfig::default() }
}

impl MetadataLog {
    /// Opens (or creates) the log under `parent` and returns it with every record in it.
    pub fn open(disk: SharedDisk, parent: &Path, now_wall_ms: i64) -> Result<(MetadataLog, Vec<(i64, MetadataRecord)>), MetadataLogError> {
        let dir = parent.join(DIR_NAME);
        let storage = |e: &dyn std::fmt::Display| MetadataLogError::Storage { dir: dir.display().to_string(), reason: e.to_string() };
        let (log, report) = PartitionLog::open(disk, dir.clone(), log_config(), now_wall_ms).map_err(|e| storage(&e))?;
        if report.truncated_bytes > 0 {
            tracing::warn!(dir = %dir.display(), bytes = report.truncated_bytes, "truncated a torn metadata log tail");
        }
        let mut ml = MetadataLog { log, dir, epoch: 0 };
        let records = ml.read_all()?;
        Ok((ml, records))
    }

    fn read_all(&mut self) -> Result<Vec<(i64, MetadataRecord)>, MetadataLogError> {
        let mut out = Vec::new();
        let mut offset = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        while offset < end {
            let data = self.log.read(offset, REPLAY_READ_BYTES, end).map_err(|e| self.storage(&e))?.data;
            let before = offset;
            offset = self.decode_batches(data, &mut out)?;
            if offset == before {
                return Err(self.storage(&format!("no whole batch readable at offset {offset}")));
            }
        }
        Ok(out)
    }

    /// Decodes the whole batches in `data`; returns the offset after the last one.
    fn decode_batches(&mut self, mut data: Bytes, out: &mut Vec<(i64, MetadataRecord)>) -> Result<i64, MetadataLogError> {
        let mut next = -1;
        while let Ok(h) = BatchHeader::parse(&data) {
            if h.total_len() > data.len() {
                break;
            }
            let mut one = data.split_to(h.total_len());
            let undecodable = |offset: i64, reason: String| MetadataLogError::Undecodable { dir: self.dir.display().to_string(), offset, reason };
            let set = RecordBatchDecoder::decode(&mut one).map_err(|e| undecodable(h.base_offset, e.to_string()))?;
            for r in set.records {
                let value = r.value.ok_or_else(|| undecodable(r.offset, "record has no value".into()))?;
                let rec = MetadataRecord::decode(&value).map_err(|e| undecodable(r.offset, e.to_string()))?;
                out.push((r.offset, rec));
            }
            next = h.next_offset();
            self.epoch = h.partition_leader_epoch;
        }
        Ok(if next < 0 { self.log.log_start_offset() } else { next })
    }

    fn storage(&self, e: &dyn std::fmt::Display) -> MetadataLogError {
        MetadataLogError::Storage { dir: self.dir.display().to_string(), reason: e.to_string() }
    }

    /// The offset the next record gets.
    pub fn end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Appends `records` (in batches of at most [`RECORDS_PER_BATCH_MAX`]) and fsyncs them.
    /// Returns the offset of the first record.
    pub fn append(&mut self, records: &[MetadataRecord], now_wall_ms: i64) -> Result<i64, MetadataLogError> {
        let first = self.log.log_end_offset();
        for chunk in records.chunks(RECORDS_PER_BATCH_MAX) {
            let values: Vec<Vec<u8>> = chunk.iter().map(MetadataRecord::encode).collect();
            let entries: Vec<(Option<&[u8]>, Option<&[u8]>)> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
            let mut b = batch::build_simple(0, now_wall_ms, &entries);
            self.log.append(&mut b, self.epoch, now_wall_ms).map_err(|e| self.storage(&e))?;
        }
        if !records.is_empty() {
            self.log.flush().map_err(|e| {
                // fsyncgate: after a failed fsync the log's contents are unknown; never retry.
                self.log.mark_failed();
                self.storage(&e)
            })?;
        }
        Ok(first)
    }

    /// Clean shutdown.
    pub fn close(self) {
        let dir = self.dir.clone();
        if let Err(e) = self.log.close() {
            tracing::error!(dir = %dir.display(), error = %e, "error closing the metadata log");
        }
    }
}
