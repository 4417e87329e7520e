//! Topic creation and partition growth: validation against the image and the records that
//! carry the change (a `Topic` record, then one `Partition` record per partition, then the
//! topic's `Config` records).

use std::collections::{BTreeMap, BTreeSet};

use gregor_core::metadata::placement::{self, Candidate, PlacementError};
use gregor_core::metadata::{MetadataImage, MetadataRecord, PartitionRegistration, TopicId, RESOURCE_TOPIC};
use gregor_core::topic::validate_topic_name;
use gregor_storage::LogConfig;
use rand::rngs::SmallRng;
use rand::Rng;

use crate::broker::log_configs::{check_config_values, config_error, log_config_for};
use crate::broker::{AdminError, NewTopic, PARTITIONS_PER_TOPIC_MAX};
use crate::errors;

/// A topic that passed validation, with the records that create it.
#[derive(Debug, Clone)]
pub struct PlannedTopic {
    pub name: String,
    pub id: TopicId,
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
    pub records: Vec<MetadataRecord>,
}

fn candidates(image: &MetadataImage) -> Vec<Candidate> {
    image.live_brokers().map(|b| Candidate { id: b.id, rack: b.rack.clone() }).collect()
}

fn placement_error(e: PlacementError) -> AdminError {
    AdminError::new(errors::INVALID_REPLICATION_FACTOR, e.to_string())
}

/// Checks a topic creation; returns the effective log config.
pub fn validate_create(image: &MetadataImage, defaults: &LogConfig, name: &str, partitions: i32, rf: i16, configs: &BTreeMap<String, String>) -> Result<LogConfig, AdminError> {
    validate_topic_name(name).map_err(|e| AdminError::new(errors::INVALID_TOPIC_EXCEPTION, e.to_string()))?;
    if image.topic(name).is_some() {
        return Err(AdminError::new(errors::TOPIC_ALREADY_EXISTS, format!("Topic '{name}' already exists.")));
    }
    if partitions < 1 || partitions > PARTITIONS_PER_TOPIC_MAX {
        return Err(AdminError::new(errors::INVALID_PARTITIONS, format!("Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}.")));
    }
    if rf < 1 {
        return Err(AdminError::new(errors::INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0."));
    }
    let live = candidates(image).len();
    if rf as usize > live {
        return Err(placement_error(PlacementError::NotEnoughBrokers { rf, brokers: live }));
    }
    check_config_values(configs)?;
    log_config_for(defaults, configs).map_err(config_error)
}

fn new_topic_id(image: &MetadataImage, taken: &BTreeSet<TopicId>, rng: &mut SmallRng) -> TopicId {
    loop {
        let id: TopicId = rng.random();
        if id != 0 && image.topic_by_id(id).is_none() && !taken.contains(&id) {
            return id;
        }
    }
}

fn partition_records(topic_id: TopicId, first: i32, assignments: Vec<Vec<i32>>, out: &mut BTreeMap<i32, PartitionRegistration>, records: &mut Vec<MetadataRecord>) {
    for (i, replicas) in assignments.into_iter().enumerate() {
        let partition_id = first + i as i32;
        let reg = PartitionRegistration { leader: replicas[0], isr: replicas.clone(), replicas, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![] };
        records.push(MetadataRecord::Partition {
            topic_id,
            partition_id,
            replicas: reg.replicas.clone(),
            isr: reg.isr.clone(),
            leader: reg.leader,
            leader_epoch: reg.leader_epoch,
            partition_epoch: reg.partition_epoch,
            adding: vec![],
            removing: vec![],
        });
        out.insert(partition_id, reg);
    }
}

/// Validates each topic and builds its records; a name repeated in one batch: the first wins.
pub fn plan_create(image: &MetadataImage, defaults: &LogConfig, new: Vec<NewTopic>, rng: &mut SmallRng) -> Vec<Result<PlannedTopic, AdminError>> {
    let brokers = candidates(image);
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    new.into_iter()
        .map(|t| {
            validate_create(image, defaults, &t.name, t.partitions, t.replication_factor, &t.configs)?;
            if !names.insert(t.name.clone()) {
                return Err(AdminError::new(errors::TOPIC_ALREADY_EXISTS, format!("Topic '{}' already exists.", t.name)));
            }
            let id = new_topic_id(image, &ids, rng);
            ids.insert(id);
            let start = rng.random_range(0..brokers.len().max(1));
            let assignments = placement::place(&brokers, 0, t.partitions, t.replication_factor, start).map_err(placement_error)?;
            let mut records = vec![MetadataRecord::Topic { name: t.name.clone(), topic_id: id }];
            let mut partitions = BTreeMap::new();
            partition_records(id, 0, assignments, &mut partitions, &mut records);
            for (k, v) in &t.configs {
                records.push(MetadataRecord::Config { resource_type: RESOURCE_TOPIC, resource_name: t.name.clone(), name: k.clone(), value: Some(v.clone()) });
            }
            Ok(PlannedTopic { name: t.name, id, configs: t.configs, partitions, records })
        })
        .collect()
}

/// Validates growing `name` to `count` partitions and builds the new partitions' records.
pub fn plan_create_partitions(image: &MetadataImage, name: &str, count: i32, rng: &mut SmallRng) -> Result<Vec<MetadataRecord>, AdminError> {
    let topic = image.topic(name).ok_or_else(|| AdminError::new(errors::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."))?;
    let current = topic.partitions.len() as i32;
    if count < current {
        return Err(AdminError::new(errors::INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {count}.")));
    }
    if count == current {
        return Err(AdminError::new(errors::INVALID_PARTITIONS, format!("Topic already has {current} partitions.")));
    }
    if count > PARTITIONS_PER_TOPIC_MAX {
        return Err(AdminError::new(errors::INVALID_PARTITIONS, format!("Number of partitions must be at most {PARTITIONS_PER_TOPIC_MAX}.")));
    }
    let rf = topic.partitions.get(&0).map_or(1, |p| p.replicas.len() as i16);
    let brokers = candidates(image);
    let start = rng.random_range(0..brokers.len().max(1));
    let assignments = placement::place(&brokers, current, count - current, rf, start).map_err(placement_error)?;
    let mut records = Vec::new();
    partition_records(topic.id, current, assignments, &mut BTreeMap::new(), &mut records);
    Ok(records)
}
