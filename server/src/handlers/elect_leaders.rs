//! ElectLeaders (key 43): preferred or unclean leader elections, made by the active controller
//! (forwarded there from any broker). See [`crate::controller::elections`] for the rules.
//!
//! v0 has no election type (preferred only) and no top-level error: a request-wide failure
//! (no active controller reachable) is then reported on every named partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::sb;
use crate::broker::Broker;
use crate::controller::elections::{ElectionResult, ElectionType};
use crate::errors;

fn response(results: Vec<(String, i32, ElectionResult)>) -> Vec<ReplicaElectionResult> {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, (code, message)) in results {
        let mut r = PartitionResult::default();
        r.partition_id = partition;
        r.error_code = code;
        r.error_message = message.map(sb);
        by_topic.entry(topic).or_default().push(r);
    }
    by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            let mut t = ReplicaElectionResult::default();
            t.topic = TopicName(sb(topic));
            t.partition_result = partition_result;
            t
        })
        .collect()
}

pub async fn handle(broker: &Arc<Broker>, req: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let mut resp = ElectLeadersResponse::default();
    let selection: Option<Vec<(String, Vec<i32>)>> = req.topic_partitions.map(|ts| ts.into_iter().map(|t| (t.topic.0.to_string(), t.partitions)).collect());
    let Some(ty) = ElectionType::from_wire(if version == 0 { 0 } else { req.election_type }) else {
        resp.error_code = errors::INVALID_REQUEST;
        return resp;
    };
    match broker.elect_leaders(ty, selection.clone()).await {
        Ok(results) => resp.replica_election_results = response(results),
        Err(e) if version >= 1 => resp.error_code = e.code,
        Err(e) => {
            let named = selection.unwrap_or_default().into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)));
            resp.replica_election_results = response(named.map(|(t, p)| (t, p, (e.code, Some(e.message.clone())))).collect());
        }
    }
    resp
}
