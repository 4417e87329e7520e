//! Admin changes made on a broker that is not the active controller are forwarded to it, as
//! KRaft brokers do: the same Kafka request (CreateTopics, DeleteTopics, CreatePartitions,
//! AlterConfigs, AllocateProducerIds) goes to the quorum leader's controller listener, and the
//! answer comes back as this broker's answer.
//!
//! After a change succeeds, the broker waits (up to [`CATCH_UP_MS`]) until its own image shows
//! it, so a client that creates a topic here and then asks this broker for Metadata finds it.
//! With no active controller known, or one that cannot be reached, the answer is
//! NOT_CONTROLLER, which Kafka clients retry.

use std::collections::BTreeMap;
use std::time::Duration;

use gregor_core::metadata::MetadataImage;
use gregor_net::client::Client;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{AdminError, Broker, NewTopic};
use crate::controller::elections::{ElectionResult, ElectionType, Selection};
use crate::controller::reassignments::Reassignment;
use crate::errors;

/// How long a forwarded change waits for this broker's image to show it.
pub const CATCH_UP_MS: u64 = 5_000;
/// Timeout of one forwarded request.
const FORWARD_TIMEOUT_MS: u64 = 30_000;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn not_controller(why: impl Into<String>) -> AdminError {
    AdminError::new(errors::NOT_CONTROLLER, why)
}

fn answer(code: i16, message: Option<&StrBytes>) -> Result<(), AdminError> {
    if code == errors::NONE {
        Ok(())
    } else {
        Err(AdminError::new(code, message.map(|m| m.to_string()).unwrap_or_else(|| format!("error {code} from the active controller"))))
    }
}

/// A connection to the active controller's listener.
pub(crate) async fn connect(broker: &Broker) -> Result<Client, AdminError> {
    let leader = broker.controller.quorum.status().leader_id;
    let voter = broker.config.voters.iter().find(|v| v.id == leader).ok_or_else(|| not_controller("no active controller is known yet"))?;
    let mut c = Client::connect(&voter.addr(), &format!("gregor-forward-{}", broker.config.node_id))
        .await
        .map_err(|e| not_controller(format!("cannot reach the active controller {leader}: {e}")))?;
    c.set_timeout(Duration::from_millis(FORWARD_TIMEOUT_MS));
    Ok(c)
}

fn transport(e: gregor_net::client::ClientError) -> AdminError {
    not_controller(format!("forwarding to the active controller failed: {e}"))
}

/// Waits until this broker's image satisfies `done`.
pub async fn caught_up(broker: &Broker, done: impl Fn(&MetadataImage) -> bool) {
    let deadline = broker.clock.monotonic_ms() + CATCH_UP_MS;
    loop {
        let changed = broker.image_changed.notified();
        if done(&broker.image()) || broker.clock.monotonic_ms() >= deadline {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
    }
}

pub async fn create_topics(broker: &Broker, new: &[NewTopic], validate_only: bool) -> Vec<Result<(), AdminError>> {
    let mut c = match connect(broker).await {
        Ok(c) => c,
        Err(e) => return new.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut req = CreateTopicsRequest::default();
    req.timeout_ms = FORWARD_TIMEOUT_MS as i32;
    req.validate_only = validate_only;
    req.topics = new
        .iter()
        .map(|t| {
            let mut ct = CreatableTopic::default();
            ct.name = TopicName(sb(&t.name));
            match &t.assignments {
                Some(lists) => {
                    (ct.num_partitions, ct.replication_factor) = (-1, -1);
                    ct.assignments = lists
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            let mut a = CreatableReplicaAssignment::default();
                            a.partition_index = i as i32;
                            a.broker_ids = l.iter().map(|&b| BrokerId(b)).collect();
                            a
                        })
                        .collect();
                }
                None => (ct.num_partitions, ct.replication_factor) = (t.partitions, t.replication_factor),
            }
            ct.configs = t
                .configs
                .iter()
                .map(|(k, v)| {
                    let mut c = CreatableTopicConfig::default();
                    c.name = sb(k);
                    c.value = Some(sb(v));
                    c
                })
                .collect();
            ct
        })
        .collect();
    let resp = match c.send(&req).await {
        Ok(r) => r,
        Err(e) => {
            let e = transport(e);
            return new.iter().map(|_| Err(e.clone())).collect();
        }
    };
    let by_name: BTreeMap<String, (i16, Option<StrBytes>)> = resp.topics.iter().map(|t| (t.name.0.to_string(), (t.error_code, t.error_message.clone()))).collect();
    let results: Vec<Result<(), AdminError>> = new
        .iter()
        .map(|t| match by_name.get(&t.name) {
            Some((code, msg)) => answer(*code, msg.as_ref()),
            None => Err(AdminError::new(errors::UNKNOWN_SERVER_ERROR, "the active controller did not answer for this topic")),
        })
        .collect();
    if !validate_only {
        let created: Vec<String> = new.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(t, _)| t.name.clone()).collect();
        caught_up(broker, |img| created.iter().all(|n| img.topic(n).is_some())).await;
    }
    results
}

pub async fn delete_topic(broker: &Broker, name: &str) -> Result<(), AdminError> {
    let mut c = connect(broker).await?;
    let mut req = DeleteTopicsRequest::default();
    req.timeout_ms = FORWARD_TIMEOUT_MS as i32;
    let mut t = DeleteTopicState::default();
    t.name = Some(TopicName(sb(name)));
    req.topics = vec![t];
    req.topic_names = vec![TopicName(sb(name))];
    let resp = c.send(&req).await.map_err(|e| transport(e))?;
    let r = resp.responses.first().ok_or_else(|| AdminError::new(errors::UNKNOWN_SERVER_ERROR, "empty DeleteTopics answer"))?;
    answer(r.error_code, r.error_message.as_ref())?;
    caught_up(broker, |img| img.topic(name).is_none()).await;
    Ok(())
}

pub async fn create_partitions(broker: &Broker, name: &str, count: i32, assignments: Option<&[Vec<i32>]>, validate_only: bool) -> Result<(), AdminError> {
    let mut c = connect(broker).await?;
    let mut req = CreatePartitionsRequest::default();
    req.timeout_ms = FORWARD_TIMEOUT_MS as i32;
    req.validate_only = validate_only;
    let mut t = CreatePartitionsTopic::default();
    t.name = TopicName(sb(name));
    t.count = count;
    t.assignments = assignments.map(|lists| {
        lists
            .iter()
            .map(|l| {
                let mut a = CreatePartitionsAssignment::default();
                a.broker_ids = l.iter().map(|&b| BrokerId(b)).collect();
                a
            })
            .collect()
    });
    req.topics = vec![t];
    let resp = c.send(&req).await.map_err(|e| transport(e))?;
    let r = resp.results.first().ok_or_else(|| AdminError::new(errors::UNKNOWN_SERVER_ERROR, "empty CreatePartitions answer"))?;
    answer(r.error_code, r.error_message.as_ref())?;
    if !validate_only {
        caught_up(broker, |img| img.topic(name).is_some_and(|t| t.partitions.len() as i32 >= count)).await;
    }
    Ok(())
}

/// A full replacement of one resource's overrides (AlterConfigs semantics).
pub async fn alter_configs(broker: &Broker, resource_type: i8, name: &str, configs: &BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
    let mut c = connect(broker).await?;
    let mut req = AlterConfigsRequest::default();
    req.validate_only = validate_only;
    let mut r = AlterConfigsResource::default();
    r.resource_type = resource_type;
    r.resource_name = sb(name);
    r.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut a = AlterableConfig::default();
            a.name = sb(k);
            a.value = Some(sb(v));
            a
        })
        .collect();
    req.resources = vec![r];
    let resp = c.send(&req).await.map_err(|e| transport(e))?;
    let r = resp.responses.first().ok_or_else(|| AdminError::new(errors::UNKNOWN_SERVER_ERROR, "empty AlterConfigs answer"))?;
    answer(r.error_code, r.error_message.as_ref())?;
    if !validate_only {
        let want = configs.clone();
        let name = name.to_string();
        caught_up(broker, move |img| {
            img.resource_configs(resource_type, &name) == want
        })
        .await;
    }
    Ok(())
}

pub async fn allocate_producer_ids(broker: &Broker) -> Result<std::ops::Range<i64>, AdminError> {
    let mut c = connect(broker).await?;
    let mut req = AllocateProducerIdsRequest::default();
    req.broker_id = BrokerId(broker.config.node_id);
    req.broker_epoch = broker.image().brokers.get(&broker.config.node_id).map_or(-1, |b| b.epoch);
    let resp = c.send(&req).await.map_err(|e| transport(e))?;
    answer(resp.error_code, None)?;
    if resp.producer_id_len <= 0 {
        return Err(AdminError::new(errors::UNKNOWN_SERVER_ERROR, "empty producer id block"));
    }
    let start = resp.producer_id_start.0;
    Ok(start..start + i64::from(resp.producer_id_len))
}

/// ElectLeaders at the active controller; waits until this broker's image shows the elections.
pub async fn elect_leaders(broker: &Broker, ty: ElectionType, selection: &Selection) -> Result<Vec<(String, i32, ElectionResult)>, AdminError> {
    let mut c = connect(broker).await?;
    let mut req = ElectLeadersRequest::default();
    req.election_type = match ty {
        ElectionType::Preferred => 0,
        ElectionType::Unclean => 1,
    };
    req.timeout_ms = FORWARD_TIMEOUT_MS as i32;
    req.topic_partitions = selection.as_ref().map(|s| {
        s.iter()
            .map(|(t, ps)| {
                let mut tp = elect_leaders_request::TopicPartitions::default();
                tp.topic = TopicName(sb(t));
                tp.partitions = ps.clone();
                tp
            })
            .collect()
    });
    let epochs_before = |img: &MetadataImage, t: &str, p: i32| img.partition(t, p).map_or(-1, |r| r.leader_epoch);
    let before = broker.image();
    let resp = c.send(&req).await.map_err(|e| transport(e))?;
    answer(resp.error_code, None)?;
    let results: Vec<(String, i32, ElectionResult)> = resp
        .replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(move |p| (t.topic.0.to_string(), p.partition_id, (p.error_code, p.error_message.as_ref().map(|m| m.to_string())))))
        .collect();
    let elected: Vec<(String, i32, i32)> = results.iter().filter(|(_, _, (code, _))| *code == errors::NONE).map(|(t, p, _)| (t.clone(), *p, epochs_before(&before, t, *p))).collect();
    caught_up(broker, |img| elected.iter().all(|(t, p, e)| epochs_before(img, t, *p) > *e)).await;
    Ok(results)
}

/// AlterPartitionReassignments at the active controller; waits until this broker's image shows
/// the accepted changes began (or ended).
pub async fn alter_reassignments(broker: &Broker, changes: &[Reassignment], allow_rf_change: bool) -> Result<Vec<Result<(), AdminError>>, AdminError> {
    use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    let mut c = connect(broker).await?;
    let mut req = AlterPartitionReassignmentsRequest::default();
    req.timeout_ms = FORWARD_TIMEOUT_MS as i32;
    req.allow_replication_factor_change = allow_rf_change;
    for (topic, partition, target) in changes {
        let mut p = ReassignablePartition::default();
        p.partition_index = *partition;
        p.replicas = target.as_ref().map(|t| t.iter().map(|b| BrokerId(*b)).collect());
        match req.topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = ReassignableTopic::default();
                t.name = TopicName(sb(topic));
                t.partitions.push(p);
                req.topics.push(t);
            }
        }
    }
    let epoch = |img: &MetadataImage, t: &str, p: i32| img.partition(t, p).map_or(-1, |r| r.partition_epoch);
    let before = broker.image();
    let resp = c.send(&req).await.map_err(|e| transport(e))?;
    answer(resp.error_code, resp.error_message.as_ref())?;
    let results: Vec<Result<(), AdminError>> = changes
        .iter()
        .map(|(topic, partition, _)| {
            let r = resp.responses.iter().filter(|t| t.name.0.as_str() == topic).flat_map(|t| t.partitions.iter()).find(|p| p.partition_index == *partition);
            match r {
                Some(r) => answer(r.error_code, r.error_message.as_ref()),
                None => Err(AdminError::new(errors::UNKNOWN_SERVER_ERROR, "the active controller did not answer for this partition")),
            }
        })
        .collect();
    // Only changes that were made move the partition epoch; one equal to the assignment does not.
    let accepted: Vec<(String, i32, i32)> = changes.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|((t, p, _), _)| (t.clone(), *p, epoch(&before, t, *p))).collect();
    caught_up(broker, |img| accepted.iter().all(|(t, p, e)| epoch(img, t, *p) > *e || img.partition(t, *p).is_some_and(|r| !r.is_reassigning()))).await;
    Ok(results)
}