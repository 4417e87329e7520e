//! The recorded history of a run: every record the clients tried to produce, every
//! acknowledgement, everything any reader was served, and the world events that excuse some
//! losses (power loss under the page-cache policy, a bit flip, retention, DeleteRecords).
//!
//! Clients append to it as they go; the checkers read it when the run is over. Records are
//! identified by their value, which starts with `p<producer>:<n>:`, so a served record can be
//! traced back to exactly one produce attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

/// Identity of a produced record: (producer, sequence number within that producer).
pub type RecordId = (u32, u64);

/// A record as produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Produced {
    pub id: RecordId,
    pub topic: String,
    pub partition: i32,
    pub key: Option<Bytes>,
    /// The value, which starts with [`value_prefix`]; a tombstone is sent with a null value and
    /// this in its [`TOMBSTONE_ID_HEADER`] header instead.
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    pub tombstone: bool,
    /// When the record was made, before it was first sent.
    pub created_at: Duration,
}

/// The header naming a tombstone's record (it has no value to carry its identity).
pub const TOMBSTONE_ID_HEADER: &str = "id";

/// A record as served to a reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// One acknowledged record: the broker said it is at `offset`.
#[derive(Clone, Debug)]
pub struct Ack {
    pub id: RecordId,
    pub partition: i32,
    pub offset: i64,
    /// When the request that got this acknowledgement was sent, and when the answer came.
    pub sent_at: Duration,
    pub at: Duration,
    /// The producer asked for idempotence.
    pub idempotent: bool,
}

/// One record served by a fetch.
#[derive(Clone, Debug)]
pub struct Observation {
    pub reader: String,
    pub partition: i32,
    pub offset: i64,
    pub record: Served,
    /// When the fetch was sent, and when its answer came.
    pub sent_at: Duration,
    pub at: Duration,
    /// The high watermark the same fetch response reported.
    pub high_watermark: i64,
}

/// A reader was served offset `got` right after `expected - 1`: records were skipped.
#[derive(Clone, Debug)]
pub struct Gap {
    pub reader: String,
    pub partition: i32,
    pub expected: i64,
    pub got: i64,
    /// The log start offset the same fetch response reported.
    pub log_start: i64,
}

/// A member's assignment in one generation (from its SyncGroup answer).
#[derive(Clone, Debug)]
pub struct Assignment {
    pub generation: i32,
    pub member: String,
    pub partitions: Vec<i32>,
    pub at: Duration,
}

/// An offset commit the coordinator accepted (error 0) for one partition.
#[derive(Clone, Debug)]
pub struct Commit {
    pub member: String,
    pub generation: i32,
    pub partition: i32,
    pub offset: i64,
    pub sent_at: Duration,
    pub at: Duration,
}

/// A member read the group's committed offset of a partition it was assigned (-1: none).
#[derive(Clone, Debug)]
pub struct Resume {
    pub member: String,
    pub generation: i32,
    pub partition: i32,
    pub committed: i64,
    pub sent_at: Duration,
    pub at: Duration,
}

/// The final read after the faults healed: per partition, the log start, the high watermark and
/// the records from one to the other (offset order), or why the read stopped early.
#[derive(Clone, Debug, Default)]
pub struct FinalRead {
    pub log_start: BTreeMap<i32, i64>,
    pub high_watermark: BTreeMap<i32, i64>,
    pub records: BTreeMap<i32, Vec<(i64, Served)>>,
    /// Partition -> (offset, reason) where the read could not go on.
    pub stuck: BTreeMap<i32, (i64, String)>,
    /// Simulated time from the heal until the final read completed.
    pub served_after: Option<Duration>,
}

/// Everything recorded in one run.
#[derive(Default)]
pub struct HistoryData {
    /// The topic whose data is checked.
    pub topic: String,
    pub partitions: i32,
    pub produced: BTreeMap<RecordId, Produced>,
    pub acks: Vec<Ack>,
    pub observations: Vec<Observation>,
    /// Served data that failed its CRC or did not decode: corrupt data reached a client.
    pub corrupt_served: Vec<String>,
    /// Simulated times of power losses.
    pub power_losses: Vec<Duration>,
    /// Partition -> lowest offset a bit flip may have destroyed (everything from there is excused
    /// from the durability check: a single broker has no other copy).
    pub bit_flips: BTreeMap<i32, i64>,
    /// Partition -> highest offset an acknowledged DeleteRecords deleted up to.
    pub deleted_before: BTreeMap<i32, i64>,
    /// Per reader and partition, the offsets where it restarted reading (out of range reset).
    pub resets: Vec<(String, i32, i64)>,
    pub gaps: Vec<Gap>,
    pub final_read: FinalRead,
    /// When the faults were healed.
    pub healed_at: Option<Duration>,
    /// Failures of the liveness phase.
    pub liveness_failures: Vec<String>,
    /// What the durability oracle found (`gregor_core::probe`): how many times the broker relied
    /// on data that was not durable, and the first few.
    pub durability_findings: (u64, Vec<String>),
    /// DeleteRecords answered, then a read at the requested offset did not start there although
    /// the log start had not moved past it (records at or above the offset were deleted).
    pub delete_records_failures: Vec<String>,
    /// A fetch response served records out of offset order (reader, partition, what).
    pub out_of_order_served: Vec<String>,
    pub operations: u64,
    /// Consumer group history (groups scenario only).
    pub group: bool,
    pub assignments: Vec<Assignment>,
    pub commits: Vec<Commit>,
    /// Every commit sent: (partition, offset, sent at, answered). An unanswered commit (its
    /// connection broke or timed out) may still be applied at any later time, over newer commits,
    /// in Kafka as here: it is the only legitimate way for a committed offset to move back.
    pub commit_attempts: Vec<(i32, i64, Duration, bool)>,
    pub resumes: Vec<Resume>,
    /// Partition -> every offset some group member was served.
    pub group_consumed: BTreeMap<i32, BTreeSet<i64>>,
    /// The group's committed offsets read after the heal.
    pub final_commits: Option<BTreeMap<i32, i64>>,
    /// Quorum and metadata history (cluster scenario only).
    pub cluster: Option<ClusterData>,
    /// The topic is compacted (compaction scenario only).
    pub compaction: Option<crate::knobs::CompactionKnobs>,
}

/// One DescribeQuorum answer polled from a node: its view of the quorum's leader, epoch and
/// its own high watermark (error 0 from the leader, NOT_LEADER_OR_FOLLOWER from the others).
#[derive(Clone, Debug)]
pub struct QuorumPoll {
    /// Index of the node in the world (its node.id is index + 1).
    pub node: usize,
    /// Which process start of that node answered (0 = the first).
    pub incarnation: u64,
    pub at: Duration,
    pub error_code: i16,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
}

/// A metadata log entry as seen on some node's disk: (epoch, hash of its stored batch).
pub type EntryDigest = (i32, u64);

/// A node's metadata log as on its disk: the end of its newest snapshot (0: none) and every
/// whole entry still in its segment files (some may lie below the snapshot end).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskLog {
    pub snapshot_end: i64,
    pub entries: BTreeMap<i64, EntryDigest>,
}

impl DiskLog {
    /// Whether the node holds every committed entry below `hw`, as an entry or in its snapshot.
    pub fn covers(&self, hw: i64) -> bool {
        let from = self.snapshot_end.min(hw);
        self.entries.range(from..hw).count() as i64 == hw - from
    }
}

/// Where and when an entry below an observed high watermark was first read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedSeen {
    pub digest: EntryDigest,
    pub node: usize,
    pub at: Duration,
    /// The high watermark the node reported (the entry's offset is below it).
    pub high_watermark: i64,
}

/// One partition in a Metadata answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One topic in a Metadata answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicView {
    pub error_code: i16,
    pub partitions: BTreeMap<i32, PartitionView>,
}

/// A node's Metadata answer (all topics), reduced to what every broker must agree on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetadataView {
    /// Broker id -> advertised host:port.
    pub brokers: BTreeMap<i32, String>,
    pub controller_id: i32,
    pub topics: BTreeMap<String, TopicView>,
}

impl MetadataView {
    /// Whether two answers agree on everything brokers must agree on (the controller id
    /// excepted: each broker may name any live broker there).
    pub fn agrees_with(&self, other: &MetadataView) -> bool {
        self.brokers == other.brokers && self.topics == other.topics
    }
}

/// One Metadata answer polled from a node.
#[derive(Clone, Debug)]
pub struct MetadataPoll {
    pub node: usize,
    pub incarnation: u64,
    pub at: Duration,
    pub view: MetadataView,
}

/// What the cluster scenario records about the quorum and the metadata.
#[derive(Clone, Debug, Default)]
pub struct ClusterData {
    pub nodes: usize,
    pub quorum_polls: Vec<QuorumPoll>,
    /// Offset -> the entry first read there below a high watermark some node reported.
    pub committed: BTreeMap<i64, CommittedSeen>,
    /// Later reads below a reported high watermark that found another entry at a committed
    /// offset: (offset, first seen, read later).
    pub committed_conflicts: Vec<(i64, CommittedSeen, CommittedSeen)>,
    pub metadata_polls: Vec<MetadataPoll>,
    /// Topics whose CreateTopics was acknowledged (error 0), with their partition counts.
    pub created_acked: BTreeMap<String, i32>,
    /// Topics whose creation was acknowledged twice: (topic, first count, second count).
    pub created_twice: Vec<(String, i32, i32)>,
    /// Whether the cluster converged after the heal (one leader known to all, equal high
    /// watermarks, equal Metadata answers) within the liveness bound.
    pub converged: bool,
    /// After the heal: (leader index, epoch, high watermark) as the leader reported it.
    pub final_leader: Option<(usize, i32, i64)>,
    /// After the heal: every node's metadata log as on its disk (offset -> digest), or why it
    /// could not be read.
    pub final_logs: Vec<(usize, Result<DiskLog, String>)>,
    /// After the heal: every node's Metadata answer (None: it gave none).
    pub final_metadata: Vec<(usize, Option<MetadataView>)>,
    /// After the heal and the final read: each `events` partition's replicas' logs as on their
    /// disks (broker id -> batches, or why they could not be read), and its leader.
    pub final_replicas: BTreeMap<i32, Vec<(i32, Result<Vec<ReplicaBatch>, String>)>>,
    pub final_leaders: BTreeMap<i32, i32>,
    /// On a compacted topic, at the same moment: each replica's records as on its disk (broker
    /// id -> (offset, record)), for `compacted-latest` to check every copy, not only the leader's.
    pub final_replica_records: BTreeMap<i32, Vec<(i32, Vec<(i64, Served)>)>>,
    /// acks=all writes on the scenario's topic whose replicas were counted when acknowledged.
    pub acks_checked: u64,
    /// Those acknowledged while fewer than `min.insync.replicas` replicas held them durably.
    pub short_acks: Vec<ShortAck>,
    /// Acknowledged writes some member of the committed ISR did not hold durably.
    pub isr_lacking: Vec<IsrLacking>,
    /// High watermark moves of the scenario's topic checked against the replicas' disks.
    pub hws_checked: u64,
    /// Those made while a replica the controller may elect lacked the records below it.
    pub hw_lacking: Vec<HwLacking>,
    /// Replicas of the scenario's topic opened by a restarting broker, checked against what
    /// its last durable `replication-offset-checkpoint` held.
    pub hw_restores_checked: u64,
    /// Those opened with a high watermark below it (and below their log end).
    pub hw_forgotten: Vec<HwForgotten>,
    /// Every ListOffsets "latest" answer (error 0) the observer got for the scenario's topic.
    pub latest_polls: Vec<LatestPoll>,
}

/// An acks=all write acknowledged while members of the committed ISR lacked it (`ack_replicas`).
#[derive(Clone, Debug, PartialEq)]
pub struct IsrLacking {
    pub at: Duration,
    pub node_id: i32,
    pub partition: i32,
    pub end_offset: i64,
    /// The committed ISR, from the metadata record at `metadata_offset`.
    pub isr: Vec<i32>,
    pub metadata_offset: i64,
    /// Its members that did not hold the write durably.
    pub lacking: Vec<i32>,
}

/// A leader moved its high watermark while a member of the committed ISR or ELR lacked the
/// batch just below it (`ack_replicas`).
#[derive(Clone, Debug, PartialEq)]
pub struct HwLacking {
    pub at: Duration,
    /// The leader that moved it.
    pub node_id: i32,
    pub partition: i32,
    pub high_watermark: i64,
    /// The committed ISR and ELR, from the metadata record at `metadata_offset`.
    pub electable: Vec<i32>,
    pub metadata_offset: i64,
    /// Its members that did not hold the batch ending at `high_watermark - 1`.
    pub lacking: Vec<i32>,
}

/// A restarting broker opened a replica with a high watermark below the one its last durable
/// checkpoint held for it, though its log reached that far (`ack_replicas`).
#[derive(Clone, Debug, PartialEq)]
pub struct HwForgotten {
    pub at: Duration,
    pub node_id: i32,
    pub partition: i32,
    pub checkpointed: i64,
    pub high_watermark: i64,
    pub log_end: i64,
}

/// One partition's ListOffsets "latest" answer from one node.
#[derive(Clone, Debug, PartialEq)]
pub struct LatestPoll {
    pub node: usize,
    pub partition: i32,
    pub sent_at: Duration,
    pub at: Duration,
    pub offset: i64,
    /// The leader epoch the answering leader gave.
    pub leader_epoch: i32,
}

/// An acks=all write acknowledged while too few replicas held it durably (`ack_replicas`).
#[derive(Clone, Debug, PartialEq)]
pub struct ShortAck {
    pub at: Duration,
    /// The leader that acknowledged it.
    pub node_id: i32,
    pub partition: i32,
    /// Every record below this offset was acknowledged.
    pub end_offset: i64,
    /// The nodes whose disks held the acknowledged batch durably at that moment.
    pub holders: Vec<i32>,
    pub min_insync: i16,
}

/// One batch of a replica's log as on its disk: (base offset, last offset, leader epoch, digest
/// of its bytes).
pub type ReplicaBatch = (i64, i64, i32, u64);

/// A shared handle to the history.
#[derive(Clone, Default)]
pub struct History(Arc<Mutex<HistoryData>>);

impl History {
    pub fn new(topic: &str, partitions: i32) -> History {
        let h = History::default();
        {
            let mut d = h.lock();
            d.topic = topic.to_string();
            d.partitions = partitions;
        }
        h
    }

    pub fn lock(&self) -> MutexGuard<'_, HistoryData> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl HistoryData {
    /// A time after every operation of the run.
    pub fn final_read_at(&self) -> Duration {
        Duration::MAX
    }

    /// Whether an unanswered commit of `offset` to `partition` was sent before `before`.
    pub fn zombie_commit(&self, partition: i32, offset: i64, before: Duration) -> bool {
        self.commit_attempts.iter().any(|&(p, o, sent, answered)| !answered && p == partition && o == offset && sent <= before)
    }

    /// Whether a bit flip may have destroyed `offset` of `partition`. A single broker has no
    /// other copy: from the flipped batch on, recovery cuts the log (and later reuses those
    /// offsets) or reads fail. Only the no-phantom property (corrupt data is never served) and
    /// liveness below the flip still hold there.
    pub fn flipped(&self, partition: i32, offset: i64) -> bool {
        self.bit_flips.get(&partition).is_some_and(|&from| from <= offset)
    }
}

/// The value prefix that identifies a record.
pub fn value_prefix(id: RecordId) -> String {
    format!("p{}:{}:", id.0, id.1)
}

/// The identity of a served record: from its value, or a tombstone's from its id header.
pub fn served_id(r: &Served) -> Option<RecordId> {
    match &r.value {
        Some(v) => parse_id(v),
        None => r.headers.iter().find(|(k, _)| k == TOMBSTONE_ID_HEADER).and_then(|(_, v)| parse_id(v.as_deref()?)),
    }
}

/// Parses the identity out of a served value, if it has one.
pub fn parse_id(value: &[u8]) -> Option<RecordId> {
    let s = std::str::from_utf8(value.get(..value.len().min(40))?).ok()?;
    let rest = s.strip_prefix('p')?;
    let mut it = rest.splitn(3, ':');
    let p = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    it.next()?;
    Some((p, n))
}

impl Produced {
    /// Whether `served` is exactly this record (key, value and headers).
    pub fn matches(&self, served: &Served) -> bool {
        let value_matches = if self.tombstone { served.value.is_none() } else { served.value.as_ref() == Some(&self.value) };
        served.key == self.key
            && value_matches
            && served.headers.len() == self.headers.len()
            && served.headers.iter().zip(&self.headers).all(|((k1, v1), (k2, v2))| k1 == k2 && v1.as_ref() == Some(v2))
    }
}
