//! DescribeQuorum (key 55, v0–2): the KRaft metadata quorum (`__cluster_metadata`-0) as this
//! node's raft node sees it, for `gregor cluster quorum` and `kafka-metadata-quorum.sh`.
//!
//! Answers, as Kafka's raft client does: a request that does not name exactly the one partition
//! `__cluster_metadata`-0 gets UNKNOWN_TOPIC_OR_PARTITION on each partition it named; the leader
//! answers with its view of every voter and observer (log end offset, last fetch, last caught-up
//! time), and reports the current time for itself in both timestamps.
//!
//! Forwarding: Kafka brokers forward DescribeQuorum to the active controller, so a client
//! always gets the leader's view (the Java admin client relies on it: it retries a
//! NOT_LEADER_OR_FOLLOWER answer until it times out). A node that does not lead the quorum
//! forwards the request to the quorum leader, once: at its broker listener (from the leader's
//! broker registration in the image), or, for a controller-only leader, at its controller
//! listener (from `controller.quorum.voters`), which serves DescribeQuorum too. A forwarded
//! request (known by its client id) is never forwarded again, and the forward is bounded by
//! [`FORWARD_TIMEOUT_MS`]. When the leader cannot be reached or does not answer as leader, the
//! node answers its local view:
//! NOT_LEADER_OR_FOLLOWER as the partition error, with the leader id and epoch it knows (Kafka
//! leaves them 0) and, from v2, that leader's endpoints. A node whose quorum has stopped answers
//! BROKER_NOT_AVAILABLE, as Kafka's raft client does while it shuts down.
//!
//! Times: the raft node keeps monotonic milliseconds; the wire carries the leader's wall clock,
//! so each timestamp t is sent as `wall_now - (mono_now - t)`; -1 (never) stays -1.
//!
//! v2 (KIP-853) adds the voters' endpoints and replica directory ids. The quorum is static
//! (`controller.quorum.voters`), which has no directory ids: they are the zero UUID, as Kafka
//! reports for voters configured that way. Endpoints: a configured voter has the one address of
//! `controller.quorum.voters` under the first `controller.listener.names` (as Kafka names static
//! voters' endpoints); the embedded single-node quorum has no controller listener and is reached
//! on this node's broker listeners, so its endpoints are the ones its broker registration lists.

use std::sync::Arc;
use std::time::Duration;

use gregor_core::raft::errors::BROKER_NOT_AVAILABLE;
use gregor_core::raft::{ReplicaState as RaftReplicaState, METADATA_PARTITION, METADATA_TOPIC};
use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};

use super::sb;
use crate::broker::Broker;
use crate::config::QuorumMode;
use crate::errors;

/// The client id a forwarding node connects with; a request from it is answered locally.
pub const FORWARDED_CLIENT_ID: &str = "gregor-describe-quorum-forward";
/// Bound on one forward (connect, negotiate, ask, answer).
pub const FORWARD_TIMEOUT_MS: u64 = 5_000;

pub async fn handle(broker: &Arc<Broker>, req: DescribeQuorumRequest, version: i16, client_id: &str) -> DescribeQuorumResponse {
    let mut resp = DescribeQuorumResponse::default();
    let names_metadata_partition = req.topics.len() == 1
        && req.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && req.topics[0].partitions.len() == 1
        && req.topics[0].partitions[0].partition_index == METADATA_PARTITION;
    if !names_metadata_partition {
        resp.topics = req
            .topics
            .iter()
            .map(|t| {
                let mut td = TopicData::default();
                td.topic_name = t.topic_name.clone();
                td.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut pd = PartitionData::default();
                        pd.partition_index = p.partition_index;
                        pd.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                        pd.error_message = message(version, "This node hosts only the metadata partition __cluster_metadata-0.");
                        pd
                    })
                    .collect();
                td
            })
            .collect();
        return resp;
    }

    let view = broker.controller.quorum.describe().await;
    if let Some(v) = &view {
        let elsewhere = v.partition_error_code == errors::NOT_LEADER_OR_FOLLOWER && v.leader_id >= 0 && v.leader_id != broker.config.node_id;
        if elsewhere && client_id != FORWARDED_CLIENT_ID {
            if let Some(resp) = forward(broker, v.leader_id, &req, version).await {
                return resp;
            }
        }
    }
    let mut pd = PartitionData::default();
    pd.partition_index = METADATA_PARTITION;
    match view {
        None => {
            pd.error_code = BROKER_NOT_AVAILABLE;
            pd.error_message = message(version, "The metadata quorum of this node has stopped.");
            pd.leader_id = BrokerId(-1);
            pd.leader_epoch = -1;
            pd.high_watermark = -1;
        }
        Some(view) => {
            let wall_now = broker.clock.wall_ms();
            let mono_now = broker.clock.monotonic_ms() as i64;
            let is_leader = view.partition_error_code == errors::NONE;
            let state = |r: &RaftReplicaState| {
                let mut s = ReplicaState::default();
                s.replica_id = BrokerId(r.replica_id);
                s.log_end_offset = r.log_end_offset;
                if is_leader && r.replica_id == view.leader_id {
                    s.last_fetch_timestamp = wall_now;
                    s.last_caught_up_timestamp = wall_now;
                } else {
                    s.last_fetch_timestamp = to_wall(r.last_fetch_timestamp, wall_now, mono_now);
                    s.last_caught_up_timestamp = to_wall(r.last_caught_up_timestamp, wall_now, mono_now);
                }
                s
            };
            resp.error_code = view.error_code;
            pd.error_code = view.partition_error_code;
            if !is_leader {
                pd.error_message = message(version, "This node does not lead the metadata quorum; the leader id and epoch are what it knows.");
            }
            pd.leader_id = BrokerId(view.leader_id);
            pd.leader_epoch = view.leader_epoch;
            pd.high_watermark = view.high_watermark;
            pd.current_voters = view.current_voters.iter().map(state).collect();
            pd.observers = view.observers.iter().map(state).collect();
            if version >= 2 {
                let mut ids: Vec<i32> = view.current_voters.iter().map(|v| v.replica_id).collect();
                if ids.is_empty() && view.leader_id >= 0 {
                    ids.push(view.leader_id);
                }
                resp.nodes = ids.into_iter().map(|id| voter_node(broker, id)).collect();
            }
        }
    }
    let mut td = TopicData::default();
    td.topic_name = TopicName(sb(METADATA_TOPIC));
    td.partitions = vec![pd];
    resp.topics = vec![td];
    resp
}

/// The leader's answer to `req`, asked at its broker listener (or its controller listener when
/// it has none); `None` if it cannot be reached in time or does not answer as the leader.
async fn forward(broker: &Broker, leader: i32, req: &DescribeQuorumRequest, version: i16) -> Option<DescribeQuorumResponse> {
    let endpoint = super::node_endpoints(broker, &std::collections::BTreeSet::from([leader])).into_iter().next().map(|(_, h, p, _)| (h, p));
    let voter = || match broker.config.quorum() {
        QuorumMode::Voters(v) => v.iter().find(|v| v.id == leader).map(|v| (v.host.clone(), i32::from(v.port))),
        QuorumMode::Embedded => None,
    };
    let (host, port) = endpoint.or_else(voter)?;
    let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let ask = async {
        let mut client = gregor_net::client::Client::connect(&addr, FORWARDED_CLIENT_ID).await.ok()?;
        client.set_timeout(Duration::from_millis(FORWARD_TIMEOUT_MS));
        client.send_at(req, version).await.ok()
    };
    let resp: DescribeQuorumResponse = match tokio::time::timeout(Duration::from_millis(FORWARD_TIMEOUT_MS), ask).await {
        Ok(Some(resp)) => resp,
        _ => {
            tracing::debug!(leader, %addr, "DescribeQuorum not forwarded: the quorum leader did not answer");
            return None;
        }
    };
    let answered = resp.error_code == errors::NONE
        && resp.topics.iter().flat_map(|t| &t.partitions).next().is_some_and(|p| p.error_code == errors::NONE);
    answered.then_some(resp)
}

/// A raft-node time (monotonic ms) as the wall-clock ms it happened at; -1 stays -1.
fn to_wall(t: i64, wall_now: i64, mono_now: i64) -> i64 {
    if t < 0 {
        -1
    } else {
        wall_now - (mono_now - t).max(0)
    }
}

/// Error messages exist from v2.
fn message(version: i16, text: &str) -> Option<kafka_protocol::protocol::StrBytes> {
    (version >= 2).then(|| sb(text))
}

/// The `Nodes` entry of voter `id` (see the module docs for where its endpoints come from).
fn voter_node(broker: &Broker, id: i32) -> Node {
    let mut node = Node::default();
    node.node_id = BrokerId(id);
    node.listeners = match broker.config.quorum() {
        QuorumMode::Voters(voters) => voters
            .iter()
            .filter(|v| v.id == id)
            .map(|v| {
                let mut l = Listener::default();
                l.name = sb(broker.config.controller_listener_names.first().cloned().unwrap_or_else(|| "CONTROLLER".to_string()));
                l.host = sb(v.host.clone());
                l.port = v.port;
                l
            })
            .collect(),
        QuorumMode::Embedded => broker
            .image()
            .brokers
            .get(&id)
            .map(|b| {
                b.endpoints
                    .iter()
                    .map(|e| {
                        let mut l = Listener::default();
                        l.name = sb(e.name.clone());
                        l.host = sb(e.host.clone());
                        l.port = e.port;
                        l
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    node
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_times_become_wall_clock_times() {
        // 250 ms before "now" on the monotonic clock is 250 ms before now on the wall clock.
        assert_eq!(super::to_wall(750, 1_700_000_001_000, 1_000), 1_700_000_000_750);
        assert_eq!(super::to_wall(1_000, 1_700_000_001_000, 1_000), 1_700_000_001_000);
        assert_eq!(super::to_wall(-1, 1_700_000_001_000, 1_000), -1);
        // A time the node recorded after the clock was read is not in the future.
        assert_eq!(super::to_wall(1_200, 1_700_000_001_000, 1_000), 1_700_000_001_000);
    }
}
