//! The Kafka error codes the KRaft quorum puts in its responses: the one table in
//! [`crate::errors`] (among them FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH,
//! INCONSISTENT_VOTER_SET, INCONSISTENT_CLUSTER_ID, SNAPSHOT_NOT_FOUND, POSITION_OUT_OF_RANGE).

pub use crate::errors::*;
