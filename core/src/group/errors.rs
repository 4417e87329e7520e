//! The Kafka error codes the group coordinator returns (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, DescribeGroups, DeleteGroups): the one table in [`crate::errors`].

pub use crate::errors::*;
