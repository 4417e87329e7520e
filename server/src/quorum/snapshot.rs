//! Metadata snapshots: the committed image at one offset of the metadata log, in a file the
//! quorum can ship to a replica whose log no longer reaches that far back.
//!
//! A snapshot ending at offset `o` (exclusive) whose last entry has epoch `e` is the file
//! `<o:020>-<e:010>.checkpoint` in the metadata log directory, as Kafka names them. Its contents
//! are record batches, as the log's: a header entry (magic, the snapshot id, the number of
//! chunks) and then chunks of the image's records ([`MetadataImage::to_records`]), each batch
//! CRC-checked. Snapshots are opaque to the raft node: it ships their bytes in FetchSnapshot
//! chunks and the receiving driver writes them into `<name>.part`.
//!
//! Guarantees:
//! * a `.checkpoint` file is complete and durable: it is written (or received) as `.part`,
//!   fsynced, renamed and its directory fsynced, and it is checked (CRC, header, length) before
//!   the rename of a received one and on every load;
//! * `.part` files left by a crash are deleted at open; once a snapshot is durable, older ones
//!   are deleted, so the newest checkpoint is the only one;
//! * a damaged checkpoint refuses start with its path (never a silently smaller cluster).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use gregor_core::disk::{read_all, SharedDisk};
use gregor_core::metadata::{decode_entry, encode_entry, MetadataRecord};
use gregor_core::raft::{Entry, EntryKind, OffsetAndEpoch, SnapshotChunk};
use gregor_net::raft_wire;

/// First bytes of a snapshot's header entry.
const MAGIC: &[u8; 8] = b"GRGSNAP1";
/// Records per chunk entry (keeps every batch far below the entry size limit).
const RECORDS_PER_CHUNK: usize = 1024;
const SUFFIX: &str = ".checkpoint";
const PART_SUFFIX: &str = ".checkpoint.part";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("metadata snapshot {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("metadata snapshot {path} is damaged ({reason}); restore it or re-format this node")]
    Damaged { path: String, reason: String },
}

/// The snapshot files of one metadata log directory.
pub struct Snapshots {
    dir: PathBuf,
    disk: SharedDisk,
}

/// The file name of snapshot `id` (without directory).
pub fn file_name(id: OffsetAndEpoch) -> String {
    format!("{:020}-{:010}{SUFFIX}", id.offset, id.epoch)
}

fn parse_name(name: &str) -> Option<OffsetAndEpoch> {
    let (offset, epoch) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    Some(OffsetAndEpoch::new(offset.parse().ok()?, epoch.parse().ok()?))
}

/// The bytes of snapshot `id` holding `records`.
pub fn encode(id: OffsetAndEpoch, records: &[MetadataRecord]) -> Vec<u8> {
    let chunks: Vec<&[MetadataRecord]> = records.chunks(RECORDS_PER_CHUNK).collect();
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&id.offset.to_be_bytes());
    header.extend_from_slice(&id.epoch.to_be_bytes());
    header.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
    let entry = |offset: usize, payload: Vec<u8>| Entry { offset: offset as i64, epoch: id.epoch, kind: EntryKind::Data, payload: payload.into() };
    let mut out = raft_wire::entry_to_batch(&entry(0, header));
    for (i, chunk) in chunks.iter().enumerate() {
        out.extend_from_slice(&raft_wire::entry_to_batch(&entry(i + 1, encode_entry(chunk))));
    }
    out
}

/// The records of snapshot `id` from its bytes; refuses anything but a whole, intact snapshot
/// of exactly that id.
pub fn decode(id: OffsetAndEpoch, bytes: Bytes) -> Result<Vec<MetadataRecord>, String> {
    let len = bytes.len();
    let entries = raft_wire::batches_to_entries(bytes)?;
    let (header, chunks) = entries.split_first().ok_or("empty")?;
    let h = &header.payload;
    if h.len() != 24 || &h[..8] != MAGIC {
        return Err("no snapshot header".into());
    }
    let offset = i64::from_be_bytes(h[8..16].try_into().expect("8 bytes"));
    let epoch = i32::from_be_bytes(h[16..20].try_into().expect("4 bytes"));
    let count = u32::from_be_bytes(h[20..24].try_into().expect("4 bytes")) as usize;
    if OffsetAndEpoch::new(offset, epoch) != id {
        return Err(format!("its header names snapshot {offset}-{epoch}"));
    }
    // The batch header's offset and epoch fields lie outside its CRC: check them here.
    if entries.iter().enumerate().any(|(i, e)| e.offset != i as i64 || e.epoch != id.epoch || e.kind != EntryKind::Data) {
        return Err("batch offsets or epochs out of place".into());
    }
    if chunks.len() != count {
        return Err(format!("{} of {count} chunks", chunks.len()));
    }
    // Whole batches only: a trailing partial batch means the file was cut.
    let whole: usize = entries.iter().map(|e| raft_wire::entry_to_batch(e).len()).sum();
    if whole != len {
        return Err(format!("{} trailing bytes", len.saturating_sub(whole)));
    }
    let mut records = Vec::new();
    for c in chunks {
        records.extend(decode_entry(&c.payload).map_err(|e| format!("chunk {}: {e}", c.offset))?);
    }
    Ok(records)
}

impl Snapshots {
    pub fn new(disk: SharedDisk, dir: &Path) -> Snapshots {
        Snapshots { dir: dir.to_path_buf(), disk }
    }

    fn path(&self, id: OffsetAndEpoch) -> PathBuf {
        self.dir.join(file_name(id))
    }

    fn part_path(&self, id: OffsetAndEpoch) -> PathBuf {
        self.dir.join(format!("{:020}-{:010}{PART_SUFFIX}", id.offset, id.epoch))
    }

    fn io(&self, path: &Path, e: &dyn std::fmt::Display) -> SnapshotError {
        SnapshotError::Io { path: path.display().to_string(), reason: e.to_string() }
    }

    /// Deletes partial files and every checkpoint but the newest, and loads that one.
    pub fn open(&self) -> Result<Option<(OffsetAndEpoch, Vec<MetadataRecord>)>, SnapshotError> {
        let names = self.disk.list_dir(&self.dir).map_err(|e| self.io(&self.dir, &e))?;
        let mut ids: Vec<OffsetAndEpoch> = names.iter().filter_map(|n| parse_name(n)).collect();
        ids.sort_by_key(|id| (id.offset, id.epoch));
        let mut removed = false;
        for name in names.iter().filter(|n| n.ends_with(PART_SUFFIX)) {
            let path = self.dir.join(name);
            self.disk.remove_file(&path).map_err(|e| self.io(&path, &e))?;
            removed = true;
        }
        let Some(&newest) = ids.last() else {
            if removed {
                self.disk.sync_dir(&self.dir).map_err(|e| self.io(&self.dir, &e))?;
            }
            return Ok(None);
        };
        let path = self.path(newest);
        let bytes = read_all(self.disk.as_ref(), &path).map_err(|e| self.io(&path, &e))?;
        let records = decode(newest, bytes.into()).map_err(|reason| SnapshotError::Damaged { path: path.display().to_string(), reason })?;
        self.remove_older_than(newest)?;
        Ok(Some((newest, records)))
    }

    /// Durably writes snapshot `id` of `records`, then deletes older snapshots.
    pub fn write(&self, id: OffsetAndEpoch, records: &[MetadataRecord]) -> Result<(), SnapshotError> {
        let part = self.part_path(id);
        let file = self.disk.open(&part, true).map_err(|e| self.io(&part, &e))?;
        let bytes = encode(id, records);
        file.truncate(0).and_then(|_| file.write_all_at(&bytes, 0)).and_then(|_| file.sync()).map_err(|e| self.io(&part, &e))?;
        drop(file);
        self.publish(id)
    }

    /// Renames the complete `.part` of `id` into place (durably) and deletes older snapshots.
    fn publish(&self, id: OffsetAndEpoch) -> Result<(), SnapshotError> {
        let (part, path) = (self.part_path(id), self.path(id));
        self.disk.rename(&part, &path).map_err(|e| self.io(&path, &e))?;
        self.disk.sync_dir(&self.dir).map_err(|e| self.io(&self.dir, &e))?;
        self.remove_older_than(id)
    }

    fn remove_older_than(&self, id: OffsetAndEpoch) -> Result<(), SnapshotError> {
        let names = self.disk.list_dir(&self.dir).map_err(|e| self.io(&self.dir, &e))?;
        let mut removed = false;
        for old in names.iter().filter_map(|n| parse_name(n)).filter(|o| o.offset < id.offset || (o.offset == id.offset && o.epoch != id.epoch)) {
            let path = self.path(old);
            self.disk.remove_file(&path).map_err(|e| self.io(&path, &e))?;
            removed = true;
        }
        if removed {
            self.disk.sync_dir(&self.dir).map_err(|e| self.io(&self.dir, &e))?;
        }
        Ok(())
    }

    /// Up to `max_bytes` of snapshot `id` from `position`, with the snapshot's size.
    pub fn read_chunk(&self, id: OffsetAndEpoch, position: i64, max_bytes: usize) -> Result<(i64, Bytes), SnapshotError> {
        let path = self.path(id);
        let file = self.disk.open(&path, false).map_err(|e| self.io(&path, &e))?;
        let size = file.len().map_err(|e| self.io(&path, &e))?;
        let from = u64::try_from(position).unwrap_or(u64::MAX).min(size);
        let n = (size - from).min(max_bytes as u64) as usize;
        let mut buf = vec![0; n];
        file.read_exact_at(&mut buf, from).map_err(|e| self.io(&path, &e))?;
        Ok((size as i64, buf.into()))
    }

    /// Stores a chunk received from the leader into the `.part` of its snapshot (a chunk at
    /// position 0 starts the file over). Not durable until [`Snapshots::install`].
    pub fn write_chunk(&self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        let part = self.part_path(chunk.snapshot_id);
        let position = u64::try_from(chunk.position).map_err(|_| self.io(&part, &"negative position"))?;
        let file = self.disk.open(&part, true).map_err(|e| self.io(&part, &e))?;
        let r = if position == 0 { file.truncate(0) } else { Ok(()) };
        r.and_then(|_| file.write_all_at(&chunk.bytes, position)).map_err(|e| self.io(&part, &e))
    }

    /// The last chunk of snapshot `id` arrived: checks the `.part`, makes it durable, renames it
    /// into place, deletes older snapshots and returns its records.
    pub fn install(&self, id: OffsetAndEpoch) -> Result<Vec<MetadataRecord>, SnapshotError> {
        let part = self.part_path(id);
        let file = self.disk.open(&part, false).map_err(|e| self.io(&part, &e))?;
        file.sync().map_err(|e| self.io(&part, &e))?;
        drop(file);
        let bytes = read_all(self.disk.as_ref(), &part).map_err(|e| self.io(&part, &e))?;
        let records = decode(id, bytes.into()).map_err(|reason| SnapshotError::Damaged { path: part.display().to_string(), reason })?;
        self.publish(id)?;
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gregor_core::metadata::RESOURCE_TOPIC;
    use gregor_storage::{FaultConfig, MemDisk};

    use super::*;

    fn records(n: usize) -> Vec<MetadataRecord> {
        (0..n)
            .map(|i| MetadataRecord::Config { resource_type: RESOURCE_TOPIC, resource_name: format!("t{i}"), name: "retention.ms".into(), value: Some(i.to_string()) })
            .collect()
    }

    fn setup() -> (MemDisk, Snapshots) {
        let m = MemDisk::new(7, FaultConfig::default());
        let disk: SharedDisk = Arc::new(m.clone());
        disk.create_dir_all(Path::new("/meta")).unwrap();
        (m, Snapshots::new(disk, Path::new("/meta")))
    }

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let id = OffsetAndEpoch::new(4321, 7);
        let recs = records(2500);
        let bytes = encode(id, &recs);
        assert_eq!(decode(id, bytes.clone().into()), Ok(recs));
        assert!(decode(OffsetAndEpoch::new(4321, 8), bytes.clone().into()).is_err(), "another id accepted");
        for cut in [0, 1, 30, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(id, Bytes::copy_from_slice(&bytes[..cut])).is_err(), "cut at {cut} accepted");
        }
        for at in [0, 7, 13, 17, 70, bytes.len() / 3, bytes.len() - 2] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(decode(id, bad.into()).is_err(), "bit flip at {at} accepted");
        }
        assert_eq!(decode(OffsetAndEpoch::new(0, 0), encode(OffsetAndEpoch::new(0, 0), &[]).into()), Ok(vec![]));
    }

    #[test]
    fn written_and_received_snapshots_survive_a_crash_and_replace_older_ones() {
        let (m, s) = setup();
        let a = OffsetAndEpoch::new(10, 1);
        s.write(a, &records(3)).unwrap();
        m.crash();
        assert_eq!(s.open().unwrap(), Some((a, records(3))));
        // Received in chunks, as FetchSnapshot delivers them.
        let b = OffsetAndEpoch::new(50, 2);
        let bytes = Bytes::from(encode(b, &records(40)));
        for (i, c) in bytes.chunks(100).enumerate() {
            let chunk = SnapshotChunk { snapshot_id: b, position: (i * 100) as i64, size: bytes.len() as i64, bytes: Bytes::copy_from_slice(c) };
            s.write_chunk(&chunk).unwrap();
        }
        assert_eq!(s.read_chunk(a, 0, 1 << 20).unwrap().0, encode(a, &records(3)).len() as i64);
        assert_eq!(s.install(b).unwrap(), records(40));
        m.crash();
        assert_eq!(s.open().unwrap(), Some((b, records(40))));
        assert!(s.read_chunk(a, 0, 10).is_err(), "the older snapshot was not deleted");
        let (size, first) = s.read_chunk(b, 0, 10).unwrap();
        assert_eq!((size, &first[..]), (bytes.len() as i64, &bytes[..10]));
        assert!(s.read_chunk(b, size + 5, 10).unwrap().1.is_empty());
        // A partial transfer interrupted by a crash is forgotten; a cut one is not installed.
        let c = OffsetAndEpoch::new(90, 3);
        let cb = encode(c, &records(5));
        s.write_chunk(&SnapshotChunk { snapshot_id: c, position: 0, size: cb.len() as i64, bytes: Bytes::copy_from_slice(&cb[..cb.len() - 3]) }).unwrap();
        assert!(matches!(s.install(c), Err(SnapshotError::Damaged { .. })));
        assert_eq!(s.open().unwrap(), Some((b, records(40))));
    }

    #[test]
    fn a_damaged_checkpoint_refuses_open_with_its_path() {
        let (_m, s) = setup();
        let a = OffsetAndEpoch::new(10, 1);
        s.write(a, &records(3)).unwrap();
        let path = s.path(a);
        let f = s.disk.open(&path, false).unwrap();
        f.write_all_at(&[0xff], 40).unwrap();
        let err = s.open().unwrap_err().to_string();
        assert!(err.contains("00000000000000000010-0000000001.checkpoint") && err.contains("damaged"), "{err}");
    }
}
