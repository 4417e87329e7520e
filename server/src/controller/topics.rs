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

/// Checks explicit replica lists as Kafka's controller does (every broker registered, none twice,
/// `rf` replicas each when given, else as many as the first list) and returns each one's ISR:
/// its unfenced replicas, in replica order, of which the first leads.
fn check_manual(image: &MetadataImage, first: i32, assignments: &[Vec<i32>], rf: Option<usize>) -> Result<Vec<Vec<i32>>, AdminError> {
    let invalid = |m: String| AdminError::new(errors::INVALID_REPLICA_ASSIGNMENT, m);
    let rf = rf.or_else(|| assignments.first().map(Vec::len));
    let mut isrs = Vec::with_capacity(assignments.len());
    for (i, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return Err(invalid("The manual partition assignment includes an empty replica list.".into()));
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        for (k, id) in sorted.iter().enumerate() {
            if !image.brokers.contains_key(id) {
                return Err(invalid(format!("The manual partition assignment includes broker {id}, but no such broker is registered.")));
            }
            if k > 0 && sorted[k - 1] == *id {
                return Err(invalid(format!("The manual partition assignment includes the broker {id} more than once.")));
            }
        }
        if let Some(rf) = rf.filter(|&rf| rf != replicas.len()) {
            return Err(invalid(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                replicas.len()
            )));
        }
        let isr: Vec<i32> = replicas.iter().copied().filter(|id| image.brokers.get(id).is_some_and(|b| !b.fenced)).collect();
        if isr.is_empty() {
            return Err(invalid(format!("All brokers specified in the manual partition assignment for partition {} are fenced or in controlled shutdown.", first + i as i32)));
        }
        isrs.push(isr);
    }
    Ok(isrs)
}

/// The records of new partitions `first..` on `assignments`, with ISR `isrs` (the replicas
/// themselves when `None`: the placement chose live brokers only).
fn partition_records(
    topic_id: TopicId,
    first: i32,
    assignments: Vec<Vec<i32>>,
    isrs: Option<Vec<Vec<i32>>>,
    out: &mut BTreeMap<i32, PartitionRegistration>,
    records: &mut Vec<MetadataRecord>,
) {
    let mut isrs = isrs.map(Vec::into_iter);
    for (i, replicas) in assignments.into_iter().enumerate() {
        let partition_id = first + i as i32;
        let isr = isrs.as_mut().and_then(Iterator::next).unwrap_or_else(|| replicas.clone());
        let reg = PartitionRegistration { leader: isr[0], isr, replicas, leader_epoch: 0, partition_epoch: 0, adding: vec![], removing: vec![], elr: vec![], last_known_elr: vec![] };
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
            elr: vec![], last_known_elr: vec![],
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
            let manual = t.assignments.as_deref().map(|a| check_manual(image, 0, a, None)).transpose()?;
            // Explicit lists are checked above; the replication factor they imply need not fit
            // the live brokers (a fenced replica catches up when it returns).
            let rf_to_place = if manual.is_some() { 1 } else { t.replication_factor };
            validate_create(image, defaults, &t.name, t.partitions, rf_to_place, &t.configs)?;
            if !names.insert(t.name.clone()) {
                return Err(AdminError::new(errors::TOPIC_ALREADY_EXISTS, format!("Topic '{}' already exists.", t.name)));
            }
            let id = new_topic_id(image, &ids, rng);
            ids.insert(id);
            let start = rng.random_range(0..brokers.len().max(1));
            let assignments = match &t.assignments {
                Some(a) => a.clone(),
                None => placement::place(&brokers, 0, t.partitions, t.replication_factor, start).map_err(placement_error)?,
            };
            let mut records = vec![MetadataRecord::Topic { name: t.name.clone(), topic_id: id }];
            let mut partitions = BTreeMap::new();
            partition_records(id, 0, assignments, manual, &mut partitions, &mut records);
            for (k, v) in &t.configs {
                records.push(MetadataRecord::Config { resource_type: RESOURCE_TOPIC, resource_name: t.name.clone(), name: k.clone(), value: Some(v.clone()) });
            }
            Ok(PlannedTopic { name: t.name, id, configs: t.configs, partitions, records })
        })
        .collect()
}

/// Validates growing `name` to `count` partitions and builds the new partitions' records.
pub fn plan_create_partitions(image: &MetadataImage, name: &str, count: i32, manual: Option<&[Vec<i32>]>, rng: &mut SmallRng) -> Result<Vec<MetadataRecord>, AdminError> {
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
    let mut records = Vec::new();
    if let Some(manual) = manual {
        let adding = (count - current) as usize;
        if manual.len() != adding {
            return Err(AdminError::new(
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!("Attempted to add {adding} additional partition(s), but only {} assignment(s) were specified.", manual.len()),
            ));
        }
        let isrs = check_manual(image, current, manual, Some(rf as usize))?;
        partition_records(topic.id, current, manual.to_vec(), Some(isrs), &mut BTreeMap::new(), &mut records);
        return Ok(records);
    }
    let brokers = candidates(image);
    let start = rng.random_range(0..brokers.len().max(1));
    let assignments = placement::place(&brokers, current, count - current, rf, start).map_err(placement_error)?;
    partition_records(topic.id, current, assignments, None, &mut BTreeMap::new(), &mut records);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use gregor_core::metadata::BrokerRegistration;

    use super::*;

    fn image(fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            let reg = BrokerRegistration { id, incarnation_id: 0, epoch: 1, endpoints: vec![], rack: None, fenced: fenced.contains(&id) };
            image.brokers.insert(id, reg);
        }
        image
    }

    fn refused(image: &MetadataImage, lists: &[Vec<i32>], rf: Option<usize>) -> String {
        let e = check_manual(image, 0, lists, rf).expect_err("refused");
        assert_eq!(e.code, errors::INVALID_REPLICA_ASSIGNMENT);
        e.message
    }

    #[test]
    fn manual_assignments_are_checked_as_kafkas_controller_does() {
        let img = image(&[]);
        assert!(refused(&img, &[vec![]], None).contains("empty replica list"));
        assert!(refused(&img, &[vec![1, 4]], None).contains("includes broker 4, but no such broker is registered"));
        assert!(refused(&img, &[vec![2, 1, 2]], None).contains("includes the broker 2 more than once"));
        assert!(refused(&img, &[vec![1, 2], vec![3]], None).contains("a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2"));
        assert!(refused(&img, &[vec![1, 2, 3]], Some(2)).contains("which have 2 replica(s)"));
        assert_eq!(check_manual(&img, 0, &[vec![3, 1], vec![2, 3]], None).unwrap(), vec![vec![3, 1], vec![2, 3]]);
    }

    #[test]
    fn fenced_replicas_start_outside_the_isr_and_never_lead() {
        let img = image(&[2]);
        assert_eq!(check_manual(&img, 0, &[vec![2, 1], vec![3, 2]], None).unwrap(), vec![vec![1], vec![3]]);
        let img = image(&[1, 2]);
        assert!(refused(&img, &[vec![3, 1], vec![2, 1]], None).contains("for partition 1 are fenced or in controlled shutdown"));
    }
}
