//! Kafka error codes the group coordinator returns, as the Kafka protocol numbers them.
//!
//! These are response data, not Rust errors (DESIGN §7): every value here goes on the wire as the
//! `error_code` of a JoinGroup/SyncGroup/Heartbeat/LeaveGroup/OffsetCommit/DescribeGroups/
//! DeleteGroups response. The numbers are fixed by the Kafka protocol and must never change.

/// No error.
pub const NONE: i16 = 0;
/// The coordinator is not the coordinator for this group (answered to waiting requests when a
/// group is unloaded or reloaded, e.g. on coordinator failover).
pub const NOT_COORDINATOR: i16 = 16;
/// The generation in the request is not the group's current generation.
pub const ILLEGAL_GENERATION: i16 = 22;
/// The member's protocol type or protocols are incompatible with the group's.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// The group id is empty where Kafka requires a non-empty one.
pub const INVALID_GROUP_ID: i16 = 24;
/// The member id is not (or no longer) a member of the group.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// session_timeout_ms is outside [group.min.session.timeout.ms, group.max.session.timeout.ms].
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// The group is rebalancing; the member should rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// DeleteGroups on a group that still has members.
pub const NON_EMPTY_GROUP: i16 = 68;
/// DeleteGroups on a group that does not exist.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// KIP-394: the join had no member id; rejoin with the one in this response.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// group.max.size would be exceeded.
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
/// KIP-345: another member with the same group.instance.id has replaced this one.
pub const FENCED_INSTANCE_ID: i16 = 82;

/// Kafka's name for an error code this module uses (for logs and test messages).
pub fn name(code: i16) -> &'static str {
    match code {
        NONE => "NONE",
        NOT_COORDINATOR => "NOT_COORDINATOR",
        ILLEGAL_GENERATION => "ILLEGAL_GENERATION",
        INCONSISTENT_GROUP_PROTOCOL => "INCONSISTENT_GROUP_PROTOCOL",
        INVALID_GROUP_ID => "INVALID_GROUP_ID",
        UNKNOWN_MEMBER_ID => "UNKNOWN_MEMBER_ID",
        INVALID_SESSION_TIMEOUT => "INVALID_SESSION_TIMEOUT",
        REBALANCE_IN_PROGRESS => "REBALANCE_IN_PROGRESS",
        NON_EMPTY_GROUP => "NON_EMPTY_GROUP",
        GROUP_ID_NOT_FOUND => "GROUP_ID_NOT_FOUND",
        MEMBER_ID_REQUIRED => "MEMBER_ID_REQUIRED",
        GROUP_MAX_SIZE_REACHED => "GROUP_MAX_SIZE_REACHED",
        FENCED_INSTANCE_ID => "FENCED_INSTANCE_ID",
        _ => "UNKNOWN_ERROR_CODE",
    }
}
