//! The quorum's requests and responses as plain data, field for field Kafka's wire messages
//! (names as in Kafka's JSON schemas, snake-cased), so the server converts them to and from
//! `kafka-protocol`'s `VoteRequest`, `BeginQuorumEpochRequest`, `EndQuorumEpochRequest`,
//! `FetchRequest`, `FetchSnapshotRequest` and `DescribeQuorumResponse` at its edge.
//!
//! Decisions: KRaft has one partition (`__cluster_metadata`-0), so each message holds the fields
//! of its single `Topics[0].Partitions[0]` element flattened next to the top-level ones; where
//! both levels have an `ErrorCode` the partition's is `partition_error_code`. Directory ids
//! (KIP-853) and endpoints are left out until dynamic voters exist; they are the server's to fill.
//! Fetch carries entries as [`Entry`] values rather than encoded record batches: the server
//! encodes them. Every request travels in an [`Envelope`] with Kafka's request-header
//! `correlation_id`, which its response echoes; the node uses it to ignore stale responses.

use bytes::Bytes;

use super::log::{Entry, OffsetAndEpoch};

/// The topic every KRaft message names.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Its only partition.
pub const METADATA_PARTITION: i32 = 0;

/// A message to or from another node. `correlation_id` is the request header's; a response
/// carries the one of the request it answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Sender (on input) or destination (on output) node id.
    pub peer: i32,
    pub correlation_id: i32,
    pub message: Message,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    VoteRequest(VoteRequest),
    VoteResponse(VoteResponse),
    BeginQuorumEpochRequest(BeginQuorumEpochRequest),
    BeginQuorumEpochResponse(BeginQuorumEpochResponse),
    EndQuorumEpochRequest(EndQuorumEpochRequest),
    EndQuorumEpochResponse(EndQuorumEpochResponse),
    FetchRequest(FetchRequest),
    FetchResponse(FetchResponse),
    FetchSnapshotRequest(FetchSnapshotRequest),
    FetchSnapshotResponse(FetchSnapshotResponse),
}

impl Message {
    /// Kafka's API name (for logs and test messages).
    pub fn name(&self) -> &'static str {
        match self {
            Message::VoteRequest(_) => "VoteRequest",
            Message::VoteResponse(_) => "VoteResponse",
            Message::BeginQuorumEpochRequest(_) => "BeginQuorumEpochRequest",
            Message::BeginQuorumEpochResponse(_) => "BeginQuorumEpochResponse",
            Message::EndQuorumEpochRequest(_) => "EndQuorumEpochRequest",
            Message::EndQuorumEpochResponse(_) => "EndQuorumEpochResponse",
            Message::FetchRequest(_) => "FetchRequest",
            Message::FetchResponse(_) => "FetchResponse",
            Message::FetchSnapshotRequest(_) => "FetchSnapshotRequest",
            Message::FetchSnapshotResponse(_) => "FetchSnapshotResponse",
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Message::VoteRequest(_)
                | Message::BeginQuorumEpochRequest(_)
                | Message::EndQuorumEpochRequest(_)
                | Message::FetchRequest(_)
                | Message::FetchSnapshotRequest(_)
        )
    }
}

/// Vote (API key 52), v2 with KIP-996's `pre_vote`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRequest {
    pub cluster_id: Option<String>,
    /// The voter the request is addressed to.
    pub voter_id: i32,
    pub partition_index: i32,
    /// The epoch the sender would be candidate in (its epoch + 1 for a pre-vote).
    pub replica_epoch: i32,
    /// The sender.
    pub replica_id: i32,
    /// Epoch of the sender's last entry.
    pub last_offset_epoch: i32,
    /// The sender's log end offset.
    pub last_offset: i64,
    pub pre_vote: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteResponse {
    pub error_code: i16,
    pub partition_index: i32,
    pub partition_error_code: i16,
    /// The responder's view of the leader (-1 if none) and its epoch.
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub vote_granted: bool,
}

/// BeginQuorumEpoch (API key 53): a new leader announces itself to the voters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeginQuorumEpochRequest {
    pub cluster_id: Option<String>,
    pub voter_id: i32,
    pub partition_index: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeginQuorumEpochResponse {
    pub error_code: i16,
    pub partition_index: i32,
    pub partition_error_code: i16,
    pub leader_id: i32,
    pub leader_epoch: i32,
}

/// EndQuorumEpoch (API key 54): a leader resigns, naming the voters it prefers as successors
/// (most caught up first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndQuorumEpochRequest {
    pub cluster_id: Option<String>,
    pub partition_index: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// v0's `PreferredSuccessors` (v1's `PreferredCandidates[].CandidateId`).
    pub preferred_successors: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndQuorumEpochResponse {
    pub error_code: i16,
    pub partition_index: i32,
    pub partition_error_code: i16,
    pub leader_id: i32,
    pub leader_epoch: i32,
}

/// Fetch (API key 1) as KRaft uses it: from a follower or observer to the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    pub cluster_id: Option<String>,
    /// `ReplicaState.ReplicaId`: the fetching node.
    pub replica_id: i32,
    pub max_wait_ms: i32,
    pub partition: i32,
    /// The epoch the fetcher believes the leader has.
    pub current_leader_epoch: i32,
    /// The fetcher's log end offset (for a voter: its persisted end offset).
    pub fetch_offset: i64,
    /// Epoch of the entry before `fetch_offset` in the fetcher's log.
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
    /// The high watermark the fetcher knows (KIP-1166; `None` where the wire version has no
    /// field for it): a leader answers at once rather than holding the Fetch when it knows a
    /// higher one, so a commit reaches every follower without waiting out the long poll.
    pub high_watermark: Option<i64>,
}

/// `FetchResponse.PartitionData.CurrentLeader`, `DivergingEpoch` and `SnapshotId` use -1 for
/// "absent", as Kafka does; here they are options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    pub error_code: i16,
    pub partition_index: i32,
    pub partition_error_code: i16,
    /// -1 when the leader does not know it yet.
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// `DivergingEpoch{Epoch, EndOffset}` (as an end offset and epoch).
    pub diverging_epoch: Option<OffsetAndEpoch>,
    /// `CurrentLeader{LeaderId, LeaderEpoch}`.
    pub current_leader: LeaderIdAndEpoch,
    /// `SnapshotId{EndOffset, Epoch}`.
    pub snapshot_id: Option<OffsetAndEpoch>,
    pub records: Vec<Entry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderIdAndEpoch {
    /// -1 when unknown.
    pub leader_id: i32,
    pub leader_epoch: i32,
}

/// FetchSnapshot (API key 59).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchSnapshotRequest {
    pub cluster_id: Option<String>,
    pub replica_id: i32,
    pub max_bytes: i32,
    pub partition: i32,
    pub current_leader_epoch: i32,
    pub snapshot_id: OffsetAndEpoch,
    pub position: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchSnapshotResponse {
    pub error_code: i16,
    /// Kafka's `Index`.
    pub partition_index: i32,
    pub partition_error_code: i16,
    pub snapshot_id: OffsetAndEpoch,
    pub current_leader: LeaderIdAndEpoch,
    /// Total size of the snapshot in bytes.
    pub size: i64,
    pub position: i64,
    pub unaligned_records: Bytes,
}

/// DescribeQuorum (API key 55) answer for the metadata partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribeQuorumResponse {
    pub error_code: i16,
    pub partition_index: i32,
    pub partition_error_code: i16,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    /// Ordered by replica id.
    pub current_voters: Vec<ReplicaState>,
    /// Ordered by replica id.
    pub observers: Vec<ReplicaState>,
}

/// `DescribeQuorumResponse.ReplicaState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    pub replica_id: i32,
    /// -1 if the leader has not heard from it in this epoch.
    pub log_end_offset: i64,
    /// -1 if never.
    pub last_fetch_timestamp: i64,
    /// -1 if never.
    pub last_caught_up_timestamp: i64,
}
