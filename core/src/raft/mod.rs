//! The KRaft quorum (KIP-595, with KIP-996 pre-vote) that replicates `__cluster_metadata`
//! among the controllers, as a sans-IO state machine.
//!
//! [`RaftNode`] is one voter or observer. An async driver in the server owns the disk and the
//! connections: it feeds in messages ([`RaftNode::step`]), time ([`RaftNode::tick`]), proposals
//! ([`RaftNode::propose`]) and durability acknowledgements ([`RaftNode::persisted`],
//! [`RaftNode::quorum_state_persisted`]), and carries out each [`Ready`]: quorum-state write
//! first, then log changes, then messages. Messages are Kafka's (Vote, BeginQuorumEpoch,
//! EndQuorumEpoch, Fetch, FetchSnapshot, DescribeQuorum) as plain structs in [`messages`];
//! error codes are Kafka's, in [`errors`].
//!
//! Guarantees (Raft's, as Kafka implements them): at most one leader per epoch; an entry is
//! committed (below the high watermark) only once a majority of voters has it fsynced, and only
//! through an entry of the leader's own epoch; committed entries are never truncated; the leader's
//! high watermark never moves back; `(epoch, voted_id)` is durable before a vote leaves the node.
//! Time is the caller's `now_ms`, randomness (election jitter) a seeded RNG owned by the node, so
//! the same inputs give the same outputs. See [`node`] for the durability contract and the
//! deliberate differences from Kafka.

pub mod errors;
pub mod log;
pub mod messages;
pub mod node;

#[cfg(test)]
mod tests;

pub use log::{Entry, EntryKind, FetchPosition, LogError, LogOp, OffsetAndEpoch, RaftLog};
pub use messages::*;
pub use node::{
    PersistedState, ProposeError, QuorumStateFile, RaftBugs, RaftConfig, RaftNode, Ready, RoleKind, SnapshotChunk,
    SnapshotRead,
};
