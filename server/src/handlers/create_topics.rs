//! CreateTopics (key 19): validate names, partition counts, replication factors and configs;
//! `validate_only` checks everything and creates nothing.
//!
//! A replication factor above the live brokers is INVALID_REPLICATION_FACTOR. Explicit replica
//! assignments (instead of a partition count and replication factor) are checked by the
//! controller as Kafka's: consecutive partitions from 0, registered brokers, none twice, one
//! replication factor, at least one unfenced replica each (else INVALID_REPLICA_ASSIGNMENT).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::describe_configs::topic_config_entries;
use super::sb;
use crate::broker::{AdminError, Broker, NewTopic, Topic};
use crate::errors;

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.to_string()).or_default() += 1;
    }
    // First what each topic asks for, then one batch for the broker: the metadata is written
    // once per request.
    let mut reported = BTreeSet::new();
    let mut answers: Vec<(CreatableTopicResult, Option<Result<(i32, i16), AdminError>>)> = Vec::new();
    let mut batch = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        if counts.get(&name).copied().unwrap_or(0) > 1 {
            if reported.insert(name.clone()) {
                r.error_code = errors::INVALID_REQUEST;
                r.error_message = Some(sb(format!("Create topics request from client contains topic {name} more than once.")));
                answers.push((r, None));
            }
            continue;
        }
        match new_topic(broker, t) {
            Ok(new) => {
                answers.push((r, Some(Ok((new.partitions, new.replication_factor)))));
                batch.push(new);
            }
            Err(e) => answers.push((r, Some(Err(e)))),
        }
    }
    let mut created = broker.create_topics(batch, req.validate_only).await.into_iter();
    for (mut r, asked) in answers {
        let result = match asked {
            None => {
                resp.topics.push(r);
                continue;
            }
            Some(Err(e)) => Err(e),
            Some(Ok(sizes)) => created.next().expect("one result per topic created").map(|topic| (topic, sizes)),
        };
        match result {
            Ok((topic, (partitions, rf))) => {
                r.error_code = errors::NONE;
                r.topic_id = topic.id;
                r.num_partitions = partitions;
                r.replication_factor = rf;
                if version >= 5 {
                    r.configs = Some(config_entries(broker, &topic));
                }
            }
            Err(e) => {
                r.error_code = e.code;
                r.error_message = Some(sb(e.message));
            }
        }
        resp.topics.push(r);
    }
    resp
}

/// What one topic of the request asks for, checked as far as it can be without the broker's
/// state (assignments, partition count and replication factor defaults, config values).
fn new_topic(broker: &Arc<Broker>, t: &kafka_protocol::messages::create_topics_request::CreatableTopic) -> Result<NewTopic, AdminError> {
    let mut assignments = None;
    let (partitions, rf) = if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(AdminError::new(errors::INVALID_REQUEST, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time."));
        }
        let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
            return Err(AdminError::new(errors::INVALID_REPLICA_ASSIGNMENT, "Partitions should be a consecutive 0-based integer sequence."));
        }
        let mut lists: Vec<(i32, Vec<i32>)> = t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect();
        lists.sort_unstable();
        let lists: Vec<Vec<i32>> = lists.into_iter().map(|(_, l)| l).collect();
        let rf = lists.first().map_or(0, |l| l.len() as i16);
        assignments = Some(lists);
        (t.assignments.len() as i32, rf)
    } else {
        let p = if t.num_partitions == -1 { broker.config.num_partitions } else { t.num_partitions };
        let rf = if t.replication_factor == -1 { broker.config.default_replication_factor } else { t.replication_factor };
        (p, rf)
    };
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        match &c.value {
            Some(v) => {
                configs.insert(c.name.to_string(), v.to_string());
            }
            None => return Err(AdminError::new(errors::INVALID_CONFIG, format!("Null value not supported for topic configs: {}", c.name))),
        }
    }
    Ok(NewTopic { name: t.name.0.to_string(), partitions, replication_factor: rf, configs, assignments })
}

fn config_entries(broker: &Arc<Broker>, topic: &Topic) -> Vec<CreatableTopicConfigs> {
    topic_config_entries(broker, &topic.configs, &broker.effective_log_config(&topic.configs), None)
        .into_iter()
        .map(|e| {
            let mut c = CreatableTopicConfigs::default();
            c.name = e.name;
            c.value = e.value;
            c.read_only = e.read_only;
            c.config_source = e.config_source;
            c.is_sensitive = false;
            c
        })
        .collect()
}
