//! The quorum's in-memory model of the local `__cluster_metadata` replica: entries with their
//! offsets and epochs, the log start offset, the latest snapshot id and the leader-epoch cache
//! derived from the entries.
//!
//! Decision: the state machine keeps its own copy of the uncompacted log suffix (everything after
//! the latest snapshot). The driver mirrors it on disk by applying the [`LogOp`]s the node emits,
//! in order, and hands the durable contents back through [`RaftLog::from_parts`] on restart. The
//! metadata log is small and bounded by snapshots, so the copy costs little, and it lets the
//! leader answer Fetch and the voters compare logs without a round trip through the driver.
//!
//! Guarantees (checked by [`RaftLog::check_invariants`]): offsets are dense from the log start;
//! epochs never decrease along the log; the epoch cache holds exactly the first offset of every
//! epoch present; a snapshot, if any, ends exactly at the log start and its epoch is not larger
//! than the first entry's. Every mutation refuses input that would break these instead of
//! panicking, so a peer cannot crash the node with a bad Fetch response.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

/// An offset and the epoch of the entry before it, as Kafka's `OffsetAndEpoch`: `offset` is an
/// end offset (exclusive). Ordered as Kafka orders them: by epoch first, then by offset, which is
/// how a voter decides whether a candidate's log is at least as up to date as its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OffsetAndEpoch {
    pub offset: i64,
    pub epoch: i32,
}

impl OffsetAndEpoch {
    pub const fn new(offset: i64, epoch: i32) -> Self {
        OffsetAndEpoch { offset, epoch }
    }
}

impl Ord for OffsetAndEpoch {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch.cmp(&other.epoch).then(self.offset.cmp(&other.offset))
    }
}

impl PartialOrd for OffsetAndEpoch {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What an entry carries. Kafka writes control records of its own besides the metadata records;
/// the only one the quorum itself needs is LeaderChange, appended by each new leader at the start
/// of its epoch (Kafka's `LeaderChangeMessage`: leader id, voters, granting voters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// An opaque payload written through [`super::RaftNode::propose`].
    Data,
    /// The LeaderChange control record.
    LeaderChange { leader_id: i32, voters: Vec<i32>, granting_voters: Vec<i32> },
}

/// One log entry. A record batch on the wire holds a run of these; the server encodes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: i64,
    pub epoch: i32,
    pub kind: EntryKind,
    pub payload: Bytes,
}

/// A change the driver must apply to its on-disk copy of the log, in the order emitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOp {
    /// Append these entries (dense, starting at the current end offset).
    Append(Vec<Entry>),
    /// Remove every entry at or after this offset (a follower whose log diverged).
    Truncate { offset: i64 },
    /// Drop the whole log: it now starts at this snapshot's end offset, whose contents the
    /// driver received through FetchSnapshot.
    ResetToSnapshot(OffsetAndEpoch),
}

/// Why a log mutation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogError {
    NotContiguous { expected_offset: i64, got_offset: i64 },
    EpochDecreases { last_epoch: i32, got_epoch: i32 },
    OutOfRange { offset: i64, start_offset: i64, end_offset: i64 },
}

/// How a follower's fetch position relates to the leader's log (Kafka's `ValidOffsetAndEpoch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchPosition {
    /// The follower's log matches up to the fetch offset: send it entries from there.
    Valid,
    /// The follower's log diverges: it must truncate using this end offset and epoch.
    Diverging(OffsetAndEpoch),
    /// The fetch offset is gone from the log: the follower must fetch this snapshot.
    Snapshot(OffsetAndEpoch),
}

/// The in-memory log (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftLog {
    start_offset: i64,
    snapshot_id: Option<OffsetAndEpoch>,
    entries: VecDeque<Entry>,
    /// First offset of each epoch present in `entries`.
    epochs: BTreeMap<i32, i64>,
}

impl RaftLog {
    /// An empty log starting at offset 0.
    pub fn new() -> Self {
        RaftLog::default()
    }

    /// A log rebuilt from what the driver holds on disk: an optional snapshot (whose end offset
    /// is the log start) and the entries after it. Refuses inconsistent input.
    pub fn from_parts(snapshot_id: Option<OffsetAndEpoch>, entries: Vec<Entry>) -> Result<Self, LogError> {
        let start_offset = snapshot_id.map_or(0, |s| s.offset);
        let mut log = RaftLog { start_offset, snapshot_id, entries: VecDeque::new(), epochs: BTreeMap::new() };
        log.append(entries)?;
        Ok(log)
    }

    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Exclusive end offset (Kafka's log end offset).
    pub fn end_offset(&self) -> i64 {
        self.start_offset + self.entries.len() as i64
    }

    /// The latest snapshot, which ends at the log start.
    pub fn snapshot_id(&self) -> Option<OffsetAndEpoch> {
        self.snapshot_id
    }

    /// Epoch of the last entry (or of the snapshot, or 0 for an empty log).
    pub fn last_epoch(&self) -> i32 {
        match self.entries.back() {
            Some(e) => e.epoch,
            None => self.snapshot_id.map_or(0, |s| s.epoch),
        }
    }

    pub fn end_offset_and_epoch(&self) -> OffsetAndEpoch {
        OffsetAndEpoch::new(self.end_offset(), self.last_epoch())
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    pub fn get(&self, offset: i64) -> Option<&Entry> {
        if offset < self.start_offset {
            return None;
        }
        self.entries.get(usize::try_from(offset - self.start_offset).ok()?)
    }

    /// The epoch of the entry just before `end_offset` (the "last fetched epoch" of a follower
    /// whose log ends there).
    pub fn epoch_before(&self, end_offset: i64) -> i32 {
        if end_offset <= self.start_offset {
            return self.snapshot_id.map_or(0, |s| s.epoch);
        }
        self.get(end_offset - 1).map_or(self.last_epoch(), |e| e.epoch)
    }

    /// At most `max` entries from `from` on.
    pub fn read(&self, from: i64, max: usize) -> Vec<Entry> {
        if from < self.start_offset || from >= self.end_offset() {
            return Vec::new();
        }
        let skip = (from - self.start_offset) as usize;
        self.entries.iter().skip(skip).take(max).cloned().collect()
    }

    /// Appends entries that continue the log; all or nothing.
    pub fn append(&mut self, entries: Vec<Entry>) -> Result<(), LogError> {
        let mut expected = self.end_offset();
        let mut last_epoch = self.last_epoch();
        for e in &entries {
            if e.offset != expected {
                return Err(LogError::NotContiguous { expected_offset: expected, got_offset: e.offset });
            }
            if e.epoch < last_epoch {
                return Err(LogError::EpochDecreases { last_epoch, got_epoch: e.epoch });
            }
            expected += 1;
            last_epoch = e.epoch;
        }
        for e in entries {
            if self.entries.back().is_none_or(|b| b.epoch < e.epoch) {
                self.epochs.insert(e.epoch, e.offset);
            }
            self.entries.push_back(e);
        }
        Ok(())
    }

    /// Removes every entry at or after `offset`.
    pub fn truncate(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < self.start_offset || offset > self.end_offset() {
            return Err(LogError::OutOfRange { offset, start_offset: self.start_offset, end_offset: self.end_offset() });
        }
        self.entries.truncate((offset - self.start_offset) as usize);
        self.epochs.retain(|_, start| *start < offset);
        Ok(())
    }

    /// Replaces the whole log by a snapshot ending at `snapshot_id.offset`.
    pub fn reset_to_snapshot(&mut self, snapshot_id: OffsetAndEpoch) {
        self.entries.clear();
        self.epochs.clear();
        self.start_offset = snapshot_id.offset;
        self.snapshot_id = Some(snapshot_id);
    }

    /// Records a snapshot the driver made of the committed prefix up to `snapshot_id.offset` and
    /// drops the entries it covers. Refused unless the snapshot ends inside the log and its epoch
    /// is the epoch of the entry before its end.
    pub fn compact_to_snapshot(&mut self, snapshot_id: OffsetAndEpoch) -> Result<(), LogError> {
        let end = self.end_offset();
        if snapshot_id.offset < self.start_offset || snapshot_id.offset > end {
            return Err(LogError::OutOfRange { offset: snapshot_id.offset, start_offset: self.start_offset, end_offset: end });
        }
        let epoch = self.epoch_before(snapshot_id.offset);
        if epoch != snapshot_id.epoch {
            return Err(LogError::EpochDecreases { last_epoch: epoch, got_epoch: snapshot_id.epoch });
        }
        let drop = (snapshot_id.offset - self.start_offset) as usize;
        self.entries.drain(..drop);
        self.start_offset = snapshot_id.offset;
        self.snapshot_id = Some(snapshot_id);
        self.epochs.clear();
        let mut prev: Option<i32> = None;
        for e in &self.entries {
            if prev != Some(e.epoch) {
                self.epochs.insert(e.epoch, e.offset);
                prev = Some(e.epoch);
            }
        }
        Ok(())
    }

    /// Applies an op as the driver would (tests and drivers that keep a mirror use this).
    pub fn apply(&mut self, op: &LogOp) -> Result<(), LogError> {
        match op {
            LogOp::Append(entries) => self.append(entries.clone()),
            LogOp::Truncate { offset } => self.truncate(*offset),
            LogOp::ResetToSnapshot(id) => {
                self.reset_to_snapshot(*id);
                Ok(())
            }
        }
    }

    /// The end offset of `epoch` in this log, Kafka's `endOffsetForEpoch`: for the latest epoch
    /// the log end; for an older epoch present in the log the start of the next larger epoch (and
    /// the largest epoch not above `epoch`); for an epoch older than every entry the start of the
    /// first entry (or the snapshot id, when the log starts at a snapshot).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> OffsetAndEpoch {
        let latest = self.last_epoch();
        if epoch >= latest {
            return OffsetAndEpoch::new(self.end_offset(), latest);
        }
        let higher_start = self.epochs.range(epoch + 1..).next().map_or(self.end_offset(), |(_, s)| *s);
        match self.epochs.range(..=epoch).next_back() {
            Some((e, _)) => OffsetAndEpoch::new(higher_start, *e),
            None => match self.snapshot_id {
                Some(s) if s.epoch <= epoch => OffsetAndEpoch::new(s.offset, s.epoch),
                _ => OffsetAndEpoch::new(higher_start, epoch),
            },
        }
    }

    /// Kafka's `validateOffsetAndEpoch`: whether a follower that fetches `offset` with
    /// `last_fetched_epoch` agrees with this (the leader's) log.
    pub fn validate_offset_and_epoch(&self, offset: i64, last_fetched_epoch: i32) -> FetchPosition {
        if self.start_offset == 0 && offset == 0 {
            return FetchPosition::Valid;
        }
        if let Some(s) = self.snapshot_id {
            if offset < self.start_offset
                || (offset == self.start_offset && last_fetched_epoch != s.epoch)
                || last_fetched_epoch < s.epoch
            {
                return FetchPosition::Snapshot(s);
            }
        }
        let end = self.end_offset_for_epoch(last_fetched_epoch);
        if end.epoch != last_fetched_epoch || end.offset < offset {
            FetchPosition::Diverging(end)
        } else {
            FetchPosition::Valid
        }
    }

    /// Where a follower truncates when the leader answers with a diverging epoch (Kafka's
    /// `truncateToEndOffset`): the smaller of the leader's end for that epoch and the local end
    /// for it, or the local end of the largest older epoch when this log lacks that epoch.
    pub fn truncation_offset_for(&self, diverging: OffsetAndEpoch) -> i64 {
        let offset = if diverging.epoch == 0 {
            diverging.offset.min(self.end_offset())
        } else {
            let local = self.end_offset_for_epoch(diverging.epoch);
            if local.epoch == diverging.epoch { local.offset.min(diverging.offset) } else { local.offset }
        };
        offset.clamp(self.start_offset, self.end_offset())
    }

    /// Panics if the invariants in the module docs do not hold (release builds too).
    pub fn check_invariants(&self) {
        let mut prev_epoch = self.snapshot_id.map_or(0, |s| s.epoch);
        let mut first_of: BTreeMap<i32, i64> = BTreeMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            assert_eq!(e.offset, self.start_offset + i as i64, "raft log: offsets not dense at index {i}");
            assert!(e.epoch >= prev_epoch, "raft log: epoch decreases at offset {}", e.offset);
            first_of.entry(e.epoch).or_insert(e.offset);
            prev_epoch = e.epoch;
        }
        assert_eq!(first_of, self.epochs, "raft log: epoch cache out of step with the entries");
        if let Some(s) = self.snapshot_id {
            assert_eq!(s.offset, self.start_offset, "raft log: snapshot does not end at the log start");
        } else {
            assert_eq!(self.start_offset, 0, "raft log: log start moved without a snapshot");
        }
    }
}
