//! Requests, responses and effects of the group coordinator: plain data, independent of the wire
//! codec, so the server translates `kafka-protocol` messages to and from these at its edge.
//!
//! Guarantees: every type here is owned data with no hidden state; lists that reach the wire are
//! `Vec`s built by the coordinator in a deterministic order (join order for members, group id
//! order for listings).

use bytes::Bytes;

use super::snapshot::GroupSnapshot;

/// Coordinator configuration (Kafka broker configs of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// group.min.session.timeout.ms
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms (0 allowed: the first rebalance completes at once).
    pub initial_rebalance_delay_ms: i32,
    /// group.max.size
    pub max_size: usize,
}

impl Default for GroupConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
        }
    }
}

/// The classic group states, named as Kafka names them in DescribeGroups/ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's state name (DescribeGroups `group_state`, ListGroups `group_state`).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a Kafka state name, ignoring ASCII case (ListGroups v4 filters are matched that way).
    pub fn parse(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

/// One protocol a joining member supports (for consumers: an assignor name and its subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinProtocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The request's API version: KIP-394 (MEMBER_ID_REQUIRED) applies from v4, and the
    /// member list of a static leader's skip-assignment answer from v9.
    pub version: i16,
    pub group_id: String,
    pub session_timeout_ms: i32,
    /// v0 has no rebalance timeout: the server passes the session timeout, as Kafka does.
    pub rebalance_timeout_ms: i32,
    /// Empty for a member that does not know its id yet.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<JoinProtocol>,
    pub client_id: String,
    pub client_host: String,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The member's metadata for the group's chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error_code: i16,
    /// -1 on error.
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Empty on error.
    pub leader: String,
    /// KIP-814 (v9+): the leader must not compute a new assignment (static leader rejoined a
    /// Stable group without a rebalance); it still gets the member list to check metadata.
    pub skip_assignment: bool,
    /// The member's id (the newly assigned one with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Non-empty only for the leader.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    /// A response carrying only an error (Kafka's `joinError`).
    pub fn error(member_id: &str, error_code: i16) -> JoinResponse {
        JoinResponse {
            error_code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// One member's assignment in the leader's SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAssignment {
    pub member_id: String,
    pub assignment: Bytes,
}

/// A SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_name: Option<String>,
    /// Only the leader's are used; followers send an empty list.
    pub assignments: Vec<SyncAssignment>,
}

/// A SyncGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error_code: i16) -> SyncResponse {
        SyncResponse { error_code, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// A Heartbeat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member of a LeaveGroup request (v0-v2 carry exactly one, with no instance id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMember {
    /// Empty with an instance id set: an administrative removal by group.instance.id.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// What the coordinator asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer the JoinGroup request identified by `token`.
    Join { token: u64, response: JoinResponse },
    /// Answer the SyncGroup request identified by `token`.
    Sync { token: u64, response: SyncResponse },
    /// Write the group's metadata (the record value is `snapshot.encode()`, keyed by the group id)
    /// to `__consumer_offsets`, so a new coordinator can `load` it after failover.
    Persist { group_id: String, snapshot: GroupSnapshot },
}

/// One ListGroups entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// One member in a DescribeGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the chosen protocol; empty unless the group is Stable (as Kafka).
    pub metadata: Bytes,
    /// Empty unless the group is Stable (as Kafka).
    pub assignment: Bytes,
}

/// A DescribeGroups answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub error_code: i16,
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// Empty unless Stable (as Kafka).
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}
