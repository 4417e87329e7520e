//! The broker side of `__consumer_offsets`: creating the topic and writing offset commits and
//! group metadata durably ([`super::group_loading`] replays it).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::offsets::{encode_offset_value, partition_for, CommittedOffset, RecordKey, OFFSETS_TOPIC};
use super::{Broker, Partition};
use crate::errors;

impl Broker {
    /// The `__consumer_offsets` partition for `group`, creating the topic on first use (as Kafka
    /// does on the first FindCoordinator). Errors are Kafka codes.
    pub async fn offsets_partition(&self, group: &str) -> Result<Arc<Partition>, i16> {
        let (topic, index) = self.offsets_partition_of(group).await?;
        // The coordinator of a group is the leader of its offsets partition.
        self.leader_partition(&topic, index, -1).map_err(|_| errors::NOT_COORDINATOR)
    }

    /// The broker that coordinates `group`: the leader of its offsets partition (which may be
    /// another broker), creating the offsets topic on first use. COORDINATOR_NOT_AVAILABLE
    /// while that partition has no leader.
    pub async fn group_coordinator(&self, group: &str) -> Result<i32, i16> {
        let (topic, index) = self.offsets_partition_of(group).await?;
        match self.image().partition(&topic, index) {
            Some(p) if p.leader >= 0 => Ok(p.leader),
            _ => Err(errors::COORDINATOR_NOT_AVAILABLE),
        }
    }

    async fn offsets_partition_of(&self, group: &str) -> Result<(String, i32), i16> {
        let topic = match self.topic(OFFSETS_TOPIC) {
            Some(t) => t,
            None => {
                let mut configs = BTreeMap::new();
                // As Kafka: compacted, so the latest commit of every group and partition stays.
                configs.insert("cleanup.policy".to_string(), "compact".to_string());
                configs.insert("segment.bytes".to_string(), (100 * 1024 * 1024).to_string());
                // `offsets.topic.replication.factor`. As in Kafka, the topic is not created
                // while fewer brokers are live than that (clients retry); the embedded single
                // node uses what it has.
                let live = self.image().brokers.values().filter(|b| !b.fenced).count().max(1);
                let wanted = self.config.replication.offsets_topic_replication_factor;
                let rf = if self.is_embedded() { wanted.min(live as i16) } else { wanted };
                if (rf as usize) > live {
                    tracing::warn!(live, "offsets.topic.replication.factor is {rf}: {OFFSETS_TOPIC} is created once that many brokers are live");
                    return Err(errors::COORDINATOR_NOT_AVAILABLE);
                }
                match self.create_topic(OFFSETS_TOPIC, self.config.offsets_topic_num_partitions, rf, configs, false).await {
                    Ok(t) => t,
                    Err(e) if e.code == errors::TOPIC_ALREADY_EXISTS => self.topic(OFFSETS_TOPIC).ok_or(errors::COORDINATOR_NOT_AVAILABLE)?,
                    Err(e) => {
                        tracing::error!(error = %e.message, "cannot create {OFFSETS_TOPIC}");
                        return Err(errors::COORDINATOR_NOT_AVAILABLE);
                    }
                }
            }
        };
        let n = topic.partitions.len() as i32;
        Ok((OFFSETS_TOPIC.to_string(), partition_for(group, n)))
    }

    /// Writes records to the group's offsets partition and waits until they are durable.
    async fn write_group_records(&self, group: &str, records: &[(RecordKey, Option<Vec<u8>>)]) -> Result<(), i16> {
        if records.is_empty() {
            return Ok(());
        }
        let partition = self.offsets_partition(group).await?;
        let keys: Vec<Vec<u8>> = records.iter().map(|(k, _)| k.encode()).collect();
        let pairs: Vec<(Option<&[u8]>, Option<&[u8]>)> =
            keys.iter().zip(records).map(|(k, (_, v))| (Some(k.as_slice()), v.as_deref())).collect();
        let mut batch = gregor_core::batch::build_simple(0, self.clock.wall_ms(), &pairs);
        let epoch = partition.leader_epoch();
        let info = partition.append(&mut batch, pairs.len() as i64, self.clock.wall_ms()).map_err(|e| {
            tracing::warn!(group, error = %e, "cannot write to {OFFSETS_TOPIC}");
            match e.code() {
                errors::MESSAGE_TOO_LARGE => errors::INVALID_COMMIT_OFFSET_SIZE,
                _ => errors::COORDINATOR_NOT_AVAILABLE,
            }
        })?;
        // Acknowledged once the ISR has it, as Kafka's `offsets.commit.required.acks=-1`.
        partition.wait_replicated(info.last_offset + 1, epoch, self.min_insync_replicas(OFFSETS_TOPIC)).await.map_err(|e| match e.code() {
            errors::NOT_LEADER_OR_FOLLOWER => errors::NOT_COORDINATOR,
            _ => errors::COORDINATOR_NOT_AVAILABLE,
        })?;
        for (k, v) in records {
            self.offsets.apply(k, v.as_deref());
        }
        Ok(())
    }

    /// Commits offsets for a group (validation is the caller's job). Visible once durable.
    pub async fn commit_offsets(&self, group: &str, entries: Vec<(String, i32, CommittedOffset)>) -> Result<(), i16> {
        let records: Vec<(RecordKey, Option<Vec<u8>>)> = entries
            .into_iter()
            .map(|(topic, partition, v)| (RecordKey::Offset { group: group.to_string(), topic, partition }, Some(encode_offset_value(&v))))
            .collect();
        self.write_group_records(group, &records).await
    }

    /// Removes committed offsets (tombstones) for the given partitions of a group.
    pub async fn delete_offsets(&self, group: &str, partitions: Vec<(String, i32)>) -> Result<(), i16> {
        let records: Vec<(RecordKey, Option<Vec<u8>>)> = partitions
            .into_iter()
            .map(|(topic, partition)| (RecordKey::Offset { group: group.to_string(), topic, partition }, None))
            .collect();
        self.write_group_records(group, &records).await
    }

    /// Stores (or with `None`, removes) a group's metadata record.
    pub async fn store_group_metadata(&self, group: &str, value: Option<Vec<u8>>) -> Result<(), i16> {
        self.write_group_records(group, &[(RecordKey::Group { group: group.to_string() }, value)]).await
    }

    /// `offsets.retention.minutes`: removes committed offsets of groups without members whose
    /// commit is older than the retention (Kafka, KIP-211: offsets of an active group never
    /// expire). Returns how many offsets were removed.
    pub async fn expire_offsets(&self) -> usize {
        let now = self.clock.wall_ms();
        let horizon = now.saturating_sub(self.config.offsets_retention_ms);
        let mut removed = 0;
        for group in self.offsets.groups() {
            let active = self.groups.with(|c| (c.describe(&group).members.len(), Vec::new())) > 0;
            if active {
                continue;
            }
            let expired: Vec<(String, i32)> = self
                .offsets
                .group_offsets(&group)
                .into_iter()
                .filter(|(_, c)| c.commit_timestamp_ms < horizon)
                .map(|(k, _)| k)
                .collect();
            let n = expired.len();
            if n == 0 {
                continue;
            }
            match self.delete_offsets(&group, expired).await {
                Ok(()) => {
                    removed += n;
                    tracing::info!(group = %group, offsets = n, "expired committed offsets");
                }
                Err(code) => tracing::warn!(group = %group, code, "cannot expire committed offsets"),
            }
        }
        removed
    }
}
