//! The classic Kafka consumer-group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit validation, ListGroups, DescribeGroups, DeleteGroups) as a sans-IO state machine.
//!
//! The server feeds requests in with the current time and a token per waiting request, and
//! carries out the returned [`Effect`]s: answer a JoinGroup or SyncGroup (now or later), or
//! persist group metadata to `__consumer_offsets`. It calls [`Coordinator::tick`] at
//! [`Coordinator::next_deadline`]. Offsets themselves are stored by the server; the coordinator
//! only decides whether a commit is allowed.
//!
//! Guarantees: Apache Kafka's classic GroupCoordinator semantics (KIP-394 member id required,
//! KIP-345 static membership, KIP-814 skip assignment, initial rebalance delay, pending-sync
//! expiry); deterministic output; every waiting request answered exactly once; no panics on any
//! input. Where this differs from Kafka, the item's docs say so.

mod coordinator;
pub mod errors;
mod machine;
mod snapshot;
mod types;

#[cfg(test)]
mod tests;

pub use coordinator::{Coordinator, PENDING_MEMBERS_MAX};
pub use snapshot::{GroupSnapshot, MemberSnapshot, SnapshotDecodeError, SNAPSHOT_VERSION};
pub use types::{
    Effect, GroupConfig, GroupDescription, GroupListing, GroupState, HeartbeatRequest, JoinMember, JoinProtocol,
    JoinRequest, JoinResponse, LeaveMember, MemberDescription, SyncAssignment, SyncRequest, SyncResponse,
};
