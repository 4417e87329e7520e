//! The metadata image: what a node knows about the cluster (brokers, topics, partitions with
//! their replicas, leader and epochs, configs, producer-id allocation, features), built only by
//! applying committed [`MetadataRecord`]s in log order.
//!
//! Guarantees:
//! * [`MetadataImage::apply`] is deterministic and atomic per record: a record that does not fit
//!   the image (a partition of an unknown topic, a stale broker epoch, …) is refused with an
//!   [`ApplyError`] and leaves the image unchanged. Every node applies the same committed records
//!   with the same code, so every node refuses the same records and their images stay identical.
//! * Leader epochs and partition epochs only grow; [`MetadataImage::check_invariants`] checks the
//!   image's own consistency (names and ids agree, leaders are replicas, ISR ⊆ replicas).
//! * Cloning is cheap: topics are shared (`Arc`) and copied only when changed.
//! * [`MetadataImage::to_records`] gives records that rebuild an equal image (a snapshot).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::records::{Endpoint, LeaderChange, MetadataRecord, TopicId, NO_LEADER, RESOURCE_BROKER, RESOURCE_TOPIC};

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: i32,
    pub incarnation_id: u128,
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// One partition's assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (in `replicas`, not yet in the target's ISR).
    pub adding: Vec<i32>,
    /// Replicas an ongoing reassignment removes (in `replicas` until it completes).
    pub removing: Vec<i32>,
    /// KIP-966's eligible leader replicas: replicas that left the ISR while it was smaller than
    /// `min.insync.replicas`, when the high watermark could no longer advance, so each holds
    /// every committed record and may be elected when no ISR member is left. Disjoint from the
    /// ISR; empty whenever the ISR has `min.insync.replicas` members.
    pub elr: Vec<i32>,
    /// Replicas that were eligible but lost their place by an unclean shutdown (they may have
    /// lost committed records): what an operator looks at before an unclean election.
    pub last_known_elr: Vec<i32>,
}

impl PartitionRegistration {
    /// Whether a reassignment of this partition is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas the partition is meant to have: the reassignment's target while one is
    /// under way (`replicas` minus `removing`, in order), else `replicas`. Its first replica is
    /// the preferred leader.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.removing.contains(r)).collect()
    }

    /// This registration with `change` (a [`MetadataRecord::PartitionChange`] of it) applied:
    /// the fields it sets replaced, the partition epoch bumped, and the leader epoch too when it
    /// sets the leader. Refused if the result is not a valid registration.
    pub fn changed(&self, change: &MetadataRecord) -> Result<PartitionRegistration, ApplyError> {
        let MetadataRecord::PartitionChange { leader, isr, replicas, adding, removing, elr, last_known_elr, .. } = change else {
            return Err(ApplyError::InvalidPartition("not a partition change".into()));
        };
        let mut new = self.clone();
        let set = |field: &mut Vec<i32>, value: &Option<Vec<i32>>| {
            if let Some(v) = value {
                field.clone_from(v);
            }
        };
        set(&mut new.replicas, replicas);
        set(&mut new.isr, isr);
        set(&mut new.adding, adding);
        set(&mut new.removing, removing);
        set(&mut new.elr, elr);
        set(&mut new.last_known_elr, last_known_elr);
        if let LeaderChange::Set(l) = leader {
            new.leader = *l;
            new.leader_epoch = self.leader_epoch.checked_add(1).ok_or_else(|| ApplyError::InvalidPartition("leader epoch overflow".into()))?;
        }
        new.partition_epoch = self.partition_epoch.checked_add(1).ok_or_else(|| ApplyError::InvalidPartition("partition epoch overflow".into()))?;
        check_partition(&new)?;
        Ok(new)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: TopicId,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// A config resource: (Kafka resource type, name).
pub type ConfigResource = (i8, String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Offset of the last record applied (-1: none).
    pub offset: i64,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<TopicId, Arc<TopicImage>>,
    pub topic_ids: BTreeMap<String, TopicId>,
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// Every producer id below this has been handed out.
    pub next_producer_id: i64,
    pub features: BTreeMap<String, i16>,
}

/// What one or more applied records changed, for the replica manager and the coordinators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    /// Partitions created or changed, with their new registration.
    pub changed_partitions: BTreeMap<(TopicId, i32), PartitionRegistration>,
    /// Topics removed: id → (name, partition ids).
    pub removed_topics: BTreeMap<TopicId, (String, Vec<i32>)>,
    /// Config resources whose configs changed.
    pub changed_configs: BTreeSet<ConfigResource>,
    /// Brokers registered, fenced, unfenced or unregistered.
    pub changed_brokers: BTreeSet<i32>,
    pub producer_ids_changed: bool,
}

impl MetadataDelta {
    pub fn is_empty(&self) -> bool {
        *self == MetadataDelta::default()
    }
}

/// Why a record was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("unknown topic id {0:032x}")]
    UnknownTopic(TopicId),
    #[error("topic name {0:?} or its id already exists")]
    TopicExists(String),
    #[error("partition {1} of topic {0:032x} already exists")]
    PartitionExists(TopicId, i32),
    #[error("unknown partition {1} of topic {0:032x}")]
    UnknownPartition(TopicId, i32),
    #[error("unknown broker {0}")]
    UnknownBroker(i32),
    #[error("stale epoch {got} for broker {broker} (current {current})")]
    StaleBrokerEpoch { broker: i32, got: i64, current: i64 },
    #[error("invalid partition registration: {0}")]
    InvalidPartition(String),
    #[error("producer id block must grow: {got} after {current}")]
    ProducerIdsBackwards { got: i64, current: i64 },
}

/// `min.insync.replicas` as KIP-966 counts it for a partition of `replicas`: at least 1, never
/// more than the replicas. The leader's high watermark and the controller's eligible leader
/// replicas both count against this one value.
pub fn effective_min_insync(configured: usize, replicas: usize) -> usize {
    configured.clamp(1, replicas.max(1))
}

fn check_partition(p: &PartitionRegistration) -> Result<(), ApplyError> {
    let bad = |why: &str| Err(ApplyError::InvalidPartition(why.to_string()));
    let distinct: BTreeSet<_> = p.replicas.iter().collect();
    if p.replicas.is_empty() || distinct.len() != p.replicas.len() {
        return bad("replicas must be non-empty and distinct");
    }
    if !p.isr.iter().all(|r| p.replicas.contains(r)) || p.isr.iter().collect::<BTreeSet<_>>().len() != p.isr.len() {
        return bad("ISR must be distinct replicas");
    }
    if p.leader != NO_LEADER && !p.isr.contains(&p.leader) {
        return bad("the leader must be in the ISR");
    }
    let distinct_replicas = |v: &[i32]| v.iter().all(|r| p.replicas.contains(r)) && v.iter().collect::<BTreeSet<_>>().len() == v.len();
    if !distinct_replicas(&p.elr) || p.elr.iter().any(|r| p.isr.contains(r)) {
        return bad("eligible leader replicas must be distinct replicas outside the ISR");
    }
    if !distinct_replicas(&p.last_known_elr) {
        return bad("last known eligible leader replicas must be distinct replicas");
    }
    if p.leader_epoch < 0 || p.partition_epoch < 0 {
        return bad("epochs must not be negative");
    }
    let subset = |v: &[i32]| v.iter().all(|r| p.replicas.contains(r)) && v.iter().collect::<BTreeSet<_>>().len() == v.len();
    if !subset(&p.adding) || !subset(&p.removing) || p.adding.iter().any(|r| p.removing.contains(r)) {
        return bad("adding and removing replicas must be distinct replicas, and not both");
    }
    if p.target_replicas().is_empty() {
        return bad("a reassignment must keep at least one replica");
    }
    Ok(())
}

impl MetadataImage {
    pub fn new() -> MetadataImage {
        MetadataImage { offset: -1, ..Default::default() }
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicImage>> {
        self.topics.get(&id)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionRegistration> {
        self.topic(topic)?.partitions.get(&partition)
    }

    /// Config overrides of a topic (empty if none).
    /// The `min.insync.replicas` of topic `name`: its own setting, else `default`, made
    /// [`effective_min_insync`] for a partition of `replicas` (`usize::MAX`: as configured).
    pub fn min_insync_replicas(&self, name: &str, default: i32, replicas: usize) -> usize {
        let own = self.configs.get(&(RESOURCE_TOPIC, name.to_string())).and_then(|c| c.get("min.insync.replicas")).and_then(|v| v.trim().parse::<i32>().ok());
        effective_min_insync(usize::try_from(own.unwrap_or(default)).unwrap_or(1), replicas)
    }

    pub fn topic_configs(&self, name: &str) -> BTreeMap<String, String> {
        self.configs.get(&(RESOURCE_TOPIC, name.to_string())).cloned().unwrap_or_default()
    }

    /// Cluster-wide dynamic broker config (the broker resource named "").
    pub fn cluster_broker_configs(&self) -> BTreeMap<String, String> {
        self.configs.get(&(RESOURCE_BROKER, String::new())).cloned().unwrap_or_default()
    }

    /// Dynamic config of one broker: its own overrides (the broker resource named by its id)
    /// over the cluster-wide ones.
    pub fn broker_configs(&self, id: i32) -> BTreeMap<String, String> {
        let mut out = self.cluster_broker_configs();
        if let Some(own) = self.configs.get(&(RESOURCE_BROKER, id.to_string())) {
            out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// The overrides stored for one config resource (empty if none).
    pub fn resource_configs(&self, resource_type: i8, name: &str) -> BTreeMap<String, String> {
        self.configs.get(&(resource_type, name.to_string())).cloned().unwrap_or_default()
    }

    /// Brokers that are registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Applies `record` (committed in the log entry at `offset`; one entry may hold several
    /// records) and notes what changed in `delta`. On error the image is unchanged (but `offset`
    /// still advances: the record was consumed).
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord, delta: &mut MetadataDelta) -> Result<(), ApplyError> {
        assert!(offset >= self.offset, "metadata records are applied in log order ({offset} after {})", self.offset);
        self.offset = self.offset.max(offset);
        match record {
            MetadataRecord::RegisterBroker { broker_id, incarnation_id, broker_epoch, endpoints, rack, fenced } => {
                if let Some(b) = self.brokers.get(broker_id) {
                    if *broker_epoch <= b.epoch {
                        return Err(ApplyError::StaleBrokerEpoch { broker: *broker_id, got: *broker_epoch, current: b.epoch });
                    }
                }
                let reg = BrokerRegistration {
                    id: *broker_id,
                    incarnation_id: *incarnation_id,
                    epoch: *broker_epoch,
                    endpoints: endpoints.clone(),
                    rack: rack.clone(),
                    fenced: *fenced,
                };
                self.brokers.insert(*broker_id, reg);
                delta.changed_brokers.insert(*broker_id);
            }
            MetadataRecord::UnregisterBroker { broker_id, broker_epoch } => {
                self.broker_at_epoch(*broker_id, *broker_epoch)?;
                self.brokers.remove(broker_id);
                delta.changed_brokers.insert(*broker_id);
            }
            MetadataRecord::FenceBroker { broker_id, broker_epoch } | MetadataRecord::UnfenceBroker { broker_id, broker_epoch } => {
                self.broker_at_epoch(*broker_id, *broker_epoch)?;
                let fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                self.brokers.get_mut(broker_id).expect("checked above").fenced = fenced;
                delta.changed_brokers.insert(*broker_id);
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topic_ids.contains_key(name) || self.topics.contains_key(topic_id) || *topic_id == 0 {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                self.topic_ids.insert(name.clone(), *topic_id);
                self.topics.insert(*topic_id, Arc::new(TopicImage { name: name.clone(), id: *topic_id, partitions: BTreeMap::new() }));
            }
            MetadataRecord::Partition { topic_id, partition_id, replicas, isr, leader, leader_epoch, partition_epoch, adding, removing, elr, last_known_elr } => {
                let reg = PartitionRegistration {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    adding: adding.clone(),
                    removing: removing.clone(),
                    elr: elr.clone(),
                    last_known_elr: last_known_elr.clone(),
                };
                check_partition(&reg)?;
                let topic = self.topics.get_mut(topic_id).ok_or(ApplyError::UnknownTopic(*topic_id))?;
                // Partitions are numbered densely from 0, as Kafka requires.
                if topic.partitions.contains_key(partition_id) {
                    return Err(ApplyError::PartitionExists(*topic_id, *partition_id));
                }
                if *partition_id != topic.partitions.len() as i32 {
                    return Err(ApplyError::InvalidPartition(format!("partition {partition_id} is not the next partition id")));
                }
                crate::probe::observe(crate::probe::Observed::IsrApplied { topic: &topic.name, partition: *partition_id, registration: &reg, offset });
                Arc::make_mut(topic).partitions.insert(*partition_id, reg.clone());
                delta.changed_partitions.insert((*topic_id, *partition_id), reg);
            }
            MetadataRecord::PartitionChange { topic_id, partition_id, .. } => {
                let topic = self.topics.get(topic_id).ok_or(ApplyError::UnknownTopic(*topic_id))?;
                let old = topic.partitions.get(partition_id).ok_or(ApplyError::UnknownPartition(*topic_id, *partition_id))?;
                let new = old.changed(record)?;
                let topic = self.topics.get_mut(topic_id).expect("checked above");
                crate::probe::observe(crate::probe::Observed::IsrApplied { topic: &topic.name, partition: *partition_id, registration: &new, offset });
                Arc::make_mut(topic).partitions.insert(*partition_id, new.clone());
                delta.changed_partitions.insert((*topic_id, *partition_id), new);
            }
            MetadataRecord::Config { resource_type, resource_name, name, value } => {
                let key = (*resource_type, resource_name.clone());
                let entry = self.configs.entry(key.clone()).or_default();
                match value {
                    Some(v) => {
                        entry.insert(name.clone(), v.clone());
                    }
                    None => {
                        entry.remove(name);
                    }
                }
                if entry.is_empty() {
                    self.configs.remove(&key);
                }
                delta.changed_configs.insert(key);
            }
            MetadataRecord::ProducerIds { next_producer_id, .. } => {
                if *next_producer_id <= self.next_producer_id {
                    return Err(ApplyError::ProducerIdsBackwards { got: *next_producer_id, current: self.next_producer_id });
                }
                self.next_producer_id = *next_producer_id;
                delta.producer_ids_changed = true;
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self.topics.remove(topic_id).ok_or(ApplyError::UnknownTopic(*topic_id))?;
                self.topic_ids.remove(&topic.name);
                let key = (RESOURCE_TOPIC, topic.name.clone());
                if self.configs.remove(&key).is_some() {
                    delta.changed_configs.insert(key);
                }
                for p in topic.partitions.keys() {
                    delta.changed_partitions.remove(&(*topic_id, *p));
                }
                delta.removed_topics.insert(*topic_id, (topic.name.clone(), topic.partitions.keys().copied().collect()));
            }
            MetadataRecord::FeatureLevel { name, level } => {
                if *level == 0 {
                    self.features.remove(name);
                } else {
                    self.features.insert(name.clone(), *level);
                }
            }
        }
        Ok(())
    }

    fn broker_at_epoch(&self, id: i32, epoch: i64) -> Result<(), ApplyError> {
        let b = self.brokers.get(&id).ok_or(ApplyError::UnknownBroker(id))?;
        if b.epoch != epoch {
            return Err(ApplyError::StaleBrokerEpoch { broker: id, got: epoch, current: b.epoch });
        }
        Ok(())
    }

    /// Records that rebuild this image from an empty one (a snapshot), in a fixed order.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, level) in &self.features {
            out.push(MetadataRecord::FeatureLevel { name: name.clone(), level: *level });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker {
                broker_id: b.id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.epoch,
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            });
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic { name: t.name.clone(), topic_id: t.id });
            for (id, p) in &t.partitions {
                out.push(MetadataRecord::Partition {
                    topic_id: t.id,
                    partition_id: *id,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    adding: p.adding.clone(),
                    removing: p.removing.clone(),
                    elr: p.elr.clone(),
                    last_known_elr: p.last_known_elr.clone(),
                });
            }
        }
        for ((resource_type, resource_name), configs) in &self.configs {
            for (name, value) in configs {
                out.push(MetadataRecord::Config {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds { broker_id: -1, broker_epoch: -1, next_producer_id: self.next_producer_id });
        }
        out
    }

    /// The image a snapshot ending at `end_offset` describes: `records` (from
    /// [`MetadataImage::to_records`]) applied to an empty image, as if they were the entry just
    /// below `end_offset`. Refuses records that do not rebuild a consistent image.
    pub fn from_snapshot(end_offset: i64, records: &[MetadataRecord]) -> Result<MetadataImage, ApplyError> {
        let mut image = MetadataImage::new();
        let mut delta = MetadataDelta::default();
        for record in records {
            image.apply(end_offset - 1, record, &mut delta)?;
        }
        image.offset = end_offset - 1;
        Ok(image)
    }

    /// What changed from `self` to `newer`, as the delta applying the records between them would
    /// have noted (used when a whole image replaces another, after a snapshot is installed).
    pub fn diff(&self, newer: &MetadataImage) -> MetadataDelta {
        let mut delta = MetadataDelta::default();
        for (id, t) in &newer.topics {
            let old = self.topics.get(id);
            for (p, reg) in &t.partitions {
                if old.and_then(|o| o.partitions.get(p)) != Some(reg) {
                    delta.changed_partitions.insert((*id, *p), reg.clone());
                }
            }
        }
        for (id, t) in &self.topics {
            if !newer.topics.contains_key(id) {
                delta.removed_topics.insert(*id, (t.name.clone(), t.partitions.keys().copied().collect()));
            }
        }
        let keys: BTreeSet<&ConfigResource> = self.configs.keys().chain(newer.configs.keys()).collect();
        delta.changed_configs = keys.into_iter().filter(|k| self.configs.get(*k) != newer.configs.get(*k)).cloned().collect();
        let ids: BTreeSet<i32> = self.brokers.keys().chain(newer.brokers.keys()).copied().collect();
        delta.changed_brokers = ids.into_iter().filter(|b| self.brokers.get(b) != newer.brokers.get(b)).collect();
        delta.producer_ids_changed = self.next_producer_id != newer.next_producer_id;
        delta
    }

    /// Panics (in release builds too) if the image contradicts itself.
    pub fn check_invariants(&self) {
        assert_eq!(self.topics.len(), self.topic_ids.len(), "metadata image: topic names and ids disagree");
        for (name, id) in &self.topic_ids {
            let t = self.topics.get(id).unwrap_or_else(|| panic!("metadata image: topic {name} has no entry"));
            assert_eq!(&t.name, name, "metadata image: topic id {id:032x} names another topic");
            for (i, (pid, p)) in t.partitions.iter().enumerate() {
                assert_eq!(*pid, i as i32, "metadata image: partitions of {name} are not dense");
                if let Err(e) = check_partition(p) {
                    panic!("metadata image: {name}-{pid}: {e}");
                }
            }
        }
    }
}
