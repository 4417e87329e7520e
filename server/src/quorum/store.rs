//! This node's durable copy of the KRaft log (`__cluster_metadata-0`) and its `quorum-state`
//! file.
//!
//! The log is an ordinary partition log of quorum entries, each stored as the record batch it
//! travels as on the wire ([`gregor_net::raft_wire::entry_to_batch`]). Recovery is the partition log's: a torn or corrupt tail is cut by CRC, which is safe
//! because nothing unsynced was ever counted toward the high watermark.
//!
//! Snapshots ([`super::snapshot`]) live in the same directory. At open the log is reconciled with
//! the newest one: a log that reaches the snapshot and agrees with its epoch keeps its entries
//! after it (those before are deleted); any other log (one that diverged, or a crash between
//! installing a received snapshot and emptying the log) is emptied and restarts at the snapshot.
//!
//! `quorum-state` (leader epoch, leader id, voted id) is written with an atomic replace (temp
//! file, fsync, rename, directory fsync) and ends in a CRC32C line: a damaged file refuses start
//! with its path, because forgetting a vote could elect two leaders in one epoch.

use std::path::{Path, PathBuf};

use gregor_core::disk::{read_all, write_atomic, SharedDisk};
use bytes::Bytes;
use gregor_core::metadata::MetadataRecord;
use gregor_core::raft::{Entry, LogOp, OffsetAndEpoch, QuorumStateFile, RaftLog, SnapshotChunk};
use gregor_net::raft_wire;
use gregor_storage::{LogConfig, PartitionLog};

use super::snapshot::{SnapshotError, Snapshots};

/// Directory name of the metadata log inside the metadata log dir.
pub const DIR_NAME: &str = "__cluster_metadata-0";
/// Name of the quorum-state file inside the log directory (where Kafka keeps it).
pub const QUORUM_STATE_FILE: &str = "quorum-state";
/// Most bytes read from the log at once while replaying it.
const REPLAY_READ_BYTES: usize = 4 << 20;
/// Largest entry accepted (one admin request's records); bigger proposals are refused.
pub const ENTRY_BYTES_MAX: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata log {dir}: {reason}")]
    Storage { dir: String, reason: String },
    #[error("metadata log {dir}: entry at offset {offset} cannot be read: {reason}")]
    Undecodable { dir: String, offset: i64, reason: String },
    #[error("quorum state file {path} is damaged ({reason}); restore it or re-format this node")]
    QuorumState { path: String, reason: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// What [`RaftStore::open`] read back.
pub struct Opened {
    pub store: RaftStore,
    pub quorum_state: Option<QuorumStateFile>,
    /// The newest snapshot and the durable entries after it.
    pub log: RaftLog,
    /// The newest snapshot's records (the committed image at its offset).
    pub snapshot: Option<(OffsetAndEpoch, Vec<MetadataRecord>)>,
}

pub struct RaftStore {
    log: PartitionLog,
    dir: PathBuf,
    disk: SharedDisk,
    snapshots: Snapshots,
}

fn log_config() -> LogConfig {
    LogConfig { retention_ms: -1, retention_bytes: -1, flush_messages: 1, max_message_bytes: ENTRY_BYTES_MAX + 1024, ..LogConfig::default() }
}

impl RaftStore {
    /// Opens (or creates) the log under `parent` and reconciles it with the newest snapshot
    /// (see the module docs).
    pub fn open(disk: SharedDisk, parent: &Path, now_wall_ms: i64) -> Result<Opened, StoreError> {
        let dir = parent.join(DIR_NAME);
        let storage = |e: &dyn std::fmt::Display| StoreError::Storage { dir: dir.display().to_string(), reason: e.to_string() };
        let (log, report) = PartitionLog::open(disk.clone(), dir.clone(), log_config(), now_wall_ms).map_err(|e| storage(&e))?;
        if report.truncated_bytes > 0 {
            tracing::warn!(dir = %dir.display(), bytes = report.truncated_bytes, "cut a torn metadata log tail");
        }
        let snapshots = Snapshots::new(disk.clone(), &dir);
        let mut store = RaftStore { log, dir: dir.clone(), disk, snapshots };
        let quorum_state = store.read_quorum_state()?;
        let snapshot = store.snapshots.open()?;
        let mut entries = store.read_entries()?;
        if let Some((id, _)) = &snapshot {
            let start = store.log.log_start_offset();
            if start > id.offset {
                return Err(store.storage(&format!("the log starts at {start}, after its newest snapshot {}", super::snapshot::file_name(*id))));
            }
            let agrees = store.log.log_end_offset() >= id.offset
                && (id.offset == start || entries.iter().any(|e| e.offset == id.offset - 1 && e.epoch == id.epoch));
            if agrees {
                store.log.delete_records_before(id.offset).map_err(|e| store.storage(&e))?;
                entries.retain(|e| e.offset >= id.offset);
            } else {
                tracing::warn!(dir = %dir.display(), snapshot = %super::snapshot::file_name(*id), "the metadata log does not reach or match its newest snapshot; restarting it there");
                store.log.truncate_fully_and_start_at(id.offset).map_err(|e| store.storage(&e))?;
                entries.clear();
            }
        }
        let log = RaftLog::from_parts(snapshot.as_ref().map(|(id, _)| *id), entries).map_err(|e| store.storage(&format!("{e:?}")))?;
        Ok(Opened { store, quorum_state, log, snapshot })
    }

    fn storage(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Storage { dir: self.dir.display().to_string(), reason: e.to_string() }
    }

    fn read_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out: Vec<Entry> = Vec::new();
        let mut offset = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        while offset < end {
            let data = self.log.read(offset, REPLAY_READ_BYTES, end).map_err(|e| self.storage(&e))?.data;
            let entries = raft_wire::batches_to_entries(data)
                .map_err(|reason| StoreError::Undecodable { dir: self.dir.display().to_string(), offset, reason })?;
            let Some(last) = entries.last() else {
                return Err(self.storage(&format!("no whole entry readable at offset {offset}")));
            };
            offset = last.offset + 1;
            out.extend(entries);
        }
        Ok(out)
    }

    fn quorum_state_path(&self) -> PathBuf {
        self.dir.join(QUORUM_STATE_FILE)
    }

    fn read_quorum_state(&self) -> Result<Option<QuorumStateFile>, StoreError> {
        let path = self.quorum_state_path();
        if !self.disk.exists(&path) {
            return Ok(None);
        }
        let damaged = |reason: &str| StoreError::QuorumState { path: path.display().to_string(), reason: reason.to_string() };
        let bytes = read_all(self.disk.as_ref(), &path).map_err(|e| damaged(&e.to_string()))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| damaged("not UTF-8"))?;
        let (body, crc_line) = text.trim_end_matches('\n').rsplit_once('\n').ok_or_else(|| damaged("no crc line"))?;
        let crc: u32 = crc_line.strip_prefix("crc=").and_then(|c| c.parse().ok()).ok_or_else(|| damaged("no crc line"))?;
        if crc32c::crc32c(body.as_bytes()) != crc {
            return Err(damaged("crc mismatch"));
        }
        let mut state = QuorumStateFile::default();
        let mut seen = 0;
        for line in body.lines() {
            let (k, v) = line.split_once('=').ok_or_else(|| damaged("malformed line"))?;
            let n: i32 = v.parse().map_err(|_| damaged("malformed number"))?;
            let id = (n >= 0).then_some(n);
            match k {
                "leader_epoch" => state.leader_epoch = n,
                "leader_id" => state.leader_id = id,
                "voted_id" => state.voted_id = id,
                _ => return Err(damaged("unknown key")),
            }
            seen += 1;
        }
        if seen != 3 || state.leader_epoch < 0 {
            return Err(damaged("missing fields"));
        }
        Ok(Some(state))
    }

    /// Durably replaces the quorum-state file.
    pub fn write_quorum_state(&self, state: &QuorumStateFile) -> Result<(), StoreError> {
        let body = format!(
            "leader_epoch={}\nleader_id={}\nvoted_id={}",
            state.leader_epoch,
            state.leader_id.unwrap_or(-1),
            state.voted_id.unwrap_or(-1)
        );
        let text = format!("{body}\ncrc={}\n", crc32c::crc32c(body.as_bytes()));
        write_atomic(self.disk.as_ref(), &self.quorum_state_path(), text.as_bytes()).map_err(|e| self.storage(&e))
    }

    /// Applies a log change from the quorum. Appends are not durable until [`RaftStore::sync`].
    pub fn apply(&mut self, op: &LogOp, now_wall_ms: i64) -> Result<(), StoreError> {
        match op {
            LogOp::Append(entries) => {
                for e in entries {
                    if e.offset != self.log.log_end_offset() {
                        return Err(self.storage(&format!("entry {} appended at log end {}", e.offset, self.log.log_end_offset())));
                    }
                    let mut batch = raft_wire::entry_to_batch(e);
                    self.log.append(&mut batch, e.epoch, now_wall_ms).map_err(|err| self.storage(&err))?;
                }
                Ok(())
            }
            LogOp::Truncate { offset } => self.log.truncate_to(*offset).map_err(|e| self.storage(&e)),
            LogOp::ResetToSnapshot(_) => Err(self.storage(&"a snapshot is installed with RaftStore::install_snapshot")),
        }
    }

    /// Stores a received snapshot chunk (see [`Snapshots::write_chunk`]).
    pub fn write_snapshot_chunk(&self, chunk: &SnapshotChunk) -> Result<(), StoreError> {
        Ok(self.snapshots.write_chunk(chunk)?)
    }

    /// [`LogOp::ResetToSnapshot`]: makes the received snapshot `id` durable, then empties the
    /// log and restarts it at the snapshot's end. Returns the snapshot's records.
    pub fn install_snapshot(&mut self, id: OffsetAndEpoch) -> Result<Vec<MetadataRecord>, StoreError> {
        let records = self.snapshots.install(id)?;
        self.log.truncate_fully_and_start_at(id.offset).map_err(|e| self.storage(&e))?;
        Ok(records)
    }

    /// Durably writes a snapshot of the committed image at `id`, then deletes the log before it.
    pub fn create_snapshot(&mut self, id: OffsetAndEpoch, records: &[MetadataRecord]) -> Result<(), StoreError> {
        self.snapshots.write(id, records)?;
        self.log.delete_records_before(id.offset).map_err(|e| self.storage(&e))?;
        Ok(())
    }

    /// Up to `max_bytes` of snapshot `id` from `position`, with its size (FetchSnapshot).
    pub fn read_snapshot_chunk(&self, id: OffsetAndEpoch, position: i64, max_bytes: usize) -> Result<(i64, Bytes), StoreError> {
        Ok(self.snapshots.read_chunk(id, position, max_bytes)?)
    }

    /// Fsyncs the log; returns its end. After a failed fsync the log is never synced again
    /// (its unsynced contents are unknown) and the error is fatal for the node.
    pub fn sync(&mut self) -> Result<i64, StoreError> {
        self.log.flush().map_err(|e| {
            self.log.mark_failed();
            self.storage(&e)
        })?;
        Ok(self.log.log_end_offset())
    }

    pub fn end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Clean shutdown.
    pub fn close(self) {
        let dir = self.dir.clone();
        if let Err(e) = self.log.close() {
            tracing::error!(dir = %dir.display(), error = %e, "error closing the metadata log");
        }
    }
}
