//! A minimal classic-protocol group member for `gregor consume --group`: joins with the "range"
//! assignor (and assigns as leader), heartbeats, commits and leaves, over the wire like any
//! Kafka consumer.

use std::collections::BTreeMap;
use std::time::Duration;

use gregor_core::consumer_protocol::{self, decode_assignment, encode_assignment, encode_subscription, range_assign, subscription_topics};
use gregor_net::client::Client;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::error_name;

const SESSION_TIMEOUT_MS: i32 = 30_000;
const REBALANCE_TIMEOUT_MS: i32 = 60_000;
const MEMBER_ID_REQUIRED: i16 = 79;
const REBALANCE_IN_PROGRESS: i16 = 27;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// This process's membership in a group.
pub struct GroupMember {
    coord: Client,
    group: String,
    topic: String,
    partitions: Vec<i32>,
    member_id: String,
    generation: i32,
}

impl GroupMember {
    /// Finds the coordinator, joins and syncs. Returns the member and its partitions.
    pub async fn join(bootstrap: &str, group: &str, topic: &str, partitions: Vec<i32>) -> anyhow::Result<(GroupMember, Vec<i32>)> {
        let mut coord = super::coordinator(bootstrap, group).await?;
        coord.set_timeout(Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 + 5000));
        let mut m = GroupMember { coord, group: group.to_string(), topic: topic.to_string(), partitions, member_id: String::new(), generation: -1 };
        let assigned = m.rejoin().await?;
        Ok((m, assigned))
    }

    /// (Re)joins the group and returns the new assignment.
    pub async fn rejoin(&mut self) -> anyhow::Result<Vec<i32>> {
        loop {
            let mut req = JoinGroupRequest::default();
            req.group_id = GroupId(sb(&self.group));
            req.session_timeout_ms = SESSION_TIMEOUT_MS;
            req.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
            req.member_id = sb(&self.member_id);
            req.protocol_type = sb(consumer_protocol::PROTOCOL_TYPE);
            let mut p = JoinGroupRequestProtocol::default();
            p.name = sb("range");
            p.metadata = encode_subscription(std::slice::from_ref(&self.topic));
            req.protocols = vec![p];
            let resp = self.coord.send(&req).await?;
            if resp.error_code == MEMBER_ID_REQUIRED {
                self.member_id = resp.member_id.to_string();
                continue;
            }
            if resp.error_code != 0 {
                anyhow::bail!("JoinGroup: {} ({})", error_name(resp.error_code), resp.error_code);
            }
            self.member_id = resp.member_id.to_string();
            self.generation = resp.generation_id;
            let mut assignments = Vec::new();
            if resp.leader == resp.member_id {
                // Members subscribed to our topic share its partitions; others get nothing of it.
                let members: Vec<String> =
                    resp.members.iter().filter(|m| subscription_topics(&m.metadata).is_some_and(|t| t.contains(&self.topic))).map(|m| m.member_id.to_string()).collect();
                let plan = range_assign(&self.partitions, &members);
                for m in &resp.members {
                    let mut a = SyncGroupRequestAssignment::default();
                    a.member_id = m.member_id.clone();
                    let mine = plan.get(m.member_id.as_str()).cloned().unwrap_or_default();
                    a.assignment = encode_assignment(&BTreeMap::from([(self.topic.clone(), mine)]));
                    assignments.push(a);
                }
            }
            let mut sync = SyncGroupRequest::default();
            sync.group_id = GroupId(sb(&self.group));
            sync.generation_id = self.generation;
            sync.member_id = sb(&self.member_id);
            sync.protocol_type = Some(sb(consumer_protocol::PROTOCOL_TYPE));
            sync.protocol_name = Some(sb("range"));
            sync.assignments = assignments;
            let resp = self.coord.send(&sync).await?;
            if resp.error_code == REBALANCE_IN_PROGRESS {
                continue;
            }
            if resp.error_code != 0 {
                anyhow::bail!("SyncGroup: {} ({})", error_name(resp.error_code), resp.error_code);
            }
            return Ok(decode_assignment(&resp.assignment).and_then(|mut a| a.remove(&self.topic)).unwrap_or_default());
        }
    }

    /// Heartbeats; `Ok(true)` means the group is rebalancing and the member must rejoin.
    pub async fn heartbeat(&mut self) -> anyhow::Result<bool> {
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(sb(&self.group));
        req.generation_id = self.generation;
        req.member_id = sb(&self.member_id);
        let resp = self.coord.send(&req).await?;
        match resp.error_code {
            0 => Ok(false),
            REBALANCE_IN_PROGRESS => Ok(true),
            // Expired or fenced: rejoin from scratch.
            22 | 25 => {
                self.member_id.clear();
                Ok(true)
            }
            c => anyhow::bail!("Heartbeat: {} ({c})", error_name(c)),
        }
    }

    /// Committed offsets of the given partitions (-1 when none).
    pub async fn committed(&mut self, partitions: &[i32]) -> anyhow::Result<BTreeMap<i32, i64>> {
        let mut req = OffsetFetchRequest::default();
        if self.coord.version_for::<OffsetFetchRequest>().unwrap_or(0) >= 8 {
            let mut t = OffsetFetchRequestTopics::default();
            t.name = TopicName(sb(&self.topic));
            t.partition_indexes = partitions.to_vec();
            let mut g = OffsetFetchRequestGroup::default();
            g.group_id = GroupId(sb(&self.group));
            g.topics = Some(vec![t]);
            req.groups = vec![g];
        } else {
            let mut t = OffsetFetchRequestTopic::default();
            t.name = TopicName(sb(&self.topic));
            t.partition_indexes = partitions.to_vec();
            req.group_id = GroupId(sb(&self.group));
            req.topics = Some(vec![t]);
        }
        let resp = self.coord.send(&req).await?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            for p in t.partitions {
                out.insert(p.partition_index, p.committed_offset);
            }
        }
        for g in resp.groups {
            for t in g.topics {
                for p in t.partitions {
                    out.insert(p.partition_index, p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits positions. A rebalance in progress is not an error: the next owner starts from
    /// the last successful commit.
    pub async fn commit(&mut self, positions: &BTreeMap<i32, i64>) -> anyhow::Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(sb(&self.topic));
        t.partitions = positions
            .iter()
            .map(|(&p, &o)| {
                let mut cp = OffsetCommitRequestPartition::default();
                cp.partition_index = p;
                cp.committed_offset = o;
                cp.committed_leader_epoch = -1;
                cp.committed_metadata = Some(sb(""));
                cp
            })
            .collect();
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(sb(&self.group));
        req.generation_id_or_member_epoch = self.generation;
        req.member_id = sb(&self.member_id);
        req.topics = vec![t];
        let resp = self.coord.send(&req).await?;
        for t in resp.topics {
            for p in t.partitions {
                match p.error_code {
                    0 | REBALANCE_IN_PROGRESS | 22 | 25 => {}
                    c => anyhow::bail!("OffsetCommit {}-{}: {} ({c})", t.name.0, p.partition_index, error_name(c)),
                }
            }
        }
        Ok(())
    }

    /// Leaves the group so its partitions move to the others at once.
    pub async fn leave(&mut self) -> anyhow::Result<()> {
        let mut req = LeaveGroupRequest::default();
        req.group_id = GroupId(sb(&self.group));
        req.member_id = sb(&self.member_id);
        let mut m = MemberIdentity::default();
        m.member_id = sb(&self.member_id);
        req.members = vec![m];
        if self.coord.version_for::<LeaveGroupRequest>().unwrap_or(0) >= 3 {
            req.member_id = sb("");
        } else {
            req.members.clear();
        }
        self.coord.send(&req).await?;
        Ok(())
    }
}
