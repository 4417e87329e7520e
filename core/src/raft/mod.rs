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
//!
//! Kafka behaviours modelled: the Unattached, Prospective (KIP-996), Candidate, Leader, Follower
//! and Resigned states; static voters and observers (observers fetch, never vote, and find the
//! leader by asking voters); randomized election timeout; pre-vote refused by voters that hear
//! from a live leader, not persisted and not bumping the epoch; one vote per epoch, persisted
//! before it is sent, granted only to a log at least as up to date (last epoch, then end
//! offset); a LeaderChange entry at the start of each epoch; BeginQuorumEpoch (resent as a
//! heartbeat); EndQuorumEpoch with preferred successors on resignation; check quorum (1.5 × fetch
//! timeout); fetch timeout; pull replication with long-polled Fetch, diverging-epoch answers and
//! follower truncation (never below the high watermark); the high watermark from the voters'
//! fsynced offsets, only through an entry of the current epoch, never moving back; "fetch below
//! the log start → snapshot id", FetchSnapshot validation (SNAPSHOT_NOT_FOUND,
//! POSITION_OUT_OF_RANGE) and snapshot installation on the follower; DescribeQuorum.
//!
//! Not modelled yet: KIP-853 dynamic voters (AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter,
//! directory ids, endpoints in responses); fetch sessions and byte-size limits (responses are
//! bounded by an entry count); the snapshot contents and the choice of when to snapshot (both
//! the driver's); Kafka's exponential election backoff (each round draws a new random timeout).

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
