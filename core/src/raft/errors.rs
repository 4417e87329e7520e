//! Kafka error codes the KRaft quorum puts in its responses, as the Kafka protocol numbers them
//! (`org.apache.kafka.common.protocol.Errors`).
//!
//! These are response data, not Rust errors (DESIGN §7): each value goes on the wire as the
//! `error_code` of a Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch, FetchSnapshot or
//! DescribeQuorum response. The numbers are fixed by the Kafka protocol and must never change.
//! gregor-core has no shared error table yet (the broker's lives in the server crate), so the
//! quorum keeps the few it needs here.

/// The server experienced an unexpected error.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
/// No error.
pub const NONE: i16 = 0;
/// The fetch offset is outside the leader's log (used by the driver when it cannot read).
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// The receiver is not the leader of the quorum (Fetch/FetchSnapshot/DescribeQuorum).
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// The receiver cannot serve the request now (e.g. it is shutting down).
pub const BROKER_NOT_AVAILABLE: i16 = 8;
/// The request is malformed (negative offsets, an epoch larger than the candidate's, ...).
pub const INVALID_REQUEST: i16 = 42;
/// The epoch in the request is older than the receiver's.
pub const FENCED_LEADER_EPOCH: i16 = 74;
/// The epoch in the request is newer than the receiver's.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
/// The sender or the receiver is not a voter of the receiver's voter set.
pub const INCONSISTENT_VOTER_SET: i16 = 94;
/// FetchSnapshot named a snapshot the leader does not have.
pub const SNAPSHOT_NOT_FOUND: i16 = 98;
/// FetchSnapshot asked for a position outside the snapshot.
pub const POSITION_OUT_OF_RANGE: i16 = 99;
/// The request's cluster id is not the receiver's.
pub const INCONSISTENT_CLUSTER_ID: i16 = 104;

/// Kafka's name for an error code this module uses (for logs and test messages).
pub fn name(code: i16) -> &'static str {
    match code {
        UNKNOWN_SERVER_ERROR => "UNKNOWN_SERVER_ERROR",
        NONE => "NONE",
        OFFSET_OUT_OF_RANGE => "OFFSET_OUT_OF_RANGE",
        NOT_LEADER_OR_FOLLOWER => "NOT_LEADER_OR_FOLLOWER",
        BROKER_NOT_AVAILABLE => "BROKER_NOT_AVAILABLE",
        INVALID_REQUEST => "INVALID_REQUEST",
        FENCED_LEADER_EPOCH => "FENCED_LEADER_EPOCH",
        UNKNOWN_LEADER_EPOCH => "UNKNOWN_LEADER_EPOCH",
        INCONSISTENT_VOTER_SET => "INCONSISTENT_VOTER_SET",
        SNAPSHOT_NOT_FOUND => "SNAPSHOT_NOT_FOUND",
        POSITION_OUT_OF_RANGE => "POSITION_OUT_OF_RANGE",
        INCONSISTENT_CLUSTER_ID => "INCONSISTENT_CLUSTER_ID",
        _ => "UNKNOWN_ERROR_CODE",
    }
}
