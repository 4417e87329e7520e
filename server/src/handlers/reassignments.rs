//! AlterPartitionReassignments (key 45) and ListPartitionReassignments (key 46), KIP-455: move
//! partition replicas between brokers. Changes are made by the active controller (forwarded
//! there from any broker); the list is read from this broker's metadata image. See
//! [`crate::controller::reassignments`] for the rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::sb;
use crate::broker::Broker;
use crate::controller::reassignments;

pub async fn alter(broker: &Arc<Broker>, req: AlterPartitionReassignmentsRequest, version: i16) -> AlterPartitionReassignmentsResponse {
    let mut resp = AlterPartitionReassignmentsResponse::default();
    // v0 has no flag: the replication factor may change, as before KIP-860.
    let allow_rf_change = version == 0 || req.allow_replication_factor_change;
    resp.allow_replication_factor_change = allow_rf_change;
    let changes: Vec<reassignments::Reassignment> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index, p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()))))
        .collect();
    match broker.alter_reassignments(changes.clone(), allow_rf_change).await {
        Ok(results) => {
            let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
            for ((topic, partition, _), result) in changes.into_iter().zip(results) {
                let mut r = ReassignablePartitionResponse::default();
                r.partition_index = partition;
                if let Err(e) = result {
                    r.error_code = e.code;
                    r.error_message = Some(sb(e.message));
                }
                by_topic.entry(topic).or_default().push(r);
            }
            resp.responses = by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    let mut t = ReassignableTopicResponse::default();
                    t.name = TopicName(sb(name));
                    t.partitions = partitions;
                    t
                })
                .collect();
        }
        Err(e) => {
            resp.error_code = e.code;
            resp.error_message = Some(sb(e.message));
        }
    }
    resp
}

pub fn list(broker: &Broker, req: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let selection: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let ongoing = reassignments::list(&broker.image(), selection.as_deref());
    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut resp = ListPartitionReassignmentsResponse::default();
    for (topic, partition, replicas, adding, removing) in ongoing {
        let mut p = OngoingPartitionReassignment::default();
        p.partition_index = partition;
        p.replicas = ids(replicas);
        p.adding_replicas = ids(adding);
        p.removing_replicas = ids(removing);
        match resp.topics.last_mut() {
            Some(t) if t.name.0.as_str() == topic => t.partitions.push(p),
            _ => {
                let mut t = OngoingTopicReassignment::default();
                t.name = TopicName(sb(topic));
                t.partitions.push(p);
                resp.topics.push(t);
            }
        }
    }
    resp
}
