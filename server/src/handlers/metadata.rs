//! Metadata (key 3): brokers, topics, partitions and leaders; auto-creates topics when asked to
//! and `auto.create.topics.enable` allows it (Kafka's behaviour).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::sb;
use crate::broker::{Broker, NewTopic, Topic};
use crate::errors;

fn topic_entry(broker: &Broker, t: &Topic) -> MetadataResponseTopic {
    let image = broker.image();
    let live = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
    let mut e = MetadataResponseTopic::default();
    e.error_code = errors::NONE;
    e.name = Some(TopicName(sb(t.name.clone())));
    e.topic_id = t.id;
    e.is_internal = t.name.starts_with("__");
    e.partitions = t
        .partitions
        .iter()
        .map(|(index, reg)| {
            let mut pe = MetadataResponsePartition::default();
            pe.partition_index = *index;
            pe.leader_id = BrokerId(reg.leader);
            pe.leader_epoch = reg.leader_epoch;
            pe.replica_nodes = reg.replicas.iter().map(|r| BrokerId(*r)).collect();
            pe.isr_nodes = reg.isr.iter().map(|r| BrokerId(*r)).collect();
            pe.offline_replicas = reg.replicas.iter().filter(|r| !live(r)).map(|r| BrokerId(*r)).collect();
            pe.error_code = if reg.leader < 0 {
                errors::LEADER_NOT_AVAILABLE
            } else if reg.leader == broker.config.node_id {
                // A partition whose storage failed here is reported as such.
                match broker.partition(&t.name, *index).map(|p| p.offsets()) {
                    Some(Err(e)) => e.code(),
                    _ => errors::NONE,
                }
            } else {
                errors::NONE
            };
            pe
        })
        .collect();
    e
}

fn error_entry(name: Option<String>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    let mut e = MetadataResponseTopic::default();
    e.error_code = code;
    e.name = name.map(|n| TopicName(sb(n)));
    e.topic_id = id;
    e
}

pub async fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let mut resp = MetadataResponse::default();
    let live: std::collections::BTreeSet<i32> = broker.image().live_brokers().map(|b| b.id).collect();
    resp.brokers = super::endpoint_list!(broker, &live, MetadataResponseBroker);
    resp.cluster_id = Some(sb(broker.cluster_id.clone()));
    resp.controller_id = BrokerId(broker.config.node_id);

    // v0: an empty list means all topics; v1+: null means all topics.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    // Before v4 there is no flag and creation is allowed.
    let allow_create = (version < 4 || req.allow_auto_topic_creation) && broker.config.auto_create_topics_enable;
    match requested {
        None => {
            resp.topics = broker.topics().iter().map(|t| topic_entry(broker, t)).collect();
        }
        Some(topics) => {
            // Missing topics are created in one batch (one metadata write), then every entry is
            // answered in request order.
            let mut seen = std::collections::BTreeSet::new();
            let mut entries: Vec<Option<MetadataResponseTopic>> = Vec::new();
            let mut to_create: Vec<(usize, String)> = Vec::new();
            for rt in topics {
                let name = rt.name.map(|n| n.0.to_string());
                let entry = match name {
                    None => match broker.topic_by_id(&rt.topic_id) {
                        Some(t) => topic_entry(broker, &t),
                        None => error_entry(None, rt.topic_id, errors::UNKNOWN_TOPIC_ID),
                    },
                    Some(name) => {
                        if !seen.insert(name.clone()) {
                            continue;
                        }
                        match broker.topic(&name) {
                            Some(t) => topic_entry(broker, &t),
                            None if gregor_core::topic::validate_topic_name(&name).is_err() => {
                                error_entry(Some(name), uuid::Uuid::nil(), errors::INVALID_TOPIC_EXCEPTION)
                            }
                            None if allow_create => {
                                to_create.push((entries.len(), name));
                                entries.push(None);
                                continue;
                            }
                            None => error_entry(Some(name), uuid::Uuid::nil(), errors::UNKNOWN_TOPIC_OR_PARTITION),
                        }
                    }
                };
                entries.push(Some(entry));
            }
            let batch = to_create
                .iter()
                .map(|(_, name)| NewTopic {
                    name: name.clone(),
                    partitions: broker.config.num_partitions,
                    replication_factor: broker.config.default_replication_factor,
                    configs: BTreeMap::new(),
                    assignments: None,
                })
                .collect();
            let created = broker.create_topics(batch, false).await;
            for ((slot, name), result) in to_create.into_iter().zip(created) {
                entries[slot] = Some(match result {
                    Ok(t) => topic_entry(broker, &t),
                    // Lost a race with a concurrent create: report what exists now.
                    Err(e) if e.code == errors::TOPIC_ALREADY_EXISTS => match broker.topic(&name) {
                        Some(t) => topic_entry(broker, &t),
                        None => error_entry(Some(name), uuid::Uuid::nil(), errors::LEADER_NOT_AVAILABLE),
                    },
                    Err(e) => error_entry(Some(name), uuid::Uuid::nil(), e.code),
                });
            }
            resp.topics = entries.into_iter().flatten().collect();
        }
    }
    resp
}
